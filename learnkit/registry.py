"""One registry mechanism for everything learnkit names and rebuilds, and the one list of applications.

A :class:`Registry` maps names to objects (model factories, block classes, transform classes, data-recipe
loaders, losses, metrics). Every registry has the same four operations: ``register`` (also a decorator),
``get`` (an unknown name is an error that suggests close matches and lists what exists), ``names`` /
``list(pattern)``, and ``in``. Registries never import a module a *file* names: when a name is missing,
a registry imports the learnkit applications of :data:`APPLICATIONS` (a fixed list of ``learnkit.*``
modules, each registering its own names when imported) and looks again.

:data:`APPLICATIONS` is the one list of applications: application name -> its ``learnkit.<app>`` module.
The core derives everything per-application from it (which modules register models/blocks/transforms,
which module rebuilds a recipe kind, which ``learnkit.<app>.cli`` adds a command). A recipe kind names its
application by its first part: ``'text'``, ``'text.lm'`` or ``'text_lm'`` belong to ``learnkit.text``
(see :func:`application_of`).

>>> shapes = Registry("shape")
>>> @shapes.register
... def square(n):
...     return n * n
>>> shapes.get("square")(3), shapes.list("sq*")
(9, ['square'])
"""

from __future__ import annotations

import fnmatch
import importlib
import re
import warnings
from collections.abc import Callable, Iterable

from .exceptions import LearnkitError
from .utils import suggest

__all__ = ["Registry", "APPLICATIONS", "application_of", "import_application", "import_applications"]

#: application name -> the learnkit module that registers its models, blocks, transforms, recipes and cli.
#: The only list of applications in the core: add an application here (and nowhere else).
APPLICATIONS: dict[str, str] = {
    "vision": "learnkit.vision",
    "text": "learnkit.text",
    "tabular": "learnkit.tabular",
    "collab": "learnkit.collab",
}

_imported: set[str] = set()


def application_of(kind: str) -> str | None:
    """The application a recipe kind (or registry name) belongs to: its first part if that is in
    :data:`APPLICATIONS`, else ``None``.

    >>> application_of("text.lm"), application_of("tabular"), application_of("datablock")
    ('text', 'tabular', None)
    """
    if not isinstance(kind, str):
        return None
    head = re.split(r"[._:]", kind, maxsplit=1)[0]
    return head if head in APPLICATIONS else None


def import_application(app: str, quiet: bool = True) -> bool:
    """Import the module of application ``app`` (a key of :data:`APPLICATIONS`); ``False`` when absent.

    Only modules from :data:`APPLICATIONS` are imported (all under ``learnkit.``), never a name read from a
    file. A module that exists but fails to import warns (``quiet``) or raises.
    """
    if app not in APPLICATIONS:
        raise LearnkitError(
            f"Expected the name of a learnkit application. Received: app={app!r}.{suggest(app, APPLICATIONS)} "
            f"Known: {sorted(APPLICATIONS)}."
        )
    mod = APPLICATIONS[app]
    if not mod.startswith("learnkit."):  # a guard for edited lists: the core imports only its own modules
        raise LearnkitError(f"Expected a learnkit module for application {app!r}. Received: {mod!r}.")
    try:
        importlib.import_module(mod)
    except ModuleNotFoundError as e:
        if e.name is not None and mod.startswith(
            e.name
        ):  # the application is not installed / not written yet
            return False
        if not quiet:
            raise
        warnings.warn(f"learnkit could not import {mod}: {e!r}", stacklevel=2)
        return False
    except Exception as e:
        if not quiet:
            raise
        warnings.warn(f"learnkit could not import {mod}: {e!r}", stacklevel=2)
        return False
    _imported.add(app)
    return True


def import_applications() -> list[str]:
    """Import every application of :data:`APPLICATIONS` that is present; returns their names."""
    return [a for a in APPLICATIONS if a in _imported or import_application(a)]


