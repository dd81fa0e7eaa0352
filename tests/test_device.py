"""Device selection, seeding, RNG state round trips, and torch.compile with freezing."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from conftest import mlp
from torch import nn

from learnkit import DataLoaders, Learner, default_device, set_seed, to_device
from learnkit.device import get_rng_state, set_rng_state


def test_default_device_and_override(monkeypatch):
    monkeypatch.setenv("LEARNKIT_DEVICE", "cpu")
    assert default_device() == torch.device("cpu")
    assert default_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        monkeypatch.setenv("LEARNKIT_DEVICE", "cuda")
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            default_device()


def test_to_device_moves_nested_batches():
    b = {"a": torch.zeros(2), "b": [torch.ones(1), (torch.ones(3), "keep")]}
    out = to_device(b, "cpu")
    assert out["b"][1][1] == "keep" and torch.equal(out["a"], b["a"])


def test_set_seed_and_rng_state_round_trip():
    set_seed(7)
    st = get_rng_state()
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    set_rng_state(st)
    b = (random.random(), np.random.rand(), torch.rand(1).item())
    assert a == b
    loaded = torch.load(_roundtrip(st), weights_only=True)  # checkpoints hold it safely
    set_rng_state(loaded)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == a


def _roundtrip(obj):
    import io

    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return buf


def test_compile_trains_and_freezing_still_works(wine_tensors):
    try:
        torch.compile(nn.Linear(2, 2))(torch.zeros(1, 2))
    except Exception as e:  # no C++ toolchain: compile is unavailable on this machine
        pytest.fail(f"torch.compile does not work here: {e}")
    set_seed(0)
    model = mlp()
    dls = DataLoaders.from_tensors(*wine_tensors, bs=32, device="cpu")
    learn = Learner(
        dls,
        model,
        loss_func=nn.CrossEntropyLoss(),
        compile=True,
        splitter=lambda m: [m[0].parameters(), m[2].parameters()],
    )
    before = learn.validate()[0]
    learn.freeze()
    w0 = model[0].weight.clone()
    learn.fit(1, 1e-2, quiet=True)
    assert torch.equal(model[0].weight, w0)
    learn.unfreeze()
    learn.fit(2, 1e-2, quiet=True)
    assert not torch.equal(model[0].weight, w0)
    assert learn.validate()[0] < before
