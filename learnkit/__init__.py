"""learnkit: a fast, safe, readable high-level training library on plain PyTorch.

``__all__`` is the core's public surface; applications re-export it (``learnkit.vision.__all__`` starts
from it), so a name added here reaches every ``from learnkit.<app> import *``.

>>> from learnkit import Learner, DataLoaders
"""

__version__ = "0.1.0"

from .callbacks.checkpoint import Resume
from .callbacks.core import Callback
from .callbacks.graph import ShowGraph, ShowGraphCallback
from .callbacks.loggers import CSVLogger, MLflowLogger, TensorBoardLogger
from .callbacks.mixup import CutMix, MixUp
from .callbacks.profile import Profile
from .callbacks.progress import ProgressCallback, Recorder, TrainEvalCallback
from .callbacks.schedule import (
    LRFinder,
    ParamScheduler,
    SchedCos,
    SchedExp,
    SchedLin,
    SchedNo,
    SuggestedLRs,
    combined_cos,
    minimum,
    slide,
    steep,
    valley,
)
from .callbacks.tracker import (
    Checkpoint,
    EarlyStopping,
    EarlyStoppingCallback,
    ReduceLROnPlateau,
    SaveModel,
    SaveModelCallback,
    TerminateOnNaN,
    TerminateOnNaNCallback,
)
from .callbacks.training import BnFreeze, ChannelsLast, GradientAccumulation, GradientClip, MixedPrecision
from .data import *
from .data import __all__ as _data_all
from .data.loaders import DataLoaders, TensorLoader
from .device import default_device, set_seed, to_device
from .exceptions import *
from .exceptions import __all__ as _exc_all
from .export import load_learner
from .factory import finish_learner, n_out_from_data
from .hooks import *
from .hooks import __all__ as _hooks_all
from .learner import Learner
from .losses import *
from .losses import __all__ as _loss_all
from .metrics import *
from .metrics import __all__ as _metric_all
from .models.registry import create_model, list_models, register_model
from .optim import *
from .optim import __all__ as _optim_all
from .utils import L, LPath, tensor

__all__ = (
    [
        "__version__",
        "Learner",
        "load_learner",
        "DataLoaders",
        "TensorLoader",
        "Callback",
        "TrainEvalCallback",
        "Recorder",
        "ProgressCallback",
        "ParamScheduler",
        "LRFinder",
        "SchedCos",
        "SchedLin",
        "SchedExp",
        "SchedNo",
        "combined_cos",
        "valley",
        "slide",
        "minimum",
        "steep",
        "Checkpoint",
        "EarlyStopping",
        "ReduceLROnPlateau",
        "SaveModel",
        "TerminateOnNaN",
        "CSVLogger",
        "TensorBoardLogger",
        "MLflowLogger",
        "ShowGraph",
        "ShowGraphCallback",
        "SuggestedLRs",
        "Resume",
        "SaveModelCallback",
        "EarlyStoppingCallback",
        "TerminateOnNaNCallback",
        "finish_learner",
        "n_out_from_data",
        "L",
        "LPath",
        "tensor",
        "CutMix",
        "MixUp",
        "Profile",
        "BnFreeze",
        "ChannelsLast",
        "GradientAccumulation",
        "GradientClip",
        "MixedPrecision",
        "default_device",
        "set_seed",
        "to_device",
        "register_model",
        "create_model",
        "list_models",
    ]
    + [n for n in _data_all if n not in ("DataLoaders", "TensorLoader")]
    + list(_exc_all)
    + list(_loss_all)
    + list(_metric_all)
    + list(_hooks_all)
    + list(_optim_all)
)
