"""The learning-rate finder's suggestions (fastai's SuggestedLRs) and its plot from the recorder."""

from __future__ import annotations

import pytest
from conftest import mlp
from torch import nn

from learnkit import DataLoaders, Learner, set_seed
from learnkit.callbacks.schedule import LRFinder, SuggestedLRs, minimum, steep, valley


def _learner(digits_tensors):
    set_seed(0)
    train, valid = digits_tensors
    dls = DataLoaders.from_tensors(train, valid, bs=32, shuffle=True, device="cpu")
    return Learner(dls, mlp(64, 10, 64), loss_func=nn.CrossEntropyLoss())


def test_lr_find_returns_exactly_the_asked_suggestions_in_order(digits_tensors):
    learn = _learner(digits_tensors)
    res = learn.lr_find(num_it=40, suggest_funcs=(minimum, steep), show_plot=False)
    assert res._fields == ("minimum", "steep") and type(res).__name__ == "SuggestedLRs"
    lr_min, lr_steep = res  # fastai's two-name unpacking
    assert lr_min == res.minimum and lr_steep == res.steep
    assert 1e-7 < lr_min < 10 and 1e-7 < lr_steep < 10
    res = learn.lr_find(num_it=40, suggest_funcs=(steep, valley, minimum), show_plot=False)
    assert res._fields == ("steep", "valley", "minimum")
    assert learn.lr_find(num_it=40, show_plot=False)._fields == ("valley",)


def test_suggestions_skip_the_first_and_last_points():
    """A curve that falls fastest at its very first point must not suggest start_lr."""
    f = LRFinder(start_lr=1e-7, end_lr=10, num_it=50)
    f.lrs = [1e-7 * (1e8) ** (i / 49) for i in range(50)]
    f.losses = [5.0] + [2.0 - 0.01 * i for i in range(1, 45)] + [3.0, 6.0, 12.0, 24.0, 48.0]
    res = f.suggest((steep, minimum), show_plot=False)
    assert res.steep > f.lrs[0] and res.steep >= f.lrs[f.num_it // 10]
    assert res.minimum * 10 <= f.lrs[-6]  # the blow-up at the end is left out


def test_suggested_lrs_rejects_unnamed_and_repeated_functions():
    f = LRFinder()
    f.lrs, f.losses = [1e-3 * 1.1**i for i in range(20)], [1.0 - 0.01 * i for i in range(20)]
    with pytest.raises(ValueError, match="once"):
        f.suggest((valley, valley), show_plot=False)
    with pytest.raises(ValueError, match="named function"):
        f.suggest((lambda lrs, losses: 1e-3,), show_plot=False)
    assert SuggestedLRs(valley=1e-3).valley == 1e-3


def test_recorder_plot_lr_find(digits_tensors):
    learn = _learner(digits_tensors)
    with pytest.raises(ValueError, match="lr_find"):
        learn.recorder.plot_lr_find()
    res = learn.lr_find(num_it=30, suggest_funcs=(valley, steep), show_plot=False)
    ax = learn.recorder.plot_lr_find()
    assert ax.get_xscale() == "log"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(t.startswith("valley") for t in labels) and any(t.startswith("steep") for t in labels)
    assert len(ax.lines[0].get_xdata()) == len(learn.lr_finder.lrs) - 5 and res.valley > 0
