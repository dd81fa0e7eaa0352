"""The DataBlock API: describe your data once, get ``DataLoaders`` that train, show, decode and export.

A :class:`DataBlock` says where the items come from (``get_items``), how each item gives its input and
label (``get_x``/``get_y``), how to split them (``splitter``), what each element *is* (``blocks``) and
which transforms run per item (in the DataLoader workers) and per batch (on the device; when the device is
the CPU, in the DataLoader workers right after collation)::

    dblock = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files,
                       get_y=parent_label, splitter=GrandparentSplitter(), item_tfms=Resize(64))
    dls = dblock.dataloaders(path, bs=32)
    dls.show_batch()
    dblock.summary(path)   # walks one item and one batch through every step

How one item becomes a tuple of tensors (:class:`SamplePipeline`): ``get_x``/``get_y`` give the raw
values, each block ``encode``s its value (a path becomes an image, a label an index), the item
transforms run on the encoded sample, then each block's ``to_tensor`` makes it a tensor and its
``collate`` stacks a batch. Labels are computed and encoded for all items once, when the data set is
built (vectorised, and every bad label is reported at once, not in the middle of an epoch).

Blocks (:class:`TransformBlock` and its subclasses) know their type: they fit on the training split
(``setup``: a vocab), encode, decode, show, which loss fits them (``loss_func``) and how many outputs
a model needs (``c``). They describe themselves as plain data (``spec``) so an export needs no pickle.
"""

from __future__ import annotations

import copy
import importlib
import math
import multiprocessing
import os
import pickle
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..device import default_device, to_cpu
from ..exceptions import DataError
from ..utils import find_bs, listify, suggest
from .loaders import DataLoaders, default_num_workers
from .recipe import DataRecipe
from .transforms import BatchTransform, ItemTransform, compose_batch, compose_item, transform_from_spec

__all__ = [
    "TransformBlock",
    "CategoryBlock",
    "MultiCategoryBlock",
    "RegressionBlock",
    "register_block",
    "block_from_spec",
    "DataBlock",
    "Datasets",
    "BlockDataset",
    "SamplePipeline",
    "BlockCollate",
    "BatchTfmsCollate",
    "DataBlockRecipe",
    "recipe_from_spec",
]

RECIPE_KIND = "datablock"
_NA = "#na#"


# ============================================================================================ helpers
def _short(o, n: int = 90) -> str:
    """A short, readable description of an item or value for messages."""
    if isinstance(o, (Path, str)):  # paths: keep the end (the file name)
        s = str(o)
        if len(s) > n:
            return "..." + s[-(n - 3) :]
        return repr(s) if isinstance(o, str) else s
    elif isinstance(o, torch.Tensor):
        return f"tensor(shape={tuple(o.shape)}, dtype={str(o.dtype).replace('torch.', '')})"
    elif isinstance(o, np.ndarray):
        return f"ndarray(shape={o.shape}, dtype={o.dtype})"
    else:
        try:
            s = repr(o)
        except Exception:  # a broken __repr__ must not hide the real error
            s = f"<{type(o).__name__}>"
    return s if len(s) <= n else s[: n - 3] + "..."


def _describe(v) -> str:
    """What a pipeline step produced: type, shape, dtype and a glimpse of the value."""
    if isinstance(v, tuple):
        return "(" + ", ".join(_describe(o) for o in v) + ")"
    if isinstance(v, torch.Tensor):
        s = f"Tensor(shape={tuple(v.shape)}, dtype={str(v.dtype).replace('torch.', '')}"
        if v.numel() and v.numel() <= 8:
            s += f", values={v.flatten().tolist()}"
        elif v.numel() and (v.is_floating_point() or v.dtype == torch.uint8):
            f = v.float()
            s += f", min={f.min().item():.3g}, max={f.max().item():.3g}"
        return s + ")"
    if isinstance(v, np.ndarray):
        return f"ndarray(shape={v.shape}, dtype={v.dtype})"
    if type(v).__module__.startswith("PIL"):
        return f"PIL.Image(mode={getattr(v, 'mode', '?')}, size={getattr(v, 'size', '?')})"
    if isinstance(v, list):
        return f"list[{len(v)}] {_short(v, 60)}"
    return f"{type(v).__name__} {_short(v, 70)}"


def _fname(f) -> str:
    """The name of a user function for messages (``parent_label``, ``<lambda>``, or the object's repr)."""
    if f is None:
        return "None"
    name = getattr(f, "__qualname__", None) or getattr(f, "__name__", None)
    if name is not None and not isinstance(f, type) and hasattr(f, "__code__"):
        return name
    return _short(f, 60)


def _plain(v):
    """numpy scalars -> Python numbers (so vocabularies are plain data for exports)."""
    return v.item() if isinstance(v, np.generic) else v


def _is_missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _sort_key(v):
    return (type(v).__name__, str(v))


def _sorted_labels(labels: list) -> list:
    try:
        return sorted(labels)
    except TypeError:  # mixed types (e.g. 1 and 'a'): a stable, deterministic order
        return sorted(labels, key=_sort_key)


def _add_title(ax, text: str, color=None) -> None:
    old = ax.get_title()
    kw = {"color": color} if color is not None else {}
    ax.set_title(f"{old}\n{text}" if old else text, **kw)


def _new_ax(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(3, 3))
    return ax


def _as_image_array(v) -> np.ndarray | None:
    """An array matplotlib can draw as an image (H, W) or (H, W, 3|4), or ``None``."""
    if isinstance(v, torch.Tensor):
        v = v.detach().cpu().float().numpy()
    if not isinstance(v, np.ndarray) or v.ndim not in (2, 3):
        return None
    a = v
    if a.ndim == 3 and a.shape[0] in (1, 3, 4) and a.shape[-1] not in (1, 3, 4):
        a = a.transpose(1, 2, 0)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim == 3 and a.shape[-1] not in (3, 4):
        return None
    if a.ndim == 3 and a.dtype != np.uint8:
        lo, hi = float(a.min()), float(a.max())
        if lo < 0 or hi > 1:
            a = (a - lo) / (hi - lo + 1e-8)
    return a


# ============================================================================================ blocks
_BLOCKS: dict[str, type] = {}
#: Block names defined by learnkit application modules, imported on demand by :func:`block_from_spec`.
_BLOCK_MODULES: dict[str, str] = {
    "ImageBlock": "learnkit.vision.data",
    "MaskBlock": "learnkit.vision.data",
    "PointBlock": "learnkit.vision.data",
    "BBoxBlock": "learnkit.vision.data",
    "BBoxLblBlock": "learnkit.vision.data",
    "TextBlock": "learnkit.text.data",
    "TabularBlock": "learnkit.tabular.data",
}


def register_block(cls: type) -> type:
    """Class decorator: make a block class rebuildable from its ``spec()`` (for pickle-free exports).

    >>> @register_block
    ... class MyBlock(TransformBlock):
    ...     kind = "tensor"
    >>> type(block_from_spec(MyBlock().spec())).__name__
    'MyBlock'
    """
    if not (isinstance(cls, type) and issubclass(cls, TransformBlock)):
        raise DataError(
            f"Expected a subclass of TransformBlock. Received: cls={cls!r}. "
            "Fix: decorate the block class itself: @register_block class MyBlock(TransformBlock): ..."
        )
    old = _BLOCKS.get(cls.__name__)
    if (
        old is not None
        and old is not cls
        and f"{old.__module__}.{old.__qualname__}" != (f"{cls.__module__}.{cls.__qualname__}")
    ):
        raise DataError(
            f"Expected a block name not used yet. Received: {cls.__name__!r}, already taken by "
            f"{old.__module__}.{old.__qualname__}. Fix: rename your block class."
        )
    _BLOCKS[cls.__name__] = cls
    return cls


def block_from_spec(spec: dict) -> TransformBlock:
    """Rebuild a fitted block from its ``spec()`` (``{'name', 'kwargs', 'state'}``).

    Only registered block classes are built (learnkit's own, imported from a fixed list of learnkit
    modules when needed, and yours after :func:`register_block`); nothing is imported by name from the file.

    >>> b = block_from_spec(CategoryBlock(vocab=["cat", "dog"]).spec())
    >>> b.vocab
    ['cat', 'dog']
    """
    if not isinstance(spec, Mapping) or not isinstance(spec.get("name"), str):
        raise DataError(
            f"Expected a block spec {{'name': str, 'kwargs': dict, 'state': dict}}. Received: spec={_short(spec)}. "
            "Fix: pass the output of a block's spec()."
        )
    name = spec["name"]
    if name not in _BLOCKS and name in _BLOCK_MODULES:
        importlib.import_module(_BLOCK_MODULES[name])
    cls = _BLOCKS.get(name)
    if cls is None:
        raise DataError(
            f"Expected the name of a registered block. Received: name={name!r}.{suggest(name, _BLOCKS)} "
            "Fix: for your own block class, import the module that defines it with @register_block first."
        )
    try:
        return cls.from_spec(dict(spec))
    except (TypeError, KeyError) as e:
        raise DataError(
            f"Expected a spec that {name} can be rebuilt from. Received: kwargs={_short(spec.get('kwargs'))} "
            f"({type(e).__name__}: {e}). Fix: load it with the learnkit version (and your block code) that wrote it."
        ) from e


