"""Metrics: functions on tensors that also work in ``Learner(metrics=[...])``.

Two kinds of metric, one scheme:

* **Batch-averaged** metrics are plain functions ``f(pred, targ) -> scalar tensor``
  (:func:`accuracy`, :func:`error_rate`, :func:`top_k_accuracy`, :func:`accuracy_multi`, :func:`mse`,
  :func:`mae`, :func:`msle`). In ``metrics=[...]`` they become an :class:`AvgMetric`: the mean over the
  epoch weighted by batch size, which equals the function on the whole validation set.
* **Epoch-level** metrics need every prediction before they can be computed (F1, ROC AUC, R2, ...) or
  are a function of an epoch mean (RMSE, perplexity). They are :class:`Metric` classes
  (:class:`F1Score`, :class:`RocAuc`, :class:`R2Score`, :class:`Perplexity`, ...). Each also has a
  lowercase function (:func:`f1_score`, :func:`roc_auc`, :func:`r2_score`, :func:`perplexity`,
  :func:`rmse`, ...) that computes it on the tensors it is given *and* carries a ``metric_factory``
  attribute, so ``metrics=[r2_score]`` or ``metrics=[partial(f1_score, average="macro")]`` gives the exact
  epoch value, never a mean of per-batch values.

:func:`as_metric` turns anything accepted in ``metrics=[...]`` into a :class:`Metric`.

The Learner calls ``reset()`` before validation, ``accumulate(pred, *targs)`` once per batch with the raw
model output, and reads ``value`` after. Under distributed training it reduces ``dist_state()``
(``'sum'`` tensors are all-reduced, ``'cat'`` tensors all-gathered and concatenated along dim 0) and
hands the result to ``load_dist_state``.

>>> import torch
>>> pred, targ = torch.tensor([[2.0, 0.1], [0.3, 1.5], [0.9, 0.2]]), torch.tensor([0, 1, 1])
>>> round(accuracy(pred, targ).item(), 4)
0.6667
>>> m = as_metric(accuracy); m.reset(); m.accumulate(pred, targ); round(m.value, 4)
0.6667
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable

import torch
import torch.nn.functional as F

from .exceptions import ModelError
from .utils import find_bs, suggest

__all__ = [
    "Metric",
    "AvgMetric",
    "AccumMetric",
    "as_metric",
    "accuracy",
    "error_rate",
    "top_k_accuracy",
    "accuracy_multi",
    "mse",
    "mae",
    "msle",
    "rmse",
    "exp_rmspe",
    "F1Score",
    "FBeta",
    "Precision",
    "Recall",
    "RocAuc",
    "RocAucMulti",
    "BalancedAccuracy",
    "MatthewsCorrCoef",
    "R2Score",
    "ExplainedVariance",
    "Perplexity",
    "f1_score",
    "precision",
    "recall",
    "roc_auc",
    "roc_auc_multi",
    "balanced_accuracy",
    "matthews_corrcoef",
    "r2_score",
    "explained_variance",
    "perplexity",
]


# ----------------------------------------------------------------------------------------------- helpers
def _snake(name: str) -> str:
    s = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)
    s = re.sub(r"(?<=[A-Z])(?=[A-Z][a-z])", "_", s)
    return s.lower()


def _func_name(f) -> str:
    while isinstance(f, functools.partial):
        f = f.func
    name = getattr(f, "__name__", None)
    return name if name is not None else _snake(type(f).__name__)


def _shape(t) -> tuple:
    return tuple(t.shape) if isinstance(t, torch.Tensor) else ()


def _squeezed(shape) -> tuple:
    return tuple(s for s in shape if s != 1)


def _acc_dtype(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else torch.float64


def _float(t: torch.Tensor) -> torch.Tensor:
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


def _batch_fix(pred, targ) -> str | None:
    if pred.ndim and targ.ndim and pred.shape[0] != targ.shape[0]:
        return (
            f"pred has {pred.shape[0]} items but targ has {targ.shape[0]}: check that the model returns one "
            "row per item and that the loader yields one target per item"
        )
    return None


def _class_axis(pred: torch.Tensor, targ: torch.Tensor, axis: int) -> int:
    """The class dimension of ``pred``: ``axis``, or 1 for channels-first outputs such as (N, C, H, W)
    with targets (N, H, W) when ``axis`` was left at -1."""
    ax = axis % pred.ndim
    if pred.ndim == targ.ndim + 1 and axis == -1 and pred.ndim >= 3:
        if pred.shape[:ax] != targ.shape and pred.shape[:1] + pred.shape[2:] == targ.shape:
            return 1
    return ax


def _class_preds(pred: torch.Tensor, targ: torch.Tensor, axis: int, fname: str) -> torch.Tensor:
    """Predicted class ids shaped like ``targ`` (flattened): argmax over the class axis. A prediction
    with one value per target is taken as decoded already when it is integer, else as one binary logit
    (class 1 when > 0)."""
    if pred.numel() == targ.numel() and _squeezed(pred.shape) == _squeezed(targ.shape):
        dec = pred if not pred.is_floating_point() else (pred > 0).long()
        return dec.reshape(-1)
    if pred.ndim == 0:
        _raise_class_shape(pred, targ, axis, fname)
    dec = pred.argmax(dim=_class_axis(pred, targ, axis))
    if dec.numel() != targ.numel():
        _raise_class_shape(pred, targ, axis, fname)
    return dec.reshape(-1)


def _raise_class_shape(pred, targ, axis, fname):
    fix = _batch_fix(pred, targ) or (
        f"make the class scores lie along axis={axis} (pass axis=... otherwise); for multi-label targets "
        "(one 0/1 column per class) use accuracy_multi"
    )
    raise ModelError(
        f"Expected {fname} to get one score per class along axis {axis} of pred and one class index per "
        "target, e.g. pred (N, C) with targ (N,), or pred (N, T, C) with targ (N, T). "
        f"Received: pred.shape={_shape(pred)}, targ.shape={_shape(targ)}. Fix: {fix}."
    )


def _same_shape(pred: torch.Tensor, targ: torch.Tensor, fname: str, multi_label: bool = False):
    """Flattened ``pred`` and ``targ`` after checking they hold the same values per item."""
    if pred.shape == targ.shape or (
        pred.numel() == targ.numel() and _squeezed(pred.shape) == _squeezed(targ.shape)
    ):
        return pred.reshape(-1), targ.reshape(-1)
    fix = _batch_fix(pred, targ)
    if fix is None:
        p = pred.numel() // max(pred.shape[0], 1) if pred.ndim else 1
        q = targ.numel() // max(targ.shape[0], 1) if targ.ndim else 1
        if multi_label:
            fix = (
                f"the model outputs {p} values per item but the target has {q}; a multi-label target needs "
                f"one 0/1 column per class (one-hot, shape like pred); for single-label targets use accuracy"
            )
        else:
            fix = (
                f"the model outputs {p} values per item but the target has {q}; make the final layer "
                f"output {q} value{'s' if q != 1 else ''} per item (n_out={q}, e.g. nn.Linear(..., {q}))"
            )
    raise ModelError(
        f"Expected {fname} to get predictions and targets of the same shape. "
        f"Received: pred.shape={_shape(pred)}, targ.shape={_shape(targ)}. Fix: {fix}."
    )


def _epoch_metric(factory: Callable[..., Metric]):
    """Mark a plain function as an epoch-level metric: :func:`as_metric` builds ``factory(**kwargs)``."""

    def deco(f):
        f.metric_factory = factory
        return f

    return deco


def _direction_of(f) -> bool | None:
    """Whether higher values of metric function ``f`` are better: its ``higher_is_better`` attribute, else
    scikit-learn's naming convention (``*_score`` / ``*accuracy`` up, ``*_error`` / ``*_loss`` down), else None."""
    while isinstance(f, functools.partial):
        f = f.func
    hib = getattr(f, "higher_is_better", None)
    if hib is not None:
        return bool(hib)
    name = getattr(f, "__name__", None) or ""
    if name.endswith(("_score", "accuracy")):
        return True
    if name.endswith(("_error", "_loss", "_deviance")) or name in ("loss", "error"):
        return False
    return None


