"""``vision_learner`` and ``unet_learner``: a Learner with a vision model fitted to the data in one call.

>>> from learnkit.vision import *
>>> dls = ImageDataLoaders.from_folder(path, item_tfms=Resize(224))  # doctest: +SKIP
>>> learn = vision_learner(dls, resnet34, metrics=error_rate)        # doctest: +SKIP
>>> learn.fine_tune(1)                                                # doctest: +SKIP

The model is built through the model registry (``'vision_model'`` / ``'unet_model'`` factories with the
arch given by name), so ``learn.export()`` writes it as plain data and ``load_learner`` rebuilds it.
For pretrained models the ImageNet normalisation is added to the data's batch transforms (and so to
the export); the body and the head are separate parameter groups, so ``fine_tune`` trains the head first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from ..data.datablock import DataBlockRecipe
from ..data.loaders import DataLoaders
from ..data.transforms import Normalize
from ..exceptions import DataError, ModelError
from ..factory import finish_learner, n_out_from_data
from ..learner import Learner
from ..models.registry import create_model, is_model, list_models, model_entrypoint, register_model
from ..optim import Adam
from .data import ImageBlock
from .models import (
    NormType,
    _act_name,
    _norm_type,
    create_body,
    create_unet_model,
    create_vision_model,
    imagenet_stats,
    unet_splitter,
    vision_splitter,
)

__all__ = [
    "vision_learner",
    "cnn_learner",
    "unet_learner",
    "vision_model",
    "unet_model",
    "SigmoidRange",
    "add_normalize",
]


class SigmoidRange(nn.Module):
    """Squash outputs into ``(low, high)`` with a sigmoid (for regression targets with a known range).

    >>> SigmoidRange(0, 10)(torch.zeros(2)).tolist()
    [5.0, 5.0]
    """

    def __init__(self, low: float, high: float):
        super().__init__()
        self.low, self.high = float(low), float(high)

    def forward(self, x):
        return torch.sigmoid(x) * (self.high - self.low) + self.low

    def extra_repr(self) -> str:
        return f"low={self.low}, high={self.high}"


@register_model(name="vision_model", tags=("vision-learner",))
def vision_model(
    arch: str,
    n_out: int,
    pretrained: bool = False,
    n_in: int = 3,
    cut: int | None = None,
    lin_ftrs: Sequence[int] | None = None,
    ps: float | Sequence[float] = 0.5,
    concat_pool: bool = True,
    first_bn: bool = True,
    bn_final: bool = False,
    lin_first: bool = False,
    y_range: Sequence[float] | None = None,
    pool: bool = True,
) -> nn.Sequential:
    """The registered factory behind :func:`vision_learner`: ``create_vision_model`` with ``arch`` by name, plus an
    optional :class:`SigmoidRange` on the head. Exports store these arguments to rebuild the model.

    >>> model = vision_model("resnet18", n_out=10)
    >>> model(torch.randn(2, 3, 64, 64)).shape
    torch.Size([2, 10])
    """
    model = create_vision_model(
        arch,
        n_out,
        pretrained=pretrained,
        cut=cut,
        n_in=n_in,
        lin_ftrs=lin_ftrs,
        ps=ps,
        concat_pool=concat_pool,
        first_bn=first_bn,
        bn_final=bn_final,
        lin_first=lin_first,
        pool=pool,
    )
    if y_range is not None:
        model[1].append(SigmoidRange(*y_range))
    return model


@register_model(name="unet_model", tags=("vision-learner",))
def unet_model(
    arch: str,
    n_out: int,
    img_size: Sequence[int],
    pretrained: bool = False,
    n_in: int = 3,
    cut: int | None = None,
    blur: bool = False,
    self_attention: bool = False,
    y_range: Sequence[float] | None = None,
    last_cross: bool = True,
    bottle: bool = False,
    blur_final: bool = True,
    act_cls: str = "ReLU",
    norm_type: str | None = NormType.Batch,
) -> nn.Module:
    """The registered factory behind :func:`unet_learner` (``create_unet_model`` with ``arch`` by name).

    >>> unet_model("resnet18", n_out=3, img_size=[64, 64])(torch.randn(1, 3, 64, 64)).shape
    torch.Size([1, 3, 64, 64])
    """
    return create_unet_model(
        arch,
        n_out,
        tuple(img_size),
        pretrained=pretrained,
        cut=cut,
        n_in=n_in,
        blur=blur,
        self_attention=self_attention,
        y_range=None if y_range is None else tuple(y_range),
        last_cross=last_cross,
        bottle=bottle,
        blur_final=blur_final,
        act_cls=act_cls,
        norm_type=norm_type,
    )


def _tv_builder_name(arch) -> str | None:
    import torchvision.models as tvm

    name = getattr(arch, "__name__", None)
    if name is None:
        return None
    try:
        return name if tvm.get_model_builder(name) is arch else None
    except ValueError:
        return None


def _arch_name(arch) -> str | None:
    """A name the registry factories resolve back to ``arch`` (registry name or torchvision name), or ``None``."""
    if isinstance(arch, str):
        return arch
    if isinstance(arch, nn.Module) or not callable(arch):
        return None
    name = getattr(arch, "__name__", None)
    if name is not None and is_model(name) and model_entrypoint(name) is arch:
        return name
    for key in list_models():
        if model_entrypoint(key) is arch:
            return key
    return _tv_builder_name(arch)


def _check_arch_name(name: str) -> None:
    """Unknown names fail early, with close matches from torchvision and the learnkit registry."""
    import torchvision.models as tvm

    from ..utils import suggest

    if ":" in name or is_model(name) or name in tvm.list_models(module=tvm):
        return
    try:
        import timm

        if timm.is_model(name):
            return
    except ImportError:
        pass
    choices = list(tvm.list_models(module=tvm)) + list_models(tags="vision")
    raise ModelError(
        f"Expected a known architecture name. Received: arch={name!r}.{suggest(name, choices)} Fix: use a "
        "torchvision model name (torchvision.models.list_models()), a learnkit model (learnkit.models.list_models()), "
        "a timm name (with timm installed), or pass a model function or an nn.Module."
    )


def _datablock_recipe(dls) -> DataBlockRecipe | None:
    """The DataBlock recipe behind ``dls`` (the one that holds blocks and batch transforms), or ``None``."""
    recipe = dls.recipe if isinstance(dls, DataLoaders) else None
    return recipe if isinstance(recipe, DataBlockRecipe) else None


def _input_channels(dls) -> int:
    """Channels of the images the data yields: from the image block's mode, else from one batch."""
    recipe = _datablock_recipe(dls)
    for b in recipe.blocks[: recipe.n_inp] if recipe is not None else ():
        if isinstance(b, ImageBlock) and b.n_channels:
            return int(b.n_channels)
    try:
        x = dls.one_batch()[0]
        if isinstance(x, torch.Tensor) and x.ndim == 4:
            return int(x.shape[1])
    except Exception:
        pass
    return 3


