"""PyTorch module hooks that clean up after themselves, model-shape helpers, and the ActivationStats callback.

A :class:`Hook` (one module) or :class:`Hooks` (several) runs a function on every forward (or backward) pass
and keeps its result in ``.stored``; use them as context managers so the hooks are removed however the block
ends. :func:`hook_output` / :func:`hook_outputs` keep the activations. :func:`model_sizes`,
:func:`dummy_eval`, :func:`num_features_model` and :func:`in_channels` run a dummy batch to learn shapes.
:class:`ActivationStats` records the mean, standard deviation and fraction of near-zero activations of each
layer for every training batch (the training-stability diagnostics of fastai's book, chapter 13).

>>> import torch
>>> from torch import nn
>>> model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
>>> with hook_outputs(model) as hooks:
...     _ = model(torch.randn(5, 4))
...     [tuple(o.shape) for o in hooks.stored]
[(5, 3), (5, 3), (5, 2)]
>>> len(model[0]._forward_hooks)  # removed on leaving the block
0
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

from .callbacks.core import Callback
from .exceptions import ModelError

__all__ = [
    "Hook",
    "Hooks",
    "hook_output",
    "hook_outputs",
    "dummy_eval",
    "model_sizes",
    "num_features_model",
    "in_channels",
    "has_params",
    "ActivationStats",
]


def _detach(x, cpu: bool):
    if isinstance(x, torch.Tensor):
        x = x.detach()
        return x.cpu() if cpu else x
    if isinstance(x, (list, tuple)):
        return type(x)(_detach(o, cpu) for o in x)
    if isinstance(x, dict):
        return {k: _detach(v, cpu) for k, v in x.items()}
    return x


class Hook:
    """Run ``hook_func(module, input, output)`` on every forward pass of ``m`` (``is_forward=False``: on every
    backward pass, with ``(module, grad_input, grad_output)``) and keep the result in ``self.stored``.

    ``detach`` detaches the tensors handed to ``hook_func`` (and ``cpu`` moves them to the CPU). Call
    :meth:`remove` or use it as a context manager.

    >>> import torch
    >>> lin = torch.nn.Linear(2, 1)
    >>> with Hook(lin, lambda m, i, o: o.shape) as h:
    ...     _ = lin(torch.zeros(3, 2))
    ...     h.stored
    torch.Size([3, 1])
    """

    def __init__(
        self,
        m: nn.Module,
        hook_func: Callable,
        is_forward: bool = True,
        detach: bool = True,
        cpu: bool = False,
    ):
        if not isinstance(m, nn.Module):
            raise ModelError(
                f"Expected an nn.Module to hook. Received: {type(m).__name__}. Fix: pass a layer, "
                "e.g. Hook(model[0], func)."
            )
        self.hook_func, self.detach, self.cpu, self.stored, self.removed = hook_func, detach, cpu, None, False
        register = m.register_forward_hook if is_forward else m.register_full_backward_hook
        self.handle = register(self._run)

    def _run(self, module, inp, out):
        if self.detach:
            inp, out = _detach(inp, self.cpu), _detach(out, self.cpu)
        self.stored = self.hook_func(module, inp, out)

    def remove(self) -> None:
        """Remove the hook from the module (safe to call twice)."""
        if not self.removed:
            self.handle.remove()
            self.removed = True

    def __enter__(self):
        return self

    def __exit__(self, *args):
        self.remove()

    def __del__(self):
        if not getattr(self, "removed", True):
            self.remove()


def _output(m, inp, out):
    return out


def _grad_output(m, grad_inp, grad_out):
    return grad_out[0] if isinstance(grad_out, (tuple, list)) and len(grad_out) == 1 else grad_out


def hook_output(module: nn.Module, detach: bool = True, cpu: bool = False, grad: bool = False) -> Hook:
    """A :class:`Hook` keeping ``module``'s output (``grad=True``: the gradient of its output) in ``.stored``.

    >>> import torch
    >>> lin = torch.nn.Linear(2, 1)
    >>> with hook_output(lin) as h:
    ...     y = lin(torch.ones(1, 2))
    ...     torch.equal(h.stored, y.detach())
    True
    """
    return Hook(module, _grad_output if grad else _output, is_forward=not grad, detach=detach, cpu=cpu)


class Hooks:
    """One :class:`Hook` per module of ``ms``: ``self.stored`` is the list of their results, in order.

    >>> import torch
    >>> model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Linear(3, 1))
    >>> with Hooks(model, lambda m, i, o: o.mean().item()) as hs:
    ...     _ = model(torch.ones(4, 2))
    ...     len(hs.stored)
    2
    """

    def __init__(
        self,
        ms: nn.Module | Iterable[nn.Module],
        hook_func: Callable,
        is_forward: bool = True,
        detach: bool = True,
        cpu: bool = False,
    ):
        if isinstance(ms, nn.Module):
            ms = list(ms.children()) or [ms]  # a model: hook its children (a single layer: itself)
        self.hooks = [Hook(m, hook_func, is_forward, detach, cpu) for m in ms]

    def __getitem__(self, i: int) -> Hook:
        return self.hooks[i]

    def __len__(self) -> int:
        return len(self.hooks)

    def __iter__(self):
        return iter(self.hooks)

    @property
    def stored(self) -> list:
        """Each hook's stored result."""
        return [h.stored for h in self.hooks]

    def remove(self) -> None:
        """Remove every hook."""
        for h in self.hooks:
            h.remove()

    def __enter__(self):
        return self

    def __exit__(self, *args):
        self.remove()


