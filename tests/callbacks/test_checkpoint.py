"""Checkpoints: integrity, never saving NaN weights, validation before loading, stale temp files, callback state
keys, the Resume callback and the on_exception event."""

from __future__ import annotations

import os
import time
import zipfile

import pytest
import torch
from conftest import mlp
from torch import nn

import learnkit.callbacks.tracker as tracker
from learnkit import Callback, Checkpoint, DataLoaders, EarlyStopping, Learner, set_seed
from learnkit.callbacks.checkpoint import Resume, callback_state_keys, load_checkpoint
from learnkit.callbacks.core import ALL_EVENTS
from learnkit.exceptions import CheckpointError, NonFiniteGradientError, NonFiniteLossError
from learnkit.optim import SGD


def _learner(data, path, cbs=None, shuffle=False, model=None, **kw):
    set_seed(0)
    train, valid = data
    dls = DataLoaders.from_tensors(train, valid, bs=16, shuffle=shuffle, device="cpu")
    return Learner(dls, model or mlp(), loss_func=nn.CrossEntropyLoss(), path=path, cbs=cbs, **kw)


def _ck(tmp_path):
    return tmp_path / "models" / "checkpoint.pth"


def test_old_import_paths_still_work():
    from learnkit.callbacks.checkpoint import Checkpoint as C

    assert tracker.Checkpoint is C is Checkpoint


def test_flipped_bytes_in_a_checkpoint_are_detected_and_name_the_file(wine_tensors, tmp_path):
    learn = _learner(wine_tensors, tmp_path, cbs=Checkpoint())
    learn.fit(1, quiet=True)
    ck = _ck(tmp_path)
    with zipfile.ZipFile(ck) as z:  # flip one byte inside the first tensor's stored data
        info = next(i for i in z.infolist() if "/data/" in i.filename and i.file_size > 64)
    raw = bytearray(ck.read_bytes())
    with open(ck, "rb") as f:
        f.seek(info.header_offset + 26)
        n, m = int.from_bytes(f.read(2), "little"), int.from_bytes(f.read(2), "little")
    off = info.header_offset + 30 + n + m + 20
    raw[off] ^= 0x55
    ck.write_bytes(bytes(raw))
    # torch itself loads the damaged file without a word: the corruption would be silent
    torch.load(ck, weights_only=True)
    fresh = _learner(wine_tensors, tmp_path, cbs=Checkpoint())
    before = [p.detach().clone() for p in fresh.model.parameters()]
    with pytest.raises(CheckpointError, match="corrupted") as e:
        fresh.fit(2, resume=ck, quiet=True)
    assert str(ck) in str(e.value)
    assert all(torch.equal(a, b) for a, b in zip(before, fresh.model.parameters()))  # nothing loaded
    assert ck.read_bytes() == bytes(raw)  # and the file is not overwritten


class _SqrtModel(nn.Module):
    """A finite loss with NaN gradients from batch ``bad`` of epoch 1 on: sqrt(0) has an infinite slope."""

    def __init__(self):
        super().__init__()
        self.body = mlp()
        self.poison = False

    def forward(self, x):
        out = self.body(x)
        if self.poison:
            out = out + torch.sqrt(out * 0)  # adds 0 to the loss, NaN to the gradients
        return out


class _Poison(Callback):
    def before_batch(self):
        self.learn.model.poison = self.learn.training and self.learn.epoch == 1 and self.learn.iter >= 2


def test_nan_gradients_stop_before_the_step_and_the_checkpoint_keeps_finite_weights(wine_tensors, tmp_path):
    learn = _learner(
        wine_tensors, tmp_path, model=_SqrtModel(), cbs=[_Poison(), Checkpoint(every_n_batches=1)]
    )
    learn.check_grads = True  # the strict check: before every step
    with pytest.raises(NonFiniteLossError, match=r"gradients are NaN or infinite at epoch 1, batch 2"):
        learn.fit(3, quiet=True)
    assert all(torch.isfinite(p).all() for p in learn.model.parameters())  # the claim is true
    st = torch.load(_ck(tmp_path), weights_only=True)
    assert all(torch.isfinite(v).all() for v in st["model"].values())
    assert (st["epoch"], st["iter"]) == (1, 2)


