"""Text benchmark: tokenization throughput, TextDataLoaders build time, LM and classifier epochs (learnkit vs fastai).

One run, side by side, on the same corpus (the prose of pandas' and torch's docstrings, labelled by library:
see tests/text/conftest.py), written to one CSV both sides read:

- tokenization: ``tokenize_texts`` with each library's default rules and tokenizer (fastai: spaCy, its default
  worker count), on the corpus repeated ``--repeat`` times; docs/s and MB/s.
- ``TextDataLoaders.from_df`` build time (tokenize + vocab + loaders), LM and classifier; learnkit's second
  build reads its on-disk tokenization cache (reported apart).
- one LM epoch (``fit_one_cycle(1)``) and the classifier's ``fine_tune`` with the same small AWD-LSTM config,
  batch size and sequence length, on one torch thread each; time per epoch (and per batch: the two
  tokenizers cut the same corpus into different numbers of tokens, so the LM has a different number of
  batches on each side) and validation accuracy.

Warm-up, the same on both sides before anything is timed: one ``validate()`` (one-time set-up), and the
import of ``torch._dynamo``, which ``torch.optim`` does the first time an optimizer is built (learnkit's
optimizers are torch.optim's; fastai's are its own). That import is a once-per-process cost, reported
apart as ``first_optimizer_import_s``, not an epoch cost.

fastai runs in ``$FASTAI_PYTHON`` (default ``/work/fastai-venv/bin/python``) as a subprocess when that exists;
otherwise its numbers are ``null``. Speed-ups are ``fastai / learnkit`` (> 1: learnkit faster); time ratios
``learnkit / fastai`` (< 1: learnkit faster). Next to wall-clock times, CPU seconds (the process and its
finished worker processes) say what each side costs on a shared machine, where the scheduler's share decides
wall time (fastai's loaders and tokenizer run in worker processes, learnkit's in the process).

    python benchmarks/text.py [--repeat 10] [--lm-epochs 1] [--clas-epochs 3]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SMALL = dict(emb_sz=64, n_hid=128, n_layers=2)


def _corpus_csv(folder: Path) -> Path:
    sys.path.insert(0, str(ROOT / "tests" / "text"))
    from conftest import build_corpus

    f = folder / "docs.csv"
    build_corpus().to_csv(f, index=False)
    return f


def _cpu_s() -> float:
    """CPU seconds used so far by this process and its finished children (e.g. DataLoader workers)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _warm_up_optimizer_import() -> float:
    """Import torch._dynamo (what torch.optim does once per process, on the first optimizer); its seconds."""
    t0 = time.perf_counter()
    import torch._dynamo  # noqa: F401

    return time.perf_counter() - t0


