"""ClassificationInterpretation: confusion matrix, most confused pairs, report and top losses on real data."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import classification_report as sk_report
from sklearn.metrics import confusion_matrix as sk_confusion

from learnkit import DataLoaders, Learner
from learnkit.cli import write_digits_folder
from learnkit.device import set_seed
from learnkit.exceptions import DataError
from learnkit.interpret import ClassificationInterpretation, Interpretation
from learnkit.losses import CrossEntropyLossFlat, MSELossFlat


@pytest.fixture(scope="module")
def tensor_learner(digits_tensors):
    """An MLP trained briefly on scikit-learn's digits (tensors, no data recipe): it makes some mistakes."""
    from conftest import mlp

    set_seed(0)
    dls = DataLoaders.from_tensors(*digits_tensors, bs=64, device="cpu")
    learn = Learner(dls, mlp(64, 10, hidden=16), loss_func=CrossEntropyLossFlat())
    learn.fit_one_cycle(1, 3e-3, quiet=True)
    return learn


@pytest.fixture(scope="module")
def image_learner(tmp_path_factory):
    from learnkit.vision import ImageDataLoaders, accuracy, vision_learner

    path = write_digits_folder(tmp_path_factory.mktemp("digits"), size=16, n=400)
    set_seed(0)
    dls = ImageDataLoaders.from_folder(path, img_mode="L", bs=32, num_workers=0)
    learn = vision_learner(dls, "simple_cnn", pretrained=False, metrics=accuracy)
    learn.fit_one_cycle(1, 1e-2, quiet=True)
    return learn


def test_confusion_matrix_matches_sklearn(tensor_learner):
    interp = ClassificationInterpretation.from_learner(tensor_learner)
    preds, targs = tensor_learner.get_preds()
    expected = sk_confusion(targs.numpy(), preds.argmax(1).numpy(), labels=list(range(10)))
    cm = interp.confusion_matrix()
    assert cm.dtype == torch.int64 and np.array_equal(cm.numpy(), expected)
    assert int(cm.sum()) == len(targs) == 360
    assert interp.vocab == [str(i) for i in range(10)]  # no recipe: class indices as names


def test_most_confused_is_sorted_and_filtered(tensor_learner):
    interp = ClassificationInterpretation.from_learner(tensor_learner)
    cm = interp.confusion_matrix()
    off = cm.clone().fill_diagonal_(0)
    assert off.sum() > 0, "the briefly trained model should make mistakes"
    pairs = interp.most_confused(min_val=1)
    assert len(pairs) == int((off >= 1).sum())
    counts = [c for _, _, c in pairs]
    assert counts == sorted(counts, reverse=True)
    for actual, predicted, c in pairs:
        assert actual != predicted and cm[int(actual), int(predicted)] == c
    top = int(off.max())
    assert all(c == top for _, _, c in interp.most_confused(min_val=top))


def test_plot_confusion_matrix_and_report(tensor_learner, capsys):
    interp = ClassificationInterpretation.from_learner(tensor_learner)
    fig = interp.plot_confusion_matrix()
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == interp.vocab
    cells = [t.get_text() for t in ax.texts]
    assert len(cells) == 100 and sum(int(c) for c in cells) == 360
    fig = interp.plot_confusion_matrix(normalize=True)
    assert all(0 <= float(t.get_text()) <= 1 for t in fig.axes[0].texts)
    preds, targs = tensor_learner.get_preds()
    expected = sk_report(
        targs.numpy(),
        preds.argmax(1).numpy(),
        labels=list(range(10)),
        target_names=interp.vocab,
        digits=3,
        zero_division=0,
    )
    assert interp.print_classification_report() == expected
    assert "precision" in capsys.readouterr().out


def test_top_losses_match_the_per_item_losses(tensor_learner):
    interp = Interpretation.from_learner(tensor_learner)
    preds, targs = tensor_learner.get_preds()
    per_item = torch.nn.functional.cross_entropy(torch.log(preds), targs, reduction="none")
    losses, idx = interp.top_losses(5)
    assert torch.allclose(losses, per_item.topk(5).values, atol=1e-4)
    assert torch.equal(idx, per_item.topk(5).indices)
    with pytest.raises(DataError, match="recipe"):
        interp.plot_top_losses(3)  # plain tensors: nothing knows how to draw them


def test_plot_top_losses_draws_the_worst_images(image_learner):
    interp = ClassificationInterpretation.from_learner(image_learner)
    fig = interp.plot_top_losses(6, nrows=2)
    axes = [ax for ax in fig.axes if ax.images]
    assert len(axes) == 6
    losses, idx = interp.top_losses(6)
    shown = [float(ax.get_title().split(" / ")[2]) for ax in axes]
    assert shown == pytest.approx(losses.tolist(), abs=0.006)
    # the titles name the prediction and the real class of that item
    vocab = image_learner.dls.vocab
    for ax, i in zip(axes, idx.tolist()):
        pred, actual = ax.get_title().split(" / ")[:2]
        assert actual == vocab[int(interp.targs[i])] and pred == vocab[int(interp.decoded[i])]
        # the drawn image is the item's image (un-normalised, 16x16 grey)
        assert ax.images[0].get_array().shape == (16, 16)


def test_interpretation_on_the_training_set_and_bad_input(image_learner):
    interp = ClassificationInterpretation.from_learner(image_learner, ds_idx=0)
    assert int(interp.confusion_matrix().sum()) == len(interp.targs)
    with pytest.raises(DataError, match="loader 5"):
        ClassificationInterpretation.from_learner(image_learner, ds_idx=5)


def test_regression_targets_are_refused(diabetes_tensors):
    from conftest import mlp

    dls = DataLoaders.from_tensors(*diabetes_tensors, bs=64, device="cpu")
    learn = Learner(dls, mlp(10, 1), loss_func=MSELossFlat())
    with pytest.raises(DataError, match="class indices"):
        ClassificationInterpretation.from_learner(learn)
