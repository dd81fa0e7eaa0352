"""Profile: where each epoch's time went (waiting for data, forward, loss, backward, optimizer step, callbacks).

>>> import torch
>>> from torch import nn
>>> from learnkit import Learner, DataLoaders
>>> x = torch.randn(256, 8); y = (x.sum(1) > 0).long()
>>> dls = DataLoaders.from_tensors((x[:200], y[:200]), (x[200:], y[200:]), bs=32, device="cpu")
>>> learn = Learner(dls, nn.Linear(8, 2), loss_func=nn.CrossEntropyLoss(), cbs=Profile(quiet=True))
>>> learn.fit(1, quiet=True)
>>> set(PROFILE_PHASES) <= set(learn.profile.report[0])
True
"""

from __future__ import annotations

import time

import torch

from .core import Callback

__all__ = ["Profile", "PROFILE_PHASES"]

#: The columns of a profile report, in the order they are shown.
PROFILE_PHASES = ("data", "forward", "loss", "backward", "step", "callbacks", "other", "valid")

# After the last callback of an event (training phase), the time until the next event belongs to:
_NEXT = {
    "before_train": "data",
    "before_batch": "forward",
    "after_pred": "loss",
    "before_backward": "backward",
    "before_step": "step",
    "after_step": "step",  # zero_grad
    "after_batch": "data",  # fetching (and moving) the next batch
}


def _is_lr_find(learn) -> bool:
    from .schedule import LRFinder

    return any(isinstance(c, LRFinder) for c in learn.cbs)


class _ProfileStart(Callback):
    """Marks the start of every event (runs first); the :class:`Profile` callback itself marks the end."""

    order = -1000

    def __init__(self, owner: Profile):
        self.owner = owner

    def before_epoch(self):
        self.owner._start_epoch()

    def before_train(self):
        self.owner._mark("before_train", True)

    def before_batch(self):
        self.owner._mark("before_batch", True)

    def after_pred(self):
        self.owner._mark("after_pred", True)

    def after_loss(self):
        self.owner._mark("after_loss", True)

    def before_backward(self):
        self.owner._mark("before_backward", True)

    def after_backward(self):
        self.owner._mark("after_backward", True)

    def before_step(self):
        self.owner._mark("before_step", True)

    def after_step(self):
        self.owner._mark("after_step", True)

    def after_cancel_batch(self):
        self.owner._mark("after_cancel_batch", True)

    def after_cancel_backward(self):
        self.owner._mark("after_cancel_backward", True)

    def after_cancel_step(self):
        self.owner._mark("after_cancel_step", True)

    def after_batch(self):
        self.owner._mark("after_batch", True)

    def after_cancel_train(self):
        self.owner._mark("after_cancel_train", True)

    def after_train(self):
        self.owner._mark("after_train", True)

    def before_validate(self):
        self.owner._mark("before_validate", True)

    def after_cancel_validate(self):
        self.owner._mark("after_cancel_validate", True)

    def after_validate(self):
        self.owner._mark("after_validate", True)

    def after_cancel_epoch(self):
        self.owner._mark("after_cancel_epoch", True)

    def after_epoch(self):
        self.owner._mark("after_epoch", True)


