"""Rank 1 raises in the middle of an epoch while rank 0 is inside a gradient all-reduce: the job must end
quickly with a non-zero exit status, naming the rank and the error (run by tests/test_distributed.py)."""

from __future__ import annotations

import os
import time

import torch
from torch import nn

from learnkit import Callback, DataLoaders, Learner
from learnkit.distributed import rank_distrib


class Boom(Callback):
    def before_backward(self):
        if rank_distrib() == 1 and self.learn.iter == 3:
            raise RuntimeError(f"boom: simulated failure on purpose at t={time.time():.3f}")


if __name__ == "__main__":
    os.environ.setdefault("LEARNKIT_QUIET", "1")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 8, generator=g)
    y = (x.sum(1) > 0).long()
    dls = DataLoaders.from_tensors((x, y), (x[:64], y[:64]), bs=16, device="cpu")
    learn = Learner(
        dls,
        nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2)),
        loss_func=nn.CrossEntropyLoss(),
        cbs=[Boom()],
    )
    learn.fit(3)
