"""A small real task (scikit-learn digits, tiny MLP) trained under torchrun, and the same task in one process.

``tests/test_distributed.py`` imports the builders for its single-process references and launches
``torchrun --nproc_per_node=2 ddp_task.py OUT WORK CKPT_IN``; every rank writes what it saw to
``OUT/rank{r}.pt`` (weights, recorder values, predictions, ...). ``WORK`` is the Learner's path, shared
by the ranks: only rank 0 may write there.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import torch
from torch import nn

from learnkit import (
    Callback,
    CancelBatchException,
    Checkpoint,
    DataLoaders,
    F1Score,
    Learner,
    RocAuc,
    SaveModel,
    accuracy,
    set_seed,
)
from learnkit.distributed import DistributedTrainer, barrier, no_sync, num_distrib, rank0_first, rank_distrib

N_TRAIN = 1436  # even: both ranks hold the same number of training items, so DDP equals one process exactly
BS_GLOBAL, VAL_BS, SEED, LR = 64, 50, 123, 1e-2
DEVICE = os.environ.get("DDP_TASK_DEVICE", "cpu")  # the CUDA test sets "cuda"


def digits():
    """Digits (1797 x 64) in [0, 1], shuffled with a fixed seed: 1436 training and 361 validation items."""
    from sklearn.datasets import load_digits

    d = load_digits()
    idx = torch.randperm(len(d.target), generator=torch.Generator().manual_seed(0))
    x = torch.tensor(d.data, dtype=torch.float32)[idx] / 16.0
    y = torch.tensor(d.target)[idx]
    return (x[:N_TRAIN], y[:N_TRAIN]), (x[N_TRAIN:], y[N_TRAIN:])


def mlp():
    """The task's model: body (index 0-1) and head (index 2), for splitters."""
    return nn.Sequential(nn.Linear(64, 48), nn.ReLU(), nn.Linear(48, 10))


def splitter(m):
    return [list(m[0].parameters()), list(m[2].parameters())]


def tensor_dls(data, world: int = 1):
    """Tensor loaders with ``BS_GLOBAL`` items per step in all: ``BS_GLOBAL // world`` per process."""
    train, valid = data
    return DataLoaders.from_tensors(
        train, valid, bs=BS_GLOBAL // world, val_bs=VAL_BS, seed=SEED, device=DEVICE
    )


def torch_dls(data, world: int = 1):
    """Plain torch DataLoaders over TensorDatasets (the path DataBlock and image loaders take), in order so
    that one process sees the same global batches as the two (DistributedSampler strides the indices)."""
    from torch.utils.data import TensorDataset

    train, valid = data
    return DataLoaders.from_datasets(
        TensorDataset(*train),
        TensorDataset(*valid),
        bs=BS_GLOBAL // world,
        val_bs=VAL_BS,
        num_workers=0,
        shuffle=False,
        device=DEVICE,
    )


def metrics():
    return [accuracy, F1Score(average="macro"), RocAuc()]


def main_learner(data, path, world: int = 1, cbs=None):
    set_seed(0)
    return Learner(
        tensor_dls(data, world), mlp(), loss_func=nn.CrossEntropyLoss(), metrics=metrics(), path=path, cbs=cbs
    )


class CopyAfterFirstEpoch(Callback):
    """Keeps a copy of the checkpoint written at the end of epoch 0 (runs after Checkpoint)."""

    order = 95

    def __init__(self, src: Path, dst: Path):
        self.src, self.dst = src, dst

    def after_epoch(self):
        if self.learn.epoch == 0 and rank_distrib() == 0:
            shutil.copy(self.src, self.dst)


class StopAfterFirstEpoch(Callback):
    """Stops fit after epoch 0's checkpoint is written (to make a checkpoint to resume from)."""

    order = 95

    def after_epoch(self):
        from learnkit import CancelFitException

        raise CancelFitException()


class Accumulate2(Callback):
    """Gradient accumulation over 2 micro-batches; the first of each pair runs inside ``no_sync``."""

    order = 20

    def before_batch(self):
        self._ctx = None
        if self.learn.training and self.learn.iter % 2 == 0:
            self._ctx = no_sync(self.learn)
            self._ctx.__enter__()

    def after_backward(self):
        if self._ctx is not None:
            self._ctx.__exit__(None, None, None)
            self._ctx = None
            raise CancelBatchException()  # skip the step and zero_grad: gradients accumulate


class CountAllReduce(Callback):
    """Counts DDP's gradient buckets all-reduced (through a comm hook) and optimizer steps."""

    order = -50

    def before_fit(self):
        self.buckets, self.steps, self._hooked = 0, 0, None

    def before_train(self):  # learn.ddp_model exists from the first before_train of each fit
        ddp = getattr(self.learn, "ddp_model", None)
        if ddp is None or ddp is self._hooked:
            return
        self._hooked = ddp

        def hook(state, bucket):
            self.buckets += 1
            fut = torch.distributed.all_reduce(bucket.buffer(), async_op=True).get_future()
            return fut.then(lambda f: f.value()[0].div_(torch.distributed.get_world_size()))

        ddp.register_comm_hook(None, hook)

    def after_step(self):
        self.steps += 1


