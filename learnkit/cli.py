"""The ``learnkit`` command: training and predicting from the command line, one part per application.

::

    learnkit demo [--out DIR] [--epochs N]        # (vision) digits as an image folder, trained, exported, reloaded
    learnkit train images PATH [--arch resnet18 ...]   # (vision) an ImageNet-style folder
    learnkit train <what> ...                     # whatever each application adds (text, tabular, ...)
    learnkit predict EXPORT FILE [FILE ...]       # any export

The application cli protocol. The core builds the ``train`` and ``predict`` commands and asks each
application of :data:`learnkit.registry.APPLICATIONS` whose ``learnkit.<app>.cli`` module exists for the
rest; that module defines

- ``add_parser(subparsers)``: add its ``learnkit train <what>`` commands to the ``train`` command's
  subparsers (``subparsers.add_parser('text', help=...)`` and its arguments);
- ``add_commands(subparsers)`` (optional): add top-level commands (vision adds ``demo``);
- ``main(args) -> int``: run a command it added (``args.cmd`` is the top-level command, ``args.what`` the
  ``train`` subcommand) and return the exit status.

A :class:`~learnkit.exceptions.LearnkitError` from ``main`` is printed as ``learnkit: error: ...`` (exit
status 2), without a traceback. Adding an application touches no list in this module.

>>> main(["--help"])  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from sklearn.datasets import load_digits

from .exceptions import LearnkitError
from .export import load_learner
from .registry import APPLICATIONS

__all__ = ["main", "write_digits_folder", "say", "application_clis"]


def write_digits_folder(
    path, size: int = 32, valid_pct: float = 0.2, seed: int = 0, n: int | None = None
) -> Path:
    """Write scikit-learn's bundled 8x8 digits as an ImageNet-style folder of ``size`` x ``size`` grayscale PNGs:
    ``path/train/<digit>/*.png`` and ``path/valid/<digit>/*.png`` (a seeded ``valid_pct`` split).

    Returns ``path``. Files that exist already are kept, so a second call is cheap.

    >>> write_digits_folder("/tmp/digits")  # doctest: +SKIP
    PosixPath('/tmp/digits')
    """
    path = Path(path)
    d = load_digits()
    imgs, ys = d.images, d.target
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(ys))
    if n is not None:
        order = order[:n]
    n_valid = int(round(len(order) * valid_pct))
    for rank, i in enumerate(order):
        split = "valid" if rank < n_valid else "train"
        f = path / split / str(int(ys[i])) / f"{int(i):04d}.png"
        if f.exists():
            continue
        f.parent.mkdir(parents=True, exist_ok=True)
        arr = (imgs[i] / 16.0 * 255).round().astype(np.uint8)
        Image.fromarray(arr, mode="L").resize((size, size), Image.Resampling.BILINEAR).save(f)
    return path


def say(msg: str) -> None:
    """Print one line of command output (flushed)."""
    print(msg, flush=True)


_say = say


def _predict(args) -> int:
    learn = load_learner(args.export)
    rows = []
    for f in args.files:
        label, idx, probs = learn.predict(f)
        p = float(probs[int(idx)]) if isinstance(idx, torch.Tensor) and idx.ndim == 0 else None
        rows.append(
            {
                "file": f,
                "label": label if isinstance(label, (str, int, float)) else str(label),
                "probability": p,
            }
        )
        if not args.json:
            _say(f"{f}\t{label}" + (f"\t{p:.4f}" if p is not None else ""))
    if args.json:
        _say(json.dumps(rows))
    return 0


def application_clis() -> dict:
    """``{app: module}`` for every application of :data:`~learnkit.registry.APPLICATIONS` that has a
    ``learnkit.<app>.cli`` module (only those fixed ``learnkit.*`` names are imported)."""
    out = {}
    for app, mod in APPLICATIONS.items():
        try:
            out[app] = importlib.import_module(f"{mod}.cli")
        except ModuleNotFoundError as e:
            if e.name is None or not f"{mod}.cli".startswith(e.name):
                raise  # the cli module exists but imports something missing: show it
    return out


def _parser():
    p = argparse.ArgumentParser(
        prog="learnkit", description="learnkit: train and use models from the command line."
    )
    sub = p.add_subparsers(dest="cmd")
    t = sub.add_parser("train", help="train a model on your data and export it")
    tsub = t.add_subparsers(dest="what")
    pr = sub.add_parser("predict", help="predict files with an export")
    pr.add_argument("export")
    pr.add_argument("files", nargs="+")
    pr.add_argument("--json", action="store_true")
    owners: dict[tuple[str, str | None], object] = {}
    for mod in application_clis().values():
        before_top, before_train = set(sub.choices), set(tsub.choices)
        if hasattr(mod, "add_commands"):  # optional member of the protocol
            mod.add_commands(sub)
        mod.add_parser(tsub)
        for name in set(sub.choices) - before_top:
            owners[(name, None)] = mod
        for name in set(tsub.choices) - before_train:
            owners[("train", name)] = mod
    return p, owners


def main(argv=None) -> int:
    """Entry point of the ``learnkit`` console script; returns the exit status."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    p, owners = _parser()
    args = p.parse_args(argv)
    if args.cmd is None:
        p.print_help()
        return 0
    if args.cmd == "train" and args.what is None:
        p.parse_args(["train", "--help"])
    try:
        if args.cmd == "predict":
            return _predict(args)
        mod = owners[(args.cmd, args.what)] if args.cmd == "train" else owners[(args.cmd, None)]
        return mod.main(args)
    except LearnkitError as e:
        print(f"learnkit: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
