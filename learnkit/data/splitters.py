"""Splitters: decide which items are for training and which for validation.

A splitter is any callable ``splitter(items) -> (train_idx, valid_idx)``; the ones here return sorted
``int64`` numpy arrays of positions in ``items``. They are picklable objects with their arguments as
attributes. Random splits are reproducible: with ``seed`` set they depend only on the seed and the
number of items (the same on every machine and run); without it they draw their seed from torch's
global generator, so :func:`learnkit.device.set_seed` fixes them too.

>>> train, valid = RandomSplitter(valid_pct=0.25, seed=42)(list(range(8)))
>>> len(train), len(valid)
(6, 2)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from ..exceptions import DataError
from ..utils import listify

__all__ = [
    "RandomSplitter",
    "TrainTestSplitter",
    "IndexSplitter",
    "GrandparentSplitter",
    "FuncSplitter",
    "MaskSplitter",
    "FileSplitter",
    "ColSplitter",
    "EndSplitter",
]


def _n_items(items) -> int:
    try:
        return len(items)
    except TypeError:
        raise DataError(
            f"Expected items with a length (a list, array or DataFrame). Received: {type(items).__name__}. "
            "Fix: make get_items return a list."
        ) from None


def _from_mask(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mask = np.asarray(mask, dtype=bool)
    return np.flatnonzero(~mask).astype(np.int64), np.flatnonzero(mask).astype(np.int64)


def _draw_seed() -> int:
    """A seed from torch's global generator (so ``set_seed`` makes seed-less splits reproducible)."""
    return int(torch.randint(0, 2**62, (1,)).item())


def _check_pct(v, name: str) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        f = float("nan")
    if not 0.0 <= f < 1.0:
        raise DataError(
            f"Expected {name} to be a fraction in [0, 1). Received: {name}={v!r}. "
            f"Fix: e.g. {name}=0.2 for 20% of the items in the validation set."
        )
    return f


class RandomSplitter:
    """A random ``valid_pct`` of the items for validation, the rest for training.

    With ``seed`` set, the split depends only on ``seed`` and the number of items (numpy's PCG64
    stream, stable across numpy versions and machines).

    >>> RandomSplitter(valid_pct=0.5, seed=0)(["a", "b", "c", "d"])[1].tolist()  # doctest: +SKIP
    [0, 3]
    """

    def __init__(self, valid_pct: float = 0.2, seed: int | None = None):
        self.valid_pct, self.seed = _check_pct(valid_pct, "valid_pct"), seed

    def __call__(self, items) -> tuple[np.ndarray, np.ndarray]:
        n = _n_items(items)
        seed = _draw_seed() if self.seed is None else int(self.seed)
        order = np.random.Generator(np.random.PCG64(seed)).random(n).argsort(kind="stable")
        cut = int(round(self.valid_pct * n))
        return np.sort(order[cut:]), np.sort(order[:cut])

    def __repr__(self) -> str:
        return f"RandomSplitter(valid_pct={self.valid_pct}, seed={self.seed})"


class TrainTestSplitter:
    """scikit-learn's ``train_test_split`` on the item positions, optionally stratified.

    ``stratify`` is a sequence with one class label per item, or a function giving an item's label
    (e.g. ``parent_label``) so every class is split in the same proportion (and each class with at
    least two items appears in training). ``random_state=None`` draws one from torch's generator.

    >>> labels = ["a", "a", "a", "a", "b", "b", "b", "b"]
    >>> tr, va = TrainTestSplitter(test_size=0.5, random_state=0, stratify=labels)(list(range(8)))
    >>> sorted(labels[i] for i in va)
    ['a', 'a', 'b', 'b']
    """

    def __init__(
        self,
        test_size: float = 0.2,
        random_state: int | None = None,
        stratify=None,
        train_size: float | None = None,
        shuffle: bool = True,
    ):
        self.test_size, self.random_state, self.stratify = test_size, random_state, stratify
        self.train_size, self.shuffle = train_size, shuffle

    def __call__(self, items) -> tuple[np.ndarray, np.ndarray]:
        from sklearn.model_selection import train_test_split

        n = _n_items(items)
        strat = self.stratify
        if callable(strat):
            strat = [strat(o) for o in items]
        if strat is not None:
            strat = np.asarray(list(strat), dtype=object).astype(str)
            if len(strat) != n:
                raise DataError(
                    f"Expected one stratify label per item. Received: {len(strat)} labels for {n} items. "
                    "Fix: pass a function such as stratify=parent_label, or a list as long as the items."
                )
        rs = _draw_seed() % (2**32) if self.random_state is None else self.random_state
        try:
            tr, va = train_test_split(
                np.arange(n),
                test_size=self.test_size,
                train_size=self.train_size,
                random_state=rs,
                shuffle=self.shuffle,
                stratify=strat,
            )
        except ValueError as e:
            raise DataError(
                f"Expected a split scikit-learn can make. Received: {n} items, test_size={self.test_size}, "
                f"stratify={'given' if strat is not None else None} ({e}). Fix: use a test_size that leaves "
                "each class at least one item in each split, or stratify=None."
            ) from e
        return np.sort(tr).astype(np.int64), np.sort(va).astype(np.int64)

    def __repr__(self) -> str:
        return f"TrainTestSplitter(test_size={self.test_size}, random_state={self.random_state})"


