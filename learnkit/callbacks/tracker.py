"""Callbacks that watch a monitored value (EarlyStopping, SaveModel, ReduceLROnPlateau), stop on a
non-finite loss, and write resumable checkpoints."""

from __future__ import annotations

import math
import sys

import numpy as np

from ..distributed import rank_distrib
from ..exceptions import CancelFitException, NonFiniteLossError
from ..utils import all_finite, suggest
from .checkpoint import Checkpoint, unwrap_model
from .core import Callback

__all__ = [
    "MonitorCallback",
    "EarlyStopping",
    "SaveModel",
    "ReduceLROnPlateau",
    "TerminateOnNaN",
    "Checkpoint",
    "SaveModelCallback",
    "EarlyStoppingCallback",
    "TerminateOnNaNCallback",
]


class TerminateOnNaN(Callback):
    """Stops training with :class:`~learnkit.exceptions.NonFiniteLossError` as soon as the training loss is NaN
    or infinite, before the optimizer steps, so the weights (and any checkpoint) stay as they were.

    Attached as ``learn.terminate_on_nan``; fastai's name ``TerminateOnNaNCallback`` is an alias.

    >>> cb = TerminateOnNaN()
    >>> cb.name
    'terminate_on_nan'
    """

    order = -5
    run_valid = False

    @property
    def name(self) -> str:
        """``'terminate_on_nan'`` (the generic snake-case rule would split "NaN" into "na_n")."""
        return "terminate_on_nan"

    def after_loss(self):
        learn = self.learn
        loss = learn.loss
        if loss is None:
            return
        v = float(loss) if loss.ndim == 0 else float(loss.sum())
        if not math.isfinite(v):
            if all_finite(unwrap_model(learn.model).parameters()):
                state = "so the weights are those of the last finite batch"
            else:  # an earlier step had NaN/inf gradients behind a finite loss (learn.check_grads = "lazy")
                state = (
                    "but the weights are already NaN or infinite: an earlier step had NaN/inf gradients behind a "
                    "finite loss (learn.check_grads = True stops at that step with the weights intact). No "
                    "checkpoint was written with them; reload the last one with learn.fit(..., resume=path)"
                )
            raise NonFiniteLossError(
                f"The training loss is {v} at epoch {learn.epoch}, batch {learn.iter}; training stopped before the "
                f"optimizer step, {state}. Expected a finite loss. Fix: lower the learning rate (see "
                "learn.lr_find()), check the inputs and targets for NaN/inf, or clip gradients with GradientClip."
            )


_MODES = ("auto", "min", "max")
_LOSS_COLUMNS = ("train_loss", "valid_loss", "loss")


