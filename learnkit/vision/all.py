"""The notebook namespace for vision: ``from learnkit.vision.all import *``, as ``from fastai.vision.all
import *`` in course code.

It gives everything :mod:`learnkit.all` gives (the core's whole public API plus ``np``, ``pd``, ``plt``,
``torch``, ``nn``, ``F``, ``tensor``, ``Path`` with ``.ls()``, ``partial``, ``math``, ``random``, ``re``,
``os``, ``SimpleNamespace``, ...), the whole public API of :mod:`learnkit.vision` and its modules (data,
augment, models, learner, show), fastai's names kept for course code (``cnn_learner``, ``subplots``,
``resize_images``, ...), torchvision's model builders by name (``resnet34``, ``convnext_tiny``, ...),
``torchvision`` itself, and PIL's ``Image``.

>>> from learnkit.vision.all import *
>>> callable(vision_learner) and callable(cnn_learner) and Image.__name__
'PIL.Image'
"""

# ruff: noqa: F401  (the names imported here are re-exported through the computed __all__)
from __future__ import annotations

import torchvision
from PIL import Image

from .. import all as _core_all
from ..all import public_names

_VISION_MODULES = (
    "learnkit.vision",
    "learnkit.vision.data",
    "learnkit.vision.augment",
    "learnkit.vision.models",
    "learnkit.vision.learner",
    "learnkit.vision.show",
)

_core = {name: getattr(_core_all, name) for name in _core_all.__all__}
# torchvision's classification builders by name (resnet18, resnet34, convnext_tiny, ...), as course code uses them
_tv = {
    n: torchvision.models.get_model_builder(n)
    for n in torchvision.models.list_models(module=torchvision.models)
}
_vision = public_names(_VISION_MODULES)
globals().update(_core)
globals().update({k: v for k, v in _vision.items() if k not in _core_all.STANDARD_NAMES})
globals().update({k: v for k, v in _tv.items() if k not in _core and k not in _vision})

__all__ = sorted(set(_core) | set(_vision) | set(_tv) | {"Image", "torchvision"})
