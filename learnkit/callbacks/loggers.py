"""Loggers: the per-epoch metrics table to a CSV file, and losses/metrics to TensorBoard (optional extra).

Both write on rank 0 only in distributed runs.

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
import time
import warnings
from pathlib import Path

from ..distributed import rank_distrib
from ..exceptions import DataError
from .core import Callback

__all__ = ["CSVLogger", "TensorBoardLogger"]


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
