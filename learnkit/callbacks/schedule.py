"""Hyper-parameter schedules, the ParamScheduler callback, and the learning-rate finder.

A schedule is a function of the training progress ``pct`` in [0, 1] returning a value (or one value
per parameter group). :func:`combined_cos` builds the 1cycle shape used by ``fit_one_cycle``.

>>> f = combined_cos(0.25, 1e-4, 1e-3, 1e-8)
>>> round(f(0.25), 6)
0.001
"""

from __future__ import annotations

import functools
import math
from collections import namedtuple

import numpy as np

from ..exceptions import CancelFitException, CancelValidException
from ..optim import set_hyper, set_mom
from .core import Callback

__all__ = [
    "SchedLin",
    "SchedCos",
    "SchedNo",
    "SchedExp",
    "SchedPoly",
    "combine_scheds",
    "combined_cos",
    "ParamScheduler",
    "LRFinder",
    "SuggestedLRs",
    "valley",
    "slide",
    "minimum",
    "steep",
]


def _arr(x):
    return np.asarray(x, dtype=np.float64)


class _Sched:
    def __init__(self, start, end):
        self.start, self.end = _arr(start), _arr(end)

    def __call__(self, pct: float):
        v = self._f(self.start, self.end, min(max(pct, 0.0), 1.0))
        return float(v) if np.ndim(v) == 0 else v.tolist()


class SchedLin(_Sched):
    """Linear from ``start`` to ``end``.

    Example: ``SchedLin(0.0, 10.0)(0.5)`` -> ``5.0``.
    """

    @staticmethod
    def _f(s, e, p):
        return s + p * (e - s)


class SchedCos(_Sched):
    """Cosine from ``start`` to ``end`` (flat at both ends).

    Example: ``SchedCos(0.0, 1.0)(0.5)`` -> ``0.5``.
    """

    @staticmethod
    def _f(s, e, p):
        return s + (1 + math.cos(math.pi * (1 - p))) * (e - s) / 2


class SchedNo(_Sched):
    """Constant ``start``.

    Example: ``SchedNo(2.0, 5.0)(0.3)`` -> ``2.0``.
    """

    @staticmethod
    def _f(s, e, p):
        return s + 0 * p


class SchedExp(_Sched):
    """Exponential from ``start`` to ``end``.

    Example: ``SchedExp(1.0, 100.0)(0.5)`` -> ``10.0`` (approximately).
    """

    @staticmethod
    def _f(s, e, p):
        return s * (e / s) ** p


class SchedPoly(_Sched):
    """Polynomial of ``power`` from ``start`` to ``end``."""

    def __init__(self, start, end, power: float):
        super().__init__(start, end)
        self.power = power

    def __call__(self, pct: float):
        p = min(max(pct, 0.0), 1.0)
        v = self.start + (1 - (1 - p) ** self.power) * (self.end - self.start)
        return float(v) if np.ndim(v) == 0 else v.tolist()


def combine_scheds(pcts, scheds):
    """Chain ``scheds``, the i-th covering a fraction ``pcts[i]`` of training (fractions sum to 1)."""
    pcts = _arr(pcts)
    if abs(pcts.sum() - 1) > 1e-6 or (pcts < 0).any():
        raise ValueError(f"Expected non-negative fractions summing to 1. Received: pcts={pcts.tolist()}.")
    edges = np.concatenate([[0.0], np.cumsum(pcts)])

    def _inner(pct: float):
        pct = min(max(pct, 0.0), 1.0)
        i = int(np.searchsorted(edges, pct, side="right") - 1)
        i = min(max(i, 0), len(scheds) - 1)
        while i < len(scheds) - 1 and pcts[i] == 0:
            i += 1
        width = pcts[i] if pcts[i] > 0 else 1.0
        return scheds[i]((pct - edges[i]) / width)

    return _inner


def combined_cos(pct: float, start, middle, end):
    """Cosine from ``start`` to ``middle`` over the first ``pct`` of training, then cosine to ``end``.

    Example: ``sched = combined_cos(0.25, 1e-4, 1e-3, 1e-6)``; ``sched(0.25)`` -> ``1e-3``.
    """
    return combine_scheds([pct, 1 - pct], [SchedCos(start, middle), SchedCos(middle, end)])


