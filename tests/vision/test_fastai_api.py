"""Issue 14: course-style vision code runs with only the import changed (through the public API)."""

from __future__ import annotations

import pathlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from learnkit.data import get_files, get_image_files
from learnkit.utils import L, LPath
from learnkit.vision import verify_images


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    """``<split>/<label>/<i>.png`` from scikit-learn's bundled digits, as users have image folders."""
    root = tmp_path_factory.mktemp("digits")
    d = load_digits()
    for i in range(60):
        split = "train" if i < 45 else "valid"
        f = root / split / str(int(d.target[i])) / f"{i}.png"
        f.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((d.images[i] * (255 / 16)).astype(np.uint8)).resize((16, 16)).save(f)
    return root


def test_paths_have_ls_and_file_lists_have_L_methods(digits):
    path = LPath(digits)
    assert path.ls() == [path / "train", path / "valid"] and isinstance(path.ls(), L)
    assert isinstance(path.ls()[0], LPath) and isinstance(path.ls()[0], pathlib.Path)
    assert path.ls(file_exts=".png") == []
    files = get_image_files(path)
    assert isinstance(files, L) and isinstance(files, list) and len(files) == 60
    assert isinstance(files[0], LPath) and isinstance(files[0].parent, LPath)
    assert files.sorted(key=lambda f: int(f.stem)).attrgot("stem")[:3] == ["0", "1", "2"]
    assert files.sorted("name") == sorted(files, key=lambda f: f.name)
    labels = files.map(lambda f: f.parent.name)
    assert set(labels) <= {str(i) for i in range(10)} and len(labels) == 60
    valid = files.filter(lambda f: f.parts[-3] == "valid")
    assert len(valid) == 15 and isinstance(valid, L)
    assert L([(1, "a"), (2, "b")]).itemgot(1) == ["a", "b"]
    assert files[[0, 2]] == [files[0], files[2]] and files[1:3] == files[1:3]
    assert files[0].parent.ls(n_max=2) == sorted((files[0].parent).iterdir())[:2]
    assert len(get_files(path, ".png")) == 60
    assert repr(L([1, 2])) == "(#2) [1, 2]"


def test_untar_data_returns_a_path_with_ls(tmp_path, monkeypatch):
    import socket
    import tarfile

    from learnkit.data import untar_data

    monkeypatch.setenv("LEARNKIT_HOME", str(tmp_path / "home"))
    src = tmp_path / "ds"
    (src / "images").mkdir(parents=True)
    (src / "images" / "a.png").write_bytes(b"x")
    (src / "labels.csv").write_text("a\n")
    (tmp_path / "home" / "archive").mkdir(parents=True)
    with tarfile.open(tmp_path / "home" / "archive" / "ds.tgz", "w:gz") as tf:
        tf.add(src, arcname="ds")
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    path = untar_data(f"http://127.0.0.1:{port}/ds.tgz", show_progress=False)  # placed by hand: offline
    assert isinstance(path, LPath)
    assert path.ls().attrgot("name") == ["images", "labels.csv"]
    assert (path / "images").ls()[0].name == "a.png"


def test_verify_images_result_maps_unlink(digits, tmp_path):
    import shutil

    root = tmp_path / "imgs"
    shutil.copytree(digits / "valid", root)
    (root / "0" / "broken.png").write_bytes(b"not an image")
    (root / "1" / "truncated.png").write_bytes((next((root / "1").glob("*.png"))).read_bytes()[:40])
    failed = verify_images(get_image_files(root))
    assert sorted(f.name for f in failed) == ["broken.png", "truncated.png"]
    failed.map(Path.unlink)
    assert verify_images(get_image_files(root)) == [] and len(get_image_files(root)) == 15


def test_pilimage_create_shape_thumb_show_and_tensor(digits):
    import matplotlib

    matplotlib.use("Agg")
    import torch

    from learnkit.utils import tensor
    from learnkit.vision import PILImage, PILImageBW, show_image, show_images
    from learnkit.vision.show import subplots

    f = get_image_files(digits)[0]
    img = PILImage.create(f)
    assert isinstance(img, PILImage) and isinstance(img, Image.Image)
    assert img.mode == "RGB" and img.shape == (16, 16) and img.size == (16, 16)
    thumb = img.to_thumb(8)
    assert thumb.shape == (8, 8) and isinstance(thumb, PILImage) and img.shape == (16, 16)
    t = tensor(img)
    assert t.shape == (16, 16, 3) and t.dtype == torch.uint8
    assert torch.equal(t, torch.as_tensor(np.array(Image.open(f).convert("RGB"))))
    bw = PILImageBW.create(f)
    assert bw.mode == "L" and tensor(bw).shape == (16, 16)
    plain = Image.open(f)
    PILImage.create(plain)
    assert type(plain) is not PILImage  # the caller's image is left as it was
    assert tensor(1, 2, 3).tolist() == [1, 2, 3] and tensor([[1.0], [2.0]]).shape == (2, 1)

    fig, axs = subplots(1, 2)
    ax = img.show(ctx=axs[0], title="a digit")
    assert ax is axs[0] and ax.get_title() == "a digit"
    assert show_image(img, title="seven").get_title() == "seven"  # any title crashed before
    fig = show_images([img, bw, t.permute(2, 0, 1)], titles=["x", "y", "z"], nrows=1)
    assert [a.get_title() for a in fig.axes][:3] == ["x", "y", "z"]
    import matplotlib.pyplot as plt

    plt.close("all")


