"""The loop's guards and its public surface: learning-rate checks, element-wise loss shapes, metric signatures,
dict-batch keys, predict shapes, callback names and ordering, LR after a resumed schedule, the event list,
padded gathering, and the fastai-style API (Callback state properties, metrics setter, to_fp16, ...)."""

from __future__ import annotations

import contextlib
import io
from functools import partial

import pytest
import torch
from conftest import mlp
from torch import nn
from torch.utils.data import DataLoader, Dataset

from learnkit import (
    Callback,
    Checkpoint,
    DataLoaders,
    Learner,
    MixedPrecision,
    ProgressCallback,
    accuracy,
    set_seed,
)
from learnkit.callbacks.core import ALL_EVENTS
from learnkit.exceptions import DataError, ModelError
from learnkit.metrics import accuracy_multi


def _dls(data, bs=16, shuffle=False):
    train, valid = data
    return DataLoaders.from_tensors(train, valid, bs=bs, shuffle=shuffle, device="cpu")


def _learner(data, model=None, **kw):
    set_seed(0)
    kw.setdefault("loss_func", nn.CrossEntropyLoss())
    return Learner(_dls(data), model or mlp(), **kw)


# ---------------------------------------------------------------- item 5: learning rates
@pytest.mark.parametrize(
    "bad", [-1e-3, 0.0, float("nan"), float("inf"), slice(-1e-4, 1e-3), slice(float("nan"))]
)
def test_non_positive_or_non_finite_lr_is_refused(wine_tensors, bad):
    learn = _learner(wine_tensors)
    before = [p.detach().clone() for p in learn.model.parameters()]
    for call in (
        lambda: learn.fit(1, lr=bad, quiet=True),
        lambda: learn.fit_one_cycle(1, bad, quiet=True),
        lambda: learn.fit_flat_cos(1, bad, quiet=True),
    ):
        with pytest.raises(ValueError, match=r"finite number > 0.*Received: lr"):
            call()
    with pytest.raises(ValueError, match="base_lr"):
        learn.fine_tune(1, base_lr=-1e-3, quiet=True)
    with pytest.raises(ValueError, match="Received: lr="):
        Learner(_dls(wine_tensors), mlp(), lr=bad)
    assert all(torch.equal(a, b) for a, b in zip(before, learn.model.parameters()))  # nothing trained


# ---------------------------------------------------------------- item 6: element-wise loss shapes
@pytest.mark.parametrize("loss", [nn.MSELoss(), nn.L1Loss(), nn.SmoothL1Loss()])
def test_elementwise_loss_refuses_broadcasting_shapes(diabetes_tensors, loss):
    (xt, yt), (xv, yv) = diabetes_tensors
    dls = DataLoaders.from_tensors(
        (xt, yt[:, 0]), (xv, yv[:, 0]), bs=16, device="cpu"
    )  # target (B,), output (B, 1)
    learn = Learner(dls, mlp(n_in=10, n_out=1), loss_func=loss)
    with pytest.raises(
        ModelError, match=r"output has shape \(16, 1\) and the target \(16,\).*Fix: use learnkit's"
    ):
        learn.fit(1, quiet=True)
    # same shapes train, and the loss falls
    dls = DataLoaders.from_tensors((xt, yt), (xv, yv), bs=16, device="cpu")
    learn = Learner(dls, mlp(n_in=10, n_out=1), loss_func=type(loss)(), lr=1e-2)
    first = learn.validate()[0]
    learn.fit(3, quiet=True)
    assert learn.validate()[0] < first


# ---------------------------------------------------------------- item 7: metric signatures
def test_metric_with_a_wrong_signature_is_named(wine_tensors):
    def my_score(pred):
        return pred.mean()

    with pytest.raises(ModelError, match=r"metric 'my_score'.*my_score\(pred, targ\)"):
        _learner(wine_tensors, metrics=my_score)
    learn = _learner(wine_tensors)
    with pytest.raises(ModelError, match="my_score"):
        learn.metrics = [accuracy, my_score]


# ---------------------------------------------------------------- item 8: dict keys and predict shapes
class _DictDs(Dataset):
    def __init__(self, x, y, key="x"):
        self.x, self.y, self.key = x, y, key

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {self.key: self.x[i], "y": self.y[i]}


class _DictModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = mlp()

    def forward(self, x):
        return self.body(x)


def test_dict_batch_key_the_forward_does_not_take(wine_tensors):
    (xt, yt), (xv, yv) = wine_tensors
    dls = DataLoaders(
        DataLoader(_DictDs(xt, yt, "features"), batch_size=16),
        DataLoader(_DictDs(xv, yv, "features"), batch_size=16),
        device="cpu",
    )
    learn = Learner(dls, _DictModel(), loss_func=nn.CrossEntropyLoss())
    with pytest.raises(DataError, match=r"\['features'\].*among \['x'\]"):
        learn.fit(1, quiet=True)


