"""Losses that flatten their inputs and know their activation and decoding.

A "Flat" loss takes the model output with the class (or value) dimension at ``axis`` and any number of
leading dimensions, moves the class dimension last and flattens, so one loss fits (N, C) classification,
(N, T, C) sequence outputs and (N, C, H, W) segmentation (``axis=1``). It checks shapes with cheap Python
comparisons before calling PyTorch (no device synchronisation) and turns shape and label mistakes into a
:class:`~learnkit.exceptions.ModelError` that shows both shapes and the likely fix.

``activation`` turns the raw output into what a user reads (probabilities), ``decodes`` turns the
activated output into predictions (class indices, 0/1 labels). :func:`loss_activation` and
:func:`loss_decodes` do the same for any loss, plain PyTorch ones included. ``spec()`` /
:func:`loss_from_spec` describe a loss as plain data for export.

>>> import torch
>>> loss = CrossEntropyLossFlat()
>>> pred, targ = torch.tensor([[[2.0, 0.0], [0.0, 1.0]]]), torch.tensor([[0, 1]])  # (N=1, T=2, C=2)
>>> round(loss(pred, targ).item(), 4)
0.2201
>>> loss.decodes(loss.activation(pred))
tensor([[0, 1]])
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .exceptions import ModelError

__all__ = [
    "BaseLoss",
    "CrossEntropyLossFlat",
    "BCEWithLogitsLossFlat",
    "MSELossFlat",
    "L1LossFlat",
    "LabelSmoothingCrossEntropy",
    "LabelSmoothingCrossEntropyFlat",
    "FocalLoss",
    "FocalLossFlat",
    "loss_activation",
    "loss_decodes",
    "loss_spec",
    "loss_from_spec",
]


# ----------------------------------------------------------------------------------------------- helpers
def _shape(t) -> tuple:
    return tuple(t.shape) if isinstance(t, torch.Tensor) else ()


def _squeezed(shape) -> tuple:
    return tuple(s for s in shape if s != 1)


def _per_item(t: torch.Tensor) -> int:
    return t.numel() // t.shape[0] if t.ndim and t.shape[0] else (1 if not t.ndim else 0)


def _batch_fix(pred: torch.Tensor, targ: torch.Tensor) -> str | None:
    if pred.ndim and targ.ndim and pred.shape[0] != targ.shape[0]:
        return (
            f"pred has {pred.shape[0]} items but targ has {targ.shape[0]}: check that the model keeps the batch "
            "dimension (e.g. flatten with x.flatten(1), not x.view(-1)) and that the loader yields one target "
            "per input"
        )
    return None


def _plain(v):
    """Plain data for a spec: tensors -> lists."""
    if isinstance(v, torch.Tensor):
        return v.detach().cpu().tolist()
    return v


def _is_plain(v) -> bool:
    if v is None or isinstance(v, (bool, int, float, str)):
        return True
    if isinstance(v, (list, tuple)):
        return all(_is_plain(o) for o in v)
    if isinstance(v, dict):
        return all(isinstance(k, str) and _is_plain(o) for k, o in v.items())
    return False


def _is_torch_loss_cls(cls) -> bool:
    return (
        isinstance(cls, type)
        and issubclass(cls, nn.Module)
        and cls.__module__ == "torch.nn.modules.loss"
        and getattr(nn, cls.__name__, None) is cls
    )


def _unwrap(f):
    while isinstance(f, functools.partial):
        f = f.func
    return f


_CE, _NLL, _BCE_LOGITS, _BCE = "ce", "nll", "bce_logits", "bce"
_TORCH_KINDS: list[tuple[type, Callable, str]] = [
    (nn.CrossEntropyLoss, F.cross_entropy, _CE),
    (nn.NLLLoss, F.nll_loss, _NLL),
    (nn.BCEWithLogitsLoss, F.binary_cross_entropy_with_logits, _BCE_LOGITS),
    (nn.BCELoss, F.binary_cross_entropy, _BCE),
]
_FUNCTIONAL = (
    "cross_entropy",
    "nll_loss",
    "binary_cross_entropy_with_logits",
    "binary_cross_entropy",
    "mse_loss",
    "l1_loss",
    "smooth_l1_loss",
    "huber_loss",
    "kl_div",
)


def _torch_kind(f) -> str | None:
    f = _unwrap(f)
    for cls, fn, kind in _TORCH_KINDS:
        if isinstance(f, cls) or f is fn:
            return kind
    return None


# ----------------------------------------------------------------------------------------------- BaseLoss
class BaseLoss:
    """Wrap a PyTorch loss class so that it flattens its inputs and knows its activation and decoding.

    ``BaseLoss(nn.HuberLoss, delta=2.0, floatify=True, is_2d=False)`` builds ``nn.HuberLoss(delta=2.0)``.
    On each call ``pred``'s dimension ``axis`` is moved last; with ``flatten`` the prediction becomes
    (-1, C) (``is_2d``, class scores) or (-1,) and the target (-1,); ``floatify`` casts an integer target
    to float. ``reduction`` reads and sets the wrapped loss's reduction (``'none'`` gives per-element
    losses, flattened). :meth:`to` moves class weights; they also follow ``pred``'s device by themselves.

    >>> import torch
    >>> from torch import nn
    >>> loss = BaseLoss(nn.HuberLoss, delta=1.0, floatify=True, is_2d=False)
    >>> loss(torch.tensor([[0.5], [3.0]]), torch.tensor([0, 1]))
    tensor(0.8125)
    """

    def __init__(
        self,
        loss_cls: type,
        *args,
        axis: int = -1,
        flatten: bool = True,
        floatify: bool = False,
        is_2d: bool = True,
        **kwargs,
    ):
        self.loss_cls = loss_cls
        self.func = loss_cls(*args, **kwargs)
        self.axis, self.flatten, self.floatify, self.is_2d = axis, flatten, floatify, is_2d
        self._spec_kwargs = (
            None
            if args
            else {"axis": axis, "flatten": flatten, "floatify": floatify, "is_2d": is_2d, **kwargs}
        )
        self._buf_device = self._buffer_device()

    # -- plumbing
    def _buffer_device(self) -> torch.device | None:
        if isinstance(self.func, nn.Module):
            for b in self.func.buffers():
                return b.device
        return None

    def to(self, device) -> BaseLoss:
        """Move the wrapped loss's tensors (class weights) to ``device``; returns ``self``."""
        if isinstance(self.func, nn.Module):
            self.func.to(device)
        self._buf_device = self._buffer_device()
        return self

    @property
    def reduction(self) -> str:
        """The wrapped loss's reduction ('mean', 'sum' or 'none')."""
        return self.func.reduction

    @reduction.setter
    def reduction(self, value: str) -> None:
        self.func.reduction = value

    # -- the call
    def _prepare(self, pred: torch.Tensor, targ: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(pred, targ)`` as the wrapped loss receives them (subclasses check shapes here)."""
        if self.flatten and self.axis != -1 and pred.ndim > 1:
            pred = pred.movedim(self.axis, -1)
        if self.floatify and not targ.is_floating_point():
            targ = targ.float()
        if self.flatten:
            if self.is_2d:
                pred = pred.reshape(-1, pred.shape[-1]) if pred.ndim else pred.reshape(-1, 1)
                if pred.shape[0] != targ.numel():
                    _raise_class_shape(pred, targ, self.axis, type(self).__name__)
            else:
                if pred.numel() != targ.numel():
                    _raise_value_shape(pred, targ, type(self).__name__)
                pred = pred.reshape(-1)
            targ = targ.reshape(-1)
        return pred, targ

    def _translate(self, e: Exception, pred, targ, p, t) -> Exception | None:
        """A clearer error for an exception from the wrapped loss, or ``None`` to re-raise it."""
        return None

    def __call__(self, pred: torch.Tensor, targ: torch.Tensor, **kwargs) -> torch.Tensor:
        """The loss of ``pred`` (model output) against ``targ``."""
        p, t = self._prepare(pred, targ)
        if self._buf_device is not None and self._buf_device != p.device:
            self.to(p.device)
        try:
            return self.func(p, t, **kwargs)
        except (IndexError, RuntimeError, ValueError) as e:
            err = self._translate(e, pred, targ, p, t)
            if err is None:
                raise
            raise err from e

    def activation(self, x: torch.Tensor) -> torch.Tensor:
        """Raw output -> what the user reads (softmax over ``axis`` for cross-entropy, sigmoid for BCE with
        logits, identity otherwise)."""
        kind = _torch_kind(self.func)
        if kind == _CE:
            return F.softmax(x, dim=self.axis)
        if kind == _NLL:
            return x.exp()
        if kind == _BCE_LOGITS:
            return torch.sigmoid(x)
        return x

    def decodes(self, x: torch.Tensor) -> torch.Tensor:
        """Activated output -> predictions (argmax over ``axis`` for class scores, ``> 0.5`` for BCE)."""
        kind = _torch_kind(self.func)
        if kind in (_CE, _NLL):
            return x.argmax(dim=self.axis)
        if kind in (_BCE_LOGITS, _BCE):
            return x > 0.5
        return x

    def spec(self) -> dict | None:
        """``{'name': class name, 'kwargs': {...}}`` in plain data (tensors as lists), for
        :func:`loss_from_spec`; ``None`` when the wrapped loss cannot be named (not a ``torch.nn`` loss)."""
        if self._spec_kwargs is None:
            return None
        kwargs = {k: _plain(v) for k, v in self._spec_kwargs.items()}
        if type(self) is BaseLoss:
            if not _is_torch_loss_cls(self.loss_cls):
                return None
            kwargs = {"loss_cls": self.loss_cls.__name__, **kwargs}
        if not _is_plain(kwargs):
            return None
        return {"name": type(self).__name__, "kwargs": kwargs}

    def __repr__(self) -> str:
        kw = self._spec_kwargs or {}
        inner = ", ".join(f"{k}={v!r}" for k, v in kw.items() if not isinstance(v, torch.Tensor))
        if type(self) is BaseLoss:
            inner = f"{self.loss_cls.__name__}, {inner}"
        return f"{type(self).__name__}({inner})"


def _raise_class_shape(pred: torch.Tensor, targ: torch.Tensor, axis: int, lname: str, orig_pred=None):
    shown = orig_pred if orig_pred is not None else pred
    fix = _batch_fix(shown, targ)
    if fix is None and shown.ndim >= 3 and axis == -1 and shown.shape[:1] + shown.shape[2:] == targ.shape:
        fix = f"the class scores are along dim 1 (channels-first output), so use {lname}(axis=1)"
    if fix is None:
        fix = (
            "make the class scores the last dimension of the model output (or pass axis=...), with one integer "
            "class index per target, e.g. pred (N, C) with targ (N,), or (N, T, C) with (N, T)"
        )
    raise ModelError(
        f"Expected the model output to have one score per class along axis {axis} and the target one class "
        f"index per item for {lname}. Received: pred.shape={_shape(shown)}, targ.shape={_shape(targ)}. Fix: {fix}."
    )


def _raise_value_shape(pred: torch.Tensor, targ: torch.Tensor, lname: str):
    fix = _batch_fix(pred, targ)
    if fix is None:
        p, q = _per_item(pred), _per_item(targ)
        fix = (
            f"the model outputs {p} values per item but the target has {q}; make the final layer output "
            f"{q} value{'s' if q != 1 else ''} per item (n_out={q}, e.g. nn.Linear(..., {q}), "
            f"out_features={q})"
        )
        if q == 1 and p > 1:
            fix += "; if this is classification, use CrossEntropyLossFlat with integer class targets instead"
    raise ModelError(
        f"Expected predictions and targets with the same number of values per item for {lname}. "
        f"Received: pred.shape={_shape(pred)}, targ.shape={_shape(targ)}. Fix: {fix}."
    )


# ----------------------------------------------------------------------------------------------- classification
class _ClassLossFlat(BaseLoss):
    """Cross-entropy family: class scores along ``axis``, integer class targets (or probabilities)."""

    def _prepare(self, pred, targ):
        if pred.ndim == 0:
            _raise_class_shape(pred, targ, self.axis, type(self).__name__)
        soft = targ.is_floating_point()
        if soft and targ.shape != pred.shape:
            raise ModelError(
                f"Expected integer class indices (int64) as targets of {type(self).__name__}, or class "
                f"probabilities shaped like the model output. Received: targ.dtype={targ.dtype}, "
                f"pred.shape={_shape(pred)}, targ.shape={_shape(targ)}. Fix: for classification convert the "
                "labels to class indices with targ.long() (a CategoryBlock does this); to predict a number use "
                "MSELossFlat and a model with one output per item (n_out=1)."
            )
        p = pred.movedim(self.axis, -1) if self.axis != -1 and pred.ndim > 1 else pred
        n_cls = p.shape[-1]
        if soft:
            t = targ.movedim(self.axis, -1) if self.axis != -1 and targ.ndim > 1 else targ
            return p.reshape(-1, n_cls), t.reshape(-1, n_cls)
        if _squeezed(p.shape[:-1]) != _squeezed(targ.shape):
            _raise_class_shape(p, targ, self.axis, type(self).__name__, orig_pred=pred)
        if targ.dtype not in (torch.int64, torch.uint8):
            targ = targ.long()
        return p.reshape(-1, n_cls), targ.reshape(-1)

    def _ignore_index(self) -> int:
        return getattr(self.func, "ignore_index", -100)

    def _translate(self, e, pred, targ, p, t):
        msg = str(e)
        if "device-side assert" in msg:
            return ModelError(
                f"A CUDA device-side assert fired in {type(self).__name__}. Expected every target to be a class "
                f"index in [0, {p.shape[-1] - 1}]. Received: pred.shape={_shape(pred)}, "
                f"targ.shape={_shape(targ)}. Fix: check the largest label against the number of model outputs "
                "(run one batch on the CPU for an exact message); the CUDA context must be restarted."
            )
        if "out of bounds" not in msg or t.is_floating_point():
            return None
        n_cls = p.shape[-1]
        valid = t[t != self._ignore_index()]
        if not valid.numel():
            return None
        hi, lo = int(valid.max()), int(valid.min())
        if hi >= n_cls:
            return ModelError(
                f"Expected every target to be a class index in [0, {n_cls - 1}] because the model outputs "
                f"{n_cls} classes. Received: a target of {hi} (pred.shape={_shape(pred)}, "
                f"targ.shape={_shape(targ)}). Fix: make the final layer output {hi + 1} classes "
                f"(n_out={hi + 1}, e.g. nn.Linear(..., {hi + 1})), or check how the labels were encoded."
            )
        if lo < 0:
            return ModelError(
                f"Expected every target to be a class index in [0, {n_cls - 1}] or ignore_index="
                f"{self._ignore_index()}. Received: a target of {lo} (pred.shape={_shape(pred)}, "
                f"targ.shape={_shape(targ)}). Fix: map the labels to 0..{n_cls - 1}, or pass ignore_index={lo} "
                "to skip those targets."
            )
        return None

    def activation(self, x):
        """Softmax over ``axis``."""
        return F.softmax(x, dim=self.axis)

    def decodes(self, x):
        """Argmax over ``axis``."""
        return x.argmax(dim=self.axis)


class CrossEntropyLossFlat(_ClassLossFlat):
    """``nn.CrossEntropyLoss`` with the class scores along ``axis`` (default last), any leading dims.

    Targets are integer class indices shaped like the output without its class dim, or class
    probabilities shaped like the output. Activation: softmax over ``axis``; decodes: argmax.

    >>> import torch
    >>> loss = CrossEntropyLossFlat(axis=1)  # segmentation: (N, C, H, W) with (N, H, W)
    >>> pred, targ = torch.zeros(2, 3, 4, 4), torch.zeros(2, 4, 4, dtype=torch.long)
    >>> round(loss(pred, targ).item(), 4)  # log(3)
    1.0986
    """

    def __init__(
        self,
        axis: int = -1,
        weight: torch.Tensor | None = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ):
        super().__init__(
            nn.CrossEntropyLoss,
            axis=axis,
            weight=_as_weight(weight),
            ignore_index=ignore_index,
            reduction=reduction,
            label_smoothing=label_smoothing,
        )
        self._spec_kwargs = {
            "axis": axis,
            "weight": weight,
            "ignore_index": ignore_index,
            "reduction": reduction,
            "label_smoothing": label_smoothing,
        }


class LabelSmoothingCrossEntropy(nn.Module):
    """Cross-entropy against targets smoothed towards uniform: ``(1 - eps) * CE + eps * mean_c(-log p_c)``.

    Class scores along dim 1 (PyTorch's convention). Uses PyTorch's fused ``label_smoothing``, so it is
    exactly ``F.cross_entropy(..., label_smoothing=eps)``.

    >>> import torch
    >>> loss = LabelSmoothingCrossEntropy(eps=0.1)
    >>> round(loss(torch.tensor([[4.0, 0.0, 0.0]]), torch.tensor([0])).item(), 4)
    0.3026
    """

    def __init__(
        self,
        eps: float = 0.1,
        weight: torch.Tensor | None = None,
        reduction: str = "mean",
        ignore_index: int = -100,
    ):
        super().__init__()
        self.eps, self.reduction, self.ignore_index = eps, reduction, ignore_index
        self.register_buffer("weight", _as_weight(weight))

    def forward(self, pred: torch.Tensor, targ: torch.Tensor) -> torch.Tensor:
        """The smoothed cross-entropy of ``pred`` (N, C, ...) against class indices ``targ`` (N, ...)."""
        return F.cross_entropy(
            pred,
            targ,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
            label_smoothing=self.eps,
        )

    def activation(self, x: torch.Tensor) -> torch.Tensor:
        """Softmax over dim 1."""
        return F.softmax(x, dim=1 if x.ndim > 1 else 0)

    def decodes(self, x: torch.Tensor) -> torch.Tensor:
        """Argmax over dim 1."""
        return x.argmax(dim=1 if x.ndim > 1 else 0)


class LabelSmoothingCrossEntropyFlat(_ClassLossFlat):
    """:class:`LabelSmoothingCrossEntropy` with the class scores along ``axis`` (default last), flattened.

    >>> import torch
    >>> loss = LabelSmoothingCrossEntropyFlat(eps=0.1)
    >>> round(loss(torch.tensor([[[4.0, 0.0, 0.0]]]), torch.tensor([[0]])).item(), 4)
    0.3026
    """

    def __init__(
        self,
        axis: int = -1,
        eps: float = 0.1,
        weight: torch.Tensor | None = None,
        reduction: str = "mean",
        ignore_index: int = -100,
    ):
        super().__init__(
            LabelSmoothingCrossEntropy,
            axis=axis,
            eps=eps,
            weight=weight,
            reduction=reduction,
            ignore_index=ignore_index,
        )
        self._spec_kwargs = {
            "axis": axis,
            "eps": eps,
            "weight": weight,
            "reduction": reduction,
            "ignore_index": ignore_index,
        }


class FocalLoss(nn.Module):
    """Focal loss (Lin et al., 2017): cross-entropy scaled by ``(1 - p_t) ** gamma`` so that easy,
    well-classified items count less. ``gamma=0`` is cross-entropy.

    Class scores along dim 1 (PyTorch's convention). ``weight`` (one per class) and ``ignore_index``
    behave as in ``F.cross_entropy``: the weighted mean divides by the sum of the targets' weights; the
    modulating factor uses the unweighted probability of the target class.

    >>> import torch
    >>> loss = FocalLoss(gamma=2.0)
    >>> round(loss(torch.tensor([[0.0, 0.0]]), torch.tensor([0])).item(), 4)  # 0.25 * log(2)
    0.1733
    """

    def __init__(
        self,
        gamma: float = 2.0,
        weight: torch.Tensor | None = None,
        reduction: str = "mean",
        ignore_index: int = -100,
    ):
        super().__init__()
        self.gamma, self.reduction, self.ignore_index = gamma, reduction, ignore_index
        self.register_buffer("weight", _as_weight(weight))

    def forward(self, pred: torch.Tensor, targ: torch.Tensor) -> torch.Tensor:
        """Focal loss of ``pred`` (N, C, ...) against class indices ``targ`` (N, ...)."""
        logp = F.log_softmax(pred, dim=1)
        valid = targ != self.ignore_index
        safe = torch.where(valid, targ, torch.zeros_like(targ))
        logp_t = logp.gather(1, safe.unsqueeze(1)).squeeze(1)
        loss = -((1 - logp_t.exp()) ** self.gamma) * logp_t
        w = valid.to(loss.dtype)
        if self.weight is not None:
            w = w * self.weight.to(loss.dtype)[safe]
        loss = loss * w
        if self.reduction == "none":
            return loss
        if self.reduction == "sum":
            return loss.sum()
        return loss.sum() / w.sum()

    def activation(self, x: torch.Tensor) -> torch.Tensor:
        """Softmax over dim 1."""
        return F.softmax(x, dim=1 if x.ndim > 1 else 0)

    def decodes(self, x: torch.Tensor) -> torch.Tensor:
        """Argmax over dim 1."""
        return x.argmax(dim=1 if x.ndim > 1 else 0)


class FocalLossFlat(_ClassLossFlat):
    """:class:`FocalLoss` with the class scores along ``axis`` (default last), flattened.

    >>> import torch
    >>> loss = FocalLossFlat(gamma=2.0)
    >>> round(loss(torch.zeros(1, 1, 2), torch.tensor([[0]])).item(), 4)
    0.1733
    """

    def __init__(
        self,
        axis: int = -1,
        gamma: float = 2.0,
        weight: torch.Tensor | None = None,
        reduction: str = "mean",
        ignore_index: int = -100,
    ):
        super().__init__(
            FocalLoss, axis=axis, gamma=gamma, weight=weight, reduction=reduction, ignore_index=ignore_index
        )
        self._spec_kwargs = {
            "axis": axis,
            "gamma": gamma,
            "weight": weight,
            "reduction": reduction,
            "ignore_index": ignore_index,
        }


def _as_weight(w):
    if w is None or isinstance(w, torch.Tensor):
        return w
    return torch.as_tensor(w, dtype=torch.float32)


# ----------------------------------------------------------------------------------------------- multi-label
class BCEWithLogitsLossFlat(BaseLoss):
    """``nn.BCEWithLogitsLoss`` for binary and multi-label targets with scores along ``axis``.

    ``pred`` and ``targ`` have the same shape (a (N, 1) output with (N,) targets is fine); integer 0/1
    targets are cast to float. ``pos_weight`` (one per label) broadcasts over the last dim. Activation:
    sigmoid; decodes: ``> thresh``.

    >>> import torch
    >>> loss = BCEWithLogitsLossFlat()
    >>> round(loss(torch.tensor([[0.0, 2.0]]), torch.tensor([[1, 1]])).item(), 4)
    0.41
    >>> loss.decodes(loss.activation(torch.tensor([[0.0, 2.0]])))
    tensor([[False,  True]])
    """

    def __init__(
        self,
        axis: int = -1,
        thresh: float = 0.5,
        weight: torch.Tensor | None = None,
        pos_weight: torch.Tensor | None = None,
        reduction: str = "mean",
    ):
        super().__init__(
            nn.BCEWithLogitsLoss,
            axis=axis,
            floatify=True,
            weight=_as_weight(weight),
            pos_weight=_as_weight(pos_weight),
            reduction=reduction,
        )
        self.thresh = thresh
        self._spec_kwargs = {
            "axis": axis,
            "thresh": thresh,
            "weight": weight,
            "pos_weight": pos_weight,
            "reduction": reduction,
        }

    def _prepare(self, pred, targ):
        if pred.shape != targ.shape:
            if pred.numel() != targ.numel() or _squeezed(pred.shape) != _squeezed(targ.shape):
                self._raise(pred, targ)
            targ = targ.reshape(pred.shape)
        if not targ.is_floating_point():
            targ = targ.to(pred.dtype if pred.is_floating_point() else torch.float32)
        if self.axis != -1 and pred.ndim > 1:
            pred, targ = pred.movedim(self.axis, -1), targ.movedim(self.axis, -1)
        if pred.ndim > 1:
            pred, targ = pred.reshape(-1, pred.shape[-1]), targ.reshape(-1, pred.shape[-1])
        return pred, targ

    def _raise(self, pred, targ):
        fix = _batch_fix(pred, targ)
        if fix is None:
            p, q = _per_item(pred), _per_item(targ)
            if q == 1 and p > 1:
                fix = (
                    f"the model outputs {p} scores per item but each target is a single value. For multi-label "
                    f"data the target needs one 0/1 float column per label, shaped like pred (one-hot, e.g. "
                    f"F.one_hot(targ, {p}).float() or a MultiCategoryBlock); for single-label classification use "
                    "CrossEntropyLossFlat; for a binary target use one output per item (n_out=1)"
                )
            else:
                fix = (
                    f"the model outputs {p} values per item but the target has {q}; make the final layer "
                    f"output {q} (n_out={q})"
                )
        raise ModelError(
            f"Expected the model output and the target to have the same shape for {type(self).__name__} "
            f"(one logit per label). Received: pred.shape={_shape(pred)}, targ.shape={_shape(targ)}, "
            f"targ.dtype={targ.dtype}. Fix: {fix}."
        )

    def activation(self, x):
        """Sigmoid."""
        return torch.sigmoid(x)

    def decodes(self, x):
        """``x > thresh`` (on probabilities)."""
        return x > self.thresh


# ----------------------------------------------------------------------------------------------- regression
class _RegressionFlat(BaseLoss):
    def _prepare(self, pred, targ):
        if pred.shape != targ.shape and (
            pred.numel() != targ.numel() or _squeezed(pred.shape) != _squeezed(targ.shape)
        ):
            _raise_value_shape(pred, targ, type(self).__name__)
        if self.axis != -1 and pred.ndim > 1 and pred.shape == targ.shape:
            pred, targ = pred.movedim(self.axis, -1), targ.movedim(self.axis, -1)
        if not targ.is_floating_point():
            targ = targ.float()
        if self.flatten:
            return pred.reshape(-1), targ.reshape(-1)
        return pred, targ.reshape(pred.shape)


class MSELossFlat(_RegressionFlat):
    """``nn.MSELoss`` on flattened predictions and targets (a (N, 1) output with (N,) targets is fine;
    integer targets are cast to float). Activation and decodes: identity.

    >>> import torch
    >>> MSELossFlat()(torch.tensor([[1.0], [2.0]]), torch.tensor([1, 4]))
    tensor(2.)
    """

    def __init__(self, axis: int = -1, reduction: str = "mean"):
        super().__init__(nn.MSELoss, axis=axis, floatify=True, is_2d=False, reduction=reduction)
        self._spec_kwargs = {"axis": axis, "reduction": reduction}


class L1LossFlat(_RegressionFlat):
    """``nn.L1Loss`` (mean absolute error) on flattened predictions and targets.

    >>> import torch
    >>> L1LossFlat()(torch.tensor([[1.0], [2.0]]), torch.tensor([1, 4]))
    tensor(1.)
    """

    def __init__(self, axis: int = -1, reduction: str = "mean"):
        super().__init__(nn.L1Loss, axis=axis, floatify=True, is_2d=False, reduction=reduction)
        self._spec_kwargs = {"axis": axis, "reduction": reduction}


# ----------------------------------------------------------------------------------------------- any loss
def loss_activation(loss_func, x: torch.Tensor) -> torch.Tensor:
    """The activation of ``loss_func`` applied to raw output ``x``, for any loss.

    Uses the loss's own ``activation`` when it has one; recognises PyTorch's cross-entropy (softmax over
    dim 1, PyTorch's class dim), NLL (``exp`` of log-probabilities) and BCE-with-logits (sigmoid), as
    classes, functions or ``functools.partial`` of them; otherwise identity.

    >>> import torch
    >>> from torch import nn
    >>> loss_activation(nn.CrossEntropyLoss(), torch.tensor([[0.0, 0.0]]))
    tensor([[0.5000, 0.5000]])
    """
    act = getattr(loss_func, "activation", None)
    if act is None:
        act = getattr(_unwrap(loss_func), "activation", None)
    if callable(act):
        return act(x)
    kind = _torch_kind(loss_func)
    if kind == _CE:
        return F.softmax(x, dim=1 if x.ndim > 1 else 0)
    if kind == _NLL:
        return x.exp()
    if kind == _BCE_LOGITS:
        return torch.sigmoid(x)
    return x


def loss_decodes(loss_func, x: torch.Tensor, activated: bool = True) -> torch.Tensor:
    """Predictions from the output ``x`` for any loss: the loss's own ``decodes`` when it has one; argmax
    over dim 1 for PyTorch's cross-entropy / NLL; ``> 0.5`` for BCE; otherwise identity.

    ``x`` is the activated output (:func:`loss_activation`) unless ``activated=False``, in which case the
    activation is applied first.

    >>> import torch
    >>> from torch import nn
    >>> loss_decodes(nn.BCEWithLogitsLoss(), torch.tensor([0.0, 3.0]), activated=False)
    tensor([False,  True])
    """
    if not activated:
        x = loss_activation(loss_func, x)
    dec = getattr(loss_func, "decodes", None)
    if dec is None:
        dec = getattr(_unwrap(loss_func), "decodes", None)
    if callable(dec):
        return dec(x)
    kind = _torch_kind(loss_func)
    if kind in (_CE, _NLL):
        return x.argmax(dim=1 if x.ndim > 1 else 0)
    if kind in (_BCE_LOGITS, _BCE):
        return x > 0.5
    return x


# ----------------------------------------------------------------------------------------------- specs
_REGISTRY: dict[str, type] = {
    c.__name__: c
    for c in (
        CrossEntropyLossFlat,
        BCEWithLogitsLossFlat,
        MSELossFlat,
        L1LossFlat,
        LabelSmoothingCrossEntropy,
        LabelSmoothingCrossEntropyFlat,
        FocalLoss,
        FocalLossFlat,
    )
}
_TENSOR_KWARGS = ("weight", "pos_weight")


def _module_spec(m: nn.Module) -> dict | None:
    """Spec of a ``torch.nn`` loss or a learnkit loss module from its constructor arguments."""
    kwargs = {}
    for name, p in inspect.signature(type(m).__init__).parameters.items():
        if (
            name == "self"
            or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
            or name in ("size_average", "reduce")
        ):
            continue
        if hasattr(m, name):
            kwargs[name] = _plain(getattr(m, name))
        elif p.default is not p.empty:
            kwargs[name] = _plain(p.default)
        else:
            return None
    return {"name": type(m).__name__, "kwargs": kwargs} if _is_plain(kwargs) else None


def loss_spec(loss_func) -> dict | None:
    """Plain-data description of ``loss_func`` for export, or ``None`` when it cannot be described.

    Learnkit losses give their :meth:`BaseLoss.spec`; ``torch.nn`` loss instances give their class name
    and constructor arguments; ``torch.nn.functional`` losses (or keyword partials of them) give
    ``'functional.<name>'``.

    >>> from torch import nn
    >>> loss_spec(nn.CrossEntropyLoss(label_smoothing=0.1))
    {'name': 'CrossEntropyLoss', 'kwargs': {'weight': None, 'ignore_index': -100, 'reduction': 'mean', 'label_smoothing': 0.1}}
    """
    if isinstance(loss_func, BaseLoss):
        return loss_func.spec()
    if isinstance(loss_func, nn.Module) and (
        _is_torch_loss_cls(type(loss_func)) or type(loss_func).__name__ in _REGISTRY
    ):
        if _REGISTRY.get(type(loss_func).__name__, type(loss_func)) is not type(loss_func):
            return None
        return _module_spec(loss_func)
    f, kwargs = loss_func, {}
    if isinstance(f, functools.partial):
        if f.args or isinstance(f.func, functools.partial):
            return None
        f, kwargs = f.func, {k: _plain(v) for k, v in f.keywords.items()}
    name = getattr(f, "__name__", None)
    if name in _FUNCTIONAL and getattr(F, name, None) is f and _is_plain(kwargs):
        return {"name": f"functional.{name}", "kwargs": kwargs}
    return None


def loss_from_spec(spec: dict | None):
    """Rebuild a loss from :func:`loss_spec` / ``BaseLoss.spec()`` output, or ``None`` when the name is not
    a learnkit loss, a ``torch.nn`` loss class or a known ``torch.nn.functional`` loss.

    >>> loss_from_spec(CrossEntropyLossFlat(label_smoothing=0.1).spec())
    CrossEntropyLossFlat(axis=-1, weight=None, ignore_index=-100, reduction='mean', label_smoothing=0.1)
    >>> loss_from_spec({"name": "MSELoss", "kwargs": {}})
    MSELoss()
    >>> loss_from_spec({"name": "os.system", "kwargs": {}}) is None
    True
    """
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        return None
    name, kwargs = spec["name"], dict(spec.get("kwargs") or {})
    for k in _TENSOR_KWARGS:
        if isinstance(kwargs.get(k), (list, tuple)):
            kwargs[k] = torch.tensor(kwargs[k], dtype=torch.float32)
    if name in _REGISTRY:
        return _REGISTRY[name](**kwargs)
    if name == "BaseLoss":
        cls = getattr(nn, str(kwargs.pop("loss_cls", "")), None)
        return BaseLoss(cls, **kwargs) if _is_torch_loss_cls(cls) else None
    if name.startswith("functional."):
        fname = name[len("functional.") :]
        if fname in _FUNCTIONAL:
            fn = getattr(F, fname)
            return functools.partial(fn, **kwargs) if kwargs else fn
        return None
    cls = getattr(nn, name, None)
    return cls(**kwargs) if _is_torch_loss_cls(cls) else None