class IndexSplitter:
    """The items at positions ``valid_idx`` for validation, all the others for training.

    >>> [t.tolist() for t in IndexSplitter([1, 3])(list("abcde"))]
    [[0, 2, 4], [1, 3]]
    """

    def __init__(self, valid_idx: Iterable[int]):
        self.valid_idx = np.asarray(list(valid_idx) if not isinstance(valid_idx, np.ndarray) else valid_idx)

    def __call__(self, items) -> tuple[np.ndarray, np.ndarray]:
        n = _n_items(items)
        idx = self.valid_idx
        if idx.size and idx.dtype.kind not in "iu":
            raise DataError(
                f"Expected integer positions in valid_idx. Received: valid_idx of dtype {idx.dtype} "
                f"(first {idx[:3].tolist()}). Fix: pass positions in the list of items, e.g. [0, 5, 9]."
            )
        bad = idx[(idx < 0) | (idx >= n)] if idx.size else idx
        if bad.size:
            raise DataError(
                f"Expected valid_idx between 0 and {n - 1} (there are {n} items). Received: valid_idx with "
                f"{bad[:5].tolist()}. Fix: pass positions in the list of items."
            )
        mask = np.zeros(n, dtype=bool)
        mask[idx.astype(np.int64)] = True
        return _from_mask(mask)

    def __repr__(self) -> str:
        return f"IndexSplitter(valid_idx=<{len(self.valid_idx)} positions>)"


def _grandparent(o) -> str:
    return os.path.basename(os.path.dirname(os.path.dirname(os.fspath(o))))


class GrandparentSplitter:
    """Split by the folder two levels above each file: ``path/train/cat/1.jpg`` is in ``train_name``.

    Items under neither name are left out of both sets. Names may be lists (``valid_name=['val', 'test']``).

    >>> files = ["d/train/cat/1.png", "d/valid/cat/2.png", "d/train/dog/3.png"]
    >>> [t.tolist() for t in GrandparentSplitter()(files)]
    [[0, 2], [1]]
    """

    def __init__(self, train_name: str | Sequence[str] = "train", valid_name: str | Sequence[str] = "valid"):
        self.train_name, self.valid_name = train_name, valid_name

    def __call__(self, items) -> tuple[np.ndarray, np.ndarray]:
        tn, vn = set(listify(self.train_name)), set(listify(self.valid_name))
        try:
            gp = [_grandparent(o) for o in items]
        except TypeError as e:
            raise DataError(
                f"Expected file paths as items for GrandparentSplitter. Received: items of type "
                f"{type(items[0]).__name__}. Fix: use get_items=get_image_files, or another splitter."
            ) from e
        tr = np.fromiter((i for i, g in enumerate(gp) if g in tn), dtype=np.int64)
        va = np.fromiter((i for i, g in enumerate(gp) if g in vn), dtype=np.int64)
        if len(tr) == 0 or len(va) == 0:
            found = sorted(set(gp))[:10]
            raise DataError(
                f"Expected items in folders named train_name={self.train_name!r} and valid_name={self.valid_name!r} "
                f"(two levels above each file). Received: {len(tr)} training and {len(va)} validation items; the "
                f"folders two levels up are {found}. Fix: pass the folder names your data uses, e.g. "
                f"GrandparentSplitter(train_name='train', valid_name='val')."
            )
        return tr, va

    def __repr__(self) -> str:
        return f"GrandparentSplitter(train_name={self.train_name!r}, valid_name={self.valid_name!r})"


class FuncSplitter:
    """Items for which ``func(item)`` is true go to validation.

    >>> [t.tolist() for t in FuncSplitter(is_odd)(list(range(5)))]  # doctest: +SKIP
    [[0, 2, 4], [1, 3]]
    """

    def __init__(self, func: Callable):
        if not callable(func):
            raise DataError(f"Expected a function of one item. Received: func={func!r}.")
        self.func = func

    def __call__(self, items) -> tuple[np.ndarray, np.ndarray]:
        f = self.func
        return _from_mask(np.fromiter((bool(f(o)) for o in items), dtype=bool, count=_n_items(items)))

    def __repr__(self) -> str:
        return f"FuncSplitter({getattr(self.func, '__name__', self.func)!r})"


