"""Distributed data-parallel training on PyTorch's own engine (``torchrun`` + ``DistributedDataParallel``).

Launch the same script on every process and the Learner does the rest::

    torchrun --nproc_per_node=4 train.py            # one machine, 4 GPUs
    torchrun --nnodes=2 --nproc_per_node=8 --rdzv-endpoint=host:29500 train.py   # two machines

Under torchrun (``WORLD_SIZE`` > 1) every :class:`~learnkit.Learner` adds a :class:`DistributedTrainer`
callback by itself; ``with learn.distributed(sync_bn=True):`` says so explicitly (and is a no-op in a
single process, so the same notebook code runs anywhere). The callback

- starts the process group (NCCL for CUDA tensors, gloo for CPU ones) and puts each process on the GPU of
  its ``LOCAL_RANK``;
- wraps the model in ``DistributedDataParallel`` for the duration of each ``fit`` (``learn.model`` stays
  your module, ``learn.ddp_model`` is the wrapper while training);
- shards the training loader (every sample once per epoch across ranks, reshuffled every epoch with a
  seed common to all ranks) and the validation loader (contiguous, no padding, so each item counts once);
- reduces losses and metrics so every rank reports the numbers a single process would, and gathers
  ``get_preds`` in the original order.

``bs`` is the batch size *per process*: the global batch is ``bs * world_size``.

Rank queries work with or without an initialised process group: they read the process group when
there is one, else the ``RANK`` / ``WORLD_SIZE`` environment variables torchrun sets.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import inspect
import os
import sys
import warnings
from typing import Protocol, runtime_checkable

import torch
import torch.distributed as dist
from torch import nn

from .callbacks.core import Callback
from .data.loaders import DeviceLoader, EvalShardable, Shardable
from .device import default_device
from .exceptions import DataError, ModelError

__all__ = [
    "rank_distrib",
    "num_distrib",
    "local_rank",
    "is_distributed",
    "setup_distributed",
    "rank0_first",
    "barrier",
    "sync_metrics",
    "no_sync",
    "DistributedTrainer",
    "auto_callbacks",
    "GathersAcrossRanks",
    "all_gather_objects",
]

#: Default timeout of every collective (seconds); ``$LEARNKIT_DIST_TIMEOUT`` overrides it.
DEFAULT_TIMEOUT_S = 1800


# ----------------------------------------------------------------------------------------------- rank queries
def is_distributed() -> bool:
    """True when a process group with more than one process is initialised.

    >>> is_distributed()
    False
    """
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank_distrib() -> int:
    """This process's global rank (0 when not distributed).

    >>> rank_distrib()
    0
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", 0))