def test_nan_gradients_by_default_stop_training_and_never_reach_the_checkpoint(wine_tensors, tmp_path):
    """The default lazy check: no per-step work; the NaN loss after the bad step stops training, the error says
    the weights are gone, and the checkpoint on disk holds the last finite weights."""
    learn = _learner(
        wine_tensors, tmp_path, model=_SqrtModel(), cbs=[_Poison(), Checkpoint(every_n_batches=1)]
    )
    assert learn.check_grads == "lazy"
    with pytest.warns(UserWarning, match="not overwritten"):
        with pytest.raises(NonFiniteLossError, match=r"batch 3.*weights are already NaN.*check_grads = True"):
            learn.fit(3, quiet=True)
    st = torch.load(_ck(tmp_path), weights_only=True)
    assert all(torch.isfinite(v).all() for v in st["model"].values())
    assert (st["epoch"], st["iter"]) == (1, 2)  # resumes at batch 2, whose step made the weights NaN


class _SqrtLast(nn.Module):
    """NaN gradients on the last training batch only: no later loss can see them, only the epoch check."""

    def __init__(self, n_batches):
        super().__init__()
        self.body, self.n, self.i = mlp(), n_batches, 0

    def forward(self, x):
        out = self.body(x)
        if self.training:
            self.i += 1
            if self.i == self.n:
                out = out + torch.sqrt(out * 0)
        return out


def test_nan_gradients_on_the_last_batch_are_caught_by_the_epoch_check(wine_tensors, tmp_path):
    n = len(_learner(wine_tensors, tmp_path).dls.train)
    learn = _learner(wine_tensors, tmp_path, model=_SqrtLast(n))
    with pytest.raises(
        NonFiniteGradientError, match=r"during epoch 0 although every training loss was finite"
    ):
        learn.fit(1, quiet=True)
    learn2 = _learner(wine_tensors, tmp_path, model=_SqrtLast(n))
    learn2.check_grads = False
    learn2.fit(1, quiet=True)  # off: nothing stops it
    assert not all(torch.isfinite(p).all() for p in learn2.model.parameters())


def test_check_grads_refuses_other_values(wine_tensors, tmp_path):
    learn = _learner(wine_tensors, tmp_path)
    with pytest.raises(ValueError, match=r"'lazy', True or False. Received: 'strict'"):
        learn.check_grads = "strict"


def test_checkpoint_never_writes_non_finite_weights_over_a_good_one(wine_tensors, tmp_path):
    class Break(Callback):  # NaN weights that no gradient check can see (written directly)
        order = 85  # before Checkpoint (90)

        def after_epoch(self):
            if self.learn.epoch == 1:
                with torch.no_grad():
                    next(self.learn.model.parameters()).fill_(float("nan"))

    ck = Checkpoint()
    learn = _learner(wine_tensors, tmp_path, cbs=[ck, Break()])
    learn.check_grads = False
    with pytest.warns(UserWarning, match="not overwritten"):
        learn.fit(2, quiet=True)
    st = torch.load(_ck(tmp_path), weights_only=True)
    assert all(torch.isfinite(v).all() for v in st["model"].values())


def test_resuming_with_another_optimizer_names_the_mismatch_and_changes_nothing(wine_tensors, tmp_path):
    _learner(wine_tensors, tmp_path, cbs=Checkpoint()).fit(1, quiet=True)  # Adam
    other = _learner(wine_tensors, tmp_path, cbs=Checkpoint(), opt_func=SGD)
    other.create_opt()
    before = [p.detach().clone() for p in other.model.parameters()]
    opt_before = other.opt.state_dict()["param_groups"]
    with pytest.raises(CheckpointError, match=r"AdamW optimizer; this learner uses SGD"):
        other.fit(2, resume=_ck(tmp_path), quiet=True)
    assert all(torch.equal(a, b) for a, b in zip(before, other.model.parameters()))
    assert other.opt.state_dict()["param_groups"] == opt_before
    other.fit(1, quiet=True)  # still trains with its own optimizer


def test_resuming_with_optimizer_state_lacking_a_hyper_parameter(wine_tensors, tmp_path):
    _learner(wine_tensors, tmp_path, cbs=Checkpoint()).fit(1, quiet=True)
    st = torch.load(_ck(tmp_path), weights_only=True)
    st.pop("opt_class")  # as written by another tool: only the hyper-parameters tell
    torch.save(st, tmp_path / "models" / "foreign.pth")
    other = _learner(wine_tensors, tmp_path, opt_func=SGD)
    with pytest.raises(CheckpointError, match=r"lacks the hyper-parameter\(s\) \['dampening', 'momentum'"):
        other.fit(2, resume=tmp_path / "models" / "foreign.pth", quiet=True)


