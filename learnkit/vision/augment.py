"""Image augmentation: PIL item transforms (per sample, in the workers) and vectorised batch transforms.

Item transforms (:class:`Resize`, :class:`RandomResizedCrop`, :class:`CenterCrop`, :class:`RandomCrop`,
:class:`FlipItem`) work on ``PIL.Image`` items; they draw their random parameters once per sample and
apply them identically to its ``'image'`` elements (``resamples[0]``, bilinear by default), ``'mask'``
elements (``resamples[1]``, nearest) and ``'points'`` (moved exactly). On the validation set
(``train=False``) they are deterministic (centre crops).

Batch transforms run on the device on whole batches, with no per-item Python. The geometric ones
(:class:`Flip`, :class:`Dihedral`, :class:`Rotate`, :class:`Zoom`, :class:`Warp`,
:class:`RandomResizedCropGPU`) each give one 3x3 matrix per image; :class:`AffineCoordTfm` multiplies
them into one projective map per image (the perspective :class:`Warp` is a homography, so it joins the
same matrix) and samples every image of the batch with a single ``F.grid_sample``. Masks are sampled with
``'nearest'`` on the same grid and keep their integer dtype; points are moved by the inverse matrix, so
they stay on the same image features. :class:`Brightness` and :class:`Contrast` act in logit space and
compose in :class:`LightingTfm`. :func:`aug_transforms` builds the usual set.

Points are ``(x, y)`` pixel coordinates with pixel ``(r, c)`` covering ``[c, c+1) x [r, r+1)``, both
before and after every transform (see :mod:`learnkit.data.transforms`).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..data.transforms import BatchTransform, ItemTransform, register_transform
from ..exceptions import DataError
from ..utils import listify, suggest

__all__ = [
    "pil_to_uint8_tensor",
    "mask_to_tensor",
    "Resize",
    "ResizeMethod",
    "PadMode",
    "RandomResizedCrop",
    "CenterCrop",
    "RandomCrop",
    "FlipItem",
    "SpatialTransform",
    "Flip",
    "Dihedral",
    "Rotate",
    "Zoom",
    "Warp",
    "RandomResizedCropGPU",
    "AffineCoordTfm",
    "LightingTransform",
    "Brightness",
    "Contrast",
    "LightingTfm",
    "Saturation",
    "Hue",
    "RandomErasing",
    "setup_aug_tfms",
    "aug_transforms",
    "TRANSFORMS",
]

_RESIZE_METHODS = ("crop", "pad", "squish")
_PAD_MODES = ("reflection", "zeros", "border")
_SAMPLE_MODES = ("bilinear", "nearest", "bicubic")
_NP_PAD = {"reflection": "symmetric", "zeros": "constant", "border": "edge"}


# ------------------------------------------------------------------------------------------- checks
def _size2(size, name: str = "size") -> tuple[int, int] | None:
    """``int`` or ``(h, w)`` -> ``(h, w)``; ``None`` stays ``None``."""
    if size is None:
        return None
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        size = (int(size), int(size))
    if (
        isinstance(size, (tuple, list))
        and len(size) == 2
        and all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0 for s in size)
    ):
        return (int(size[0]), int(size[1]))
    raise DataError(
        f"Expected {name} to be a positive int or a (height, width) pair of positive ints. "
        f"Received: {name}={size!r}. Fix: e.g. {name}=224 or {name}=(224, 320)."
    )


def _choice(value, choices: Sequence[str], name: str) -> str:
    if value not in choices:
        raise DataError(
            f"Expected {name} to be one of {list(choices)}. Received: {name}={value!r}.{suggest(str(value), choices)}"
        )
    return value


def _number(value, name: str, lo: float | None = None, hi: float | None = None, lo_open=False, hi_open=False):
    ok = isinstance(value, (int, float, np.number)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and lo is not None:
        ok = value > lo if lo_open else value >= lo
    if ok and hi is not None:
        ok = value < hi if hi_open else value <= hi
    if not ok:
        rng = f"{'(' if lo_open else '['}{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}{')' if hi_open else ']'}"
        raise DataError(
            f"Expected {name} to be a number in {rng}. Received: {name}={value!r}. Fix: pick a value in {rng}."
        )
    return float(value)


def _ratio(ratio) -> tuple[float, float]:
    if (
        isinstance(ratio, (tuple, list))
        and len(ratio) == 2
        and all(isinstance(r, (int, float)) and r > 0 for r in ratio)
        and ratio[0] <= ratio[1]
    ):
        return (float(ratio[0]), float(ratio[1]))
    raise DataError(
        f"Expected ratio to be a (low, high) pair of positive numbers with low <= high. Received: ratio={ratio!r}. "
        "Fix: e.g. ratio=(3/4, 4/3)."
    )


# ------------------------------------------------------------------------------- tensor conversion
def pil_to_uint8_tensor(img: Image.Image) -> torch.Tensor:
    """A PIL image as a ``(C, H, W)`` ``uint8`` tensor (``'L'`` -> 1 channel, ``'RGB'`` -> 3, ``'RGBA'`` -> 4).

    Palette and other 8-bit colour modes are converted to RGB first.

    >>> pil_to_uint8_tensor(Image.new("RGB", (5, 4))).shape
    torch.Size([3, 4, 5])
    """
    if not isinstance(img, Image.Image):
        raise DataError(
            f"Expected a PIL image. Received: img={type(img).__name__}. Fix: open images with PIL.Image.open."
        )
    if img.mode in ("P", "PA", "CMYK", "YCbCr", "HSV", "LAB", "RGBX", "RGBa", "La"):
        img = img.convert("RGBA" if img.mode in ("PA", "RGBa") or "transparency" in img.info else "RGB")
    elif img.mode == "1":
        img = img.convert("L")
    elif img.mode not in ("L", "LA", "RGB", "RGBA"):
        raise DataError(
            f"Expected an 8-bit image (mode 'L', 'RGB' or 'RGBA'). Received: mode={img.mode!r}. "
            "Fix: convert it when opening, e.g. Image.open(path).convert('RGB'); masks go through mask_to_tensor."
        )
    arr = np.array(img, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


def mask_to_tensor(mask: Image.Image) -> torch.Tensor:
    """A segmentation mask (PIL mode ``'L'``, ``'P'``, ``'I'``, ``'I;16'`` or ``'1'``) as an ``(H, W)`` ``int64`` tensor.

    For ``'P'`` masks the values are the palette indices (the class codes), not colours.

    >>> mask_to_tensor(Image.new("L", (3, 2), 1)).tolist()
    [[1, 1, 1], [1, 1, 1]]
    """
    if not isinstance(mask, Image.Image):
        raise DataError(
            f"Expected a PIL mask image. Received: mask={type(mask).__name__}. Fix: open it with PIL."
        )
    if mask.mode not in ("L", "P", "I", "I;16", "I;16L", "I;16B", "1"):
        raise DataError(
            f"Expected a single-channel mask (mode 'L', 'P' or 'I'). Received: mode={mask.mode!r}. "
            "Fix: save masks as 8-bit grayscale or palette PNGs whose pixel values are class codes."
        )
    arr = np.array(mask)
    return torch.from_numpy(arr.astype(np.int64, copy=False))


# ---------------------------------------------------------------------------------- item transforms
class _Geom(NamedTuple):
    """One per-sample geometric operation: resample ``box`` (input pixels) to ``out``, pad, flip."""

    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in input pixel coordinates
    out: tuple[int, int]  # (w, h) after the crop/resize
    crop: bool  # True: integer box of size ``out``, cut without resampling (zeros outside the image)
    pad: tuple[int, int, int, int]  # left, top, right, bottom
    flip: bool  # horizontal flip at the end


def _pad_pil(img: Image.Image, pad: tuple[int, int, int, int], pad_mode: str) -> Image.Image:
    left, top, right, bottom = pad
    arr = np.asarray(img)
    widths = [(top, bottom), (left, right)] + [(0, 0)] * (arr.ndim - 2)
    arr = np.pad(arr, widths, mode=_NP_PAD[pad_mode])
    h, w = arr.shape[:2]
    if img.mode == "1":
        return Image.fromarray(arr.astype(np.uint8) * 255).convert("1")
    out = Image.frombytes(img.mode, (w, h), np.ascontiguousarray(arr).tobytes())
    if img.mode in ("P", "PA"):
        out.putpalette(img.getpalette())
    return out


def _apply_pil(img, g: _Geom, resample, pad_mode: str):
    w, h = img.size
    if g.crop:
        img = img.crop(tuple(int(v) for v in g.box))
    elif g.out != (w, h) or g.box != (0, 0, w, h):
        img = img.resize(g.out, resample, box=g.box)
    if any(g.pad):
        img = _pad_pil(img, g.pad, pad_mode)
    if g.flip:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return img


def _apply_points(p, g: _Geom):
    p = torch.as_tensor(p)
    if not p.is_floating_point():
        p = p.float()
    if p.ndim != 2 or p.shape[-1] != 2:
        raise DataError(
            f"Expected points as a float tensor of shape (n, 2) of (x, y) pixel coordinates. "
            f"Received: points shape={tuple(p.shape)}. Fix: reshape the points to (n, 2)."
        )
    x0, y0, x1, y1 = g.box
    sx, sy = g.out[0] / (x1 - x0), g.out[1] / (y1 - y0)
    x = (p[:, 0] - x0) * sx + g.pad[0]
    y = (p[:, 1] - y0) * sy + g.pad[1]
    if g.flip:
        x = (g.out[0] + g.pad[0] + g.pad[2]) - x
    return torch.stack([x, y], 1).to(p.dtype)


def _item_size(sample, kinds, who: str) -> tuple[int, int] | None:
    size = None
    for x, k in zip(sample, kinds):
        if k not in ("image", "mask"):
            continue
        if not isinstance(x, Image.Image):
            raise DataError(
                f"Expected the {k} to be a PIL image in item transforms. Received: {k}={type(x).__name__} "
                f"in {who}. Fix: item transforms run before the image is converted to a tensor; "
                "put tensor conversions after them (order >= 10) or use batch transforms."
            )
        if size is None:
            size = x.size
        elif x.size != size:
            raise DataError(
                f"Expected every image and mask of a sample to have the same size. Received: sizes {size} and "
                f"{x.size} (width, height) in {who}. Fix: make masks the size of their images."
            )
    return size


class _PILGeometry(ItemTransform):
    """Shared machinery: ``params`` draws one :class:`_Geom` per sample, applied to every element."""

    order = 1
    resamples = (Image.Resampling.BILINEAR, Image.Resampling.NEAREST)
    pad_mode = "zeros"

    def params(self, w: int, h: int, train: bool) -> _Geom | None:
        """The geometry for one sample (``None``: leave it alone). Each item transform subclass implements it."""
        raise NotImplementedError(  # abstract base: subclasses must implement it
            f"{type(self).__name__} must implement params(w, h, train) (abstract base)."
        )

    def __call__(self, sample: tuple, kinds: tuple[str, ...], train: bool) -> tuple:
        size = _item_size(sample, kinds, type(self).__name__)
        if size is None:
            return sample
        g = self.params(size[0], size[1], train)
        if g is None:
            return sample
        out = []
        for x, k in zip(sample, kinds):
            if k == "image":
                x = _apply_pil(x, g, self.resamples[0], self.pad_mode)
            elif k == "mask":
                x = _apply_pil(x, g, self.resamples[1], self.pad_mode)
            elif k == "points":
                x = _apply_points(x, g)
            out.append(x)
        return tuple(out)


def _aspect_box(w: float, h: float, aspect: float) -> tuple[float, float]:
    """The largest (width, height) with ``width / height == aspect`` that fits in ``w x h``."""
    if w / h > aspect:
        return min(h * aspect, w), h
    return w, min(w / aspect, h)


def _resamples(resamples) -> tuple[Image.Resampling, Image.Resampling]:
    try:
        a, b = resamples
        return (Image.Resampling(int(a)), Image.Resampling(int(b)))
    except (TypeError, ValueError):
        raise DataError(
            "Expected resamples to be a pair of PIL resampling filters (image, mask). "
            f"Received: resamples={resamples!r}. Fix: e.g. (Image.Resampling.BILINEAR, Image.Resampling.NEAREST)."
        ) from None


class ResizeMethod:
    """fastai's names for ``Resize(method=...)``: ``ResizeMethod.Squish`` is ``'squish'``, and so on.

    >>> Resize(32, method=ResizeMethod.Pad).method
    'pad'
    """

    Crop = "crop"
    Pad = "pad"
    Squish = "squish"


class PadMode:
    """fastai's names for ``pad_mode=...``: ``PadMode.Zeros`` is ``'zeros'``, and so on.

    >>> Resize(32, method="pad", pad_mode=PadMode.Zeros).pad_mode
    'zeros'
    """

    Zeros = "zeros"
    Border = "border"
    Reflection = "reflection"


class Resize(_PILGeometry):
    """Resize every item to ``size`` (int or ``(h, w)``).

    ``method='crop'`` scales to cover ``size`` and crops (random position on train, centre on valid);
    ``'pad'`` scales to fit inside and letterboxes with ``pad_mode`` (``'reflection'``, ``'zeros'``,
    ``'border'``); ``'squish'`` stretches. Images use ``resamples[0]``, masks ``resamples[1]``.

    >>> Resize(32)((Image.new("RGB", (64, 48)),), ("image",), train=False)[0].size
    (32, 32)
    """

    def __init__(
        self,
        size,
        method: str = "crop",
        pad_mode: str = "reflection",
        resamples=(Image.Resampling.BILINEAR, Image.Resampling.NEAREST),
    ):
        self.size = _size2(size)
        self.method = _choice(method, _RESIZE_METHODS, "method")
        self.pad_mode = _choice(pad_mode, _PAD_MODES, "pad_mode")
        self.resamples = _resamples(resamples)

    def params(self, w: int, h: int, train: bool) -> _Geom | None:
        th, tw = self.size
        if (w, h) == (tw, th):
            return None
        full = (0.0, 0.0, float(w), float(h))
        if self.method == "squish":
            return _Geom(full, (tw, th), False, (0, 0, 0, 0), False)
        if self.method == "pad":
            s = min(tw / w, th / h)
            nw, nh = min(tw, max(1, round(w * s))), min(th, max(1, round(h * s)))
            left, top = (tw - nw) // 2, (th - nh) // 2
            return _Geom(full, (nw, nh), False, (left, top, tw - nw - left, th - nh - top), False)
        cw, ch = _aspect_box(w, h, tw / th)
        px, py = (random.random(), random.random()) if train else (0.5, 0.5)
        x0, y0 = px * (w - cw), py * (h - ch)
        return _Geom((x0, y0, x0 + cw, y0 + ch), (tw, th), False, (0, 0, 0, 0), False)

    def spec_kwargs(self) -> dict:
        return {
            "size": list(self.size),
            "method": self.method,
            "pad_mode": self.pad_mode,
            "resamples": [int(r) for r in self.resamples],
        }

    @property
    def name(self) -> str:
        """A readable name with the settings, as fastai prints it: ``"Resize -- {'size': (32, 32), ...}"``."""
        settings = {"size": self.size, "method": self.method, "pad_mode": self.pad_mode}
        return f"Resize -- {settings}"


class RandomResizedCrop(_PILGeometry):
    """On train, crop a random box (area ``min_scale..1`` of the image, aspect jittered by ``ratio``) and resize it to ``size``.

    ``ratio`` is relative to the aspect of ``size`` (``(1, 1)``: never stretch). On valid, the centre box
    of ``size``'s aspect, shrunk by ``1 / (1 + val_xtra)`` per side, is resized to ``size``.

    >>> RandomResizedCrop(24)((Image.new("RGB", (64, 48)),), ("image",), train=True)[0].size
    (24, 24)
    """

    def __init__(self, size, min_scale: float = 0.08, ratio=(3 / 4, 4 / 3), val_xtra: float = 0.14):
        self.size = _size2(size)
        self.min_scale = _number(min_scale, "min_scale", 0, 1, lo_open=True)
        self.ratio = _ratio(ratio)
        self.val_xtra = _number(val_xtra, "val_xtra", 0)

    def params(self, w: int, h: int, train: bool) -> _Geom | None:
        th, tw = self.size
        aspect = tw / th
        if train:
            lo, hi = math.log(self.ratio[0]), math.log(self.ratio[1])
            for _ in range(10):
                area = w * h * random.uniform(self.min_scale, 1.0)
                a = aspect * math.exp(random.uniform(lo, hi))
                cw, ch = math.sqrt(area * a), math.sqrt(area / a)
                if cw <= w and ch <= h:
                    x0, y0 = random.uniform(0, w - cw), random.uniform(0, h - ch)
                    return _Geom((x0, y0, x0 + cw, y0 + ch), (tw, th), False, (0, 0, 0, 0), False)
            a = min(max(w / h, aspect * self.ratio[0]), aspect * self.ratio[1])
            cw, ch = _aspect_box(w, h, a)
        else:
            cw, ch = _aspect_box(w, h, aspect)
            cw, ch = cw / (1 + self.val_xtra), ch / (1 + self.val_xtra)
        x0, y0 = (w - cw) / 2, (h - ch) / 2
        return _Geom((x0, y0, x0 + cw, y0 + ch), (tw, th), False, (0, 0, 0, 0), False)

    def spec_kwargs(self) -> dict:
        return {
            "size": list(self.size),
            "min_scale": self.min_scale,
            "ratio": list(self.ratio),
            "val_xtra": self.val_xtra,
        }


class CenterCrop(_PILGeometry):
    """Cut the centre ``size`` box (no resampling); a smaller image is padded with zeros.

    >>> CenterCrop((10, 20))((Image.new("L", (64, 48)),), ("image",), train=True)[0].size
    (20, 10)
    """

    def __init__(self, size):
        self.size = _size2(size)

    def _offset(self, w: int, h: int, train: bool) -> tuple[int, int]:
        th, tw = self.size
        return (w - tw) // 2, (h - th) // 2

    def params(self, w: int, h: int, train: bool) -> _Geom | None:
        th, tw = self.size
        if (w, h) == (tw, th):
            return None
        x0, y0 = self._offset(w, h, train)
        return _Geom((x0, y0, x0 + tw, y0 + th), (tw, th), True, (0, 0, 0, 0), False)

    def spec_kwargs(self) -> dict:
        return {"size": list(self.size)}


class RandomCrop(CenterCrop):
    """Cut a ``size`` box at a random position on train, at the centre on valid (no resampling).

    >>> RandomCrop(16)((Image.new("RGB", (64, 48)),), ("image",), train=True)[0].size
    (16, 16)
    """

    def _offset(self, w: int, h: int, train: bool) -> tuple[int, int]:
        th, tw = self.size
        if not train:
            return (w - tw) // 2, (h - th) // 2
        x0 = random.randint(0, w - tw) if w >= tw else (w - tw) // 2
        y0 = random.randint(0, h - th) if h >= th else (h - th) // 2
        return x0, y0


class FlipItem(_PILGeometry):
    """Flip the sample horizontally with probability ``p`` on train (never on valid).

    >>> img = Image.new("L", (2, 1)); img.putpixel((0, 0), 255)
    >>> FlipItem(p=1.0)((img,), ("image",), train=True)[0].getpixel((1, 0))
    255
    """

    order = 0

    def __init__(self, p: float = 0.5):
        self.p = _number(p, "p", 0, 1)

    def params(self, w: int, h: int, train: bool) -> _Geom | None:
        if not train or random.random() >= self.p:
            return None
        return _Geom((0.0, 0.0, float(w), float(h)), (w, h), False, (0, 0, 0, 0), True)

    def spec_kwargs(self) -> dict:
        return {"p": self.p}


# --------------------------------------------------------------------------------- batch geometry
def _uniform(n: int, lo, hi, device, batch: bool) -> torch.Tensor:
    r = torch.rand(1 if batch else n, device=device)
    if batch:
        r = r.expand(n)
    return lo + (hi - lo) * r


def _check_draw(draw, name: str = "draw"):
    """``draw=`` as fastai takes it: None (random), a number (every image), a list (one per image), or a
    function ``draw(n) -> n values`` (learnkit passes the number of images)."""
    if draw is None or callable(draw):
        return draw
    if isinstance(draw, (int, float)) and not isinstance(draw, bool):
        return float(draw)
    if isinstance(draw, (list, tuple, torch.Tensor, np.ndarray)):
        vals = [float(v) for v in (draw.tolist() if hasattr(draw, "tolist") else draw)]
        if vals:
            return vals
    raise DataError(
        f"Expected {name} to be None, a number, a list of numbers (one per image) or a function of the number "
        f"of images. Received: {name}={draw!r}. Fix: e.g. {name}=0.5."
    )


def _drawn(draw, n: int, device, default) -> torch.Tensor:
    """The ``(n,)`` values of ``draw`` (see :func:`_check_draw`), or ``default()`` when it is None."""
    if draw is None:
        return default()
    v = draw(n) if callable(draw) else draw
    t = torch.as_tensor(v, dtype=torch.float32, device=device)
    if t.ndim == 0:
        t = t.expand(n)
    if t.shape != (n,):
        raise DataError(
            f"Expected draw to give one value per image ({n}). Received: {tuple(t.shape)} values. "
            "Fix: pass a single number, or a list as long as the batch."
        )
    return t


def _draw_spec(draw) -> dict:
    """``{'draw': ...}`` for a spec when ``draw`` is plain data (a function is left out: it only changes
    training draws, never validation or inference)."""
    return {} if draw is None or callable(draw) else {"draw": draw}


def _mat3(a, b, c, d, e, f, g=None, h=None) -> torch.Tensor:
    """``(n, 3, 3)`` matrices ``[[a, b, c], [d, e, f], [g, h, 1]]`` from ``(n,)`` tensors."""
    zero = torch.zeros_like(a)
    g = zero if g is None else g
    h = zero if h is None else h
    rows = (torch.stack([a, b, c], -1), torch.stack([d, e, f], -1), torch.stack([g, h, zero + 1], -1))
    return torch.stack(rows, -2)


def _half_extent(size: int, align_corners: bool) -> float:
    """Pixels per unit of normalized coordinates (``grid_sample``'s ``[-1, 1]``)."""
    return max((size - 1) / 2, 0.5) if align_corners else size / 2


class _Ctx(NamedTuple):
    """What a geometric op needs to draw its matrix."""

    n: int
    in_hw: tuple[int, int]
    out_hw: tuple[int, int]
    train: bool
    device: torch.device
    align_corners: bool


class SpatialTransform(BatchTransform):
    """Base of the geometric batch transforms that :class:`AffineCoordTfm` composes into one sampling grid.

    A subclass implements ``matrix(ctx)``, returning ``(n, 3, 3)`` float32 matrices that map *output*
    pixel coordinates (centred: ``(0, 0)`` is the image centre) to the coordinates where the image is
    sampled, or ``None`` for the identity (e.g. on valid). Ops compose by ``stage``: the crop (stage 0)
    acts nearest the input image, then flips (1), rotations (2), zooms (3), and warps (4), nearest the
    output. Used alone, a spatial transform samples the batch itself (one ``grid_sample``).
    """

    order = 30
    stage = 2
    projective = False
    size: tuple[int, int] | None = None

    def __init__(self, p: float = 0.5, draw=None, batch: bool = False):
        self.p = _number(p, "p", 0, 1)
        self.draw = _check_draw(draw)
        self.batch = bool(batch)

    def matrix(self, ctx: _Ctx) -> torch.Tensor | None:
        """The per-image 3x3 matrices for this batch. Each spatial transform subclass implements it."""
        raise NotImplementedError(f"{type(self).__name__} must implement matrix(ctx) (abstract base).")

    @property
    def per_item(self) -> bool:
        """Each image gets its own draw (``batch=False``), so a batch may be transformed in chunks."""
        return not self.batch

    def _apply(self, ctx: _Ctx) -> torch.Tensor:
        """Which images get the op (``(n,)`` bool), drawn with probability ``p``."""
        return _uniform(ctx.n, 0.0, 1.0, ctx.device, self.batch) < self.p

    def __call__(self, batch: tuple, kinds: tuple[str, ...], train: bool) -> tuple:
        return AffineCoordTfm([self])(batch, kinds, train)

    def spec_kwargs(self) -> dict:
        return {"p": self.p, "batch": self.batch, **_draw_spec(self.draw)}


class Flip(SpatialTransform):
    """Flip images horizontally with probability ``p`` (masks and points follow). ``draw``: which images
    flip (1/True: flip, 0: not; one value or one per image), still gated by ``p``.

    >>> x = torch.arange(8.0).view(1, 1, 2, 4)
    >>> Flip(p=1.0)((x,), ("image",), train=True)[0][0, 0, 0].round().tolist()
    [3.0, 2.0, 1.0, 0.0]
    """

    stage = 1

    def matrix(self, ctx: _Ctx) -> torch.Tensor | None:
        if not ctx.train:
            return None
        one = torch.ones(ctx.n, device=ctx.device)
        apply = self._apply(ctx)
        if self.draw is not None:
            apply = apply & (_drawn(self.draw, ctx.n, ctx.device, None) > 0.5)
        sx = torch.where(apply, -one, one)
        zero = one * 0
        return _mat3(sx, zero, zero, zero, one, zero)


class Dihedral(SpatialTransform):
    """With probability ``p``, one of the 8 symmetries of the square (flips, transposition) per image.

    On non-square images a transposition swaps the axes around the centre (parts are padded).
    ``draw``: the symmetry index 0..7 (one value or one per image) instead of a random one.

    Example: ``batch_tfms=[Dihedral(p=0.5)]`` in ``ImageDataLoaders.from_folder`` or a ``DataBlock``.
    """

    stage = 1

    def matrix(self, ctx: _Ctx) -> torch.Tensor | None:
        if not ctx.train:
            return None
        k = _drawn(
            self.draw, ctx.n, ctx.device, lambda: _uniform(ctx.n, 0.0, 8.0, ctx.device, self.batch).floor()
        )
        k = k.clamp(0, 7).long()
        k = torch.where(self._apply(ctx), k, torch.zeros_like(k))
        one = torch.ones(ctx.n, device=ctx.device)
        sx = torch.where(k % 2 == 1, -one, one)
        sy = torch.where((k // 2) % 2 == 1, -one, one)
        tr = (k // 4) == 1
        zero = one * 0
        a, b = torch.where(tr, zero, sx), torch.where(tr, sx, zero)
        d, e = torch.where(tr, sy, zero), torch.where(tr, zero, sy)
        return _mat3(a, b, zero, d, e, zero)


class Rotate(SpatialTransform):
    """Rotate by a random angle in ``[-max_deg, max_deg]`` degrees with probability ``p`` (around the centre).
    ``draw``: the angle in degrees (one value or one per image) instead of a random one.

    Example: ``batch_tfms=[Rotate(max_deg=15, p=0.75)]``.
    """

    stage = 2

    def __init__(self, max_deg: float = 10.0, p: float = 0.5, draw=None, batch: bool = False):
        super().__init__(p, draw=draw, batch=batch)
        self.max_deg = _number(max_deg, "max_deg", 0)

    def matrix(self, ctx: _Ctx) -> torch.Tensor | None:
        if not ctx.train:
            return None
        deg = _drawn(
            self.draw,
            ctx.n,
            ctx.device,
            lambda: _uniform(ctx.n, -self.max_deg, self.max_deg, ctx.device, self.batch),
        )
        theta = deg * (math.pi / 180)
        theta = torch.where(self._apply(ctx), theta, torch.zeros_like(theta))
        c, s = torch.cos(theta), torch.sin(theta)
        zero = c * 0
        return _mat3(c, -s, zero, s, c, zero)

    def spec_kwargs(self) -> dict:
        return {"max_deg": self.max_deg, **super().spec_kwargs()}


class Zoom(SpatialTransform):
    """Zoom by a random factor in ``[min_zoom, max_zoom]`` with probability ``p``, at a random position.

    A factor above 1 zooms in (the view moves anywhere inside the image); below 1 zooms out (padding).
    ``draw``: the zoom factor (one value or one per image) instead of a random one.

    Example: ``batch_tfms=[Zoom(max_zoom=1.2)]``.
    """

    stage = 3

    def __init__(
        self, min_zoom: float = 1.0, max_zoom: float = 1.1, p: float = 0.5, draw=None, batch: bool = False
    ):
        super().__init__(p, draw=draw, batch=batch)
        self.min_zoom = _number(min_zoom, "min_zoom", 0, lo_open=True)
        self.max_zoom = _number(max_zoom, "max_zoom", self.min_zoom)

    def matrix(self, ctx: _Ctx) -> torch.Tensor | None:
        if not ctx.train:
            return None
        s = _drawn(
            self.draw,
            ctx.n,
            ctx.device,
            lambda: _uniform(ctx.n, self.min_zoom, self.max_zoom, ctx.device, self.batch),
        )
        s = torch.where(self._apply(ctx), s, torch.ones_like(s))
        px = _uniform(ctx.n, -1.0, 1.0, ctx.device, self.batch)
        py = _uniform(ctx.n, -1.0, 1.0, ctx.device, self.batch)
        inv = 1 / s
        ho, wo = ctx.out_hw
        tx = (1 - inv) * px * _half_extent(wo, ctx.align_corners)
        ty = (1 - inv) * py * _half_extent(ho, ctx.align_corners)
        zero = s * 0
        return _mat3(inv, zero, tx, zero, inv, ty)

    def spec_kwargs(self) -> dict:
        return {"min_zoom": self.min_zoom, "max_zoom": self.max_zoom, **super().spec_kwargs()}


class Warp(SpatialTransform):
    """Perspective warp with probability ``p``: tilt the view by up to ``magnitude`` in x and in y.

    The warp is the homography ``(u, v) -> (u, v) / (1 + a u + b v)`` in normalized output coordinates with
    ``a, b`` uniform in ``[-magnitude, magnitude]`` (so corners move by about ``magnitude`` of the half size).
    Being projective, it joins the affine ops in one matrix and one ``grid_sample``.

    Example: ``batch_tfms=[Warp(magnitude=0.1, p=0.75)]``.
    """

    stage = 4
    projective = True

    def __init__(self, magnitude: float = 0.2, p: float = 0.5, batch: bool = False):
        super().__init__(p, batch=batch)
        self.magnitude = _number(magnitude, "magnitude", 0, 0.5, hi_open=True)

    def matrix(self, ctx: _Ctx) -> torch.Tensor | None:
        if not ctx.train:
            return None
        apply = self._apply(ctx)
        a = _uniform(ctx.n, -self.magnitude, self.magnitude, ctx.device, self.batch)
        b = _uniform(ctx.n, -self.magnitude, self.magnitude, ctx.device, self.batch)
        a, b = torch.where(apply, a, a * 0), torch.where(apply, b, b * 0)
        ho, wo = ctx.out_hw
        one, zero = a * 0 + 1, a * 0
        g = a / _half_extent(wo, ctx.align_corners)
        h = b / _half_extent(ho, ctx.align_corners)
        return _mat3(one, zero, zero, zero, one, zero, g, h)

    def spec_kwargs(self) -> dict:
        return {"magnitude": self.magnitude, **super().spec_kwargs()}


def _crop_matrix(ctx: _Ctx, area, log_ratio, px, py) -> torch.Tensor:
    """Output pixels -> input pixels for the box of relative ``area``/aspect jitter, at relative position ``px, py``."""
    (hi, wi), (ho, wo) = ctx.in_hw, ctx.out_hw
    a = (wo / ho) * torch.exp(log_ratio)
    cw = torch.sqrt(area * (wi * hi) * a)
    ch = cw / a
    f = torch.minimum(torch.minimum(wi / cw, hi / ch), torch.ones_like(cw))
    cw, ch = cw * f, ch * f
    cx, cy = px * (wi - cw) / 2, py * (hi - ch) / 2
    zero = cw * 0
    return _mat3(cw / wo, zero, cx, zero, ch / ho, cy)


class RandomResizedCropGPU(SpatialTransform):
    """On train, a random box (area ``min_scale..1``, aspect jittered by ``ratio``) of each image, resized to ``size``.

    ``size`` is an int, ``(h, w)``, or ``None`` (keep the input size). ``ratio`` is relative to the output
    aspect (``(1, 1)``: never stretch). On valid: the largest centred box of the output aspect, resized
    (a centre crop). Inside :class:`AffineCoordTfm` this is the crop stage of the one sampling grid, so
    presizing costs no extra interpolation.

    Example: ``batch_tfms=[RandomResizedCropGPU(224, min_scale=0.35)]``.
    """

    stage = 0

    def __init__(self, size=None, min_scale: float = 0.08, ratio=(3 / 4, 4 / 3), batch: bool = False):
        super().__init__(1.0, batch=batch)
        self.size = _size2(size)
        self.min_scale = _number(min_scale, "min_scale", 0, 1, lo_open=True)
        self.ratio = _ratio(ratio)

    def matrix(self, ctx: _Ctx) -> torch.Tensor | None:
        n, dev = ctx.n, ctx.device
        if not ctx.train:
            if ctx.in_hw == ctx.out_hw:
                return None
            zero = torch.zeros(n, device=dev)
            return _crop_matrix(ctx, zero + 1, zero, zero, zero)
        area = _uniform(n, self.min_scale, 1.0, dev, self.batch)
        lr = _uniform(n, math.log(self.ratio[0]), math.log(self.ratio[1]), dev, self.batch)
        px, py = _uniform(n, -1.0, 1.0, dev, self.batch), _uniform(n, -1.0, 1.0, dev, self.batch)
        return _crop_matrix(ctx, area, lr, px, py)

    def spec_kwargs(self) -> dict:
        return {
            "size": None if self.size is None else list(self.size),
            "min_scale": self.min_scale,
            "ratio": list(self.ratio),
            "batch": self.batch,
        }


def _batch_geometry(batch, kinds, who: str):
    """``(n, (h, w), device)`` of the images/masks of a batch, checking they agree; ``None`` if there are none."""
    ref = None
    for x, k in zip(batch, kinds):
        if k not in ("image", "mask"):
            continue
        want = 4 if k == "image" else 3
        if not isinstance(x, torch.Tensor) or x.ndim != want:
            shape = "(B, C, H, W)" if k == "image" else "(B, H, W)"
            got = f"tensor of shape {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
            raise DataError(
                f"Expected the {k} batch to be a tensor of shape {shape} in {who}. Received: {k}={got}. "
                "Fix: batch transforms run on collated tensors; PIL transforms belong in item_tfms."
            )
        geo = (x.shape[0], tuple(x.shape[-2:]))
        if ref is None:
            ref = (geo[0], geo[1], x.device)
        elif geo != ref[:2]:
            raise DataError(
                f"Expected every image and mask in the batch to have the same batch size and height/width. "
                f"Received: {ref[:2]} and {geo} in {who}. Fix: resize masks with their images (item_tfms)."
            )
    return ref


class AffineCoordTfm(BatchTransform):
    """Compose geometric batch transforms into one projective map per image and one ``grid_sample`` per batch.

    ``ops`` are :class:`SpatialTransform` instances (``Flip``, ``Dihedral``, ``Rotate``, ``Zoom``, ``Warp``,
    ``RandomResizedCropGPU``), multiplied in ``stage`` order. ``size`` (int or ``(h, w)``) sets the output
    size (or a ``RandomResizedCropGPU``'s size does); without a crop op, a different output size takes the
    centre box of the output aspect. Images are sampled with ``mode`` and ``pad_mode``, masks with
    ``'nearest'`` (same grid, integer dtype kept), points are moved by the inverse map. On valid only the
    resize/centre crop to ``size`` remains (nothing at all without ``size``). Float images keep their
    dtype (16-bit ones are sampled in float32); ``uint8`` images are sampled and rounded back.

    >>> tfm = AffineCoordTfm([Flip(), Rotate(30), Warp()], size=16)
    >>> tfm((torch.rand(2, 3, 24, 24),), ("image",), train=True)[0].shape
    torch.Size([2, 3, 16, 16])
    """

    order = 30

    def __init__(
        self,
        ops: Sequence[SpatialTransform] | SpatialTransform | None = None,
        size=None,
        mode: str = "bilinear",
        pad_mode: str = "reflection",
        align_corners: bool = True,
    ):
        ops = listify(ops)
        for op in ops:
            if not isinstance(op, SpatialTransform):
                raise DataError(
                    f"Expected AffineCoordTfm ops to be spatial transforms (Flip, Rotate, Zoom, Warp, ...). "
                    f"Received: op={op!r}. Fix: pass other batch transforms in batch_tfms directly."
                )
        self.ops = sorted(ops, key=lambda o: o.stage)
        crops = [o for o in self.ops if o.stage == 0]
        if len(crops) > 1:
            raise DataError(
                f"Expected at most one crop op in AffineCoordTfm. Received: {len(crops)} ({crops!r}). Fix: keep one."
            )
        self._size_arg = _size2(size)
        crop_size = crops[0].size if crops else None
        if self._size_arg is not None and crop_size is not None and crop_size != self._size_arg:
            raise DataError(
                f"Expected the crop's size to match AffineCoordTfm's size. Received: size={self._size_arg}, "
                f"crop size={crop_size}. Fix: give the size in one place."
            )
        self.size = self._size_arg or crop_size
        self.mode = _choice(mode, _SAMPLE_MODES, "mode")
        self.pad_mode = _choice(pad_mode, _PAD_MODES, "pad_mode")
        self.align_corners = bool(align_corners)

    @property
    def per_item(self) -> bool:
        """True when every op draws per image, so a batch may be transformed in chunks."""
        return all(getattr(op, "per_item", False) for op in self.ops)

    def matrices(
        self, n: int, in_hw, train: bool, device
    ) -> tuple[torch.Tensor | None, tuple[int, int], bool]:
        """The ``(n, 3, 3)`` map from normalized output to normalized input coordinates (``None``: identity),
        the output ``(h, w)``, and whether the map is projective."""
        out_hw = tuple(self.size) if self.size is not None else tuple(in_hw)
        ctx = _Ctx(n, tuple(in_hw), out_hw, bool(train), torch.device(device), self.align_corners)
        mats, projective = [], False
        if out_hw != ctx.in_hw and not any(o.stage == 0 for o in self.ops):
            zero = torch.zeros(n, device=ctx.device)
            mats.append(_crop_matrix(ctx, zero + 1, zero, zero, zero))
        for op in self.ops:
            m = op.matrix(ctx)
            if m is not None:
                mats.append(m)
                projective = projective or op.projective
        if not mats:
            return None, out_hw, False
        t = mats[0]
        for m in mats[1:]:
            t = t @ m
        (hi, wi), (ho, wo) = ctx.in_hw, out_hw
        ac = self.align_corners
        e_in = torch.tensor([1 / _half_extent(wi, ac), 1 / _half_extent(hi, ac), 1.0], device=ctx.device)
        e_out = torch.tensor([_half_extent(wo, ac), _half_extent(ho, ac), 1.0], device=ctx.device)
        return e_in[:, None] * t * e_out, out_hw, projective  # diag(e_in) @ t @ diag(e_out)

    def _grid(self, m: torch.Tensor, out_hw, projective: bool) -> torch.Tensor:
        """The ``(n, ho, wo, 2)`` sampling grid of the maps ``m``.

        Each grid coordinate is ``row . (x, y, 1)``, a sum of a term in ``x`` and a term in ``y``, so it is
        built from two small per-image vectors with one broadcast add (and one division for a projective map)
        instead of a ``(n, ho * wo, 3) @ (3, 3)`` product.
        """
        (ho, wo), dev, dt = out_hw, m.device, m.dtype
        ac = self.align_corners
        xs = (torch.arange(wo, device=dev, dtype=dt) + (0.5 - wo / 2)) / _half_extent(wo, ac)
        ys = (torch.arange(ho, device=dev, dtype=dt) + (0.5 - ho / 2)) / _half_extent(ho, ac)
        rows = 3 if projective else 2
        ax = m[:, :rows, 0, None] * xs  # (n, rows, wo)
        by = m[:, :rows, 1, None] * ys + m[:, :rows, 2, None]  # (n, rows, ho)
        planes = ax[:, :, None, :] + by[:, :, :, None]  # (n, rows, ho, wo): long rows, fast to compute
        grid = planes[:, :2].div_(planes[:, 2:]) if projective else planes
        return grid.permute(0, 2, 3, 1)  # (n, ho, wo, 2), a view: grid_sample reads it as it is

    def __call__(self, batch: tuple, kinds: tuple[str, ...], train: bool) -> tuple:
        ref = _batch_geometry(batch, kinds, type(self).__name__)
        if ref is None:
            if "points" in kinds and (train or self.size is not None):
                raise DataError(
                    f"Expected an image or mask in the batch to move points with. Received: kinds={tuple(kinds)}. "
                    "Fix: keep the image in the batch, or leave geometric transforms out."
                )
            return batch
        n, in_hw, device = ref
        m, out_hw, projective = self.matrices(n, in_hw, train, device)
        if m is None:
            return batch
        grid = self._grid(m, out_hw, projective)
        minv = None
        out = []
        for x, k in zip(batch, kinds):
            if k == "image":
                x = self._sample_image(x, grid)
            elif k == "mask":
                y = F.grid_sample(
                    x[:, None].float(),
                    grid,
                    mode="nearest",
                    padding_mode=self.pad_mode,
                    align_corners=self.align_corners,
                )
                x = y[:, 0].round().to(x.dtype)
            elif k == "points":
                if minv is None:
                    minv = torch.linalg.inv(m)
                x = self._move_points(x, minv, in_hw, out_hw)
            out.append(x)
        return tuple(out)

    def _sample_image(self, x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        dt = x.dtype
        xs = x if dt in (torch.float32, torch.float64) else x.float()
        y = F.grid_sample(
            xs,
            grid.to(xs.dtype),
            mode=self.mode,
            padding_mode=self.pad_mode,
            align_corners=self.align_corners,
        )
        if not dt.is_floating_point:
            info = torch.iinfo(dt)
            return y.round().clamp(info.min, info.max).to(dt)
        return y.to(dt)

    def _move_points(self, p: torch.Tensor, minv: torch.Tensor, in_hw, out_hw) -> torch.Tensor:
        if not isinstance(p, torch.Tensor) or p.ndim != 3 or p.shape[-1] != 2:
            got = f"shape {tuple(p.shape)}" if isinstance(p, torch.Tensor) else type(p).__name__
            raise DataError(
                f"Expected a points batch of shape (B, n, 2) of (x, y) pixel coordinates. Received: points {got}. "
                "Fix: give every sample the same number of points (pad with NaN)."
            )
        (hi, wi), (ho, wo) = in_hw, out_hw
        ac = self.align_corners
        pf = p.float()
        u = (pf[..., 0] - wi / 2) / _half_extent(wi, ac)
        v = (pf[..., 1] - hi / 2) / _half_extent(hi, ac)
        h = torch.stack([u, v, torch.ones_like(u)], -1) @ minv.transpose(1, 2)
        uv = h[..., :2] / h[..., 2:]
        x = uv[..., 0] * _half_extent(wo, ac) + wo / 2
        y = uv[..., 1] * _half_extent(ho, ac) + ho / 2
        return torch.stack([x, y], -1).to(p.dtype if p.is_floating_point() else torch.float32)

    def spec_kwargs(self) -> dict:
        return {
            "ops": [o.spec() for o in self.ops],
            "size": None if self._size_arg is None else list(self._size_arg),
            "mode": self.mode,
            "pad_mode": self.pad_mode,
            "align_corners": self.align_corners,
        }

    @classmethod
    def from_spec(cls, spec: dict):
        from ..data.transforms import transform_from_spec

        kw = dict(spec.get("kwargs", {}))
        kw["ops"] = [transform_from_spec(s) for s in kw.get("ops", [])]
        return cls(**kw)


# --------------------------------------------------------------------------------------- lighting
class LightingTransform(BatchTransform):
    """Base of lighting batch transforms acting on image logits; :class:`LightingTfm` composes them.

    A subclass implements ``logits(x, n, device) -> (x, applied)`` on ``(B, C, H, W)`` logits of images in
    ``[0, 1]``, ``applied`` saying which images changed. A change of the form ``logit * scale + shift`` (one
    ``scale``/``shift`` per image) can instead implement ``affine(n, device) -> (scale, shift, applied)``
    (``(n,)`` tensors, ``None`` for no scaling / no shift): ``LightingTfm`` then folds consecutive such ops
    into one multiply-add. Used alone it runs through a one-op ``LightingTfm``.
    """

    order = 40

    def __init__(self, max_lighting: float = 0.2, p: float = 0.75, draw=None, batch: bool = False):
        self.max_lighting = _number(max_lighting, "max_lighting", 0, 1, hi_open=True)
        self.p = _number(p, "p", 0, 1)
        self.draw = _check_draw(draw)
        self.batch = bool(batch)

    @property
    def per_item(self) -> bool:
        """Each image gets its own draw (``batch=False``), so a batch may be transformed in chunks."""
        return not self.batch

    def affine(self, n: int, device) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor]:
        """``(scale, shift, applied)`` of an op acting as ``logit * scale + shift`` (see the class doc)."""
        raise NotImplementedError(f"{type(self).__name__} implements neither affine() nor logits().")

    def logits(self, x: torch.Tensor, n: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        """``(new logits, applied)``; the default applies :meth:`affine`."""
        scale, shift, applied = self.affine(n, device)
        return _scale_shift(x.clone(), scale, shift), applied

    def _apply(self, n: int, device) -> torch.Tensor:
        return _uniform(n, 0.0, 1.0, device, self.batch) < self.p

    def __call__(self, batch: tuple, kinds: tuple[str, ...], train: bool) -> tuple:
        return LightingTfm([self])(batch, kinds, train)

    def spec_kwargs(self) -> dict:
        return {"max_lighting": self.max_lighting, "p": self.p, "batch": self.batch, **_draw_spec(self.draw)}


def _is_affine(op: LightingTransform) -> bool:
    """Whether ``op`` is described by its ``affine()`` (it has one, and no ``logits()`` of its own)."""
    cls = type(op)
    return cls.affine is not LightingTransform.affine and cls.logits is LightingTransform.logits


def _scale_shift(x: torch.Tensor, scale, shift) -> torch.Tensor:
    """``x * scale + shift`` in place, with per-image ``(n,)`` ``scale``/``shift`` (``None``: skip)."""
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    if scale is not None:
        x.mul_(scale.view(shape))
    if shift is not None:
        x.add_(shift.view(shape))
    return x


class Brightness(LightingTransform):
    """Change brightness with probability ``p``: add ``logit(b)``, ``b`` uniform in ``0.5 * (1 ± max_lighting)``.
    ``draw``: ``b`` itself (in (0, 1); 0.5 leaves the image as it is), one value or one per image.

    Example: ``batch_tfms=[Brightness(max_lighting=0.3)]``.
    """

    def affine(self, n: int, device) -> tuple[None, torch.Tensor, torch.Tensor]:
        m = self.max_lighting
        b = _drawn(
            self.draw, n, device, lambda: _uniform(n, 0.5 * (1 - m), 0.5 * (1 + m), device, self.batch)
        )
        b = b.clamp(1e-5, 1 - 1e-5)
        apply = self._apply(n, device)
        shift = torch.where(apply, torch.log(b / (1 - b)), torch.zeros_like(b))
        return None, shift, apply


class Contrast(LightingTransform):
    """Change contrast with probability ``p``: scale logits by a factor log-uniform in ``[1 - m, 1 / (1 - m)]``.
    ``draw``: the factor itself (1 leaves the image as it is), one value or one per image.

    Example: ``batch_tfms=[Contrast(max_lighting=0.3)]``.
    """

    def affine(self, n: int, device) -> tuple[torch.Tensor, None, torch.Tensor]:
        lim = -math.log(1 - self.max_lighting)
        c = _drawn(self.draw, n, device, lambda: torch.exp(_uniform(n, -lim, lim, device, self.batch)))
        apply = self._apply(n, device)
        return torch.where(apply, c, torch.ones_like(c)), None, apply


class LightingTfm(BatchTransform):
    """Apply lighting ops (``Brightness``, ``Contrast``) in one logit/sigmoid round trip, on train only.

    Images must be float in ``[0, 1]`` (after ``IntToFloat``, before ``Normalize``); images no op touched
    are returned exactly. 16-bit float images are computed in float32 and cast back. Consecutive affine ops
    (both built-in ones) are folded into one multiply-add on the logits, computed in place.

    >>> out = LightingTfm([Brightness(0.4, p=1.0)])((torch.rand(2, 3, 4, 4),), ("image",), train=True)
    >>> out[0].shape
    torch.Size([2, 3, 4, 4])
    """

    order = 40

    def __init__(self, ops: Sequence[LightingTransform] | LightingTransform | None = None):
        ops = listify(ops)
        for op in ops:
            if not isinstance(op, LightingTransform):
                raise DataError(
                    f"Expected LightingTfm ops to be lighting transforms (Brightness, Contrast). Received: op={op!r}. "
                    "Fix: pass other batch transforms in batch_tfms directly."
                )
        self.ops = ops

    @property
    def per_item(self) -> bool:
        """True when every op draws per image, so a batch may be transformed in chunks."""
        return all(getattr(op, "per_item", False) for op in self.ops)

    def __call__(self, batch: tuple, kinds: tuple[str, ...], train: bool) -> tuple:
        if not train or not self.ops:
            return batch
        out = []
        for x, k in zip(batch, kinds):
            if k == "image":
                x = self._light(x)
            out.append(x)
        return tuple(out)

    def _light(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point():
            got = (
                f"tensor(shape={tuple(x.shape)}, dtype={x.dtype})"
                if isinstance(x, torch.Tensor)
                else type(x).__name__
            )
            raise DataError(
                f"Expected a float image batch (B, C, H, W) in [0, 1] for lighting. Received: image={got}. "
                "Fix: put IntToFloat() in batch_tfms (it runs first)."
            )
        n, dev, dt = x.shape[0], x.device, x.dtype
        xf = x if dt in (torch.float32, torch.float64) else x.float()
        y = torch.logit(xf, eps=1e-5)  # a new tensor: everything below works in place on it
        applied = torch.zeros(n, dtype=torch.bool, device=dev)
        scale = shift = None
        for op in self.ops:
            if _is_affine(op):  # fold: (y * s1 + b1) * s2 + b2 = y * (s1 s2) + (b1 s2 + b2)
                s, b, a = op.affine(n, dev)
                if s is not None:
                    scale = s if scale is None else scale * s
                    shift = None if shift is None else shift * s
                if b is not None:
                    shift = b if shift is None else shift + b
            else:
                y = _scale_shift(y, scale, shift)
                scale = shift = None
                y, a = op.logits(y, n, dev)
            applied = applied | a
        y = _scale_shift(y, scale, shift).sigmoid_()
        if dev.type == "cpu" and not y.requires_grad:  # untouched images back exactly (few: copy just those)
            keep = (~applied).nonzero().flatten()
            if len(keep):
                y.index_copy_(0, keep, xf.index_select(0, keep))
        else:  # no host synchronisation on accelerators
            y = torch.where(applied.view(n, 1, 1, 1), y, xf)
        return y.to(dt)

    def spec_kwargs(self) -> dict:
        return {"ops": [o.spec() for o in self.ops]}

    @classmethod
    def from_spec(cls, spec: dict):
        from ..data.transforms import transform_from_spec

        return cls([transform_from_spec(s) for s in spec.get("kwargs", {}).get("ops", [])])


_GRAY = (0.2989, 0.587, 0.114)


class Saturation(LightingTransform):
    """Change saturation with probability ``p``: blend each image with its grey version (in logit space) by
    a factor log-uniform in ``[1 - m, 1 / (1 - m)]`` (0: grey, 1: unchanged, above 1: more colourful).
    ``draw``: the factor itself. RGB images only (others are left as they are).

    >>> out = Saturation(0.5, p=1.0, draw=0.0)((torch.rand(2, 3, 4, 4),), ("image",), train=True)[0]
    >>> bool((out[:, 0] - out[:, 1]).abs().max() < 1e-4)   # factor 0: grey
    True
    """

    def logits(self, x: torch.Tensor, n: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        lim = -math.log(1 - self.max_lighting)
        f = _drawn(self.draw, n, device, lambda: torch.exp(_uniform(n, -lim, lim, device, self.batch)))
        apply = self._apply(n, device)
        if x.shape[1] != 3:
            return x, torch.zeros_like(apply)
        f = torch.where(apply, f, torch.ones_like(f)).view(n, 1, 1, 1).to(x.dtype)
        w = torch.tensor(_GRAY, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        gray = (x * w).sum(1, keepdim=True)
        return gray + (x - gray) * f, apply


def _rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x.unbind(1)
    mx, _ = x.max(1)
    mn, _ = x.min(1)
    d = mx - mn
    safe = torch.where(d > 0, d, torch.ones_like(d))
    h = torch.where(
        mx == r, ((g - b) / safe) % 6, torch.where(mx == g, (b - r) / safe + 2, (r - g) / safe + 4)
    )
    h = torch.where(d > 0, h / 6, torch.zeros_like(h))
    s = torch.where(mx > 0, d / torch.where(mx > 0, mx, torch.ones_like(mx)), torch.zeros_like(mx))
    return torch.stack([h % 1.0, s, mx], 1)


def _hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    h, s, v = x.unbind(1)
    k = torch.stack([(5 + h * 6) % 6, (3 + h * 6) % 6, (1 + h * 6) % 6], 1)
    t = torch.clamp(torch.minimum(k, 4 - k), 0, 1)
    return v[:, None] - v[:, None] * s[:, None] * t


class Hue(LightingTransform):
    """Shift the hue with probability ``p`` by a random amount in ``[-max_hue, max_hue]`` (in turns of the
    colour wheel; 0.5 is the opposite colour). ``draw``: the shift itself. RGB images only.

    >>> red = torch.zeros(1, 3, 2, 2); red[:, 0] = 0.9
    >>> green = Hue(p=1.0, draw=1 / 3)((red,), ("image",), train=True)[0]  # a third of the wheel: red -> green
    >>> [round(v, 2) for v in green[0, :, 0, 0].tolist()]
    [0.0, 0.9, 0.0]
    """

    def __init__(self, max_hue: float = 0.1, p: float = 0.75, draw=None, batch: bool = False):
        super().__init__(0.0, p=p, draw=draw, batch=batch)
        self.max_hue = _number(max_hue, "max_hue", 0, 1)

    def logits(self, x: torch.Tensor, n: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        shift = _drawn(
            self.draw, n, device, lambda: _uniform(n, -self.max_hue, self.max_hue, device, self.batch)
        )
        apply = self._apply(n, device)
        if x.shape[1] != 3:
            return x, torch.zeros_like(apply)
        shift = torch.where(apply, shift, torch.zeros_like(shift)).to(x.dtype)
        hsv = _rgb_to_hsv(torch.sigmoid(x))
        hsv[:, 0] = (hsv[:, 0] + shift.view(n, 1, 1)) % 1.0
        return torch.logit(_hsv_to_rgb(hsv), eps=1e-5), apply

    def spec_kwargs(self) -> dict:
        return {"max_hue": self.max_hue, "p": self.p, "batch": self.batch, **_draw_spec(self.draw)}


class RandomErasing(BatchTransform):
    """On train, with probability ``p`` per image, replace up to ``max_count`` random rectangles with random
    normal noise (Zhong et al. 2017). Each covers a fraction ``sl..sh`` of the image (split between the
    rectangles) with an aspect ratio between ``min_aspect`` and ``1 / min_aspect``. It runs after
    ``Normalize`` (``order`` 100), so the noise has the statistics of the normalised pixels.

    >>> x = torch.zeros(4, 3, 16, 16)
    >>> out = RandomErasing(p=1.0, sl=0.2, sh=0.3)((x,), ("image",), train=True)[0]
    >>> bool((out != 0).any(1).float().mean() > 0.1)
    True
    """

    order = 100
    per_item = True

    def __init__(
        self, p: float = 0.5, sl: float = 0.0, sh: float = 0.3, min_aspect: float = 0.3, max_count: int = 1
    ):
        self.p = _number(p, "p", 0, 1)
        self.sl = _number(sl, "sl", 0, 1)
        self.sh = _number(sh, "sh", self.sl, 1)
        self.min_aspect = _number(min_aspect, "min_aspect", 0, 1, lo_open=True)
        if isinstance(max_count, bool) or not isinstance(max_count, int) or max_count < 1:
            raise DataError(
                f"Expected max_count to be an int of at least 1. Received: max_count={max_count!r}. Fix: e.g. 1."
            )
        self.max_count = max_count

    def __call__(self, batch: tuple, kinds: tuple[str, ...], train: bool) -> tuple:
        if not train or self.p == 0:
            return batch
        return tuple(self._erase(x) if k == "image" else x for x, k in zip(batch, kinds))

    def _erase(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point():
            raise DataError(
                f"Expected a float image batch (B, C, H, W) for RandomErasing. Received: {_describe_x(x)}. "
                "Fix: put IntToFloat() and Normalize in batch_tfms (RandomErasing runs after them)."
            )
        x = x.clone()
        n, c, h, w = x.shape
        hit = (torch.rand(n) < self.p).tolist()
        log_lo = math.log(self.min_aspect)
        for i in range(n):
            if not hit[i]:
                continue
            count = int(torch.randint(1, self.max_count + 1, ()).item())
            for _ in range(count):
                area = (self.sl + (self.sh - self.sl) * float(torch.rand(()))) * h * w / count
                aspect = math.exp(log_lo + (-2 * log_lo) * float(torch.rand(())))
                eh = min(h, max(1, int(round(math.sqrt(area * aspect)))))
                ew = min(w, max(1, int(round(math.sqrt(area / aspect)))))
                top = int(torch.randint(0, h - eh + 1, ()).item())
                left = int(torch.randint(0, w - ew + 1, ()).item())
                x[i, :, top : top + eh, left : left + ew] = torch.randn(
                    c, eh, ew, dtype=x.dtype, device=x.device
                )
        return x

    def spec_kwargs(self) -> dict:
        return {
            "p": self.p,
            "sl": self.sl,
            "sh": self.sh,
            "min_aspect": self.min_aspect,
            "max_count": self.max_count,
        }


def _describe_x(x) -> str:
    return (
        f"tensor(shape={tuple(x.shape)}, dtype={x.dtype})"
        if isinstance(x, torch.Tensor)
        else type(x).__name__
    )


def setup_aug_tfms(tfms) -> list:
    """Combine the geometric transforms of ``tfms`` into one :class:`AffineCoordTfm` (one ``grid_sample``)
    and the lighting ones into one :class:`LightingTfm` (one logit round trip); others are kept as they are.

    Each group takes the place of its first member. Two ``AffineCoordTfm`` with different ``size`` are an
    error. ``aug_transforms`` returns its result through this.

    >>> [type(t).__name__ for t in setup_aug_tfms([Rotate(), Flip(), Brightness(), Contrast(), Hue()])]
    ['AffineCoordTfm', 'LightingTfm']
    """
    res: list = []
    spatial: list[SpatialTransform] = []
    lighting: list[LightingTransform] = []
    affine_kw: dict = {}
    slots = {}
    for t in listify(tfms):
        if isinstance(t, (AffineCoordTfm, SpatialTransform)):
            slots.setdefault("affine", len(res) + len(slots))
            if isinstance(t, AffineCoordTfm):
                spatial.extend(t.ops)
                if t._size_arg is not None:
                    old = affine_kw.get("size")
                    if old is not None and tuple(old) != tuple(t._size_arg):
                        raise DataError(
                            f"Expected the AffineCoordTfm's to share one size. Received: sizes {tuple(old)} and "
                            f"{tuple(t._size_arg)}. Fix: give the size once."
                        )
                    affine_kw["size"] = t._size_arg
                for k in ("mode", "pad_mode", "align_corners"):
                    affine_kw.setdefault(k, getattr(t, k))
            else:
                spatial.append(t)
        elif isinstance(t, (LightingTfm, LightingTransform)):
            slots.setdefault("lighting", len(res) + len(slots))
            lighting.extend(t.ops if isinstance(t, LightingTfm) else [t])
        else:
            res.append(t)
    groups = []
    if "affine" in slots:
        groups.append((slots["affine"], AffineCoordTfm(spatial, **affine_kw)))
    if "lighting" in slots:
        groups.append((slots["lighting"], LightingTfm(lighting)))
    for pos, t in sorted(groups, key=lambda g: g[0]):
        res.insert(pos, t)
    return res


# --------------------------------------------------------------------------------- aug_transforms
def aug_transforms(
    mult: float = 1.0,
    do_flip: bool = True,
    flip_vert: bool = False,
    max_rotate: float = 10.0,
    min_zoom: float = 1.0,
    max_zoom: float = 1.1,
    max_lighting: float = 0.2,
    max_warp: float = 0.2,
    p_affine: float = 0.75,
    p_lighting: float = 0.75,
    xtra_tfms=None,
    size=None,
    mode: str = "bilinear",
    pad_mode: str = "reflection",
    align_corners: bool = True,
    batch: bool = False,
    min_scale: float = 1.0,
) -> list[BatchTransform]:
    """The usual batch augmentation: flips, rotation, zoom, perspective warp, lighting (and a random resized crop).

    ``mult`` scales ``max_rotate``, ``max_lighting`` and ``max_warp``. ``flip_vert=True`` uses all 8
    dihedral symmetries. With ``size`` (or ``min_scale < 1``) a :class:`RandomResizedCropGPU` (area
    ``min_scale..1``, no stretching) is the crop stage. All geometric ops share one
    :class:`AffineCoordTfm` (one ``grid_sample`` per batch); lighting ops share one :class:`LightingTfm`.
    Spatial ops in ``xtra_tfms`` join the geometric group; others are appended. ``batch=True`` draws one
    set of parameters for the whole batch.

    >>> [type(t).__name__ for t in aug_transforms(size=224, min_scale=0.75)]
    ['AffineCoordTfm', 'LightingTfm']
    """
    mult = _number(mult, "mult", 0)
    ops: list[SpatialTransform] = []
    if do_flip:
        ops.append(Dihedral(p=0.5, batch=batch) if flip_vert else Flip(p=0.5, batch=batch))
    if max_rotate:
        ops.append(Rotate(max_deg=max_rotate * mult, p=p_affine, batch=batch))
    if min_zoom != 1 or max_zoom != 1:
        ops.append(Zoom(min_zoom=min_zoom, max_zoom=max_zoom, p=p_affine, batch=batch))
    if max_warp:
        ops.append(Warp(magnitude=max_warp * mult, p=p_affine, batch=batch))
    if size is not None or min_scale < 1:
        ops.append(RandomResizedCropGPU(size, min_scale=min_scale, ratio=(1, 1), batch=batch))
    extra = []
    for t in listify(xtra_tfms):
        (ops if isinstance(t, SpatialTransform) else extra).append(t)
    res: list[BatchTransform] = []
    if ops:
        res.append(AffineCoordTfm(ops, mode=mode, pad_mode=pad_mode, align_corners=align_corners))
    if max_lighting:
        m = max_lighting * mult
        res.append(
            LightingTfm([Brightness(m, p=p_lighting, batch=batch), Contrast(m, p=p_lighting, batch=batch)])
        )
    return setup_aug_tfms(res + extra)


TRANSFORMS: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        Resize,
        RandomResizedCrop,
        CenterCrop,
        RandomCrop,
        FlipItem,
        Flip,
        Dihedral,
        Rotate,
        Zoom,
        Warp,
        RandomResizedCropGPU,
        AffineCoordTfm,
        Brightness,
        Contrast,
        LightingTfm,
        Saturation,
        Hue,
        RandomErasing,
    )
}
"""The transforms of this module by name, for :func:`learnkit.data.transforms.transform_from_spec`."""
for _cls in TRANSFORMS.values():
    register_transform(_cls)
