"""The Learner: the loop against a hand-written one, recipes, freezing, files, and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import mlp
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from learnkit import (
    Callback,
    CancelBatchException,
    CancelFitException,
    Checkpoint,
    DataLoaders,
    EarlyStopping,
    Learner,
    ReduceLROnPlateau,
    SaveModel,
    accuracy,
    load_learner,
    set_seed,
)
from learnkit.exceptions import CheckpointError, DataError, ModelError, NonFiniteLossError, UnsafeFileError
from learnkit.models import create_model, register_model


def _dls(data, bs=16, shuffle=False, **kw):
    train, valid = data
    return DataLoaders.from_tensors(train, valid, bs=bs, shuffle=shuffle, device="cpu", **kw)


def _learner(data, model=None, **kw):
    set_seed(0)
    model = model or mlp()
    kw.setdefault("loss_func", nn.CrossEntropyLoss())
    return Learner(_dls(data, shuffle=kw.pop("shuffle", False)), model, **kw)


# ---------------------------------------------------------------- the loop
def test_fit_matches_hand_written_loop(wine_tensors):
    """Same seed, data order, optimizer: learnkit's fit gives the same weights as a plain PyTorch loop."""
    (xt, yt), _ = wine_tensors
    set_seed(1)
    ref = mlp()
    init = {k: v.clone() for k, v in ref.state_dict().items()}
    opt = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
    for _ in range(3):
        for i in range(0, len(xt), 16):
            loss = nn.functional.cross_entropy(ref(xt[i : i + 16]), yt[i : i + 16])
            loss.backward()
            opt.step()
            opt.zero_grad()
    model = mlp()
    model.load_state_dict(init)
    learn = Learner(
        _dls(wine_tensors),
        model,
        loss_func=nn.CrossEntropyLoss(),
        opt_func=lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.9),
        lr=0.1,
    )
    learn.fit(3, quiet=True)
    for (k, a), b in zip(ref.state_dict().items(), learn.model.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), k


def test_training_lowers_loss_and_beats_chance(wine_tensors):
    learn = _learner(wine_tensors, metrics=accuracy, shuffle=True)
    before = learn.validate()[0]
    learn.fit_one_cycle(4, 1e-2, quiet=True)
    loss, acc = learn.validate()
    assert loss < before * 0.5
    assert acc > 0.85  # chance is ~0.4
    assert learn.recorder.metric_names == ["epoch", "train_loss", "valid_loss", "accuracy", "time"]
    assert len(learn.recorder.values) == 4 and len(learn.recorder.losses) == 4 * len(learn.dls.train)


def test_one_cycle_lr_and_mom_follow_the_formula(wine_tensors):
    learn = _learner(wine_tensors)
    learn.fit_one_cycle(2, lr_max=1e-2, div=25, div_final=1e4, pct_start=0.25, quiet=True)
    lrs, moms = np.array(learn.recorder.lrs), np.array(learn.recorder.moms)
    n = len(lrs)
    pcts = np.arange(n) / n
    warm = pcts < 0.25

    def cos(a, b, p):
        return a + (1 + np.cos(np.pi * (1 - p))) * (b - a) / 2

    exp_lr = np.where(warm, cos(1e-2 / 25, 1e-2, pcts / 0.25), cos(1e-2, 1e-2 / 1e4, (pcts - 0.25) / 0.75))
    exp_mom = np.where(warm, cos(0.95, 0.85, pcts / 0.25), cos(0.85, 0.95, (pcts - 0.25) / 0.75))
    np.testing.assert_allclose(lrs, exp_lr, rtol=1e-6)
    np.testing.assert_allclose(moms, exp_mom, rtol=1e-6)


def test_discriminative_lrs_and_freeze(wine_tensors):
    model = mlp()

    def splitter(m):
        return [list(m[0].parameters()), list(m[2].parameters())]

    learn = _learner(wine_tensors, model=model, splitter=splitter)
    learn.freeze()
    body0 = model[0].weight.clone()
    learn.fit(1, lr=slice(1e-4, 1e-2), quiet=True)
    assert [pg["lr"] for pg in learn.opt.param_groups] == pytest.approx([1e-4, 1e-2])
    assert torch.equal(model[0].weight, body0)  # frozen group did not move
    assert not model[0].weight.requires_grad and model[2].weight.requires_grad
    learn.unfreeze()
    learn.fit(1, lr=1e-2, quiet=True)
    assert not torch.equal(model[0].weight, body0)


