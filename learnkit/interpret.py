"""Looking at what a trained classifier gets wrong: confusion matrix, most confused pairs, top losses.

>>> # interp = ClassificationInterpretation.from_learner(learn)
>>> # interp.plot_confusion_matrix(); interp.most_confused(min_val=2); interp.plot_top_losses(9)

Works for any learner whose targets are class indices (vision, text, tabular); for segmentation the
confusion matrix counts pixels. ``plot_top_losses`` draws the inputs through the data recipe's blocks.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import torch

from .exceptions import DataError

__all__ = ["Interpretation", "ClassificationInterpretation"]


def _per_item(losses: torch.Tensor, n: int) -> torch.Tensor:
    """Per-item losses from what a ``reduction='none'`` loss returned (per pixel/token ones are averaged)."""
    losses = losses.float().reshape(-1)
    if n and losses.numel() != n and losses.numel() % n == 0:
        losses = losses.view(n, -1).mean(1)
    return losses


def _grid(n: int, nrows=None, ncols=None, figsize=None, imsize: float = 3.0, title=None):
    """A figure with ``n`` axes in a grid (unused ones hidden): ``(fig, axes)``."""
    n = max(1, int(n))
    if nrows is None and ncols is None:
        ncols = math.ceil(math.sqrt(n))
    nrows = nrows or math.ceil(n / ncols)
    ncols = ncols or math.ceil(n / nrows)
    fig, axs = plt.subplots(nrows, ncols, figsize=figsize or (ncols * imsize, nrows * imsize), squeeze=False)
    flat = list(axs.flat)
    for ax in flat[n:]:
        ax.set_axis_off()
    if title is not None:
        fig.suptitle(title)
    return fig, flat[:n]


class Interpretation:
    """Predictions, targets and per-item losses of ``learn`` on one loader, for looking at the worst items.

    Build it with :meth:`from_learner`. ``top_losses(k)`` gives the largest losses and their indices in the
    loader's dataset; ``plot_top_losses(k)`` draws those items with prediction, target, loss and probability.

    Example: ``interp = Interpretation.from_learner(learn); losses, idxs = interp.top_losses(9)``.
    """

    def __init__(
        self, learn, dl, preds: torch.Tensor, targs: torch.Tensor, decoded: torch.Tensor, losses: torch.Tensor
    ):
        self.learn, self.dl = learn, dl
        self.preds, self.targs, self.decoded = preds, targs, decoded
        self.losses = _per_item(losses, len(targs)) if losses is not None else None

    @classmethod
    def from_learner(cls, learn, ds_idx: int = 1, dl=None, act=None):
        """Run ``learn`` on loader ``ds_idx`` (default: validation) or ``dl`` and keep what interpretation needs."""
        if dl is None:
            if ds_idx >= len(learn.dls.loaders) or learn.dls[ds_idx] is None:
                raise DataError(
                    f"Expected loader {ds_idx} to exist. Received: DataLoaders with {len(learn.dls.loaders)} "
                    "loaders. Fix: pass ds_idx=0 (training set) or dl=learn.dls.test_dl(items, with_labels=True)."
                )
            dl = learn.dls[ds_idx]
        else:
            dl = learn._as_loader(dl)
        preds, targs, decoded, losses = learn.get_preds(dl=dl, with_decoded=True, with_loss=True, act=act)
        if targs is None:
            raise DataError(
                "Expected a loader with targets to interpret. Received: a loader without labels. "
                "Fix: use the validation set, or test_dl(items, with_labels=True)."
            )
        return cls(learn, dl, preds, targs, decoded, losses)

    def top_losses(self, k: int | None = None, largest: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """``(losses, indices)`` of the ``k`` items with the largest (``largest=False``: smallest) loss."""
        if self.losses is None:
            raise DataError(
                "Expected per-item losses. Received: none (the loss has no reduction='none' mode)."
            )
        k = len(self.losses) if k is None else min(int(k), len(self.losses))
        return self.losses.topk(k, largest=largest)

    def _inputs_at(self, idxs: list[int]) -> dict[int, tuple]:
        """Decoded samples at dataset positions ``idxs``, found by walking the (unshuffled) loader once."""
        recipe = self.learn.dls.recipe
        if recipe is None:
            raise DataError(
                "Expected DataLoaders with a data recipe to draw the items (a DataBlock or an application "
                "factory). Received: plain tensors. Fix: use top_losses() to get the indices and show them yourself."
            )
        want, found, start = set(idxs), {}, 0
        for b in self.dl:
            n = b[0].shape[0] if isinstance(b, (tuple, list)) else len(b)
            hits = [i for i in range(start, start + n) if i in want]
            if hits:
                decoded = recipe.decode_batch(b)
                for i in hits:
                    found[i] = decoded[i - start]
            start += n
            if len(found) == len(want):
                break
        return found

    def _label(self, i: int):
        recipe = self.learn.dls.recipe
        p = self.decoded[i]
        t = self.targs[i]
        return (
            (recipe.decode_pred(p), recipe.decode_pred(t)) if recipe is not None else (p.tolist(), t.tolist())
        )

    def plot_top_losses(
        self,
        k: int = 9,
        largest: bool = True,
        nrows: int | None = None,
        ncols: int | None = None,
        figsize=None,
        imsize: float = 3.0,
    ):
        """Draw the ``k`` items with the largest losses, titled ``prediction / target / loss / probability``.

        Returns the matplotlib figure.
        """
        losses, idx = self.top_losses(k, largest=largest)
        idx = idx.tolist()
        samples = self._inputs_at(idx)
        recipe = self.learn.dls.recipe
        fig, axes = _grid(
            len(idx),
            nrows,
            ncols,
            figsize=figsize,
            imsize=imsize,
            title="prediction / actual / loss / probability",
        )
        for ax, i, loss in zip(axes, idx, losses.tolist()):
            sample = samples.get(i)
            if sample is not None:
                recipe.show_item(sample, ax=ax)
            if self.decoded[i].ndim == 0:
                pred, targ = self._label(i)
                p = self.preds[i]
                prob = p[self.decoded[i]].item() if p.ndim == 1 else float("nan")
                ax.set_title(
                    f"{pred} / {targ} / {loss:.2f} / {prob:.2f}",
                    fontsize=9,
                    color="red" if pred != targ else "green",
                )
            else:  # per-pixel (segmentation) or multi-label predictions: the loss says it all
                ax.set_title(f"loss {loss:.2f}", fontsize=9)
        return fig


class ClassificationInterpretation(Interpretation):
    """Interpretation of a classifier: confusion matrix, most confused pairs, classification report.

    >>> # interp = ClassificationInterpretation.from_learner(learn)
    >>> # interp.most_confused(min_val=2)   # [('cat', 'dog', 5), ...]
    """

    def __init__(self, learn, dl, preds, targs, decoded, losses):
        super().__init__(learn, dl, preds, targs, decoded, losses)
        vocab = learn.dls.vocab
        if vocab is None:
            n = int(preds.shape[1]) if preds.ndim >= 2 else int(max(targs.max(), decoded.max()).item()) + 1
            vocab = [str(i) for i in range(n)]
        self.vocab = [str(v) for v in vocab]
        if targs.is_floating_point() or decoded.is_floating_point():
            raise DataError(
                "Expected class indices as targets and predictions. Received: float targets (regression or "
                "multi-label data). Fix: use Interpretation.from_learner for top losses; a confusion matrix "
                "needs single-label classification."
            )

    def confusion_matrix(self) -> torch.Tensor:
        """``(c, c)`` int64 counts: row = actual class, column = predicted class (pixels for segmentation)."""
        c = len(self.vocab)
        t, d = self.targs.reshape(-1).long(), self.decoded.reshape(-1).long()
        keep = (t >= 0) & (t < c)  # ignore_index pixels (e.g. 255 or -100) are left out
        return torch.bincount(t[keep] * c + d[keep], minlength=c * c).view(c, c)

    def most_confused(self, min_val: int = 1) -> list[tuple[str, str, int]]:
        """``(actual, predicted, count)`` for every off-diagonal cell with at least ``min_val`` items, largest first."""
        cm = self.confusion_matrix()
        out = [
            (self.vocab[i], self.vocab[j], int(cm[i, j]))
            for i in range(len(self.vocab))
            for j in range(len(self.vocab))
            if i != j and cm[i, j] >= min_val
        ]
        return sorted(out, key=lambda r: -r[2])

    def plot_confusion_matrix(
        self,
        normalize: bool = False,
        title: str = "Confusion matrix",
        cmap: str = "Blues",
        norm_dec: int = 2,
        plot_txt: bool = True,
        figsize=None,
        dpi=None,
        ax=None,
        values: bool | None = None,
        **kwargs,
    ):
        """Draw the confusion matrix with fastai's arguments; returns the figure.

        ``normalize``: fractions of each actual class, written with ``norm_dec`` decimals; ``plot_txt``: write
        the value in each cell (``values=`` is the older learnkit spelling); ``figsize`` / ``dpi`` / other
        keyword arguments go to ``plt.figure``. ``interp.plot_confusion_matrix(figsize=(6, 6), dpi=60)``.
        """
        if values is not None:
            plot_txt = bool(values)
        cm = self.confusion_matrix().float()
        if normalize:
            cm = cm / cm.sum(1, keepdim=True).clamp_min(1)
        c = len(self.vocab)
        if ax is None:
            size = max(4.0, 0.5 * c + 2)
            fig = plt.figure(figsize=figsize or (size, size), dpi=dpi, **kwargs)
            ax = fig.add_subplot(1, 1, 1)
        else:
            fig = ax.figure
            if dpi is not None:
                fig.set_dpi(dpi)
        im = ax.imshow(cm.numpy(), interpolation="nearest", cmap=cmap)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        ax.set_title(title)
        ax.set_xticks(range(c))
        ax.set_xticklabels(self.vocab, rotation=90)
        ax.set_yticks(range(c))
        ax.set_yticklabels(self.vocab)
        ax.set_xlabel("Predicted")
        ax.set_ylabel("Actual")
        if plot_txt and c <= 30:
            thresh = float(cm.max()) / 2
            for i in range(c):
                for j in range(c):
                    v = float(cm[i, j])
                    ax.text(
                        j,
                        i,
                        f"{v:.{int(norm_dec)}f}" if normalize else f"{int(v)}",
                        ha="center",
                        va="center",
                        color="white" if v > thresh else "black",
                        fontsize=8,
                    )
        fig.tight_layout()
        return fig

    def classification_report(self, digits: int = 3) -> str:
        """scikit-learn's per-class precision / recall / F1 / support table as text."""
        from sklearn.metrics import classification_report

        t, d = self.targs.reshape(-1).long(), self.decoded.reshape(-1).long()
        c = len(self.vocab)
        keep = (t >= 0) & (t < c)
        return classification_report(
            t[keep].numpy(),
            d[keep].numpy(),
            labels=list(range(c)),
            target_names=self.vocab,
            digits=digits,
            zero_division=0,
        )

    def print_classification_report(self, digits: int = 3) -> str:
        """Print (and return) :meth:`classification_report`."""
        s = self.classification_report(digits=digits)
        print(s)
        return s
