"""Distributed data-parallel training under torchrun (2 processes, gloo on CPU) against one process.

Two torchrun launches in all: ``distributed_scripts/ddp_task.py`` (a real task run through fit_one_cycle,
fine_tune, lr_find, torch DataLoaders, gradient accumulation and resuming) and ``fail_rank.py`` (a rank
that raises). Everything else is compared here against single-process runs of the same task.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from learnkit import Checkpoint, DataLoaders, Learner, TensorLoader, set_seed
from learnkit.distributed import (
    DistributedTrainer,
    _from_sync_bn,
    _shard_train_inner,
    _shard_valid_inner,
    _to_sync_bn,
    auto_callbacks,
    is_distributed,
    no_sync,
    num_distrib,
    rank0_first,
    rank_distrib,
    sync_metrics,
)
from learnkit.exceptions import DataError

SCRIPTS = Path(__file__).parent / "distributed_scripts"
sys.path.insert(0, str(SCRIPTS))
import ddp_task as T  # noqa: E402


def _torchrun(
    script: str, *args, timeout: float = 120, env: dict | None = None
) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(SCRIPTS / script),
        *map(str, args),
    ]
    full_env = {**os.environ, "LEARNKIT_QUIET": "1", **(env or {})}
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, env=full_env, cwd=str(SCRIPTS)
    )


def _maxdiff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


@pytest.fixture(scope="module")
def data():
    return T.digits()


@pytest.fixture(scope="module")
def single(data, tmp_path_factory):
    """The reference: the same task in one process with the same global batch size."""
    learn = T.main_learner(data, tmp_path_factory.mktemp("single"))
    learn.fit_one_cycle(2, T.LR, quiet=True)
    return learn


@pytest.fixture(scope="module")
def ddp(data, tmp_path_factory):
    """Writes a single-process checkpoint (end of epoch 0), then runs ddp_task.py on 2 processes."""
    base = tmp_path_factory.mktemp("ddp")
    out, work, pre = base / "out", base / "work", base / "pre"
    out.mkdir()
    first = T.main_learner(data, pre, cbs=[Checkpoint("ck"), T.StopAfterFirstEpoch()])
    first.fit_one_cycle(2, T.LR, quiet=True)
    proc = _torchrun("ddp_task.py", out, work, pre / "models" / "ck.pth")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    ranks = [torch.load(out / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    return {"r0": ranks[0], "r1": ranks[1], "out": out, "work": work, "log": proc.stdout + proc.stderr}


# ---------------------------------------------------------------- two processes vs one
def test_both_ranks_finish_with_identical_weights(ddp):
    r0, r1 = ddp["r0"], ddp["r1"]
    assert (r0["rank"], r1["rank"], r0["world"], r1["world"]) == (0, 1, 2, 2)
    for key in ("weights", "ft_weights", "acc_weights", "resumed_weights"):
        assert _maxdiff(r0[key], r1[key]) == 0.0, key
    assert r0["values"] == r1["values"] and r0["losses"] == r1["losses"]
    assert r0["auto_cb"] == 1  # added by the Learner itself under torchrun
    # during fit the forward goes through DDP while learn.model stays the plain module; all restored after
    assert (r0["model_type_in_fit"], r0["ddp_in_fit"]) == ("Sequential", "DistributedDataParallel")
    assert r0["model_type_after"] == "Sequential" and r0["ddp_after"] is True


def test_ddp_matches_single_process(ddp, single):
    r0 = ddp["r0"]
    # each rank runs half the steps' items: 718 of 1436 per epoch, in 23 batches of 32 (single: 23 of 64)
    assert r0["n_train_batches_during_fit"] == [len(single.dls.train)] * 2
    assert _maxdiff(r0["weights"], T.sd(single.model)) < 1e-5
    assert len(r0["losses"]) == len(single.recorder.losses)
    assert max(abs(a - b) for a, b in zip(r0["losses"], single.recorder.losses)) < 1e-5  # global-batch losses
    assert r0["lrs"] == pytest.approx(single.recorder.lrs)
    for got, want in zip(r0["values"], single.recorder.values):
        assert got == pytest.approx(want, abs=1e-5)


def test_metrics_equal_single_process_on_same_validation_set(ddp, single, data, tmp_path):
    """Sharded validation (361 items: 180 + 181, uneven last batches) reduced across ranks gives exactly the
    single-process loss, accuracy, F1 and ROC AUC of the same weights."""
    r0, r1 = ddp["r0"], ddp["r1"]
    ref = T.main_learner(data, tmp_path)
    ref.model.load_state_dict(r0["weights"])
    want = ref.validate()
    assert r0["validate"] == pytest.approx(want, abs=1e-6) and r1["validate"] == r0["validate"]
    assert r0["values"][-1][1:] == pytest.approx(
        want, abs=1e-6
    )  # the numbers fit reported for the last epoch
    assert r0["names"][2:-1] == ["valid_loss", "accuracy", "f1_score", "roc_auc"]


def test_get_preds_gathered_in_original_order(ddp, data, tmp_path):
    r0, r1 = ddp["r0"], ddp["r1"]
    xv, yv = data[1]
    ref = T.main_learner(data, tmp_path)
    ref.model.load_state_dict(r0["weights"])
    want = torch.softmax(ref.model(xv), 1).detach()
    for r in (r0, r1):
        assert torch.equal(r["targs"], yv)  # 361 items, no padding duplicates, original order
        assert torch.allclose(r["preds"], want, atol=1e-6)
        assert torch.equal(r["dl_targs"], yv)  # same through torch DataLoaders
    assert torch.allclose(r0["adhoc_preds"], want[:7], atol=1e-6)  # an ad-hoc loader on rank 0 alone


def test_only_rank0_writes_one_set_of_files(ddp):
    work = ddp["work"]
    files = sorted(str(p.relative_to(work)) for p in work.rglob("*") if p.is_file())
    assert files == ["export.lk", "models/ckpt.pth", "models/model.pth"]  # no temp files, nothing per rank
    assert (ddp["out"] / "ckpt_epoch0.pth").exists()


def test_ddp_checkpoint_resumes_in_one_process(ddp, data, tmp_path):
    """The checkpoint written by rank 0 after epoch 0 continues in one process to the DDP run's end point,
    with the one-cycle schedule at the right position (the DDP run counted half as many steps)."""
    learn = T.main_learner(data, tmp_path)
    learn.fit_one_cycle(2, T.LR, resume=ddp["out"] / "ckpt_epoch0.pth", quiet=True)
    assert _maxdiff(T.sd(learn.model), ddp["r0"]["weights"]) < 1e-5
    assert learn.recorder.lrs[-1] == pytest.approx(ddp["r0"]["lrs"][-1], rel=1e-6)
    assert learn.recorder.values[-1] == pytest.approx(ddp["r0"]["values"][-1], abs=1e-5)

    # the usual case: the same bs per process, so one process runs twice the DDP run's steps per epoch
    def half_bs(resume=None):
        set_seed(0)
        dls = DataLoaders.from_tensors(*data, bs=T.BS_GLOBAL // 2, val_bs=T.VAL_BS, seed=T.SEED, device="cpu")
        lk = Learner(dls, T.mlp(), loss_func=nn.CrossEntropyLoss(), path=tmp_path)
        lk.fit_one_cycle(2, T.LR, resume=resume, quiet=True)
        return lk.recorder.lrs[-len(dls.train) :]

    assert half_bs(ddp["out"] / "ckpt_epoch0.pth") == pytest.approx(half_bs(), rel=1e-9)  # epoch 1's schedule


def test_single_process_checkpoint_resumes_under_ddp(ddp, single):
    assert _maxdiff(ddp["r0"]["resumed_weights"], T.sd(single.model)) < 1e-5


def test_fine_tune_and_lr_find_under_ddp(ddp, data, tmp_path):
    r0, r1 = ddp["r0"], ddp["r1"]
    set_seed(0)
    ft = Learner(
        T.tensor_dls(data), T.mlp(), loss_func=nn.CrossEntropyLoss(), splitter=T.splitter, path=tmp_path
    )
    ft.fine_tune(1, base_lr=T.LR, freeze_epochs=1, quiet=True)
    assert _maxdiff(r0["ft_weights"], T.sd(ft.model)) < 1e-5  # frozen body, then unfrozen: DDP rewrapped
    assert r0["lr_find"] == r1["lr_find"] and len(r0["lr_find"][1]) > 5  # same losses, stopped together
    assert r0["lr_find_restored"] and r1["lr_find_restored"]


def test_gradient_accumulation_skips_gradient_sync(ddp, data, tmp_path):
    """no_sync: one all-reduce per optimizer step (11), not per micro-batch (23); same weights as one process."""
    r0 = ddp["r0"]
    assert r0["acc_steps"] == 11 and r0["acc_buckets"] == r0["acc_steps"]
    set_seed(0)
    learn = Learner(T.torch_dls(data), T.mlp(), loss_func=nn.CrossEntropyLoss(), path=tmp_path)
    learn.fit(1, T.LR, cbs=[T.Accumulate2()], quiet=True)
    assert _maxdiff(r0["acc_weights"], T.sd(learn.model)) < 1e-5


def test_learnkit_gradient_accumulation_and_mixed_precision_under_ddp(ddp, data, tmp_path):
    r0, r1 = ddp["r0"], ddp["r1"]
    # GradientAccumulation: 23 batches -> 12 steps (the last batch of the epoch steps), one all-reduce each
    assert r0["ga_steps"] == 12 and r0["ga_buckets"] == 12
    assert _maxdiff(r0["ga_weights"], r1["ga_weights"]) == 0.0
    assert _maxdiff(r0["ga_weights"], T.accumulate_run(data, 1, tmp_path)[0]) < 1e-5
    # bf16 autocast: identical on both ranks, and as good as one process (bf16 sums differ by batch layout)
    assert _maxdiff(r0["mp_weights"], r1["mp_weights"]) == 0.0
    _, values = T.mixed_precision_run(data, 1, tmp_path)
    assert r0["mp_values"][-1][1:3] == pytest.approx(values[-1][1:3], abs=0.05)


def test_context_manager_replaces_the_automatic_callback(ddp):
    r0 = ddp["r0"]
    assert r0["ctx_returns_learner"] and r0["ctx_cbs"] == ["DistributedTrainer"]
    assert r0["ctx_broadcast_buffers"] is False and r0["ctx_cbs_after"] == 1  # the automatic one is back


def test_sync_batchnorm_on_cpu_is_refused_and_model_restored(ddp):
    for r in (ddp["r0"], ddp["r1"]):
        assert "Expected a CUDA device for sync_bn=True" in r["sync_bn_error"]
        assert r["bn_type_after"] == "BatchNorm1d"


def test_a_failing_rank_ends_the_job_quickly_naming_rank_and_error():
    proc = _torchrun("fail_rank.py", timeout=90)
    ended = time.time()
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    raised = float(re.search(r"boom: simulated failure on purpose at t=([0-9.]+)", out).group(1))
    assert ended - raised < 30, f"the job took {ended - raised:.1f}s to end after the error"  # typically ~1 s
    assert "on distributed rank 1 of 2" in out
    assert re.search(r"rank\s*:\s*1 \(local_rank: 1\)", out)  # torchrun's summary names the root cause


# ---------------------------------------------------------------- in one process
def test_helpers_in_a_single_process(wine_tensors):
    assert (rank_distrib(), num_distrib(), is_distributed()) == (0, 1, False)
    assert rank0_first(lambda a, b=0: a + b, 2, b=3) == 5
    with pytest.raises(TypeError, match="Expected a function"):
        rank0_first(None)
    sync_metrics([object()])  # nothing to reduce, no error


def test_distributed_context_is_a_no_op_in_one_process(wine_tensors):
    (xt, yt), (xv, yv) = wine_tensors

    def run(ctx: bool):
        set_seed(0)
        dls = DataLoaders.from_tensors((xt, yt), (xv, yv), bs=16, seed=0, device="cpu")
        learn = Learner(
            dls, nn.Sequential(nn.Linear(13, 8), nn.ReLU(), nn.Linear(8, 3)), loss_func=nn.CrossEntropyLoss()
        )
        assert auto_callbacks(learn) == []
        if ctx:
            with learn.distributed() as same:
                assert same is learn and isinstance(learn.distributed_trainer, DistributedTrainer)
                with no_sync(learn):
                    pass
                learn.fit(2, 1e-2, quiet=True)
            assert not any(isinstance(c, DistributedTrainer) for c in learn.cbs)
        else:
            learn.fit(2, 1e-2, quiet=True)
        return T.sd(learn.model)

    assert _maxdiff(run(True), run(False)) == 0.0


def _epoch_items(loaders, epoch):
    seen = []
    for dl in loaders:
        dl.set_epoch(epoch) if hasattr(dl, "set_epoch") else dl.sampler.set_epoch(epoch)
        seen.append(torch.cat([b[0] for b in dl]))
    return seen


def _datablock_loaders(n_train: int, n_valid: int, bs: int):
    """DataBlock loaders over (x, y) items whose x is the item's index."""
    from learnkit.data.block import CategoryBlock, DataBlock, TransformBlock
    from learnkit.data.splitters import IndexSplitter

    items = [(torch.tensor([float(i)]), i % 3) for i in range(n_train + n_valid)]
    dblock = DataBlock(
        blocks=(TransformBlock, CategoryBlock), splitter=IndexSplitter(range(n_train, n_train + n_valid))
    )
    return dblock.dataloaders(items, bs=bs, num_workers=0, drop_last=False, device="cpu")


