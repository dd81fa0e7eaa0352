"""Data-parallel scaling on this machine: samples/second for 1 vs 2 processes, and gradient-communication time.

A compute-bound model (an MLP 256-1024-1024-1024-10, 2.4M parameters) on 20,000 synthetic rows, trained
for one epoch with ``bs`` rows per process:

- ``1proc_1thread``, ``1proc_2threads``: one process (no DDP) with 1 and 2 intra-op threads;
- ``2proc_1thread``: ``torchrun --nproc_per_node=2`` (gloo), one thread per process (torchrun's default).

Each is run through learnkit's Learner and through a hand-written PyTorch loop (``DistributedDataParallel``
with a strided sampler) side by side. In the 2-process runs a DDP communication hook times every
gradient bucket's all-reduce (launch to completion; it overlaps the backward pass), and a standalone
all-reduce of all gradients gives the pure communication cost per step. Prints one JSON object.

    python benchmarks/distributed.py [--rows 20000] [--bs 256]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

WARMUP = 5  # steps excluded from the timings (allocations, DDP's first-iteration bookkeeping)


def make_data(n: int):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 256, generator=g)
    teacher = torch.randn(256, 10, generator=g)
    return x, (x @ teacher).argmax(1)


def make_model():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(256, 1024),
        nn.ReLU(),
        nn.Linear(1024, 1024),
        nn.ReLU(),
        nn.Linear(1024, 1024),
        nn.ReLU(),
        nn.Linear(1024, 10),
    )


class CommTimer:
    """A DDP comm hook: the default all-reduce (mean), timed per bucket from launch to completion."""

    def __init__(self):
        self.per_step: list[float] = []
        self._cur = 0.0

    def hook(self, state, bucket):
        t0, world = time.perf_counter(), dist.get_world_size()
        fut = dist.all_reduce(bucket.buffer(), async_op=True).get_future()

        def done(f):
            self._cur += time.perf_counter() - t0
            return f.value()[0].div_(world)

        return fut.then(done)

    def step(self):
        self.per_step.append(self._cur)
        self._cur = 0.0


def _rate(stamps: list[float], items_per_step: int) -> float:
    """Items per second from the median step time after the warm-up (robust to a busy shared machine)."""
    t = torch.tensor(stamps[WARMUP:], dtype=torch.float64)
    return items_per_step / float((t[1:] - t[:-1]).median())


def _median_ms(xs: list[float]) -> float:
    return 1e3 * float(torch.tensor(xs, dtype=torch.float64).median())


def run_learnkit(x, y, bs: int, world: int) -> dict:
    from learnkit import SGD, Callback, DataLoaders, Learner

    timer = CommTimer()
    stamps: list[float] = []

    class Clock(Callback):
        order = 0

        def before_train(self):  # the DDP wrapper exists from the first before_train of a fit
            ddp = getattr(self.learn, "ddp_model", None)
            if ddp is not None and not getattr(ddp, "_timed", False):
                ddp.register_comm_hook(None, timer.hook)
                ddp._timed = True

        def after_step(self):
            stamps.append(time.perf_counter())
            timer.step()

    dls = DataLoaders.from_tensors((x, y), bs=bs, shuffle=True, seed=0, device="cpu")
    learn = Learner(dls, make_model(), loss_func=nn.CrossEntropyLoss(), opt_func=SGD, lr=0.01)
    learn.fit(1, quiet=True, cbs=[Clock()])
    res = {"samples_per_s": _rate(stamps, bs * world), "steps": len(stamps)}
    if world > 1:
        res["allreduce_ms_per_step_in_hook"] = _median_ms(timer.per_step[WARMUP:])
    return res


def run_plain(x, y, bs: int, world: int) -> dict:
    """The same training written by hand: DDP when distributed, indices strided across ranks."""
    model = make_model()
    timer = CommTimer()
    if world > 1:
        model = nn.parallel.DistributedDataParallel(model)
        model.register_comm_hook(None, timer.hook)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    rank = dist.get_rank() if world > 1 else 0
    g = torch.Generator().manual_seed(0)
    idx = torch.randperm(len(x), generator=g)[rank::world]
    xs, ys = x[idx], y[idx]
    stamps = []
    for i in range(0, len(xs), bs):
        loss = nn.functional.cross_entropy(model(xs[i : i + bs]), ys[i : i + bs])
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        stamps.append(time.perf_counter())
        timer.step()
    res = {"samples_per_s": _rate(stamps, bs * world), "steps": len(stamps)}
    if world > 1:
        res["allreduce_ms_per_step_in_hook"] = _median_ms(timer.per_step[WARMUP:])
    return res


def standalone_allreduce_ms(n_params: int, reps: int = 10) -> float:
    """All-reduce of one buffer as large as all the gradients (the pure communication cost of a step)."""
    buf = torch.randn(n_params)
    dist.all_reduce(buf)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        dist.all_reduce(buf)
        times.append(time.perf_counter() - t0)
    return _median_ms(times)


def worker(args) -> dict:
    x, y = make_data(args.rows)
    world = int(os.environ.get("WORLD_SIZE", 1))
    if world > 1:
        from learnkit.distributed import setup_distributed

        setup_distributed("cpu")
    else:
        torch.set_num_threads(args.threads)
    res = {
        "learnkit": run_learnkit(x, y, args.bs, world),
        "pytorch": run_plain(x, y, args.bs, world),
        "threads_per_process": torch.get_num_threads(),
        "processes": world,
    }
    if world > 1:
        n_params = sum(p.numel() for p in make_model().parameters())
        res["allreduce_ms_standalone"] = standalone_allreduce_ms(n_params)
        res["gradient_mb"] = round(n_params * 4 / 2**20, 2)
        dist.barrier()
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--bs", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--worker", action="store_true")
    ap.add_argument("--out", type=str, default=None)
    args = ap.parse_args()
    if args.worker:
        res = worker(args)
        if int(os.environ.get("RANK", 0)) == 0 and args.out:
            Path(args.out).write_text(json.dumps(res))
        return
    os.environ.setdefault("LEARNKIT_QUIET", "1")
    here, results = Path(__file__).resolve(), {}
    with tempfile.TemporaryDirectory() as tmp:
        common = [str(here), "--worker", "--rows", str(args.rows), "--bs", str(args.bs)]
        for name, cmd in [
            ("1proc_1thread", [sys.executable, *common, "--threads", "1"]),
            ("1proc_2threads", [sys.executable, *common, "--threads", "2"]),
            (
                "2proc_1thread",
                [
                    sys.executable,
                    "-m",
                    "torch.distributed.run",
                    "--standalone",
                    "--nproc_per_node=2",
                    *common,
                ],
            ),
        ]:
            out = Path(tmp) / f"{name}.json"
            subprocess.run([*cmd, "--out", str(out)], check=True, capture_output=True, timeout=600)
            results[name] = json.loads(out.read_text())
    r1, r2, d = results["1proc_1thread"], results["1proc_2threads"], results["2proc_1thread"]
    summary = {
        "benchmark": "distributed data parallel, MLP 256-1024x3-10 (2.4M params), 20k rows, gloo on CPU",
        "cpu_cores": os.cpu_count(),
        "global_batch": {"1proc": args.bs, "2proc": 2 * args.bs},
        "results": results,
        "speedup_2proc_vs_1proc_1thread": {
            k: d[k]["samples_per_s"] / r1[k]["samples_per_s"] for k in ("learnkit", "pytorch")
        },
        "speedup_2proc_vs_1proc_2threads": {
            k: d[k]["samples_per_s"] / r2[k]["samples_per_s"] for k in ("learnkit", "pytorch")
        },
        "learnkit_vs_pytorch": {
            n: results[n]["learnkit"]["samples_per_s"] / results[n]["pytorch"]["samples_per_s"]
            for n in results
        },
        "comm_ms_per_step": {
            "standalone_allreduce": d["allreduce_ms_standalone"],
            "in_ddp_hook_learnkit": d["learnkit"]["allreduce_ms_per_step_in_hook"],
            "in_ddp_hook_pytorch": d["pytorch"]["allreduce_ms_per_step_in_hook"],
        },
        "step_ms_learnkit": {
            n: 1e3 * args.bs * results[n]["processes"] / results[n]["learnkit"]["samples_per_s"]
            for n in results
        },
    }
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
