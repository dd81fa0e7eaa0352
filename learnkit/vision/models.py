"""Vision models: from-scratch CNNs (simple_cnn, lenet, xresnet), backbone bodies from torchvision/timm,
classifier heads, transfer-learning models and a dynamic U-Net.

Everything here returns plain ``nn.Module``s. A *body* is a feature extractor ending in a 4D feature map
``(B, C, h, w)``; a *head* pools and classifies it. ``create_vision_model(arch, n_out)`` is
``nn.Sequential(body, head)``, and :func:`vision_splitter` gives its two parameter groups (for
freezing the body and for discriminative learning rates).

Example::

    from learnkit.vision.models import create_vision_model, vision_splitter
    model = create_vision_model("resnet34", n_out=37)          # ImageNet weights (downloaded once)
    body_params, head_params = vision_splitter(model)
    scratch = create_vision_model("xresnet18", n_out=10, pretrained=False, n_in=1)
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..exceptions import ModelError
from ..models.pretrained import load_pretrained_weights, pretrained_file
from ..models.registry import (
    factory_path,
    is_model,
    is_plain_data,
    list_models,
    model_entrypoint,
    register_model,
    resolve_factory,
)
from ..utils import suggest

__all__ = [
    "imagenet_stats",
    "simple_cnn",
    "lenet",
    "XResNet",
    "XResBlock",
    "xresnet18",
    "xresnet34",
    "xresnet50",
    "xresnet101",
    "xresnet152",
    "xresnext18",
    "xresnext34",
    "xresnext50",
    "xresnext101",
    "xse_resnet18",
    "xse_resnet34",
    "xse_resnet50",
    "xse_resnet101",
    "xse_resnet152",
    "xse_resnext18",
    "xse_resnext34",
    "xse_resnext50",
    "xse_resnext101",
    "NormType",
    "ConvLayer",
    "SEModule",
    "AdaptiveConcatPool2d",
    "create_head",
    "create_body",
    "pretrained_available",
    "pretrained_weights_file",
    "num_features_model",
    "create_vision_model",
    "vision_splitter",
    "PixelShuffleICNR",
    "SelfAttention",
    "UnetBlock",
    "DynamicUnet",
    "create_unet_model",
    "unet_splitter",
]

imagenet_stats = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
"""Per-channel (mean, std) of ImageNet, the normalisation pretrained torchvision/timm weights expect."""


# ----------------------------------------------------------------------------------------------------------
# Small building blocks
# ----------------------------------------------------------------------------------------------------------


class NormType:
    """fastai's names for the normalisation of a :class:`ConvLayer` (``norm_type=``); ``None`` means none.

    ``Batch``: BatchNorm after the conv; ``BatchZero``: the same with gamma 0 (a residual branch that starts
    as zero); ``Instance`` / ``InstanceZero``: InstanceNorm (affine); ``Weight``: weight normalisation of the
    conv (``torch.nn.utils.parametrizations.weight_norm``); ``Spectral``: spectral normalisation.

    >>> NormType.Spectral
    'spectral'
    """

    Batch = "batch"
    BatchZero = "batch_zero"
    Instance = "instance"
    InstanceZero = "instance_zero"
    Weight = "weight"
    Spectral = "spectral"


_NORM_TYPES = (
    NormType.Batch,
    NormType.BatchZero,
    NormType.Instance,
    NormType.InstanceZero,
    NormType.Weight,
    NormType.Spectral,
)


def _norm_type(norm_type) -> str | None:
    """Validate ``norm_type`` (a :class:`NormType` value, its name such as ``'Batch'``, or None)."""
    if norm_type is None:
        return None
    name = getattr(norm_type, "name", norm_type)  # also an Enum member spelled like fastai's
    if isinstance(name, str):
        for v in _NORM_TYPES:
            if name.lower().replace("_", "") == v.replace("_", ""):
                return v
    raise ModelError(
        f"Expected norm_type to be None or one of NormType.Batch, BatchZero, Instance, InstanceZero, Weight, "
        f"Spectral. Received: norm_type={norm_type!r}. Fix: e.g. norm_type=NormType.Weight."
    )


def _act_class(act_cls) -> type:
    """An activation class from a class or a torch.nn class name (``'ReLU'``, ``'Mish'``...)."""
    if isinstance(act_cls, str):
        cls = getattr(nn, act_cls, None)
        if isinstance(cls, type) and issubclass(cls, nn.Module):
            return cls
        raise ModelError(
            f"Expected act_cls to be an nn.Module class or the name of a torch.nn activation. Received: "
            f"act_cls={act_cls!r}. Fix: e.g. act_cls=nn.LeakyReLU or act_cls='Mish'."
        )
    if callable(act_cls):
        return act_cls
    raise ModelError(
        f"Expected act_cls to be an activation class such as nn.ReLU. Received: act_cls={act_cls!r}. "
        "Fix: pass the class itself (act_cls=nn.Mish), not an instance."
    )


def _act_name(act_cls) -> str | None:
    """The torch.nn name of an activation class (plain data for export), or None for other classes."""
    if isinstance(act_cls, str):
        _act_class(act_cls)
        return act_cls
    name = getattr(act_cls, "__name__", None)
    return name if isinstance(name, str) and getattr(nn, name, None) is act_cls else None


class ConvLayer(nn.Sequential):
    """conv -> optional norm (:class:`NormType`) -> optional activation, as an ``nn.Sequential``.

    The conv has a bias only when there is no Batch/Instance norm after it. The conv weight starts with
    kaiming-normal init; ``Weight``/``Spectral`` reparametrise the conv itself (no separate norm layer).

    >>> ConvLayer(3, 8, stride=2, act_cls=nn.LeakyReLU)(torch.randn(1, 3, 16, 16)).shape
    torch.Size([1, 8, 8, 8])
    """

    def __init__(
        self,
        ni: int,
        nf: int,
        ks: int = 3,
        stride: int = 1,
        act_cls=nn.ReLU,
        norm_type=NormType.Batch,
        groups: int = 1,
        act: bool = True,
    ):
        norm = _norm_type(norm_type)
        has_norm_layer = norm in (
            NormType.Batch,
            NormType.BatchZero,
            NormType.Instance,
            NormType.InstanceZero,
        )
        conv = nn.Conv2d(ni, nf, ks, stride=stride, padding=ks // 2, groups=groups, bias=not has_norm_layer)
        nn.init.kaiming_normal_(conv.weight)
        if conv.bias is not None:
            nn.init.zeros_(conv.bias)
        if norm == NormType.Weight:
            conv = nn.utils.parametrizations.weight_norm(conv)
        elif norm == NormType.Spectral:
            conv = nn.utils.parametrizations.spectral_norm(conv)
        layers: list[nn.Module] = [conv]
        if norm in (NormType.Batch, NormType.BatchZero):
            bn = nn.BatchNorm2d(nf)
            nn.init.constant_(bn.weight, 0.0 if norm == NormType.BatchZero else 1.0)
            layers.append(bn)
        elif norm in (NormType.Instance, NormType.InstanceZero):
            inn = nn.InstanceNorm2d(nf, affine=True)
            nn.init.constant_(inn.weight, 0.0 if norm == NormType.InstanceZero else 1.0)
            layers.append(inn)
        if act:
            layers.append(_act_class(act_cls)())
        super().__init__(*layers)


def _conv_bn(ni, nf, ks=3, stride=1, act_cls=nn.ReLU, act=True, zero_bn=False, groups=1) -> nn.Sequential:
    """conv (no bias) -> BatchNorm (gamma 0 when ``zero_bn``) -> optional activation."""
    norm = NormType.BatchZero if zero_bn else NormType.Batch
    return ConvLayer(ni, nf, ks, stride=stride, act_cls=act_cls, norm_type=norm, groups=groups, act=act)


def _init_weights(module: nn.Module, init=nn.init.kaiming_normal_) -> None:
    """``init`` on conv/linear weights (zero biases); BatchNorm layers keep their own (possibly zero) gamma."""
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
            if init is not None:
                init(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class AdaptiveConcatPool2d(nn.Module):
    """Concatenation of adaptive average and adaptive max pooling: ``(B, C, h, w) -> (B, 2C, size, size)``.

    Example: ``AdaptiveConcatPool2d()(torch.randn(2, 8, 5, 5)).shape`` -> ``(2, 16, 1, 1)``.
    """

    def __init__(self, size: int | tuple[int, int] = 1):
        super().__init__()
        self.size = size
        self.avg = nn.AdaptiveAvgPool2d(size)
        self.max = nn.AdaptiveMaxPool2d(size)

    def forward(self, x):
        return torch.cat([self.max(x), self.avg(x)], dim=1)


# ----------------------------------------------------------------------------------------------------------
# From-scratch models
# ----------------------------------------------------------------------------------------------------------


@register_model(tags=("vision",))
def simple_cnn(n_out: int = 10, n_in: int = 3, filters: Sequence[int] = (16, 32, 64)) -> nn.Sequential:
    """A small CNN: one stride-2 conv-BN-ReLU block per entry of ``filters``, then average pool + linear.

    Example: ``simple_cnn(n_out=10, n_in=1)(torch.randn(2, 1, 28, 28)).shape`` -> ``(2, 10)``.
    """
    filters = [int(f) for f in filters]
    if not filters:
        raise ModelError(
            "Expected at least one filter size. Received: filters=(). Fix: e.g. filters=(16, 32)."
        )
    chans = [n_in, *filters]
    layers = [_conv_bn(a, b, 3, stride=2) for a, b in zip(chans[:-1], chans[1:])]
    model = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(chans[-1], n_out))
    _init_weights(model)
    return model


@register_model(tags=("vision",))
def lenet(n_out: int = 10, n_in: int = 1) -> nn.Sequential:
    """The LeNet-5 layout for teaching (conv5-pool-conv5-pool-fc120-fc84-fc), with ReLU and max pooling.

    An adaptive pool to 5x5 before the classifier makes it work for any input of 28x28 or more
    (MNIST-sized images and larger). Example: ``lenet()(torch.randn(2, 1, 28, 28)).shape`` -> ``(2, 10)``.
    """
    return nn.Sequential(
        nn.Conv2d(n_in, 6, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.AdaptiveAvgPool2d(5),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120),
        nn.ReLU(),
        nn.Linear(120, 84),
        nn.ReLU(),
        nn.Linear(84, n_out),
    )


class SEModule(nn.Module):
    """Squeeze-and-excitation (Hu et al. 2018): global average pool -> 1x1 conv to ``ch // reduction`` ->
    activation -> 1x1 conv back to ``ch`` -> sigmoid, a per-channel gate multiplied into the input.

    >>> SEModule(64)(torch.randn(2, 64, 8, 8)).shape
    torch.Size([2, 64, 8, 8])
    """

    def __init__(self, ch: int, reduction: int = 16, act_cls=nn.ReLU):
        super().__init__()
        nh = max(ch // int(reduction), 1)
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(ch, nh, 1),
            _act_class(act_cls)(),
            nn.Conv2d(nh, ch, 1),
            nn.Sigmoid(),
        )

    def forward(self, x):
        return x * self.gate(x)


class XResBlock(nn.Module):
    """Residual block of an XResNet (basic when ``expansion == 1``, bottleneck when 4).

    The last BatchNorm of the residual branch starts with gamma 0, so each block starts as the identity.
    The shortcut follows ResNet-D: average pool (when strided) then a 1x1 conv (when channels change).
    ``groups`` > 1 makes the 3x3 conv grouped (ResNeXt); ``reduction`` adds a :class:`SEModule` on the
    residual branch (SE-ResNet).
    """

    def __init__(
        self,
        expansion: int,
        ni: int,
        nh: int,
        stride: int = 1,
        act_cls=nn.ReLU,
        groups: int = 1,
        reduction: int | None = None,
    ):
        super().__init__()
        nf = nh * expansion
        if expansion == 1:
            convs = [
                _conv_bn(ni, nh, 3, stride=stride, act_cls=act_cls, groups=groups),
                _conv_bn(nh, nf, 3, act=False, zero_bn=True),
            ]
        else:
            convs = [
                _conv_bn(ni, nh, 1, act_cls=act_cls),
                _conv_bn(nh, nh, 3, stride=stride, act_cls=act_cls, groups=groups),
                _conv_bn(nh, nf, 1, act=False, zero_bn=True),
            ]
        self.convs = nn.Sequential(*convs)
        self.se = SEModule(nf, reduction, act_cls=act_cls) if reduction else None
        short = []
        if stride != 1:
            short.append(nn.AvgPool2d(stride, ceil_mode=True))
        if ni != nf:
            short.append(_conv_bn(ni, nf, 1, act=False))
        self.shortcut = nn.Sequential(*short)  # empty Sequential is the identity
        self.act = _act_class(act_cls)()

    def forward(self, x):
        y = self.convs(x)
        if self.se is not None:
            y = self.se(y)
        return self.act(y + self.shortcut(x))


def _n_in(n_in: int, c_in: int | None) -> int:
    """fastai spells the input channels ``c_in``; learnkit's ``n_in`` stays as the same argument."""
    if c_in is None:
        return n_in
    if n_in != 3 and n_in != c_in:
        raise ModelError(
            f"Expected one number of input channels. Received: n_in={n_in}, c_in={c_in}. "
            "Fix: pass only c_in= (fastai's name) or only n_in=."
        )
    return int(c_in)


