"""Loggers: the per-epoch metrics table to a CSV file, losses/metrics to TensorBoard, and runs to MLflow
(the last two are optional extras).

All write on rank 0 only in distributed runs.

>>> import torch
>>> from torch import nn
>>> from learnkit import Learner, DataLoaders
>>> x = torch.randn(256, 8); y = (x.sum(1) > 0).long()
>>> dls = DataLoaders.from_tensors((x[:200], y[:200]), (x[200:], y[200:]), bs=32, device="cpu")
>>> learn = Learner(dls, nn.Linear(8, 2), loss_func=nn.CrossEntropyLoss(), cbs=CSVLogger("history.csv"))
>>> learn.fit(2, quiet=True)                          # doctest: +SKIP
>>> learn.csv_logger.read_log()                       # doctest: +SKIP
"""

from __future__ import annotations

import csv
import io
import math
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

from ..distributed import rank_distrib
from ..exceptions import DataError
from .core import Callback

__all__ = ["CSVLogger", "TensorBoardLogger", "MLflowLogger"]


def _is_lr_find(learn) -> bool:
    from .schedule import LRFinder

    return any(isinstance(c, LRFinder) for c in learn.cbs)


def _cell(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, bool):
        return str(int(v))
    if isinstance(v, int):
        return str(v)
    return repr(float(v))


class CSVLogger(Callback):
    """Write one row per epoch (the columns of ``learn.recorder.metric_names``) to a CSV file.

    Each row is written and flushed at the end of its epoch, so the file is complete up to the last finished
    epoch even if training is interrupted. The ``time`` column is in seconds. Rank 0 only.

    Args:
        fname: the file, relative to ``learn.path`` unless absolute.
        append: add rows to an existing file (its header must match) instead of overwriting it; use it when
            resuming from a checkpoint.

    >>> cb = CSVLogger("history.csv")
    """

    order = 55  # after the Recorder (50) filled in the epoch's row

    def __init__(self, fname: str | os.PathLike = "history.csv", append: bool = False):
        self.fname, self.append = fname, append

    @property
    def path(self) -> Path:
        """Where the file is (or will be) written."""
        p = Path(self.fname)
        return p if p.is_absolute() or self.learn is None else Path(self.learn.path) / p

    def _active(self) -> bool:
        return rank_distrib() == 0 and not _is_lr_find(self.learn)

    def before_fit(self):
        self._on = self._active()
        if not self._on:
            return
        names = list(self.learn.recorder.metric_names)
        path = self.path
        path.parent.mkdir(parents=True, exist_ok=True)
        if self.append and path.exists() and path.stat().st_size > 0:
            with open(path, newline="") as f:
                header = next(csv.reader(f), [])
            if header != names:
                raise DataError(
                    f"Expected the columns of {str(path)!r} to match this training's columns. Received: "
                    f"file columns={header}, training columns={names}. Fix: CSVLogger(append=False) to "
                    "overwrite, or another fname."
                )
            return
        self._write_line(names, mode="w")

    def _write_line(self, cells, mode: str = "a") -> None:
        buf = io.StringIO()
        csv.writer(buf).writerow(cells)
        with open(self.path, mode, newline="") as f:
            f.write(buf.getvalue())
            f.flush()
            os.fsync(f.fileno())

    def after_epoch(self):
        if not getattr(self, "_on", False):
            return
        rec = self.learn.recorder
        if not rec.log_rows:
            return
        row = rec.log_rows[-1]
        self._write_line([_cell(row[0])] + [_cell(v) for v in row[1:-1]] + [f"{row[-1]:.3f}"])

    def read_log(self):
        """The file as a pandas DataFrame."""
        import pandas as pd

        return pd.read_csv(self.path)


def _summary_writer_cls():
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as e:
        raise ImportError(
            "TensorBoardLogger needs the tensorboard package, which is not installed. "
            "Fix: pip install learnkit[tensorboard]"
        ) from e
    return SummaryWriter