def bench_learnkit(csv: Path, repeat: int, lm_epochs: int, clas_epochs: int, cache_dir: Path) -> dict:
    import pandas as pd
    import torch

    sys.path.insert(0, str(ROOT))
    from learnkit.metrics import accuracy
    from learnkit.text import (
        AWD_LSTM,
        TextDataLoaders,
        language_model_learner,
        text_classifier_learner,
        tokenize_texts,
    )

    torch.set_num_threads(1)
    df = pd.read_csv(csv)
    texts = df.text.tolist() * repeat
    mb = sum(len(t.encode()) for t in texts) / 1e6
    t0, c0 = time.perf_counter(), _cpu_s()
    tokenize_texts(texts)
    tok_s = time.perf_counter() - t0
    tok_cpu = _cpu_s() - c0
    res = {
        "tok_docs_per_s": len(texts) / tok_s,
        "tok_mb_per_s": mb / tok_s,
        "tok_cpu_s": tok_cpu,
        "n_docs": len(texts),
        "mb": mb,
    }

    torch.manual_seed(0)
    t0 = time.perf_counter()
    dls_lm = TextDataLoaders.from_df(
        df, text_col="text", is_lm=True, valid_pct=0.1, bs=32, seq_len=48, seed=0, cache_dir=cache_dir
    )
    res["lm_dls_build_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    TextDataLoaders.from_df(
        df, text_col="text", is_lm=True, valid_pct=0.1, bs=32, seq_len=48, seed=0, cache_dir=cache_dir
    )
    res["lm_dls_build_cached_s"] = time.perf_counter() - t0
    res["lm_train_batches"] = len(dls_lm.train)
    lm = language_model_learner(
        dls_lm, AWD_LSTM, config=SMALL, drop_mult=0.3, pretrained=False, path=cache_dir
    )
    with lm.no_bar():
        lm.validate()  # warm-up: one-time imports and set-up stay out of the epoch time (both sides)
    res["first_optimizer_import_s"] = _warm_up_optimizer_import()
    t0, c0 = time.perf_counter(), _cpu_s()
    with lm.no_bar():
        lm.fit_one_cycle(lm_epochs, 2e-2)
    res["lm_epoch_s"] = (time.perf_counter() - t0) / lm_epochs
    res["lm_epoch_cpu_s"] = (_cpu_s() - c0) / lm_epochs
    res["lm_batch_s"] = res["lm_epoch_s"] / (len(dls_lm.train) + len(dls_lm.valid))
    res["lm_accuracy"] = float(lm.validate()[1])
    lm.save_encoder("enc")
    t0 = time.perf_counter()
    dls = TextDataLoaders.from_df(
        df, text_col="text", label_col="label", valid_col="is_valid", text_vocab=dls_lm.vocab, bs=16, seed=0
    )
    res["clas_dls_build_s"] = time.perf_counter() - t0
    learn = text_classifier_learner(
        dls, AWD_LSTM, config=SMALL, drop_mult=0.3, metrics=accuracy, path=cache_dir
    )
    learn.load_encoder("enc")
    t0, c0 = time.perf_counter(), _cpu_s()
    with learn.no_bar():
        learn.fine_tune(clas_epochs, 2e-2)
    res["clas_epoch_s"] = (time.perf_counter() - t0) / (clas_epochs + 1)
    res["clas_epoch_cpu_s"] = (_cpu_s() - c0) / (clas_epochs + 1)
    res["clas_accuracy"] = float(learn.validate()[1])
    res["majority"] = float(df[df.is_valid].label.value_counts(normalize=True).max())
    return res


def bench_fastai(csv: Path, repeat: int, lm_epochs: int, clas_epochs: int, work: Path) -> dict:
    import fastai
    import pandas as pd
    import torch
    from fastai.text.all import (
        AWD_LSTM,
        TextDataLoaders,
        accuracy,
        awd_lstm_clas_config,
        awd_lstm_lm_config,
        language_model_learner,
        text_classifier_learner,
        tokenize_texts,
    )

    torch.set_num_threads(1)
    df = pd.read_csv(csv)
    texts = df.text.tolist() * repeat
    mb = sum(len(t.encode()) for t in texts) / 1e6
    t0, c0 = time.perf_counter(), _cpu_s()
    tokenize_texts(texts)
    tok_s = time.perf_counter() - t0
    tok_cpu = _cpu_s() - c0
    res = {
        "tok_docs_per_s": len(texts) / tok_s,
        "tok_mb_per_s": mb / tok_s,
        "tok_cpu_s": tok_cpu,
        "version": fastai.__version__,
    }
    torch.manual_seed(0)
    t0 = time.perf_counter()
    dls_lm = TextDataLoaders.from_df(
        df, path=work, text_col="text", is_lm=True, valid_pct=0.1, bs=32, seq_len=48, seed=0
    )
    res["lm_dls_build_s"] = time.perf_counter() - t0
    res["lm_train_batches"] = len(dls_lm.train)
    lm = language_model_learner(
        dls_lm,
        AWD_LSTM,
        config={**awd_lstm_lm_config, **SMALL},
        drop_mult=0.3,
        pretrained=False,
        metrics=accuracy,
        path=work,
    )
    with lm.no_bar():
        lm.validate()  # warm-up: one-time imports and set-up stay out of the epoch time (both sides)
    res["first_optimizer_import_s"] = _warm_up_optimizer_import()
    t0, c0 = time.perf_counter(), _cpu_s()
    with lm.no_bar():
        lm.fit_one_cycle(lm_epochs, 2e-2)
    res["lm_epoch_s"] = (time.perf_counter() - t0) / lm_epochs
    res["lm_epoch_cpu_s"] = (_cpu_s() - c0) / lm_epochs
    res["lm_batch_s"] = res["lm_epoch_s"] / (len(dls_lm.train) + len(dls_lm.valid))
    res["lm_accuracy"] = float(lm.validate()[1])
    lm.save_encoder("enc")
    t0 = time.perf_counter()
    dls = TextDataLoaders.from_df(
        df,
        path=work,
        text_col="text",
        label_col="label",
        valid_col="is_valid",
        text_vocab=dls_lm.vocab,
        bs=16,
        seed=0,
    )
    res["clas_dls_build_s"] = time.perf_counter() - t0
    learn = text_classifier_learner(
        dls,
        AWD_LSTM,
        config={**awd_lstm_clas_config, **SMALL},
        drop_mult=0.3,
        metrics=accuracy,
        pretrained=False,
        path=work,
    )
    learn.load_encoder("enc")
    t0, c0 = time.perf_counter(), _cpu_s()
    with learn.no_bar():
        learn.fine_tune(clas_epochs, 2e-2)
    res["clas_epoch_s"] = (time.perf_counter() - t0) / (clas_epochs + 1)
    res["clas_epoch_cpu_s"] = (_cpu_s() - c0) / (clas_epochs + 1)
    res["clas_accuracy"] = float(learn.validate()[1])
    return res


