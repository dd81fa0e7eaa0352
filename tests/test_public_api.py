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
    "learnkit.registry",
    "learnkit.data.blocks",
    "learnkit.data.pipeline",
    "learnkit.data.datablock",
    "learnkit.data.recipe",
    "learnkit.data.block",
    "learnkit.hooks",
    "learnkit.factory",
    "learnkit.text",
    "learnkit.tabular",
    "learnkit.collab",
    "learnkit.all",
    "learnkit.vision.all",
    "learnkit.text.all",
    "learnkit.tabular.all",
    "learnkit.collab.all",
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
        if not getattr(obj, "__module__", "").startswith(("learnkit", "torchvision")):
            continue  # torch, numpy, ... re-exported by the notebook namespaces: documented upstream
        if not (inspect.getdoc(obj) or "").strip():
            undocumented.append(name)
    assert not undocumented, f"{modname}: no docstring for {undocumented}"


@pytest.mark.parametrize("app", ["vision", "text", "tabular", "collab"])
def test_notebook_namespace_gives_the_app_the_core_and_the_standard_names(app):
    ns: dict = {}
    exec(f"from learnkit.{app}.all import *", ns)
    core = importlib.import_module("learnkit")
    app_mod = importlib.import_module(f"learnkit.{app}")
    missing = [n for n in [*core.__all__, *app_mod.__all__] if n not in ns and not n.startswith("__")]
    assert not missing, f"learnkit.{app}.all lacks {missing[:10]}"
    for name in (
        "np",
        "pd",
        "plt",
        "torch",
        "nn",
        "F",
        "tensor",
        "Path",
        "partial",
        "math",
        "random",
        "re",
        "os",
    ):
        assert name in ns, name
    assert hasattr(ns["Path"]("."), "ls")


def test_star_import_is_safe():
    ns: dict = {}
    exec("from learnkit.vision import *", ns)
    for name in ("vision_learner", "ImageDataLoaders", "Learner", "load_learner", "error_rate", "Resize"):
        assert name in ns, name
    assert "torch" not in ns or ns["torch"].__name__ == "torch"


def test_model_registry_is_reexported_from_learnkit():
    import learnkit
    from learnkit import create_model, list_models, register_model

    assert {"register_model", "create_model", "list_models"} <= set(learnkit.__all__)
    assert callable(register_model) and "xresnet18" in list_models("xresnet*")
    assert create_model("simple_cnn", n_out=3).learnkit_spec["factory"] == "simple_cnn"


def test_application_all_starts_from_the_core_list():
    import learnkit
    import learnkit.vision

    missing = [n for n in learnkit.__all__ if n not in learnkit.vision.__all__]
    assert missing == []
    for name in ("MixUp", "CutMix", "CSVLogger", "TerminateOnNaN", "Profile"):
        assert getattr(learnkit.vision, name) is getattr(learnkit, name)


def test_old_import_paths_keep_working():
    from learnkit.data.block import (  # noqa: F401
        BatchTfmsCollate,
        BlockCollate,
        BlockDataset,
        CategoryBlock,
        DataBlock,
        DataBlockRecipe,
        Datasets,
        MultiCategoryBlock,
        RegressionBlock,
        SamplePipeline,
        TransformBlock,
        block_from_spec,
        recipe_from_spec,
        register_block,
    )
    from learnkit.data.recipe import DataRecipe  # noqa: F401
    from learnkit.export import EXPORT_FORMAT, load_learner, register_recipe  # noqa: F401
    from learnkit.models import create_model, list_models, register_model  # noqa: F401