def _compute_once(m: Metric, pred, *targs) -> float | None:
    m.reset()
    m.accumulate(pred, *targs)
    return m.value


# ----------------------------------------------------------------------------------------------- base classes
class Metric:
    """Base class of metrics: ``reset()``, ``accumulate(pred, *targs)`` per batch, then ``value``.

    Subclasses implement ``reset``, ``accumulate`` and ``value``; for distributed training they also
    implement ``dist_state`` / ``load_dist_state`` (the default has no state, so a subclass that keeps
    none is reduced by nothing). ``name`` defaults to the class name in snake_case.

    >>> import torch
    >>> class MaxAbs(Metric):
    ...     def reset(self): self.m = None
    ...     def accumulate(self, pred, targ):
    ...         v = (pred - targ).abs().max()
    ...         self.m = v if self.m is None else torch.maximum(self.m, v)
    ...     @property
    ...     def value(self): return None if self.m is None else self.m.item()
    >>> m = MaxAbs(); m.reset(); m.accumulate(torch.tensor([1.0, 4.0]), torch.tensor([1.5, 1.0])); m.name, m.value
    ('max_abs', 3.0)
    """

    #: Whether a larger value is better (``True``: accuracy, F1, R2; ``False``: errors, perplexity; ``None``:
    #: unknown). Monitors such as :class:`~learnkit.callbacks.tracker.EarlyStopping` read it in ``mode='auto'``.
    higher_is_better: bool | None = None

    def __init__(self, name: str | None = None):
        self._name = name

    @property
    def direction(self) -> str | None:
        """``'max'`` when higher is better, ``'min'`` when lower is better, ``None`` when unknown."""
        hib = self.higher_is_better
        return None if hib is None else ("max" if hib else "min")

    @property
    def name(self) -> str:
        """The column name shown in training logs."""
        return self._name if self._name is not None else _snake(type(self).__name__)

    @name.setter
    def name(self, value: str) -> None:
        self._name = value

    def reset(self) -> None:
        """Forget everything accumulated (called before each validation). Subclasses implement it."""
        raise NotImplementedError(  # abstract base: subclasses must implement it
            f"{type(self).__name__} must implement reset() (Metric is an abstract base)."
        )

    def accumulate(self, pred, *targs) -> None:
        """Add one batch: ``pred`` the raw (detached) model output, ``targs`` the targets. Subclasses implement it."""
        raise NotImplementedError(  # abstract base: subclasses must implement it
            f"{type(self).__name__} must implement accumulate(pred, *targs) (abstract base)."
        )

    @property
    def value(self) -> float | None:
        """The metric over everything accumulated, as a Python float (``None`` before any batch)."""
        raise NotImplementedError(f"{type(self).__name__} must implement the value property (abstract base).")

    def dist_state(self) -> dict[str, tuple[torch.Tensor, str]]:
        """``{key: (tensor, 'sum' | 'cat')}`` to reduce across processes (``'cat'``: along dim 0)."""
        return {}

    def load_dist_state(self, state: dict[str, torch.Tensor]) -> None:
        """Replace the state with the reduced tensors (same keys as :meth:`dist_state`)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class AvgMetric(Metric):
    """The epoch mean of ``func(pred, *targs)`` weighted by batch size: ``sum(f * bs) / sum(bs)``.

    The running sum stays on the device of ``pred`` (no synchronisation per batch). ``finalize``, if
    given, maps the mean to the reported value (``math.sqrt`` turns a mean squared error into RMSE).

    >>> import torch
    >>> m = AvgMetric(mae); m.reset()
    >>> m.accumulate(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 1.0]))  # mae 0.5, 2 items
    >>> m.accumulate(torch.tensor([4.0]), torch.tensor([1.0]))  # mae 3, 1 item
    >>> m.name, round(m.value, 4)
    ('mae', 1.3333)
    """

    def __init__(
        self,
        func: Callable,
        name: str | None = None,
        finalize: Callable[[float], float] | None = None,
        higher_is_better: bool | None = None,
    ):
        super().__init__(name)
        self.func, self.finalize = func, finalize
        self.higher_is_better = higher_is_better if higher_is_better is not None else _direction_of(func)
        self.reset()

    @property
    def name(self) -> str:
        """The given name, else the function's name."""
        return self._name if self._name is not None else _func_name(self.func)

    @name.setter
    def name(self, value: str) -> None:
        self._name = value

    def reset(self) -> None:
        """Zero the running sum and count."""
        self.total: torch.Tensor | None = None
        self.count = 0

    def accumulate(self, pred, *targs) -> None:
        """Add ``func(pred, *targs)`` weighted by the batch size (from the targets, else ``pred``)."""
        bs = find_bs(targs) if targs else find_bs(pred)
        v = self.func(pred, *targs)
        v = v.detach() if isinstance(v, torch.Tensor) else torch.as_tensor(v)
        if v.numel() != 1:
            raise ModelError(
                f"Expected metric {self.name!r} to return one number per batch. Received: a tensor of "
                f"shape {tuple(v.shape)}. Fix: reduce it inside the function (e.g. .mean())."
            )
        v = v.reshape(()).to(_acc_dtype(v.device)) * bs
        self.total = v if self.total is None else self.total + v
        self.count += bs

    @property
    def value(self) -> float | None:
        """The weighted mean (through ``finalize`` if given), or ``None`` before any batch."""
        if self.total is None or self.count == 0:
            return None
        v = (self.total / self.count).item()
        return float(self.finalize(v)) if self.finalize is not None else v

    def dist_state(self) -> dict[str, tuple[torch.Tensor, str]]:
        """``{'total': (sum of f*bs, 'sum'), 'count': (sum of bs, 'sum')}`` on ``pred``'s device."""
        total = self.total if self.total is not None else torch.zeros((), dtype=torch.float64)
        return {
            "total": (total, "sum"),
            "count": (torch.tensor(float(self.count), dtype=total.dtype, device=total.device), "sum"),
        }

    def load_dist_state(self, state: dict[str, torch.Tensor]) -> None:
        """Take the all-reduced sums."""
        self.count = int(round(float(state["count"])))
        self.total = state["total"] if self.count else None