class TransformBlock:
    """The base block: an element of the sample with a ``kind``, passed through as it is.

    A block turns a raw value (what ``get_x``/``get_y`` return) into a tensor and back:

    - ``setup(values)``: fit on the training split's raw values (a vocab, statistics).
    - ``encode(value)``: raw value -> the object item transforms see (in the workers).
    - ``to_tensor(obj)``: after the item transforms, a tensor ready for ``collate(list) -> batch``.
    - ``decode(t)``: one item of a batch (CPU, after batch transforms are undone) -> a displayable value;
      ``show(value, ax=None, title=None)`` draws it.
    - as a target: ``loss_func()``, ``c`` (model outputs), ``vocab`` and ``decode_pred(decoded)``.
    - ``item_tfms`` / ``batch_tfms``: transforms this block adds to every DataBlock that uses it.
    - ``spec()`` / ``from_spec(spec)``: the fitted block as plain data.

    Subclasses with labels set ``eager = True`` and implement ``encode_many(values, what)``: their values
    are computed and encoded for all items when the data set is built, not per item.

    Numbers and arrays become tensors; other values (strings, paths) pass through and collate to lists.

    >>> blk = TransformBlock()
    >>> blk.collate([blk.to_tensor([1.0, 2.0]), blk.to_tensor([3.0, 4.0])]).shape
    torch.Size([2, 2])
    """

    kind: str = "tensor"
    eager: bool = False
    item_tfms: Sequence[ItemTransform] = ()
    batch_tfms: Sequence[BatchTransform] = ()

    def __init__(self, item_tfms=None, batch_tfms=None, kind: str | None = None):
        self._init_args: dict = {}  # what was passed here, for spec_kwargs()
        if item_tfms is not None:
            self.item_tfms = self._init_args["item_tfms"] = list(listify(item_tfms))
        if batch_tfms is not None:
            self.batch_tfms = self._init_args["batch_tfms"] = list(listify(batch_tfms))
        if kind is not None:
            if not isinstance(kind, str):
                raise DataError(f"Expected kind to be a string such as 'tensor'. Received: kind={kind!r}.")
            self.kind = self._init_args["kind"] = kind

    # ---------------------------------------------------------------- pipeline
    def setup(self, values: list) -> None:
        """Fit on the raw values of the training split (nothing to fit here)."""

    def encode(self, value):
        """Raw value -> the object item transforms see (here: unchanged)."""
        return value

    def encode_many(self, values: list, what: str = "the items", item_of: Callable | None = None):
        """Encode all ``values`` at once (used for ``eager`` blocks); indexable like a list."""
        return [self.encode(v) for v in values]

    def to_tensor(self, obj):
        """After the item transforms: numbers and arrays become tensors, other objects pass through."""
        if isinstance(obj, torch.Tensor):
            return obj
        if isinstance(obj, np.ndarray):
            return torch.from_numpy(obj) if obj.dtype != object else obj
        if isinstance(obj, (bool, int, float, np.generic)):
            return torch.tensor(obj)
        if isinstance(obj, (list, tuple)) and obj and all(isinstance(o, (int, float)) for o in obj):
            return torch.tensor(obj)
        return obj

    def collate(self, xs: list):
        """Stack the items' tensors into a batch (non-tensor values collate to a list)."""
        if not xs or not isinstance(xs[0], torch.Tensor):
            return list(xs)
        try:
            return torch.stack(xs)
        except (RuntimeError, TypeError) as e:
            shapes = sorted(
                {tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__ for x in xs}, key=str
            )[:4]
            raise DataError(
                f"Expected every item of a batch to have the same shape for {type(self).__name__} "
                f"(kind {self.kind!r}). Received: shapes {shapes}. Fix: add an item transform that gives one "
                "size (e.g. item_tfms=Resize(224) for images), or bs=1."
            ) from e

    # ---------------------------------------------------------------- decoding and showing
    def decode(self, t):
        """One item of a batch back to a displayable value (here: unchanged)."""
        return t

    def show(self, value, ax=None, title: str | None = None, **kwargs):
        """Draw ``value`` on ``ax`` (images as images, anything else as text). Returns the axes."""
        ax = _new_ax(ax)
        img = _as_image_array(value)
        if img is not None:
            ax.imshow(img, cmap="gray" if img.ndim == 2 else None)
        else:
            ax.text(0.5, 0.5, _short(value, 40), ha="center", va="center", wrap=True, fontsize=8)
        ax.axis("off")
        if title is not None:
            _add_title(ax, str(title))
        return ax

    def show_result(self, target, pred, ax=None, **kwargs):
        """Show a target next to its prediction (title ``target/pred``, green when right, red when wrong)."""
        ax = _new_ax(ax)
        t, p = _label_str(target), _label_str(pred)
        _add_title(ax, f"{t}/{p}", color="green" if t == p else "red")
        return ax

    # ---------------------------------------------------------------- as a target
    def loss_func(self):
        """The loss that fits this block as a target (``None``: no default)."""
        return None

    @property
    def c(self) -> int | None:
        """Number of model outputs this block needs as a target (``None``: unknown)."""
        return None

    @property
    def vocab(self):
        """The labels (``None`` for blocks without a vocabulary)."""
        return None

    def decode_pred(self, decoded):
        """A decoded prediction (as the loss decodes it) -> what the user reads."""
        if isinstance(decoded, torch.Tensor):
            return decoded.item() if decoded.numel() == 1 else decoded.tolist()
        return decoded

    # ---------------------------------------------------------------- spec
    def spec_kwargs(self) -> dict:
        """Constructor arguments that rebuild this block, as plain data (subclasses with their own
        arguments override this)."""
        given = self.__dict__.get("_init_args", {})
        return {k: (v if k == "kind" else [t.spec() for t in v]) for k, v in given.items()}

    def get_state(self) -> dict:
        """What ``setup`` fitted, as plain data (e.g. ``{'vocab': [...]}``)."""
        return {}

    def set_state(self, state: dict) -> None:
        """Restore what :meth:`get_state` returned."""

    def spec(self) -> dict:
        """``{'name': class name, 'kwargs': {...}, 'state': {...}}`` in plain data (see :func:`block_from_spec`)."""
        return {"name": type(self).__name__, "kwargs": self.spec_kwargs(), "state": self.get_state()}

    @classmethod
    def from_spec(cls, spec: dict) -> TransformBlock:
        """Rebuild a fitted block from :meth:`spec`'s output."""
        kw = dict(spec.get("kwargs") or {})
        for k in ("item_tfms", "batch_tfms"):
            if k in kw:
                kw[k] = [transform_from_spec(s) for s in kw[k]]
        blk = cls(**kw)
        blk.set_state(dict(spec.get("state") or {}))
        return blk

    def __repr__(self) -> str:
        args = ", ".join(
            f"{k}={v!r}" for k, v in self.spec_kwargs().items() if k not in ("item_tfms", "batch_tfms")
        )
        return f"{type(self).__name__}({args})"


def _label_str(v) -> str:
    if isinstance(v, torch.Tensor):
        v = v.item() if v.numel() == 1 else v.tolist()
    if isinstance(v, float):
        return f"{v:.3g}"
    if isinstance(v, (list, tuple)):
        return ";".join(_label_str(o) for o in v)
    return str(v)


register_block(TransformBlock)


def _unknown_error(block: str, unknown: list, n_bad: int, what: str, first_item, fix: str) -> DataError:
    shown = [_plain(u) for u in unknown[:5]]
    missing = any(_is_missing(u) for u in unknown)
    where = f" (e.g. item {_short(first_item, 70)})" if first_item is not None else ""
    return DataError(
        f"Expected every label in {what} to be in the {block}'s vocab (fitted on the training split). Received: "
        f"{len(unknown)} unknown label(s) {shown}{'...' if len(unknown) > 5 else ''} on {n_bad} item(s){where}"
        f"{'; missing labels (None/NaN) included' if missing else ''}. Fix: {fix}"
    )


class _VocabBlock(TransformBlock):
    """Shared by the blocks whose targets index a vocabulary: ``c``, ``vocab`` and the exported state."""

    _vocab: list | None = None

    @property
    def c(self) -> int | None:
        return len(self._vocab) if self._vocab is not None else None

    @property
    def vocab(self) -> list | None:
        return self._vocab

    def get_state(self) -> dict:
        return {"vocab": list(self._vocab) if self._vocab is not None else None}

    def set_state(self, state: dict) -> None:
        if state.get("vocab") is not None:
            self._set_vocab(list(state["vocab"]))


