"""The Learner: a model, its data, a loss and an optimizer, and the training loop.

The loop is in this file and reads top to bottom: ``fit`` -> epochs -> train / validate -> batches.
Each phase runs "before, body, (cancel), after" through :meth:`Learner._with_events`; everything that is
not the loop (progress, recording, schedules, checkpoints, precision, ...) is a callback.

>>> import torch
>>> from torch import nn
>>> from learnkit import Learner, DataLoaders
>>> x = torch.randn(256, 8); y = (x.sum(1) > 0).long()
>>> dls = DataLoaders.from_tensors((x[:200], y[:200]), (x[200:], y[200:]), bs=32, device="cpu")
>>> learn = Learner(dls, nn.Linear(8, 2), loss_func=nn.CrossEntropyLoss(), cbs=None)
>>> learn.fit(1, quiet=True)
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import math
import os
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from torch import nn

from .callbacks.checkpoint import Resume, checkpoint_state, load_state_checked, unwrap_model
from .callbacks.core import BATCH_EVENTS, Callback, event_doc, loop_events, sort_callbacks
from .callbacks.progress import GatherPreds, ProgressCallback, Recorder, TrainEvalCallback, model_summary
from .callbacks.schedule import LRFinder, ParamScheduler, SchedCos, combine_scheds, combined_cos, valley
from .callbacks.tracker import TerminateOnNaN
from .callbacks.training import MixedPrecision
from .data.loaders import TARGET_KEYS, DataLoaders, DeviceLoader
from .device import get_rng_state, set_rng_state, to_cpu
from .distributed import DistributedTrainer, auto_callbacks, num_distrib
from .exceptions import (
    CancelBackwardException,
    CancelBatchException,
    CancelEpochException,
    CancelFitException,
    CancelStepException,
    CancelTrainException,
    CancelValidException,
    DataError,
    ModelError,
    NonFiniteGradientError,
)
from .export import export_learner
from .losses import loss_activation, loss_decodes
from .metrics import AvgMetric, as_metric
from .optim import Adam, lr_spread, make_opt, n_groups, no_decay_params, param_groups, set_hyper
from .utils import all_finite, atomic_save, listify, safe_load

__all__ = ["Learner", "load_state_checked"]

_CANCELS = (
    CancelBatchException,
    CancelBackwardException,
    CancelStepException,
    CancelTrainException,
    CancelValidException,
    CancelEpochException,
    CancelFitException,
)

_BN_TYPES = (
    nn.modules.batchnorm._BatchNorm,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.modules.instancenorm._InstanceNorm,
)


def _annotate(e: BaseException, cb: Callback, event: str) -> None:
    """Name the callback and the event in an exception raised inside a callback (type kept)."""
    if getattr(e, "_learnkit_annotated", False):
        return
    msg = f"Exception in callback `{type(cb).__name__}` at event `{event}`"
    try:
        if e.args and isinstance(e.args[0], str):
            e.args = (f"{msg}: {e.args[0]}",) + tuple(e.args[1:])
        else:
            e.args = (f"{msg}: {e.args[0] if e.args else type(e).__name__}",) + tuple(e.args[1:])
    except Exception:  # some exception types have read-only args
        pass
    if hasattr(e, "add_note"):
        e.add_note(msg)
    e._learnkit_annotated = True


class Learner:
    """Trains ``model`` on ``dls`` with ``loss_func`` and an optimizer from ``opt_func``.

    Args:
        dls: a :class:`~learnkit.data.DataLoaders`, or a ``(train_loader, valid_loader)`` pair of any
            PyTorch ``DataLoader``s.
        model: any ``nn.Module``. It is moved to the device once.
        loss_func: the loss; ``None`` takes the one the data says fits (DataBlock, applications).
        opt_func: a ``torch.optim`` optimizer class or factory ``f(param_groups, lr=...)``
            (default :func:`learnkit.optim.Adam`, i.e. AdamW with decoupled weight decay).
        lr: default learning rate. splitter: ``f(model) -> [params, ...]`` parameter groups for
            freezing and discriminative LRs. cbs: extra callbacks. metrics: functions or
            :class:`~learnkit.metrics.Metric` objects computed on the validation set.
        wd: weight decay (``None``: the optimizer's default). path/model_dir: where ``save``/
            checkpoints go. device: overrides the data's device. compile: ``torch.compile`` the forward.
        train_bn: normalisation layers keep training when the rest is frozen. moms: the momentum cycle of
            ``fit_one_cycle`` (fastai's default ``(0.95, 0.85, 0.95)``). wd_bn_bias: ``False`` keeps
            normalisation layers and biases free of weight decay, as fastai does by default (each splitter
            group then becomes two torch param groups, ``pg['group']`` naming its splitter group). learnkit's
            default ``True`` keeps one param group per splitter group, as plain PyTorch code expects.

    State during ``fit`` (callbacks read and may change it): ``xb, yb, pred, loss, loss_grad, epoch,
    n_epoch, iter, n_iter, train_iter, training, dl``; the position API: :attr:`position`, ``start_epoch``,
    ``resume_at``, ``in_step``, ``stepped_at`` (:meth:`mark_stepped`) and ``exception``.

    Guards in the loop: the learning rate must be finite and > 0; an element-wise torch loss (MSE, L1,
    BCE, ...) refuses an output and target of different shapes (they would broadcast); a NaN/inf loss stops
    training before its step (:class:`~learnkit.callbacks.TerminateOnNaN`), and no checkpoint is ever
    written with non-finite weights. A finite loss can still have NaN/inf *gradients* (``sqrt(0)``,
    ``log(0)``): ``learn.check_grads`` (see :attr:`check_grads`) says how those are caught. By default
    (``"lazy"``) the loop adds no per-step work: the weights are checked once per epoch and before every
    checkpoint, and the NaN loss that follows a bad step stops training; ``True`` checks the gradients before
    every step with one fused kernel (the weights stay finite; ~10 us a step on CPU, one device sync a step
    on a GPU); ``False`` turns the epoch check off too.

    Example: ``learn = Learner(dls, nn.Linear(10, 2), metrics=accuracy); learn.fit_one_cycle(1)``.
    """

    def __init__(
        self,
        dls,
        model: nn.Module,
        loss_func: Callable | None = None,
        opt_func: Callable = Adam,
        lr: float = 1e-3,
        splitter: Callable | None = None,
        cbs: Iterable[Callback] | None = None,
        metrics=None,
        wd: float | None = None,
        path: str | os.PathLike = ".",
        model_dir: str = "models",
        device=None,
        compile: bool = False,
        train_bn: bool = True,
        moms=(0.95, 0.85, 0.95),
        wd_bn_bias: bool = True,
    ):
        if not isinstance(model, nn.Module):
            raise ModelError(f"Expected model to be a torch.nn.Module. Received: {type(model).__name__}.")
        if not isinstance(dls, DataLoaders):
            if isinstance(dls, (list, tuple)):
                dls = DataLoaders(*dls, device=device)
            else:
                raise DataError(
                    f"Expected dls to be DataLoaders or a (train_loader, valid_loader) pair. "
                    f"Received: {type(dls).__name__}. Fix: DataLoaders(train_dl, valid_dl)."
                )
        if device is not None:
            dls.to(device)
        _check_lr(lr, "lr")
        self.dls, self.path, self.model_dir = dls, Path(path), model_dir
        self.model = model.to(dls.device)
        self.loss_func = loss_func if loss_func is not None else dls.loss_func
        self.opt_func, self.lr, self.splitter, self.wd, self.moms = opt_func, lr, splitter, wd, moms
        self.wd_bn_bias = wd_bn_bias
        self.metrics = metrics
        self.opt, self.compiled, self.train_bn, self.frozen_idx = None, compile, train_bn, 0
        self._fwd = torch.compile(self.model) if compile else self.model
        self.cbs: list[Callback] = []
        # the loop's state (callbacks read it and may change it)
        self.epoch = self.n_epoch = self.iter = self.n_iter = self.train_iter = 0
        self.training, self.pred, self.loss, self.loss_grad, self.xb, self.yb, self.dl = (
            False,
            None,
            None,
            None,
            (),
            (),
            None,
        )
        # the position API (see `position`): where this fit starts, a pending mid-epoch resume, the step's state
        self.start_epoch, self.resume_at, self.in_step, self.stepped_at, self.exception = (
            0,
            None,
            False,
            None,
            None,
        )
        self.check_grads = (
            "lazy"  # NaN/inf gradients: "lazy" (weights checked per epoch), True (every step), False
        )
        self.ddp_model = None  # the DistributedDataParallel wrapper during a distributed fit
        self._quiet, self._n_inp, self._tables, self._bw_hooked, self._step_hooked = (
            None,
            None,
            None,
            True,
            True,
        )
        self._fwd_params = None
        self.add_cbs(_make_default_cbs())
        self.add_cbs(cbs)
        self.add_cbs(auto_callbacks(self))

    # ------------------------------------------------------------------ position and state
    @property
    def check_grads(self) -> bool | str:
        """How NaN/inf gradients behind a finite loss are caught: ``"lazy"`` (default), ``True`` or ``False``.

        - ``"lazy"``: no per-step work. The weights are checked (one fused norm) at the end of every training
          epoch, and :class:`~learnkit.callbacks.Checkpoint` never writes non-finite weights; the NaN loss
          that a bad step causes on the next batch stops training, and the error says the weights are no longer
          finite and where the last good checkpoint is.
        - ``True``: the gradients are checked before every optimizer step, so training stops with the weights
          of the last good batch (costs one fused kernel and a host read per step: ~10 us on CPU, a device sync
          on a GPU).
        - ``False``: no gradient or epoch check (the loss check of ``TerminateOnNaN`` still runs).

        Example: ``learn.check_grads = True  # debugging a model that produces NaN gradients``.
        """
        return self._check_grads

    @check_grads.setter
    def check_grads(self, v) -> None:
        if v is not True and v is not False and v != "lazy":
            raise ValueError(
                f"Expected learn.check_grads to be 'lazy', True or False. Received: {v!r}. Fix: True checks the "
                "gradients before every step, 'lazy' (the default) checks the weights once per epoch."
            )
        self._check_grads = v

    @property
    def metrics(self) -> list:
        """The validation metrics; assigning functions, ``partial``s or Metric objects converts them."""
        return self._metrics

    @metrics.setter
    def metrics(self, metrics) -> None:
        self._metrics = [_checked_metric(m) for m in listify(metrics)]
        self._tables = None

    @property
    def position(self) -> dict:
        """Where the loop is: ``epoch, iter, train_iter, n_epoch, training`` and ``start_epoch`` (the first epoch
        of this fit, > 0 after a resume). ``learn.resume_at`` holds a pending mid-epoch resume (``iter``: batches
        of the next training phase to skip, and the RNG states), ``learn.in_step`` is True while the optimizer
        steps, ``learn.stepped_at`` is the ``(epoch, iter)`` of the last batch whose update is applied, and
        ``learn.exception`` is the exception ending a fit (during ``on_exception`` / ``after_fit``).

        >>> learn.position  # doctest: +SKIP
        {'epoch': 2, 'iter': 9, 'train_iter': 30, 'n_epoch': 3, 'training': False, 'start_epoch': 0}
        """
        return {
            "epoch": self.epoch,
            "iter": self.iter,
            "train_iter": self.train_iter,
            "n_epoch": self.n_epoch,
            "training": self.training,
            "start_epoch": self.start_epoch,
        }

    def mark_stepped(self) -> None:
        """Record that the current batch's update is applied (callbacks that step the optimizer themselves)."""
        self.stepped_at = (self.epoch, self.iter)

    # the names callbacks in other modules used before the position API (kept working)
    _in_step = property(lambda self: self.in_step, lambda self, v: setattr(self, "in_step", v))
    _stepped_iter = property(lambda self: self.stepped_at, lambda self, v: setattr(self, "stepped_at", v))
    _start_epoch = property(lambda self: self.start_epoch, lambda self, v: setattr(self, "start_epoch", v))
    _resume_state = property(lambda self: self.resume_at, lambda self, v: setattr(self, "resume_at", v))

    # ------------------------------------------------------------------ callbacks
    @property
    def device(self) -> torch.device:
        """The device the model and batches live on."""
        return self.dls.device

    def add_cb(self, cb: Callback) -> Learner:
        """Add a callback (an instance, or a class to instantiate); its ``learn`` is set to this learner."""
        if isinstance(cb, type):
            cb = cb()
        if not isinstance(cb, Callback):
            raise TypeError(
                f"Expected a learnkit Callback. Received: {type(cb).__name__}. Fix: subclass "
                "learnkit.Callback and implement events such as after_batch()."
            )
        name = cb.name
        taken = getattr(type(self), name, None) is not None or (
            name in self.__dict__ and not isinstance(self.__dict__[name], Callback)
        )
        if taken:
            raise ValueError(
                f"A callback named {name!r} ({type(cb).__name__}) would hide Learner.{name}. Expected a "
                "callback whose snake-case name is not a Learner attribute. Fix: rename the class, or "
                "give it a `name` property returning another name."
            )
        cb.learn = self
        setattr(self, name, cb)
        self.cbs.append(cb)
        self._tables = None
        return self

    def add_cbs(self, cbs) -> Learner:
        for cb in listify(cbs):
            self.add_cb(cb)
        return self

    def remove_cb(self, cb: Callback | type) -> Learner:
        """Remove a callback instance, or every callback of a class."""
        drop = [c for c in self.cbs if (c is cb) or (isinstance(cb, type) and isinstance(c, cb))]
        for c in drop:
            self.cbs.remove(c)
            if getattr(self, c.name, None) is c:
                delattr(self, c.name)
            c.learn = None
        self._tables = None
        return self

    def remove_cbs(self, cbs) -> Learner:
        for cb in listify(cbs):
            self.remove_cb(cb)
        return self

    @contextlib.contextmanager
    def added_cbs(self, cbs):
        """Context manager: callbacks present only inside the block."""
        cbs = [c() if isinstance(c, type) else c for c in listify(cbs)]
        self.add_cbs(cbs)
        try:
            yield self
        finally:
            self.remove_cbs(cbs)

    @contextlib.contextmanager
    def removed_cbs(self, cbs):
        """Context manager: callbacks absent inside the block."""
        cbs = listify(cbs)
        self.remove_cbs(cbs)
        try:
            yield self
        finally:
            self.add_cbs(cbs)

    def _sorted_cbs(self) -> list[Callback]:
        return sort_callbacks(self.cbs)

    def _build_tables(self) -> None:
        """Per event, the bound methods to call; one table for training and one for validation."""
        tables = ({}, {})
        for cb in self._sorted_cbs():
            for ev in cb.events():
                fn = getattr(cb, ev)
                inner = ev in BATCH_EVENTS
                if getattr(cb, "run_valid", True) or not inner:
                    tables[0].setdefault(ev, []).append((cb, fn))
                if getattr(cb, "run_train", True) or not inner:
                    tables[1].setdefault(ev, []).append((cb, fn))
        self._tables = tables
        # phases nobody hooks run without the event machinery (and nobody can cancel them)
        self._bw_hooked = any(
            e in tables[1] for e in ("before_backward", "after_backward", "after_cancel_backward")
        )
        self._step_hooked = any(e in tables[1] for e in ("before_step", "after_step", "after_cancel_step"))

    def __call__(self, event: str) -> None:
        """Fire ``event``: call every callback that implements it, in order."""
        if self._tables is None:
            self._build_tables()
        for cb, fn in self._tables[self.training].get(event, ()):
            try:
                fn()
            except _CANCELS:
                raise
            except Exception as e:
                _annotate(e, cb, event)
                raise

    def show_training_loop(self) -> str:
        """Print (and return) which callbacks run at each event, in order."""
        lines, cbs = [], self._sorted_cbs()
        for ev, depth in loop_events():
            names = [type(c).__name__ for c in cbs if callable(getattr(c, ev, None))]
            lines.append(f"{'  ' * depth}{ev:<22} {names}  # {event_doc(ev)}")
        out = "\n".join(lines)
        print(out)
        return out

    # ------------------------------------------------------------------ the loop
    def _with_events(self, f: Callable, event: str, exc: type, final: bool = False) -> None:
        """Run ``before_<event>``, ``f()``, and ``after_<event>``; on ``exc`` run ``after_cancel_<event>`` first."""
        try:
            self(f"before_{event}")
            f()
        except exc:
            self(f"after_cancel_{event}")
        except BaseException as e:
            if final:  # after_fit runs even when training is interrupted
                try:
                    if event == "fit":
                        self.exception = e
                        self("on_exception")
                finally:
                    self(f"after_{event}")
            raise
        self(f"after_{event}")

    def _split(self, b) -> None:
        if isinstance(b, dict):
            key = next((k for k in TARGET_KEYS if k in b), None)
            if key is None:
                raise DataError(
                    f"Expected a dict batch with a target under one of {list(TARGET_KEYS)}. Received "
                    f"keys: {list(b)}. Fix: name the target 'y' or 'label'."
                )
            self.xb, self.yb = ({k: v for k, v in b.items() if k != key},), (b[key],)
            return
        if not isinstance(b, (tuple, list)):
            b = (b,)
        n = self._n_inp if self._n_inp is not None else self.dls.n_inp
        n = len(b) - 1 if n is None else n
        if len(b) == 1:
            n = 1
        self.xb, self.yb = tuple(b[:n]), tuple(b[n:])

    def _forward(self):
        xb = self.xb
        if len(xb) == 1 and isinstance(xb[0], dict):
            try:
                return self._fwd(**xb[0])
            except TypeError as e:
                _check_dict_keys(self.model, xb[0], e)
                raise
        return self._fwd(*xb)

    def _do_one_batch(self) -> None:
        self.pred = self._forward()
        self("after_pred")
        if self.yb:
            self.loss_grad = self._loss(self.pred, *self.yb)
            self.loss = self.loss_grad.detach()
        self("after_loss")
        if not self.training or not self.yb:
            return
        if self._bw_hooked:
            self._with_events(self._backward, "backward", CancelBackwardException)
        else:
            self._backward()
        if self._step_hooked:
            self._with_events(self._step, "step", CancelStepException)
        else:
            self._step()
        self.opt.zero_grad(set_to_none=True)

    def _loss(self, pred, *yb):
        if self.loss_func is None:
            raise ModelError(
                "The Learner has no loss function and the data does not say which one fits. "
                "Expected loss_func=... Fix: Learner(dls, model, loss_func=nn.CrossEntropyLoss()) "
                "for classification, nn.MSELoss() for regression."
            )
        lf = self.loss_func
        if (
            isinstance(lf, _ELEMENTWISE_LOSSES)
            and len(yb) == 1
            and getattr(pred, "shape", None) != getattr(yb[0], "shape", None)
        ):
            raise ModelError(
                f"{type(lf).__name__} compares element by element, but the model output has shape {tuple(pred.shape)} "
                f"and the target {tuple(yb[0].shape)}: they would broadcast to a wrong loss. Expected equal shapes. "
                f"Fix: use learnkit's {_FLAT_FIX.get(type(lf), 'flat loss')} (flattens both), make the model output "
                "the target's shape, or reshape the target (e.g. y.view(-1, 1))."
            )
        try:
            return lf(pred, *yb)
        except ModelError:
            raise
        except (RuntimeError, ValueError, IndexError) as e:
            ps = getattr(pred, "shape", None)
            ts = [tuple(getattr(y, "shape", ())) for y in yb]
            raise ModelError(
                f"The loss {type(self.loss_func).__name__} failed on the model output of shape "
                f"{tuple(ps) if ps is not None else type(pred).__name__} and target shape(s) {ts}: {e}. "
                "Expected an output with one value per class (classification) or per target "
                "(regression) for each item. Fix: make the model's last layer output dls.c values, "
                "or pick a loss that fits the targets."
            ) from e

    def _backward(self) -> None:
        self.loss_grad.backward()

    def _step(self) -> None:
        if self._check_grads is True and not _grads_finite(self.opt):
            raise NonFiniteGradientError(
                f"The gradients are NaN or infinite at epoch {self.epoch}, batch {self.iter} (the loss is "
                f"{float(self.loss):.4g}); training stopped before the optimizer step, so the weights are those of "
                "the last good batch. Expected finite gradients. Fix: look for operations with infinite slopes in the "
                "model (sqrt or log at 0, division by a value near 0: add an epsilon), lower the learning rate, or clip "
                "gradients with GradientClip. (learn.check_grads = 'lazy' checks once per epoch instead.)"
            )
        self.in_step = True
        self.opt.step()
        self.in_step = False
        self.stepped_at = (self.epoch, self.iter)

    def one_batch(self, i: int, b) -> None:
        """Run one batch ``b`` (already on the device) as batch number ``i`` of the current phase."""
        self.iter = i
        self._split(b)
        self._with_events(self._do_one_batch, "batch", CancelBatchException)

    def _all_batches(self) -> None:
        self.n_iter = len(self.dl)
        start, st = 0, None
        if (
            self.training and self.resume_at is not None
        ):  # continue a checkpointed epoch (see callbacks/checkpoint)
            st, self.resume_at = self.resume_at, None
            start = st["iter"]
            set_rng_state(st["rng_epoch"])
            if start:
                self.dl.skip(start)
        it = iter(self.dl)
        self._n_inp = self.dls.n_inp  # read once per phase, not per batch
        if start:
            set_rng_state(st["rng"])
        try:
            for i, b in enumerate(it, start):
                self.one_batch(i, b)
        finally:
            self._n_inp = None

    def _do_epoch_train(self) -> None:
        self.dl = self.dls.train
        self.training = True
        self._with_events(self._all_batches, "train", CancelTrainException)
        if self._check_grads == "lazy" and not all_finite(unwrap_model(self.model).parameters()):
            raise NonFiniteGradientError(
                f"The weights became NaN or infinite during epoch {self.epoch} although every training loss was "
                "finite: a step had NaN or infinite gradients. No checkpoint was written with these weights. "
                "Expected finite gradients. Fix: look for operations with infinite slopes in the model (sqrt or "
                "log at 0, division by a value near 0: add an epsilon), lower the learning rate, or clip gradients "
                "with GradientClip; learn.check_grads = True stops at the first bad step with the weights intact."
            )

    def _do_epoch_validate(self, ds_idx: int = 1, dl=None) -> None:
        if dl is None:
            dl = self.dls[ds_idx] if ds_idx < len(self.dls.loaders) else None
        if dl is None:
            return
        self.dl = dl
        self.training = False
        with torch.no_grad():  # final: after_validate cleans up (e.g. autocast) even when a batch raises
            self._with_events(self._all_batches, "validate", CancelValidException, final=True)

    def _do_epoch(self) -> None:
        self._do_epoch_train()
        self._do_epoch_validate()

    def _do_fit(self) -> None:
        for epoch in range(self.start_epoch, self.n_epoch):
            self.epoch = epoch
            self.dls.train.set_epoch(epoch)
            self._with_events(self._do_epoch, "epoch", CancelEpochException)

    def fit(
        self,
        n_epoch: int,
        lr=None,
        wd: float | None = None,
        cbs=None,
        reset_opt: bool = False,
        resume: str | os.PathLike | bool | None = None,
        quiet: bool | None = None,
    ) -> None:
        """Train for ``n_epoch`` epochs at a constant learning rate ``lr`` (default ``self.lr``).

        Args:
            cbs: callbacks for this call only. reset_opt: rebuild the optimizer first.
            resume: a checkpoint path (or ``True`` for the default checkpoint of
                :class:`~learnkit.callbacks.checkpoint.Checkpoint`) to continue exactly where it stopped
                (adds a :class:`~learnkit.callbacks.checkpoint.Resume` callback for this call).
            quiet: hide progress bars and tables for this call.

        The learning rate is set from ``lr`` (or ``learn.lr``) at the start of every call; a schedule or a
        resumed optimizer state then takes over for that call only.
        """
        if self.dls.train is None:
            raise DataError("Expected a training loader. Received: DataLoaders with no train loader.")
        if int(n_epoch) < 0:
            raise ValueError(f"Expected n_epoch >= 0. Received: n_epoch={n_epoch}.")
        _check_lr(self.lr if lr is None else lr, "lr")
        if resume:
            cbs = [Resume(resume)] + listify(cbs)
        with self.added_cbs(cbs), self._quiet_ctx(quiet if quiet is not None else self._quiet):
            if reset_opt or self.opt is None:
                self.create_opt()
            if wd is not None:
                set_hyper(self.opt, "weight_decay", wd)
            set_hyper(self.opt, "lr", lr_spread(self.lr if lr is None else lr, n_groups(self.opt)))
            self.n_epoch, self.start_epoch, self.train_iter, self.loss = int(n_epoch), 0, 0, torch.tensor(0.0)
            self.resume_at, self.exception, self.stepped_at, self.in_step = None, None, None, False
            self._tables = None
            self._with_events(self._do_fit, "fit", CancelFitException, final=True)

    # ------------------------------------------------------------------ optimizer, freezing
    def create_opt(self) -> None:
        """Build the optimizer from ``opt_func`` with one param group per ``splitter`` group."""
        groups = param_groups(self.model, self.splitter)
        self.opt = make_opt(
            self.opt_func,
            groups,
            lr=self.lr if not isinstance(self.lr, slice) else self.lr.stop,
            wd=self.wd,
            no_decay=None if self.wd_bn_bias else no_decay_params(self.model),
        )
        self._groups = groups
        self._apply_freeze()

    def _apply_freeze(self) -> None:
        for i, g in enumerate(self._groups):
            frozen = i < self.frozen_idx
            for p in g:
                p.requires_grad_(not frozen)
        if self.train_bn and self.frozen_idx:
            for m in self.model.modules():
                if isinstance(m, _BN_TYPES):
                    for p in m.parameters(recurse=False):
                        p.requires_grad_(True)

    def freeze_to(self, n: int) -> None:
        """Freeze the first ``n`` parameter groups (negative counts from the end); the rest train.

        Normalisation layers (BatchNorm, LayerNorm, ...) keep training unless ``learn.train_bn = False``.
        """
        if self.opt is None:
            self.create_opt()
        ng = len(self._groups)
        n = n % ng if n < 0 else min(n, ng)
        self.frozen_idx = n
        self._apply_freeze()

    def freeze(self) -> None:
        """Freeze every parameter group but the last (e.g. train only the head)."""
        self.freeze_to(-1)

    def unfreeze(self) -> None:
        """Make every parameter group trainable."""
        self.freeze_to(0)

    # ------------------------------------------------------------------ training recipes
    def fit_one_cycle(
        self,
        n_epoch: int,
        lr_max=None,
        div: float = 25.0,
        div_final: float = 1e5,
        pct_start: float = 0.25,
        wd: float | None = None,
        moms=None,
        cbs=None,
        reset_opt: bool = False,
        resume=None,
        quiet: bool | None = None,
    ) -> None:
        """1cycle policy: LR warms up from ``lr_max/div`` to ``lr_max`` over ``pct_start`` of the steps,
        then anneals (cosine) to ``lr_max/div_final``; momentum (or Adam's beta1) moves the opposite way through
        ``moms`` (default ``learn.moms``; ``False`` leaves momentum alone)."""
        _check_lr(self.lr if lr_max is None else lr_max, "lr_max")
        if self.opt is None:
            self.create_opt()
        moms = self.moms if moms is None else (moms or None)
        lr_max = lr_spread(self.lr if lr_max is None else lr_max, n_groups(self.opt))
        scheds = {
            "lr": combined_cos(pct_start, [v / div for v in lr_max], lr_max, [v / div_final for v in lr_max])
        }
        if moms is not None:
            scheds["mom"] = combined_cos(pct_start, *moms)
        self.fit(
            n_epoch,
            cbs=[ParamScheduler(scheds)] + listify(cbs),
            wd=wd,
            reset_opt=reset_opt,
            resume=resume,
            quiet=quiet,
        )

    def fit_flat_cos(
        self,
        n_epoch: int,
        lr=None,
        div_final: float = 1e5,
        pct_start: float = 0.75,
        wd: float | None = None,
        cbs=None,
        reset_opt: bool = False,
        resume=None,
        quiet: bool | None = None,
    ) -> None:
        """Flat LR for ``pct_start`` of the steps, then cosine annealing to ``lr/div_final``."""
        _check_lr(self.lr if lr is None else lr, "lr")
        if self.opt is None:
            self.create_opt()
        lr = lr_spread(self.lr if lr is None else lr, n_groups(self.opt))
        sched = {"lr": combined_cos(pct_start, lr, lr, [v / div_final for v in lr])}
        self.fit(
            n_epoch,
            cbs=[ParamScheduler(sched)] + listify(cbs),
            wd=wd,
            reset_opt=reset_opt,
            resume=resume,
            quiet=quiet,
        )

    def fit_sgdr(
        self,
        n_cycles: int,
        cycle_len: int,
        lr_max=None,
        cycle_mult: int = 2,
        wd=None,
        cbs=None,
        quiet: bool | None = None,
    ) -> None:
        """SGD with warm restarts: ``n_cycles`` cosine cycles, the i-th lasting ``cycle_len * cycle_mult**i`` epochs."""
        _check_lr(self.lr if lr_max is None else lr_max, "lr_max")
        if self.opt is None:
            self.create_opt()
        n_epoch = (
            cycle_len * (cycle_mult**n_cycles - 1) // (cycle_mult - 1)
            if cycle_mult != 1
            else cycle_len * n_cycles
        )
        lr_max = lr_spread(self.lr if lr_max is None else lr_max, n_groups(self.opt))
        pcts = [cycle_len * cycle_mult**i / n_epoch for i in range(n_cycles)]
        scheds = [SchedCos(lr_max, 0) for _ in range(n_cycles)]
        self.fit(
            n_epoch,
            cbs=[ParamScheduler({"lr": combine_scheds(pcts, scheds)})] + listify(cbs),
            wd=wd,
            quiet=quiet,
        )

    def fine_tune(
        self,
        epochs: int,
        base_lr: float = 2e-3,
        freeze_epochs: int = 1,
        lr_mult: float = 100,
        pct_start: float = 0.3,
        div: float = 5.0,
        cbs=None,
        quiet: bool | None = None,
        **kwargs,
    ) -> None:
        """Transfer learning: train the head (body frozen) for ``freeze_epochs``, then everything for ``epochs``
        with discriminative LRs from ``base_lr/2/lr_mult`` (body) to ``base_lr/2`` (head)."""
        _check_lr(base_lr, "base_lr")
        _check_lr(lr_mult, "lr_mult")
        self.freeze()
        self.fit_one_cycle(freeze_epochs, slice(base_lr), pct_start=0.99, cbs=cbs, quiet=quiet, **kwargs)
        base_lr /= 2
        self.unfreeze()
        self.fit_one_cycle(
            epochs,
            slice(base_lr / lr_mult, base_lr),
            pct_start=pct_start,
            div=div,
            cbs=cbs,
            quiet=quiet,
            **kwargs,
        )

    def lr_find(
        self,
        start_lr: float = 1e-7,
        end_lr: float = 10,
        num_it: int = 100,
        stop_div: bool = True,
        show_plot: bool = True,
        suggest_funcs=None,
    ):
        """Find a good learning rate: train with an exponentially growing LR, record the loss, restore
        the model and optimizer exactly, and return the suggestions (``valley`` by default).

        Returns a named tuple of suggested LRs (e.g. ``.valley``); with ``show_plot`` the loss-vs-LR plot
        marks them.
        """
        suggest_funcs = listify(suggest_funcs) or [valley]
        if self.opt is None:
            self.create_opt()
        saved = {
            "model": copy.deepcopy(self.model.state_dict()),
            "opt": copy.deepcopy(self.opt.state_dict()),
            "recorder": self.recorder.state_dict() if hasattr(self, "recorder") else None,
            "rng": get_rng_state(),
        }
        per_epoch = max(1, len(self.dls.train) // num_distrib())  # the train loader is sharded under DDP
        n_epoch = max(1, math.ceil(num_it / per_epoch))
        finder = LRFinder(start_lr, end_lr, num_it, stop_div)
        try:
            self.fit(n_epoch, cbs=[finder], quiet=True)
        finally:
            self.model.load_state_dict(saved["model"])
            self.opt.load_state_dict(saved["opt"])
            if saved["recorder"] is not None:
                self.recorder.load_state_dict(saved["recorder"])
            set_rng_state(saved["rng"])
        self.lr_finder = finder
        return finder.suggest(suggest_funcs, show_plot=show_plot)

    # ------------------------------------------------------------------ evaluation and inference
    def validate(self, ds_idx: int = 1, dl=None, cbs=None) -> list[float]:
        """Loss and metrics on loader ``ds_idx`` (default: validation) -> ``[valid_loss, *metrics]``."""
        if dl is None and (ds_idx >= len(self.dls.loaders) or self.dls[ds_idx] is None):
            raise DataError(
                f"Expected loader {ds_idx} to exist for validate(). Received: DataLoaders with "
                f"{len(self.dls.loaders)} loaders. Fix: pass dl=..."
            )
        dl = self._as_loader(dl) if dl is not None else self.dls[ds_idx]
        with self.added_cbs(cbs):
            self._tables = None
            self.epoch, self.n_epoch = 0, 1
            with self._quiet_ctx(True):
                self._do_epoch_validate(dl=dl)
        return self.recorder.last_valid_values() if hasattr(self, "recorder") else []

    @contextlib.contextmanager
    def _quiet_ctx(self, quiet: bool):
        old, self._quiet = getattr(self, "_quiet", None), quiet
        try:
            yield
        finally:
            self._quiet = old

    def _as_loader(self, dl):
        if isinstance(dl, DeviceLoader):
            return dl
        if isinstance(dl, torch.Tensor):
            return self.dls.test_dl(dl)
        return self.dls.wrap(dl)

    def get_preds(
        self,
        ds_idx: int = 1,
        dl=None,
        with_input: bool = False,
        with_loss: bool = False,
        with_decoded: bool = False,
        act=None,
        cbs=None,
        pad_value=0,
    ):
        """Predictions on loader ``ds_idx`` (default: validation) or ``dl``, with the loss's activation.

        Returns ``(preds, targs)``, plus ``decoded`` (e.g. class indices) with ``with_decoded``, per-item
        ``losses`` with ``with_loss``, and ``inputs`` first with ``with_input``. Tensors are on the CPU.
        Batches whose tensors differ in length after the batch dimension (text batches padded per batch) are
        padded at the end of each dimension to the longest before concatenating: inputs and targets with
        ``pad_value`` (pass your padding index), predictions and losses with 0.
        """
        dl = self._as_loader(dl) if dl is not None else self.dls[ds_idx]
        gather = _PaddedGather(with_input=with_input, with_loss=with_loss, pad_value=pad_value)
        old_reduction = None
        if with_loss and hasattr(self.loss_func, "reduction"):
            old_reduction, self.loss_func.reduction = self.loss_func.reduction, "none"
        try:
            with self.added_cbs([gather] + listify(cbs)), self._quiet_ctx(True):
                self._tables = None
                self.epoch, self.n_epoch = 0, 1
                gather.training_metrics_off = True
                self._do_epoch_validate(dl=dl)
        finally:
            if old_reduction is not None:
                self.loss_func.reduction = old_reduction
        preds = gather.preds()
        preds = (act or (lambda x: loss_activation(self.loss_func, x)))(preds)
        res = [preds, gather.targs()]
        if with_decoded:
            res.append(loss_decodes(self.loss_func, preds, activated=True))
        if with_loss:
            res.append(gather.losses())
        if with_input:
            res.insert(0, gather.inputs())
        return tuple(res)

    def predict(self, item, with_input: bool = False):
        """Predict one raw item through the data recipe. Returns ``(decoded, decoded_index, probabilities)``.

        For DataLoaders without a recipe, ``item`` is an input tensor without the batch dimension.
        """
        if self.dls.recipe is None:
            if not isinstance(item, torch.Tensor):
                raise DataError(
                    f"Expected a tensor input (these DataLoaders have no data recipe). Received: "
                    f"{type(item).__name__}."
                )
            dl = DeviceLoader([(item[None],)], self.device)
        else:
            dl = self.dls.wrap(self.dls.recipe.predict_dl(item))
        try:
            inp, preds, _, dec = self.get_preds(dl=dl, with_input=True, with_decoded=True)
        except (RuntimeError, ModelError) as e:
            self._check_input_shape(dl, e)
            raise
        probs, dec_idx = preds[0], dec[0]
        decoded = self.dls.recipe.decode_pred(dec_idx) if self.dls.recipe is not None else dec_idx
        return (decoded, dec_idx, probs, inp) if with_input else (decoded, dec_idx, probs)

    def _check_input_shape(self, dl, err: BaseException) -> None:
        """After a failed predict: a DataError naming the input whose shape differs from the training data's."""
        try:
            self._split(next(iter(dl)))
            got = [tuple(x.shape[1:]) for x in self.xb if isinstance(x, torch.Tensor)]
            self._split(next(iter(self.dls.train)))
            want = [tuple(x.shape[1:]) for x in self.xb if isinstance(x, torch.Tensor)]
        except Exception:
            return
        for i, (g, w) in enumerate(zip(got, want)):
            if g != w:
                raise DataError(
                    f"Input {i} of the item has shape {g}; the model was trained on inputs of shape {w} "
                    f"(one item, without the batch dimension). Expected shape {w}. Fix: give the item "
                    "the same columns/size as the training data."
                ) from err

    def tta(self, ds_idx: int = 1, dl=None, n: int = 4, beta: float = 0.25, use_max: bool = False):
        """Test-time augmentation: average ``n`` predictions with training-time batch augmentation, mixed with
        the plain prediction (weight ``beta`` for the augmented average). Returns ``(preds, targs)``."""
        dl = self._as_loader(dl) if dl is not None else self.dls[ds_idx]
        preds, targs = self.get_preds(dl=dl)
        aug = []
        old = dl.train
        dl.train = True
        try:
            for _ in range(n):
                aug.append(self.get_preds(dl=dl)[0])
        finally:
            dl.train = old
        aug = torch.stack(aug)
        aug = aug.max(0)[0] if use_max else aug.mean(0)
        return (preds * (1 - beta) + aug * beta if beta is not None else aug), targs

    def show_results(self, ds_idx: int = 1, dl=None, max_n: int = 9, **kwargs):
        """Show predictions next to targets on the first ``max_n`` items of loader ``ds_idx`` or ``dl``
        (applications draw them; mistakes are marked)."""
        recipe = self.dls.recipe
        if recipe is None:
            raise DataError(
                "These DataLoaders have no recipe that knows how to show results (plain tensors). "
                "Expected DataLoaders from a DataBlock or an application factory."
            )
        dl = self._as_loader(dl) if dl is not None else self.dls[ds_idx]
        b = next(iter(dl))
        self._split(b)
        self.model.eval()
        with torch.no_grad():
            pred = self._forward()
        dec = loss_decodes(self.loss_func, loss_activation(self.loss_func, pred), activated=True)
        return recipe.show_results(b, to_cpu(dec), max_n=max_n, **kwargs)

    def summary(self, print_out: bool = True) -> str:
        """Layers with output shapes for one batch, parameter counts (trainable or frozen), and the setup."""
        s = model_summary(self)
        if print_out:
            print(s)
        return s

    # ------------------------------------------------------------------ files
    def file_path(self, name) -> Path:
        """Where ``save`` / checkpoints put ``name``: ``path / model_dir / name.pth`` (absolute paths kept)."""
        p = Path(name)
        if p.suffix == "":
            p = p.with_suffix(".pth")
        return p if p.is_absolute() or p.parent != Path(".") else self.path / self.model_dir / p

    def save(self, name: str | os.PathLike, with_opt: bool = True) -> Path:
        """Save the model (and optimizer) state dicts atomically to ``path/model_dir/name.pth``."""
        state = {"format": "learnkit.weights", "version": 1, "model": _unwrap(self.model).state_dict()}
        if with_opt and self.opt is not None:
            state["opt"] = self.opt.state_dict()
        return atomic_save(state, self._file(name))

    def load(self, name: str | os.PathLike, with_opt: bool = True, strict: bool = True) -> Learner:
        """Load weights saved by :meth:`save` (or a raw state dict); mismatched keys are listed in the error."""
        state = safe_load(self._file(name), map_location=self.device)
        sd = state.get("model", state) if isinstance(state, dict) else state
        load_state_checked(_unwrap(self.model), sd, strict=strict, source=str(self._file(name)))
        if with_opt and isinstance(state, dict) and "opt" in state:
            if self.opt is None:
                self.create_opt()
            try:
                self.opt.load_state_dict(state["opt"])
            except (ValueError, KeyError) as e:
                warnings.warn(
                    f"Optimizer state in {name!r} does not fit this optimizer ({e}); it was not loaded."
                )
        return self

    @property
    def n_iter_train(self) -> int:
        """Number of training batches per epoch."""
        return len(self.dls.train) if self.dls.train is not None else 0

    _file = file_path  # the spelling callbacks in other modules use

    def checkpoint_state(self, n_done: int | None = None, epoch_complete: bool = False) -> dict:
        """Everything needed to continue training exactly (see :func:`learnkit.callbacks.checkpoint.checkpoint_state`)."""
        ck = next((c for c in self.cbs if type(c).__name__ == "Checkpoint"), None)
        return checkpoint_state(self, n_done, epoch_complete, rng_epoch=getattr(ck, "rng_epoch", None))

    def export(
        self,
        fname: str | os.PathLike = "export.lk",
        factory: str | None = None,
        factory_kwargs: dict | None = None,
        pickle_model: bool = False,
    ) -> Path:
        """Write one pickle-free file with everything needed to predict: model spec + weights + data recipe.

        The model is rebuilt from its spec when loading: models from :func:`~learnkit.models.create_model`
        and the application factories carry one; for your own model pass ``factory='pkg.module:make_model'``
        (and ``factory_kwargs``). ``pickle_model=True`` stores a pickled model instead, which
        :func:`~learnkit.export.load_learner` refuses unless called with ``allow_pickle=True``.
        """
        return export_learner(
            self, fname, factory=factory, factory_kwargs=factory_kwargs, pickle_model=pickle_model
        )

    # ------------------------------------------------------------------ context managers
    @contextlib.contextmanager
    def no_bar(self):
        """Context manager: no progress bars or tables inside."""
        with self._quiet_ctx(True):
            yield self

    @contextlib.contextmanager
    def _progress_parts(self, **off):
        cbs = [cb for cb in self.cbs if isinstance(cb, ProgressCallback)]
        old = [{k: getattr(cb, k) for k in off} for cb in cbs]
        try:
            for cb in cbs:
                for k, v in off.items():
                    setattr(cb, k, v)
            yield self
        finally:
            for cb, o in zip(cbs, old):
                for k, v in o.items():
                    setattr(cb, k, v)

    def no_logging(self):
        """Context manager (fastai's name): no metrics table inside; the progress bars still run.

        Example: ``with learn.no_logging(): learn.fit(1)``.
        """
        return self._progress_parts(table=False)

    def no_mbar(self):
        """Context manager (fastai's name): no progress bars inside; the metrics table is still printed.

        Example: ``with learn.no_mbar(): learn.fit(1)``.
        """
        return self._progress_parts(bars=False)

    def to_fp16(self, **kwargs) -> Learner:
        """Train in float16 mixed precision (autocast + gradient scaler): adds a
        :class:`~learnkit.callbacks.training.MixedPrecision` callback, replacing any other. Returns the learner.

        >>> learn = learn.to_fp16()  # doctest: +SKIP
        """
        return self._set_precision(MixedPrecision("fp16", **kwargs))

    def to_bf16(self) -> Learner:
        """Train in bfloat16 mixed precision (autocast, no scaler needed); replaces any MixedPrecision callback."""
        return self._set_precision(MixedPrecision("bf16"))

    def to_fp32(self) -> Learner:
        """Back to full float32 precision: removes the MixedPrecision callback."""
        return self._set_precision(None)

    def _set_precision(self, cb) -> Learner:
        self.remove_cb(MixedPrecision)
        return self.add_cb(cb) if cb is not None else self

    def distributed(self, **kwargs):
        """Context manager: train with DistributedDataParallel (under torchrun) inside the block."""
        return DistributedTrainer(self, **kwargs)

    def __repr__(self) -> str:
        return (
            f"Learner(model={type(self.model).__name__}, loss={type(self.loss_func).__name__}, "
            f"device={self.device}, cbs={[type(c).__name__ for c in self.cbs]})"
        )


_unwrap = unwrap_model  # export.py's spelling


def _checked_metric(m):
    """``as_metric(m)``, refusing a plain function that cannot be called as ``f(pred, targ)``."""
    metric = as_metric(m)
    func = getattr(metric, "func", None)
    if isinstance(metric, AvgMetric) and func is not None:
        try:
            sig = inspect.signature(func)
        except (TypeError, ValueError):
            return metric
        try:
            sig.bind(None, None)
        except TypeError as e:
            name = getattr(func, "__name__", type(func).__name__)
            raise ModelError(
                f"The metric {name!r} has the signature {name}{sig}, which cannot be called as "
                f"{name}(pred, targ) ({e}). Expected a metric f(pred, targ) -> scalar (the model output "
                "and the target of a batch). Fix: define it as def my_metric(pred, targ): ..., or bind "
                "extra arguments with functools.partial."
            ) from None
    return metric


class _PaddedGather(GatherPreds):
    """GatherPreds whose concatenation pads tensors of different lengths (after the batch dimension)."""

    def __init__(self, with_input: bool = False, with_loss: bool = False, pad_value=0):
        super().__init__(with_input=with_input, with_loss=with_loss)
        self.pad_value = pad_value

    def preds(self):
        return pad_cat(self._p, 0)

    def targs(self):
        return pad_cat(self._t, self.pad_value)

    def inputs(self):
        return pad_cat(self._i, self.pad_value)

    def losses(self):
        return pad_cat(self._l, 0)


def pad_cat(xs: list, pad_value=0):
    """Concatenate per-batch results along the batch dimension; tensors whose other dimensions differ are padded
    at the end of each dimension with ``pad_value`` to the largest size. Tuples, lists and dicts recurse."""
    if not xs:
        return None
    x0 = xs[0]
    if isinstance(x0, torch.Tensor):
        xs = [x.reshape(1) if x.ndim == 0 else x for x in xs]
        if len({tuple(x.shape[1:]) for x in xs}) > 1 and len({x.ndim for x in xs}) == 1:
            size = [max(x.shape[d] for x in xs) for d in range(1, xs[0].ndim)]
            out = []
            for x in xs:
                pad = []
                for d in reversed(range(1, x.ndim)):
                    pad += [0, size[d - 1] - x.shape[d]]
                out.append(torch.nn.functional.pad(x, pad, value=pad_value) if any(pad) else x)
            xs = out
        return torch.cat(xs)
    if isinstance(x0, (tuple, list)):
        return type(x0)(pad_cat([x[i] for x in xs], pad_value) for i in range(len(x0)))
    if isinstance(x0, dict):
        return {k: pad_cat([x[k] for x in xs], pad_value) for k in x0}
    return xs


_ELEMENTWISE_LOSSES = (nn.MSELoss, nn.L1Loss, nn.SmoothL1Loss, nn.HuberLoss, nn.BCELoss, nn.BCEWithLogitsLoss)
_FLAT_FIX = {
    nn.MSELoss: "MSELossFlat()",
    nn.L1Loss: "L1LossFlat()",
    nn.BCEWithLogitsLoss: "BCEWithLogitsLossFlat()",
}


def _check_lr(lr, name: str) -> None:
    """A learning rate (float, ``slice`` or list of floats) must be finite and > 0."""
    vals = (
        [lr.start, lr.stop] if isinstance(lr, slice) else list(lr) if isinstance(lr, (list, tuple)) else [lr]
    )
    for v in vals:
        if v is None and isinstance(lr, slice):
            continue
        try:
            ok = math.isfinite(float(v)) and float(v) > 0
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ValueError(
                f"Expected {name} to be a finite number > 0 (or a slice/list of them). Received: "
                f"{name}={lr!r}. A negative, zero or non-finite learning rate trains uphill or not at "
                "all. Fix: pass e.g. lr=1e-3, or pick one with learn.lr_find()."
            )


_FLAGS: dict = {}  # device -> (found_nonfinite, one): reused by every step's check


def _grads_finite(opt) -> bool:
    """One fused check that every gradient the optimizer will apply is finite.

    ``torch._amp_foreach_non_finite_check_and_unscale_`` (GradScaler's kernel, with a scale of 1) is one dispatch
    for all gradients, a few microseconds per step; the flag is cleared only when it fired.
    """
    grads = [
        p.grad for g in opt.param_groups for p in g["params"] if p.grad is not None and not p.grad.is_sparse
    ]
    if not grads:
        return True
    dev = grads[0].device
    flags = _FLAGS.get(dev)
    if flags is None:
        flags = _FLAGS[dev] = (torch.zeros(1, device=dev), torch.ones(1, device=dev))
    try:
        torch._amp_foreach_non_finite_check_and_unscale_(grads, *flags)
    except (RuntimeError, TypeError):  # several devices or dtypes: the per-tensor way
        return bool(torch.stack([n.float() for n in torch._foreach_norm(grads)]).isfinite().all())
    if flags[0].item():
        flags[0].zero_()
        return False
    return True


def _check_dict_keys(model: nn.Module, batch: dict, err: TypeError) -> None:
    """Turn "forward() got an unexpected keyword argument" into a DataError naming the field and the parameters."""
    fwd = unwrap_model(model).forward
    try:
        params = inspect.signature(fwd).parameters
    except (TypeError, ValueError):
        return
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return
    unknown = [k for k in batch if k not in params]
    if unknown:
        names = [n for n, p in params.items() if p.kind != p.VAR_POSITIONAL]
        raise DataError(
            f"The batch field(s) {unknown} are not parameters of {type(unwrap_model(model)).__name__}"
            f".forward. Expected the dict keys (besides the target) to be among {names}. Received keys: "
            f"{list(batch)}. Fix: rename the fields to the forward's parameter names, or drop them "
            "from the batch."
        ) from err


def _make_default_cbs() -> list[Callback]:
    return [TrainEvalCallback(), Recorder(), ProgressCallback(), TerminateOnNaN()]
