"""Callbacks: the loop's extension points (see :mod:`learnkit.callbacks.core`)."""

from .core import ALL_EVENTS, EVENTS, Callback
from .loggers import CSVLogger, TensorBoardLogger
from .mixup import CutMix, MixedLoss, MixUp
from .profile import Profile
from .progress import GatherPreds, ProgressCallback, Recorder, TrainEvalCallback
from .schedule import LRFinder, ParamScheduler, combined_cos, minimum, slide, steep, valley
from .tracker import Checkpoint, EarlyStopping, MonitorCallback, ReduceLROnPlateau, SaveModel, TerminateOnNaN
from .training import BnFreeze, ChannelsLast, GradientAccumulation, GradientClip, MixedPrecision, ShortEpoch

__all__ = [
    "ALL_EVENTS",
    "EVENTS",
    "Callback",
    "GatherPreds",
    "ProgressCallback",
    "Recorder",
    "TrainEvalCallback",
    "LRFinder",
    "ParamScheduler",
    "combined_cos",
    "minimum",
    "slide",
    "steep",
    "valley",
    "Checkpoint",
    "EarlyStopping",
    "MonitorCallback",
    "ReduceLROnPlateau",
    "SaveModel",
    "TerminateOnNaN",
]