class XResNet(nn.Sequential):
    """ResNet with the "Bag of Tricks" (He et al. 2019) changes: a 3-conv stem (c_in->32->32->64),
    ResNet-D shortcuts, zero-initialised last BatchNorm in each block, kaiming init.

    It is an ``nn.Sequential``: stem, max pool, four stages, then average pool, flatten, dropout, linear,
    so ``model[:-4]`` is the feature body. ``groups=32`` gives the ResNeXt variants, ``reduction=16`` the
    squeeze-excitation ones. ``c_in`` is fastai's name for the input channels (``n_in`` works too).
    Prefer the factories :func:`xresnet18` ... :func:`xse_resnext101`.

    Example: ``XResNet(1, [1, 1, 1, 1], n_out=4, c_in=1)(torch.randn(2, 1, 32, 32)).shape`` -> ``(2, 4)``.
    """

    def __init__(
        self,
        expansion: int,
        layers: Sequence[int],
        n_out: int = 1000,
        n_in: int = 3,
        p: float = 0.0,
        act_cls=nn.ReLU,
        groups: int = 1,
        reduction: int | None = None,
        c_in: int | None = None,
    ):
        n_in = _n_in(n_in, c_in)
        stem = [
            _conv_bn(n_in, 32, 3, stride=2, act_cls=act_cls),
            _conv_bn(32, 32, 3, act_cls=act_cls),
            _conv_bn(32, 64, 3, act_cls=act_cls),
            nn.MaxPool2d(3, stride=2, padding=1),
        ]
        stages, ni = [], 64
        for i, (nh, n_blocks) in enumerate(zip((64, 128, 256, 512), layers)):
            blocks = []
            for j in range(n_blocks):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(
                    XResBlock(
                        expansion, ni, nh, stride=stride, act_cls=act_cls, groups=groups, reduction=reduction
                    )
                )
                ni = nh * expansion
            stages.append(nn.Sequential(*blocks))
        head = [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(p), nn.Linear(ni, n_out)]
        super().__init__(*stem, *stages, *head)
        _init_weights(self)


_LAYERS = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 6, 3], 101: [3, 4, 23, 3], 152: [3, 8, 36, 3]}


def _xres(depth, n_out, n_in, p, act_cls, c_in, groups=1, reduction=None) -> XResNet:
    expansion = 1 if depth < 50 else 4
    return XResNet(
        expansion, _LAYERS[depth], n_out, n_in, p, act_cls, groups=groups, reduction=reduction, c_in=c_in
    )


@register_model(tags=("vision",))
def xresnet18(n_out: int = 1000, n_in: int = 3, p: float = 0.0, act_cls=nn.ReLU, c_in=None) -> XResNet:
    """XResNet-18 (basic blocks [2, 2, 2, 2]), trained from scratch.

    Example: ``xresnet18(n_out=10, c_in=1)(torch.randn(2, 1, 32, 32)).shape`` -> ``(2, 10)``.
    """
    return _xres(18, n_out, n_in, p, act_cls, c_in)


