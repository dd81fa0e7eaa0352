"""vision_learner / unet_learner on real images: from-scratch accuracy, pretrained weights from a local
torchvision cache, fine_tune freezing, predict on every input form, tta, show_results, export round trip."""

from __future__ import annotations

import urllib.error

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from learnkit.callbacks.core import Callback
from learnkit.cli import write_digits_folder
from learnkit.data.getters import get_image_files
from learnkit.data.transforms import Normalize
from learnkit.device import set_seed
from learnkit.exceptions import ModelError
from learnkit.export import load_learner
from learnkit.metrics import accuracy
from learnkit.vision.augment import Resize, aug_transforms
from learnkit.vision.data import ImageDataLoaders, SegmentationDataLoaders
from learnkit.vision.learner import unet_learner, vision_learner
from learnkit.vision.models import imagenet_stats, pretrained_weights_file


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory):
    """All 1797 digits as 28x28 PNGs in train/ and valid/ class folders."""
    return write_digits_folder(tmp_path_factory.mktemp("digits"), size=28)


@pytest.fixture(scope="module")
def small_dir(tmp_path_factory):
    """48 digits as 32x32 PNGs (for the ResNet tests)."""
    return write_digits_folder(tmp_path_factory.mktemp("small"), size=32, n=48, valid_pct=0.34)


@pytest.fixture(scope="module")
def trained(digits_dir):
    """A from-scratch simple_cnn trained for 4 epochs on the digits (grayscale)."""
    set_seed(0)
    dls = ImageDataLoaders.from_folder(digits_dir, img_mode="L", bs=64, num_workers=0)
    learn = vision_learner(dls, "simple_cnn", pretrained=False, metrics=accuracy)
    learn.fit_one_cycle(4, 1e-2, quiet=True)
    return learn


def test_from_scratch_reaches_95_percent(trained):
    loss, acc = trained.validate()
    assert acc >= 0.95
    assert trained.model.learnkit_spec["factory"] == "vision_model"
    assert trained.model.learnkit_spec["kwargs"]["arch"] == "simple_cnn"
    assert trained.model.learnkit_spec["kwargs"]["n_in"] == 1  # taken from the grayscale data
    assert not any(isinstance(t, Normalize) for t in trained.dls.recipe.batch_pipe.tfms)  # from scratch: none


def test_predict_accepts_path_pil_array_tensor(trained, digits_dir):
    f = sorted((digits_dir / "valid" / "7").glob("*.png"))[0]
    label, idx, probs = trained.predict(f)
    assert isinstance(label, str) and label == trained.dls.vocab[int(idx)]
    assert probs.shape == (10,) and abs(float(probs.sum()) - 1) < 1e-5
    img = Image.open(f)
    arr = np.asarray(img)
    for item in (
        str(f),
        img,
        img.convert("RGB"),
        arr,
        torch.tensor(arr),
        torch.tensor(arr)[None].float() / 255,
    ):
        l2, i2, p2 = trained.predict(item)
        assert l2 == label and torch.allclose(p2, probs, atol=1e-4)


def test_tta_and_show_results_marks_mistakes(trained):
    preds, targs = trained.tta(n=2)
    assert preds.shape == (len(trained.dls.valid_ds), 10)
    assert (preds.argmax(1) == targs).float().mean() >= 0.9
    fig = trained.show_results(max_n=64)
    x, y = next(iter(trained.dls.valid))
    with torch.no_grad():
        pred = trained.model.eval()(x).argmax(1)
    colours = [ax.title.get_color() for ax in fig.axes if ax.get_title()]
    assert len(colours) == 64
    assert colours.count("red") == int((pred[:64] != y[:64]).sum())


def test_export_reload_predicts_without_the_dataset(trained, digits_dir, tmp_path):
    f = sorted((digits_dir / "valid" / "3").glob("*.png"))[0]
    path = trained.export(tmp_path / "digits.lk")
    st = torch.load(path, weights_only=True)  # plain data: no pickle
    assert st["model"]["factory"] == "vision_model" and st["model"]["kwargs"]["arch"] == "simple_cnn"
    assert st["model"]["kwargs"].get("pretrained", False) is False  # weights come from the file
    loaded = load_learner(path)
    assert loaded.dls.train is None and loaded.dls.vocab == trained.dls.vocab
    a, b = trained.predict(f), loaded.predict(f)
    assert a[0] == b[0] and torch.allclose(a[2], b[2], atol=1e-5)


def test_n_out_contradicting_the_data(digits_dir):
    dls = ImageDataLoaders.from_folder(digits_dir, img_mode="L", num_workers=0)
    with pytest.raises(ModelError, match="10 targets"):
        vision_learner(dls, "simple_cnn", pretrained=False, n_out=5)
    learn = vision_learner(dls, "simple_cnn", pretrained=False, n_out=10)
    assert learn.model(dls.one_batch()[0]).shape[1] == 10


