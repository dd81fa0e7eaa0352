"""Bad input gets a clear error (or warning) that names the column and the fix; nothing is silently wrong."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from learnkit.tabular import (
    Categorify,
    DataError,
    FillMissing,
    Normalize,
    TabularDataLoaders,
    TabularPandas,
    tabular_learner,
)

CONT = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
CAT = ["island", "sex", "year"]
PROCS = [Categorify, FillMissing, Normalize]


def test_y_names_not_in_table(penguins):
    with pytest.raises(DataError, match=r"y_names.*'specie'.*Did you mean 'species'.*Fix"):
        TabularPandas(penguins, PROCS, CAT, CONT, y_names="specie")
    with pytest.raises(DataError, match="cat_names"):
        TabularPandas(penguins, PROCS, ["isle"], CONT, y_names="species")


def test_continuous_column_holding_strings(penguins):
    df = penguins.copy()
    df["body_mass_g"] = df["body_mass_g"].astype(object)
    df.loc[5, "body_mass_g"] = "heavy"
    df.loc[9, "body_mass_g"] = "n/a?"
    with pytest.raises(DataError) as e:
        TabularPandas(df, PROCS, CAT, CONT, y_names="species")
    msg = str(e.value)
    assert "'body_mass_g'" in msg and "'heavy'" in msg and "'n/a?'" in msg and "2 value(s)" in msg
    assert "cat_names" in msg and "pd.to_numeric" in msg
    # numbers stored as text are fine
    df = penguins.copy()
    df["body_mass_g"] = df["body_mass_g"].astype(str).replace("nan", np.nan)
    to = TabularPandas(df, PROCS, CAT, CONT, y_names="species")
    assert to.procs[0].na_dict["body_mass_g"] == penguins["body_mass_g"].median()


def test_all_nan_column(penguins):
    df = penguins.copy()
    df["empty"] = np.nan
    with pytest.raises(DataError, match=r"'empty'.*all 344 training values are missing.*drop"):
        TabularPandas(df, PROCS, CAT, CONT + ["empty"], y_names="species")


def test_category_never_seen_in_training(penguins):
    to = TabularPandas(penguins, PROCS, CAT, CONT, y_names="species")
    new = penguins.iloc[:3].copy()
    new["island"] = ["Atlantis", "Atlantis", "Dream"]
    with pytest.warns(UserWarning, match=r"'island' has 2 value\(s\) never seen in training.*Atlantis.*#na#"):
        p = to.new(new).process()
    assert p.items["island"].tolist() == [0, 0, 2]
    # a target class only in the validation rows is an error (its loss would be undefined)
    df = penguins.sort_values("species").reset_index(drop=True)
    with pytest.raises(DataError, match=r"target labels seen in training.*Gentoo"):
        TabularPandas(df, PROCS, CAT, CONT, "species", splits=(range(220), range(220, 344)))


def test_column_missing_at_inference(penguins):
    to = TabularPandas(penguins, PROCS, CAT, CONT, y_names="species")
    with pytest.raises(DataError, match=r"'flipper_length_mm'.*Fix"):
        to.new(penguins.drop(columns=["flipper_length_mm"])).process()
    dls = to.dataloaders(bs=64, device="cpu")
    with pytest.raises(DataError, match=r"\['sex'\]"):
        dls.test_dl(penguins.drop(columns=["sex"]))


def test_missing_values_only_at_inference(penguins):
    clean = penguins.dropna().reset_index(drop=True)
    to = TabularPandas(clean, PROCS, CAT, CONT, y_names="species")
    new = clean.iloc[:2].copy()
    new.loc[0, "bill_depth_mm"] = np.nan
    with pytest.warns(UserWarning, match=r"'bill_depth_mm' has 1 missing values here but none in training"):
        p = to.new(new).process()
    assert not p.conts.isna().any().any()
    # without FillMissing, missing values are an error instead of NaN predictions
    to = TabularPandas(clean, [Categorify, Normalize], CAT, CONT, y_names="species")
    with pytest.raises(DataError, match=r"'bill_depth_mm'.*add FillMissing"):
        to.new(new).process()
    with pytest.raises(
        DataError, match=r"missing values in the continuous column 'bill_length_mm'.*FillMissing"
    ):
        TabularPandas(penguins, [Categorify, Normalize], CAT, CONT, y_names="species")


def test_high_cardinality_categorical_warns(penguins):
    n = 2400
    df = pd.DataFrame(
        {"id": [f"u{i}" for i in range(n)], "x": np.arange(n, dtype=float), "y": [0, 1] * (n // 2)}
    )
    with pytest.warns(UserWarning, match=r"'id' has 2400 distinct values in 2400 training rows.*drop it"):
        TabularPandas(df, PROCS, ["id"], ["x"], "y")


def test_target_with_nan(penguins):
    df = penguins.copy()
    df.loc[[3, 7], "species"] = np.nan
    with pytest.raises(DataError, match=r"2 missing value\(s\) in 'species' \(rows \[3, 7\]\).*dropna"):
        TabularPandas(df, PROCS, CAT, CONT, y_names="species")


def test_loader_and_learner_arguments(penguins, tmp_path):
    with pytest.raises(DataError, match="y_names"):
        TabularDataLoaders.from_df(penguins)
    with pytest.raises(DataError, match="does not exist"):
        TabularDataLoaders.from_csv(tmp_path / "nope.csv", y_names="species")
    with pytest.raises(DataError, match="Categorify"):
        TabularPandas(penguins, [FillMissing, Normalize], CAT, CONT, "species").dataloaders(device="cpu")
    dls = TabularDataLoaders.from_df(penguins, y_names="species", device="cpu")
    from learnkit import ModelError

    with pytest.raises(ModelError, match="emb_szs keys"):
        tabular_learner(dls, emb_szs={"islnd": 3})