def num_distrib() -> int:
    """Number of processes (1 when not distributed).

    >>> num_distrib()
    1
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE", 1))


def local_rank() -> int:
    """This process's rank on its machine (``LOCAL_RANK``, 0 when not set).

    >>> local_rank()
    0
    """
    return int(os.environ.get("LOCAL_RANK", 0))


def _launched() -> bool:
    """True when torchrun (or an equivalent launcher) started this process as one of several."""
    return int(os.environ.get("WORLD_SIZE", 1)) > 1 and "RANK" in os.environ


def _local_cuda_index() -> int:
    n = torch.cuda.device_count()
    return int(os.environ["LOCAL_RANK"]) % n if "LOCAL_RANK" in os.environ else torch.cuda.current_device()


def _timeout() -> datetime.timedelta:
    return datetime.timedelta(seconds=float(os.environ.get("LEARNKIT_DIST_TIMEOUT", DEFAULT_TIMEOUT_S)))


def setup_distributed(
    device: str | torch.device | None = None, backend: str | None = None, timeout: float | None = None
) -> bool:
    """Initialise the default process group from torchrun's environment; returns True if this call created it.

    Does nothing (returns False) in a single process or when a process group already exists. On CUDA,
    each process takes the GPU of its ``LOCAL_RANK`` and the backend is ``cpu:gloo,cuda:nccl`` (NCCL for
    CUDA tensors, gloo for CPU ones); on CPU it is gloo. When a machine runs more processes than it has
    GPUs, GPUs are shared round-robin and gloo is used (NCCL needs one GPU per process).

    Args:
        device: the device training will use (default: :func:`~learnkit.device.default_device`).
        backend: override the backend (also ``$LEARNKIT_DIST_BACKEND``).
        timeout: seconds any collective may wait before failing (default ``$LEARNKIT_DIST_TIMEOUT`` or 1800),
            so a process that died outside torchrun's watch cannot hang the others forever.

    >>> setup_distributed()  # single process: nothing to do
    False
    """
    if not dist.is_available() or dist.is_initialized() or not _launched():
        return False

    dev = torch.device(device) if device is not None else default_device()
    backend = backend or os.environ.get("LEARNKIT_DIST_BACKEND") or None
    if dev.type == "cuda":
        torch.cuda.set_device(_local_cuda_index())
        per_node = int(os.environ.get("LOCAL_WORLD_SIZE", 1))
        if backend is None and per_node > torch.cuda.device_count():
            warnings.warn(
                f"{per_node} processes share {torch.cuda.device_count()} GPU(s) on this machine; using the "
                "gloo backend (NCCL needs one GPU per process). Fix: --nproc_per_node=<number of GPUs>."
            )
            backend = "gloo"
        backend = backend or "cpu:gloo,cuda:nccl"
    else:
        backend = backend or "gloo"
    td = datetime.timedelta(seconds=timeout) if timeout is not None else _timeout()
    dist.init_process_group(backend, timeout=td)
    return True


def _comm_device(t: torch.Tensor | None = None) -> torch.device:
    """Where to put a tensor for a collective: its own device (gloo takes CPU and CUDA tensors, a mixed
    ``cpu:gloo,cuda:nccl`` group routes each to its backend), except that a pure NCCL group needs CUDA."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return t.device if t is not None else torch.device("cpu")


def barrier() -> None:
    """Wait for every process (no-op when not distributed).

    >>> barrier()
    """
    if not is_distributed():
        return
    if dist.get_backend() == "nccl":
        dist.barrier(device_ids=[torch.cuda.current_device()])
    else:
        dist.barrier()


def rank0_first(func, *args, **kwargs):
    """Run ``func(*args, **kwargs)`` on rank 0 first, then on the other ranks; return its result.

    The usual use is a download or a cache build: rank 0 does the work while the others wait at a barrier,
    then they find the files ready. Under torchrun it starts the process group if needed; in a single
    process it is just ``func(*args, **kwargs)``.

    >>> rank0_first(sum, [1, 2, 3])
    6
    """
    if not callable(func):
        raise TypeError(
            f"Expected a function as the first argument. Received: func={func!r}. "
            "Fix: rank0_first(download, url) runs download(url) on rank 0 first."
        )
    setup_distributed()
    if not is_distributed():
        return func(*args, **kwargs)
    if rank_distrib() == 0:
        res = func(*args, **kwargs)
        barrier()
    else:
        barrier()
        res = func(*args, **kwargs)
    return res


# ----------------------------------------------------------------------------------------------- reductions
#: Set while a validation runs on whole (unsharded) data on each rank: metrics need no reduction then.
_LOCAL_PHASE = {"on": False}


def _gather_cat(t: torch.Tensor) -> torch.Tensor:
    """All-gather tensors whose first dimension differs across ranks, concatenated in rank order (on the CPU).

    Ranks holding an empty tensor may give any trailing shape or dtype: they take those of the first
    non-empty rank.
    """
    t = t.detach()
    metas = [None] * dist.get_world_size()
    dist.all_gather_object(metas, (int(t.shape[0]) if t.ndim else 1, tuple(t.shape[1:]), str(t.dtype)))
    ref = next((m for m in metas if m[0] > 0), metas[0])
    if t.ndim == 0:
        t = t.reshape(1)
    if t.shape[0] == 0:
        t = torch.empty((0,) + ref[1], dtype=getattr(torch, ref[2].split(".")[-1]))
    mx = max(m[0] for m in metas)
    if mx == 0:
        return t.cpu()
    dev = _comm_device()
    buf = torch.zeros((mx,) + tuple(t.shape[1:]), dtype=t.dtype, device=dev)
    buf[: t.shape[0]] = t.to(dev)
    outs = [torch.empty_like(buf) for _ in metas]
    dist.all_gather(outs, buf)
    return torch.cat([o[: m[0]] for o, m in zip(outs, metas)]).cpu()


