"""Callbacks that watch a monitored value (EarlyStopping, SaveModel, ReduceLROnPlateau), stop on a
non-finite loss, and write resumable checkpoints."""

from __future__ import annotations

import math
import sys

import numpy as np

from ..exceptions import CancelFitException, NonFiniteLossError
from ..utils import suggest
from .checkpoint import Checkpoint
from .core import Callback

__all__ = ["MonitorCallback", "EarlyStopping", "SaveModel", "ReduceLROnPlateau", "TerminateOnNaN", "Checkpoint"]


class TerminateOnNaN(Callback):
    """Stops training with :class:`~learnkit.exceptions.NonFiniteLossError` as soon as the training loss is NaN
    or infinite, before the optimizer steps, so the weights (and any checkpoint) stay as they were."""

    order = -5
    run_valid = False

    def after_loss(self):
        learn = self.learn
        loss = learn.loss
        if loss is None:
            return
        v = float(loss) if loss.ndim == 0 else float(loss.sum())
        if not math.isfinite(v):
            raise NonFiniteLossError(
                f"The training loss is {v} at epoch {learn.epoch}, batch {learn.iter}; training stopped before the "
                "optimizer step, so the weights are those of the last finite batch. Expected a finite loss. Fix: "
                "lower the learning rate (see learn.lr_find()), check the inputs and targets for NaN/inf, or clip "
                "gradients with GradientClip."
            )


class MonitorCallback(Callback):
    """Base for callbacks watching ``monitor`` (a column of the recorder such as 'valid_loss' or a metric name).

    ``comp`` is ``np.less`` or ``np.greater`` (default: less for names with 'loss' or 'error', else greater);
    an improvement must beat the best by ``min_delta``. After each epoch ``self.new_best`` says whether it did.
    """

    order = 80

    def __init__(self, monitor: str = "valid_loss", comp=None, min_delta: float = 0.0, reset_on_fit: bool = True):
        if comp is None:
            comp = np.less if ("loss" in monitor or "error" in monitor) else np.greater
        if comp == np.less:
            min_delta *= -1
        self.monitor, self.comp, self.min_delta, self.reset_on_fit = monitor, comp, min_delta, reset_on_fit
        self.best = None

    def before_fit(self):
        names = self.learn.recorder.metric_names[1:-1]
        if self.monitor not in names:
            raise ValueError(f"{type(self).__name__} monitors {self.monitor!r}, which is not recorded. Expected one "
                             f"of {names}.{suggest(self.monitor, names)} Fix: pass monitor= one of those names.")
        self._idx = names.index(self.monitor)
        if self.reset_on_fit or self.best is None:
            self.best = float("inf") if self.comp == np.less else -float("inf")

    def after_epoch(self):
        val = self.learn.recorder.values[-1][self._idx]
        self.new_best = val is not None and bool(self.comp(val - self.min_delta, self.best))
        if self.new_best:
            self.best = val
        self.last = val

    def state_dict(self) -> dict:
        return {"best": self.best}

    def load_state_dict(self, d: dict) -> None:
        self.best = d["best"]


class EarlyStopping(MonitorCallback):
    """Stops training when ``monitor`` has not improved for ``patience`` epochs."""

    def __init__(self, monitor: str = "valid_loss", comp=None, min_delta: float = 0.0, patience: int = 1,
                 reset_on_fit: bool = True):
        super().__init__(monitor, comp, min_delta, reset_on_fit)
        self.patience = patience

    def before_fit(self):
        self.wait = 0
        super().before_fit()

    def after_epoch(self):
        super().after_epoch()
        if self.new_best:
            self.wait = 0
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.stopped_epoch = self.learn.epoch
                raise CancelFitException()

    def state_dict(self):
        return {"best": self.best, "wait": getattr(self, "wait", 0)}

    def load_state_dict(self, d):
        self.best, self.wait = d["best"], d["wait"]


class SaveModel(MonitorCallback):
    """Saves the model when ``monitor`` improves (``fname``), every epoch (``every_epoch``: ``fname_{epoch}``),
    or keeps the ``top_k`` best epochs; with ``reload_best`` the best weights are loaded at the end of fit."""

    order = 81

    def __init__(self, monitor: str = "valid_loss", comp=None, min_delta: float = 0.0, fname: str = "model",
                 every_epoch: bool = False, top_k: int = 1, with_opt: bool = False, reload_best: bool = False,
                 reset_on_fit: bool = True):
        super().__init__(monitor, comp, min_delta, reset_on_fit)
        self.fname, self.every_epoch, self.top_k, self.with_opt, self.reload_best = (fname, every_epoch, top_k,
                                                                                     with_opt, reload_best)
        self.saved: list[tuple[float, str]] = []

    def _save(self, name: str):
        from ..distributed import rank_distrib

        if rank_distrib() == 0:
            self.learn.save(name, with_opt=self.with_opt)

    def after_epoch(self):
        super().after_epoch()
        learn = self.learn
        if self.every_epoch:
            self._save(f"{self.fname}_{learn.epoch}")
        elif self.top_k > 1:
            if self.last is None:
                return
            name = f"{self.fname}_{learn.epoch}"
            self.saved.append((self.last, name))
            better_first = sorted(self.saved, key=lambda t: t[0], reverse=self.comp != np.less)
            keep, drop = better_first[: self.top_k], better_first[self.top_k :]
            if (self.last, name) in keep:
                self._save(name)
            from ..distributed import rank_distrib

            for _, n in drop:
                f = learn._file(n)
                if rank_distrib() == 0 and f.exists():
                    f.unlink()
            self.saved = keep
        elif self.new_best:
            self._save(self.fname)

    def after_fit(self):
        if self.reload_best and not self.every_epoch and sys.exc_info()[1] is None:
            name = self.fname if self.top_k <= 1 else (self.saved[0][1] if self.saved else None)
            if name is not None and self.learn._file(name).exists():
                self.learn.load(name, with_opt=False)


class ReduceLROnPlateau(MonitorCallback):
    """Divides the learning rate by ``factor`` when ``monitor`` has not improved for ``patience`` epochs."""

    order = 82

    def __init__(self, monitor: str = "valid_loss", comp=None, min_delta: float = 0.0, patience: int = 1,
                 factor: float = 10.0, min_lr: float = 0.0, reset_on_fit: bool = True):
        super().__init__(monitor, comp, min_delta, reset_on_fit)
        self.patience, self.factor, self.min_lr = patience, factor, min_lr

    def before_fit(self):
        self.wait = 0
        super().before_fit()

    def after_epoch(self):
        super().after_epoch()
        if self.new_best:
            self.wait = 0
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.wait = 0
            for pg in self.learn.opt.param_groups:
                pg["lr"] = max(pg["lr"] / self.factor, self.min_lr)
            self.reduced_to = self.learn.opt.param_groups[-1]["lr"]
