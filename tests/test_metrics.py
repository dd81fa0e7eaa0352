"""Metrics against scikit-learn / hand computations on real tables (wine, breast cancer, digits, diabetes)."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn import datasets
from sklearn import metrics as skm

from learnkit.exceptions import ModelError
from learnkit.metrics import (
    AccumMetric,
    AvgMetric,
    BalancedAccuracy,
    ExplainedVariance,
    F1Score,
    FBeta,
    MatthewsCorrCoef,
    Metric,
    Perplexity,
    Precision,
    R2Score,
    Recall,
    RocAuc,
    RocAucMulti,
    accuracy,
    accuracy_multi,
    as_metric,
    error_rate,
    exp_rmspe,
    explained_variance,
    f1_score,
    mae,
    matthews_corrcoef,
    mse,
    msle,
    perplexity,
    r2_score,
    rmse,
    roc_auc,
    top_k_accuracy,
)


# ----------------------------------------------------------------------------------------------- real data
def _linear_fit(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Least-squares linear model on standardised features (with bias): real, imperfect predictions."""
    x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    x = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], 1)
    w = torch.linalg.lstsq(x, y).solution
    return x @ w


def _noisy(t: torch.Tensor, scale: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return t + scale * torch.randn(t.shape, generator=g, dtype=t.dtype)


@pytest.fixture(scope="module")
def data():
    d = {}
    wine = datasets.load_wine()
    x, y = torch.tensor(wine.data, dtype=torch.float64), torch.tensor(wine.target)
    d["wine"] = (_noisy(_linear_fit(x, F.one_hot(y).double() * 4 - 2), 2.0, 0).float(), y)
    bc = datasets.load_breast_cancer()
    x, y = torch.tensor(bc.data, dtype=torch.float64), torch.tensor(bc.target)
    d["bc2"] = (_noisy(_linear_fit(x, F.one_hot(y).double() * 4 - 2), 1.5, 1).float(), y)
    d["bc1"] = (_noisy(_linear_fit(x, y.double() * 8 - 4), 2.0, 2).float()[:, None], y)
    dig = datasets.load_digits()
    x, y = torch.tensor(dig.data, dtype=torch.float64), torch.tensor(dig.target)
    d["digits"] = (_noisy(_linear_fit(x, F.one_hot(y).double() * 4 - 2), 1.0, 3).float(), y)
    multi = torch.stack([y % 2 == 0, y > 4, (y == 2) | (y == 3) | (y == 5) | (y == 7)], 1).long()
    d["multi"] = (_noisy(_linear_fit(x, multi.double() * 4 - 2), 1.0, 4).float(), multi)
    diab = datasets.load_diabetes()
    x, t = torch.tensor(diab.data, dtype=torch.float64), torch.tensor(diab.target, dtype=torch.float64)
    d["diab"] = (_linear_fit(x, t[:, None]).float(), t.float())  # pred (N, 1), targ (N,)
    # a bigram "language model" of digit images read as token sequences (17 grey levels, 64 tokens)
    toks = torch.tensor(dig.images.reshape(len(dig.images), -1), dtype=torch.long)[:200]
    counts = torch.ones(17, 17)
    counts.index_put_(
        (toks[:, :-1].reshape(-1), toks[:, 1:].reshape(-1)), torch.ones(toks[:, 1:].numel()), accumulate=True
    )
    logits = counts.log()[toks[:, :-1]]  # (B, T, V)
    targ = toks[:, 1:].clone()
    targ[::3, -5:] = -100  # padding at the end of every third sequence
    d["lm"] = (logits, targ)
    return d


def feed(m, pred, targ, bs):
    m = as_metric(m)
    m.reset()
    for i in range(0, len(pred), bs):
        m.accumulate(pred[i : i + bs], targ[i : i + bs])
    return m


def _np(t):
    return t.numpy()


def _ref_top2(p, t):
    return skm.top_k_accuracy_score(_np(t), _np(p), k=2, labels=list(range(p.shape[1])))


def _ref_multi(p, t):
    return float(((torch.sigmoid(p) > 0.5) == t.bool()).float().mean())


def _ref_exp_rmspe(p, t):
    p, t = np.exp(_np(p).reshape(-1).astype(np.float64)), np.exp(_np(t).astype(np.float64))
    return float(np.sqrt(np.mean(((t - p) / t) ** 2)))


def _ref_ppl(p, t):
    return math.exp(
        F.cross_entropy(p.reshape(-1, p.shape[-1]).double(), t.reshape(-1), ignore_index=-100).item()
    )


# (metric as given to metrics=[...], data set, reference on the whole set)
CASES = {
    "accuracy": (accuracy, "wine", lambda p, t: skm.accuracy_score(_np(t), _np(p.argmax(1)))),
    "error_rate": (error_rate, "wine", lambda p, t: 1 - skm.accuracy_score(_np(t), _np(p.argmax(1)))),
    "top_k": (functools.partial(top_k_accuracy, k=2), "digits", _ref_top2),
    "accuracy_multi": (accuracy_multi, "multi", _ref_multi),
    "mse": (mse, "diab", lambda p, t: skm.mean_squared_error(_np(t), _np(p[:, 0]))),
    "mae": (mae, "diab", lambda p, t: skm.mean_absolute_error(_np(t), _np(p[:, 0]))),
    "rmse": (rmse, "diab", lambda p, t: math.sqrt(skm.mean_squared_error(_np(t), _np(p[:, 0])))),
    "msle": (msle, "diab", lambda p, t: skm.mean_squared_log_error(_np(t), _np(p[:, 0].clamp(min=0)))),
    "f1_binary": (F1Score(), "bc2", lambda p, t: skm.f1_score(_np(t), _np(p.argmax(1)))),
    "f1_macro": (
        F1Score(average="macro"),
        "wine",
        lambda p, t: skm.f1_score(_np(t), _np(p.argmax(1)), average="macro"),
    ),
    "f1_micro": (
        F1Score(average="micro"),
        "digits",
        lambda p, t: skm.f1_score(_np(t), _np(p.argmax(1)), average="micro"),
    ),
    "f1_weighted": (
        functools.partial(f1_score, average="weighted"),
        "wine",
        lambda p, t: skm.f1_score(_np(t), _np(p.argmax(1)), average="weighted"),
    ),
    "fbeta": (FBeta(beta=2.0), "bc2", lambda p, t: skm.fbeta_score(_np(t), _np(p.argmax(1)), beta=2.0)),
    "precision": (
        Precision(average="macro"),
        "wine",
        lambda p, t: skm.precision_score(_np(t), _np(p.argmax(1)), average="macro"),
    ),
    "recall": (Recall(), "bc2", lambda p, t: skm.recall_score(_np(t), _np(p.argmax(1)))),
    "recall_1logit": (Recall(), "bc1", lambda p, t: skm.recall_score(_np(t), _np((p[:, 0] > 0).long()))),
    "roc_auc_2": (RocAuc(), "bc2", lambda p, t: skm.roc_auc_score(_np(t), _np(p.softmax(1)[:, 1]))),
    "roc_auc_1": (roc_auc, "bc1", lambda p, t: skm.roc_auc_score(_np(t), _np(p[:, 0].sigmoid()))),
    "roc_auc_ovr": (
        RocAuc,
        "wine",
        lambda p, t: skm.roc_auc_score(_np(t), _np(p.softmax(1)), multi_class="ovr"),
    ),
    "roc_auc_multi": (RocAucMulti(), "multi", lambda p, t: skm.roc_auc_score(_np(t), _np(p.sigmoid()))),
    "balanced_accuracy": (
        BalancedAccuracy(),
        "wine",
        lambda p, t: skm.balanced_accuracy_score(_np(t), _np(p.argmax(1))),
    ),
    "mcc": (matthews_corrcoef, "digits", lambda p, t: skm.matthews_corrcoef(_np(t), _np(p.argmax(1)))),
    "r2": (r2_score, "diab", lambda p, t: skm.r2_score(_np(t), _np(p[:, 0]))),
    "explained_variance": (
        ExplainedVariance,
        "diab",
        lambda p, t: skm.explained_variance_score(_np(t), _np(p[:, 0])),
    ),
    "perplexity": (perplexity, "lm", _ref_ppl),
    "exp_rmspe": (exp_rmspe, "diab", _ref_exp_rmspe),
}


def _data_for(name, data):
    p, t = data[CASES[name][1]]
    if name == "msle":
        p = p.clamp(min=0)
    if name == "exp_rmspe":
        p, t = p.clamp(min=1).log(), t.log()
    return p, t


def _fresh(m):
    """A new metric like ``m`` (CASES hold some instances, which carry state)."""
    if isinstance(m, Metric):
        import copy

        m = copy.deepcopy(m)
        m.reset()
        return m
    return as_metric(m)


@pytest.mark.parametrize("name", list(CASES))
def test_metric_matches_reference_whole_and_batched(name, data):
    m, _, ref = CASES[name]
    p, t = _data_for(name, data)
    expected = ref(p, t)
    whole = feed(_fresh(m), p, t, len(p)).value
    batched = feed(_fresh(m), p, t, 37).value  # uneven last batch
    assert 0 < abs(expected) and expected == pytest.approx(whole, rel=1e-5, abs=1e-6)
    assert batched == pytest.approx(whole, rel=1e-5, abs=1e-6)


def _combine(states):
    """What the distributed engineer does: all_reduce 'sum' tensors, all_gather + cat 'cat' tensors."""
    out = {}
    for k, (_, op) in states[0].items():
        assert all(s[k][1] == op for s in states) and op in ("sum", "cat")
        ts = [s[k][0] for s in states]
        out[k] = torch.stack(ts).sum(0) if op == "sum" else torch.cat([t for t in ts if t.numel()] or ts)
    return out


@pytest.mark.parametrize("name", list(CASES))
def test_dist_state_round_trip_equals_single_process(name, data):
    m, _, _ = CASES[name]
    p, t = _data_for(name, data)
    single = feed(_fresh(m), p, t, 50).value
    cut = len(p) // 2 + 7
    ranks = [feed(_fresh(m), p[:cut], t[:cut], 50), feed(_fresh(m), p[cut:], t[cut:], 50)]
    combined = _combine([r.dist_state() for r in ranks])
    for r in ranks:
        assert all(isinstance(v, torch.Tensor) for v in combined.values())
        r.load_dist_state(combined)
        assert r.value == pytest.approx(single, rel=1e-5, abs=1e-7)


@pytest.mark.parametrize("name", ["accuracy", "rmse", "f1_macro", "perplexity", "roc_auc_multi"])
def test_dist_state_with_an_idle_rank(name, data):
    m, _, _ = CASES[name]
    p, t = _data_for(name, data)
    single = feed(_fresh(m), p, t, 64).value
    busy, idle = feed(_fresh(m), p, t, 64), _fresh(m)
    idle.reset()
    assert idle.value is None
    combined = _combine([busy.dist_state(), idle.dist_state()])
    idle.load_dist_state(combined)
    assert idle.value == pytest.approx(single, rel=1e-6)


@pytest.mark.parametrize("name", list(CASES))
def test_value_is_none_before_any_batch_and_after_reset(name, data):
    m = _fresh(CASES[name][0])
    m.reset()
    assert m.value is None
    p, t = _data_for(name, data)
    m.accumulate(p[::4][:40], t[::4][:40])
    assert isinstance(m.value, float)
    m.reset()
    assert m.value is None


def test_rmse_in_metrics_is_root_of_epoch_mse_not_mean_of_batch_roots(data):
    p, t = data["diab"]
    m = feed(rmse, p, t, 37)
    assert isinstance(m, AvgMetric) and m.name == "rmse"
    exact = math.sqrt(skm.mean_squared_error(_np(t), _np(p[:, 0])))
    batch_roots = [rmse(p[i : i + 37], t[i : i + 37]).item() for i in range(0, len(p), 37)]
    assert m.value == pytest.approx(exact, rel=1e-6)
    assert abs(np.mean(batch_roots) - exact) > 1e-3  # what a naive average would report


def test_exp_rmspe_matches_hand_computation(data):
    p, t = data["diab"]
    lp, lt = p.clamp(min=1).log(), t.log()
    expected = _ref_exp_rmspe(lp, lt)
    assert exp_rmspe(lp, lt).item() == pytest.approx(expected, rel=1e-5)
    assert feed(exp_rmspe, lp, lt, 37).value == pytest.approx(expected, rel=1e-5)


def test_plain_function_use_on_tensors(data):
    p, t = data["wine"]
    assert accuracy(p, t).item() == pytest.approx(skm.accuracy_score(_np(t), _np(p.argmax(1))))
    assert isinstance(accuracy(p, t), torch.Tensor)
    p2, t2 = data["diab"]
    assert r2_score(p2, t2) == pytest.approx(skm.r2_score(_np(t2), _np(p2[:, 0])), rel=1e-5)
    assert explained_variance(p2, t2) == pytest.approx(
        skm.explained_variance_score(_np(t2), _np(p2[:, 0])), rel=1e-5
    )
    assert f1_score(p, t, average="macro") == pytest.approx(
        skm.f1_score(_np(t), _np(p.argmax(1)), average="macro")
    )
    pl, tl = data["lm"]
    assert perplexity(pl, tl) == pytest.approx(_ref_ppl(pl, tl), rel=1e-5)


def test_accuracy_on_sequences_and_channels_first(data):
    p, t = data["lm"]
    keep = t != -100
    t = torch.where(keep, t, torch.zeros_like(t))
    flat = (p.argmax(-1) == t).float().mean().item()
    assert accuracy(p, t).item() == pytest.approx(flat)  # (B, T, V) with (B, T)
    assert top_k_accuracy(p, t, k=3).item() == pytest.approx(
        skm.top_k_accuracy_score(_np(t.reshape(-1)), _np(p.reshape(-1, 17)), k=3, labels=list(range(17)))
    )
    # segmentation-style (N, C, H, W) with (N, H, W): the class axis (1) is found
    imgs = torch.tensor(datasets.load_digits().images[:20])
    targ = (imgs > 4).long() + (imgs > 11).long()  # 3 classes per pixel
    logits = _noisy(F.one_hot(targ, 3).permute(0, 3, 1, 2).float() * 2, 1.5, 5)
    expected = (logits.argmax(1) == targ).float().mean().item()
    assert accuracy(logits, targ).item() == pytest.approx(expected)
    assert accuracy(logits, targ, axis=1).item() == pytest.approx(expected)


def test_single_logit_and_decoded_predictions(data):
    p, t = data["bc1"]
    assert accuracy(p, t).item() == pytest.approx(((p[:, 0] > 0).long() == t).float().mean().item())
    dec = p[:, 0].gt(0).long()
    assert accuracy(dec, t).item() == pytest.approx(accuracy(p, t).item())
    assert accuracy(p, t.float()).item() == pytest.approx(accuracy(p, t).item())  # BCE-style float targets


def test_bf16_and_half_predictions_are_accumulated(data):
    p, t = data["wine"]
    m = feed(F1Score(average="macro"), p.bfloat16(), t, 50)
    assert m.value == pytest.approx(
        skm.f1_score(_np(t), _np(p.bfloat16().float().argmax(1)), average="macro")
    )
    p2, t2 = data["diab"]
    assert feed(R2Score(), p2.half(), t2, 50).value == pytest.approx(
        skm.r2_score(_np(t2), _np(p2[:, 0].half().float())), rel=1e-4
    )


def test_accum_metric_options(data):
    p, t = data["wine"]
    kappa = feed(AccumMetric(skm.cohen_kappa_score, dim_argmax=-1), p, t, 40)
    assert kappa.name == "cohen_kappa_score"
    assert kappa.value == pytest.approx(skm.cohen_kappa_score(_np(t), _np(p.argmax(1))))
    # multi-label through activation + thresh, without flattening
    pm, tm = data["multi"]
    ham = feed(AccumMetric(skm.hamming_loss, activation="sigmoid", thresh=0.5, flatten=False), pm, tm, 40)
    assert ham.value == pytest.approx(skm.hamming_loss(_np(tm), _np(torch.sigmoid(pm) >= 0.5)))
    # softmax activation, tensors (to_np=False), (preds, targs) order (invert_args=True)
    seen = {}

    def nll(probs, targs):
        seen["types"] = (type(probs), type(targs))
        return -probs.gather(1, targs[:, None]).log().mean()

    m = feed(AccumMetric(nll, activation="softmax", flatten=False, to_np=False, invert_args=True), p, t, 40)
    assert m.value == pytest.approx(F.cross_entropy(p, t).item(), rel=1e-5)
    assert seen["types"] == (torch.Tensor, torch.Tensor)


def test_names():
    assert F1Score().name == "f1_score" and R2Score().name == "r2_score"
    assert RocAuc().name == "roc_auc" and RocAucMulti().name == "roc_auc_multi"
    assert MatthewsCorrCoef().name == "matthews_corrcoef" and BalancedAccuracy().name == "balanced_accuracy"
    assert Perplexity().name == "perplexity" and ExplainedVariance().name == "explained_variance"
    assert as_metric(functools.partial(accuracy, axis=1)).name == "accuracy"
    assert as_metric(functools.partial(top_k_accuracy, k=3)).name == "top_k_accuracy"
    assert F1Score(average="macro", name="f1_macro").name == "f1_macro"
    m = as_metric(mae)
    m.name = "mean_abs"
    assert m.name == "mean_abs"


def test_as_metric_dispatch(data):
    inst = F1Score()
    assert as_metric(inst) is inst
    assert type(as_metric(R2Score)) is R2Score
    assert type(as_metric(r2_score)) is R2Score and type(as_metric(perplexity)) is Perplexity
    assert type(as_metric(accuracy)) is AvgMetric
    m = as_metric(functools.partial(f1_score, average="macro"))
    assert type(m) is F1Score and m.kwargs["average"] == "macro"
    p, t = data["wine"]
    assert feed(m, p, t, 30).value == pytest.approx(skm.f1_score(_np(t), _np(p.argmax(1)), average="macro"))
    assert type(as_metric("accuracy")) is AvgMetric and type(as_metric("F1Score")) is F1Score
    assert as_metric(lambda p, t: (p.argmax(1) == t).float().mean()).name == "<lambda>"


def test_as_metric_errors_say_how_to_fix():
    with pytest.raises(ModelError, match="Did you mean 'accuracy'") as e:
        as_metric("acuracy")
    assert "Fix" in str(e.value)
    with pytest.raises(ModelError, match="AccumMetric") as e:
        as_metric(skm.f1_score)
    assert "Fix" in str(e.value)
    for bad in (3, dict, None):
        with pytest.raises(ModelError, match="Fix"):
            as_metric(bad)
    with pytest.raises(ModelError, match="Fix"):
        AccumMetric(skm.r2_score, activation="softmx")


def test_update_compute_objects_are_wrapped(data):
    class RunningMax:  # the torchmetrics protocol, without torchmetrics
        def __init__(self):
            self.reset()

        def reset(self):
            self.m = None

        def update(self, pred, targ):
            v = (pred[:, 0] - targ).abs().max()
            self.m = v if self.m is None else torch.maximum(self.m, v)

        def compute(self):
            return self.m

    p, t = data["diab"]
    m = feed(RunningMax(), p, t, 50)
    assert m.name == "running_max"
    assert m.value == pytest.approx((p[:, 0] - t).abs().max().item())


def test_shape_errors_show_both_shapes_and_fix(data):
    p, t = data["wine"]
    cases = [
        (accuracy, p[:10], t[:12], "(10, 3)", "(12,)"),
        (error_rate, p[:10], t[:20].reshape(10, 2), "(10, 3)", "(10, 2)"),
        (top_k_accuracy, p[:10], t[:10, None], "(10, 3)", "(10, 1)"),
        (accuracy_multi, p[:10], t[:10], "(10, 3)", "(10,)"),
        (mse, p[:10], t[:10].float(), "(10, 3)", "(10,)"),
        (mae, p[:10, :1], t[:11].float(), "(10, 1)", "(11,)"),
        (perplexity, p[:10], t[:12], "(10, 3)", "(12,)"),
        (r2_score, p[:10], t[:10].float(), "(10, 3)", "(10,)"),
        (roc_auc, p[:10], t[:12], "(10, 3)", "(12,)"),
    ]
    for f, pred, targ, ps, ts in cases:
        with pytest.raises(ModelError) as e:
            f(pred, targ)
        msg = str(e.value)
        assert ps in msg and ts in msg and "Fix" in msg, (f, msg)
    with pytest.raises(ModelError) as e:
        mse(p[:10], t[:10].float())
    assert "outputs 3 values per item but the target has 1" in str(e.value) and "n_out=1" in str(e.value)
    with pytest.raises(ModelError, match="k=3 or less"):
        top_k_accuracy(p, t, k=5)
    with pytest.raises(ModelError, match="one number per batch"):
        feed(AvgMetric(lambda p, t: p), p, t, 10)


@pytest.mark.cuda
def test_metrics_on_cuda(data):
    dev = torch.device("cuda")
    p, t = data["wine"]
    m = feed(accuracy, p.to(dev), t.to(dev), 50)
    assert m.total.device.type == "cuda"
    assert all(v.device.type == "cuda" for v, _ in m.dist_state().values())
    assert m.value == pytest.approx(accuracy(p, t).item())
    f1 = feed(F1Score(average="macro"), p.to(dev), t.to(dev), 50)
    assert all(v.device.type == "cpu" for v, _ in f1.dist_state().values())
    assert f1.value == pytest.approx(f1_score(p, t, average="macro"))
    pl, tl = data["lm"]
    ppl = feed(Perplexity(), pl.to(dev), tl.to(dev), 64)
    assert ppl.value == pytest.approx(_ref_ppl(pl, tl), rel=1e-5)
