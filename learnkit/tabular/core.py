"""Tabular preprocessing: ``TabularPandas`` and its procs (``Categorify``, ``FillMissing``, ``Normalize``).

Procs are fitted on the training rows only and applied column by column with vectorised pandas/numpy
(no per-row Python). The user's DataFrame is never modified: the processed table holds only the model's
columns, as small integer codes (categories) and float32 (continuous values).

>>> import pandas as pd
>>> df = pd.DataFrame({"a": ["x", "y", "x", None], "b": [1.0, None, 3.0, 4.0], "t": [0, 1, 0, 1]})
>>> to = TabularPandas(df, [Categorify, FillMissing, Normalize], cat_names=["a"], cont_names=["b"],
...                    y_names="t", splits=([0, 1, 2], [3]))
>>> to.classes["a"], to.cat_names
(['#na#', 'x', 'y'], ['a', 'b_na'])
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..data.block import CategoryBlock, MultiCategoryBlock, RegressionBlock
from ..exceptions import DataError
from ..utils import suggest

__all__ = [
    "TabularPandas",
    "TabularProc",
    "Categorify",
    "FillMissing",
    "FillStrategy",
    "Normalize",
    "cont_cat_split",
    "add_datepart",
    "df_shrink",
    "NA_NAME",
    "HIGH_CARDINALITY",
]

#: the category every column keeps at index 0: missing values and values never seen in training
NA_NAME = "#na#"
#: a categorical column with more distinct training values than this (and more than half the rows) warns
HIGH_CARDINALITY = 1000


def _listify(o) -> list:
    if o is None:
        return []
    if isinstance(o, str):
        return [o]
    return list(o)


def _plain(v):
    """A numpy/pandas scalar as a plain Python value (for specs and display)."""
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, pd.Timestamp):
        return str(v)
    return v


def _check_columns(df, names: Sequence[str], what: str, at: str = "") -> None:
    have = list(df.columns) if isinstance(df, pd.DataFrame) else list(df.keys())
    missing = [n for n in names if n not in set(have)]
    if missing:
        hint = suggest(missing[0], [str(c) for c in have])
        raise DataError(
            f"Expected the table{at} to have the {what} column(s) {missing}. Received: columns "
            f"{have[:20]}{' ...' if len(have) > 20 else ''}.{hint} "
            f"Fix: add the column(s) to the table, or remove them from {what}."
        )


_INT_LIMITS = [(np.int8, 127), (np.int16, 32767), (np.int32, 2**31 - 1)]


def _code_dtype(n: int):
    for dt, top in _INT_LIMITS:
        if n < top:
            return dt
    return np.int64


# ---------------------------------------------------------------------------------------------- procs
class TabularProc:
    """Base of the tabular procs: ``setup(to, train_idx)`` fits on the training rows, ``encode(df, out)``
    writes processed columns into ``out`` (a dict of numpy arrays), ``state()``/``from_state`` for export.

    Example: ``class Clip(TabularProc): ...``, then ``TabularPandas(df, [Categorify, Clip], ...)``.
    """

    order = 0

    def setup(self, df: pd.DataFrame, train_idx: np.ndarray, to: TabularPandas) -> None:
        """Fit on the training rows ``train_idx`` of ``df``. Each proc subclass implements it."""
        raise NotImplementedError(  # abstract base: subclasses must implement it
            f"{type(self).__name__} must implement setup() (TabularProc is an abstract base)."
        )

    def encode(self, df: pd.DataFrame, out: dict, warn: bool = False) -> None:
        """Write this proc's processed columns of ``df`` into ``out``. Each proc subclass implements it."""
        raise NotImplementedError(  # abstract base: subclasses must implement it
            f"{type(self).__name__} must implement encode() (TabularProc is an abstract base)."
        )

    def state(self) -> dict:
        return {}

    @classmethod
    def from_state(cls, state: dict) -> TabularProc:
        p = cls.__new__(cls)
        p.__dict__.update(state)
        return p

    def __repr__(self) -> str:
        return type(self).__name__


class FillStrategy:
    """How :class:`FillMissing` fills a continuous column: ``median`` (default), ``mode`` or ``constant``.

    >>> FillMissing(fill_strategy=FillStrategy.mode).fill_strategy
    'mode'
    """

    median = "median"
    mode = "mode"
    constant = "constant"


