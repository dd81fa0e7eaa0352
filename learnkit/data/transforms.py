"""The transform protocol of the data pipeline, its composition helpers, ``IntToFloat`` and ``Normalize``.

A *sample* is a tuple of elements; what each element is comes from its block as a *kind* string:

``'image'``
    A ``PIL.Image`` before collation; after collation a ``(B, C, H, W)`` tensor on the device, ``uint8``
    until :class:`IntToFloat` makes it float in ``[0, 1]``.
``'mask'``
    A ``PIL.Image`` of mode ``'L'``, ``'P'`` or ``'I'`` before collation; a ``(B, H, W)`` ``int64`` tensor after.
``'points'``
    A float tensor ``(n, 2)`` of ``(x, y)`` *pixel* coordinates of the current image before collation,
    ``(B, n, 2)`` after. Coordinates are continuous with pixel ``(row r, col c)`` covering
    ``[c, c + 1) x [r, r + 1)``, so its centre is ``(c + 0.5, r + 0.5)``. Every learnkit transform keeps
    points in pixel coordinates of the image it outputs (batch transforms convert to the sampling grid's
    ``[-1, 1]`` space internally and back). A block that wants ``[-1, 1]`` targets scales them itself.
anything else (``'category'``, ``'multicategory'``, ``'regression'``, ``'tensor'``, ...)
    passes through every transform here untouched.

*Item transforms* (:class:`ItemTransform`) run per sample in the DataLoader workers, on the CPU;
*batch transforms* (:class:`BatchTransform`) run on the device on whole collated batches and can be
decoded (undone, where that means something) for showing. When the device is the CPU, DataBlock loaders run
the batch transforms in the DataLoader workers right after collation, and :class:`BatchPipeline` runs
``per_item`` transforms on a few items at a time (cache-sized chunks). Both sort by their ``order``:

======  ==========================================================================
order   transforms
======  ==========================================================================
0       :class:`IntToFloat`; ``FlipItem``
1       ``Resize``, ``RandomResizedCrop``, ``CenterCrop``, ``RandomCrop`` (PIL, items)
>= 10   conversion of PIL items to tensors (done by the image block)
30      ``AffineCoordTfm`` and the geometric batch transforms (one ``grid_sample``)
40      ``LightingTfm``, ``Brightness``, ``Contrast``
99      :class:`Normalize`
======  ==========================================================================

Every transform describes itself as plain data with ``spec()`` (``{'name': ..., 'kwargs': {...}}``) and
:func:`transform_from_spec` rebuilds it from a fixed registry of names, so an export never needs pickle.
"""

from __future__ import annotations

import inspect
import sys
import typing
from collections.abc import Callable, Sequence

import torch

from ..exceptions import DataError
from ..registry import Registry
from ..utils import listify, suggest

__all__ = [
    "ItemTransform",
    "BatchTransform",
    "ItemPipeline",
    "FuncItemTransform",
    "FuncBatchTransform",
    "as_transform",
    "BatchPipeline",
    "compose_item",
    "compose_batch",
    "IntToFloat",
    "Normalize",
    "imagenet_stats",
    "transform_from_spec",
    "register_transform",
    "TRANSFORM_REGISTRY",
    "check_kinds",
    "CHUNK_BYTES",
]

imagenet_stats: tuple[list[float], list[float]] = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
"""Per-channel ``(mean, std)`` of ImageNet, for pretrained models: ``Normalize.from_stats(*imagenet_stats)``."""


def check_kinds(sample, kinds, what: str = "sample") -> tuple:
    """Return ``sample`` as a tuple after checking that ``kinds`` names one kind per element.

    >>> check_kinds([1, 2], ("image", "category"))
    (1, 2)
    """
    if not isinstance(sample, tuple):
        sample = tuple(sample) if isinstance(sample, list) else (sample,)
    if len(kinds) != len(sample):
        raise DataError(
            f"Expected one kind per element of the {what}. Received: len({what})={len(sample)}, "
            f"kinds={tuple(kinds)!r}. Fix: give the transforms the kinds of all blocks, in the {what}'s order."
        )
    return sample


