"""CSVLogger and TensorBoardLogger."""

from __future__ import annotations

import importlib.util
import sys

import pandas as pd
import pytest
from conftest import mlp
from torch import nn

from learnkit import Callback, DataLoaders, Learner, accuracy, set_seed
from learnkit.callbacks.loggers import CSVLogger, TensorBoardLogger
from learnkit.exceptions import DataError
from learnkit.models import create_model, register_model


def _learner(wine_tensors, tmp_path, cbs):
    set_seed(0)
    dls = DataLoaders.from_tensors(*wine_tensors, bs=16, device="cpu")
    return Learner(dls, mlp(), loss_func=nn.CrossEntropyLoss(), metrics=accuracy, path=tmp_path, cbs=cbs)


def test_csv_logger_writes_one_row_per_epoch(wine_tensors, tmp_path):
    learn = _learner(wine_tensors, tmp_path, CSVLogger())
    learn.fit(3, lr=1e-2, quiet=True)
    path = tmp_path / "history.csv"
    df = pd.read_csv(path)
    assert list(df.columns) == ["epoch", "train_loss", "valid_loss", "accuracy", "time"]
    assert df["epoch"].tolist() == [0, 1, 2]
    for i, row in enumerate(learn.recorder.values):
        assert [df.loc[i, c] for c in ("train_loss", "valid_loss", "accuracy")] == pytest.approx(
            row, rel=1e-12
        )
    assert (df["time"] > 0).all()
    assert df.equals(learn.csv_logger.read_log())
    # a new fit overwrites; append=True adds rows under the same header
    learn.fit(2, quiet=True)
    assert len(pd.read_csv(path)) == 2
    learn.csv_logger.append = True
    learn.fit(1, quiet=True)
    df = pd.read_csv(path)
    assert df["epoch"].tolist() == [0, 1, 0] and path.read_text().count("train_loss") == 1


def test_csv_logger_rows_are_on_disk_after_each_epoch(wine_tensors, tmp_path):
    seen = []

    class ReadBack(Callback):
        order = 70  # after the logger

        def after_epoch(self):
            seen.append(len(pd.read_csv(tmp_path / "log.csv")))

    learn = _learner(wine_tensors, tmp_path, [CSVLogger("log.csv"), ReadBack()])
    learn.fit(3, quiet=True)
    assert seen == [1, 2, 3]


def test_csv_logger_append_with_other_columns_is_refused(wine_tensors, tmp_path):
    (tmp_path / "history.csv").write_text("epoch,loss\n0,1.0\n")
    learn = _learner(wine_tensors, tmp_path, CSVLogger(append=True))
    with pytest.raises(DataError, match="columns"):
        learn.fit(1, quiet=True)
    assert (tmp_path / "history.csv").read_text() == "epoch,loss\n0,1.0\n"  # untouched


def test_csv_logger_writes_on_rank_zero_only_and_not_during_lr_find(wine_tensors, tmp_path, monkeypatch):
    learn = _learner(wine_tensors, tmp_path, CSVLogger())
    learn.lr_find(num_it=20, show_plot=False)
    assert not (tmp_path / "history.csv").exists()
    monkeypatch.setenv("RANK", "1")
    learn.fit(1, quiet=True)
    assert not (tmp_path / "history.csv").exists()
    monkeypatch.setenv("RANK", "0")
    learn.fit(1, quiet=True)
    assert len(pd.read_csv(tmp_path / "history.csv")) == 1


def test_tensorboard_logger_without_tensorboard_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if tensorboard were not installed
    with pytest.raises(ImportError, match=r"pip install learnkit\[tensorboard\]"):
        TensorBoardLogger()


def test_tensorboard_logger_logs_losses_and_metrics(wine_tensors, tmp_path):
    if importlib.util.find_spec("tensorboard") is None:  # the extra is not installed: the error names the fix
        with pytest.raises(ImportError, match=r"pip install learnkit\[tensorboard\]"):
            TensorBoardLogger(tmp_path / "runs")
        return
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    learn = _learner(wine_tensors, tmp_path, TensorBoardLogger(tmp_path / "runs", trace_model=True))
    learn.fit(2, lr=1e-2, quiet=True)
    first = [list(r) for r in learn.recorder.values]
    learn.fit(1, lr=1e-3, quiet=True)  # a second fit continues the same curves
    acc = EventAccumulator(str(tmp_path / "runs"))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert {"train/loss", "train/lr", "epoch/valid_loss", "epoch/accuracy"} <= set(tags)
    n = len(learn.dls.train)
    assert [e.step for e in acc.Scalars("train/loss")] == list(range(1, 3 * n + 1))
    assert [e.step for e in acc.Scalars("epoch/accuracy")] == [0, 1, 2]
    expected = [r[2] for r in first] + [learn.recorder.values[0][2]]
    assert [e.value for e in acc.Scalars("epoch/accuracy")] == pytest.approx(expected, rel=1e-6)


