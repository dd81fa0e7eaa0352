"""Training recipes: gradient accumulation, clipping, mixed precision, channels-last, BatchNorm freezing."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from conftest import mlp
from torch import nn

from learnkit import Callback, CancelBatchException, Checkpoint, DataLoaders, Learner, accuracy, set_seed
from learnkit.callbacks.training import (
    BnFreeze,
    ChannelsLast,
    GradientAccumulation,
    GradientClip,
    MixedPrecision,
    ShortEpoch,
)
from learnkit.optim import SGD


def _dls(data, bs=16, shuffle=False, **kw):
    train, valid = data
    return DataLoaders.from_tensors(train, valid, bs=bs, shuffle=shuffle, device="cpu", **kw)


def _grad_norm(learn) -> float:
    gs = [p.grad for g in learn.opt.param_groups for p in g["params"] if p.grad is not None]
    return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in gs])))


class Interrupt(Callback):
    def __init__(self, epoch, batch):
        self.epoch, self.batch = epoch, batch

    def before_batch(self):
        learn = self.learn
        if learn.training and learn.epoch == self.epoch and learn.iter == self.batch:
            raise KeyboardInterrupt()


# ---------------------------------------------------------------- GradientAccumulation
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_gradient_accumulation_equals_big_batch(wine_tensors, reduction):
    """bs=16 accumulated to 64 samples gives the weights of bs=64 without accumulation (142 items: the short
    last batch of each epoch is stepped on its own, as the big-batch loader does)."""
    set_seed(0)
    init = mlp().state_dict()

    def run(bs, cbs):
        model = mlp()
        model.load_state_dict(init)
        learn = Learner(
            _dls(wine_tensors, bs=bs),
            model,
            loss_func=nn.CrossEntropyLoss(reduction=reduction),
            opt_func=SGD,
            cbs=cbs,
        )
        steps = []

        class CountSteps(Callback):
            def after_step(self):
                steps.append(self.learn.iter)

        learn.fit(2, lr=0.05 if reduction == "mean" else 0.002, cbs=CountSteps(), quiet=True)
        return model, steps

    big, big_steps = run(64, None)
    acc, acc_steps = run(16, GradientAccumulation(n_acc=64))
    assert len(big_steps) == len(acc_steps) == 6  # 3 steps per epoch
    assert acc_steps[:3] == [3, 7, 8]  # every 4 batches, plus the short last batch
    for (k, a), b in zip(big.state_dict().items(), acc.state_dict().values()):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5, msg=k)


def test_gradient_accumulation_resumes_mid_accumulation(wine_tensors, tmp_path):
    """A checkpoint written between two steps holds the partial gradients: resuming gives the same weights."""

    def make(path):
        set_seed(3, reproducible=True)
        return Learner(
            _dls(wine_tensors, shuffle=True),
            mlp(p=0.3),
            loss_func=nn.CrossEntropyLoss(),
            opt_func=SGD,
            path=path,
            cbs=[GradientAccumulation(48), Checkpoint(every_n_batches=2)],
        )

    ref = make(tmp_path / "a")
    ref.fit(2, lr=0.05, quiet=True)
    learn = make(tmp_path / "b")
    with pytest.raises(KeyboardInterrupt):
        learn.fit(2, lr=0.05, cbs=Interrupt(1, 5), quiet=True)  # batch 4 was accumulated, not stepped
    ck = tmp_path / "b" / "models" / "checkpoint.pth"
    st = torch.load(ck, weights_only=True)
    assert st["callbacks"]["GradientAccumulation"]["count"] == 32 and st["iter"] == 5
    fresh = make(tmp_path / "b")
    fresh.fit(2, lr=0.05, resume=ck, quiet=True)
    for (k, a), b in zip(ref.model.state_dict().items(), fresh.model.state_dict().values()):
        assert torch.equal(a, b), k


def test_gradient_accumulation_uses_no_sync_under_ddp(wine_tensors, tmp_path):
    """With DistributedDataParallel, accumulating batches run forward and backward inside no_sync()."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    if dist.is_initialized():
        pytest.fail("a process group is already initialised")
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        set_seed(0)
        ddp = DistributedDataParallel(mlp())
        seen = []

        class Spy(Callback):
            def after_pred(self):
                if self.learn.training:
                    seen.append(self.learn.model.require_backward_grad_sync)

        learn = Learner(
            _dls(wine_tensors),
            ddp,
            loss_func=nn.CrossEntropyLoss(),
            opt_func=SGD,
            cbs=[GradientAccumulation(64), Spy()],
        )
        learn.fit(1, lr=0.05, quiet=True)
        assert seen == [False, False, False, True, False, False, False, True, True]
        assert ddp.require_backward_grad_sync  # restored
    finally:
        dist.destroy_process_group()


