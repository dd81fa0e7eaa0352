"""DataBlock benchmark: learnkit vs fastai on 100,000 file names (no files, no decoding). Prints JSON.

Measures, for each library:

- ``build_s``: ``DataBlock(...).dataloaders(items)`` from 100,000 synthetic paths
  (``images/{class}_{i}.jpg``) with a regex labeller and a random 20% split (labels read, vocab fitted,
  labels encoded, loaders made);
- ``item_pass_s``: one pass of every training item through the dataset's ``__getitem__`` (the item
  pipeline: getters, encoding, to-tensor; no image decoding).

fastai runs when ``import fastai`` works here, or else in the interpreter named by ``$FASTAI_PYTHON``
(default ``/work/fastai-venv/bin/python``, run as a subprocess); otherwise its numbers are ``null``. Ratios are ``fastai_time / learnkit_time`` (> 1: learnkit is faster).

Usage: ``python benchmarks/datablock.py [--n 100000] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch  # noqa: E402

N_CLASSES = 37
PATTERN = r"([^/]+)_\d+\.jpg$"


def make_items(n: int) -> list[str]:
    """Synthetic file names spread over ``N_CLASSES`` classes (no files are created)."""
    return [f"images/class{i % N_CLASSES:02d}_{i}.jpg" for i in range(n)]


def identity_items(source):
    """get_items: the source list itself."""
    return source


def path_of(o):
    """get_x: the item (the path) itself, so that nothing is decoded."""
    return o


def _best(fn, repeats: int):
    times, out = [], None
    for _ in range(repeats):
        gc.collect()
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def _item_pass(ds) -> None:
    for i in range(len(ds)):
        ds[i]


def bench_learnkit(items, repeats: int) -> dict:
    from learnkit.data import CategoryBlock, DataBlock, RandomSplitter, RegexLabeller, TransformBlock

    def build():
        dblock = DataBlock(
            blocks=(TransformBlock, CategoryBlock),
            get_items=identity_items,
            get_x=path_of,
            get_y=RegexLabeller(PATTERN),
            splitter=RandomSplitter(0.2, seed=42),
        )
        return dblock.dataloaders(items, bs=64, num_workers=0, device="cpu")

    build_s, dls = _best(build, repeats)
    ds = dls.train_ds
    pass_s, _ = _best(lambda: _item_pass(ds), repeats)
    x, y = ds[0]
    assert isinstance(y, torch.Tensor) and len(dls.vocab) == N_CLASSES
    return {
        "build_s": build_s,
        "item_pass_s": pass_s,
        "n_train": len(ds),
        "n_valid": len(dls.valid_ds),
        "vocab": len(dls.vocab),
        "us_per_item": pass_s / len(ds) * 1e6,
    }


def bench_fastai(items, repeats: int) -> dict | None:
    try:
        import fastai
        from fastai.data.block import CategoryBlock, DataBlock, TransformBlock
        from fastai.data.transforms import RandomSplitter, RegexLabeller
    except Exception:  # not installed (or broken): reported as null
        return None

    def build():
        dblock = DataBlock(
            blocks=(TransformBlock, CategoryBlock),
            get_items=identity_items,
            get_x=path_of,
            get_y=RegexLabeller(PATTERN),
            splitter=RandomSplitter(0.2, seed=42),
        )
        return dblock.dataloaders(items, bs=64, num_workers=0, device=torch.device("cpu"))

    build_s, dls = _best(build, repeats)
    ds = dls.train_ds
    pass_s, _ = _best(lambda: _item_pass(ds), repeats)
    return {
        "build_s": build_s,
        "item_pass_s": pass_s,
        "n_train": len(ds),
        "n_valid": len(dls.valid_ds),
        "vocab": len(dls.vocab),
        "us_per_item": pass_s / len(ds) * 1e6,
        "version": fastai.__version__,
    }


def bench_fastai_elsewhere(n: int, repeats: int) -> dict | None:
    """Run the fastai half in ``$FASTAI_PYTHON`` (fastai is never a learnkit dependency)."""
    import subprocess

    py = os.environ.get("FASTAI_PYTHON", "/work/fastai-venv/bin/python")
    if not os.path.exists(py):
        return None
    out = subprocess.run(
        [py, os.path.abspath(__file__), "--n", str(n), "--repeats", str(repeats), "--fastai-only"],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if out.returncode != 0:
        return None
    return json.loads(out.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--fastai-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    items = make_items(args.n)
    if args.fastai_only:
        print(json.dumps(bench_fastai(items, args.repeats)))
        return
    lk = bench_learnkit(items, args.repeats)
    fa = bench_fastai(items, args.repeats)
    if fa is None:
        fa = bench_fastai_elsewhere(args.n, args.repeats)
    ratios = None
    if fa is not None:
        ratios = {k: fa[k] / lk[k] for k in ("build_s", "item_pass_s")}
    out = {
        "benchmark": "datablock",
        "n_items": args.n,
        "repeats": args.repeats,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_threads": torch.get_num_threads(),
        "learnkit": lk,
        "fastai": fa,
        "ratio_fastai_over_learnkit": ratios,
        "target": "ratios >= 2 (learnkit at least 2x faster)",
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
