"""TabularPandas and its procs on real tables: fitted on the training rows only, vectorised, safe at inference."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from learnkit.tabular import (
    Categorify,
    DataError,
    FillMissing,
    FillStrategy,
    Normalize,
    TabularPandas,
    add_datepart,
    cont_cat_split,
    df_shrink,
)

CONT = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
CAT = ["island", "sex", "year"]


def _to(df, splits, procs=(Categorify, FillMissing, Normalize), **kw):
    return TabularPandas(df, list(procs), CAT, CONT, "species", splits=splits, **kw)


def test_procs_fit_on_training_rows_only(penguins, random_splits):
    tr, va = random_splits(len(penguins))
    to = _to(penguins, (tr, va))
    train = penguins.iloc[tr]
    fill, norm = to.procs[0], to.procs[2]
    # medians and normalisation stats come from the training rows, not the whole table
    for c in CONT:
        assert fill.na_dict[c] == pytest.approx(train[c].median(), rel=1e-6)
        filled = train[c].fillna(train[c].median())
        assert norm.means[c] == pytest.approx(filled.mean(), rel=1e-5)
        assert norm.stds[c] == pytest.approx(filled.std(ddof=0), rel=1e-4)
    # the processed training columns are standardised; validation ones only approximately
    assert np.allclose(to.train.conts.mean().to_numpy(), 0, atol=1e-4)
    assert not np.allclose(to.valid.conts.mean().to_numpy(), 0, atol=1e-4)
    # a category only in the validation rows is not in the fitted classes
    df = penguins.copy()
    df.loc[va[0], "island"] = "Atlantis"
    to2 = _to(df, (tr, va))
    assert "Atlantis" not in to2.classes["island"]
    assert to2.items["island"].iloc[va[0]] == 0


def test_categorify_codes_na_and_order(penguins):
    to = _to(penguins, None)
    assert to.classes["island"] == ["#na#", "Biscoe", "Dream", "Torgersen"]
    codes = to.xs["island"].to_numpy()
    expected = penguins["island"].map({"Biscoe": 1, "Dream": 2, "Torgersen": 3}).to_numpy()
    assert (codes == expected).all()
    # missing sex -> 0
    assert (to.xs["sex"].to_numpy()[penguins["sex"].isna().to_numpy()] == 0).all()
    assert to.xs["island"].dtype == np.int8  # reduce_memory: smallest int type
    # an ordered pandas categorical keeps its order, not alphabetical
    df = penguins.copy()
    df["size"] = pd.Categorical(
        np.where(df["body_mass_g"] > 4000, "large", "small"), categories=["small", "large"], ordered=True
    )
    to = TabularPandas(df, [Categorify], ["size"], y_names="species")
    assert to.classes["size"] == ["#na#", "small", "large"]


def test_fill_missing_adds_na_columns_and_strategies(penguins):
    to = _to(penguins, None)
    assert "body_mass_g_na" in to.cat_names
    na = to.xs["body_mass_g_na"].to_numpy()
    assert ((na == 2) == penguins["body_mass_g"].isna().to_numpy()).all()
    assert not to.conts.isna().any().any()
    med = penguins["body_mass_g"].median()
    for strategy, value in (
        (FillStrategy.median, med),
        (FillStrategy.mode, penguins["body_mass_g"].mode()[0]),
        (FillStrategy.constant, -1.0),
    ):
        to = TabularPandas(
            penguins, [FillMissing(fill_strategy=strategy, fill_val=-1.0)], cont_names=CONT, y_names="species"
        )
        row = np.flatnonzero(penguins["body_mass_g"].isna().to_numpy())[0]
        assert to.items["body_mass_g"].iloc[row] == pytest.approx(value)
    to = TabularPandas(penguins, [FillMissing(add_col=False)], cont_names=CONT, y_names="species")
    assert to.cat_names == []


def test_unseen_values_and_missing_only_at_inference(penguins, random_splits):
    tr, va = random_splits(len(penguins))
    clean = penguins.dropna().reset_index(drop=True)
    to = _to(clean, random_splits(len(clean)))
    assert to.cat_names == CAT  # no _na columns: nothing was missing in training
    new = clean.iloc[:4].copy()
    new.loc[0, "island"] = "Atlantis"  # never seen
    new.loc[1, "body_mass_g"] = np.nan  # missing only at inference
    with pytest.warns(UserWarning) as rec:
        p = to.new(new).process()
    msgs = " ".join(str(w.message) for w in rec)
    assert "'island'" in msgs and "Atlantis" in msgs and "never seen" in msgs
    assert "'body_mass_g'" in msgs and "none in training" in msgs
    assert p.items["island"].iloc[0] == 0
    norm = to.procs[-1]
    filled = p.items["body_mass_g"].iloc[1] * norm.stds["body_mass_g"] + norm.means["body_mass_g"]
    assert filled == pytest.approx(to.procs[0].na_dict["body_mass_g"], rel=1e-5)
    # the other rows are processed exactly as in training
    assert np.allclose(p.conts.iloc[2:].to_numpy(), to.conts.iloc[2:4].to_numpy())


def test_user_table_is_not_modified_and_train_valid_views(penguins, random_splits):
    before = penguins.copy()
    tr, va = random_splits(len(penguins))
    to = _to(penguins, (tr, va))
    pd.testing.assert_frame_equal(penguins, before)
    assert len(to.train) == len(tr) and len(to.valid) == len(va)
    assert list(to.train.y.index) == list(penguins.index[tr])
    assert to.vocab == ["Adelie", "Chinstrap", "Gentoo"]
    assert set(to.y.unique()) == {0, 1, 2}
    assert list(to.xs.columns) == to.cat_names + to.cont_names
    assert to.conts.dtypes.unique().tolist() == [np.float32]
    assert to.show(3)["island"].tolist() == penguins["island"].iloc[:3].tolist()


def test_cont_cat_split_add_datepart_df_shrink(penguins):
    cont, cat = cont_cat_split(penguins, dep_var="species")
    assert cont == CONT and cat == CAT
    cont, cat = cont_cat_split(penguins, max_card=2, dep_var="species")
    assert "year" in cont
    df = pd.DataFrame({"saledate": ["2011-01-31", "2012-06-15", None], "v": [1, 2, 3]})
    out = add_datepart(df, "saledate")
    assert "saledate" not in out.columns
    assert out["saleYear"].tolist()[:2] == [2011, 2012]
    assert out["saleIs_month_end"].tolist()[:2] == [True, False]
    assert np.isnan(out["saleElapsed"].iloc[2])
    shrunk = df_shrink(penguins)
    assert shrunk["year"].dtype == np.int16 and shrunk["body_mass_g"].dtype == np.float32
    assert isinstance(shrunk["island"].dtype, pd.CategoricalDtype)
    assert shrunk.memory_usage(deep=True).sum() < penguins.memory_usage(deep=True).sum()


def test_regression_and_multi_target_tables(diabetes):
    to = TabularPandas(diabetes, [Categorify, Normalize], ["sex"], ["age", "bmi", "bp"], "target")
    assert to.y_kind == "regression" and to.c == 1 and to.y.dtype == np.float32
    to = TabularPandas(diabetes, [Categorify, Normalize], ["sex"], ["age", "bmi"], ["target", "bp"])
    assert to.y_kind == "regression" and to.c == 2 and list(to.y.columns) == ["target", "bp"]


def test_no_per_row_python_at_scale():
    # 200k rows through all procs: vectorised, so this takes well under a second of work per column
    n = 200_000
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {"c": rng.choice(["a", "b", "c"], n), "x": rng.normal(size=n), "y": rng.integers(0, 2, n)}
    )
    df.loc[::7, "x"] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        to = TabularPandas(df, [Categorify, FillMissing, Normalize], ["c"], ["x"], "y")
    assert len(to.xs) == n and to.xs["x_na"].eq(2).sum() == len(df.loc[::7])


def test_bad_procs_argument():
    with pytest.raises(DataError, match="procs"):
        TabularPandas(pd.DataFrame({"a": [1]}), ["Categorify"], ["a"])