class FillMissing(TabularProc):
    """Fill missing continuous values with the training rows' median (or mode, or ``fill_val``) and, when
    ``add_col``, add a ``<col>_na`` category column for each column that had missing values in training.

    A column with no missing values in training that has some at inference is filled too (with a warning).

    >>> FillMissing(fill_strategy=FillStrategy.constant, fill_val=-1.0).fill_val
    -1.0
    """

    order = 10

    def __init__(
        self, fill_strategy=FillStrategy.median, add_col: bool = True, fill_vals=None, fill_val: float = 0.0
    ):
        strategy = getattr(fill_strategy, "__name__", fill_strategy)
        if strategy not in ("median", "mode", "constant"):
            raise DataError(
                f"Expected fill_strategy to be FillStrategy.median, .mode or .constant. Received: "
                f"fill_strategy={fill_strategy!r}."
            )
        self.fill_strategy, self.add_col, self.fill_val = strategy, bool(add_col), float(fill_val)
        self.fill_vals = dict(fill_vals or {})
        self.na_dict: dict = {}
        self.na_cols: list = []

    def setup(self, df, train_idx, to):
        self.na_dict, self.na_cols = {}, []
        for c in to.cont_names:
            col = to._cont_values(df, c)[train_idx]
            miss = np.isnan(col)
            if miss.all():
                raise DataError(
                    f"Expected the continuous column {c!r} to have some values in the training rows. Received: all "
                    f"{len(col)} training values are missing. Fix: drop the column (df.drop(columns=[{c!r}])) or "
                    "fill it before building the table."
                )
            if c in self.fill_vals:
                v = float(self.fill_vals[c])
            elif self.fill_strategy == "median":
                v = float(np.median(col[~miss]))
            elif self.fill_strategy == "mode":
                v = float(pd.Series(col[~miss]).mode().iloc[0])
            else:
                v = self.fill_val
            self.na_dict[c] = v
            if miss.any() and self.add_col:
                self.na_cols.append(c)
        to._add_cats([f"{c}_na" for c in self.na_cols])

    def encode(self, df, out, warn=False):
        for c, v in self.na_dict.items():
            col = out[c]
            miss = np.isnan(col)
            if miss.any():
                if warn and c not in self.na_cols:
                    warnings.warn(
                        f"Column {c!r} has {int(miss.sum())} missing values here but none in training; "
                        f"they are filled with the training {self.fill_strategy} ({v:g}).",
                        stacklevel=4,
                    )
                col = np.where(miss, np.float32(v), col).astype(col.dtype, copy=False)
                out[c] = col
            if c in self.na_cols:
                out[f"{c}_na"] = miss.astype(np.int8) + 1  # codes: 0 '#na#', 1 False, 2 True

    def state(self):
        return {
            "fill_strategy": self.fill_strategy,
            "add_col": self.add_col,
            "fill_val": self.fill_val,
            "fill_vals": dict(self.fill_vals),
            "na_dict": dict(self.na_dict),
            "na_cols": list(self.na_cols),
        }