@pytest.mark.parametrize("kind", ["tensor", "torch", "datablock"])
def test_training_shards_cover_every_item_once_per_epoch_and_reshuffle(kind):
    ids = torch.arange(10)
    if kind == "tensor":
        dl = TensorLoader(ids, bs=2, shuffle=True)
    elif kind == "torch":
        dl = DataLoader(TensorDataset(ids), batch_size=2, shuffle=True)
    else:
        dl = _datablock_loaders(10, 3, bs=2).train.loader
    shards = [_shard_train_inner(dl, 2, r, seed=7) for r in (0, 1)]
    assert len(shards[0]) == len(shards[1]) == 3
    e0, e1 = _epoch_items(shards, 0), _epoch_items(shards, 1)
    assert (
        sorted(torch.cat(e0).flatten().tolist())
        == list(range(10))
        == sorted(torch.cat(e1).flatten().tolist())
    )
    assert not torch.equal(torch.cat(e0), torch.cat(e1))  # a new order each epoch, agreed by both ranks
    again = _epoch_items([_shard_train_inner(dl, 2, r, seed=7) for r in (0, 1)], 1)
    assert all(torch.equal(a, b) for a, b in zip(e1, again))
    if kind == "tensor":
        assert dl.num_replicas == 1  # the user's loader itself is untouched