def sync_metrics(metrics) -> None:
    """Reduce metric states across ranks so every rank holds the global value (no-op when not distributed).

    Each object implements ``dist_state() -> {key: (tensor, 'sum' | 'cat')}`` and ``load_dist_state``:
    ``'sum'`` states are all-reduced, ``'cat'`` states are gathered along dim 0 in rank order. Objects
    without ``dist_state`` are left alone. The Recorder calls this at the end of each phase.
    """
    if not is_distributed() or _LOCAL_PHASE["on"]:
        return
    dev = _comm_device()
    for m in metrics:
        if not hasattr(m, "dist_state"):
            continue
        state, out = m.dist_state(), {}
        for k, (t, how) in state.items():
            if how == "sum":
                orig = t.device if isinstance(t, torch.Tensor) else torch.device("cpu")
                t = torch.as_tensor(t).detach().to(dev).clone()
                dist.all_reduce(t, op=dist.ReduceOp.SUM)
                out[k] = t.to(orig)
            elif how == "cat":
                out[k] = _gather_cat(torch.as_tensor(t))
            else:
                raise ValueError(
                    f"Expected reduction 'sum' or 'cat'. Received: {how!r} for "
                    f"{type(m).__name__}.{k}. Fix: return (tensor, 'sum') or (tensor, 'cat')."
                )
        m.load_dist_state(out)


def _broadcast_tensors(tensors, src: int = 0) -> None:
    """Broadcast tensors from ``src`` in place, one flat message per (device, dtype)."""
    groups: dict = {}
    for t in tensors:
        groups.setdefault((t.device, t.dtype), []).append(t)
    for ts in groups.values():
        flat = torch.cat([t.detach().reshape(-1) for t in ts])
        flat = flat.to(_comm_device(flat))
        dist.broadcast(flat, src=src)
        i = 0
        for t in ts:
            n = t.numel()
            t.data.copy_(flat[i : i + n].view_as(t))
            i += n


def _broadcast_int(v: int, src: int = 0) -> int:
    t = torch.tensor([int(v)], dtype=torch.int64, device=_comm_device())
    dist.broadcast(t, src=src)
    return int(t.item())


def no_sync(learn):
    """Context manager: no gradient all-reduce for the forward/backward passes inside (gradient accumulation).

    Wrap the forward *and* backward of every micro-batch but the last of each accumulation window; the
    last one syncs the accumulated gradients. A no-op outside distributed training.

    >>> from torch import nn
    >>> from learnkit import DataLoaders, Learner
    >>> learn = Learner(DataLoaders.from_tensors((torch.randn(8, 2), torch.zeros(8, 1)), device="cpu"),
    ...                 nn.Linear(2, 1), loss_func=nn.MSELoss())
    >>> with no_sync(learn):
    ...     pass
    """
    ddp = getattr(learn, "ddp_model", None)
    return ddp.no_sync() if ddp is not None else contextlib.nullcontext()


# ----------------------------------------------------------------------------------------------- gathering
@runtime_checkable
class GathersAcrossRanks(Protocol):
    """A callback that collects per-rank results during validation and merges them after it.

    ``gather_across_ranks(gather)`` is called on every rank after each sharded validation;
    ``gather(obj) -> [obj_rank0, obj_rank1, ...]`` is :func:`all_gather_objects`. Implementing this
    protocol is how a callback (e.g. the one behind ``get_preds``) takes part, so this module needs to
    know no callback class.
    """

    def gather_across_ranks(self, gather) -> None: ...


def all_gather_objects(obj) -> list:
    """``[obj from rank 0, obj from rank 1, ...]`` on every rank (``[obj]`` in a single process).

    >>> all_gather_objects({"n": 3})
    [{'n': 3}]
    """
    if not is_distributed():
        return [obj]
    parts = [None] * dist.get_world_size()
    dist.all_gather_object(parts, obj)
    return parts