class Categorify(TabularProc):
    """Map each categorical column to integer codes from the training rows' categories, ``#na#`` at 0.

    Categories are sorted (a pandas ordered categorical keeps its own order); missing values and values
    never seen in training map to 0 (with a warning naming the column and the values at inference).

    >>> import pandas as pd
    >>> df = pd.DataFrame({"c": ["b", "a", "b"]})
    >>> to = TabularPandas(df, [Categorify], cat_names=["c"])
    >>> to.classes["c"], to.xs["c"].tolist()
    (['#na#', 'a', 'b'], [2, 1, 2])
    """

    order = 20

    def __init__(self):
        self.classes: dict = {}
        self._luts: dict = {}
        self._indexes: dict = {}

    def setup(self, df, train_idx, to):
        self.classes, self._luts, self._indexes = {}, {}, {}
        for c in to.cat_names:
            if c.endswith("_na") and c[:-3] in to.cont_names and c not in df.columns:
                self.classes[c] = [NA_NAME, False, True]
                continue
            s = df[c]
            if isinstance(s.dtype, pd.CategoricalDtype) and s.dtype.ordered:
                cats = list(s.dtype.categories)
            else:
                vals = (
                    pd.unique(s.iloc[train_idx].dropna())
                    if len(train_idx) < len(s)
                    else pd.unique(s.dropna())
                )
                try:
                    cats = sorted(vals)
                except TypeError:
                    cats = sorted(vals, key=str)
            if len(cats) > HIGH_CARDINALITY and len(cats) > 0.5 * len(train_idx):
                warnings.warn(
                    f"The categorical column {c!r} has {len(cats)} distinct values in {len(train_idx)} training rows, "
                    "so most categories are seen once and their embeddings cannot learn. Fix: drop it (an id), treat "
                    "it as continuous (cont_names), or group rare values.",
                    stacklevel=4,
                )
            self.classes[c] = [NA_NAME] + [_plain(v) for v in cats]

    def _codes(self, c: str, a: np.ndarray) -> np.ndarray:
        classes = self.classes[c]
        if len(a) <= 64:  # a few rows (predict): dictionary lookups beat building an index
            lut = self._luts.get(c)
            if lut is None:
                lut = self._luts[c] = {v: i for i, v in enumerate(classes) if i}
            return np.fromiter((lut.get(v, 0) for v in a), dtype=np.int64, count=len(a))
        idx = self._indexes.get(c)
        if idx is None:
            idx = self._indexes[c] = pd.Index(classes[1:])
        return idx.get_indexer(a) + 1 if len(classes) > 1 else np.zeros(len(a), dtype=np.int64)

    def encode(self, df, out, warn=False):
        for c, classes in self.classes.items():
            if c in out:  # filled in by FillMissing (the _na columns)
                continue
            s = df[c]
            a = s.to_numpy() if isinstance(s, pd.Series) else np.asarray(s)
            codes = self._codes(c, a).astype(_code_dtype(len(classes)), copy=False)
            if warn and not codes.all():
                unseen = (codes == 0) & ~pd.isna(a)
                if unseen.any():
                    bad = pd.unique(a[unseen])[:5]
                    warnings.warn(
                        f"Column {c!r} has {int(unseen.sum())} value(s) never seen in training, e.g. "
                        f"{[_plain(v) for v in bad]}; they map to {NA_NAME!r} (index 0).",
                        stacklevel=4,
                    )
            out[c] = codes

    @classmethod
    def from_state(cls, state: dict) -> Categorify:
        p = cls()
        p.classes = {k: list(v) for k, v in state["classes"].items()}
        return p

    def state(self):
        return {"classes": {k: list(v) for k, v in self.classes.items()}}


class Normalize(TabularProc):
    """Standardise continuous columns with the training rows' mean and standard deviation.

    >>> Normalize().means
    {}
    """

    order = 30

    def __init__(self):
        self.means: dict = {}
        self.stds: dict = {}

    def setup(self, df, train_idx, to):
        self.means, self.stds = {}, {}
        for c in to.cont_names:
            col = to._processed[c][train_idx].astype(np.float64)
            col = col[~np.isnan(col)]
            self.means[c] = float(col.mean()) if len(col) else 0.0
            sd = float(col.std()) if len(col) else 1.0
            self.stds[c] = sd if sd > 1e-7 else 1.0

    def encode(self, df, out, warn=False):
        for c, m in self.means.items():
            col = out[c]
            col -= np.float32(m)
            col /= np.float32(self.stds[c])

    def state(self):
        return {"means": dict(self.means), "stds": dict(self.stds)}


PROCS = {"Categorify": Categorify, "FillMissing": FillMissing, "Normalize": Normalize}


def _make_procs(procs) -> list:
    out = []
    for p in _listify(procs):
        if isinstance(p, type) and issubclass(p, TabularProc):
            p = p()
        if not isinstance(p, TabularProc):
            raise DataError(
                f"Expected procs such as [Categorify, FillMissing, Normalize]. Received: {p!r}. "
                "Fix: pass the classes (or instances) of learnkit.tabular procs."
            )
        out.append(p)
    return sorted(out, key=lambda p: p.order)