@pytest.mark.parametrize("kind", ["tensor", "torch", "datablock"])
def test_evaluation_shards_are_contiguous_without_padding(kind):
    ids = torch.arange(11)
    if kind == "tensor":
        dl = TensorLoader(ids, bs=4)
    elif kind == "torch":
        dl = DataLoader(TensorDataset(ids), batch_size=4)
    else:
        dl = _datablock_loaders(5, 11, bs=2).valid.loader
        ids = ids.float() + 5
    parts = [torch.cat([b[0].flatten() for b in _shard_valid_inner(dl, 3, r)]) for r in range(3)]
    assert torch.equal(torch.cat(parts), ids)  # every item once, in order, shares of 3/4/4 items
    assert [len(p) for p in parts] == [3, 4, 4]
    with pytest.raises(DataError, match="shard_eval"):  # never silently evaluated unsharded
        _shard_valid_inner(iter([1, 2]), 2, 0)


class _LengthBatches:
    """An application-style batch sampler (e.g. sort by length) implementing the sharding protocol."""

    def __init__(self, n, bs, idx=None):
        self.n, self.bs = n, bs
        self.idx = list(range(n))[::-1] if idx is None else idx
        self.epoch = 0

    def __iter__(self):
        for i in range(0, len(self.idx), self.bs):
            yield self.idx[i : i + self.bs]

    def __len__(self):
        return (len(self.idx) + self.bs - 1) // self.bs

    def set_epoch(self, epoch):
        self.epoch = epoch

    def shard(self, num_replicas, rank, seed=0):
        per = -(-len(self.idx) // num_replicas)
        padded = self.idx + self.idx[: per * num_replicas - len(self.idx)]
        return _LengthBatches(self.n, self.bs, padded[rank::num_replicas])

    def shard_eval(self, num_replicas, rank):
        a, b = len(self.idx) * rank // num_replicas, len(self.idx) * (rank + 1) // num_replicas
        return _LengthBatches(self.n, self.bs, self.idx[a:b])


class _PlainBatches(_LengthBatches):
    shard = None
    shard_eval = None


def test_custom_batch_samplers_shard_through_the_protocol_and_are_refused_without_it():
    ids = torch.arange(9)
    dl = DataLoader(TensorDataset(ids), batch_sampler=_LengthBatches(9, 2))
    train = [torch.cat([b[0] for b in _shard_train_inner(dl, 2, r, seed=0)]) for r in (0, 1)]
    assert len(train[0]) == len(train[1]) == 5 and set(torch.cat(train).tolist()) == set(range(9))
    evals = [torch.cat([b[0] for b in _shard_valid_inner(dl, 2, r)]) for r in (0, 1)]
    assert torch.cat(evals).tolist() == list(range(9))[::-1]  # every item once, in the sampler's order
    plain = DataLoader(TensorDataset(ids), batch_sampler=_PlainBatches(9, 2))
    for fn, match in (
        (lambda: _shard_train_inner(plain, 2, 0, seed=0), r"\.shard\(num_replicas, rank, seed\)"),
        (lambda: _shard_valid_inner(plain, 2, 0), r"\.shard_eval\(num_replicas, rank\)"),
    ):
        with pytest.raises(DataError, match=match):
            fn()


def test_sync_batchnorm_swap_keeps_parameters_and_restores():
    model = nn.Sequential(
        nn.Linear(4, 6), nn.BatchNorm1d(6), nn.Sequential(nn.Linear(6, 6), nn.BatchNorm1d(6))
    )
    params = list(model.parameters())
    swaps = _to_sync_bn(model)
    assert (
        len(swaps) == 2
        and isinstance(model[1], nn.SyncBatchNorm)
        and isinstance(model[2][1], nn.SyncBatchNorm)
    )
    assert all(a is b for a, b in zip(params, model.parameters()))  # the optimizer's tensors stay valid
    assert model[1].running_mean is swaps[0][2].running_mean
    _from_sync_bn(swaps)
    assert type(model[1]) is nn.BatchNorm1d and type(model[2][1]) is nn.BatchNorm1d


# ---------------------------------------------------------------- GPU (skipped on CPU)
@pytest.mark.cuda
def test_ddp_on_cuda_matches_single_process(data, tmp_path):
    """The same task on CUDA (NCCL with 2+ GPUs; 2 processes sharing 1 GPU use gloo)."""
    os.environ["DDP_TASK_DEVICE"] = "cuda"
    try:
        import importlib

        importlib.reload(T)
        out, work, pre = tmp_path / "out", tmp_path / "work", tmp_path / "pre"
        out.mkdir()
        first = T.main_learner(data, pre, cbs=[Checkpoint("ck"), T.StopAfterFirstEpoch()])
        first.fit_one_cycle(2, T.LR, quiet=True)
        proc = _torchrun("ddp_task.py", out, work, pre / "models" / "ck.pth", env={"DDP_TASK_DEVICE": "cuda"})
        assert proc.returncode == 0, proc.stderr[-6000:]
        r0, r1 = (torch.load(out / f"rank{r}.pt", weights_only=True, map_location="cpu") for r in (0, 1))
        assert _maxdiff(r0["weights"], r1["weights"]) == 0.0
        ref = T.main_learner(data, tmp_path / "single")
        ref.fit_one_cycle(2, T.LR, quiet=True)
        assert _maxdiff(r0["weights"], {k: v.cpu() for k, v in T.sd(ref.model).items()}) < 1e-4
        if r0["sync_bn_error"] is None:
            assert r0["bn_type_in_fit"] == "SyncBatchNorm" and r0["bn_type_after"] == "BatchNorm1d"
    finally:
        os.environ.pop("DDP_TASK_DEVICE", None)
        importlib.reload(T)