class ParamScheduler(Callback):
    """Sets hyper-parameters before every training batch from ``scheds`` (name -> schedule of ``pct``).

    ``'lr'`` sets the learning rate, ``'mom'`` the momentum (SGD) or beta1 (Adam family); any other name
    sets that key of every parameter group (e.g. ``'weight_decay'``). Values are recorded in ``self.hps``.

    Example: ``learn.fit(2, cbs=ParamScheduler({'lr': SchedCos(1e-3, 1e-5)}))``.
    """

    order = 1
    run_valid = False

    def __init__(self, scheds: dict):
        self.scheds = dict(scheds)
        self.hps = {k: [] for k in self.scheds}

    def before_fit(self):
        self._total = max(1, self.learn.n_epoch * len(self.learn.dls.train))
        self.hps = {k: [] for k in self.scheds}
        self._set(self.learn.train_iter / self._total)

    def before_batch(self):
        self._set(self.learn.train_iter / self._total)

    def _set(self, pct):
        opt = self.learn.opt
        for k, f in self.scheds.items():
            v = f(pct)
            if k == "mom":
                set_mom(opt, v)
            else:
                set_hyper(opt, k, v)
            self.hps[k].append(v)


@functools.lru_cache(maxsize=64)
def _suggested_type(fields: tuple[str, ...]):
    return namedtuple("SuggestedLRs", fields)


def SuggestedLRs(**lrs: float):
    """The learning rates :meth:`~learnkit.Learner.lr_find` suggests: a named tuple with one field per
    suggestion function, in the order they were asked for (as fastai returns them).

    >>> res = SuggestedLRs(minimum=1e-3, steep=3e-4)
    >>> lr_min, lr_steep = res
    >>> res.steep, res._fields
    (0.0003, ('minimum', 'steep'))
    """
    if not lrs:
        raise ValueError(
            "Expected at least one suggestion. Received: none. Fix: lr_find(suggest_funcs=(valley,))."
        )
    return _suggested_type(tuple(lrs))(**lrs)


def _func_name(f) -> str:
    while isinstance(f, functools.partial):
        f = f.func
    name = getattr(f, "__name__", None)
    if not name or not name.isidentifier() or name.startswith("_"):
        raise ValueError(
            f"Expected suggestion functions with a plain name (like valley, minimum, steep). Received: "
            f"{f!r}. Fix: pass a named function f(lrs, losses) -> lr."
        )
    return name


def _prep(lrs, losses):
    lrs, losses = np.asarray(lrs, dtype=np.float64), np.asarray(losses, dtype=np.float64)
    ok = np.isfinite(losses)
    return lrs[ok], losses[ok]


def valley(lrs, losses) -> float:
    """The LR two thirds of the way down the longest valley of the loss curve (robust default).

    Example: ``learn.lr_find(suggest_funcs=(valley, steep))``, or ``valley(lrs, losses)`` directly.
    """
    lrs, losses = _prep(lrs, losses)
    n = len(losses)
    if n < 3:
        return float(lrs[0]) if n else float("nan")
    # longest decreasing subsequence ending at each point (O(n^2), n ~ 100)
    lds, prev = np.ones(n, dtype=int), np.full(n, -1)
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and lds[j] + 1 > lds[i]:
                lds[i], prev[i] = lds[j] + 1, j
    end = int(np.argmax(lds))
    start = end
    while prev[start] != -1:
        start = prev[start]
    sections = (end - start) / 3
    idx = int(start + sections * 2)
    return float(lrs[min(idx, n - 1)])