class _Spec:
    """Shared ``spec()`` / ``from_spec()`` machinery: subclasses list their arguments in ``spec_kwargs``."""

    def spec_kwargs(self) -> dict:
        """The constructor arguments that rebuild this transform, as plain data (override in subclasses)."""
        return {}

    def spec(self) -> dict:
        """This transform as plain data, ``{'name': class name, 'kwargs': {...}}``, for pickle-free exports."""
        return {"name": type(self).__name__, "kwargs": self.spec_kwargs()}

    @classmethod
    def from_spec(cls, spec: dict):
        """Rebuild a transform from :meth:`spec`'s output (see also :func:`transform_from_spec`)."""
        return cls(**spec.get("kwargs", {}))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.spec_kwargs().items())
        return f"{type(self).__name__}({args})"


class ItemTransform(_Spec):
    """Base class of per-sample transforms, run on the CPU in the DataLoader workers.

    Subclasses set ``order`` and implement ``__call__(sample, kinds, train) -> sample``: ``sample`` is a
    tuple, ``kinds`` the kind of each element (``'image'``, ``'mask'``, ``'points'``, ...), ``train``
    whether this is the training set (random augmentation) or not (deterministic). Random parameters
    are drawn once per sample and applied identically to all its elements. Instances must be picklable
    (workers may be spawned): keep plain attributes, no lambdas.

    >>> class AddOne(ItemTransform):
    ...     order = 5
    ...     def __call__(self, sample, kinds, train):
    ...         return tuple(x + 1 if k == "regression" else x for x, k in zip(sample, kinds))
    >>> AddOne()((1.0, "a"), ("regression", "category"), train=True)
    (2.0, 'a')
    """

    order: int = 0

    def __call__(self, sample: tuple, kinds: tuple[str, ...], train: bool) -> tuple:
        raise NotImplementedError(f"{type(self).__name__} must implement __call__(sample, kinds, train).")


class BatchTransform(_Spec):
    """Base class of batch transforms, run on the device on whole collated batches (vectorised).

    Subclasses set ``order`` and implement ``__call__(batch, kinds, train) -> batch`` and, where the
    transform can be undone (e.g. :class:`Normalize`), ``decode(batch, kinds) -> batch`` (the default
    returns the batch unchanged).

    >>> class Double(BatchTransform):
    ...     def __call__(self, batch, kinds, train):
    ...         return tuple(x * 2 if k == "regression" else x for x, k in zip(batch, kinds))
    ...     def decode(self, batch, kinds):
    ...         return tuple(x / 2 if k == "regression" else x for x, k in zip(batch, kinds))
    >>> Double().decode(Double()((torch.ones(2),), ("regression",), True), ("regression",))[0].tolist()
    [1.0, 1.0]
    """

    order: int = 0
    #: True when each item's output depends only on that item (and its own random draws): a
    #: :class:`BatchPipeline` may then run the transform on a CPU batch in cache-sized chunks. Leave it
    #: False for transforms that mix items (MixUp) or draw one parameter for the whole batch.
    per_item: bool = False

    def __call__(self, batch: tuple, kinds: tuple[str, ...], train: bool) -> tuple:
        raise NotImplementedError(f"{type(self).__name__} must implement __call__(batch, kinds, train).")

    def decode(self, batch: tuple, kinds: tuple[str, ...]) -> tuple:
        """Undo this transform where meaningful (identity by default)."""
        return batch


def _first_param_type(func) -> type | None:
    """The class annotated on ``func``'s first parameter (``def f(x: PILImage)``), or None."""
    try:
        params = list(inspect.signature(func).parameters.values())
        hints = typing.get_type_hints(func)
    except (TypeError, ValueError, NameError):
        return None
    if not params:
        return None
    ann = hints.get(params[0].name)
    return ann if isinstance(ann, type) else None


