"""Per-batch overhead of learnkit's training loop, side by side (prints one JSON object).

A tiny MLP on in-memory tensors (20,000 x 32, batch 64, 3 epochs), for 1 thread and the default number of
threads:

- ``hand_sliced``: a hand-written PyTorch loop over the same sliced batches (``TensorLoader``),
- ``learnkit``: ``Learner.fit`` with its default callbacks (progress bar and recorder included),
- ``hand_torch_dataloader``: a hand-written loop over ``DataLoader(TensorDataset)`` (what most code does),
- ``fastai``: ``fastai.learner.Learner.fit`` with its defaults, when fastai is importable here or in the
  interpreter named by ``$FASTAI_PYTHON`` (default ``/work/fastai-venv/bin/python``). Never a dependency.

Ratios are times divided by ``hand_sliced`` (lower is better; 1.0 = no overhead). Each time is the best of
``--repeats`` interleaved rounds (default 10).

Timings on a shared VM move by 5-15% from run to run, more than learnkit's overhead. ``--instructions`` adds
a measure without timer noise: the CPU instructions per training step (one thread), counted by valgrind's
cachegrind (``valgrind`` must be on the PATH; about 10 minutes, four processes). Each side runs in its own
process after the same set-up and warm-up; a process that runs no side is the baseline subtracted. Sides:
``hand_sliced``, ``learnkit_quiet`` (``fit(quiet=True)``: the loop, recorder and NaN check without bars) and
``learnkit`` (bars on). Under valgrind the program runs ~50x slower while tqdm redraws on wall time, so the
bars' ``mininterval`` is stretched by the measured slowdown: they redraw as often per step as natively.

Run: ``python benchmarks/loop_overhead.py [--repeats N] [--instructions]`` (or ``make bench``).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import torch
from torch import nn

N, D, BS, EPOCHS = 20_000, 32, 64, 3
REPEATS = int(sys.argv[sys.argv.index("--repeats") + 1]) if "--repeats" in sys.argv else 10


def make_data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, D, generator=g)
    y = (x[:, :4].sum(1) > 0).long()
    return x, y


def make_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(D, 64), nn.ReLU(), nn.Linear(64, 2))


def make_opt(params, lr=1e-3):
    return torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.99), eps=1e-5, weight_decay=0.01)


def best_of(f, repeats=REPEATS):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return min(times)


def interleaved(runs: dict, rounds=REPEATS) -> dict:
    """Best time of each prepared run, alternating them round by round so machine drift hits all alike."""
    best = {k: float("inf") for k in runs}
    for _ in range(rounds):
        for k, go in runs.items():
            t0 = time.perf_counter()
            go()
            best[k] = min(best[k], time.perf_counter() - t0)
    return best


def hand_loop(dl):
    """The loop a user would write by hand: forward, loss, backward, step, zero_grad."""
    model = make_model()
    opt, loss_func = make_opt(model.parameters()), nn.CrossEntropyLoss()

    def go():
        model.train()
        for _ in range(EPOCHS):
            for xb, yb in dl:
                loss = loss_func(model(xb), yb)
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)

    return go


def run_hand_sliced(x, y):
    from learnkit.data.loaders import TensorLoader

    return hand_loop(TensorLoader(x, y, bs=BS, shuffle=True))


def run_hand_torch_dl(x, y):
    from torch.utils.data import DataLoader, TensorDataset

    return hand_loop(DataLoader(TensorDataset(x, y), batch_size=BS, shuffle=True))


class _FakeTTY(io.StringIO):
    """Swallows output but looks like a terminal, so progress bars really run (as for a user)."""

    def isatty(self):
        return True


def run_learnkit(x, y, quiet: bool = False):
    from learnkit import DataLoaders, Learner

    dls = DataLoaders.from_tensors((x, y), None, bs=BS, device="cpu")
    learn = Learner(dls, make_model(), loss_func=nn.CrossEntropyLoss(), opt_func=make_opt)

    def go():
        with contextlib.redirect_stdout(_FakeTTY()):  # the bars still run; JSON stays clean
            learn.fit(EPOCHS, quiet=quiet)

    go.learn = learn
    return go


INSTRUCTION_SIDES = ("none", "hand_sliced", "learnkit_quiet", "learnkit")


def run_instruction_side(side: str, native_hand_seconds: float) -> None:
    """One process of ``--instructions``: the same set-up and warm-up for every side, then ``side`` once.

    The bars redraw on wall time; to redraw them as often per step as in a native run, their
    ``mininterval`` is stretched by this process's slowdown (its hand loop's time over the native one's).
    """
    torch.set_num_threads(1)
    x, y = make_data()
    runs = {
        "hand_sliced": run_hand_sliced(x, y),
        "learnkit_quiet": run_learnkit(x, y, quiet=True),
        "learnkit": run_learnkit(x, y),
    }
    t0 = time.perf_counter()
    runs["hand_sliced"]()
    slowdown = max(1.0, (time.perf_counter() - t0) / native_hand_seconds)
    bar = runs["learnkit"].learn.progress
    bar.mininterval *= slowdown
    for k, go in runs.items():
        if k != "hand_sliced":
            go()
    if side != "none":
        runs[side]()


def instruction_counts(native_hand_seconds: float) -> dict:
    """Instructions per step of each side (cachegrind's ``I refs`` minus the baseline process's)."""
    vg = shutil.which("valgrind")
    if vg is None:
        return {"error": "valgrind is not on the PATH (apt install valgrind)"}
    steps = EPOCHS * ((N + BS - 1) // BS)
    with tempfile.TemporaryDirectory() as tmp:
        procs = {
            side: subprocess.Popen(
                [vg, "--tool=cachegrind", "--cache-sim=no", f"--cachegrind-out-file={tmp}/{side}.out"]
                + [sys.executable, __file__, "--instruction-side", side, str(native_hand_seconds)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for side in INSTRUCTION_SIDES
        }
        refs = {}
        for side, p in procs.items():
            err = p.communicate(timeout=3600)[1]
            m = re.search(r"I\s+refs:\s+([\d,]+)", err)
            if p.returncode != 0 or m is None:
                return {"error": f"{side}: " + (err.strip().splitlines() or ["failed"])[-1]}
            refs[side] = int(m.group(1).replace(",", ""))
    per_step = {k: (v - refs["none"]) / steps for k, v in refs.items() if k != "none"}
    base = per_step["hand_sliced"]
    return {
        "note": "one thread; the bars' redraw interval stretched by valgrind's slowdown, so they redraw as often per step as natively",
        **{
            k: {"instructions_per_step": round(v), "ratio_vs_hand": round(v / base, 3)}
            for k, v in per_step.items()
        },
    }


def run_fastai_here(x, y):
    from fastai.data.core import DataLoaders as FDataLoaders
    from fastai.learner import Learner as FLearner
    from fastai.optimizer import Adam as FAdam
    from torch.utils.data import TensorDataset

    ds = TensorDataset(x, y)
    from fastai.data.load import DataLoader as FDataLoader

    dls = FDataLoaders(
        FDataLoader(ds, bs=BS, shuffle=True), FDataLoader(TensorDataset(x[:BS], y[:BS]), bs=BS), device="cpu"
    )
    learn = FLearner(dls, make_model(), loss_func=nn.CrossEntropyLoss(), opt_func=FAdam)

    def go():
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            learn.fit(EPOCHS)

    go()  # warm-up
    return go


def fastai_python() -> str | None:
    try:
        import fastai  # noqa: F401

        return sys.executable
    except ImportError:
        pass
    p = os.environ.get("FASTAI_PYTHON", "/work/fastai-venv/bin/python")
    return p if os.path.exists(p) else None


def run_fastai(threads: int):
    py = fastai_python()
    if py is None:
        return None
    if py == sys.executable:
        torch.set_num_threads(threads)
        return best_of(run_fastai_here(*make_data()))
    out = subprocess.run(
        [py, __file__, "--fastai-only", str(threads)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": ""},
        timeout=900,
    )
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"}
    return json.loads(out.stdout.strip().splitlines()[-1])["fastai"]


def fixed_overhead_us(rounds=REPEATS) -> dict:
    """learnkit's fixed cost per step, seen on a model so small that the step itself costs almost nothing."""
    from learnkit import DataLoaders, Learner
    from learnkit.data.loaders import TensorLoader

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(20_000, 2, generator=g), torch.randint(0, 2, (20_000,), generator=g)
    n_steps = len(x) // 8

    def sgd(p, lr=0.1):
        return torch.optim.SGD(p, lr=lr)

    m, dl = nn.Linear(2, 2), TensorLoader(x, y, bs=8, shuffle=True)
    opt, lf = sgd(m.parameters()), nn.CrossEntropyLoss()

    def hand():
        for xb, yb in dl:
            loss = lf(m(xb), yb)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

    learn = Learner(
        DataLoaders.from_tensors((x, y), None, bs=8, device="cpu"),
        nn.Linear(2, 2),
        loss_func=nn.CrossEntropyLoss(),
        opt_func=sgd,
    )

    def lk():
        with contextlib.redirect_stdout(_FakeTTY()):
            learn.fit(1)

    hand(), lk()
    best = interleaved({"hand": hand, "learnkit": lk}, rounds)
    return {
        "hand_us_per_step": round(best["hand"] / n_steps * 1e6, 1),
        "learnkit_us_per_step": round(best["learnkit"] / n_steps * 1e6, 1),
        "learnkit_overhead_us_per_step": round((best["learnkit"] - best["hand"]) / n_steps * 1e6, 1),
    }


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--instruction-side":
        run_instruction_side(sys.argv[2], float(sys.argv[3]))
        return
    if len(sys.argv) > 2 and sys.argv[1] == "--fastai-only":
        torch.set_num_threads(int(sys.argv[2]))
        print(json.dumps({"fastai": best_of(run_fastai_here(*make_data()))}))
        return
    x, y = make_data()
    steps = EPOCHS * ((N + BS - 1) // BS)
    default_threads = torch.get_num_threads()
    results = {
        "task": f"MLP {D}-64-2, {N} x {D} tensors, bs {BS}, {EPOCHS} epochs ({steps} steps)",
        "torch": torch.__version__,
        "runs": {},
    }
    for threads in sorted({1, default_threads}):
        torch.set_num_threads(threads)
        runs = {
            "hand_sliced": run_hand_sliced(x, y),
            "learnkit": run_learnkit(x, y),
            "hand_torch_dataloader": run_hand_torch_dl(x, y),
        }
        for go in runs.values():  # warm-up: first-step imports and allocations
            go()
        r = interleaved(runs)
        fa = run_fastai(threads)
        torch.set_num_threads(threads)
        if isinstance(fa, float):
            r["fastai"] = fa
        elif fa is not None:
            r["fastai_error"] = fa
        base = r["hand_sliced"]
        res = {
            k: {
                "seconds": round(v, 4),
                "us_per_step": round(v / steps * 1e6, 1),
                "ratio_vs_hand": round(v / base, 3),
            }
            for k, v in r.items()
            if isinstance(v, float)
        }
        if "fastai_error" in r:
            res["fastai"] = r["fastai_error"]
        results["runs"][f"threads={threads}"] = res
    torch.set_num_threads(1)
    results["fixed_overhead_linear_2x2_bs8_1thread"] = fixed_overhead_us()
    if "--instructions" in sys.argv:
        results["instructions_1thread"] = instruction_counts(
            results["runs"]["threads=1"]["hand_sliced"]["seconds"]
        )
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