def test_frozen_batchnorm_keeps_training_unless_switched_off(wine_tensors):
    model = nn.Sequential(nn.Linear(13, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))

    def splitter(m):
        return [list(m[0].parameters()) + list(m[1].parameters()), list(m[3].parameters())]

    learn = _learner(wine_tensors, model=model, splitter=splitter)
    learn.freeze()
    assert model[1].weight.requires_grad and not model[0].weight.requires_grad
    learn.train_bn = False
    learn.freeze()
    assert not model[1].weight.requires_grad


def test_lr_find_suggests_sane_lr_and_restores_weights(digits_tensors):
    set_seed(0)
    learn = Learner(
        _dls(digits_tensors, bs=32, shuffle=True), mlp(64, 10, 64), loss_func=nn.CrossEntropyLoss()
    )
    learn.fit(1, 1e-3, quiet=True)  # works after training too
    before = {k: v.clone() for k, v in learn.model.state_dict().items()}
    opt_before = {k: v.clone() for k, v in learn.opt.state_dict()["state"][0].items()}
    sug = learn.lr_find(num_it=60, show_plot=False)
    assert 1e-4 < sug.valley < 1.0
    for k, v in learn.model.state_dict().items():
        assert torch.equal(v, before[k])
    for k, v in learn.opt.state_dict()["state"][0].items():
        assert torch.equal(v, opt_before[k])
    assert len(learn.recorder.values) == 1  # the recorder's history was kept


def test_lr_find_all_suggestions_and_plot(digits_tensors):
    from learnkit import minimum, slide, steep, valley

    learn = Learner(
        _dls(digits_tensors, bs=32, shuffle=True), mlp(64, 10, 64), loss_func=nn.CrossEntropyLoss()
    )
    sug = learn.lr_find(num_it=50, suggest_funcs=(valley, slide, minimum, steep), show_plot=True)
    for v in sug:
        assert 1e-7 <= v <= 10
    assert len(learn.lr_finder.lrs) <= 50


def test_fine_tune_runs_frozen_then_unfrozen(wine_tensors):
    model = mlp()
    learn = _learner(wine_tensors, model=model, splitter=lambda m: [m[0].parameters(), m[2].parameters()])
    learn.fine_tune(1, base_lr=1e-2, freeze_epochs=1, quiet=True)
    assert learn.frozen_idx == 0 and len(learn.recorder.values) == 1
    lrs = [pg["lr"] for pg in learn.opt.param_groups]
    assert lrs[0] < lrs[1]


def test_fit_flat_cos_and_sgdr(wine_tensors):
    learn = _learner(wine_tensors)
    learn.fit_flat_cos(2, lr=1e-2, quiet=True)
    lrs = learn.recorder.lrs
    assert lrs[0] == pytest.approx(1e-2) and lrs[-1] < 2e-3
    learn.fit_sgdr(2, 1, lr_max=1e-2, quiet=True)
    assert len(learn.recorder.values) == 3


# ---------------------------------------------------------------- callbacks
def test_callback_errors_name_callback_and_event(wine_tensors):
    class Broken(Callback):
        def after_loss(self):
            raise ValueError("boom")

    learn = _learner(wine_tensors, cbs=Broken())
    with pytest.raises(ValueError, match=r"Broken.*after_loss.*boom"):
        learn.fit(1, quiet=True)


def test_cancel_exceptions_and_event_order(wine_tensors):
    events = []

    class Tracer(Callback):
        order = 100  # after the Recorder

        def before_fit(self):
            events.append("before_fit")

        def before_batch(self):
            if self.learn.training and self.learn.iter == 1:
                raise CancelBatchException()

        def after_cancel_batch(self):
            events.append("cancel_batch")

        def after_epoch(self):
            events.append("after_epoch")
            raise CancelFitException()

        def after_cancel_fit(self):
            events.append("cancel_fit")

        def after_fit(self):
            events.append("after_fit")

    learn = _learner(wine_tensors, cbs=Tracer())
    learn.fit(5, quiet=True)
    assert events == ["before_fit", "cancel_batch", "after_epoch", "cancel_fit", "after_fit"]
    assert len(learn.recorder.values) == 1


