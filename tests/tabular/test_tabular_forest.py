"""Random forests on the preprocessed table: the scikit-learn contract, interpretation that adds up, and a
safe save that reloads to identical predictions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from learnkit.tabular import (
    Categorify,
    FillMissing,
    ModelError,
    TabularPandas,
    UnsafeFileError,
    cluster_columns,
    feature_importance,
    load_forest,
    oob_drop_scores,
    out_of_domain,
    plot_fi,
    plot_partial_dependence,
    random_forest,
    save_forest,
    tree_contributions,
    waterfall_plot,
)

CONT = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
CAT = ["island", "sex", "year"]


@pytest.fixture()
def penguin_table(penguins, random_splits):
    return TabularPandas(
        penguins, [Categorify, FillMissing], CAT, CONT, "species", splits=random_splits(len(penguins))
    )


@pytest.fixture()
def diabetes_table(diabetes, random_splits):
    cont = [c for c in diabetes.columns if c not in ("sex", "target")]
    return TabularPandas(
        diabetes, [Categorify, FillMissing], ["sex"], cont, "target", splits=random_splits(len(diabetes))
    )


def test_forest_kind_from_target_and_quality(penguin_table, diabetes_table):
    to = penguin_table
    m = random_forest(to.train.xs, to.train.y, random_state=0, n_jobs=1)
    assert isinstance(m, RandomForestClassifier) and m.n_estimators == 40 and m.min_samples_leaf == 5
    acc = (m.predict(to.valid.xs) == to.valid.y).mean()
    assert acc > 0.9 and 0.9 < m.oob_score_ <= 1
    to = diabetes_table
    r = random_forest(to.train.xs, to.train.y, random_state=0, n_jobs=1)
    assert isinstance(r, RandomForestRegressor)
    mse = ((r.predict(to.valid.xs) - to.valid.y) ** 2).mean()
    assert mse < 0.8 * ((to.valid.y - to.train.y.mean()) ** 2).mean()
    # max_samples larger than the table is capped, not an error
    assert (
        random_forest(
            to.train.xs, to.train.y, n_estimators=3, max_samples=10**6, oob_score=False, n_jobs=1
        ).max_samples
        is None
    )


def test_estimator_contract_pipeline_and_grid_search(diabetes_table):
    to = diabetes_table
    m = random_forest(to.train.xs, to.train.y, n_estimators=5, oob_score=False, random_state=0, n_jobs=1)
    pipe = Pipeline([("scale", StandardScaler()), ("rf", m)]).fit(to.train.xs, to.train.y)
    assert pipe.predict(to.valid.xs).shape == (len(to.valid),)
    gs = GridSearchCV(m, {"min_samples_leaf": [3, 15]}, cv=2).fit(to.train.xs, to.train.y)
    assert gs.best_params_["min_samples_leaf"] in (3, 15)


def test_feature_importance_and_plots(penguin_table):
    to = penguin_table
    m = random_forest(to.train.xs, to.train.y, random_state=0, n_jobs=1)
    fi = feature_importance(m, to.train.xs)
    assert list(fi.columns) == ["cols", "imp"] and set(fi["cols"]) == set(to.train.xs.columns)
    assert fi["imp"].is_monotonic_decreasing and fi["imp"].sum() == pytest.approx(1)
    assert fi["cols"].iloc[0] in CONT + ["island"]  # a measurement or the island separates species
    assert len(plot_fi(fi).patches) == len(fi)
    fi.plot("cols", "imp", "barh")  # the course's spelling
    dend = cluster_columns(to.train.xs[CONT])
    assert sorted(dend["ivl"]) == sorted(CONT)
    disp = plot_partial_dependence(m, to.valid.xs, ["flipper_length_mm"])
    assert disp.pd_results[0]["average"].shape[-1] == 20


def test_tree_contributions_sum_exactly_to_the_prediction(penguin_table, diabetes_table):
    to = diabetes_table
    r = random_forest(to.train.xs, to.train.y, random_state=0, n_jobs=1)
    xs = to.valid.xs
    pred, bias, contrib = tree_contributions(r, xs)
    assert pred.shape == (len(xs),) and bias.shape == (len(xs),) and contrib.shape == (len(xs), xs.shape[1])
    np.testing.assert_allclose(pred, r.predict(xs), rtol=0, atol=1e-9)
    np.testing.assert_allclose(bias + contrib.sum(axis=1), pred, rtol=0, atol=1e-9)
    assert np.allclose(bias, bias[0])  # the bias is the training mean the trees start from
    to = penguin_table
    c = random_forest(to.train.xs, to.train.y, random_state=0, n_jobs=1)
    pred, bias, contrib = tree_contributions(c, to.valid.xs)
    assert pred.shape == (len(to.valid), 3) and contrib.shape == (len(to.valid), to.valid.xs.shape[1], 3)
    np.testing.assert_allclose(pred, c.predict_proba(to.valid.xs), atol=1e-9)
    np.testing.assert_allclose(bias + contrib.sum(axis=1), pred, atol=1e-9)
    ax = waterfall_plot(contrib[0, :, 0], to.valid.xs.columns, bias=bias[0, 0], threshold=0.01)
    assert len(ax.patches) >= 2


def test_out_of_domain_and_oob_drop_scores(diabetes, diabetes_table):
    to = diabetes_table
    # validation rows all older than the training rows: 'age' tells them apart
    df = diabetes.sort_values("age").reset_index(drop=True)
    old = TabularPandas(
        df,
        [Categorify],
        ["sex"],
        [c for c in df.columns if c not in ("sex", "target")],
        "target",
        splits=(range(330), range(330, len(df))),
    )
    ood = out_of_domain(old.train.xs, old.valid.xs, n_estimators=20, n_jobs=1)
    assert list(ood.columns) == ["cols", "imp"] and ood["cols"].iloc[0] == "age" and ood["imp"].iloc[0] > 0.5
    scores = oob_drop_scores(to.train.xs, to.train.y, ["s1", "s2"], n_estimators=20, n_jobs=1)
    assert list(scores) == ["baseline", "s1", "s2"] and all(-1 < v < 1 for v in scores.values())


def test_safe_save_and_load_identical_predictions(penguin_table, diabetes_table, tmp_path):
    for to, fname in ((penguin_table, "clf.pt"), (diabetes_table, "reg.pt")):
        m = random_forest(to.train.xs, to.train.y, n_estimators=15, random_state=0, n_jobs=1)
        path = save_forest(m, tmp_path / fname)
        blob = torch.load(path, weights_only=True)  # plain data and tensors only
        assert blob["format"] == "learnkit.forest" and len(blob["trees"]) == 15
        m2 = load_forest(path)
        assert type(m2) is type(m) and m2.get_params() == m.get_params()
        if isinstance(m, RandomForestClassifier):
            np.testing.assert_array_equal(m2.predict_proba(to.valid.xs), m.predict_proba(to.valid.xs))
            assert list(m2.classes_) == list(m.classes_)
        np.testing.assert_array_equal(m2.predict(to.valid.xs), m.predict(to.valid.xs))
        assert list(m2.feature_names_in_) == list(to.train.xs.columns)
        np.testing.assert_allclose(
            tree_contributions(m2, to.valid.xs)[0], tree_contributions(m, to.valid.xs)[0]
        )
        assert not list(tmp_path.glob("*.tmp*"))  # atomic: no temporary left behind
    # a pickle is refused, never unpickled
    torch.save({"format": "learnkit.forest", "obj": pd.DataFrame()}, tmp_path / "evil.pt")
    with pytest.raises(UnsafeFileError):
        load_forest(tmp_path / "evil.pt")
    with pytest.raises(ModelError, match="fitted RandomForest"):
        save_forest(object(), tmp_path / "x.pt")
