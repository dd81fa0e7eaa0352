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
