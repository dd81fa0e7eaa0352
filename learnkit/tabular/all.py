"""The tabular notebook namespace: ``from learnkit.tabular.all import *`` gives numpy (``np``), pandas (``pd``),
matplotlib (``plt``), ``torch``, ``nn``, ``F``, ``Path``, ``partial`` and everything in :mod:`learnkit.tabular`.

>>> from learnkit.tabular.all import *
>>> pd.__name__, TabularPandas.__name__
('pandas', 'TabularPandas')
"""

import math
from functools import partial
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from . import __all__ as _tab_all

__all__ = ["math", "np", "pd", "plt", "torch", "nn", "F", "Path", "partial"] + list(_tab_all)
