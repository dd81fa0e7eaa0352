"""The one registry mechanism (learnkit.registry) and the one list of applications."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from learnkit.data.blocks import BLOCKS
from learnkit.data.transforms import TRANSFORM_REGISTRY
from learnkit.exceptions import LearnkitError, ModelError
from learnkit.export import MODEL_KINDS, RECIPES
from learnkit.models.registry import MODELS
from learnkit.registry import APPLICATIONS, Registry, application_of

ROOT = Path(__file__).resolve().parents[1]


def test_register_get_list_and_suggestions():
    reg = Registry("widget", error=ModelError)

    @reg.register
    def small_widget():
        return 1

    reg.register(lambda: 2, name="large_widget")
    assert reg.get("small_widget")() == 1 and "large_widget" in reg
    assert reg.list("*widget", load=False) == ["large_widget", "small_widget"]
    assert reg.list(["small*", "nothing*"], load=False) == ["small_widget"]
    with pytest.raises(
        ModelError, match=r"Did you mean 'small_widget'.*Known: \['large_widget', 'small_widget'\]"
    ):
        reg.get("smal_widget")
    with pytest.raises(ModelError, match="already taken"):
        reg.register(lambda: 3, name="small_widget")
    reg.register(lambda: 3, name="small_widget", overwrite=True)
    assert reg.get("small_widget")() == 3


def test_every_registry_in_learnkit_is_one_registry_class():
    for reg in (MODELS, BLOCKS, TRANSFORM_REGISTRY, RECIPES, MODEL_KINDS):
        assert isinstance(reg, Registry)
    assert "CategoryBlock" in BLOCKS and "Normalize" in TRANSFORM_REGISTRY and "datablock" in RECIPES


def test_applications_are_learnkit_modules_and_kinds_name_their_application():
    assert all(m == f"learnkit.{a}" for a, m in APPLICATIONS.items())
    assert application_of("text.lm") == "text" and application_of("tabular") == "tabular"
    assert application_of("os.system") is None and application_of("datablock") is None


def test_no_core_module_keeps_its_own_list_of_application_modules():
    """Application modules are named once, in registry.APPLICATIONS."""
    core = [p for p in (ROOT / "learnkit").rglob("*.py") if not any(a in p.parts for a in APPLICATIONS)]
    offenders = []
    for p in core:
        if p.name == "registry.py":
            continue
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                v = node.value
                if any(v.startswith(f"learnkit.{a}.") or v == f"learnkit.{a}" for a in APPLICATIONS):
                    offenders.append((p.name, v))
    assert offenders == [], offenders


def test_unknown_application_is_an_error_listing_the_known_ones():
    from learnkit.registry import import_application

    with pytest.raises(LearnkitError, match="vision"):
        import_application("visoin")


def test_interpret_and_export_import_no_application_and_export_not_the_learner():
    code = (
        "import sys, learnkit.interpret, learnkit.export; "
        "print(sorted(m for m in sys.modules if m.startswith('learnkit.vision')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"
    tree = ast.parse((ROOT / "learnkit" / "export.py").read_text())
    top = [n for n in tree.body if isinstance(n, ast.ImportFrom)]
    assert not any(n.module == "learner" for n in top)
