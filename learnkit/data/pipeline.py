"""The item pipeline and datasets: one item -> a tuple of tensors -> a batch.

How one item becomes a tuple of tensors (:class:`SamplePipeline`): ``get_x``/``get_y`` give the raw
values, each block ``encode``s its value (a path becomes an image, a label an index), the item
transforms run on the encoded sample, then each block's ``to_tensor`` makes it a tensor and its
``collate`` (:class:`BlockCollate`) stacks a batch. Labels are computed and encoded for all items once,
when the data set is built (vectorised, and every bad label is reported at once, not in the middle of
an epoch). :class:`Datasets` holds the items, the split and the two :class:`BlockDataset` objects, and builds
the loaders.

>>> from learnkit.data.blocks import CategoryBlock, TransformBlock
>>> pipe = SamplePipeline([TransformBlock(), CategoryBlock(vocab=["a", "b"])], n_inp=1)
>>> pipe.sample((torch.zeros(2), "b"), 0, None, 0, train=False)[1]
tensor(1)
"""

from __future__ import annotations

import multiprocessing
import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..device import default_device
from ..exceptions import DataError
from .blocks import TransformBlock, _describe, _fname, _short
from .loaders import DataLoaders, default_num_workers
from .transforms import compose_item

if TYPE_CHECKING:  # the recipe module builds on this one
    from .recipe import DataRecipe

__all__ = ["SamplePipeline", "BlockCollate", "BatchTfmsCollate", "BlockDataset", "Datasets", "check_splits"]


