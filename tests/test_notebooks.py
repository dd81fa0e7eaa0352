"""Lecture notebooks: stored without outputs, numbered, titled, ending with exercises; executed by
``make notebooks`` (a real Jupyter kernel, failing on any error; ``make test`` runs them too)."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

NBS = sorted((Path(__file__).parent.parent / "nbs").glob("*.ipynb"))


def test_there_is_a_notebook_per_lesson():
    assert len(NBS) >= 4
    assert all(re.match(r"\d\d_[a-z0-9_]+\.ipynb$", p.name) for p in NBS), [p.name for p in NBS]


@pytest.mark.parametrize("path", NBS, ids=[p.stem for p in NBS])
def test_notebook_is_stored_clean(path):
    nb = nbformat.read(path, as_version=4)
    stored = [
        i
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count"))
    ]
    assert not stored, (
        f"{path.name}: cells {stored} have stored outputs; strip them (jupyter nbconvert --clear-output)"
    )
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# Lesson "), (
        "the first cell titles the lesson"
    )
    assert "Exercises" in nb.cells[-1].source, "a lesson ends with exercises"
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert re.search(r"from learnkit(\.\w+)*(\.all)? import \*", code), (
        "notebooks import learnkit like a lecture"
    )


@pytest.mark.parametrize("path", NBS, ids=[p.stem for p in NBS])
def test_notebook_runs(path, tmp_path, monkeypatch):
    from nbclient import NotebookClient

    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("LEARNKIT_DEVICE", "cpu")
    nb = nbformat.read(path, as_version=4)
    NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    errors = [
        o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"
    ]
    assert not errors