def test_unknown_arch_suggests_close_matches(digits_dir):
    dls = ImageDataLoaders.from_folder(digits_dir, img_mode="L", num_workers=0)
    with pytest.raises(ModelError, match="Did you mean.*'resnet18'"):
        vision_learner(dls, "resnet81", pretrained=False)
    with pytest.raises(ModelError, match="xresnet18"):
        vision_learner(dls, "xresnet_18", pretrained=False)
    with pytest.raises(ModelError, match="from-scratch"):  # no pretrained weights for learnkit's own models
        vision_learner(dls, "xresnet18", pretrained=True)


# ------------------------------------------------------------------------------------------- pretrained
@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    """A temporary TORCH_HOME; downloading is made to fail (no network in tests)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("network disabled in tests")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    return tmp_path / "torch_home"


def test_pretrained_without_cached_weights_names_the_file(small_dir, torch_home):
    dls = ImageDataLoaders.from_folder(small_dir, num_workers=0)
    file = pretrained_weights_file("resnet18")
    assert str(file).startswith(str(torch_home))
    with pytest.raises(ModelError) as e:
        vision_learner(dls, torchvision.models.resnet18)
    msg = str(e.value)
    assert file.name in msg and str(file.parent) in msg and "pretrained=False" in msg


def test_fine_tune_from_a_locally_cached_checkpoint(small_dir, torch_home, tmp_path):
    import hashlib

    from torchvision.models._api import Weights, WeightsEnum

    torch.manual_seed(1)
    reference = torchvision.models.resnet18().state_dict()
    file = pretrained_weights_file("resnet18")
    assert file == torch_home / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    file.parent.mkdir(parents=True)
    # random weights cannot pose as the real file (its hash prefix is verified): cache them under their own hash
    tmp = file.parent / "tmp.pth"
    torch.save(reference, tmp)
    own = file.parent / f"resnet18-{hashlib.sha256(tmp.read_bytes()).hexdigest()[:8]}.pth"
    tmp.rename(own)

    class LocalWeights(WeightsEnum):
        V1 = Weights(
            url=f"https://example.invalid/{own.name}",
            transforms=None,
            meta=torchvision.models.ResNet18_Weights.DEFAULT.meta,
        )

    set_seed(0)
    dls = ImageDataLoaders.from_folder(small_dir, item_tfms=Resize(32), bs=16, num_workers=0)
    learn = vision_learner(dls, torchvision.models.resnet18, metrics=accuracy, weights=LocalWeights.V1)
    body = learn.model[0]
    conv1 = body[0].weight
    assert torch.equal(conv1.detach(), reference["conv1.weight"])  # the cached file was loaded
    norm = [t for t in dls.recipe.batch_pipe.tfms if isinstance(t, Normalize)]
    assert len(norm) == 1 and norm[0].mean == imagenet_stats[0]  # added for the pretrained model
    assert any(isinstance(t, dict) and t.get("name") == "Normalize" for t in dls.recipe.spec()["batch_tfms"])
    # frozen body: convolutions do not train (BatchNorm does), the head does
    assert not conv1.requires_grad and body[1].weight.requires_grad
    assert all(p.requires_grad for p in learn.model[1].parameters())
    head_before = learn.model[1][-1].weight.detach().clone()
    seen = []

    class Watch(Callback):
        def after_fit(self):
            seen.append(
                (
                    torch.equal(conv1.detach(), reference["conv1.weight"]),
                    torch.equal(learn.model[1][-1].weight.detach(), head_before),
                )
            )

    learn.fine_tune(1, cbs=Watch(), quiet=True)
    assert seen[0] == (True, False)  # stage 1: the body is frozen, the head trains
    assert seen[1] == (False, False)  # stage 2: everything trains
    assert conv1.requires_grad
    path = learn.export(tmp_path / "resnet.lk")
    loaded = load_learner(path)
    f = get_image_files(small_dir / "valid")[0]
    assert torch.allclose(loaded.predict(f)[2], learn.predict(f)[2], atol=1e-5)


# ------------------------------------------------------------------------------------------- segmentation
def test_unet_learner_trains_predicts_and_exports(tmp_path):
    from sklearn.datasets import load_digits

    d = load_digits()
    (tmp_path / "img").mkdir()
    (tmp_path / "lbl").mkdir()
    for i in range(48):
        arr = np.asarray(Image.fromarray((d.images[i] / 16 * 255).astype(np.uint8)).resize((32, 32)))
        Image.fromarray(arr).convert("RGB").save(tmp_path / "img" / f"{i}.png")
        Image.fromarray((arr > 100).astype(np.uint8)).save(tmp_path / "lbl" / f"{i}.png")
    files = get_image_files(tmp_path / "img")
    set_seed(0)
    dls = SegmentationDataLoaders.from_label_func(
        tmp_path,
        files,
        lambda f: f.parent.parent / "lbl" / f.name,
        codes=["background", "digit"],
        bs=8,
        num_workers=0,
        seed=0,
    )
    with pytest.raises(ModelError, match="2 targets"):
        unet_learner(dls, "simple_cnn", pretrained=False, n_out=3)
    learn = unet_learner(dls, "simple_cnn", pretrained=False)  # a small encoder keeps this fast on a CPU
    learn.fit_one_cycle(6, 1e-2, quiet=True)
    preds, targs = learn.get_preds()
    assert (preds.argmax(1) == targs).float().mean() > 0.9  # pixel accuracy (about 63% are background)
    mask, dec, probs = learn.predict(files[0])
    assert mask.shape == (32, 32) and probs.shape == (2, 32, 32)
    truth = np.asarray(Image.open(tmp_path / "lbl" / files[0].name))
    assert (mask == truth).mean() > 0.85
    fig = learn.show_results(max_n=4)
    assert "pixel accuracy" in fig.axes[0].get_title()
    loaded = load_learner(learn.export(tmp_path / "unet.lk"))
    assert np.array_equal(loaded.predict(files[0])[0], mask)


# ------------------------------------------------------------------------------------------- CUDA
@pytest.mark.cuda
def test_cuda_channels_last_mixed_precision_pinned(digits_dir):
    from learnkit.callbacks.training import ChannelsLast, MixedPrecision

    set_seed(0)
    dls = ImageDataLoaders.from_folder(digits_dir, img_mode="L", bs=64, num_workers=2, device="cuda")
    assert dls.train.loader.pin_memory and dls.valid.loader.pin_memory
    x, y = dls.one_batch()
    assert x.device.type == "cuda" and x.dtype == torch.float32
    learn = vision_learner(
        dls, "xresnet18", pretrained=False, metrics=accuracy, cbs=[ChannelsLast(), MixedPrecision()]
    )
    learn.fit_one_cycle(3, 1e-2, quiet=True)
    assert learn.validate()[1] >= 0.95
    conv = next(m for m in learn.model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    label, idx, probs = learn.predict(sorted((digits_dir / "valid" / "4").glob("*.png"))[0])
    assert probs.device.type == "cpu" and label in dls.vocab


@pytest.mark.cuda
def test_cuda_pretrained_resnet_fine_tune_mixed_precision(small_dir, torch_home):
    from learnkit.callbacks.training import ChannelsLast, MixedPrecision

    file = pretrained_weights_file("resnet18")
    file.parent.mkdir(parents=True)
    torch.save(torchvision.models.resnet18().state_dict(), file)
    dls = ImageDataLoaders.from_folder(small_dir, item_tfms=Resize(32), bs=16, num_workers=2, device="cuda")
    learn = vision_learner(dls, "resnet18", metrics=accuracy, cbs=[ChannelsLast(), MixedPrecision()])
    learn.fine_tune(1, quiet=True)
    preds, targs = learn.get_preds()
    assert preds.dtype == torch.float32 and torch.isfinite(preds).all()


@pytest.mark.cuda
def test_cuda_unet_on_a_resnet_encoder(tmp_path):
    from sklearn.datasets import load_digits

    from learnkit.callbacks.training import MixedPrecision

    d = load_digits()
    (tmp_path / "img").mkdir()
    (tmp_path / "lbl").mkdir()
    for i in range(64):
        arr = np.asarray(Image.fromarray((d.images[i] / 16 * 255).astype(np.uint8)).resize((64, 64)))
        Image.fromarray(arr).convert("RGB").save(tmp_path / "img" / f"{i}.png")
        Image.fromarray((arr > 100).astype(np.uint8)).save(tmp_path / "lbl" / f"{i}.png")
    files = get_image_files(tmp_path / "img")
    dls = SegmentationDataLoaders.from_label_func(
        tmp_path,
        files,
        lambda f: f.parent.parent / "lbl" / f.name,
        codes=["background", "digit"],
        bs=16,
        num_workers=2,
        seed=0,
        device="cuda",
    )
    learn = unet_learner(dls, "resnet18", pretrained=False, cbs=MixedPrecision())
    learn.fit_one_cycle(8, 1e-2, quiet=True)
    preds, targs = learn.get_preds()
    assert (preds.argmax(1) == targs).float().mean() > 0.9


def test_tta_augments_when_cpu_batch_transforms_run_in_workers(small_dir):
    set_seed(0)
    dls = ImageDataLoaders.from_folder(
        small_dir, batch_tfms=aug_transforms(p_affine=1.0, p_lighting=1.0), bs=8, num_workers=1, device="cpu"
    )
    assert dls.valid.tfms_in_workers
    learn = vision_learner(dls, "simple_cnn", pretrained=False)
    plain, targs = learn.get_preds()
    aug, targs2 = learn.tta(n=2, beta=None)
    assert torch.equal(targs, targs2) and aug.shape == plain.shape
    assert (aug - plain).abs().max() > 1e-3  # training-time augmentation reached the workers
    assert dls.valid.train is False
    again, _ = learn.get_preds()
    assert torch.allclose(again, plain, atol=1e-6)  # and validation is deterministic again
