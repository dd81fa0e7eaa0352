"""Blocks: what each element of a sample *is* (encode, decode, show, loss, ``c``, spec).

Blocks (:class:`TransformBlock` and its subclasses) know their type: they fit on the training split
(``setup``: a vocab), encode, decode, show, which loss fits them (``loss_func``) and how many outputs
a model needs (``c``). They describe themselves as plain data (``spec``) so an export needs no pickle;
:func:`register_block` puts a block class in the block registry (:data:`BLOCKS`) that
:func:`block_from_spec` rebuilds from.

>>> b = CategoryBlock()
>>> b.setup(["dog", "cat", "dog"])
>>> b.vocab, b.encode("dog")
(['cat', 'dog'], 1)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..exceptions import DataError
from ..losses import BCEWithLogitsLossFlat, CrossEntropyLossFlat, MSELossFlat
from ..registry import Registry
from ..utils import listify
from .transforms import BatchTransform, ItemTransform, transform_from_spec

__all__ = [
    "TransformBlock",
    "CategoryBlock",
    "MultiCategoryBlock",
    "RegressionBlock",
    "register_block",
    "block_from_spec",
    "BLOCKS",
]

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
def _check_block(name: str, cls) -> None:
    if not (isinstance(cls, type) and issubclass(cls, TransformBlock)):
        raise DataError(
            f"Expected a subclass of TransformBlock. Received: cls={cls!r}. "
            "Fix: decorate the block class itself: @register_block class MyBlock(TransformBlock): ..."
        )


#: The block registry: class name -> block class (learnkit's, the applications', and yours).
BLOCKS = Registry(
    "block",
    error=DataError,
    check=_check_block,
    fix="for your own block class, import the module that defines it with @register_block first.",
)


def register_block(cls: type) -> type:
    """Class decorator: make a block class rebuildable from its ``spec()`` (for pickle-free exports).

    >>> @register_block
    ... class MyBlock(TransformBlock):
    ...     kind = "tensor"
    >>> type(block_from_spec(MyBlock().spec())).__name__
    'MyBlock'
    """
    _check_block(getattr(cls, "__name__", ""), cls)
    return BLOCKS.register(cls, name=cls.__name__)


def block_from_spec(spec: dict) -> TransformBlock:
    """Rebuild a fitted block from its ``spec()`` (``{'name', 'kwargs', 'state'}``).

    Only registered block classes are built (learnkit's own, the applications' of
    :data:`learnkit.registry.APPLICATIONS`, imported when a name is missing, and yours after
    :func:`register_block`); nothing is imported by a name read from the file.

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
    cls = BLOCKS.get(name)
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

    # ---------------------------------------------------------------- blocks that batch their own data
    #: True for a block whose data is not batched item by item (e.g. text: one token stream for a language
    #: model, length-sorted padded batches for a classifier): ``DataBlock.dataloaders`` then hands it the
    #: items and the split through :meth:`build_dataloaders`, and the per-item pipeline is not used.
    builds_loaders: bool = False

    def build_dataloaders(self, dblock, items, train_idx: list, valid_idx: list, **kwargs):
        """The ``DataLoaders`` of ``dblock`` over ``items`` split into ``train_idx``/``valid_idx`` (called by
        ``DataBlock.dataloaders`` with its keyword arguments when ``builds_loaders`` is True)."""
        msg = f"{type(self).__name__} sets builds_loaders = True: define build_dataloaders (see TextBlock)."
        raise NotImplementedError(msg)  # abstract: a block that builds its loaders must implement this

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