def test_predict_on_an_input_of_the_wrong_width(wine_tensors):
    learn = _learner(wine_tensors)
    learn.fit(1, quiet=True)
    with pytest.raises(DataError, match=r"shape \(12,\).*trained on inputs of shape \(13,\)"):
        learn.predict(torch.randn(12))
    dec, idx, probs = learn.predict(wine_tensors[1][0][0])
    assert probs.shape == (3,) and abs(float(probs.sum()) - 1) < 1e-5


# ---------------------------------------------------------------- item 9: callback names
def test_callback_names_that_hide_learner_attributes_are_refused(wine_tensors):
    class MetricsCallback(Callback):
        pass

    class Summary(Callback):
        pass

    learn = _learner(wine_tensors, metrics=accuracy)
    with pytest.raises(ValueError, match=r"'metrics' \(MetricsCallback\) would hide Learner.metrics"):
        learn.add_cb(MetricsCallback())
    with pytest.raises(ValueError, match="Learner.summary"):
        learn.add_cb(Summary())
    assert learn.metrics[0].name == "accuracy"
    assert learn.terminate_on_nan is not None  # snake case keeps acronyms whole


# ---------------------------------------------------------------- item 10: LR after a resumed schedule
def test_plain_fit_after_a_resumed_one_cycle_uses_learn_lr(wine_tensors, tmp_path):
    learn = _learner(wine_tensors, path=tmp_path, cbs=Checkpoint())
    learn.fit_one_cycle(2, 1e-2, quiet=True)
    fresh = _learner(wine_tensors, path=tmp_path, lr=3e-3)
    fresh.fit_one_cycle(2, 1e-2, resume=tmp_path / "models" / "checkpoint.pth", quiet=True)
    fresh.fit(1, quiet=True)
    assert set(fresh.recorder.lrs) == {3e-3}


# ---------------------------------------------------------------- item 11: one event list
def test_show_training_loop_lists_every_event(wine_tensors, capsys):
    class Cancel(Callback):
        def after_cancel_backward(self):
            pass

        def after_cancel_step(self):
            pass

        def on_exception(self):
            pass

    learn = _learner(wine_tensors, cbs=Cancel())
    out = learn.show_training_loop()
    lines = out.splitlines()
    events = [ln.split()[0] for ln in lines]
    assert sorted(events) == sorted(ALL_EVENTS)
    for phase in ("batch", "backward", "step", "train", "validate", "epoch", "fit"):
        assert events.index(f"after_cancel_{phase}") == events.index(f"after_{phase}") - 1 - (phase == "fit")
    assert events[-2:] == ["on_exception", "after_fit"]
    for ev in ("after_cancel_backward", "after_cancel_step", "on_exception"):
        assert "Cancel" in next(ln for ln in lines if ln.split()[0] == ev)


# ---------------------------------------------------------------- item 14: dead code
def test_dead_code_is_gone(wine_tensors):
    learn = _learner(wine_tensors)
    assert not hasattr(Learner, "_default_cbs") and not hasattr(learn, "_dict_target")
    with pytest.raises(TypeError, match="reorder"):
        learn.get_preds(reorder=False)


