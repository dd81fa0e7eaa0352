"""Collaborative filtering side by side (prints one JSON object): time per epoch and final validation MSE.

The fastbook recipe (``EmbeddingDotBias``, 50 factors, ``y_range=(0, 5.5)``, ``fit_one_cycle(5, 5e-3,
wd=0.1)``, batch size 64) on about 100,000 ratings, with one train/valid split (80/20, seed 42) shared by:

- ``learnkit``: ``CollabDataLoaders.from_df`` + ``collab_learner`` + ``fit_one_cycle`` (default callbacks),
- ``hand``: a hand-written PyTorch loop over the same tensors (``TensorLoader`` batches, a one-cycle LR and
  beta1 schedule per batch, AdamW with the same betas/eps/wd), the same model class and initialisation,
- ``fastai``: fastai's ``TabularCollab`` on the same split + ``collab_learner`` + ``fit_one_cycle``, run in
  the interpreter named by ``$FASTAI_PYTHON`` (default ``/work/fastai-venv/bin/python``) when it imports
  fastai. Never a dependency.

Data: ``--csv PATH`` (columns user, item, rating, e.g. MovieLens' ratings), else a synthetic low-rank table
(100,000 ratings, 943 users x 1,682 items, like MovieLens 100k's shape). Threads: ``--threads`` (default 1,
the same for every run). Epoch time is the median over epochs (train + validation).

Run: ``python benchmarks/collab.py [--csv ratings.csv] [--epochs 5] [--threads 1]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from learnkit import Callback  # noqa: E402
from learnkit.collab import CollabDataLoaders, EmbeddingDotBias, collab_learner  # noqa: E402
from learnkit.data.loaders import TensorLoader  # noqa: E402

N_FACTORS, Y_RANGE, SEED = 50, (0.0, 5.5), 42


def synthetic(
    n: int = 100_000, n_users: int = 943, n_items: int = 1682, k: int = 8, seed: int = 0
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    U, V = rng.normal(size=(n_users, k)), rng.normal(size=(n_items, k))
    ub, ib = rng.normal(0, 0.4, n_users), rng.normal(0, 0.5, n_items)
    pop = rng.zipf(1.6, n_items).astype(float)
    cells = rng.choice(
        n_users * n_items, size=n, replace=False, p=np.tile(pop / pop.sum() / n_users, n_users)
    )
    u, i = cells // n_items, cells % n_items
    r = 3.5 + (U[u] * V[i]).sum(1) / np.sqrt(k) * 0.8 + ub[u] + ib[i] + rng.normal(0, 0.6, n)
    r = (np.clip(r, 0.5, 5.0) * 2).round() / 2
    return pd.DataFrame({"user": u + 1, "item": [f"item_{j}" for j in i], "rating": r})


class EpochTimer(Callback):
    def before_epoch(self):
        self.t0 = time.perf_counter()

    def after_epoch(self):
        self.times.append(time.perf_counter() - self.t0)

    def before_fit(self):
        self.times = []


def run_learnkit(df, epochs, lr, wd, bs):
    torch.manual_seed(0)
    dls = CollabDataLoaders.from_df(df, valid_pct=0.2, seed=SEED, bs=bs, device="cpu")
    learn = collab_learner(dls, n_factors=N_FACTORS, y_range=Y_RANGE)
    timer = EpochTimer()
    with learn.no_bar():
        learn.fit_one_cycle(epochs, lr, wd=wd, cbs=[timer], quiet=True)
    preds, targs = learn.get_preds()
    return dls, {
        "epoch_s": statistics.median(timer.times),
        "epoch_times_s": timer.times,
        "valid_mse": float(((preds.reshape(-1) - targs) ** 2).mean()),
    }


def _cos(a, b, p):
    return a + (1 + math.cos(math.pi * (1 - p))) * (b - a) / 2


def one_cycle(p, lo, hi, end, pct=0.25):
    return _cos(lo, hi, p / pct) if p < pct else _cos(hi, end, (p - pct) / (1 - pct))


def run_hand(dls, epochs, lr, wd, bs):
    """A plain PyTorch loop over the same training/validation tensors."""
    (xt, yt), (xv, yv) = dls.train.loader.tensors, dls.valid.loader.tensors
    r = dls.recipe
    torch.manual_seed(0)
    model = EmbeddingDotBias(N_FACTORS, r.n_users, r.n_items, y_range=Y_RANGE)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.99), eps=1e-5, weight_decay=wd)
    train = TensorLoader(xt, yt, bs=bs, shuffle=True)
    total, step, times = epochs * len(train), 0, []
    for _ in range(epochs):
        t0 = time.perf_counter()
        model.train()
        for xb, yb in train:
            p = step / total
            for g in opt.param_groups:
                g["lr"] = one_cycle(p, lr / 25, lr, lr / 1e5)
                g["betas"] = (one_cycle(p, 0.95, 0.85, 0.95), 0.99)
            loss = torch.nn.functional.mse_loss(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
        model.eval()
        with torch.no_grad():
            preds = torch.cat([model(xb) for xb, _ in TensorLoader(xv, yv, bs=bs)])
        times.append(time.perf_counter() - t0)
    return {
        "epoch_s": statistics.median(times),
        "epoch_times_s": times,
        "valid_mse": float(((preds - yv) ** 2).mean()),
    }


FASTAI_SCRIPT = r"""
import json, statistics, sys, time
import pandas as pd, torch
from fastai.collab import collab_learner, Categorify, TabularCollab
from fastai.data.block import TransformBlock
from fastai.callback.core import Callback
csv, split, epochs, lr, wd, bs, threads = sys.argv[1:8]
torch.set_num_threads(int(threads))
df = pd.read_csv(csv)
valid = pd.read_csv(split)["valid"].to_numpy().astype(bool)
splits = [list(map(int, (~valid).nonzero()[0])), list(map(int, valid.nonzero()[0]))]
cols = list(df.columns)
to = TabularCollab(df, [Categorify], cat_names=cols[:2], y_names=[cols[2]], y_block=TransformBlock(), splits=splits)
dls = to.dataloaders(bs=int(bs), path=".")
class T(Callback):
    def before_fit(self): self.times = []
    def before_epoch(self): self.t0 = time.perf_counter()
    def after_epoch(self): self.times.append(time.perf_counter() - self.t0)
