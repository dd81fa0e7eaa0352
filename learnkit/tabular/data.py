"""Tabular loaders: ``TabularDataLoaders`` over preprocessed tensors, and the ``TabularRecipe`` (``dls.recipe``).

A batch is ``(x_cat, x_cont, y)``: index slices of tensors built once from the processed table (a
:class:`~learnkit.data.loaders.TensorLoader`, one true permutation per epoch), so no pandas runs per batch.
The recipe carries the fitted procs' state, so ``test_dl``, ``predict`` and a loaded export process raw
rows exactly as training did.

>>> import pandas as pd
>>> df = pd.DataFrame({"a": ["x", "y"] * 20, "b": [float(i) for i in range(40)], "t": ["p", "q"] * 20})
>>> dls = TabularDataLoaders.from_df(df, y_names="t", cat_names=["a"], cont_names=["b"], bs=8,
...                                  valid_idx=list(range(32, 40)), device="cpu")
>>> x_cat, x_cont, y = dls.one_batch()
>>> x_cat.shape, x_cont.shape, y.shape
(torch.Size([8, 1]), torch.Size([8, 1]), torch.Size([8]))
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..data.loaders import DataLoaders, TensorLoader
from ..data.recipe import DataRecipe
from ..exceptions import DataError
from ..export import register_recipe
from ..losses import BCEWithLogitsLossFlat, CrossEntropyLossFlat, MSELossFlat
from ..metrics import accuracy_multi
from .core import PROCS, Categorify, FillMissing, Normalize, TabularPandas, cont_cat_split

__all__ = ["TabularDataLoaders", "TabularRecipe", "tabular_tensors"]


def _tensors(cols, n: int, cat_names, cont_names, y_names, y_kind, with_y: bool) -> tuple:
    def arr(c):
        v = cols[c]
        return v.to_numpy() if isinstance(v, pd.Series) else v

    x_cat = np.empty((n, len(cat_names)), dtype=np.int64)
    for j, c in enumerate(cat_names):
        a = arr(c)
        if a.dtype.kind not in "iu":
            raise DataError(
                f"Expected the categorical column {c!r} as integer codes for the model. Received: dtype "
                f"{a.dtype}. Fix: add Categorify to procs."
            )
        x_cat[:, j] = a
    x_cont = np.empty((n, len(cont_names)), dtype=np.float32)
    for j, c in enumerate(cont_names):
        x_cont[:, j] = arr(c)
    out = [torch.from_numpy(x_cat), torch.from_numpy(x_cont)]
    if with_y and y_names:
        if y_kind == "multicategory":
            y = np.empty((n, len(y_names)), dtype=np.float32)
            for j, c in enumerate(y_names):
                y[:, j] = arr(c)
            out.append(torch.from_numpy(y))
        elif y_kind == "category":
            out.append(torch.from_numpy(np.array(arr(y_names[0]), dtype=np.int64)))
        elif len(y_names) == 1:
            out.append(torch.from_numpy(np.array(arr(y_names[0]), dtype=np.float32)))
        else:
            out.append(torch.from_numpy(np.stack([np.asarray(arr(y), dtype=np.float32) for y in y_names], 1)))
    return tuple(out)


def tabular_tensors(to: TabularPandas, with_y: bool = True) -> tuple:
    """``(x_cat int64, x_cont float32[, y])`` tensors of a processed table (one copy each, no per-row Python).

    Example: ``x_cat, x_cont, y = tabular_tensors(to.train)``.
    """
    return _tensors(to.items, len(to.items), to.cat_names, to.cont_names, to.y_cols, to.y_kind, with_y)


def _as_columns(items):
    """What users pass for inference as a DataFrame or a dict of column arrays: a DataFrame, a CSV path, a
    row (Series/dict), or a list of rows."""
    if isinstance(items, pd.DataFrame):
        return items
    if isinstance(items, (str, os.PathLike)):
        p = Path(items)
        if not p.is_file():
            raise DataError(f"Expected a CSV file. Received: {str(p)!r}, which does not exist.")
        return pd.read_csv(p, skipinitialspace=True)
    if isinstance(items, (pd.Series, Mapping)):
        items = [items]
    if isinstance(items, (list, tuple)) and items:
        if all(isinstance(o, pd.DataFrame) for o in items):
            return pd.concat(items, ignore_index=True)
        if all(isinstance(o, (pd.Series, Mapping)) for o in items):
            rows = [
                dict(zip(o.index, o.to_numpy(dtype=object))) if isinstance(o, pd.Series) else o for o in items
            ]
            if len(rows) > 64:
                return pd.DataFrame(rows)
            keys = list(rows[0])
            return {k: np.array([r.get(k) for r in rows], dtype=object) for k in keys}
    raise DataError(
        f"Expected rows as a DataFrame, a CSV path, a Series/dict row, or a list of them. Received: "
        f"{type(items).__name__}. Fix: learn.predict(df.iloc[0]) or dls.test_dl(df)."
    )


def _n_rows(cols) -> int:
    return len(cols) if isinstance(cols, pd.DataFrame) else len(next(iter(cols.values()), ()))


class TabularRecipe(DataRecipe):
    """The tabular data recipe: column names, the fitted procs' state and the target's encoding.

    Used by ``dls.test_dl(df)``, ``learn.predict(row)``, ``show_batch``/``show_results`` and the export.

    >>> import pandas as pd
    >>> to = TabularPandas(pd.DataFrame({"a": ["x", "y"], "t": [0, 1]}), [Categorify], ["a"], y_names="t")
    >>> r = TabularRecipe.from_tabular(to)
    >>> r.spec()["cat_names"], r.c, r.vocab
    (['a'], 2, [0, 1])
    """

    kind = "tabular"
    n_inp = 2

    def __init__(self, template: TabularPandas):
        self.to = template

    @classmethod
    def from_tabular(cls, to: TabularPandas) -> TabularRecipe:
        tmpl = to.new(to._raw.iloc[:0])
        return cls(tmpl)

    # ---------------------------------------------------------------- what the target implies
    @property
    def cat_names(self) -> list:
        return self.to.cat_names

    @property
    def cont_names(self) -> list:
        return self.to.cont_names

    @property
    def y_names(self) -> list:
        return self.to.y_names

    @property
    def y_cols(self) -> list:
        """The processed target columns (``y_names``, or one 0/1 column per label for a list-of-labels target)."""
        return self.to.y_cols

    @property
    def is_multi(self) -> bool:
        """A multi-label target (``MultiCategoryBlock``)."""
        return self.to.y_kind == "multicategory"

    @property
    def classes(self) -> dict:
        return self.to.classes

    @property
    def vocab(self):
        return self.to.vocab

    @property
    def c(self):
        return self.to.c

    @property
    def loss_func(self):
        if self.to.y_kind == "category":
            return CrossEntropyLossFlat()
        if self.to.y_kind == "regression":
            return MSELossFlat()
        if self.is_multi:
            return BCEWithLogitsLossFlat()
        return None

    def default_metrics(self) -> list:
        """``[accuracy_multi]`` for a multi-label target (what ``tabular_learner`` uses when given no metrics)."""
        return [accuracy_multi] if self.is_multi else []

    # ---------------------------------------------------------------- inference
    def process(self, items) -> TabularPandas:
        """Raw rows -> a processed :class:`TabularPandas` with the fitted procs (vectorised)."""
        cols = _as_columns(items)
        return self.to.new(
            cols if isinstance(cols, pd.DataFrame) else pd.DataFrame(cols).infer_objects()
        ).process()

    def encode(self, items, with_y: bool = True) -> tuple[dict, int]:
        """Raw rows -> (processed column arrays by name, number of rows), without building a DataFrame.
        ``with_y=False`` leaves a target column in the rows alone (it is not checked or encoded)."""
        cols = _as_columns(items)
        return self.to.encode_columns(cols, with_y=with_y), _n_rows(cols)

    def tensors(self, items, with_labels: bool = False) -> tuple:
        """Raw rows -> ``(x_cat, x_cont[, y])`` tensors."""
        return self.encoded_tensors(*self.encode(items, with_y=with_labels), with_labels=with_labels)

    def encoded_tensors(self, out: dict, n: int, with_labels: bool = False) -> tuple:
        """:meth:`encode`'s columns -> ``(x_cat, x_cont[, y])`` tensors."""
        if with_labels and not all(y in out for y in self.y_cols):
            raise DataError(
                f"Expected the target column(s) {self.y_names} for with_labels=True. Received: rows without them. "
                "Fix: pass with_labels=False, or include the target."
            )
        t = self.to
        return _tensors(out, n, t.cat_names, t.cont_names, t.y_cols, t.y_kind, with_labels)

    def test_dl(self, items, with_labels: bool = False, bs: int = 64, **kwargs) -> TensorLoader:
        """A loader over raw rows (DataFrame, CSV path, rows), processed as the validation rows were."""
        return TensorLoader(*self.tensors(items, with_labels=with_labels), bs=bs)

    def predict_dl(self, item) -> TensorLoader:
        return self.test_dl(item, bs=1)

    def decode_pred(self, decoded):
        """A class index -> its label; multi-label 0/1 (or bool) predictions -> the list of labels that are on;
        a regression value -> a float (or list of floats)."""
        t = torch.as_tensor(decoded)
        if self.is_multi:
            on = t.reshape(-1).float() > 0.5
            return [self.vocab[i] for i in torch.nonzero(on).flatten().tolist()]
        if self.to.y_kind == "category":
            return self.vocab[int(t)]
        return float(t.reshape(-1)[0]) if t.numel() == 1 else t.tolist()

    # ---------------------------------------------------------------- decoding / showing
    def decode_columns(self, items) -> dict:
        """Processed columns (a DataFrame or dict of arrays) back to categories and unnormalised values."""
        cols = {}
        classes = self.classes
        norm = next((p for p in self.to.procs if isinstance(p, Normalize)), None)
        for c in self.cat_names:
            v = np.asarray(items[c])
            cols[c] = np.asarray(classes[c], dtype=object)[v.astype(np.int64)] if c in classes else v
        for c in self.cont_names:
            v = np.asarray(items[c], dtype=np.float64)
            if norm is not None and c in norm.means:
                v = v * norm.stds[c] + norm.means[c]
            cols[c] = v.astype(np.float32)
        keys = items.columns if isinstance(items, pd.DataFrame) else items.keys()
        if self.is_multi:
            if all(y in keys for y in self.y_cols):
                hot = np.stack([np.asarray(items[y]) for y in self.y_cols], 1)
                cols.update(self._decode_multi(hot))
            return cols
        for y in self.y_names:
            if y in keys:
                cols[y] = self._decode_y(np.asarray(items[y]))
        return cols

    def _decode_multi(self, hot: np.ndarray) -> dict:
        """``(n, c)`` 0/1 (or bool) -> the target columns as users have them: each 0/1 column (several
        encoded columns), or one column of label lists."""
        hot = np.asarray(hot).astype(np.float32) > 0.5
        if self.to.multi_encoded:
            return {y: hot[:, j].astype(np.int8) for j, y in enumerate(self.y_names)}
        vocab = np.asarray(self.vocab, dtype=object)
        labels = np.empty(len(hot), dtype=object)
        labels[:] = [list(vocab[r]) for r in hot]
        return {self.y_names[0]: labels}

    def decode_frame(self, items) -> pd.DataFrame:
        """Processed columns back to categories and unnormalised values, as a DataFrame."""
        return pd.DataFrame(self.decode_columns(items), index=getattr(items, "index", None))

    def _decode_y(self, v: np.ndarray):
        if self.to.y_kind == "category":
            return np.asarray(self.vocab, dtype=object)[np.asarray(v).astype(np.int64)]
        return np.asarray(v, dtype=np.float64)

    def _batch_frame(self, batch, max_n=None) -> pd.DataFrame:
        batch = [b.detach().cpu() if isinstance(b, torch.Tensor) else b for b in batch]
        x_cat, x_cont = batch[0], batch[1]
        n = len(x_cat) if max_n is None else min(max_n, len(x_cat))
        data = {c: x_cat[:n, j].numpy() for j, c in enumerate(self.cat_names)}
        data.update({c: x_cont[:n, j].numpy() for j, c in enumerate(self.cont_names)})
        if len(batch) > 2:
            y = batch[2][:n].numpy()
            if y.ndim == 1:
                data[self.y_cols[0]] = y
            else:
                data.update({name: y[:, j] for j, name in enumerate(self.y_cols)})
        return self.decode_frame(pd.DataFrame(data))

    def decode_batch(self, batch, max_n: int | None = None) -> list[tuple]:
        df = self._batch_frame(batch, max_n)
        xs = df[self.cat_names + self.cont_names]
        ys = [y for y in self.y_names if y in df.columns]
        return [(xs.iloc[i].to_dict(), *(df[y].iloc[i] for y in ys)) for i in range(len(df))]

    def show_batch(self, batch, max_n: int = 10, display: bool = True, **kwargs) -> pd.DataFrame:
        """The batch's first ``max_n`` rows decoded, as a DataFrame (shown in a notebook)."""
        df = self._batch_frame(batch, max_n)
        _display(df, display)
        return df

    def show_results(
        self, batch, decoded_preds, max_n: int = 10, display: bool = True, **kwargs
    ) -> pd.DataFrame:
        """Decoded rows with their target and the prediction (``<y>_pred``) as a DataFrame."""
        df = self._batch_frame(batch, max_n)
        p = torch.as_tensor(decoded_preds).detach().cpu()[: len(df)].numpy()
        if self.is_multi:
            for name, v in self._decode_multi(p.reshape(len(df), -1)).items():
                df[f"{name}_pred"] = v
        elif p.ndim == 1 or len(self.y_names) == 1:
            df[f"{self.y_names[0]}_pred"] = self._decode_y(p.reshape(len(df), -1)[:, 0])
        else:
            for j, y in enumerate(self.y_names):
                df[f"{y}_pred"] = p[:, j]
        _display(df, display)
        return df

    # ---------------------------------------------------------------- export
    def spec(self) -> dict:
        t = self.to
        return {
            "kind": self.kind,
            "cat_names": list(t.cat_names),
            "cont_names": list(t.cont_names),
            "y_names": list(t.y_names),
            "y_kind": t.y_kind,
            "y_cols": list(t.y_cols),
            "multi_encoded": bool(t.multi_encoded),
            "label_delim": t.label_delim,
            "vocab": list(t.vocab) if t.vocab is not None else None,
            "reduce_memory": bool(t.reduce_memory),
            "procs": [{"name": type(p).__name__, "state": p.state()} for p in t.procs],
        }

    @classmethod
    def from_spec(cls, spec: dict) -> TabularRecipe:
        procs = []
        for p in spec["procs"]:
            if p["name"] not in PROCS:
                raise DataError(
                    f"Expected procs among {sorted(PROCS)} in the export. Received: {p['name']!r}."
                )
            procs.append(PROCS[p["name"]].from_state(dict(p["state"])))
        to = TabularPandas.__new__(TabularPandas)
        to.__dict__.update(
            {
                "procs": procs,
                "cat_names": list(spec["cat_names"]),
                "cont_names": list(spec["cont_names"]),
                "y_names": list(spec["y_names"]),
                "y_kind": spec["y_kind"],
                "y_cols": list(spec.get("y_cols", spec["y_names"])),
                "multi_encoded": bool(spec.get("multi_encoded", False)),
                "label_delim": spec.get("label_delim"),
                "vocab": spec["vocab"],
                "reduce_memory": spec["reduce_memory"],
                "_raw": pd.DataFrame(),
                "items": None,
                "splits": (np.arange(0), np.arange(0)),
                "_processed": {},
            }
        )
        return cls(to)


