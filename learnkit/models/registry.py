"""A registry of model factories, so that a model can be named, listed, created and rebuilt from a spec.

A *factory* is any function ``fn(**kwargs) -> nn.Module``. Registering it under a name lets
``create_model(name, **kwargs)`` build it, and lets ``learn.export`` store the model as plain data
(``{'factory': name, 'kwargs': {...}}``) instead of a pickle. A factory that is not registered can
still be named by its import path, ``'package.module:function'`` (see :func:`resolve_factory`).

Example::

    from torch import nn
    from learnkit.models import register_model, create_model, list_models

    @register_model(tags=("demo",))
    def tiny_mlp(n_in=4, n_out=2):
        return nn.Sequential(nn.Linear(n_in, 8), nn.ReLU(), nn.Linear(8, n_out))

    model = create_model("tiny_mlp", n_out=3)
    model.learnkit_spec           # {'factory': 'tiny_mlp', 'kwargs': {'n_out': 3}}
    list_models("tiny*")          # ['tiny_mlp']
"""

from __future__ import annotations

import fnmatch
import importlib
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from torch import nn

from ..exceptions import ModelError
from ..registry import Registry, import_applications
from ..utils import suggest

__all__ = [
    "register_model",
    "unregister_model",
    "create_model",
    "list_models",
    "is_model",
    "model_entrypoint",
    "model_tags",
    "resolve_factory",
    "factory_path",
    "is_plain_data",
    "MODELS",
]


@dataclass
class _Entry:
    fn: Callable[..., nn.Module]
    tags: tuple[str, ...] = field(default_factory=tuple)


#: The model registry (one :class:`learnkit.registry.Registry`): name -> factory entry. A name that is not
#: registered yet makes it import the applications of :data:`learnkit.registry.APPLICATIONS` once (each
#: registers its models), so ``create_model('xresnet34')`` and ``load_learner`` work in a fresh process.
MODELS = Registry(
    "model",
    error=ModelError,
    fix="check the spelling; learnkit.list_models() lists the registered names (importing an application "
    "module, e.g. learnkit.vision, registers its models).",
)
_REGISTRY = MODELS._items  # name -> _Entry (read-only view for this module)


def _load_builtin_models() -> None:
    import_applications()


def register_model(
    fn: Callable[..., nn.Module] | None = None,
    *,
    name: str | None = None,
    tags: Iterable[str] | str = (),
    overwrite: bool = False,
):
    """Register a model factory ``fn(**kwargs) -> nn.Module`` under ``name`` (default ``fn.__name__``).

    Use as ``@register_model``, ``@register_model()`` or ``@register_model(name=..., tags=(...))``.
    Returns ``fn`` unchanged. Registering a *different* function under a taken name raises
    :class:`~learnkit.exceptions.ModelError` unless ``overwrite=True`` (re-registering the same
    module-level function, e.g. on a module reload, is allowed).

    Example::

        @register_model(tags=("vision",))
        def my_cnn(n_out=10, n_in=3):
            return nn.Sequential(nn.Conv2d(n_in, 8, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, n_out))
    """
    tag_tuple = (tags,) if isinstance(tags, str) else tuple(tags)

    def _register(f):
        if not callable(f):
            raise ModelError(
                f"Expected a callable model factory. Received: fn={f!r}. "
                "Fix: decorate a function that returns an nn.Module."
            )
        key = name or getattr(f, "__name__", None)
        if not isinstance(key, str) or not key or key == "<lambda>":
            raise ModelError(
                f"Expected a model name. Received: name={key!r}. Fix: pass register_model(fn, name='my_model')."
            )
        old = _REGISTRY.get(key)
        if old is not None and not overwrite and not _same_function(old.fn, f):
            raise ModelError(
                f"Expected a new model name. Received: name={key!r}, which is already registered by "
                f"{_describe(old.fn)}. Fix: choose another name, or pass overwrite=True to replace it."
            )
        MODELS.register(_Entry(f, tag_tuple), name=key, overwrite=True)
        return f

    if fn is not None:
        return _register(fn)
    return _register


def unregister_model(name: str) -> None:
    """Remove ``name`` from the registry (no error when it is absent). Mostly useful in tests."""
    MODELS.unregister(name)


