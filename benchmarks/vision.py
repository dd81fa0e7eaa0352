"""Vision benchmark: learnkit vs fastai vs a hand-written torchvision pipeline, in one run. Prints JSON.

(a) ``pipeline``: images per second through the training pipeline on a folder of JPEG tiles cut from
    scikit-learn's two bundled photos: decode, ``RandomResizedCrop(224, min_scale=0.35)`` per item in
    2 DataLoader workers, then on the batch (on the device) flips, rotation, zoom, perspective warp and
    lighting in one resampling, and ImageNet normalisation. The bare-torchvision baseline does the same work
    with ``torchvision.transforms.v2`` in the workers and hand-written batch augmentation (one
    ``grid_sample`` per batch).
(b) ``digits``: epoch time and final validation accuracy of the same small CNN (plain ``nn.Sequential``),
    trained with ``fit_one_cycle(4, 1e-2)``, bs 64, no workers, on scikit-learn's digits written as a folder
    of 28x28 grayscale PNGs (1438 training / 359 validation images).

fastai runs in this process when it is importable, otherwise in the interpreter named by
``--fastai-python`` (default: ``$FASTAI_PYTHON``, like the other benchmarks, else
``/work/fastai-venv/bin/python`` when it exists) as a subprocess; without
either its numbers are ``null``. Ratios: ``learnkit_ips / fastai_ips`` (> 1: learnkit is faster),
``fastai_epoch_s / learnkit_epoch_s`` (> 1: learnkit is faster).

Usage: ``python benchmarks/vision.py [--tiles 3000] [--workers 2] [--bs 64] [--device cpu] [--data DIR]``
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch  # noqa: E402
from torch import nn  # noqa: E402

SIZE, MIN_SCALE = 224, 0.35
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
DEFAULT_FASTAI_PYTHON = os.environ.get("FASTAI_PYTHON", "/work/fastai-venv/bin/python")


# ------------------------------------------------------------------------------------------------ data
def make_tiles(root: Path, n: int, seed: int = 0) -> Path:
    """``n`` JPEG tiles (random crops of 160-400 px, quality 90) of the two bundled photos, one folder per photo."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_sample_images

    done = root / f".done_{n}"
    if done.exists():
        return root
    photos = load_sample_images()
    names = [Path(f).stem for f in photos.filenames]
    rng = np.random.default_rng(seed)
    for i in range(n):
        k = i % len(names)
        img = photos.images[k]
        h, w = img.shape[:2]
        s = int(rng.integers(160, 401))
        y, x = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
        f = root / names[k] / f"{i:05d}.jpg"
        f.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img[y : y + s, x : x + s]).save(f, quality=90)
    done.touch()
    return root


def make_digits(root: Path) -> Path:
    from learnkit.cli import write_digits_folder

    return write_digits_folder(root, size=28)


def small_cnn(n_in: int = 1, n_out: int = 10) -> nn.Sequential:
    """The model of part (b), identical for every library."""

    def block(ni, nf):
        return nn.Sequential(nn.Conv2d(ni, nf, 3, 2, 1, bias=False), nn.BatchNorm2d(nf), nn.ReLU())

    return nn.Sequential(
        block(n_in, 16),
        block(16, 32),
        block(32, 64),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(64, n_out),
    )


def _time_epoch(dl, warmup: int) -> tuple[float, int, float]:
    n, t0, start = 0, None, time.perf_counter()
    for i, b in enumerate(dl):
        x = b[0]
        if x.device.type == "cuda":
            torch.cuda.synchronize()
        if i == warmup - 1:
            t0 = time.perf_counter()
        elif i >= warmup:
            n += x.shape[0]
    end = time.perf_counter()
    return n / (end - t0), n, end - start


def _time_loader(dl, repeats: int, warmup: int = 3) -> dict:
    """Iterate ``repeats`` epochs of ``dl``; the best images/second over the batches after the first ``warmup``
    of an epoch (so worker start-up and the first prefetch are not counted)."""
    runs = [_time_epoch(dl, warmup) for _ in range(repeats)]
    best = max(runs)
    return {
        "images_per_s": round(best[0], 1),
        "timed_images": best[1],
        "epoch_s": [round(r[2], 2) for r in runs],
    }