_ACTIVATIONS = ("none", "softmax", "sigmoid")


class AccumMetric(Metric):
    """Gather every prediction and target of the epoch (on the CPU) and compute ``func(targs, preds)``.

    ``func`` is scikit-learn style: ``func(y_true, y_pred, **kwargs)`` (``invert_args=True`` swaps them).
    Each batch's prediction is turned into what ``func`` expects before it is stored, in this order:
    ``activation`` ('none' | 'softmax' | 'sigmoid'; softmax over ``dim_argmax`` or the last dim), argmax
    over ``dim_argmax``, then ``pred >= thresh``. ``flatten`` flattens predictions and targets; ``to_np``
    hands NumPy arrays to ``func``.

    >>> import torch
    >>> from sklearn.metrics import cohen_kappa_score
    >>> kappa = AccumMetric(cohen_kappa_score, dim_argmax=-1, name="kappa")
    >>> kappa.reset(); kappa.accumulate(torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3]]), torch.tensor([0, 1, 1]))
    >>> round(kappa.value, 4)
    0.4
    """

    def __init__(
        self,
        func: Callable,
        dim_argmax: int | None = None,
        activation: str = "none",
        thresh: float | None = None,
        flatten: bool = True,
        to_np: bool = True,
        invert_args: bool = False,
        name: str | None = None,
        higher_is_better: bool | None = None,
        **kwargs,
    ):
        super().__init__(name)
        if higher_is_better is not None:
            self.higher_is_better = higher_is_better
        elif type(self).higher_is_better is None:
            self.higher_is_better = _direction_of(func)
        if activation not in _ACTIVATIONS:
            raise ModelError(
                f"Expected activation to be one of {_ACTIVATIONS}. Received: activation={activation!r}. "
                f"Fix: pass one of them.{suggest(activation, _ACTIVATIONS)}"
            )
        self.func, self.dim_argmax, self.activation, self.thresh = func, dim_argmax, activation, thresh
        self.flatten, self.to_np, self.invert_args, self.kwargs = flatten, to_np, invert_args, kwargs
        self.reset()

    @property
    def name(self) -> str:
        """The given name, else the function's name."""
        return self._name if self._name is not None else _func_name(self.func)

    @name.setter
    def name(self, value: str) -> None:
        self._name = value

    def reset(self) -> None:
        """Drop the stored predictions and targets."""
        self.preds: list[torch.Tensor] = []
        self.targs: list[list[torch.Tensor]] = []
        if not hasattr(self, "_protos"):
            self._protos: list[torch.Tensor] | None = None  # empty tensors shaped like the stored ones

    def transform(self, pred: torch.Tensor, targs: tuple) -> tuple[torch.Tensor, tuple]:
        """One batch's ``(pred, targs)`` as they are stored (subclasses override this)."""
        if self.activation == "softmax":
            pred = F.softmax(_float(pred), dim=-1 if self.dim_argmax is None else self.dim_argmax)
        elif self.activation == "sigmoid":
            pred = torch.sigmoid(_float(pred))
        if self.dim_argmax is not None:
            pred = pred.argmax(dim=self.dim_argmax)
        if self.thresh is not None:
            pred = pred >= self.thresh
        if self.flatten:
            for t in targs:
                if isinstance(t, torch.Tensor) and t.numel() != pred.numel():
                    raise ModelError(
                        f"Expected metric {self.name!r} to get one prediction per target"
                        f"{' after argmax' if self.dim_argmax is not None else ''}. Received: "
                        f"pred.shape={_shape(pred)}, targ.shape={_shape(t)}. Fix: "
                        f"{_batch_fix(pred, t) or 'set dim_argmax to the class axis, or flatten=False'}."
                    )
            pred = pred.reshape(-1)
            targs = tuple(t.reshape(-1) if isinstance(t, torch.Tensor) else t for t in targs)
        return pred, targs

    def accumulate(self, pred, *targs) -> None:
        """Transform the batch and store it on the CPU."""
        pred, targs = self.transform(pred.detach(), targs)
        pred = pred.cpu()
        if pred.dtype in (torch.float16, torch.bfloat16):
            pred = pred.float()
        self.preds.append(pred)
        if not self.targs:
            self.targs = [[] for _ in targs]
        for store, t in zip(self.targs, targs):
            store.append(t.detach().cpu() if isinstance(t, torch.Tensor) else torch.as_tensor(t))
        if self._protos is None:
            self._protos = [t.new_empty((0, *t.shape[1:])) for t in (pred, *(s[-1] for s in self.targs))]

    def _cat(self) -> tuple[torch.Tensor, list[torch.Tensor]]:
        if len(self.preds) > 1:
            self.preds = [torch.cat(self.preds)]
        self.targs = [[torch.cat(s)] if len(s) > 1 else s for s in self.targs]
        return self.preds[0], [s[0] for s in self.targs]

    @property
    def value(self) -> float | None:
        """``func`` on everything accumulated, or ``None`` before any batch."""
        if not self.preds:
            return None
        preds, targs = self._cat()
        if self.to_np:
            preds, targs = preds.numpy(), [t.numpy() for t in targs]
        args = (preds, *targs) if self.invert_args else (*targs, preds)
        res = self.func(*args, **self.kwargs)
        return res.item() if isinstance(res, torch.Tensor) else float(res)

    def dist_state(self) -> dict[str, tuple[torch.Tensor, str]]:
        """``{'preds': (preds, 'cat'), 'targ0': (targets, 'cat'), ...}``, CPU tensors to gather on dim 0.

        A process that saw no batch gives empty tensors with the same keys (and, once this metric has
        seen a batch in an earlier epoch, the same dtypes and trailing shapes); gatherers may drop
        empty pieces before concatenating."""
        if not self.preds:
            protos = self._protos or [torch.empty(0), torch.empty(0)]
            return {
                k: (p, "cat")
                for k, p in zip(["preds"] + [f"targ{i}" for i in range(len(protos) - 1)], protos)
            }
        preds, targs = self._cat()
        return {"preds": (preds, "cat"), **{f"targ{i}": (t, "cat") for i, t in enumerate(targs)}}

    def load_dist_state(self, state: dict[str, torch.Tensor]) -> None:
        """Take the gathered predictions and targets (moved to the CPU)."""
        preds = state["preds"].cpu()
        n = sum(1 for k in state if k.startswith("targ"))
        if preds.numel() == 0:
            self.reset()
            return
        self.preds = [preds]
        self.targs = [[state[f"targ{i}"].cpu()] for i in range(n)]


