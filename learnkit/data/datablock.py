"""The DataBlock API: describe your data once, get ``DataLoaders`` that train, show, decode and export.

A :class:`DataBlock` says where the items come from (``get_items``), how each item gives its input and
label (``get_x``/``get_y``), how to split them (``splitter``), what each element *is* (``blocks``) and
which transforms run per item (in the DataLoader workers) and per batch (on the device; when the device is
the CPU, in the DataLoader workers right after collation)::

    dblock = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files,
                       get_y=parent_label, splitter=GrandparentSplitter(), item_tfms=Resize(64))
    dls = dblock.dataloaders(path, bs=32)
    dls.show_batch()
    dblock.summary(path)   # runs one item and one batch through the real pipeline, step by step

The pieces live in :mod:`learnkit.data.blocks` (what each element is), :mod:`learnkit.data.pipeline`
(item pipeline, collate, datasets) and :mod:`learnkit.data.recipe` (the fitted recipe ``dls.recipe``).
"""

from __future__ import annotations

import copy
import math
import os
import pickle
from collections.abc import Callable, Mapping
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from ..device import to_cpu
from ..exceptions import DataError
from ..utils import find_bs, listify
from .blocks import TransformBlock, _as_block, _describe, _fname, _short, block_from_spec
from .loaders import DataLoaders
from .pipeline import (
    BatchTfmsCollate,
    BlockCollate,
    BlockDataset,
    Datasets,
    SamplePipeline,
    _dataset_from,
    _overrides_setup,
    check_splits,
)
from .recipe import DataRecipe
from .splitters import RandomSplitter
from .transforms import as_transform, compose_batch, compose_item, transform_from_spec

__all__ = ["DataBlock", "DataBlockRecipe", "recipe_from_spec", "RECIPE_KIND"]

#: the recipe kind of DataBlock loaders (the core's; applications register theirs with learnkit.export)
RECIPE_KIND = "datablock"


# ============================================================================================ the recipe
def _pick(n: int, max_n: int | None, shuffle: bool) -> list[int]:
    """Which of ``n`` items to show: the first ``max_n``, or ``max_n`` random ones with ``shuffle``."""
    k = n if max_n is None else min(n, int(max_n))
    return torch.randperm(n)[:k].tolist() if shuffle else list(range(k))