# ---------------------------------------------------------------------------------------------- the table
class TabularPandas:
    """A DataFrame preprocessed for a tabular model or a random forest, with procs fitted on the training rows.

    Args:
        df: the raw table (not modified).
        procs: e.g. ``[Categorify, FillMissing, Normalize]`` (classes or instances).
        cat_names, cont_names: categorical and continuous input columns.
        y_names: the target column(s). y_block: ``CategoryBlock``, ``RegressionBlock`` or ``MultiCategoryBlock``
            (default: regression for float targets or several targets, categories otherwise). Multi-label:
            several 0/1 columns with ``MultiCategoryBlock(encoded=True, vocab=[...])`` (``vocab`` names the
            labels, default the column names), or one column of label lists (or strings split by
            ``label_delim``) with ``MultiCategoryBlock()``; its processed table then has one 0/1 column per
            label (``.y_cols``).
        splits: ``(train_idx, valid_idx)`` positional indices (default: every row is training).
        do_setup: fit the procs now. reduce_memory: codes in the smallest int type, values in float32.
        label_delim: for a multi-label column of strings, the separator between labels (``'a;b'``).

    ``.train`` / ``.valid`` are the splits, ``.xs`` the inputs (codes and values), ``.y`` the encoded target,
    ``.new(df)`` + ``.process()`` apply the fitted procs to new rows, ``.dataloaders(bs)`` makes loaders.

    >>> import pandas as pd
    >>> df = pd.DataFrame({"a": ["x", "y"] * 5, "b": range(10), "t": [0.5, 1.5] * 5})
    >>> to = TabularPandas(df, [Categorify, Normalize], ["a"], ["b"], "t", splits=(range(8), range(8, 10)))
    >>> len(to.train), len(to.valid), to.xs.columns.tolist()
    (8, 2, ['a', 'b'])
    """

    def __init__(
        self,
        df: pd.DataFrame,
        procs=None,
        cat_names=None,
        cont_names=None,
        y_names=None,
        y_block=None,
        splits=None,
        do_setup: bool = True,
        reduce_memory: bool = True,
        label_delim: str | None = None,
    ):
        if not isinstance(df, pd.DataFrame):
            raise DataError(
                f"Expected a pandas DataFrame. Received: {type(df).__name__}. Fix: pd.read_csv(path)."
            )
        self.procs = _make_procs(procs)
        self.cat_names, self.cont_names = _listify(cat_names), _listify(cont_names)
        self.y_names = _listify(y_names)
        self.reduce_memory = reduce_memory
        _check_columns(df, self.y_names, "y_names")
        _check_columns(df, self.cat_names, "cat_names")
        _check_columns(df, self.cont_names, "cont_names")
        overlap = set(self.cat_names) & set(self.cont_names)
        if overlap:
            raise DataError(
                f"Expected each column in cat_names or cont_names, not both. Received: {sorted(overlap)} "
                "in both. Fix: keep it in one list."
            )
        self.label_delim = label_delim
        self.multi_encoded = False
        self.vocab = None
        self.y_kind = self._y_kind(df, y_block)
        self.y_cols = list(self.y_names)
        n = len(df)
        if splits is None:
            splits = (np.arange(n), np.arange(0))
        self.splits = tuple(
            np.asarray(list(s) if not isinstance(s, np.ndarray) else s, dtype=np.int64) for s in splits
        )
        self._raw = df
        self._processed: dict = {}
        self.items: pd.DataFrame | None = None
        if do_setup:
            self.setup()

    # ---------------------------------------------------------------- helpers
    def _y_kind(self, df, y_block) -> str | None:
        if not self.y_names:
            return None
        if y_block is not None:
            blk = y_block if isinstance(y_block, type) else type(y_block)
            if issubclass(blk, CategoryBlock):
                return "category"
            if issubclass(blk, RegressionBlock):
                return "regression"
            if issubclass(blk, MultiCategoryBlock):
                return self._multi_setup(y_block)
            raise DataError(
                f"Expected y_block=CategoryBlock, RegressionBlock or MultiCategoryBlock. Received: {y_block!r}."
            )
        if len(self.y_names) > 1 or all(pd.api.types.is_float_dtype(df[y].dtype) for y in self.y_names):
            return "regression"
        return "category"

    def _multi_setup(self, y_block) -> str:
        """Multi-label targets: several 0/1 columns (encoded) or one column of label lists."""
        blk = y_block if not isinstance(y_block, type) else y_block()
        if blk.add_na:
            raise DataError(
                "Expected MultiCategoryBlock without add_na for a tabular target. Received: add_na=True. "
                "Fix: list every label with MultiCategoryBlock(vocab=[...]) instead."
            )
        given = blk.vocab
        self.multi_encoded = bool(blk.encoded) or len(self.y_names) > 1
        if self.multi_encoded:
            if given is not None and len(given) != len(self.y_names):
                raise DataError(
                    f"Expected one vocab name per 0/1 target column. Received: vocab={given} for "
                    f"y_names={self.y_names}. Fix: MultiCategoryBlock(encoded=True, vocab={self.y_names})."
                )
            self.vocab = list(given) if given is not None else list(self.y_names)
        elif given is not None:
            self.vocab = list(given)
        return "multicategory"

    def _cont_values(self, df, c) -> np.ndarray:
        """Column ``c`` of ``df`` (a DataFrame or a dict of arrays) as a new float array (NaN for missing)."""
        s = df[c]
        dt = np.float32 if self.reduce_memory else np.float64
        if isinstance(s, pd.Series):
            if pd.api.types.is_numeric_dtype(s.dtype) or pd.api.types.is_bool_dtype(s.dtype):
                return s.to_numpy(dtype=dt, na_value=np.nan, copy=True)
            a = s.to_numpy()
        else:
            a = np.asarray(s)
        try:  # numbers, None/NaN, and numbers written as text
            return a.astype(dt)
        except (TypeError, ValueError):
            pass
        ser = pd.Series(a)
        conv = pd.to_numeric(ser, errors="coerce")
        bad = ser[conv.isna() & ser.notna()]
        if len(bad):
            raise DataError(
                f"Expected the continuous column {c!r} to hold numbers. Received: {len(bad)} value(s) that are "
                f"not numbers, e.g. {[_plain(v) for v in pd.unique(bad)[:5]]}. Fix: move {c!r} to cat_names, or "
                f"clean it (df[{c!r}] = pd.to_numeric(df[{c!r}], errors='coerce') turns them into missing values)."
            )
        return conv.to_numpy(dtype=dt, na_value=np.nan)

    def _add_cats(self, names) -> None:
        for n in names:
            if n not in self.cat_names:
                self.cat_names.append(n)

    @property
    def _proc_names(self) -> set:
        return {type(p).__name__ for p in self.procs}

    def _encode(self, df: pd.DataFrame, warn: bool) -> dict:
        out = {c: self._cont_values(df, c) for c in self.cont_names}
        for p in self.procs:
            p.encode(df, out, warn=warn)
        return out

    def _check_missing_conts(self, out, where: str):
        if "FillMissing" in self._proc_names:
            return
        for c in self.cont_names:
            n_miss = int(np.isnan(out[c]).sum())
            if n_miss:
                raise DataError(
                    f"Expected no missing values in the continuous column {c!r}{where}. Received: {n_miss} "
                    "missing. Fix: add FillMissing to procs (fills them and adds a _na column)."
                )

    def _encode_y(self, df: pd.DataFrame, fit: bool):
        if not self.y_names:
            return {}
        ys = {}
        for y in self.y_names:
            s = df[y]
            s = s if isinstance(s, pd.Series) else pd.Series(s)
            n_miss = int(s.isna().sum())
            if n_miss:
                rows = np.flatnonzero(s.isna().to_numpy())[:5].tolist()
                raise DataError(
                    f"Expected a target without missing values. Received: {n_miss} missing value(s) in "
                    f"{y!r} (rows {rows}{' ...' if n_miss > 5 else ''}). Fix: drop those rows "
                    f"(df = df.dropna(subset=[{y!r}]).reset_index(drop=True)) or fill them."
                )
            if self.y_kind == "multicategory":
                ys.update(self._encode_multi(y, s, fit))
            elif self.y_kind == "category":
                if fit:
                    tr = s.iloc[self.splits[0]] if len(self.splits[0]) < len(s) else s
                    if isinstance(s.dtype, pd.CategoricalDtype) and s.dtype.ordered:
                        vocab = list(s.dtype.categories)
                    else:
                        vals = pd.unique(tr)
                        try:
                            vocab = sorted(vals)
                        except TypeError:
                            vocab = sorted(vals, key=str)
                    self.vocab = [_plain(v) for v in vocab]
                codes = pd.Index(self.vocab).get_indexer(s).astype(np.int64)
                if (codes < 0).any():
                    bad = pd.unique(s[codes < 0])[:5]
                    raise DataError(
                        f"Expected target labels seen in training. Received: {[_plain(v) for v in bad]} in "
                        f"{y!r}. Fix: make sure every class appears in the training rows."
                    )
                ys[y] = codes
            else:
                ys[y] = self._cont_values(df, y).astype(np.float32)
        return ys

    def _encode_multi(self, y: str, s: pd.Series, fit: bool) -> dict:
        """A multi-label target column -> ``{processed column: int8 0/1 array}`` (vectorised)."""
        if self.multi_encoded:
            v = (
                pd.to_numeric(s, errors="coerce")
                if not pd.api.types.is_bool_dtype(s.dtype)
                else s.astype(int)
            )
            ok = v.isin([0, 1]).to_numpy()
            if not ok.all():
                bad = pd.unique(s[~ok])[:5]
                raise DataError(
                    f"Expected 0/1 values in the multi-label target column {y!r}. Received: "
                    f"{[_plain(b) for b in bad]}. Fix: one 0/1 column per label, or one column of label lists "
                    "with MultiCategoryBlock() (encoded=False)."
                )
            return {y: v.to_numpy(dtype=np.int8)}
        lists = s.reset_index(drop=True)
        if self.label_delim is not None:
            lists = lists.astype(str).str.split(self.label_delim)
        ex = lists.explode()
        ex = ex[ex.notna()]
        if len(ex) and pd.api.types.infer_dtype(ex, skipna=True) == "string":
            ex = ex.str.strip()
            ex = ex[ex != ""]
        rows = ex.index.to_numpy()
        if fit:
            if self.vocab is None:
                tr = np.zeros(len(lists), dtype=bool)
                tr[self.splits[0]] = True
                vals = pd.unique(ex[tr[rows]])
                try:
                    vocab = sorted(vals)
                except TypeError:
                    vocab = sorted(vals, key=str)
                self.vocab = [_plain(v) for v in vocab]
            taken = set(self.cat_names) | set(self.cont_names) | set(self.y_names)
            self.y_cols = [lab if lab not in taken else f"{y}_{lab}" for lab in self.vocab]
        codes = pd.Index(self.vocab).get_indexer(ex.to_numpy())
        if (codes < 0).any():
            bad = pd.unique(ex[codes < 0])[:5]
            hint = "" if self.label_delim else " (labels written as 'a;b' need label_delim=';')"
            raise DataError(
                f"Expected labels in the vocab {self.vocab[:10]}. Received: {[_plain(b) for b in bad]} in "
                f"{y!r}{hint}. Fix: make sure every label appears in the training rows, or list them all "
                "with MultiCategoryBlock(vocab=[...])."
            )
        hot = np.zeros((len(lists), len(self.vocab)), dtype=np.int8)
        hot[rows, codes] = 1
        return {c: hot[:, j] for j, c in enumerate(self.y_cols)}

    # ---------------------------------------------------------------- setup / process
    def setup(self) -> TabularPandas:
        """Fit the procs on the training rows and process the whole table."""
        df, tr = self._raw, self.splits[0]
        self._processed = {c: self._cont_values(df, c) for c in self.cont_names}
        for p in self.procs:
            p.setup(df, tr, self)
            p.encode(df, self._processed, warn=False)
        self._check_missing_conts(self._processed, " (training table)")
        self._processed.update(self._encode_y(df, fit=True))
        self._finish()
        return self

    def _finish(self):
        df = self._raw
        cols = {}
        for c in self.cat_names:
            cols[c] = self._processed[c] if c in self._processed else df[c]
        for c in self.cont_names:
            cols[c] = self._processed[c]
        for y in self.y_cols:
            cols[y] = self._processed[y] if y in self._processed else df[y]
        self.items = pd.DataFrame(cols, index=df.index, copy=False)
        self._processed = {}

    def new(self, df: pd.DataFrame) -> TabularPandas:
        """A table over new rows that shares these fitted procs; call ``.process()`` to apply them."""
        to = TabularPandas.__new__(TabularPandas)
        to.__dict__.update({k: v for k, v in self.__dict__.items() if k not in ("_raw", "items", "splits")})
        to.cat_names, to.cont_names = list(self.cat_names), list(self.cont_names)
        to._raw, to.items, to.splits = df, None, (np.arange(len(df)), np.arange(0))
        return to

    @property
    def input_names(self) -> list:
        """The raw columns the procs read (the ``_na`` columns are made, not read)."""
        made = {f"{c}_na" for c in self.cont_names}
        return [c for c in self.cat_names if c not in made] + list(self.cont_names)

    def encode_columns(self, cols, warn: bool = True, with_y: bool = True) -> dict:
        """Apply the fitted procs to ``cols`` (a DataFrame or a dict of column arrays): processed arrays by
        name, the target's too when every target column is present (and ``with_y``)."""
        _check_columns(cols, self.input_names, "input", at=" to process")
        out = self._encode(cols, warn=warn)
        self._check_missing_conts(out, "")
        keys = cols.columns if isinstance(cols, pd.DataFrame) else cols.keys()
        if with_y and self.y_names and all(y in keys for y in self.y_names):
            out.update(self._encode_y(cols, fit=False))
        return out

    def process(self) -> TabularPandas:
        """Apply the fitted procs to this table's rows (after :meth:`new`)."""
        self._processed = self.encode_columns(self._raw)
        if all(y in self._processed for y in self.y_cols):
            self._finish()
        else:
            ys, self.y_cols = self.y_cols, []
            self._finish()
            self.y_cols = ys
        return self

    # ---------------------------------------------------------------- access
    def _subset(self, idx) -> TabularPandas:
        to = TabularPandas.__new__(TabularPandas)
        to.__dict__.update(self.__dict__)
        to.items = self.items.iloc[idx]
        to.splits = (np.arange(len(idx)), np.arange(0))
        return to

    @property
    def train(self) -> TabularPandas:
        """The training rows."""
        return self._subset(self.splits[0])

    @property
    def valid(self) -> TabularPandas:
        """The validation rows."""
        return self._subset(self.splits[1])

    def __len__(self) -> int:
        return len(self.items)

    @property
    def xs(self) -> pd.DataFrame:
        """The processed inputs (category codes, then continuous values)."""
        return self.items[self.cat_names + self.cont_names]

    @property
    def y(self) -> pd.Series | pd.DataFrame:
        """The encoded target (class indices, or values); a DataFrame for several targets (and for multi-label
        targets: one 0/1 column per label)."""
        if not self.y_names:
            raise DataError(
                "Expected a table with a target. Received: y_names=None. Fix: pass y_names='column'."
            )
        if self.y_kind == "multicategory":
            return self.items[self.y_cols]
        return self.items[self.y_cols[0]] if len(self.y_cols) == 1 else self.items[self.y_cols]

    @property
    def ys(self) -> pd.DataFrame:
        return self.items[self.y_cols]

    @property
    def cats(self) -> pd.DataFrame:
        """The categorical columns (codes)."""
        return self.items[self.cat_names]

    @property
    def conts(self) -> pd.DataFrame:
        """The continuous columns (filled and normalised)."""
        return self.items[self.cont_names]

    @property
    def classes(self) -> dict:
        """Each categorical column's categories (``'#na#'`` first)."""
        cat = next((p for p in self.procs if isinstance(p, Categorify)), None)
        return dict(cat.classes) if cat is not None else {}

    @property
    def c(self) -> int | None:
        if self.y_kind in ("category", "multicategory"):
            return len(self.vocab)
        return len(self.y_names) if self.y_names else None

    def show(self, max_n: int = 10) -> pd.DataFrame:
        """The first ``max_n`` rows decoded back to categories (continuous values as processed)."""
        from .data import TabularRecipe

        return TabularRecipe.from_tabular(self).decode_frame(self.items.iloc[:max_n])

    def dataloaders(
        self,
        bs: int = 64,
        val_bs: int | None = None,
        shuffle_train: bool = True,
        device=None,
        path=".",
        drop_last: bool = True,
        seed: int | None = None,
        **kwargs,
    ):
        """:class:`~learnkit.tabular.TabularDataLoaders` over the processed tensors (held once in memory)."""
        from .data import TabularDataLoaders

        return TabularDataLoaders.from_tabular(
            self,
            bs=bs,
            val_bs=val_bs,
            shuffle_train=shuffle_train,
            device=device,
            path=path,
            drop_last=drop_last,
            seed=seed,
            **kwargs,
        )

    def __repr__(self) -> str:
        return (
            f"TabularPandas({len(self._raw)} rows, cats={self.cat_names}, conts={self.cont_names}, "
            f"y={self.y_names}, procs={self.procs})"
        )