@register_model(tags=("vision",))
def xresnet34(n_out: int = 1000, n_in: int = 3, p: float = 0.0, act_cls=nn.ReLU, c_in=None) -> XResNet:
    """XResNet-34 (basic blocks [3, 4, 6, 3]), trained from scratch. Example: ``xresnet34(n_out=10)``."""
    return _xres(34, n_out, n_in, p, act_cls, c_in)


@register_model(tags=("vision",))
def xresnet50(n_out: int = 1000, n_in: int = 3, p: float = 0.0, act_cls=nn.ReLU, c_in=None) -> XResNet:
    """XResNet-50 (bottleneck blocks [3, 4, 6, 3], expansion 4), trained from scratch.

    Example: ``xresnet50(n_out=10)(torch.randn(2, 3, 64, 64)).shape`` -> ``(2, 10)``.
    """
    return _xres(50, n_out, n_in, p, act_cls, c_in)


@register_model(tags=("vision",))
def xresnet101(n_out: int = 1000, n_in: int = 3, p: float = 0.0, act_cls=nn.ReLU, c_in=None) -> XResNet:
    """XResNet-101 (bottleneck blocks [3, 4, 23, 3], expansion 4), trained from scratch.

    Example: ``xresnet101(n_out=10, n_in=1)(torch.randn(2, 1, 64, 64)).shape`` -> ``(2, 10)``.
    """
    return _xres(101, n_out, n_in, p, act_cls, c_in)


@register_model(tags=("vision",))
def xresnet152(n_out: int = 1000, n_in: int = 3, p: float = 0.0, act_cls=nn.ReLU, c_in=None) -> XResNet:
    """XResNet-152 (bottleneck blocks [3, 8, 36, 3], expansion 4). Example: ``xresnet152(n_out=10)``."""
    return _xres(152, n_out, n_in, p, act_cls, c_in)


@register_model(tags=("vision",))
def xresnext18(n_out: int = 1000, n_in: int = 3, p: float = 0.0, act_cls=nn.ReLU, c_in=None) -> XResNet:
    """XResNeXt-18: XResNet-18 with 32-group 3x3 convs. Example: ``xresnext18(n_out=10, c_in=1)``."""
    return _xres(18, n_out, n_in, p, act_cls, c_in, groups=32)


@register_model(tags=("vision",))
def xresnext34(n_out: int = 1000, n_in: int = 3, p: float = 0.0, act_cls=nn.ReLU, c_in=None) -> XResNet:
    """XResNeXt-34: XResNet-34 with 32-group 3x3 convs. Example: ``xresnext34(n_out=10)``."""
    return _xres(34, n_out, n_in, p, act_cls, c_in, groups=32)


@register_model(tags=("vision",))
def xresnext50(n_out: int = 1000, n_in: int = 3, p: float = 0.0, act_cls=nn.ReLU, c_in=None) -> XResNet:
    """XResNeXt-50: bottleneck XResNet-50 with 32-group 3x3 convs. Example: ``xresnext50(n_out=10)``."""
    return _xres(50, n_out, n_in, p, act_cls, c_in, groups=32)


@register_model(tags=("vision",))
def xresnext101(n_out: int = 1000, n_in: int = 3, p: float = 0.0, act_cls=nn.ReLU, c_in=None) -> XResNet:
    """XResNeXt-101: bottleneck XResNet-101 with 32-group 3x3 convs. Example: ``xresnext101(n_out=10)``."""
    return _xres(101, n_out, n_in, p, act_cls, c_in, groups=32)


@register_model(tags=("vision",))
def xse_resnet18(n_out: int = 1000, n_in: int = 3, p: float = 0.0, act_cls=nn.ReLU, c_in=None) -> XResNet:
    """SE-XResNet-18: XResNet-18 with a squeeze-excitation gate (reduction 16) in every block.

    Example: ``xse_resnet18(n_out=10, c_in=1)(torch.randn(2, 1, 32, 32)).shape`` -> ``(2, 10)``.
    """
    return _xres(18, n_out, n_in, p, act_cls, c_in, reduction=16)


@register_model(tags=("vision",))
def xse_resnet34(n_out: int = 1000, n_in: int = 3, p: float = 0.0, act_cls=nn.ReLU, c_in=None) -> XResNet:
    """SE-XResNet-34 (squeeze-excitation, reduction 16). Example: ``xse_resnet34(n_out=10)``."""
    return _xres(34, n_out, n_in, p, act_cls, c_in, reduction=16)


@register_model(tags=("vision",))
def xse_resnet50(n_out: int = 1000, n_in: int = 3, p: float = 0.0, act_cls=nn.ReLU, c_in=None) -> XResNet:
    """SE-XResNet-50 (bottleneck, squeeze-excitation). Example: ``xse_resnet50(n_out=10)``."""
    return _xres(50, n_out, n_in, p, act_cls, c_in, reduction=16)


@register_model(tags=("vision",))
def xse_resnet101(n_out: int = 1000, n_in: int = 3, p: float = 0.0, act_cls=nn.ReLU, c_in=None) -> XResNet:
    """SE-XResNet-101 (bottleneck, squeeze-excitation). Example: ``xse_resnet101(n_out=10)``."""
    return _xres(101, n_out, n_in, p, act_cls, c_in, reduction=16)


@register_model(tags=("vision",))
def xse_resnet152(n_out: int = 1000, n_in: int = 3, p: float = 0.0, act_cls=nn.ReLU, c_in=None) -> XResNet:
    """SE-XResNet-152 (bottleneck, squeeze-excitation). Example: ``xse_resnet152(n_out=10)``."""
    return _xres(152, n_out, n_in, p, act_cls, c_in, reduction=16)


@register_model(tags=("vision",))
def xse_resnext18(n_out: int = 1000, n_in: int = 3, p: float = 0.0, act_cls=nn.ReLU, c_in=None) -> XResNet:
    """SE-XResNeXt-18: 32-group 3x3 convs and squeeze-excitation. Example: ``xse_resnext18(n_out=10)``."""
    return _xres(18, n_out, n_in, p, act_cls, c_in, groups=32, reduction=16)


@register_model(tags=("vision",))
def xse_resnext34(n_out: int = 1000, n_in: int = 3, p: float = 0.0, act_cls=nn.ReLU, c_in=None) -> XResNet:
    """SE-XResNeXt-34: 32-group 3x3 convs and squeeze-excitation. Example: ``xse_resnext34(n_out=10)``."""
    return _xres(34, n_out, n_in, p, act_cls, c_in, groups=32, reduction=16)


@register_model(tags=("vision",))
def xse_resnext50(n_out: int = 1000, n_in: int = 3, p: float = 0.0, act_cls=nn.ReLU, c_in=None) -> XResNet:
    """SE-XResNeXt-50: bottleneck, 32 groups, squeeze-excitation. Example: ``xse_resnext50(n_out=10)``."""
    return _xres(50, n_out, n_in, p, act_cls, c_in, groups=32, reduction=16)


@register_model(tags=("vision",))
def xse_resnext101(n_out: int = 1000, n_in: int = 3, p: float = 0.0, act_cls=nn.ReLU, c_in=None) -> XResNet:
    """SE-XResNeXt-101: bottleneck, 32 groups, squeeze-excitation. Example: ``xse_resnext101(n_out=10)``."""
    return _xres(101, n_out, n_in, p, act_cls, c_in, groups=32, reduction=16)


# ----------------------------------------------------------------------------------------------------------
# Heads
# ----------------------------------------------------------------------------------------------------------


