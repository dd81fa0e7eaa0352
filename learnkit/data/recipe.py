"""The data-recipe protocol: the one contract between an application's data and the core.

``dls.recipe`` is what the learner, ``predict``, ``show_batch`` / ``show_results``, interpretation and
``export`` / ``load_learner`` talk to. Every application implements it (vision through
:class:`DataBlockRecipe` (below); text, tabular and collab with recipes of their own that are
not per-item DataBlocks). The core calls only the members declared here, never probes for others.

=====================  ======================================================================================
member                 meaning (default)
=====================  ======================================================================================
``kind``               the registered name ``load_learner`` rebuilds the recipe by (class attribute; required
                       for export; see :func:`learnkit.export.register_recipe`)
``n_inp``              how many leading batch elements are model inputs (1)
``vocab``              the target's class names, or ``[input_vocab, target_vocab]`` for text (``None``)
``c``                  how many outputs the model needs (``None``: the factory must be told ``n_out``)
``loss_func``          the loss the target implies (``None``: the user passes ``loss_func``)
``default_metrics()``  metrics the target implies when the user gives none (``[]``)
``after_batch``        batch transforms run on the device (identity)
``worker_collate``     a collate function with the batch transforms, for CPU workers (``None``)
``decode_batch``       a batch back to a list of decoded item tuples (required for showing)
``decode_pred``        one decoded prediction to what a user reads, e.g. a label (identity)
``predict_dl``         a loader over one raw item for ``Learner.predict`` (``test_dl([item], bs=1)``)
``show_batch``         draw a batch (required for ``dls.show_batch``)
``show_results``       draw a batch with predictions (required for ``learn.show_results``)
``test_dl``            a loader over new raw items through the validation pipeline (required for inference)
``spec()``             the fitted recipe as plain data with ``{'kind': kind, ...}`` (required for export)
``from_spec(spec)``    class method: rebuild from ``spec()`` (required for export)
=====================  ======================================================================================

A member marked "required" raises :class:`~learnkit.exceptions.DataError` naming the recipe and the
member when it is called but not implemented, so an application that does not draw, say, still trains.

>>> class Pairs(DataRecipe):
...     kind = "pairs"
...     def spec(self):
...         return {"kind": self.kind}
>>> Pairs().n_inp, Pairs().spec()
(1, {'kind': 'pairs'})
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Mapping

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..device import to_cpu
from ..exceptions import DataError
from ..utils import find_bs, listify
from .blocks import _short, block_from_spec
from .pipeline import BatchTfmsCollate, BlockCollate, BlockDataset, SamplePipeline, _dataset_from
from .transforms import compose_batch, compose_item, transform_from_spec

__all__ = ["DataRecipe", "DataBlockRecipe", "recipe_from_spec", "RECIPE_KIND"]

#: the recipe kind of DataBlock loaders (core; applications register theirs in learnkit.export)
RECIPE_KIND = "datablock"


class DataRecipe:
    """Base class of every data recipe (``dls.recipe``): see the module docstring for the members.

    Subclasses override what they support; the defaults make a recipe that trains but cannot show,
    infer on raw items or export until those members are written.
    """

    #: registered name of the recipe for export (``spec()['kind']``)
    kind: str = ""
    #: number of leading batch elements that are model inputs
    n_inp: int = 1
    #: the target's class names (or ``[input_vocab, target_vocab]`` for text); None when there are none
    vocab = None
    #: number of model outputs the target needs; None when the data cannot tell
    c: int | None = None
    #: the loss the target implies; None when the user must pass one
    loss_func = None

    def _missing(self, member: str, what: str) -> DataError:
        return DataError(
            f"The data recipe {type(self).__name__} does not implement {member}(), so it cannot {what}. "
            f"Expected a recipe that implements it. Fix: implement {type(self).__name__}.{member} "
            "(see learnkit.data.recipe.DataRecipe), or do this step with plain tensors."
        )

    # ---------------------------------------------------------------- what the target implies
    def default_metrics(self) -> list:
        """Metrics the target implies when the user passes none (default: none)."""
        return []

    # ---------------------------------------------------------------- batches
    def after_batch(self, batch, train: bool):
        """Batch transforms run on the device after collation (default: the batch unchanged)."""
        return batch

    def worker_collate(self, collate_fn, train: bool):
        """``collate_fn`` followed by the batch transforms, to run in CPU workers; ``None`` when not needed."""
        return None

    def decode_batch(self, batch, max_n: int | None = None) -> list[tuple]:
        """A batch back to a list of decoded item tuples (inputs then targets)."""
        raise self._missing("decode_batch", "decode batches")

    def decode_pred(self, decoded):
        """One item's decoded prediction -> what a user reads (e.g. the label). Default: unchanged."""
        return decoded

    # ---------------------------------------------------------------- showing
    def show_batch(self, batch, max_n: int = 9, **kwargs):
        """Draw (or return as a table) up to ``max_n`` decoded items of ``batch``."""
        raise self._missing("show_batch", "show batches")

    def show_results(self, batch, decoded_preds, max_n: int = 9, **kwargs):
        """Draw (or return as a table) items with their targets and predictions."""
        raise self._missing("show_results", "show results")

    # ---------------------------------------------------------------- inference
    def test_dl(self, items, with_labels: bool = False, bs: int = 64, **kwargs):
        """A loader over new raw ``items`` through the validation pipeline."""
        raise self._missing("test_dl", "process raw items")

    def predict_dl(self, item):
        """A loader over one raw item, for :meth:`learnkit.Learner.predict` (default: ``test_dl([item])``)."""
        return self.test_dl([item], bs=1)

    # ---------------------------------------------------------------- export
    def spec(self) -> dict:
        """The fitted recipe as plain data (str, numbers, lists, dicts, tensors) with ``'kind'``."""
        raise self._missing("spec", "be exported")

    @classmethod
    def from_spec(cls, spec: dict) -> DataRecipe:
        """Rebuild the recipe from :meth:`spec` (used by ``load_learner``)."""
        raise DataError(
            f"The data recipe {cls.__name__} does not implement from_spec(), so load_learner cannot rebuild it. "
            f"Fix: implement the class method {cls.__name__}.from_spec."
        )


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