@register_block
class CategoryBlock(_VocabBlock):
    """A single label per item, encoded as its index in a vocab fitted on the training split.

    Args:
        vocab: the labels in order (default: the training split's labels, sorted when ``sort``).
        sort: sort the fitted vocab (otherwise: first-seen order).
        add_na: put ``'#na#'`` first in the vocab; missing and unknown labels then map to it instead of
            raising an error.

    Loss: :class:`~learnkit.losses.CrossEntropyLossFlat`; ``c = len(vocab)``.

    >>> blk = CategoryBlock()
    >>> blk.setup(["dog", "cat", "dog"])
    >>> blk.vocab, blk.encode_many(["cat", "dog"]).tolist()
    (['cat', 'dog'], [0, 1])
    """

    kind = "category"
    eager = True

    def __init__(self, vocab=None, sort: bool = True, add_na: bool = False):
        super().__init__()
        self.sort, self.add_na = sort, add_na
        self._given = [_plain(v) for v in vocab] if vocab is not None else None
        self._vocab: list | None = None
        self._o2i: dict = {}
        if self._given is not None:
            self._set_vocab(self._with_na(self._given))

    def _with_na(self, labels: list) -> list:
        return ([_NA] if self.add_na and _NA not in labels else []) + list(labels)

    def _set_vocab(self, vocab: list) -> None:
        vocab = [_plain(v) for v in vocab]
        if len(set(vocab)) != len(vocab):
            dup = sorted({str(v) for v in vocab if vocab.count(v) > 1})[:5]
            raise DataError(
                f"Expected distinct labels in the vocab. Received: duplicates {dup}. "
                "Fix: pass each label once in vocab=."
            )
        self._vocab, self._o2i = vocab, {v: i for i, v in enumerate(vocab)}

    def setup(self, values: list) -> None:
        """Fit the vocab on the training labels (unless ``vocab=`` was given)."""
        if self._given is not None:
            return
        seen = dict.fromkeys(values)  # C speed; missing values (None, NaN) are dropped from the few keys
        for v in [v for v in seen if _is_missing(v)]:
            del seen[v]
        for v in seen:
            if isinstance(v, (list, tuple, set)):
                raise DataError(
                    f"Expected one label per item for CategoryBlock. Received: a {type(v).__name__} label "
                    f"{_short(v, 60)}. Fix: use MultiCategoryBlock for several labels per item; or, if get_y returns "
                    "one value per target block, list one block per value (e.g. blocks=(X, CategoryBlock, "
                    "CategoryBlock))."
                )
        if not seen and not self.add_na:
            raise DataError(
                "Expected at least one label in the training split. Received: no labels (all missing). "
                "Fix: check get_y."
            )
        labels = list(seen)
        self._set_vocab(self._with_na(_sorted_labels(labels) if self.sort else labels))

    def _check_fitted(self) -> None:
        if self._vocab is None:
            raise DataError(
                "Expected a fitted CategoryBlock. Received: no vocab yet. "
                "Fix: build it through DataBlock.datasets(), or pass CategoryBlock(vocab=[...])."
            )

    def encode(self, value) -> int:
        """Label -> index (``'#na#'`` for missing/unknown labels when ``add_na``)."""
        self._check_fitted()
        i = self._o2i.get(value) if not _is_missing(value) else None
        if i is None:
            if self.add_na:
                return 0
            raise _unknown_error("CategoryBlock", [value], 1, "the items", None, self._fix())
        return i

    def _fix(self) -> str:
        return (
            "use a splitter that keeps every class in training (e.g. TrainTestSplitter(stratify=parent_label)), "
            "list every label with CategoryBlock(vocab=[...]), or CategoryBlock(add_na=True) to map unknown "
            "labels to '#na#'."
        )

    def encode_many(
        self, values: list, what: str = "the items", item_of: Callable | None = None
    ) -> torch.Tensor:
        """All labels -> an ``int64`` tensor of indices (one dict lookup per label)."""
        self._check_fitted()
        get = self._o2i.get
        try:
            idx = np.fromiter((get(v, -1) for v in values), dtype=np.int64, count=len(values))
        except TypeError as e:  # an unhashable label (list, dict, ...)
            bad = next(v for v in values if not _hashable(v))
            raise DataError(
                f"Expected one hashable label per item for CategoryBlock. Received: a {type(bad).__name__} "
                f"label {_short(bad, 60)}. Fix: use MultiCategoryBlock for several labels per item."
            ) from e
        bad = np.flatnonzero(idx < 0)
        if bad.size:
            if self.add_na:
                idx[bad] = 0
            else:
                unknown = list(
                    dict.fromkeys(
                        _plain(values[i]) if not _is_missing(values[i]) else None for i in bad.tolist()
                    )
                )
                first = item_of(int(bad[0])) if item_of is not None else None
                raise _unknown_error("CategoryBlock", unknown, int(bad.size), what, first, self._fix())
        return torch.from_numpy(idx)

    def to_tensor(self, obj) -> torch.Tensor:
        return obj if isinstance(obj, torch.Tensor) else torch.tensor(int(obj), dtype=torch.int64)

    def decode(self, t) -> str:
        """Index -> label."""
        self._check_fitted()
        i = int(t)
        if not 0 <= i < len(self._vocab):
            raise DataError(
                f"Expected a class index in [0, {len(self._vocab)}). Received: {i}. "
                "Fix: the model's output size must be dls.c."
            )
        return self._vocab[i]

    def decode_pred(self, decoded):
        """Predicted index (or a tensor of them) -> label(s)."""
        if isinstance(decoded, torch.Tensor) and decoded.numel() != 1:
            return [self.decode(i) for i in decoded.flatten().tolist()]
        return self.decode(decoded)

    def show(self, value, ax=None, title=None, **kwargs):
        """Write the label as (part of) the title of ``ax``."""
        ax = _new_ax(ax)
        _add_title(ax, str(value) if title is None else f"{title} {value}")
        return ax

    def loss_func(self):
        """Cross-entropy on the class scores."""
        from ..losses import CrossEntropyLossFlat

        return CrossEntropyLossFlat()

    def spec_kwargs(self) -> dict:
        return {"sort": self.sort, "add_na": self.add_na}


def _hashable(v) -> bool:
    try:
        hash(v)
        return True
    except TypeError:
        return False


def _as_label_list(v) -> list:
    if _is_missing(v):
        return []
    if isinstance(v, str):
        return [v] if v != "" else []
    if isinstance(v, (list, tuple, set, np.ndarray)):
        return [_plain(o) for o in v if not _is_missing(o)]
    if isinstance(v, torch.Tensor):
        return v.tolist() if v.ndim else [v.item()]
    return [_plain(v)]


@register_block
class MultiCategoryBlock(_VocabBlock):
    """Several labels per item (a list, or a string split by ``ColReader(label_delim=...)``), one-hot encoded.

    Args:
        encoded: the values are already one-hot/multi-hot vectors (give ``vocab`` to name the columns).
        vocab: the labels in order (default: the sorted training labels).
        add_na: a ``'#na#'`` column that receives unknown labels instead of an error.

    Targets are float vectors of length ``c = len(vocab)``; loss
    :class:`~learnkit.losses.BCEWithLogitsLossFlat`.

    >>> blk = MultiCategoryBlock()
    >>> blk.setup([["cat"], ["dog", "cat"]])
    >>> blk.encode_many([["dog"], ["cat", "dog"]]).tolist()
    [[0.0, 1.0], [1.0, 1.0]]
    """

    kind = "multicategory"
    eager = True

    def __init__(self, encoded: bool = False, vocab=None, add_na: bool = False):
        super().__init__()
        self.encoded, self.add_na = encoded, add_na
        self._given = [_plain(v) for v in vocab] if vocab is not None else None
        self._vocab: list | None = None
        self._o2i: dict = {}
        if self._given is not None:
            self._set_vocab(
                ([_NA] if add_na and not encoded and _NA not in self._given else []) + self._given
            )

    def _set_vocab(self, vocab: list) -> None:
        vocab = [_plain(v) for v in vocab]
        if len(set(vocab)) != len(vocab):
            raise DataError(f"Expected distinct labels in the vocab. Received: vocab={_short(vocab)}.")
        self._vocab, self._o2i = vocab, {v: i for i, v in enumerate(vocab)}

    def setup(self, values: list) -> None:
        """Fit the vocab on the training labels (or the width of encoded vectors)."""
        if self.encoded:
            if not values:
                raise DataError("Expected encoded label vectors. Received: no training values.")
            width = len(values[0])
            if self._given is not None:
                if len(self._given) != width:
                    raise DataError(
                        f"Expected vocab to name every column of the encoded labels. Received: {len(self._given)} "
                        f"names for vectors of length {width}. Fix: pass one name per column."
                    )
                return
            self._set_vocab(list(range(width)))
            return
        if self._given is not None:
            return
        seen: dict = {}
        for v in values:
            for lab in _as_label_list(v):
                seen[lab] = None
        labels = _sorted_labels(list(seen))
        self._set_vocab(([_NA] if self.add_na else []) + labels)

    def _check_fitted(self) -> None:
        if self._vocab is None:
            raise DataError(
                "Expected a fitted MultiCategoryBlock. Received: no vocab yet. "
                "Fix: build it through DataBlock.datasets(), or pass MultiCategoryBlock(vocab=[...])."
            )

    def encode_many(
        self, values: list, what: str = "the items", item_of: Callable | None = None
    ) -> torch.Tensor:
        """Label lists -> a float ``(n, c)`` multi-hot tensor."""
        self._check_fitted()
        n, c = len(values), len(self._vocab)
        if self.encoded:
            try:
                out = torch.as_tensor(
                    np.asarray([np.asarray(v, dtype=np.float32) for v in values], dtype=np.float32)
                )
            except ValueError as e:
                raise DataError(
                    f"Expected encoded label vectors of the same length {c}. Received: vectors of different lengths "
                    f"in {what}. Fix: give every item a vector with one 0/1 per label."
                ) from e
            if out.ndim != 2 or out.shape[1] != c:
                raise DataError(
                    f"Expected encoded label vectors of length {c}. Received: shape {tuple(out.shape)} "
                    f"in {what}."
                )
            return out
        rows, cols, unknown, bad_items = [], [], {}, []
        get = self._o2i.get
        for r, v in enumerate(values):
            for lab in _as_label_list(v):
                j = get(lab)
                if j is None:
                    if self.add_na:
                        j = 0
                    else:
                        unknown[lab] = None
                        if not bad_items or bad_items[-1] != r:
                            bad_items.append(r)
                        continue
                rows.append(r)
                cols.append(j)
        if unknown:
            first = item_of(bad_items[0]) if item_of is not None else None
            raise _unknown_error(
                "MultiCategoryBlock",
                list(unknown),
                len(bad_items),
                what,
                first,
                "use a splitter that keeps every label in training, list every label with "
                "MultiCategoryBlock(vocab=[...]), or MultiCategoryBlock(add_na=True).",
            )
        out = torch.zeros(n, c)
        if rows:
            out[torch.tensor(rows), torch.tensor(cols)] = 1.0
        return out

    def encode(self, value) -> torch.Tensor:
        """One item's labels -> its multi-hot vector."""
        return self.encode_many([value])[0]

    def to_tensor(self, obj) -> torch.Tensor:
        return obj if isinstance(obj, torch.Tensor) else torch.as_tensor(obj, dtype=torch.float32)

    def decode(self, t) -> list:
        """Multi-hot vector -> the list of labels that are on (> 0.5)."""
        self._check_fitted()
        t = torch.as_tensor(t)
        return [self._vocab[i] for i in torch.nonzero(t.flatten() > 0.5).flatten().tolist()]

    def decode_pred(self, decoded) -> list:
        """Predicted booleans (``sigmoid > threshold``) -> the list of labels."""
        return self.decode(torch.as_tensor(decoded).float())

    def show(self, value, ax=None, title=None, **kwargs):
        ax = _new_ax(ax)
        _add_title(ax, ";".join(str(v) for v in value))
        return ax

    def loss_func(self):
        """Binary cross-entropy with logits, one per label."""
        from ..losses import BCEWithLogitsLossFlat

        return BCEWithLogitsLossFlat()

    def spec_kwargs(self) -> dict:
        return {"encoded": self.encoded, "add_na": self.add_na}


