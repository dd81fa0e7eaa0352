"""The safe export format: ``learn.export(path)`` and ``load_learner(path)``.

An export is one file that ``torch.load(weights_only=True)`` reads: plain data and tensors, no pickled
objects. It is a dict::

    {"format": "learnkit.export", "version": 1, "learnkit_version": ..., "torch_version": ...,
     "model": <model spec>, "state_dict": {name: tensor}, "loss": <loss spec>, "data": <recipe spec>,
     "n_inp": int, "metrics": [names]}

Loading rebuilds each object from its spec. Nothing in the file is executed and no module it names is
imported: a factory is only called when it is in the model registry (``@register_model``) or listed in
``trusted_factories``, a data recipe is rebuilt by the loader registered for its ``kind``
(:func:`register_recipe`; the application a kind names, ``kind.split('.')[0]``, is looked up in
:data:`learnkit.registry.APPLICATIONS` and imported when needed), a torch layer only when its class is in
:data:`TORCH_LAYERS`.

The ``model`` spec (``spec["model"]["kind"]``):

==================  ==================================================================================
kind                what the spec holds / how it is rebuilt
==================  ==================================================================================
``"factory"``       ``{"factory": name or "module:function", "kwargs": {...}}``: a registered model
                    factory called with plain-data arguments (``create_model``, application learners,
                    ``learn.export(factory=...)``). Files without ``kind`` are of this kind.
``"torch.nn"``      ``{"layer": {"class": "Linear", "args": {...}}}`` or a container
                    ``{"class": "Sequential", "children": [[name, layer], ...]}`` (also ``ModuleList``,
                    ``ModuleDict``): a model made only of torch.nn layers of :data:`TORCH_LAYERS`, each
                    built from the constructor arguments read back from the layer, then checked
                    against ``state_dict`` (strict: every key and shape).
``"pickled"``       ``{"pickled": bytes}``: ``export(pickle_model=True)``; loads only with ``allow_pickle``.
any other kind      a model that is not an ``nn.Module`` (e.g. ``"tabular.forest"``: a scikit-learn
                    forest saved as arrays in ``state_dict``): rebuilt by the function registered with
                    :func:`register_model_kind` (``fn(model_spec, state_dict) -> model``), whose
                    application is imported from the kind like a recipe's.
==================  ==================================================================================

>>> from torch import nn
>>> spec = torch_layer_spec(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)))
>>> spec["class"], [c[1]["class"] for c in spec["children"]]
('Sequential', ['Linear', 'ReLU', 'Linear'])
>>> build_torch_layer(spec)
Sequential(
  (0): Linear(in_features=4, out_features=8, bias=True)
  (1): ReLU()
  (2): Linear(in_features=8, out_features=2, bias=True)
)
"""

from __future__ import annotations

import importlib
import io
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from . import __version__
from .data.loaders import DataLoaders
from .distributed import rank_distrib
from .exceptions import ModelError, UnsafeFileError
from .losses import loss_from_spec, loss_spec
from .models.registry import (
    factory_path,
    is_model,
    is_plain_data,
    list_models,
    model_entrypoint,
    resolve_factory,
)
from .registry import Registry, application_of, import_application
from .utils import atomic_save, safe_load, suggest

__all__ = [
    "export_learner",
    "load_learner",
    "register_recipe",
    "recipe_from_spec",
    "register_model_kind",
    "register_learner",
    "read_export",
    "torch_layer_spec",
    "build_torch_layer",
    "TORCH_LAYERS",
    "RECIPES",
    "MODEL_KINDS",
    "EXPORT_FORMAT",
]

EXPORT_FORMAT = "learnkit.export"

#: data-recipe kind -> ``'learnkit.module:Class.from_spec'`` that rebuilds it (applications add theirs)
RECIPES = Registry(
    "data recipe kind",
    error=ModelError,
    fix="install the learnkit version (and application) that wrote the file.",
)
#: model spec kind -> ``'learnkit.module:function'`` rebuilding a non-nn.Module model from (spec, state_dict)
MODEL_KINDS = Registry(
    "model kind", error=ModelError, fix="install the learnkit version (and application) that wrote the file."
)


def _check_loader_path(kind: str, loader) -> None:
    if not isinstance(loader, str) or not loader.startswith("learnkit.") or ":" not in loader:
        raise ValueError(
            f"Expected a learnkit module path 'learnkit.module:function'. Received: "
            f"{kind}={loader!r}. Fix: e.g. register_recipe('text.lm', 'learnkit.text.data:LMRecipe.from_spec')."
        )