# ----------------------------------------------------------------------------------------------- sharding
def _chunk(n: int, world: int, rank: int) -> tuple[int, int]:
    """Bounds of rank ``rank``'s contiguous share of ``n`` items (sizes differ by at most one)."""
    return n * rank // world, n * (rank + 1) // world


def _is_dataloader(dl) -> bool:
    return isinstance(dl, torch.utils.data.DataLoader)


def _rebuild_dataloader(dl, sampler=None, batch_sampler=None):
    """A copy of torch DataLoader ``dl`` (same dataset, batch size, workers, collate, ...) with ``sampler``
    (or ``batch_sampler``)."""
    kw = dict(
        num_workers=dl.num_workers,
        collate_fn=dl.collate_fn,
        pin_memory=dl.pin_memory,
        timeout=dl.timeout,
        worker_init_fn=dl.worker_init_fn,
        multiprocessing_context=dl.multiprocessing_context,
        generator=dl.generator,
        persistent_workers=dl.persistent_workers,
    )
    if batch_sampler is not None:
        kw["batch_sampler"] = batch_sampler
    else:
        kw.update(batch_size=dl.batch_size, drop_last=dl.drop_last, sampler=sampler)
    if dl.num_workers > 0:
        kw["prefetch_factor"] = dl.prefetch_factor
    for a in ("pin_memory_device", "in_order"):
        if hasattr(dl, a):
            kw[a] = getattr(dl, a)
    try:  # keep a DataLoader subclass (e.g. a DataBlock's dl_type) when it takes DataLoader's arguments
        return type(dl)(dl.dataset, **kw)
    except TypeError:
        return torch.utils.data.DataLoader(dl.dataset, **kw)


def _unshardable(dl, why: str, phase: str = "training") -> DataError:
    method = "shard(num_replicas, rank, seed)" if phase == "training" else "shard_eval(num_replicas, rank)"
    return DataError(
        f"Expected a {phase} loader learnkit can shard across processes. Received: {type(dl).__name__} "
        f"({why}). Fix: use a TensorLoader or a torch DataLoader over a map-style dataset with a standard "
        f"sampler, give the loader (or its batch_sampler) a .{method} method (the sharding protocol in "
        "learnkit.data.loaders), or give your DataLoader a torch.utils.data.DistributedSampler yourself."
    )


def _is_standard_batching(dl) -> bool:
    return dl.batch_size is not None and type(dl.batch_sampler) is torch.utils.data.BatchSampler


def _shard_train_inner(dl, world: int, rank: int, seed: int):
    """Rank ``rank``'s share of a training loader: every sample once per epoch across ranks (padded so all
    ranks run the same number of steps), shuffled with ``seed + epoch`` when the loader shuffles."""
    if not _is_dataloader(dl) and isinstance(dl, Shardable):
        new = copy.copy(dl)
        return new.shard(world, rank, seed) or new
    if _is_dataloader(dl):
        if isinstance(dl.sampler, torch.utils.data.DistributedSampler):
            return dl  # the user sharded it already
        if isinstance(dl.dataset, torch.utils.data.IterableDataset):
            raise _unshardable(dl, "an IterableDataset; shard it inside the dataset with rank_distrib()")
        if not _is_standard_batching(dl):
            bs = dl.batch_sampler
            if isinstance(bs, Shardable):  # e.g. a sort-by-length batch sampler of an application
                new = copy.copy(bs)
                return _rebuild_dataloader(dl, batch_sampler=new.shard(world, rank, seed) or new)
            raise _unshardable(dl, f"a custom batch_sampler {type(bs).__name__} without .shard()")
        shuffle = isinstance(dl.sampler, torch.utils.data.RandomSampler)
        sampler = torch.utils.data.DistributedSampler(
            dl.dataset, num_replicas=world, rank=rank, shuffle=shuffle, seed=seed, drop_last=False
        )
        return _rebuild_dataloader(dl, sampler)
    raise _unshardable(dl, "no .shard() method")


