"""Vision models: from-scratch CNNs, bodies/heads from torchvision, pretrained weights from the torch hub
cache (no network), transfer-learning models and the dynamic U-Net."""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from learnkit.data import external
from learnkit.exceptions import CheckpointError, ModelError
from learnkit.models import create_model, list_models, resolve_factory
from learnkit.vision.models import (
    AdaptiveConcatPool2d,
    DynamicUnet,
    XResBlock,
    create_body,
    create_head,
    create_unet_model,
    create_vision_model,
    imagenet_stats,
    lenet,
    num_features_model,
    pretrained_available,
    pretrained_weights_file,
    unet_splitter,
    vision_splitter,
    xresnet18,
    xresnet50,
)

VISION_MODELS = list_models(tags="vision")


@pytest.fixture(scope="module")
def digit_images():
    """scikit-learn's 8x8 digits, upsampled to 32x32 grey images in [0, 1]: (x, y)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images[:64], dtype=torch.float32)[:, None] / 16.0
    x = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)
    return x, torch.tensor(d.target[:64])


def _params_once(groups, model):
    ids = [id(p) for g in groups for p in g]
    return len(ids) == len(set(ids)) and set(ids) == {id(p) for p in model.parameters()}


# ---------------------------------------------------------------------------------------------- from scratch


def test_vision_models_registered():
    assert {"simple_cnn", "lenet", "xresnet18", "xresnet34", "xresnet50", "xresnet101"} <= set(VISION_MODELS)
    assert imagenet_stats == ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])


@pytest.mark.parametrize("name", VISION_MODELS)
def test_registered_model_shapes(name, digit_images):
    x, _ = digit_images
    for n_in in (1, 3):
        model = create_model(name, n_out=7, n_in=n_in)
        out = model(x[:2].expand(-1, n_in, -1, -1))
        assert out.shape == (2, 7)
        assert model.learnkit_spec == {"factory": name, "kwargs": {"n_out": 7, "n_in": n_in}}


@pytest.mark.parametrize("name", VISION_MODELS)
def test_registered_model_learns_a_fixed_batch(name, digit_images):
    torch.manual_seed(0)
    x, y = digit_images[0][:4], digit_images[1][:4]
    model = create_model(name, n_out=10, n_in=1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(3):
        loss = F.cross_entropy(model(x), y)
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert min(losses[1:]) < losses[0]


def test_xresnet_architecture():
    model = xresnet18(n_out=10, n_in=2)
    stem_convs = [m for m in list(model)[:3]]
    assert [(s[0].in_channels, s[0].out_channels) for s in stem_convs] == [(2, 32), (32, 32), (32, 64)]
    blocks = [m for m in model.modules() if isinstance(m, XResBlock)]
    assert len(blocks) == 8
    # the last BN of every residual branch starts at zero: each block starts as act(shortcut(x))
    assert all(float(b.convs[-1][1].weight.detach().abs().sum()) == 0 for b in blocks)
    strided = [b for b in blocks if b.convs[0][0].stride == (2, 2)]
    assert len(strided) == 3
    assert all(
        isinstance(b.shortcut[0], nn.AvgPool2d) and b.shortcut[1][0].kernel_size == (1, 1) for b in strided
    )
    big = xresnet50(n_out=3)
    bottlenecks = [m for m in big.modules() if isinstance(m, XResBlock)]
    assert len(bottlenecks) == 16 and len(bottlenecks[0].convs) == 3
    assert big[-1].in_features == 2048
    assert big(torch.randn(2, 3, 33, 47)).shape == (2, 3)  # odd sizes work (ceil-mode shortcut pooling)


def test_lenet_any_size_from_28():
    model = lenet(n_out=10)
    for size in (28, 64):
        assert model(torch.randn(2, 1, size, size)).shape == (2, 10)


# ---------------------------------------------------------------------------------------------- bodies, heads


@pytest.mark.parametrize(
    "arch", ["resnet18", torchvision.models.resnet18, "mobilenet_v3_small", "efficientnet_b0", "xresnet18"]
)
def test_create_body_cut_gives_feature_maps(arch):
    body = create_body(arch, pretrained=False)
    assert not any(isinstance(m, nn.Linear) for m in body.modules())
    body.train()
    out = body(torch.randn(2, 3, 64, 64))
    assert out.ndim == 4 and out.shape[0] == 2 and out.shape[-1] == 2
    assert num_features_model(body) == out.shape[1]
    assert body.training and all(m.training for m in body.modules())  # the dummy forward restored the mode


def test_create_body_explicit_cut_and_module():
    tv = torchvision.models.resnet18(weights=None)
    assert len(create_body(tv, cut=-3)) == 7
    assert (
        create_body("mobilenet_v3_small", pretrained=False, cut=lambda m: m.features[:4])(
            torch.randn(1, 3, 32, 32)
        ).shape[1]
        == 24
    )
    with pytest.raises(ModelError, match="cut"):
        create_body("resnet18", pretrained=False, cut="layer4")


def test_unknown_arch_suggests_names():
    with pytest.raises(ModelError) as e:
        create_body("resnet343", pretrained=False)
    assert "'resnet34'" in str(e.value) and "Did you mean" in str(e.value)
    with pytest.raises(ModelError, match="xresnet34"):
        create_body("xresnt34", pretrained=False)
    with pytest.raises(ModelError, match="pretrained=False"):
        create_body("xresnet18", pretrained=True)


def test_create_head_layout():
    head = create_head(64, 5)
    assert isinstance(head[0], AdaptiveConcatPool2d)
    linears = [m for m in head if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(128, 512), (512, 5)]
    assert [m.p for m in head if isinstance(m, nn.Dropout)] == [0.25, 0.5]
    head.eval()
    assert head(torch.randn(2, 64, 3, 3)).shape == (2, 5)

    head = create_head(64, 3, lin_ftrs=[32, 16], ps=[0.1, 0.2, 0.3], concat_pool=False, bn_final=True)
    linears = [m for m in head if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(64, 32), (32, 16), (16, 3)]
    assert [m.p for m in head if isinstance(m, nn.Dropout)] == [0.1, 0.2, 0.3]
    assert isinstance(head[-1], nn.BatchNorm1d)
    head = create_head(64, 3, first_bn=False, ps=0.0)
    assert sum(isinstance(m, nn.BatchNorm1d) for m in head) == 1 and not any(
        isinstance(m, nn.Dropout) for m in head
    )
    head = create_head(64, 3, lin_first=True)
    assert isinstance(head[2], nn.Dropout) and isinstance(head[3], nn.Linear)
    assert head(torch.randn(2, 64, 1, 1)).shape == (2, 3)
    with pytest.raises(ModelError, match="dropout"):
        create_head(64, 3, ps=[0.1])


def test_create_vision_model_and_splitter(digit_images):
    x, _ = digit_images
    model = create_vision_model("resnet18", n_out=10, pretrained=False, n_in=1, lin_ftrs=[64])
    assert model(x[:2]).shape == (2, 10)
    early, late, head = vision_splitter(model)  # torchvision ResNets: 3 groups, as fastai splits them
    assert _params_once([early, late, head], model)
    assert len(early) == len(list(model[0][:6].parameters())) and len(late) == len(
        list(model[0][6:].parameters())
    )
    assert len(head) == len(list(model[1].parameters()))
    other = create_vision_model("xresnet18", n_out=10, pretrained=False, n_in=1)
    body, head = vision_splitter(other)
    assert _params_once([body, head], other)
    # the plain-data spec rebuilds the same architecture
    spec = model.learnkit_spec
    rebuilt = resolve_factory(spec["factory"])(**spec["kwargs"])
    rebuilt.load_state_dict(model.state_dict())
    model.eval(), rebuilt.eval()
    torch.testing.assert_close(rebuilt(x[:2]), model(x[:2]))
    with pytest.raises(ModelError, match="Sequential"):
        vision_splitter(nn.Linear(2, 2))


# ---------------------------------------------------------------------------------------------- pretrained


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert Path(torch.hub.get_dir()) == tmp_path / "hub"
    return tmp_path


def _cache_resnet18(torch_home):
    """Random resnet18 weights in the cache under a name carrying their own hash, and a torchvision weights
    enum pointing at them (the real ImageNet file cannot be downloaded in tests)."""
    from torchvision.models._api import Weights, WeightsEnum

    folder = torch_home / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.manual_seed(1)
    sd = torchvision.models.resnet18(weights=None).state_dict()
    sd["bn1.running_mean"] = torch.randn(64)
    tmp = folder / "tmp.pth"
    torch.save(sd, tmp)
    name = f"resnet18-{hashlib.sha256(tmp.read_bytes()).hexdigest()[:8]}.pth"
    tmp.rename(folder / name)
    meta = torchvision.models.ResNet18_Weights.DEFAULT.meta

    class TestWeights(WeightsEnum):
        V1 = Weights(url=f"https://example.invalid/models/{name}", transforms=None, meta=meta)

    return sd, TestWeights.V1


def test_pretrained_loads_cached_torchvision_weights(torch_home):
    assert not pretrained_available("resnet18")
    sd, w = _cache_resnet18(torch_home)
    real = pretrained_weights_file("resnet18")
    assert real == torch_home / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    real.write_bytes(b"")
    assert pretrained_available("resnet18") and pretrained_available(torchvision.models.resnet18)
    body = create_body("resnet18", weights=w)
    torch.testing.assert_close(body[0].weight, sd["conv1.weight"])
    torch.testing.assert_close(body[1].running_mean, sd["bn1.running_mean"])
    torch.testing.assert_close(body[7][1].conv2.weight, sd["layer4.1.conv2.weight"])
    # grey images: the first conv is the sum over RGB of the pretrained kernel; the rest is unchanged
    grey = create_body(torchvision.models.resnet18, weights=w, n_in=1)
    assert grey[0].in_channels == 1
    torch.testing.assert_close(grey[0].weight, sd["conv1.weight"].sum(1, keepdim=True))
    torch.testing.assert_close(grey[4][0].conv1.weight, sd["layer1.0.conv1.weight"])
    # more channels: RGB repeated cyclically and rescaled by 3/n_in
    four = create_body("resnet18", weights=w, n_in=4)
    torch.testing.assert_close(four[0].weight[:, 3], sd["conv1.weight"][:, 0] * 0.75)
    torch.testing.assert_close(four[0].weight[:, :3], sd["conv1.weight"] * 0.75)
    six = create_body("resnet18", weights=w, n_in=6)  # a grey image gives the same response as RGB
    x = torch.rand(1, 1, 32, 32)
    torch.testing.assert_close(six[0](x.expand(-1, 6, -1, -1)), body[0](x.expand(-1, 3, -1, -1)))
    model = create_vision_model("resnet18", n_out=4, weights=w)
    torch.testing.assert_close(model[0][0].weight, sd["conv1.weight"])
    assert model.learnkit_spec["kwargs"]["pretrained"] is False  # rebuilding must not download


def test_pretrained_offline_error_names_file_and_folder(torch_home, monkeypatch):
    def no_network(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    monkeypatch.setattr(external, "_RETRY_WAIT", 0.0)
    with pytest.raises(ModelError) as e:
        create_body("resnet18", pretrained=True)
    msg = str(e.value)
    folder = str(torch_home / "hub" / "checkpoints")
    assert "resnet18-f37072fd.pth" in msg and folder in msg
    assert torchvision.models.ResNet18_Weights.DEFAULT.url in msg
    assert "or pass pretrained=False to train from scratch" in msg
    assert not pretrained_available("resnet18")


def test_corrupt_cached_weights(torch_home):
    file = pretrained_weights_file("resnet18")
    file.parent.mkdir(parents=True)
    file.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="delete it"):
        create_body("resnet18", pretrained=True)


# ---------------------------------------------------------------------------------------------- U-Net


def test_unet_output_matches_input_size():
    torch.manual_seed(0)
    model = create_unet_model("resnet18", n_out=3, img_size=64, pretrained=False)
    assert isinstance(model, DynamicUnet)
    with torch.no_grad():
        for h, w in ((64, 64), (96, 64), (60, 60)):
            assert model(torch.randn(2, 3, h, w)).shape == (2, 3, h, w)
    odd = create_unet_model("resnet18", n_out=2, img_size=(60, 60), pretrained=False, n_in=1, y_range=(0, 1))
    with torch.no_grad():
        out = odd(torch.randn(2, 1, 60, 60))
    assert out.shape == (2, 2, 60, 60) and 0 <= float(out.min()) and float(out.max()) <= 1
    enc, dec = unet_splitter(model)
    assert _params_once([enc, dec], model) and len(enc) == len(list(model.encoder.parameters()))
    # a Sequential encoder needs no hooks: none are left on the model after construction and forwards
    assert sum(len(m._forward_hooks) for m in model.modules()) == 0


def test_unet_options_and_spec():
    model = create_unet_model(
        "resnet18", n_out=4, img_size=64, pretrained=False, blur=True, self_attention=True, bottle=True
    )
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 4, 64, 64)
    no_cross = create_unet_model("simple_cnn", n_out=4, img_size=64, pretrained=False, last_cross=False)
    assert no_cross.cross is None and no_cross(torch.randn(2, 3, 64, 64)).shape == (2, 4, 64, 64)
    spec = no_cross.learnkit_spec
    rebuilt = resolve_factory(spec["factory"])(**spec["kwargs"])
    rebuilt.load_state_dict(no_cross.state_dict())


class _BranchyEncoder(nn.Module):
    """An encoder whose forward is not a plain Sequential (the U-Net must hook it)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.down1 = nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU())
        self.down2 = nn.Sequential(nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU())

    def forward(self, x):
        x = self.stem(x)
        return self.down2(self.down1(x) + 0.0)


def test_unet_hooks_do_not_accumulate(digit_images):
    x, _ = digit_images
    model = create_unet_model(_BranchyEncoder(), n_out=2, img_size=32, pretrained=False, n_in=1)
    hooks = sum(len(m._forward_hooks) for m in model.modules())
    assert hooks == 2  # stem (1/2) and down1 (1/4) are the skip connections
    for _ in range(3):
        assert model(x[:2]).shape == (2, 2, 32, 32)
        assert model._hook_store == []  # nothing kept between forwards
    assert sum(len(m._forward_hooks) for m in model.modules()) == hooks
    model.remove_hooks()
    assert sum(len(m._forward_hooks) for m in model.modules()) == 0
    with pytest.raises(ModelError, match="remove_hooks"):
        model(x[:2])


def test_unet_learns_digit_masks(digit_images):
    """Segment ink vs background on real digits: the loss goes down on a fixed batch."""
    torch.manual_seed(0)
    x = digit_images[0][:4]
    mask = (x[:, 0] > 0.3).long()
    model = create_unet_model("simple_cnn", n_out=2, img_size=32, pretrained=False, n_in=1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(4):
        loss = F.cross_entropy(model(x), mask)
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert losses[-1] < losses[0]
