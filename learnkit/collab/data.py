"""Ratings tables as loaders: :class:`CollabDataLoaders` and the :class:`CollabRecipe` behind them.

A ratings table has one row per (user, item, rating). Users and items get vocabularies fitted on the
training split (``'#na#'`` at index 0, as in fastai; a validation user never seen in training maps there),
and the whole table is encoded once into two tensors held in memory: ``x`` of shape ``(n, 2)`` (user and
item indices, ``int64``) and ``y`` of shape ``(n,)`` (ratings, ``float32``). Batches are index slices of
them (:class:`~learnkit.data.loaders.TensorLoader`: a true permutation each epoch).

>>> import pandas as pd
>>> ratings = pd.DataFrame({"user": [1, 1, 2, 2, 3, 3], "movie": list("abcabc"), "rating": [5, 3, 4, 2, 1, 4.0]})
>>> dls = CollabDataLoaders.from_df(ratings, valid_pct=0.2, seed=0, bs=2)
>>> dls.classes["movie"]
['#na#', 'a', 'b', 'c']
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..data.loaders import DataLoaders, TensorLoader
from ..data.recipe import DataRecipe
from ..device import default_device
from ..exceptions import DataError
from ..export import register_recipe
from ..losses import MSELossFlat

__all__ = ["CollabDataLoaders", "CollabRecipe", "NA"]

#: the vocabulary entry at index 0: unknown / missing users and items
NA = "#na#"


def _show(values, k: int = 5) -> str:
    values = list(values)
    more = f" ... ({len(values)} in all)" if len(values) > k else ""
    return ", ".join(repr(_plain(v)) for v in values[:k]) + more


def _plain(v):
    """A vocabulary entry as plain Python data (numpy scalars -> int/float/str), for the export spec."""
    return v.item() if isinstance(v, np.generic) else v


def _numeric_ratings(s: pd.Series, name: str) -> np.ndarray:
    num = pd.to_numeric(s, errors="coerce")
    bad = num.isna()
    if bad.any():
        vals = s[bad]
        raise DataError(
            f"Expected numeric ratings in column {name!r}. Received: {int(bad.sum())} value(s) that are not numbers "
            f"or are missing, e.g. {_show(vals.tolist())} (rows {_show(vals.index.tolist())}). "
            f"Fix: clean the column (e.g. ratings[{name!r}] = pd.to_numeric(ratings[{name!r}], errors='coerce') "
            "then drop the NaN rows), or pass rating_name= for the column that holds the ratings."
        )
    return num.to_numpy(dtype=np.float32)


class CollabRecipe(DataRecipe):
    """The fitted data of a ratings table: the user and item vocabularies, column names, training statistics
    (global and per-item mean ratings, the rating range) and the training (user, item) pairs, stored as
    compressed rows (``seen_ptr``/``seen_items``: the items user ``u`` rated are
    ``seen_items[seen_ptr[u]:seen_ptr[u+1]]``) so ``recommend`` can skip what a user already rated.

    Everything is plain data or tensors, so :meth:`spec` goes into a pickle-free export.

    Example: ``dls = CollabDataLoaders.from_df(ratings, item_name='title'); dls.recipe.global_mean``.
    """

    kind = "collab"
    n_inp = 1
    c = 1

    def __init__(
        self,
        user_name: str,
        item_name: str,
        rating_name: str,
        users: list,
        items: list,
        seen_ptr: torch.Tensor,
        seen_items: torch.Tensor,
        item_mean: torch.Tensor,
        global_mean: float,
        rating_range: tuple[float, float],
    ):
        self.user_name, self.item_name, self.rating_name = str(user_name), str(item_name), str(rating_name)
        self.classes = {self.user_name: list(users), self.item_name: list(items)}
        self.seen_ptr, self.seen_items = seen_ptr, seen_items
        self.item_mean, self.global_mean = item_mean, float(global_mean)
        self.rating_range = (float(rating_range[0]), float(rating_range[1]))
        self._index = {}

    # ------------------------------------------------------------------ vocabularies
    @property
    def users(self) -> list:
        """The user vocabulary (``'#na#'`` first)."""
        return self.classes[self.user_name]

    @property
    def items(self) -> list:
        """The item vocabulary (``'#na#'`` first)."""
        return self.classes[self.item_name]

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def loss_func(self):
        """Ratings are regressed: mean squared error."""
        return MSELossFlat()

    def _vocab_index(self, which: str) -> pd.Index:
        if which not in self._index:
            self._index[which] = pd.Index(self.classes[which][1:])
        return self._index[which]

    def lookup(self, values, which: str) -> np.ndarray:
        """Indices of ``values`` in the vocabulary of column ``which`` (user_name or item_name); ``-1`` for
        values the vocabulary does not hold."""
        idx = self._vocab_index(which).get_indexer(
            pd.Index(list(values) if not np.ndim(values) == 0 else [values])
        )
        return np.where(idx >= 0, idx + 1, -1)

    def encode(self, values, which: str, what: str = "prediction") -> torch.Tensor:
        """Indices of ``values`` (names) in column ``which``'s vocabulary; an unknown name is an error that
        names it."""
        return self.encode_pairs(**{("users" if which == self.user_name else "items"): values}, what=what)[0]

    def encode_pairs(self, users=None, items=None, what: str = "prediction") -> list[torch.Tensor]:
        """Indices of the given users and/or items; unknown names (of both columns) in one error."""
        out, unknown = [], []
        for which, values in ((self.user_name, users), (self.item_name, items)):
            if values is None:
                continue
            idx = self.lookup(values, which)
            if (idx < 0).any():
                vals = pd.Series(list(values))[idx < 0].unique().tolist()
                unknown.append(f"{len(vals)} unknown {which} value(s): {_show(vals)}")
            out.append(torch.as_tensor(idx, dtype=torch.long))
        if unknown:
            cols = " and ".join(
                c for c, v in ((self.user_name, users), (self.item_name, items)) if v is not None
            )
            raise DataError(
                f"Expected {cols} values seen in training. Received at {what}: {'; '.join(unknown)}. The model has "
                "no factors for them: it needs retraining with their ratings. Fix: retrain with data that includes "
                "them, or pass default='mean' (the item's or the global mean rating) or default=<number> to "
                "predict a fallback."
            )
        return out

    def seen(self, user_idx: int) -> torch.Tensor:
        """Item indices user ``user_idx`` rated in training."""
        return self.seen_items[self.seen_ptr[user_idx] : self.seen_ptr[user_idx + 1]].long()

    def item_counts(self) -> torch.Tensor:
        """How many training ratings each item has (by item index)."""
        return torch.bincount(self.seen_items.long(), minlength=self.n_items)

    # ------------------------------------------------------------------ raw tables -> tensors
    def columns_of(self, df: pd.DataFrame, with_labels: bool = False) -> tuple[str, str, str | None]:
        """The (user, item, rating) columns of ``df``: the recipe's names, else the first columns."""
        if not isinstance(df, pd.DataFrame):
            raise DataError(
                f"Expected a DataFrame of ({self.user_name}, {self.item_name}) pairs. Received: "
                f"{type(df).__name__}. Fix: pd.DataFrame({{{self.user_name!r}: [...], "
                f"{self.item_name!r}: [...]}})."
            )
        if self.user_name in df.columns and self.item_name in df.columns:
            u, i = self.user_name, self.item_name
        elif len(df.columns) >= 2:
            u, i = df.columns[0], df.columns[1]
        else:
            raise DataError(
                f"Expected columns {self.user_name!r} and {self.item_name!r}. Received: columns "
                f"{list(df.columns)}. Fix: name the columns like the training table."
            )
        r = None
        if with_labels:
            r = (
                self.rating_name
                if self.rating_name in df.columns
                else (df.columns[2] if len(df.columns) > 2 else None)
            )
            if r is None:
                raise DataError(
                    f"Expected a rating column {self.rating_name!r} (with_labels=True). Received: "
                    f"columns {list(df.columns)}."
                )
        return u, i, r

    def test_dl(self, items, with_labels: bool = False, bs: int = 64, **kwargs):
        """A loader over a DataFrame of (user, item[, rating]) rows; unknown names are an error."""
        df = items if isinstance(items, pd.DataFrame) else pd.DataFrame(list(items))
        u, i, r = self.columns_of(df, with_labels)
        x = torch.stack(self.encode_pairs(df[u], df[i]), 1)
        ts = (x, torch.as_tensor(_numeric_ratings(df[r], r))) if with_labels else (x,)
        return TensorLoader(*ts, bs=bs)

    # ------------------------------------------------------------------ decoding and showing
    def decode_batch(self, batch, max_n: int | None = None) -> list[tuple]:
        x = batch[0][:max_n].cpu()
        users, items = self.users, self.items
        ys = batch[1][:max_n].cpu().tolist() if len(batch) > 1 else [None] * len(x)
        return [(users[int(u)], items[int(i)], y) for (u, i), y in zip(x.tolist(), ys)]

    def show_batch(self, batch, max_n: int = 9, **kwargs) -> pd.DataFrame:
        """The first ``max_n`` rows of ``batch`` decoded, as a DataFrame (user, item, rating)."""
        rows = self.decode_batch(batch, max_n)
        return pd.DataFrame(rows, columns=[self.user_name, self.item_name, self.rating_name])

    def show_results(self, batch, decoded_preds, max_n: int = 9, **kwargs) -> pd.DataFrame:
        """Decoded rows with the predicted rating next to the true one."""
        df = self.show_batch(batch, max_n)
        df[f"{self.rating_name}_pred"] = decoded_preds.reshape(-1)[:max_n].tolist()
        return df

    def decode_pred(self, decoded):
        return float(decoded.reshape(-1)[0]) if isinstance(decoded, torch.Tensor) else decoded

    # ------------------------------------------------------------------ export
    def spec(self) -> dict:
        return {
            "kind": self.kind,
            "user_name": self.user_name,
            "item_name": self.item_name,
            "rating_name": self.rating_name,
            "users": [_plain(v) for v in self.users],
            "items": [_plain(v) for v in self.items],
            "seen_ptr": self.seen_ptr,
            "seen_items": self.seen_items,
            "item_mean": self.item_mean,
            "global_mean": self.global_mean,
            "rating_range": list(self.rating_range),
        }

    @classmethod
    def from_spec(cls, spec: dict) -> CollabRecipe:
        return cls(
            spec["user_name"],
            spec["item_name"],
            spec["rating_name"],
            spec["users"],
            spec["items"],
            spec["seen_ptr"],
            spec["seen_items"],
            spec["item_mean"],
            spec["global_mean"],
            tuple(spec["rating_range"]),
        )

    def __repr__(self) -> str:
        return (
            f"CollabRecipe({self.user_name}: {self.n_users - 1} users, {self.item_name}: {self.n_items - 1} "
            f"items, {self.rating_name} in [{self.rating_range[0]:g}, {self.rating_range[1]:g}])"
        )


