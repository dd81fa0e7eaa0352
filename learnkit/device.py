"""Device selection, moving batches, seeding and precision helpers."""

from __future__ import annotations

import os
import random
from collections.abc import Mapping

import numpy as np
import torch

__all__ = [
    "default_device",
    "to_device",
    "to_cpu",
    "set_seed",
    "get_rng_state",
    "set_rng_state",
    "autocast_dtype",
]


def default_device(use: str | torch.device | None = None) -> torch.device:
    """The device learnkit trains on: ``use`` if given, else ``$LEARNKIT_DEVICE``, else CUDA, MPS, CPU.

    >>> default_device("cpu")
    device(type='cpu')
    """
    if use is None:
        use = os.environ.get("LEARNKIT_DEVICE") or None
    if use is not None:
        dev = torch.device(use)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(
                f"Device {str(dev)!r} was requested but CUDA is not available on this machine. "
                "Expected one of: 'cpu', or 'cuda' on a machine with a GPU. "
                "Fix: pass device='cpu' or unset LEARNKIT_DEVICE."
            )
        if dev.type == "cuda" and dev.index is None:
            dev = torch.device("cuda", torch.cuda.current_device())
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def to_device(b, device: torch.device | str | None = None, non_blocking: bool = True):
    """Move a batch (tensor, or nested tuple/list/dict of tensors) to ``device``; other objects pass through.

    Example: ``to_device((torch.zeros(2), {'y': torch.ones(2)}), 'cpu')`` -> the same nesting on the CPU.
    """
    if device is None:
        device = default_device()
    if isinstance(b, torch.Tensor):
        return b.to(device, non_blocking=non_blocking)
    if isinstance(b, Mapping):
        return (
            type(b)({k: to_device(v, device, non_blocking) for k, v in b.items()})
            if type(b) is dict
            else {k: to_device(v, device, non_blocking) for k, v in b.items()}
        )
    if isinstance(b, tuple) and hasattr(b, "_fields"):  # namedtuple
        return type(b)(*(to_device(o, device, non_blocking) for o in b))
    if isinstance(b, (list, tuple)):
        return type(b)(to_device(o, device, non_blocking) for o in b)
    return b


def to_cpu(b):
    """Move a (nested) batch to the CPU, detached."""
    if isinstance(b, torch.Tensor):
        return b.detach().cpu()
    if isinstance(b, Mapping):
        return {k: to_cpu(v) for k, v in b.items()}
    if isinstance(b, (list, tuple)):
        return type(b)(to_cpu(o) for o in b)
    return b


def set_seed(seed: int, reproducible: bool = False) -> None:
    """Seed Python, NumPy and PyTorch (all devices).

    With ``reproducible=True`` PyTorch also uses deterministic algorithms (cuDNN benchmark off),
    so that two runs on the same machine give bitwise identical weights.

    >>> set_seed(42)
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if reproducible:
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)


def get_rng_state() -> dict:
    """All random number generator states (python, numpy, torch, cuda) as plain data and tensors."""
    np_state = np.random.get_state()
    state = {
        "python": _py_state_to_plain(random.getstate()),
        "numpy": {
            "key": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore the states saved by :func:`get_rng_state`."""
    random.setstate(_plain_to_py_state(state["python"]))
    n = state["numpy"]
    np.random.set_state(
        ("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _py_state_to_plain(st):
    version, internal, gauss = st
    return {"version": version, "internal": torch.tensor(internal, dtype=torch.int64), "gauss": gauss}


def _plain_to_py_state(d):
    return (d["version"], tuple(int(x) for x in d["internal"].tolist()), d["gauss"])


def autocast_dtype(device: torch.device, dtype: str | torch.dtype | None = None) -> torch.dtype:
    """The autocast dtype for ``device``: fp16 on CUDA, bf16 on CPU, unless ``dtype`` says otherwise."""
    if dtype is not None:
        if isinstance(dtype, str):
            names = {
                "fp16": torch.float16,
                "float16": torch.float16,
                "bf16": torch.bfloat16,
                "bfloat16": torch.bfloat16,
            }
            if dtype not in names:
                raise ValueError(f"Expected dtype to be one of {sorted(names)}. Received: dtype={dtype!r}")
            return names[dtype]
        return dtype
    return torch.float16 if torch.device(device).type == "cuda" else torch.bfloat16