def register_recipe(kind: str, loader: str) -> None:
    """Register how to rebuild a data recipe of ``kind``: ``loader`` is a ``'learnkit.module:function'``.

    Name the kind after its application (``'text'``, ``'text.lm'``) so ``load_learner`` in a fresh process
    imports that application (from :data:`learnkit.registry.APPLICATIONS`) before looking the kind up.

    >>> register_recipe("datablock", "learnkit.data.datablock:recipe_from_spec")
    """
    _check_loader_path(kind, loader)
    RECIPES.register(loader, name=kind, overwrite=True)


def register_model_kind(kind: str, loader: str) -> None:
    """Register how to rebuild a model of spec ``kind`` that is not built by a factory (e.g. a forest):
    ``loader`` is a ``'learnkit.module:function'`` taking ``(model_spec, state_dict)``."""
    _check_loader_path(kind, loader)
    MODEL_KINDS.register(loader, name=kind, overwrite=True)


register_recipe("datablock", "learnkit.data.datablock:recipe_from_spec")


#: learner name -> "learnkit.module:Class" of an application's Learner subclass (e.g. collab's CollabLearner),
#: so load_learner gives back the class that was exported; unregistered classes load as a plain Learner
LEARNERS = Registry("learner class", error=ModelError, fix="import the application that defines the learner.")


def register_learner(name: str, cls_path: str) -> None:
    """Register an application's ``Learner`` subclass (``'learnkit.module:Class'``) under ``name``: exports of
    it record ``name`` and :func:`load_learner` rebuilds that class (only registered learnkit classes).

    >>> register_learner("collab", "learnkit.collab.learner:CollabLearner")  # doctest: +SKIP
    """
    _check_loader_path(name, cls_path)
    LEARNERS.register(cls_path, name=name, overwrite=True)


def _learner_name(learn) -> str | None:
    path = f"{type(learn).__module__}:{type(learn).__qualname__}"
    return next((n for n, p in LEARNERS.items() if p == path), None)


def _import_attr(path: str):
    mod, _, name = path.partition(":")
    obj = importlib.import_module(mod)  # only registered 'learnkit.*' paths reach here
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def _lookup(reg: Registry, kind) -> str:
    """The loader registered for ``kind``, importing the application the kind names first when needed."""
    if not isinstance(kind, str):
        raise ModelError(
            f"Expected a str kind in the export. Received: kind={kind!r}. Fix: re-export the learner."
        )
    if kind not in reg:
        app = application_of(kind)
        if app is not None:
            import_application(app)
    return reg.get(kind)


def recipe_from_spec(spec: dict):
    """Rebuild a data recipe from its spec (the ``data`` entry of an export)."""
    kind = spec.get("kind") if isinstance(spec, dict) else None
    return _import_attr(_lookup(RECIPES, kind))(spec)


# ============================================================================================ torch.nn layers
def _bias(m) -> bool:
    return m.bias is not None


_CONV = (
    "in_channels",
    "out_channels",
    "kernel_size",
    "stride",
    "padding",
    "dilation",
    "groups",
    _bias,
    "padding_mode",
)
_CONVT = (
    "in_channels",
    "out_channels",
    "kernel_size",
    "stride",
    "padding",
    "output_padding",
    "groups",
    _bias,
    "dilation",
    "padding_mode",
)
_BN = ("num_features", "eps", "momentum", "affine", "track_running_stats")
_RNN = ("input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout", "bidirectional")
_POOL_MAX = ("kernel_size", "stride", "padding", "dilation", "return_indices", "ceil_mode")
_POOL_AVG = ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad")

