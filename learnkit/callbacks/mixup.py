"""MixUp and CutMix: train on mixtures of pairs of items, with the loss mixed in the same proportion.

Both draw one ``lam ~ Beta(alpha, alpha)`` and one random pairing (a permutation of the batch) per training
batch. The targets are left as they are; during training the learner's loss becomes
``lam * loss(pred, y) + (1 - lam) * loss(pred, y[perm])``, which for cross-entropy equals training on the
mixed soft labels and works with any loss (integer class targets, one-hot, regression). Validation, metrics
and ``get_preds`` see the plain loss and the original inputs and targets.

The random draws use torch's global generator, so ``set_seed`` makes runs repeatable and checkpoints
(which store the RNG state) resume exactly.

>>> import torch
>>> from torch import nn
>>> from learnkit import Learner, DataLoaders
>>> x = torch.randn(256, 8); y = (x.sum(1) > 0).long()
>>> dls = DataLoaders.from_tensors((x[:200], y[:200]), (x[200:], y[200:]), bs=32, device="cpu")
>>> learn = Learner(dls, nn.Linear(8, 2), loss_func=nn.CrossEntropyLoss(), cbs=MixUp(0.4))
>>> learn.fit(1, quiet=True)
"""

from __future__ import annotations

import math

import torch

from ..exceptions import DataError
from .core import Callback

__all__ = ["MixUp", "CutMix", "MixedLoss"]


class MixedLoss:
    """The loss used while a :class:`MixUp` / :class:`CutMix` callback trains: mixes ``loss_func`` over the
    original targets and the paired ones. Without a pairing for the current batch it is the plain loss.

    Other attributes (``reduction``, ``activation``, ``decodes``, ...) are those of the wrapped loss.
    """

    def __init__(self, loss_func, owner: _MixBase):
        self.loss_func, self.owner = loss_func, owner

    def __call__(self, pred, *yb):
        lam, perm = self.owner.lam, self.owner.perm
        lf = self.loss_func
        if perm is None:
            return lf(pred, *yb)
        l1 = lf(pred, *yb)
        l2 = lf(pred, *(y[perm] if isinstance(y, torch.Tensor) and y.ndim else y for y in yb))
        return torch.lerp(l2, l1, lam)  # lam * l1 + (1 - lam) * l2

    def __getattr__(self, name):
        if name in ("loss_func", "owner"):
            raise AttributeError(name)
        return getattr(self.loss_func, name)

    def __repr__(self) -> str:
        return f"MixedLoss({self.loss_func!r})"


class _MixBase(Callback):
    """Shared plumbing: the loss swap during the training phase and the per-batch draw."""

    order = 15  # after ParamScheduler (1) and ChannelsLast (-5); before the loss is computed
    run_valid = False

    def __init__(self, alpha: float):
        if not (isinstance(alpha, (int, float)) and alpha > 0):
            raise ValueError(
                f"Expected alpha > 0. Received: alpha={alpha!r}. Fix: {type(self).__name__}(0.4)."
            )
        self.alpha = float(alpha)
        self._beta = torch.distributions.Beta(torch.tensor(self.alpha), torch.tensor(self.alpha))
        self.lam, self.perm, self._orig_loss = None, None, None

    # -- the loss swap: only during the training phase
    def _restore(self) -> None:
        if self._orig_loss is not None:
            if isinstance(self.learn.loss_func, MixedLoss) and self.learn.loss_func.owner is self:
                self.learn.loss_func = self._orig_loss
            self._orig_loss = None
        self.lam = self.perm = None

    def before_train(self):
        self._restore()
        self._orig_loss = self.learn.loss_func
        self.learn.loss_func = MixedLoss(self._orig_loss, self)

    def after_train(self):
        self._restore()

    def after_fit(self):
        self._restore()

    # -- per batch
    def _draw(self, bs: int, device) -> None:
        self.lam = float(self._beta.sample())
        self.perm = torch.randperm(bs).to(device)

    def _inputs(self) -> list[int]:
        """Indices of the float tensors in ``learn.xb`` (the ones to mix)."""
        idx = [
            i for i, x in enumerate(self.learn.xb) if isinstance(x, torch.Tensor) and x.is_floating_point()
        ]
        if not idx:
            kinds = [
                type(x).__name__ if not isinstance(x, torch.Tensor) else str(x.dtype) for x in self.learn.xb
            ]
            raise DataError(
                f"Expected floating-point inputs to mix (images, features). Received: xb of {kinds}. "
                f"Fix: {type(self).__name__} does not apply to token ids or categorical codes; remove it."
            )
        return idx

    def after_batch(self):
        self.lam = self.perm = None

    def after_cancel_batch(self):
        self.lam = self.perm = None


class MixUp(_MixBase):
    """MixUp (Zhang et al., 2018): each training input becomes ``lam * x + (1 - lam) * x[perm]``.

    Every floating-point input tensor of the batch is mixed with the same ``lam`` and pairing; the loss is
    mixed accordingly (see :class:`MixedLoss`). Validation is untouched.

    Args:
        alpha: the Beta distribution's parameter; small values (0.2-0.4) keep most mixes close to one item.

    >>> cb = MixUp(alpha=0.4)
    """

    def __init__(self, alpha: float = 0.4):
        super().__init__(alpha)

    def before_batch(self):
        learn = self.learn
        idx = self._inputs()
        xb = list(learn.xb)
        x0 = xb[idx[0]]
        self._draw(x0.shape[0], x0.device)
        for i in idx:
            x = xb[i]
            xb[i] = torch.lerp(x[self.perm], x, self.lam)  # a new tensor: the loader's data stay as they are
        learn.xb = tuple(xb)


class CutMix(_MixBase):
    """CutMix (Yun et al., 2019): paste a random box of the paired image into each training image.

    The box covers a fraction ``1 - lam`` of the image (clipped at the borders; ``lam`` is then recomputed from
    the real box area) and the loss is mixed with that ``lam``. Inputs must be image batches ``(N, C, H, W)``.
    ``self.box`` is the last box as ``(top, bottom, left, right)`` (rows ``top:bottom``, columns ``left:right``).

    Args:
        alpha: the Beta distribution's parameter (1.0: box sizes uniform).

    >>> cb = CutMix(alpha=1.0)
    """

    def __init__(self, alpha: float = 1.0):
        super().__init__(alpha)

    def before_batch(self):
        learn = self.learn
        i = self._inputs()[0]
        x = learn.xb[i]
        if x.ndim != 4:
            raise DataError(
                f"Expected image batches of shape (N, C, H, W) for CutMix. Received: xb[{i}].shape="
                f"{tuple(x.shape)}. Fix: reshape the inputs to images, or use MixUp."
            )
        n, _, h, w = x.shape
        self._draw(n, x.device)
        cut = math.sqrt(1.0 - self.lam)
        ch, cw = int(h * cut), int(w * cut)
        cy, cx = int(torch.randint(h, ())), int(torch.randint(w, ()))
        y0, y1 = max(cy - ch // 2, 0), min(cy + ch - ch // 2, h)
        x0, x1 = max(cx - cw // 2, 0), min(cx + cw - cw // 2, w)
        out = x.clone()  # the loader's data stay as they are
        out[:, :, y0:y1, x0:x1] = x[self.perm][:, :, y0:y1, x0:x1]
        self.lam = 1.0 - (y1 - y0) * (x1 - x0) / float(h * w)
        self.box = (y0, y1, x0, x1)
        xb = list(learn.xb)
        xb[i] = out
        learn.xb = tuple(xb)
