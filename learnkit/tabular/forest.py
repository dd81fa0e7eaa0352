"""Random forests on the preprocessed table, the tools that explain them, and a pickle-free save.

``random_forest`` returns a plain scikit-learn ``RandomForestClassifier`` / ``RandomForestRegressor`` (the
estimator contract holds: ``Pipeline``, ``GridSearchCV``, ``clone`` all work). The interpretation helpers
work on any fitted scikit-learn forest; ``tree_contributions`` reads the trees' node values directly (no
extra package), and ``save_forest`` writes the trees' arrays in the safe format
(``torch.load(weights_only=True)``), never a pickle.

Forests cannot extrapolate: a prediction is an average of training targets, so on rows outside the
training range (later dates, larger sizes) it stays at the edge of what was seen. ``out_of_domain`` ranks
the columns that tell validation rows from training rows, the usual cause of such a gap.

>>> from sklearn.datasets import load_diabetes
>>> xs, y = load_diabetes(return_X_y=True, as_frame=True)
>>> m = random_forest(xs, y, n_estimators=10, random_state=0)
>>> feature_importance(m, xs).columns.tolist()
['cols', 'imp']
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import sparse
from scipy.cluster import hierarchy
from scipy.spatial.distance import squareform
from scipy.stats import spearmanr
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor
from sklearn.tree._tree import Tree

from ..exceptions import DataError, ModelError
from ..utils import atomic_save, safe_load

__all__ = [
    "random_forest",
    "get_oob",
    "feature_importance",
    "plot_fi",
    "cluster_columns",
    "oob_drop_scores",
    "plot_partial_dependence",
    "tree_contributions",
    "waterfall_plot",
    "out_of_domain",
    "save_forest",
    "load_forest",
    "FOREST_FORMAT",
]

FOREST_FORMAT = "learnkit.forest"
_NODE_FIELDS = (
    "left_child",
    "right_child",
    "feature",
    "threshold",
    "impurity",
    "n_node_samples",
    "weighted_n_node_samples",
    "missing_go_to_left",
)


def _is_classification(y) -> bool:
    s = pd.Series(np.asarray(y).ravel()) if not isinstance(y, pd.Series) else y
    return not pd.api.types.is_float_dtype(s.dtype)


def random_forest(
    xs,
    y,
    n_estimators: int = 40,
    max_samples=None,
    max_features=0.5,
    min_samples_leaf: int = 5,
    oob_score: bool = True,
    **kwargs,
):
    """Fit a scikit-learn random forest: a classifier for integer/text/category targets, a regressor for floats.

    ``max_samples`` (rows per tree) is capped at the number of rows; ``kwargs`` go to scikit-learn
    (``random_state``, ``n_jobs``, ...). The result is an ordinary scikit-learn estimator.

    >>> import pandas as pd
    >>> m = random_forest(pd.DataFrame({"a": range(40)}), [0, 1] * 20, n_estimators=5, random_state=0)
    >>> type(m).__name__
    'RandomForestClassifier'
    """
    if len(xs) != len(y):
        raise DataError(f"Expected xs and y with the same number of rows. Received: {len(xs)} and {len(y)}.")
    if pd.isna(pd.Series(np.asarray(y).ravel())).any():
        raise DataError(
            "Expected a target without missing values. Received: y with NaN. Fix: drop those rows."
        )
    if isinstance(max_samples, int) and max_samples > len(xs):
        max_samples = None
    cls = RandomForestClassifier if _is_classification(y) else RandomForestRegressor
    kwargs.setdefault("n_jobs", -1)
    return cls(
        n_estimators=n_estimators,
        max_samples=max_samples,
        max_features=max_features,
        min_samples_leaf=min_samples_leaf,
        oob_score=oob_score,
        **kwargs,
    ).fit(xs, y)


def get_oob(xs, y, **kwargs) -> float:
    """The out-of-bag score of a forest fitted on ``xs, y`` (``kwargs`` to :func:`random_forest`).

    Example: ``get_oob(to.train.xs, to.train.y, n_estimators=40)`` -> the OOB score.
    """
    kwargs.setdefault("random_state", 42)
    return float(random_forest(xs, y, oob_score=True, **kwargs).oob_score_)


def _names(m, xs) -> list:
    if isinstance(xs, pd.DataFrame):
        return [str(c) for c in xs.columns]
    if hasattr(m, "feature_names_in_"):
        return [str(c) for c in m.feature_names_in_]
    return [f"x{i}" for i in range(np.asarray(xs).shape[1])]


def feature_importance(m, xs) -> pd.DataFrame:
    """The forest's impurity-based importances as a DataFrame ``cols, imp``, most important first.

    ``feature_importance(m, xs).plot('cols', 'imp', 'barh')`` draws them (or :func:`plot_fi`).

    Example: ``fi = feature_importance(random_forest(xs, y), xs); fi[:10]``.
    """
    if not hasattr(m, "feature_importances_"):
        raise ModelError(
            f"Expected a fitted tree ensemble. Received: {type(m).__name__} without "
            "feature_importances_. Fix: fit it first (random_forest(xs, y))."
        )
    return (
        pd.DataFrame({"cols": _names(m, xs), "imp": m.feature_importances_})
        .sort_values("imp", ascending=False)
        .reset_index(drop=True)
    )


def plot_fi(fi: pd.DataFrame, max_n: int = 30, figsize=(12, 7), ax=None):
    """A horizontal bar plot of :func:`feature_importance`'s first ``max_n`` rows; returns the axes.

    Example: ``plot_fi(feature_importance(m, xs), max_n=20)``.
    """
    import matplotlib.pyplot as plt

    fi = fi.iloc[:max_n].iloc[::-1]
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    ax.barh(fi["cols"], fi["imp"])
    ax.set_xlabel("importance")
    return ax


def cluster_columns(xs: pd.DataFrame, figsize=(10, 6), font_size: int = 12, ax=None) -> dict:
    """A dendrogram of the columns by Spearman rank correlation (similar columns merge early); returns
    scipy's dendrogram dict (``'ivl'`` is the column order).

    Example: ``cluster_columns(xs)['ivl']`` -> the column order of the dendrogram.
    """
    import matplotlib.pyplot as plt

    if xs.shape[1] < 2:
        raise DataError(f"Expected at least two columns to cluster. Received: {list(xs.columns)}.")
    corr = np.round(spearmanr(xs.to_numpy()).correlation, 4)
    corr = np.nan_to_num(corr, nan=0.0)
    np.fill_diagonal(corr, 1.0)
    dist = squareform(1 - corr, checks=False)
    z = hierarchy.linkage(np.clip(dist, 0, None), method="average")
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return hierarchy.dendrogram(
        z, labels=list(map(str, xs.columns)), orientation="left", leaf_font_size=font_size, ax=ax
    )


def oob_drop_scores(xs: pd.DataFrame, y, cols, **kwargs) -> dict:
    """The out-of-bag score with every column (``'baseline'``) and after dropping each of ``cols`` in turn:
    a column whose removal keeps the score is redundant. ``kwargs`` go to :func:`random_forest`.

    Example: ``oob_drop_scores(xs, y, ['saleYear', 'saleElapsed'])['baseline']``.
    """
    missing = [c for c in cols if c not in xs.columns]
    if missing:
        raise DataError(
            f"Expected columns of xs. Received: {missing}. Fix: choose among {list(xs.columns)[:20]}."
        )
    out = {"baseline": get_oob(xs, y, **kwargs)}
    for c in cols:
        out[c] = get_oob(xs.drop(columns=[c]), y, **kwargs)
    return out


def plot_partial_dependence(m, xs, cols, grid_resolution: int = 20, ax=None, **kwargs):
    """Partial dependence of the prediction on ``cols`` (scikit-learn's ``PartialDependenceDisplay``).

    Example: ``plot_partial_dependence(m, valid_xs, ['YearMade', 'ProductSize'])``.
    """
    from sklearn.inspection import PartialDependenceDisplay

    if isinstance(m, RandomForestClassifier) and len(m.classes_) > 2:
        kwargs.setdefault("target", m.classes_[-1])
    if isinstance(xs, pd.DataFrame):  # scikit-learn writes float64 grid values into the columns
        xs = xs.astype({c: np.float64 for c in xs.columns if xs[c].dtype == np.float32})
    return PartialDependenceDisplay.from_estimator(
        m, xs, list(cols), grid_resolution=grid_resolution, ax=ax, **kwargs
    )


def _tree_values(est) -> np.ndarray:
    """(n_nodes, n_outputs) for regression or (n_nodes, n_classes) probabilities for single-output classification."""
    v = est.tree_.value
    if isinstance(est, DecisionTreeClassifier):
        if v.shape[1] != 1:
            raise ModelError(
                f"Expected a single-output classifier for tree_contributions. Received: {v.shape[1]} outputs."
            )
        v = v[:, 0, :]
        return v / v.sum(axis=1, keepdims=True)
    return v[:, :, 0]


def tree_contributions(m, xs):
    """Split a forest's predictions into a bias and one contribution per feature, from the trees' node values.

    Walking each tree from the root to the row's leaf, the change in the node value at each split is credited
    to the split's feature; averaged over the trees. Returns ``(prediction, bias, contributions)`` with
    ``bias + contributions.sum(axis=1) == prediction`` (to float rounding).

    Shapes (as the treeinterpreter package's): regression ``(n,)``, ``(n,)``, ``(n, n_features)`` (several
    outputs add a last axis); classification ``(n, n_classes)``, ``(n, n_classes)``,
    ``(n, n_features, n_classes)``.

    Example: ``pred, bias, contribs = tree_contributions(m, valid_xs.iloc[:5])``.
    """
    ests = getattr(m, "estimators_", None)
    if ests is None:
        if not hasattr(m, "tree_"):
            raise ModelError(f"Expected a fitted scikit-learn forest or tree. Received: {type(m).__name__}.")
        ests = [m]
    X = xs.to_numpy(dtype=np.float32) if isinstance(xs, pd.DataFrame) else np.asarray(xs, dtype=np.float32)
    n, n_feat = X.shape
    pred = bias = contrib = None
    for est in ests:
        tree = est.tree_
        vals = _tree_values(est)
        k = vals.shape[1]
        left, right, feat = tree.children_left, tree.children_right, tree.feature
        parent = np.full(tree.node_count, -1)
        inner = np.flatnonzero(left >= 0)
        parent[left[inner]] = inner
        parent[right[inner]] = inner
        child = np.flatnonzero(parent >= 0)
        delta = vals[child] - vals[parent[child]]  # (n_child, k)
        fcol = feat[parent[child]]
        rows = np.repeat(child, k)
        cols = (fcol[:, None] * k + np.arange(k)[None, :]).ravel()
        D = sparse.csr_matrix((delta.ravel(), (rows, cols)), shape=(tree.node_count, n_feat * k))
        P = est.decision_path(X)
        c = (P @ D).toarray().reshape(n, n_feat, k)
        leaves = est.apply(X)
        p = vals[leaves]
        b = np.broadcast_to(vals[0], (n, k))
        pred = p if pred is None else pred + p
        bias = b.copy() if bias is None else bias + b
        contrib = c if contrib is None else contrib + c
    t = len(ests)
    pred, bias, contrib = pred / t, bias / t, contrib / t
    if not isinstance(ests[0], DecisionTreeClassifier) and pred.shape[1] == 1:
        return pred[:, 0], bias[:, 0], contrib[:, :, 0]
    return pred, bias, contrib


def waterfall_plot(
    contributions,
    names,
    bias: float = 0.0,
    threshold: float = 0.0,
    rotation: int = 45,
    figsize=(10, 5),
    ax=None,
):
    """A waterfall of one row's contributions (from :func:`tree_contributions`) from the bias to the
    prediction: green bars raise it, red bars lower it; features under ``threshold`` are merged.

    Example: ``waterfall_plot(contribs[0], valid_xs.columns, bias=bias[0], threshold=0.08)``.
    """
    import matplotlib.pyplot as plt

    c = np.asarray(contributions, dtype=float).ravel()
    names = list(map(str, names))
    if len(c) != len(names):
        raise DataError(
            f"Expected one name per contribution. Received: {len(c)} contributions, {len(names)} names."
        )
    order = np.argsort(-np.abs(c))
    keep = [i for i in order if abs(c[i]) > threshold]
    other = float(c[[i for i in order if abs(c[i]) <= threshold]].sum())
    labels, vals = [names[i] for i in keep], [float(c[i]) for i in keep]
    if other:
        labels.append("other")
        vals.append(other)
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    start = float(bias)
    for i, v in enumerate(vals):
        ax.bar(i, v, bottom=start, color="tab:green" if v >= 0 else "tab:red")
        start += v
    ax.bar(len(vals), start, color="tab:blue")
    ax.axhline(float(bias), color="grey", lw=0.8, ls="--")
    ax.set_xticks(range(len(vals) + 1))
    ax.set_xticklabels(labels + ["net"], rotation=rotation, ha="right")
    return ax


def out_of_domain(xs: pd.DataFrame, valid_xs: pd.DataFrame, **kwargs) -> pd.DataFrame:
    """Rank the features a forest uses to tell training rows from validation rows (``cols, imp``): the top
    ones differ between the two sets, the usual reason a model does worse on the validation rows.

    Example: ``out_of_domain(xs, valid_xs)[:6]`` -> the features that tell the two sets apart.
    """
    if list(xs.columns) != list(valid_xs.columns):
        raise DataError(
            f"Expected the same columns in xs and valid_xs. Received: {list(xs.columns)[:10]} and "
            f"{list(valid_xs.columns)[:10]}."
        )
    df = pd.concat([xs, valid_xs], ignore_index=True)
    is_valid = np.r_[np.zeros(len(xs), dtype=np.int64), np.ones(len(valid_xs), dtype=np.int64)]
    kwargs.setdefault("random_state", 42)
    m = random_forest(df, is_valid, **kwargs)
    return feature_importance(m, df)


# ---------------------------------------------------------------------------------------------- safe save
def _plain_params(params: dict) -> dict:
    out = {}
    for k, v in params.items():
        if isinstance(v, np.generic):
            v = v.item()
        if v is None or isinstance(v, (bool, int, float, str)):
            out[k] = v
        elif isinstance(v, dict) and all(isinstance(x, (int, float, str)) for x in v.values()):
            out[k] = {str(a): b for a, b in v.items()}
        else:
            raise ModelError(
                f"save_forest stores plain parameters only. Received: {k}={v!r}. Fix: use a plain value."
            )
    return out


def _plain_list(a) -> list:
    return [x.item() if isinstance(x, np.generic) else x for x in np.asarray(a).tolist()]


def save_forest(m, path: str | os.PathLike) -> Path:
    """Write a fitted scikit-learn random forest as plain data and tensors (atomically): the file loads with
    ``torch.load(weights_only=True)`` and :func:`load_forest` gives identical predictions.

    >>> save_forest(m, "forest.pt"); m2 = load_forest("forest.pt")  # doctest: +SKIP
    """
    if not isinstance(m, (RandomForestClassifier, RandomForestRegressor)) or not hasattr(m, "estimators_"):
        raise ModelError(
            f"Expected a fitted RandomForestClassifier or RandomForestRegressor. Received: "
            f"{type(m).__name__}. Fix: m = random_forest(xs, y)."
        )
    clf = isinstance(m, RandomForestClassifier)
    if clf and m.n_outputs_ != 1:
        raise ModelError("save_forest supports single-output classifiers. Received: several outputs.")
    trees = []
    for est in m.estimators_:
        st = est.tree_.__getstate__()
        nodes = st["nodes"]
        trees.append(
            {
                "max_depth": int(st["max_depth"]),
                "node_count": int(st["node_count"]),
                "nodes": {
                    f: torch.from_numpy(np.ascontiguousarray(nodes[f]))
                    for f in _NODE_FIELDS
                    if f in nodes.dtype.names
                },
                "values": torch.from_numpy(np.ascontiguousarray(st["values"])),
                "random_state": int(est.random_state) if est.random_state is not None else None,
            }
        )
    spec = {
        "format": FOREST_FORMAT,
        "version": 1,
        "sklearn_kind": "classifier" if clf else "regressor",
        "params": _plain_params(m.get_params()),
        "n_features_in": int(m.n_features_in_),
        "n_outputs": int(m.n_outputs_),
        "feature_names": [str(c) for c in m.feature_names_in_] if hasattr(m, "feature_names_in_") else None,
        "classes": _plain_list(m.classes_) if clf else None,
        "max_features_": [int(e.max_features_) for e in m.estimators_][:1],
        "oob_score": float(m.oob_score_) if hasattr(m, "oob_score_") else None,
        "trees": trees,
    }
    return atomic_save(spec, path)


def load_forest(path: str | os.PathLike):
    """Rebuild a forest written by :func:`save_forest` (read with ``weights_only=True``; nothing unpickled).

    Example: ``save_forest(m, 'forest.pth'); m2 = load_forest('forest.pth'); m2.predict(xs)``.
    """
    st = safe_load(path)
    if not isinstance(st, dict) or st.get("format") != FOREST_FORMAT:
        raise ModelError(
            f"{str(path)!r} is not a learnkit forest file. Expected a file written by save_forest()."
        )
    clf = st["sklearn_kind"] == "classifier"
    params = dict(st["params"])
    m = (RandomForestClassifier if clf else RandomForestRegressor)(**params)
    n_feat, n_out = st["n_features_in"], st["n_outputs"]
    classes = np.asarray(st["classes"]) if clf else None
    n_classes = np.array([len(classes)] if clf else [1] * n_out, dtype=np.intp)
    tree_params = {
        k: params[k]
        for k in (
            "criterion",
            "max_depth",
            "min_samples_split",
            "min_samples_leaf",
            "min_weight_fraction_leaf",
            "max_features",
            "max_leaf_nodes",
            "min_impurity_decrease",
            "ccp_alpha",
            "monotonic_cst",
        )
        if k in params
    }
    if clf and "class_weight" in params:
        tree_params["class_weight"] = params["class_weight"]
    ests = []
    proto = Tree(n_feat, n_classes, n_out)
    dtype = proto.__getstate__()["nodes"].dtype
    for t in st["trees"]:
        nodes = np.zeros(t["node_count"], dtype=dtype)
        for f, a in t["nodes"].items():
            nodes[f] = a.numpy()
        tree = Tree(n_feat, n_classes, n_out)
        tree.__setstate__(
            {
                "max_depth": t["max_depth"],
                "node_count": t["node_count"],
                "nodes": nodes,
                "values": np.ascontiguousarray(t["values"].numpy()),
            }
        )
        est = (DecisionTreeClassifier if clf else DecisionTreeRegressor)(
            random_state=t["random_state"], **tree_params
        )
        est.n_features_in_, est.n_outputs_, est.tree_ = n_feat, n_out, tree
        est.max_features_ = st["max_features_"][0] if st["max_features_"] else n_feat
        if clf:
            est.classes_, est.n_classes_ = classes, int(n_classes[0])
        ests.append(est)
    m.estimators_ = ests
    m.estimator_ = (DecisionTreeClassifier if clf else DecisionTreeRegressor)(**tree_params)
    m.n_features_in_, m.n_outputs_ = n_feat, n_out
    if st["feature_names"] is not None:
        m.feature_names_in_ = np.asarray(st["feature_names"], dtype=object)
    if clf:
        m.classes_, m.n_classes_ = classes, int(n_classes[0])
    if st["oob_score"] is not None:
        m.oob_score_ = st["oob_score"]
    return m