#: torch.nn classes an export may rebuild, with the constructor arguments read back from each layer
#: (an attribute name, or a function of the layer for arguments not stored as such, e.g. ``bias``).
TORCH_LAYERS: dict[str, tuple] = {
    "Linear": ("in_features", "out_features", _bias),
    "Bilinear": ("in1_features", "in2_features", "out_features", _bias),
    "Conv1d": _CONV,
    "Conv2d": _CONV,
    "Conv3d": _CONV,
    "ConvTranspose1d": _CONVT,
    "ConvTranspose2d": _CONVT,
    "ConvTranspose3d": _CONVT,
    "BatchNorm1d": _BN,
    "BatchNorm2d": _BN,
    "BatchNorm3d": _BN,
    "InstanceNorm1d": _BN,
    "InstanceNorm2d": _BN,
    "InstanceNorm3d": _BN,
    "LayerNorm": (
        "normalized_shape",
        "eps",
        "elementwise_affine",
        lambda m: m.bias is not None if m.elementwise_affine else True,
    ),
    "GroupNorm": ("num_groups", "num_channels", "eps", "affine"),
    "Embedding": (
        "num_embeddings",
        "embedding_dim",
        "padding_idx",
        "max_norm",
        "norm_type",
        "scale_grad_by_freq",
        "sparse",
    ),
    "EmbeddingBag": (
        "num_embeddings",
        "embedding_dim",
        "max_norm",
        "norm_type",
        "scale_grad_by_freq",
        "mode",
        "sparse",
        "include_last_offset",
        "padding_idx",
    ),
    "LSTM": _RNN + ("proj_size",),
    "GRU": _RNN,
    "RNN": _RNN + ("nonlinearity",),
    "Dropout": ("p", "inplace"),
    "Dropout1d": ("p", "inplace"),
    "Dropout2d": ("p", "inplace"),
    "Dropout3d": ("p", "inplace"),
    "AlphaDropout": ("p", "inplace"),
    "ReLU": ("inplace",),
    "ReLU6": ("inplace",),
    "SiLU": ("inplace",),
    "Mish": ("inplace",),
    "Hardswish": ("inplace",),
    "Hardsigmoid": ("inplace",),
    "ELU": ("alpha", "inplace"),
    "SELU": ("inplace",),
    "CELU": ("alpha", "inplace"),
    "LeakyReLU": ("negative_slope", "inplace"),
    "GELU": ("approximate",),
    "PReLU": ("num_parameters",),
    "Sigmoid": (),
    "Tanh": (),
    "Identity": (),
    "Softplus": ("beta", "threshold"),
    "Softmax": ("dim",),
    "LogSoftmax": ("dim",),
    "Flatten": ("start_dim", "end_dim"),
    "Unflatten": ("dim", "unflattened_size"),
    "MaxPool1d": _POOL_MAX,
    "MaxPool2d": _POOL_MAX,
    "MaxPool3d": _POOL_MAX,
    "AvgPool1d": _POOL_AVG,
    "AvgPool2d": _POOL_AVG + ("divisor_override",),
    "AvgPool3d": _POOL_AVG + ("divisor_override",),
    "AdaptiveAvgPool1d": ("output_size",),
    "AdaptiveAvgPool2d": ("output_size",),
    "AdaptiveAvgPool3d": ("output_size",),
    "AdaptiveMaxPool1d": ("output_size", "return_indices"),
    "AdaptiveMaxPool2d": ("output_size", "return_indices"),
    "AdaptiveMaxPool3d": ("output_size", "return_indices"),
    "Upsample": ("size", "scale_factor", "mode", "align_corners"),
    "ZeroPad2d": ("padding",),
    "PixelShuffle": ("upscale_factor",),
}
_CONTAINERS = ("Sequential", "ModuleList", "ModuleDict")
_ARG_NAMES = {"LayerNorm": {3: "bias"}}  # argument position -> name where the reader is a function


def _arg_name(cls: str, i: int, reader) -> str:
    if isinstance(reader, str):
        return reader
    return _ARG_NAMES.get(cls, {}).get(i, "bias")


def _plain_arg(v):
    if isinstance(v, tuple):
        return [_plain_arg(o) for o in v]
    if isinstance(v, torch.Size):
        return list(v)
    return v


def _unsupported(m: nn.Module, where: str) -> ModelError:
    name = type(m).__name__
    return ModelError(
        f"learnkit does not know how to rebuild the {type(m).__module__}.{name} at {where} when loading, so it "
        "cannot write a pickle-free export. Expected a model made by create_model()/an application learner, a "
        f"model built only from torch.nn layers (allowed: {len(TORCH_LAYERS)} classes such as Linear, Conv2d, "
        "BatchNorm2d, LSTM, in Sequential/ModuleList/ModuleDict), or a named factory. Fix: register a factory "
        f"that builds your {name} (@register_model def make_model(...): ...) and create the model with "
        "create_model('make_model', ...), or pass learn.export(path, factory='mypackage.models:make_model', "
        "factory_kwargs={...}) (pickle_model=True also works, but then loading needs allow_pickle=True)."
    )