def _func_path(func) -> str:
    mod, qual = getattr(func, "__module__", None), getattr(func, "__qualname__", "")
    if mod is None or "<lambda>" in qual or "<locals>" in qual:
        raise DataError(
            f"Expected a function defined at module level to export a learner using it as a transform. "
            f"Received: {func!r}, a lambda or local function. Fix: define it with `def` at module level (and "
            "define or import it again before load_learner), or leave it out of the exported pipeline."
        )
    return f"{mod}:{qual}"


class _FuncTransform:
    """A plain function ``f(x) -> x`` used as a transform, as fastai allows in ``item_tfms``/``batch_tfms``.

    It runs on the sample's (or batch's) first element, the input, in training and validation alike. With a
    class annotation on its parameter (``def f(x: PILImage)``) it runs on every element of that class instead.
    """

    def __init__(self, func: Callable):
        if not callable(func) or isinstance(func, type):
            raise DataError(
                f"Expected a function f(x) -> x. Received: func={func!r}. Fix: pass the function (or an "
                "instance of a transform class, not the class)."
            )
        self.func = func
        self.type = _first_param_type(func)

    def __call__(self, sample: tuple, kinds: tuple[str, ...], train: bool) -> tuple:
        if self.type is None:
            return (self.func(sample[0]), *sample[1:])
        return tuple(self.func(x) if isinstance(x, self.type) else x for x in sample)

    def spec_kwargs(self) -> dict:
        return {"func": _func_path(self.func)}

    @classmethod
    def from_spec(cls, spec: dict):
        path = spec.get("kwargs", {}).get("func", "")
        mod, _, qual = str(path).partition(":")
        obj = sys.modules.get(mod)  # never imported by name: the user's code defines it again, as with fastai
        for part in qual.split(".") if obj is not None else ():
            obj = getattr(obj, part, None)
        if obj is None or not callable(obj):
            raise DataError(
                f"Expected the transform function {path!r} to be defined. Received: an export using it, but "
                f"module {mod!r} is not loaded or lacks {qual!r}. Fix: import (or define) it before load_learner."
            )
        return cls(obj)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({getattr(self.func, '__qualname__', self.func)!r})"


class FuncItemTransform(_FuncTransform, ItemTransform):
    """A plain function as an item transform (``item_tfms=[my_func]`` wraps it in this).

    >>> FuncItemTransform(lambda x: x * 2)((3, "label"), ("regression", "category"), train=False)
    (6, 'label')
    """

    order = 0


class FuncBatchTransform(_FuncTransform, BatchTransform):
    """A plain function as a batch transform (``batch_tfms=[my_func]`` wraps it in this); it runs after
    ``IntToFloat`` and before the augmentations.

    >>> FuncBatchTransform(lambda x: x + 1)((torch.zeros(2), torch.ones(2)), ("image", "category"), True)[0]
    tensor([1., 1.])
    """

    order = 1


def as_transform(t, side: str = "item"):
    """``t`` itself when it is a transform; a plain function wrapped in :class:`FuncItemTransform`
    (``side='item'``) or :class:`FuncBatchTransform` (``side='batch'``).

    >>> type(as_transform(abs, "batch")).__name__
    'FuncBatchTransform'
    """
    if callable(t) and not isinstance(t, (ItemTransform, BatchTransform, type)) and _one_arg(t):
        return FuncItemTransform(t) if side == "item" else FuncBatchTransform(t)
    return t


def _one_arg(func) -> bool:
    """Whether ``func`` can be called as ``func(x)`` (a function of several required arguments, e.g. one
    written as ``(sample, kinds, train)``, is not a plain transform function)."""
    try:
        params = list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError):
        return True
    pos = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in pos if p.default is p.empty]
    return bool(pos or any(p.kind is p.VAR_POSITIONAL for p in params)) and len(required) <= 1