def _shard_valid_inner(dl, world: int, rank: int):
    """Rank ``rank``'s contiguous share of an evaluation loader, without padding.

    Concatenating the shares in rank order gives back the loader's order, so gathered predictions line up
    with the dataset and every item is counted exactly once in the metrics. A loader that cannot be
    sharded so is refused (never evaluated unsharded behind the user's back).
    """
    if not _is_dataloader(dl) and isinstance(dl, EvalShardable):
        return dl.shard_eval(world, rank)
    if _is_dataloader(dl) and not isinstance(dl.dataset, torch.utils.data.IterableDataset):
        if isinstance(dl.sampler, torch.utils.data.DistributedSampler):
            raise _unshardable(
                dl,
                "a DistributedSampler pads and interleaves ranks, so gathered predictions "
                "would not line up; use a plain DataLoader for validation",
                "evaluation",
            )
        if not _is_standard_batching(dl):
            bs = dl.batch_sampler
            if isinstance(bs, EvalShardable):
                return _rebuild_dataloader(dl, batch_sampler=bs.shard_eval(world, rank))
            raise _unshardable(
                dl, f"a custom batch_sampler {type(bs).__name__} without .shard_eval()", "evaluation"
            )
        if isinstance(dl.sampler, torch.utils.data.SequentialSampler):
            order = range(len(dl.dataset))
        else:
            order = list(iter(dl.sampler))  # e.g. a shuffled loader used for get_preds(ds_idx=0)
        a, b = _chunk(len(order), world, rank)
        return _rebuild_dataloader(dl, order[a:b])
    raise _unshardable(dl, "an IterableDataset or a loader without .shard_eval()", "evaluation")


def _with_inner(dl, inner):
    """``dl`` (a DeviceLoader or a bare loader) with its wrapped loader replaced by ``inner``."""
    if isinstance(dl, DeviceLoader):
        new = copy.copy(dl)
        new.loader = inner
        return new
    return inner


def _inner(dl):
    return dl.loader if isinstance(dl, DeviceLoader) else dl


# ----------------------------------------------------------------------------------------------- SyncBatchNorm
def _to_sync_bn(model: nn.Module) -> list:
    """Swap every BatchNorm layer of ``model`` for a SyncBatchNorm sharing its parameters and buffers.

    Returns the swaps ``(parent, name, original)`` so :func:`_from_sync_bn` can put the originals back.
    """
    swaps = []
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.modules.batchnorm._BatchNorm) and not isinstance(child, nn.SyncBatchNorm):
                setattr(parent, name, nn.SyncBatchNorm.convert_sync_batchnorm(child))
                swaps.append((parent, name, child))
    return swaps


def _from_sync_bn(swaps: list) -> None:
    for parent, name, orig in reversed(swaps):
        orig.train(getattr(parent, name).training)
        setattr(parent, name, orig)


# ----------------------------------------------------------------------------------------------- the callback
#: DDP's name for "broadcast buffers from rank 0 at every forward" (renamed in recent PyTorch).
_BUFFERS_ARG = (
    "forward_sync_buffers"
    if "forward_sync_buffers" in inspect.signature(nn.parallel.DistributedDataParallel.__init__).parameters
    else "broadcast_buffers"
)