def hook_outputs(modules, detach: bool = True, cpu: bool = False, grad: bool = False) -> Hooks:
    """:class:`Hooks` keeping the output (``grad=True``: the output's gradient) of each module in ``modules``
    (a list, or a model whose children are hooked).

    Example: ``with hook_outputs(model) as hs: model(x)``; then ``[o.shape for o in hs.stored]``.
    """
    return Hooks(modules, _grad_output if grad else _output, is_forward=not grad, detach=detach, cpu=cpu)


def has_params(m: nn.Module) -> bool:
    """Whether ``m`` has parameters of its own (not counting its children).

    Example: ``has_params(nn.Linear(2, 3))`` -> ``True``;
    ``has_params(nn.Sequential(nn.Linear(2, 3)))`` -> ``False``.
    """
    return next(m.parameters(recurse=False), None) is not None


def in_channels(m: nn.Module) -> int:
    """The number of input channels (or features) of the first layer of ``m`` with a weight.

    >>> in_channels(torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU()))
    3
    """
    for layer in m.modules():
        w = getattr(layer, "weight", None)
        if isinstance(w, torch.Tensor) and w.ndim >= 2 and not isinstance(layer, nn.Embedding):
            return int(w.shape[1])
    raise ModelError(
        f"Expected {type(m).__name__} to contain a layer with a weight (Conv or Linear). Received: "
        "none. Fix: pass the model's body, or give the input channels yourself."
    )


def _dummy_input(m: nn.Module, size) -> torch.Tensor:
    p = next(m.parameters(), None)
    device = p.device if p is not None else torch.device("cpu")
    dtype = p.dtype if p is not None and p.is_floating_point() else torch.float32
    size = tuple(size) if isinstance(size, (tuple, list)) else (size, size)
    return torch.zeros(1, in_channels(m), *size, device=device, dtype=dtype).uniform_(-1, 1)


def dummy_eval(m: nn.Module, size=(64, 64)) -> torch.Tensor:
    """Run ``m`` in eval mode on one random batch of shape ``(1, in_channels(m), *size)``; the model's mode
    is restored afterwards.

    >>> dummy_eval(torch.nn.Conv2d(3, 8, 3, stride=2), size=(16, 16)).shape
    torch.Size([1, 8, 7, 7])
    """
    was = m.training
    m.eval()
    try:
        with torch.no_grad():
            return m(_dummy_input(m, size))
    finally:
        m.train(was)


def model_sizes(m: nn.Module, size=(64, 64)) -> list[tuple[int, ...]]:
    """The output shape of each child of ``m`` for one dummy batch of ``size`` (height, width).

    >>> body = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, stride=2, padding=1), torch.nn.ReLU())
    >>> model_sizes(body, size=(32, 32))
    [(1, 8, 16, 16), (1, 8, 16, 16)]
    """
    with hook_outputs(m) as hooks:
        dummy_eval(m, size)
        return [tuple(o.shape) for o in hooks.stored]


def num_features_model(m: nn.Module) -> int:
    """The number of output features (channels) of ``m``: tries growing dummy inputs until ``m`` accepts one.

    >>> num_features_model(torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3), torch.nn.ReLU()))
    16
    """
    sz, errors = 32, []
    for _ in range(4):
        try:
            return int(dummy_eval(m, (sz, sz)).shape[1])
        except RuntimeError as e:  # too small for the model's downsampling
            errors.append(str(e).splitlines()[0])
            sz *= 2
    raise ModelError(
        f"Could not run {type(m).__name__} on dummy inputs of size 32 to 256. Received: {errors[-1]}. "
        "Expected an image model taking (N, C, H, W). Fix: check in_channels(model) and its input."
    )


