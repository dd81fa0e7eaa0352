"""Profile: per-epoch time split into data, forward, loss, backward, step, callbacks, validation."""

from __future__ import annotations

import time

import pytest
from conftest import mlp
from torch import nn

from learnkit import Callback, DataLoaders, Learner, accuracy, set_seed
from learnkit.callbacks.profile import PROFILE_PHASES, Profile
from learnkit.callbacks.training import GradientAccumulation


def _check_adds_up(learn, report):
    for row, rec in zip(report, learn.recorder.log_rows):
        assert all(row[k] >= 0 for k in PROFILE_PHASES)
        assert sum(row[k] for k in PROFILE_PHASES) == pytest.approx(row["total"], rel=1e-9)
        # the Recorder's own clock for the epoch (started a little later, stopped a little earlier)
        assert rec[-1] <= row["total"] <= 1.2 * rec[-1] + 0.02


def test_profile_reports_where_the_time_went(digits_tensors):
    set_seed(0)
    dls = DataLoaders.from_tensors(*digits_tensors, bs=64, device="cpu")
    learn = Learner(
        dls, mlp(64, 10, 64), loss_func=nn.CrossEntropyLoss(), metrics=accuracy, cbs=Profile(quiet=True)
    )
    learn.fit(2, quiet=True)
    report = learn.profile.report
    assert [r["epoch"] for r in report] == [0, 1]
    for row in report:
        assert row["n_batches"] == len(dls.train)
        for k in ("data", "forward", "loss", "backward", "step", "callbacks", "valid"):
            assert row[k] > 0, k
        assert row["callbacks_by_event"] and all(v > 0 for v in row["callbacks_by_event"].values())
    _check_adds_up(learn, report)
    assert not any(type(c).__name__ == "_ProfileStart" for c in learn.cbs)  # its helper is gone after fit
    assert list(learn.profile.to_frame()["epoch"]) == [0, 1]


class SlowLoader:
    """Yields the digits in batches of 32, sleeping ``delay`` seconds before each batch (a slow data pipeline)."""

    def __init__(self, x, y, delay):
        self.x, self.y, self.delay = x, y, delay

    def __len__(self):
        return (len(self.x) + 31) // 32

    def __iter__(self):
        for i in range(0, len(self.x), 32):
            time.sleep(self.delay)
            yield self.x[i : i + 32], self.y[i : i + 32]


class SlowForward(nn.Module):
    def __init__(self, delay):
        super().__init__()
        self.body, self.delay = mlp(64, 10), delay

    def forward(self, x):
        time.sleep(self.delay)
        return self.body(x)


class SlowCallback(Callback):
    def after_loss(self):
        if self.learn.training:
            time.sleep(0.002)


def test_profile_puts_slow_parts_in_their_phase(digits_tensors):
    (xt, yt), (xv, yv) = digits_tensors
    train, valid = SlowLoader(xt[:320], yt[:320], 0.004), SlowLoader(xv[:64], yv[:64], 0.0)
    learn = Learner(
        (train, valid),
        SlowForward(0.003),
        loss_func=nn.CrossEntropyLoss(),
        device="cpu",
        cbs=[Profile(quiet=True), SlowCallback()],
    )
    learn.fit(1, quiet=True)
    row = learn.profile.report[0]
    assert row["n_batches"] == 10
    assert row["data"] >= 10 * 0.004
    assert row["forward"] >= 10 * 0.003
    assert row["callbacks"] >= 10 * 0.002 and row["callbacks_by_event"]["after_loss"] >= 10 * 0.002
    assert row["valid"] >= 2 * 0.003  # two validation batches through the slow forward
    _check_adds_up(learn, [row])


def test_profile_with_cancelled_batches_still_adds_up(wine_tensors):
    """GradientAccumulation cancels most batches after backward; the time is still all accounted for."""
    learn = Learner(
        DataLoaders.from_tensors(*wine_tensors, bs=16, device="cpu"),
        mlp(),
        loss_func=nn.CrossEntropyLoss(),
        cbs=[GradientAccumulation(64), Profile(quiet=True)],
    )
    learn.fit(2, quiet=True)
    assert len(learn.profile.report) == 2
    _check_adds_up(learn, learn.profile.report)
    assert all(r["step"] > 0 and r["backward"] > 0 for r in learn.profile.report)


def test_profile_prints_a_table_unless_quiet(wine_tensors, capsys):
    dls = DataLoaders.from_tensors(*wine_tensors, bs=16, device="cpu")
    learn = Learner(dls, mlp(), loss_func=nn.CrossEntropyLoss(), cbs=Profile())
    learn.fit(1, quiet=True)  # a quiet fit prints nothing
    assert "profile of epoch" not in capsys.readouterr().out
    learn.fit(1, quiet=False)
    out = capsys.readouterr().out
    assert "profile of epoch 0" in out and "forward" in out and "backward" in out
