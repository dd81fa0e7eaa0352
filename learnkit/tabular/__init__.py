"""learnkit.tabular: tables preprocessed once, fast tabular loaders, tabular_learner, random forests.

``from learnkit.tabular import *`` brings everything a tabular notebook needs (the names in ``__all__``,
the core API included):

>>> from learnkit.tabular import *
>>> dls = TabularDataLoaders.from_csv(path/'adult.csv', y_names='salary', cat_names=cat, cont_names=cont,  # doctest: +SKIP
...                                   procs=[Categorify, FillMissing, Normalize], bs=64)
>>> learn = tabular_learner(dls, layers=[200, 100], metrics=accuracy)  # doctest: +SKIP
>>> m = random_forest(to.train.xs, to.train.y)                          # doctest: +SKIP
"""

from .. import *  # the core's public API (learnkit.__all__)
from .. import __all__ as _core_all
from .core import (
    HIGH_CARDINALITY,
    NA_NAME,
    Categorify,
    FillMissing,
    FillStrategy,
    Normalize,
    TabularPandas,
    TabularProc,
    add_datepart,
    cont_cat_split,
    df_shrink,
)
from .data import (
    TabularDataLoaders,
    TabularRecipe,
    tabular_tensors,
)
from .forest import (
    FOREST_FORMAT,
    cluster_columns,
    feature_importance,
    get_oob,
    load_forest,
    oob_drop_scores,
    out_of_domain,
    plot_fi,
    plot_partial_dependence,
    random_forest,
    save_forest,
    tree_contributions,
    waterfall_plot,
)
from .forest import __all__ as _forest_all
from .learner import (
    TabularLearner,
    tabular_learner,
    tabular_splitter,
)
from .model import (
    SigmoidRange,
    TabularModel,
    emb_sz_rule,
    get_emb_sz,
    tabular_config,
    tabular_model,
)

__all__ = [
    "TabularPandas",
    "TabularProc",
    "Categorify",
    "FillMissing",
    "FillStrategy",
    "Normalize",
    "cont_cat_split",
    "add_datepart",
    "df_shrink",
    "NA_NAME",
    "HIGH_CARDINALITY",
    "TabularDataLoaders",
    "TabularRecipe",
    "tabular_tensors",
    "TabularModel",
    "tabular_model",
    "emb_sz_rule",
    "get_emb_sz",
    "SigmoidRange",
    "tabular_config",
    "tabular_learner",
    "TabularLearner",
    "tabular_splitter",
    *_forest_all,
]
__all__ = list(dict.fromkeys([*__all__, *_core_all]))
