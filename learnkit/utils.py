"""Small shared helpers: atomic file writes, listify, close-match suggestions."""

from __future__ import annotations

import difflib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

import torch

__all__ = ["atomic_save", "atomic_write_bytes", "listify", "suggest", "find_bs", "safe_load"]


def _atomic_write(path: str | os.PathLike, write) -> Path:
    """Call ``write(f)`` on a temp file beside ``path``, fsync, then ``os.replace`` it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def atomic_save(obj, path: str | os.PathLike) -> Path:
    """``torch.save(obj, path)`` atomically: write a temp file beside ``path``, fsync, then ``os.replace``.

    An interruption leaves either the old file or the new one, never a half-written file.
    """
    return _atomic_write(path, lambda f: torch.save(obj, f))


def atomic_write_bytes(data: bytes, path: str | os.PathLike) -> Path:
    """Write ``data`` to ``path`` atomically (temp file + rename)."""
    return _atomic_write(path, lambda f: f.write(data))


def safe_load(path: str | os.PathLike, map_location="cpu"):
    """``torch.load(path, weights_only=True)``: tensors and plain data only, nothing executed.

    Raises :class:`~learnkit.exceptions.UnsafeFileError` when the file holds pickled objects and
    :class:`~learnkit.exceptions.CheckpointError` when it is missing, truncated or corrupted.
    """
    from .exceptions import CheckpointError, UnsafeFileError

    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"No file at {str(path)!r}. Expected a file written by learnkit. Check the path.")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises UnpicklingError for refused globals, RuntimeError for corrupt zips
        msg = str(e)
        if "weights_only" in msg or "Unsupported global" in msg or "GLOBAL" in msg:
            raise UnsafeFileError(
                f"{str(path)!r} contains pickled Python objects, which could run code when loaded, so learnkit "
                "refused to load it. Expected a file of tensors and plain data (what learnkit writes). "
                "Fix: re-export it with learnkit, or, only if you trust its author, pass allow_pickle=True."
            ) from e
        raise CheckpointError(
            f"Could not read {str(path)!r}: the file is truncated or corrupted ({type(e).__name__}: {msg[:200]}). "
            "Expected a complete file written by learnkit. Fix: use an earlier checkpoint or save again."
        ) from e


def listify(o) -> list:
    """``None`` -> ``[]``, a str/tensor/single object -> ``[o]``, any other iterable -> ``list(o)``."""
    if o is None:
        return []
    if isinstance(o, (str, bytes, torch.Tensor, dict)) or not isinstance(o, Iterable):
        return [o]
    return list(o)


def suggest(name: str, choices: Iterable[str], n: int = 3) -> str:
    """A "Did you mean ...?" sentence for ``name`` among ``choices`` (empty when nothing is close)."""
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=n, cutoff=0.5)
    return f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""


def find_bs(b) -> int:
    """The batch size of a (nested) batch: the first dimension of its first tensor."""
    if isinstance(b, torch.Tensor):
        return b.shape[0] if b.ndim else 1
    if isinstance(b, dict):
        return find_bs(next(iter(b.values())))
    if isinstance(b, (list, tuple)) and len(b):
        return find_bs(b[0])
    return 0
