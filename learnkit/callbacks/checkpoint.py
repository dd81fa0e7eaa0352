"""Resumable checkpoints: the :class:`Checkpoint` callback that writes them and :class:`Resume` that continues
from one exactly (``learn.fit(..., resume=path)`` adds it for that call).

A checkpoint is a ``torch.save`` file (loads with ``weights_only=True``) holding the weights, the optimizer
(with its class name), the position (epoch, batches done), the RNG states and every stateful callback's
``state_dict()`` under its :attr:`~learnkit.callbacks.core.Callback.state_key`.

Safety rules, each with a test:

- the file is written atomically, and temp files orphaned by a killed write are removed on the next write;
- non-finite weights are never written over a good checkpoint;
- on load the zip CRCs are verified (``torch.load`` does not), so flipped bytes give a :class:`CheckpointError`
  naming the file instead of silently corrupted weights;
- the whole checkpoint is checked against the learner (model keys and shapes, optimizer class and
  hyper-parameters, parameter groups) *before* anything is changed; the error names the mismatch.

>>> from learnkit import Checkpoint
>>> # learn.fit(5, cbs=Checkpoint(every_n_batches=100)); later, in a fresh process:
>>> # learn.fit(5, resume=True)
"""

from __future__ import annotations

import os
import time
import warnings
import zipfile
from pathlib import Path

from torch import nn

from ..device import get_rng_state, set_rng_state
from ..exceptions import CheckpointError, NonFiniteLossError
from ..utils import all_finite, atomic_save, safe_load
from .core import Callback

__all__ = [
    "Checkpoint",
    "Resume",
    "load_state_checked",
    "checkpoint_state",
    "load_checkpoint",
    "verify_checkpoint_file",
    "callback_state_keys",
]

#: Temp files of an atomic write older than this (seconds) are orphans of a killed write.
STALE_TMP_SECONDS = 60.0


def unwrap_model(model: nn.Module) -> nn.Module:
    """The underlying module of a DDP / compiled wrapper."""
    while True:
        if (
            hasattr(model, "module")
            and isinstance(model.module, nn.Module)
            and type(model).__name__ in ("DistributedDataParallel", "DataParallel")
        ):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def _few(xs: list[str]) -> str:
    return ", ".join(xs[:8]) + (f", ... ({len(xs)} in all)" if len(xs) > 8 else "")


def _state_mismatch(own: dict, sd: dict, strict: bool) -> list[str]:
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    shape = [
        f"{k}: file {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in sd and hasattr(sd[k], "shape") and tuple(sd[k].shape) != tuple(own[k].shape)
    ]
    parts = []
    if strict and missing:
        parts.append(f"missing in the file: {_few(missing)}")
    if strict and unexpected:
        parts.append(f"not in the model: {_few(unexpected)}")
    if shape:
        parts.append(f"different shapes: {_few(shape)}")
    return parts


def load_state_checked(model: nn.Module, sd: dict, strict: bool = True, source: str = "the file") -> None:
    """``model.load_state_dict(sd)`` with an error that lists missing, unexpected and mis-shaped keys."""
    parts = _state_mismatch(model.state_dict(), sd, strict)
    if parts:
        raise CheckpointError(
            f"The weights in {source} do not fit this model ({'; '.join(parts)}). Expected weights "
            "saved from the same architecture. Fix: build the model with the same arguments, or "
            "load with strict=False to load only the matching layers."
        )
    model.load_state_dict(sd, strict=strict)


def verify_checkpoint_file(path: str | os.PathLike) -> None:
    """Check every member's CRC32 in a ``torch.save`` zip file: flipped or truncated bytes raise
    :class:`CheckpointError` naming the file (``torch.load`` itself does not verify them)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"Expected a checkpoint file. Received: {str(path)!r}, which does not exist. Fix: pass "
            "the path the Checkpoint callback wrote (learn.path / learn.model_dir / 'checkpoint.pth')."
        )
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise CheckpointError(
            f"{str(path)!r} is truncated or corrupted ({e}). Expected a complete checkpoint written "
            "by the Checkpoint callback. Fix: resume from an earlier checkpoint."
        ) from e
    if bad is not None:
        raise CheckpointError(
            f"{str(path)!r} is corrupted: the CRC of its member {bad!r} does not match (flipped "
            "bytes on disk or in a copy). Expected an intact checkpoint. Fix: resume from an "
            "earlier checkpoint or copy the file again."
        )


def callback_state_keys(cbs) -> dict[str, Callback]:
    """``{key: callback}`` for every stateful callback: its ``state_key``; callbacks sharing one get their
    :meth:`~learnkit.callbacks.core.Callback.init_args` added, then ``#2``, ``#3`` suffixes in order."""
    stateful = [cb for cb in cbs if callable(getattr(cb, "state_dict", None))]
    counts: dict[str, int] = {}
    for cb in stateful:
        counts[cb.state_key] = counts.get(cb.state_key, 0) + 1
    out: dict[str, Callback] = {}
    for cb in stateful:
        key = cb.state_key
        if counts[key] > 1:
            key = f"{key}({cb.init_args()})"
        base, n = key, 1
        while key in out:
            n += 1
            key = f"{base}#{n}"
        out[key] = cb
    return out


