"""Lecture notebooks run top to bottom (they import learnkit; they never define it)."""

from __future__ import annotations

from pathlib import Path

import pytest

NBS = sorted((Path(__file__).parent.parent / "nbs").glob("*.ipynb"))


@pytest.mark.parametrize("path", NBS, ids=[p.stem for p in NBS])
def test_notebook_runs(path, tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("LEARNKIT_DEVICE", "cpu")
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
