"""``DataLoaders``: the train/valid pair a Learner trains on, and ``TensorLoader`` for in-memory data.

Any iterable of batches with a length works as a loader: a ``torch.utils.data.DataLoader``, a
:class:`TensorLoader`, or a learnkit application loader. A batch is a tuple ``(x1, ..., xn, y1, ...)``
(the first ``n_inp`` elements go to the model, the rest to the loss) or a dict (the target key goes
to the loss, the rest to the model as keyword arguments).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence

import torch
from torch.utils.data import DataLoader, Dataset

from ..device import default_device, to_device
from ..exceptions import DataError

__all__ = [
    "DataLoaders",
    "TensorLoader",
    "DeviceLoader",
    "default_num_workers",
    "TARGET_KEYS",
    "MIN_SHM_BYTES",
]

#: Keys looked for, in order, as the target of a dict batch.
TARGET_KEYS = ("y", "label", "labels", "target", "targets")


def default_num_workers() -> int:
    """A sensible number of DataLoader workers for this machine: cores - 1, at most 8, and 0 on 1 core."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, min(8, n - 1))


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
        ts = self.tensors if idx is None else tuple(t[idx] for t in self.tensors)
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
    """

    def __init__(
        self,
        loader: Iterable,
        device: torch.device | None = None,
        after_batch=None,
        train: bool = False,
        worker_collate=None,
    ):
        self.loader, self.device, self.after_batch, self.train = loader, device, after_batch, train
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
        self.recipe = recipe
        self.device = default_device(device)
        self._n_inp, self.loss_func, self.path = n_inp, loss_func, path
        self.loaders = []
        for i, dl in enumerate(loaders):
            name = ("train", "valid")[i] if i < 2 else f"loaders[{i}]"
            dl = _check_loader(dl.loader if isinstance(dl, DeviceLoader) else dl, name)
            self.loaders.append(self._wrap(dl, train=(i == 0)) if dl is not None else None)

    def _wrap(self, dl, train: bool) -> DeviceLoader:
        after = getattr(self.recipe, "after_batch", None) if self.recipe is not None else None
        wc = getattr(self.recipe, "worker_collate", None) if self.recipe is not None else None
        return DeviceLoader(dl, self.device, after, train=train, worker_collate=wc)

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
        return getattr(self.recipe, "n_inp", None)

    @property
    def vocab(self):
        """The target vocabulary (class names) when the data has one."""
        return getattr(self.recipe, "vocab", None)

    @property
    def c(self) -> int | None:
        """Number of outputs the model needs (classes, or regression targets)."""
        return getattr(self.recipe, "c", None)

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
        if self.recipe is None or not hasattr(self.recipe, "decode_batch"):
            return batch
        return self.recipe.decode_batch(batch)

    def show_batch(self, b=None, max_n: int = 9, **kwargs):
        """Show a few items of a batch (decoded) as the data's blocks show them."""
        if self.recipe is None or not hasattr(self.recipe, "show_batch"):
            raise DataError(
                "These DataLoaders have no recipe that knows how to show items (plain tensors). "
                "Expected DataLoaders built by a DataBlock or an application factory."
            )
        return self.recipe.show_batch(self.one_batch() if b is None else b, max_n=max_n, **kwargs)

    def test_dl(self, items, with_labels: bool = False, bs: int | None = None, **kwargs) -> DeviceLoader:
        """A loader over new ``items`` through the same pipeline as validation (for inference)."""
        if self.recipe is None or not hasattr(self.recipe, "test_dl"):
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
            else DeviceLoader(dl, self.device, getattr(self.recipe, "after_batch", None))
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
        common = dict(num_workers=nw, pin_memory=pin, collate_fn=collate_fn, persistent_workers=nw > 0)
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
    return [torch.as_tensor(t) for t in ts]
