"""Tabular benchmark: preprocessing, loader throughput, epoch time, accuracy and single-row predict latency.

Prints one JSON object. learnkit is compared side by side with plain pandas doing the same preprocessing work,
with a hand-written PyTorch loop over the same tensors, and with fastai when ``$FASTAI_PYTHON`` names a python
that has fastai (its half runs there, on the same table).

    python benchmarks/tabular.py [--rows 1000000] [--epoch-rows 200000] [--epochs 3] [--bs 1024]
                                 [--parts preprocess,train,accuracy,predict] [--quick]

Peak memory is the resident-set growth over the loaded table, sampled every 2 ms in a fresh process per
measurement, so one measurement's garbage never counts against another.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CAT = ["island", "sex", "year"]
CONT = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRSS:
    """Samples the resident set size in a thread; ``.peak - .base`` is the extra memory of the block."""

    def __enter__(self):
        self.base = self.peak = _rss()
        self._stop = False
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self):
        while not self._stop:
            self.peak = max(self.peak, _rss())
            time.sleep(0.002)

    def __exit__(self, *exc):
        self._stop = True
        self._t.join()
        self.peak = max(self.peak, _rss())

    @property
    def extra_mb(self) -> float:
        return (self.peak - self.base) / 2**20


# ------------------------------------------------------------------------------------------ child measurements
def _splits(n):
    import numpy as np

    idx = np.random.default_rng(0).permutation(n)
    k = n // 5
    return np.sort(idx[k:]), np.sort(idx[:k])


def child_preprocess(kind: str, path: str) -> dict:
    import numpy as np
    import pandas as pd

    if kind == "learnkit":  # imported before the clock starts (torch, scikit-learn, ...)
        from learnkit.tabular import Categorify, FillMissing, Normalize, TabularPandas
    df = pd.read_pickle(path)
    tr, va = _splits(len(df))
    t = time.perf_counter()
    with PeakRSS() as mem:
        if kind == "learnkit":
            to = TabularPandas(
                df, [Categorify, FillMissing, Normalize], CAT, CONT, "species", splits=(tr, va)
            )
            out = to.items
        else:  # plain pandas doing the same work: categories from train, fill with train medians, normalise
            out = {}
            train = df.iloc[tr]
            for c in CONT:
                col = df[c].astype(np.float32)
                med = train[c].median()
                na = col.isna()
                if train[c].isna().any():
                    out[c + "_na"] = na.to_numpy().astype(np.int8) + 1
                col = col.fillna(med)
                ctr = col.iloc[tr]
                out[c] = ((col - ctr.mean()) / ctr.std(ddof=0)).to_numpy(np.float32)
            for c in CAT:
                cats = sorted(train[c].dropna().unique())
                out[c] = (pd.Categorical(df[c], categories=cats).codes + 1).astype(np.int8)
            out["species"] = pd.Categorical(df["species"], categories=sorted(train["species"].unique())).codes
            out = pd.DataFrame(out)
    return {"seconds": time.perf_counter() - t, "peak_extra_mb": mem.extra_mb, "n_cols": out.shape[1]}


def child_learnkit_train(path: str, epoch_rows: int, epochs: int) -> dict:
    import pandas as pd
    import torch

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))
    from learnkit.metrics import accuracy
    from learnkit.tabular import TabularDataLoaders, tabular_learner

    df = pd.read_pickle(path).iloc[:epoch_rows].reset_index(drop=True)
    tr, va = _splits(len(df))
    res = {}
    bs = int(os.environ.get("BENCH_BS", "1024"))
    dls = TabularDataLoaders.from_df(
        df, y_names="species", cat_names=CAT, cont_names=CONT, valid_idx=va, bs=bs, device="cpu", seed=0
    )
    # loader throughput: one pass over the training loader (batches on the device, nothing else)
    for _ in dls.train:
        pass
    t = time.perf_counter()
    n = 0
    for b in dls.train:
        n += len(b[0])
    res["loader_rows_per_s"] = n / (time.perf_counter() - t)
    torch.manual_seed(0)
    learn = tabular_learner(dls, layers=[200, 100], metrics=accuracy, cbs=None)
    torch.manual_seed(0)
    learn_nc = tabular_learner(dls, layers=[200, 100], metrics=accuracy, cbs=None)
    learn_nc.check_grads = False  # side measurement: without the per-step gradient finiteness check
    # the same model trained by a hand-written loop over the same tensors, with what the learner does:
    # the learner's default optimizer (AdamW, betas (0.9, 0.99), eps 1e-5, wd 0.01), a shuffled pass with
    # drop_last, then the validation loss and accuracy
    torch.manual_seed(0)
    from learnkit.tabular import tabular_model
    from learnkit.tabular.model import get_emb_sz

    model = tabular_model([list(e) for e in get_emb_sz(dls)], len(CONT), 3, [200, 100])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.99), eps=1e-5, weight_decay=0.01)
    x_cat, x_cont, y = dls.train.loader.tensors
    vx_cat, vx_cont, vy = dls.valid.loader.tensors
    loss_fn = torch.nn.CrossEntropyLoss()

    def hand_epoch():
        model.train()
        perm = torch.randperm(len(y))
        xc, xn, yy = x_cat[perm], x_cont[perm], y[perm]
        for i in range(0, len(yy) - bs + 1, bs):
            loss = loss_fn(model(xc[i : i + bs], xn[i : i + bs]), yy[i : i + bs])
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        tot, correct = 0.0, 0
        with torch.no_grad():
            for i in range(0, len(vy), 2 * bs):
                out = model(vx_cat[i : i + 2 * bs], vx_cont[i : i + 2 * bs])
                tot += float(loss_fn(out, vy[i : i + 2 * bs])) * len(out)
                correct += int((out.argmax(1) == vy[i : i + 2 * bs]).sum())
        return tot / len(vy), correct / len(vy)

    # interleaved (learnkit, learnkit without the check, hand loop) rounds, the fastest of each kept: the
    # machine's load changes over a run, and each side then sees the same conditions
    runs = {
        "learnkit": lambda: learn.fit(1, 1e-3),
        "nocheck": lambda: learn_nc.fit(1, 1e-3),
        "hand": hand_epoch,
    }
    times: dict = {k: [] for k in runs}
    for f in runs.values():  # warm-up (imports, allocator)
        f()
    for _ in range(epochs):
        for k, f in runs.items():
            t = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t)
    res["epoch_s"] = min(times["learnkit"])
    res["epoch_s_no_grad_check"] = min(times["nocheck"])
    res["hand_loop_epoch_s"] = min(times["hand"])
    res["epoch_vs_hand_loop"] = res["epoch_s"] / res["hand_loop_epoch_s"]
    res["epoch_vs_hand_loop_no_grad_check"] = res["epoch_s_no_grad_check"] / res["hand_loop_epoch_s"]
    res["threads"] = torch.get_num_threads()
    return res


def child_accuracy(csv: str) -> dict:
    """Accuracy on the real (not replicated) penguins table: 5 epochs, the fastai course's recipe."""
    import numpy as np
    import pandas as pd
    import torch

    torch.set_num_threads(1)
    from learnkit.metrics import accuracy
    from learnkit.tabular import TabularDataLoaders, tabular_learner

    df = pd.read_csv(csv)
    va = np.random.default_rng(0).permutation(len(df))[: len(df) // 5]
    accs = []
    for seed in range(3):
        torch.manual_seed(seed)
        dls = TabularDataLoaders.from_csv(
            csv, y_names="species", cat_names=CAT, cont_names=CONT, valid_idx=va, bs=32, device="cpu"
        )
        learn = tabular_learner(dls, layers=[200, 100], metrics=accuracy, cbs=None)
        learn.fit_one_cycle(5, 1e-2)
        accs.append(float(learn.validate()[1]))
    return {"accuracy_mean_of_3": float(np.mean(accs)), "accuracies": accs}


def child_predict(n_cols: int) -> dict:
    import numpy as np
    import pandas as pd
    import torch

    torch.set_num_threads(1)
    from learnkit.tabular import TabularDataLoaders, tabular_learner

    rng = np.random.default_rng(0)
    n = 2000
    cols = {}
    for j in range(n_cols // 2):
        cols[f"c{j}"] = rng.choice(["a", "b", "c", "d"], n)
    for j in range(n_cols - n_cols // 2):
        cols[f"x{j}"] = rng.normal(size=n)
    cols["y"] = rng.integers(0, 2, n)
    df = pd.DataFrame(cols)
    cat = [c for c in df.columns if c.startswith("c")]
    cont = [c for c in df.columns if c.startswith("x")]
    dls = TabularDataLoaders.from_df(
        df, y_names="y", cat_names=cat, cont_names=cont, bs=64, device="cpu", seed=0
    )
    learn = tabular_learner(dls, layers=[64])
    row = df.iloc[7]
    learn.predict(row)
    ts = []
    for _ in range(30):
        t = time.perf_counter()
        learn.predict(row)
        ts.append(time.perf_counter() - t)
    return {"ms": 1000 * float(np.median(ts))}


# ------------------------------------------------------------------------------------------ fastai half
FASTAI_SCRIPT = textwrap.dedent(
    """
    import json, os, sys, threading, time
    import numpy as np, pandas as pd, torch
    from fastai.tabular.all import *
    def rss():
        return int(open('/proc/self/statm').read().split()[1]) * os.sysconf('SC_PAGE_SIZE')
    what, path = sys.argv[1], sys.argv[2]
    CAT = {cat!r}; CONT = {cont!r}
    df = pd.read_pickle(path) if path.endswith('.pkl') else pd.read_csv(path)
    n = len(df); idx = np.random.default_rng(0).permutation(n); k = n // 5
    splits = (list(np.sort(idx[k:])), list(np.sort(idx[:k])))
    out = {{}}
    if what == 'preprocess':
        base = peak = rss(); stop = []
        def run():
            global peak
            while not stop:
                peak = max(peak, rss()); time.sleep(0.002)
        th = threading.Thread(target=run, daemon=True); th.start()
        t = time.perf_counter()
        to = TabularPandas(df, [Categorify, FillMissing, Normalize], CAT, CONT, y_names='species', splits=splits)
        out['seconds'] = time.perf_counter() - t
        stop.append(1); th.join(); out['peak_extra_mb'] = (max(peak, rss()) - base) / 2**20
    elif what == 'train':
        torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))
        df = df.iloc[:int(sys.argv[3])].reset_index(drop=True)
        n = len(df); idx = np.random.default_rng(0).permutation(n); k = n // 5
        dls = TabularDataLoaders.from_df(df, y_names='species', cat_names=CAT, cont_names=CONT,
                                         procs=[Categorify, FillMissing, Normalize], valid_idx=list(idx[:k]),
                                         bs=int(os.environ.get("BENCH_BS", "1024")), val_bs=2 * int(os.environ.get("BENCH_BS", "1024")))
        t = time.perf_counter(); m = 0
        for b in dls.train:
            m += len(b[0])
        out['loader_rows_per_s'] = m / (time.perf_counter() - t)
        learn = tabular_learner(dls, layers=[200, 100], metrics=accuracy, cbs=[])
        with learn.no_bar(), learn.no_logging():
            learn.fit(1, 1e-3); ts = []
            for _ in range(int(sys.argv[4])):
                t = time.perf_counter(); learn.fit(1, 1e-3); ts.append(time.perf_counter() - t)
        out['epoch_s'] = min(ts); out['threads'] = torch.get_num_threads()
    elif what == 'accuracy':
        torch.set_num_threads(1)
        va = list(np.random.default_rng(0).permutation(n)[: n // 5]); accs = []
        for seed in range(3):
            set_seed(seed)
            dls = TabularDataLoaders.from_df(df, y_names='species', cat_names=CAT, cont_names=CONT,
                                             procs=[Categorify, FillMissing, Normalize], valid_idx=va, bs=32)
            learn = tabular_learner(dls, layers=[200, 100], metrics=accuracy)
            with learn.no_bar(), learn.no_logging():
                learn.fit_one_cycle(5, 1e-2)
            accs.append(float(learn.validate()[1]))
        out['accuracy_mean_of_3'] = float(np.mean(accs))
    elif what == 'predict':
        torch.set_num_threads(1)
        nc = int(sys.argv[3]); rng = np.random.default_rng(0); N = 2000; cols = {{}}
        for j in range(nc // 2): cols[f'c{{j}}'] = rng.choice(['a', 'b', 'c', 'd'], N)
        for j in range(nc - nc // 2): cols[f'x{{j}}'] = rng.normal(size=N)
        cols['y'] = rng.integers(0, 2, N); d = pd.DataFrame(cols)
        cat = [c for c in d.columns if c.startswith('c')]; cont = [c for c in d.columns if c.startswith('x')]
        dls = TabularDataLoaders.from_df(d, y_names='y', cat_names=cat, cont_names=cont,
                                         procs=[Categorify, FillMissing, Normalize], y_block=CategoryBlock(), bs=64)
        learn = tabular_learner(dls, layers=[64]); row = d.iloc[7]
        with learn.no_bar(), learn.no_logging():
            learn.predict(row); ts = []
            for _ in range(10):
                t = time.perf_counter(); learn.predict(row); ts.append(time.perf_counter() - t)
        out['ms'] = 1000 * float(np.median(ts))
    print('RESULT ' + json.dumps(out))
    """
).format(cat=CAT, cont=CONT)


def _run_child(args: list[str], python: str = sys.executable, script: str | None = None) -> dict | str:
    env = dict(os.environ, PYTHONPATH=str(ROOT), MPLBACKEND="Agg")
    cmd = [python, "-c", script, *args] if script else [python, __file__, "--child", *args]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    res: dict | str = f"failed: {(p.stderr or p.stdout).strip().splitlines()[-1:]}"
    for line in p.stdout.splitlines()[::-1]:
        if line.startswith("RESULT "):
            res = json.loads(line[7:])
            break
    who = "fastai" if script else "learnkit"
    print(f"[{who}] {' '.join(a for a in args if not a.startswith('/'))}: {json.dumps(res)}", file=sys.stderr)
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--epoch-rows", type=int, default=200_000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument(
        "--bs", type=int, default=1024, help="training batch size of the epoch-time run (both sides)"
    )
    ap.add_argument(
        "--parts", default="preprocess,train,accuracy,predict", help="comma-separated measurements to run"
    )
    ap.add_argument("--quick", action="store_true", help="small sizes, to check the script runs")
    ap.add_argument("--child", nargs="+")
    a = ap.parse_args()
    if a.child:
        kind, rest = a.child[0], a.child[1:]
        fn = {
            "preprocess": lambda: child_preprocess(rest[0], rest[1]),
            "train": lambda: child_learnkit_train(rest[0], int(rest[1]), int(rest[2])),
            "accuracy": lambda: child_accuracy(rest[0]),
            "predict": lambda: child_predict(int(rest[0])),
        }[kind]
        print("RESULT " + json.dumps(fn()))
        return
    if a.quick:
        a.rows, a.epoch_rows, a.epochs = 20_000, 10_000, 1
    os.environ["BENCH_BS"] = str(a.bs)
    fastai_py = os.environ.get("FASTAI_PYTHON")
    with tempfile.TemporaryDirectory() as d:
        import palmerpenguins
        import pandas as pd

        csv = Path(d) / "penguins.csv"
        palmerpenguins.load_penguins().to_csv(csv, index=False)
        big = Path(d) / "big.pkl"
        base = pd.read_csv(csv)
        reps = -(-a.rows // len(base))
        df = pd.concat([base] * reps, ignore_index=True).iloc[: a.rows].copy()
        import numpy as np

        rng = np.random.default_rng(0)
        for c in CONT:
            df[c] = df[c] + rng.normal(0, 0.01 * df[c].std(), len(df))
        df = df.sample(frac=1.0, random_state=0).reset_index(drop=True)
        df.to_pickle(big)
        del df
        res: dict = {"rows": a.rows, "epoch_rows": a.epoch_rows, "bs": a.bs, "cpu_threads": os.cpu_count()}
        parts = set(a.parts.split(","))

        def fastai(args):  # each fastai measurement right after learnkit's, under the same load
            return _run_child(args, fastai_py, FASTAI_SCRIPT) if fastai_py else None

        if "preprocess" in parts:
            lk = _run_child(["preprocess", "learnkit", str(big)])
            pdw = _run_child(["preprocess", "pandas", str(big)])
            res["preprocess"] = {
                "learnkit": lk,
                "plain_pandas": pdw,
                "fastai": fastai(["preprocess", str(big)]),
            }
            if isinstance(lk, dict) and isinstance(pdw, dict):
                res["preprocess"]["time_vs_pandas"] = lk["seconds"] / pdw["seconds"]
            if isinstance(lk, dict) and isinstance(res["preprocess"]["fastai"], dict):
                res["preprocess"]["time_vs_fastai"] = lk["seconds"] / res["preprocess"]["fastai"]["seconds"]
        if "train" in parts:
            lt = _run_child(["train", str(big), str(a.epoch_rows), str(a.epochs)])
            ft = fastai(["train", str(big), str(a.epoch_rows), str(a.epochs)])
            res["train"] = {
                "setup": (
                    "each side: the same rows and 80/20 split, TabularModel layers [200, 100] with BatchNorm "
                    f"(the same architecture and sizes), bs {a.bs} with drop_last (validation bs {2 * a.bs}), "
                    "one shuffled pass then the validation loss and accuracy, AdamW(lr 1e-3, betas (0.9, 0.99), "
                    "eps 1e-5, wd 0.01): each library's default optimizer (learnkit's Adam runs torch's "
                    "foreach kernels, the hand loop torch.optim.AdamW's defaults, fastai its own Adam), "
                    "BENCH_THREADS torch threads (default 1) on every side, progress output off (fastai) or one "
                    f"line per epoch (learnkit); the fastest of {a.epochs} epochs after a warm-up; learnkit and "
                    "the hand loop interleaved in one process, fastai right after"
                ),
                "learnkit": lt,
                "fastai": ft,
            }
            if isinstance(lt, dict) and isinstance(ft, dict):
                res["train"]["loader_vs_fastai"] = lt["loader_rows_per_s"] / ft["loader_rows_per_s"]
                res["train"]["epoch_vs_fastai"] = lt["epoch_s"] / ft["epoch_s"]
                res["train"]["epoch_vs_fastai_no_grad_check"] = lt["epoch_s_no_grad_check"] / ft["epoch_s"]
                res["train"]["hand_loop_vs_fastai"] = lt["hand_loop_epoch_s"] / ft["epoch_s"]
        if "accuracy" in parts:
            res["accuracy"] = {
                "learnkit": _run_child(["accuracy", str(csv)]),
                "fastai": fastai(["accuracy", str(csv)]),
            }
        if "predict" in parts:
            res["predict_ms"] = {
                "learnkit": {str(n): _run_child(["predict", str(n)]) for n in (10, 200)},
                "fastai": {str(n): fastai(["predict", str(csv), str(n)]) for n in (10, 200)},
            }
        if not fastai_py:
            res["fastai"] = "not run: set FASTAI_PYTHON to a python with fastai installed"
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