def create_head(
    nf: int,
    n_out: int,
    lin_ftrs: Sequence[int] | None = None,
    ps: float | Sequence[float] = 0.5,
    concat_pool: bool = True,
    first_bn: bool = True,
    bn_final: bool = False,
    lin_first: bool = False,
    pool: bool = True,
) -> nn.Sequential:
    """A classifier head for a body with ``nf`` output channels.

    pool (concat avg+max when ``concat_pool``, so ``2*nf`` features) -> flatten -> for each linear layer
    ``[BatchNorm -> Dropout -> Linear -> ReLU]`` (no ReLU after the last) -> optional final BatchNorm.
    ``lin_ftrs``: hidden sizes (default ``[512]``). ``ps``: dropout per linear layer; a single number
    ``p`` means ``p/2`` before the hidden layers and ``p`` before the last. ``first_bn=False`` skips the
    BatchNorm on the pooled features. ``lin_first=True`` puts each hidden layer's BatchNorm/Dropout
    after its Linear+ReLU instead (the pooled features then go straight into the first Linear).
    ``pool=False`` leaves out the pooling and flattening (for bodies that already give flat features).

    Example: ``create_head(512, 10)(torch.randn(2, 512, 7, 7)).shape`` -> ``(2, 10)``.
    """
    lin_ftrs = [512] if lin_ftrs is None else [int(x) for x in lin_ftrs]
    sizes = [nf * 2 if (concat_pool and pool) else nf, *lin_ftrs, n_out]
    n_lin = len(sizes) - 1
    if isinstance(ps, (int, float)):
        ps_list = [ps / 2] * (n_lin - 1) + [ps]
    else:
        ps_list = [float(p) for p in ps]
        if len(ps_list) != n_lin:
            raise ModelError(
                f"Expected one dropout probability per linear layer ({n_lin}). Received: ps={list(ps)}. "
                f"Fix: pass a single number or a list of {n_lin} numbers."
            )
    layers: list[nn.Module] = (
        [AdaptiveConcatPool2d() if concat_pool else nn.AdaptiveAvgPool2d(1), nn.Flatten()] if pool else []
    )
    if lin_first:
        if ps_list[0] > 0:
            layers.append(nn.Dropout(ps_list[0]))
        for i, (ni, no) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(ni, no))
            if i < n_lin - 1:
                layers += [nn.ReLU(inplace=True), nn.BatchNorm1d(no)]
                if ps_list[i + 1] > 0:
                    layers.append(nn.Dropout(ps_list[i + 1]))
    else:
        for i, (ni, no, p) in enumerate(zip(sizes[:-1], sizes[1:], ps_list)):
            if i > 0 or first_bn:
                layers.append(nn.BatchNorm1d(ni))
            if p > 0:
                layers.append(nn.Dropout(p))
            layers.append(nn.Linear(ni, no))
            if i < n_lin - 1:
                layers.append(nn.ReLU(inplace=True))
    if bn_final:
        layers.append(nn.BatchNorm1d(n_out, momentum=0.01))
    return nn.Sequential(*layers)


# ----------------------------------------------------------------------------------------------------------
# Resolving an arch: learnkit registry / torchvision / timm / callable / module
# ----------------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _tv_names() -> tuple[str, ...]:
    import torchvision.models as tvm

    return tuple(tvm.list_models(module=tvm))


def _timm():
    try:
        import timm
    except ImportError:
        return None
    return timm


def _resolve_arch(arch):
    """-> (kind, obj, name); kind in 'module', 'learnkit', 'torchvision', 'timm', 'callable'."""
    if isinstance(arch, nn.Module):
        return "module", arch, type(arch).__name__
    if isinstance(arch, str):
        if ":" in arch:
            kind, obj, _ = _resolve_arch(resolve_factory(arch))
            return kind, obj, arch
        if is_model(arch):
            return "learnkit", model_entrypoint(arch), arch
        if arch in _tv_names():
            import torchvision.models as tvm

            return "torchvision", tvm.get_model_builder(arch), arch
        timm = _timm()
        if timm is not None and timm.is_model(arch):
            return "timm", None, arch
        choices = list(_tv_names()) + list_models()
        raise ModelError(
            f"Expected a known architecture name. Received: arch={arch!r}.{suggest(arch, choices)} "
            "Fix: use a torchvision classification model name (torchvision.models.list_models()), a learnkit "
            "model name (learnkit.models.list_models()), a timm name (pip install timm), or pass a builder "
            "function or an nn.Module."
        )
    if callable(arch):
        for key in list_models():
            if model_entrypoint(key) is arch:
                return "learnkit", arch, key
        name = getattr(arch, "__name__", None)
        if name in _tv_names():
            import torchvision.models as tvm

            if tvm.get_model_builder(name) is arch:
                return "torchvision", arch, name
        return "callable", arch, name or repr(arch)
    raise ModelError(
        f"Expected an architecture: a model name, a builder function or an nn.Module. Received: "
        f"arch={arch!r}. Fix: e.g. arch='resnet34' or arch=torchvision.models.resnet34."
    )


def _accepts(fn, param: str) -> bool:
    try:
        return param in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _tv_default_weights(builder):
    import torchvision.models as tvm

    try:
        return tvm.get_model_weights(builder).DEFAULT
    except Exception:
        return None


def _weights_cache_file(weights) -> Path:
    return pretrained_file(weights.url)


def pretrained_weights_file(arch) -> Path | None:
    """Where torchvision caches the default pretrained weights of ``arch``:
    ``torch.hub.get_dir()/checkpoints/<file>`` (i.e. ``$TORCH_HOME/hub/checkpoints``); ``None`` when
    ``arch`` has no downloadable torchvision weights. Nothing is downloaded.

    Example: ``pretrained_weights_file('resnet18').name`` -> ``'resnet18-f37072fd.pth'``.
    """
    kind, obj, _ = _resolve_arch(arch)
    if kind != "torchvision":
        return None
    weights = _tv_default_weights(obj)
    return None if weights is None else _weights_cache_file(weights)


def pretrained_available(arch) -> bool:
    """Whether the default pretrained weights of ``arch`` are already in the local cache (no network).

    True only for torchvision archs whose weights file is in ``$TORCH_HOME/hub/checkpoints``; learnkit's
    from-scratch models and timm models (cached by Hugging Face, not checked) give False.

    Example: ``create_vision_model('resnet18', 10, pretrained=pretrained_available('resnet18'))``.
    """
    file = pretrained_weights_file(arch)
    return file is not None and file.is_file()


def _tv_weights_enum(weights, builder, name: str):
    """``weights`` as a torchvision ``WeightsEnum`` member: a member, a name like ``'IMAGENET1K_V1'`` or
    ``'DEFAULT'``, or ``True`` for the default."""
    import torchvision.models as tvm

    if isinstance(weights, tvm.WeightsEnum):
        return weights
    enum = tvm.get_model_weights(builder) if builder is not None else None
    if weights is True or weights == "DEFAULT":
        member = None if enum is None else enum.DEFAULT
    elif isinstance(weights, str) and enum is not None:
        member = getattr(enum, weights, None) or getattr(enum, weights.split(".")[-1], None)
    else:
        member = None
    if member is None:
        choices = [] if enum is None else [m.name for m in enum]
        raise ModelError(
            f"Expected torchvision weights for {name!r}: a weights enum member (e.g. "
            f"torchvision.models.ResNet18_Weights.IMAGENET1K_V1), one of {choices + ['DEFAULT']}, or None. "
            f"Received: weights={weights!r}. Fix: pass one of those."
        )
    return member


def _build_torchvision(builder, name: str, pretrained: bool, weights=None) -> nn.Module:
    """The torchvision model with its weights loaded by learnkit (``weights_only=True``, hash checked),
    never through torchvision's own loader, which unpickles arbitrary objects."""
    if weights is None and not pretrained:
        return builder(weights=None)
    if weights is None:
        weights = _tv_default_weights(builder)
        if weights is None:
            raise ModelError(
                f"Expected an arch with pretrained torchvision weights. Received: arch={name!r}, pretrained=True. "
                "Fix: pass pretrained=False."
            )
    weights = _tv_weights_enum(weights, builder, name)
    kwargs = {}
    categories = weights.meta.get("categories")
    if categories:
        kwargs["num_classes"] = len(categories)
    if name in ("inception_v3", "googlenet"):  # what torchvision's builders set when given weights
        kwargs.update(transform_input=True, aux_logits=True, init_weights=False)
    model = builder(weights=None, **kwargs)
    load_pretrained_weights(model, weights.url)
    if name in ("inception_v3", "googlenet"):
        model.aux_logits = False
        if name == "inception_v3":
            model.AuxLogits = None
        else:
            model.aux1 = model.aux2 = None
    return model


