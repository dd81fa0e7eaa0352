"""The text notebook namespace: ``from learnkit.text.all import *`` gives the whole text API plus the usual
notebook names (``np``, ``pd``, ``plt``, ``torch``, ``nn``, ``F``, ``Path``, ``partial``, ...).

>>> from learnkit.text.all import *
>>> Path, np.__name__, TextDataLoaders.__name__
(<class 'pathlib.Path'>, 'numpy', 'TextDataLoaders')
"""

import math
import os
import random
import re
from collections import Counter, defaultdict
from functools import partial
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from . import *  # noqa: F403
from . import __all__ as _text_all

__all__ = [
    *_text_all,
    "math",
    "os",
    "random",
    "re",
    "Counter",
    "defaultdict",
    "partial",
    "Path",
    "plt",
    "np",
    "pd",
    "torch",
    "F",
    "nn",
]