def test_resize_images_keeps_structure_and_aspect(tmp_path):
    from learnkit.vision.data import resize_images

    src = tmp_path / "raw"
    (src / "cat").mkdir(parents=True)
    Image.new("RGB", (400, 200), (255, 0, 0)).save(src / "cat" / "wide.png")
    Image.new("RGB", (50, 80), (0, 255, 0)).save(src / "cat" / "small.png")
    out = resize_images(src, max_size=100, dest=tmp_path / "small", recurse=True)
    assert sorted(p.relative_to(tmp_path / "small").as_posix() for p in out) == [
        "cat/small.png",
        "cat/wide.png",
    ]
    assert Image.open(tmp_path / "small" / "cat" / "wide.png").size == (100, 50)
    assert Image.open(tmp_path / "small" / "cat" / "small.png").size == (50, 80)  # never enlarged
    assert Image.open(tmp_path / "small" / "cat" / "wide.png").getpixel((10, 10)) == (255, 0, 0)


def _dls(digits):
    from learnkit.vision import ImageDataLoaders

    return ImageDataLoaders.from_folder(digits, bs=16, num_workers=0, seed=0)


def test_cnn_learner_custom_head_n_out_with_loss_and_resnet_groups(digits):
    import torch
    from torch import nn

    from learnkit.vision import vision_learner
    from learnkit.vision.learner import cnn_learner

    dls = _dls(digits)
    learn = cnn_learner(dls, "resnet18", pretrained=False)
    assert learn.model[1][-1].out_features == dls.c
    # torchvision ResNets split in 3 groups like fastai: freeze_to(-2) trains layer3/4 and the head only
    groups = learn.splitter(learn.model)
    assert len(groups) == 3
    learn.freeze_to(-2)
    body = learn.model[0]
    convs = [m for m in body.modules() if isinstance(m, nn.Conv2d)]  # BatchNorm stays trainable (train_bn)
    early = {id(p) for p in body[:6].parameters()}
    assert not any(c.weight.requires_grad for c in convs if id(c.weight) in early)
    assert all(c.weight.requires_grad for c in convs if id(c.weight) not in early)
    learn.unfreeze()
    assert all(c.weight.requires_grad for c in convs)

    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, dls.c))
    learn = vision_learner(dls, "resnet18", pretrained=False, custom_head=head)
    assert learn.model[1] is head
    xb, yb = dls.one_batch()
    assert learn.model(xb.cpu()).shape == (xb.shape[0], dls.c)

    # n_out other than dls.c: refused without a loss, allowed with the loss that expects it
    def loss(pred, targ):
        return nn.functional.cross_entropy(pred[:, : dls.c], targ)

    with pytest.raises(Exception, match="n_out"):
        vision_learner(dls, "resnet18", pretrained=False, n_out=dls.c + 2)
    learn = vision_learner(dls, "resnet18", pretrained=False, n_out=dls.c + 2, loss_func=loss)
    assert learn.model[1][-1].out_features == dls.c + 2
    learn.fit(1)
    assert torch.isfinite(torch.tensor(learn.recorder.values[-1][0]))

    # pool=False and init=None reach the head
    plain = vision_learner(
        dls, "xresnet18", pretrained=False, pool=False, init=None, custom_head=None, lin_ftrs=[], n_in=3
    )
    assert not any(isinstance(m, (nn.AdaptiveAvgPool2d, nn.Flatten)) for m in plain.model[1])


def test_resize_method_pad_mode_and_name():
    from learnkit.vision.augment import PadMode, Resize, ResizeMethod

    img = Image.new("RGB", (64, 32), (200, 10, 10))
    sq = Resize(16, method=ResizeMethod.Squish)
    assert sq((img,), ("image",), train=False)[0].size == (16, 16) and sq.method == "squish"
    pad = Resize(16, method=ResizeMethod.Pad, pad_mode=PadMode.Zeros)
    out = np.asarray(pad((img,), ("image",), train=False)[0])
    assert out.shape == (16, 16, 3) and out[0, 0].tolist() == [0, 0, 0] and out[8, 8, 0] > 150  # letterboxed
    assert Resize(192).name == "Resize -- {'size': (192, 192), 'method': 'crop', 'pad_mode': 'reflection'}"


@pytest.mark.parametrize(
    "modname",
    [
        "learnkit.utils",
        "learnkit.models.pretrained",
        "learnkit.all",
        "learnkit.vision.all",
        "learnkit.vision.data",
        "learnkit.vision.show",
        "learnkit.vision.augment",
        "learnkit.vision.learner",
        "learnkit.vision.models",
    ],
)
def test_new_public_names_import_and_have_docstrings(modname):
    import importlib
    import inspect

    mod = importlib.import_module(modname)
    assert len(mod.__all__) == len(set(mod.__all__))
    missing = [n for n in mod.__all__ if not hasattr(mod, n)]
    assert not missing, missing
    undocumented = [
        n
        for n in mod.__all__
        if (inspect.isclass(getattr(mod, n)) or inspect.isfunction(getattr(mod, n)))
        and getattr(getattr(mod, n), "__module__", "").startswith("learnkit")  # torch.Tensor has none
        and not (inspect.getdoc(getattr(mod, n)) or "").strip()
    ]
    assert not undocumented, undocumented