def test_stale_tmp_files_of_a_killed_write_are_cleaned_on_the_next_write(wine_tensors, tmp_path):
    models = tmp_path / "models"
    models.mkdir(parents=True)
    stale = models / ".checkpoint.pth.abc123.tmp"
    stale.write_bytes(b"half a checkpoint")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    fresh = models / ".checkpoint.pth.def456.tmp"  # maybe another writer's, in progress: kept
    fresh.write_bytes(b"in progress")
    other = models / ".model.pth.xyz.tmp"  # another file's temp: not ours to judge
    other.write_bytes(b"x")
    os.utime(other, (old, old))
    _learner(wine_tensors, tmp_path, cbs=Checkpoint()).fit(1, quiet=True)
    assert not stale.exists() and fresh.exists() and other.exists()
    assert _ck(tmp_path).exists()


def test_two_callbacks_of_one_class_keep_their_own_state(wine_tensors, tmp_path):
    a, b = EarlyStopping(patience=5), EarlyStopping(monitor="train_loss", patience=7)
    learn = _learner(wine_tensors, tmp_path, cbs=[a, b, Checkpoint()])
    learn.fit(2, quiet=True)
    st = torch.load(_ck(tmp_path), weights_only=True)
    keys = sorted(k for k in st["callbacks"] if k.startswith("EarlyStopping"))
    assert len(keys) == 2 and keys == sorted([a.state_key, b.state_key])  # monitors key by monitor and mode
    assert "train_loss" in b.state_key and "train_loss" not in a.state_key
    assert st["callbacks"][b.state_key]["best"] == b.best and st["callbacks"][a.state_key]["best"] == a.best
    assert a.best != b.best
    a2, b2 = EarlyStopping(patience=5), EarlyStopping(monitor="train_loss", patience=7)
    learn2 = _learner(wine_tensors, tmp_path, cbs=[b2, a2, Checkpoint()])  # another order: keys still match
    load_checkpoint(learn2, _ck(tmp_path))
    assert (a2.best, b2.best) == (a.best, b.best)
    # identical callbacks get deterministic suffixes
    k = EarlyStopping().state_key
    keys = list(callback_state_keys([EarlyStopping(), EarlyStopping()]))
    assert keys == [f"{k}()", f"{k}()#2"]


def test_resume_is_a_callback_and_on_exception_sees_the_exception(wine_tensors, tmp_path):
    assert "on_exception" in ALL_EVENTS
    seen = []

    class Watch(Callback):
        def before_fit(self):
            seen.append(
                ("before_fit", any(isinstance(c, Resume) for c in self.learn.cbs), self.learn.start_epoch)
            )

        def on_exception(self):
            seen.append(("on_exception", type(self.learn.exception).__name__))

        def after_fit(self):
            seen.append(("after_fit", type(self.learn.exception).__name__))

    class Boom(Callback):
        def before_batch(self):
            if self.learn.epoch == 1 and self.learn.iter == 3:
                raise KeyboardInterrupt()

    learn = _learner(wine_tensors, tmp_path, cbs=[Watch(), Checkpoint()])
    with pytest.raises(KeyboardInterrupt):
        learn.fit(2, cbs=Boom(), quiet=True)
    assert seen[-2:] == [("on_exception", "KeyboardInterrupt"), ("after_fit", "KeyboardInterrupt")]
    st = torch.load(_ck(tmp_path), weights_only=True)
    assert (st["epoch"], st["iter"]) == (1, 3)  # written by on_exception
    seen.clear()
    learn.fit(2, resume=True, quiet=True)
    assert seen[0] == ("before_fit", True, 1)
    assert learn.position["start_epoch"] == 1 and not any(isinstance(c, Resume) for c in learn.cbs)
    assert learn.resume_at is None and learn.exception is None


def test_interrupt_during_the_optimizer_step_keeps_the_last_good_checkpoint(wine_tensors, tmp_path):
    class StopInStep(Callback):
        def before_step(self):
            if self.learn.epoch == 1 and self.learn.iter == 4:
                self.learn.in_step = True  # as a callback stepping itself would
                raise KeyboardInterrupt()

    learn = _learner(wine_tensors, tmp_path, cbs=[Checkpoint()])
    with pytest.raises(KeyboardInterrupt):
        learn.fit(2, cbs=StopInStep(), quiet=True)
    st = torch.load(_ck(tmp_path), weights_only=True)
    assert (st["epoch"], st["iter"]) == (1, 0)  # the end-of-epoch-0 file, not a half-updated one