def bench_fastai_elsewhere(args, csv: Path) -> dict | None:
    py = os.environ.get("FASTAI_PYTHON", "/work/fastai-venv/bin/python")
    if not os.path.exists(py):
        return None
    cmd = [
        py,
        os.path.abspath(__file__),
        "--fastai-only",
        str(csv),
        "--repeat",
        str(args.repeat),
        "--lm-epochs",
        str(args.lm_epochs),
        "--clas-epochs",
        str(args.clas_epochs),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    if out.returncode != 0:
        print(out.stderr[-2000:], file=sys.stderr)
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=10, help="corpus copies for the tokenization throughput")
    ap.add_argument("--lm-epochs", type=int, default=1)
    ap.add_argument("--clas-epochs", type=int, default=3)
    ap.add_argument("--fastai-only", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    if args.fastai_only:
        with tempfile.TemporaryDirectory() as d:
            with contextlib.redirect_stdout(sys.stderr):  # training tables go to stderr, the JSON to stdout
                res = bench_fastai(
                    Path(args.fastai_only), args.repeat, args.lm_epochs, args.clas_epochs, Path(d)
                )
            print(json.dumps(res))
        return
    with tempfile.TemporaryDirectory() as d:
        csv = _corpus_csv(Path(d))
        with contextlib.redirect_stdout(sys.stderr):
            lk = bench_learnkit(csv, args.repeat, args.lm_epochs, args.clas_epochs, Path(d) / "lk")
        fa = bench_fastai_elsewhere(args, csv)
    ratios = None
    if fa is not None:
        ratios = {
            "tokenize_speedup": lk["tok_docs_per_s"] / fa["tok_docs_per_s"],
            "lm_dls_build_speedup": fa["lm_dls_build_s"] / lk["lm_dls_build_s"],
            "clas_dls_build_speedup": fa["clas_dls_build_s"] / lk["clas_dls_build_s"],
            "lm_epoch_time_ratio": lk["lm_epoch_s"] / fa["lm_epoch_s"],
            "lm_batch_time_ratio": lk["lm_batch_s"] / fa["lm_batch_s"],
            "clas_epoch_time_ratio": lk["clas_epoch_s"] / fa["clas_epoch_s"],
            # CPU seconds (process + workers): what each side costs, whatever share of a loaded machine
            # the scheduler gave it (fastai's loaders run in worker processes, learnkit's in the process)
            "tokenize_cpu_ratio": fa["tok_cpu_s"] / lk["tok_cpu_s"],
            "lm_epoch_cpu_ratio": lk["lm_epoch_cpu_s"] / fa["lm_epoch_cpu_s"],
            "clas_epoch_cpu_ratio": lk["clas_epoch_cpu_s"] / fa["clas_epoch_cpu_s"],
        }
    print(
        json.dumps(
            {
                "benchmark": "text",
                "python": platform.python_version(),
                "config": SMALL,
                "learnkit": lk,
                "fastai": fa,
                "ratios": ratios,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