def torch_layer_spec(m: nn.Module, where: str = "model") -> dict:
    """The plain-data spec of a module made only of :data:`TORCH_LAYERS` and containers (see the module doc).

    Raises :class:`~learnkit.exceptions.ModelError` naming the first layer that is not one of them.
    """
    cls = type(m)
    name = cls.__name__
    if cls.__module__.startswith("torch.nn") and name in _CONTAINERS and getattr(nn, name) is cls:
        children = [[k, torch_layer_spec(c, f"{where}.{k}")] for k, c in m.named_children()]
        return {"class": name, "children": children}
    if name not in TORCH_LAYERS or getattr(nn, name, None) is not cls:
        raise _unsupported(m, where)
    args = {}
    for i, r in enumerate(TORCH_LAYERS[name]):
        if isinstance(r, str) and not hasattr(m, r):
            continue  # an argument this torch version does not have
        v = r(m) if not isinstance(r, str) else getattr(m, r)
        v = _plain_arg(v)
        if not is_plain_data(v):
            raise _unsupported(m, where)
        args[_arg_name(name, i, r)] = v
    if list(m.children()):  # e.g. a layer with submodules attached by hand
        raise _unsupported(m, where)
    return {"class": name, "args": args}


def _as_ctor(v):
    return tuple(_as_ctor(o) for o in v) if isinstance(v, list) else v


def build_torch_layer(spec: dict) -> nn.Module:
    """Rebuild a module from :func:`torch_layer_spec` (only :data:`TORCH_LAYERS` classes and containers)."""
    if not isinstance(spec, dict) or not isinstance(spec.get("class"), str):
        raise ModelError(f"Expected a torch layer spec {{'class': str, ...}}. Received: {spec!r:.100}.")
    name = spec["class"]
    if name in _CONTAINERS:
        children = [(str(k), build_torch_layer(c)) for k, c in spec.get("children", [])]
        if name == "ModuleList":
            return nn.ModuleList([c for _, c in children])
        if name == "ModuleDict":
            return nn.ModuleDict(dict(children))
        seq = nn.Sequential()
        for k, c in children:
            seq.add_module(k, c)
        return seq
    if name not in TORCH_LAYERS:
        raise UnsafeFileError(
            f"The export asks for the layer class {name!r}, which is not in learnkit's allowlist of torch.nn "
            f"layers, so it was not built.{suggest(name, TORCH_LAYERS)} Expected one of learnkit.export.TORCH_LAYERS. "
            "Fix: export the model with a registered factory."
        )
    args = {k: _as_ctor(v) for k, v in dict(spec.get("args", {})).items()}
    try:
        return getattr(nn, name)(**args)
    except TypeError as e:
        raise ModelError(
            f"Could not rebuild torch.nn.{name}({args}): {e}. Fix: load with the torch version that "
            "wrote the export."
        ) from e


def _check_torch_spec(spec: dict, model: nn.Module) -> None:
    """Rebuild ``spec`` on the meta device and compare its state-dict keys and shapes with ``model``'s."""
    with torch.device("meta"):
        rebuilt = build_torch_layer(spec)
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in rebuilt.state_dict().items()}
    if want != got:
        diff = sorted(set(want.items()) ^ set(got.items()))[:5]
        raise ModelError(
            f"The torch.nn spec of this {type(model).__name__} does not rebuild the same weights (differences: "
            f"{diff}). Expected a model whose layers hold only what their constructor makes. Fix: export with "
            "a registered factory (factory='pkg.module:make_model')."
        )


# ============================================================================================ the model spec
def _model_spec(model: nn.Module, factory, factory_kwargs, pickle_model: bool) -> dict:
    if pickle_model:
        buf = io.BytesIO()
        torch.save(model, buf)
        return {"kind": "pickled", "pickled": buf.getvalue()}
    if factory is not None:
        path = factory if isinstance(factory, str) else factory_path(factory)
        spec = {"kind": "factory", "factory": path, "kwargs": dict(factory_kwargs or {})}
    elif isinstance(getattr(model, "learnkit_spec", None), dict):  # set by create_model on what it builds
        spec = {"kind": "factory", **model.learnkit_spec}
    else:
        layer = torch_layer_spec(model)
        _check_torch_spec(layer, model)
        return {"kind": "torch.nn", "layer": layer}
    if not is_plain_data(spec.get("kwargs", {})):
        raise ModelError(
            f"Expected the model factory's arguments to be plain data (str, numbers, lists, dicts). "
            f"Received: {spec.get('kwargs')!r}. Fix: pass names instead of objects (e.g. arch='resnet34')."
        )
    return spec