# ------------------------------------------------------------------------------------------------ learnkit
def pipeline_learnkit(tiles: Path, bs: int, workers: int, device: str, repeats: int = 2) -> dict:
    from learnkit.data.transforms import Normalize
    from learnkit.vision.augment import RandomResizedCrop, aug_transforms
    from learnkit.vision.data import ImageDataLoaders

    torch.manual_seed(0)
    dls = ImageDataLoaders.from_folder(
        tiles,
        valid_pct=0.1,
        seed=0,
        item_tfms=RandomResizedCrop(SIZE, MIN_SCALE),
        batch_tfms=[*aug_transforms(), Normalize.from_stats(MEAN, STD)],
        bs=bs,
        num_workers=workers,
        device=device,
    )
    return _time_loader(dls.train, repeats)


def digits_learnkit(digits: Path, epochs: int, repeats: int = 1) -> dict:
    from learnkit import Learner
    from learnkit.device import set_seed
    from learnkit.metrics import accuracy
    from learnkit.vision.data import ImageDataLoaders

    times, accs = [], []
    for _ in range(repeats):
        set_seed(0)
        dls = ImageDataLoaders.from_folder(digits, img_mode="L", bs=64, num_workers=0, device="cpu")
        learn = Learner(dls, small_cnn(), metrics=accuracy)
        t0 = time.perf_counter()
        learn.fit_one_cycle(epochs, 1e-2, quiet=True)
        times.append((time.perf_counter() - t0) / epochs)
        accs.append(float(learn.validate()[1]))
    return {
        "epoch_s": round(min(times), 3),
        "accuracy": round(accs[-1], 4),
        "epoch_s_runs": [round(t, 3) for t in times],
    }


# ------------------------------------------------------------------------------------------------ torchvision
class _TVFolder(torch.utils.data.Dataset):
    def __init__(self, files, labels, tfm):
        self.files, self.labels, self.tfm = files, labels, tfm

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        from PIL import Image

        with Image.open(self.files[i]) as im:
            img = im.convert("RGB")
        return self.tfm(img), self.labels[i]


def _batch_aug(x: torch.Tensor) -> torch.Tensor:
    """Hand-written batch augmentation: flip, rotate 10 deg, zoom 1-1.1, perspective warp 0.2, lighting, normalise."""
    import torch.nn.functional as F

    n, dev = x.shape[0], x.device
    x = x.float().div_(255)

    def on(p):
        return (torch.rand(n, device=dev) < p).float()

    flip = 1 - 2 * on(0.5)
    ang = torch.empty(n, device=dev).uniform_(-10, 10).mul_(math.pi / 180) * on(0.75)
    zoom = 1 / (1 + torch.rand(n, device=dev) * 0.1 * on(0.75))
    warp = torch.empty(n, 2, device=dev).uniform_(-0.2, 0.2) * on(0.75)[:, None]
    cos, sin = torch.cos(ang) * zoom, torch.sin(ang) * zoom
    m = torch.zeros(n, 3, 3, device=dev)
    m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1] = cos * flip, -sin, sin * flip, cos
    m[:, 2, 0], m[:, 2, 1], m[:, 2, 2] = warp[:, 0] * 0.5, warp[:, 1] * 0.5, 1
    h, w = x.shape[-2:]
    ys, xs = torch.linspace(-1, 1, h, device=dev), torch.linspace(-1, 1, w, device=dev)
    base = torch.stack([xs.expand(h, w), ys[:, None].expand(h, w), torch.ones(h, w, device=dev)], -1)
    g = base.view(1, h * w, 3) @ m.transpose(1, 2)
    grid = (g[..., :2] / g[..., 2:]).view(n, h, w, 2)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=True)
    b = torch.empty(n, 1, 1, 1, device=dev).uniform_(-0.2, 0.2) * on(0.75).view(n, 1, 1, 1)
    c = torch.exp(torch.empty(n, 1, 1, 1, device=dev).uniform_(-0.2, 0.2)) ** on(0.75).view(n, 1, 1, 1)
    logit = torch.logit(x.clamp(1e-4, 1 - 1e-4))
    x = torch.sigmoid((logit + b * 4) * c)
    mean = torch.tensor(MEAN, device=dev).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=dev).view(1, 3, 1, 1)
    return (x - mean) / std


