"""The tabular notebook namespace: ``from learnkit.tabular.all import *`` gives everything :mod:`learnkit.all`
gives (the core's whole public API plus ``np``, ``pd``, ``plt``, ``torch``, ``nn``, ``F``, ``tensor``,
``Path`` with ``.ls()``, ``partial``, ``math``, ``random``, ``re``, ``os``, ``SimpleNamespace``, ...) and the
whole public API of :mod:`learnkit.tabular`, as ``from fastai.tabular.all import *`` does for course code.

>>> from learnkit.tabular.all import *
>>> np.__name__, Path(".").ls() == sorted(Path(".").iterdir())
('numpy', True)
"""

# ruff: noqa: F401  (the names imported here are re-exported through the computed __all__)
from __future__ import annotations

from .. import all as _core_all
from ..all import public_names

_core = {name: getattr(_core_all, name) for name in _core_all.__all__}
_app = public_names(["learnkit.tabular"])
globals().update(_core)
globals().update({k: v for k, v in _app.items() if k not in _core_all.STANDARD_NAMES})

__all__ = sorted(set(_core) | set(_app))
