"""learnkit.collab: collaborative filtering on ratings tables (loaders, latent-factor models, recommending).

``from learnkit.collab import *`` brings everything a recommender notebook needs (the names in ``__all__``):

>>> from learnkit.collab import *
>>> dls = CollabDataLoaders.from_df(ratings, item_name="title", bs=64)   # doctest: +SKIP
>>> learn = collab_learner(dls, n_factors=50, y_range=(0, 5.5))         # doctest: +SKIP
>>> learn.fit_one_cycle(5, 5e-3, wd=0.1)                                 # doctest: +SKIP
>>> learn.recommend(user, n=10); learn.most_similar("Toy Story (1995)")  # doctest: +SKIP
"""

from .. import *  # the core's public API (learnkit.__all__)
from .. import __all__ as _core_all
from .data import NA, CollabDataLoaders, CollabRecipe
from .learner import CollabLearner, collab_learner, plot_item_factors
from .models import EmbeddingDotBias, EmbeddingNN, emb_sz_rule, get_emb_sz, sigmoid_range

__all__ = [
    "CollabDataLoaders",
    "CollabRecipe",
    "NA",
    "EmbeddingDotBias",
    "EmbeddingNN",
    "sigmoid_range",
    "get_emb_sz",
    "emb_sz_rule",
    "collab_learner",
    "CollabLearner",
    "plot_item_factors",
]
__all__ = list(dict.fromkeys([*__all__, *_core_all]))