def _opt_hypers(opt) -> list[list[str]]:
    return [sorted(k for k in g if k != "params") for g in opt.param_groups]


def checkpoint_state(learn, n_done: int | None = None, epoch_complete: bool = False, rng_epoch=None) -> dict:
    """Everything needed to continue training exactly: weights, optimizer, position, RNG and callback states.

    ``n_done``: training batches of the current epoch already applied; ``epoch_complete``: the epoch (training
    and validation) is finished, so resuming starts the next one; ``rng_epoch``: the RNG state at the start of
    the epoch's training phase (the loader's shuffle is drawn from it).
    """
    if epoch_complete:
        epoch, n_done = learn.epoch + 1, 0
    else:
        epoch, n_done = learn.epoch, (learn.iter + 1 if n_done is None else n_done)
    opt = learn.opt
    return {
        "format": "learnkit.checkpoint",
        "version": 2,
        "model": unwrap_model(learn.model).state_dict(),
        "opt": opt.state_dict() if opt is not None else None,
        "opt_class": type(opt).__name__ if opt is not None else None,
        "opt_hypers": _opt_hypers(opt) if opt is not None else None,
        "epoch": epoch,
        "iter": n_done,
        "train_iter": epoch * learn.n_iter_train + n_done,
        "n_epoch": learn.n_epoch,
        "frozen_idx": learn.frozen_idx,
        "rng_epoch": rng_epoch if rng_epoch is not None else get_rng_state(),
        "rng": get_rng_state(),
        "callbacks": {k: cb.state_dict() for k, cb in callback_state_keys(learn.cbs).items()},
    }


def _validate(learn, st, path: Path) -> None:
    """Every check that can fail, before anything in the learner changes."""
    src = repr(str(path))
    parts = _state_mismatch(unwrap_model(learn.model).state_dict(), st["model"], strict=True)
    if parts:
        raise CheckpointError(
            f"The weights in {src} do not fit this model ({'; '.join(parts)}). Expected a checkpoint "
            "of the same architecture. Fix: build the model with the same arguments."
        )
    so = st.get("opt")
    if so is None or learn.opt is None:
        return
    name, own = st.get("opt_class"), type(learn.opt).__name__
    if name is not None and name != own:
        raise CheckpointError(
            f"{src} holds the state of a {name} optimizer; this learner uses {own}. Expected the "
            f"same optimizer class. Fix: Learner(..., opt_func=<the {name} you trained with>), or "
            "load only the weights with learn.load(path, with_opt=False)."
        )
    groups = so.get("param_groups", [])
    own_groups = learn.opt.param_groups
    if len(groups) != len(own_groups) or any(
        len(g["params"]) != len(o["params"]) for g, o in zip(groups, own_groups)
    ):
        raise CheckpointError(
            f"The optimizer in {src} has parameter groups of sizes {[len(g['params']) for g in groups]}; this "
            f"learner has {[len(o['params']) for o in own_groups]}. Expected the same splitter and model. Fix: build "
            "the learner with the same splitter (and freeze state) as the run that wrote the checkpoint."
        )
    for i, (g, o) in enumerate(zip(groups, own_groups)):
        missing = sorted(set(o) - set(g) - {"params"})
        if missing:
            raise CheckpointError(
                f"The optimizer state in {src} lacks the hyper-parameter(s) {missing} of this learner's {own} "
                f"(param group {i}); it was written by another optimizer. Expected the same opt_func. Fix: resume "
                "with the optimizer you trained with, or load only the weights with learn.load(path, with_opt=False)."
            )
    cbs = st.get("callbacks", {})
    if not isinstance(cbs, dict):
        raise CheckpointError(f"{src} has a malformed callback section. Expected a dict of callback states.")


def load_checkpoint(learn, path: str | os.PathLike) -> dict:
    """Verify ``path`` (CRCs, format, fit with ``learn``), then load weights, optimizer, freeze state and callback
    states into ``learn``. Returns the checkpoint dict (position and RNG states)."""
    path = Path(path)
    verify_checkpoint_file(path)
    st = safe_load(path, map_location=learn.device)
    if not isinstance(st, dict) or st.get("format") != "learnkit.checkpoint":
        raise CheckpointError(
            f"{str(path)!r} is not a learnkit checkpoint. Expected a file written by the "
            "Checkpoint callback. Fix: pass the checkpoint path, e.g. models/checkpoint.pth."
        )
    if learn.opt is None:
        learn.create_opt()
    if learn.frozen_idx != st.get(
        "frozen_idx", 0
    ):  # freezing rebuilds nothing, it only toggles requires_grad
        learn.freeze_to(st.get("frozen_idx", 0))
    _validate(learn, st, path)
    unwrap_model(learn.model).load_state_dict(st["model"])
    if st.get("opt") is not None:
        learn.opt.load_state_dict(st["opt"])
    saved = st.get("callbacks", {})
    for key, cb in callback_state_keys(learn.cbs).items():
        s = saved.get(key)
        if s is not None and callable(getattr(cb, "load_state_dict", None)):
            cb.load_state_dict(s)
    return st