def test_gradient_accumulation_rejects_bad_n_acc():
    with pytest.raises(ValueError, match="Expected n_acc"):
        GradientAccumulation(0)


# ---------------------------------------------------------------- GradientClip
@pytest.mark.parametrize("dtype", [None, "fp16"])
def test_gradient_clip_bounds_the_norm_seen_by_the_step(wine_tensors, dtype):
    """After clipping (and, with fp16, after the scaler unscaled) the gradient norm is at most max_norm."""
    before, after = [], []

    class Spy(Callback):
        order = 25  # after GradientClip (20), before MixedPrecision's scaled step (30)

        def before_step(self):
            before.append(float(self.learn.gradient_clip.last_norm))
            after.append(_grad_norm(self.learn))

    cbs = [GradientClip(max_norm=0.1), Spy()] + ([MixedPrecision(dtype)] if dtype else [])
    set_seed(0)
    learn = Learner(_dls(wine_tensors), mlp(), loss_func=nn.CrossEntropyLoss(), cbs=cbs)
    learn.fit(2, lr=1e-2, quiet=True)
    assert len(after) == 2 * len(learn.dls.train)
    assert max(before) > 0.1  # clipping happened
    assert max(after) <= 0.1 * (1 + 1e-4)
    for b, a in zip(before, after):
        assert a == pytest.approx(min(b, 0.1), rel=1e-3)  # unscaled norms: otherwise ~65536x larger


def test_gradient_clip_rejects_bad_max_norm():
    with pytest.raises(ValueError, match="max_norm"):
        GradientClip(max_norm=0)


# ---------------------------------------------------------------- MixedPrecision
def test_mixed_precision_bf16_on_cpu_trains_under_autocast(digits_tensors):
    seen = {"train": set(), "valid": set(), "metric_dtype": set(), "autocast_after": set()}

    class Spy(Callback):
        def after_pred(self):
            seen["train" if self.learn.training else "valid"].add(self.learn.pred.dtype)

        def after_batch(self):
            seen["autocast_after"].add(torch.is_autocast_enabled("cpu"))
            if not self.learn.training:
                seen["metric_dtype"].add(self.learn.pred.dtype)

    set_seed(0)
    learn = Learner(
        _dls(digits_tensors, bs=64, shuffle=True),
        mlp(64, 10, 64),
        loss_func=nn.CrossEntropyLoss(),
        metrics=accuracy,
        cbs=[MixedPrecision("bf16"), Spy()],
    )
    first = learn.validate()[0]
    learn.fit(3, lr=1e-2, quiet=True)
    valid_loss, acc = learn.validate()
    assert valid_loss < first / 3 and acc > 0.9
    assert seen["train"] == {torch.bfloat16} and seen["valid"] == {torch.bfloat16}  # autocast in the forward
    assert seen["metric_dtype"] == {torch.float32}  # metrics see float32 predictions
    assert seen["autocast_after"] == {False}  # metrics and recording run outside autocast
    assert learn.mixed_precision.scaler is None  # bf16 needs no loss scaling
    assert not torch.is_autocast_enabled("cpu")
    preds, _ = learn.get_preds()
    assert preds.dtype == torch.float32


