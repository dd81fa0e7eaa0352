"""Multi-label tabular targets on a real table (palmerpenguins written to CSV): several 0/1 columns with
``MultiCategoryBlock(encoded=True, vocab=...)`` (fastai's way) and one column of label lists. The learner picks
the multi-label loss and metric, beats the per-label majority baseline, predicts decoded labels with their
probabilities, and an export predicts the same after ``load_learner``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from learnkit import load_learner
from learnkit.exceptions import DataError
from learnkit.losses import BCEWithLogitsLossFlat
from learnkit.tabular import (
    Categorify,
    FillMissing,
    MultiCategoryBlock,
    Normalize,
    TabularDataLoaders,
    TabularPandas,
    random_forest,
    tabular_learner,
)

CAT = ["island", "sex", "year"]
CONT = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm"]
LABELS = ["Adelie", "Chinstrap", "Gentoo", "heavy"]


@pytest.fixture(scope="module")
def labelled_csv(tmp_path_factory):
    """penguins with four binary targets derived from it (the species, one-hot, and 'heavy': body mass over
    the median), as 0/1 columns and as a 'tags' column 'Adelie;heavy', written to CSV."""
    import palmerpenguins

    df = palmerpenguins.load_penguins().dropna(subset=["body_mass_g"]).reset_index(drop=True)
    for s in LABELS[:3]:
        df[s] = (df["species"] == s).astype(int)
    df["heavy"] = (df["body_mass_g"] > df["body_mass_g"].median()).astype(int)
    df["tags"] = [";".join(lab for lab in LABELS if r[lab]) for _, r in df[LABELS].iterrows()]
    df = df.drop(columns=["species", "body_mass_g"])
    path = tmp_path_factory.mktemp("penguins_multi") / "penguins_multi.csv"
    df.to_csv(path, index=False)
    return path


def _valid_idx(n):
    return np.sort(np.random.default_rng(0).permutation(n)[: n // 4])


def _majority_accuracy(df, va):
    tr = np.setdiff1d(np.arange(len(df)), va)
    hot = df[LABELS].to_numpy()
    majority = hot[tr].mean(0) > 0.5
    return float((hot[va] == majority).mean())


def test_encoded_columns_beat_majority_predict_and_round_trip(labelled_csv, tmp_path):
    torch.manual_seed(0)
    df = pd.read_csv(labelled_csv)
    va = _valid_idx(len(df))
    dls = TabularDataLoaders.from_csv(
        labelled_csv,
        y_names=LABELS,
        y_block=MultiCategoryBlock(encoded=True, vocab=LABELS),
        cat_names=CAT,
        cont_names=CONT,
        valid_idx=va,
        bs=32,
        device="cpu",
    )
    x_cat, x_cont, y = dls.one_batch()
    assert y.shape == (32, 4) and y.dtype == torch.float32 and set(y.unique().tolist()) <= {0.0, 1.0}
    assert dls.c == 4 and dls.recipe.vocab == LABELS
    learn = tabular_learner(dls, layers=[64, 32])
    assert isinstance(learn.loss_func, BCEWithLogitsLossFlat)
    assert [m.name for m in learn.metrics] == ["accuracy_multi"]
    learn.fit_one_cycle(6, 1e-2)
    acc = float(learn.validate()[1])
    base = _majority_accuracy(df, va)
    assert acc > 0.85 and acc > base + 0.15, (acc, base)

    row, clas, probs = learn.predict(df.iloc[va[0]])
    assert clas.dtype == torch.bool and clas.shape == (4,) and probs.shape == (4,)
    assert torch.equal(clas, probs > 0.5)
    assert [int(row[lab].iloc[0]) for lab in LABELS] == clas.int().tolist()
    assert learn.dls.recipe.decode_pred(clas) == [lab for lab, on in zip(LABELS, clas.tolist()) if on]

    path = learn.export(tmp_path / "multi.lk")
    loaded = load_learner(path)
    p1, t1 = learn.get_preds(dl=learn.dls.test_dl(df, with_labels=True))
    p2, t2 = loaded.get_preds(dl=loaded.dls.test_dl(labelled_csv, with_labels=True))
    assert torch.allclose(p1, p2, atol=1e-6) and torch.equal(t1, t2)
    assert t1.shape == (len(df), 4) and torch.equal(
        t1, torch.tensor(df[LABELS].to_numpy(), dtype=torch.float32)
    )
    row2, clas2, probs2 = loaded.predict(df.iloc[va[0]])
    assert torch.equal(clas2, clas) and torch.allclose(probs2, probs, atol=1e-6)
    assert row2[LABELS].equals(row[LABELS])


def test_label_lists_from_csv_and_in_memory(labelled_csv, tmp_path):
    torch.manual_seed(0)
    df = pd.read_csv(labelled_csv, keep_default_na=False, na_values={c: ["", "NA"] for c in CAT + CONT})
    va = _valid_idx(len(df))
    kw = dict(cat_names=CAT, cont_names=CONT, valid_idx=va, bs=32, device="cpu", seed=0)
    dls = TabularDataLoaders.from_df(
        df[CAT + CONT + ["tags"]], y_names="tags", y_block=MultiCategoryBlock(), label_delim=";", **kw
    )
    assert dls.recipe.vocab == sorted(LABELS) and dls.c == 4
    y_train = dls.train.loader.tensors[2]
    # a column of Python lists needs no delimiter and gives the same targets
    lists = df[CAT + CONT].assign(tags=[t.split(";") if t else [] for t in df["tags"]])
    dls2 = TabularDataLoaders.from_df(lists, y_names="tags", y_block=MultiCategoryBlock, **kw)
    assert torch.equal(dls2.train.loader.tensors[2], y_train)
    order = [sorted(LABELS).index(lab) for lab in LABELS]
    expect = torch.tensor(df[LABELS].to_numpy(), dtype=torch.float32)[:, np.argsort(order)]
    full = dls.recipe.tensors(df[CAT + CONT + ["tags"]], with_labels=True)[2]
    assert torch.equal(full, expect)

    learn = tabular_learner(dls, layers=[64, 32])
    learn.fit_one_cycle(6, 1e-2)
    assert float(learn.validate()[1]) > _majority_accuracy(df, va) + 0.15

    i = int(np.flatnonzero(df["tags"].to_numpy() == "Gentoo;heavy")[0])
    row, clas, probs = learn.predict(df.iloc[i][CAT + CONT])
    assert row["tags"].iloc[0] == dls.recipe.decode_pred(clas) == ["Gentoo", "heavy"]
    assert probs.shape == (4,) and bool(((probs > 0.5) == clas).all())
    shown = learn.show_results(display=False)
    assert {"tags", "tags_pred"} <= set(shown.columns) and isinstance(shown["tags_pred"].iloc[0], list)
    batch = dls.show_batch(display=False)
    assert all(set(t) <= set(LABELS) for t in batch["tags"])

    loaded = load_learner(learn.export(tmp_path / "tags.lk"))
    p1, _ = learn.get_preds(dl=learn.dls.test_dl(df))
    p2, _ = loaded.get_preds(dl=loaded.dls.test_dl(df))
    assert torch.allclose(p1, p2, atol=1e-6)
    assert loaded.predict(df.iloc[i])[0]["tags"].iloc[0] == ["Gentoo", "heavy"]


def test_forest_on_a_multi_label_table(labelled_csv):
    df = pd.read_csv(labelled_csv)
    va = _valid_idx(len(df))
    tr = np.setdiff1d(np.arange(len(df)), va)
    to = TabularPandas(
        df,
        [Categorify, FillMissing, Normalize],
        CAT,
        CONT,
        y_names=LABELS,
        y_block=MultiCategoryBlock(encoded=True),
        splits=(tr, va),
    )
    assert list(to.y.columns) == LABELS and to.vocab == LABELS
    m = random_forest(to.train.xs, to.train.y, n_estimators=20, n_jobs=1)
    pred = m.predict(to.valid.xs)
    assert type(m).__name__ == "RandomForestClassifier" and pred.shape == (len(va), 4)
    assert (pred == to.valid.y.to_numpy()).mean() > _majority_accuracy(df, va) + 0.15


def test_multi_label_bad_input(labelled_csv):
    df = pd.read_csv(labelled_csv)
    kw = dict(cat_names=CAT, cont_names=CONT, bs=32, device="cpu", seed=0)
    bad = df.copy()
    bad.loc[3, "heavy"] = 2
    with pytest.raises(DataError, match=r"0/1 values.*'heavy'.*\[2\]"):
        TabularDataLoaders.from_df(bad, y_names=LABELS, y_block=MultiCategoryBlock(encoded=True), **kw)
    with pytest.raises(DataError, match="one vocab name per 0/1 target column"):
        TabularDataLoaders.from_df(
            df, y_names=LABELS, y_block=MultiCategoryBlock(encoded=True, vocab=["a", "b"]), **kw
        )
    nan = df.copy()
    nan.loc[5, "Gentoo"] = np.nan
    with pytest.raises(DataError, match="missing value"):
        TabularDataLoaders.from_df(nan, y_names=LABELS, y_block=MultiCategoryBlock(encoded=True), **kw)
    with pytest.raises(DataError, match="add_na"):
        TabularDataLoaders.from_df(df, y_names="tags", y_block=MultiCategoryBlock(add_na=True), **kw)
    # labels never seen in training, at inference with labels: named, with the fix
    dls = TabularDataLoaders.from_df(
        df.fillna({"tags": ""}), y_names="tags", y_block=MultiCategoryBlock(), label_delim=";", **kw
    )
    new = df.iloc[:3].fillna({"tags": ""}).assign(tags=["Adelie;Emperor", "", "heavy"])
    with pytest.raises(DataError, match=r"Emperor"):
        dls.test_dl(new, with_labels=True)
    # without labels the target column of new rows is not read: inference on them works
    assert len(dls.test_dl(new).one_batch()) == 2
    learn = tabular_learner(dls, layers=[8])
    assert learn.predict(new.iloc[0])[1].shape == (4,)
    # without label_delim, 'Gentoo;heavy' is one label: the vocab shows it, and a hint is given on unseen ones
    one = TabularDataLoaders.from_df(
        df.fillna({"tags": ""}), y_names="tags", y_block=MultiCategoryBlock(), **kw
    )
    assert "Gentoo;heavy" in one.recipe.vocab
    with pytest.raises(DataError, match="label_delim"):
        one.test_dl(new, with_labels=True)