def test_show_training_loop_lists_callbacks(wine_tensors, capsys):
    learn = _learner(wine_tensors, cbs=EarlyStopping())
    out = learn.show_training_loop()
    assert "after_epoch" in out and "EarlyStopping" in out and "Recorder" in out


def test_progress_prints_a_metrics_table(wine_tensors, capsys):
    learn = _learner(wine_tensors, metrics=accuracy)
    learn.fit(2)
    out = capsys.readouterr().out
    assert "train_loss" in out and "accuracy" in out
    assert out.count("\n0 ") + out.count("\n1 ") >= 1 or "0 " in out


def test_early_stopping_save_model_and_reduce_lr(wine_tensors, tmp_path):
    learn = _learner(wine_tensors, metrics=accuracy, path=tmp_path)
    es = EarlyStopping(monitor="valid_loss", patience=2, min_delta=10.0)
    sm = SaveModel(monitor="accuracy", fname="best", reload_best=True)
    rl = ReduceLROnPlateau(monitor="valid_loss", patience=1, min_delta=10.0, factor=10)
    learn.fit(5, 1e-2, cbs=[es, sm, rl], quiet=True)
    assert len(learn.recorder.values) == 3  # no epoch improved by 10 -> stopped after patience
    assert (tmp_path / "models" / "best.pth").exists()
    assert learn.opt.param_groups[0]["lr"] == pytest.approx(
        1e-3
    )  # reduced after epoch 1 (ES stops at 2 first)


def test_unknown_monitor_lists_the_recorded_names(wine_tensors):
    learn = _learner(wine_tensors, metrics=accuracy)
    with pytest.raises(ValueError, match=r"accuracy") as e:
        learn.fit(1, cbs=EarlyStopping(monitor="acuracy"), quiet=True)
    assert "valid_loss" in str(e.value) and "Did you mean" in str(e.value)


# ---------------------------------------------------------------- plain PyTorch interop
class DictDS(Dataset):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"features": self.x[i], "label": self.y[i]}


class KwModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = mlp()

    def forward(self, features):
        return self.lin(features)


def test_plain_dataloaders_datasets_and_dict_batches(wine_tensors):
    (xt, yt), (xv, yv) = wine_tensors
    tdl = DataLoader(TensorDataset(xt, yt), batch_size=16, shuffle=True)
    vdl = DataLoader(TensorDataset(xv, yv), batch_size=32)
    learn = Learner((tdl, vdl), mlp(), loss_func=nn.CrossEntropyLoss(), metrics=accuracy, lr=1e-2)
    learn.fit(3, quiet=True)
    assert learn.validate()[1] > 0.8
    dls = DataLoaders.from_datasets(DictDS(xt, yt), DictDS(xv, yv), bs=16, num_workers=0, device="cpu")
    learn = Learner(
        dls, KwModel(), loss_func=nn.CrossEntropyLoss(), metrics=accuracy, lr=1e-2, opt_func=torch.optim.Adam
    )
    learn.fit(3, quiet=True)
    assert learn.validate()[1] > 0.8


def test_multi_input_batches(wine_tensors):
    (xt, yt), (xv, yv) = wine_tensors

    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(6, 8), nn.Linear(7, 8)
            self.out = nn.Linear(8, 3)

        def forward(self, x1, x2):
            return self.out(torch.relu(self.a(x1) + self.b(x2)))

    dls = DataLoaders.from_tensors(
        (xt[:, :6], xt[:, 6:], yt), (xv[:, :6], xv[:, 6:], yv), bs=16, device="cpu"
    )
    learn = Learner(dls, Two(), loss_func=nn.CrossEntropyLoss(), lr=1e-2)
    learn.fit(2, quiet=True)
    preds, targs = learn.get_preds()
    assert preds.shape == (36, 3) and torch.equal(targs, yv)
    assert torch.allclose(preds.sum(1), torch.ones(36), atol=1e-5)  # softmax applied