def _instantiate(kind: str, obj, name: str, pretrained: bool, n_in: int, weights=None) -> nn.Module:
    if kind == "module":
        return obj
    if kind == "torchvision":
        return _build_torchvision(obj, name, pretrained, weights)
    if weights is not None:
        raise ModelError(
            f"Expected weights= only with a torchvision arch. Received: arch={name!r}, weights={weights!r}. "
            "Fix: use a torchvision arch such as 'resnet34', or pass pretrained=True/False instead."
        )
    if kind == "learnkit":
        if pretrained and not _accepts(obj, "pretrained"):
            raise ModelError(
                f"Expected an arch with pretrained weights. Received: arch={name!r}, pretrained=True, but "
                f"{name!r} is a from-scratch learnkit model. Fix: pass pretrained=False, or use a torchvision "
                "arch such as 'resnet34' for transfer learning."
            )
        kwargs = {"pretrained": True} if pretrained else {}
        if _accepts(obj, "n_in"):
            kwargs["n_in"] = n_in
        return obj(**kwargs)
    if kind == "timm":
        timm = _timm()
        try:
            return timm.create_model(
                name, pretrained=pretrained, num_classes=0, global_pool="", in_chans=n_in
            )
        except Exception as e:
            if not pretrained:
                raise
            raise ModelError(
                f"Expected the pretrained timm weights for {name!r} to load. Received: {type(e).__name__}: "
                f"{str(e)[:200]}. Fix: connect to the internet once (timm caches the weights in the Hugging "
                "Face cache, $HF_HOME), or pass pretrained=False to train from scratch."
            ) from e
    # a plain callable returning a model
    if _accepts(obj, "weights"):
        model = obj(weights="DEFAULT" if pretrained else None)
    elif _accepts(obj, "pretrained"):
        model = obj(pretrained=pretrained)
    elif pretrained:
        raise ModelError(
            f"Expected a builder that can load pretrained weights (a 'pretrained' or 'weights' argument). "
            f"Received: arch={name!r}, pretrained=True. Fix: pass pretrained=False, or load the weights "
            "yourself and pass the nn.Module as arch."
        )
    else:
        model = obj()
    if not isinstance(model, nn.Module):
        raise ModelError(
            f"Expected the arch builder to return an nn.Module. Received: {type(model).__name__} from "
            f"arch={name!r}. Fix: pass a function that returns the model."
        )
    return model


# ----------------------------------------------------------------------------------------------------------
# Cutting a model into a body
# ----------------------------------------------------------------------------------------------------------

_FEATURES_FAMILIES = (
    "VGG",
    "AlexNet",
    "EfficientNet",
    "MobileNetV2",
    "MobileNetV3",
    "ConvNeXt",
    "SqueezeNet",
)
_HEAD_TYPES = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, AdaptiveConcatPool2d, nn.Flatten, nn.Linear)


def _has(module: nn.Module, types) -> bool:
    return any(isinstance(m, types) for m in module.modules())


def _generic_cut(model: nn.Module) -> nn.Module:
    """Drop the trailing head: the children after the last conv, from the first pool/flatten/linear on."""
    children = []
    for cname, child in model.named_children():
        if cname.lower().startswith(
            "aux"
        ):  # auxiliary classifiers (GoogLeNet, Inception) are not on the path
            continue
        children.extend(child if isinstance(child, nn.ModuleList) else [child])
    last_conv = max(
        (i for i, c in enumerate(children) if _has(c, nn.modules.conv._ConvNd)),
        default=-1,
    )
    cut_at = None
    for i in range(len(children) - 1, last_conv, -1):
        if _has(children[i], _HEAD_TYPES):
            cut_at = i
    if cut_at is None:
        return model  # nothing that looks like a head: the model is already a body
    if cut_at == 0:
        raise ModelError(
            f"Expected a model with convolutional feature layers before its head. Received: "
            f"{type(model).__name__} with no conv layer. Fix: pass cut=<int or function> to create_body."
        )
    return nn.Sequential(*children[:cut_at])


def _default_cut(model: nn.Module, kind: str) -> nn.Module:
    if kind == "timm":
        return model  # created with num_classes=0, global_pool='': already a body
    cls = type(model).__name__
    if type(model).__module__.startswith("torchvision.models"):
        if cls in ("ResNet", "RegNet"):
            return nn.Sequential(*list(model.children())[:-2])
        if cls == "DenseNet":
            return nn.Sequential(
                model.features, nn.ReLU(inplace=True)
            )  # torchvision applies F.relu in forward
        if cls in _FEATURES_FAMILIES:
            return model.features
        if cls == "SwinTransformer":
            return nn.Sequential(model.features, model.norm, model.permute)
        if cls == "VisionTransformer":
            raise ModelError(
                "Expected a model with a 4D (B, C, h, w) feature map. Received: a VisionTransformer, whose "
                "features are token sequences. Fix: use a CNN such as 'resnet34' or 'convnext_tiny', or a "
                "timm model."
            )
    return _generic_cut(model)


def _cut_model(model: nn.Module, cut, kind: str) -> nn.Module:
    if cut is None:
        return _default_cut(model, kind)
    if isinstance(cut, int) and not isinstance(cut, bool):
        return nn.Sequential(*list(model.children())[:cut])
    if callable(cut):
        body = cut(model)
        if not isinstance(body, nn.Module):
            raise ModelError(
                f"Expected cut(model) to return an nn.Module. Received: {type(body).__name__}. "
                "Fix: return the feature part, e.g. cut=lambda m: m.features."
            )
        return body
    raise ModelError(
        f"Expected cut to be None, an int or a function. Received: cut={cut!r}. "
        "Fix: e.g. cut=-2 (keep all children but the last two) or cut=lambda m: m.features."
    )


def _set_n_in(body: nn.Module, n_in: int, from_weights: bool) -> None:
    """Replace the first Conv2d of ``body`` with one taking ``n_in`` channels.

    With ``from_weights`` the new kernel is derived from the old one: n_in=1 sums over the input channels,
    more channels repeat them cyclically scaled by ``old/n_in`` (when n_in is a multiple of the old count,
    a grey image gives the same response as before).
    """
    found = next(((n, m) for n, m in body.named_modules() if isinstance(m, nn.Conv2d)), None)
    if found is None:
        raise ModelError(
            f"Expected a Conv2d in the body to adapt to n_in={n_in} channels. Received: a "
            f"{type(body).__name__} with none. Fix: leave n_in=3 or pass a convolutional arch."
        )
    name, conv = found
    if conv.in_channels == n_in:
        return
    if conv.groups != 1:
        raise ModelError(
            f"Expected a first conv with groups=1 to change its input channels. Received: groups={conv.groups}. "
            "Fix: convert your images to 3 channels instead."
        )
    new = nn.Conv2d(
        n_in,
        conv.out_channels,
        conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        dilation=conv.dilation,
        bias=conv.bias is not None,
        padding_mode=conv.padding_mode,
    ).to(device=conv.weight.device, dtype=conv.weight.dtype)
    if from_weights:
        with torch.no_grad():
            w = conv.weight
            if n_in == 1:
                new.weight.copy_(w.sum(dim=1, keepdim=True))
            else:
                idx = [i % conv.in_channels for i in range(n_in)]
                new.weight.copy_(w[:, idx] * (conv.in_channels / n_in))
            if conv.bias is not None:
                new.bias.copy_(conv.bias)
    parent_name, _, attr = name.rpartition(".")
    parent = body.get_submodule(parent_name) if parent_name else body
    setattr(parent, attr, new)


