"""Small shared helpers: atomic file writes, listify, close-match suggestions."""

from __future__ import annotations

import difflib
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import torch

__all__ = [
    "atomic_save",
    "atomic_write_bytes",
    "listify",
    "suggest",
    "find_bs",
    "safe_load",
    "owner_tag",
    "is_stale",
    "remove_stale",
    "fsync_dir",
    "glob_escape",
]

STALE_AFTER = 3600.0
"""Seconds after its last change that a temp file or folder whose owner cannot be checked counts as stale."""

_TAG = re.compile(r"[.-]lk-([A-Za-z0-9]+)-(\d+)[.-]")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:40] or "host"


def owner_tag() -> str:
    """``'lk-<host>-<pid>'``: put in temp names so a later run can tell a dead writer's leftovers from a live one's.

    >>> owner_tag().startswith("lk-")
    True
    """
    return f"lk-{_host()}-{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists (owned by someone else) or cannot tell: keep it
    return True


def is_stale(path: str | os.PathLike, max_age: float = STALE_AFTER, now: float | None = None) -> bool:
    """Whether a temp file/folder left by an interrupted write can be removed safely.

    Stale when its name carries an :func:`owner_tag` of this host whose process is gone, or when it has
    not changed for ``max_age`` seconds (names without a tag, or written from another host). A file of a
    live writer on this host is never stale.
    """
    path = Path(path)
    m = _TAG.search(path.name)
    if m is not None and m.group(1) == _host():
        pid = int(m.group(2))
        if pid == os.getpid() or _pid_alive(pid):
            return False
        return True
    try:
        age = (time.time() if now is None else now) - path.lstat().st_mtime
    except FileNotFoundError:
        return False
    return age > max_age


def remove_stale(folder: str | os.PathLike, pattern: str, max_age: float = STALE_AFTER) -> list[Path]:
    """Remove the entries of ``folder`` matching ``pattern`` (a glob) that :func:`is_stale` says are stale.

    Returns what was removed. Errors (a concurrent cleaner got there first) are ignored.
    """
    removed = []
    try:
        entries = list(Path(folder).glob(pattern))
    except OSError:
        return removed
    for p in entries:
        if not is_stale(p, max_age):
            continue
        try:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
            removed.append(p)
        except OSError:
            pass
    return removed


def fsync_dir(folder: str | os.PathLike) -> None:
    """fsync a folder so a rename inside it survives a power loss (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _atomic_write(path: str | os.PathLike, write) -> Path:
    """Call ``write(f)`` on a temp file beside ``path``, fsync, ``os.replace`` it into place, fsync the folder.

    Temp files of earlier interrupted writes of ``path`` (their writer killed) are removed first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path.parent, f".{glob_escape(path.name)}.*.tmp")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{owner_tag()}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def glob_escape(name: str) -> str:
    """``name`` with glob metacharacters escaped (``[`` -> ``[[]``, ...)."""
    return re.sub(r"([*?\[])", r"[\1]", name)


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
        raise CheckpointError(
            f"No file at {str(path)!r}. Expected a file written by learnkit. Check the path."
        )
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