@register_block
class RegressionBlock(TransformBlock):
    """Float targets: one number per item, or ``n_out`` numbers (a list/array per item).

    Loss :class:`~learnkit.losses.MSELossFlat`; ``c = n_out`` (fitted from the data when ``None``).

    >>> blk = RegressionBlock()
    >>> blk.setup([1.5, 2.0])
    >>> blk.c, blk.encode_many([1.5, 2.0]).tolist()
    (1, [1.5, 2.0])
    """

    kind = "regression"
    eager = True

    def __init__(self, n_out: int | None = None):
        super().__init__()
        if n_out is not None and (not isinstance(n_out, int) or n_out < 1):
            raise DataError(f"Expected n_out to be a positive integer. Received: n_out={n_out!r}.")
        self.n_out = n_out

    @staticmethod
    def _width(v) -> int:
        if isinstance(v, (int, float, np.number)) or (
            isinstance(v, (torch.Tensor, np.ndarray)) and v.ndim == 0
        ):
            return 1
        return len(v)

    def setup(self, values: list) -> None:
        """Learn ``n_out`` from the first value (or check it against the given one)."""
        if not values:
            return
        try:
            w = self._width(values[0])
        except TypeError:
            raise DataError(
                f"Expected numbers (or lists of numbers) as regression targets. Received: {_short(values[0])}. "
                "Fix: make get_y return a float, e.g. float(row['price'])."
            ) from None
        if self.n_out is None:
            self.n_out = w
        elif w != self.n_out:
            raise DataError(
                f"Expected {self.n_out} target value(s) per item (n_out={self.n_out}). Received: {w} "
                f"({_short(values[0])}). Fix: set n_out={w}, or fix get_y."
            )

    def encode_many(
        self, values: list, what: str = "the items", item_of: Callable | None = None
    ) -> torch.Tensor:
        """All targets -> a float32 tensor ``(n,)`` (one value each) or ``(n, n_out)``."""
        try:
            if values and isinstance(values[0], torch.Tensor):
                arr = torch.stack([torch.as_tensor(v, dtype=torch.float32) for v in values]).numpy()
            else:
                arr = np.asarray(values, dtype=np.float32)
        except (TypeError, ValueError, RuntimeError) as e:
            bad = next((i for i, v in enumerate(values) if not _is_number_like(v)), 0)
            where = f" (item {_short(item_of(bad), 70)})" if item_of is not None else ""
            raise DataError(
                f"Expected numbers (or equal-length lists of numbers) as regression targets in {what}. Received: "
                f"{_short(values[bad])}{where}. Fix: make get_y return floats."
            ) from e
        width = 1 if arr.ndim == 1 else int(np.prod(arr.shape[1:]))
        if self.n_out is not None and width != self.n_out:
            raise DataError(
                f"Expected {self.n_out} target value(s) per item. Received: shape {arr.shape[1:] or (1,)} "
                f"in {what}. Fix: set RegressionBlock(n_out={width}) or fix get_y."
            )
        flat = arr.reshape(len(arr), -1)
        bad = np.flatnonzero(~np.isfinite(flat).all(axis=1))
        if bad.size:
            where = f", e.g. item {_short(item_of(int(bad[0])), 70)}" if item_of is not None else ""
            raise DataError(
                f"Expected finite regression targets in {what}. Received: NaN or infinite values on {bad.size} "
                f"item(s){where}. Fix: drop or fill those rows (e.g. df.dropna(subset=[...]))."
            )
        return torch.from_numpy(arr)

    def encode(self, value) -> torch.Tensor:
        return self.encode_many([value])[0]

    def to_tensor(self, obj) -> torch.Tensor:
        return obj if isinstance(obj, torch.Tensor) else torch.as_tensor(obj, dtype=torch.float32)

    def decode(self, t):
        """Tensor -> a float (one value) or a list of floats."""
        t = torch.as_tensor(t)
        return t.item() if t.numel() == 1 else t.flatten().tolist()

    def decode_pred(self, decoded):
        return self.decode(decoded)

    def show(self, value, ax=None, title=None, **kwargs):
        ax = _new_ax(ax)
        _add_title(ax, _label_str(value))
        return ax

    def show_result(self, target, pred, ax=None, **kwargs):
        ax = _new_ax(ax)
        _add_title(ax, f"{_label_str(target)}/{_label_str(pred)}")
        return ax

    def loss_func(self):
        """Mean squared error."""
        from ..losses import MSELossFlat

        return MSELossFlat()

    @property
    def c(self) -> int | None:
        return self.n_out

    def spec_kwargs(self) -> dict:
        return {"n_out": self.n_out}


def _is_number_like(v) -> bool:
    try:
        np.asarray(v, dtype=np.float32)
        return True
    except (TypeError, ValueError):
        return False


def _as_block(b, i: int) -> TransformBlock:
    if isinstance(b, type) and issubclass(b, TransformBlock):
        return b()
    if isinstance(b, TransformBlock):
        return b
    raise DataError(
        f"Expected blocks to be TransformBlock instances or classes. Received: blocks[{i}]={_short(b)} "
        f"(type {type(b).__name__}). Fix: e.g. blocks=(ImageBlock, CategoryBlock)."
    )


# ============================================================================================ the item pipeline
class SamplePipeline:
    """Turns one item into a tuple of tensors: getters -> ``encode`` -> item transforms -> ``to_tensor``.

    Picklable (it is what DataLoader workers receive): it holds the blocks, ``get_x``/``get_y`` and the
    item transforms. Values of ``eager`` blocks (labels) are not computed here but given to
    :meth:`sample` precomputed. ``raw_x=True`` (for ``test_dl``) takes each item as the raw input value
    (a tuple of them when there are several inputs) and uses only the input blocks.

    Getters: ``get_x`` applies to the ``n_inp`` input blocks and ``get_y`` to the others. Each is a
    function (returning one value, or a tuple with one value per block on its side), a list of functions
    (one per block), or ``None``: the item itself (and, with both ``None``, an item tuple with one element
    per block is split among the blocks).
    """

    def __init__(self, blocks, n_inp: int, get_x=None, get_y=None, item_tfms=None, raw_x: bool = False):
        self.raw_x = raw_x
        self.blocks = tuple(blocks[:n_inp] if raw_x else blocks)
        self.n_inp, self.n_blocks = n_inp, len(self.blocks)
        self.kinds = tuple(b.kind for b in self.blocks)
        self.getters = (get_x, get_y)
        self.n_side = (n_inp, self.n_blocks - n_inp)
        self.tfms = list(compose_item(item_tfms).tfms) if item_tfms is not None else []
        self.eager_slots = tuple(k for k, b in enumerate(self.blocks) if b.eager)
        self.lazy = tuple(tuple(k for k in self._slots(s) if k not in self.eager_slots) for s in (0, 1))
        # per-item plan: (side, first slot of the side, [(slot, encode or None when it is the identity)])
        self._plan = tuple(
            (
                side,
                0 if side == 0 else n_inp,
                tuple(
                    (
                        k,
                        None
                        if type(self.blocks[k]).encode is TransformBlock.encode
                        else self.blocks[k].encode,
                    )
                    for k in self.lazy[side]
                ),
            )
            for side in (0, 1)
            if self.lazy[side]
        )
        self._to_tensor = tuple(b.to_tensor for b in self.blocks)

    def _slots(self, side: int) -> range:
        return range(0, self.n_inp) if side == 0 else range(self.n_inp, self.n_blocks)

    # ---------------------------------------------------------------- getters
    def _call(self, f, item, side: int, pos):
        try:
            return f(item)
        except Exception as e:
            name = "get_x" if side == 0 else "get_y"
            raise DataError(
                f"{name}={_fname(f)} failed on item {pos} ({_short(item)}): {type(e).__name__}: {e}. Expected it to "
                f"return the {'input' if side == 0 else 'label'} of every item. Fix: check {_fname(f)} on this item "
                f"(e.g. call it on items[{pos}]), or remove the item."
            ) from e

    def side_values(self, item, side: int, pos=None) -> tuple:
        """The raw values of the blocks on one side (0: inputs, 1: targets) for ``item``."""
        k = self.n_side[side]
        if self.raw_x:
            return (item,) if k == 1 else self._check_len(item, k, "item", side, pos, item)
        f = self.getters[side]
        if f is None:
            if self.getters[1 - side] is None and self.n_blocks > 1 and isinstance(item, (tuple, list)):
                if len(item) != self.n_blocks:
                    raise DataError(
                        f"Expected each item to hold one element per block ({self.n_blocks} blocks) when get_x and "
                        f"get_y are None. Received: item {pos} = {_short(item)} with {len(item)} elements. "
                        "Fix: pass get_x/get_y that pick the input and the label, or as many blocks as elements."
                    )
                return tuple(item[: self.n_inp]) if side == 0 else tuple(item[self.n_inp :])
            return (item,) * k
        if isinstance(f, (list, tuple)):
            return tuple(self._call(g, item, side, pos) for g in f)
        try:
            r = f(item)
        except Exception:
            r = self._call(f, item, side, pos)  # raises a DataError naming the item and the function
        return (r,) if k == 1 else self._check_len(r, k, "get_x" if side == 0 else "get_y", side, pos, item)

    def _check_len(self, r, k: int, name: str, side: int, pos, item) -> tuple:
        if not isinstance(r, (tuple, list)) or len(r) != k:
            n = len(r) if isinstance(r, (tuple, list)) else 1
            what = "input" if side == 0 else "target"
            raise DataError(
                f"Expected {name} to give {k} values, one per {what} block "
                f"{[type(b).__name__ for b in self.blocks[slice(0, self.n_inp) if side == 0 else slice(self.n_inp, None)]]}. "
                f"Received: {n} value(s) {_short(r, 60)} for item {pos} ({_short(item, 60)}). Fix: make {name} "
                f"return a tuple of {k} values, or change blocks{' / n_inp' if self.n_blocks > 1 else ''} to match."
            )
        return tuple(r)

    def values_for(self, items, idx: list, slots: Sequence[int]) -> dict[int, list]:
        """Raw values of blocks ``slots`` for the items at positions ``idx`` (errors name the item)."""
        out: dict[int, list] = {}
        for side in (0, 1):
            want = [k for k in slots if k in self._slots(side)]
            if not want:
                continue
            f, k = self.getters[side], self.n_side[side]
            vals = None
            if not self.raw_x and k == 1 and callable(f) and not isinstance(f, (list, tuple)):
                try:  # the fast path: one function, one block
                    vals = [(f(items[j]),) for j in idx]
                except Exception:
                    vals = None  # redo item by item below, to name the failing item
            if vals is None:
                vals = [self.side_values(items[j], side, j) for j in idx]
            base = 0 if side == 0 else self.n_inp
            for s in want:
                out[s] = [v[s - base] for v in vals]
        return out

    # ---------------------------------------------------------------- one sample
    def _encode(self, k: int, v, item, pos):
        try:
            return self.blocks[k].encode(v)
        except Exception as e:
            raise self._encode_error(k, v, item, pos, e) from e

    def _encode_error(self, k: int, v, item, pos, e: Exception) -> DataError:
        b = self.blocks[k]
        return DataError(
            f"{type(b).__name__}.encode failed on item {pos} ({_short(item)}), value {_short(v, 60)}: "
            f"{type(e).__name__}: {e}. Expected a value {type(b).__name__} can read. Fix: check get_x/get_y "
            "return what this block expects (e.g. an image path for ImageBlock), or remove the item."
        )

    def apply_tfm(self, t, sample: tuple, train: bool, item, pos) -> tuple:
        """Run one item transform, naming it and the item when it fails."""
        try:
            return t(sample, self.kinds[: len(sample)], train)
        except Exception as e:
            raise DataError(
                f"Item transform {t!r} failed on item {pos} ({_short(item)}) with sample {_describe(sample)}: "
                f"{type(e).__name__}: {e}. Fix: check the transform's arguments and the kinds of the blocks "
                f"{self.kinds}."
            ) from e

    def sample(self, item, pos, eager: Mapping[int, Sequence] | None, i: int, train: bool) -> tuple:
        """Item ``item`` (position ``pos`` in the items) as a tuple of tensors; ``eager[k][i]`` holds the
        precomputed values of the eager blocks."""
        vals = [None] * self.n_blocks
        for side, base, slots in self._plan:
            raw = self.side_values(item, side, pos)
            for k, enc in slots:
                v = raw[k - base]
                if enc is not None:
                    try:
                        v = enc(v)
                    except Exception as e:
                        raise self._encode_error(k, v, item, pos, e) from e
                vals[k] = v
        if eager:
            for k, t in eager.items():
                vals[k] = t[i]
        sample = tuple(vals)
        for t in self.tfms:
            sample = self.apply_tfm(t, sample, train, item, pos)
        return tuple([f(v) for f, v in zip(self._to_tensor, sample)])