def create_body(arch, pretrained: bool = True, cut=None, n_in: int = 3, weights=None) -> nn.Module:
    """The feature extractor of ``arch``: the model without its pooling and classifier.

    ``arch``: a torchvision builder (``torchvision.models.resnet34``), a torchvision model name
    (``'resnet34'``, ``'convnext_tiny'``), a learnkit registry name (``'xresnet34'``), a timm name (when
    timm is installed), a ``'module:function'`` path, or an ``nn.Module``. ``pretrained`` loads the default
    torchvision weights (cached in ``$TORCH_HOME/hub/checkpoints``). ``cut``: an int keeps
    ``children[:cut]``, a function ``cut(model) -> body``; by default the head is found per family
    (ResNet/RegNet: drop the last two children; VGG/EfficientNet/MobileNet/ConvNeXt/...: ``.features``;
    otherwise the trailing pool/flatten/linear layers are dropped). ``n_in != 3`` replaces the first conv
    (with pretrained weights: summed over RGB for n_in=1, repeated and rescaled for more channels).
    ``weights``: a torchvision weights enum member (e.g. ``ResNet50_Weights.IMAGENET1K_V2``) instead of the
    default ones. Weights are loaded by :func:`learnkit.models.pretrained.load_pretrained_weights`
    (``weights_only=True``, the hash in the file name verified).

    Example: ``create_body('resnet18', pretrained=False)(torch.randn(2, 3, 64, 64)).shape`` -> ``(2, 512, 2, 2)``.
    """
    if isinstance(n_in, bool) or not isinstance(n_in, int) or n_in < 1:
        raise ModelError(
            f"Expected n_in to be a positive int. Received: n_in={n_in!r}. Fix: e.g. n_in=1 for grey."
        )
    kind, obj, name = _resolve_arch(arch)
    model = _instantiate(kind, obj, name, pretrained, n_in, weights)
    body = _cut_model(model, cut, kind)
    _set_n_in(body, n_in, from_weights=pretrained or weights is not None or kind == "module")
    return body


# ----------------------------------------------------------------------------------------------------------
# Full models
# ----------------------------------------------------------------------------------------------------------


def _dummy_forward(module: nn.Module, n_in: int, size: tuple[int, int]):
    try:
        p = next(module.parameters())
        device, dtype = p.device, p.dtype
    except StopIteration:
        device, dtype = torch.device("cpu"), torch.float32
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        with torch.no_grad():
            return module(torch.zeros(1, n_in, *size, device=device, dtype=dtype))
    finally:
        for m, mode in modes:
            m.training = mode


def _feature_shape(body: nn.Module, n_in: int) -> torch.Size:
    last = None
    for s in (64, 128, 224):
        try:
            out = _dummy_forward(body, n_in, (s, s))
            break
        except RuntimeError as e:  # input too small for this body: try a larger one
            last = e
    else:
        raise ModelError(
            f"Expected the body to accept a (1, {n_in}, 224, 224) input. Received: "
            f"{type(last).__name__}: {str(last)[:200]}. Fix: check n_in, or pass cut= to create_body."
        ) from last
    if not isinstance(out, torch.Tensor) or out.ndim != 4:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ModelError(
            f"Expected the body to output a 4D feature map (B, C, h, w). Received: output={got}. "
            "Fix: pass cut= to create_body to stop before the pooling/classifier."
        )
    return out.shape


def num_features_model(body: nn.Module, n_in: int = 3) -> int:
    """Number of channels the body outputs, from a dummy forward on a small zero image (eval mode, no grad;
    the training mode of every submodule is restored afterwards).

    Example: ``num_features_model(create_body('resnet18', pretrained=False))`` -> ``512``.
    """
    return int(_feature_shape(body, n_in)[1])


def _arch_spec_name(arch) -> str | None:
    """A plain string that create_body resolves back to ``arch`` (for export), or None."""
    if isinstance(arch, str):
        return arch
    if isinstance(arch, nn.Module):
        return None
    kind, _, name = _resolve_arch(arch)
    if kind in ("learnkit", "torchvision"):
        return name
    try:
        return factory_path(arch)
    except ModelError:
        return None


def _attach_spec(model: nn.Module, factory, arch, cut, kwargs: dict) -> None:
    name = _arch_spec_name(arch)
    if name is None or not (cut is None or (isinstance(cut, int) and not isinstance(cut, bool))):
        return
    spec_kwargs = {"arch": name, **kwargs, "pretrained": False, "cut": cut}
    if is_plain_data(spec_kwargs):
        model.learnkit_spec = {"factory": factory_path(factory), "kwargs": spec_kwargs}


def create_vision_model(
    arch,
    n_out: int,
    pretrained: bool = True,
    cut=None,
    n_in: int = 3,
    lin_ftrs: Sequence[int] | None = None,
    ps: float | Sequence[float] = 0.5,
    concat_pool: bool = True,
    first_bn: bool = True,
    bn_final: bool = False,
    lin_first: bool = False,
    init: Callable | None = nn.init.kaiming_normal_,
    weights=None,
    pool: bool = True,
    custom_head: nn.Module | None = None,
) -> nn.Sequential:
    """``nn.Sequential(body, head)``: :func:`create_body` of ``arch`` plus :func:`create_head` for ``n_out``
    outputs (head initialised with ``init``). ``weights``: a torchvision weights enum member instead of the
    default pretrained weights. ``custom_head``: your own head module instead (``n_out`` and the head
    arguments are then unused); ``pool=False``: a head without pooling.

    The model carries ``learnkit_spec`` (factory + plain kwargs) when ``arch`` can be named, so export can
    rebuild it. Example::

        model = create_vision_model("resnet18", n_out=10, pretrained=False)
        model(torch.randn(2, 3, 64, 64)).shape   # (2, 10)
    """
    body = create_body(arch, pretrained=pretrained, cut=cut, n_in=n_in, weights=weights)
    if custom_head is not None:
        if not isinstance(custom_head, nn.Module):
            raise ModelError(
                f"Expected custom_head to be an nn.Module. Received: custom_head={type(custom_head).__name__}. "
                "Fix: e.g. custom_head=nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, 10))."
            )
        return nn.Sequential(body, custom_head)
    nf = num_features_model(body, n_in)
    head = create_head(
        nf,
        n_out,
        lin_ftrs=lin_ftrs,
        ps=ps,
        concat_pool=concat_pool,
        first_bn=first_bn,
        bn_final=bn_final,
        lin_first=lin_first,
        pool=pool,
    )
    if init is not None:
        _init_weights(head, init)
    model = nn.Sequential(body, head)
    _attach_spec(
        model,
        create_vision_model,
        arch,
        cut,
        dict(
            n_out=n_out,
            n_in=n_in,
            lin_ftrs=None if lin_ftrs is None else list(lin_ftrs),
            ps=ps if isinstance(ps, (int, float)) else list(ps),
            concat_pool=concat_pool,
            first_bn=first_bn,
            bn_final=bn_final,
            lin_first=lin_first,
            **({} if pool else {"pool": False}),
        ),
    )
    return model


def _is_tv_resnet_body(body: nn.Module) -> bool:
    """A torchvision ResNet/ResNeXt/wide ResNet cut to its body: conv1, bn1, relu, maxpool, layer1..layer4."""
    if not (isinstance(body, nn.Sequential) and len(body) == 8):
        return False
    from torchvision.models.resnet import BasicBlock, Bottleneck

    return all(
        isinstance(body[i], nn.Sequential) and isinstance(body[i][0], (BasicBlock, Bottleneck))
        for i in range(4, 8)
    )


def vision_splitter(model: nn.Module) -> list[list[nn.Parameter]]:
    """Parameter groups of a ``create_vision_model`` model: ``[body params, head params]``, or for torchvision
    ResNets (as fastai splits them) ``[stem + layer1 + layer2, layer3 + layer4, head]``.

    Use it to freeze the body (train the head only; ``freeze_to(-2)`` also trains the last ResNet stages)
    and to give earlier layers smaller learning rates. Example: ``*body_groups, head = vision_splitter(model)``.
    """
    if not (isinstance(model, nn.Sequential) and len(model) == 2):
        raise ModelError(
            f"Expected nn.Sequential(body, head) as built by create_vision_model. Received: "
            f"{type(model).__name__}{f' of length {len(model)}' if isinstance(model, nn.Sequential) else ''}. "
            "Fix: pass your own splitter, e.g. splitter=lambda m: [list(m.parameters())]."
        )
    body, head = model[0], model[1]
    if _is_tv_resnet_body(body):
        return [list(body[:6].parameters()), list(body[6:].parameters()), list(head.parameters())]
    return [list(body.parameters()), list(head.parameters())]


# ----------------------------------------------------------------------------------------------------------
# U-Net
# ----------------------------------------------------------------------------------------------------------


