"""Distributed data-parallel helpers (PyTorch's own engine under torchrun).

Rank queries work with or without an initialised process group: they read the process group when
there is one, else the ``RANK`` / ``WORLD_SIZE`` environment variables torchrun sets.
"""

from __future__ import annotations

import functools
import os

import torch
import torch.distributed as dist

__all__ = ["rank_distrib", "num_distrib", "local_rank", "is_distributed", "rank0_first", "sync_metrics", "barrier"]


def is_distributed() -> bool:
    """True when a process group with more than one process is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank_distrib() -> int:
    """This process's global rank (0 when not distributed)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", 0))


def num_distrib() -> int:
    """Number of processes (1 when not distributed)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE", 1))


def local_rank() -> int:
    """This process's rank on its machine (``LOCAL_RANK``)."""
    return int(os.environ.get("LOCAL_RANK", 0))


def barrier() -> None:
    """Wait for every process (no-op when not distributed)."""
    if is_distributed():
        dist.barrier()


def rank0_first(f=None):
    """Run ``f`` on rank 0 first, then on the other ranks (e.g. download once, then read from the cache).

    Usable as ``rank0_first(func)`` (returns the result) or as a decorator ``@rank0_first``.
    """

    def _run(*args, **kwargs):
        if not is_distributed():
            return f(*args, **kwargs)
        if rank_distrib() == 0:
            res = f(*args, **kwargs)
            dist.barrier()
        else:
            dist.barrier()
            res = f(*args, **kwargs)
        return res

    if f is None:
        raise TypeError("Expected a function. Received: f=None. Fix: rank0_first(download) or @rank0_first.")
    functools.update_wrapper(_run, f)
    return _run() if not _takes_args(f) else _run


def _takes_args(f) -> bool:
    import inspect

    try:
        return any(p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                   for p in inspect.signature(f).parameters.values())
    except (TypeError, ValueError):
        return False


def _gather_cat(t: torch.Tensor) -> torch.Tensor:
    """All-gather tensors whose first dimension differs across ranks, concatenated in rank order."""
    dev = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    t = t.to(dev)
    n = torch.tensor([t.shape[0]], device=dev)
    sizes = [torch.zeros_like(n) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, n)
    mx = int(max(s.item() for s in sizes))
    pad = torch.zeros((mx - t.shape[0],) + tuple(t.shape[1:]), dtype=t.dtype, device=dev)
    buf = torch.cat([t, pad])
    outs = [torch.empty_like(buf) for _ in sizes]
    dist.all_gather(outs, buf)
    return torch.cat([o[: int(s.item())] for o, s in zip(outs, sizes)]).cpu()


def sync_metrics(metrics) -> None:
    """Reduce metric states across ranks so every rank holds the global value (no-op when not distributed).

    Each object implements ``dist_state() -> {key: (tensor, 'sum' | 'cat')}`` and ``load_dist_state``.
    """
    if not is_distributed():
        return
    dev = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    for m in metrics:
        if not hasattr(m, "dist_state"):
            continue
        state, out = m.dist_state(), {}
        for k, (t, how) in state.items():
            if how == "sum":
                t = t.detach().to(dev).clone()
                dist.all_reduce(t, op=dist.ReduceOp.SUM)
                out[k] = t.cpu()
            elif how == "cat":
                out[k] = _gather_cat(t.detach())
            else:
                raise ValueError(f"Expected reduction 'sum' or 'cat'. Received: {how!r} for {type(m).__name__}.{k}.")
        m.load_dist_state(out)


def auto_callbacks(learn) -> list:
    """Callbacks the Learner adds by itself: DDP training when launched by torchrun (``WORLD_SIZE`` > 1)."""
    return []
