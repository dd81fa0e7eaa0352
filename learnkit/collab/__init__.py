"""learnkit.collab: collaborative filtering on ratings tables (loaders, latent-factor models, recommending).

``from learnkit.collab import *`` brings everything a recommender notebook needs (the names in ``__all__``):

>>> from learnkit.collab import *
>>> dls = CollabDataLoaders.from_df(ratings, item_name="title", bs=64)   # doctest: +SKIP
>>> learn = collab_learner(dls, n_factors=50, y_range=(0, 5.5))         # doctest: +SKIP
>>> learn.fit_one_cycle(5, 5e-3, wd=0.1)                                 # doctest: +SKIP
>>> learn.recommend(user, n=10); learn.most_similar("Toy Story (1995)")  # doctest: +SKIP
"""

from ..callbacks.core import Callback
from ..callbacks.progress import ProgressCallback, Recorder
from ..callbacks.schedule import LRFinder, ParamScheduler, minimum, slide, steep, valley
from ..callbacks.tracker import Checkpoint, EarlyStopping, ReduceLROnPlateau, SaveModel
from ..callbacks.training import GradientAccumulation, GradientClip, MixedPrecision
from ..data.loaders import DataLoaders, TensorLoader
from ..device import default_device, set_seed
from ..export import load_learner
from ..learner import Learner
from ..losses import L1LossFlat, MSELossFlat
from ..metrics import mae, mse, rmse
from ..models.registry import create_model, list_models, register_model
from ..optim import SGD, Adam, RMSProp
from .data import NA, CollabDataLoaders, CollabRecipe
from .learner import CollabLearner, collab_learner, plot_item_factors
from .models import EmbeddingDotBias, EmbeddingNN, emb_sz_rule, get_emb_sz, sigmoid_range

__all__ = [
    # data
    "CollabDataLoaders",
    "CollabRecipe",
    "NA",
    "DataLoaders",
    "TensorLoader",
    # models
    "EmbeddingDotBias",
    "EmbeddingNN",
    "sigmoid_range",
    "get_emb_sz",
    "emb_sz_rule",
    "create_model",
    "list_models",
    "register_model",
    # learner
    "collab_learner",
    "CollabLearner",
    "plot_item_factors",
    "Learner",
    "load_learner",
    "Callback",
    "Recorder",
    "ProgressCallback",
    "ParamScheduler",
    "LRFinder",
    "valley",
    "slide",
    "minimum",
    "steep",
    "Checkpoint",
    "EarlyStopping",
    "ReduceLROnPlateau",
    "SaveModel",
    "MixedPrecision",
    "GradientAccumulation",
    "GradientClip",
    "Adam",
    "SGD",
    "RMSProp",
    "default_device",
    "set_seed",
    "mse",
    "mae",
    "rmse",
    "MSELossFlat",
    "L1LossFlat",
]