def _icnr_(weight: torch.Tensor, scale: int = 2, init=nn.init.kaiming_normal_) -> None:
    """ICNR init: every group of ``scale**2`` output channels (one output pixel after PixelShuffle) gets the
    same kernel, so PixelShuffle starts as nearest-neighbour upsampling (no checkerboard)."""
    out_c = weight.shape[0] // (scale**2)
    base = torch.empty(out_c, *weight.shape[1:], device=weight.device, dtype=weight.dtype)
    init(base)
    with torch.no_grad():
        weight.copy_(base.repeat_interleave(scale**2, dim=0))


class PixelShuffleICNR(nn.Module):
    """Upsample by ``scale``: 1x1 conv to ``nf * scale**2`` channels (ICNR init), activation (``act_cls``),
    PixelShuffle, and with ``blur`` a replication pad + 2x2 average (reduces checkerboard artifacts).
    ``norm_type``: ``NormType.Weight`` or ``NormType.Spectral`` reparametrise the conv (after the ICNR init).

    Example: ``PixelShuffleICNR(64, 32)(torch.randn(2, 64, 8, 8)).shape`` -> ``(2, 32, 16, 16)``.
    """

    def __init__(
        self,
        ni: int,
        nf: int | None = None,
        scale: int = 2,
        blur: bool = False,
        norm_type=None,
        act_cls=nn.ReLU,
    ):
        super().__init__()
        nf = ni if nf is None else nf
        norm = _norm_type(norm_type)
        if norm not in (None, NormType.Weight, NormType.Spectral):
            raise ModelError(
                f"Expected norm_type None, NormType.Weight or NormType.Spectral for the upsampling conv. "
                f"Received: norm_type={norm_type!r}. Fix: pass one of those."
            )
        conv = nn.Conv2d(ni, nf * scale**2, 1)
        _icnr_(conv.weight, scale)
        nn.init.zeros_(conv.bias)
        if norm == NormType.Weight:
            conv = nn.utils.parametrizations.weight_norm(conv)
        elif norm == NormType.Spectral:
            conv = nn.utils.parametrizations.spectral_norm(conv)
        self.conv = conv
        self.act = _act_class(act_cls)()
        self.shuffle = nn.PixelShuffle(scale)
        self.blur = (
            nn.Sequential(nn.ReplicationPad2d((1, 0, 1, 0)), nn.AvgPool2d(2, stride=1)) if blur else None
        )

    def forward(self, x):
        x = self.shuffle(self.act(self.conv(x)))
        return self.blur(x) if self.blur is not None else x


