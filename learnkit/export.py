"""The safe export format: ``learn.export(path)`` and ``load_learner(path)``.

An export is one file that ``torch.load(weights_only=True)`` reads: plain data and tensors, no pickled
objects. It holds

- ``model``: which factory builds the model, with which arguments (a learnkit registry name such as
  ``'xresnet18'``, or a registered ``'package.module:function'``),
- ``state_dict``: the weights,
- ``loss``: the loss by name and arguments,
- ``data``: the data recipe (vocab, category maps, normalisation stats, transforms, ...) that each
  application writes with its ``spec()`` and rebuilds with its ``from_spec``.

Loading rebuilds each object from its spec. Nothing in the file is executed, and a factory is only
called when it is in the model registry (``@register_model``) or listed in ``trusted_factories``.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import torch

from . import __version__
from .exceptions import ModelError, UnsafeFileError
from .utils import atomic_save, safe_load

__all__ = ["export_learner", "load_learner", "register_recipe", "register_learner", "recipe_from_spec",
           "EXPORT_FORMAT"]

EXPORT_FORMAT = "learnkit.export"

#: data-recipe kind -> "module:function" that rebuilds it (learnkit modules only; extended by applications)
_RECIPES: dict[str, str] = {
    "datablock": "learnkit.data.block:recipe_from_spec",
}


def register_recipe(kind: str, loader: str) -> None:
    """Register how to rebuild a data recipe of ``kind``: ``loader`` is a ``'learnkit.module:function'``."""
    if not loader.startswith("learnkit."):
        raise ValueError(f"Expected a learnkit module path. Received: loader={loader!r}.")
    _RECIPES[kind] = loader


#: learner name -> "learnkit.module:Class" of an application's Learner subclass (e.g. collab's CollabLearner),
#: so load_learner gives back the class that was exported; unregistered classes load as a plain Learner
_LEARNERS: dict[str, str] = {}


def register_learner(name: str, cls_path: str) -> None:
    """Register an application's ``Learner`` subclass (``'learnkit.module:Class'``) under ``name``: exports of
    it record ``name`` and :func:`load_learner` rebuilds that class (only registered learnkit classes)."""
    if not cls_path.startswith("learnkit."):
        raise ValueError(f"Expected a learnkit module path. Received: cls_path={cls_path!r}.")
    _LEARNERS[name] = cls_path


def _learner_name(learn) -> str | None:
    path = f"{type(learn).__module__}:{type(learn).__qualname__}"
    return next((n for n, p in _LEARNERS.items() if p == path), None)


def _import_attr(path: str):
    import importlib

    mod, _, name = path.partition(":")
    obj = importlib.import_module(mod)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def recipe_from_spec(spec: dict):
    """Rebuild a data recipe from its spec (the ``data`` entry of an export)."""
    kind = spec.get("kind")
    if kind not in _RECIPES:
        raise ModelError(f"The export holds a data recipe of kind {kind!r}, which this learnkit cannot rebuild. "
                         f"Expected one of {sorted(_RECIPES)}. Fix: install the learnkit version that wrote it.")
    return _import_attr(_RECIPES[kind])(spec)


def _is_plain(o) -> bool:
    if o is None or isinstance(o, (bool, int, float, str)):
        return True
    if isinstance(o, (list, tuple)):
        return all(_is_plain(x) for x in o)
    if isinstance(o, dict):
        return all(isinstance(k, str) and _is_plain(v) for k, v in o.items())
    return False


def _model_spec(learn, factory, factory_kwargs, pickle_model: bool) -> dict:
    from .learner import _unwrap
    from .models.registry import factory_path

    model = _unwrap(learn.model)
    if pickle_model:
        buf = io.BytesIO()
        torch.save(model, buf)
        return {"pickled": buf.getvalue()}
    if factory is not None:
        path = factory if isinstance(factory, str) else factory_path(factory)
        spec = {"factory": path, "kwargs": dict(factory_kwargs or {})}
    else:
        spec = getattr(model, "learnkit_spec", None)
        if spec is None:
            raise ModelError(
                f"learnkit does not know how to rebuild this {type(model).__name__} when loading, so it cannot write a "
                "pickle-free export. Expected a model made by create_model()/an application factory, or a named "
                "factory. Fix: learn.export(path, factory='mypackage.models:make_model', factory_kwargs={...}) "
                "(decorate make_model with @register_model so load_learner trusts it), or pickle_model=True "
                "(then loading needs allow_pickle=True)."
            )
    if not _is_plain(spec.get("kwargs", {})):
        raise ModelError(f"Expected the model factory's arguments to be plain data (str, numbers, lists, dicts). "
                         f"Received: {spec.get('kwargs')!r}. Fix: pass names instead of objects (e.g. arch='resnet34').")
    return dict(spec)


def export_learner(learn, fname: str | os.PathLike = "export.lk", factory=None, factory_kwargs=None,
                   pickle_model: bool = False) -> Path:
    """Write ``learn``'s model spec, weights, loss and data recipe to one pickle-free file (atomically).

    Relative names go under ``learn.path``. See :meth:`learnkit.Learner.export`.
    """
    from .distributed import rank_distrib
    from .learner import _unwrap
    from .losses import loss_spec
    path = Path(fname)
    if not path.is_absolute():
        path = learn.path / path
    model = _unwrap(learn.model)
    recipe = learn.dls.recipe
    data = recipe.spec() if recipe is not None and hasattr(recipe, "spec") else None
    spec = {
        "format": EXPORT_FORMAT,
        "version": 1,
        "learnkit_version": __version__,
        "torch_version": str(torch.__version__),
        "model": _model_spec(learn, factory, factory_kwargs, pickle_model),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "loss": loss_spec(learn.loss_func),
        "data": data,
        "n_inp": learn.dls._n_inp,
        "metrics": [m.name for m in learn.metrics],
        "learner": _learner_name(learn),
    }
    if rank_distrib() == 0:
        atomic_save(spec, path)
    return path


def _build_model(mspec: dict, allow_pickle: bool, trusted_factories, source: str):
    from .models.registry import is_model, list_models, model_entrypoint, resolve_factory

    if "pickled" in mspec:
        if not allow_pickle:
            raise UnsafeFileError(
                f"{source!r} stores a pickled model, and unpickling can run arbitrary code, so learnkit refused to "
                "load it. Expected a pickle-free export (a named model factory). Fix: only if you trust the file's "
                "author, call load_learner(path, allow_pickle=True)."
            )
        return torch.load(io.BytesIO(mspec["pickled"]), weights_only=False, map_location="cpu")
    name, kwargs = mspec["factory"], dict(mspec.get("kwargs", {}))
    if is_model(name):
        fn = model_entrypoint(name)
    else:
        trusted = set(trusted_factories or ())
        fn = resolve_factory(name) if name in trusted else None
        if fn is None:
            fn = next((model_entrypoint(n) for n in list_models() if _path_of(model_entrypoint(n)) == name), None)
        if fn is None:
            raise UnsafeFileError(
                f"{source!r} asks for the model factory {name!r}, which is not a registered model factory, so "
                "learnkit did not call it (a file must not choose which code runs). Expected a factory decorated "
                f"with @register_model. Fix: import the module that defines it (with @register_model), or pass "
                f"load_learner(path, trusted_factories=[{name!r}])."
            )
    return fn(**kwargs)


def _path_of(f) -> str:
    return f"{getattr(f, '__module__', '')}:{getattr(f, '__qualname__', '')}"


def load_learner(fname: str | os.PathLike, device=None, allow_pickle: bool = False, trusted_factories=None):
    """Load an export written by :meth:`learnkit.Learner.export` for inference (``predict``, ``get_preds``).

    Reads with ``torch.load(weights_only=True)``: a file carrying pickled objects is refused with
    :class:`~learnkit.exceptions.UnsafeFileError`, and nothing in it runs.

    Args:
        device: where to run (default: CPU, so exports load anywhere).
        allow_pickle: accept a model stored with ``export(..., pickle_model=True)`` (trusted files only).
        trusted_factories: ``'module:function'`` factories allowed besides the model registry.
    """
    from .data.loaders import DataLoaders
    from .learner import Learner, load_state_checked
    from .losses import loss_from_spec

    path = Path(fname)
    st = safe_load(path)
    if not isinstance(st, dict) or st.get("format") != EXPORT_FORMAT:
        raise ModelError(f"{str(path)!r} is not a learnkit export. Expected a file written by learn.export(). "
                         "Fix: for weights saved with learn.save(), build the Learner and call learn.load(name).")
    model = _build_model(st["model"], allow_pickle, trusted_factories, str(path))
    load_state_checked(model, st["state_dict"], strict=True, source=str(path))
    recipe = recipe_from_spec(st["data"]) if st.get("data") else None
    dls = DataLoaders(device=device or "cpu", recipe=recipe, n_inp=st.get("n_inp"))
    loss = loss_from_spec(st["loss"]) if st.get("loss") else None
    name = st.get("learner")
    if name is not None and name not in _LEARNERS:
        import warnings

        warnings.warn(f"{str(path)!r} was exported from the learner class {name!r}, which this learnkit does not "
                      "know; it loads as a plain Learner.", stacklevel=2)
    cls = _import_attr(_LEARNERS[name]) if name in _LEARNERS else Learner
    learn = cls(dls, model, loss_func=loss)
    learn.model.eval()
    return learn
