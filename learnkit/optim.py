"""Optimizer factories, parameter groups and discriminative learning rates.

Any ``torch.optim`` optimizer class (or a function ``f(param_groups, lr=...) -> Optimizer``) works as
``opt_func``. learnkit's defaults use decoupled weight decay.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from .exceptions import ModelError

__all__ = ["Adam", "SGD", "RMSProp", "make_opt", "param_groups", "trainable_params", "lr_spread", "set_hyper",
           "get_mom", "set_mom", "params"]


def Adam(params, lr: float = 1e-3, betas=(0.9, 0.99), eps: float = 1e-5, weight_decay: float = 0.01, **kwargs):
    """AdamW (decoupled weight decay) with fastai-style defaults: betas=(0.9, 0.99), eps=1e-5, wd=0.01."""
    return torch.optim.AdamW(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, **kwargs)


def SGD(params, lr: float = 1e-2, momentum: float = 0.9, weight_decay: float = 0.0, **kwargs):
    """SGD with momentum 0.9 by default (weight decay is L2, as in ``torch.optim.SGD``)."""
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, **kwargs)


def RMSProp(params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8, momentum: float = 0.0,
            weight_decay: float = 0.0, **kwargs):
    """``torch.optim.RMSprop`` with the usual defaults."""
    return torch.optim.RMSprop(params, lr=lr, alpha=alpha, eps=eps, momentum=momentum, weight_decay=weight_decay,
                               **kwargs)


def params(m: nn.Module) -> list[nn.Parameter]:
    """All parameters of ``m`` as a list."""
    return list(m.parameters())


def trainable_params(m: nn.Module) -> list[nn.Parameter]:
    """Parameters of ``m`` that require gradients."""
    return [p for p in m.parameters() if p.requires_grad]


def param_groups(model: nn.Module, splitter: Callable | None = None) -> list[list[nn.Parameter]]:
    """Split ``model``'s parameters into groups with ``splitter(model)`` (default: one group).

    Checks that every parameter lands in exactly one group.
    """
    groups = list(splitter(model)) if splitter is not None else [list(model.parameters())]
    if groups and all(isinstance(g, torch.Tensor) for g in groups):  # a flat list of parameters: one group
        groups = [groups]
    groups = [list(g.parameters()) if isinstance(g, nn.Module) else list(g) for g in groups]
    if not groups or not any(groups):
        raise ModelError(f"Expected the splitter to return non-empty parameter groups. Received: {len(groups)} "
                         "groups with no parameters. Fix: return e.g. [body_params, head_params].")
    seen = {}
    for i, g in enumerate(groups):
        for p in g:
            if id(p) in seen:
                raise ModelError(f"A parameter appears in parameter groups {seen[id(p)]} and {i}. Expected each "
                                 "parameter in exactly one group. Fix: make the splitter's groups disjoint.")
            seen[id(p)] = i
    missing = sum(1 for p in model.parameters() if id(p) not in seen)
    if missing:
        raise ModelError(f"The splitter left {missing} parameter tensors out of every group. Expected all of the "
                         "model's parameters in some group. Fix: add the remaining layers to a group.")
    return groups


def make_opt(opt_func, groups: Sequence[Sequence[nn.Parameter]], lr: float, wd: float | None = None):
    """Build the optimizer: one param group per parameter group, checking ``opt_func`` makes an optimizer."""
    if not callable(opt_func):
        raise ModelError(f"Expected opt_func to be a torch.optim optimizer class or a function returning one. "
                         f"Received: opt_func={opt_func!r}. Fix: opt_func=torch.optim.AdamW.")
    kwargs = {"lr": lr}
    if wd is not None:
        kwargs["weight_decay"] = wd
    pgs = [{"params": list(g)} for g in groups]
    try:
        opt = opt_func(pgs, **kwargs)
    except TypeError as e:
        raise ModelError(f"Could not build the optimizer with opt_func={getattr(opt_func, '__name__', opt_func)!r}"
                         f"(param_groups, {', '.join(f'{k}={v}' for k, v in kwargs.items())}): {e}. Expected an "
                         "optimizer class like torch.optim.SGD or a function f(params, lr=...)." ) from e
    if not isinstance(opt, torch.optim.Optimizer) and not all(hasattr(opt, a) for a in ("step", "zero_grad",
                                                                                           "param_groups")):
        raise ModelError(f"Expected opt_func to return a torch.optim.Optimizer. Received: {type(opt).__name__} from "
                         f"opt_func={getattr(opt_func, '__name__', opt_func)!r}. Fix: opt_func=torch.optim.AdamW.")
    return opt


def lr_spread(lr, n: int) -> list[float]:
    """Per-group learning rates: a float for all groups; ``slice(hi)`` -> hi/10 for all but the last group;
    ``slice(lo, hi)`` -> geometric from lo to hi; a list as given."""
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
    """Set hyper-parameter ``name`` (e.g. 'lr') on every param group; ``values`` is a scalar or one per group."""
    pgs = opt.param_groups
    if not isinstance(values, (list, tuple, np.ndarray)):
        values = [values] * len(pgs)
    for pg, v in zip(pgs, values):
        pg[name] = float(v)


def get_mom(opt) -> float | None:
    """The momentum of the last param group: ``momentum`` (SGD, RMSprop) or beta1 (Adam-like)."""
    pg = opt.param_groups[-1]
    if "betas" in pg:
        return pg["betas"][0]
    return pg.get("momentum")


def set_mom(opt, values) -> None:
    """Set momentum (SGD/RMSprop) or beta1 (Adam family) on every param group; a scalar or one per group."""
    pgs = opt.param_groups
    if not isinstance(values, (list, tuple, np.ndarray)):
        values = [values] * len(pgs)
    for pg, v in zip(pgs, values):
        if "betas" in pg:
            pg["betas"] = (float(v), pg["betas"][1])
        elif "momentum" in pg:
            pg["momentum"] = float(v)


def _accepts(f, name: str) -> bool:
    try:
        return name in inspect.signature(f).parameters
    except (TypeError, ValueError):
        return False