def _same_function(a, b) -> bool:
    if a is b:
        return True
    qa, qb = getattr(a, "__qualname__", None), getattr(b, "__qualname__", None)
    return (
        qa is not None
        and "<locals>" not in qa
        and qa == qb
        and getattr(a, "__module__", None) == getattr(b, "__module__", None)
    )


def _describe(fn) -> str:
    return f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', repr(fn))}"


def _unknown(name, what: str = "model name") -> ModelError:
    return ModelError(
        f"Expected a registered {what}. Received: name={name!r}.{suggest(name, _REGISTRY)} "
        "Fix: check the spelling; learnkit.models.list_models() lists the registered names "
        "(importing an application module, e.g. learnkit.vision, registers its models)."
    )


def is_model(name: str) -> bool:
    """Whether ``name`` is a registered model factory.

    Example: ``is_model('xresnet34')`` -> ``True``.
    """
    if name not in _REGISTRY:
        _load_builtin_models()
    return name in _REGISTRY


def model_entrypoint(name: str) -> Callable[..., nn.Module]:
    """The factory function registered under ``name``; :class:`ModelError` with suggestions if unknown."""
    if not is_model(name):
        raise _unknown(name)
    return _REGISTRY[name].fn


def model_tags(name: str) -> tuple[str, ...]:
    """The tags ``name`` was registered with (e.g. ``('vision',)``)."""
    if not is_model(name):
        raise _unknown(name)
    return _REGISTRY[name].tags


def list_models(pattern: str | Iterable[str] = "*", tags: str | Iterable[str] | None = None) -> list[str]:
    """Sorted registered names matching ``pattern`` (fnmatch wildcards; a list means any of them).

    ``tags``: keep only models registered with all of these tags.

    Example: ``list_models('xresnet*')`` -> ``['xresnet101', 'xresnet18', 'xresnet34', 'xresnet50']``;
    ``list_models(tags='vision')``.
    """
    _load_builtin_models()
    patterns = [pattern] if isinstance(pattern, str) else list(pattern)
    want = set() if tags is None else ({tags} if isinstance(tags, str) else set(tags))
    out = [
        n
        for n, e in _REGISTRY.items()
        if any(fnmatch.fnmatchcase(n, p) for p in patterns) and want.issubset(e.tags)
    ]
    return sorted(out)


def is_plain_data(o) -> bool:
    """Whether ``o`` is plain data that ``torch.load(weights_only=True)`` reads back: None, bool, int,
    float, str, and lists/tuples/dicts (with str/int keys) of those."""
    if o is None or isinstance(o, (bool, int, float, str)):
        return True
    if isinstance(o, (list, tuple)):
        return all(is_plain_data(x) for x in o)
    if isinstance(o, dict):
        return all(isinstance(k, (str, int)) and is_plain_data(v) for k, v in o.items())
    return False


def _accepts(fn, param: str) -> bool:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return True
    return param in sig.parameters or any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())


def create_model(name: str, pretrained: bool = False, **kwargs) -> nn.Module:
    """Build the model registered under ``name`` with ``kwargs``.

    ``pretrained=True`` is passed on to factories that accept it; for the others it is an error.
    When every kwarg is plain data, the model gets ``model.learnkit_spec = {'factory': name,
    'kwargs': kwargs}``, which is what export stores to rebuild it.

    Example::

        model = create_model("xresnet18", n_out=10, n_in=1)
        model.learnkit_spec   # {'factory': 'xresnet18', 'kwargs': {'n_out': 10, 'n_in': 1}}
    """
    fn = model_entrypoint(name)
    call_kwargs = dict(kwargs)
    if pretrained:
        if not _accepts(fn, "pretrained"):
            raise ModelError(
                f"Expected a model with pretrained weights. Received: name={name!r}, pretrained=True, but "
                f"{name!r} is trained from scratch. Fix: pass pretrained=False, or use a torchvision arch, "
                "e.g. create_vision_model('resnet34', n_out, pretrained=True)."
            )
        call_kwargs["pretrained"] = True
    model = fn(**call_kwargs)
    if not isinstance(model, nn.Module):
        raise ModelError(
            f"Expected the factory {name!r} to return an nn.Module. Received: {type(model).__name__}. "
            "Fix: make the registered function return the model."
        )
    if is_plain_data(kwargs):
        model.learnkit_spec = {"factory": name, "kwargs": dict(kwargs)}
    return model