class _UpdateComputeMetric(Metric):
    """Adapter for objects with ``update(pred, targ)`` / ``compute()`` / ``reset()`` (torchmetrics style).

    Such objects synchronise across processes themselves in ``compute()``, so there is no dist state.
    """

    def __init__(self, m):
        super().__init__(None)
        self.m = m
        self._moved = False
        hib = getattr(m, "higher_is_better", None)  # torchmetrics declares it
        self.higher_is_better = None if hib is None else bool(hib)

    @property
    def name(self) -> str:
        return self._name if self._name is not None else _snake(type(self.m).__name__)

    @name.setter
    def name(self, value: str) -> None:
        self._name = value

    def reset(self) -> None:
        self.m.reset()
        self._n = 0

    def accumulate(self, pred, *targs) -> None:
        if not self._moved and isinstance(self.m, torch.nn.Module):
            self.m.to(pred.device)
            self._moved = True
        self.m.update(pred, *targs)
        self._n += 1

    @property
    def value(self) -> float | None:
        if not getattr(self, "_n", 0):
            return None
        res = self.m.compute()
        return res.item() if isinstance(res, torch.Tensor) else float(res)


# ----------------------------------------------------------------------------------------------- batch-averaged
def accuracy(pred: torch.Tensor, targ: torch.Tensor, axis: int = -1) -> torch.Tensor:
    """Fraction of targets whose class has the highest score along ``axis`` of ``pred``.

    Works for (N, C) with (N,), (N, T, C) with (N, T) (sequences are flattened), and channels-first
    (N, C, H, W) with (N, H, W) (the class axis is found). One value per target is read as a binary
    logit (class 1 when > 0), or as decoded classes when it is an integer tensor.

    >>> import torch
    >>> accuracy(torch.tensor([[0.1, 0.9], [0.8, 0.2]]), torch.tensor([1, 1]))
    tensor(0.5000)
    """
    dec = _class_preds(pred, targ, axis, "accuracy")
    return (dec == targ.reshape(-1)).float().mean()


def error_rate(pred: torch.Tensor, targ: torch.Tensor, axis: int = -1) -> torch.Tensor:
    """``1 - accuracy(pred, targ, axis)``.

    >>> import torch
    >>> error_rate(torch.tensor([[0.1, 0.9], [0.8, 0.2]]), torch.tensor([1, 1]))
    tensor(0.5000)
    """
    return 1 - accuracy(pred, targ, axis=axis)


def top_k_accuracy(pred: torch.Tensor, targ: torch.Tensor, k: int = 5, axis: int = -1) -> torch.Tensor:
    """Fraction of targets whose class is among the ``k`` highest scores along ``axis``.

    >>> import torch
    >>> top_k_accuracy(torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7]]), torch.tensor([1, 0]), k=2)
    tensor(0.5000)
    """
    if pred.ndim == 0 or pred.ndim != targ.ndim + 1:
        _raise_class_shape(pred, targ, axis, "top_k_accuracy")
    ax = _class_axis(pred, targ, axis)
    n_cls = pred.shape[ax]
    if k > n_cls:
        raise ModelError(
            f"Expected k <= the number of classes ({n_cls}). Received: k={k}, pred.shape={_shape(pred)}, "
            f"targ.shape={_shape(targ)}. Fix: pass k={n_cls} or less, e.g. partial(top_k_accuracy, k=2)."
        )
    top = pred.topk(k, dim=ax).indices.movedim(ax, -1)
    if top.shape[:-1].numel() != targ.numel():
        _raise_class_shape(pred, targ, axis, "top_k_accuracy")
    hit = (top.reshape(-1, k) == targ.reshape(-1, 1)).any(dim=-1)
    return hit.float().mean()


