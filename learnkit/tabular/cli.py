"""``learnkit train tabular data.csv --y salary``: train a tabular model on a CSV and export it.

Column types are inferred with :func:`~learnkit.tabular.cont_cat_split` and printed; ``--cat`` / ``--cont``
override them. Also runnable as ``python -m learnkit.tabular.cli train data.csv --y salary``.

>>> main(_parser().parse_args(["train", "data.csv", "--y", "salary"]))  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import pandas as pd

from ..exceptions import DataError, LearnkitError
from ..utils import suggest

__all__ = ["add_parser", "main"]


def _names(s: str | None) -> list | None:
    if s is None:
        return None
    return [c.strip() for c in s.split(",") if c.strip()]


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``tabular`` command to ``subparsers`` (those of ``learnkit train``)."""
    p = subparsers.add_parser("tabular", help="a CSV table: predict one column (--y) from the others")
    _add_arguments(p)
    return p


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="CSV file")
    p.add_argument("--y", required=True, help="the target column")
    p.add_argument("--cat", default=None, help="comma-separated categorical columns (default: inferred)")
    p.add_argument("--cont", default=None, help="comma-separated continuous columns (default: inferred)")
    p.add_argument("--drop", default=None, help="comma-separated columns to leave out")
    p.add_argument(
        "--max-card", type=int, default=20, help="integers with more distinct values are continuous"
    )
    p.add_argument("--regression", action="store_true", help="treat the target as a number")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--bs", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--layers", default="200,100", help="hidden sizes, comma-separated")
    p.add_argument("--valid-pct", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--cpu", action="store_true", help="run on the CPU even when a GPU is present")
    p.add_argument("--out", default=None, help="export file (default: export.lk next to the CSV)")
    p.add_argument("--json", action="store_true", help="print a JSON summary line at the end")
    p.set_defaults(func=main)


def _run(args) -> int:
    from ..data.block import CategoryBlock, RegressionBlock
    from ..device import set_seed
    from ..metrics import accuracy, rmse
    from .core import Categorify, FillMissing, Normalize, cont_cat_split
    from .data import TabularDataLoaders
    from .learner import tabular_learner

    path = Path(args.path)
    if not path.is_file():
        raise DataError(f"Expected a CSV file. Received: {str(path)!r}, which does not exist.")
    df = pd.read_csv(path, skipinitialspace=True)
    if args.y not in df.columns:
        raise DataError(
            f"Expected the target column --y {args.y!r} in {path.name}. Received: columns "
            f"{list(df.columns)}.{suggest(args.y, df.columns)} Fix: --y <column>."
        )
    drop = set(_names(args.drop) or [])
    conts, cats = cont_cat_split(
        df.drop(columns=list(drop & set(df.columns))), max_card=args.max_card, dep_var=args.y
    )
    cat_names, cont_names = _names(args.cat), _names(args.cont)
    if cat_names is not None:
        conts = [c for c in conts if c not in cat_names]
    if cont_names is not None:
        cats = [c for c in cats if c not in cont_names]
    cat_names = cat_names if cat_names is not None else cats
    cont_names = cont_names if cont_names is not None else conts
    regression = args.regression or pd.api.types.is_float_dtype(df[args.y].dtype)
    print(f"target: {args.y} ({'regression' if regression else 'classification'})")
    print(f"categorical ({len(cat_names)}): {', '.join(cat_names) or '-'}")
    print(f"continuous ({len(cont_names)}): {', '.join(cont_names) or '-'}")
    print("override with --cat a,b --cont c,d (or --drop e)")
    set_seed(args.seed)
    dls = TabularDataLoaders.from_df(
        df,
        path=path.parent,
        procs=[Categorify, FillMissing, Normalize],
        cat_names=cat_names,
        cont_names=cont_names,
        y_names=args.y,
        y_block=RegressionBlock if regression else CategoryBlock,
        valid_pct=args.valid_pct,
        seed=args.seed,
        bs=args.bs,
        device="cpu" if args.cpu else None,
    )
    metric = rmse if regression else accuracy
    learn = tabular_learner(dls, layers=[int(n) for n in _names(args.layers)], metrics=metric)
    learn.fit_one_cycle(args.epochs, args.lr)
    vals = learn.validate()
    out = Path(args.out) if args.out else path.parent / "export.lk"
    learn.export(out.resolve())
    names = ["valid_loss", metric.name if hasattr(metric, "name") else "metric"]
    summary = {"export": str(out), **{n: float(v) for n, v in zip(names, vals)}}
    print(f"exported to {out}")
    if args.json:
        print(json.dumps(summary))
    return 0


def main(args) -> int:
    """Run the parsed ``learnkit train tabular`` command (or a list of command-line words); returns the
    exit status (2 with a message on bad input)."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    if not isinstance(args, argparse.Namespace):
        args = _parser().parse_args(args)
    try:
        return _run(args)
    except LearnkitError as e:
        print(f"learnkit: error: {e}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m learnkit.tabular.cli", description="train a tabular model")
    sub = p.add_subparsers(dest="what", required=True)
    # ``python -m learnkit.tabular.cli train data.csv`` reads as ``learnkit train tabular data.csv``
    _add_arguments(sub.add_parser("train", help="a CSV table: predict one column (--y) from the others"))
    return p


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