def _sorted_tfms(tfms, base: type, other: type, arg: str) -> list:
    side = "item" if base is ItemTransform else "batch"
    tfms = [as_transform(t, side) for t in listify(tfms) if t is not None]
    flat = []
    for t in tfms:  # a pipeline of the same side is flattened into its transforms
        flat.extend(t.tfms if isinstance(t, _pipe_of(base)) else [t])
    for t in flat:
        if not isinstance(t, base):
            fix = (
                f"pass it in {'batch_tfms' if arg == 'item_tfms' else 'item_tfms'}"
                if isinstance(t, other)
                else f"pass a function of one argument f(x), or wrap it in a subclass of {base.__name__} with an "
                "`order` and __call__(sample, kinds, train)"
            )
            raise DataError(
                f"Expected {arg} to hold {base.__name__} instances. Received: {arg} element={t!r} "
                f"(type {type(t).__name__}). Fix: {fix}."
            )
    return sorted(flat, key=lambda t: t.order)  # stable: equal orders keep the given order


def _pipe_of(base: type) -> type:
    return ItemPipeline if base is ItemTransform else BatchPipeline


class ItemPipeline(ItemTransform):
    """Item transforms sorted by ``order`` and applied in sequence (see :func:`compose_item`)."""

    def __init__(self, tfms: Sequence[ItemTransform] | ItemTransform | None = None):
        self.tfms = _sorted_tfms(tfms, ItemTransform, BatchTransform, "item_tfms")

    def __call__(self, sample: tuple, kinds: tuple[str, ...], train: bool) -> tuple:
        sample = check_kinds(sample, kinds)
        for t in self.tfms:
            sample = t(sample, kinds, train)
        return sample

    def __len__(self) -> int:
        return len(self.tfms)

    def spec_kwargs(self) -> dict:
        return {"tfms": [t.spec() for t in self.tfms]}

    @classmethod
    def from_spec(cls, spec: dict):
        return cls([transform_from_spec(s) for s in spec.get("kwargs", {}).get("tfms", [])])


#: Bytes of float32 per item-chunk when a CPU batch is transformed in chunks (a few images: they stay in
#: the CPU caches from one transform to the next, and temporaries are reused instead of page-faulted).
CHUNK_BYTES = 3 << 20


