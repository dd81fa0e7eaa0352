"""Real English text for the text tests: the docstrings of installed libraries, written to disk as users have it.

The corpus: the prose of the public docstrings of ``pandas`` and ``torch`` (code examples and parameter
tables dropped), one document per docstring, labelled honestly with the library it comes from. The
classifier learns to tell which library wrote a docstring; the language model reads all of them.
"""

from __future__ import annotations

import inspect
import re

import pandas as pd
import pytest

_DROP = re.compile(r"^\s*(>>>|\.\.\.|-{3,}|={3,}|\.\. )|^[\w.]+\(.*\)\s*(->.*)?$")


def _prose(doc: str, max_words: int = 120) -> str:
    lines = []
    for line in inspect.cleandoc(doc).splitlines():
        if _DROP.match(line):
            continue
        if line.strip() in (
            "Examples",
            "Parameters",
            "Returns",
            "See Also",
            "Notes",
            "Raises",
            "Args:",
            "Example::",
            "Examples::",
            "Returns:",
            "Example:",
        ):
            break
        lines.append(line.strip())
    words = " ".join(lines).split()
    return " ".join(words[:max_words])


def _docstrings(mods, label: str, limit: int) -> list[tuple[str, str]]:
    import warnings

    warnings.simplefilter("ignore")
    out, seen = [], set()
    for mod in mods:
        for name in sorted(dir(mod)):
            if name.startswith("_"):
                continue
            obj = getattr(mod, name, None)
            members = [obj]
            if inspect.isclass(obj):
                members += [getattr(obj, m, None) for m in sorted(vars(obj)) if not m.startswith("_")]
            for o in members:
                doc = getattr(o, "__doc__", None)
                if not isinstance(doc, str) or doc in seen:
                    continue
                seen.add(doc)
                text = _prose(doc)
                if len(text.split()) >= 12:
                    out.append((text, label))
                if len(out) >= limit:
                    return out
    return out


def build_corpus(n_per_class: int = 300) -> pd.DataFrame:
    """A DataFrame ``text, label, is_valid`` of pandas and torch docstrings (deterministic)."""
    import torch
    import torch.nn.functional as F

    rows = _docstrings([pd, pd.DataFrame, pd.Series], "pandas", n_per_class)
    rows += _docstrings([torch, F, torch.Tensor], "torch", n_per_class)
    df = pd.DataFrame(rows, columns=["text", "label"]).drop_duplicates("text").reset_index(drop=True)
    df["is_valid"] = [i % 5 == 0 for i in range(len(df))]
    return df


_CACHE: dict = {}


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread per text test: on a shared machine, two threads contend and small LSTMs run 10x slower."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def corpus_df() -> pd.DataFrame:
    if "df" not in _CACHE:
        _CACHE["df"] = build_corpus()
    return _CACHE["df"].copy()


@pytest.fixture
def corpus_csv(tmp_path, corpus_df):
    f = tmp_path / "docs.csv"
    corpus_df.to_csv(f, index=False)
    return f
