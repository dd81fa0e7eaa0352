"""``tabular_learner``: a :class:`TabularModel` sized from the data, with the loss the target implies.

>>> learn = tabular_learner(dls, layers=[200, 100], metrics=accuracy)  # doctest: +SKIP
>>> learn.fit_one_cycle(3, 1e-2)                                        # doctest: +SKIP
>>> row, clas, probs = learn.predict(df.iloc[0])                        # doctest: +SKIP
"""

from __future__ import annotations

import pandas as pd
import torch

from ..exceptions import DataError, ModelError
from ..export import register_learner
from ..factory import finish_learner, n_out_from_data
from ..learner import Learner
from ..losses import loss_activation, loss_decodes
from ..models.registry import create_model
from .data import TabularRecipe
from .model import get_emb_sz, tabular_config

__all__ = ["tabular_learner", "TabularLearner", "tabular_splitter"]


def tabular_splitter(model) -> list:
    """One parameter group: a tabular net is trained from scratch, all at one learning rate.

    Example: ``Learner(dls, TabularModel(...), splitter=tabular_splitter)``.
    """
    return [list(model.parameters())]


class TabularLearner(Learner):
    """A :class:`~learnkit.Learner` whose ``predict`` takes one raw row and returns the fastai triple
    ``(decoded row with the prediction, class index or value, probabilities)``.

    Example: ``row, idx, probs = tabular_learner(dls).predict(df.iloc[0])``.
    """

    def predict(self, row, with_input: bool = False):
        """Predict one raw row (a Series, dict or one-row DataFrame).

        Returns ``(row, clas, probs)``: a one-row DataFrame of the decoded inputs with the prediction in the
        target column, the class index (or the value) as a tensor, and the probabilities (or the value).
        Multi-label: the row holds the predicted labels (a list in the label column, or 0/1 in each encoded
        column), ``clas`` one bool per label (``dls.recipe.decode_pred(clas)`` -> the labels) and ``probs``
        one probability per label.
        """
        recipe = self.dls.recipe
        if not isinstance(recipe, TabularRecipe):
            return super().predict(row, with_input=with_input)
        out, n = recipe.encode(row, with_y=False)
        if n != 1:
            raise DataError(
                f"Expected one row for predict. Received: {n} rows. Fix: use "
                "learn.get_preds(dl=learn.dls.test_dl(df)) for many rows."
            )
        x_cat, x_cont = recipe.encoded_tensors(out, n)
        self.model.eval()
        dev = next(self.model.parameters()).device
        with torch.no_grad():
            pred = self.model(x_cat.to(dev), x_cont.to(dev)).cpu()
        probs = loss_activation(self.loss_func, pred)
        dec = loss_decodes(self.loss_func, probs, activated=True)
        decoded = recipe.decode_columns({c: out[c] for c in recipe.cat_names + recipe.cont_names})
        if recipe.is_multi:
            decoded.update(recipe._decode_multi(dec[:1].reshape(1, -1).numpy()))
        elif recipe.to.y_kind == "category":
            decoded[recipe.y_names[0]] = [recipe.decode_pred(dec[0])]
        else:
            for name, v in zip(recipe.y_names, dec[0].reshape(-1).tolist()):
                decoded[name] = [v]
        full = pd.DataFrame([[v[0] for v in decoded.values()]], columns=list(decoded)).infer_objects()
        res = (full, dec[0], probs[0])
        return (*res, (x_cat, x_cont)) if with_input else res


def tabular_learner(
    dls, layers=None, emb_szs=None, config=None, n_out=None, y_range=None, loss_func=None, **kwargs
) -> TabularLearner:
    """A :class:`TabularLearner` with a :class:`TabularModel` for ``dls`` (from :class:`TabularDataLoaders`).

    Args:
        layers: hidden sizes (default ``[200, 100]``). emb_szs: ``{column: size}`` overrides of the course's rule.
        config: :func:`tabular_config` arguments for the model. n_out: outputs (default: from the target).
        y_range: ``(low, high)`` for a regression output through a sigmoid. loss_func: default from the target
            (``CrossEntropyLossFlat`` for categories, ``MSELossFlat`` for values, ``BCEWithLogitsLossFlat`` for
            multi-label targets, whose default metrics are ``[accuracy_multi]``).
        kwargs: go to :class:`~learnkit.Learner` (``metrics``, ``cbs``, ``opt_func``, ``wd``, ...).

    Example: ``learn = tabular_learner(dls, layers=[200, 100], metrics=accuracy); learn.fit_one_cycle(3)``.
    """
    recipe = getattr(dls, "recipe", None)
    if not isinstance(recipe, TabularRecipe):
        raise ModelError(
            f"Expected DataLoaders from TabularDataLoaders or TabularPandas.dataloaders(). Received: "
            f"{type(dls).__name__} with recipe {type(recipe).__name__}. Fix: build them with "
            "TabularDataLoaders.from_df(df, y_names=..., ...)."
        )
    config = tabular_config(**(config or {}))
    if y_range is None:
        y_range = config.pop("y_range", None)
    else:
        config.pop("y_range", None)
    layers = [200, 100] if layers is None else [int(n) for n in layers]
    n_out = n_out_from_data(dls, n_out, allow_other=loss_func is not None)
    emb = [list(e) for e in get_emb_sz(recipe, emb_szs)]
    ps = config.pop("ps", None)
    model = create_model(
        "tabular_model",
        emb_szs=emb,
        n_cont=len(recipe.cont_names),
        out_sz=n_out,
        layers=layers,
        ps=list(ps) if isinstance(ps, (list, tuple)) else ps,
        y_range=list(y_range) if y_range is not None else None,
        **config,
    )
    if kwargs.get("metrics") is None and recipe.default_metrics():
        kwargs["metrics"] = recipe.default_metrics()
    return finish_learner(
        dls,
        model,
        default_splitter=tabular_splitter,
        learner_cls=TabularLearner,
        loss_func=loss_func if loss_func is not None else recipe.loss_func,
        **kwargs,
    )


# load_learner gives back a TabularLearner, so predict(row) returns (decoded row, class, probabilities)
register_learner("tabular", "learnkit.tabular.learner:TabularLearner")