class TensorBoardLogger(Callback):
    """Log the training loss and learning rate per batch, and every recorded column per epoch, to TensorBoard.

    Needs the optional extra: ``pip install learnkit[tensorboard]``. Scalars: ``train/loss`` and ``train/lr``
    (every ``log_every`` training batches), ``epoch/<column>`` (each of ``recorder.metric_names``); steps and
    epochs continue across successive ``fit`` calls with the same logger. With ``trace_model`` the model graph is traced on one training
    batch. Rank 0 only. Reading the loss every batch syncs the GPU; raise ``log_every`` for long runs.

    Args:
        log_dir: the run directory (default ``learn.path/runs/<date-time>`` of the first fit; ``self.run_dir``).
        trace_model: add the model graph. log_every: batches between per-batch scalars.

    >>> cb = TensorBoardLogger("runs/exp1")          # doctest: +SKIP
    """

    order = 56

    def __init__(
        self, log_dir: str | os.PathLike | None = None, trace_model: bool = False, log_every: int = 1
    ):
        self._writer_cls = _summary_writer_cls()  # fail early, with the fix, when the extra is missing
        self.log_dir, self.trace_model, self.log_every = log_dir, trace_model, max(1, int(log_every))
        self.writer, self.run_dir = None, None
        self._steps_done = self._epochs_done = 0  # earlier fits, so that a new fit continues the curves

    def before_fit(self):
        learn = self.learn
        self._on = rank_distrib() == 0 and not _is_lr_find(learn)
        if not self._on:
            return
        self._step0, self._epoch0 = self._steps_done, self._epochs_done
        if self.run_dir is None:  # chosen once: later fits add to the same run
            log_dir = self.log_dir
            if log_dir is None:
                log_dir = Path(learn.path) / "runs" / time.strftime("%Y%m%d-%H%M%S")
            self.run_dir = Path(log_dir)
        if self.writer is None:
            self.writer = self._writer_cls(log_dir=str(self.run_dir))
        if self.trace_model:
            self._trace()

    def _trace(self) -> None:
        import torch

        learn = self.learn
        try:
            b = learn.dls.one_batch()
            learn._split(b)
            was = learn.model.training
            learn.model.eval()
            try:
                with torch.no_grad(), warnings.catch_warnings():
                    warnings.simplefilter("ignore", FutureWarning)  # torch.jit.trace's deprecation notice
                    self.writer.add_graph(learn.model, learn.xb[0] if len(learn.xb) == 1 else tuple(learn.xb))
            finally:
                learn.model.train(was)
        except Exception as e:  # tracing fails on some models (dict inputs, data-dependent control flow)
            warnings.warn(f"TensorBoardLogger could not trace the model graph: {e}")

    def after_batch(self):
        learn = self.learn
        if not getattr(self, "_on", False) or not learn.training or learn.loss is None:
            return
        if learn.train_iter % self.log_every == 0:
            step = self._step0 + learn.train_iter
            self.writer.add_scalar("train/loss", float(learn.loss), step)
            self.writer.add_scalar("train/lr", learn.opt.param_groups[-1]["lr"], step)

    def after_epoch(self):
        if not getattr(self, "_on", False):
            return
        rec = self.learn.recorder
        if not rec.log_rows:
            return
        row = rec.log_rows[-1]
        for name, v in zip(rec.metric_names[1:], row[1:]):
            if v is not None and not (isinstance(v, float) and math.isnan(v)):
                self.writer.add_scalar(f"epoch/{name}", float(v), self._epoch0 + self.learn.epoch)
        self.writer.flush()
        self._epochs_done = self._epoch0 + self.learn.epoch + 1

    def after_fit(self):
        if getattr(self, "_on", False):
            self._steps_done = self._step0 + self.learn.train_iter
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _mlflow_client_cls():
    try:
        from mlflow.tracking import MlflowClient
    except ImportError as e:
        raise ImportError(
            "MLflowLogger needs the mlflow package, which is not installed. Fix: pip install learnkit[mlflow]"
        ) from e
    return MlflowClient


def _param(v) -> str:
    if isinstance(v, slice):
        return f"slice({v.start}, {v.stop})"
    return str(getattr(v, "__name__", None) or (type(v).__name__ if callable(v) else v))[:500]


