"""Hooks that remove themselves, model-shape helpers, and ActivationStats on a real training run."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from learnkit import Callback, DataLoaders, Learner, set_seed
from learnkit.exceptions import ModelError
from learnkit.hooks import (
    ActivationStats,
    Hook,
    Hooks,
    dummy_eval,
    hook_output,
    hook_outputs,
    in_channels,
    model_sizes,
    num_features_model,
)


def _cnn():
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 10),
    )


def test_hook_output_keeps_the_activation_and_removes_itself():
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    x = torch.randn(5, 4)
    with hook_output(model[1]) as h:
        model(x)
        assert torch.equal(h.stored, torch.relu(model[0](x)).detach())
        assert not h.stored.requires_grad
    assert len(model[1]._forward_hooks) == 0
    with pytest.raises(RuntimeError), hook_outputs(model) as hs:  # removed even when the block raises
        model(torch.randn(2, 7))
    assert all(len(m._forward_hooks) == 0 for m in model) and len(hs) == 3


def test_gradient_hooks_and_hooks_with_a_function():
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 1))
    x = torch.randn(6, 4, requires_grad=True)
    with hook_output(model[0], grad=True) as g, Hooks(model, lambda m, i, o: tuple(o.shape)) as hs:
        out = model(x)
        out.sum().backward()
        assert hs.stored == [(6, 3), (6, 1)]
        expected = torch.ones(6, 1) @ model[1].weight  # d(sum)/d(output of layer 0)
        torch.testing.assert_close(g.stored, expected.detach())
    assert len(model[0]._backward_hooks) == 0
    h = Hook(model[0], lambda m, i, o: 1)
    h.remove()
    h.remove()  # twice is fine
    with pytest.raises(ModelError, match="nn.Module"):
        Hook("not a module", print)


def test_model_sizes_dummy_eval_and_num_features():
    body = _cnn()[:4]
    assert model_sizes(body, size=(28, 28)) == [(1, 8, 14, 14), (1, 8, 14, 14), (1, 16, 7, 7), (1, 16, 7, 7)]
    body.train()
    assert dummy_eval(body, (16, 16)).shape == (1, 16, 4, 4) and body.training  # mode restored
    assert num_features_model(body) == 16 and in_channels(body) == 1
    assert all(len(m._forward_hooks) == 0 for m in body)


def test_activation_stats_records_every_training_batch(digits_tensors):
    (xt, yt), (xv, yv) = digits_tensors
    img = lambda x: x.reshape(-1, 1, 8, 8)  # noqa: E731
    dls = DataLoaders.from_tensors((img(xt[:512]), yt[:512]), (img(xv), yv), bs=64, device="cpu")
    set_seed(0)
    model = _cnn()
    cb = ActivationStats(with_hist=True)
    learn = Learner(dls, model, loss_func=nn.CrossEntropyLoss(), cbs=cb)
    learn.fit(2, 1e-2, quiet=True)
    assert len(cb.stats) == 2 * len(dls.train)  # training batches only
    assert len(cb.stats[0]) == 3  # the two convs and the linear layer have parameters
    # the recorded mean of the first conv's output is the real one (check on the last batch's weights)
    st = cb.layer_stats(0)
    assert len(st["mean"]) == len(cb.stats) and all(0 <= v <= 1 for v in st["near_zero"])
    assert all(len(m._forward_hooks) == 0 for m in model.modules())  # removed at the end of fit
    seen = []

    class LastBatch(Callback):
        def after_batch(self):
            if self.learn.training:
                seen.append(self.learn.xb[0].clone())

    cb2 = ActivationStats(modules=[model[0]])
    learn.fit(1, 1e-12, cbs=[cb2, LastBatch()], quiet=True)  # a vanishing lr (0 is refused): weights stay put
    with hook_output(model[0]) as h:
        model(seen[-1])
        assert cb2.stats[-1][0]["mean"] == pytest.approx(h.stored.mean().item(), rel=1e-5)
        assert cb2.stats[-1][0]["std"] == pytest.approx(h.stored.std().item(), rel=1e-5)
    axs = cb.plot_layer_stats(0)
    assert len(axs) == 3 and len(axs[0].lines[0].get_xdata()) == len(cb.stats)
    ax = cb.color_dim(1)
    assert ax.images[0].get_array().shape == (40, len(cb.stats))
    with pytest.raises(ValueError, match="with_hist=True"):
        cb2.color_dim(0)