def test_get_preds_predict_and_summary(wine_tensors):
    learn = _learner(wine_tensors, metrics=accuracy)
    learn.fit(2, 1e-2, quiet=True)
    inp, preds, targs, dec, losses = learn.get_preds(with_input=True, with_decoded=True, with_loss=True)
    assert inp.shape == (36, 13) and losses.shape == (36,)
    assert torch.equal(dec, preds.argmax(1))
    ref = nn.functional.cross_entropy(learn.model(inp), targs, reduction="none")
    assert torch.allclose(losses, ref, atol=1e-5)
    label, idx, probs = learn.predict(inp[0])
    assert int(idx) == int(dec[0]) and probs.shape == (3,)
    s = learn.summary(print_out=False)
    assert "Linear" in s and "Total params: 547" in s


# ---------------------------------------------------------------- files
def test_save_load_roundtrip_and_wrong_model(wine_tensors, tmp_path):
    learn = _learner(wine_tensors, path=tmp_path)
    learn.fit(1, quiet=True)
    learn.save("w")
    p0 = learn.get_preds()[0]
    other = _learner(wine_tensors, path=tmp_path)
    other.load("w")
    assert torch.equal(other.get_preds()[0], p0)
    wrong = _learner(wine_tensors, model=mlp(hidden=20), path=tmp_path)
    with pytest.raises(CheckpointError, match=r"0.weight: file \(32, 13\) vs model \(20, 13\)"):
        wrong.load("w")


@register_model(name="test_wine_mlp", tags=("test",))
def wine_mlp(n_in=13, n_out=3, hidden=32):
    return mlp(n_in, n_out, hidden)


def test_export_load_learner_gives_identical_predictions(wine_tensors, tmp_path):
    learn = _learner(wine_tensors, model=create_model("test_wine_mlp", hidden=24), path=tmp_path)
    learn.fit(1, quiet=True)
    f = learn.export("wine.lk")
    loaded = load_learner(f)
    x = wine_tensors[1][0]
    assert torch.equal(loaded.get_preds(dl=x)[0], learn.get_preds(dl=x)[0])
    assert isinstance(loaded.loss_func, nn.CrossEntropyLoss)


class _Twice(nn.Module):
    """A custom layer: not a torch.nn layer, not registered, so a pickle-free export cannot rebuild it."""

    def forward(self, x):
        return 2 * x


def test_export_of_unknown_model_explains_the_options(wine_tensors, tmp_path):
    learn = _learner(wine_tensors, model=nn.Sequential(mlp(), _Twice()), path=tmp_path)
    with pytest.raises(ModelError, match="factory=") as e:
        learn.export("x.lk")
    assert "_Twice" in str(e.value) and "@register_model" in str(e.value)
    f = learn.export("p.lk", pickle_model=True)
    with pytest.raises(UnsafeFileError, match="allow_pickle=True"):
        load_learner(f)
    assert isinstance(load_learner(f, allow_pickle=True).model, nn.Sequential)


def test_crafted_pickle_file_is_refused_and_nothing_runs(tmp_path):

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    f = tmp_path / "evil.lk"
    torch.save({"format": "learnkit.export", "model": Evil()}, f)
    with pytest.raises(UnsafeFileError):
        load_learner(f)
    assert not marker.exists()


def test_export_naming_an_unregistered_factory_is_refused(wine_tensors, tmp_path):
    learn = _learner(wine_tensors, path=tmp_path)
    f = learn.export("os.lk", factory="os:system", factory_kwargs={"command": "touch x"})
    with pytest.raises(UnsafeFileError, match="not a registered model factory"):
        load_learner(f)


# ---------------------------------------------------------------- checkpoints and resume
class Interrupt(Callback):
    def __init__(self, epoch, batch):
        self.epoch, self.batch = epoch, batch

    def before_batch(self):
        learn = self.learn
        if learn.training and learn.epoch == self.epoch and learn.iter == self.batch:
            raise KeyboardInterrupt()


def _resume_learner(wine_tensors, tmp_path):
    set_seed(3, reproducible=True)
    model = mlp(p=0.3)  # dropout: the RNG state matters
    return Learner(
        _dls(wine_tensors, shuffle=True),
        model,
        loss_func=nn.CrossEntropyLoss(),
        path=tmp_path,
        cbs=Checkpoint(every_n_batches=3),
    )


