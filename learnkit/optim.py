"""Optimizer factories, parameter groups and discriminative learning rates.

Any ``torch.optim`` optimizer class (or a function ``f(param_groups, lr=...) -> Optimizer``) works as
``opt_func``. learnkit's defaults use decoupled weight decay.

fastai's optimizers by their names and arguments: :func:`Adam`, :func:`SGD`, :func:`RMSProp`, :func:`RAdam`,
:class:`Lamb`, :class:`Lookahead`, :func:`ranger` (``mom``, ``sqr_mom``, ``eps``, ``wd``, ``decouple_wd``).
Each returns a ``torch.optim.Optimizer`` (torch's own class where torch has the algorithm).

>>> import torch
>>> opt = Adam([torch.nn.Parameter(torch.zeros(2))], lr=1e-3, mom=0.9, sqr_mom=0.99, eps=1e-5, wd=0.01)
>>> isinstance(opt, torch.optim.Optimizer)
True
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from .exceptions import ModelError

__all__ = [
    "Adam",
    "SGD",
    "RMSProp",
    "RAdam",
    "Lamb",
    "Lookahead",
    "ranger",
    "SGDW",
    "RMSpropW",
    "make_opt",
    "no_decay_params",
    "n_groups",
    "param_groups",
    "trainable_params",
    "lr_spread",
    "set_hyper",
    "get_mom",
    "set_mom",
    "params",
]


# ----------------------------------------------------------------------------------------------- optimizers
# fastai's names and arguments (mom = beta1 / momentum, sqr_mom = beta2 / RMSProp's alpha, wd = weight decay,
# decoupled by default), built on torch.optim so every result is a torch.optim.Optimizer whose param groups
# hold torch's keys ("betas" or "momentum", "weight_decay"): the 1cycle schedule sets them directly.


def _betas(mom, sqr_mom, betas):
    if betas is not None:  # torch's spelling (and learnkit's old Adam(params, lr, betas, ...))
        return float(betas[0]), float(betas[1])
    if isinstance(mom, (tuple, list)):
        return float(mom[0]), float(mom[1])
    return float(mom), float(sqr_mom)


class _DecoupledWD:
    """Mixin for torch optimizers whose ``weight_decay`` is an L2 term: applies it as true weight decay
    (``p *= 1 - lr * wd`` before the step, as AdamW does) and steps with the L2 term off."""

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        saved = [g["weight_decay"] for g in self.param_groups]
        for g, wd in zip(self.param_groups, saved):
            if wd:
                for p in g["params"]:
                    if p.grad is not None:
                        p.mul_(1 - g["lr"] * wd)
            g["weight_decay"] = 0.0
        try:
            super().step()
        finally:
            for g, wd in zip(self.param_groups, saved):
                g["weight_decay"] = wd
        return loss


class SGDW(_DecoupledWD, torch.optim.SGD):
    """``torch.optim.SGD`` with decoupled weight decay (what :func:`SGD` returns by default).

    >>> opt = SGDW([torch.nn.Parameter(torch.ones(2))], lr=0.1, weight_decay=0.1)
    """


class RMSpropW(_DecoupledWD, torch.optim.RMSprop):
    """``torch.optim.RMSprop`` with decoupled weight decay (what :func:`RMSProp` returns by default).

    >>> opt = RMSpropW([torch.nn.Parameter(torch.ones(2))], lr=0.01, weight_decay=0.1)
    """


def Adam(
    params,
    lr: float = 1e-3,
    mom: float = 0.9,
    sqr_mom: float = 0.99,
    eps: float = 1e-5,
    wd: float = 0.01,
    decouple_wd: bool = True,
    *,
    betas=None,
    weight_decay: float | None = None,
    **kwargs,
):
    """Adam with fastai's names and defaults: ``torch.optim.AdamW(betas=(mom, sqr_mom), eps=eps,
    weight_decay=wd)``, or ``torch.optim.Adam`` (L2 penalty) with ``decouple_wd=False``.

    torch's ``betas=`` / ``weight_decay=`` spellings work too (``make_opt`` passes ``weight_decay``). The step uses
    torch's ``foreach`` kernels (one call for all parameters instead of a Python loop over them; the same numbers)
    wherever they apply; ``foreach=False`` turns that off.

    >>> import torch
    >>> opt = Adam([torch.nn.Parameter(torch.zeros(3))], lr=1e-3, mom=0.9, sqr_mom=0.99, wd=0.01)
    >>> type(opt).__name__, opt.param_groups[0]["betas"]
    ('AdamW', (0.9, 0.99))
    """
    wd = wd if weight_decay is None else weight_decay
    cls = torch.optim.AdamW if decouple_wd else torch.optim.Adam
    params = list(params)
    if "foreach" not in kwargs and not kwargs.get("fused") and _foreach_ok(params):
        kwargs["foreach"] = (
            True  # one kernel per step for all tensors (torch picks it only on CUDA); same numbers
        )
    return cls(params, lr=lr, betas=_betas(mom, sqr_mom, betas), eps=eps, weight_decay=wd, **kwargs)


def _foreach_ok(params) -> bool:
    """Whether torch's ``foreach`` kernels can serve these parameters (dense, on CPU or CUDA)."""
    ts = []
    for p in params:
        g = p["params"] if isinstance(p, dict) else p
        ts.extend([g] if isinstance(g, torch.Tensor) else list(g))
    return bool(ts) and all(
        isinstance(t, torch.Tensor) and t.device.type in ("cpu", "cuda") and t.layout == torch.strided
        for t in ts
    )


