"""``collab_learner`` and :class:`CollabLearner`: train latent factors, then read them.

:class:`CollabLearner` is a :class:`~learnkit.Learner` subclass (the loop is the core's) with what a ratings
model is for: ``predict`` on a table of (user, item) pairs, ``recommend`` the best unseen items for a user,
``most_similar`` items by the cosine of their factors, ``items_by_bias`` and :func:`plot_item_factors`.
``load_learner`` gives back a ``CollabLearner``, so an export recommends and predicts on its own.

>>> dls = CollabDataLoaders.from_df(ratings, item_name="title", bs=64)        # doctest: +SKIP
>>> learn = collab_learner(dls, n_factors=50, y_range=(0, 5.5))              # doctest: +SKIP
>>> learn.fit_one_cycle(5, 5e-3, wd=0.1)                                      # doctest: +SKIP
>>> learn.recommend(42, n=10); learn.most_similar("Toy Story (1995)", n=5)   # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from ..exceptions import DataError, ModelError
from ..export import register_learner
from ..factory import finish_learner
from ..learner import Learner, _unwrap
from ..losses import MSELossFlat
from .data import CollabRecipe
from .models import EmbeddingDotBias, EmbeddingNN, _check_y_range, get_emb_sz

__all__ = ["CollabLearner", "collab_learner", "plot_item_factors"]

_CHUNK = 1 << 16


class CollabLearner(Learner):
    """A :class:`~learnkit.Learner` for ratings data (``dls`` from :class:`~learnkit.collab.CollabDataLoaders`).

    Adds ``predict`` on many (user, item) pairs at once, ``recommend``, ``most_similar``, ``items_by_bias``
    and ``plot_item_factors``. The model is any module mapping ``(bs, 2)`` index pairs to ratings;
    ``most_similar`` and ``plot_item_factors`` need its item factors (:class:`EmbeddingDotBias`,
    :class:`EmbeddingNN`).

    Example: ``learn = collab_learner(dls, n_factors=50, y_range=(0, 5.5)); learn.recommend(42, n=5)``.
    """

    def __init__(self, dls, model: nn.Module, **kwargs):
        super().__init__(dls, model, **kwargs)
        recipe, m = dls.recipe, _unwrap(self.model)
        if (
            isinstance(recipe, CollabRecipe)
            and isinstance(m, (EmbeddingDotBias, EmbeddingNN))
            and m.classes is None
        ):
            m.set_classes(recipe.classes, recipe.user_name, recipe.item_name)

    # ------------------------------------------------------------------ helpers
    @property
    def recipe(self) -> CollabRecipe:
        """The ratings recipe (vocabularies, training pairs) of ``dls``."""
        r = self.dls.recipe
        if not isinstance(r, CollabRecipe):
            raise DataError(
                f"Expected DataLoaders from CollabDataLoaders. Received: recipe {type(r).__name__}. "
                "Fix: build the data with CollabDataLoaders.from_df(ratings)."
            )
        return r

    def _scores(self, x: torch.Tensor) -> torch.Tensor:
        """Model outputs for index pairs ``x`` (n, 2), in eval mode and in chunks; a 1-d CPU float tensor."""
        model = _unwrap(self.model)
        was = model.training
        model.eval()
        out = []
        try:
            with torch.no_grad():
                for s in range(0, len(x), _CHUNK):
                    out.append(model(x[s : s + _CHUNK].to(self.device)).float().reshape(-1).cpu())
        finally:
            model.train(was)
        return torch.cat(out) if out else torch.zeros(0)

    def _item_factors(self) -> torch.Tensor:
        m = _unwrap(self.model)
        if not isinstance(m, (EmbeddingDotBias, EmbeddingNN)):
            raise ModelError(
                f"Expected a model with item factors (EmbeddingDotBias or EmbeddingNN). Received: "
                f"{type(m).__name__}. Fix: build the learner with collab_learner."
            )
        return m.item_factors.detach().float().cpu()

    # ------------------------------------------------------------------ inference
    def predict(self, item, default=None, with_input: bool = False):
        """Predicted ratings for a DataFrame of (user, item) pairs (columns named as in training, else the
        first two), vectorised; returns a Series aligned with the table. A list of ``(user, item)`` tuples
        works too, and a single row (a Series) gives one float.

        An unknown user or item is an error naming it (the model needs retraining to know it), unless
        ``default`` is given: ``'mean'`` predicts the item's training mean (the global mean for an unknown
        item), a number predicts that number.
        """
        r = self.recipe
        one = isinstance(item, pd.Series)
        if one:
            df = item.to_frame().T
        elif isinstance(item, pd.DataFrame):
            df = item
        else:
            df = pd.DataFrame(list(item))
            if df.shape[1] >= 2:
                df.columns = [r.user_name, r.item_name, *df.columns[2:]]
        ucol, icol, _ = r.columns_of(df)
        if default is None:
            u, i = r.encode_pairs(df[ucol], df[icol])
            preds = self._scores(torch.stack([u, i], 1))
        else:
            if not (default == "mean" or isinstance(default, (int, float))) or isinstance(default, bool):
                raise DataError(f"Expected default='mean' or a number. Received: default={default!r}.")
            u = torch.as_tensor(r.lookup(df[ucol].to_numpy(), r.user_name))
            i = torch.as_tensor(r.lookup(df[icol].to_numpy(), r.item_name))
            known = (u >= 0) & (i >= 0)
            preds = torch.empty(len(df))
            if default == "mean":
                preds[:] = r.global_mean
                preds[i >= 0] = r.item_mean[i[i >= 0]]
            else:
                preds[:] = float(default)
            if known.any():
                preds[known] = self._scores(torch.stack([u[known], i[known]], 1))
        out = pd.Series(preds.numpy(), index=df.index, name=r.rating_name)
        if one:
            return float(out.iloc[0])
        return (out, df) if with_input else out

    def recommend(self, user, n: int = 10, exclude_seen: bool = True) -> pd.DataFrame:
        """The ``n`` items with the highest predicted rating for ``user`` (a name from training), leaving out
        the items they rated in training (``exclude_seen``). Columns: the item column and the prediction."""
        r = self.recipe
        u = int(r.encode([user], r.user_name, "recommend")[0])
        cand = torch.ones(r.n_items, dtype=torch.bool)
        cand[0] = False
        if exclude_seen:
            cand[r.seen(u)] = False
        items = cand.nonzero().squeeze(1)
        scores = self._scores(torch.stack([torch.full_like(items, u), items], 1))
        k = min(int(n), len(items))
        top = scores.topk(k)
        names = [r.items[j] for j in items[top.indices].tolist()]
        return pd.DataFrame({r.item_name: names, f"predicted_{r.rating_name}": top.values.numpy()})

    def most_similar(self, item, n: int = 10) -> pd.DataFrame:
        """The ``n`` items whose factors are closest to ``item``'s by cosine similarity (``item`` excluded)."""
        r = self.recipe
        j = int(r.encode([item], r.item_name, "most_similar")[0])
        w = F.normalize(self._item_factors(), dim=1)
        sims = w @ w[j]
        sims[0] = sims[j] = -float("inf")
        k = min(int(n), r.n_items - 2)
        top = sims.topk(k)
        return pd.DataFrame(
            {r.item_name: [r.items[t] for t in top.indices.tolist()], "similarity": top.values.numpy()}
        )

    def items_by_bias(self, n: int = 5, largest: bool = True) -> pd.DataFrame:
        """The ``n`` items with the highest (or lowest, ``largest=False``) learned bias: liked (or disliked)
        beyond what their factors explain."""
        r, m = self.recipe, _unwrap(self.model)
        if not isinstance(m, EmbeddingDotBias):
            raise ModelError(
                f"Expected an EmbeddingDotBias model (it has item biases). Received: {type(m).__name__}."
            )
        b = m.i_bias.weight.detach().float().cpu().squeeze(1)[1:]
        top = b.topk(min(int(n), len(b)), largest=largest)
        return pd.DataFrame(
            {r.item_name: [r.items[t + 1] for t in top.indices.tolist()], "bias": top.values.numpy()}
        )

    def plot_item_factors(self, items=None, n: int = 50, **kwargs):
        """See :func:`plot_item_factors`.

        Example: ``ax, coords = learn.plot_item_factors(n=50)``.
        """
        return plot_item_factors(self, items=items, n=n, **kwargs)