class SelfAttention(nn.Module):
    """Self-attention over the spatial positions of a feature map (SAGAN style); the output scale
    ``gamma`` starts at 0, so the layer starts as the identity."""

    def __init__(self, n_channels: int):
        super().__init__()
        nk = max(n_channels // 8, 1)
        self.query = nn.Conv1d(n_channels, nk, 1, bias=False)
        self.key = nn.Conv1d(n_channels, nk, 1, bias=False)
        self.value = nn.Conv1d(n_channels, n_channels, 1, bias=False)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        b, c, h, w = x.shape
        flat = x.flatten(2)  # (B, C, N)
        q, k, v = self.query(flat), self.key(flat), self.value(flat)
        attn = torch.softmax(torch.bmm(q.transpose(1, 2), k), dim=-1)  # (B, N, N)
        out = torch.bmm(v, attn.transpose(1, 2))  # (B, C, N)
        return x + self.gamma * out.view(b, c, h, w)


class UnetBlock(nn.Module):
    """One U-Net decoder step: upsample the deeper features (PixelShuffle, ICNR), match the skip's size,
    concatenate with the batch-normalised skip, then two conv-BN-ReLU.

    Output channels: ``(up_c // 2 + skip_c) // 2`` (or without the halving when ``final_div=False``).
    ``act_cls`` is the activation of every layer; ``norm_type`` the normalisation of the two convs
    (``Weight``/``Spectral`` also reparametrise the upsampling conv).

    Example: ``UnetBlock(64, 32)(torch.randn(1, 64, 4, 4), torch.randn(1, 32, 8, 8)).shape`` -> ``(1, 32, 8, 8)``.
    """

    def __init__(
        self,
        up_c: int,
        skip_c: int,
        final_div: bool = True,
        blur: bool = False,
        self_attention: bool = False,
        act_cls=nn.ReLU,
        norm_type=NormType.Batch,
    ):
        super().__init__()
        norm = _norm_type(norm_type)
        up_norm = norm if norm in (NormType.Weight, NormType.Spectral) else None
        self.up = PixelShuffleICNR(up_c, up_c // 2, blur=blur, norm_type=up_norm, act_cls=act_cls)
        self.skip_bn = nn.BatchNorm2d(skip_c)
        ni = up_c // 2 + skip_c
        nf = ni // 2 if final_div else ni
        self.out_c = nf
        self.act = _act_class(act_cls)()
        self.conv1 = ConvLayer(ni, nf, 3, act_cls=act_cls, norm_type=norm)
        self.conv2 = ConvLayer(nf, nf, 3, act_cls=act_cls, norm_type=norm)
        self.attn = SelfAttention(nf) if self_attention else None

    def forward(self, up_in, skip):
        up = self.up(up_in)
        if up.shape[-2:] != skip.shape[-2:]:
            up = F.interpolate(up, size=skip.shape[-2:], mode="nearest")
        x = self.act(torch.cat([up, self.skip_bn(skip)], dim=1))
        x = self.conv2(self.conv1(x))
        return self.attn(x) if self.attn is not None else x


class _ResBlock(nn.Module):
    def __init__(self, ni: int, bottle: bool = False, act_cls=nn.ReLU, norm_type=NormType.Batch):
        super().__init__()
        norm = _norm_type(norm_type)
        last = NormType.BatchZero if norm == NormType.Batch else norm
        nh = ni // 2 if bottle else ni
        self.convs = nn.Sequential(
            ConvLayer(ni, nh, 1 if bottle else 3, act_cls=act_cls, norm_type=norm),
            ConvLayer(nh, ni, 3, act_cls=act_cls, norm_type=last, act=False),
        )
        self.act = _act_class(act_cls)()

    def forward(self, x):
        return self.act(x + self.convs(x))


def _probe_shapes(encoder: nn.Module, n_in: int, size: tuple[int, int]):
    """Run a dummy forward with temporary hooks on the encoder's children: [(name, child, out shape)] in
    execution order, plus the final output shape. The hooks are always removed."""
    records, handles = [], []
    for cname, child in encoder.named_children():

        def hook(mod, inp, out, cname=cname):
            if isinstance(out, torch.Tensor) and out.ndim == 4:
                records.append((cname, mod, tuple(out.shape)))

        handles.append(child.register_forward_hook(hook))
    try:
        out = _dummy_forward(encoder, n_in, size)
    except RuntimeError as e:
        raise ModelError(
            f"Expected the encoder to accept a (1, {n_in}, {size[0]}, {size[1]}) image. Received: "
            f"{type(e).__name__}: {str(e)[:200]}. Fix: check img_size and n_in."
        ) from e
    finally:
        for h in handles:
            h.remove()
    if not isinstance(out, torch.Tensor) or out.ndim != 4:
        raise ModelError(
            "Expected the encoder to output a 4D feature map (B, C, h, w). Received: "
            f"{tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__}. Fix: pass cut=."
        )
    return records, tuple(out.shape)


class DynamicUnet(nn.Module):
    """A U-Net built around any CNN encoder, found by a dummy forward at ``img_size``.

    The skip connections are the outputs of the encoder children after which the spatial size changes.
    ``blur`` blurs the upsampling of every decoder block but the last, and the last one (and the final
    upsampling) too when ``blur_final``. ``act_cls`` is the decoder's activation and ``norm_type`` (a
    :class:`NormType` or None) the normalisation of its convs (the encoder is left as it is).
    For an ``nn.Sequential`` encoder, ``forward`` walks the children itself and keeps those outputs (no
    hooks, nothing kept between calls). Other encoders get forward hooks whose outputs are collected
    during a forward and released at its end; :meth:`remove_hooks` removes them.
    Output: ``(B, n_out, H, W)`` with the input's H, W (resized when odd sizes do not divide evenly).

    Example: ``DynamicUnet(encoder, n_out=3, img_size=(64, 64))(torch.randn(2, 3, 64, 64)).shape``
    -> ``(2, 3, 64, 64)``.
    """

    def __init__(
        self,
        encoder: nn.Module,
        n_out: int,
        img_size: tuple[int, int],
        n_in: int = 3,
        blur: bool = False,
        self_attention: bool = False,
        y_range: tuple[float, float] | None = None,
        last_cross: bool = True,
        bottle: bool = False,
        blur_final: bool = True,
        act_cls=nn.ReLU,
        norm_type=NormType.Batch,
    ):
        super().__init__()
        norm = _norm_type(norm_type)
        self.encoder = encoder
        records, out_shape = _probe_shapes(encoder, n_in, img_size)
        next_shapes = [r[2] for r in records[1:]] + [out_shape]
        skips = [
            (name, mod, shape)
            for (name, mod, shape), nxt in zip(records, next_shapes)
            if shape[-2:] != nxt[-2:]
        ]
        self._sequential = isinstance(encoder, nn.Sequential)
        names = [n for n, _ in encoder.named_children()]
        self._skip_idx = tuple(names.index(n) for n, _, _ in skips) if self._sequential else ()
        self._hook_store: list[torch.Tensor] = []
        self._handles = []
        if not self._sequential:
            for _, mod, _ in skips:
                self._handles.append(mod.register_forward_hook(self._store_hook))

        ni = out_shape[1]
        self.middle = nn.Sequential(
            ConvLayer(ni, ni * 2, act_cls=act_cls, norm_type=norm),
            ConvLayer(ni * 2, ni, act_cls=act_cls, norm_type=norm),
        )
        blocks = []
        for j, (_, _, shape) in enumerate(reversed(skips)):
            last = j == len(skips) - 1
            block = UnetBlock(
                ni,
                shape[1],
                final_div=not last,
                blur=blur and (blur_final or not last),
                self_attention=self_attention and j == max(len(skips) - 3, 0),
                act_cls=act_cls,
                norm_type=norm,
            )
            blocks.append(block)
            ni = block.out_c
        self.blocks = nn.ModuleList(blocks)
        first_size = skips[0][2][-2:] if skips else out_shape[-2:]
        up_norm = norm if norm in (NormType.Weight, NormType.Spectral) else None
        self.final_up = (
            PixelShuffleICNR(ni, ni, blur=blur and blur_final, norm_type=up_norm, act_cls=act_cls)
            if tuple(first_size) != tuple(img_size)
            else None
        )
        self.cross = (
            _ResBlock(ni + n_in, bottle=bottle, act_cls=act_cls, norm_type=norm) if last_cross else None
        )
        self.final = nn.Conv2d(ni + n_in if last_cross else ni, n_out, 1)
        self.y_range = None if y_range is None else (float(y_range[0]), float(y_range[1]))
        for m in [self.middle, self.blocks, self.cross, self.final]:
            if m is not None:
                _init_weights_except_icnr(m)

    def _store_hook(self, mod, inp, out):
        self._hook_store.append(out)

    def remove_hooks(self) -> None:
        """Remove the forward hooks on a non-Sequential encoder (the model then cannot run forward)."""
        for h in self._handles:
            h.remove()
        self._handles = []

    def _encode(self, x):
        if self._sequential:
            skips = []
            for i, layer in enumerate(self.encoder):
                x = layer(x)
                if i in self._skip_idx:
                    skips.append(x)
            return x, skips
        if not self._handles:
            raise ModelError(
                "Expected the U-Net's encoder hooks to be in place. Received: a model after remove_hooks(). "
                "Fix: build a new model with create_unet_model."
            )
        self._hook_store.clear()
        try:
            out = self.encoder(x)
            skips = list(self._hook_store)
        finally:
            self._hook_store.clear()
        return out, skips

    def forward(self, x):
        size = x.shape[-2:]
        feats, skips = self._encode(x)
        y = self.middle(feats)
        for block, skip in zip(self.blocks, reversed(skips)):
            y = block(y, skip)
        if self.final_up is not None:
            y = self.final_up(y)
        if y.shape[-2:] != size:
            y = F.interpolate(y, size=size, mode="nearest")
        if self.cross is not None:
            y = self.cross(torch.cat([y, x], dim=1))
        y = self.final(y)
        if self.y_range is not None:
            lo, hi = self.y_range
            y = torch.sigmoid(y) * (hi - lo) + lo
        return y


def _init_weights_except_icnr(module: nn.Module) -> None:
    icnr = {id(m.conv) for m in module.modules() if isinstance(m, PixelShuffleICNR)}
    for m in module.modules():
        if nn.utils.parametrize.is_parametrized(m):
            continue  # weight/spectral norm: initialised before the reparametrisation (ConvLayer)
        if isinstance(m, (nn.Conv1d, nn.Conv2d)) and id(m) not in icnr:
            nn.init.kaiming_normal_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def create_unet_model(
    arch,
    n_out: int,
    img_size: int | tuple[int, int],
    pretrained: bool = True,
    cut=None,
    n_in: int = 3,
    blur: bool = False,
    self_attention: bool = False,
    y_range: tuple[float, float] | None = None,
    last_cross: bool = True,
    bottle: bool = False,
    blur_final: bool = True,
    act_cls=nn.ReLU,
    norm_type=NormType.Batch,
) -> DynamicUnet:
    """A :class:`DynamicUnet` for segmentation (``n_out`` classes) or image-to-image (``y_range``) on the
    encoder :func:`create_body` makes from ``arch``.

    ``img_size``: the training image size (int or (H, W)), used to find the skip connections; other sizes
    also work at run time. ``blur`` / ``blur_final`` / ``act_cls`` / ``norm_type``: see :class:`DynamicUnet`
    (``act_cls`` a class or a torch.nn name; ``norm_type`` a :class:`NormType` or None). Example::

        model = create_unet_model("resnet18", n_out=5, img_size=64, pretrained=False)
        model(torch.randn(2, 3, 64, 64)).shape   # (2, 5, 64, 64)
    """
    size = (img_size, img_size) if isinstance(img_size, int) else tuple(int(s) for s in img_size)
    if len(size) != 2 or min(size) < 8:
        raise ModelError(
            f"Expected img_size to be an int or (height, width) of at least 8. Received: img_size={img_size!r}. "
            "Fix: pass the size of your training images, e.g. img_size=(128, 128)."
        )
    encoder = create_body(arch, pretrained=pretrained, cut=cut, n_in=n_in)
    model = DynamicUnet(
        encoder,
        n_out,
        size,
        n_in=n_in,
        blur=blur,
        self_attention=self_attention,
        y_range=y_range,
        last_cross=last_cross,
        bottle=bottle,
        blur_final=blur_final,
        act_cls=_act_class(act_cls),
        norm_type=norm_type,
    )
    act_name = _act_name(act_cls)
    _attach_spec(
        model,
        create_unet_model,
        arch,
        cut,
        dict(
            n_out=n_out,
            img_size=list(size),
            n_in=n_in,
            blur=blur,
            self_attention=self_attention,
            y_range=None if y_range is None else list(y_range),
            last_cross=last_cross,
            bottle=bottle,
            blur_final=blur_final,
            act_cls=act_name if act_name is not None else act_cls,  # a class: not plain data, no spec
            norm_type=_norm_type(norm_type),
        ),
    )
    return model


def unet_splitter(model: DynamicUnet) -> list[list[nn.Parameter]]:
    """Two parameter groups of a U-Net: ``[encoder params, decoder params]`` (every parameter once).

    Example: ``enc, dec = unet_splitter(create_unet_model('resnet18', 3, 64, pretrained=False))``.
    """
    encoder = getattr(model, "encoder", None)
    if not isinstance(encoder, nn.Module):
        raise ModelError(
            f"Expected a model with an .encoder (as built by create_unet_model). Received: {type(model).__name__}. "
            "Fix: pass your own splitter."
        )
    enc = list(encoder.parameters())
    ids = {id(p) for p in enc}
    return [enc, [p for p in model.parameters() if id(p) not in ids]]
