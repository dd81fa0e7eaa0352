"""The notebook namespace for collaborative filtering: ``from learnkit.collab.all import *`` gives the whole
public API of :mod:`learnkit.collab` plus ``np, pd, plt, torch, nn, F, Path, partial``.

>>> from learnkit.collab.all import *
>>> callable(collab_learner), pd.__name__
(True, 'pandas')
"""

from functools import partial
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from . import *  # noqa: F403  (the notebook namespace is the point of this module)
from . import __all__ as _collab_all

__all__ = ["np", "pd", "plt", "torch", "nn", "F", "Path", "partial", *_collab_all]
