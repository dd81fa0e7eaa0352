"""CollabDataLoaders: columns, vocabularies, tensor batches, showing, and bad tables."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest
import torch

from learnkit.collab import NA, CollabDataLoaders
from learnkit.exceptions import DataError


def test_from_df_defaults_to_first_three_columns_with_na_first(ratings):
    dls = CollabDataLoaders.from_df(ratings, seed=0)
    r = dls.recipe
    assert (r.user_name, r.item_name, r.rating_name) == ("user", "title", "rating")
    users, items = dls.classes["user"], dls.classes["title"]
    assert users[0] == NA == items[0] == "#na#"
    assert users[1:] == sorted(ratings["user"].unique().tolist())
    assert set(items[1:]) <= set(ratings["title"]) and len(items) == ratings["title"].nunique() + 1
    assert len(dls.train.dataset) + len(dls.valid.dataset) == len(ratings)
    assert len(dls.valid.dataset) == round(0.2 * len(ratings))


def test_named_columns_in_any_order(ratings):
    df = ratings[["rating", "title", "user"]]
    dls = CollabDataLoaders.from_df(df, user_name="user", item_name="title", rating_name="rating", seed=0)
    assert dls.classes["user"][1:] == sorted(ratings["user"].unique().tolist())


def test_batches_are_index_pairs_and_float_ratings_that_decode_to_table_rows(ratings):
    dls = CollabDataLoaders.from_df(ratings, bs=32, seed=0)
    x, y = dls.one_batch()
    assert x.shape == (32, 2) and x.dtype == torch.long and y.shape == (32,) and y.dtype == torch.float32
    rows = set(map(tuple, ratings[["user", "title", "rating"]].itertuples(index=False)))
    decoded = dls.decode((x, y))
    assert len(decoded) == 32 and all(t in rows for t in decoded)


def test_each_epoch_is_a_permutation_of_the_training_rows(ratings):
    dls = CollabDataLoaders.from_df(ratings, bs=100, seed=0)
    ref_x, ref_y = dls.train.loader.tensors
    key = lambda x, y: sorted(zip(x[:, 0].tolist(), x[:, 1].tolist(), y.tolist()))  # noqa: E731
    orders = []
    for _ in range(2):
        xs, ys = zip(*list(dls.train))
        x, y = torch.cat(xs), torch.cat(ys)
        assert len(x) == len(ref_x)
        assert key(x, y) == key(ref_x, ref_y)  # every training rating exactly once
        orders.append(x[:50].clone())
    assert not torch.equal(orders[0], orders[1])  # reshuffled


def test_same_seed_same_split(ratings):
    a = CollabDataLoaders.from_df(ratings, seed=3).valid.loader.tensors[0]
    b = CollabDataLoaders.from_df(ratings, seed=3).valid.loader.tensors[0]
    assert torch.equal(a, b)


def test_from_csv_reads_the_file_like_from_df(ratings, ratings_csv):
    a = CollabDataLoaders.from_csv(ratings_csv, seed=1, bs=64)
    b = CollabDataLoaders.from_df(ratings, seed=1, bs=64)
    assert a.classes == b.classes
    assert torch.equal(a.train.loader.tensors[0], b.train.loader.tensors[0])
    with pytest.raises(DataError, match="does not exist"):
        CollabDataLoaders.from_csv(ratings_csv.parent / "missing.csv")


def test_show_batch_returns_decoded_rows(ratings):
    dls = CollabDataLoaders.from_df(ratings, seed=0)
    df = dls.show_batch(max_n=5)
    assert isinstance(df, pd.DataFrame) and list(df.columns) == ["user", "title", "rating"] and len(df) == 5
    merged = df.merge(ratings, on=["user", "title", "rating"], how="left", indicator=True)
    assert (merged["_merge"] == "both").all()


def test_non_numeric_ratings_name_the_column_and_show_bad_values(ratings):
    df = ratings.head(50).copy()
    df["rating"] = df["rating"].astype(object)
    df.loc[3, "rating"] = "five"
    df.loc[7, "rating"] = None
    with pytest.raises(DataError) as e:
        CollabDataLoaders.from_df(df)
    msg = str(e.value)
    assert "'rating'" in msg and "'five'" in msg and "2 value(s)" in msg and "Fix:" in msg


def test_duplicated_pairs_warn_with_the_count_and_are_kept(ratings):
    df = pd.concat([ratings, ratings.head(7)], ignore_index=True)
    with pytest.warns(UserWarning, match=r"7 duplicated \(user, title\) pair"):
        dls = CollabDataLoaders.from_df(df, seed=0)
    assert len(dls.train.dataset) + len(dls.valid.dataset) == len(df)


def test_validation_users_unseen_in_training_warn_with_the_count(ratings):
    # three users with a single rating each: whichever of them land in validation are unseen in training
    extra = pd.DataFrame({"user": [9001, 9002, 9003], "title": ["movie_001"] * 3, "rating": [3.0, 4.0, 2.0]})
    df = pd.concat([ratings, extra], ignore_index=True)

    def n_unseen(seed):  # how many of the three land in validation (from_df's split: randperm with seed)
        perm = torch.randperm(len(df), generator=torch.Generator().manual_seed(seed)).numpy()
        return len({9001, 9002, 9003} - set(df["user"].to_numpy()[perm[round(len(df) * 0.2) :]]))

    seed = next(s for s in range(100) if n_unseen(s) == 2)
    with pytest.warns(
        UserWarning, match=r"2 validation user value\(s\) \(2 ratings\) never appear in training"
    ):
        dls = CollabDataLoaders.from_df(df, seed=seed)
    assert (dls.valid.loader.tensors[0][:, 0] == 0).sum() == 2  # mapped to '#na#', nothing dropped


def test_clean_table_warns_nothing(ratings):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        CollabDataLoaders.from_df(ratings, seed=0)


def test_bad_column_names_list_the_columns(ratings):
    with pytest.raises(DataError, match=r"item_name='movie'.*columns \['user', 'title', 'rating'\]"):
        CollabDataLoaders.from_df(ratings, item_name="movie")
    with pytest.raises(DataError, match="missing value"):
        CollabDataLoaders.from_df(ratings.assign(user=ratings["user"].where(ratings.index != 4)))
    with pytest.raises(DataError, match="DataFrame"):
        CollabDataLoaders.from_df(ratings.to_numpy())