def accuracy_multi(
    pred: torch.Tensor, targ: torch.Tensor, thresh: float = 0.5, sigmoid: bool = True
) -> torch.Tensor:
    """Multi-label accuracy: fraction of (item, class) cells where ``sigmoid(pred) > thresh`` equals the
    0/1 target. Set ``sigmoid=False`` when ``pred`` is already a probability.

    >>> import torch
    >>> accuracy_multi(torch.tensor([[3.0, -2.0], [1.0, 1.0]]), torch.tensor([[1, 0], [0, 1]]))
    tensor(0.7500)
    """
    p, t = _same_shape(pred, targ, "accuracy_multi", multi_label=True)
    if sigmoid:
        p = torch.sigmoid(_float(p))
    return ((p > thresh) == t.bool()).float().mean()


def mse(pred: torch.Tensor, targ: torch.Tensor) -> torch.Tensor:
    """Mean squared error (flattened; ``pred`` (N, 1) with ``targ`` (N,) is fine).

    >>> import torch
    >>> mse(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 4.0]))
    tensor(2.)
    """
    p, t = _same_shape(pred, targ, "mse")
    return (_float(p) - _float(t)).pow(2).mean()


def mae(pred: torch.Tensor, targ: torch.Tensor) -> torch.Tensor:
    """Mean absolute error (flattened).

    >>> import torch
    >>> mae(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 4.0]))
    tensor(1.)
    """
    p, t = _same_shape(pred, targ, "mae")
    return (_float(p) - _float(t)).abs().mean()


def msle(pred: torch.Tensor, targ: torch.Tensor) -> torch.Tensor:
    """Mean squared logarithmic error: ``mean((log1p(pred) - log1p(targ))**2)``.

    >>> import torch
    >>> round(msle(torch.tensor([0.0, 1.0]), torch.tensor([0.0, 0.0])).item(), 4)
    0.2402
    """
    p, t = _same_shape(pred, targ, "msle")
    return (torch.log1p(_float(p)) - torch.log1p(_float(t))).pow(2).mean()


def _exp_mspe(pred: torch.Tensor, targ: torch.Tensor) -> torch.Tensor:
    p, t = _same_shape(pred, targ, "exp_rmspe")
    p, t = torch.exp(_float(p)), torch.exp(_float(t))
    return ((t - p) / t).pow(2).mean()


@_epoch_metric(functools.partial(AvgMetric, mse, name="rmse", finalize=math.sqrt))
def rmse(pred: torch.Tensor, targ: torch.Tensor) -> torch.Tensor:
    """Root mean squared error. In ``metrics=[rmse]`` it is the root of the epoch's mean squared error
    (exact), not a mean of per-batch roots.

    >>> import torch
    >>> rmse(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 4.0]))
    tensor(1.4142)
    """
    return mse(pred, targ).sqrt()


@_epoch_metric(functools.partial(AvgMetric, _exp_mspe, name="exp_rmspe", finalize=math.sqrt))
def exp_rmspe(pred: torch.Tensor, targ: torch.Tensor) -> torch.Tensor:
    """Root mean squared percentage error of ``exp(pred)`` against ``exp(targ)`` (for log-scale targets).

    >>> import torch, math
    >>> round(exp_rmspe(torch.tensor([math.log(90.0)]), torch.tensor([math.log(100.0)])).item(), 4)
    0.1
    """
    return _exp_mspe(pred, targ).sqrt()


# ----------------------------------------------------------------------------------------------- epoch-level
class _ClassAccum(AccumMetric):
    """AccumMetric on predicted class ids (argmax over ``axis``; one logit per item: > 0)."""

    higher_is_better = True

    def __init__(self, func: Callable, axis: int = -1, name: str | None = None, **kwargs):
        super().__init__(func, name=name, **kwargs)
        self.axis = axis

    @property
    def name(self) -> str:
        return self._name if self._name is not None else _snake(type(self).__name__)

    @name.setter
    def name(self, value: str) -> None:
        self._name = value

    def transform(self, pred, targs):
        targ = targs[0]
        return _class_preds(pred, targ, self.axis, self.name), (targ.reshape(-1),)


class F1Score(_ClassAccum):
    """F1 score over the epoch (scikit-learn's ``f1_score`` on the argmax of ``pred``).

    ``average``: 'binary' (default, positive class ``pos_label``), 'macro', 'micro' or 'weighted'; other
    keyword arguments go to scikit-learn (``labels``, ``pos_label``, ``zero_division``).

    >>> import torch
    >>> m = F1Score(average="macro"); m.reset()
    >>> m.accumulate(torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0]]), torch.tensor([0, 1, 1]))
    >>> round(m.value, 4)
    0.6667
    """

    def __init__(self, average: str = "binary", axis: int = -1, name: str | None = None, **kwargs):
        from sklearn.metrics import f1_score as sk_f1

        super().__init__(sk_f1, axis=axis, name=name, average=average, **kwargs)


class FBeta(_ClassAccum):
    """F-beta score over the epoch (scikit-learn's ``fbeta_score``); ``beta > 1`` favours recall.

    >>> import torch
    >>> m = FBeta(beta=2.0); m.reset()
    >>> m.accumulate(torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0]]), torch.tensor([0, 1, 1]))
    >>> round(m.value, 4)
    0.5556
    """

    def __init__(
        self, beta: float, average: str = "binary", axis: int = -1, name: str | None = None, **kwargs
    ):
        from sklearn.metrics import fbeta_score

        super().__init__(fbeta_score, axis=axis, name=name, beta=beta, average=average, **kwargs)


class Precision(_ClassAccum):
    """Precision over the epoch (scikit-learn's ``precision_score`` on the argmax of ``pred``).

    >>> import torch
    >>> m = Precision(); m.reset()
    >>> m.accumulate(torch.tensor([[2.0, 0.0], [0.0, 1.0], [0.0, 1.0]]), torch.tensor([0, 1, 0]))
    >>> m.value
    0.5
    """

    def __init__(self, average: str = "binary", axis: int = -1, name: str | None = None, **kwargs):
        from sklearn.metrics import precision_score

        super().__init__(precision_score, axis=axis, name=name, average=average, **kwargs)


class Recall(_ClassAccum):
    """Recall over the epoch (scikit-learn's ``recall_score`` on the argmax of ``pred``).

    >>> import torch
    >>> m = Recall(); m.reset()
    >>> m.accumulate(torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0]]), torch.tensor([0, 1, 1]))
    >>> m.value
    0.5
    """

    def __init__(self, average: str = "binary", axis: int = -1, name: str | None = None, **kwargs):
        from sklearn.metrics import recall_score

        super().__init__(recall_score, axis=axis, name=name, average=average, **kwargs)