class DistributedTrainer(Callback):
    """Trains with ``DistributedDataParallel`` across the processes of a torchrun job.

    Added by the Learner by itself under torchrun; ``with learn.distributed(**kwargs):`` adds one with
    your settings for the block (replacing the automatic one), starting the process group if needed and
    closing it at the end if it started it. In a single process it does nothing.

    During ``fit``: ``learn.model`` stays your module (splitters, freezing, hooks and state dicts see the
    plain model); ``learn.ddp_model`` is the ``DistributedDataParallel`` wrapper the training forward goes
    through (use :func:`no_sync` for gradient accumulation). The wrapper is built at the first
    ``before_train`` of each ``fit`` (after every callback's ``before_fit`` set the model up: memory
    format, SyncBatchNorm, ...) and rebuilt whenever the set of trainable parameters changes, so
    ``fine_tune``'s freezing works. Validation runs the plain module on each rank's shard.

    Call ``fit``, ``validate`` and ``get_preds`` on the learner's own loaders on *every* rank (they use
    collectives); ``get_preds(dl=...)``/``predict`` on other loaders evaluate the whole loader locally and
    may run on one rank.

    Per training step: DDP all-reduces gradients (bucketed, overlapped with the backward pass) and
    broadcasts buffers from rank 0 (``broadcast_buffers``); the loss is averaged across ranks
    (``sync_loss``) so every rank logs, schedules and stops on the same number.

    Args:
        learn: the Learner (for use as a context manager: ``learn.distributed()`` passes it).
        sync_bn: convert BatchNorm layers to ``SyncBatchNorm`` during fit (batch statistics over the
            global batch; CUDA only). find_unused_parameters: for models whose forward skips some
            trainable parameters. broadcast_buffers: DDP's buffer broadcast each forward.
        sync_loss: average the training loss across ranks every batch (one scalar all-reduce).
        backend, timeout: for starting the process group (see :func:`setup_distributed`).
        ddp_kwargs: passed to ``DistributedDataParallel`` (e.g. ``gradient_as_bucket_view=True``).

    >>> from torch import nn
    >>> from learnkit import DataLoaders, Learner
    >>> x = torch.randn(64, 4); y = x.sum(1, keepdim=True)
    >>> learn = Learner(DataLoaders.from_tensors((x, y), device="cpu"), nn.Linear(4, 1), loss_func=nn.MSELoss())
    >>> with learn.distributed():  # under torchrun: DDP; here: a single process, unchanged
    ...     learn.fit(1, quiet=True)
    """

    order = -100

    def __init__(
        self,
        learn=None,
        sync_bn: bool = False,
        find_unused_parameters: bool = False,
        broadcast_buffers: bool = True,
        sync_loss: bool = True,
        backend: str | None = None,
        timeout: float | None = None,
        **ddp_kwargs,
    ):
        self._owner = learn
        self.sync_bn, self.sync_loss = sync_bn, sync_loss
        self.find_unused_parameters, self.broadcast_buffers = find_unused_parameters, broadcast_buffers
        self.backend, self.timeout, self.ddp_kwargs = backend, timeout, ddp_kwargs
        self.ddp = None
        self.seed: int | None = None
        self._on = self._in_fit = self._created_pg = self._dirty = self._gather = False
        self._resume_seed, self._replaced, self._swaps, self._sig, self._warned = None, [], [], None, False
        self._train_cache: dict = {}
        self._valid_cache: dict = {}

    # -- set-up -------------------------------------------------------------------------------------
    def setup(self, learn) -> bool:
        """Start the process group if needed and move ``learn`` to this process's device.

        Returns True if this call created the process group.
        """
        created = setup_distributed(learn.device, self.backend, self.timeout)
        if is_distributed() and learn.device.type == "cuda":
            dev = torch.device("cuda", _local_cuda_index())
            if learn.device != dev:
                learn.dls.to(dev)
                learn.model.to(dev)
        return created

    def __enter__(self):
        learn = self._owner
        if learn is None:
            raise TypeError(
                "Expected DistributedTrainer(learn) when used as a context manager. Received: learn=None. "
                "Fix: `with learn.distributed(): learn.fit(...)`."
            )
        self._created_pg = self.setup(learn)
        self._replaced = [c for c in learn.cbs if isinstance(c, DistributedTrainer)]
        learn.remove_cbs(self._replaced)
        learn.add_cb(self)
        return learn

    def __exit__(self, exc_type, exc, tb):
        learn = self._owner
        learn.remove_cb(self)
        learn.add_cbs(self._replaced)
        self._replaced = []
        if self._created_pg and exc_type is None and dist.is_initialized():
            dist.destroy_process_group()
        self._created_pg = False
        return False

    # -- checkpoint state (the shuffle seed, so a resumed run sees the same epoch order) -----------
    def state_dict(self) -> dict:
        """``{'seed': ...}``: the shuffle seed shared by all ranks."""
        return {"seed": -1 if self.seed is None else int(self.seed)}

    def load_state_dict(self, d: dict) -> None:
        """Reuse a checkpoint's shuffle seed in the next fit."""
        self._resume_seed = None if d.get("seed", -1) < 0 else int(d["seed"])

    # -- the model wrapper ----------------------------------------------------------------------------
    def _signature(self) -> tuple:
        return tuple(p.requires_grad for p in self.learn.model.parameters())

    def _wrap(self) -> None:
        learn = self.learn
        self.ddp = None
        self._sig = self._signature()
        model = learn.model
        if isinstance(model, nn.parallel.DistributedDataParallel) or not any(self._sig):
            learn.ddp_model = model if isinstance(model, nn.parallel.DistributedDataParallel) else None
            self._ddp_fwd = self._orig_fwd
            return
        dev = next(model.parameters()).device
        if dev.type == "cuda" and dist.get_backend() == "nccl" and dev.index != torch.cuda.current_device():
            raise ModelError(
                f"Expected the model on this process's GPU cuda:{torch.cuda.current_device()}. Received: "
                f"device={dev}. Fix: let learnkit place it (do not pass device=...) under torchrun."
            )
        self.ddp = nn.parallel.DistributedDataParallel(
            model,
            device_ids=[dev.index] if dev.type == "cuda" else None,
            find_unused_parameters=self.find_unused_parameters,
            **{_BUFFERS_ARG: self.broadcast_buffers},
            **self.ddp_kwargs,
        )
        learn.ddp_model = self.ddp
        self._ddp_fwd = torch.compile(self.ddp) if getattr(learn, "compiled", False) else self.ddp

    def _sync_buffers(self) -> None:
        bufs = [b for b in self.learn.model.buffers() if b.numel()]
        if bufs and self.broadcast_buffers:
            _broadcast_tensors(bufs)
        self._dirty = False

    def _shared_seed(self) -> int:
        if self._resume_seed is not None:
            seed, self._resume_seed = self._resume_seed, None
            return seed
        # every rank draws (keeping their RNG streams aligned), rank 0's draw wins
        return _broadcast_int(int(torch.randint(0, 2**31 - 1, ()).item()))

    # -- events ---------------------------------------------------------------------------------------
    def before_fit(self):
        _LOCAL_PHASE["on"] = False
        self._on = is_distributed()
        if not self._on:
            return
        learn = self.learn
        self._orig_fwd, self._orig_train = learn._fwd, (learn.dls.loaders[0] if learn.dls.loaders else None)
        self._world, self._rank = dist.get_world_size(), dist.get_rank()
        self._in_fit, self._dirty = True, False
        self.seed = self._shared_seed()
        if self._orig_train is not None:
            learn.dls.loaders[0] = self._sharded_train(self._orig_train)
        if learn.start_epoch > 0 or learn.resume_at is not None:  # resuming: count in *this* world's steps
            done = (learn.resume_at or {}).get("iter", 0)
            learn.train_iter = learn.start_epoch * len(learn.dls.train) + done
        if self.sync_bn and learn.device.type == "cpu":
            raise ModelError(
                "Expected a CUDA device for sync_bn=True (PyTorch's SyncBatchNorm runs on GPUs only). "
                "Received: device=cpu. Fix: train on GPUs, or drop sync_bn."
            )
        # the DDP wrapper is built at the first before_train, after every callback's before_fit has changed the
        # model as it needs (memory format, dtype, ...): DDP's buckets must see the final parameters
        self.ddp, self._sig, learn.ddp_model = None, None, None

    def _sharded_train(self, dl):
        inner = _inner(dl)
        key = id(inner)
        hit = self._train_cache.get(key)
        if hit is None or hit[0] is not inner:
            hit = (inner, _shard_train_inner(inner, self._world, self._rank, self.seed))
            self._train_cache = {key: hit}
        sharded = hit[1]
        if getattr(inner, "seed", None) is None and hasattr(sharded, "seed"):
            sharded.seed = self.seed  # TensorLoader: a fresh common seed each fit
        sampler = getattr(sharded, "sampler", None)
        if isinstance(sampler, torch.utils.data.DistributedSampler) and sharded is not inner:
            sampler.seed = self.seed  # a DataLoader we rebuilt: a fresh common seed each fit
        return _with_inner(dl, sharded)

    def before_epoch(self):
        _LOCAL_PHASE["on"] = False

    def before_train(self):
        _LOCAL_PHASE["on"] = False
        if not self._on:
            return
        if self.sync_bn and not self._swaps:
            self._swaps = _to_sync_bn(self.learn.model)
        if self._sig is None or self._signature() != self._sig:  # first epoch, or the trainable set changed
            self._wrap()
        self.learn._fwd = self._ddp_fwd
        if self.ddp is not None:
            self.ddp.train()
        self._dirty = True

    def after_loss(self):
        learn = self.learn
        if not (self._on and self.sync_loss and learn.training and isinstance(learn.loss, torch.Tensor)):
            return
        loss = learn.loss.detach()
        t = loss.to(_comm_device(loss), copy=True)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        learn.loss = (t / dist.get_world_size()).to(loss.device)

    def before_validate(self):
        _LOCAL_PHASE["on"] = False
        self._gather = False
        if not is_distributed():
            return
        learn = self.learn
        world, rank = dist.get_world_size(), dist.get_rank()
        if self._in_fit:
            # evaluation needs no gradient sync (and ranks may run different numbers of batches)
            learn._fwd = self._orig_fwd
            if self._dirty:
                self._sync_buffers()  # e.g. BatchNorm running stats: evaluate rank 0's, like DDP's forward would
        dl = learn.dl
        if not self._in_fit and not any(dl is o for o in learn.dls.loaders):
            _LOCAL_PHASE["on"] = True  # an ad-hoc loader (predict, test_dl): evaluated whole on this rank
            return
        inner = _inner(dl)
        hit = self._valid_cache.get(id(inner))
        if hit is None or hit[0] is not inner:
            hit = (inner, _shard_valid_inner(inner, world, rank))
            self._valid_cache[id(inner)] = hit
        learn.dl = _with_inner(dl, hit[1])
        self._gather = True

    def after_validate(self):
        if not (self._gather and is_distributed()):
            return
        for cb in self.learn.cbs:
            if isinstance(cb, GathersAcrossRanks):
                cb.gather_across_ranks(all_gather_objects)

    def after_fit(self):
        _LOCAL_PHASE["on"] = False
        if not self._on:
            return
        learn = self.learn
        exc = sys.exc_info()[1]
        try:
            if exc is None:
                if self._dirty:
                    self._sync_buffers()
                barrier()  # rank 0 has written its files (SaveModel, Checkpoint) before anyone reads them
            elif hasattr(exc, "add_note") and not getattr(exc, "_learnkit_rank_noted", False):
                exc.add_note(f"(on distributed rank {self._rank} of {self._world})")
                exc._learnkit_rank_noted = True
        finally:
            learn._fwd = self._orig_fwd
            if self._orig_train is not None:
                learn.dls.loaders[0] = self._orig_train
            _from_sync_bn(self._swaps)
            self._swaps, self.ddp, self._on, self._in_fit = [], None, False, False
            learn.ddp_model = None


def auto_callbacks(learn) -> list:
    """Callbacks the Learner adds by itself: a :class:`DistributedTrainer` when launched as one of several
    processes (torchrun's ``WORLD_SIZE`` > 1) or when a process group is already running.

    Starts the process group and moves the Learner to this process's GPU. Opt out with
    ``$LEARNKIT_DDP=0`` (e.g. to manage ``DistributedDataParallel`` yourself).

    >>> auto_callbacks(None)  # single process: nothing
    []
    """
    if os.environ.get("LEARNKIT_DDP", "1") == "0" or not (_launched() or is_distributed()):
        return []
    if isinstance(getattr(learn, "model", None), nn.parallel.DistributedDataParallel):
        return []
    cb = DistributedTrainer()
    cb.setup(learn)
    return [cb] if is_distributed() else []
