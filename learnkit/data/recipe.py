"""The data-recipe protocol: the one contract between an application's data and the core.

``dls.recipe`` is what the learner, ``predict``, ``show_batch`` / ``show_results``, interpretation and
``export`` / ``load_learner`` talk to. Every application implements it (vision through
:class:`~learnkit.data.datablock.DataBlockRecipe`; text, tabular and collab with recipes of their own that are
not per-item DataBlocks). The core calls only the members declared here, never probes for others.

=====================  ======================================================================================
member                 meaning (default)
=====================  ======================================================================================
``kind``               the registered name ``load_learner`` rebuilds the recipe by (class attribute; required
                       for export; see :func:`learnkit.export.register_recipe`)
``n_inp``              how many leading batch elements are model inputs (1)
``vocab``              the target's class names, or ``[input_vocab, target_vocab]`` for text (``None``)
``c``                  how many outputs the model needs (``None``: the factory must be told ``n_out``)
``loss_func``          the loss the target implies (``None``: the user passes ``loss_func``)
``default_metrics()``  metrics the target implies when the user gives none (``[]``)
``after_batch``        batch transforms run on the device (identity)
``worker_collate``     a collate function with the batch transforms, for CPU workers (``None``)
``decode_batch``       a batch back to a list of decoded item tuples (required for showing)
``decode_pred``        one decoded prediction to what a user reads, e.g. a label (identity)
``predict_dl``         a loader over one raw item for ``Learner.predict`` (``test_dl([item], bs=1)``)
``show_batch``         draw a batch (required for ``dls.show_batch``)
``show_results``       draw a batch with predictions (required for ``learn.show_results``)
``show_item``          draw one decoded item's inputs on a matplotlib axis (required for ``plot_top_losses``)
``test_dl``            a loader over new raw items through the validation pipeline (required for inference)
``spec()``             the fitted recipe as plain data with ``{'kind': kind, ...}`` (required for export)
``from_spec(spec)``    class method: rebuild from ``spec()`` (required for export)
=====================  ======================================================================================

A member marked "required" raises :class:`~learnkit.exceptions.DataError` naming the recipe and the
member when it is called but not implemented, so an application that does not draw, say, still trains.

>>> class Pairs(DataRecipe):
...     kind = "pairs"
...     def spec(self):
...         return {"kind": self.kind}
>>> Pairs().n_inp, Pairs().spec()
(1, {'kind': 'pairs'})
"""

from __future__ import annotations

from ..exceptions import DataError

__all__ = ["DataRecipe"]


class DataRecipe:
    """Base class of every data recipe (``dls.recipe``): see the module docstring for the members.

    Subclasses override what they support; the defaults make a recipe that trains but cannot show,
    infer on raw items or export until those members are written.

    Example: ``class MyRecipe(DataRecipe): ...`` then ``DataLoaders(train_dl, valid_dl, recipe=MyRecipe())``.
    """

    #: registered name of the recipe for export (``spec()['kind']``)
    kind: str = ""
    #: number of leading batch elements that are model inputs
    n_inp: int = 1
    #: the target's class names (or ``[input_vocab, target_vocab]`` for text); None when there are none
    vocab = None
    #: number of model outputs the target needs; None when the data cannot tell
    c: int | None = None
    #: the loss the target implies; None when the user must pass one
    loss_func = None

    def _missing(self, member: str, what: str) -> DataError:
        return DataError(
            f"The data recipe {type(self).__name__} does not implement {member}(), so it cannot {what}. "
            f"Expected a recipe that implements it. Fix: implement {type(self).__name__}.{member} "
            "(see learnkit.data.recipe.DataRecipe), or do this step with plain tensors."
        )

    # ---------------------------------------------------------------- what the target implies
    def default_metrics(self) -> list:
        """Metrics the target implies when the user passes none (default: none)."""
        return []

    # ---------------------------------------------------------------- batches
    def after_batch(self, batch, train: bool):
        """Batch transforms run on the device after collation (default: the batch unchanged)."""
        return batch

    def worker_collate(self, collate_fn, train: bool):
        """``collate_fn`` followed by the batch transforms, to run in CPU workers; ``None`` when not needed."""
        return None

    def decode_batch(self, batch, max_n: int | None = None) -> list[tuple]:
        """A batch back to a list of decoded item tuples (inputs then targets)."""
        raise self._missing("decode_batch", "decode batches")

    def decode_pred(self, decoded):
        """One item's decoded prediction -> what a user reads (e.g. the label). Default: unchanged."""
        return decoded

    # ---------------------------------------------------------------- showing
    def show_batch(self, batch, max_n: int = 9, **kwargs):
        """Draw (or return as a table) up to ``max_n`` decoded items of ``batch``."""
        raise self._missing("show_batch", "show batches")

    def show_results(self, batch, decoded_preds, max_n: int = 9, **kwargs):
        """Draw (or return as a table) items with their targets and predictions."""
        raise self._missing("show_results", "show results")

    def show_item(self, item: tuple, ax=None, **kwargs):
        """Draw the inputs of one decoded item (an element of :meth:`decode_batch`) on ``ax``."""
        raise self._missing("show_item", "draw single items (e.g. for plot_top_losses)")

    # ---------------------------------------------------------------- inference
    def test_dl(self, items, with_labels: bool = False, bs: int = 64, **kwargs):
        """A loader over new raw ``items`` through the validation pipeline."""
        raise self._missing("test_dl", "process raw items")

    def predict_dl(self, item):
        """A loader over one raw item, for :meth:`learnkit.Learner.predict` (default: ``test_dl([item])``)."""
        return self.test_dl([item], bs=1)

    # ---------------------------------------------------------------- export
    def spec(self) -> dict:
        """The fitted recipe as plain data (str, numbers, lists, dicts, tensors) with ``'kind'``."""
        raise self._missing("spec", "be exported")

    @classmethod
    def from_spec(cls, spec: dict) -> DataRecipe:
        """Rebuild the recipe from :meth:`spec` (used by ``load_learner``)."""
        raise DataError(
            f"The data recipe {cls.__name__} does not implement from_spec(), so load_learner cannot rebuild it. "
            f"Fix: implement the class method {cls.__name__}.from_spec."
        )