def accumulate_run(data, world, path):
    """One epoch with GradientAccumulation of 2 batches per step (``n_acc`` counts this process's samples)."""
    from learnkit.callbacks.training import GradientAccumulation

    set_seed(0)
    learn = Learner(tensor_dls(data, world), mlp(), loss_func=nn.CrossEntropyLoss(), path=path)
    counter = CountAllReduce()
    learn.fit(1, LR, cbs=[GradientAccumulation(n_acc=2 * BS_GLOBAL // world), counter], quiet=True)
    return sd(learn.model), counter.buckets, counter.steps


def mixed_precision_run(data, world, path):
    """One epoch in bf16 autocast."""
    from learnkit.callbacks.training import MixedPrecision

    set_seed(0)
    learn = Learner(
        tensor_dls(data, world), mlp(), loss_func=nn.CrossEntropyLoss(), metrics=[accuracy], path=path
    )
    learn.fit(1, LR, cbs=[MixedPrecision("bf16")], quiet=True)
    return sd(learn.model), learn.recorder.values


def sd(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def main(out: Path, work: Path, ckpt_in: Path) -> None:
    rank, world = rank_distrib(), num_distrib()
    data = rank0_first(digits)  # (also starts the process group)
    res = {"world": world, "rank": rank}

    # 1. fit_one_cycle on tensors, with metrics, SaveModel and Checkpoint; files go to the shared WORK.
    ck = work / "models" / "ckpt.pth"
    learn = main_learner(
        data,
        work,
        world,
        cbs=[
            Checkpoint("ckpt"),
            SaveModel(monitor="accuracy"),
            CopyAfterFirstEpoch(ck, out / "ckpt_epoch0.pth"),
        ],
    )
    res["auto_cb"] = sum(isinstance(c, DistributedTrainer) for c in learn.cbs)
    res["n_train_batches_during_fit"] = []

    class Peek(Callback):
        def before_train(self):
            res["n_train_batches_during_fit"].append(len(self.learn.dl))
            res["model_type_in_fit"] = type(self.learn.model).__name__
            res["ddp_in_fit"] = type(self.learn.ddp_model).__name__

    learn.fit_one_cycle(2, LR, cbs=[Peek()])
    res["model_type_after"] = type(learn.model).__name__
    res["ddp_after"] = learn.ddp_model is None
    res["weights"] = sd(learn.model)
    res["values"] = learn.recorder.values
    res["names"] = learn.recorder.metric_names
    res["losses"] = learn.recorder.losses
    res["lrs"] = learn.recorder.lrs
    res["validate"] = learn.validate()
    res["preds"], res["targs"] = learn.get_preds()
    learn.export("export.lk", factory="ddp_task:mlp")
    # an ad-hoc loader on one rank only: evaluated whole on that rank, no collective (no hang)
    if rank == 0:
        res["adhoc_preds"] = learn.get_preds(dl=learn.dls.test_dl(data[1][0][:7]))[0]
    barrier()

    # 2. fine_tune: frozen body then everything (DDP rewraps when the trainable set changes)
    set_seed(0)
    ft = Learner(
        tensor_dls(data, world), mlp(), loss_func=nn.CrossEntropyLoss(), splitter=splitter, path=work
    )
    ft.fine_tune(1, base_lr=LR, freeze_epochs=1, quiet=True)
    res["ft_weights"] = sd(ft.model)

    # 3. lr_find: every rank sees the same (averaged) losses, stops together, and restores the weights
    before = sd(ft.model)
    sug = ft.lr_find(num_it=20, show_plot=False)
    res["lr_find"] = (sug.valley, ft.lr_finder.losses)
    res["lr_find_restored"] = all(torch.equal(before[k], v) for k, v in sd(ft.model).items())

    # 4. torch DataLoaders, explicit context manager with its own settings, gradient accumulation + no_sync
    set_seed(0)
    tl = Learner(
        torch_dls(data, world), mlp(), loss_func=nn.CrossEntropyLoss(), metrics=[accuracy], path=work
    )
    counter = CountAllReduce()
    with tl.distributed(broadcast_buffers=False) as same:
        res["ctx_returns_learner"] = same is tl
        res["ctx_cbs"] = [type(c).__name__ for c in tl.cbs if isinstance(c, DistributedTrainer)]
        res["ctx_broadcast_buffers"] = tl.distributed_trainer.broadcast_buffers
        tl.fit(1, LR, cbs=[Accumulate2(), counter], quiet=True)
    res["ctx_cbs_after"] = sum(isinstance(c, DistributedTrainer) and c.broadcast_buffers for c in tl.cbs)
    res["acc_weights"] = sd(tl.model)
    res["acc_buckets"], res["acc_steps"] = counter.buckets, counter.steps
    res["dl_preds"], res["dl_targs"] = tl.get_preds()
    res["dl_values"] = tl.recorder.values

    # 5. resume a single-process checkpoint here; 6. SyncBatchNorm: used during fit on CUDA, refused on CPU
    rs = main_learner(data, work, world)
    rs.fit_one_cycle(2, LR, resume=ckpt_in, quiet=True)
    res["resumed_weights"] = sd(rs.model)
    bn = Learner(
        tensor_dls(data, world),
        nn.Sequential(nn.Linear(64, 8), nn.BatchNorm1d(8), nn.Linear(8, 10)),
        loss_func=nn.CrossEntropyLoss(),
        path=work,
    )

    class PeekBN(Callback):
        def before_train(self):
            res["bn_type_in_fit"] = type(self.learn.model[1]).__name__

    try:
        with bn.distributed(sync_bn=True):
            bn.fit(1, quiet=True, cbs=[PeekBN()])
        res["sync_bn_error"] = None
    except Exception as e:  # noqa: BLE001
        res["sync_bn_error"] = f"{type(e).__name__}: {e}"
    res["bn_type_after"] = type(bn.model[1]).__name__

    # 7. learnkit's GradientAccumulation (no_sync on accumulating batches) and 8. bf16 MixedPrecision
    res["ga_weights"], res["ga_buckets"], res["ga_steps"] = accumulate_run(data, world, work)
    res["mp_weights"], res["mp_values"] = mixed_precision_run(data, world, work)

    torch.save(res, out / f"rank{rank}.pt")


if __name__ == "__main__":
    os.environ.setdefault("LEARNKIT_QUIET", "1")
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