register_recipe(CollabRecipe.kind, "learnkit.collab.data:CollabRecipe.from_spec")


def _vocab(values: pd.Series, name: str) -> list:
    uniq = pd.unique(values)
    try:
        uniq = np.sort(uniq)
    except TypeError as e:
        raise DataError(
            f"Expected the values of column {name!r} to be of one type (all numbers or all strings). "
            f"Received: mixed types, e.g. {_show(uniq[:5])}. Fix: ratings[{name!r}] = "
            f"ratings[{name!r}].astype(str)."
        ) from e
    return [NA] + [_plain(v) for v in uniq]


def _seen_csr(u: np.ndarray, i: np.ndarray, n_users: int) -> tuple[torch.Tensor, torch.Tensor]:
    order = np.lexsort((i, u))
    counts = np.bincount(u, minlength=n_users)
    ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    dtype = torch.int32 if i.max(initial=0) < 2**31 else torch.int64
    return torch.from_numpy(ptr), torch.from_numpy(i[order]).to(dtype)


class CollabDataLoaders(DataLoaders):
    """Train/valid loaders over a ratings table, with the user and item vocabularies in ``classes``.

    Each batch is ``(x, y)``: ``x`` the ``(bs, 2)`` user/item index tensor, ``y`` the ``(bs,)`` ratings.

    >>> dls = CollabDataLoaders.from_df(ratings, item_name="title", bs=64)   # doctest: +SKIP
    >>> dls.classes["title"][:3], dls.show_batch()                           # doctest: +SKIP
    """

    @property
    def classes(self) -> dict:
        """``{user_name: users, item_name: items}``, each vocabulary with ``'#na#'`` at index 0."""
        return self.recipe.classes

    @classmethod
    def from_df(
        cls,
        ratings: pd.DataFrame,
        valid_pct: float = 0.2,
        user_name: str | None = None,
        item_name: str | None = None,
        rating_name: str | None = None,
        seed: int | None = None,
        bs: int = 64,
        val_bs: int | None = None,
        shuffle: bool = True,
        device=None,
        path: str | os.PathLike = ".",
        **kwargs,
    ) -> CollabDataLoaders:
        """Loaders from a DataFrame of ratings; the columns default to the first three (user, item, rating).

        ``valid_pct`` of the rows (drawn with ``seed``) go to validation. Duplicated (user, item) pairs and
        validation users or items never seen in training are kept, with a warning that counts them.
        """
        if not isinstance(ratings, pd.DataFrame):
            raise DataError(
                f"Expected a pandas DataFrame of ratings. Received: {type(ratings).__name__}. "
                "Fix: pd.DataFrame({'user': ..., 'item': ..., 'rating': ...})."
            )
        kwargs.pop("num_workers", None)  # tensors in memory: no workers needed
        if kwargs:
            raise DataError(
                f"Unexpected arguments for CollabDataLoaders.from_df: {sorted(kwargs)}. Expected "
                "valid_pct, user_name, item_name, rating_name, seed, bs, val_bs, shuffle, device, path."
            )
        cols = list(ratings.columns)
        names = [user_name, item_name, rating_name]
        for k, default in enumerate(cols[:3]):
            names[k] = names[k] if names[k] is not None else default
        for what, n in zip(("user_name", "item_name", "rating_name"), names):
            if n is None or n not in ratings.columns:
                raise DataError(
                    f"Expected {what} to be a column of the ratings table. Received: {what}={n!r}, "
                    f"columns {cols}. Fix: pass {what}=<one of the columns>."
                )
        user_name, item_name, rating_name = names
        if len({user_name, item_name, rating_name}) < 3:
            raise DataError(
                f"Expected three different columns. Received: user_name={user_name!r}, "
                f"item_name={item_name!r}, rating_name={rating_name!r}."
            )
        if not 0 <= valid_pct < 1:
            raise DataError(f"Expected 0 <= valid_pct < 1. Received: valid_pct={valid_pct}.")
        if len(ratings) < 2:
            raise DataError(f"Expected at least two ratings. Received: {len(ratings)} rows.")
        for n in (user_name, item_name):
            miss = ratings[n].isna()
            if miss.any():
                raise DataError(
                    f"Expected every row to name a {n}. Received: {int(miss.sum())} missing value(s) in "
                    f"column {n!r} (rows {_show(ratings.index[miss].tolist())}). Fix: drop or fill them."
                )
        y = _numeric_ratings(ratings[rating_name], rating_name)
        dup = int(ratings.duplicated([user_name, item_name]).sum())
        if dup:
            warnings.warn(
                f"The ratings table has {dup} duplicated ({user_name}, {item_name}) pair(s); each is kept "
                "as a separate training example. Fix: ratings.groupby([user, item], as_index=False).mean() "
                "to average them, or drop_duplicates to keep one.",
                stacklevel=2,
            )

        n = len(ratings)
        g = torch.Generator().manual_seed(seed) if seed is not None else None
        perm = torch.randperm(n, generator=g).numpy()
        n_valid = int(round(n * valid_pct))
        valid_idx, train_idx = np.sort(perm[:n_valid]), np.sort(perm[n_valid:])

        train = ratings.iloc[train_idx]
        users, items = _vocab(train[user_name], user_name), _vocab(train[item_name], item_name)
        recipe = CollabRecipe(
            user_name,
            item_name,
            rating_name,
            users,
            items,
            torch.zeros(1, dtype=torch.long),
            torch.zeros(0, dtype=torch.int32),
            torch.zeros(0),
            0.0,
            (0.0, 0.0),
        )
        u = np.maximum(recipe.lookup(ratings[user_name].to_numpy(), user_name), 0)
        i = np.maximum(recipe.lookup(ratings[item_name].to_numpy(), item_name), 0)
        for what, codes in ((user_name, u), (item_name, i)):
            unseen = ratings[what].to_numpy()[valid_idx][codes[valid_idx] == 0]
            if len(unseen):
                warnings.warn(
                    f"{len(pd.unique(unseen))} validation {what} value(s) ({len(unseen)} ratings) never "
                    f"appear in training, e.g. {_show(pd.unique(unseen))}; they map to {NA!r} and the "
                    f"model can only guess for them. Fix: split by rating so each {what} has training "
                    "rows, or accept it as a cold-start measurement.",
                    stacklevel=2,
                )
        yt, ut, it = y[train_idx], u[train_idx], i[train_idx]
        recipe.seen_ptr, recipe.seen_items = _seen_csr(ut, it, len(users))
        sums = np.bincount(it, weights=yt, minlength=len(items))
        cnt = np.bincount(it, minlength=len(items))
        recipe.global_mean = float(yt.mean())
        recipe.item_mean = torch.from_numpy(
            np.where(cnt > 0, sums / np.maximum(cnt, 1), recipe.global_mean)
        ).float()
        recipe.rating_range = (float(y.min()), float(y.max()))

        dev = default_device(device)
        x = torch.from_numpy(np.stack([u, i], 1).astype(np.int64)).to(dev)
        yy = torch.from_numpy(y).to(dev)
        tr, va = torch.from_numpy(train_idx).to(dev), torch.from_numpy(valid_idx).to(dev)
        tdl = TensorLoader(
            x[tr], yy[tr], bs=bs, shuffle=shuffle
        )  # seed is for the split; shuffles follow set_seed
        vdl = TensorLoader(x[va], yy[va], bs=val_bs or bs) if n_valid else None
        return cls(tdl, vdl, device=dev, recipe=recipe, loss_func=recipe.loss_func, path=path)

    @classmethod
    def from_csv(cls, csv: str | os.PathLike, **kwargs) -> CollabDataLoaders:
        """Loaders from a CSV file of ratings (``pd.read_csv(csv)``); ``kwargs`` go to :meth:`from_df`,
        except ``delimiter``/``sep``, ``header`` and ``names``, which go to ``read_csv``."""
        read_kw = {
            k: kwargs.pop(k) for k in ("delimiter", "sep", "header", "names", "encoding") if k in kwargs
        }
        path = Path(csv)
        if not path.is_file():
            raise DataError(f"Expected a CSV file of ratings. Received: {str(path)!r}, which does not exist.")
        return cls.from_df(pd.read_csv(path, **read_kw), **kwargs)