def test_mixed_precision_default_on_cpu_stays_float32_and_matches_plain_training(digits_tensors):
    """MixedPrecision() on a CPU must not pick bf16 (15x slower epochs): it trains exactly as float32 does,
    says so once, and bf16 is still there when asked for."""
    seen = set()

    class Spy(Callback):
        def after_pred(self):
            seen.add(self.learn.pred.dtype)

    def run(cbs):
        set_seed(0)
        learn = Learner(
            _dls(digits_tensors, bs=64), mlp(64, 10, 64), loss_func=nn.CrossEntropyLoss(), cbs=cbs
        )
        learn.fit(1, lr=1e-2, quiet=True)
        return learn

    with pytest.warns(UserWarning, match=r"float32.*MixedPrecision\('bf16'\)"):
        mp = run([MixedPrecision(), Spy()])
    assert seen == {torch.float32} and not mp.mixed_precision.enabled and mp.mixed_precision.scaler is None
    plain = run([])
    for a, b in zip(plain.model.state_dict().values(), mp.model.state_dict().values()):
        assert torch.equal(a, b)  # the same float32 training, bit for bit
    seen.clear()
    asked = run([MixedPrecision("bf16"), Spy()])
    assert seen == {torch.bfloat16} and asked.mixed_precision.enabled


def test_mixed_precision_leaves_autocast_on_cancel_and_error(wine_tensors):
    class Cancel(Callback):
        def after_pred(self):
            if self.learn.iter == 1:
                raise CancelBatchException()

    class Boom(Callback):
        def after_pred(self):
            if self.learn.training and self.learn.iter == 3:
                raise RuntimeError("boom")

    learn = Learner(_dls(wine_tensors), mlp(), loss_func=nn.CrossEntropyLoss(), cbs=MixedPrecision("bf16"))
    learn.fit(1, cbs=Cancel(), quiet=True)
    assert not torch.is_autocast_enabled("cpu")
    with pytest.raises(RuntimeError, match="boom"):
        learn.fit(1, cbs=Boom(), quiet=True)
    assert not torch.is_autocast_enabled("cpu")
    assert not learn.mixed_precision.autocast_active


def test_mixed_precision_scaler_state_round_trip(wine_tensors, tmp_path):
    """fp16 with a GradScaler (on CPU here): its state goes through state_dict and a checkpoint file."""
    set_seed(0)
    learn = Learner(
        _dls(wine_tensors),
        mlp(),
        loss_func=nn.CrossEntropyLoss(),
        path=tmp_path,
        cbs=[MixedPrecision("fp16", init_scale=2.0**10, growth_interval=3), Checkpoint()],
    )
    learn.fit(2, lr=1e-2, quiet=True)
    mp = learn.mixed_precision
    assert mp.scaler is not None
    sd = mp.state_dict()
    assert sd["dtype"] == "float16" and sd["scaler"]["scale"] > 2.0**10  # the scale grew every 3 good steps
    torch.save(sd, tmp_path / "mp.pt")
    other = MixedPrecision("fp16")
    other.load_state_dict(torch.load(tmp_path / "mp.pt", weights_only=True))
    assert other.state_dict()["scaler"] == sd["scaler"]
    fresh = Learner(
        _dls(wine_tensors),
        mlp(),
        loss_func=nn.CrossEntropyLoss(),
        path=tmp_path,
        cbs=[MixedPrecision("fp16"), Checkpoint()],
    )
    fresh.fit(
        2, resume=tmp_path / "models" / "checkpoint.pth", quiet=True
    )  # epochs done: restores, no training
    assert fresh.mixed_precision.scaler.state_dict() == sd["scaler"]


def test_mixed_precision_rejects_bad_dtype():
    with pytest.raises(ValueError, match="dtype"):
        MixedPrecision("fp32")


@pytest.mark.cuda
def test_mixed_precision_fp16_scaler_on_cuda(digits_tensors):
    dtypes = set()

    class Spy(Callback):
        def after_pred(self):
            dtypes.add(self.learn.pred.dtype)

    (xt, yt), (xv, yv) = digits_tensors
    dls = DataLoaders.from_tensors((xt, yt), (xv, yv), bs=64, device="cuda")
    set_seed(0)
    learn = Learner(
        dls,
        mlp(64, 10, 64),
        loss_func=nn.CrossEntropyLoss(),
        metrics=accuracy,
        cbs=[MixedPrecision(), GradientClip(1.0), Spy()],
    )
    first = learn.validate()[0]
    learn.fit(3, lr=1e-2, quiet=True)
    assert learn.mixed_precision.dtype == torch.float16 and learn.mixed_precision.scaler is not None
    assert dtypes == {torch.float16}
    valid_loss, acc = learn.validate()
    assert valid_loss < first / 3 and acc > 0.9
    assert learn.mixed_precision.state_dict()["scaler"]["scale"] > 0


