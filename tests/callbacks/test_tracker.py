"""Monitors (EarlyStopping, SaveModel, ReduceLROnPlateau): direction of each metric, state for exact resume,
state keys, names and fastai aliases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import mlp
from torch import nn

from learnkit import DataLoaders, Learner, set_seed
from learnkit.callbacks import tracker
from learnkit.callbacks.tracker import (
    EarlyStopping,
    EarlyStoppingCallback,
    ReduceLROnPlateau,
    SaveModel,
    SaveModelCallback,
    TerminateOnNaN,
    TerminateOnNaNCallback,
)
from learnkit.metrics import AvgMetric, accuracy, mae, mse, perplexity, rmse


def _reg_learner(data, tmp_path, metrics, lr=3e-3):
    set_seed(0)
    train, valid = data
    dls = DataLoaders.from_tensors(train, valid, bs=32, device="cpu")
    return Learner(dls, mlp(10, 1), loss_func=nn.MSELoss(), metrics=metrics, path=tmp_path, lr=lr)


def _cls_learner(data, tmp_path=".", metrics=accuracy):
    set_seed(0)
    train, valid = data
    dls = DataLoaders.from_tensors(train, valid, bs=16, device="cpu")
    return Learner(dls, mlp(), loss_func=nn.CrossEntropyLoss(), metrics=metrics, path=tmp_path)


# ---------------------------------------------------------------- item 1: direction of each metric
@pytest.mark.parametrize("metric,col", [(mae, "mae"), (rmse, "rmse"), (mse, "mse")])
def test_save_model_on_an_error_metric_keeps_the_lowest_epoch(diabetes_tensors, tmp_path, metric, col):
    """SaveModel(monitor='mae') must keep the epoch with the lowest mae (it used to keep the highest)."""
    learn = _reg_learner(diabetes_tensors, tmp_path, metrics=[metric])
    sm = SaveModel(monitor=col, fname="best", reload_best=True)
    learn.fit(4, cbs=sm, quiet=True)
    vals = [learn.recorder.value(col, row=i) for i in range(4)]
    assert vals[-1] < vals[0]  # the model really learns
    assert sm.best == pytest.approx(min(vals))
    # the reloaded weights are the best epoch's: validating gives the best value back
    assert learn.validate()[1] == pytest.approx(min(vals), rel=1e-5)


def test_auto_mode_reads_each_metrics_direction(wine_tensors):
    learn = _cls_learner(wine_tensors, metrics=[accuracy])
    cb = EarlyStopping(monitor="accuracy", patience=5)
    learn.fit(1, cbs=cb, quiet=True)
    assert cb.comp is np.greater and cb.best == learn.recorder.value("accuracy")
    for f, hib in [(accuracy, True), (mae, False), (rmse, False), (perplexity, False)]:
        assert f.higher_is_better is hib


def test_every_public_metric_has_a_direction():
    from learnkit import metrics as M

    for name in M.__all__:
        if name in ("Metric", "AvgMetric", "AccumMetric", "as_metric"):
            continue
        m = M.FBeta(beta=2) if name == "FBeta" else M.as_metric(getattr(M, name))
        assert m.higher_is_better in (True, False), name
        assert m.direction in ("min", "max")


def test_auto_mode_refuses_a_metric_of_unknown_direction(wine_tensors):
    def closeness(pred, targ):
        return (pred.argmax(1) - targ).abs().float().mean()

    learn = _cls_learner(wine_tensors, metrics=[closeness])
    with pytest.raises(ValueError, match=r"closeness.*mode='min' or mode='max'"):
        learn.fit(1, cbs=SaveModel(monitor="closeness"), quiet=True)
    cb = SaveModel(monitor="closeness", mode="min", fname="c")
    learn.fit(2, cbs=cb, quiet=True)
    assert cb.best == pytest.approx(min(learn.recorder.value("closeness", i) for i in range(2)))
    m = AvgMetric(closeness, higher_is_better=False)
    assert m.direction == "min"


def test_explicit_mode_and_fastai_comp(wine_tensors):
    learn = _cls_learner(wine_tensors)
    cb = EarlyStopping(monitor="valid_loss", mode="max", patience=9)
    learn.fit(2, cbs=cb, quiet=True)
    assert cb.best == pytest.approx(max(learn.recorder.value("valid_loss", i) for i in range(2)))
    assert EarlyStopping(comp=np.greater).mode == "max" and EarlyStopping(comp=np.less).mode == "min"
    with pytest.raises(ValueError, match="mode"):
        EarlyStopping(mode="lowest")


# ---------------------------------------------------------------- item 2: names
def test_terminate_on_nan_is_attached_as_terminate_on_nan(wine_tensors):
    learn = _cls_learner(wine_tensors)
    learn.add_cb(TerminateOnNaN())
    assert isinstance(learn.terminate_on_nan, TerminateOnNaN)
    assert not hasattr(learn, "terminate_on_na_n")


def test_callback_attribute_names_have_no_broken_acronyms():
    from learnkit.callbacks.loggers import CSVLogger, TensorBoardLogger
    from learnkit.callbacks.training import GradientAccumulation, MixedPrecision

    expected = {
        TerminateOnNaN: "terminate_on_nan",
        CSVLogger: "csv_logger",
        ReduceLROnPlateau: "reduce_lr_on_plateau",
        MixedPrecision: "mixed_precision",
        GradientAccumulation: "gradient_accumulation",
        TensorBoardLogger: "tensor_board_logger",
    }
    for cls, name in expected.items():
        assert object.__new__(cls).name == name  # the name depends on the class only


# ---------------------------------------------------------------- item 3: state and state keys
def test_reduce_lr_wait_survives_a_resume(wine_tensors):
    """The epochs waited are part of the state: a resumed run reduces the LR at the same epoch."""
    learn = _cls_learner(wine_tensors)
    rl = ReduceLROnPlateau(patience=3, min_delta=100.0)  # no epoch improves by 100
    learn.fit(2, 1e-2, cbs=rl, quiet=True)
    assert rl.wait == 2 - 1  # the first epoch sets the best; the second waits
    st = rl.state_dict()
    assert st["wait"] == 1 and st["best"] == rl.best
    rl2 = ReduceLROnPlateau(patience=3, min_delta=100.0)
    rl2.load_state_dict(st)
    learn.fit(2, 1e-2, cbs=rl2, quiet=True)  # the resumed fit keeps best and wait: reduced at wait 3
    assert rl2.best == st["best"]
    assert learn.opt.param_groups[0]["lr"] == pytest.approx(1e-3)


def test_early_stopping_wait_and_best_survive_a_resume(wine_tensors):
    learn = _cls_learner(wine_tensors)
    es = EarlyStopping(patience=3, min_delta=100.0)
    learn.fit(2, cbs=es, quiet=True)
    es2 = EarlyStopping(patience=3, min_delta=100.0)
    es2.load_state_dict(torch.load(_roundtrip(es.state_dict()), weights_only=True))
    learn.fit(5, cbs=es2, quiet=True)
    assert len(learn.recorder.values) == 2  # waits 2 and 3 -> stops after two more epochs


def _roundtrip(d):
    import io

    buf = io.BytesIO()
    torch.save(d, buf)
    buf.seek(0)
    return buf


def test_save_model_kept_files_survive_a_resume(wine_tensors, tmp_path):
    learn = _cls_learner(wine_tensors, tmp_path)
    sm = SaveModel(monitor="valid_loss", fname="top", top_k=2)
    learn.fit(3, 1e-2, cbs=sm, quiet=True)
    st = torch.load(_roundtrip(sm.state_dict()), weights_only=True)
    assert [n for _, n in st["saved"]] == [n for _, n in sm.saved] and len(st["saved"]) == 2
    sm2 = SaveModel(monitor="valid_loss", fname="top", top_k=2)
    sm2.load_state_dict(st)
    sm2.learn = learn
    sm2.before_fit()
    assert sm2.saved == sm.saved and sm2.best == sm.best


def test_state_keys_tell_monitors_apart():
    a, b = EarlyStopping(monitor="valid_loss"), EarlyStopping(monitor="accuracy", mode="max")
    assert a.state_key != b.state_key
    assert "valid_loss" in a.state_key and "accuracy" in b.state_key and "max" in b.state_key
    s1, s2 = SaveModel(monitor="accuracy", fname="a"), SaveModel(monitor="accuracy", fname="b")
    assert s1.state_key != s2.state_key
    assert ReduceLROnPlateau().state_key.startswith("ReduceLROnPlateau")


# ---------------------------------------------------------------- item 7: fastai names
def test_fastai_callback_names_are_aliases():
    from learnkit.callbacks import graph, loggers, training

    assert SaveModelCallback is SaveModel and EarlyStoppingCallback is EarlyStopping
    assert TerminateOnNaNCallback is TerminateOnNaN
    for mod, names in [
        (
            tracker,
            ["ReduceLROnPlateau", "SaveModelCallback", "EarlyStoppingCallback", "TerminateOnNaNCallback"],
        ),
        (loggers, ["CSVLogger"]),
        (graph, ["ShowGraphCallback"]),
        (training, ["GradientAccumulation", "GradientClip", "MixedPrecision"]),
    ]:
        for n in names:
            assert n in mod.__all__ and getattr(mod, n).__doc__, n