class Profile(Callback):
    """Report per epoch where the time went: ``data`` (waiting for the next batch: loading, collating, moving
    to the device), ``forward``, ``loss``, ``backward``, ``step`` (optimizer step and ``zero_grad``),
    ``callbacks`` (time spent inside callbacks outside validation, this one's bookkeeping included; split by
    event in ``callbacks_by_event``: e.g. :class:`~learnkit.callbacks.training.MixedPrecision`'s scaled
    optimizer step shows up under ``before_step``), ``other``
    (the loop itself), ``valid`` (the whole validation phase) and ``total`` (the epoch), in seconds.

    It splits the timeline at the start and the end of every event (a companion callback runs first at each
    event, this one last), so the parts add up to the epoch's time. ``learn.profile.report`` is a list of
    dicts, one per epoch of the last ``fit``; a small table is printed after each epoch unless ``quiet``
    (or the fit is quiet).

    CUDA runs asynchronously: without synchronising, the GPU work of the forward pass would be billed to
    whichever later phase first waits for it. ``sync=None`` (default) therefore calls
    ``torch.cuda.synchronize()`` at every mark when training on CUDA, which gives accurate numbers but
    slows training down a little and removes CPU/GPU overlap; ``sync=False`` measures only the CPU side.

    >>> cb = Profile(quiet=True)
    """

    order = 1000  # runs last at every event

    def __init__(self, sync: bool | None = None, quiet: bool = False):
        self.sync, self.quiet = sync, quiet
        self.report: list[dict] = []
        self._starter, self._last, self._acc, self._t0 = None, None, None, None
        self._phase, self._bucket, self._n, self._by_event, self._event = None, "other", 0, {}, None
        self._off, self._sync = False, False

    # -- setup
    def before_fit(self):
        learn = self.learn
        if _is_lr_find(learn):  # lr_find's short trial fit is not profiled
            self._acc, self._off = None, True
            return
        self._off = False
        self.report = []
        self._sync = self.sync if self.sync is not None else torch.device(learn.device).type == "cuda"
        self._sync = self._sync and torch.cuda.is_available()
        if self._starter is None or self._starter not in learn.cbs:
            self._starter = _ProfileStart(self)
            learn.add_cb(self._starter)
        self._last = None

    def after_fit(self):
        if self._starter is not None and self.learn is not None and self._starter in self.learn.cbs:
            self.learn.remove_cb(self._starter)
        self._starter = None

    # -- the clock
    def _now(self) -> float:
        if self._sync:
            torch.cuda.synchronize()
        return time.perf_counter()

    def _start_epoch(self) -> None:
        if self._off:
            return
        now = self._now()
        self._acc = dict.fromkeys(PROFILE_PHASES, 0.0)
        self._t0 = self._last = now
        self._phase, self._bucket, self._n = None, "callbacks", 0
        self._by_event, self._event = {}, "before_epoch"

    def _mark(self, event: str, first: bool) -> None:
        """Close the running interval (billing it to the current bucket) and open the next one."""
        if self._acc is None:
            return
        now = self._now()
        dt = now - self._last
        self._acc[self._bucket] += dt
        if self._bucket == "callbacks":
            self._by_event[self._event] = self._by_event.get(self._event, 0.0) + dt
        self._last = now
        self._event = event
        if event == "before_train" and first:
            self._phase = "train"
        elif event == "before_validate" and first:
            self._phase = "valid"
        if first:
            self._bucket = "valid" if self._phase == "valid" else "callbacks"
            return
        if self._phase == "valid":
            self._bucket = "valid"
        elif self._phase == "train":
            self._bucket = _NEXT.get(event, "other")
            if event == "before_batch":
                self._n += 1
        else:
            self._bucket = "other"
        if event in ("after_train", "after_validate"):
            self._phase, self._bucket = None, "other"

    # -- events (end marks)
    def before_train(self):
        self._mark("before_train", False)

    def before_batch(self):
        self._mark("before_batch", False)

    def after_pred(self):
        self._mark("after_pred", False)

    def after_loss(self):
        self._mark("after_loss", False)

    def before_backward(self):
        self._mark("before_backward", False)

    def after_backward(self):
        self._mark("after_backward", False)

    def before_step(self):
        self._mark("before_step", False)

    def after_step(self):
        self._mark("after_step", False)

    def after_cancel_batch(self):
        self._mark("after_cancel_batch", False)

    def after_cancel_backward(self):
        self._mark("after_cancel_backward", False)

    def after_cancel_step(self):
        self._mark("after_cancel_step", False)

    def after_batch(self):
        self._mark("after_batch", False)

    def after_cancel_train(self):
        self._mark("after_cancel_train", False)

    def after_train(self):
        self._mark("after_train", False)

    def before_validate(self):
        self._mark("before_validate", False)

    def after_cancel_validate(self):
        self._mark("after_cancel_validate", False)

    def after_validate(self):
        self._mark("after_validate", False)

    def after_cancel_epoch(self):
        self._mark("after_cancel_epoch", False)

    def after_epoch(self):
        if self._acc is None:
            return
        self._mark("after_epoch", False)
        row = {
            "epoch": self.learn.epoch,
            **{k: self._acc[k] for k in PROFILE_PHASES},
            "total": self._last - self._t0,
            "n_batches": self._n,
            "callbacks_by_event": dict(sorted(self._by_event.items(), key=lambda kv: -kv[1])),
        }
        self.report.append(row)
        self._acc = None
        if not self.quiet and not getattr(self.learn, "_quiet", None):
            from ..distributed import rank_distrib

            if rank_distrib() == 0:
                from tqdm.auto import tqdm

                tqdm.write(self.table(row))

    # -- reading
    @staticmethod
    def table(row: dict) -> str:
        """A small text table of one report row: seconds and share of the epoch per phase."""
        tot = row["total"] or 1e-12
        w = 10
        head = "phase".ljust(8) + "".join(k.rjust(w) for k in PROFILE_PHASES) + "total".rjust(w)
        secs = (
            "seconds".ljust(8)
            + "".join(f"{row[k]:.4f}".rjust(w) for k in PROFILE_PHASES)
            + f"{tot:.4f}".rjust(w)
        )
        pct = (
            "share".ljust(8)
            + "".join(f"{100 * row[k] / tot:.1f}%".rjust(w) for k in PROFILE_PHASES)
            + "100%".rjust(w)
        )
        per = ""
        if row.get("n_batches"):
            ms = 1000 * sum(row[k] for k in PROFILE_PHASES if k != "valid") / row["n_batches"]
            per = f"  ({row['n_batches']} training batches, {ms:.3f} ms each)"
        out = f"profile of epoch {row['epoch']}{per}\n{head}\n{secs}\n{pct}"
        top = list(row.get("callbacks_by_event", {}).items())[:3]
        if top:
            out += "\ncallbacks mostly at: " + ", ".join(f"{e} {t:.4f}s" for e, t in top)
        return out

    def to_frame(self):
        """The report as a pandas DataFrame (one row per epoch)."""
        import pandas as pd

        return pd.DataFrame(self.report)
