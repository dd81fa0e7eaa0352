"""Collaborative-filtering models: :class:`EmbeddingDotBias` (latent factors with a dot product) and
:class:`EmbeddingNN` (the factors fed to an MLP).

Both take ``x`` of shape ``(bs, 2)`` (user index, item index) and return one predicted rating per row,
squashed into ``y_range`` with a sigmoid when it is given. Both are in the model registry
(``'embedding_dot_bias'``, ``'embedding_nn'``), so exports rebuild them without pickles.

>>> m = EmbeddingDotBias(4, n_users=10, n_items=20, y_range=(0, 5.5))
>>> m(torch.tensor([[1, 2], [3, 4]])).shape
torch.Size([2])
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..exceptions import DataError, ModelError
from ..models.registry import create_model, register_model

__all__ = ["EmbeddingDotBias", "EmbeddingNN", "sigmoid_range", "get_emb_sz", "emb_sz_rule"]


def sigmoid_range(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """A sigmoid scaled to ``(low, high)``.

    >>> sigmoid_range(torch.zeros(1), 0, 5).item()
    2.5
    """
    return torch.sigmoid(x) * (high - low) + low


def emb_sz_rule(n_cat: int) -> int:
    """fastai's rule of thumb for an embedding size: ``min(600, round(1.6 * n_cat ** 0.56))``.

    >>> emb_sz_rule(1000)
    77
    """
    return min(600, round(1.6 * n_cat**0.56))


def get_emb_sz(dls, sz_dict: dict | None = None) -> list[tuple[int, int]]:
    """``[(n_users, size), (n_items, size)]`` for ``dls`` (a collab ``DataLoaders``): sizes from
    :func:`emb_sz_rule` unless ``sz_dict`` names them by column.

    Example: ``get_emb_sz(dls, {'user': 20})`` -> ``[(n_users, 20), (n_items, emb_sz_rule(n_items))]``.
    """
    sz_dict = sz_dict or {}
    recipe = dls.recipe
    return [
        (len(recipe.classes[n]), int(sz_dict.get(n, emb_sz_rule(len(recipe.classes[n])))))
        for n in (recipe.user_name, recipe.item_name)
    ]


def _check_y_range(y_range):
    if y_range is None:
        return None
    if not isinstance(y_range, Sequence) or len(y_range) != 2 or not float(y_range[0]) < float(y_range[1]):
        raise ModelError(
            f"Expected y_range=(low, high) with low < high. Received: y_range={y_range!r}. "
            "Fix: e.g. y_range=(0, 5.5) for ratings from 0.5 to 5."
        )
    return (float(y_range[0]), float(y_range[1]))


def _embedding(n: int, sz: int) -> nn.Embedding:
    e = nn.Embedding(n, sz)
    with torch.no_grad():
        nn.init.trunc_normal_(e.weight, std=0.01, a=-0.02, b=0.02)
    return e


class _Named:
    """Name -> index lookups for models that know their vocabularies (``classes``, set by ``from_classes``
    or by :class:`~learnkit.collab.CollabLearner` from the data)."""

    classes: dict | None = None
    user: str | None = None
    item: str | None = None

    def set_classes(self, classes: dict, user: str | None = None, item: str | None = None) -> None:
        """Give the model its vocabularies: ``{user: users, item: items}`` (default: the first two keys)."""
        keys = list(classes)
        self.classes = {k: list(v) for k, v in classes.items()}
        self.user = user if user is not None else keys[0]
        self.item = item if item is not None else keys[1]
        self._lookup = {}

    def _idx(self, names, is_item: bool) -> torch.Tensor:
        if self.classes is None:
            raise ModelError(
                "This model does not know the user and item names. Expected a model built with "
                "from_classes or by collab_learner. Fix: model.set_classes(dls.classes), or pass "
                "index tensors to the embeddings directly."
            )
        col = self.item if is_item else self.user
        if col not in self._lookup:
            self._lookup[col] = pd.Index(self.classes[col][1:])
        names = [names] if isinstance(names, (str, int, np.integer)) else list(names)
        idx = self._lookup[col].get_indexer(pd.Index(list(names)))
        if (idx < 0).any():
            bad = [n for n, k in zip(names, idx) if k < 0]
            raise DataError(
                f"Expected {col} values seen in training. Received: unknown {col} {bad[:5]!r}. "
                "The model has no factors for them: it needs retraining with their ratings."
            )
        return torch.as_tensor(idx + 1, dtype=torch.long)


class EmbeddingDotBias(_Named, nn.Module):
    """Users' and items' latent factors: ``rating = u_weight[u] . i_weight[i] + u_bias[u] + i_bias[i]``,
    squashed into ``y_range`` with a sigmoid when given. Attribute names are fastai's.

    >>> m = EmbeddingDotBias(5, n_users=3, n_items=4)
    >>> m.u_weight.weight.shape, m.i_bias.weight.shape
    (torch.Size([3, 5]), torch.Size([4, 1]))
    """

    def __init__(self, n_factors: int, n_users: int, n_items: int, y_range=None):
        super().__init__()
        for k, v in (("n_factors", n_factors), ("n_users", n_users), ("n_items", n_items)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ModelError(f"Expected {k} to be a positive int. Received: {k}={v!r}.")
        self.y_range = _check_y_range(y_range)
        self.u_weight, self.i_weight = _embedding(n_users, n_factors), _embedding(n_items, n_factors)
        self.u_bias, self.i_bias = _embedding(n_users, 1), _embedding(n_items, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        users, items = x[:, 0], x[:, 1]
        dot = (self.u_weight(users) * self.i_weight(items)).sum(1)
        res = dot + self.u_bias(users).squeeze(1) + self.i_bias(items).squeeze(1)
        return res if self.y_range is None else sigmoid_range(res, *self.y_range)

    @classmethod
    def from_classes(
        cls, n_factors: int, classes: dict, user: str | None = None, item: str | None = None, y_range=None
    ) -> EmbeddingDotBias:
        """A model sized for ``classes`` (``dls.classes``) that keeps them, so :meth:`bias` and :meth:`weight`
        take names. Exports rebuild it (registered as ``'embedding_dot_bias'``)."""
        keys = list(classes)
        user = user if user is not None else keys[0]
        item = item if item is not None else keys[1]
        y_range = _check_y_range(y_range)
        model = create_model(
            "embedding_dot_bias",
            n_factors=int(n_factors),
            n_users=len(classes[user]),
            n_items=len(classes[item]),
            y_range=list(y_range) if y_range else None,
        )
        model.set_classes(classes, user, item)
        return model

    def bias(self, arr, is_item: bool = True) -> torch.Tensor:
        """The biases of items (or users, ``is_item=False``) given by name."""
        idx = self._idx(arr, is_item).to(self.i_bias.weight.device)
        return (self.i_bias if is_item else self.u_bias)(idx).squeeze(1)

    def weight(self, arr, is_item: bool = True) -> torch.Tensor:
        """The latent factors of items (or users, ``is_item=False``) given by name."""
        idx = self._idx(arr, is_item).to(self.i_weight.weight.device)
        return (self.i_weight if is_item else self.u_weight)(idx)

    @property
    def item_factors(self) -> torch.Tensor:
        """All item factors, one row per item index."""
        return self.i_weight.weight


class EmbeddingNN(_Named, nn.Module):
    """User and item embeddings concatenated and fed to an MLP (``layers`` hidden sizes, each Linear, ReLU,
    BatchNorm, Dropout), one output squashed into ``y_range`` when given.

    Args:
        emb_szs: ``[(n_users, user_size), (n_items, item_size)]`` (see :func:`get_emb_sz`).
        layers: hidden sizes, e.g. ``[100, 50]``. ps: dropout per hidden layer (one number or a list).
        embed_p: dropout on the embeddings. use_bn: batch norm after each hidden layer.

    >>> m = EmbeddingNN([(10, 4), (20, 6)], layers=[8], y_range=(0, 5))
    >>> m(torch.tensor([[1, 2], [3, 4]])).shape
    torch.Size([2, 1])
    """

    def __init__(self, emb_szs, layers, y_range=None, ps=0.0, embed_p: float = 0.0, use_bn: bool = True):
        super().__init__()
        if len(emb_szs) != 2:
            raise ModelError(
                f"Expected emb_szs=[(n_users, size), (n_items, size)]. Received: emb_szs={emb_szs!r}."
            )
        layers = list(layers)
        ps = list(ps) if isinstance(ps, Sequence) else [float(ps)] * len(layers)
        if len(ps) != len(layers):
            raise ModelError(f"Expected one dropout per layer. Received: layers={layers}, ps={ps}.")
        self.y_range = _check_y_range(y_range)
        self.embeds = nn.ModuleList([_embedding(int(n), int(s)) for n, s in emb_szs])
        self.emb_drop = nn.Dropout(embed_p)
        mods, n_in = [], sum(int(s) for _, s in emb_szs)
        for n_out, p in zip(layers, ps):
            mods += [nn.Linear(n_in, n_out), nn.ReLU(inplace=True)]
            mods += [nn.BatchNorm1d(n_out)] if use_bn else []
            mods += [nn.Dropout(p)] if p else []
            n_in = n_out
        mods.append(nn.Linear(n_in, 1))
        self.layers = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.cat([self.embeds[0](x[:, 0]), self.embeds[1](x[:, 1])], 1)
        res = self.layers(self.emb_drop(h))
        return res if self.y_range is None else sigmoid_range(res, *self.y_range)

    @classmethod
    def from_classes(
        cls,
        emb_szs,
        layers,
        classes: dict,
        user: str | None = None,
        item: str | None = None,
        y_range=None,
        **kwargs,
    ) -> EmbeddingNN:
        """A registered (exportable) model that keeps ``classes`` so :meth:`weight` takes names."""
        y_range = _check_y_range(y_range)
        model = create_model(
            "embedding_nn",
            emb_szs=[[int(n), int(s)] for n, s in emb_szs],
            layers=[int(n) for n in layers],
            y_range=list(y_range) if y_range else None,
            **kwargs,
        )
        model.set_classes(classes, user, item)
        return model

    def weight(self, arr, is_item: bool = True) -> torch.Tensor:
        """The embeddings of items (or users, ``is_item=False``) given by name."""
        emb = self.embeds[1] if is_item else self.embeds[0]
        return emb(self._idx(arr, is_item).to(emb.weight.device))

    @property
    def item_factors(self) -> torch.Tensor:
        """All item embeddings, one row per item index."""
        return self.embeds[1].weight


@register_model(tags=("collab",))
def embedding_dot_bias(
    n_factors: int = 50, n_users: int = 1, n_items: int = 1, y_range=None
) -> EmbeddingDotBias:
    """Registry factory for :class:`EmbeddingDotBias` (what exports rebuild)."""
    return EmbeddingDotBias(n_factors, n_users, n_items, y_range=y_range)


@register_model(tags=("collab",))
def embedding_nn(
    emb_szs=((1, 1), (1, 1)),
    layers=(100, 50),
    y_range=None,
    ps=0.0,
    embed_p: float = 0.0,
    use_bn: bool = True,
) -> EmbeddingNN:
    """Registry factory for :class:`EmbeddingNN` (what exports rebuild)."""
    return EmbeddingNN(emb_szs, layers, y_range=y_range, ps=ps, embed_p=embed_p, use_bn=use_bn)
