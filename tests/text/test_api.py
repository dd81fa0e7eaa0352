"""learnkit.text's public surface: every name imports and is documented; the star imports are safe."""

from __future__ import annotations

import importlib
import inspect

import pytest

import learnkit


@pytest.mark.parametrize("modname", ["learnkit.text"])  # learnkit.text.all: tests/test_public_api.py
def test_text_names_import_and_have_docstrings(modname):
    mod = importlib.import_module(modname)
    assert len(mod.__all__) == len(set(mod.__all__))
    undocumented = [
        n
        for n in mod.__all__
        if (inspect.isclass(getattr(mod, n)) or inspect.isfunction(getattr(mod, n)))
        and not (inspect.getdoc(getattr(mod, n)) or "").strip()
    ]
    assert not undocumented


def test_star_import_has_core_and_text_names():
    ns: dict = {}
    exec("from learnkit.text import *", ns)
    for name in learnkit.__all__:
        assert name in ns, name
    for name in (
        "TextDataLoaders",
        "language_model_learner",
        "text_classifier_learner",
        "AWD_LSTM",
        "Perplexity",
        "Tokenizer",
        "tokenize_df",
        "defaults",
        "accuracy",
        "load_learner",
    ):
        assert name in ns, name
    nb: dict = {}
    exec("from learnkit.text.all import *", nb)
    for name in ("np", "pd", "plt", "torch", "nn", "F", "Path", "partial", "TextDataLoaders"):
        assert name in nb, name