class _AugLoader:
    def __init__(self, dl, device):
        self.dl, self.device = dl, torch.device(device)

    def __iter__(self):
        nb = self.device.type == "cuda"
        for x, y in self.dl:
            yield _batch_aug(x.to(self.device, non_blocking=nb)), y.to(self.device, non_blocking=nb)


def pipeline_torchvision(tiles: Path, bs: int, workers: int, device: str, repeats: int = 2) -> dict:
    from torchvision.transforms import v2

    files = sorted(tiles.glob("*/*.jpg"))
    classes = sorted({f.parent.name for f in files})
    g = torch.Generator().manual_seed(0)
    idx = torch.randperm(len(files), generator=g)[int(len(files) * 0.1) :].tolist()
    tfm = v2.Compose([v2.RandomResizedCrop(SIZE, scale=(MIN_SCALE, 1.0), antialias=True), v2.PILToTensor()])
    ds = _TVFolder([files[i] for i in idx], [classes.index(files[i].parent.name) for i in idx], tfm)
    dl = torch.utils.data.DataLoader(
        ds,
        batch_size=bs,
        shuffle=True,
        num_workers=workers,
        drop_last=True,
        pin_memory=device.startswith("cuda"),
        persistent_workers=workers > 0,
    )
    return _time_loader(_AugLoader(dl, device), repeats)


# ------------------------------------------------------------------------------------------------ fastai
def pipeline_fastai(tiles: Path, bs: int, workers: int, device: str, repeats: int = 2) -> dict:
    from fastai.vision.all import (
        ImageDataLoaders,
        Normalize,
        RandomResizedCrop,
        aug_transforms,
        imagenet_stats,
    )

    torch.manual_seed(0)
    dls = ImageDataLoaders.from_folder(
        tiles,
        valid_pct=0.1,
        seed=0,
        item_tfms=RandomResizedCrop(SIZE, MIN_SCALE),
        batch_tfms=[*aug_transforms(), Normalize.from_stats(*imagenet_stats)],
        bs=bs,
        num_workers=workers,
        device=torch.device(device),
    )
    return _time_loader(dls.train, repeats)


def digits_fastai(digits: Path, epochs: int, repeats: int = 1) -> dict:
    from fastai.vision.all import (
        CategoryBlock,
        CrossEntropyLossFlat,
        DataBlock,
        GrandparentSplitter,
        ImageBlock,
        Learner,
        PILImageBW,
        accuracy,
        get_image_files,
        parent_label,
        set_seed,
    )

    times, accs = [], []
    for _ in range(repeats):
        set_seed(0)
        db = DataBlock(
            blocks=(ImageBlock(cls=PILImageBW), CategoryBlock),
            get_items=get_image_files,
            splitter=GrandparentSplitter(),
            get_y=parent_label,
        )
        dls = db.dataloaders(digits, bs=64, num_workers=0, device=torch.device("cpu"))
        learn = Learner(dls, small_cnn(), loss_func=CrossEntropyLossFlat(), metrics=accuracy)
        with learn.no_bar(), learn.no_logging():
            t0 = time.perf_counter()
            learn.fit_one_cycle(epochs, 1e-2)
            times.append((time.perf_counter() - t0) / epochs)
            accs.append(float(learn.validate()[1]))
    return {
        "epoch_s": round(min(times), 3),
        "accuracy": round(accs[-1], 4),
        "epoch_s_runs": [round(t, 3) for t in times],
    }


def _have_fastai() -> bool:
    try:
        import fastai  # noqa: F401

        return True
    except ImportError:
        return False