class BalancedAccuracy(_ClassAccum):
    """Balanced accuracy (mean per-class recall) over the epoch, scikit-learn's ``balanced_accuracy_score``.

    >>> import torch
    >>> m = BalancedAccuracy(); m.reset()
    >>> m.accumulate(torch.tensor([[2.0, 0.0], [2.0, 0.0], [2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 0, 1, 1]))
    >>> m.value
    0.75
    """

    def __init__(self, axis: int = -1, name: str | None = None, **kwargs):
        from sklearn.metrics import balanced_accuracy_score

        super().__init__(balanced_accuracy_score, axis=axis, name=name, **kwargs)


class MatthewsCorrCoef(_ClassAccum):
    """Matthews correlation coefficient over the epoch (scikit-learn's ``matthews_corrcoef``).

    >>> import torch
    >>> m = MatthewsCorrCoef(); m.reset()
    >>> m.accumulate(torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 1]))
    >>> m.name, m.value
    ('matthews_corrcoef', 1.0)
    """

    def __init__(self, axis: int = -1, name: str | None = "matthews_corrcoef", **kwargs):
        from sklearn.metrics import matthews_corrcoef as sk_mcc

        super().__init__(sk_mcc, axis=axis, name=name, **kwargs)


def _roc_auc_score(y_true, y_score, **kwargs):
    from sklearn.metrics import roc_auc_score

    if y_score.ndim == 2:  # multi-class: one probability column per class
        kwargs.setdefault("labels", list(range(y_score.shape[1])))
    else:
        kwargs.pop("multi_class", None)
    return roc_auc_score(y_true, y_score, **kwargs)


class RocAuc(AccumMetric):
    """Area under the ROC curve of a single-label classifier, over the epoch.

    Binary: ``pred`` (N, 2) uses ``softmax(pred)[:, 1]``; one logit per item (N,) or (N, 1) uses
    ``sigmoid(pred)``. More than two classes: one-vs-rest on the softmax probabilities
    (``multi_class='ovr'``, ``average='macro'``; scikit-learn's ``roc_auc_score`` options).

    >>> import torch
    >>> m = RocAuc(); m.reset()
    >>> m.accumulate(torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.5, 0.0]]), torch.tensor([0, 1, 1, 0]))
    >>> m.value
    0.75
    """

    higher_is_better = True

    def __init__(
        self,
        axis: int = -1,
        average: str = "macro",
        multi_class: str = "ovr",
        name: str | None = None,
        **kwargs,
    ):
        super().__init__(_roc_auc_score, name=name, average=average, multi_class=multi_class, **kwargs)
        self.axis = axis

    @property
    def name(self) -> str:
        return self._name if self._name is not None else "roc_auc"

    @name.setter
    def name(self, value: str) -> None:
        self._name = value

    def transform(self, pred, targs):
        targ = targs[0]
        if pred.numel() == targ.numel() and _squeezed(pred.shape) == _squeezed(targ.shape):
            return torch.sigmoid(_float(pred)).reshape(-1), (targ.reshape(-1),)
        if pred.ndim == 0 or pred.ndim != targ.ndim + 1:
            _raise_class_shape(pred, targ, self.axis, "roc_auc")
        ax = _class_axis(pred, targ, self.axis)
        probs = F.softmax(_float(pred), dim=ax).movedim(ax, -1)
        n_cls = probs.shape[-1]
        if probs.shape[:-1].numel() != targ.numel():
            _raise_class_shape(pred, targ, self.axis, "roc_auc")
        probs = probs.reshape(-1, n_cls)
        return (probs[:, 1] if n_cls == 2 else probs), (targ.reshape(-1),)


class RocAucMulti(AccumMetric):
    """Area under the ROC curve of a multi-label classifier (``pred`` and 0/1 ``targ`` both (N, C)),
    averaged over labels (``average='macro'``) after a sigmoid (``sigmoid=False`` for probabilities).

    >>> import torch
    >>> m = RocAucMulti(); m.reset()
    >>> m.accumulate(torch.tensor([[2.0, -1.0], [-1.0, 1.0], [3.0, 0.5]]), torch.tensor([[1, 0], [0, 1], [0, 1]]))
    >>> m.value
    0.75
    """

    higher_is_better = True

    def __init__(self, average: str = "macro", sigmoid: bool = True, name: str | None = None, **kwargs):
        from sklearn.metrics import roc_auc_score

        super().__init__(
            roc_auc_score,
            activation="sigmoid" if sigmoid else "none",
            flatten=False,
            name=name,
            average=average,
            **kwargs,
        )

    @property
    def name(self) -> str:
        return self._name if self._name is not None else "roc_auc_multi"

    @name.setter
    def name(self, value: str) -> None:
        self._name = value

    def transform(self, pred, targs):
        targ = targs[0]
        if pred.shape != targ.shape:
            _same_shape(pred, targ, "roc_auc_multi", multi_label=True)
            targ = targ.reshape(pred.shape)
        return super().transform(pred, (targ,))


class _RegressionAccum(AccumMetric):
    def __init__(self, func, name: str | None = None, **kwargs):
        super().__init__(func, name=name, **kwargs)

    @property
    def name(self) -> str:
        return self._name if self._name is not None else _snake(type(self).__name__)

    @name.setter
    def name(self, value: str) -> None:
        self._name = value

    def transform(self, pred, targs):
        p, t = _same_shape(pred, targs[0], self.name)
        return _float(p), (_float(t),)


class R2Score(_RegressionAccum):
    """Coefficient of determination R² over the epoch (scikit-learn's ``r2_score`` on flattened values).

    >>> import torch
    >>> m = R2Score(); m.reset(); m.accumulate(torch.tensor([1.0, 2.0, 3.5]), torch.tensor([1.0, 2.0, 3.0]))
    >>> round(m.value, 4)
    0.875
    """

    higher_is_better = True

    def __init__(self, name: str | None = None, **kwargs):
        from sklearn.metrics import r2_score as sk_r2

        super().__init__(sk_r2, name=name, **kwargs)