torch.manual_seed(0)
learn = collab_learner(dls, n_factors=50, y_range=(0, 5.5))
t = T()
with learn.no_bar(), learn.no_logging():
    learn.fit_one_cycle(int(epochs), float(lr), wd=float(wd), cbs=[t])
preds, targs = learn.get_preds()
import fastai
print(json.dumps({"epoch_s": statistics.median(t.times), "epoch_times_s": t.times,
                  "valid_mse": float(((preds.reshape(-1) - targs.reshape(-1)) ** 2).mean()),
                  "fastai_version": fastai.__version__}))
"""


def run_fastai(df, dls, epochs, lr, wd, bs, threads):
    py = os.environ.get("FASTAI_PYTHON", "/work/fastai-venv/bin/python")
    if not Path(py).exists():
        return {"skipped": f"no fastai interpreter at {py} (set $FASTAI_PYTHON)"}
    r = dls.recipe
    n = len(df)
    # the same split as learnkit's: from_df's permutation with the same seed
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(SEED)).numpy()
    valid = np.zeros(n, dtype=bool)
    valid[perm[: int(round(n * 0.2))]] = True
    assert valid.sum() == len(dls.valid.loader.tensors[1]), "split mismatch"
    with tempfile.TemporaryDirectory() as d:
        df[[r.user_name, r.item_name, r.rating_name]].to_csv(Path(d) / "r.csv", index=False)
        pd.DataFrame({"valid": valid.astype(int)}).to_csv(Path(d) / "s.csv", index=False)
        res = subprocess.run(
            [
                py,
                "-c",
                FASTAI_SCRIPT,
                str(Path(d) / "r.csv"),
                str(Path(d) / "s.csv"),
                str(epochs),
                str(lr),
                str(wd),
                str(bs),
                str(threads),
            ],
            capture_output=True,
            text=True,
            timeout=3600,
        )
    if res.returncode != 0:
        return {"skipped": f"fastai run failed: {res.stderr.strip().splitlines()[-1:]}"}
    return json.loads(res.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--csv", help="a ratings CSV (user, item, rating columns first)")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--lr", type=float, default=5e-3)
    ap.add_argument("--wd", type=float, default=0.1)
    ap.add_argument("--bs", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-fastai", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    df = pd.read_csv(a.csv) if a.csv else synthetic()
    data = {
        "source": a.csv or "synthetic low-rank",
        "ratings": len(df),
        "users": int(df.iloc[:, 0].nunique()),
        "items": int(df.iloc[:, 1].nunique()),
    }
    dls, lk = run_learnkit(df, a.epochs, a.lr, a.wd, a.bs)
    hand = run_hand(dls, a.epochs, a.lr, a.wd, a.bs)
    yv = dls.valid.loader.tensors[1]
    baseline = float(((yv - dls.recipe.global_mean) ** 2).mean())
    fa = (
        {"skipped": "--no-fastai"}
        if a.no_fastai
        else run_fastai(df, dls, a.epochs, a.lr, a.wd, a.bs, a.threads)
    )
    out = {
        "benchmark": "collab",
        "data": data,
        "setup": {
            "epochs": a.epochs,
            "lr": a.lr,
            "wd": a.wd,
            "bs": a.bs,
            "n_factors": N_FACTORS,
            "y_range": list(Y_RANGE),
            "threads": a.threads,
            "valid_pct": 0.2,
            "seed": SEED,
            "torch": torch.__version__,
        },
        "global_mean_baseline_mse": baseline,
        "learnkit": lk,
        "hand": hand,
        "fastai": fa,
        "ratios": {"learnkit_over_hand_epoch": lk["epoch_s"] / hand["epoch_s"]},
    }
    if "epoch_s" in fa:
        out["ratios"]["learnkit_over_fastai_epoch"] = lk["epoch_s"] / fa["epoch_s"]
        out["ratios"]["learnkit_minus_fastai_mse"] = lk["valid_mse"] - fa["valid_mse"]
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