def SGD(
    params,
    lr: float = 1e-2,
    mom: float = 0.0,
    wd: float = 0.0,
    decouple_wd: bool = True,
    *,
    momentum: float | None = None,
    weight_decay: float | None = None,
    **kwargs,
):
    """SGD with fastai's names and defaults (``mom=0``, ``wd=0``): ``torch.optim.SGD(momentum=mom)`` with
    decoupled weight decay (``decouple_wd=False``: torch's L2 ``weight_decay``).

    >>> import torch
    >>> opt = SGD([torch.nn.Parameter(torch.zeros(3))], lr=0.1, mom=0.9)
    >>> opt.param_groups[0]["momentum"]
    0.9
    """
    mom = mom if momentum is None else momentum
    wd = wd if weight_decay is None else weight_decay
    cls = SGDW if decouple_wd and wd else torch.optim.SGD
    return cls(params, lr=lr, momentum=mom, weight_decay=wd, **kwargs)


def RMSProp(
    params,
    lr: float = 1e-2,
    sqr_mom: float = 0.99,
    mom: float = 0.0,
    eps: float = 1e-8,
    wd: float = 0.0,
    decouple_wd: bool = True,
    *,
    alpha: float | None = None,
    momentum: float | None = None,
    weight_decay: float | None = None,
    **kwargs,
):
    """RMSProp with fastai's names: ``torch.optim.RMSprop(alpha=sqr_mom, momentum=mom, eps=eps)`` with
    decoupled weight decay (``decouple_wd=False``: L2). torch's ``alpha=`` / ``momentum=`` work too.

    >>> import torch
    >>> opt = RMSProp([torch.nn.Parameter(torch.zeros(3))], lr=1e-2, sqr_mom=0.9)
    >>> opt.param_groups[0]["alpha"]
    0.9
    """
    sqr_mom = sqr_mom if alpha is None else alpha
    mom = mom if momentum is None else momentum
    wd = wd if weight_decay is None else weight_decay
    cls = RMSpropW if decouple_wd and wd else torch.optim.RMSprop
    return cls(params, lr=lr, alpha=sqr_mom, eps=eps, momentum=mom, weight_decay=wd, **kwargs)


def RAdam(
    params,
    lr: float = 1e-3,
    mom: float = 0.9,
    sqr_mom: float = 0.99,
    eps: float = 1e-5,
    wd: float = 0.0,
    beta: float = 0.0,
    decouple_wd: bool = True,
    *,
    betas=None,
    weight_decay: float | None = None,
    **kwargs,
):
    """Rectified Adam with fastai's names: ``torch.optim.RAdam(betas=(mom, sqr_mom), eps=eps, weight_decay=wd,
    decoupled_weight_decay=decouple_wd)``. fastai's ``beta`` (a smoothing of the step size) is not supported
    beyond its default 0.

    >>> import torch
    >>> opt = RAdam([torch.nn.Parameter(torch.zeros(3))], lr=1e-3)
    >>> type(opt).__name__
    'RAdam'
    """
    if beta:
        raise ModelError(
            f"Expected beta=0 (fastai's step-size smoothing is not implemented). Received: beta={beta}. "
            "Fix: RAdam(..., beta=0.)."
        )
    wd = wd if weight_decay is None else weight_decay
    return torch.optim.RAdam(
        params,
        lr=lr,
        betas=_betas(mom, sqr_mom, betas),
        eps=eps,
        weight_decay=wd,
        decoupled_weight_decay=decouple_wd,
        **kwargs,
    )


