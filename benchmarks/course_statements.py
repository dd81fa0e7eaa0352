"""Course-style scripts statement by statement: how much of fastai-course code runs on learnkit. Prints JSON.

Each script under ``benchmarks/course_scripts/`` is written in the style of a fastai book chapter or course
lesson (our own code, not the book's), with ``from learnkit.vision.all import *`` as its import. Offline
stand-in data (scikit-learn's bundled digits written as image folders, a CSV of multi-label rows, masks and
keypoints) is made in a temporary folder and its path given to the scripts as ``COURSE_DATA``. Every
top-level statement runs in one namespace per script (``ast`` split, ``exec``); a failing statement is
recorded and the script goes on, as a notebook user would.

Output: ``{"total": N, "failed": F, "fraction_failed": F / N, "per_script": {...}, "failures": [{"script",
"line", "statement", "error"}, ...]}``.

Usage: ``python benchmarks/course_statements.py [--scripts DIR] [--data DIR] [script.py ...]``
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import io
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
NAMES = ["zero", "one", "two"]


def _digit_images(n_per_class: int = 16, size: int = 24):
    from sklearn.datasets import load_digits

    d = load_digits()
    out = []
    counts = dict.fromkeys(range(3), 0)
    for i, y in enumerate(d.target):
        y = int(y)
        if y < 3 and counts[y] < n_per_class:
            counts[y] += 1
            img = Image.fromarray((d.images[i] * (255 / 16)).astype(np.uint8)).resize((size, size))
            out.append((i, y, img.convert("RGB")))
    return out


def make_course_data(root: Path) -> Path:
    """Write the stand-in data sets the scripts read (small: the whole set of scripts runs in a minute or two)."""
    root = Path(root)
    imgs = _digit_images()
    for n, (i, y, img) in enumerate(imgs):
        # pets-style names: the class in the name; "cats" (class zero) capitalised, as in the book's is_cat
        name = NAMES[y].capitalize() if y == 0 else NAMES[y]
        f = root / "pets" / "images" / f"{name}_{i}.png"
        f.parent.mkdir(parents=True, exist_ok=True)
        img.save(f)
        split = "valid" if n % 4 == 0 else "train"
        g = root / "bears" / split / NAMES[y] / f"{i}.png"
        g.parent.mkdir(parents=True, exist_ok=True)
        img.save(g)
    # multi-label: a CSV with space-separated labels and an is_valid column
    rows = ["fname,labels,is_valid"]
    for n, (i, y, img) in enumerate(imgs):
        f = root / "multi" / "images" / f"{i}.png"
        f.parent.mkdir(parents=True, exist_ok=True)
        img.save(f)
        labels = NAMES[y] + (" round" if y == 0 else "")
        rows.append(f"{i}.png,{labels},{n % 4 == 0}")
    (root / "multi" / "train.csv").write_text("\n".join(rows) + "\n")
    # segmentation: the "ink" of each digit as the mask
    for i, _, img in imgs[:24]:
        a = np.asarray(img.convert("L"))
        (root / "seg" / "images").mkdir(parents=True, exist_ok=True)
        (root / "seg" / "labels").mkdir(parents=True, exist_ok=True)
        img.save(root / "seg" / "images" / f"{i}.png")
        Image.fromarray((a > 100).astype(np.uint8)).save(root / "seg" / "labels" / f"{i}_P.png")
    (root / "seg" / "codes.txt").write_text("background\ndigit\n")
    # keypoints: one bright dot per image, its centre in a text file next to it
    rng = np.random.default_rng(0)
    (root / "points").mkdir(parents=True, exist_ok=True)
    for i in range(32):
        x, y = int(rng.integers(3, 29)), int(rng.integers(3, 21))
        a = np.zeros((24, 32, 3), np.uint8)
        a[y - 1 : y + 2, x - 1 : x + 2] = 255
        Image.fromarray(a).save(root / "points" / f"{i}.png")
        (root / "points" / f"{i}.txt").write_text(f"{x + 0.5} {y + 0.5}\n")
    return root


def run_script(path: Path, data: Path, quiet: bool = True) -> dict:
    """Run ``path`` statement by statement in one namespace; return counts and failures."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    src = Path(path).read_text()
    tree = ast.parse(src, filename=str(path))
    ns = {"__name__": "__main__", "COURSE_DATA": str(data)}
    failures, total = [], 0
    cwd = os.getcwd()
    work = tempfile.mkdtemp(prefix="course-")
    os.chdir(work)  # exports and CSV logs land in a scratch folder
    t0 = time.perf_counter()
    try:
        for node in tree.body:
            total += 1
            code = compile(ast.Module(body=[node], type_ignores=[]), str(path), "exec")
            out = io.StringIO()
            try:
                with contextlib.redirect_stdout(out) if quiet else contextlib.nullcontext():
                    exec(code, ns)
            except Exception as e:  # a notebook cell failing: note it and go on
                failures.append(
                    {
                        "script": Path(path).name,
                        "line": node.lineno,
                        "statement": ast.get_source_segment(src, node)[:200],
                        "error": f"{type(e).__name__}: {str(e)[:300]}",
                        "where": traceback.format_exc().strip().splitlines()[-3][:200],
                    }
                )
            plt.close("all")
    finally:
        os.chdir(cwd)
    return {
        "total": total,
        "failed": len(failures),
        "seconds": round(time.perf_counter() - t0, 1),
        "failures": failures,
    }


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scripts", nargs="*", help="script files (default: every .py in --scripts)")
    ap.add_argument("--scripts-dir", default=str(HERE / "course_scripts"))
    ap.add_argument("--data", default=None, help="where to write the stand-in data (default: a temp folder)")
    ap.add_argument("--verbose", action="store_true", help="let the scripts print")
    args = ap.parse_args(argv)
    os.environ.setdefault("LEARNKIT_DEVICE", "cpu")
    files = [Path(s) for s in args.scripts] or sorted(Path(args.scripts_dir).glob("*.py"))
    data = make_course_data(Path(args.data or tempfile.mkdtemp(prefix="course-data-")))
    per, failures, total = {}, [], 0
    for f in files:
        r = run_script(f, data, quiet=not args.verbose)
        per[f.name] = {k: r[k] for k in ("total", "failed", "seconds")}
        print(f"{f.name}: {r['failed']}/{r['total']} failed in {r['seconds']} s", file=sys.stderr, flush=True)
        for x in r["failures"]:
            print(
                f"  line {x['line']}: {x['statement'][:70]!r} -> {x['error'][:200]}",
                file=sys.stderr,
                flush=True,
            )
        failures += r["failures"]
        total += r["total"]
    res = {
        "total": total,
        "failed": len(failures),
        "fraction_failed": round(len(failures) / max(total, 1), 4),
        "per_script": per,
        "failures": failures,
    }
    print(json.dumps(res, indent=1))
    return res


if __name__ == "__main__":
    sys.exit(0 if main()["failed"] == 0 else 1)
