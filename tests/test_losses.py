"""Losses against plain PyTorch / hand computations on real data (digits, breast cancer, diabetes)."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn import datasets
from torch import nn

from learnkit.exceptions import ModelError
from learnkit.losses import (
    BaseLoss,
    BCEWithLogitsLossFlat,
    CrossEntropyLossFlat,
    FocalLoss,
    FocalLossFlat,
    L1LossFlat,
    LabelSmoothingCrossEntropy,
    LabelSmoothingCrossEntropyFlat,
    MSELossFlat,
    loss_activation,
    loss_decodes,
    loss_from_spec,
    loss_spec,
)
from learnkit.utils import atomic_save, safe_load


def _linear_fit(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    x = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], 1)
    return x @ torch.linalg.lstsq(x, y).solution


@pytest.fixture(scope="module")
def data():
    d = {}
    dig = datasets.load_digits()
    x, y = torch.tensor(dig.data, dtype=torch.float64), torch.tensor(dig.target)
    d["digits"] = ((_linear_fit(x, F.one_hot(y).double() * 4 - 2)).float(), y)  # (1797, 10) logits
    multi = torch.stack([y % 2 == 0, y > 4, (y == 2) | (y == 3) | (y == 5) | (y == 7)], 1).long()
    d["multi"] = (_linear_fit(x, multi.double() * 4 - 2).float(), multi)
    # sequences: digit images read row by row, predicting the next pixel's grey level (17 levels)
    toks = torch.tensor(dig.images.reshape(len(dig.images), -1), dtype=torch.long)[:100]
    counts = torch.ones(17, 17)
    counts.index_put_(
        (toks[:, :-1].reshape(-1), toks[:, 1:].reshape(-1)), torch.ones(toks[:, 1:].numel()), accumulate=True
    )
    d["seq"] = (counts.log()[toks[:, :-1]], toks[:, 1:].clone())  # (B, T, V), (B, T)
    # segmentation: 3 grey-level classes per pixel of 8x8 digits; logits (N, C, H, W)
    imgs = torch.tensor(dig.images[:40], dtype=torch.float32)
    seg = (imgs > 4).long() + (imgs > 11).long()
    g = torch.Generator().manual_seed(0)
    d["seg"] = (
        F.one_hot(seg, 3).permute(0, 3, 1, 2).float() * 2 + torch.randn(40, 3, 8, 8, generator=g),
        seg,
    )
    bc = datasets.load_breast_cancer()
    xb, yb = torch.tensor(bc.data, dtype=torch.float64), torch.tensor(bc.target)
    d["binary"] = (_linear_fit(xb, yb.double()[:, None] * 4 - 2).float(), yb)  # (N, 1) logit, (N,) 0/1
    diab = datasets.load_diabetes()
    xd, td = torch.tensor(diab.data, dtype=torch.float64), torch.tensor(diab.target, dtype=torch.float64)
    d["reg"] = (_linear_fit(xd, td[:, None]).float(), td.float())  # (N, 1), (N,)
    return d


def close(a, b, tol=1e-5):
    return torch.allclose(torch.as_tensor(a).double(), torch.as_tensor(b).double(), rtol=tol, atol=tol)


# ----------------------------------------------------------------------------------------------- vs PyTorch
def test_cross_entropy_flat_matches_torch(data):
    p, t = data["digits"]
    w = torch.linspace(0.5, 2.0, 10)
    assert close(CrossEntropyLossFlat()(p, t), F.cross_entropy(p, t))
    assert close(CrossEntropyLossFlat(weight=w)(p, t), F.cross_entropy(p, t, weight=w))
    assert close(CrossEntropyLossFlat(weight=w.tolist())(p, t), F.cross_entropy(p, t, weight=w))
    assert close(CrossEntropyLossFlat(label_smoothing=0.2)(p, t), F.cross_entropy(p, t, label_smoothing=0.2))
    t_ign = t.clone()
    t_ign[::5] = -100
    assert close(CrossEntropyLossFlat()(p, t_ign), F.cross_entropy(p, t_ign))
    assert close(CrossEntropyLossFlat(reduction="sum")(p, t), F.cross_entropy(p, t, reduction="sum"))
    for dt in (torch.int32, torch.uint8, torch.int16):
        assert close(CrossEntropyLossFlat()(p, t.to(dt)), F.cross_entropy(p, t))
    soft = F.softmax(p.flip(0), dim=1)  # class probabilities as targets (e.g. from mixing labels)
    assert close(CrossEntropyLossFlat()(p, soft), F.cross_entropy(p, soft))


def test_cross_entropy_flat_sequences_and_segmentation(data):
    p, t = data["seq"]
    loss = CrossEntropyLossFlat()
    assert close(loss(p, t), F.cross_entropy(p.transpose(1, 2), t))  # torch wants (B, V, T)
    loss.reduction = "none"
    per_tok = loss(p, t)
    assert per_tok.shape == (t.numel(),) and close(
        per_tok, F.cross_entropy(p.transpose(1, 2), t, reduction="none").reshape(-1)
    )
    ps, ts = data["seg"]
    assert close(CrossEntropyLossFlat(axis=1)(ps, ts), F.cross_entropy(ps, ts))
    w = torch.tensor([1.0, 2.0, 3.0])
    assert close(CrossEntropyLossFlat(axis=1, weight=w)(ps, ts), F.cross_entropy(ps, ts, weight=w))


def test_bce_flat_matches_torch(data):
    p, t = data["multi"]
    assert close(BCEWithLogitsLossFlat()(p, t), F.binary_cross_entropy_with_logits(p, t.float()))
    pw = torch.tensor([0.5, 2.0, 3.0])
    assert close(
        BCEWithLogitsLossFlat(pos_weight=pw)(p, t),
        F.binary_cross_entropy_with_logits(p, t.float(), pos_weight=pw),
    )
    pb, tb = data["binary"]  # (N, 1) logit with (N,) targets
    assert close(BCEWithLogitsLossFlat()(pb, tb), F.binary_cross_entropy_with_logits(pb[:, 0], tb.float()))
    assert close(
        BCEWithLogitsLossFlat()(pb[:, 0], tb[:, None].float()),
        F.binary_cross_entropy_with_logits(pb[:, 0], tb.float()),
    )
    # channels-first multi-label maps (N, C, H, W) with axis=1 and per-label pos_weight
    ps, ts = data["seg"]
    tgt = F.one_hot(ts, 3).permute(0, 3, 1, 2)
    expected = F.binary_cross_entropy_with_logits(ps, tgt.float(), pos_weight=pw[:, None, None])
    assert close(BCEWithLogitsLossFlat(axis=1, pos_weight=pw)(ps, tgt), expected)


def test_regression_flat_losses_match_torch(data):
    p, t = data["reg"]
    assert close(MSELossFlat()(p, t), F.mse_loss(p[:, 0].double(), t.double()), 1e-4)
    assert close(L1LossFlat()(p, t), F.l1_loss(p[:, 0], t))
    assert close(MSELossFlat()(p, t.double()), F.mse_loss(p[:, 0].double(), t.double()), 1e-4)
    assert close(L1LossFlat()(p, t.round().long()), F.l1_loss(p[:, 0], t.round()))  # integer targets
    mse_none = MSELossFlat(reduction="none")(p, t)
    assert mse_none.shape == (len(t),) and close(mse_none, (p[:, 0] - t) ** 2, 1e-4)
    huber = BaseLoss(nn.HuberLoss, delta=20.0, floatify=True, is_2d=False)
    assert close(huber(p, t), F.huber_loss(p[:, 0], t, delta=20.0))


def test_label_smoothing_matches_formula_and_torch(data):
    p, t = data["digits"]
    eps = 0.1
    logp = F.log_softmax(p.double(), 1).numpy()
    nll = -logp[np.arange(len(t)), t.numpy()]
    by_hand = ((1 - eps) * nll + eps * (-logp.mean(1))).mean()
    assert close(LabelSmoothingCrossEntropy(eps)(p, t), by_hand)
    assert close(LabelSmoothingCrossEntropy(eps)(p, t), F.cross_entropy(p, t, label_smoothing=eps))
    ps, ts = data["seq"]
    assert close(
        LabelSmoothingCrossEntropyFlat(eps=0.3)(ps, ts),
        F.cross_entropy(ps.transpose(1, 2), ts, label_smoothing=0.3),
    )


def test_focal_loss_matches_hand_computation(data):
    p, t = data["digits"]
    w = torch.linspace(0.5, 2.0, 10)
    t_ign = t.clone()
    t_ign[::7] = -100
    # gamma=0 is cross-entropy, with class weights and ignored targets too
    assert close(FocalLoss(gamma=0.0)(p, t), F.cross_entropy(p, t))
    assert close(FocalLoss(gamma=0.0, weight=w)(p, t_ign), F.cross_entropy(p, t_ign, weight=w))
    # gamma=2 by hand in NumPy
    logp = F.log_softmax(p.double(), 1).numpy()
    lt = logp[np.arange(len(t)), t.numpy()]
    per = -((1 - np.exp(lt)) ** 2) * lt
    assert close(FocalLoss(gamma=2.0)(p, t), per.mean())
    wt = w.double().numpy()[t.numpy()]
    assert close(FocalLoss(gamma=2.0, weight=w)(p, t), (per * wt).sum() / wt.sum())
    assert close(FocalLoss(gamma=2.0, reduction="none")(p, t), per)
    assert FocalLoss(gamma=2.0)(p, t) < F.cross_entropy(p, t)  # easy items count less
    ps, ts = data["seg"]
    assert close(FocalLossFlat(axis=1, gamma=1.5)(ps, ts), FocalLoss(gamma=1.5)(ps, ts))
    x = p[:50].clone().requires_grad_()
    FocalLossFlat()(x, t[:50]).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


# ----------------------------------------------------------------------------------------------- activation / decodes
def test_activation_and_decodes_of_learnkit_losses(data):
    p, t = data["digits"]
    for loss in (CrossEntropyLossFlat(), LabelSmoothingCrossEntropyFlat(), FocalLossFlat()):
        probs = loss.activation(p)
        assert close(probs.sum(1), torch.ones(len(p))) and torch.equal(loss.decodes(probs), p.argmax(1))
    ps, _ = data["seg"]
    seg = CrossEntropyLossFlat(axis=1)
    assert close(seg.activation(ps).sum(1), torch.ones(40, 8, 8))
    assert torch.equal(seg.decodes(seg.activation(ps)), ps.argmax(1))
    pm, _ = data["multi"]
    bce = BCEWithLogitsLossFlat(thresh=0.7)
    assert close(bce.activation(pm), torch.sigmoid(pm))
    assert torch.equal(bce.decodes(bce.activation(pm)), torch.sigmoid(pm) > 0.7)
    pr, _ = data["reg"]
    for loss in (MSELossFlat(), L1LossFlat()):
        assert torch.equal(loss.decodes(loss.activation(pr)), pr)
    generic = BaseLoss(nn.CrossEntropyLoss)
    assert close(generic.activation(p), F.softmax(p, -1)) and torch.equal(generic.decodes(p), p.argmax(-1))


def test_loss_activation_and_decodes_for_plain_torch_losses(data):
    p, _ = data["seq"]
    pt = p.transpose(1, 2)  # torch's (B, V, T) layout: class dim 1
    for ce in (
        nn.CrossEntropyLoss(),
        F.cross_entropy,
        functools.partial(F.cross_entropy, label_smoothing=0.1),
    ):
        assert close(loss_activation(ce, pt), F.softmax(pt, 1))
        assert torch.equal(loss_decodes(ce, loss_activation(ce, pt)), pt.argmax(1))
    logp = F.log_softmax(pt, 1)
    assert close(loss_activation(nn.NLLLoss(), logp), F.softmax(pt, 1))
    assert torch.equal(loss_decodes(nn.NLLLoss(), logp, activated=False), pt.argmax(1))
    pm, _ = data["multi"]
    for bce in (nn.BCEWithLogitsLoss(), F.binary_cross_entropy_with_logits):
        assert close(loss_activation(bce, pm), torch.sigmoid(pm))
        assert torch.equal(loss_decodes(bce, pm, activated=False), pm > 0)
    pr, _ = data["reg"]
    assert loss_activation(nn.MSELoss(), pr) is pr and loss_decodes(F.mse_loss, pr) is pr
    assert loss_activation(lambda a, b: (a - b).abs().mean(), pr) is pr
    # learnkit losses (flat or not) use their own methods through the helpers
    pd, _ = data["digits"]
    assert torch.equal(loss_decodes(FocalLoss(), loss_activation(FocalLoss(), pd)), pd.argmax(1))
    assert torch.equal(
        loss_decodes(BCEWithLogitsLossFlat(thresh=0.9), pm, activated=False), torch.sigmoid(pm) > 0.9
    )


# ----------------------------------------------------------------------------------------------- specs
SPEC_LOSSES = [
    CrossEntropyLossFlat(axis=1, weight=torch.tensor([1.0, 2.0, 3.0]), ignore_index=2, label_smoothing=0.1),
    BCEWithLogitsLossFlat(axis=1, thresh=0.3, pos_weight=torch.tensor([0.5, 2.0, 3.0])),
    MSELossFlat(reduction="sum"),
    L1LossFlat(),
    LabelSmoothingCrossEntropyFlat(axis=1, eps=0.2, weight=[1.0, 1.0, 4.0]),
    FocalLossFlat(axis=1, gamma=1.0, weight=torch.tensor([2.0, 1.0, 1.0])),
    LabelSmoothingCrossEntropy(eps=0.3),
    FocalLoss(gamma=3.0, ignore_index=0),
    BaseLoss(nn.SmoothL1Loss, beta=0.5, floatify=True, is_2d=False),
    nn.CrossEntropyLoss(weight=torch.tensor([1.0, 0.5, 2.0]), label_smoothing=0.05),
    nn.BCEWithLogitsLoss(pos_weight=torch.tensor([1.0, 2.0, 0.5])),
    nn.HuberLoss(delta=0.7),
    F.cross_entropy,
    functools.partial(F.cross_entropy, label_smoothing=0.1),
]


def _inputs_for(loss, data):
    ps, ts = data["seg"]
    if isinstance(loss, (BCEWithLogitsLossFlat, nn.BCEWithLogitsLoss)):
        tgt = F.one_hot(ts, 3).float()
        return (ps, tgt.permute(0, 3, 1, 2)) if isinstance(loss, BaseLoss) else (ps.permute(0, 2, 3, 1), tgt)
    if (
        isinstance(loss, (MSELossFlat, L1LossFlat, nn.HuberLoss))
        or getattr(loss, "loss_cls", None) is nn.SmoothL1Loss
    ):
        return ps[:, 0], ts.float()
    return ps, ts


@pytest.mark.parametrize("loss", SPEC_LOSSES, ids=lambda o: getattr(o, "__name__", None) or type(o).__name__)
def test_spec_round_trip_through_a_safe_file(loss, data, tmp_path):
    spec = loss_spec(loss)
    assert spec is not None and json.loads(json.dumps(spec)) == spec  # plain data
    atomic_save({"loss": spec}, tmp_path / "spec.pt")
    rebuilt = loss_from_spec(safe_load(tmp_path / "spec.pt")["loss"])
    assert rebuilt is not None
    if isinstance(loss, (nn.Module, BaseLoss)):
        assert rebuilt is not loss
    p, t = _inputs_for(loss, data)
    assert close(rebuilt(p, t), loss(p, t))
    assert loss_spec(rebuilt) == spec


def test_spec_refuses_what_it_cannot_rebuild():
    class MyLoss(nn.Module):
        def forward(self, p, t):
            return (p - t).abs().mean()

    assert loss_spec(MyLoss()) is None and loss_spec(lambda p, t: p) is None
    assert BaseLoss(MyLoss).spec() is None
    assert loss_from_spec({"name": "MyLoss", "kwargs": {}}) is None
    assert loss_from_spec({"name": "Module", "kwargs": {}}) is None  # in torch.nn but not a loss
    assert loss_from_spec({"name": "BaseLoss", "kwargs": {"loss_cls": "Linear"}}) is None
    assert loss_from_spec({"name": "functional.relu", "kwargs": {}}) is None
    assert loss_from_spec(None) is None and loss_from_spec({"kwargs": {}}) is None
    assert CrossEntropyLossFlat().spec() == {
        "name": "CrossEntropyLossFlat",
        "kwargs": {
            "axis": -1,
            "weight": None,
            "ignore_index": -100,
            "reduction": "mean",
            "label_smoothing": 0.0,
        },
    }


# ----------------------------------------------------------------------------------------------- errors
def _err(loss, pred, targ) -> str:
    with pytest.raises(ModelError) as e:
        loss(pred, targ)
    msg = str(e.value)
    assert str(tuple(pred.shape)) in msg and str(tuple(targ.shape)) in msg and "Fix" in msg, msg
    return msg


def test_shape_errors_show_both_shapes_and_the_fix(data):
    p, t = data["digits"]
    msg = _err(CrossEntropyLossFlat(), p[:10], t[:12])
    assert "10 items but targ has 12" in msg
    msg = _err(CrossEntropyLossFlat(), p[:10], t[:10].float())
    assert "targ.long()" in msg and "MSELossFlat" in msg
    ps, ts = data["seg"]
    msg = _err(CrossEntropyLossFlat(), ps, ts)
    assert "axis=1" in msg
    pr, tr = data["reg"]
    msg = _err(MSELossFlat(), p[:20], tr[:20])
    assert "outputs 10 values per item but the target has 1" in msg and "n_out=1" in msg
    _err(L1LossFlat(), pr[:20], tr[:25])
    pm, tm = data["multi"]
    msg = _err(BCEWithLogitsLossFlat(), pm[:20], t[:20])
    assert "multi-label" in msg and "one-hot" in msg and "CrossEntropyLossFlat" in msg
    _err(FocalLossFlat(), p[:10], t[:12])
    _err(LabelSmoothingCrossEntropyFlat(), p[:10, None], t[:12, None])
    _err(BaseLoss(nn.CrossEntropyLoss), p[:10], t[:12])
    _err(BaseLoss(nn.HuberLoss, is_2d=False, floatify=True), p[:10], tr[:10])


@pytest.mark.parametrize("make", [CrossEntropyLossFlat, LabelSmoothingCrossEntropyFlat, FocalLossFlat])
def test_target_out_of_range_says_how_many_classes_to_output(make, data):
    p, t = data["digits"]
    msg = _err(make(), p[:, :9], t)  # a model with 9 outputs for 10 digit classes
    assert "outputs 9 classes" in msg and "a target of 9" in msg and "n_out=10" in msg
    t_neg = t.clone()
    t_neg[3] = -1
    msg = _err(make(), p, t_neg)
    assert "a target of -1" in msg and "ignore_index=-1" in msg
    t_ign = t.clone()
    t_ign[3] = -100  # the default ignore_index is fine
    assert torch.isfinite(make()(p, t_ign))


def test_weights_follow_the_prediction_device_and_to(data):
    p, t = data["digits"]
    loss = CrossEntropyLossFlat(weight=torch.linspace(0.5, 2.0, 10, dtype=torch.float64))
    loss.to(torch.float32)  # .to accepts what nn.Module.to accepts
    assert close(loss(p, t), F.cross_entropy(p, t, weight=torch.linspace(0.5, 2.0, 10)))
    assert repr(CrossEntropyLossFlat(label_smoothing=0.1)).startswith("CrossEntropyLossFlat(axis=-1")


@pytest.mark.cuda
def test_losses_on_cuda(data):
    dev = torch.device("cuda")
    p, t = data["digits"]
    w = torch.linspace(0.5, 2.0, 10)
    loss = CrossEntropyLossFlat(weight=w)  # weights on the CPU move to the prediction's device
    assert close(loss(p.to(dev), t.to(dev)).cpu(), F.cross_entropy(p, t, weight=w))
    focal = FocalLossFlat(weight=w)
    assert close(focal(p.to(dev), t.to(dev)).cpu(), focal(p, t))
    with torch.autocast("cuda", dtype=torch.bfloat16):
        x = p.to(dev) @ torch.eye(10, device=dev)
        assert torch.isfinite(CrossEntropyLossFlat()(x, t.to(dev)))
        pr, tr = data["reg"]
        assert torch.isfinite(MSELossFlat()(pr.to(dev) @ torch.ones(1, 1, device=dev), tr.to(dev)))