class Lamb(torch.optim.Optimizer):
    """LAMB (You et al., 2019): Adam's debiased step scaled per tensor by the trust ratio
    ``||p|| / ||step||`` (capped at 10), for large batches. fastai's arguments; the param groups hold torch's
    keys (``betas``, ``eps``, ``weight_decay``), so the 1cycle schedule moves beta1 as for Adam.

    With ``decouple_wd`` (default) weight decay shrinks the weights directly (``p *= 1 - lr * wd``); otherwise
    ``wd * p`` is added to the step before the trust ratio, as in the paper.

    >>> import torch
    >>> p = torch.nn.Parameter(torch.ones(3)); opt = Lamb([p], lr=0.1)
    >>> p.grad = torch.ones(3); opt.step(); bool((p < 1).all())
    True
    """

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        mom: float = 0.9,
        sqr_mom: float = 0.99,
        eps: float = 1e-5,
        wd: float = 0.0,
        decouple_wd: bool = True,
        *,
        betas=None,
        weight_decay: float | None = None,
    ):
        b1, b2 = _betas(mom, sqr_mom, betas)
        wd = wd if weight_decay is None else weight_decay
        if not (lr >= 0 and 0 <= b1 < 1 and 0 <= b2 < 1 and eps >= 0 and wd >= 0):
            raise ModelError(
                f"Expected lr >= 0, 0 <= mom < 1, 0 <= sqr_mom < 1, eps >= 0, wd >= 0. Received: "
                f"lr={lr}, mom={b1}, sqr_mom={b2}, eps={eps}, wd={wd}."
            )
        super().__init__(
            params, dict(lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd, decouple_wd=decouple_wd)
        )

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for g in self.param_groups:
            (b1, b2), lr, eps, wd = g["betas"], g["lr"], g["eps"], g["weight_decay"]
            for p in g["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                st = self.state[p]
                if not st:
                    st["step"] = torch.zeros((), dtype=torch.float32)
                    st["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    st["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                st["step"] += 1
                t = float(st["step"])
                m, v = st["exp_avg"], st["exp_avg_sq"]
                m.lerp_(grad, 1 - b1)
                v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
                upd = (m / (1 - b1**t)) / ((v / (1 - b2**t)).sqrt() + eps)
                if wd and g["decouple_wd"]:
                    p.mul_(1 - lr * wd)
                elif wd:
                    upd.add_(p, alpha=wd)
                w_norm, u_norm = p.norm(), upd.norm()
                trust = torch.where(
                    (w_norm > 0) & (u_norm > 0), (w_norm / u_norm).clamp(max=10.0), torch.ones_like(w_norm)
                )
                p.add_(upd * trust, alpha=-lr)
        return loss


class Lookahead(torch.optim.Optimizer):
    """Lookahead (Zhang et al., 2019) around any torch optimizer: every ``k`` steps the weights move a
    fraction ``alpha`` of the way from the slow weights to the fast ones, and both become that point.

    ``param_groups`` and ``state`` are the inner optimizer's own, so schedules (lr, momentum/betas) and
    ``learn.opt.param_groups`` work unchanged; :meth:`state_dict` adds the slow weights and the step count.

    >>> import torch
    >>> p = torch.nn.Parameter(torch.zeros(2))
    >>> opt = Lookahead(torch.optim.SGD([p], lr=0.1), k=2, alpha=0.5)
    >>> for _ in range(2):
    ...     p.grad = -torch.ones(2); opt.step()
    >>> [round(v, 4) for v in p.tolist()]  # two fast steps to 0.2, then halfway back to the slow weights (0)
    [0.1, 0.1]
    """

    def __init__(self, opt: torch.optim.Optimizer, k: int = 6, alpha: float = 0.5):
        if not isinstance(opt, torch.optim.Optimizer):
            raise ModelError(
                f"Expected a torch.optim.Optimizer to wrap. Received: {type(opt).__name__}. Fix: "
                "Lookahead(torch.optim.AdamW(params), k=6, alpha=0.5), or opt_func=ranger."
            )
        if isinstance(k, bool) or not isinstance(k, int) or k < 1 or not 0 < alpha <= 1:
            raise ModelError(
                f"Expected an integer k >= 1 and 0 < alpha <= 1. Received: k={k!r}, alpha={alpha!r}. "
                "Fix: Lookahead(opt, k=6, alpha=0.5)."
            )
        super().__init__([p for g in opt.param_groups for p in g["params"]], dict(opt.defaults))
        self.opt, self.k, self.alpha = opt, k, alpha
        self.param_groups, self.state = opt.param_groups, opt.state  # one set of groups: schedules reach both
        self.count = 0
        self.slow = [p.detach().clone() for g in opt.param_groups for p in g["params"]]

    def _params(self) -> list:
        return [p for g in self.param_groups for p in g["params"]]

    @torch.no_grad()
    def step(self, closure=None):
        loss = self.opt.step(closure)
        self.count += 1
        if self.count % self.k == 0:
            for p, s in zip(self._params(), self.slow):
                s.add_(p - s, alpha=self.alpha)
                p.copy_(s)
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.opt.zero_grad(set_to_none=set_to_none)

    def add_param_group(self, param_group: dict) -> None:
        if not hasattr(self, "opt"):  # during torch's __init__: the groups are the inner optimizer's
            return super().add_param_group(param_group)
        self.opt.add_param_group(param_group)
        self.slow += [p.detach().clone() for p in self.param_groups[-1]["params"]]

    def state_dict(self) -> dict:
        """The inner optimizer's state dict plus ``'lookahead'``: the step count and the slow weights."""
        d = self.opt.state_dict()
        d["lookahead"] = {
            "count": self.count,
            "k": self.k,
            "alpha": self.alpha,
            "slow": [s.clone() for s in self.slow],
        }
        return d

    def load_state_dict(self, state_dict: dict) -> None:
        d = dict(state_dict)
        la = d.pop("lookahead", None)
        self.opt.load_state_dict(d)
        self.param_groups, self.state = self.opt.param_groups, self.opt.state
        if la is not None:
            if len(la["slow"]) != len(self.slow):
                raise ModelError(
                    f"Expected slow weights for {len(self.slow)} parameters. Received: "
                    f"{len(la['slow'])}. Fix: load a state dict of the same model and optimizer."
                )
            self.count = int(la["count"])
            for s, v in zip(self.slow, la["slow"]):
                s.copy_(v)

    def __repr__(self) -> str:
        return f"Lookahead(k={self.k}, alpha={self.alpha}, {self.opt!r})"


def ranger(
    params,
    lr: float = 1e-3,
    mom: float = 0.95,
    wd: float = 0.01,
    eps: float = 1e-6,
    sqr_mom: float = 0.99,
    beta: float = 0.0,
    decouple_wd: bool = True,
    *,
    k: int = 6,
    alpha: float = 0.5,
    weight_decay: float | None = None,
):
    """Ranger: :class:`Lookahead` around :func:`RAdam`, with fastai's defaults (``mom=0.95``, ``wd=0.01``,
    ``eps=1e-6``). Use as ``Learner(..., opt_func=ranger)`` (best with ``fit_flat_cos``).

    >>> import torch
    >>> type(ranger([torch.nn.Parameter(torch.zeros(3))], lr=1e-3)).__name__
    'Lookahead'
    """
    wd = wd if weight_decay is None else weight_decay
    return Lookahead(
        RAdam(params, lr=lr, mom=mom, sqr_mom=sqr_mom, eps=eps, wd=wd, beta=beta, decouple_wd=decouple_wd),
        k=k,
        alpha=alpha,
    )


def params(m: nn.Module) -> list[nn.Parameter]:
    """All parameters of ``m`` as a list.

    Example: ``len(params(nn.Linear(2, 3)))`` -> ``2`` (weight and bias).
    """
    return list(m.parameters())


def trainable_params(m: nn.Module) -> list[nn.Parameter]:
    """Parameters of ``m`` that require gradients.

    Example: ``torch.optim.SGD(trainable_params(model), lr=0.1)``.
    """
    return [p for p in m.parameters() if p.requires_grad]


def param_groups(model: nn.Module, splitter: Callable | None = None) -> list[list[nn.Parameter]]:
    """Split ``model``'s parameters into groups with ``splitter(model)`` (default: one group).

    Checks that every parameter lands in exactly one group.

    Example: ``param_groups(model)`` -> ``[list(model.parameters())]`` (one group).
    """
    groups = list(splitter(model)) if splitter is not None else [list(model.parameters())]
    if groups and all(isinstance(g, torch.Tensor) for g in groups):  # a flat list of parameters: one group
        groups = [groups]
    groups = [list(g.parameters()) if isinstance(g, nn.Module) else list(g) for g in groups]
    if not groups or not any(groups):
        raise ModelError(
            f"Expected the splitter to return non-empty parameter groups. Received: {len(groups)} "
            "groups with no parameters. Fix: return e.g. [body_params, head_params]."
        )
    seen = {}
    for i, g in enumerate(groups):
        for p in g:
            if id(p) in seen:
                raise ModelError(
                    f"A parameter appears in parameter groups {seen[id(p)]} and {i}. Expected each "
                    "parameter in exactly one group. Fix: make the splitter's groups disjoint."
                )
            seen[id(p)] = i
    missing = sum(1 for p in model.parameters() if id(p) not in seen)
    if missing:
        raise ModelError(
            f"The splitter left {missing} parameter tensors out of every group. Expected all of the "
            "model's parameters in some group. Fix: add the remaining layers to a group."
        )
    return groups


def no_decay_params(model: nn.Module) -> set[int]:
    """The ids of the parameters fastai's ``wd_bn_bias=False`` keeps free of weight decay: every parameter of
    a normalisation layer (BatchNorm, LayerNorm, GroupNorm, InstanceNorm) and every bias.

    >>> m = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    >>> sorted(n for n, p in m.named_parameters() if id(p) in no_decay_params(m))
    ['0.bias', '1.bias', '1.weight']
    """
    norm = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)
    ids = set()
    for mod in model.modules():
        for name, p in mod.named_parameters(recurse=False):
            if isinstance(mod, norm) or name.endswith("bias"):
                ids.add(id(p))
    return ids


def n_groups(opt) -> int:
    """How many parameter groups (splitter groups) ``opt`` has: param groups that :func:`make_opt` split for
    ``wd_bn_bias=False`` count once.

    >>> n_groups(torch.optim.SGD([{"params": [nn.Parameter(torch.ones(1))]}], lr=0.1))
    1
    """
    pgs = opt.param_groups
    return len({pg["group"] for pg in pgs}) if pgs and "group" in pgs[0] else len(pgs)


def _per_group(pgs, values):
    """Pair each torch param group with its value: one value per splitter group (``pg['group']``) or per pg."""
    if not isinstance(values, (list, tuple, np.ndarray)):
        return [(pg, values) for pg in pgs]
    if pgs and "group" in pgs[0] and len(values) != len(pgs):
        return [(pg, values[pg["group"]]) for pg in pgs]
    return list(zip(pgs, values))


def make_opt(
    opt_func,
    groups: Sequence[Sequence[nn.Parameter]],
    lr: float,
    wd: float | None = None,
    no_decay: set[int] | None = None,
):
    """Build the optimizer: one param group per parameter group, checking ``opt_func`` makes an optimizer.

    ``no_decay``: ids of parameters that get no weight decay (see :func:`no_decay_params`); each group holding
    some is then split in two torch param groups (``pg['group']`` names the splitter group, and the hyper-
    parameter setters here take one value per splitter group).

    Example: ``opt = make_opt(torch.optim.AdamW, param_groups(model), lr=1e-3, wd=0.01)``.
    """
    if not callable(opt_func):
        raise ModelError(
            f"Expected opt_func to be a torch.optim optimizer class or a function returning one. "
            f"Received: opt_func={opt_func!r}. Fix: opt_func=torch.optim.AdamW."
        )
    kwargs = {"lr": lr}
    if wd is not None:
        kwargs["weight_decay"] = wd
    if no_decay:
        pgs = []
        for i, g in enumerate(groups):
            decay = [p for p in g if id(p) not in no_decay]
            nd = [p for p in g if id(p) in no_decay]
            if decay or not nd:
                pgs.append({"params": decay, "group": i})
            if nd:
                pgs.append({"params": nd, "group": i, "weight_decay": 0.0, "no_decay": True})
    else:
        pgs = [{"params": list(g)} for g in groups]
    try:
        opt = opt_func(pgs, **kwargs)
    except TypeError as e:
        raise ModelError(
            f"Could not build the optimizer with opt_func={getattr(opt_func, '__name__', opt_func)!r}"
            f"(param_groups, {', '.join(f'{k}={v}' for k, v in kwargs.items())}): {e}. Expected an "
            "optimizer class like torch.optim.SGD or a function f(params, lr=...)."
        ) from e
    if not isinstance(opt, torch.optim.Optimizer) and not all(
        hasattr(opt, a) for a in ("step", "zero_grad", "param_groups")
    ):
        raise ModelError(
            f"Expected opt_func to return a torch.optim.Optimizer. Received: {type(opt).__name__} from "
            f"opt_func={getattr(opt_func, '__name__', opt_func)!r}. Fix: opt_func=torch.optim.AdamW."
        )
    return opt


def lr_spread(lr, n: int) -> list[float]:
    """Per-group learning rates: a float for all groups; ``slice(hi)`` -> hi/10 for all but the last group;
    ``slice(lo, hi)`` -> geometric from lo to hi; a list as given.

    Example: ``lr_spread(slice(1e-4, 1e-2), 3)`` -> ``[1e-4, 1e-3, 1e-2]`` (approximately).
    """
    if isinstance(lr, slice):
        lo, hi = lr.start, lr.stop
        if hi is None:
            raise ModelError(f"Expected slice(lo, hi) or slice(hi). Received: lr={lr!r}.")
        if lo is None:
            return [hi / 10] * (n - 1) + [hi]
        if n == 1:
            return [hi]
        return list(lo * (hi / lo) ** (np.arange(n) / (n - 1)))
    if isinstance(lr, (list, tuple, np.ndarray)):
        if len(lr) != n:
            raise ModelError(f"Expected {n} learning rates (one per parameter group). Received: {len(lr)}.")
        return [float(x) for x in lr]
    return [float(lr)] * n


def set_hyper(opt, name: str, values) -> None:
    """Set hyper-parameter ``name`` (e.g. 'lr') on every param group; ``values`` is a scalar or one per group.

    Example: ``set_hyper(opt, 'lr', [1e-4, 1e-3])`` (one value per group) or ``set_hyper(opt, 'lr', 1e-3)``.
    """
    for pg, v in _per_group(opt.param_groups, values):
        if name == "weight_decay" and pg.get("no_decay"):
            continue  # wd_bn_bias=False: norm layers and biases stay free of weight decay
        pg[name] = float(v)


def get_mom(opt) -> float | None:
    """The momentum of the last param group: ``momentum`` (SGD, RMSprop) or beta1 (Adam-like).

    Example: ``get_mom(torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9))`` -> ``0.9``.
    """
    pg = opt.param_groups[-1]
    if "betas" in pg:
        return pg["betas"][0]
    return pg.get("momentum")


def set_mom(opt, values) -> None:
    """Set momentum (SGD/RMSprop) or beta1 (Adam family) on every param group; a scalar or one per group.

    Example: ``set_mom(opt, 0.85)`` sets ``betas[0]`` of an Adam optimizer to 0.85.
    """
    for pg, v in _per_group(opt.param_groups, values):
        if "betas" in pg:
            pg["betas"] = (float(v), pg["betas"][1])
        elif "momentum" in pg:
            pg["momentum"] = float(v)


def _accepts(f, name: str) -> bool:
    try:
        return name in inspect.signature(f).parameters
    except (TypeError, ValueError):
        return False
