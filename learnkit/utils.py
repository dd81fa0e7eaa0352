"""Small shared helpers: atomic file writes, listify, close-match suggestions."""

from __future__ import annotations

import difflib
import operator
import os
import pathlib
import random
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import torch

__all__ = [
    "L",
    "LPath",
    "tensor",
    "atomic_save",
    "atomic_write_bytes",
    "listify",
    "suggest",
    "find_bs",
    "safe_load",
    "all_finite",
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


def all_finite(tensors) -> bool:
    """Whether every floating-point tensor in ``tensors`` is free of NaN and inf (one fused norm per call).

    >>> all_finite([torch.ones(2), torch.tensor([1, 2])]), all_finite([torch.tensor([1.0, float("nan")])])
    (True, False)
    """
    ts = [t.detach() for t in tensors if t.is_floating_point() or t.is_complex()]
    if not ts:
        return True
    dev = ts[0].device
    return bool(torch.stack([n.float().to(dev) for n in torch._foreach_norm(ts)]).isfinite().all())


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


# --------------------------------------------------------------------------------------------------
# The list and path types course code expects (subclasses: nothing of list or pathlib is patched)


class L(list):
    """A ``list`` with the helpers course code calls on file lists: ``sorted``, ``map``, ``filter``,
    ``attrgot``, ``itemgot``, ``unique``, ``shuffle``; indexing by a list of positions or a boolean mask.

    It *is* a list (``isinstance(files, list)``, ``files == [...]``), so anything taking a list takes it.

    >>> files = L([LPath("b.png"), LPath("a.jpg"), LPath("c.png")])
    >>> files.sorted().attrgot("name")
    (#3) ['a.jpg', 'b.png', 'c.png']
    >>> files.filter(lambda f: f.suffix == ".png").map(str)
    (#2) ['b.png', 'c.png']
    >>> L([10, 20, 30])[[0, 2]]
    (#2) [10, 30]
    """

    def __init__(self, items=None):
        super().__init__(listify(items))

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return L(super().__getitem__(idx))
        if isinstance(idx, (list, tuple, torch.Tensor)) or (
            hasattr(idx, "__array__") and not isinstance(idx, int)
        ):
            idx = idx.tolist() if hasattr(idx, "tolist") else list(idx)
            if not isinstance(idx, list):  # a 0-d tensor or array: one position
                return super().__getitem__(int(idx))
            if idx and all(isinstance(i, bool) for i in idx):
                if len(idx) != len(self):
                    from .exceptions import DataError

                    raise DataError(
                        f"Expected a boolean mask of length {len(self)}. Received: a mask of length {len(idx)}. "
                        "Fix: build the mask from this list, e.g. [f.suffix == '.png' for f in files]."
                    )
                return L(o for o, keep in zip(self, idx, strict=True) if keep)
            return L(super(L, self).__getitem__(int(i)) for i in idx)
        return super().__getitem__(idx)

    def __add__(self, other):
        return L(list(self) + list(other))

    def __repr__(self) -> str:
        shown = ", ".join(repr(o) for o in self[:10])
        return f"(#{len(self)}) [{shown}{', ...' if len(self) > 10 else ''}]"

    def sorted(self, key=None, reverse: bool = False) -> L:
        """A sorted copy; ``key`` may be a function, an attribute name or an index."""
        if isinstance(key, str):
            key = operator.attrgetter(key)
        elif isinstance(key, int):
            key = operator.itemgetter(key)
        return L(sorted(self, key=key, reverse=reverse))

    def map(self, f, *args, **kwargs) -> L:
        """``L(f(o, *args, **kwargs) for o in self)``, e.g. ``failed.map(Path.unlink)``."""
        return L(f(o, *args, **kwargs) for o in self)

    def filter(self, f, negate: bool = False) -> L:
        """The items for which ``f(o)`` is true (false with ``negate=True``)."""
        return L(o for o in self if bool(f(o)) != negate)

    def attrgot(self, name: str, default=None) -> L:
        """Attribute ``name`` of each item (``default`` where it has none); dict items are read by key."""
        return L(o.get(name, default) if isinstance(o, dict) else getattr(o, name, default) for o in self)

    def itemgot(self, *idxs) -> L:
        """``o[i]`` of each item (several indices go deeper: ``itemgot(0, 1)`` is ``o[0][1]``)."""
        out = self
        for i in idxs:
            out = L(o[i] for o in out)
        return out

    def unique(self) -> L:
        """The items without repeats, in first-seen order."""
        return L(dict.fromkeys(self))

    def shuffle(self, seed: int | None = None) -> L:
        """A shuffled copy (``seed`` for a reproducible order)."""
        out = list(self)
        random.Random(seed).shuffle(out)
        return L(out)

    def concat(self) -> L:
        """The items of each item, one after the other (a list of lists flattened one level)."""
        return L(x for o in self for x in o)


class LPath(type(pathlib.Path())):
    """A ``pathlib.Path`` with ``ls()``: what :func:`~learnkit.data.external.untar_data` and the file
    getters return. Every path derived from it (``/``, ``.parent``) is one too.

    >>> p = LPath("data")
    >>> isinstance(p, pathlib.Path), isinstance(p / "train", LPath)
    (True, True)
    """

    def ls(self, n_max: int | None = None, file_type: str | None = None, file_exts=None) -> L:
        """The entries of this folder, sorted by name, as an :class:`L` of paths.

        ``file_exts`` keeps names with those extensions; ``file_type`` keeps names whose MIME type starts
        with it (e.g. ``'image'``); ``n_max`` keeps at most that many.
        """
        import mimetypes

        if not self.is_dir():
            from .exceptions import DataError

            raise DataError(
                f"Expected a folder to list. Received: {str(self)!r} "
                f"({'a file' if self.exists() else 'no such folder'}). Fix: check the path."
            )
        out = sorted(self.iterdir())
        if file_exts is not None:
            exts = {e.lower() if e.startswith(".") else "." + e.lower() for e in listify(file_exts)}
            out = [p for p in out if p.suffix.lower() in exts]
        if file_type is not None:
            out = [p for p in out if (mimetypes.guess_type(p.name)[0] or "").startswith(file_type)]
        return L(out[:n_max] if n_max is not None else out)

    def __repr__(self) -> str:
        return f"Path({str(self)!r})"


def tensor(x, *rest, **kwargs) -> torch.Tensor:
    """``x`` as a tensor: a tensor, a number, a (nested) list, a numpy array or a PIL image (``HWC`` uint8
    pixels); ``tensor(1, 2, 3)`` is ``tensor([1, 2, 3])``. Keyword arguments go to ``torch.as_tensor``.

    >>> tensor([1, 2, 3])
    tensor([1, 2, 3])
    >>> tensor(1, 2).tolist()
    [1, 2]
    """
    if rest:
        x = [x, *rest]
    if isinstance(x, torch.Tensor):
        return x if not kwargs else x.to(**kwargs)
    if hasattr(x, "__array_interface__") or hasattr(x, "__array__"):  # numpy arrays, PIL images
        import numpy as np

        return torch.as_tensor(np.array(x), **kwargs)
    if isinstance(x, (list, tuple)) and x and all(isinstance(o, torch.Tensor) for o in x):
        return torch.stack(list(x))
    return torch.as_tensor(x, **kwargs)
