"""Issue 14, second round: the rest of the fastai vision API course code uses (through the public API)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits
from torch import nn

from learnkit import ModelError, load_learner, set_seed
from learnkit.models import create_model
from learnkit.vision import (
    ImageDataLoaders,
    SegmentationDataLoaders,
    get_image_files,
    unet_learner,
    vision_learner,
)
from learnkit.vision.models import (
    NormType,
    PixelShuffleICNR,
    SEModule,
    XResBlock,
    xresnet18,
    xresnet34,
    xresnet152,
    xresnext18,
    xresnext50,
    xse_resnet18,
    xse_resnext101,
)


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    """``<split>/<label>/<i>.png`` for 3 digit classes from scikit-learn's bundled digits."""
    root = tmp_path_factory.mktemp("digits")
    d = load_digits()
    keep = [i for i in range(len(d.target)) if d.target[i] < 3][:90]
    for n, i in enumerate(keep):
        split = "train" if n < 66 else "valid"
        f = root / split / str(int(d.target[i])) / f"{i}.png"
        f.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((d.images[i] * (255 / 16)).astype(np.uint8)).resize((16, 16)).save(f)
    return root


@pytest.fixture(scope="module")
def seg_dir(tmp_path_factory) -> Path:
    """Digit images with their "ink" masks (``img/`` and ``lbl/``), 16 pairs of 32x32."""
    root = tmp_path_factory.mktemp("seg")
    d = load_digits()
    (root / "img").mkdir()
    (root / "lbl").mkdir()
    for i in range(16):
        arr = np.asarray(Image.fromarray((d.images[i] / 16 * 255).astype(np.uint8)).resize((32, 32)))
        Image.fromarray(arr).convert("RGB").save(root / "img" / f"{i}.png")
        Image.fromarray((arr > 100).astype(np.uint8)).save(root / "lbl" / f"{i}.png")
    return root


