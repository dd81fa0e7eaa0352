"""The vision part of the ``learnkit`` command (see :mod:`learnkit.cli` for the application cli protocol).

::

    learnkit demo [--out DIR] [--epochs N]        # digits as an image folder, trained, exported, reloaded
    learnkit train images PATH [--arch resnet18 --epochs 3 --size 224 --bs 64 --pretrained/--no-pretrained]

>>> import argparse
>>> p = argparse.ArgumentParser(prog="learnkit"); sub = p.add_subparsers(dest="cmd")
>>> add_commands(sub); t = sub.add_parser("train").add_subparsers(dest="what"); add_parser(t)
>>> p.parse_args(["train", "images", "data/"]).arch
'resnet18'
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import torch

from ..cli import say as _say
from ..cli import write_digits_folder
from ..device import set_seed
from ..export import load_learner
from ..interpret import ClassificationInterpretation
from ..metrics import accuracy, error_rate
from .augment import RandomResizedCrop, Resize, aug_transforms
from .data import ImageDataLoaders
from .learner import vision_learner
from .models import pretrained_available, pretrained_weights_file

__all__ = ["add_parser", "add_commands", "main"]


def add_commands(subparsers) -> None:
    """Add vision's top-level commands (``learnkit demo``) to the ``learnkit`` parser's subparsers."""
    d = subparsers.add_parser(
        "demo", help="vision demo on scikit-learn's digits (trains in seconds on a CPU)"
    )
    d.add_argument("--out", default="learnkit_demo", help="folder for the data, plots and export")
    d.add_argument("--epochs", type=int, default=4)
    d.add_argument("--size", type=int, default=28, help="image size in pixels")
    d.add_argument("--bs", type=int, default=64)
    d.add_argument(
        "--arch", default="simple_cnn", help="from-scratch model when no pretrained weights are cached"
    )
    d.add_argument(
        "--no-pretrained", action="store_true", help="train from scratch even if resnet18 is cached"
    )
    d.add_argument("--workers", type=int, default=None, help="DataLoader workers (default 0: in-process)")
    d.add_argument("--seed", type=int, default=42)
    d.add_argument("--cpu", action="store_true", help="run on the CPU even when a GPU is present")
    d.add_argument("--json", action="store_true", help="print a JSON summary line at the end")


def add_parser(subparsers) -> None:
    """Add ``learnkit train images`` to the ``train`` command's subparsers."""
    ti = subparsers.add_parser(
        "images", help="an ImageNet-style folder: PATH/train/<class>/*, PATH/valid/<class>/*"
    )
    ti.add_argument("path")
    ti.add_argument("--arch", default="resnet18")
    ti.add_argument("--epochs", type=int, default=3)
    ti.add_argument("--size", type=int, default=224)
    ti.add_argument("--bs", type=int, default=64)
    ti.add_argument("--lr", type=float, default=2e-3)
    ti.add_argument("--valid-pct", type=float, default=0.2, help="used when PATH has no valid/ folder")
    ti.add_argument("--workers", type=int, default=None)
    ti.add_argument("--seed", type=int, default=42)
    ti.add_argument("--augment", action=argparse.BooleanOptionalAction, default=True)
    ti.add_argument(
        "--pretrained",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="default: use pretrained weights when they are cached",
    )
    ti.add_argument("--skip-bad", action="store_true", help="skip unreadable images with a warning")
    ti.add_argument("--out", default=None, help="export file (default PATH/export.lk)")


def main(args) -> int:
    """Run a vision command parsed by :func:`add_parser` / :func:`add_commands`; returns the exit status."""
    if args.cmd == "demo":
        return _demo(args)
    return _train_images(args)