# ---------------------------------------------------------------------------------------------- helpers
def cont_cat_split(df: pd.DataFrame, max_card: int = 20, dep_var=None) -> tuple[list, list]:
    """Split columns into ``(cont_names, cat_names)``: floats, and integers with more than ``max_card``
    distinct values, are continuous; the rest categorical. ``dep_var`` (one or several) is left out.

    >>> import pandas as pd
    >>> cont_cat_split(pd.DataFrame({"a": [1.5, 2.0], "b": ["x", "y"], "y": [0, 1]}), dep_var="y")
    (['a'], ['b'])
    """
    skip = set(_listify(dep_var))
    cont, cat = [], []
    for c in df.columns:
        if c in skip:
            continue
        dt = df[c].dtype
        if pd.api.types.is_float_dtype(dt) or (
            pd.api.types.is_integer_dtype(dt)
            and not pd.api.types.is_bool_dtype(dt)
            and df[c].nunique() > max_card
        ):
            cont.append(c)
        else:
            cat.append(c)
    return cont, cat


def add_datepart(
    df: pd.DataFrame, field_name: str, prefix: str | None = None, drop: bool = True, time: bool = False
) -> pd.DataFrame:
    """Add ``Year, Month, Week, Day, Dayofweek, Dayofyear, Is_month_end, ..., Elapsed`` columns from the date
    column ``field_name`` (in place, returned too), dropping it when ``drop``.

    >>> import pandas as pd
    >>> df = add_datepart(pd.DataFrame({"date": ["2020-01-31", "2021-06-01"]}), "date")
    >>> df["Year"].tolist(), df["Is_month_end"].tolist()
    ([2020, 2021], [True, False])
    """
    if field_name not in df.columns:
        raise DataError(
            f"Expected a date column {field_name!r}. Received: columns {list(df.columns)}."
            f"{suggest(field_name, df.columns)}"
        )
    d = pd.to_datetime(df[field_name], errors="coerce")
    prefix = (
        prefix
        if prefix is not None
        else field_name[:-4]
        if field_name.lower().endswith("date")
        else field_name
    )
    prefix = "" if prefix.lower() == "" else prefix
    parts = {
        "Year": d.dt.year,
        "Month": d.dt.month,
        "Week": d.dt.isocalendar().week.astype("float64"),
        "Day": d.dt.day,
        "Dayofweek": d.dt.day_of_week,
        "Dayofyear": d.dt.day_of_year,
        "Is_month_end": d.dt.is_month_end,
        "Is_month_start": d.dt.is_month_start,
        "Is_quarter_end": d.dt.is_quarter_end,
        "Is_quarter_start": d.dt.is_quarter_start,
        "Is_year_end": d.dt.is_year_end,
        "Is_year_start": d.dt.is_year_start,
    }
    if time:
        parts.update({"Hour": d.dt.hour, "Minute": d.dt.minute, "Second": d.dt.second})
    for k, v in parts.items():
        df[f"{prefix}{k}"] = v
    epoch = d.astype("datetime64[ns]").astype("int64").astype("float64") / 1e9
    df[f"{prefix}Elapsed"] = np.where(d.isna(), np.nan, epoch)
    if drop:
        del df[field_name]
    return df