def _display(df, display: bool):
    if not display:
        return
    try:
        from IPython import get_ipython
        from IPython.display import display as ipy_display
    except ImportError:
        return
    if get_ipython() is not None:
        ipy_display(df)


register_recipe("tabular", "learnkit.tabular.data:TabularRecipe.from_spec")


class TabularDataLoaders(DataLoaders):
    """Train/valid loaders over a preprocessed table; ``dls.recipe`` is a :class:`TabularRecipe`.

    Batches are ``(x_cat, x_cont, y)`` slices of tensors held once in memory (a permutation per epoch).

    Example: ``TabularDataLoaders.from_df(df, procs=[Categorify, Normalize], cat_names=['a'],
    cont_names=['b'], y_names='t', bs=64)``.
    """

    @classmethod
    def from_tabular(
        cls,
        to: TabularPandas,
        bs: int = 64,
        val_bs: int | None = None,
        shuffle_train: bool = True,
        device=None,
        path=".",
        drop_last: bool = True,
        seed: int | None = None,
        **kwargs,
    ) -> TabularDataLoaders:
        """Loaders over a processed :class:`TabularPandas` (what ``to.dataloaders()`` calls)."""
        tensors = tabular_tensors(to)
        tr, va = to.splits
        if len(tr) == 0:
            raise DataError(
                "Expected some training rows. Received: an empty training split. Fix: check splits."
            )
        if len(tensors) < 3:
            raise DataError(
                "Expected a target for training. Received: y_names=None. Fix: pass y_names='column'."
            )
        tr_t, va_t = torch.from_numpy(tr), torch.from_numpy(va)
        train = TensorLoader(
            *(t[tr_t] for t in tensors),
            bs=bs,
            shuffle=shuffle_train,
            drop_last=drop_last and len(tr) > bs,
            seed=seed,
        )
        valid = TensorLoader(*(t[va_t] for t in tensors), bs=val_bs or bs * 2) if len(va) else None
        recipe = TabularRecipe.from_tabular(to)
        dls = cls(train, valid, device=device, recipe=recipe, path=Path(path), **kwargs)
        return dls

    @classmethod
    def from_df(
        cls,
        df: pd.DataFrame,
        path=".",
        procs=None,
        cat_names=None,
        cont_names=None,
        y_names=None,
        y_block=None,
        valid_idx=None,
        bs: int = 64,
        shuffle_train: bool = True,
        val_bs: int | None = None,
        device=None,
        valid_pct: float = 0.2,
        seed: int | None = None,
        reduce_memory: bool = True,
        drop_last: bool = True,
        label_delim: str | None = None,
        **kwargs,
    ) -> TabularDataLoaders:
        """Loaders from a DataFrame. ``procs`` default ``[Categorify, FillMissing, Normalize]``; column types not
        given are inferred with :func:`cont_cat_split`; ``valid_idx`` default a random ``valid_pct`` of rows."""
        if y_names is None:
            raise DataError(
                "Expected y_names, the target column. Received: y_names=None. Fix: y_names='salary'."
            )
        if cat_names is None and cont_names is None:
            cont_names, cat_names = cont_cat_split(df, dep_var=y_names)
        elif cat_names is None or cont_names is None:
            conts, cats = cont_cat_split(df, dep_var=y_names)
            given = set(cat_names or []) | set(cont_names or [])
            cat_names = cat_names if cat_names is not None else [c for c in cats if c not in given]
            cont_names = cont_names if cont_names is not None else [c for c in conts if c not in given]
        if procs is None:
            procs = [Categorify, FillMissing, Normalize]
        n = len(df)
        if valid_idx is None:
            perm = np.random.default_rng(seed).permutation(n)
            valid_idx = np.sort(perm[: int(round(valid_pct * n))])
        valid_idx = np.asarray(
            list(valid_idx) if not isinstance(valid_idx, np.ndarray) else valid_idx, dtype=np.int64
        )
        if len(valid_idx) and (valid_idx.min() < 0 or valid_idx.max() >= n):
            raise DataError(
                f"Expected valid_idx to be row positions in [0, {n}). Received: values from "
                f"{valid_idx.min()} to {valid_idx.max()}. Fix: use positions (df.index.get_indexer)."
            )
        mask = np.ones(n, dtype=bool)
        mask[valid_idx] = False
        splits = (np.flatnonzero(mask), valid_idx)
        to = TabularPandas(
            df,
            procs,
            cat_names,
            cont_names,
            y_names,
            y_block=y_block,
            splits=splits,
            reduce_memory=reduce_memory,
            label_delim=label_delim,
        )
        return to.dataloaders(
            bs=bs,
            val_bs=val_bs,
            shuffle_train=shuffle_train,
            device=device,
            path=path,
            drop_last=drop_last,
            seed=seed,
            **kwargs,
        )

    @classmethod
    def from_csv(cls, csv, skipinitialspace: bool = True, **kwargs) -> TabularDataLoaders:
        """Loaders from a CSV file (read with ``pd.read_csv``); arguments as :meth:`from_df`."""
        p = Path(csv)
        if not p.is_file():
            raise DataError(f"Expected a CSV file. Received: {str(p)!r}, which does not exist.")
        kwargs.setdefault("path", p.parent)
        return cls.from_df(pd.read_csv(p, skipinitialspace=skipinitialspace), **kwargs)

    @property
    def cat_names(self) -> list:
        return self.recipe.cat_names

    @property
    def cont_names(self) -> list:
        return self.recipe.cont_names

    @property
    def y_names(self) -> list:
        return self.recipe.y_names

    @property
    def classes(self) -> dict:
        return self.recipe.classes