class ExplainedVariance(_RegressionAccum):
    """Explained variance over the epoch (scikit-learn's ``explained_variance_score``, flattened).

    >>> import torch
    >>> m = ExplainedVariance(); m.reset(); m.accumulate(torch.tensor([2.0, 3.0, 4.0]), torch.tensor([1.0, 2.0, 3.0]))
    >>> m.value
    1.0
    """

    def __init__(self, name: str | None = None, **kwargs):
        from sklearn.metrics import explained_variance_score

        super().__init__(explained_variance_score, name=name, **kwargs)


class Perplexity(Metric):
    """Perplexity of a language model: ``exp`` of the mean token cross-entropy over the epoch.

    ``pred`` (B, T, V) or (N, V) logits, ``targ`` (B, T) or (N,) token ids; tokens equal to
    ``ignore_index`` (padding) are left out. The sum of losses and the token count are kept separately
    (on the device), so the value is exact over the epoch and across processes.

    >>> import torch
    >>> m = Perplexity(); m.reset(); m.accumulate(torch.zeros(2, 3, 4), torch.tensor([[0, 1, 2], [3, 0, 1]]))
    >>> round(m.value, 4)  # uniform over 4 tokens
    4.0
    """

    higher_is_better = False

    def __init__(self, ignore_index: int = -100, axis: int = -1, name: str | None = None):
        super().__init__(name)
        self.ignore_index, self.axis = ignore_index, axis
        self.reset()

    def reset(self) -> None:
        """Zero the loss sum and token count."""
        self.total: torch.Tensor | None = None
        self.count: torch.Tensor | None = None

    def accumulate(self, pred, *targs) -> None:
        """Add the summed cross-entropy of this batch and its number of (non-ignored) tokens."""
        targ = targs[0]
        if pred.ndim != targ.ndim + 1:
            _raise_class_shape(pred, targ, self.axis, "perplexity")
        ax = _class_axis(pred, targ, self.axis)
        logits = pred.detach().movedim(ax, -1)
        if _squeezed(logits.shape[:-1]) != _squeezed(targ.shape):
            _raise_class_shape(pred, targ, self.axis, "perplexity")
        logits, targ = logits.reshape(-1, logits.shape[-1]), targ.reshape(-1).long()
        dt = _acc_dtype(logits.device)
        loss = F.cross_entropy(_float(logits), targ, ignore_index=self.ignore_index, reduction="sum").to(dt)
        n = (targ != self.ignore_index).sum().to(dt)
        self.total = loss if self.total is None else self.total + loss
        self.count = n if self.count is None else self.count + n

    @property
    def value(self) -> float | None:
        """``exp(sum of losses / number of tokens)``, or ``None`` before any token."""
        if self.total is None:
            return None
        count = self.count.item()
        return math.exp(self.total.item() / count) if count else None

    def dist_state(self) -> dict[str, tuple[torch.Tensor, str]]:
        """``{'total': (loss sum, 'sum'), 'count': (token count, 'sum')}``."""
        if self.total is None:
            z = torch.zeros((), dtype=torch.float64)
            return {"total": (z, "sum"), "count": (z.clone(), "sum")}
        return {"total": (self.total, "sum"), "count": (self.count, "sum")}

    def load_dist_state(self, state: dict[str, torch.Tensor]) -> None:
        """Take the all-reduced sums."""
        self.total, self.count = state["total"], state["count"]


# ----------------------------------------------------------------------------------------------- lowercase epoch-level
@_epoch_metric(F1Score)
def f1_score(
    pred: torch.Tensor, targ: torch.Tensor, average: str = "binary", axis: int = -1, **kwargs
) -> float:
    """F1 score of these predictions (see :class:`F1Score`); in ``metrics=[...]`` it is exact per epoch.

    >>> import torch
    >>> round(f1_score(torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0]]), torch.tensor([0, 1, 1])), 4)
    0.6667
    """
    return _compute_once(F1Score(average=average, axis=axis, **kwargs), pred, targ)


@_epoch_metric(Precision)
def precision(
    pred: torch.Tensor, targ: torch.Tensor, average: str = "binary", axis: int = -1, **kwargs
) -> float:
    """Precision of these predictions (see :class:`Precision`); exact per epoch in ``metrics=[...]``.

    >>> import torch
    >>> precision(torch.tensor([[2.0, 0.0], [0.0, 1.0], [0.0, 1.0]]), torch.tensor([0, 1, 0]))
    0.5
    """
    return _compute_once(Precision(average=average, axis=axis, **kwargs), pred, targ)


@_epoch_metric(Recall)
def recall(
    pred: torch.Tensor, targ: torch.Tensor, average: str = "binary", axis: int = -1, **kwargs
) -> float:
    """Recall of these predictions (see :class:`Recall`); exact per epoch in ``metrics=[...]``.

    >>> import torch
    >>> recall(torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0]]), torch.tensor([0, 1, 1]))
    0.5
    """
    return _compute_once(Recall(average=average, axis=axis, **kwargs), pred, targ)


@_epoch_metric(RocAuc)
def roc_auc(pred: torch.Tensor, targ: torch.Tensor, axis: int = -1, **kwargs) -> float:
    """ROC AUC of these predictions (see :class:`RocAuc`); exact per epoch in ``metrics=[...]``.

    >>> import torch
    >>> roc_auc(torch.tensor([2.0, -1.0, 0.5, 0.0]), torch.tensor([1, 0, 0, 1]))
    0.75
    """
    return _compute_once(RocAuc(axis=axis, **kwargs), pred, targ)


@_epoch_metric(RocAucMulti)
def roc_auc_multi(pred: torch.Tensor, targ: torch.Tensor, sigmoid: bool = True, **kwargs) -> float:
    """Multi-label ROC AUC of these predictions (see :class:`RocAucMulti`).

    >>> import torch
    >>> roc_auc_multi(torch.tensor([[2.0, -1.0], [-1.0, 1.0], [3.0, 0.5]]), torch.tensor([[1, 0], [0, 1], [0, 1]]))
    0.75
    """
    return _compute_once(RocAucMulti(sigmoid=sigmoid, **kwargs), pred, targ)