class MaskSplitter:
    """``mask[i]`` true puts item ``i`` in validation (one boolean per item).

    >>> [t.tolist() for t in MaskSplitter([False, True, False])(list("abc"))]
    [[0, 2], [1]]
    """

    def __init__(self, mask):
        self.mask = np.asarray(mask.cpu() if isinstance(mask, torch.Tensor) else mask).astype(bool)

    def __call__(self, items) -> tuple[np.ndarray, np.ndarray]:
        n = _n_items(items)
        if self.mask.ndim != 1 or len(self.mask) != n:
            raise DataError(
                f"Expected one mask value per item ({n} items). Received: mask of shape {self.mask.shape}. "
                "Fix: build the mask from the same list of items."
            )
        return _from_mask(self.mask)

    def __repr__(self) -> str:
        return f"MaskSplitter(<{int(self.mask.sum())} of {len(self.mask)} valid>)"


class FileSplitter:
    """Items whose file name (or full path) is listed in text file ``fname`` (one per line) go to validation.

    >>> FileSplitter("valid.txt")(get_image_files(path))  # doctest: +SKIP
    """

    def __init__(self, fname: str | os.PathLike):
        self.fname = Path(fname)

    def __call__(self, items) -> tuple[np.ndarray, np.ndarray]:
        try:
            names = {ln.strip() for ln in self.fname.read_text().splitlines() if ln.strip()}
        except OSError as e:
            raise DataError(
                f"Expected a readable text file listing the validation files. Received: fname={str(self.fname)!r} "
                f"({type(e).__name__}). Fix: check the path."
            ) from e

        def is_valid(o) -> bool:
            s = os.fspath(o) if isinstance(o, (str, os.PathLike)) else str(o)
            return s in names or os.path.basename(s) in names

        return _from_mask(np.fromiter((is_valid(o) for o in items), dtype=bool, count=_n_items(items)))

    def __repr__(self) -> str:
        return f"FileSplitter({str(self.fname)!r})"


_TRUE_STRINGS = {"true", "1", "yes", "y", "t", "valid", "1.0"}
_FALSE_STRINGS = {"false", "0", "no", "n", "f", "train", "0.0", ""}


def _truthy(v, col) -> bool:
    if isinstance(v, str):
        s = v.strip().lower()
        if s in _TRUE_STRINGS:
            return True
        if s in _FALSE_STRINGS:
            return False
        raise DataError(
            f"Expected True/False values in column {col!r}. Received: {v!r}. "
            "Fix: use a boolean column (True for validation rows)."
        )
    return bool(v)


class ColSplitter:
    """Rows whose column ``col`` is true go to validation (rows of a DataFrame, dicts or pandas rows).

    Strings ``'True'``/``'False'`` (from a CSV) are read as booleans.

    >>> rows = [{"x": 1, "is_valid": False}, {"x": 2, "is_valid": True}]
    >>> [t.tolist() for t in ColSplitter()(rows)]
    [[0], [1]]
    """

    def __init__(self, col: str | int = "is_valid"):
        self.col = col

    def __call__(self, items) -> tuple[np.ndarray, np.ndarray]:
        col = self.col
        if hasattr(items, "columns") and hasattr(items, "iloc"):  # a DataFrame
            if col not in items.columns and not isinstance(col, int):
                raise DataError(f"Expected a column {col!r}. Received: columns {list(items.columns)}.")
            vals = items[col] if col in items.columns else items.iloc[:, col]
            return _from_mask(np.array([_truthy(v, col) for v in vals.tolist()], dtype=bool))

        def get(o):
            try:
                if isinstance(col, int) and isinstance(o, Mapping) and col not in o:
                    return list(o.values())[col]
                return o[col]
            except (KeyError, IndexError, TypeError) as e:
                cols = list(o.keys()) if hasattr(o, "keys") else type(o).__name__
                raise DataError(
                    f"Expected every row to have a column {col!r} for ColSplitter. Received: a row with "
                    f"{cols}. Fix: ColSplitter('your_validation_column')."
                ) from e

        return _from_mask(
            np.fromiter((_truthy(get(o), col) for o in items), dtype=bool, count=_n_items(items))
        )

    def __repr__(self) -> str:
        return f"ColSplitter(col={self.col!r})"


class EndSplitter:
    """The last ``valid_pct`` of the items for validation (the first ones with ``valid_last=False``).

    >>> [t.tolist() for t in EndSplitter(0.4)(list("abcde"))]
    [[0, 1, 2], [3, 4]]
    """

    def __init__(self, valid_pct: float = 0.2, valid_last: bool = True):
        self.valid_pct, self.valid_last = _check_pct(valid_pct, "valid_pct"), valid_last

    def __call__(self, items) -> tuple[np.ndarray, np.ndarray]:
        n = _n_items(items)
        cut = int(round(self.valid_pct * n))
        idx = np.arange(n, dtype=np.int64)
        if self.valid_last:
            return idx[: n - cut], idx[n - cut :]
        return idx[cut:], idx[:cut]

    def __repr__(self) -> str:
        return f"EndSplitter(valid_pct={self.valid_pct}, valid_last={self.valid_last})"
