"""Real tables written to CSV the way users have them: palmerpenguins (mixed types, missing values) and
scikit-learn's bundled sets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


@pytest.fixture(scope="session")
def penguins_csv(tmp_path_factory):
    """palmerpenguins (344 rows: species, island, sex, year + 4 measurements with missing values) as a CSV."""
    import palmerpenguins

    path = tmp_path_factory.mktemp("penguins") / "penguins.csv"
    palmerpenguins.load_penguins().to_csv(path, index=False)
    return path


@pytest.fixture()
def penguins(penguins_csv):
    return pd.read_csv(penguins_csv)


@pytest.fixture(scope="session")
def diabetes_csv(tmp_path_factory):
    """scikit-learn's diabetes table (442 rows, 10 features, a float target), with 'sex' as text."""
    from sklearn.datasets import load_diabetes

    d = load_diabetes(as_frame=True, scaled=False).frame
    d["sex"] = np.where(d["sex"] == 1, "f", "m")
    path = tmp_path_factory.mktemp("diabetes") / "diabetes.csv"
    d.to_csv(path, index=False)
    return path


@pytest.fixture()
def diabetes(diabetes_csv):
    return pd.read_csv(diabetes_csv)


def _random_splits(n, valid_pct=0.25, seed=0):
    idx = np.random.default_rng(seed).permutation(n)
    k = int(n * valid_pct)
    return np.sort(idx[k:]), np.sort(idx[:k])


@pytest.fixture()
def random_splits():
    """``random_splits(n, valid_pct=0.25, seed=0) -> (train_idx, valid_idx)``."""
    return _random_splits


@pytest.fixture(autouse=True, scope="package")
def _one_thread():
    """Tiny tabular nets run fastest on one thread (and do not fight the other tests for cores)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