def _bare_model(model: nn.Module) -> nn.Module:
    """The user's module under DDP / DataParallel / torch.compile wrappers."""
    while True:
        if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            model = model.module
        elif isinstance(getattr(model, "_orig_mod", None), nn.Module):  # torch.compile's wrapper
            model = model._orig_mod
        else:
            return model


def export_learner(
    learn,
    fname: str | os.PathLike = "export.lk",
    factory=None,
    factory_kwargs=None,
    pickle_model: bool = False,
) -> Path:
    """Write ``learn``'s model spec, weights, loss and data recipe to one pickle-free file (atomically).

    ``fname`` is used as given (any name and extension, e.g. ``'export.pkl'``); a relative name goes under
    ``learn.path``. See :meth:`learnkit.Learner.export`.
    """
    path = Path(fname)
    if not path.is_absolute():
        path = Path(learn.path) / path
    model = _bare_model(learn.model)
    recipe = learn.dls.recipe
    spec = {
        "format": EXPORT_FORMAT,
        "version": 1,
        "learnkit_version": __version__,
        "torch_version": str(torch.__version__),
        "model": _model_spec(model, factory, factory_kwargs, pickle_model),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "loss": loss_spec(learn.loss_func),
        "data": recipe.spec() if recipe is not None else None,
        "n_inp": learn.dls.n_inp,
        "metrics": [m.name for m in learn.metrics],
        "learner": _learner_name(learn),
    }
    if rank_distrib() == 0:
        atomic_save(spec, path)
        if not Path(fname).is_absolute():
            _EXPORTED[str(fname)] = path.resolve()
    return path


# relative names this process exported -> where they went (under learn.path), so that
# `learn.export("pets.lk"); load_learner("pets.lk")` finds the file it just wrote (only files written here)
_EXPORTED: dict[str, Path] = {}


def _build_model(mspec: dict, state: dict, allow_pickle: bool, trusted_factories, source: str):
    kind = mspec.get("kind", "pickled" if "pickled" in mspec else "factory")
    if kind == "pickled":
        if not allow_pickle:
            raise UnsafeFileError(
                f"{source!r} stores a pickled model, and unpickling can run arbitrary code, so learnkit refused to "
                "load it. Expected a pickle-free export (a named model factory). Fix: only if you trust the file's "
                "author, call load_learner(path, allow_pickle=True)."
            )
        return torch.load(io.BytesIO(mspec["pickled"]), weights_only=False, map_location="cpu")
    if kind == "torch.nn":
        return build_torch_layer(mspec["layer"])
    if kind != "factory":
        return _import_attr(_lookup(MODEL_KINDS, kind))(mspec, state)
    name, kwargs = mspec["factory"], dict(mspec.get("kwargs", {}))
    if is_model(name):
        fn = model_entrypoint(name)
    else:
        trusted = set(trusted_factories or ())
        fn = resolve_factory(name) if name in trusted else None
        if fn is None:
            fn = next(
                (model_entrypoint(n) for n in list_models() if _path_of(model_entrypoint(n)) == name), None
            )
        if fn is None:
            raise UnsafeFileError(
                f"{source!r} asks for the model factory {name!r}, which is not a registered model factory, so "
                "learnkit did not call it (a file must not choose which code runs). Expected a factory decorated "
                f"with @register_model. Fix: import the module that defines it (with @register_model), or pass "
                f"load_learner(path, trusted_factories=[{name!r}])."
            )
    return fn(**kwargs)


def _path_of(f) -> str:
    return f"{f.__module__}:{f.__qualname__}"


DEFAULT_EXPORT, FASTAI_EXPORT = "export.lk", "export.pkl"