class DataBlockRecipe(DataRecipe):
    """The fitted data recipe behind DataBlock loaders (``dls.recipe``): blocks, ``n_inp`` and transforms.

    It runs batch transforms (``after_batch``), decodes and shows batches, builds ``test_dl`` loaders for
    new items, decodes predictions, supplies the loss (``loss_func``), and exports itself as plain data
    (``spec()`` / :func:`recipe_from_spec`). ``get_x``/``get_y`` stay in memory only (never exported).

    Example: ``dls = block.dataloaders(path); dls.recipe.n_inp``; ``dls.recipe.test_dl(files)``.
    """

    kind = RECIPE_KIND

    def __init__(
        self, blocks, n_inp: int, item_tfms=None, batch_tfms=None, get_x=None, get_y=None, collate_fn=None
    ):
        self.blocks = tuple(blocks)
        self.n_inp = n_inp
        self.kinds = tuple(b.kind for b in self.blocks)
        self.user_item_tfms = [as_transform(t, "item") for t in listify(item_tfms) if t is not None]
        self.user_batch_tfms = [as_transform(t, "batch") for t in listify(batch_tfms) if t is not None]
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
        self.user_batch_tfms.extend(as_transform(t, "batch") for t in listify(tfms) if t is not None)
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
        ncols = ncols or (math.ceil(n / nrows) if nrows else math.ceil(math.sqrt(n)))
        nrows = nrows or math.ceil(n / ncols)
        fig, axs = plt.subplots(nrows, ncols, figsize=figsize or (3 * ncols, 3 * nrows), squeeze=False)
        axs = axs.flatten()
        for ax in axs[n:]:
            ax.axis("off")
        return fig, axs[:n]

    def show_batch(
        self, batch, max_n: int = 9, nrows=None, ncols=None, figsize=None, dpi=None, shuffle=False, **kwargs
    ):
        """Draw up to ``max_n`` decoded items of ``batch`` in a grid; each block shows its element. Returns the
        figure. ``shuffle=True`` picks random items of the batch; ``dpi`` sets the figure's resolution."""
        items = self.decode_batch(batch)
        order = _pick(len(items), max_n, shuffle)
        items = [items[i] for i in order]
        fig, axs = self._grid(len(items), nrows, ncols, figsize)
        if dpi is not None:
            fig.set_dpi(dpi)
        for ax, it in zip(axs, items):
            for blk, v in zip(self.blocks, it):
                blk.show(v, ax=ax, **kwargs)
        fig.tight_layout()
        return fig

    def show_results(
        self,
        batch,
        decoded_preds,
        max_n: int = 9,
        nrows=None,
        ncols=None,
        figsize=None,
        dpi=None,
        shuffle=False,
        **kwargs,
    ):
        """Draw items with their target and prediction (``target/pred``, green when right). Returns the figure.
        ``shuffle=True`` picks random items of the batch (fastai's ``show_results(shuffle=True)``); ``dpi``
        sets the figure's resolution."""
        items = self.decode_batch(batch)
        order = _pick(len(items), max_n, shuffle)
        items = [items[i] for i in order]
        fig, axs = self._grid(len(items), nrows, ncols, figsize)
        if dpi is not None:
            fig.set_dpi(dpi)
        preds = decoded_preds if isinstance(decoded_preds, (list, tuple)) else [decoded_preds]
        preds = [p[order] if isinstance(p, torch.Tensor) else [p[j] for j in order] for p in preds]
        tgt = self.targets[0] if self.targets else None
        for i, (ax, it) in enumerate(zip(axs, items)):
            for blk, v in zip(self.blocks[: self.n_inp], it):
                blk.show(v, ax=ax, **kwargs)
            if tgt is not None and len(it) > self.n_inp:
                p = preds[0][i] if len(preds) == 1 else [p[i] for p in preds]
                tgt.show_result(it[self.n_inp], tgt.decode_pred(p), ax=ax)
        fig.tight_layout()
        return fig

    def show_item(self, item: tuple, ax=None, **kwargs):
        """Draw the inputs of one decoded item on ``ax``: each input block shows its element."""
        for blk, v in zip(self.blocks[: self.n_inp], item):
            blk.show(v, ax=ax, **kwargs)
        return ax

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
            self.fail(name, e)

    def fail(self, name: str, e: Exception):
        self.log(f"FAILED at step '{name}': {type(e).__name__}: {e}")
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

    def new(self, item_tfms=None, batch_tfms=None, **kwargs) -> DataBlock:
        """A copy of this DataBlock with other transforms (or other arguments), as in fastai:
        ``dblock.new(item_tfms=Resize(128, method='squish'))``. Arguments not given stay the same.

        >>> db = DataBlock(item_tfms=None)
        >>> db.new(batch_tfms=[]).n_inp == db.n_inp
        True
        """
        args = dict(
            blocks=self.blocks,
            get_items=self.get_items,
            get_x=self.get_x,
            get_y=self.get_y,
            n_inp=self.n_inp,
            splitter=self.splitter,
            item_tfms=self.item_tfms,
            batch_tfms=self.batch_tfms,
            dl_type=self.dl_type,
        )
        if item_tfms is not None:
            args["item_tfms"] = item_tfms
        if batch_tfms is not None:
            args["batch_tfms"] = batch_tfms
        unknown = set(kwargs) - set(args)
        if unknown:
            raise DataError(
                f"Expected DataBlock arguments. Received: {sorted(unknown)}. Fix: one of {sorted(args)}."
            )
        args.update(kwargs)
        return DataBlock(**args)

    # ---------------------------------------------------------------- steps
    def _items(self, source):
        return self._items_and_split_source(source)[0]

    def _items_and_split_source(self, source):
        """The items (a DataFrame's rows as dicts, indexable by column name: ``r['fname']``) and what the
        splitter is given (the DataFrame itself, as in fastai, else the items)."""
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
        split_source = None
        if isinstance(items, pd.DataFrame):  # one dict per row; the splitter gets the DataFrame
            split_source = items.reset_index(drop=True)
            items = split_source.to_dict("records")
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
        return items, (items if split_source is None else split_source)

    def _split(self, items) -> tuple[list[int], list[int]]:
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
        check_splits(train, valid, f"splitter={_fname(splitter)}")
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
        self._refuse_loader_block("datasets")
        items, split_source = self._items_and_split_source(source)
        train, valid = self._split(split_source)
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
        path=None,
        **kwargs,
    ) -> DataLoaders:
        """``DataLoaders`` (train, valid) from ``source``: see :meth:`Datasets.dataloaders` for the arguments
        (``dl_type``, ``dl_kwargs``, ``batch_sampler`` plug in an application's loading; ``path`` is
        ``dls.path``, default ``'.'`` as in fastai, so ``learn.export()`` writes beside the script).

        The loaders are plain ``torch.utils.data.DataLoader``s with a collate function from the blocks; batch
        transforms run on the device (on the CPU: in the DataLoader workers, see
        :class:`~learnkit.data.loaders.DeviceLoader`); ``dls.loss_func`` is the target block's loss.
        """
        owner = self._loader_block()
        if (
            owner is not None
        ):  # e.g. TextBlock: it batches its data itself (see TransformBlock.builds_loaders)
            items, split_source = self._items_and_split_source(source)
            train, valid = self._split(split_source)
            return copy.deepcopy(owner).build_dataloaders(
                self,
                items,
                train,
                valid,
                bs=bs,
                shuffle=shuffle,
                device=device,
                val_bs=val_bs,
                seed=seed,
                path=path if path is not None else ".",
                **kwargs,
            )
        return self.datasets(source).dataloaders(
            bs=bs,
            num_workers=num_workers,
            shuffle=shuffle,
            drop_last=drop_last,
            pin_memory=pin_memory,
            device=device,
            val_bs=val_bs,
            seed=seed,
            path=path if path is not None else ".",
            **kwargs,
        )

    # ---------------------------------------------------------------- summary
    def _loader_block(self):
        """The block that builds the loaders itself (``builds_loaders``), if any."""
        return next((b for b in self.blocks if b.builds_loaders), None)

    def _refuse_loader_block(self, what: str) -> None:
        owner = self._loader_block()
        if owner is not None:
            raise DataError(
                f"Expected blocks that go through the per-item pipeline for DataBlock.{what}. Received: "
                f"{type(owner).__name__}, which batches its data itself. Fix: call dblock.dataloaders(source)."
            )

    def summary(self, source, bs: int = 4, print_out: bool = True) -> str:
        """Run one item and one batch through the real pipeline, printing what each step produced.

        The steps are the ones the loaders run (the same :class:`~learnkit.data.pipeline.SamplePipeline`,
        collate and batch transforms, traced step by step with their names). When a step fails, the output
        says which step, on which item, and why, and a :class:`~learnkit.exceptions.DataError` is raised
        with the same message. Returns the text.
        """
        self._refuse_loader_block("summary")
        lines: list[str] = []
        st = _Step(lines, print_out)
        st.log(f"DataBlock summary: blocks={[type(b).__name__ for b in self.blocks]}, n_inp={self.n_inp}")
        items, split_source = st.run("get_items", self._items_and_split_source, source)
        st.log(
            f"[get_items] {_fname(self.get_items) if self.get_items else 'source'} -> {len(items)} items; "
            f"first: {_describe(items[0])}"
        )
        train, valid = st.run("splitter", self._split, split_source)
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
        j = train[0]
        st.log(f"\nOne training item: item {j} = {_short(items[j])}")
        current = ["item pipeline"]

        def trace(step: str, value) -> None:
            if value is None:  # the step starts
                current[0] = step
                return
            if step in ("get_x", "get_y"):
                f = pipe.getters[0 if step == "get_x" else 1]
                shown = value if len(value) > 1 else value[0]
                st.log(f"[{step}] {_fname(f) if f is not None else '(the item)'} -> {_describe(shown)}")
            elif step.endswith(".encode") or step.endswith(".encode_many"):
                before, after = value
                src = _short(before, 50) if before is not None else f"(encoded for all {len(train)} items)"
                st.log(f"[{step}] {src} -> {_describe(after)}")
            else:
                st.log(f"[{step}] -> {_describe(value)}")

        for side, name in (
            (0, "get_x"),
            (1, "get_y"),
        ):  # eager blocks' values, as _dataset_from computed them
            eager_side = [k for k in pipe.eager_slots if k in pipe._slots(side)]
            if eager_side and not pipe.lazy[side]:
                vals = st.run(name, pipe.values_for, items, [j], eager_side)
                f = pipe.getters[side]
                shown = tuple(vals[k][0] for k in eager_side)
                st.log(
                    f"[{name}] {_fname(f) if f is not None else '(the item)'} -> "
                    f"{_describe(shown if len(shown) > 1 else shown[0])}"
                )
        try:
            ds.pipeline.sample(items[j], j, ds.eager, 0, True, trace=trace)
        except Exception as e:
            st.fail(current[0], e)
        if not pipe.tfms:
            st.log("[item transforms] none")
        n = min(bs, len(ds))
        st.log(f"\nOne batch of {n} training items:")
        samples = [st.run(f"item pipeline (training item {train[i]})", ds.__getitem__, i) for i in range(n)]
        batch = st.run("collate", recipe.collate_fn, samples)
        st.log(f"[collate] -> {_describe(batch)}")
        kinds = recipe.kinds
        for t in recipe.batch_pipe.tfms:  # the batch pipeline's own steps, in its order
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