register_learner("collab", "learnkit.collab.learner:CollabLearner")


def plot_item_factors(
    learn: CollabLearner, items=None, n: int = 50, n_pca: int = 1000, ax=None, figsize=(12, 12)
):
    """Scatter ``items`` (default: the ``n`` most-rated) on the first two principal components of the item
    factors, each labelled. The components are fitted on the ``n_pca`` most-rated items, as in the course.

    Returns ``(ax, coords)`` with ``coords`` a DataFrame of the plotted items' two coordinates.

    Example: ``ax, coords = plot_item_factors(learn, n=50)``.
    """
    import matplotlib.pyplot as plt

    r = learn.recipe
    w = learn._item_factors()
    counts = r.item_counts()
    counts[0] = -1
    fit_idx = counts.argsort(descending=True)[: min(n_pca, r.n_items - 1)]
    if items is None:
        idx = fit_idx[: min(n, len(fit_idx))]
    else:
        idx = r.encode(list(items), r.item_name, "plot_item_factors")
    x = w[fit_idx].numpy().astype(np.float64)
    mean = x.mean(0)
    _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
    coords = (w[idx].numpy() - mean) @ vt[:2].T
    names = [r.items[j] for j in idx.tolist()]
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    ax.scatter(coords[:, 0], coords[:, 1], s=8)
    for name, (a, b) in zip(names, coords):
        ax.text(a, b, str(name), fontsize=9)
    ax.set_xlabel("factor component 1")
    ax.set_ylabel("factor component 2")
    return ax, pd.DataFrame({r.item_name: names, "pc1": coords[:, 0], "pc2": coords[:, 1]})