def slide(lrs, losses, min_drop: float = 0.0) -> float:
    """The LR in the middle (log scale) of the descending stretch that ends at the loss minimum: far enough
    from both the flat start and the blow-up.

    Example: ``learn.lr_find(suggest_funcs=(slide,))``, or ``slide(lrs, losses)`` directly.
    """
    lrs, losses = _prep(lrs, losses)
    n = len(losses)
    if n < 3:
        return float(lrs[0]) if n else float("nan")
    grads = np.gradient(losses, np.log10(lrs))
    end = int(np.argmin(losses))
    start = end
    while start > 0 and grads[start - 1] < -min_drop:
        start -= 1
    return float(lrs[(start + end) // 2])


def minimum(lrs, losses) -> float:
    """A tenth of the LR at the minimum loss.

    Example: ``learn.lr_find(suggest_funcs=(minimum, steep))``, or ``minimum(lrs, losses)``.
    """
    lrs, losses = _prep(lrs, losses)
    return float(lrs[int(np.argmin(losses))] / 10) if len(lrs) else float("nan")


def steep(lrs, losses) -> float:
    """The LR where the loss falls fastest (steepest negative slope in log-LR).

    Example: ``learn.lr_find(suggest_funcs=(steep,))``, or ``steep(lrs, losses)`` directly.
    """
    lrs, losses = _prep(lrs, losses)
    if len(lrs) < 3:
        return float(lrs[0]) if len(lrs) else float("nan")
    grads = np.gradient(losses, np.log10(lrs))
    return float(lrs[int(np.argmin(grads))])


class LRFinder(Callback):
    """Exponentially increases the LR from ``start_lr`` to ``end_lr`` over ``num_it`` batches, recording the
    smoothed loss; stops when the loss exceeds 4x its minimum (``stop_div``). No validation runs.

    Example: ``learn.lr_find()`` runs one (``learn.fit(1, cbs=LRFinder(num_it=50))`` by hand).
    """

    order = 1
    run_valid = False

    def __init__(
        self,
        start_lr: float = 1e-7,
        end_lr: float = 10,
        num_it: int = 100,
        stop_div: bool = True,
        beta: float = 0.98,
    ):
        if not 0 < start_lr < end_lr:
            raise ValueError(
                f"Expected 0 < start_lr < end_lr. Received: start_lr={start_lr}, end_lr={end_lr}."
            )
        self.start_lr, self.end_lr, self.num_it, self.stop_div, self.beta = (
            start_lr,
            end_lr,
            num_it,
            stop_div,
            beta,
        )
        self.lrs, self.losses, self.suggestions = [], [], {}

    def before_fit(self):
        self.lrs, self.losses, self._avg, self._n, self.best = [], [], 0.0, 0, float("inf")
        self._it = 0

    def before_batch(self):
        lr = self.start_lr * (self.end_lr / self.start_lr) ** (self._it / max(1, self.num_it - 1))
        set_hyper(self.learn.opt, "lr", lr)
        self._lr = lr

    def after_batch(self):
        v = float(self.learn.loss)
        self._it += 1
        if not math.isfinite(v):
            raise CancelFitException()
        self._n += 1
        self._avg = self.beta * self._avg + (1 - self.beta) * v
        smooth = self._avg / (1 - self.beta**self._n)
        self.lrs.append(self._lr)
        self.losses.append(smooth)
        self.best = min(self.best, smooth)
        if (self.stop_div and smooth > 4 * self.best and self._n > 3) or self._it >= self.num_it:
            raise CancelFitException()

    def before_validate(self):
        raise CancelValidException()

    def suggest(
        self, funcs=(valley,), show_plot: bool = True, skip_start: int | None = None, skip_end: int = 5
    ):
        """Suggested LRs from each function in ``funcs`` (e.g. ``valley, slide, minimum, steep``), as a
        :func:`SuggestedLRs` named tuple with exactly those fields in that order.

        The first ``skip_start`` points (default: a tenth of the run, at least one) and the last ``skip_end``
        are left out, so a suggestion never lands on ``start_lr`` or in the blow-up.
        """
        funcs = list(funcs) if isinstance(funcs, (list, tuple)) else [funcs]
        names = [_func_name(f) for f in funcs]
        if len(set(names)) != len(names):
            raise ValueError(
                f"Expected each suggestion function once. Received: {names}. Fix: drop the repeats."
            )
        lrs, losses = self._trimmed(skip_start, skip_end)
        found = {n: f(lrs, losses) for n, f in zip(names, funcs)}
        self.suggestions = found
        if show_plot:
            self.plot(found)
        return SuggestedLRs(**found)

    def _trimmed(self, skip_start: int | None, skip_end: int):
        n = len(self.lrs)
        if skip_start is None:
            skip_start = max(1, self.num_it // 10)
        if n - skip_start - skip_end < 3:  # a run stopped early: keep what there is
            skip_start, skip_end = (1, 0) if n > 4 else (0, 0)
        end = n - skip_end
        return self.lrs[skip_start:end], self.losses[skip_start:end]

    def plot(self, suggestions: dict | None = None, ax=None, skip_end: int = 0):
        """Loss vs learning rate (log scale), with the suggestions marked."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(6, 4))
        end = len(self.lrs) - skip_end if len(self.lrs) > skip_end + 3 else len(self.lrs)
        ax.plot(self.lrs[:end], self.losses[:end])
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("loss (smoothed)")
        for (name, lr), mk in zip((suggestions or {}).items(), "o^sv"):
            if lr is None or not np.isfinite(lr):
                continue
            i = int(np.argmin(np.abs(np.log(np.asarray(self.lrs)) - np.log(lr))))
            ax.plot(lr, self.losses[i], mk, markersize=8, label=f"{name}: {lr:.2e}")
        if suggestions:
            ax.legend()
        return ax