class BlockCollate:
    """``collate_fn`` of DataBlock loaders: each block collates its own element (picklable).

    >>> BlockCollate([CategoryBlock(vocab=["a", "b"])])([(torch.tensor(0),), (torch.tensor(1),)])
    (tensor([0, 1]),)
    """

    def __init__(self, blocks):
        self.blocks = tuple(blocks)

    def __call__(self, samples: list) -> tuple:
        return tuple(b.collate(list(col)) for b, col in zip(self.blocks, zip(*samples)))


class BatchTfmsCollate:
    """A ``collate_fn`` that collates, then runs batch transforms on the batch: ``batch_pipe(batch, kinds, train)``.

    :class:`~learnkit.data.loaders.DeviceLoader` uses it (through :meth:`DataBlockRecipe.worker_collate`) to
    run the batch transforms inside the DataLoader workers when the data stays on the CPU. It is picklable
    when its parts are; two are equal when they do the same work (same collate, transforms and ``train``).

    >>> from learnkit.data.transforms import compose_batch, Normalize
    >>> c = BatchTfmsCollate(BlockCollate([TransformBlock(kind="image")]), compose_batch(Normalize([1.0], [2.0])),
    ...                      ("image",), train=False)
    >>> c([(torch.full((1, 2, 2), 3.0),)])[0].flatten().tolist()
    [1.0, 1.0, 1.0, 1.0]
    """

    def __init__(self, collate_fn, batch_pipe, kinds, train: bool):
        self.collate_fn, self.batch_pipe = collate_fn, batch_pipe
        self.kinds, self.train = tuple(kinds), bool(train)

    def __call__(self, samples: list) -> tuple:
        b = self.collate_fn(samples)
        b = tuple(b) if isinstance(b, (list, tuple)) else (b,)
        return self.batch_pipe(b, self.kinds[: len(b)], self.train)

    def __eq__(self, other) -> bool:
        return (
            type(other) is type(self)
            and other.collate_fn is self.collate_fn
            and other.batch_pipe is self.batch_pipe
            and other.kinds == self.kinds
            and other.train == self.train
        )

    def __hash__(self) -> int:
        return hash((id(self.collate_fn), id(self.batch_pipe), self.kinds, self.train))

    def __repr__(self) -> str:
        return f"BatchTfmsCollate({self.collate_fn!r}, {self.batch_pipe!r}, train={self.train})"


class BlockDataset(Dataset):
    """A map-style torch ``Dataset`` over ``items[idxs]``: ``ds[i]`` is a tuple of tensors, ready to collate.

    ``train`` selects the random (training) or deterministic (validation) behaviour of item transforms.
    ``ds.items`` are the raw items of this split.
    """

    def __init__(
        self,
        items,
        idxs,
        pipeline: SamplePipeline,
        eager: Mapping[int, Sequence] | None = None,
        train: bool = False,
    ):
        self._all = items
        self._idxs = idxs if isinstance(idxs, list) else np.asarray(idxs, dtype=np.int64).tolist()
        self.pipeline, self.eager, self.train = pipeline, dict(eager or {}), train

    def __len__(self) -> int:
        return len(self._idxs)

    def __getitem__(self, i: int) -> tuple:
        j = self._idxs[i]
        if type(j) is not int:
            raise DataError(f"Expected an integer index. Received: {type(i).__name__}. Fix: ds[0].")
        if i < 0:
            i += len(self._idxs)
        return self.pipeline.sample(self._all[j], j, self.eager, i, self.train)

    @property
    def items(self) -> list:
        """The raw items of this split, in order."""
        return [self._all[j] for j in self._idxs]

    @property
    def idxs(self) -> list[int]:
        """Positions of this split's items in the DataBlock's list of items."""
        return list(self._idxs)

    def raw(self, i: int):
        """The raw item behind ``ds[i]``."""
        return self._all[self._idxs[i]]

    def __repr__(self) -> str:
        return f"BlockDataset({len(self)} items, train={self.train}, kinds={self.pipeline.kinds})"


