"""Tabular loaders, model and learner on real tables: batches are tensor slices, the learner beats the
baseline, and an export predicts the same on raw rows and on a CSV."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from learnkit import load_learner
from learnkit.data.loaders import TensorLoader
from learnkit.losses import CrossEntropyLossFlat, MSELossFlat
from learnkit.metrics import accuracy
from learnkit.tabular import (
    Categorify,
    FillMissing,
    Normalize,
    RegressionBlock,
    SigmoidRange,
    TabularDataLoaders,
    TabularModel,
    TabularPandas,
    emb_sz_rule,
    get_emb_sz,
    tabular_learner,
)

CONT = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
CAT = ["island", "sex", "year"]


@pytest.fixture(scope="module")
def trained(penguins_csv):
    """A learner fitted on palmerpenguins from its CSV (fastai's call spelling)."""
    torch.manual_seed(0)
    df = pd.read_csv(penguins_csv)
    valid_idx = np.random.default_rng(1).permutation(len(df))[:86]
    dls = TabularDataLoaders.from_csv(
        penguins_csv,
        y_names="species",
        cat_names=CAT,
        cont_names=CONT,
        procs=[Categorify, FillMissing, Normalize],
        valid_idx=valid_idx,
        bs=32,
        device="cpu",
    )
    learn = tabular_learner(dls, layers=[64, 32], metrics=accuracy)
    learn.fit_one_cycle(4, 1e-2)
    return df, valid_idx, learn


def test_batches_are_slices_of_tensors_held_once(penguins):
    dls = TabularDataLoaders.from_df(
        penguins,
        y_names="species",
        cat_names=CAT,
        cont_names=CONT,
        bs=16,
        valid_idx=range(300, 344),
        device="cpu",
        drop_last=False,
    )
    train = dls.train.loader
    assert isinstance(train, TensorLoader)
    x_cat, x_cont, y = train.tensors
    assert x_cat.dtype == torch.int64 and x_cont.dtype == torch.float32 and y.dtype == torch.int64
    assert x_cat.shape == (300, 7) and x_cont.shape == (300, 4)
    # one epoch is a true permutation: every training row exactly once
    seen = torch.cat([xc for _, xc, _ in dls.train])
    assert len(seen) == 300
    key = lambda t: sorted(map(tuple, t.tolist()))  # noqa: E731
    assert key(seen) == key(x_cont)
    b = dls.one_batch()
    assert [t.shape[0] for t in b] == [16, 16, 16]
    assert dls.c == 3 and dls.vocab == ["Adelie", "Chinstrap", "Gentoo"]
    assert dls.cat_names == CAT + [f"{c}_na" for c in CONT]


def test_model_embedding_sizes_and_forward(penguins):
    assert [emb_sz_rule(n) for n in (2, 10, 100, 10**6)] == [2, 6, 21, 600]
    to = TabularPandas(penguins, [Categorify, FillMissing, Normalize], CAT, CONT, "species")
    assert get_emb_sz(to)[0] == (4, emb_sz_rule(4))
    assert get_emb_sz(to, {"island": 10})[0] == (4, 10)
    m = TabularModel(
        get_emb_sz(to), 4, 3, [20, 10], ps=[0.1, 0.1], embed_p=0.1, y_range=(0, 5), bn_final=True
    )
    out = m(torch.zeros(5, 7, dtype=torch.long), torch.randn(5, 4))
    assert out.shape == (5, 3) and (out >= 0).all() and (out <= 5).all()
    assert isinstance(m.layers[-1], SigmoidRange)
    # no categorical or no continuous columns
    assert TabularModel([], 4, 1, [8])(torch.zeros(2, 0).long(), torch.randn(2, 4)).shape == (2, 1)
    assert TabularModel([(3, 2)], 0, 1, [8])(torch.zeros(2, 1).long(), torch.zeros(2, 0)).shape == (2, 1)


def test_classifier_beats_majority_baseline(trained):
    df, valid_idx, learn = trained
    assert isinstance(learn.loss_func, CrossEntropyLossFlat)
    assert learn.recorder.values[-1][0] < learn.recorder.values[0][0]  # training loss fell
    acc = learn.validate()[1]
    majority = df["species"].iloc[valid_idx].value_counts(normalize=True).iloc[0]
    assert acc > majority + 0.3  # ~0.45 majority; the net is near 1.0


def test_predict_row_test_dl_show(trained):
    df, valid_idx, learn = trained
    row, clas, probs = learn.predict(df.iloc[3])  # row 3 has missing values
    assert isinstance(row, pd.DataFrame) and len(row) == 1
    assert row["species"].iloc[0] == learn.dls.vocab[int(clas)]
    assert probs.shape == (3,) and float(probs.sum()) == pytest.approx(1, abs=1e-5)
    assert row["sex"].iloc[0] == "#na#" and row["bill_length_mm_na"].iloc[0]
    # batch inference over the raw table agrees with one-row predict
    preds, _ = learn.get_preds(dl=learn.dls.test_dl(df))
    assert torch.allclose(preds[3], probs, atol=1e-6)
    # with labels
    preds2, targs = learn.get_preds(dl=learn.dls.test_dl(df.iloc[valid_idx], with_labels=True))
    assert (preds2.argmax(1) == targs).float().mean() > 0.75
    sb = learn.dls.show_batch(max_n=4)
    assert isinstance(sb, pd.DataFrame) and len(sb) == 4
    assert set(sb["island"]) <= {"Biscoe", "Dream", "Torgersen"} and set(sb["species"]) <= set(
        learn.dls.vocab
    )
    assert sb["body_mass_g"].between(2500, 6500).all()  # de-normalised
    res = learn.show_results(max_n=5)
    assert list(res.columns[-2:]) == ["species", "species_pred"] and len(res) == 5


def test_export_load_learner_predicts_the_same(trained, tmp_path, penguins_csv):
    df, _, learn = trained
    path = learn.export(tmp_path / "penguins.lk")
    blob = torch.load(path, weights_only=True)  # pickle-free
    assert blob["data"]["kind"] == "tabular"
    loaded = load_learner(path)
    p1, _ = learn.get_preds(dl=learn.dls.test_dl(df))
    p2, _ = loaded.get_preds(dl=loaded.dls.test_dl(penguins_csv))  # straight from the CSV
    assert torch.allclose(p1, p2, atol=1e-6)
    row2, clas, probs = loaded.predict(df.iloc[10])  # a TabularLearner again: fastai's (row, clas, probs)
    row, clas1, probs1 = learn.predict(df.iloc[10])
    assert type(loaded) is type(learn)
    assert (
        row2["species"].iloc[0] == row["species"].iloc[0]
        and int(clas) == int(clas1)
        and torch.allclose(probs, probs1, atol=1e-6)
    )
    # rows with an unseen category and a column missing its values: processed, not an error
    new = df.iloc[:2].copy()
    new["island"] = "Atlantis"
    with pytest.warns(UserWarning, match="never seen"):
        assert loaded.get_preds(dl=loaded.dls.test_dl(new))[0].shape == (2, 3)


def test_regression_mean_baseline_and_y_range(diabetes, random_splits):
    torch.manual_seed(0)
    tr, va = random_splits(len(diabetes))
    cont = [c for c in diabetes.columns if c not in ("sex", "target")]
    dls = TabularDataLoaders.from_df(
        diabetes, y_names="target", cat_names=["sex"], cont_names=cont, valid_idx=va, bs=32, device="cpu"
    )
    assert dls.c == 1
    lo, hi = diabetes["target"].min() * 0.9, diabetes["target"].max() * 1.1
    learn = tabular_learner(dls, layers=[64, 32], y_range=(lo, hi))
    assert isinstance(learn.loss_func, MSELossFlat) and isinstance(learn.model.layers[-1], SigmoidRange)
    learn.fit_one_cycle(8, 2e-2)
    mse = learn.validate()[0]
    baseline = ((diabetes["target"].iloc[va] - diabetes["target"].iloc[tr].mean()) ** 2).mean()
    assert mse < 0.75 * baseline
    row, value, _ = learn.predict(diabetes.iloc[0])
    assert lo <= float(value) <= hi and row["target"].iloc[0] == pytest.approx(float(value))


def test_multi_target_regression(diabetes, tmp_path):
    torch.manual_seed(0)
    cont = ["age", "bmi", "s1", "s2", "s3", "s4", "s5", "s6"]
    dls = TabularDataLoaders.from_df(
        diabetes,
        y_names=["target", "bp"],
        cat_names=["sex"],
        cont_names=cont,
        y_block=RegressionBlock,
        bs=32,
        device="cpu",
        seed=0,
    )
    assert dls.c == 2 and dls.one_batch()[2].shape == (32, 2)
    learn = tabular_learner(dls, layers=[32], config={"ps": 0.0})
    learn.fit(2, 1e-2)
    row, value, _ = learn.predict(diabetes.iloc[0])
    assert value.shape == (2,) and {"target", "bp"} <= set(row.columns)
    loaded = load_learner(learn.export(tmp_path / "multi.lk"))
    assert torch.allclose(
        loaded.get_preds(dl=loaded.dls.test_dl(diabetes.iloc[:5]))[0],
        learn.get_preds(dl=learn.dls.test_dl(diabetes.iloc[:5]))[0],
        atol=1e-6,
    )


def test_default_optimizer_is_foreach_adam_with_identical_results(penguins):
    """tabular_learner's default optimizer (learnkit's Adam: foreach kernels, faster on small nets) trains bit for
    bit like the per-parameter loop."""
    from functools import partial

    from learnkit.optim import Adam

    dls = TabularDataLoaders.from_df(
        penguins, y_names="species", cat_names=CAT, cont_names=CONT, bs=32, device="cpu", seed=0
    )
    learners = []
    for opt_func in (None, partial(Adam, foreach=False)):
        torch.manual_seed(0)
        kw = {} if opt_func is None else {"opt_func": opt_func}
        learn = tabular_learner(dls, layers=[32, 16], **kw)
        learn.fit(2, 1e-2)
        learners.append(learn)
    fast, plain = learners
    assert fast.opt.defaults["foreach"] is True and not plain.opt.defaults.get("foreach")
    assert all(torch.equal(p, q) for p, q in zip(fast.model.parameters(), plain.model.parameters()))
    assert fast.recorder.values[-1][0] == plain.recorder.values[-1][0]