def run_fastai(args, tiles: Path, digits: Path) -> dict:
    """fastai's numbers: in this process when importable, else via ``--fastai-python`` as a subprocess."""
    if _have_fastai():
        import fastai

        return {
            "version": fastai.__version__,
            "pipeline": pipeline_fastai(tiles, args.bs, args.workers, args.device, args.repeats),
            "digits": digits_fastai(digits, args.epochs, args.repeats),
        }
    py = args.fastai_python
    if not py or not Path(py).exists():
        return {"version": None, "pipeline": None, "digits": None, "note": "fastai not importable"}
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "fastai.json"
        cmd = [
            py,
            os.path.abspath(__file__),
            "--only-fastai",
            str(out),
            "--data",
            str(args.data),
            "--tiles",
            str(args.tiles),
            "--bs",
            str(args.bs),
            "--workers",
            str(args.workers),
            "--device",
            args.device,
            "--epochs",
            str(args.epochs),
            "--repeats",
            str(args.repeats),
        ]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            return {
                "version": None,
                "pipeline": None,
                "digits": None,
                "note": f"fastai subprocess failed: {res.stderr.strip()[-500:]}",
            }
        return json.loads(out.read_text())


# ------------------------------------------------------------------------------------------------ main
def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiles", type=int, default=3000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--bs", type=int, default=64)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument(
        "--repeats", type=int, default=2, help="epochs timed per pipeline / fits per library (best kept)"
    )
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--data", default=os.path.join(tempfile.gettempdir(), "learnkit_bench_vision"))
    p.add_argument(
        "--fastai-python", default=DEFAULT_FASTAI_PYTHON if os.path.exists(DEFAULT_FASTAI_PYTHON) else None
    )
    p.add_argument("--only-fastai", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    data = Path(args.data)
    tiles = make_tiles(data / f"tiles{args.tiles}", args.tiles)
    digits = make_digits(data / "digits")
    if args.only_fastai:
        res = run_fastai(args, tiles, digits)
        Path(args.only_fastai).write_text(json.dumps(res))
        return res
    lk_pipe = pipeline_learnkit(tiles, args.bs, args.workers, args.device, args.repeats)
    tv_pipe = pipeline_torchvision(tiles, args.bs, args.workers, args.device, args.repeats)
    lk_digits = digits_learnkit(digits, args.epochs, args.repeats)
    fa = run_fastai(args, tiles, digits)
    fa_pipe, fa_digits = fa.get("pipeline"), fa.get("digits")
    out = {
        "benchmark": "vision",
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "device": args.device,
            "cpu_threads": torch.get_num_threads(),
            "cpus": os.cpu_count(),
        },
        "config": {
            "tiles": args.tiles,
            "workers": args.workers,
            "bs": args.bs,
            "size": SIZE,
            "epochs": args.epochs,
        },
        "pipeline_images_per_s": {
            "learnkit": lk_pipe["images_per_s"],
            "torchvision": tv_pipe["images_per_s"],
            "fastai": fa_pipe["images_per_s"] if fa_pipe else None,
        },
        "pipeline_detail": {"learnkit": lk_pipe, "torchvision": tv_pipe, "fastai": fa_pipe},
        "digits": {"learnkit": lk_digits, "fastai": fa_digits},
        "ratios": {
            "pipeline_learnkit_vs_fastai": round(lk_pipe["images_per_s"] / fa_pipe["images_per_s"], 2)
            if fa_pipe
            else None,
            "pipeline_learnkit_vs_torchvision": round(lk_pipe["images_per_s"] / tv_pipe["images_per_s"], 2),
            "digits_epoch_fastai_over_learnkit": round(fa_digits["epoch_s"] / lk_digits["epoch_s"], 2)
            if fa_digits
            else None,
            "digits_accuracy_learnkit_minus_fastai": round(lk_digits["accuracy"] - fa_digits["accuracy"], 4)
            if fa_digits
            else None,
        },
        "fastai_version": fa.get("version"),
    }
    if fa.get("note"):
        out["fastai_note"] = fa["note"]
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