# ---------------------------------------------------------------- MLflowLogger
def _mlflow_store(tmp_path, monkeypatch):
    """A real local file-backed MLflow tracking store inside tmp_path."""
    import mlflow  # noqa: F401  (mlflow-skinny is in the dev extra: the test must run, never skip)

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 keeps the file store behind this switch
    return (tmp_path / "mlruns").as_uri()


@register_model(name="test_mlflow_mlp", tags=("test",))
def _mlflow_mlp(hidden: int = 32):
    return mlp(hidden=hidden)


def test_mlflow_logger_logs_params_metrics_and_the_export(wine_tensors, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    from learnkit import load_learner
    from learnkit.callbacks.loggers import MLflowLogger

    uri = _mlflow_store(tmp_path, monkeypatch)
    cb = MLflowLogger(uri, experiment_name="wine", run_name="mlp", params={"arch": "mlp32"})
    set_seed(0)
    dls = DataLoaders.from_tensors(*wine_tensors, bs=16, device="cpu")
    learn = Learner(
        dls,
        create_model("test_mlflow_mlp", hidden=24),
        loss_func=nn.CrossEntropyLoss(),
        metrics=accuracy,
        path=tmp_path,
        cbs=cb,
    )
    learn.lr_find(num_it=10, show_plot=False)  # nothing logged during lr_find
    assert cb.run_id is None
    learn.fit(3, lr=1e-2, quiet=True)
    assert learn.mlflow_logger is cb
    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(cb.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "mlp"
    p = run.data.params
    assert p["arch"] == "mlp32" and p["n_epoch"] == "3" and p["metrics"] == "accuracy"
    assert p["loss_func"] == "CrossEntropyLoss" and float(p["lr"]) == learn.lr
    for col in ("train_loss", "valid_loss", "accuracy"):
        hist = sorted(client.get_metric_history(cb.run_id, col), key=lambda m: m.step)
        assert [m.step for m in hist] == [0, 1, 2]
        assert [m.value for m in hist] == pytest.approx([learn.recorder.value(col, i) for i in range(3)])
    # the export is an artifact that loads back to the same predictions
    assert [a.path for a in client.list_artifacts(cb.run_id)] == ["export.lk"]
    local = client.download_artifacts(cb.run_id, "export.lk", str(tmp_path / "dl"))
    x = wine_tensors[1][0][:8]
    loaded = load_learner(local)
    learn.model.eval()
    import torch

    with torch.no_grad():
        torch.testing.assert_close(loaded.model.eval()(x), learn.model(x))
    # a second fit continues the same run; epochs keep counting
    learn.fit(1, lr=1e-3, quiet=True)
    steps = [m.step for m in client.get_metric_history(cb.run_id, "valid_loss")]
    assert sorted(steps) == [0, 1, 2, 3]


def test_mlflow_logger_logs_on_rank_zero_only(wine_tensors, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    from learnkit.callbacks.loggers import MLflowLogger

    uri = _mlflow_store(tmp_path, monkeypatch)
    cb = MLflowLogger(uri, experiment_name="ranks", log_export=False)
    learn = _learner(wine_tensors, tmp_path, cb)
    monkeypatch.setenv("RANK", "1")
    learn.fit(1, quiet=True)
    assert cb.run_id is None
    assert MlflowClient(tracking_uri=uri).get_experiment_by_name("ranks") is None
    monkeypatch.setenv("RANK", "0")
    learn.fit(1, quiet=True)
    assert cb.run_id is not None


def test_mlflow_logger_without_mlflow_says_how_to_install(monkeypatch):
    from learnkit.callbacks.loggers import MLflowLogger

    monkeypatch.setitem(sys.modules, "mlflow", None)
    monkeypatch.setitem(sys.modules, "mlflow.tracking", None)
    with pytest.raises(ImportError, match=r"learnkit\[mlflow\]"):
        MLflowLogger()