@_epoch_metric(BalancedAccuracy)
def balanced_accuracy(pred: torch.Tensor, targ: torch.Tensor, axis: int = -1, **kwargs) -> float:
    """Balanced accuracy of these predictions (see :class:`BalancedAccuracy`).

    >>> import torch
    >>> balanced_accuracy(torch.tensor([[2.0, 0.0], [2.0, 0.0], [2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 0, 1, 1]))
    0.75
    """
    return _compute_once(BalancedAccuracy(axis=axis, **kwargs), pred, targ)


@_epoch_metric(MatthewsCorrCoef)
def matthews_corrcoef(pred: torch.Tensor, targ: torch.Tensor, axis: int = -1, **kwargs) -> float:
    """Matthews correlation coefficient of these predictions (see :class:`MatthewsCorrCoef`).

    >>> import torch
    >>> matthews_corrcoef(torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 1]))
    1.0
    """
    return _compute_once(MatthewsCorrCoef(axis=axis, **kwargs), pred, targ)


@_epoch_metric(R2Score)
def r2_score(pred: torch.Tensor, targ: torch.Tensor, **kwargs) -> float:
    """R² of these predictions (see :class:`R2Score`); ``metrics=[r2_score]`` is exact per epoch.

    >>> import torch
    >>> round(r2_score(torch.tensor([1.0, 2.0, 3.5]), torch.tensor([1.0, 2.0, 3.0])), 4)
    0.875
    """
    return _compute_once(R2Score(**kwargs), pred, targ)


@_epoch_metric(ExplainedVariance)
def explained_variance(pred: torch.Tensor, targ: torch.Tensor, **kwargs) -> float:
    """Explained variance of these predictions (see :class:`ExplainedVariance`).

    >>> import torch
    >>> explained_variance(torch.tensor([2.0, 3.0, 4.0]), torch.tensor([1.0, 2.0, 3.0]))
    1.0
    """
    return _compute_once(ExplainedVariance(**kwargs), pred, targ)


@_epoch_metric(Perplexity)
def perplexity(pred: torch.Tensor, targ: torch.Tensor, ignore_index: int = -100, axis: int = -1) -> float:
    """Perplexity of these logits (see :class:`Perplexity`); ``metrics=[perplexity]`` is exact per epoch.

    >>> import torch
    >>> round(perplexity(torch.zeros(2, 3, 4), torch.tensor([[0, 1, 2], [3, 0, 1]])), 4)
    4.0
    """
    return _compute_once(Perplexity(ignore_index=ignore_index, axis=axis), pred, targ)


# ----------------------------------------------------------------------------------------------- directions
# Every function metric says which way is better (AvgMetric and monitors in mode='auto' read it).
for _f in (
    accuracy,
    top_k_accuracy,
    accuracy_multi,
    f1_score,
    precision,
    recall,
    roc_auc,
    roc_auc_multi,
    balanced_accuracy,
    matthews_corrcoef,
    r2_score,
    explained_variance,
):
    _f.higher_is_better = True
for _f in (error_rate, mse, mae, msle, rmse, exp_rmspe, _exp_mspe, perplexity):
    _f.higher_is_better = False
del _f

# ----------------------------------------------------------------------------------------------- as_metric
_BY_NAME = {n: globals()[n] for n in __all__ if n not in ("Metric", "AvgMetric", "AccumMetric", "as_metric")}


def as_metric(m) -> Metric:
    """The :class:`Metric` for one entry of ``metrics=[...]``.

    * a :class:`Metric` instance is returned as is; a Metric subclass is instantiated with no arguments;
    * an epoch-level function (``r2_score``, ``rmse``, ``f1_score``, ...), or a ``functools.partial`` of
      one with keyword arguments, gives its exact epoch metric (``partial(f1_score, average='macro')`` ->
      ``F1Score(average='macro')``);
    * an object with ``update``/``compute``/``reset`` (e.g. a torchmetrics metric) is wrapped;
    * any other callable ``f(pred, *targs) -> scalar`` becomes ``AvgMetric(f)``;
    * a string names a metric of this module (``'accuracy'``, ``'F1Score'``).

    >>> as_metric(accuracy).name, as_metric(R2Score).name, as_metric("rmse").name
    ('accuracy', 'r2_score', 'rmse')
    """
    if isinstance(m, Metric):
        return m
    if isinstance(m, type):
        if issubclass(m, Metric):
            return m()
        raise ModelError(
            f"Expected a metric function or a learnkit Metric (class or instance). Received: m={m!r}, a class "
            "that is not a Metric. Fix: subclass learnkit.metrics.Metric, or pass a function "
            "f(pred, targ) -> scalar tensor."
        )
    if isinstance(m, str):
        if m in _BY_NAME:
            return as_metric(_BY_NAME[m])
        raise ModelError(
            f"Expected the name of a learnkit metric. Received: m={m!r}. Fix: pass one of "
            f"{sorted(_BY_NAME)} or a function.{suggest(m, _BY_NAME)}"
        )
    if isinstance(m, functools.partial) and hasattr(m.func, "metric_factory"):
        if m.args:
            raise ModelError(
                f"Expected a partial of {_func_name(m)!r} with keyword arguments only. Received: positional "
                f"args={m.args!r}. Fix: pass the options by name, e.g. partial({_func_name(m)}, average='macro')."
            )
        return m.func.metric_factory(**m.keywords)
    factory = getattr(m, "metric_factory", None)
    if callable(factory):
        return factory()
    if all(callable(getattr(m, a, None)) for a in ("update", "compute", "reset")):
        return _UpdateComputeMetric(m)
    if callable(m):
        mod = getattr(m, "__module__", None) or ""
        if mod.startswith("sklearn."):
            raise ModelError(
                f"Expected a function of (pred, targ) tensors. Received: m={_func_name(m)} from scikit-learn, "
                "which takes (y_true, y_pred) arrays of the whole epoch. Fix: wrap it, e.g. "
                f"AccumMetric({_func_name(m)}, dim_argmax=-1) for class predictions, or use the learnkit "
                "metric of the same name."
            )
        return AvgMetric(m)
    raise ModelError(
        f"Expected a metric: a function f(pred, targ) -> scalar, a learnkit Metric class or instance, or a "
        f"metric name. Received: m={m!r} ({type(m).__name__}). Fix: pass e.g. metrics=[accuracy] or "
        "metrics=[F1Score(average='macro')]."
    )