def test_resume_mid_epoch_is_exact(wine_tensors, tmp_path):
    ref = _resume_learner(wine_tensors, tmp_path / "a")
    ref.fit_one_cycle(3, 1e-2, quiet=True)
    learn = _resume_learner(wine_tensors, tmp_path / "b")
    with pytest.raises(KeyboardInterrupt):
        learn.fit_one_cycle(3, 1e-2, cbs=Interrupt(1, 5), quiet=True)
    ck = tmp_path / "b" / "models" / "checkpoint.pth"
    assert ck.exists()
    assert learn.recorder is not None  # the learner stays usable
    fresh = _resume_learner(wine_tensors, tmp_path / "b")
    fresh.fit_one_cycle(3, 1e-2, resume=ck, quiet=True)
    for (k, a), b in zip(ref.model.state_dict().items(), fresh.model.state_dict().values()):
        assert torch.equal(a, b), k
    assert len(fresh.recorder.values) == 3


def test_after_fit_runs_on_keyboard_interrupt(wine_tensors, tmp_path):
    ran = []

    class AfterFit(Callback):
        def after_fit(self):
            ran.append(True)

    learn = _learner(wine_tensors, path=tmp_path, cbs=[AfterFit(), Checkpoint()])
    with pytest.raises(KeyboardInterrupt):
        learn.fit(2, cbs=Interrupt(1, 2), quiet=True)
    assert ran == [True]
    learn.fit(1, quiet=True)  # still usable


def test_corrupted_checkpoint_gives_clear_error_and_is_kept(wine_tensors, tmp_path):
    learn = _learner(wine_tensors, path=tmp_path, cbs=Checkpoint())
    learn.fit(1, quiet=True)
    ck = tmp_path / "models" / "checkpoint.pth"
    data = ck.read_bytes()
    ck.write_bytes(data[: len(data) // 2])
    truncated = ck.read_bytes()
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        learn.fit(2, resume=ck, quiet=True)
    assert ck.read_bytes() == truncated  # nothing overwritten


# ---------------------------------------------------------------- bad input
def test_output_shape_not_fitting_loss(wine_tensors):
    learn = _learner(wine_tensors, model=mlp(n_out=2))
    with pytest.raises(ModelError) as e:
        learn.fit(1, quiet=True)
    assert "(16, 2)" in str(e.value) and "Fix" in str(e.value)


def test_empty_dataloader_and_wrong_types(wine_tensors):
    (xt, yt), _ = wine_tensors
    with pytest.raises(DataError, match="empty"):
        DataLoaders(DataLoader(TensorDataset(xt[:0], yt[:0]), batch_size=4), None)
    with pytest.raises(DataError, match="from_datasets"):
        Learner((TensorDataset(xt, yt), None), mlp())
    with pytest.raises(ModelError, match="opt_func"):
        Learner(_dls(wine_tensors), mlp(), loss_func=nn.CrossEntropyLoss(), opt_func="adam").fit(
            1, quiet=True
        )
    with pytest.raises(ModelError, match="torch.optim.Optimizer"):
        Learner(
            _dls(wine_tensors), mlp(), loss_func=nn.CrossEntropyLoss(), opt_func=lambda p, lr: object()
        ).fit(1)
    with pytest.raises(ModelError, match="loss_func"):
        Learner(_dls(wine_tensors), mlp()).fit(1, quiet=True)


def test_non_finite_loss_stops_before_the_step_and_keeps_checkpoint(wine_tensors, tmp_path):
    class Poison(Callback):
        order = -10  # before TerminateOnNaN

        def after_loss(self):
            if self.learn.epoch == 1 and self.learn.iter == 2:
                self.learn.loss_grad = self.learn.loss_grad * float("nan")
                self.learn.loss = self.learn.loss_grad.detach()

    learn = _learner(wine_tensors, path=tmp_path, cbs=[Poison(), Checkpoint()])
    with pytest.raises(NonFiniteLossError, match=r"epoch 1, batch 2"):
        learn.fit(3, quiet=True)
    assert all(torch.isfinite(p).all() for p in learn.model.parameters())
    st = torch.load(tmp_path / "models" / "checkpoint.pth", weights_only=True)
    assert st["epoch"] == 1 and st["iter"] == 0


def test_recorder_plots(wine_tensors):
    learn = _learner(wine_tensors, metrics=accuracy)
    learn.fit_one_cycle(2, 1e-2, quiet=True)
    assert learn.recorder.plot_loss() is not None
    assert len(learn.recorder.plot_sched()) == 2
    assert learn.recorder.plot_metrics() is not None
    assert math.isfinite(learn.recorder.smooth_loss)