def check_splits(train, valid, source: str = "the splits") -> None:
    """Refuse a split whose training and validation indices overlap, or that repeats an index.

    An item in both splits is validated on after training on it (a silently optimistic score); a repeated
    index weighs an item twice. The error lists a few offending indices.

    >>> check_splits([0, 1, 2], [3, 4])
    >>> check_splits([0, 1, 2], [2, 3])
    Traceback (most recent call last):
    ...
    learnkit.exceptions.DataError: Expected disjoint training and validation indices. Received: 1 index in both from the splits, e.g. [2]. Fix: make the splitter put every item in exactly one split (e.g. RandomSplitter(0.2, seed=42)).
    """
    t = np.asarray(train, dtype=np.int64).reshape(-1)
    v = np.asarray(valid, dtype=np.int64).reshape(-1)
    both = np.intersect1d(t, v)
    if both.size:
        raise DataError(
            f"Expected disjoint training and validation indices. Received: {both.size} "
            f"ind{'ex' if both.size == 1 else 'ices'} in both from {source}, e.g. {both[:5].tolist()}. Fix: make "
            "the splitter put every item in exactly one split (e.g. RandomSplitter(0.2, seed=42))."
        )
    for name, a in (("training", t), ("validation", v)):
        u, counts = np.unique(a, return_counts=True)
        rep = u[counts > 1]
        if rep.size:
            raise DataError(
                f"Expected each index once in the {name} split. Received: {rep.size} repeated "
                f"ind{'ex' if rep.size == 1 else 'ices'} from {source}, e.g. {rep[:5].tolist()} "
                f"(index {int(rep[0])} appears {int(counts[counts > 1][0])} times). Fix: remove the duplicates "
                "from the splitter's output (oversample with a sampler, not by repeating indices)."
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

    def sample(
        self, item, pos, eager: Mapping[int, Sequence] | None, i: int, train: bool, trace=None
    ) -> tuple:
        """Item ``item`` (position ``pos`` in the items) as a tuple of tensors; ``eager[k][i]`` holds the
        precomputed values of the eager blocks.

        ``trace(step, value)``, when given, is called before each step with its name and ``None``, then
        after it with what it produced (``DataBlock.summary`` prints the real pipeline with it).
        """
        vals = [None] * self.n_blocks
        for side, base, slots in self._plan:
            if trace is not None:
                trace(("get_x", "get_y")[side], None)
            raw = self.side_values(item, side, pos)
            if trace is not None:
                trace(("get_x", "get_y")[side], raw)
            for k, enc in slots:
                v = raw[k - base]
                if enc is not None:
                    if trace is not None:
                        trace(f"{type(self.blocks[k]).__name__}.encode", None)
                    try:
                        v = enc(v)
                    except Exception as e:
                        raise self._encode_error(k, v, item, pos, e) from e
                if trace is not None:
                    trace(f"{type(self.blocks[k]).__name__}.encode", (raw[k - base], v))
                vals[k] = v
        if eager:
            for k, t in eager.items():
                vals[k] = t[i]
                if trace is not None:
                    trace(f"{type(self.blocks[k]).__name__}.encode_many", (None, vals[k]))
        sample = tuple(vals)
        for t in self.tfms:
            if trace is not None:
                trace(f"item transform {t!r}", None)
            sample = self.apply_tfm(t, sample, train, item, pos)
            if trace is not None:
                trace(f"item transform {t!r}", sample)
        if trace is None:
            return tuple([f(v) for f, v in zip(self._to_tensor, sample)])
        out = []
        for b, f, v in zip(self.blocks, self._to_tensor, sample):
            trace(f"{type(b).__name__}.to_tensor", None)
            out.append(f(v))
            trace(f"{type(b).__name__}.to_tensor", out[-1])
        return tuple(out)


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

    Example: ``ds = block.datasets(path).train; x, y = ds[0]; len(ds), ds.items[0]``.
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

    @property
    def vocab(self):
        """The first target block's vocab (class names), ``None`` when it has none (``dsets.train.vocab``)."""
        for b in self.pipeline.blocks[self.pipeline.n_inp :]:
            if b.vocab is not None:
                return b.vocab
        return None

    def raw(self, i: int):
        """The raw item behind ``ds[i]``."""
        return self._all[self._idxs[i]]

    def __repr__(self) -> str:
        return f"BlockDataset({len(self)} items, train={self.train}, kinds={self.pipeline.kinds})"


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

    Example: ``dsets = block.datasets(path); x, y = dsets.train[0]; dls = dsets.dataloaders(bs=32)``.
    """

    def __init__(
        self,
        items,
        splits,
        recipe: DataRecipe,
        train: BlockDataset,
        valid: BlockDataset,
        path=None,
        dl_type=None,
    ):
        if splits is not None:
            check_splits(splits[0], splits[1], "the Datasets' splits")
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
        dl_type=None,
        dl_kwargs: dict | None = None,
        batch_sampler=None,
        path=None,
        **kwargs,
    ) -> DataLoaders:
        """Loaders over the two datasets (plain ``torch.utils.data.DataLoader`` by default), in :class:`DataLoaders`.

        ``num_workers=None`` uses :func:`~learnkit.data.loaders.default_num_workers`; workers persist across
        epochs. ``drop_last=None`` drops the last short training batch when there are more items than ``bs``.
        Pinned memory is on for CUDA. ``seed`` fixes the shuffling order.

        How an application plugs in its own loading:

        - ``dl_type``: the loader class (default: the DataBlock's ``dl_type``, else ``DataLoader``), called as
          ``dl_type(dataset, batch_size=, shuffle=, drop_last=, generator=, num_workers=, collate_fn=, ...)``.
        - ``dl_kwargs``: extra keyword arguments for ``dl_type`` (both loaders); other keyword arguments go
          there too.
        - ``batch_sampler``: a factory ``batch_sampler(dataset, bs=, shuffle=, drop_last=, generator=)`` giving
          a batch sampler (e.g. sort by length); the loaders are then built with ``batch_sampler=`` instead of
          ``batch_size``/``shuffle``. Give it ``shard``/``shard_eval``/``set_epoch`` for distributed training
          (the sharding protocol of :mod:`learnkit.data.loaders`).
        - ``path``: the folder exports and models go to (``dls.path``, then ``learn.path``; default: the
          source folder, else ``'.'``).
        """
        if not isinstance(bs, int) or bs < 1:
            raise DataError(f"Expected bs to be a positive integer. Received: bs={bs!r}.")
        device = default_device(device)
        nw = default_num_workers() if num_workers is None else int(num_workers)
        _check_picklable(self.train.pipeline, nw)
        pin = device.type == "cuda" if pin_memory is None else pin_memory
        drop = len(self.train) > bs if drop_last is None else drop_last
        gen = torch.Generator().manual_seed(int(seed)) if seed is not None else None
        dl_type = dl_type or self.dl_type or DataLoader
        common = dict(
            num_workers=nw,
            pin_memory=pin,
            collate_fn=self.recipe.collate_fn,
            persistent_workers=nw > 0,
            **dict(dl_kwargs or {}),
            **kwargs,
        )
        vbs = val_bs or bs * 2
        if batch_sampler is not None:
            if not callable(batch_sampler):
                raise DataError(
                    f"Expected batch_sampler to be a factory (dataset, bs=, shuffle=, drop_last=, generator=) -> "
                    f"batch sampler. Received: {_short(batch_sampler)}. Fix: pass the function or class itself."
                )
            tbs = batch_sampler(self.train, bs=bs, shuffle=shuffle, drop_last=drop, generator=gen)
            vbsamp = batch_sampler(self.valid, bs=vbs, shuffle=False, drop_last=False, generator=None)
            train = dl_type(self.train, batch_sampler=tbs, **common)
            valid = dl_type(self.valid, batch_sampler=vbsamp, **common)
        else:
            train = dl_type(
                self.train, batch_size=bs, shuffle=shuffle, drop_last=drop, generator=gen, **common
            )
            valid = dl_type(self.valid, batch_size=vbs, shuffle=False, drop_last=False, **common)
        if path is None:
            path = self.path if self.path is not None else "."
        return DataLoaders(
            train,
            valid,
            device=device,
            recipe=self.recipe,
            loss_func=self.recipe.loss_func,
            path=Path(path),
        )

    def __repr__(self) -> str:
        return f"Datasets(train={len(self.train)}, valid={len(self.valid)}, blocks={list(self.blocks)})"
