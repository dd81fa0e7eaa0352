"""The tabular neural net: entity embeddings for categories, BatchNorm on continuous values, linear blocks.

>>> m = TabularModel([(3, 2), (5, 3)], n_cont=4, out_sz=2, layers=[16, 8])
>>> m(torch.randint(0, 3, (6, 2)), torch.randn(6, 4)).shape
torch.Size([6, 2])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..exceptions import ModelError
from ..models.registry import register_model

__all__ = ["TabularModel", "tabular_model", "emb_sz_rule", "get_emb_sz", "SigmoidRange", "tabular_config"]


def emb_sz_rule(n_cat: int) -> int:
    """The course's embedding size for a column with ``n_cat`` categories: ``min(600, round(1.6 * n_cat**0.56))``.

    >>> emb_sz_rule(10), emb_sz_rule(1000)
    (6, 77)
    """
    return int(min(600, round(1.6 * n_cat**0.56)))


def get_emb_sz(to, sz_dict: dict | None = None) -> list[tuple[int, int]]:
    """``(n_categories, size)`` for each categorical column of ``to`` (a TabularPandas, recipe or DataLoaders),
    sized by :func:`emb_sz_rule` unless ``sz_dict`` names the column.

    >>> import pandas as pd
    >>> from learnkit.tabular import TabularPandas, Categorify
    >>> get_emb_sz(TabularPandas(pd.DataFrame({"a": list("abcab")}), [Categorify], ["a"]), {"a": 5})
    [(4, 5)]
    """
    recipe = getattr(to, "recipe", to)
    classes, names = recipe.classes, list(recipe.cat_names)
    sz_dict = dict(sz_dict or {})
    unknown = [k for k in sz_dict if k not in names]
    if unknown:
        raise ModelError(
            f"Expected emb_szs keys among the categorical columns {names}. Received: {unknown}. "
            "Fix: name categorical columns (the _na columns count too)."
        )
    out = []
    for c in names:
        n = len(classes[c])
        out.append((n, int(sz_dict.get(c, emb_sz_rule(n)))))
    return out


class SigmoidRange(nn.Module):
    """``sigmoid(x) * (high - low) + low``: squashes a regression output into ``y_range``.

    >>> SigmoidRange(0, 5)(torch.zeros(1)).item()
    2.5
    """

    def __init__(self, low: float, high: float):
        super().__init__()
        self.low, self.high = float(low), float(high)

    def forward(self, x):
        return torch.sigmoid(x) * (self.high - self.low) + self.low


def _block(n_in: int, n_out: int, bn: bool, p: float, act: bool) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Linear(n_in, n_out, bias=not bn)]
    if act:
        layers.append(nn.ReLU(inplace=True))
    if bn:
        layers.append(nn.BatchNorm1d(n_out))
    if p:
        layers.append(nn.Dropout(p))
    return layers


class TabularModel(nn.Module):
    """Embeddings for ``x_cat`` (with ``embed_p`` dropout), BatchNorm on ``x_cont`` (``bn_cont``), then
    ``Linear -> ReLU -> BatchNorm -> Dropout`` blocks of sizes ``layers`` and a final linear layer to ``out_sz``
    (a :class:`SigmoidRange` when ``y_range``, a BatchNorm before it when ``bn_final``).

    Args:
        emb_szs: ``(n_categories, size)`` per categorical column. n_cont: number of continuous columns.
        out_sz: outputs. layers: hidden sizes. ps: dropout per hidden layer (a float for all).

    Example: ``TabularModel([(10, 6)], n_cont=3, out_sz=2, layers=[200, 100])(x_cat, x_cont)`` -> ``(bs, 2)``.
    """

    def __init__(
        self,
        emb_szs: Sequence,
        n_cont: int,
        out_sz: int,
        layers: Sequence[int],
        ps=None,
        embed_p: float = 0.0,
        y_range=None,
        use_bn: bool = True,
        bn_final: bool = False,
        bn_cont: bool = True,
    ):
        super().__init__()
        layers = list(layers)
        if ps is None:
            ps = [0.0] * len(layers)
        elif isinstance(ps, (int, float)):
            ps = [float(ps)] * len(layers)
        ps = list(ps)
        if len(ps) != len(layers):
            raise ModelError(
                f"Expected one dropout per layer. Received: layers={layers}, ps={ps}. "
                "Fix: pass ps as a float or a list as long as layers."
            )
        self.embeds = nn.ModuleList([nn.Embedding(int(n), int(d)) for n, d in emb_szs])
        self.emb_drop = nn.Dropout(embed_p)
        self.bn_cont = nn.BatchNorm1d(n_cont) if bn_cont and n_cont else None
        self.n_emb, self.n_cont = sum(int(d) for _, d in emb_szs), int(n_cont)
        sizes = [self.n_emb + self.n_cont] + layers
        body: list[nn.Module] = []
        for i in range(len(layers)):
            body += _block(sizes[i], sizes[i + 1], use_bn, ps[i], act=True)
        if bn_final:
            body.append(nn.BatchNorm1d(sizes[-1]))
        body.append(nn.Linear(sizes[-1], int(out_sz)))
        if y_range is not None:
            body.append(SigmoidRange(*y_range))
        self.layers = nn.Sequential(*body)

    def forward(self, x_cat: torch.Tensor, x_cont: torch.Tensor) -> torch.Tensor:
        parts = []
        if self.embeds:
            x = torch.cat([e(x_cat[:, i]) for i, e in enumerate(self.embeds)], 1)
            parts.append(self.emb_drop(x))
        if self.n_cont:
            parts.append(self.bn_cont(x_cont) if self.bn_cont is not None else x_cont)
        return self.layers(torch.cat(parts, 1) if len(parts) > 1 else parts[0])


def tabular_config(**kwargs) -> dict:
    """Keyword arguments for :class:`TabularModel` (``ps``, ``embed_p``, ``use_bn``, ``bn_final``, ``bn_cont``,
    ``y_range``), as ``tabular_learner(config=...)`` takes them.

    >>> tabular_config(ps=0.1, embed_p=0.05)
    {'ps': 0.1, 'embed_p': 0.05}
    """
    allowed = {"ps", "embed_p", "y_range", "use_bn", "bn_final", "bn_cont"}
    bad = sorted(set(kwargs) - allowed)
    if bad:
        raise ModelError(f"Expected TabularModel arguments among {sorted(allowed)}. Received: {bad}.")
    return dict(kwargs)


@register_model(name="tabular_model", tags=("tabular",))
def tabular_model(
    emb_szs: Sequence,
    n_cont: int,
    out_sz: int,
    layers: Sequence[int] = (200, 100),
    ps=None,
    embed_p: float = 0.0,
    y_range=None,
    use_bn: bool = True,
    bn_final: bool = False,
    bn_cont: bool = True,
) -> TabularModel:
    """The registered factory behind :func:`tabular_learner` (plain-data arguments, so exports rebuild it).

    >>> tabular_model([[4, 3]], n_cont=2, out_sz=1, layers=[8])(torch.zeros(2, 1).long(), torch.zeros(2, 2)).shape
    torch.Size([2, 1])
    """
    return TabularModel(
        emb_szs,
        n_cont,
        out_sz,
        layers,
        ps=ps,
        embed_p=embed_p,
        y_range=y_range,
        use_bn=use_bn,
        bn_final=bn_final,
        bn_cont=bn_cont,
    )
