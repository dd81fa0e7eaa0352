"""``learnkit train text DATA.csv --text-col text --label-col label``: the ULMFiT flow from the command line.

Fine-tunes an AWD-LSTM language model on all the texts, transfers its encoder to a classifier, trains it,
and exports it (pickle-free) to ``--out`` (default ``DATA_dir/models/text_classifier.lk``). The top-level
``learnkit`` command calls :func:`add_parser` and :func:`main`; the module also runs alone::

    python -m learnkit.text.cli train DATA.csv --text-col text --label-col label [--valid-col is_valid]
        [--epochs 4 --lm-epochs 1 --bs 64 --seq-len 72 --small --pretrained]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

__all__ = ["add_parser", "main"]


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``text`` command to ``subparsers`` (the ``learnkit train`` sub-commands)."""
    p = subparsers.add_parser(
        "text", help="a CSV of texts and labels: language model, then classifier (ULMFiT)"
    )
    p.add_argument("data", help="CSV file with a text column and a label column")
    p.add_argument("--text-col", default="text")
    p.add_argument("--label-col", default="label")
    p.add_argument(
        "--valid-col", default=None, help="boolean column marking validation rows (else --valid-pct)"
    )
    p.add_argument("--valid-pct", type=float, default=0.2)
    p.add_argument("--epochs", type=int, default=4, help="classifier epochs (fine_tune)")
    p.add_argument("--lm-epochs", type=int, default=1, help="language-model epochs (0: skip the LM)")
    p.add_argument("--bs", type=int, default=64)
    p.add_argument("--seq-len", type=int, default=72)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--small", action="store_true", help="a small AWD-LSTM (trains in CPU minutes)")
    p.add_argument(
        "--pretrained", action="store_true", help="start the LM from the WikiText-103 weights (download)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="where the export goes")
    p.set_defaults(func=main)
    return p


def main(args) -> int:
    """Run ``learnkit train text`` with parsed ``args``; returns the exit status."""
    import pandas as pd

    from ..device import set_seed
    from ..exceptions import DataError
    from ..metrics import accuracy
    from .data import TextDataLoaders
    from .learner import language_model_learner, text_classifier_learner
    from .models import AWD_LSTM

    t0 = time.perf_counter()
    set_seed(args.seed)
    f = Path(args.data)
    if not f.is_file():
        raise DataError(f"Expected a CSV file. Received: {str(f)!r}, which does not exist.")
    df = pd.read_csv(f)
    cfg = dict(emb_sz=64, n_hid=128, n_layers=2) if args.small else None
    common = dict(
        text_col=args.text_col, valid_pct=args.valid_pct, seed=args.seed, bs=args.bs, seq_len=args.seq_len
    )
    path = f.parent
    text_vocab, enc = None, None
    if args.lm_epochs > 0:
        dls_lm = TextDataLoaders.from_df(df, path=path, is_lm=True, **{**common, "valid_pct": 0.1})
        lm = language_model_learner(dls_lm, AWD_LSTM, config=cfg, drop_mult=0.3, pretrained=args.pretrained)
        with lm.no_bar():
            lm.fit_one_cycle(args.lm_epochs, args.lr * 2)
        enc = lm.save_encoder("cli_encoder")
        text_vocab = dls_lm.vocab
        print(
            f"Language model validation (loss, accuracy, perplexity): {[round(float(v), 4) for v in lm.validate()]}",
            flush=True,
        )
    dls = TextDataLoaders.from_df(
        df, path=path, label_col=args.label_col, valid_col=args.valid_col, text_vocab=text_vocab, **common
    )
    learn = text_classifier_learner(
        dls, AWD_LSTM, config=cfg, drop_mult=0.5, metrics=accuracy, pretrained=enc is not None
    )
    if enc is not None:
        learn.load_encoder("cli_encoder")
    with learn.no_bar():
        learn.fine_tune(args.epochs, args.lr)
    out = Path(args.out) if args.out else path / "models" / "text_classifier.lk"
    learn.export(out.resolve())
    acc = learn.validate()
    print(f"Classifier validation (loss, accuracy): {[round(float(v), 4) for v in acc]}", flush=True)
    print(
        f"Exported to {out} in {time.perf_counter() - t0:.1f}s. Load it with learnkit.load_learner({str(out)!r}).",
        flush=True,
    )
    return 0


def _standalone(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m learnkit.text.cli")
    sub = parser.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train a model on your data and export it")
    add_parser(t.add_subparsers(dest="what", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(_standalone())