# ---------------------------------------------------------------- ChannelsLast
def _digit_images(digits_tensors):
    (xt, yt), (xv, yv) = digits_tensors
    img = lambda x: x.reshape(-1, 1, 8, 8).repeat(1, 3, 1, 1)  # noqa: E731  (3 channels, like RGB)
    return (img(xt), yt), (img(xv), yv)


def _small_cnn(c_in=3):
    return nn.Sequential(
        nn.Conv2d(c_in, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, 10),
    )


def test_channels_last_on_cpu_trains(digits_tensors):
    formats = set()

    class Spy(Callback):
        def after_pred(self):
            x = self.learn.xb[0]
            formats.add((x.is_contiguous(memory_format=torch.channels_last), x.is_contiguous()))

    set_seed(0)
    model = _small_cnn()
    learn = Learner(
        _dls(_digit_images(digits_tensors), bs=64, shuffle=True),
        model,
        loss_func=nn.CrossEntropyLoss(),
        metrics=accuracy,
        cbs=[ChannelsLast(), Spy()],
    )
    learn.fit(3, lr=1e-2, quiet=True)
    assert formats == {(True, False)}
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert learn.recorder.values[-1][2] > 0.8


# ---------------------------------------------------------------- BnFreeze
def _bn_model():
    body = nn.Sequential(nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU())
    head = nn.Sequential(nn.Linear(32, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 10))
    return nn.Sequential(body, head)


@pytest.mark.parametrize("freeze_bn", [True, False])
def test_bn_freeze_keeps_frozen_running_stats(digits_tensors, freeze_bn):
    set_seed(0)
    model = _bn_model()
    learn = Learner(
        _dls(digits_tensors, bs=64),
        model,
        loss_func=nn.CrossEntropyLoss(),
        splitter=lambda m: [m[0], m[1]],
        cbs=[BnFreeze()] if freeze_bn else None,
    )
    learn.freeze()
    body_bn, head_bn = model[0][1], model[1][1]
    body_mean, head_mean = body_bn.running_mean.clone(), head_bn.running_mean.clone()
    learn.fit(1, lr=1e-2, quiet=True)
    assert torch.equal(body_bn.running_mean, body_mean) == freeze_bn
    assert not torch.equal(head_bn.running_mean, head_mean)  # the trainable head's BN keeps updating
    learn.unfreeze()
    learn.fit(1, lr=1e-3, quiet=True)
    assert not torch.equal(body_bn.running_mean, body_mean)  # unfrozen: updates again


# ---------------------------------------------------------------- ShortEpoch
def test_short_epoch_runs_a_fraction_of_the_batches(digits_tensors):
    counts = {True: 0, False: 0}

    class Count(Callback):
        def after_batch(self):
            counts[self.learn.training] += 1

    learn = Learner(
        _dls(digits_tensors, bs=64),
        mlp(64, 10),
        loss_func=nn.CrossEntropyLoss(),
        cbs=[ShortEpoch(0.25), Count()],
    )
    learn.fit(1, quiet=True)
    assert counts[True] == math.ceil(0.25 * len(learn.dls.train))
    assert counts[False] == math.ceil(0.25 * len(learn.dls.valid))
    assert learn.recorder.values[0][1] is not None


def test_accumulation_clip_and_precision_compose(digits_tensors):
    """All three together on CPU: accumulation to 128 samples, clipping, bf16; the model still learns."""
    set_seed(0)
    learn = Learner(
        _dls(digits_tensors, bs=32, shuffle=True),
        mlp(64, 10, 64),
        loss_func=nn.CrossEntropyLoss(),
        metrics=accuracy,
        cbs=[GradientAccumulation(128), GradientClip(1.0), MixedPrecision("bf16")],
    )
    learn.fit(4, lr=2e-2, quiet=True)
    assert learn.recorder.values[-1][2] > 0.85
    x, y = digits_tensors[1]
    assert F.cross_entropy(learn.model(x), y).item() < 1.0