def resolve_factory(path_or_name: str | Callable) -> Callable[..., nn.Module]:
    """The factory for a registry name or an importable ``'package.module:function'`` path.

    A callable is returned as is. Raises :class:`ModelError` saying what is missing.

    Example: ``resolve_factory('xresnet34')``, ``resolve_factory('mypkg.nets:my_net')``.
    """
    if callable(path_or_name):
        return path_or_name
    if not isinstance(path_or_name, str) or not path_or_name:
        raise ModelError(
            f"Expected a registered model name or a 'package.module:function' path. Received: "
            f"factory={path_or_name!r}. Fix: pass a string such as 'xresnet34' or 'mypkg.nets:my_net'."
        )
    if ":" not in path_or_name:
        if is_model(path_or_name):
            return _REGISTRY[path_or_name].fn
        raise ModelError(
            f"Expected a registered model name or a 'package.module:function' path. Received: "
            f"factory={path_or_name!r}.{suggest(path_or_name, _REGISTRY)} Fix: check the spelling "
            "(learnkit.models.list_models() lists the registered names), or name a function as 'module:function'."
        )
    mod_name, _, qualname = path_or_name.partition(":")
    if not mod_name or not qualname:
        raise ModelError(
            f"Expected 'package.module:function'. Received: factory={path_or_name!r}. "
            "Fix: write both parts, e.g. 'mypkg.nets:my_net'."
        )
    try:
        obj = importlib.import_module(mod_name)
    except ModuleNotFoundError as e:
        raise ModelError(
            f"Expected an importable module. Received: factory={path_or_name!r}, but module {mod_name!r} "
            f"could not be imported ({e}). Fix: install the package or add its folder to sys.path/PYTHONPATH."
        ) from e
    for part in qualname.split("."):
        if not hasattr(obj, part):
            names = [n for n in dir(obj) if not n.startswith("_")]
            raise ModelError(
                f"Expected {mod_name!r} to define {qualname!r}. Received: factory={path_or_name!r}, but "
                f"{getattr(obj, '__name__', mod_name)!r} has no attribute {part!r}.{suggest(part, names)} "
                "Fix: check the function name, and that it is defined at module level."
            )
        obj = getattr(obj, part)
    if not callable(obj):
        raise ModelError(
            f"Expected a callable model factory. Received: factory={path_or_name!r}, which is a "
            f"{type(obj).__name__}. Fix: name a function (or class) that returns an nn.Module."
        )
    return obj


def factory_path(fn: Callable) -> str:
    """``'module:qualname'`` naming a module-level function (or class), the inverse of :func:`resolve_factory`.

    Lambdas and functions defined inside other functions cannot be imported back, so they raise
    :class:`ModelError`.

    Example: ``factory_path(xresnet34)`` -> ``'learnkit.vision.models:xresnet34'``.
    """
    mod = getattr(fn, "__module__", None)
    qual = getattr(fn, "__qualname__", None)
    if not callable(fn) or mod is None or qual is None:
        raise ModelError(
            f"Expected a module-level function or class. Received: fn={fn!r}. "
            "Fix: define the model factory with `def` at module level in an importable module."
        )
    if "<lambda>" in qual or "<locals>" in qual:
        raise ModelError(
            f"Expected a function defined at module level. Received: fn={mod}.{qual}, a lambda or a local "
            "function, which cannot be imported back when the model is rebuilt. Fix: define the model "
            "factory with `def` at module level in an importable module."
        )
    path = f"{mod}:{qual}"
    try:
        found = resolve_factory(path)
    except ModelError as e:
        raise ModelError(
            f"Expected {path!r} to import back to the same function. Received: fn={fn!r}. Fix: define the "
            "factory at module level in an importable module."
        ) from e
    if found is not fn and not _same_function(found, fn):
        raise ModelError(
            f"Expected {path!r} to import back to the same function. Received: fn={fn!r}, but that path "
            "names another object. Fix: do not rebind the name after defining the function."
        )
    return path