# ---------------------------------------------------------------- item 15: padded gathering
class _SeqDs(Dataset):
    """Token sequences whose length grows with the index: each batch pads to its own longest."""

    def __len__(self):
        return 24

    def __getitem__(self, i):
        return torch.arange(1, 2 + i // 8 * 3), torch.tensor(i % 2)


def _pad_collate(items):
    n = max(len(x) for x, _ in items)
    xs = torch.stack([nn.functional.pad(x, (0, n - len(x)), value=0) for x, _ in items])
    return xs, torch.stack([y for _, y in items])


class _Bag(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.EmbeddingBag(16, 2, padding_idx=0)

    def forward(self, x):
        return self.emb(x)


def test_get_preds_with_input_pads_batches_of_different_lengths():
    dl = DataLoader(_SeqDs(), batch_size=8, collate_fn=_pad_collate)
    learn = Learner(DataLoaders(dl, dl, device="cpu"), _Bag(), loss_func=nn.CrossEntropyLoss())
    inp, preds, targs = learn.get_preds(with_input=True)
    assert inp.shape == (24, 7) and preds.shape == (24, 2) and targs.shape == (24,)
    assert torch.equal(inp[0], torch.tensor([1, 0, 0, 0, 0, 0, 0]))
    assert torch.equal(inp[23], torch.arange(1, 8)) and torch.equal(
        inp[8], torch.tensor([1, 2, 3, 4, 0, 0, 0])
    )
    assert torch.allclose(preds, learn.get_preds()[0])


# ---------------------------------------------------------------- item 16: fastai-style surface
def test_callback_reads_loop_state_as_properties(wine_tensors):
    seen = []

    class FastaiStyle(Callback):
        def after_batch(self):
            if self.training and self.iter == 0:
                seen.append(
                    (
                        self.epoch,
                        self.n_epoch,
                        self.model is self.learn.model,
                        self.opt is self.learn.opt,
                        self.dls is self.learn.dls,
                        tuple(self.xb[0].shape),
                        tuple(self.yb[0].shape),
                        tuple(self.pred.shape),
                        float(self.loss) == float(self.learn.loss),
                    )
                )

    learn = _learner(wine_tensors, cbs=FastaiStyle())
    learn.fit(2, quiet=True)
    assert seen == [
        (0, 2, True, True, True, (16, 13), (16,), (16, 3), True),
        (1, 2, True, True, True, (16, 13), (16,), (16, 3), True),
    ]
    cb = FastaiStyle()
    cb.epoch = 7  # the callback's own value; the loop's epoch is untouched
    assert cb.epoch == 7
    with pytest.raises(AttributeError, match="not attached"):
        _ = FastaiStyle().model


def test_run_before_and_run_after_order_callbacks(wine_tensors):
    calls = []

    class A(Callback):
        order = 10

        def before_fit(self):
            calls.append("A")

    class B(Callback):
        order = 20
        run_before = A

        def before_fit(self):
            calls.append("B")

    class C(Callback):
        order = 0
        run_after = "B"

        def before_fit(self):
            calls.append("C")

    learn = _learner(wine_tensors, cbs=[A(), B(), C()])
    learn.fit(1, quiet=True)
    assert calls == ["B", "C", "A"]  # by order it would be C, A, B

    class D(Callback):
        run_before = "E"

        def before_fit(self):
            pass

    class E(Callback):
        run_before = D

        def before_fit(self):
            pass

    learn = _learner(wine_tensors, cbs=[D(), E()])
    with pytest.raises(ValueError, match="contradict"):
        learn.fit(1, quiet=True)


def test_metrics_setter_converts_partials_and_constructor_kwargs(wine_tensors):
    (xt, yt), (xv, yv) = wine_tensors
    onehot = nn.functional.one_hot
    dls = DataLoaders.from_tensors(
        (xt, onehot(yt, 3).float()), (xv, onehot(yv, 3).float()), bs=16, device="cpu"
    )
    learn = Learner(
        dls, mlp(), loss_func=nn.BCEWithLogitsLoss(), lr=1e-2, train_bn=False, moms=(0.9, 0.8, 0.9)
    )
    learn.metrics = partial(accuracy_multi, thresh=0.1)
    assert learn.metrics[0].name == "accuracy_multi"
    learn.metrics = [partial(accuracy_multi, thresh=0.5), partial(accuracy_multi, thresh=0.9)]
    learn.fit_one_cycle(3, quiet=True)
    a, b = learn.recorder.values[-1][2:4]
    assert a > 0.8 and a != b
    assert learn.train_bn is False
    assert max(learn.recorder.moms) == pytest.approx(0.9) and min(learn.recorder.moms) == pytest.approx(
        0.8, abs=1e-3
    )


def test_to_fp16_bf16_fp32_and_no_logging(wine_tensors, capsys):
    learn = _learner(wine_tensors)
    assert learn.to_bf16() is learn
    assert [type(c) for c in learn.cbs].count(MixedPrecision) == 1
    learn.to_fp16()
    mp = [c for c in learn.cbs if isinstance(c, MixedPrecision)]
    assert len(mp) == 1
    learn.to_bf16().fit(1, quiet=True)
    learn.to_fp32()
    assert not any(isinstance(c, MixedPrecision) for c in learn.cbs)


class _TTY(io.StringIO):
    def isatty(self):  # progress bars draw only on a terminal
        return True


def _printed(learn, ctx):
    buf = _TTY()
    with contextlib.redirect_stdout(buf), ctx:
        learn.fit(1)
    return buf.getvalue()


def test_no_logging_hides_the_table_and_no_mbar_the_bars(wine_tensors):
    learn = _learner(wine_tensors)
    both = _printed(learn, contextlib.nullcontext())
    assert "train_loss" in both and "epochs" in both
    out = _printed(learn, learn.no_logging())
    assert "train_loss" not in out and "epochs" in out  # bars only
    out = _printed(learn, learn.no_mbar())
    assert "train_loss" in out and "epochs" not in out  # table only
    out = _printed(learn, learn.no_bar())
    assert out.strip() == ""
    assert learn.progress.bars and learn.progress.table  # restored after each block


def test_progress_mininterval_sets_how_often_the_batch_bar_redraws(wine_tensors):
    learn = _learner(wine_tensors)
    learn.progress.mininterval = 0.0  # every batch redraws
    often = _printed(learn, learn.no_logging()).count("train")
    learn.progress.mininterval = 1000.0  # only the first and the last draw
    rare = _printed(learn, learn.no_logging()).count("train")
    assert rare <= 3 < often and often >= len(learn.dls.train)
    for bad in (dict(mininterval=-1), dict(mininterval="0.2"), dict(refresh_every=0)):
        with pytest.raises(ValueError, match="Expected"):
            ProgressCallback(**bad)