# ============================================================================================ the recipe
class DataBlockRecipe(DataRecipe):
    """The fitted data recipe behind DataBlock loaders (``dls.recipe``): blocks, ``n_inp`` and transforms.

    It runs batch transforms (``after_batch``), decodes and shows batches, builds ``test_dl`` loaders for
    new items, decodes predictions, supplies the loss (``loss_func``), and exports itself as plain data
    (``spec()`` / :func:`recipe_from_spec`). ``get_x``/``get_y`` stay in memory only (never exported).
    """

    kind = RECIPE_KIND

    def __init__(
        self, blocks, n_inp: int, item_tfms=None, batch_tfms=None, get_x=None, get_y=None, collate_fn=None
    ):
        self.blocks = tuple(blocks)
        self.n_inp = n_inp
        self.kinds = tuple(b.kind for b in self.blocks)
        self.user_item_tfms = [t for t in listify(item_tfms) if t is not None]
        self.user_batch_tfms = [t for t in listify(batch_tfms) if t is not None]
        block_item = [t for b in self.blocks for t in listify(getattr(b, "item_tfms", ()))]
        block_batch = [t for b in self.blocks for t in listify(getattr(b, "batch_tfms", ()))]
        self.item_pipe = compose_item(block_item + self.user_item_tfms)
        self.batch_pipe = compose_batch(block_batch + self.user_batch_tfms)
        self.get_x, self.get_y = get_x, get_y
        self.collate_fn = collate_fn or BlockCollate(self.blocks)
        tgt = self.targets
        self.loss_func = tgt[0].loss_func() if len(tgt) == 1 else None

    def add_batch_tfms(self, tfms) -> None:
        """Append batch transforms (e.g. ``Normalize`` for a pretrained model); they are exported with the recipe."""
        self.user_batch_tfms.extend(t for t in listify(tfms) if t is not None)
        block_batch = [t for b in self.blocks for t in listify(getattr(b, "batch_tfms", ()))]
        self.batch_pipe = compose_batch(block_batch + self.user_batch_tfms)

    @property
    def targets(self) -> tuple:
        """The target blocks (after the ``n_inp`` inputs)."""
        return self.blocks[self.n_inp :]

    @property
    def vocab(self):
        """The target's vocab (class names), ``None`` when it has none."""
        for b in self.targets:
            if b.vocab is not None:
                return b.vocab
        return None

    @property
    def c(self) -> int | None:
        """Number of model outputs the target needs."""
        return self.targets[0].c if self.targets else None

    def pipeline(self, train_or_test: str = "full") -> SamplePipeline:
        """The per-item pipeline: ``'full'`` (inputs and labels) or ``'x'`` (raw inputs only, for inference)."""
        return SamplePipeline(
            self.blocks, self.n_inp, self.get_x, self.get_y, self.item_pipe, raw_x=train_or_test == "x"
        )

    # ---------------------------------------------------------------- batches
    def after_batch(self, batch, train: bool):
        """Batch transforms, on the device (wired into each loader by ``DataLoaders``; on the CPU they run in
        the loader's workers through :meth:`worker_collate` instead)."""
        if not self.batch_pipe.tfms:
            return batch
        b = tuple(batch) if isinstance(batch, (list, tuple)) else (batch,)
        return self.batch_pipe(b, self.kinds[: len(b)], train)

    def worker_collate(self, collate_fn, train: bool) -> BatchTfmsCollate | None:
        """``collate_fn`` followed by this recipe's batch transforms (for DataLoader workers on the CPU).

        ``None`` when there are no batch transforms, or when they cannot be pickled (spawned workers receive
        them by pickling; they then run in the main process instead). See
        :class:`~learnkit.data.loaders.DeviceLoader`.
        """
        pipe = self.batch_pipe
        if not pipe.tfms:
            return None
        ok = getattr(self, "_picklable", None)
        if ok is None or ok[0] is not pipe:
            try:
                pickle.dumps(pipe)
                ok = (pipe, True)
            except Exception:
                ok = (pipe, False)
            self._picklable = ok
        return BatchTfmsCollate(collate_fn, pipe, self.kinds, train) if ok[1] else None

    def decode_batch(self, batch, max_n: int | None = None) -> list[tuple]:
        """A batch back to a list of decoded item tuples (batch transforms undone, then each block decodes)."""
        b = to_cpu(tuple(batch) if isinstance(batch, (list, tuple)) else (batch,))
        b = tuple(b)
        if self.batch_pipe.tfms:
            b = tuple(self.batch_pipe.decode(b, self.kinds[: len(b)]))
        n = find_bs(b) if isinstance(b[0], torch.Tensor) else len(b[0])
        n = n if max_n is None else min(n, max_n)
        return [tuple(blk.decode(el[i]) for blk, el in zip(self.blocks, b)) for i in range(n)]

    def _grid(self, n: int, nrows=None, ncols=None, figsize=None):
        import matplotlib.pyplot as plt

        ncols = ncols or (math.ceil(n / nrows) if nrows else math.ceil(math.sqrt(n)))
        nrows = nrows or math.ceil(n / ncols)
        fig, axs = plt.subplots(nrows, ncols, figsize=figsize or (3 * ncols, 3 * nrows), squeeze=False)
        axs = axs.flatten()
        for ax in axs[n:]:
            ax.axis("off")
        return fig, axs[:n]

    def show_batch(self, batch, max_n: int = 9, nrows=None, ncols=None, figsize=None, **kwargs):
        """Draw up to ``max_n`` decoded items of ``batch`` in a grid; each block shows its element. Returns the figure."""
        items = self.decode_batch(batch, max_n)
        fig, axs = self._grid(len(items), nrows, ncols, figsize)
        for ax, it in zip(axs, items):
            for blk, v in zip(self.blocks, it):
                blk.show(v, ax=ax, **kwargs)
        fig.tight_layout()
        return fig

    def show_results(
        self, batch, decoded_preds, max_n: int = 9, nrows=None, ncols=None, figsize=None, **kwargs
    ):
        """Draw items with their target and prediction (``target/pred``, green when right). Returns the figure."""
        items = self.decode_batch(batch, max_n)
        fig, axs = self._grid(len(items), nrows, ncols, figsize)
        preds = decoded_preds if isinstance(decoded_preds, (list, tuple)) else [decoded_preds]
        tgt = self.targets[0] if self.targets else None
        for i, (ax, it) in enumerate(zip(axs, items)):
            for blk, v in zip(self.blocks[: self.n_inp], it):
                blk.show(v, ax=ax, **kwargs)
            if tgt is not None and len(it) > self.n_inp:
                p = preds[0][i] if len(preds) == 1 else [p[i] for p in preds]
                tgt.show_result(it[self.n_inp], tgt.decode_pred(p), ax=ax)
        fig.tight_layout()
        return fig

    def decode_pred(self, decoded):
        """A decoded prediction of one item -> what the user reads (e.g. the label)."""
        tgt = self.targets
        return tgt[0].decode_pred(decoded) if tgt else decoded

    # ---------------------------------------------------------------- inference
    def test_dataset(self, items, with_labels: bool = False) -> BlockDataset:
        """A validation-mode dataset over new items (see :meth:`test_dl`)."""
        is_df = hasattr(items, "columns") and hasattr(items, "to_dict")
        if is_df:  # a DataFrame: its rows, as dicts
            items = items.to_dict("records")
        elif not isinstance(items, (list, tuple, np.ndarray, torch.Tensor)):
            items = list(items)
        if len(items) == 0:
            raise DataError("Expected at least one item for test_dl. Received: 0 items.")
        if with_labels and not self.targets:
            raise DataError(
                "Expected target blocks for with_labels=True. Received: a DataBlock with inputs only."
            )
        if with_labels:
            pipe = self.pipeline("full")
        elif is_df and self.get_x is not None:  # rows go through get_x
            pipe = SamplePipeline(self.blocks[: self.n_inp], self.n_inp, self.get_x, None, self.item_pipe)
        else:
            pipe = self.pipeline("x")
        return _dataset_from(pipe, items, list(range(len(items))), False, "the test items")

    def test_dl(
        self, items, with_labels: bool = False, bs: int = 64, num_workers: int = 0, **kwargs
    ) -> DataLoader:
        """A loader over new ``items`` through the validation pipeline, for inference.

        Without labels each item is the raw input (a file path, an image, a tensor, ...; a tuple of them for
        several inputs); a DataFrame's rows go through ``get_x``. With ``with_labels=True`` items are full
        items as ``get_items`` gives them (through ``get_x`` and ``get_y``), or ``(x, y)`` tuples when the
        recipe has no getters (loaded from an export); a label missing from the vocab raises a clear error.
        """
        ds = self.test_dataset(items, with_labels)
        return DataLoader(
            ds,
            batch_size=bs,
            shuffle=False,
            num_workers=num_workers,
            collate_fn=BlockCollate(ds.pipeline.blocks),
            persistent_workers=False,
            **kwargs,
        )

    # ---------------------------------------------------------------- export
    def spec(self) -> dict:
        """The fitted recipe as plain data (blocks with vocabs, transforms); getters are not included."""
        return {
            "kind": RECIPE_KIND,
            "version": 1,
            "blocks": [b.spec() for b in self.blocks],
            "n_inp": self.n_inp,
            "item_tfms": [t.spec() for t in self.user_item_tfms],
            "batch_tfms": [t.spec() for t in self.user_batch_tfms],
        }

    @classmethod
    def from_spec(cls, spec: dict) -> DataBlockRecipe:
        """Rebuild from :meth:`spec` (see :func:`recipe_from_spec`)."""
        return recipe_from_spec(spec)

    def __repr__(self) -> str:
        return (
            f"DataBlockRecipe(blocks={list(self.blocks)}, n_inp={self.n_inp}, "
            f"item_tfms={self.item_pipe.tfms}, batch_tfms={self.batch_pipe.tfms})"
        )


def recipe_from_spec(spec: dict) -> DataBlockRecipe:
    """Rebuild a :class:`DataBlockRecipe` from its ``spec()`` (used by ``load_learner``).

    >>> r = DataBlockRecipe([TransformBlock(), CategoryBlock(vocab=["a", "b"])], n_inp=1)
    >>> recipe_from_spec(r.spec()).vocab
    ['a', 'b']
    """
    if (
        not isinstance(spec, Mapping)
        or spec.get("kind") != RECIPE_KIND
        or not isinstance(spec.get("blocks"), list)
    ):
        raise DataError(
            f"Expected a DataBlock recipe spec (kind {RECIPE_KIND!r} with a list of blocks). Received: "
            f"{_short(spec)}. Fix: pass the output of DataBlockRecipe.spec()."
        )
    if spec.get("version", 1) > 1:
        raise DataError(
            f"Expected a DataBlock recipe of version 1. Received: version={spec.get('version')}. "
            "Fix: load it with the learnkit version that wrote it."
        )
    blocks = [block_from_spec(s) for s in spec["blocks"]]
    return DataBlockRecipe(
        blocks,
        int(spec.get("n_inp", max(1, len(blocks) - 1))),
        item_tfms=[transform_from_spec(s) for s in spec.get("item_tfms", [])],
        batch_tfms=[transform_from_spec(s) for s in spec.get("batch_tfms", [])],
    )


def _dataset_from(
    pipe: SamplePipeline, items, idx: list[int], train: bool, what: str, raw: dict | None = None
) -> BlockDataset:
    """A dataset over ``items[idx]`` with the eager blocks' values computed (unless given in ``raw``) and encoded."""
    eager = {}
    if pipe.eager_slots:
        if raw is None or any(k not in raw for k in pipe.eager_slots):
            raw = pipe.values_for(items, idx, pipe.eager_slots)
        for k in pipe.eager_slots:
            eager[k] = pipe.blocks[k].encode_many(raw[k], what=what, item_of=_ItemOf(items, idx))
    return BlockDataset(items, idx, pipe, eager, train=train)


class _ItemOf:
    def __init__(self, items, idx):
        self.items, self.idx = items, idx

    def __call__(self, p: int):
        return self.items[self.idx[p]]


# ============================================================================================ Datasets
def _overrides_setup(b: TransformBlock) -> bool:
    return type(b).setup is not TransformBlock.setup


def _worker_start_method() -> str:
    """How DataLoader workers will be started here ('fork', 'spawn' or 'forkserver')."""
    m = multiprocessing.get_start_method(allow_none=True)
    return m or multiprocessing.get_all_start_methods()[0]


