"""ShowGraphCallback (a live loss plot) and recorder.final_record."""

from __future__ import annotations

import pytest
from conftest import mlp
from torch import nn

from learnkit import DataLoaders, Learner, accuracy, set_seed
from learnkit.callbacks.graph import ShowGraphCallback


def _learner(wine_tensors, **kw):
    set_seed(0)
    train, valid = wine_tensors
    dls = DataLoaders.from_tensors(train, valid, bs=16, device="cpu")
    return Learner(dls, mlp(), loss_func=nn.CrossEntropyLoss(), metrics=accuracy, **kw)


def test_final_record_is_the_last_epochs_values(wine_tensors):
    learn = _learner(wine_tensors)
    with pytest.raises(ValueError, match="fit"):
        _ = learn.recorder.final_record
    learn.fit(3, 1e-2, quiet=True)
    train_loss, valid_loss, acc = learn.recorder.final_record
    assert valid_loss == learn.recorder.value("valid_loss") and acc == learn.recorder.value("accuracy")
    assert acc > 0.8 and train_loss < learn.recorder.values[0][0]
    assert [valid_loss, acc] == pytest.approx(learn.validate())


def test_show_graph_draws_train_and_valid_losses_at_the_end(wine_tensors):
    learn = _learner(wine_tensors, cbs=ShowGraphCallback())
    learn.fit(3, 1e-2, quiet=True)
    cb = learn.show_graph
    assert cb.fig is not None
    lines = {ln.get_label(): ln for ln in cb.ax.lines}
    n_batches = 3 * len(learn.dls.train)
    assert len(lines["train"].get_xdata()) == n_batches
    assert list(lines["valid"].get_ydata()) == [r[1] for r in learn.recorder.values]
    assert cb.ax.get_xlim()[1] == n_batches
    learn.lr_find(num_it=10, show_plot=False)  # no graph during lr_find
    assert len(cb.ax.lines[0].get_xdata()) == n_batches


def test_show_graph_updates_one_display_per_epoch_in_a_notebook(wine_tensors, monkeypatch):
    import learnkit.callbacks.graph as graph

    shown = []

    class Handle:
        def update(self, fig):
            shown.append(("update", len(fig.axes[0].lines[0].get_xdata())))

    def display(fig, display_id):
        shown.append(("display", len(fig.axes[0].lines[0].get_xdata())))
        return Handle()

    import IPython.display

    monkeypatch.setattr(graph, "_in_notebook", lambda: True)
    monkeypatch.setattr(IPython.display, "display", display)
    learn = _learner(wine_tensors, cbs=ShowGraphCallback())
    learn.fit(2, 1e-2, quiet=True)
    n = len(learn.dls.train)
    assert shown[:2] == [("display", n), ("update", 2 * n)]
