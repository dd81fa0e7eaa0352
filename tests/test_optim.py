"""fastai-named optimizers on torch.optim: exact mapping of arguments, each trains, schedules reach them."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import mlp
from torch import nn

from learnkit import DataLoaders, Learner, set_seed
from learnkit.exceptions import ModelError
from learnkit.optim import SGD, Adam, Lamb, Lookahead, RAdam, RMSProp, ranger


def _steps(opt_fn, n=5, seed=0):
    """Weights after ``n`` steps of ``opt_fn(params)`` on a fixed regression problem."""
    torch.manual_seed(seed)
    model = nn.Linear(4, 1)
    x, y = torch.randn(32, 4), torch.randn(32, 1)
    opt = opt_fn(model.parameters())
    for _ in range(n):
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad()
    return [p.detach().clone() for p in model.parameters()]


def test_adam_maps_fastai_arguments_to_adamw_exactly():
    ours = _steps(lambda ps: Adam(ps, lr=0.01, mom=0.8, sqr_mom=0.95, eps=1e-4, wd=0.1))
    ref = _steps(lambda ps: torch.optim.AdamW(ps, lr=0.01, betas=(0.8, 0.95), eps=1e-4, weight_decay=0.1))
    for a, b in zip(ours, ref):
        assert torch.equal(a, b)
    l2 = _steps(lambda ps: Adam(ps, lr=0.01, mom=0.8, sqr_mom=0.95, eps=1e-4, wd=0.1, decouple_wd=False))
    ref_l2 = _steps(lambda ps: torch.optim.Adam(ps, lr=0.01, betas=(0.8, 0.95), eps=1e-4, weight_decay=0.1))
    for a, b in zip(l2, ref_l2):
        assert torch.equal(a, b)
    # the old spellings keep working
    old = _steps(lambda ps: Adam(ps, lr=0.01, betas=(0.8, 0.95), eps=1e-4, weight_decay=0.1))
    for a, b in zip(old, ref):
        assert torch.equal(a, b)


def test_default_opt_func_is_unchanged(wine_tensors):
    train, valid = wine_tensors
    learn = Learner(
        DataLoaders.from_tensors(train, valid, bs=16, device="cpu"), mlp(), loss_func=nn.CrossEntropyLoss()
    )
    learn.create_opt()
    pg = learn.opt.param_groups[0]
    assert type(learn.opt) is torch.optim.AdamW
    assert pg["betas"] == (0.9, 0.99) and pg["eps"] == 1e-5 and pg["weight_decay"] == 0.01
    assert pg["foreach"] is True  # one kernel per step; the exact-equality test above shows the same numbers
    assert Adam([{"params": nn.Linear(2, 2).weight}], foreach=False).param_groups[0]["foreach"] is False


def test_sgd_rmsprop_radam_map_to_torch():
    for ours, ref in [
        (lambda ps: SGD(ps, lr=0.05, mom=0.9), lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9)),
        (
            lambda ps: SGD(ps, lr=0.05, mom=0.9, wd=0.1, decouple_wd=False),
            lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=0.1),
        ),
        (
            lambda ps: RMSProp(ps, lr=0.01, sqr_mom=0.9, mom=0.5),
            lambda ps: torch.optim.RMSprop(ps, lr=0.01, alpha=0.9, momentum=0.5),
        ),
        (
            lambda ps: RAdam(ps, lr=0.01, mom=0.8, sqr_mom=0.95, eps=1e-4, wd=0.1),
            lambda ps: torch.optim.RAdam(
                ps, lr=0.01, betas=(0.8, 0.95), eps=1e-4, weight_decay=0.1, decoupled_weight_decay=True
            ),
        ),
    ]:
        for a, b in zip(_steps(ours), _steps(ref)):
            assert torch.equal(a, b)


def test_sgd_weight_decay_is_decoupled():
    """One step of SGD(wd) is p * (1 - lr*wd) - lr * grad, whatever the momentum buffer does."""
    p = nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = SGD([p], lr=0.1, mom=0.9, wd=0.5)
    p.grad = torch.tensor([0.2, 0.4])
    opt.step()
    torch.testing.assert_close(
        p.detach(), torch.tensor([1.0, -2.0]) * (1 - 0.05) - 0.1 * torch.tensor([0.2, 0.4])
    )
    assert opt.param_groups[0]["weight_decay"] == 0.5  # the group keeps its value for schedules and resume


def test_lamb_first_step_follows_the_trust_ratio():
    p = nn.Parameter(torch.tensor([3.0, 4.0]))  # ||p|| = 5
    opt = Lamb([p], lr=0.1, eps=0.0)
    p.grad = torch.tensor([1.0, -2.0])
    opt.step()
    upd = torch.tensor([1.0, -1.0])  # debiased m / sqrt(v) = sign(grad) on the first step
    torch.testing.assert_close(p.detach(), torch.tensor([3.0, 4.0]) - 0.1 * (5 / upd.norm()) * upd)


def test_lookahead_state_dict_round_trip_continues_identically():
    def make(ps):
        return Lookahead(torch.optim.SGD(ps, lr=0.05, momentum=0.9), k=3, alpha=0.5)

    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    x, y = torch.randn(32, 4), torch.randn(32, 1)
    opt = make(model.parameters())

    def step(m, o):
        nn.functional.mse_loss(m(x), y).backward()
        o.step()
        o.zero_grad()

    for _ in range(4):
        step(model, opt)
    m2 = copy.deepcopy(model)
    o2 = make(m2.parameters())
    o2.load_state_dict(copy.deepcopy(opt.state_dict()))
    assert o2.count == 4
    for _ in range(5):
        step(model, opt)
        step(m2, o2)
    for a, b in zip(model.parameters(), m2.parameters()):
        assert torch.equal(a, b)
    with pytest.raises(ModelError, match="k >= 1"):
        Lookahead(torch.optim.SGD(model.parameters(), lr=0.1), k=0)


@pytest.mark.parametrize("opt_func", [Adam, SGD, RMSProp, RAdam, Lamb, ranger], ids=lambda f: f.__name__)
def test_each_optimizer_trains_under_fit_one_cycle(wine_tensors, opt_func):
    """The loss falls and the 1cycle schedule moves the momentum (beta1 / momentum) of every optimizer."""
    set_seed(0)
    train, valid = wine_tensors
    dls = DataLoaders.from_tensors(train, valid, bs=16, shuffle=True, device="cpu")
    model = mlp()
    learn = Learner(dls, model, loss_func=nn.CrossEntropyLoss(), opt_func=opt_func)
    first = learn.validate()[0]
    lr = {SGD: 0.1, RMSProp: 3e-3, RAdam: 5e-2, ranger: 5e-2, Lamb: 5e-2}.get(opt_func, 1e-2)
    learn.fit_one_cycle(4, lr, quiet=True)
    assert isinstance(learn.opt, torch.optim.Optimizer)
    assert learn.validate()[0] < first / 2
    moms = [m for m in learn.recorder.moms if m is not None]
    assert moms and max(moms) == pytest.approx(0.95) and min(moms) < 0.9


def _bn_model():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(13, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    with torch.no_grad():
        for p in m.parameters():  # no zeros (BatchNorm's bias starts at 0, where decay cannot show)
            p.copy_(torch.rand_like(p) + 0.5)
    return m


def _zero_grad_loss(pred, y):
    return (pred * 0).sum()  # every gradient exactly 0: only weight decay moves the weights


@pytest.mark.parametrize("wd_bn_bias", [False, True])
def test_wd_bn_bias_false_keeps_norm_layers_and_biases_free_of_weight_decay(wine_tensors, wd_bn_bias):
    train, valid = wine_tensors
    model = _bn_model()
    learn = Learner(
        DataLoaders.from_tensors(train, valid, bs=16, device="cpu"),
        model,
        loss_func=_zero_grad_loss,
        wd=0.5,
        wd_bn_bias=wd_bn_bias,
        splitter=lambda m: [m[:2], m[2:]],
    )
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    learn.fit_one_cycle(1, lr_max=slice(1e-3, 1e-2), wd=0.5)
    for name, p in model.named_parameters():
        exempt = name.endswith("bias") or name.startswith("1.")
        if exempt and not wd_bn_bias:
            assert torch.equal(p, before[name]), name  # no decay at all
        else:
            assert (p.abs() < before[name].abs()).any() and (p.abs() <= before[name].abs()).all(), name
    # the per-splitter-group learning rates still line up with the splitter's groups
    lrs = {(pg["group"] if "group" in pg else i): pg["lr"] for i, pg in enumerate(learn.opt.param_groups)}
    assert len(lrs) == 2 and lrs[0] < lrs[1]
    if not wd_bn_bias:
        assert len(learn.opt.param_groups) == 4
        assert [pg["weight_decay"] for pg in learn.opt.param_groups] == [0.5, 0.0, 0.5, 0.0]
    learn.freeze()
    assert not any(p.requires_grad for p in model[0].parameters())