def _missing_file(path: Path) -> ModelError:
    parent = path.parent if str(path.parent) else Path(".")
    near = []
    if parent.is_dir():
        near = sorted(p.name for p in parent.iterdir() if p.is_file() and p.stem == path.stem and p != path)
    hint = (
        f" Found beside it: {near}. Fix: pass the file's full name, e.g. load_learner({str(parent / near[0])!r})."
        if near
        else " Fix: check the path; learn.export(name) writes under learn.path (dls.path) when name is relative."
    )
    return ModelError(
        f"No export at {str(path)!r} (resolved: {str(path.resolve())!r}). Expected a file written by "
        f"learn.export().{hint}"
    )


def read_export(fname: str | os.PathLike) -> dict:
    """The checked contents of an export file (``torch.load(weights_only=True)``; nothing is rebuilt)."""
    path = Path(fname)
    if (
        not path.is_file()
        and not path.is_absolute()
        and str(fname) in _EXPORTED
        and _EXPORTED[str(fname)].is_file()
    ):
        path = _EXPORTED[str(fname)]  # exported by this process under learn.path
    if not path.is_file():
        alt = path.with_name(DEFAULT_EXPORT)
        if path.name != FASTAI_EXPORT or not alt.is_file():
            raise _missing_file(path)
        # course code loads fastai's default name after a plain learn.export(); learnkit's file sits beside it
        warnings.warn(
            f"No {FASTAI_EXPORT!r} at {str(path.parent)!r}: loading {str(alt)!r}, the file learn.export() writes "
            f"by default (learnkit's files are pickle-free, so they are not named .pkl).",
            stacklevel=3,
        )
        path = alt
    st = safe_load(path)
    if not isinstance(st, dict) or st.get("format") != EXPORT_FORMAT:
        raise ModelError(
            f"{str(path)!r} is not a learnkit export. Expected a file written by learn.export(). "
            "Fix: for weights saved with learn.save(), build the Learner and call learn.load(name)."
        )
    return st


def load_learner(
    fname: str | os.PathLike, device=None, allow_pickle: bool = False, trusted_factories=None, cpu=None
):
    """Load an export written by :meth:`learnkit.Learner.export` for inference (``predict``, ``get_preds``).

    Reads with ``torch.load(weights_only=True)``: a file carrying pickled objects is refused with
    :class:`~learnkit.exceptions.UnsafeFileError`, and nothing in it runs.

    A relative ``fname`` is read from the working directory; if nothing is there and this process exported that
    same name (``learn.export("pets.lk")`` writes under ``learn.path``), that file is loaded, so
    ``learn.export("pets.lk"); load_learner("pets.lk")`` works. fastai's default ``"export.pkl"`` finds
    learnkit's default ``export.lk`` beside it (with a warning).

    Args:
        device: where to run (default: CPU, so exports load anywhere). ``cpu=False`` (fastai's spelling)
            means the default device.
        allow_pickle: accept a model stored with ``export(..., pickle_model=True)`` (trusted files only).
        trusted_factories: ``'module:function'`` factories allowed besides the model registry.

    >>> learn = load_learner("export.pkl")  # doctest: +SKIP
    """
    # learner.py imports this module (Learner.export); Learner and its checked state loading are needed
    # only when a learner is built, so they are imported here and this module does not need learner at import.
    from .learner import Learner, load_state_checked

    path = Path(fname)
    st = read_export(path)
    model = _build_model(st["model"], st["state_dict"], allow_pickle, trusted_factories, str(path))
    if not isinstance(model, nn.Module):
        raise ModelError(
            f"{str(path)!r} holds a {type(model).__name__} model, which a Learner cannot run. "
            "Fix: load it with its application's loader (e.g. learnkit.tabular's load_forest)."
        )
    load_state_checked(model, st["state_dict"], strict=True, source=str(path))
    recipe = recipe_from_spec(st["data"]) if st.get("data") else None
    if device is None and cpu is False:
        dev = None
    else:
        dev = device or "cpu"
    dls = DataLoaders(device=dev, recipe=recipe, n_inp=st.get("n_inp"))
    loss = loss_from_spec(st["loss"]) if st.get("loss") else None
    name = st.get("learner")
    if name is not None and name not in LEARNERS:
        warnings.warn(
            f"{str(path)!r} was exported from the learner class {name!r}, which this learnkit does not "
            "know; it loads as a plain Learner.",
            stacklevel=2,
        )
    cls = _import_attr(LEARNERS.get(name)) if name in LEARNERS else Learner
    learn = cls(dls, model, loss_func=loss)
    learn.model.eval()
    return learn
