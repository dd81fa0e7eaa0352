"""The notebook namespace of the core: ``from learnkit.all import *``.

One star import gives a notebook the whole public API of learnkit (the names in the ``__all__`` of
``learnkit``, ``learnkit.data``, ``learnkit.callbacks``, ``learnkit.metrics``, ``learnkit.optim``,
``learnkit.losses``, ``learnkit.interpret`` and ``learnkit.models``) plus the standard names course code
uses unqualified: ``np``, ``pd``, ``plt``, ``torch``, ``nn``, ``F``, ``Tensor``, ``tensor``, ``Path``,
``partial``, ``math``, ``random``, ``re``, ``os``, ``sys``, ``json``, ``time``, ``warnings``, ``itertools``,
``functools``, ``operator``, ``shutil``, ``SimpleNamespace``, ``Counter``, ``defaultdict``, ``L``.

``Path`` here is :class:`learnkit.utils.LPath`, a ``pathlib.Path`` subclass with ``.ls()``, so
``Path('data').ls()`` works as in fastai; nothing of ``pathlib`` is changed.

Use it in notebooks and scripts; library code imports the names it needs explicitly.

>>> from learnkit.all import *
>>> Path(".").ls() == sorted(Path(".").iterdir())
True
"""

# ruff: noqa: F401  (the names imported here are re-exported through the computed __all__)
from __future__ import annotations

import functools
import importlib
import itertools
import json
import math
import operator
import os
import random
import re
import shutil
import sys
import time
import warnings
from collections import Counter, OrderedDict, defaultdict
from functools import partial
from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .utils import L, LPath, tensor

Path = LPath

_CORE_MODULES = (
    "learnkit",
    "learnkit.data",
    "learnkit.callbacks",
    "learnkit.metrics",
    "learnkit.optim",
    "learnkit.losses",
    "learnkit.interpret",
    "learnkit.models",
    "learnkit.models.pretrained",
)

STANDARD_NAMES = [
    "np", "pd", "plt", "torch", "nn", "F", "Tensor", "tensor", "Path", "partial", "math", "random", "re",
    "os", "sys", "json", "time", "warnings", "itertools", "functools", "operator", "shutil",
    "SimpleNamespace", "Counter", "OrderedDict", "defaultdict", "L",
]  # fmt: skip
"""The standard (non-learnkit) names this namespace adds."""


def public_names(module_names) -> dict:
    """``{name: object}`` for the ``__all__`` of each module in ``module_names`` (the first module wins).

    >>> "Learner" in public_names(["learnkit"])
    True
    """
    out: dict = {}
    for mod_name in module_names:
        mod = importlib.import_module(mod_name)
        for name in getattr(mod, "__all__", ()):
            if not name.startswith("_") and name not in out and hasattr(mod, name):
                out[name] = getattr(mod, name)
    return out


_api = public_names(_CORE_MODULES)
globals().update({k: v for k, v in _api.items() if k not in STANDARD_NAMES})

__all__ = sorted(set(_api) | set(STANDARD_NAMES))
