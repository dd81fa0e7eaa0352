"""A live plot of the training and validation losses (fastai's ``ShowGraphCallback``).

In a notebook the figure is redrawn in place after every epoch; elsewhere (a script, a test) it is drawn
once at the end of ``fit`` and kept in ``cb.fig`` (save it with ``cb.fig.savefig(...)``). Nothing is drawn
during ``lr_find`` or on ranks other than 0.

>>> import torch
>>> from torch import nn
>>> from learnkit import Learner, DataLoaders
>>> x = torch.randn(256, 8); y = (x.sum(1) > 0).long()
>>> dls = DataLoaders.from_tensors((x[:200], y[:200]), (x[200:], y[200:]), bs=32, device="cpu")
>>> learn = Learner(dls, nn.Linear(8, 2), loss_func=nn.CrossEntropyLoss(), cbs=ShowGraphCallback())
>>> learn.fit(2, quiet=True)                          # doctest: +SKIP
>>> learn.show_graph.fig.savefig("losses.png")        # doctest: +SKIP
"""

from __future__ import annotations

import math

from ..distributed import rank_distrib
from .core import Callback
from .progress import _in_notebook
from .schedule import LRFinder

__all__ = ["ShowGraphCallback", "ShowGraph"]


class ShowGraphCallback(Callback):
    """Plot the smoothed training loss per batch and the validation loss per epoch while training.

    The x axis spans the whole ``fit`` (all epochs' batches) from the start, so the curve grows into it.
    Attached as ``learn.show_graph``; ``cb.fig`` / ``cb.ax`` hold the matplotlib figure after ``fit``.

    Args:
        figsize: the figure size in inches.

    >>> cb = ShowGraphCallback(figsize=(6, 4))
    """

    order = 65  # after the Recorder (50) filled in the epoch and the progress table (60)
    run_valid = False

    def __init__(self, figsize=(6, 4)):
        self.figsize = figsize
        self.fig = self.ax = None
        self._handle = None

    def before_fit(self):
        learn = self.learn
        self._on = rank_distrib() == 0 and not any(isinstance(c, LRFinder) for c in learn.cbs)
        if not self._on:
            return
        self.notebook = _in_notebook()
        self._handle = None
        self._n_total = learn.n_epoch * len(learn.dls.train)
        self._first = len(learn.recorder.smooth_losses)  # batches recorded before this fit (a resumed run)

    def _draw(self) -> None:
        import matplotlib.pyplot as plt

        rec = self.learn.recorder
        if self.fig is None:
            self.fig, self.ax = plt.subplots(figsize=self.figsize)
        ax = self.ax
        ax.clear()
        train = rec.smooth_losses
        ax.plot(range(len(train)), train, label="train")
        n_per = len(self.learn.dls.train)
        vs = [
            (n_per * (i + 1) - 1, r[1])
            for i, r in enumerate(rec.values)
            if r[1] is not None and not math.isnan(r[1])
        ]
        if vs:
            ax.plot([x for x, _ in vs], [v for _, v in vs], marker="o", label="valid")
        ax.set_xlim(0, max(self._n_total, len(train), 1))
        finite = [v for v in list(train) + [v for _, v in vs] if math.isfinite(v)]
        if finite:
            lo, hi = min(finite), max(finite)
            pad = 0.05 * (hi - lo) if hi > lo else 0.05 * abs(hi) + 1e-8
            ax.set_ylim(lo - pad, hi + pad)
        ax.set_xlabel("batch")
        ax.set_ylabel("loss")
        ax.legend()

    def after_epoch(self):
        if not getattr(self, "_on", False) or not self.notebook:
            return
        from IPython.display import display

        self._draw()
        if self._handle is None:
            self._handle = display(self.fig, display_id=True)
        else:
            self._handle.update(self.fig)

    def after_fit(self):
        if not getattr(self, "_on", False) or not self.learn.recorder.smooth_losses:
            return
        self._draw()
        if self.notebook:
            import matplotlib.pyplot as plt

            if self._handle is not None:
                self._handle.update(self.fig)
            plt.close(self.fig)  # already shown: don't show it a second time at the end of the cell


#: Short name; ``learn.show_graph`` is the attached instance either way.
ShowGraph = ShowGraphCallback