def _n_out(dls, n_out: int | None, what: str = "n_out") -> int:
    return n_out_from_data(dls, n_out, what)


def _norm_stats(n_in: int, stats) -> tuple[list[float], list[float]]:
    mean, std = (list(s) for s in stats)
    if n_in == len(mean):
        return mean, std
    if n_in == 1:
        return [sum(mean) / len(mean)], [sum(std) / len(std)]
    return [mean[i % len(mean)] for i in range(n_in)], [std[i % len(std)] for i in range(n_in)]


def add_normalize(dls, stats=imagenet_stats, n_in: int | None = None) -> bool:
    """Add ``Normalize.from_stats(*stats)`` to the data's batch transforms unless a Normalize is already there.

    Returns whether it was added. Pretrained models expect inputs normalised like their training data
    (ImageNet); :func:`vision_learner` calls this for them. The transform joins the data recipe's batch
    transforms, so ``show_batch`` undoes it and the export carries it.

    >>> add_normalize(dls)  # doctest: +SKIP
    True
    """
    if not isinstance(dls, DataLoaders) or dls.recipe is None:
        return False
    recipe = _datablock_recipe(dls)
    if recipe is None:
        raise DataError(
            "Expected DataLoaders from a DataBlock (whose recipe holds the batch transforms). Received: a recipe "
            f"of type {type(dls.recipe).__name__}. Fix: add Normalize.from_stats(*imagenet_stats) to batch_tfms "
            "yourself and pass normalize=False."
        )
    if any(isinstance(t, Normalize) for t in recipe.batch_pipe.tfms):
        return False
    n_in = _input_channels(dls) if n_in is None else n_in
    recipe.add_batch_tfms([Normalize.from_stats(*_norm_stats(n_in, stats))])
    return True