class MonitorCallback(Callback):
    """Base for callbacks watching ``monitor`` (a column of the recorder such as 'valid_loss' or a metric name).

    Which way is better comes from ``mode``: ``'min'``, ``'max'``, or ``'auto'`` (default), which asks the
    metric itself (:attr:`learnkit.metrics.Metric.higher_is_better`: accuracy, F1, R2 go up; rmse, mae, error
    rate, perplexity go down), takes losses as lower-is-better, and raises a clear error for a metric whose
    direction is unknown. fastai's ``comp=np.less`` / ``comp=np.greater`` still works and wins over ``mode``.
    An improvement must beat the best by ``min_delta``. After each epoch ``self.new_best`` says whether it did.

    The best value (and each subclass's counters) are in :meth:`state_dict`; :attr:`state_key` includes the
    monitor and mode, so two ``EarlyStopping`` on different monitors keep separate states in a checkpoint.

    >>> cb = EarlyStopping(monitor="mae", mode="min", patience=3)
    >>> cb.state_key
    "EarlyStopping{'monitor': 'mae', 'mode': 'min'}"
    """

    order = 80

    def __init__(
        self,
        monitor: str = "valid_loss",
        comp=None,
        min_delta: float = 0.0,
        reset_on_fit: bool = True,
        mode: str = "auto",
    ):
        if mode not in _MODES:
            raise ValueError(
                f"Expected mode to be one of {_MODES}. Received: mode={mode!r}. Fix: mode='min' when "
                f"lower values of {monitor!r} are better, mode='max' when higher are."
            )
        if comp is not None:
            if comp not in (np.less, np.greater):
                raise ValueError(
                    f"Expected comp to be np.less or np.greater. Received: comp={comp!r}. Fix: pass "
                    "mode='min' or mode='max' instead."
                )
            mode = "min" if comp is np.less else "max"
        self.monitor, self.mode, self.min_delta, self.reset_on_fit = (
            monitor,
            mode,
            abs(min_delta),
            reset_on_fit,
        )
        self.comp = None if mode == "auto" else (np.less if mode == "min" else np.greater)
        self.best = None
        self._restored = False

    @property
    def state_key(self) -> str:
        """The key of this callback's state in a checkpoint: the class name with the monitor and mode."""
        return f"{type(self).__name__}{{'monitor': {self.monitor!r}, 'mode': {self.mode!r}}}"

    def _resolve_mode(self) -> str:
        """'min' or 'max' for the monitored column (``mode='auto'``: from the metric's direction)."""
        if self.mode != "auto":
            return self.mode
        name = self.monitor
        if name in _LOSS_COLUMNS or name.endswith("_loss"):
            return "min"
        learn = self.learn
        metrics = list(learn.metrics)
        for m in metrics:
            if name in (m.name, f"train_{m.name}", f"valid_{m.name}"):
                direction = getattr(m, "direction", None)
                if direction is None:
                    hib = getattr(m, "higher_is_better", None)
                    direction = None if hib is None else ("max" if hib else "min")
                if direction is None:
                    raise ValueError(
                        f"{type(self).__name__} cannot tell whether higher or lower {name!r} is better. Expected a "
                        f"metric with a known direction (higher_is_better=True/False). Received: monitor={name!r} "
                        f"({m!r}, higher_is_better=None). Fix: pass mode='min' or mode='max' to "
                        f"{type(self).__name__}, or give the metric a direction, e.g. "
                        "AvgMetric(f, higher_is_better=False)."
                    )
                return direction
        raise ValueError(
            f"{type(self).__name__} cannot tell whether higher or lower {name!r} is better: it is no "
            f"loss and no metric of the learner. Fix: pass mode='min' or mode='max'."
        )

    def before_fit(self):
        names = self.learn.recorder.metric_names[1:-1]
        if self.monitor not in names:
            raise ValueError(
                f"{type(self).__name__} monitors {self.monitor!r}, which is not recorded. Expected one "
                f"of {names}.{suggest(self.monitor, names)} Fix: pass monitor= one of those names."
            )
        self._idx = names.index(self.monitor)
        self.comp = np.less if self._resolve_mode() == "min" else np.greater
        restored, self._restored = self._restored, False
        if not restored and (self.reset_on_fit or self.best is None):
            self.best = float("inf") if self.comp is np.less else -float("inf")
        self._after_restore = restored

    def _improved(self, val, best) -> bool:
        """Whether ``val`` beats ``best`` by more than ``min_delta`` in the monitor's direction."""
        delta = -self.min_delta if self.comp is np.less else self.min_delta
        return bool(self.comp(val - delta, best))

    def after_epoch(self):
        val = self.learn.recorder.values[-1][self._idx]
        self.new_best = val is not None and self._improved(val, self.best)
        if self.new_best:
            self.best = val
        self.last = val

    def state_dict(self) -> dict:
        """The best value so far (plain floats)."""
        return {"best": self.best}

    def load_state_dict(self, d: dict) -> None:
        """Restore the state; the next ``fit`` (a resume) keeps it even with ``reset_on_fit``."""
        self.best = d["best"]
        self._restored = True