class Registry:
    """Names -> objects, with one way to register, look up (with suggestions) and list.

    Args:
        what: what the registry holds, for messages (``'model'``, ``'block'``, ...).
        error: the exception class an unknown name raises (a :class:`~learnkit.exceptions.LearnkitError`).
        check: optional ``check(name, obj)`` that raises when ``obj`` may not be registered.
        fix: the "Fix:" hint of the unknown-name error.

    ``register(obj, name=None, overwrite=False)`` refuses a different object under a taken name unless
    ``overwrite=True`` (the same object, or the same ``module.qualname`` after a module reload, is fine).
    ``get(name)`` on a missing name imports the applications once (they register their names) and looks
    again.

    >>> reg = Registry("colour")
    >>> reg.register("#f00", name="red")
    '#f00'
    >>> reg.get("rd")
    Traceback (most recent call last):
    ...
    learnkit.exceptions.LearnkitError: Expected the name of a registered colour. Received: name='rd'. Did you mean 'red'? Known: ['red']. Fix: register it first (Registry.register).
    """

    def __init__(
        self,
        what: str,
        error: type[Exception] = LearnkitError,
        check: Callable | None = None,
        fix: str = "register it first (Registry.register).",
    ):
        self.what, self.error, self.check, self.fix = what, error, check, fix
        self._items: dict[str, object] = {}

    def register(self, obj=None, *, name: str | None = None, overwrite: bool = False):
        """Register ``obj`` under ``name`` (default ``obj.__name__``); usable as ``@reg.register`` or
        ``@reg.register(name=...)``. Returns ``obj``."""

        def _add(o):
            key = name or getattr(o, "__name__", None)
            if not isinstance(key, str) or not key or key == "<lambda>":
                raise self.error(
                    f"Expected a name for the {self.what}. Received: name={key!r}. "
                    f"Fix: register(obj, name='my_{self.what}')."
                )
            if self.check is not None:
                self.check(key, o)
            old = self._items.get(key)
            if old is not None and not overwrite and not _same(old, o):
                raise self.error(
                    f"Expected a {self.what} name not used yet. Received: {key!r}, already taken by {_qual(old)}. "
                    "Fix: choose another name, or pass overwrite=True."
                )
            self._items[key] = o
            return o

        return _add if obj is None else _add(obj)

    def unregister(self, name: str) -> None:
        """Remove ``name`` (no error when absent)."""
        self._items.pop(name, None)

    def __contains__(self, name) -> bool:
        return name in self._items

    def find(self, name: str, load: bool = True):
        """The object registered as ``name``, or ``None`` (importing the applications first when ``load``)."""
        if name not in self._items and load:
            import_applications()
        return self._items.get(name)

    def get(self, name: str):
        """The object registered as ``name``; an unknown name raises ``error`` with close matches."""
        obj = self.find(name)
        if obj is None and name not in self._items:
            raise self.error(
                f"Expected the name of a registered {self.what}. Received: name={name!r}."
                f"{suggest(str(name), self._items)} Known: {_known(self._items)}. Fix: {self.fix}"
            )
        return obj

    @property
    def names(self) -> list[str]:
        """The registered names (without importing applications), sorted."""
        return sorted(self._items)

    def list(self, pattern: str | Iterable[str] | None = None, load: bool = True) -> list[str]:
        """Sorted names matching the glob ``pattern`` (or any of several), after importing the applications."""
        if load:
            import_applications()
        names = sorted(self._items)
        if pattern is None:
            return names
        pats = [pattern] if isinstance(pattern, str) else list(pattern)
        return [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in pats)]

    def items(self) -> list[tuple[str, object]]:
        return sorted(self._items.items())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.what!r}, {len(self)} names)"


def _qual(o) -> str:
    return f"{getattr(o, '__module__', '?')}.{getattr(o, '__qualname__', repr(o))}"


def _same(a, b) -> bool:
    if a is b or a == b:
        return True
    return hasattr(a, "__qualname__") and hasattr(b, "__qualname__") and _qual(a) == _qual(b)


def _known(items) -> str:
    names = sorted(items)
    return str(names) if len(names) <= 20 else f"{names[:20]} (+{len(names) - 20} more)"