def df_shrink(df: pd.DataFrame, skip=(), obj2cat: bool = True, int2uint: bool = False) -> pd.DataFrame:
    """A copy of ``df`` with numbers in the smallest dtype that holds them and, when ``obj2cat``, text columns
    with few distinct values as pandas categories.

    >>> import pandas as pd
    >>> df_shrink(pd.DataFrame({"a": [1, 2], "b": [1.5, 2.5]})).dtypes.tolist()
    [dtype('int8'), dtype('float32')]
    """
    out = {}
    for c in df.columns:
        s = df[c]
        if c in skip:
            out[c] = s
        elif pd.api.types.is_bool_dtype(s.dtype):
            out[c] = s
        elif pd.api.types.is_integer_dtype(s.dtype):
            down = "unsigned" if int2uint and (s.min() >= 0) else "integer"
            out[c] = pd.to_numeric(s, downcast=down)
        elif pd.api.types.is_float_dtype(s.dtype):
            out[c] = s.astype(np.float32)
        elif (
            obj2cat
            and (s.dtype == object or pd.api.types.is_string_dtype(s.dtype))
            and s.nunique() < 0.5 * len(s)
        ):
            out[c] = s.astype("category")
        else:
            out[c] = s
    return pd.DataFrame(out, index=df.index)