class EarlyStopping(MonitorCallback):
    """Stops training when ``monitor`` has not improved for ``patience`` epochs (fastai: EarlyStoppingCallback).

    >>> cb = EarlyStopping(monitor="valid_loss", patience=3)
    """

    def __init__(
        self,
        monitor: str = "valid_loss",
        comp=None,
        min_delta: float = 0.0,
        patience: int = 1,
        reset_on_fit: bool = True,
        mode: str = "auto",
    ):
        super().__init__(monitor, comp, min_delta, reset_on_fit, mode=mode)
        self.patience = patience
        self.wait = 0

    def before_fit(self):
        super().before_fit()
        if not self._after_restore:
            self.wait = 0

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
        """The best value and the epochs waited since it."""
        return {"best": self.best, "wait": self.wait}

    def load_state_dict(self, d):
        """Restore best and wait."""
        super().load_state_dict(d)
        self.wait = int(d["wait"])


class SaveModel(MonitorCallback):
    """Saves the model when ``monitor`` improves (``fname``), every epoch (``every_epoch``: ``fname_{epoch}``),
    or keeps the ``top_k`` best epochs; with ``reload_best`` the best weights are loaded at the end of fit.
    fastai's name ``SaveModelCallback`` is an alias.

    The best value and the list of kept files are in :meth:`state_dict`, so a resumed run keeps the same files.

    >>> cb = SaveModel(monitor="accuracy", fname="best", reload_best=True)
    """

    order = 81

    def __init__(
        self,
        monitor: str = "valid_loss",
        comp=None,
        min_delta: float = 0.0,
        fname: str = "model",
        every_epoch: bool = False,
        top_k: int = 1,
        with_opt: bool = False,
        reload_best: bool = False,
        reset_on_fit: bool = True,
        mode: str = "auto",
    ):
        super().__init__(monitor, comp, min_delta, reset_on_fit, mode=mode)
        self.fname, self.every_epoch, self.top_k, self.with_opt, self.reload_best = (
            fname,
            every_epoch,
            top_k,
            with_opt,
            reload_best,
        )
        self.saved: list[tuple[float, str]] = []

    @property
    def state_key(self) -> str:
        """The class name with the monitor, mode and file name."""
        return (
            f"{type(self).__name__}{{'monitor': {self.monitor!r}, 'mode': {self.mode!r}, "
            f"'fname': {self.fname!r}}}"
        )

    def before_fit(self):
        super().before_fit()
        if not self._after_restore and self.reset_on_fit:
            self.saved = []

    def _save(self, name: str):
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
            better_first = sorted(self.saved, key=lambda t: t[0], reverse=self.comp is not np.less)
            keep, drop = better_first[: self.top_k], better_first[self.top_k :]
            if (self.last, name) in keep:
                self._save(name)
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

    def state_dict(self) -> dict:
        """The best value and the kept ``(value, file name)`` pairs, best first."""
        return {"best": self.best, "saved": [[float(v), str(n)] for v, n in self.saved]}

    def load_state_dict(self, d: dict) -> None:
        """Restore best and the kept files."""
        super().load_state_dict(d)
        self.saved = [(float(v), str(n)) for v, n in d.get("saved", [])]


class ReduceLROnPlateau(MonitorCallback):
    """Divides the learning rate by ``factor`` when ``monitor`` has not improved for ``patience`` epochs.

    >>> cb = ReduceLROnPlateau(monitor="valid_loss", patience=2, factor=5.0)
    """

    order = 82

    def __init__(
        self,
        monitor: str = "valid_loss",
        comp=None,
        min_delta: float = 0.0,
        patience: int = 1,
        factor: float = 10.0,
        min_lr: float = 0.0,
        reset_on_fit: bool = True,
        mode: str = "auto",
    ):
        super().__init__(monitor, comp, min_delta, reset_on_fit, mode=mode)
        self.patience, self.factor, self.min_lr = patience, factor, min_lr
        self.wait = 0

    def before_fit(self):
        super().before_fit()
        if not self._after_restore:
            self.wait = 0

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

    def state_dict(self) -> dict:
        """The best value and the epochs waited since it."""
        return {"best": self.best, "wait": self.wait}

    def load_state_dict(self, d: dict) -> None:
        """Restore best and wait."""
        super().load_state_dict(d)
        self.wait = int(d["wait"])


#: fastai's class names, so ported scripts keep working.
SaveModelCallback = SaveModel
EarlyStoppingCallback = EarlyStopping
TerminateOnNaNCallback = TerminateOnNaN
