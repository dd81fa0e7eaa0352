"""The curated public surface: every name in each public module's ``__all__`` imports and is documented."""

from __future__ import annotations

import importlib
import inspect

import pytest

PUBLIC_MODULES = [
    "learnkit",
    "learnkit.callbacks",
    "learnkit.data",
    "learnkit.models",
    "learnkit.vision",
    "learnkit.metrics",
    "learnkit.losses",
    "learnkit.optim",
    "learnkit.device",
    "learnkit.exceptions",
    "learnkit.distributed",
    "learnkit.export",
    "learnkit.interpret",
]


@pytest.mark.parametrize("modname", PUBLIC_MODULES)
def test_all_names_import_and_have_docstrings(modname):
    mod = importlib.import_module(modname)
    assert hasattr(mod, "__all__"), f"{modname} has no __all__"
    assert len(mod.__all__) == len(set(mod.__all__)), f"duplicates in {modname}.__all__"
    undocumented = []
    for name in mod.__all__:
        obj = getattr(mod, name)  # raises if missing
        if name.startswith("__") or not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue
        if not (inspect.getdoc(obj) or "").strip():
            undocumented.append(name)
    assert not undocumented, f"{modname}: no docstring for {undocumented}"


def test_star_import_is_safe():
    ns: dict = {}
    exec("from learnkit.vision import *", ns)
    for name in ("vision_learner", "ImageDataLoaders", "Learner", "load_learner", "error_rate", "Resize"):
        assert name in ns, name
    assert "torch" not in ns or ns["torch"].__name__ == "torch"