def _check_picklable(pipe: SamplePipeline, num_workers: int) -> None:
    """With spawned workers, everything the workers get is pickled: check it now with a clear message."""
    if num_workers <= 0 or _worker_start_method() == "fork":
        return
    parts = [("get_x", pipe.getters[0]), ("get_y", pipe.getters[1])]
    parts += [(f"blocks[{i}]", b) for i, b in enumerate(pipe.blocks)]
    parts += [("item transform", t) for t in pipe.tfms]
    for name, obj in parts:
        if obj is None:
            continue
        try:
            pickle.dumps(obj)
        except Exception as e:
            raise DataError(
                f"Expected {name} to be picklable: DataLoader workers are started with "
                f"'{_worker_start_method()}' here and receive it by pickling. Received: {name}={_fname(obj)} "
                f"({type(e).__name__}: {e}). Fix: define it as a named function at module level (def get_label(o): "
                "...) instead of a lambda or a nested function, or pass num_workers=0."
            ) from e


class Datasets:
    """The items, the split and the fitted recipe of a DataBlock, with a training and a validation dataset.

    ``dsets.train`` / ``dsets.valid`` are map-style torch Datasets (:class:`BlockDataset`) whose items are
    tuples of tensors; ``dsets.dataloaders(bs=...)`` batches them.
    """

    def __init__(
        self,
        items,
        splits,
        recipe: DataBlockRecipe,
        train: BlockDataset,
        valid: BlockDataset,
        path=None,
        dl_type=None,
    ):
        self.items, self.splits, self.recipe = items, splits, recipe
        self.train, self.valid, self.path, self.dl_type = train, valid, path, dl_type

    @property
    def blocks(self) -> tuple:
        """The fitted blocks."""
        return self.recipe.blocks

    @property
    def n_inp(self) -> int:
        return self.recipe.n_inp

    @property
    def vocab(self):
        """The target's vocab."""
        return self.recipe.vocab

    @property
    def c(self) -> int | None:
        return self.recipe.c

    def decode(self, sample: tuple) -> tuple:
        """One sample (tuple of tensors, as ``dsets.train[i]`` gives) -> decoded values per block."""
        return tuple(b.decode(v) for b, v in zip(self.recipe.blocks, sample))

    def dataloaders(
        self,
        bs: int = 64,
        num_workers: int | None = None,
        shuffle: bool = True,
        drop_last: bool | None = None,
        pin_memory: bool | None = None,
        device=None,
        val_bs: int | None = None,
        seed: int | None = None,
        **kwargs,
    ) -> DataLoaders:
        """Plain ``torch.utils.data.DataLoader``s over the two datasets, wrapped in :class:`DataLoaders`.

        ``num_workers=None`` uses :func:`~learnkit.data.loaders.default_num_workers`; workers persist across
        epochs. ``drop_last=None`` drops the last short training batch when there are more items than ``bs``.
        Pinned memory is on for CUDA. ``seed`` fixes the shuffling order. Other keyword arguments go to the
        DataLoader (or ``dl_type``).
        """
        if not isinstance(bs, int) or bs < 1:
            raise DataError(f"Expected bs to be a positive integer. Received: bs={bs!r}.")
        device = default_device(device)
        nw = default_num_workers() if num_workers is None else int(num_workers)
        _check_picklable(self.train.pipeline, nw)
        pin = device.type == "cuda" if pin_memory is None else pin_memory
        drop = len(self.train) > bs if drop_last is None else drop_last
        gen = torch.Generator().manual_seed(int(seed)) if seed is not None else None
        dl_type = self.dl_type or DataLoader
        common = dict(
            num_workers=nw,
            pin_memory=pin,
            collate_fn=self.recipe.collate_fn,
            persistent_workers=nw > 0,
            **kwargs,
        )
        train = dl_type(self.train, batch_size=bs, shuffle=shuffle, drop_last=drop, generator=gen, **common)
        valid = dl_type(self.valid, batch_size=val_bs or bs * 2, shuffle=False, drop_last=False, **common)
        return DataLoaders(
            train,
            valid,
            device=device,
            recipe=self.recipe,
            loss_func=self.recipe.loss_func,
            path=self.path if self.path is not None else ".",
        )

    def __repr__(self) -> str:
        return f"Datasets(train={len(self.train)}, valid={len(self.valid)}, blocks={list(self.blocks)})"


# ============================================================================================ DataBlock
def _check_getter(f, name: str, n: int):
    if f is None or (callable(f) and not isinstance(f, (list, tuple))):
        return f
    if isinstance(f, (list, tuple)):
        if len(f) != n or not all(callable(g) for g in f):
            raise DataError(
                f"Expected {name} to be a function, or a list of {n} functions (one per block on its side). "
                f"Received: {name} with {len(f)} element(s). Fix: pass one function per block, or adjust n_inp."
            )
        return list(f)
    raise DataError(
        f"Expected {name} to be a function. Received: {name}={_short(f)} (type {type(f).__name__}). "
        f"Fix: e.g. {name}=parent_label or {name}=ColReader('label')."
    )


class _Step:
    """Context for DataBlock.summary: record what a step printed, and turn a failure into a clear error."""

    def __init__(self, lines: list, print_out: bool):
        self.lines, self.print_out = lines, print_out

    def log(self, msg: str) -> None:
        self.lines.append(msg)
        if self.print_out:
            print(msg)

    def run(self, name: str, fn, *args):
        try:
            return fn(*args)
        except Exception as e:
            msg = f"FAILED at step '{name}': {type(e).__name__}: {e}"
            self.log(msg)
            raise DataError(f"DataBlock.summary: step '{name}' failed. {e}") from e


