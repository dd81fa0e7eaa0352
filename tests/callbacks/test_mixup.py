"""MixUp and CutMix: they mix training batches and the loss, learn the digits, and leave validation alone."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import mlp
from torch import nn

from learnkit import Callback, DataLoaders, Learner, accuracy, set_seed
from learnkit.callbacks.mixup import CutMix, MixedLoss, MixUp
from learnkit.exceptions import DataError


def _dls(train, valid, bs=64):
    return DataLoaders.from_tensors(train, valid, bs=bs, val_bs=100, shuffle=True, device="cpu")


class Before(Callback):
    """Records each training batch before the mix (MixUp/CutMix have order 15), and the validation inputs."""

    order = 14

    def before_validate(self):
        self.valid_x, self.valid_loss_funcs = [], set()

    def before_batch(self):
        learn = self.learn
        if learn.training:
            self.orig = learn.xb[0]
        else:
            self.valid_x.append(learn.xb[0])
            self.valid_loss_funcs.add(type(learn.loss_func))


class After(Callback):
    """Records, per training batch: original and mixed inputs, targets, the draw, predictions and the loss."""

    order = 16

    def __init__(self, before, mixer):
        self.before, self.mixer, self.rows = before, mixer, []

    def after_loss(self):
        learn, m = self.learn, self.mixer
        if learn.training:
            self.rows.append(
                (
                    self.before.orig,
                    learn.xb[0],
                    learn.yb[0],
                    m.lam,
                    m.perm,
                    getattr(m, "box", None),
                    learn.pred.detach(),
                    learn.loss,
                )
            )


def _spies(mixer):
    before = Before()
    return before, After(before, mixer)


def _check_validation_untouched(learn, before, valid, loss_func):
    xv, yv = valid
    assert torch.equal(torch.cat(before.valid_x), xv)  # validation inputs are the originals
    assert before.valid_loss_funcs == {type(loss_func)}  # and the loss is the plain one
    assert learn.loss_func is loss_func  # restored after training
    learn.model.eval()
    with torch.no_grad():
        manual = F.cross_entropy(learn.model(xv), yv).item()
    assert learn.recorder.values[-1][1] == pytest.approx(manual, rel=1e-5)


def test_mixup_learns_digits_and_leaves_validation_alone(digits_tensors):
    train, valid = digits_tensors
    x_before = train[0].clone()
    mix = MixUp(0.4)
    before, after = _spies(mix)
    set_seed(0)
    loss_func = nn.CrossEntropyLoss()
    learn = Learner(
        _dls(train, valid), mlp(64, 10, 64), loss_func=loss_func, metrics=accuracy, cbs=[mix, before, after]
    )
    learn.fit_one_cycle(5, 1e-2, quiet=True)
    assert learn.recorder.values[-1][2] > 0.9  # chance is 0.1
    _check_validation_untouched(learn, before, valid, loss_func)
    assert torch.equal(train[0], x_before)  # the data were not mixed in place
    assert len(after.rows) == 5 * len(learn.dls.train)
    for orig, x, y, lam, perm, _, pred, loss in after.rows[:5]:
        assert 0 < lam < 1 and sorted(perm.tolist()) == list(range(len(y)))
        torch.testing.assert_close(x, lam * orig + (1 - lam) * orig[perm])
        # the mixed loss is cross-entropy against the mixed (soft) labels
        soft = lam * F.one_hot(y, 10).float() + (1 - lam) * F.one_hot(y[perm], 10).float()
        torch.testing.assert_close(loss, F.cross_entropy(pred, soft))


def test_cutmix_learns_digit_images_and_leaves_validation_alone(digits_tensors):
    (xt, yt), (xv, yv) = digits_tensors
    train, valid = (xt.reshape(-1, 1, 8, 8), yt), (xv.reshape(-1, 1, 8, 8), yv)
    mix = CutMix(1.0)
    before, after = _spies(mix)
    set_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, 10),
    )
    loss_func = nn.CrossEntropyLoss()
    learn = Learner(
        _dls(train, valid), model, loss_func=loss_func, metrics=accuracy, cbs=[mix, before, after]
    )
    learn.fit_one_cycle(5, 1e-2, quiet=True)
    assert learn.recorder.values[-1][2] > 0.85
    _check_validation_untouched(learn, before, valid, loss_func)
    areas = []
    for orig, x, y, lam, perm, (top, bottom, left, right), pred, loss in after.rows[:20]:
        inside = torch.zeros(8, 8, dtype=torch.bool)
        inside[top:bottom, left:right] = True
        assert torch.equal(x[:, :, inside], orig[perm][:, :, inside])  # the box comes from the paired image
        assert torch.equal(x[:, :, ~inside], orig[:, :, ~inside])  # the rest is the image itself
        assert lam == pytest.approx(1 - inside.float().mean().item())  # lam is the share of the image kept
        areas.append(inside.sum().item())
        torch.testing.assert_close(
            loss, lam * F.cross_entropy(pred, y) + (1 - lam) * F.cross_entropy(pred, y[perm])
        )
    assert sum(a > 0 for a in areas) > 10 and len(set(areas)) > 3  # boxes of various sizes


def test_mixed_loss_is_the_plain_loss_without_a_pairing():
    class Owner:
        lam, perm = None, None

    base = nn.CrossEntropyLoss()
    ml = MixedLoss(base, Owner())
    pred, y = torch.randn(6, 3), torch.tensor([0, 1, 2, 0, 1, 2])
    assert torch.equal(ml(pred, y), base(pred, y))
    assert ml.reduction == "mean"  # attributes of the wrapped loss


def test_loss_restored_after_an_error_in_training(wine_tensors):
    class Boom(Callback):
        def after_loss(self):
            if self.learn.training and self.learn.iter == 2:
                raise RuntimeError("boom")

    loss_func = nn.CrossEntropyLoss()
    learn = Learner(
        DataLoaders.from_tensors(*wine_tensors, bs=16, device="cpu"), mlp(), loss_func=loss_func, cbs=MixUp()
    )
    with pytest.raises(RuntimeError, match="boom"):
        learn.fit(1, cbs=Boom(), quiet=True)
    assert learn.loss_func is loss_func


def test_bad_inputs_give_clear_errors(wine_tensors):
    (xt, yt), valid = wine_tensors
    learn = Learner(
        DataLoaders.from_tensors((xt, yt), valid, bs=16, device="cpu"),
        mlp(),
        loss_func=nn.CrossEntropyLoss(),
        cbs=CutMix(),
    )
    with pytest.raises(DataError, match=r"\(N, C, H, W\)"):
        learn.fit(1, quiet=True)
    tokens = torch.randint(0, 13, (142, 13))
    learn = Learner(
        DataLoaders.from_tensors((tokens, yt), bs=16, device="cpu"),
        nn.Sequential(nn.Embedding(13, 4), nn.Flatten(), nn.Linear(52, 3)),
        loss_func=nn.CrossEntropyLoss(),
        cbs=MixUp(),
    )
    with pytest.raises(DataError, match="floating-point"):
        learn.fit(1, quiet=True)
    with pytest.raises(ValueError, match="alpha"):
        MixUp(0)