# ----------------------------------------------------------------------------------------------- the callback
class ActivationStats(Callback):
    """Record, for every training batch, each layer's activation mean, standard deviation and the fraction of
    activations near zero (``<= near_zero_thresh``); with ``with_hist`` also a 40-bin histogram of them.

    ``modules`` defaults to every layer with parameters of its own. Hooks are added at ``before_fit`` and
    removed at ``after_fit`` (also when training is interrupted). ``self.stats[b][i]`` is batch ``b``,
    layer ``i``: a dict with ``'mean'``, ``'std'``, ``'near_zero'`` (and ``'hist'``).
    :meth:`plot_layer_stats` plots one layer over training, :meth:`color_dim` its histograms as an image.

    >>> cb = ActivationStats(with_hist=True)
    """

    order = -20  # record before other callbacks change the batch's outputs

    def __init__(
        self,
        modules=None,
        with_hist: bool = False,
        near_zero_thresh: float = 0.05,
        hist_range=(0.0, 10.0),
        n_bins: int = 40,
    ):
        self.modules, self.with_hist, self.near_zero_thresh = modules, with_hist, near_zero_thresh
        self.hist_range, self.n_bins = hist_range, n_bins
        self.stats: list[list[dict]] = []
        self.hooks = None

    def before_fit(self):
        ms = self.modules
        if ms is None:
            ms = [m for m in self.learn.model.modules() if has_params(m)]
        ms = list(ms)
        if not ms:
            raise ModelError(
                "ActivationStats found no layer to watch. Expected a model with parameters or "
                "modules=[...]. Fix: ActivationStats(modules=[model[0], model[2]])."
            )
        self.stats, self._batch, self._record = [], [], False
        self.hooks = Hooks(ms, self._hook)

    def _hook(self, m, inp, out):
        if not self._record or not isinstance(out, torch.Tensor):
            return None
        o = out.float()
        st = [
            o.mean(),
            o.std() if o.numel() > 1 else torch.zeros((), device=o.device),
            (o <= self.near_zero_thresh).float().mean(),
        ]
        if self.with_hist:
            st.append(torch.histc(o, self.n_bins, *self.hist_range))
        self._batch.append(st)
        return None

    def before_train(self):
        self._record = True

    def before_validate(self):
        self._record = False

    def before_batch(self):
        self._batch = []

    def after_batch(self):
        if not self.learn.training or not self._batch:
            return
        scalars = torch.stack([torch.stack(s[:3]) for s in self._batch]).cpu().tolist()  # one sync per batch
        hists = [s[3].cpu() for s in self._batch] if self.with_hist else None
        rows = []
        for i, (mean, std, nz) in enumerate(scalars):
            d = {"mean": mean, "std": std, "near_zero": nz}
            if hists is not None:
                d["hist"] = hists[i]
            rows.append(d)
        self.stats.append(rows)
        self._batch = []

    def after_fit(self):
        if self.hooks is not None:
            self.hooks.remove()
            self.hooks = None

    # -- reading
    def layer_stats(self, idx: int) -> dict[str, list[float]]:
        """Layer ``idx``'s ``mean``, ``std`` and ``near_zero`` over all recorded batches."""
        if not self.stats:
            raise ValueError(
                "Expected recorded statistics. Received: none (no training batch ran). Fix: train "
                "with ActivationStats in cbs, e.g. learn.fit(1, cbs=ActivationStats())."
            )
        n = len(self.stats[0])
        if not -n <= idx < n:
            raise IndexError(f"Expected a layer index in [-{n}, {n}). Received: idx={idx}.")
        return {k: [b[idx][k] for b in self.stats] for k in ("mean", "std", "near_zero")}

    def plot_layer_stats(self, idx: int, figsize=(10, 3)):
        """Mean, standard deviation and % of near-zero activations of layer ``idx`` over the training batches."""
        import matplotlib.pyplot as plt

        st = self.layer_stats(idx)
        fig, axs = plt.subplots(1, 3, figsize=figsize)
        for ax, (k, title) in zip(axs, [("mean", "mean"), ("std", "std"), ("near_zero", "% near zero")]):
            ax.plot(st[k])
            ax.set_title(title)
            ax.set_xlabel("batch")
        return axs

    def color_dim(self, idx: int, figsize=(10, 5), ax=None):
        """The histograms of layer ``idx``'s activations over training as an image (x: batch, y: value bin),
        on a log scale: the "colorful dimension" plot. Needs ``with_hist=True``."""
        import matplotlib.pyplot as plt

        if not self.with_hist:
            raise ValueError(
                "color_dim needs the activation histograms. Expected ActivationStats(with_hist=True). "
                "Received: with_hist=False. Fix: train with ActivationStats(with_hist=True)."
            )
        self.layer_stats(idx)  # checks idx and that something was recorded
        h = torch.stack([b[idx]["hist"] for b in self.stats]).t().float()
        if ax is None:
            _, ax = plt.subplots(figsize=figsize)
        ax.imshow(torch.log1p(h).numpy(), origin="lower", aspect="auto")
        ax.set_xlabel("batch")
        ax.set_ylabel(f"activation bin ({self.hist_range[0]:g} to {self.hist_range[1]:g})")
        ax.axis("on")
        return ax