class MLflowLogger(Callback):
    """Log a training run to MLflow: its parameters, every recorded column per epoch, and the exported
    learner as an artifact. Rank 0 only; nothing is logged during ``lr_find``.

    Needs the optional extra: ``pip install learnkit[mlflow]``. Uses an explicit ``MlflowClient`` (no global
    active run): ``tracking_uri`` is any MLflow store (``None``: MLflow's default, ``$MLFLOW_TRACKING_URI``),
    e.g. ``'sqlite:///mlflow.db'`` or a server URL. One run spans every ``fit`` with this logger (``fine_tune``'s
    two phases are one run; epochs keep counting); ``self.run_id`` names it.

    Parameters logged at the first fit: the learning rate, epochs, batch size, optimizer, loss, model class,
    weight decay, metric names and ``params`` (your own). Metrics: each column of ``recorder.metric_names``
    (``train_loss``, ``valid_loss``, metrics, ``time``) with the epoch as step. With ``log_export`` the
    learner's pickle-free export (``export_fname``) is attached at the end of each fit; a model that cannot
    be exported gives a warning, not an error.

    >>> cb = MLflowLogger("sqlite:///mlflow.db", experiment_name="pets", params={"arch": "resnet34"})  # doctest: +SKIP
    """

    order = 57  # after the Recorder (50) filled in the epoch's row

    def __init__(
        self,
        tracking_uri: str | None = None,
        experiment_name: str = "learnkit",
        run_name: str | None = None,
        params: dict | None = None,
        tags: dict | None = None,
        log_export: bool = True,
        export_fname: str = "export.lk",
    ):
        self._client_cls = _mlflow_client_cls()  # fail early, with the fix, when the extra is missing
        self.tracking_uri, self.experiment_name, self.run_name = tracking_uri, experiment_name, run_name
        self.params, self.tags, self.log_export, self.export_fname = (
            dict(params or {}),
            dict(tags or {}),
            log_export,
            export_fname,
        )
        self.client, self.run_id, self._epochs_done = None, None, 0

    @property
    def name(self) -> str:
        """``'mlflow_logger'`` (the generic snake-case rule would give "m_lflow_logger")."""
        return "mlflow_logger"

    def before_fit(self):
        learn = self.learn
        self._on = rank_distrib() == 0 and not _is_lr_find(learn)
        if not self._on:
            return
        self._epoch0 = self._epochs_done
        if self.client is None:
            self.client = self._client_cls(tracking_uri=self.tracking_uri)
        if self.run_id is None:
            exp = self.client.get_experiment_by_name(self.experiment_name)
            exp_id = (
                exp.experiment_id if exp is not None else self.client.create_experiment(self.experiment_name)
            )
            run = self.client.create_run(exp_id, run_name=self.run_name, tags=self.tags or None)
            self.run_id = run.info.run_id
            for k, v in self._run_params().items():
                self.client.log_param(self.run_id, k, _param(v))

    def _run_params(self) -> dict:
        learn = self.learn
        pg = learn.opt.param_groups[-1] if learn.opt is not None else {}
        out = {
            "lr": learn.lr,
            "n_epoch": learn.n_epoch,
            "bs": getattr(learn.dls.train, "bs", None),
            "opt_func": learn.opt_func,
            "loss_func": learn.loss_func,
            "model": type(learn.model).__name__,
            "wd": pg.get("weight_decay", learn.wd),
            "metrics": ",".join(m.name for m in learn.metrics),
        }
        out.update(self.params)
        return out

    def after_epoch(self):
        if not getattr(self, "_on", False):
            return
        rec = self.learn.recorder
        if not rec.log_rows:
            return
        step = self._epoch0 + self.learn.epoch
        for name, v in zip(rec.metric_names[1:], rec.log_rows[-1][1:]):
            if v is not None and not (isinstance(v, float) and math.isnan(v)):
                self.client.log_metric(self.run_id, name, float(v), step=step)
        self._epochs_done = step + 1

    def after_fit(self):
        if not getattr(self, "_on", False) or self.run_id is None:
            return
        failed = sys.exc_info()[1] is not None
        if self.log_export and not failed:
            with tempfile.TemporaryDirectory() as d:
                try:
                    path = self.learn.export(Path(d) / self.export_fname)
                except Exception as e:  # e.g. a custom model with no registered factory
                    warnings.warn(
                        f"MLflowLogger could not export the learner, so no artifact was logged: {e}"
                    )
                else:
                    self.client.log_artifact(self.run_id, str(path))
        self.client.set_terminated(self.run_id, status="FAILED" if failed else "FINISHED")
