r"""``DataLoaders``: the train/valid pair a Learner trains on, and ``TensorLoader`` for in-memory data.

Any iterable of batches with a length works as a loader: a ``torch.utils.data.DataLoader``, a
:class:`TensorLoader`, or a learnkit application loader. A batch is a tuple ``(x1, ..., xn, y1, ...)``
(the first ``n_inp`` elements go to the model, the rest to the loss) or a dict (the target key goes
to the loss, the rest to the model as keyword arguments).

The sharding protocol (distributed training, see :mod:`learnkit.distributed`). Under DDP every loader is
sharded; one that cannot be is refused with a :class:`~learnkit.exceptions.DataError` (training and
validation alike: nothing is silently evaluated or trained unsharded). learnkit shards torch
``DataLoader``\ s with a standard sampler itself; any other loader, or the ``batch_sampler`` of a
``DataLoader`` (e.g. an application's sort-by-length sampler), implements:

==========================================  =============================================================
method                                      contract
==========================================  =============================================================
``shard(num_replicas, rank, seed)``         training: return (or become) rank ``rank``'s share of every
                                            epoch; shares are padded so all ranks run the same number of
                                            batches; shuffle with ``seed + epoch`` so ranks agree
                                            (:class:`Shardable`)
``shard_eval(num_replicas, rank)``          evaluation: return a loader over rank ``rank``'s contiguous
                                            share, no padding, so the shares concatenated in rank order
                                            give the loader's order (:class:`EvalShardable`)
``set_epoch(epoch)``                        called before each epoch (the shuffle order of that epoch)
==========================================  =============================================================

:class:`TensorLoader` implements all three. ``shard`` is called on a copy of the loader.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from ..device import default_device, to_device
from ..exceptions import DataError
from .recipe import DataRecipe

__all__ = [
    "DataLoaders",
    "TensorLoader",
    "DeviceLoader",
    "default_num_workers",
    "TARGET_KEYS",
    "MIN_SHM_BYTES",
    "CheckedCollate",
    "Shardable",
    "EvalShardable",
]

#: Keys looked for, in order, as the target of a dict batch.
TARGET_KEYS = ("y", "label", "labels", "target", "targets")


def default_num_workers() -> int:
    """A sensible number of DataLoader workers for this machine: cores - 1, at most 8, and 0 on 1 core.

    Example: ``DataLoader(ds, batch_size=64, num_workers=default_num_workers())``.
    """
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, min(8, n - 1))


@runtime_checkable
class Shardable(Protocol):
    """A loader (or batch sampler) that shards itself for distributed training (see the module doc)."""

    def shard(self, num_replicas: int, rank: int, seed: int = 0): ...


@runtime_checkable
class EvalShardable(Protocol):
    """A loader (or batch sampler) that gives a contiguous, unpadded share of itself for evaluation."""

    def shard_eval(self, num_replicas: int, rank: int): ...


class TensorLoader:
    """Batches tensors held in memory by slicing, with no per-item Python.

    Each epoch shuffles once (one gather per tensor) and then yields contiguous views, which is
    about ten times cheaper per batch than a ``DataLoader`` over a ``TensorDataset``.

    Args:
        tensors: tensors with the same first dimension; each batch is a tuple of their slices.
        bs: batch size. shuffle: reshuffle every epoch. drop_last: drop a final short batch.
        seed: when set, the order of epoch ``e`` depends only on ``seed + e`` (all ranks agree);
            otherwise it is drawn from torch's global RNG, like ``RandomSampler``.

    >>> dl = TensorLoader(torch.randn(10, 3), torch.arange(10), bs=4)
    >>> [len(xb) for xb, yb in dl]
    [4, 4, 2]
    """

    def __init__(
        self,
        *tensors: torch.Tensor,
        bs: int = 64,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int | None = None,
    ):
        if not tensors:
            raise DataError(
                "Expected at least one tensor. Received: no tensors. Fix: TensorLoader(x, y, bs=64)."
            )
        n = len(tensors[0])
        for i, t in enumerate(tensors):
            if not isinstance(t, torch.Tensor):
                raise DataError(
                    f"Expected tensors. Received: tensors[{i}] of type {type(t).__name__}. "
                    "Fix: convert with torch.as_tensor(...)."
                )
            if len(t) != n:
                raise DataError(
                    f"Expected tensors with the same length. Received: lengths "
                    f"{[len(o) for o in tensors]}. Fix: pass x and y with one row per item."
                )
        if int(bs) < 1:
            raise DataError(f"Expected bs >= 1. Received: bs={bs}.")
        self.tensors, self.bs, self.shuffle, self.drop_last, self.seed = (
            tuple(tensors),
            int(bs),
            shuffle,
            drop_last,
            seed,
        )
        self.epoch, self.num_replicas, self.rank, self._start_batch = 0, 1, 0, 0

    @property
    def n(self) -> int:
        """Number of items (all ranks)."""
        return len(self.tensors[0])

    @property
    def device(self) -> torch.device:
        return self.tensors[0].device

    @property
    def dataset(self) -> Sequence:
        """The tensors, indexable per item like a ``TensorDataset``."""
        return torch.utils.data.TensorDataset(*self.tensors)

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch (used for the shuffle order when ``seed`` is set, as in distributed training)."""
        self.epoch = epoch

    def shard(self, num_replicas: int, rank: int, seed: int = 0) -> TensorLoader:
        """Make this loader yield only rank ``rank``'s share of each epoch (padded so every rank has as many)."""
        self.num_replicas, self.rank = num_replicas, rank
        if self.seed is None:
            self.seed = seed
        return self

    def shard_eval(self, num_replicas: int, rank: int) -> TensorLoader:
        """A copy over rank ``rank``'s contiguous share of the items, unpadded, in order (for evaluation).

        >>> [len(TensorLoader(torch.arange(10), bs=4).shard_eval(3, r).tensors[0]) for r in range(3)]
        [3, 3, 4]
        """
        if self.num_replicas != 1:
            raise DataError(
                "Expected an unsharded TensorLoader for shard_eval. Received: one already sharded "
                f"for {self.num_replicas} replicas. Fix: call shard_eval on the original loader."
            )
        a, b = self.n * rank // num_replicas, self.n * (rank + 1) // num_replicas
        new = copy.copy(self)
        new.tensors = tuple(t[a:b] for t in self.tensors)
        return new

    def _n_local(self) -> int:
        return math.ceil(self.n / self.num_replicas)

    def __len__(self) -> int:
        n = self._n_local()
        return n // self.bs if self.drop_last else math.ceil(n / self.bs)

    def skip(self, n_batches: int) -> None:
        """Make the next iteration start at batch ``n_batches`` (used when resuming mid-epoch)."""
        self._start_batch = n_batches

    def _indices(self) -> torch.Tensor | None:
        if self.shuffle:
            g = torch.Generator()
            if self.seed is not None:
                g.manual_seed(self.seed + self.epoch)
            else:
                g.manual_seed(int(torch.empty((), dtype=torch.int64).random_().item()))
            idx = torch.randperm(self.n, generator=g)
        elif self.num_replicas > 1:
            idx = torch.arange(self.n)
        else:
            return None
        if self.num_replicas > 1:
            total = self._n_local() * self.num_replicas
            if total > self.n:
                idx = torch.cat([idx, idx[: total - self.n]])
            idx = idx[self.rank :: self.num_replicas]
        return idx.to(self.device)

    def __iter__(self):
        # the order is drawn here, eagerly (not at the first next()), so RNG use is tied to iter()
        idx = self._indices()
        # index_select is one contiguous gather per tensor, about twice as fast as t[idx] on CPU
        ts = self.tensors if idx is None else tuple(t.index_select(0, idx) for t in self.tensors)
        n, bs = len(ts[0]), self.bs
        stop = (n // bs) * bs if self.drop_last else n
        start, self._start_batch = self._start_batch * bs, 0
        return self._batches(ts, start, stop, bs)

    @staticmethod
    def _batches(ts, start, stop, bs):
        for i in range(start, stop, bs):
            yield tuple(t[i : i + bs] for t in ts)


#: Free shared memory (``/dev/shm``) below which batch transforms stay in the main process: transformed
#: batches are float (4x the bytes of ``uint8`` images) and workers hand them over through shared memory,
#: which is small in some containers (Docker's default is 64 MB).
MIN_SHM_BYTES = 1 << 30


def _shm_free() -> int | None:
    """Free bytes in ``/dev/shm`` (``None`` where there is no such file system)."""
    try:
        st = os.statvfs("/dev/shm")
    except (OSError, AttributeError):
        return None
    return st.f_bavail * st.f_frsize


def _with_collate(dl: DataLoader, collate_fn) -> DataLoader | None:
    """A copy of torch DataLoader ``dl`` (same dataset, sampler, workers, ...) with ``collate_fn``;
    ``None`` when its class does not take DataLoader's arguments."""
    kw = dict(
        num_workers=dl.num_workers,
        collate_fn=collate_fn,
        pin_memory=dl.pin_memory,
        timeout=dl.timeout,
        worker_init_fn=dl.worker_init_fn,
        multiprocessing_context=dl.multiprocessing_context,
        generator=dl.generator,
        persistent_workers=dl.persistent_workers,
    )
    if dl.batch_size is None:  # a custom batch sampler
        kw["batch_sampler"] = dl.batch_sampler
    else:  # the same sampler object: shuffling, seeds and set_epoch stay shared with ``dl``
        kw.update(batch_size=dl.batch_size, drop_last=dl.drop_last, sampler=dl.sampler)
    if dl.num_workers > 0:
        kw["prefetch_factor"] = dl.prefetch_factor
    for a in ("pin_memory_device", "in_order"):
        if hasattr(dl, a):
            kw[a] = getattr(dl, a)
    try:
        return type(dl)(dl.dataset, **kw)
    except (TypeError, ValueError):
        return None


class DeviceLoader:
    """Wraps any loader: moves each batch to ``device`` (non-blocking) and runs batch transforms there.

    ``DataLoaders.train`` and ``.valid`` are ``DeviceLoader``s; ``.loader`` is the wrapped one.
    ``after_batch(batch, train)`` runs the batch transforms (``train`` selects random augmentation).

    When the device is the CPU and the wrapped loader is a torch ``DataLoader`` with workers,
    ``worker_collate(collate_fn, train)`` (a data recipe's, given by ``DataLoaders``) may return a
    ``collate_fn`` that also runs the batch transforms: batches then come from a copy of the wrapped
    loader with that collate (same dataset, sampler and workers), so the transforms run in the worker
    processes, in parallel with the training step, and not again here. The copy follows ``train``, so
    flipping it (test-time augmentation) gives batches transformed in that mode. On an accelerator the
    transforms run there, on whole batches, as usual; they also stay here when ``/dev/shm`` has less than
    :data:`MIN_SHM_BYTES` free.

    Example: ``dl = DeviceLoader(DataLoader(ds, batch_size=8), device='cuda')``; ``next(iter(dl))``.
    """

    def __init__(
        self,
        loader: Iterable,
        device: torch.device | None = None,
        after_batch=None,
        train: bool = False,
        worker_collate=None,
        recipe=None,
    ):
        self.loader, self.device, self.after_batch, self.train = loader, device, after_batch, train
        self.recipe = recipe
        self.worker_collate = worker_collate
        self._start_batch = 0
        self._workers = None  # (wrapped loader, its worker collate, the copy that uses it)

    def __len__(self) -> int:
        return len(self.loader)

    @property
    def dataset(self):
        """The wrapped loader's dataset (items)."""
        return getattr(self.loader, "dataset", None)

    @property
    def bs(self) -> int | None:
        """The batch size of the wrapped loader."""
        return getattr(self.loader, "bs", None) or getattr(self.loader, "batch_size", None)

    # ---------------------------------------------------------------- fastai-style helpers on one loader
    def one_batch(self):
        """The first batch of this loader, on the device, after batch transforms (``dls.valid.one_batch()``)."""
        return next(iter(self))

    def decode_batch(self, b, max_n: int | None = None) -> list:
        """A batch back to decoded item tuples through the data recipe (``dls.train.decode_batch(b)``)."""
        if self.recipe is None:
            raise DataError(
                "This loader has no data recipe (plain tensors), so there is nothing to decode. "
                "Expected a loader of DataLoaders built by a DataBlock or an application."
            )
        return self.recipe.decode_batch(b, max_n)

    def unique_batch(self, n: int = 9):
        """A batch of one random item repeated ``n`` times, each copy through this loader's item and batch
        transforms (random augmentation on a training loader): what ``show_batch(unique=True)`` draws."""
        ds, collate = getattr(self.loader, "dataset", None), getattr(self.loader, "collate_fn", None)
        if ds is None or collate is None or not hasattr(ds, "__getitem__") or not len(ds):
            raise DataError(
                "Expected a loader over a non-empty map-style dataset (a torch DataLoader) for unique=True. "
                f"Received: {type(self.loader).__name__}. Fix: call show_batch() without unique=True."
            )
        i = int(torch.randint(len(ds), ()).item())
        return next(self._batches(iter([collate([ds[i] for _ in range(int(n))])]), self.after_batch))

    def show_batch(self, b=None, max_n: int = 9, unique: bool = False, **kwargs):
        """Draw a batch of this loader (default: its first) through the data recipe; ``unique=True`` draws
        one item augmented ``max_n`` times (see :meth:`unique_batch`)."""
        if self.recipe is None:
            raise DataError(
                "This loader has no data recipe that knows how to show items (plain tensors). "
                "Expected a loader of DataLoaders built by a DataBlock or an application factory."
            )
        if unique and b is None:
            b = self.unique_batch(max_n)
        return self.recipe.show_batch(self.one_batch() if b is None else b, max_n=max_n, **kwargs)

    def set_epoch(self, epoch: int) -> None:
        """Forward the epoch to the loader or its sampler (distributed shuffling)."""
        for o in (
            self.loader,
            getattr(self.loader, "sampler", None),
            getattr(self.loader, "batch_sampler", None),
        ):
            if o is not None and hasattr(o, "set_epoch"):
                o.set_epoch(epoch)
                return

    def skip(self, n_batches: int) -> None:
        """Start the next iteration at batch ``n_batches`` (cheaply when the loader supports it)."""
        if hasattr(self.loader, "skip"):
            self.loader.skip(n_batches)
        else:
            self._start_batch = n_batches

    @property
    def tfms_in_workers(self) -> bool:
        """Whether the next iteration runs the batch transforms in the DataLoader workers (see the class
        doc)."""
        return self._worker_loader() is not None

    def _worker_loader(self) -> DataLoader | None:
        """The copy of the wrapped DataLoader whose workers run the batch transforms, or ``None``."""
        dl, dev = self.loader, self.device
        if (
            self.worker_collate is None
            or self.after_batch is None
            or dev is None
            or torch.device(dev).type != "cpu"
            or not isinstance(dl, DataLoader)
            or dl.num_workers == 0
            or (_shm_free() or MIN_SHM_BYTES) < MIN_SHM_BYTES
        ):
            return None
        collate = self.worker_collate(dl.collate_fn, bool(self.train))
        if collate is None:
            return None
        w = self._workers
        if w is None or w[0] is not dl or w[1] != collate:
            w = self._workers = (dl, collate, _with_collate(dl, collate))
        return w[2]

    def __iter__(self):
        wdl = self._worker_loader()
        it = iter(self.loader if wdl is None else wdl)
        if self._start_batch:  # resuming mid-epoch: skip eagerly so RNG use happens now
            for _ in range(self._start_batch):
                next(it, None)
            self._start_batch = 0
        return self._batches(it, self.after_batch if wdl is None else None)

    def _batches(self, it, tfm):
        dev, train = self.device, self.train
        move = dev is not None and getattr(self.loader, "device", None) != dev
        nb = dev is not None and dev.type == "cuda"
        for b in it:
            if move:
                b = to_device(b, dev, non_blocking=nb)
            if tfm is not None:
                b = tfm(b, train)
            yield b


def _check_loader(dl, name: str):
    if dl is None:
        return None
    if isinstance(dl, Dataset) and not isinstance(dl, Iterable):
        raise DataError(
            f"Expected a loader for {name}. Received: a Dataset ({type(dl).__name__}). "
            "Fix: use DataLoaders.from_datasets(train_ds, valid_ds, bs=64)."
        )
    if not isinstance(dl, Iterable):
        raise DataError(
            f"Expected an iterable loader (e.g. torch DataLoader) for {name}. "
            f"Received: {type(dl).__name__}. Fix: wrap it in torch.utils.data.DataLoader(...)."
        )
    try:
        n = len(dl)
    except TypeError:
        n = None
    if n == 0:
        raise DataError(
            f"The {name} loader is empty (0 batches). Expected at least one batch. Fix: check the "
            "dataset has items and that drop_last=True is not dropping a batch smaller than bs."
        )
    return dl


class DataLoaders:
    """The loaders a Learner trains on: ``train`` (index 0), ``valid`` (index 1), and any more.

    Args:
        loaders: loaders (any iterable of batches with a length; plain ``torch.utils.data.DataLoader`` works).
        device: where batches go (default :func:`~learnkit.device.default_device`).
        recipe: the data recipe of a DataBlock or application (vocab, decoding, showing, test_dl,
            export spec); ``None`` for plain tensors and loaders.
        n_inp: how many leading batch elements are model inputs (default: recipe's, else all but the last).
        loss_func: the loss that fits this data, used when the Learner is given none.

    >>> x, y = torch.randn(100, 4), torch.randint(0, 2, (100,))
    >>> dls = DataLoaders.from_tensors((x[:80], y[:80]), (x[80:], y[80:]), bs=16, device="cpu")
    >>> len(dls.train), len(dls.valid)
    (5, 1)
    """

    def __init__(
        self, *loaders, device=None, recipe=None, n_inp: int | None = None, loss_func=None, path="."
    ):
        if recipe is not None and not isinstance(recipe, DataRecipe):
            raise DataError(
                f"Expected recipe to be a learnkit.data.recipe.DataRecipe (or None). Received: "
                f"{type(recipe).__name__}. Fix: subclass DataRecipe and implement the members your data supports."
            )
        self.recipe = recipe
        self.device = default_device(device)
        self._n_inp, self.loss_func, self.path = n_inp, loss_func, Path(path)
        self.loaders = []
        for i, dl in enumerate(loaders):
            name = ("train", "valid")[i] if i < 2 else f"loaders[{i}]"
            dl = _check_loader(dl.loader if isinstance(dl, DeviceLoader) else dl, name)
            self.loaders.append(self._wrap(dl, train=(i == 0)) if dl is not None else None)

    def _after_batch(self):
        """The recipe's batch transforms, or ``None`` when there is nothing to run (no recipe, or the default)."""
        r = self.recipe
        if r is None or type(r).after_batch is DataRecipe.after_batch:
            return None
        return r.after_batch

    def wrap(self, dl, train: bool = False) -> DeviceLoader:
        """``dl`` as these loaders serve batches: on ``self.device``, with the recipe's batch transforms
        (a :class:`DeviceLoader` is returned as it is). Use it for any extra loader (``get_preds(dl=...)``).

        >>> dls = DataLoaders.from_tensors((torch.randn(4, 2), torch.zeros(4)), device="cpu")
        >>> type(dls.wrap(TensorLoader(torch.randn(3, 2), bs=2))).__name__
        'DeviceLoader'
        """
        return dl if isinstance(dl, DeviceLoader) else self._wrap(dl, train)

    def _wrap(self, dl, train: bool) -> DeviceLoader:
        wc = self.recipe.worker_collate if self.recipe is not None else None
        return DeviceLoader(
            dl, self.device, self._after_batch(), train=train, worker_collate=wc, recipe=self.recipe
        )

    # --- access -------------------------------------------------------------------------------
    def __getitem__(self, i: int) -> DeviceLoader:
        return self.loaders[i]

    def __len__(self) -> int:
        return len(self.loaders)

    @property
    def train(self) -> DeviceLoader | None:
        """The training loader (shuffled)."""
        return self.loaders[0] if self.loaders else None

    @property
    def valid(self) -> DeviceLoader | None:
        """The validation loader."""
        return self.loaders[1] if len(self.loaders) > 1 else None

    @property
    def train_ds(self):
        """The training items."""
        return self.train.dataset if self.train is not None else None

    @property
    def valid_ds(self):
        """The validation items."""
        return self.valid.dataset if self.valid is not None else None

    @property
    def n_inp(self) -> int | None:
        """How many leading elements of a batch are model inputs (``None``: all but the last)."""
        if self._n_inp is not None:
            return self._n_inp
        return self.recipe.n_inp if self.recipe is not None else None

    @property
    def vocab(self):
        """The target vocabulary (class names) when the data has one."""
        return self.recipe.vocab if self.recipe is not None else None

    @property
    def c(self) -> int | None:
        """Number of outputs the model needs (classes, or regression targets)."""
        return self.recipe.c if self.recipe is not None else None

    @property
    def bs(self) -> int | None:
        """The training batch size."""
        dl = self.train or self.valid
        return dl.bs if dl is not None else None

    def cpu(self) -> DataLoaders:
        """Send batches to the CPU from now on."""
        return self.to("cpu")

    def cuda(self) -> DataLoaders:
        """Send batches to the (current) CUDA device from now on."""
        return self.to("cuda")

    def new(self, *loaders, device=None, path=None, **kwargs) -> DataLoaders:
        """New DataLoaders with the same recipe, device and path, over ``loaders`` (default: these loaders).

        >>> dls = DataLoaders.from_tensors((torch.randn(8, 2), torch.zeros(8)), bs=4, device="cpu")
        >>> len(dls.new().train)
        2
        """
        loaders = loaders or tuple(self.loaders)
        kw = dict(recipe=self.recipe, n_inp=self._n_inp, loss_func=self.loss_func)
        kw.update(kwargs)
        return type(self)(
            *loaders, device=device or self.device, path=self.path if path is None else path, **kw
        )

    def to(self, device) -> DataLoaders:
        """Send batches to ``device`` from now on."""
        self.device = default_device(device)
        for dl in self.loaders:
            if dl is not None:
                dl.device = self.device
        return self

    def one_batch(self, i: int = 0):
        """The first batch of loader ``i`` (0 = train), on the device, after batch transforms."""
        dl = self.loaders[i]
        if dl is None:
            raise DataError(
                f"Expected loader {i} to exist. Received: DataLoaders with {len(self.loaders)} loaders."
            )
        return next(iter(dl))

    def decode(self, batch):
        """Run the data recipe backwards on a batch (e.g. class indices back to labels)."""
        if self.recipe is None:
            return batch
        return self.recipe.decode_batch(batch)

    def show_batch(self, b=None, max_n: int = 9, unique: bool = False, **kwargs):
        """Show a few items of a batch (decoded) as the data's blocks show them; ``unique=True`` shows one
        training item augmented ``max_n`` times, as fastai's ``show_batch(unique=True)``."""
        if self.recipe is None:
            raise DataError(
                "These DataLoaders have no recipe that knows how to show items (plain tensors). "
                "Expected DataLoaders built by a DataBlock or an application factory."
            )
        if unique and b is None:
            return self.train.show_batch(max_n=max_n, unique=True, **kwargs)
        return self.recipe.show_batch(self.one_batch() if b is None else b, max_n=max_n, **kwargs)

    def test_dl(self, items, with_labels: bool = False, bs: int | None = None, **kwargs) -> DeviceLoader:
        """A loader over new ``items`` through the same pipeline as validation (for inference)."""
        if self.recipe is None:
            if isinstance(items, torch.Tensor):
                return DeviceLoader(TensorLoader(items, bs=bs or 64), self.device)
            raise DataError(
                "These DataLoaders have no data recipe, so they cannot process raw items. "
                "Expected a tensor of inputs, or DataLoaders built by a DataBlock/application."
            )
        dl = self.recipe.test_dl(items, with_labels=with_labels, bs=bs or self._bs_default(), **kwargs)
        return (
            dl
            if isinstance(dl, DeviceLoader)
            else DeviceLoader(dl, self.device, self._after_batch(), recipe=self.recipe)
        )

    def _bs_default(self) -> int:
        dl = self.valid or self.train
        return (dl.bs if dl is not None else None) or 64

    # --- constructors ---------------------------------------------------------------------------
    @classmethod
    def from_tensors(
        cls,
        train: Sequence[torch.Tensor],
        valid: Sequence[torch.Tensor] | None = None,
        bs: int = 64,
        val_bs: int | None = None,
        shuffle: bool = True,
        drop_last: bool = False,
        device=None,
        seed: int | None = None,
        **kwargs,
    ) -> DataLoaders:
        """Loaders over in-memory tensors, batched by slicing: ``train=(x, y)``, ``valid=(x_valid, y_valid)``.

        Tensors stay where they are (put them on the GPU first to skip the per-batch copy).
        """
        train, valid = (
            _as_tensors(train, "train"),
            (_as_tensors(valid, "valid") if valid is not None else None),
        )
        tdl = TensorLoader(*train, bs=bs, shuffle=shuffle, drop_last=drop_last, seed=seed)
        vdl = TensorLoader(*valid, bs=val_bs or bs * 2) if valid is not None else None
        return cls(tdl, vdl, device=device, **kwargs)

    @classmethod
    def from_datasets(
        cls,
        train_ds: Dataset,
        valid_ds: Dataset | None = None,
        bs: int = 64,
        val_bs: int | None = None,
        shuffle: bool = True,
        num_workers: int | None = None,
        drop_last: bool = False,
        pin_memory: bool | None = None,
        collate_fn=None,
        device=None,
        **kwargs,
    ) -> DataLoaders:
        """torch ``DataLoader``s over map-style datasets; workers default to :func:`default_num_workers`.

        Pinned memory is on when the device is CUDA.
        """
        device = default_device(device)
        nw = default_num_workers() if num_workers is None else num_workers
        pin = device.type == "cuda" if pin_memory is None else pin_memory
        for name, ds in (("train_ds", train_ds), ("valid_ds", valid_ds)):
            if ds is not None and hasattr(ds, "__len__") and len(ds) == 0:
                raise DataError(f"Expected a non-empty dataset. Received: {name} with 0 items.")
            if (
                ds is not None
                and isinstance(ds, Dataset)
                and not isinstance(ds, torch.utils.data.IterableDataset)
            ):
                try:
                    first = ds[0]
                except Exception:  # not indexable by 0: batching will tell
                    continue
                _check_sample(first, "item 0", name)
        common = dict(
            num_workers=nw,
            pin_memory=pin,
            collate_fn=collate_fn or CheckedCollate(),
            persistent_workers=nw > 0,
        )
        tdl = DataLoader(train_ds, batch_size=bs, shuffle=shuffle, drop_last=drop_last, **common)
        vdl = (
            DataLoader(valid_ds, batch_size=val_bs or bs * 2, shuffle=False, **common)
            if valid_ds is not None
            else None
        )
        return cls(tdl, vdl, device=device, **kwargs)

    @classmethod
    def from_dataloaders(cls, *loaders, device=None, **kwargs) -> DataLoaders:
        """Wrap existing loaders (any ``torch.utils.data.DataLoader``) as they are."""
        return cls(*loaders, device=device, **kwargs)

    def __repr__(self) -> str:
        lens = [len(dl) if dl is not None else None for dl in self.loaders]
        return f"DataLoaders(batches={lens}, device={self.device})"


def _describe_value(v) -> str:
    if isinstance(v, torch.Tensor):
        return f"tensor(shape={tuple(v.shape)}, dtype={str(v.dtype).replace('torch.', '')})"
    r = repr(v)
    return f"{type(v).__name__} {r if len(r) <= 40 else r[:37] + '...'}"


def _as_tensors(ts, name):
    if isinstance(ts, torch.Tensor):
        raise DataError(
            f"Expected a tuple of tensors for {name} such as (x, y). Received: a single tensor. "
            f"Fix: pass {name}=(x, y)."
        )
    if isinstance(ts, Mapping) or not isinstance(ts, Sequence):
        raise DataError(
            f"Expected a tuple of tensors for {name} such as (x, y). Received: {type(ts).__name__}."
        )
    out = []
    for k, t in enumerate(ts):
        try:
            out.append(torch.as_tensor(t))
        except (TypeError, ValueError, RuntimeError) as e:
            bad = _first_bad(t)
            where = f" Item {bad[0]} is {_describe_value(bad[1])}." if bad is not None else ""
            raise DataError(
                f"Expected {name}[{k}] to be a tensor, or a list/array of numbers of one shape. Received: "
                f"{type(t).__name__} of {len(t) if hasattr(t, '__len__') else '?'} items.{where} ({e}) Fix: encode "
                "labels as numbers first (e.g. CategoryBlock, or a dict label -> index) and stack inputs of equal "
                "shape; for raw items use a DataBlock."
            ) from e
    return out


def _first_bad(t):
    """(index, value) of the first element of ``t`` that is not a number or a tensor, or None."""
    if not isinstance(t, (list, tuple)):
        return None
    first = None
    for i, v in enumerate(t):
        if isinstance(v, (bool, int, float)) or (isinstance(v, torch.Tensor) and v.ndim == 0):
            continue
        if isinstance(v, (torch.Tensor, list, tuple)):
            shape = tuple(torch.as_tensor(v).shape) if not isinstance(v, torch.Tensor) else tuple(v.shape)
            first = shape if first is None else first
            if shape == first:
                continue
        return i, v
    return None


def _check_sample(s, pos: str, name: str) -> None:
    """Raise a DataError naming the item and field when a dataset sample holds ``None``."""
    fields = (
        list(s.items())
        if isinstance(s, Mapping)
        else list(enumerate(s))
        if isinstance(s, (tuple, list))
        else []
    )
    if s is None:
        raise DataError(
            f"Expected {name} to give a tuple of tensors (x, y) per item. Received: None for {pos}. Fix: make "
            "__getitem__ return the item (a forgotten `return`?), or drop the items it cannot read."
        )
    for k, v in fields:
        if v is None:
            raise DataError(
                f"Expected {name} to give tensors or numbers in every field. Received: field [{k!r}] is None for "
                f"{pos}. Fix: fill missing values (or drop those items) in the dataset's __getitem__."
            )


class CheckedCollate:
    """torch's ``default_collate``, turning its failures into a :class:`DataError` naming the sample and field.

    >>> CheckedCollate()([(torch.zeros(2), 0), (torch.ones(2), 1)])[1]
    tensor([0, 1])
    """

    def __init__(self, name: str = "the dataset"):
        self.name = name

    def __call__(self, samples):
        try:
            return default_collate(samples)
        except (TypeError, RuntimeError) as e:
            for i, s in enumerate(samples):
                _check_sample(s, f"sample {i} of the batch", self.name)
            shapes = [
                [_describe_value(v) for v in (s if isinstance(s, (tuple, list)) else [s])]
                for s in samples[:4]
            ]
            raise DataError(
                f"Could not batch the items of {self.name}: {e}. Received: samples {shapes}. Expected the same type "
                "and shape in each field. Fix: resize/pad inputs to one shape (or pass a collate_fn that pads)."
            ) from e