def collab_learner(
    dls,
    n_factors: int = 50,
    use_nn: bool = False,
    emb_szs=None,
    layers=None,
    config=None,
    y_range=None,
    loss_func=None,
    **kwargs,
) -> CollabLearner:
    """A :class:`CollabLearner` on ratings ``dls``: :class:`EmbeddingDotBias` with ``n_factors`` factors, or
    :class:`EmbeddingNN` (``use_nn=True``, embedding sizes from ``emb_szs`` (a dict by column overrides the
    rule of thumb) and hidden ``layers``, default ``[100, 50]``). ``y_range`` squashes predictions with a
    sigmoid and must hold every rating in the data. Loss: MSE. ``config`` goes to the model, ``kwargs`` to
    :class:`~learnkit.Learner` (``lr``, ``wd``, ``metrics``, ``cbs``, ...).

    >>> learn = collab_learner(dls, n_factors=50, y_range=(0, 5.5))   # doctest: +SKIP
    """
    recipe = dls.recipe if hasattr(dls, "recipe") else None
    if not isinstance(recipe, CollabRecipe):
        raise DataError(
            f"Expected DataLoaders from CollabDataLoaders. Received: {type(dls).__name__} with recipe "
            f"{type(recipe).__name__}. Fix: dls = CollabDataLoaders.from_df(ratings)."
        )
    yr = _check_y_range(y_range)
    if yr is not None:
        lo, hi = recipe.rating_range
        if lo < yr[0] or hi > yr[1]:
            raise ModelError(
                f"Expected y_range to hold every rating in the data, which range from {lo:g} to {hi:g} in column "
                f"{recipe.rating_name!r}. Received: y_range={tuple(y_range)!r}, so the model could never predict "
                f"some of them. Fix: y_range=({min(lo, 0):g}, {hi * 1.1:g}) (a little above the top rating, as the "
                "sigmoid never reaches its ends), or y_range=None."
            )
    config = dict(config or {})
    classes, user, item = recipe.classes, recipe.user_name, recipe.item_name
    if use_nn:
        sizes = get_emb_sz(dls, emb_szs if isinstance(emb_szs, dict) else None)
        if emb_szs is not None and not isinstance(emb_szs, dict):
            sizes = [tuple(s) for s in emb_szs]
        model = EmbeddingNN.from_classes(
            sizes, layers if layers is not None else [100, 50], classes, user, item, y_range=yr, **config
        )
    else:
        model = EmbeddingDotBias.from_classes(n_factors, classes, user, item, y_range=yr, **config)
    return finish_learner(
        dls,
        model,
        learner_cls=CollabLearner,
        loss_func=loss_func if loss_func is not None else MSELossFlat(),
        **kwargs,
    )