class DataBlock:
    """Describe a data set; build its datasets, loaders and a step-by-step summary.

    Args:
        blocks: one block per sample element (classes or instances), inputs first:
            ``(ImageBlock, CategoryBlock)``. Default: two :class:`TransformBlock`.
        get_items: ``get_items(source) -> items`` (e.g. :func:`~learnkit.data.getters.get_image_files`);
            default: ``source`` itself (a list, or a DataFrame's rows as dicts).
        get_x, get_y: item -> input(s) / label(s); a function, a list of one function per block on that
            side, or ``None`` for the item itself (see :class:`SamplePipeline`).
        n_inp: how many blocks are inputs (default ``len(blocks) - 1``).
        splitter: ``splitter(items) -> (train_idx, valid_idx)``; default ``RandomSplitter(0.2)``.
        item_tfms: item transforms (PIL/CPU, in the workers) added to the blocks' own.
        batch_tfms: batch transforms (on the device, or in the workers on the CPU) added to the blocks' own.
        dl_type: the loader class (default ``torch.utils.data.DataLoader``), called with its arguments.

    >>> dblock = DataBlock(blocks=(TransformBlock, CategoryBlock), get_y=label_of)  # doctest: +SKIP
    >>> dls = dblock.dataloaders(items, bs=32)  # doctest: +SKIP
    """

    def __init__(
        self,
        blocks=None,
        get_items: Callable | None = None,
        get_x=None,
        get_y=None,
        n_inp: int | None = None,
        splitter: Callable | None = None,
        item_tfms=None,
        batch_tfms=None,
        dl_type=None,
    ):
        blocks = (TransformBlock, TransformBlock) if blocks is None else blocks
        blocks = [blocks] if isinstance(blocks, (type, TransformBlock)) else list(blocks)
        if not blocks:
            raise DataError(
                "Expected at least one block. Received: blocks=(). Fix: e.g. blocks=(ImageBlock, "
                "CategoryBlock)."
            )
        self.blocks = tuple(_as_block(b, i) for i, b in enumerate(blocks))
        for b in self.blocks:
            if not isinstance(getattr(b, "kind", None), str):
                raise DataError(
                    f"Expected every block to have a str kind. Received: {type(b).__name__}.kind="
                    f"{getattr(b, 'kind', None)!r}."
                )
        n = len(self.blocks)
        self.n_inp = max(1, n - 1) if n_inp is None else n_inp
        if not isinstance(self.n_inp, int) or not 1 <= self.n_inp <= n:
            raise DataError(
                f"Expected n_inp between 1 and the number of blocks ({n}). Received: n_inp={n_inp!r}."
            )
        if get_items is not None and not callable(get_items):
            raise DataError(
                f"Expected get_items to be a function of the source. Received: {_short(get_items)}. "
                "Fix: e.g. get_items=get_image_files."
            )
        if splitter is not None and not callable(splitter):
            raise DataError(
                f"Expected splitter to be callable (items -> (train_idx, valid_idx)). Received: "
                f"{_short(splitter)}. Fix: e.g. splitter=RandomSplitter(0.2, seed=42)."
            )
        self.get_items, self.splitter = get_items, splitter
        self.get_x = _check_getter(get_x, "get_x", self.n_inp)
        self.get_y = _check_getter(get_y, "get_y", n - self.n_inp)
        self.item_tfms = [t for t in listify(item_tfms) if t is not None]
        self.batch_tfms = [t for t in listify(batch_tfms) if t is not None]
        compose_item(self.item_tfms)  # validates the types now, with a clear message
        compose_batch(self.batch_tfms)
        self.dl_type = dl_type

    # ---------------------------------------------------------------- steps
    def _items(self, source):
        if self.get_items is not None:
            try:
                items = self.get_items(source)
            except DataError:
                raise
            except Exception as e:
                raise DataError(
                    f"get_items={_fname(self.get_items)} failed on source {_short(source)}: {type(e).__name__}: {e}. "
                    "Fix: check the source path and get_items."
                ) from e
        else:
            items = source
        if hasattr(items, "columns") and hasattr(items, "to_dict"):  # a DataFrame: one dict per row
            items = items.to_dict("records")
        elif hasattr(items, "tolist") and not isinstance(
            items, (np.ndarray, torch.Tensor)
        ):  # a pandas Series
            items = items.tolist()
        elif not isinstance(items, (list, tuple, np.ndarray, torch.Tensor)):
            try:
                items = list(items)
            except TypeError:
                raise DataError(
                    f"Expected get_items to return a list of items. Received: {type(items).__name__}. "
                    "Fix: return a list (e.g. of file paths)."
                ) from None
        if len(items) == 0:
            where = (
                f"get_items={_fname(self.get_items)} returned no items for" if self.get_items else "Received:"
            )
            raise DataError(
                f"Expected at least one item. {where} source={_short(source)}. Fix: check the path and the file "
                "extensions (e.g. get_image_files looks for image extensions only), or the source's contents."
            )
        return items

    def _split(self, items) -> tuple[list[int], list[int]]:
        from .splitters import RandomSplitter

        splitter = self.splitter or RandomSplitter(0.2)
        try:
            res = splitter(items)
        except DataError:
            raise
        except Exception as e:
            raise DataError(
                f"splitter={_fname(splitter)} failed: {type(e).__name__}: {e}. Expected it to return "
                "(train_idx, valid_idx). Fix: check the splitter fits these items."
            ) from e
        if not isinstance(res, (tuple, list)) or len(res) < 2:
            raise DataError(
                f"Expected the splitter to return (train_idx, valid_idx). Received: {_short(res)}."
            )
        n = len(items)
        out = []
        for name, s in zip(("train", "valid"), res[:2]):
            a = np.asarray(
                s.cpu() if isinstance(s, torch.Tensor) else list(s) if not isinstance(s, np.ndarray) else s
            )
            if a.dtype == bool:
                a = np.flatnonzero(a)
            if a.size and (a.dtype.kind not in "iu" or a.min() < 0 or a.max() >= n):
                raise DataError(
                    f"Expected {name} indices between 0 and {n - 1}. Received: {_short(a.tolist(), 60)} "
                    f"from splitter={_fname(splitter)}."
                )
            out.append(a.astype(np.int64).tolist())
        train, valid = out
        if not train:
            raise DataError(
                f"Expected training items. Received: splitter={_fname(splitter)} put all {n} items in validation "
                "(0 for training). Fix: check the splitter's arguments (folder names, valid_pct < 1, column values)."
            )
        if not valid:
            raise DataError(
                f"Expected validation items. Received: splitter={_fname(splitter)} put all {n} items in training "
                "(0 for validation). Fix: use a splitter that keeps some items for validation, e.g. "
                "RandomSplitter(valid_pct=0.2, seed=42), or check its folder names/column values."
            )
        return train, valid

    def _setup(self, pipe: SamplePipeline, items, train: list[int]) -> dict:
        """Fit the blocks on the training values; returns those raw values (reused for encoding)."""
        slots = [k for k, b in enumerate(pipe.blocks) if b.eager or _overrides_setup(b)]
        if not slots:
            return {}
        raw = pipe.values_for(items, train, slots)
        for k in slots:
            b = pipe.blocks[k]
            try:
                b.setup(raw[k])
            except DataError:
                raise
            except Exception as e:
                raise DataError(
                    f"{type(b).__name__}.setup failed on the training values: {type(e).__name__}: {e}. Expected values "
                    f"this block can fit (e.g. labels for CategoryBlock). Fix: check {'get_x' if k < self.n_inp else 'get_y'}."
                ) from e
        return raw

    def _path(self, source):
        if isinstance(source, (str, os.PathLike)) and os.path.isdir(source):
            return Path(source)
        return None

    def datasets(self, source) -> Datasets:
        """Items from ``source``, split, blocks fitted on the training split; returns :class:`Datasets`.

        Labels are read and encoded for all items here, so a failing ``get_y`` or an unknown validation
        label is reported now (naming the item), not in the middle of training.
        """
        items = self._items(source)
        train, valid = self._split(items)
        blocks = copy.deepcopy(self.blocks)  # fitted copies: this DataBlock stays reusable
        recipe = DataBlockRecipe(blocks, self.n_inp, self.item_tfms, self.batch_tfms, self.get_x, self.get_y)
        pipe = recipe.pipeline("full")
        raw = self._setup(pipe, items, train)
        for side in (0, 1):  # getters of per-item (lazy) blocks: check one item now (shapes vs blocks)
            if pipe.lazy[side]:
                pipe.side_values(items[train[0]], side, train[0])
        train_ds = _dataset_from(pipe, items, train, True, "the training split", raw)
        valid_ds = _dataset_from(pipe, items, valid, False, "the validation split")
        return Datasets(
            items, (train, valid), recipe, train_ds, valid_ds, path=self._path(source), dl_type=self.dl_type
        )

    def dataloaders(
        self,
        source,
        bs: int = 64,
        num_workers: int | None = None,
        shuffle: bool = True,
        drop_last: bool | None = None,
        pin_memory: bool | None = None,
        device=None,
        val_bs: int | None = None,
        seed: int | None = None,
        **kwargs,
    ) -> DataLoaders:
        """``DataLoaders`` (train, valid) from ``source``: see :meth:`Datasets.dataloaders` for the arguments.

        The loaders are plain ``torch.utils.data.DataLoader``s with a collate function from the blocks; batch
        transforms run on the device (on the CPU: in the DataLoader workers, see
        :class:`~learnkit.data.loaders.DeviceLoader`); ``dls.loss_func`` is the target block's loss.
        """
        return self.datasets(source).dataloaders(
            bs=bs,
            num_workers=num_workers,
            shuffle=shuffle,
            drop_last=drop_last,
            pin_memory=pin_memory,
            device=device,
            val_bs=val_bs,
            seed=seed,
            **kwargs,
        )

    # ---------------------------------------------------------------- summary
    def summary(self, source, bs: int = 4, print_out: bool = True) -> str:
        """Walk one item and one batch through every step, printing what each step produced.

        When a step fails, the output says which step, on which item, and why, and a
        :class:`~learnkit.exceptions.DataError` is raised with the same message. Returns the text.
        """
        lines: list[str] = []
        st = _Step(lines, print_out)
        st.log(f"DataBlock summary: blocks={[type(b).__name__ for b in self.blocks]}, n_inp={self.n_inp}")
        items = st.run("get_items", self._items, source)
        st.log(
            f"[get_items] {_fname(self.get_items) if self.get_items else 'source'} -> {len(items)} items; "
            f"first: {_describe(items[0])}"
        )
        train, valid = st.run("splitter", self._split, items)
        st.log(
            f"[splitter] {_fname(self.splitter) if self.splitter else 'RandomSplitter(valid_pct=0.2)'} -> "
            f"{len(train)} training, {len(valid)} validation items"
        )
        blocks = copy.deepcopy(self.blocks)
        recipe = DataBlockRecipe(blocks, self.n_inp, self.item_tfms, self.batch_tfms, self.get_x, self.get_y)
        pipe = recipe.pipeline("full")
        slots = [k for k, b in enumerate(blocks) if b.eager or _overrides_setup(b)]
        raw = None
        if slots:
            sides = sorted({"get_x" if k < self.n_inp else "get_y" for k in slots})
            st.run("/".join(sides), pipe.values_for, items, train, slots)
            raw = st.run("setup", self._setup, pipe, items, train)
            for k in slots:
                b = blocks[k]
                extra = (
                    f"vocab ({len(b.vocab)}): {_short(b.vocab, 80)}" if b.vocab is not None else f"c={b.c}"
                )
                st.log(f"[setup] {type(b).__name__} fitted on {len(train)} training values: {extra}")
        ds = st.run("encode labels", _dataset_from, pipe, items, train, True, "the training split", raw)
        st.run("encode labels", _dataset_from, pipe, items, valid, False, "the validation split")
        for k in pipe.eager_slots:
            st.log(
                f"[{type(blocks[k]).__name__}.encode_many] {len(train)} training and {len(valid)} validation "
                f"values -> {_describe(ds.eager[k])}"
            )
        j = train[0]
        item = items[j]
        st.log(f"\nOne training item: item {j} = {_short(item)}")
        vals = [None] * len(blocks)
        for side, name in ((0, "get_x"), (1, "get_y")):
            rng = pipe._slots(side)
            if not len(rng):
                continue
            raw = st.run(name, pipe.side_values, item, side, j)
            f = pipe.getters[side]
            st.log(
                f"[{name}] {_fname(f) if f is not None else '(the item)'} -> {_describe(raw if len(raw) > 1 else raw[0])}"
            )
            for k in rng:
                v = raw[k - rng.start]
                b = blocks[k]
                enc = (
                    st.run(f"{type(b).__name__}.encode", pipe._encode, k, v, item, j)
                    if not b.eager
                    else ds.eager[k][0]
                )
                st.log(f"[{type(b).__name__}.encode] {_short(v, 50)} -> {_describe(enc)}")
                vals[k] = enc
        sample = tuple(vals)
        for t in pipe.tfms:
            sample = st.run(f"item transform {t!r}", pipe.apply_tfm, t, sample, True, item, j)
            st.log(f"[item transform {t!r}] -> {_describe(sample)}")
        if not pipe.tfms:
            st.log("[item transforms] none")
        tens = []
        for b, v in zip(blocks, sample):
            tv = st.run(f"{type(b).__name__}.to_tensor", b.to_tensor, v)
            st.log(f"[{type(b).__name__}.to_tensor] -> {_describe(tv)}")
            tens.append(tv)
        n = min(bs, len(ds))
        st.log(f"\nOne batch of {n} training items:")
        samples = [st.run(f"item pipeline (training item {train[i]})", ds.__getitem__, i) for i in range(n)]
        batch = st.run("collate", recipe.collate_fn, samples)
        st.log(f"[collate] -> {_describe(batch)}")
        kinds = recipe.kinds
        for t in recipe.batch_pipe.tfms:
            batch = st.run(f"batch transform {t!r}", t, tuple(batch), kinds[: len(batch)], True)
            st.log(f"[batch transform {t!r}] -> {_describe(tuple(batch))}")
        if not recipe.batch_pipe.tfms:
            st.log("[batch transforms] none")
        dec = st.run("decode", recipe.decode_batch, batch, 1)
        st.log(f"[decode] first item -> {_describe(tuple(dec[0]))}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"DataBlock(blocks={list(self.blocks)}, n_inp={self.n_inp}, get_items={_fname(self.get_items)}, "
            f"get_x={_fname(self.get_x)}, get_y={_fname(self.get_y)}, splitter={_fname(self.splitter)})"
        )