def _finish_learner(dls, model, default_splitter, pretrained, normalize, n_in, **learner_kw) -> Learner:
    """Vision's part of the shared finishing step: ImageNet normalisation for pretrained weights, then
    :func:`learnkit.factory.finish_learner` (frozen body when pretrained), then the fixed-shape fast path."""
    if normalize and pretrained:
        add_normalize(dls, imagenet_stats, n_in=n_in)
    learn = finish_learner(
        dls, model, default_splitter=default_splitter, freeze=bool(pretrained), **learner_kw
    )
    _fixed_shape_fast_path(learn)
    return learn


def _fixed_shape_fast_path(learn) -> None:
    """Image batches have fixed shapes: let cuDNN pick the fastest kernels (unless runs must be reproducible)."""
    if learn.device.type == "cuda" and not torch.are_deterministic_algorithms_enabled():
        torch.backends.cudnn.benchmark = True


def vision_learner(
    dls,
    arch,
    normalize: bool = True,
    n_out: int | None = None,
    pretrained: bool = True,
    loss_func=None,
    opt_func: Callable = Adam,
    lr: float = 1e-3,
    splitter: Callable | None = None,
    cbs=None,
    metrics=None,
    path=None,
    model_dir: str = "models",
    wd: float | None = None,
    cut: int | Callable | None = None,
    n_in: int | None = None,
    lin_ftrs: Sequence[int] | None = None,
    ps: float | Sequence[float] = 0.5,
    concat_pool: bool = True,
    first_bn: bool = True,
    bn_final: bool = False,
    lin_first: bool = False,
    y_range: Sequence[float] | None = None,
    custom_head: nn.Module | None = None,
    pool: bool = True,
    init: Callable | None = nn.init.kaiming_normal_,
    weights=None,
    **kwargs,
) -> Learner:
    """A :class:`~learnkit.Learner` with a body from ``arch`` and a new head sized to the data.

    Args:
        dls: image DataLoaders (``ImageDataLoaders``, a DataBlock with an ``ImageBlock``).
        arch: a torchvision model function or name (``resnet34``, ``'convnext_tiny'``), a learnkit registry
            name (``'xresnet18'``, ``'simple_cnn'``), a timm name (timm installed), or an ``nn.Module``.
        normalize: for pretrained models, add ImageNet normalisation to the batch transforms.
        n_out: outputs of the head; default ``dls.c`` (a different number is an error unless you pass the
            ``loss_func`` that expects it).
        pretrained: load the default ImageNet weights (torchvision's cache ``$TORCH_HOME/hub/checkpoints``)
            and freeze the body, so ``fit`` trains the head and ``fine_tune`` does both stages.
        cut, n_in, lin_ftrs, ps, concat_pool, first_bn, bn_final, lin_first: see
            :func:`~learnkit.vision.models.create_vision_model` (``n_in`` defaults to the images' channels).
        y_range: ``(low, high)`` squashes regression outputs into that range.
        custom_head: your own head (an ``nn.Module`` taking the body's feature map) instead of the default.
        pool: ``False`` builds the default head without its pooling layer.
        init: the initialisation of the new head's layers (``None`` keeps PyTorch's default).
        weights: a torchvision weights enum member (``ResNet50_Weights.IMAGENET1K_V2``) instead of the default
            pretrained weights (implies ``pretrained=True``).
        loss_func, opt_func, lr, splitter, cbs, metrics, path, model_dir, wd, **kwargs: passed to the Learner.

    >>> learn = vision_learner(dls, "xresnet18", pretrained=False, metrics=accuracy)  # doctest: +SKIP
    """
    n_out = n_out_from_data(dls, n_out, allow_other=loss_func is not None)
    n_in = _input_channels(dls) if n_in is None else n_in
    pretrained = bool(pretrained) or weights is not None
    name = _arch_name(arch)
    head_kw = dict(
        lin_ftrs=None if lin_ftrs is None else [int(v) for v in lin_ftrs],
        ps=ps if isinstance(ps, (int, float)) else [float(p) for p in ps],
        concat_pool=concat_pool,
        first_bn=first_bn,
        bn_final=bn_final,
        lin_first=lin_first,
    )
    custom = custom_head is not None or init is not nn.init.kaiming_normal_
    if name is not None and (cut is None or isinstance(cut, int)) and not custom:
        _check_arch_name(name)
        model = create_model(
            "vision_model",
            pretrained=pretrained and weights is None,
            arch=name,
            n_out=n_out,
            n_in=n_in,
            cut=cut,
            y_range=None if y_range is None else [float(v) for v in y_range],
            **({} if pool else {"pool": False}),
            **head_kw,
        )
        if weights is not None:  # the chosen torchvision weights, loaded safely into the body
            model[0].load_state_dict(create_body(arch, cut=cut, n_in=n_in, weights=weights).state_dict())
    else:
        model = create_vision_model(
            arch,
            n_out,
            pretrained=pretrained,
            cut=cut,
            n_in=n_in,
            init=init,
            weights=weights,
            pool=pool,
            custom_head=custom_head,
            **head_kw,
        )
        if y_range is not None:
            model[1].append(SigmoidRange(*y_range))
    return _finish_learner(
        dls,
        model,
        vision_splitter,
        pretrained,
        normalize,
        n_in,
        loss_func=loss_func,
        opt_func=opt_func,
        lr=lr,
        splitter=splitter,
        cbs=cbs,
        metrics=metrics,
        wd=wd,
        path=path,
        model_dir=model_dir,
        **kwargs,
    )