def clean_stale_tmp(path: Path, max_age: float = STALE_TMP_SECONDS) -> list[Path]:
    """Remove ``.{name}.*.tmp`` files beside ``path`` left by a killed atomic write (older than ``max_age`` s)."""
    removed, now = [], time.time()
    if not path.parent.is_dir():
        return removed
    for f in path.parent.glob(f".{path.name}.*.tmp"):
        try:
            if now - f.stat().st_mtime > max_age:
                f.unlink()
                removed.append(f)
        except OSError:
            pass
    return removed


class Checkpoint(Callback):
    """Writes a resumable checkpoint atomically: after every epoch, every ``every_n_batches`` training batches,
    and when training is interrupted (KeyboardInterrupt or an error; not on a non-finite loss).

    A checkpoint holds the weights, optimizer, epoch and batch position, RNG states and callback states;
    ``learn.fit(..., resume=path)`` (or ``resume=True``) continues exactly where it stopped. Weights that are
    not finite are never written over a good checkpoint (a warning says so).

    Args:
        fname: file name in ``learn.path / learn.model_dir`` (``.pth`` added), or an absolute path.

    >>> from learnkit import Checkpoint
    >>> ck = Checkpoint(every_n_batches=200)  # learn.fit(3, cbs=ck); then learn.fit(3, resume=True)
    """

    order = 90

    def __init__(
        self,
        fname: str = "checkpoint",
        every_n_batches: int | None = None,
        every_epoch: bool = True,
        on_interrupt: bool = True,
    ):
        self.fname, self.every_n_batches, self.every_epoch, self.on_interrupt = (
            fname,
            every_n_batches,
            every_epoch,
            on_interrupt,
        )
        self.rng_epoch, self._trained = None, False

    @property
    def file(self) -> Path:
        """Where the checkpoint is written."""
        return self.learn.file_path(self.fname)

    def _write(self, **kwargs):
        from ..distributed import rank_distrib

        learn = self.learn
        if rank_distrib() == 0:
            if not all_finite(unwrap_model(learn.model).parameters()):
                warnings.warn(
                    f"The weights are not finite at epoch {learn.epoch}, batch {learn.iter}: the checkpoint "
                    f"{str(self.file)!r} was not overwritten (it keeps the last finite weights)."
                )
                return
            clean_stale_tmp(self.file)
            atomic_save(checkpoint_state(learn, rng_epoch=self.rng_epoch, **kwargs), self.file)
        self.last_written = self.file

    def before_fit(self):
        self._trained = False

    def before_train(self):
        learn = self.learn
        self._trained = True
        # the loader's shuffle is drawn from this state; a mid-epoch resume restores the one it saved
        self.rng_epoch = learn.resume_at["rng_epoch"] if learn.resume_at is not None else get_rng_state()

    def after_batch(self):
        learn = self.learn
        if learn.training and self.every_n_batches and (learn.iter + 1) % self.every_n_batches == 0:
            self._write(n_done=learn.iter + 1)

    def after_epoch(self):
        if self.every_epoch:
            self._write(epoch_complete=True)

    def on_exception(self):
        learn, exc = self.learn, self.learn.exception
        if (
            not self.on_interrupt
            or not self._trained
            or isinstance(exc, (NonFiniteLossError, CheckpointError))
        ):
            return
        if learn.in_step or learn.opt is None:
            return  # the weights may be half-updated: keep the last good checkpoint
        if learn.training:
            n_done = learn.iter + 1 if learn.stepped_at == (learn.epoch, learn.iter) else learn.iter
        else:
            n_done = learn.n_iter_train
        self._write(n_done=n_done)

    def after_fit(self):
        self._trained = False


class Resume(Callback):
    """Continues a fit exactly from the checkpoint at ``path`` (``True``: the learner's :class:`Checkpoint` file,
    else ``models/checkpoint.pth``). ``learn.fit(..., resume=path)`` adds one for that call.

    Runs first at ``before_fit``: verifies the file, checks it against the learner before changing anything,
    loads weights, optimizer and callback states, then sets the public position (``learn.start_epoch``,
    ``learn.train_iter``, ``learn.resume_at``) that the loop continues from.

    Example: ``learn.fit(5, cbs=Resume('models/checkpoint.pth'))``, the same as ``learn.fit(5, resume=True)``.
    """

    order = -1000

    def __init__(self, path: str | os.PathLike | bool = True):
        self.path = path

    def before_fit(self):
        learn = self.learn
        path = self.path
        if path is True:
            ck = next((c for c in learn.cbs if isinstance(c, Checkpoint)), None)
            path = ck.file if ck is not None else learn.file_path("checkpoint")
        st = load_checkpoint(learn, path)
        # the position in *this* run's steps (a checkpoint written by N processes counts N times fewer)
        learn.start_epoch, learn.train_iter = st["epoch"], st["epoch"] * learn.n_iter_train + st["iter"]
        if st["iter"]:
            learn.resume_at = {"iter": st["iter"], "rng_epoch": st["rng_epoch"], "rng": st["rng"]}
        else:
            learn.resume_at = None
            set_rng_state(st["rng"])