# ------------------------------------------------------------------------------------ 1. archs and U-Net
def test_xresnext_and_se_variants_are_grouped_and_gated():
    grouped = [m for m in xresnext18(n_out=3).modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert len(grouped) == 8 and all(m.groups == 32 for m in grouped)  # one grouped 3x3 per basic block
    with torch.device("meta"):
        big = xresnext50(n_out=3)
    assert all(b.convs[1][0].groups == 32 for b in big.modules() if isinstance(b, XResBlock))
    se = xse_resnet18(n_out=3)
    blocks = [b for b in se.modules() if isinstance(b, XResBlock)]
    assert all(isinstance(b.se, SEModule) for b in blocks) and len(blocks) == 8
    assert not any(m.groups > 1 for m in se.modules() if isinstance(m, nn.Conv2d))
    # the gate really scales the residual branch per channel: a closed gate leaves only the shortcut
    block = blocks[2]
    x = torch.randn(2, block.convs[0][0].in_channels, 8, 8)
    for b in block.modules():
        if isinstance(b, nn.BatchNorm2d):
            nn.init.ones_(b.weight)
    block.eval()
    open_out = block(x)
    nn.init.constant_(block.se.gate[3].bias, -1e4)
    nn.init.zeros_(block.se.gate[3].weight)
    assert not torch.allclose(open_out, block(x))
    assert torch.allclose(block(x), block.act(block.shortcut(x)), atol=1e-5)
    with torch.device("meta"):  # the big ones: shapes only, no memory or init time
        deep = xse_resnext101(n_out=2, c_in=1).eval()
        assert deep(torch.randn(1, 1, 32, 32)).shape == (1, 2)
        assert sum(isinstance(m, XResBlock) for m in xresnet152(n_out=2).modules()) == 3 + 8 + 36 + 3


def test_xresnet_c_in_as_fastai_spells_it_and_n_in_still_works():
    assert xresnet34(c_in=1)[0][0].in_channels == 1
    assert xresnet18(n_in=2)[0][0].in_channels == 2
    assert xresnet18(n_out=4, c_in=5)(torch.randn(2, 5, 24, 24)).shape == (2, 4)
    with pytest.raises(ModelError, match="c_in"):
        xresnet18(n_in=2, c_in=1)
    model = create_model("xse_resnext18", n_out=3, c_in=1, act_cls="Mish")
    assert model.learnkit_spec["kwargs"]["c_in"] == 1
    assert any(isinstance(m, nn.Mish) for m in model.modules())
    with pytest.raises(ModelError, match="act_cls"):
        xresnet18(act_cls="NoSuchAct")


def test_new_archs_train_and_export_pickle_free(digits, tmp_path):
    arch = "xse_resnext18"  # grouped convs and squeeze-excitation in one
    set_seed(0)
    dls = ImageDataLoaders.from_folder(digits, bs=16, num_workers=0, seed=0)
    learn = vision_learner(dls, arch, pretrained=False)
    learn.fit_one_cycle(3, 3e-3, quiet=True)
    losses = learn.recorder.losses
    assert np.mean(losses[-3:]) < np.mean(losses[:3])  # the training loss falls
    loaded = load_learner(learn.export(tmp_path / f"{arch}.lk"))
    files = get_image_files(digits / "valid")[:4]
    for f in files:
        assert torch.allclose(loaded.predict(f)[2], learn.predict(f)[2], atol=1e-5)


def _seg_dls(seg_dir):
    set_seed(0)
    return SegmentationDataLoaders.from_label_func(
        seg_dir,
        get_image_files(seg_dir / "img"),
        lambda f: f.parent.parent / "lbl" / f.name,
        codes=["background", "digit"],
        bs=8,
        num_workers=0,
        seed=0,
    )


def test_unet_learner_blur_final_act_cls_and_norm_type(seg_dir, tmp_path):
    dls = _seg_dls(seg_dir)
    learn = unet_learner(
        dls,
        "simple_cnn",
        pretrained=False,
        blur=True,
        blur_final=False,
        act_cls=nn.LeakyReLU,
        norm_type=NormType.Weight,
    )
    unet = learn.model
    decoder = [m for n, m in unet.named_modules() if not n.startswith("encoder")]
    assert any(isinstance(m, nn.LeakyReLU) for m in decoder)
    assert not any(type(m) is nn.ReLU for m in decoder)  # act_cls reaches every decoder activation
    convs = [m for m in decoder if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert convs and all(nn.utils.parametrize.is_parametrized(c) for c in convs)  # weight norm
    assert not any(isinstance(m, nn.BatchNorm2d) for n, m in unet.named_modules() if "conv" in n)
    ups = [b.up for b in unet.blocks]
    assert [u.blur is not None for u in ups] == [True] * (len(ups) - 1) + [False]  # no blur in the last
    learn.fit_one_cycle(4, 2e-3, quiet=True)
    losses = learn.recorder.losses
    assert np.mean(losses[-2:]) < np.mean(losses[:2])  # the training loss falls
    loaded = load_learner(learn.export(tmp_path / "unet.lk"))  # still pickle-free with these options
    f = get_image_files(seg_dir / "img")[0]
    assert np.array_equal(loaded.predict(f)[0], learn.predict(f)[0])

    default = unet_learner(dls, "simple_cnn", pretrained=False, blur=True).model
    assert all(b.up.blur is not None for b in default.blocks)  # blur_final=True (fastai's default)
    plain = unet_learner(dls, "simple_cnn", pretrained=False, norm_type=None).model
    assert not any(isinstance(m, nn.BatchNorm2d) for n, m in plain.named_modules() if "conv" in n)
    spectral = unet_learner(dls, "simple_cnn", pretrained=False, norm_type=NormType.Spectral).model
    assert spectral(dls.one_batch()[0].cpu()).shape[1] == 2
    assert isinstance(spectral.blocks[0].up, PixelShuffleICNR)
    with pytest.raises(ModelError, match="norm_type"):
        unet_learner(dls, "simple_cnn", pretrained=False, norm_type="group")


# ------------------------------------------------------------------------------------ 2. transforms
def invert(img):
    """A plain function as an item transform: the digits become dark on white."""
    return img.point(lambda v: 255 - v)


def halve(x):
    """A plain function as a batch transform (after IntToFloat)."""
    return x * 0.5


def test_plain_functions_as_item_and_batch_tfms(digits, tmp_path):
    from learnkit.data import CategoryBlock, DataBlock, GrandparentSplitter, parent_label
    from learnkit.vision import ImageBlock, Resize

    def brighter(x: Image.Image):  # annotated: runs on the images only
        return x.point(lambda v: min(255, v + 10))

    plain = ImageDataLoaders.from_folder(digits, bs=8, num_workers=0, seed=0, shuffle=False)
    funcs = ImageDataLoaders.from_folder(
        digits, bs=8, num_workers=0, seed=0, shuffle=False, item_tfms=[invert], batch_tfms=[halve]
    )
    xa, ya = plain.valid.one_batch()
    xb, yb = funcs.valid.one_batch()
    assert torch.equal(ya, yb)
    assert torch.allclose(xb, (1 - xa) * 0.5, atol=1 / 255)
    dblock = DataBlock(
        blocks=(ImageBlock, CategoryBlock),
        get_items=get_image_files,
        get_y=parent_label,
        splitter=GrandparentSplitter(),
        item_tfms=[brighter, Resize(16)],
    )
    dls = dblock.dataloaders(digits, bs=8, num_workers=0)
    x, _ = dls.valid.one_batch()
    assert float(x.min()) >= 10 / 255 - 1e-6  # every pixel got brighter, the labels were left alone
    learn = vision_learner(funcs, "simple_cnn", pretrained=False)
    path = learn.export(tmp_path / "funcs.lk")  # the function is named (module:function), not pickled
    f = get_image_files(digits / "valid")[0]
    assert torch.allclose(load_learner(path).predict(f)[2], learn.predict(f)[2], atol=1e-6)
    with pytest.raises(Exception, match="module level"):
        vision_learner(
            ImageDataLoaders.from_folder(digits, bs=8, num_workers=0, item_tfms=[lambda im: im]),
            "simple_cnn",
            pretrained=False,
        ).export(tmp_path / "lambda.lk")


def test_draw_saturation_hue_and_random_erasing():
    from learnkit.vision.augment import (
        Brightness,
        Contrast,
        Dihedral,
        Flip,
        Hue,
        RandomErasing,
        Rotate,
        Saturation,
        Zoom,
    )

    x = torch.rand(4, 3, 8, 8)
    img = (x,)
    k = ("image",)
    assert torch.allclose(Flip(p=1.0, draw=[1, 0, 1, 0])(img, k, True)[0][1], x[1], atol=1e-5)
    assert torch.allclose(Flip(p=1.0, draw=[1, 0, 1, 0])(img, k, True)[0][0], x[0].flip(-1), atol=1e-5)
    assert torch.allclose(Dihedral(p=1.0, draw=0)(img, k, True)[0], x, atol=1e-5)
    r = Rotate(p=1.0, draw=90)(img, k, True)[0][0, 0]
    assert any(
        torch.allclose(r, x[0, 0].rot90(d, (0, 1)), atol=1e-4) for d in (1, -1)
    )  # exactly a quarter turn
    assert torch.allclose(Zoom(p=1.0, draw=1.0)(img, k, True)[0], x, atol=1e-5)
    assert torch.allclose(Brightness(p=1.0, draw=0.5)(img, k, True)[0], x, atol=1e-4)  # 0.5: unchanged
    assert (Brightness(p=1.0, draw=0.8)(img, k, True)[0] > x - 1e-6).all()
    assert (
        Contrast(p=1.0, draw=[1.0, 2.0, 1.0, 1.0])(img, k, True)[0][[0, 2, 3]] - x[[0, 2, 3]]
    ).abs().max() < 1e-4
    gray = Saturation(p=1.0, draw=0.0)(img, k, True)[0]
    assert (gray[:, 0] - gray[:, 2]).abs().max() < 1e-4 and (x[:, 0] - x[:, 2]).abs().max() > 0.1
    assert torch.allclose(Hue(p=1.0, draw=1.0)(img, k, True)[0], x, atol=1e-3)  # a full turn
    shifted = Hue(p=1.0, draw=0.5)(img, k, True)[0]
    assert (shifted - x).abs().max() > 0.1
    assert torch.allclose(Saturation(p=1.0)(img, k, False)[0], x)  # validation: untouched
    with pytest.raises(Exception, match="draw"):
        Rotate(draw="ninety")

    torch.manual_seed(0)
    z = torch.zeros(200, 3, 20, 20)
    out = RandomErasing(p=0.5, sl=0.1, sh=0.3, max_count=2)((z,), k, True)[0]
    erased = (out != 0).flatten(1).any(1).float().mean()
    assert 0.35 < float(erased) < 0.65  # p of the images
    frac = (out != 0).float().mean((1, 2, 3))[(out != 0).flatten(1).any(1)]
    assert float(frac.min()) >= 0.05 and float(frac.max()) <= 0.31
    assert torch.equal(RandomErasing(p=1.0)((z,), k, False)[0], z)  # validation: untouched
    with pytest.raises(Exception, match="max_count"):
        RandomErasing(max_count=0)


def test_setup_aug_tfms_merges_into_one_pass_and_matches_separate_ops():
    from learnkit.vision.augment import (
        AffineCoordTfm,
        Brightness,
        Flip,
        LightingTfm,
        RandomErasing,
        Rotate,
        Saturation,
        aug_transforms,
        setup_aug_tfms,
    )

    tfms = setup_aug_tfms(
        [
            Rotate(p=1.0, draw=20),
            Brightness(p=1.0, draw=0.6),
            Flip(p=1.0, draw=1),
            RandomErasing(),
            Saturation(p=1.0, draw=0.5),
        ]
    )
    assert [type(t).__name__ for t in tfms] == ["AffineCoordTfm", "LightingTfm", "RandomErasing"]
    assert len(tfms[0].ops) == 2 and len(tfms[1].ops) == 2
    x = torch.rand(2, 3, 16, 16)
    k = ("image",)
    one = tfms[1](tfms[0]((x,), k, True), k, True)[0]
    sep = x
    for t in [Flip(p=1.0, draw=1), Rotate(p=1.0, draw=20)]:  # stage order: flip then rotate
        sep = t((sep,), k, True)[0]
    sep = Saturation(p=1.0, draw=0.5)((Brightness(p=1.0, draw=0.6)((sep,), k, True)[0],), k, True)[0]
    inner = (slice(None), slice(None), slice(4, 12), slice(4, 12))  # away from the padded borders
    assert torch.allclose(one[inner], sep[inner], atol=2e-2)
    merged = setup_aug_tfms([AffineCoordTfm([Flip()], size=12), AffineCoordTfm([Rotate()])])
    assert len(merged) == 1 and merged[0].size == (12, 12)
    with pytest.raises(Exception, match="size"):
        setup_aug_tfms([AffineCoordTfm([Flip()], size=12), AffineCoordTfm([Rotate()], size=8)])
    aug = aug_transforms(xtra_tfms=[Saturation()])
    assert isinstance(aug[-1], LightingTfm) and len(aug) == 2


def test_show_batch_unique_shows_one_item_augmented(digits):
    from learnkit.vision import aug_transforms

    set_seed(0)
    dls = ImageDataLoaders.from_folder(
        digits, bs=8, num_workers=0, seed=0, batch_tfms=aug_transforms(max_rotate=30, p_affine=1.0)
    )
    b = dls.train.unique_batch(6)
    assert b[0].shape[0] == 6 and len(set(b[1].tolist())) == 1  # one item, one label
    assert not torch.allclose(b[0][0], b[0][1])  # each copy augmented on its own
    fig = dls.show_batch(unique=True, max_n=6)
    titles = {ax.get_title() for ax in fig.axes if ax.get_images()}
    assert len([ax for ax in fig.axes if ax.get_images()]) == 6 and len(titles) == 1


# ------------------------------------------------------------------------------------ 3. points, show kwargs
@pytest.fixture(scope="module")
def dots(tmp_path_factory):
    """24x32 (h x w) images with one bright 3x3 dot; the label is the dot's centre in pixels."""
    root = tmp_path_factory.mktemp("dots")
    rng = np.random.default_rng(0)
    pts = {}
    for i in range(36):
        x, y = int(rng.integers(3, 29)), int(rng.integers(3, 21))
        a = np.zeros((24, 32, 3), np.uint8)
        a[y - 1 : y + 2, x - 1 : x + 2] = 255
        Image.fromarray(a).save(root / f"{i}.png")
        pts[f"{i}.png"] = [[x + 0.5, y + 0.5]]
    return root, pts


def test_point_predictions_come_back_in_pixels(dots, tmp_path):
    from learnkit.data import DataBlock, RandomSplitter
    from learnkit.vision import ImageBlock, PointBlock

    root, pts = dots
    dblock = DataBlock(
        blocks=(ImageBlock, PointBlock),
        get_items=get_image_files,
        get_y=lambda f: pts[f.name],
        splitter=RandomSplitter(0.25, seed=0),
    )
    set_seed(0)
    dls = dblock.dataloaders(root, bs=12, num_workers=0)
    xb, yb = dls.one_batch()
    assert float(yb.abs().max()) <= 1.0  # the model still regresses [-1, 1] coordinates
    learn = vision_learner(dls, "simple_cnn", pretrained=False, y_range=(-1, 1))
    learn.fit_one_cycle(2, 1e-2, quiet=True)
    f = get_image_files(root)[0]
    pred, raw, _ = learn.predict(f)
    assert pred.shape == (1, 2)
    # the raw output is in [-1, 1]; the decoded prediction is the same point in pixels of the 32x24 image
    assert torch.allclose(pred, (raw.reshape(-1, 2) + 1) * torch.tensor([16.0, 12.0]), atol=1e-5)
    assert 0 <= float(pred[0, 0]) <= 32 and 0 <= float(pred[0, 1]) <= 24
    loaded = load_learner(learn.export(tmp_path / "points.lk"))
    assert torch.allclose(loaded.predict(f)[0], pred, atol=1e-4)
    fig = learn.show_results(max_n=2)
    assert fig.axes
    known = PointBlock(img_size=(10, 20))
    assert known.decode_pred(torch.tensor([[1.0, -1.0]])).tolist() == [[20.0, 0.0]]


def test_show_results_and_confusion_matrix_take_fastai_kwargs(digits):
    from learnkit.vision import ClassificationInterpretation

    set_seed(0)
    dls = ImageDataLoaders.from_folder(digits, bs=24, num_workers=0, seed=0)
    learn = vision_learner(dls, "simple_cnn", pretrained=False)
    learn.fit(2, 1e-2, quiet=True)
    first = learn.show_results(max_n=4, figsize=(4, 4), dpi=50)
    assert len([a for a in first.axes if a.get_images()]) == 4 and first.get_dpi() == 50
    assert tuple(first.get_size_inches()) == (4, 4)
    titles = [a.get_title() for a in first.axes if a.get_images()]
    set_seed(1)
    shuffled = learn.show_results(shuffle=True, max_n=4)
    assert len([a for a in shuffled.axes if a.get_images()]) == 4
    # shuffle picks other items of the batch: some drawn image differs from the unshuffled first four
    arrays = lambda fig: [a.get_images()[0].get_array().tobytes() for a in fig.axes if a.get_images()]  # noqa: E731
    assert arrays(shuffled) != arrays(first) and titles
    fig = dls.show_batch(max_n=4, dpi=40, shuffle=True)
    assert fig.get_dpi() == 40

    interp = ClassificationInterpretation.from_learner(learn)
    fig = interp.plot_confusion_matrix(
        normalize=True, title="digits", cmap="Greens", norm_dec=3, plot_txt=True, figsize=(5, 5), dpi=40
    )
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert len(texts) == 9 and all(len(t.split(".")[1]) == 3 for t in texts)  # norm_dec decimals
    rows = interp.confusion_matrix().float()
    expect = rows[0, 0] / rows[0].sum()
    assert abs(float(texts[0]) - float(expect)) < 1e-3
    assert ax.get_title() == "digits" and fig.get_dpi() == 40 and tuple(fig.get_size_inches()) == (5, 5)
    assert ax.get_images()[0].get_cmap().name == "Greens"
    assert len(interp.plot_confusion_matrix(plot_txt=False).axes[0].texts) == 0


# ------------------------------------------------------------------------------------ 4. the cleaner widget
def test_image_classifier_cleaner_headless(digits, tmp_path):
    import shutil

    from learnkit.vision.widgets import ImageClassifierCleaner

    root = tmp_path / "data"
    shutil.copytree(digits, root)
    set_seed(0)
    dls = ImageDataLoaders.from_folder(root, bs=16, num_workers=0, seed=0)
    learn = vision_learner(dls, "simple_cnn", pretrained=False)
    learn.fit(1, 1e-2, quiet=True)
    cleaner = ImageClassifierCleaner(learn, max_n=5)
    assert cleaner.cat_dd.options == ("0", "1", "2") and cleaner.split_dd.value == "Train"
    assert len(cleaner.fns) == 5 and all(f.parent.name == "0" for f in cleaner.fns)
    # highest loss first: the shown order is the order of the per-item losses
    _, _, losses = learn.get_preds(dl=dls.test_dl(list(cleaner.fns), with_labels=True), with_loss=True)
    assert (losses[:-1] >= losses[1:] - 1e-6).all()
    cleaner.dropdowns[1].value = "<Delete>"
    cleaner.dropdowns[3].value = "2"
    assert list(cleaner.delete()) == [1] and list(cleaner.change()) == [(3, "2")]
    # another view, and back: the choices are kept
    cleaner.split_dd.value = "Valid"
    assert all(f.parts[-3] == "valid" for f in cleaner.fns) and cleaner.delete() == []
    cleaner.split_dd.value = "Train"
    assert list(cleaner.delete()) == [1] and list(cleaner.change()) == [(3, "2")]
    doomed, moved = cleaner.fns[1], cleaner.fns[3]
    # the book's loops, as they are
    for idx in cleaner.delete():
        cleaner.fns[idx].unlink()
    for idx, cat in cleaner.change():
        shutil.move(str(cleaner.fns[idx]), root / "train" / cat)
    assert not doomed.exists() and (root / "train" / "2" / moved.name).exists()
    cleaner.cat_dd.value = "1"
    cleaner.cat_dd.value = "0"
    assert doomed not in cleaner.fns and moved not in cleaner.fns and cleaner.delete() == []
    assert "application/vnd.jupyter.widget-view+json" in cleaner._repr_mimebundle_()


def test_cleaner_without_ipywidgets_names_the_extra(monkeypatch):
    import learnkit.vision.widgets as w

    monkeypatch.setattr(w, "widgets", None)
    with pytest.raises(ImportError, match=r"pip install learnkit\[widgets\]"):
        w.ImageClassifierCleaner(object())