def _chunk_len(batch: tuple) -> int | None:
    """Items per chunk for transforming ``batch`` (a CPU batch) in cache-sized pieces; ``None``: in one go."""
    n, per_item = None, 0
    for x in batch:
        if isinstance(x, torch.Tensor):
            if x.ndim == 0 or x.device.type != "cpu":
                return None
            m = x.shape[0]
            per_item = max(per_item, (x.numel() // max(m, 1)) * max(x.element_size(), 4))
        elif isinstance(x, list):
            m = len(x)
        else:
            return None
        if n is None:
            n = m
        elif m != n:
            return None
    if not n or not per_item:
        return None
    size = max(1, CHUNK_BYTES // per_item)
    return size if size < n else None


def _shared_out(parts: list) -> torch.Tensor | None:
    """In a DataLoader worker, an empty tensor in shared memory to concatenate ``parts`` into (as torch's
    ``default_collate`` does), so sending the batch to the main process copies nothing; else ``None``."""
    if torch.utils.data.get_worker_info() is None:
        return None
    first = parts[0]
    try:
        storage = first._typed_storage()._new_shared(sum(p.numel() for p in parts), device=first.device)
        return first.new(storage).resize_(sum(p.shape[0] for p in parts), *first.shape[1:])
    except (AttributeError, RuntimeError, TypeError):  # private torch API changed: a plain tensor then
        return None


def _join(parts: list):
    """Concatenate the chunks of one batch element (tensors along dim 0, lists end to end)."""
    first = parts[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(parts, out=_shared_out(parts))
    if isinstance(first, list):
        return [v for p in parts for v in p]
    return first


def _run_chunked(tfms: list, batch: tuple, kinds: tuple[str, ...], train: bool, size: int) -> tuple:
    n = len(batch[0])
    outs = []
    for a in range(0, n, size):
        b = tuple(x[a : a + size] for x in batch)
        for t in tfms:
            b = t(b, kinds, train)
        outs.append(tuple(b))
    return tuple(_join([o[k] for o in outs]) for k in range(len(outs[0])))


class BatchPipeline(BatchTransform):
    """Batch transforms sorted by ``order``, applied in sequence and decoded in reverse (see :func:`compose_batch`).

    On a CPU batch, consecutive transforms that are ``per_item`` run on chunks of a few items at a time
    (:data:`CHUNK_BYTES` each), which keeps the data in the CPU caches between transforms; the result is the
    same as in one go (each item still gets its own random draws). Batches on an accelerator run whole.
    """

    def __init__(self, tfms: Sequence[BatchTransform] | BatchTransform | None = None):
        self.tfms = _sorted_tfms(tfms, BatchTransform, ItemTransform, "batch_tfms")

    @property
    def per_item(self) -> bool:
        """True when every transform is ``per_item``."""
        return all(t.per_item for t in self.tfms)

    def __call__(self, batch: tuple, kinds: tuple[str, ...], train: bool) -> tuple:
        batch = check_kinds(batch, kinds, "batch")
        tfms, i = self.tfms, 0
        while i < len(tfms):
            j = i
            while j < len(tfms) and tfms[j].per_item:
                j += 1
            size = _chunk_len(batch) if j - i > 0 else None
            if size is not None:
                batch, i = _run_chunked(tfms[i:j], batch, kinds, train, size), j
            else:
                batch, i = tfms[i](batch, kinds, train), i + 1
        return batch

    def decode(self, batch: tuple, kinds: tuple[str, ...]) -> tuple:
        """Decode ``batch`` through every transform, last one first."""
        batch = check_kinds(batch, kinds, "batch")
        for t in reversed(self.tfms):
            batch = t.decode(batch, kinds)
        return batch

    def __len__(self) -> int:
        return len(self.tfms)

    def spec_kwargs(self) -> dict:
        return {"tfms": [t.spec() for t in self.tfms]}

    @classmethod
    def from_spec(cls, spec: dict):
        return cls([transform_from_spec(s) for s in spec.get("kwargs", {}).get("tfms", [])])


def compose_item(tfms) -> ItemPipeline:
    """One callable running ``tfms`` (a transform, a list, or ``None``) sorted by ``order``.

    >>> from learnkit.vision.augment import Resize, FlipItem
    >>> pipe = compose_item([Resize(32), FlipItem()])
    >>> [type(t).__name__ for t in pipe.tfms]
    ['FlipItem', 'Resize']
    """
    return ItemPipeline(tfms)


def compose_batch(tfms) -> BatchPipeline:
    """One callable running ``tfms`` sorted by ``order``; its ``decode`` runs their decodes in reverse.

    >>> pipe = compose_batch([Normalize.from_stats(*imagenet_stats), IntToFloat()])
    >>> [type(t).__name__ for t in pipe.tfms]
    ['IntToFloat', 'Normalize']
    """
    return BatchPipeline(tfms)


_DTYPES = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float64": torch.float64,
}


class IntToFloat(BatchTransform):
    """Integer (``uint8``) images become float in ``[0, 1]`` (``x / 255``); other elements pass through.

    ``dtype`` picks the float type (``'float32'`` default; ``'float16'``/``'bfloat16'`` halve the memory).
    Images that are already float are left as they are. ``decode`` does nothing (showing works on floats).

    >>> IntToFloat()((torch.full((1, 3, 2, 2), 255, dtype=torch.uint8),), ("image",), True)[0].max().item()
    1.0
    """

    order = 0
    per_item = True

    def __init__(self, dtype: str | torch.dtype = "float32"):
        if isinstance(dtype, torch.dtype):
            dtype = str(dtype).replace("torch.", "")
        if dtype not in _DTYPES:
            raise DataError(
                f"Expected dtype to be one of {sorted(_DTYPES)}. Received: dtype={dtype!r}.{suggest(dtype, _DTYPES)}"
            )
        self.dtype = dtype

    def __call__(self, batch: tuple, kinds: tuple[str, ...], train: bool) -> tuple:
        dt = _DTYPES[self.dtype]
        return tuple(
            x.to(dt).div_(255.0)
            if k == "image" and isinstance(x, torch.Tensor) and not x.is_floating_point()
            else x
            for x, k in zip(batch, kinds)
        )

    def spec_kwargs(self) -> dict:
        return {"dtype": self.dtype}


def _stats(values, name: str) -> list[float]:
    if isinstance(values, torch.Tensor):
        values = values.flatten().tolist()
    elif isinstance(values, (int, float)):
        values = [values]
    try:
        out = [float(v) for v in values]
    except (TypeError, ValueError):
        out = []
    if not out:
        raise DataError(
            f"Expected {name} to be a non-empty list of per-channel numbers. Received: {name}={values!r}. "
            f"Fix: pass e.g. Normalize.from_stats(*imagenet_stats)."
        )
    return out


class Normalize(BatchTransform):
    """Normalize float images per channel: ``(x - mean) / std``; ``decode`` undoes it.

    Applies to ``'image'`` elements only, broadcasting the statistics over ``(B, C, H, W)`` on the batch's
    device and dtype (the device copies are cached). ``mean``/``std`` are plain lists (one number per
    channel, or one for all), exported by ``spec()``.

    >>> norm = Normalize.from_stats(*imagenet_stats)
    >>> x = torch.rand(2, 3, 4, 4)
    >>> y = norm((x,), ("image",), train=False)[0]
    >>> torch.allclose(norm.decode((y,), ("image",))[0], x, atol=1e-6)
    True
    """

    order = 99
    per_item = True

    def __init__(self, mean, std):
        self.mean = _stats(mean, "mean")
        self.std = _stats(std, "std")
        if len(self.mean) != len(self.std):
            raise DataError(
                f"Expected mean and std of the same length (one per channel). Received: mean={self.mean}, "
                f"std={self.std}. Fix: give one mean and one std per channel."
            )
        if any(s <= 0 for s in self.std):
            raise DataError(
                f"Expected every std to be > 0. Received: std={self.std}. Fix: use positive stds."
            )
        self._cache: dict = {}

    @classmethod
    def from_stats(cls, mean, std) -> Normalize:
        """``Normalize`` with per-channel ``mean`` and ``std`` (e.g. ``Normalize.from_stats(*imagenet_stats)``)."""
        return cls(mean, std)

    @classmethod
    def from_batch(cls, x: torch.Tensor) -> Normalize:
        """``Normalize`` with the per-channel mean and std of a float image batch ``x`` of shape ``(B, C, H, W)``."""
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point():
            raise DataError(
                f"Expected a float image batch of shape (B, C, H, W). Received: x={_describe(x)}. "
                "Fix: apply IntToFloat first."
            )
        x = x.detach().float().transpose(0, 1).reshape(x.shape[1], -1)
        return cls(x.mean(1).tolist(), x.std(1).clamp_min(1e-6).tolist())

    def _stats_on(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        key = (x.device, x.dtype)
        st = self._cache.get(key)
        if st is None:
            shape = (1, len(self.mean), 1, 1)
            st = (
                torch.tensor(self.mean, dtype=x.dtype).view(shape).to(x.device),
                torch.tensor(self.std, dtype=x.dtype).view(shape).to(x.device),
            )
            self._cache[key] = st
        return st

    def _check(self, x) -> None:
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point():
            raise DataError(
                f"Expected a float image batch of shape (B, C, H, W) for Normalize. Received: image={_describe(x)}. "
                "Fix: put IntToFloat() before Normalize in batch_tfms (it converts uint8 images to [0, 1] floats)."
            )
        if len(self.mean) not in (1, x.shape[1]):
            raise DataError(
                f"Expected images with {len(self.mean)} channels, like the statistics. Received: image channels="
                f"{x.shape[1]}, mean={self.mean}. Fix: use statistics with one value per channel of your images."
            )

    def __call__(self, batch: tuple, kinds: tuple[str, ...], train: bool) -> tuple:
        out = []
        for x, k in zip(batch, kinds):
            if k == "image":
                self._check(x)
                m, s = self._stats_on(x)
                x = torch.sub(x, m).div_(s)  # one new tensor
            out.append(x)
        return tuple(out)

    def decode(self, batch: tuple, kinds: tuple[str, ...]) -> tuple:
        """Un-normalize the images: ``x * std + mean``."""
        out = []
        for x, k in zip(batch, kinds):
            if k == "image":
                self._check(x)
                m, s = self._stats_on(x)
                x = torch.mul(x, s).add_(m)
            out.append(x)
        return tuple(out)

    def spec_kwargs(self) -> dict:
        return {"mean": list(self.mean), "std": list(self.std)}

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_cache"] = {}  # device tensors are rebuilt where the copy is used
        return state


def _describe(x) -> str:
    if isinstance(x, torch.Tensor):
        return f"tensor(shape={tuple(x.shape)}, dtype={x.dtype})"
    return f"{type(x).__name__}"


# ---------------------------------------------------------------- registry (no importing by arbitrary names)
def _check_transform(name: str, cls) -> None:
    if not (isinstance(cls, type) and issubclass(cls, (ItemTransform, BatchTransform))):
        raise DataError(
            f"Expected a subclass of ItemTransform or BatchTransform. Received: cls={cls!r}. "
            "Fix: register the class itself, not an instance or a function."
        )


#: The transform registry: class name -> transform class (learnkit's, the applications', yours).
TRANSFORM_REGISTRY = Registry(
    "transform",
    error=DataError,
    check=_check_transform,
    fix="for a custom transform, call register_transform(YourClass) first.",
)
for _cls in (ItemPipeline, BatchPipeline, IntToFloat, Normalize, FuncItemTransform, FuncBatchTransform):
    TRANSFORM_REGISTRY.register(_cls)


def _registry() -> Registry:
    """The transform registry; a name it lacks makes it import the applications (which register theirs)."""
    return TRANSFORM_REGISTRY


def register_transform(cls: type) -> type:
    """Make a custom transform class rebuildable by :func:`transform_from_spec` (usable as a decorator).

    The class needs ``spec_kwargs()`` returning plain data accepted by its constructor. Register it in your
    own code before loading an export that uses it.

    >>> @register_transform
    ... class Identity(BatchTransform):
    ...     def __call__(self, batch, kinds, train):
    ...         return batch
    >>> type(transform_from_spec({"name": "Identity", "kwargs": {}})).__name__
    'Identity'
    """
    _check_transform("", cls)
    return TRANSFORM_REGISTRY.register(cls, name=cls.__name__)


def transform_from_spec(spec: dict):
    """Rebuild a transform (item, batch, or a pipeline of them) from its ``spec()``.

    >>> t = transform_from_spec(Normalize([0.5], [0.25]).spec())
    >>> t.mean, t.std
    ([0.5], [0.25])
    """
    if (
        not isinstance(spec, dict)
        or not isinstance(spec.get("name"), str)
        or not isinstance(spec.get("kwargs", {}), dict)
    ):
        raise DataError(
            "Expected a transform spec {'name': str, 'kwargs': dict} as written by spec(). "
            f"Received: spec={spec!r}. Fix: pass the output of a transform's spec()."
        )
    cls = _registry().get(spec["name"])
    try:
        return cls.from_spec(spec)
    except TypeError as e:
        raise DataError(
            f"Expected the kwargs of a {spec['name']} spec to fit its constructor. Received: "
            f"kwargs={spec.get('kwargs')!r} ({e}). Fix: rebuild the spec with this version's spec()."
        ) from e