def _demo(args) -> int:
    matplotlib.use("Agg")

    t0 = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    set_seed(args.seed)
    data = write_digits_folder(out / "digits", size=args.size)
    _say(f"Wrote scikit-learn's digits as {args.size}x{args.size} PNGs under {data}/train and {data}/valid.")
    use_pretrained = not args.no_pretrained and pretrained_available("resnet18")
    if use_pretrained:
        arch = "resnet18"
        _say(
            f"Model: resnet18 with pretrained ImageNet weights (cached at {pretrained_weights_file('resnet18')}), "
            "fine-tuned."
        )
    else:
        arch = args.arch
        file = pretrained_weights_file("resnet18")
        why = "--no-pretrained was given" if args.no_pretrained else f"no cached resnet18 weights at {file}"
        _say(
            f"Model: {arch} trained from scratch ({why}). Pretrained weights are used when that file exists."
        )
    nw = 0 if args.workers is None else args.workers
    dls = ImageDataLoaders.from_folder(
        data,
        img_mode="RGB" if use_pretrained else "L",
        bs=args.bs,
        num_workers=nw,
        device="cpu" if args.cpu else None,
    )
    _say(
        f"Data: {len(dls.train_ds)} training and {len(dls.valid_ds)} validation images, classes {dls.vocab}."
    )
    learn = vision_learner(dls, arch, pretrained=use_pretrained, metrics=accuracy, path=out)
    if use_pretrained:
        epochs = max(
            1, args.epochs // 2
        )  # a ResNet is slower per epoch on a CPU and starts from good features
        _say(f"Fine-tuning: 1 epoch with the body frozen, then {epochs} with everything training.")
        learn.fine_tune(epochs, base_lr=2e-3)
    else:
        learn.fit_one_cycle(args.epochs, 1e-2)
    final = learn.validate()
    acc = float(final[1])
    _say(f"Final validation accuracy: {acc:.4f} (loss {float(final[0]):.4f})")
    files = {}
    interp = ClassificationInterpretation.from_learner(learn)
    # results on a few random validation images plus the three worst ones (mistakes are marked in red)
    valid_items = list(dls.valid_ds.items)
    g = torch.Generator().manual_seed(args.seed)
    pick = torch.randperm(len(valid_items), generator=g)[:6].tolist() + interp.top_losses(3)[1].tolist()
    dl = dls.test_dl([valid_items[i] for i in pick], with_labels=True)
    _, _, dec = learn.get_preds(dl=dl, with_decoded=True)
    dls.recipe.show_results(next(iter(dl)), dec, max_n=9)
    files["results"] = out / "show_results.png"
    plt.savefig(files["results"], dpi=80)
    plt.close("all")
    interp.plot_confusion_matrix()
    files["confusion"] = out / "confusion_matrix.png"
    plt.savefig(files["confusion"], dpi=80)
    plt.close("all")
    learn.recorder.plot_loss()
    files["loss"] = out / "loss.png"
    plt.savefig(files["loss"], dpi=80)
    plt.close("all")
    for k, f in files.items():
        _say(f"Saved {k} plot: {f}")
    exp = learn.export((out / "digits_export.lk").resolve())  # relative paths are under learn.path
    _say(f"Exported to {exp} ({exp.stat().st_size / 1e6:.1f} MB, loads with torch.load(weights_only=True)).")
    loaded = load_learner(exp)
    sample = sorted((data / "valid").glob("*/*.png"))[0]
    label, idx, probs = loaded.predict(sample)
    _say(
        f"Reloaded and predicted {sample.relative_to(out)} (true class {sample.parent.name}): {label} "
        f"with probability {float(probs[int(idx)]):.3f}"
    )
    _say(f"Done in {time.perf_counter() - t0:.1f}s on {torch.get_num_threads()} CPU thread(s).")
    if args.json:
        _say(
            json.dumps(
                {
                    "accuracy": acc,
                    "arch": arch,
                    "pretrained": use_pretrained,
                    "export": str(exp),
                    "prediction": str(label),
                    "true": sample.parent.name,
                }
            )
        )
    return 0


def _train_images(args) -> int:
    path = Path(args.path)
    pretrained = args.pretrained
    if pretrained is None:
        pretrained = pretrained_available(args.arch)
        if pretrained_weights_file(args.arch) is None:
            why = "none exist for this architecture, training from scratch"
        else:
            why = "cached, using them" if pretrained else "not cached, training from scratch"
        _say(f"Pretrained weights for {args.arch}: {why} (--pretrained / --no-pretrained to choose).")
    item_tfms = RandomResizedCrop(args.size, min_scale=0.35) if args.augment else Resize(args.size)
    batch_tfms = aug_transforms() if args.augment else None
    valid_pct = args.valid_pct if not (path / "valid").is_dir() else None
    dls = ImageDataLoaders.from_folder(
        path,
        valid_pct=valid_pct,
        seed=args.seed,
        item_tfms=item_tfms,
        batch_tfms=batch_tfms,
        bs=args.bs,
        num_workers=args.workers,
        bad_images="skip" if args.skip_bad else "raise",
    )
    _say(
        f"Data: {len(dls.train_ds)} training / {len(dls.valid_ds)} validation images, {len(dls.vocab)} classes."
    )
    learn = vision_learner(dls, args.arch, pretrained=pretrained, metrics=[accuracy, error_rate], path=path)
    if pretrained:
        learn.fine_tune(args.epochs, base_lr=args.lr)
    else:
        learn.fit_one_cycle(args.epochs, args.lr)
    res = learn.validate()
    _say(f"Final validation accuracy: {float(res[1]):.4f}")
    out = Path(args.out) if args.out else path / "export.lk"
    learn.export(out.resolve())
    _say(f"Exported to {out}. Predict with: learnkit predict {out} IMAGE...")
    return 0
