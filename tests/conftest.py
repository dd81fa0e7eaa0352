"""Shared fixtures: tiny real data (scikit-learn's bundled tables and digits) and small models."""

from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("LEARNKIT_DEVICE", "cpu")

import pytest
import torch
from torch import nn

collect_ignore_glob = []


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


def _standardize(x):
    return (x - x.mean(0)) / (x.std(0) + 1e-8)


@pytest.fixture(scope="session")
def wine_tensors():
    """scikit-learn's wine table (178 x 13, 3 classes), standardised, shuffled, split 142/36."""
    from sklearn.datasets import load_wine

    d = load_wine()
    g = torch.Generator().manual_seed(0)
    idx = torch.randperm(len(d.target), generator=g)
    x = _standardize(torch.tensor(d.data, dtype=torch.float32))[idx]
    y = torch.tensor(d.target)[idx]
    return (x[:142], y[:142]), (x[142:], y[142:])


@pytest.fixture(scope="session")
def digits_tensors():
    """scikit-learn's 8x8 digits (1797 x 64, 10 classes) in [0, 1], split 1437/360."""
    from sklearn.datasets import load_digits

    d = load_digits()
    g = torch.Generator().manual_seed(0)
    idx = torch.randperm(len(d.target), generator=g)
    x = torch.tensor(d.data, dtype=torch.float32)[idx] / 16.0
    y = torch.tensor(d.target)[idx]
    return (x[:1437], y[:1437]), (x[1437:], y[1437:])


@pytest.fixture(scope="session")
def diabetes_tensors():
    """scikit-learn's diabetes regression table (442 x 10), target standardised, split 354/88."""
    from sklearn.datasets import load_diabetes

    d = load_diabetes()
    x = _standardize(torch.tensor(d.data, dtype=torch.float32))
    y = torch.tensor(d.target, dtype=torch.float32)
    y = (y - y.mean()) / y.std()
    return (x[:354], y[:354, None]), (x[354:], y[354:, None])


def mlp(n_in=13, n_out=3, hidden=32, p=0.0):
    """A small MLP (the suite's 'boring model')."""
    layers = [nn.Linear(n_in, hidden), nn.ReLU()]
    if p:
        layers.append(nn.Dropout(p))
    layers.append(nn.Linear(hidden, n_out))
    return nn.Sequential(*layers)


@pytest.fixture
def make_mlp():
    return mlp