def cnn_learner(dls, arch, *args, **kwargs) -> Learner:
    """fastai's older name for :func:`vision_learner` (same arguments), kept so course code runs unchanged.

    >>> learn = cnn_learner(dls, "resnet34", metrics=error_rate)  # doctest: +SKIP
    """
    return vision_learner(dls, arch, *args, **kwargs)


def _img_size(dls) -> tuple[int, int]:
    x = dls.one_batch()[0]
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise DataError(
            f"Expected image batches of shape (B, C, H, W) to size the U-Net. Received: "
            f"{type(x).__name__}{tuple(x.shape) if isinstance(x, torch.Tensor) else ''}. Fix: pass img_size=(H, W)."
        )
    return int(x.shape[-2]), int(x.shape[-1])


def unet_learner(
    dls,
    arch,
    normalize: bool = True,
    n_out: int | None = None,
    pretrained: bool = True,
    loss_func=None,
    opt_func: Callable = Adam,
    lr: float = 1e-3,
    splitter: Callable | None = None,
    cbs=None,
    metrics=None,
    path=None,
    model_dir: str = "models",
    wd: float | None = None,
    cut: int | None = None,
    n_in: int | None = None,
    img_size=None,
    blur: bool = False,
    self_attention: bool = False,
    y_range: Sequence[float] | None = None,
    last_cross: bool = True,
    bottle: bool = False,
    blur_final: bool = True,
    act_cls=nn.ReLU,
    norm_type=NormType.Batch,
    **kwargs,
) -> Learner:
    """A :class:`~learnkit.Learner` with a U-Net on an encoder from ``arch`` for segmentation (``n_out`` = classes,
    default ``dls.c`` from the mask codes) or image-to-image regression (``y_range``).

    ``img_size`` defaults to the size of the data's images (one batch is read). Pretrained encoders are
    frozen and the ImageNet normalisation is added, as in :func:`vision_learner`. ``blur_final``,
    ``act_cls`` (the decoder's activation, a class or a torch.nn name) and ``norm_type`` (a :class:`NormType`
    or None: the decoder's normalisation) as in fastai; with a torch.nn activation the model stays exportable.

    >>> learn = unet_learner(dls, "resnet18", pretrained=False)  # doctest: +SKIP
    """
    n_out = _n_out(dls, n_out)
    n_in = _input_channels(dls) if n_in is None else n_in
    size = (
        _img_size(dls)
        if img_size is None
        else ((img_size, img_size) if isinstance(img_size, int) else tuple(int(s) for s in img_size))
    )
    name = _arch_name(arch)
    kw = dict(
        n_out=n_out,
        img_size=list(size),
        n_in=n_in,
        cut=cut,
        blur=blur,
        self_attention=self_attention,
        y_range=None if y_range is None else [float(v) for v in y_range],
        last_cross=last_cross,
        bottle=bottle,
        blur_final=bool(blur_final),
        norm_type=_norm_type(norm_type),
    )
    act_name = _act_name(act_cls)
    if name is not None and act_name is not None and (cut is None or isinstance(cut, int)):
        kw["act_cls"] = act_name
        _check_arch_name(name)
        model = create_model("unet_model", pretrained=pretrained, arch=name, **kw)
    else:
        kw["img_size"] = tuple(size)
        kw["y_range"] = None if y_range is None else tuple(y_range)
        model = create_unet_model(arch, pretrained=pretrained, act_cls=act_cls, **kw)
    return _finish_learner(
        dls,
        model,
        unet_splitter,
        pretrained,
        normalize,
        n_in,
        loss_func=loss_func,
        opt_func=opt_func,
        lr=lr,
        splitter=splitter,
        cbs=cbs,
        metrics=metrics,
        wd=wd,
        path=path,
        model_dir=model_dir,
        **kwargs,
    )
