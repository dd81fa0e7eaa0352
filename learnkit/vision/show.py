"""Drawing images, masks and points with matplotlib: one image, a grid of images, masks overlaid.

Everything accepts the forms an image takes in learnkit: a ``PIL.Image``, a numpy array (``HW``,
``HWC``), or a tensor (``CHW``, ``HW``; float in ``[0, 1]`` or ``uint8``). Functions return the axes (or
figure) they drew on, so they compose with plain matplotlib.

>>> import numpy as np
>>> ax = show_image(np.zeros((8, 8, 3)), title="black")
>>> ax.get_title()
'black'
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from ..exceptions import DataError

__all__ = [
    "image_to_array",
    "show_image",
    "show_mask",
    "show_points",
    "get_grid",
    "show_images",
    "subplots",
]


def image_to_array(img) -> np.ndarray:
    """An image as an array matplotlib can draw: ``(H, W)`` or ``(H, W, C)``, float in ``[0, 1]`` or ``uint8``.

    Channels-first tensors/arrays (``C`` in 1, 3, 4) are moved last; one channel is squeezed.

    >>> image_to_array(torch.zeros(3, 4, 5)).shape
    (4, 5, 3)
    """
    from PIL import Image

    if isinstance(img, Image.Image):
        if img.mode not in ("L", "RGB", "RGBA"):
            img = img.convert("RGBA" if "A" in img.mode else "RGB")
        return np.asarray(img)
    if isinstance(img, torch.Tensor):
        t = img.detach().cpu()
        if t.ndim == 3 and t.shape[0] in (1, 3, 4):
            t = t.permute(1, 2, 0)
        if t.dtype in (torch.float16, torch.bfloat16):
            t = t.float()
        arr = t.numpy()
    elif isinstance(img, np.ndarray):
        arr = img
        if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
            arr = arr.transpose(1, 2, 0)
    else:
        raise DataError(
            f"Expected an image (PIL image, numpy array or tensor). Received: img={type(img).__name__}. "
            "Fix: pass the image itself, e.g. PIL.Image.open(path)."
        )
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3):
        raise DataError(
            f"Expected an image of shape (H, W), (H, W, C) or (C, H, W). Received: shape={tuple(arr.shape)}. "
            "Fix: show one image at a time, or use show_images for a batch."
        )
    if arr.dtype == np.bool_:
        arr = arr.astype(np.float32)
    if np.issubdtype(arr.dtype, np.floating):
        arr = np.clip(arr, 0.0, 1.0)
    elif arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    return arr


def show_image(
    img,
    ax=None,
    figsize=None,
    title: str | None = None,
    cmap: str | None = None,
    alpha: float | None = None,
    title_color: str | None = None,
    **kwargs,
):
    """Draw one image on ``ax`` (a new figure when ``None``) with no axis ticks; returns the axes.

    Grayscale images use the ``'gray'`` colour map unless ``cmap`` says otherwise.

    >>> show_image(torch.rand(1, 16, 16), title="noise").get_title()
    'noise'
    """
    import matplotlib.pyplot as plt

    arr = image_to_array(img)
    if ax is None:
        _, ax = plt.subplots(figsize=figsize or (3, 3))
    if arr.ndim == 2 and cmap is None:
        cmap = "gray"
        kwargs.setdefault("vmin", 0)
        kwargs.setdefault("vmax", 255 if arr.dtype == np.uint8 else 1)
    ax.imshow(arr, cmap=cmap, alpha=alpha, **kwargs)
    ax.set_xticks([])
    ax.set_yticks([])
    for s in ax.spines.values():
        s.set_visible(False)
    if title is not None:
        ax.set_title(str(title), **({} if title_color is None else {"color": title_color}))
    return ax


def show_mask(
    mask,
    ax=None,
    figsize=None,
    title: str | None = None,
    alpha: float = 0.5,
    cmap: str = "tab20",
    n_codes: int | None = None,
    **kwargs,
):
    """Overlay a segmentation mask (class codes per pixel) on ``ax`` with a categorical colour map.

    Class 0 (usually background) stays see-through. ``n_codes`` fixes the colour scale so the same class
    gets the same colour in every panel.

    >>> ax = show_image(np.zeros((4, 4, 3)))
    >>> show_mask(np.eye(4, dtype=np.int64), ax=ax, n_codes=2) is ax
    True
    """
    import matplotlib.pyplot as plt

    if isinstance(mask, torch.Tensor):
        m = mask.detach().cpu().numpy()
    else:
        m = np.asarray(mask)
    if m.ndim == 3 and m.shape[0] == 1:
        m = m[0]
    if m.ndim != 2:
        raise DataError(
            f"Expected a mask of shape (H, W). Received: shape={tuple(m.shape)}. Fix: show one mask at a time."
        )
    if ax is None:
        _, ax = plt.subplots(figsize=figsize or (3, 3))
        ax.set_xticks([])
        ax.set_yticks([])
    vmax = max(1, (n_codes - 1) if n_codes else int(m.max()) if m.size else 1)
    shown = np.ma.masked_where(m == 0, m.astype(np.float32))
    ax.imshow(shown, cmap=cmap, alpha=alpha, vmin=0, vmax=vmax, interpolation="nearest", **kwargs)
    if title is not None:
        ax.set_title(str(title))
    return ax


def show_points(points, ax=None, color: str = "red", size: float = 20, **kwargs):
    """Scatter ``(n, 2)`` ``(x, y)`` pixel coordinates on ``ax`` (points that are NaN are left out).

    >>> ax = show_image(np.zeros((8, 8)))
    >>> show_points(torch.tensor([[2.0, 3.0]]), ax=ax) is ax
    True
    """
    import matplotlib.pyplot as plt

    p = (
        points.detach().cpu().float().numpy()
        if isinstance(points, torch.Tensor)
        else np.asarray(points, float)
    )
    p = p.reshape(-1, 2)
    if ax is None:
        _, ax = plt.subplots(figsize=(3, 3))
    keep = ~np.isnan(p).any(1)
    # pixel (r, c) covers [c, c+1) x [r, r+1) while imshow centres it on (c, r): shift by half a pixel
    ax.scatter(p[keep, 0] - 0.5, p[keep, 1] - 0.5, s=size, c=color, marker="x", **kwargs)
    return ax


def get_grid(
    n: int,
    nrows: int | None = None,
    ncols: int | None = None,
    figsize=None,
    imsize: float = 3.0,
    title: str | None = None,
):
    """A figure with a grid of at least ``n`` axes: returns ``(fig, axes)`` with ``axes`` a flat list of ``n``
    (the unused ones are hidden).

    >>> fig, axes = get_grid(5)
    >>> len(axes)
    5
    """
    import matplotlib.pyplot as plt

    n = max(1, int(n))
    if nrows is None and ncols is None:
        ncols = math.ceil(math.sqrt(n))
    if nrows is None:
        nrows = math.ceil(n / ncols)
    if ncols is None:
        ncols = math.ceil(n / nrows)
    fig, axs = plt.subplots(nrows, ncols, figsize=figsize or (ncols * imsize, nrows * imsize), squeeze=False)
    flat = list(axs.flat)
    for ax in flat[n:]:
        ax.set_axis_off()
    if title is not None:
        fig.suptitle(title)
    return fig, flat[:n]


def show_images(
    imgs: Sequence,
    nrows: int | None = None,
    ncols: int | None = None,
    titles=None,
    figsize=None,
    imsize: float = 3.0,
    suptitle: str | None = None,
    **kwargs,
):
    """Draw a grid of images (a list, or a ``(B, C, H, W)`` tensor) with optional ``titles``; returns the figure.

    >>> fig = show_images(torch.rand(4, 3, 8, 8), titles=list("abcd"))
    >>> [ax.get_title() for ax in fig.axes]
    ['a', 'b', 'c', 'd']
    """
    imgs = list(imgs)
    titles = list(titles) if titles is not None else [None] * len(imgs)
    if len(titles) != len(imgs):
        raise DataError(
            f"Expected one title per image. Received: {len(imgs)} images and {len(titles)} titles. "
            "Fix: pass titles=None or a list as long as the images."
        )
    fig, axes = get_grid(len(imgs), nrows, ncols, figsize=figsize, imsize=imsize, title=suptitle)
    for img, t, ax in zip(imgs, titles, axes):
        show_image(img, ax=ax, title=t, **kwargs)
    return fig


def subplots(
    nrows: int = 1, ncols: int = 1, figsize=None, imsize: float = 3.0, suptitle: str | None = None, **kwargs
):
    """``plt.subplots`` sized ``imsize`` inches per axes by default; returns ``(fig, axs)`` (axs an array,
    a single axes when ``nrows == ncols == 1``).

    >>> fig, axs = subplots(2, 3)
    >>> axs.shape
    (2, 3)
    """
    import matplotlib.pyplot as plt

    fig, axs = plt.subplots(nrows, ncols, figsize=figsize or (ncols * imsize, nrows * imsize), **kwargs)
    if suptitle is not None:
        fig.suptitle(suptitle)
    return fig, axs
