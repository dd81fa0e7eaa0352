"""Image data: the image, mask and point blocks, opening images safely, and the ``ImageDataLoaders`` factories.

>>> from learnkit.vision import *
>>> dls = ImageDataLoaders.from_folder("data/digits", valid_pct=0.2, item_tfms=Resize(32))  # doctest: +SKIP
>>> dls.show_batch()  # doctest: +SKIP

Images open lazily: a block's ``encode`` reads the file in the DataLoader worker when the item is
needed. Every file becomes an 8-bit image of the block's mode (``'RGB'`` by default): grayscale,
palette, RGBA (composited on white), 16-bit and 32-bit-integer files are converted, and the EXIF
orientation is applied. A file that cannot be read raises :class:`~learnkit.exceptions.DataError`
naming it; :func:`verify_images` lists such files up front, and the factories' ``bad_images='skip'``
drops them with a warning.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from ..data.block import (
    CategoryBlock,
    DataBlock,
    MultiCategoryBlock,
    TransformBlock,
    register_block,
)
from ..data.getters import (
    ColReader,
    RegexLabeller,
    get_image_files,
    parent_label,
    using_attr,
)
from ..data.splitters import ColSplitter, GrandparentSplitter, RandomSplitter
from ..data.transforms import BatchTransform, IntToFloat, ItemTransform, register_transform
from ..exceptions import DataError
from ..losses import CrossEntropyLossFlat, MSELossFlat
from ..utils import L, LPath, atomic_write_bytes, listify, suggest
from .augment import mask_to_tensor, pil_to_uint8_tensor
from .show import show_image, show_mask, show_points

__all__ = [
    "PILImage",
    "PILImageBW",
    "PILMask",
    "open_image",
    "open_mask",
    "to_image",
    "verify_images",
    "resize_image",
    "resize_images",
    "ImageBlock",
    "MaskBlock",
    "PointBlock",
    "PointScaler",
    "MaskSizeCheck",
    "ImageDataLoaders",
    "SegmentationDataLoaders",
]

_MODES = {"RGB": 3, "L": 1, "RGBA": 4}


# ---------------------------------------------------------------------------------------------- opening
def _describe_source(source) -> str:
    if isinstance(source, (str, os.PathLike)):
        return repr(os.fspath(source))
    if isinstance(source, (np.ndarray, torch.Tensor)):
        return f"{type(source).__name__}(shape={tuple(source.shape)}, dtype={source.dtype})"
    return type(source).__name__


def _from_array(arr: np.ndarray) -> Image.Image:
    """An ``(H, W)``, ``(H, W, C)`` or ``(C, H, W)`` array (uint8, uint16, bool or float) as a PIL image."""
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
        arr = arr.transpose(1, 2, 0)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)):
        raise DataError(
            f"Expected an image array of shape (H, W), (H, W, C) or (C, H, W) with C in 1, 3, 4. Received: "
            f"shape={tuple(arr.shape)}. Fix: pass one image, not a batch."
        )
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    elif np.issubdtype(arr.dtype, np.floating):
        finite = arr[np.isfinite(arr)]
        top = float(finite.max()) if finite.size else 0.0
        arr = np.nan_to_num(arr) * (255.0 if top <= 1.0 else 1.0)
        arr = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
    elif arr.dtype != np.uint8:
        top = int(arr.max()) if arr.size else 0
        arr = arr.astype(np.float64) / 257.0 if top > 255 else arr.astype(np.float64)
        arr = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(arr))


def _to_8bit(img: Image.Image) -> Image.Image:
    """16/32-bit integer and float images as 8-bit ``'L'``: 16-bit files are scaled from ``0..65535``, 32-bit
    integers likewise when they exceed 255, floats from ``[0, 1]`` (clipped otherwise)."""
    if img.mode.startswith("I;16"):
        arr = np.asarray(img).astype(np.float64) / 257.0
        return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8))
    if img.mode in ("I", "F"):
        return _from_array(np.asarray(img))
    return img


def _convert_mode(img: Image.Image, mode: str | None) -> Image.Image:
    """Convert to ``mode`` ('RGB', 'L', 'RGBA'; ``None`` keeps the nearest of these); alpha goes on white."""
    img = _to_8bit(img)
    if img.mode == "1":
        img = img.convert("L")
    has_alpha = img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        img.mode == "P" and "transparency" in img.info
    )
    if mode is None:
        mode = "RGBA" if has_alpha else ("L" if img.mode == "L" else "RGB")
    if img.mode == mode:
        return img
    if has_alpha and mode != "RGBA":
        rgba = img.convert("RGBA")
        base = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(base, rgba)
    return img.convert(mode)


def to_image(source, mode: str | None = "RGB") -> Image.Image:
    """Any image-like ``source`` as a loaded 8-bit PIL image of ``mode`` (EXIF orientation applied).

    ``source``: a file path, a ``PIL.Image``, a numpy array or a tensor (``HW``, ``HWC`` or ``CHW``;
    ``uint8``, 16-bit, bool, or float in ``[0, 1]``). Unreadable files raise
    :class:`~learnkit.exceptions.DataError` naming the file.

    >>> to_image(np.zeros((4, 5), dtype=np.uint8)).size
    (5, 4)
    """
    if mode is not None and mode not in _MODES:
        raise DataError(
            f"Expected an image mode in {sorted(_MODES)}. Received: mode={mode!r}.{suggest(str(mode), _MODES)} "
            "Fix: ImageBlock(mode='RGB') for colour or mode='L' for grayscale."
        )
    if isinstance(source, (str, os.PathLike)):
        return _open_file(source, mode)
    if isinstance(source, Image.Image):
        img = source
        try:
            img = ImageOps.exif_transpose(img) or img
        except Exception:  # malformed EXIF data: keep the pixels as they are
            pass
        return _convert_mode(img, mode)
    if isinstance(source, torch.Tensor):
        return _convert_mode(_from_array(source.detach().cpu().numpy()), mode)
    if isinstance(source, np.ndarray):
        return _convert_mode(_from_array(source), mode)
    if isinstance(source, (bytes, bytearray)):
        import io

        return _open_file(io.BytesIO(source), mode, name="<bytes>")
    raise DataError(
        f"Expected an image: a file path, a PIL image, a numpy array or a tensor. Received: "
        f"{_describe_source(source)}. Fix: pass the path of an image file."
    )


def _open_file(path, mode, name: str | None = None) -> Image.Image:
    name = name or os.fspath(path)
    try:
        with Image.open(path) as im:
            im.load()
            try:
                im = ImageOps.exif_transpose(im) or im
            except Exception:  # malformed EXIF: keep the stored orientation
                pass
            img = _convert_mode(im, mode)
            if img is im:
                img = im.copy()
    except FileNotFoundError as e:
        raise DataError(
            f"Expected an existing image file. Received: path={name!r}, which does not exist. "
            "Fix: check the path (it may have been moved or deleted since the items were listed)."
        ) from e
    except UnidentifiedImageError as e:
        raise DataError(
            f"Expected an image file. Received: path={name!r}, which is not an image that PIL can read "
            "(wrong extension, or not an image at all). Fix: remove the file, or list bad files with "
            "verify_images(files) and pass bad_images='skip' to the ImageDataLoaders factory."
        ) from e
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError, EOFError) as e:
        raise DataError(
            f"Expected a readable image file. Received: path={name!r}, which is corrupt or truncated "
            f"({type(e).__name__}: {e}). Fix: replace or remove the file; verify_images(files) lists every "
            "unreadable file, and bad_images='skip' in the ImageDataLoaders factories drops them."
        ) from e
    return img


def open_image(path, mode: str | None = "RGB") -> Image.Image:
    """Open an image file as a loaded 8-bit PIL image of ``mode`` (see :func:`to_image`).

    >>> open_image("cat.jpg", mode="L").mode  # doctest: +SKIP
    'L'
    """
    return to_image(path, mode)


def open_mask(source) -> Image.Image:
    """A segmentation mask (file path, PIL image, array or tensor of class codes) as a PIL image of mode
    ``'L'``, ``'P'`` or ``'I'`` whose pixel values are the class codes (palette indices are kept).

    >>> open_mask(np.array([[0, 1], [2, 1]], dtype=np.uint8)).getpixel((0, 1))
    2
    """
    if isinstance(source, (str, os.PathLike)):
        name = os.fspath(source)
        try:
            with Image.open(source) as im:
                im.load()
                m = im.copy()
        except FileNotFoundError as e:
            raise DataError(
                f"Expected an existing mask file. Received: path={name!r}, which does not exist. "
                "Fix: check the function that maps an image to its mask file (get_y / label_func)."
            ) from e
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as e:
            raise DataError(
                f"Expected a readable mask image. Received: path={name!r} ({type(e).__name__}: {e}). "
                "Fix: replace or remove the file."
            ) from e
    elif isinstance(source, Image.Image):
        m = source
    elif isinstance(source, (np.ndarray, torch.Tensor)):
        arr = source.detach().cpu().numpy() if isinstance(source, torch.Tensor) else np.asarray(source)
        if arr.ndim != 2:
            raise DataError(
                f"Expected a mask array of shape (H, W) of class codes. Received: shape={tuple(arr.shape)}. "
                "Fix: pass one mask with one integer class code per pixel."
            )
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            m = Image.fromarray(arr.astype(np.int32), mode="I")
        else:
            m = Image.fromarray(arr.astype(np.uint8), mode="L")
    else:
        raise DataError(
            f"Expected a mask: a file path, a PIL image or an array of class codes. Received: "
            f"{_describe_source(source)}."
        )
    if m.mode in ("RGB", "RGBA", "LA"):
        arr = np.asarray(m)
        chans = arr[..., :3] if arr.ndim == 3 else arr
        if arr.ndim == 3 and not (
            np.array_equal(chans[..., 0], chans[..., 1]) and np.array_equal(chans[..., 0], chans[..., 2])
        ):
            raise DataError(
                f"Expected a single-channel mask of class codes (mode 'L' or 'P'). Received: a colour ({m.mode}) "
                "mask whose channels differ. Fix: save masks as 8-bit grayscale or palette PNGs whose pixel "
                "values are class indices (map each colour to its index first)."
            )
        m = Image.fromarray(np.ascontiguousarray(chans[..., 0] if arr.ndim == 3 else chans), mode="L")
    elif m.mode == "1":
        m = m.convert("L").point(lambda v: 1 if v else 0)
    return m


class PILImage(Image.Image):
    """An RGB PIL image with the conveniences course code uses: ``PILImage.create(path)`` opens one, and it
    has ``.shape`` (``(h, w)``), ``.to_thumb(n)`` and ``.show(ctx=...)``.

    It *is* a ``PIL.Image.Image`` (every PIL operation works; derived images are plain PIL images).
    ``ImageBlock(cls=PILImage)`` is ``ImageBlock('RGB')``.

    >>> img = PILImage.create(np.zeros((2, 3), dtype=np.uint8))
    >>> img.mode, img.shape
    ('RGB', (2, 3))
    """

    _open_mode = "RGB"

    @classmethod
    def create(cls, source) -> PILImage:
        """Open ``source`` (path, PIL image, array, tensor, bytes) as an 8-bit image of this class's mode."""
        img = to_image(source, cls._open_mode)
        if img is source:  # never change the class of the caller's own image
            img = img.copy()
        img.__class__ = cls
        return img

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)``, as a tensor's last two dimensions."""
        return self.size[1], self.size[0]

    def to_thumb(self, h: int, w: int | None = None) -> PILImage:
        """A copy shrunk to fit in ``h`` x ``w`` (``w = h`` by default), keeping the aspect ratio."""
        im = self.copy()
        im.thumbnail((w if w is not None else h, h))
        im.__class__ = type(self)
        return im

    def show(self, ctx=None, figsize=None, title=None, **kwargs):
        """Draw the image on the matplotlib axes ``ctx`` (a new figure when None); returns the axes."""
        return show_image(self, ax=ctx, figsize=figsize, title=title, **kwargs)


class PILImageBW(PILImage):
    """A grayscale (``'L'``) :class:`PILImage`: ``ImageBlock(cls=PILImageBW)`` is ``ImageBlock('L')``.

    Example: ``PILImageBW.create('digit.png')``, or ``DataBlock(blocks=(ImageBlock(cls=PILImageBW), ...))``.
    """

    _open_mode = "L"


class PILMask:
    """Opens segmentation masks: ``PILMask.create(path)`` (see :func:`open_mask`).

    Example: ``mask = PILMask.create('labels/img_P.png')``.
    """

    @classmethod
    def create(cls, source) -> Image.Image:
        """Open ``source`` as a mask of class codes."""
        return open_mask(source)


# ---------------------------------------------------------------------------------------------- verify
def _check_one(path) -> str | None:
    try:
        _open_file(path, None)
    except DataError as e:
        return str(e.__cause__ or e)
    return None


def verify_images(files, n_workers: int | None = None, with_reasons: bool = False):
    """The files among ``files`` that cannot be opened and decoded as images (corrupt, truncated, not images).

    Every file is fully decoded (threads, ``n_workers`` of them), so truncated files are caught too.
    Returns an :class:`~learnkit.utils.L` of paths, or of ``(path, reason)`` pairs with ``with_reasons=True``.

    >>> failed = verify_images(get_image_files("data/pets"))  # doctest: +SKIP
    >>> failed.map(Path.unlink)  # doctest: +SKIP
    """
    files = [LPath(f) for f in listify(files)]
    if not files:
        return L()
    n = n_workers or min(8, (os.cpu_count() or 1) * 2)
    if n <= 1 or len(files) < 16:
        reasons = [_check_one(f) for f in files]
    else:
        with ThreadPoolExecutor(n) as ex:
            reasons = list(ex.map(_check_one, files, chunksize=16))
    bad = L((f, r) for f, r in zip(files, reasons) if r is not None)
    return bad if with_reasons else bad.itemgot(0)


# ---------------------------------------------------------------------------------------------- resize
def resize_image(
    file,
    dest,
    src=".",
    max_size: int | None = None,
    n_channels: int = 3,
    ext: str | None = None,
    img_format: str | None = None,
    resample=Image.BILINEAR,
    **save_kwargs,
) -> Path:
    """Save ``file`` (a path under folder ``src``) into folder ``dest`` at the same relative path, shrunk
    so that its longest side is at most ``max_size`` (aspect kept; never enlarged) and converted to
    ``n_channels`` (1 or 3). ``ext`` changes the extension (``'.jpg'``). The write is atomic. Returns the
    new path. Example: ``resize_image('raw/cat/1.jpg', 'small', src='raw', max_size=400)``.
    """
    file, dest, src = Path(file), Path(dest), Path(src)
    try:
        rel = file.relative_to(src)
    except ValueError:
        rel = Path(file.name)
    out = dest / rel
    if ext is not None:
        out = out.with_suffix(ext if ext.startswith(".") else "." + ext)
    img = to_image(file, "L" if n_channels == 1 else "RGB")
    if max_size is not None and max(img.size) > max_size:
        scale = max_size / max(img.size)
        img = img.resize((max(1, round(img.size[0] * scale)), max(1, round(img.size[1] * scale))), resample)
    buf = io.BytesIO()
    fmt = img_format or Image.registered_extensions().get(out.suffix.lower()) or "PNG"
    img.save(buf, format=fmt, **save_kwargs)
    atomic_write_bytes(buf.getvalue(), out)
    return LPath(out)


def resize_images(
    path,
    max_workers: int | None = None,
    max_size: int | None = None,
    recurse: bool = False,
    dest=".",
    n_channels: int = 3,
    ext: str | None = None,
    img_format: str | None = None,
    resample=Image.BILINEAR,
    **kwargs,
) -> L:
    """:func:`resize_image` for every image under ``path`` (``recurse=True`` for sub-folders) into ``dest``,
    keeping the folder structure; runs on ``max_workers`` threads. Returns the new paths (an ``L``).

    >>> resize_images("raw", max_size=400, dest="small", recurse=True)  # doctest: +SKIP
    """
    files = get_image_files(path, recurse=recurse, allow_empty=True)
    n = max_workers or min(8, (os.cpu_count() or 1) * 2)

    def one(f):
        return resize_image(
            f,
            dest,
            src=path,
            max_size=max_size,
            n_channels=n_channels,
            ext=ext,
            img_format=img_format,
            resample=resample,
            **kwargs,
        )

    if n <= 1 or len(files) < 8:
        return L(one(f) for f in files)
    with ThreadPoolExecutor(n) as ex:
        return L(ex.map(one, files))


# ---------------------------------------------------------------------------------------------- blocks
@register_block
class ImageBlock(TransformBlock):
    """Images: paths (or PIL images, arrays, tensors) opened lazily as 8-bit PIL images of ``mode``.

    In the pipeline an image is a ``PIL.Image`` during item transforms, then a ``uint8`` ``(C, H, W)``
    tensor; the block adds :class:`~learnkit.data.transforms.IntToFloat` to the batch transforms, so
    models see floats in ``[0, 1]`` (normalised when a pretrained model asks for it).

    Args:
        mode: ``'RGB'`` (3 channels), ``'L'`` (grayscale, 1 channel) or ``'RGBA'``.
        cls: alternatively :class:`PILImage` / :class:`PILImageBW` (sets ``mode``).

    >>> block = ImageBlock(mode="L")
    >>> block.to_tensor(block.encode(np.zeros((4, 6), dtype=np.uint8))).shape
    torch.Size([1, 4, 6])
    """

    kind = "image"
    batch_tfms = (IntToFloat(),)

    def __init__(self, mode: str = "RGB", cls=None, item_tfms=None, batch_tfms=None):
        if cls is not None:
            mode = getattr(cls, "_open_mode", None)
            if mode not in _MODES:
                raise DataError(
                    f"Expected cls=PILImage or cls=PILImageBW. Received: cls={cls!r}. Fix: ImageBlock(mode='RGB')."
                )
        if mode not in _MODES:
            raise DataError(
                f"Expected mode in {sorted(_MODES)}. Received: mode={mode!r}.{suggest(str(mode), _MODES)} "
                "Fix: ImageBlock(mode='RGB') for colour or mode='L' for grayscale."
            )
        self.mode = mode
        super().__init__(item_tfms=item_tfms, batch_tfms=batch_tfms)

    @property
    def n_channels(self) -> int:
        """Number of channels of the tensors this block makes (1 for ``'L'``, 3 for ``'RGB'``, 4 for ``'RGBA'``)."""
        return _MODES[self.mode]

    def encode(self, value) -> Image.Image:
        """Open ``value`` (path, PIL image, array, tensor) as an 8-bit PIL image of this block's mode."""
        return to_image(value, self.mode)

    def to_tensor(self, obj) -> torch.Tensor:
        """PIL image -> ``uint8`` ``(C, H, W)`` tensor."""
        if isinstance(obj, torch.Tensor):
            return obj
        if obj.mode != self.mode:
            obj = _convert_mode(obj, self.mode)
        return pil_to_uint8_tensor(obj)

    def collate(self, tensors: list) -> torch.Tensor:
        """Stack images of one size; different sizes raise an error saying how to resize them."""
        shapes = {tuple(t.shape) for t in tensors}
        if len(shapes) > 1:
            raise DataError(
                f"Expected every image in a batch to have the same size to stack them. Received: shapes (C, H, W) "
                f"{sorted(shapes)[:4]}{' ...' if len(shapes) > 4 else ''}. Fix: add a resize to item_tfms, e.g. "
                "item_tfms=Resize(224) (or RandomResizedCrop(224))."
            )
        return torch.stack(tensors)

    def decode(self, t) -> np.ndarray:
        """One image tensor ``(C, H, W)`` (float in ``[0, 1]`` or ``uint8``) -> ``(H, W, C)`` float array in ``[0, 1]``
        (``(H, W)`` for one channel)."""
        t = t.detach().cpu()
        t = t.float() / 255.0 if not t.is_floating_point() else t.float()
        arr = t.clamp(0, 1).permute(1, 2, 0).numpy()
        return arr[..., 0] if arr.shape[-1] == 1 else arr

    def show(self, value, ax=None, title=None, **kwargs):
        """Draw the image on ``ax``."""
        return show_image(value, ax=ax, title=title, **kwargs)

    def spec_kwargs(self) -> dict:
        """Constructor arguments as plain data (for exports)."""
        return {**super().spec_kwargs(), "mode": self.mode}


@register_transform
class MaskSizeCheck(ItemTransform):
    """Checks that each mask has the size of its image before any item transform (added by :class:`MaskBlock`).

    >>> MaskSizeCheck()((Image.new("RGB", (4, 4)), Image.new("L", (4, 4))), ("image", "mask"), True)[1].size
    (4, 4)
    """

    order = -10

    def __call__(self, sample, kinds, train):
        img = next((x for x, k in zip(sample, kinds) if k == "image" and isinstance(x, Image.Image)), None)
        if img is None:
            return sample
        for x, k in zip(sample, kinds):
            if k == "mask" and isinstance(x, Image.Image) and x.size != img.size:
                raise DataError(
                    f"Expected the mask to have the size of its image. Received: image size {img.size} and mask "
                    f"size {x.size} (width, height). Fix: check that get_y / label_func maps each image to its own "
                    "mask, and that masks were saved at the image's resolution."
                )
        return sample


@register_block
class MaskBlock(TransformBlock):
    """Segmentation masks: one class code per pixel, kept aligned with their image by every transform.

    A mask is a PIL image (mode ``'L'``, ``'P'`` or ``'I'``) during item transforms, then an ``int64``
    ``(H, W)`` tensor. ``codes`` names the classes (``codes[i]`` is the class of pixel value ``i``);
    without codes the classes are the values found in the training masks (which are read once).
    The loss is :class:`~learnkit.losses.CrossEntropyLossFlat` over the class axis.

    >>> block = MaskBlock(codes=["background", "digit"])
    >>> block.c
    2
    """

    kind = "mask"
    item_tfms = (MaskSizeCheck(),)

    def __init__(self, codes: Sequence[str] | None = None, item_tfms=None, batch_tfms=None):
        self.codes = None if codes is None else [str(c) for c in codes]
        self._given = self.codes is not None
        super().__init__(item_tfms=item_tfms, batch_tfms=batch_tfms)

    @property
    def vocab(self):
        """The class names (``codes``)."""
        return self.codes

    @property
    def c(self) -> int | None:
        """Number of classes (model outputs per pixel)."""
        return None if self.codes is None else len(self.codes)

    def setup(self, values) -> None:
        """Without ``codes``, find the class codes used in the training masks (reads each mask once)."""
        if self.codes is not None:
            return
        top = 0
        for v in values:
            m = mask_to_tensor(open_mask(v))
            if m.numel():
                top = max(top, int(m.max()))
        self.codes = [str(i) for i in range(top + 1)]

    def encode(self, value) -> Image.Image:
        """Open ``value`` (path, PIL image, array) as a mask image of class codes."""
        return open_mask(value)

    def to_tensor(self, obj) -> torch.Tensor:
        """Mask image -> ``int64`` ``(H, W)`` tensor of class codes."""
        if isinstance(obj, torch.Tensor):
            return obj.long()
        return mask_to_tensor(obj)

    def collate(self, tensors: list) -> torch.Tensor:
        """Stack masks of one size."""
        shapes = {tuple(t.shape) for t in tensors}
        if len(shapes) > 1:
            raise DataError(
                f"Expected every mask in a batch to have the same size. Received: shapes (H, W) {sorted(shapes)[:4]}. "
                "Fix: add a resize to item_tfms, e.g. item_tfms=Resize(224) (masks are resized with their images)."
            )
        return torch.stack(tensors)

    def loss_func(self):
        """Cross-entropy over the class axis of a ``(B, c, H, W)`` output."""
        return CrossEntropyLossFlat(axis=1)

    def decode(self, t) -> np.ndarray:
        """A mask tensor -> ``(H, W)`` int array of class codes."""
        return torch.as_tensor(t).detach().cpu().long().numpy()

    def decode_pred(self, decoded):
        """Decoded predictions (class index per pixel) -> ``(H, W)`` int array of class codes."""
        return self.decode(decoded)

    def show(self, value, ax=None, title=None, **kwargs):
        """Overlay the mask on ``ax`` (the image is drawn first)."""
        return show_mask(value, ax=ax, title=title, n_codes=self.c, **kwargs)

    def show_result(self, target, pred, ax=None, **kwargs):
        """Overlay the predicted mask; the title gives the pixel accuracy against ``target`` (red below 90%)."""
        pred = np.asarray(pred)
        ax = show_mask(pred, ax=ax, n_codes=self.c)
        t = np.asarray(target)
        if t.shape == pred.shape and t.size:
            acc = float((t == pred).mean())
            ax.set_title(f"pixel accuracy {acc:.2f}", color="green" if acc >= 0.9 else "red")
        return ax

    def spec_kwargs(self) -> dict:
        """Constructor arguments as plain data (for exports)."""
        return {**super().spec_kwargs(), "codes": self.codes if self._given else None}

    def get_state(self) -> dict:
        return {"codes": self.codes}

    def set_state(self, state: dict) -> None:
        if state.get("codes") is not None:
            self.codes = [str(c) for c in state["codes"]]


@register_transform
class PointScaler(BatchTransform):
    """Points from pixel coordinates to ``[-1, 1]`` of their image (after the geometric transforms); ``decode``
    maps back. :class:`PointBlock` adds it, so models regress coordinates of a sane scale.

    It keeps the ``(h, w)`` of the images it last saw (``img_size``, as fastai's does), so a prediction alone
    (``learn.predict``) decodes back to pixels of the model's input images.

    >>> x = torch.zeros(1, 3, 10, 20); p = torch.tensor([[[20.0, 0.0]]])
    >>> PointScaler()((x, p), ("image", "points"), True)[1].tolist()
    [[[1.0, -1.0]]]
    """

    order = 95
    per_item = True

    def __init__(self, img_size=None):
        self.img_size = None if img_size is None else (int(img_size[0]), int(img_size[1]))

    def _size(self, batch, kinds):
        for x, k in zip(batch, kinds):
            if k in ("image", "mask") and isinstance(x, torch.Tensor):
                self.img_size = (int(x.shape[-2]), int(x.shape[-1]))
                return x.shape[-2], x.shape[-1]
        return None

    def unscale(self, points: torch.Tensor) -> torch.Tensor:
        """``[-1, 1]`` coordinates (``(..., 2)``) back to pixels of the images last seen."""
        if self.img_size is None:
            raise DataError(
                "Expected PointScaler to know the image size to decode points to pixels. Received: no image "
                "batch seen yet in this process. Fix: pass PointBlock(img_size=(height, width))."
            )
        h, w = self.img_size
        return (points.float() + 1) * torch.tensor([w / 2, h / 2], device=points.device)

    def spec_kwargs(self) -> dict:
        return {"img_size": None if self.img_size is None else list(self.img_size)}

    def __call__(self, batch, kinds, train):
        hw = self._size(batch, kinds)
        if hw is None:
            return batch
        s = torch.tensor([hw[1] / 2, hw[0] / 2])
        return tuple(x.float() / s.to(x.device) - 1 if k == "points" else x for x, k in zip(batch, kinds))

    def decode(self, batch, kinds):
        hw = self._size(batch, kinds)
        if hw is None:
            return batch
        s = torch.tensor([hw[1] / 2, hw[0] / 2])
        return tuple((x.float() + 1) * s.to(x.device) if k == "points" else x for x, k in zip(batch, kinds))


@register_block
class PointBlock(TransformBlock):
    """Keypoints: ``(n, 2)`` ``(x, y)`` pixel coordinates per image, moved with the image by every transform.

    In the batch they are scaled to ``[-1, 1]`` of the image (:class:`PointScaler`); the model outputs
    ``c = 2 n`` numbers and the loss is :class:`~learnkit.losses.MSELossFlat`. Predictions
    (``learn.predict``) decode to ``(n, 2)`` points in pixel coordinates of the model's input images, as
    fastai's do; ``img_size=(h, w)`` gives that size up front (it is otherwise read from the batches, and
    exported).

    >>> PointBlock().encode([[3, 4]]).tolist()
    [[3.0, 4.0]]
    """

    kind = "points"
    batch_tfms = (PointScaler(),)

    def __init__(self, n_points: int | None = None, item_tfms=None, batch_tfms=None, img_size=None):
        self.n_points = n_points
        super().__init__(item_tfms=item_tfms, batch_tfms=batch_tfms)
        if batch_tfms is None:
            self.batch_tfms = (PointScaler(img_size),)  # this block's own (it keeps the image size)
        self._scaler = next((t for t in self.batch_tfms if isinstance(t, PointScaler)), None)
        if self._scaler is not None and img_size is not None:
            self._scaler.img_size = (int(img_size[0]), int(img_size[1]))

    @property
    def c(self) -> int | None:
        """Number of model outputs: two coordinates per point."""
        return None if self.n_points is None else 2 * self.n_points

    def setup(self, values) -> None:
        """Find the number of points per image (it must be the same for all)."""
        ns = {len(self.encode(v)) for v in values}
        if len(ns) > 1:
            raise DataError(
                f"Expected the same number of points for every image. Received: counts {sorted(ns)}. "
                "Fix: pad missing points with NaN so every image has as many."
            )
        if ns and self.n_points is None:
            self.n_points = ns.pop()

    def encode(self, value) -> torch.Tensor:
        """Points as a float tensor ``(n, 2)``."""
        p = value if isinstance(value, torch.Tensor) else torch.as_tensor(np.asarray(value, dtype=np.float32))
        p = p.float()
        if p.numel() % 2 == 0:
            p = p.reshape(-1, 2)
        if p.ndim != 2 or p.shape[-1] != 2:
            raise DataError(
                f"Expected points as (x, y) pairs, shape (n, 2). Received: shape={tuple(p.shape)}. "
                "Fix: give a list of [x, y] pixel coordinates per image."
            )
        return p

    def to_tensor(self, obj) -> torch.Tensor:
        return torch.as_tensor(obj).float()

    def collate(self, tensors: list) -> torch.Tensor:
        """Stack the points of the batch (every image has ``n_points``)."""
        shapes = {tuple(t.shape) for t in tensors}
        if len(shapes) > 1:
            raise DataError(
                f"Expected the same number of points for every image. Received: shapes {sorted(shapes)[:4]}. "
                "Fix: pad missing points with NaN."
            )
        return torch.stack(tensors)

    def loss_func(self):
        """Mean squared error on the flattened coordinates."""
        return MSELossFlat()

    def decode(self, t) -> torch.Tensor:
        """Points tensor (pixel coordinates after batch decoding) as ``(n, 2)``."""
        return torch.as_tensor(t).detach().cpu().float().reshape(-1, 2)

    def decode_pred(self, decoded):
        """Model output -> ``(n, 2)`` ``(x, y)`` points in pixel coordinates of the model's input image."""
        p = torch.as_tensor(decoded).detach().cpu().float().reshape(-1, 2)
        return p if self._scaler is None else self._scaler.unscale(p)

    def get_state(self) -> dict:
        """The image size the points are scaled by (plain data, for exports)."""
        size = None if self._scaler is None else self._scaler.img_size
        return {} if size is None else {"img_size": list(size)}

    def set_state(self, state: dict) -> None:
        if state.get("img_size") is not None and self._scaler is not None:
            self._scaler.img_size = tuple(int(v) for v in state["img_size"])

    def show(self, value, ax=None, title=None, **kwargs):
        """Scatter the points on ``ax`` over their image."""
        ax = show_points(value, ax=ax, **kwargs)
        if title is not None:
            ax.set_title(str(title))
        return ax

    def show_result(self, target, pred, ax=None, **kwargs):
        """Targets as red crosses, predictions (pixel coordinates) as blue ones."""
        ax = show_points(target, ax=ax, color="red")
        show_points(torch.as_tensor(pred).float().reshape(-1, 2), ax=ax, color="blue")
        ax.set_title("target (red) / prediction (blue)", fontsize=8)
        return ax

    def spec_kwargs(self) -> dict:
        """Constructor arguments as plain data (for exports)."""
        return {**super().spec_kwargs(), "n_points": self.n_points}


# ---------------------------------------------------------------------------------------------- factories
class _ItemAt:
    """Picklable ``item[i]`` getter (for items that are tuples, e.g. ``(file, label)``)."""

    def __init__(self, i: int):
        self.i = i

    def __call__(self, item):
        return item[self.i]

    def __repr__(self) -> str:
        return f"ItemAt({self.i})"


def _drop_bad(files: list, bad_images: str, get_file: Callable | None = None) -> list:
    if bad_images not in ("raise", "skip"):
        raise DataError(
            f"Expected bad_images='raise' or 'skip'. Received: bad_images={bad_images!r}. "
            "Fix: 'skip' drops unreadable images with a warning; 'raise' (default) errors when one is met."
        )
    if bad_images == "raise":
        return files
    paths = [get_file(f) if get_file is not None else f for f in files]
    bad = set(map(str, verify_images(paths)))
    if not bad:
        return files
    shown = sorted(bad)
    warnings.warn(
        f"Skipped {len(bad)} unreadable image file(s) (corrupt, truncated or not images): "
        f"{shown[:5]}{' ...' if len(shown) > 5 else ''}. Delete them to silence this warning.",
        stacklevel=3,
    )
    return [f for f, p in zip(files, paths) if str(p) not in bad]


def _resolve_files(path, fnames) -> list[Path]:
    root = Path(path) if path is not None else Path(".")
    out = []
    for f in listify(fnames):
        p = Path(f)
        out.append(p if p.is_absolute() or p.exists() else root / p)
    if not out:
        raise DataError(
            "Expected at least one file. Received: fnames=[]. Fix: pass get_image_files(path) or a list of paths."
        )
    return out


def _dataloaders(
    blocks,
    items,
    get_x,
    get_y,
    splitter,
    item_tfms,
    batch_tfms,
    path,
    bs,
    val_bs,
    num_workers,
    device,
    shuffle,
    kwargs,
):
    db = DataBlock(
        blocks=blocks, get_x=get_x, get_y=get_y, splitter=splitter, item_tfms=item_tfms, batch_tfms=batch_tfms
    )
    dls = db.dataloaders(
        items, bs=bs, val_bs=val_bs, num_workers=num_workers, device=device, shuffle=shuffle, **kwargs
    )
    dls.path = Path(path) if path is not None else Path(".")
    return dls


class ImageDataLoaders:
    """Factories for image classification (and multi-label / regression) DataLoaders, one call each.

    Every factory takes ``item_tfms`` (per item, e.g. ``Resize(224)``), ``batch_tfms`` (on the device,
    e.g. ``aug_transforms()``), ``bs``, ``val_bs``, ``num_workers``, ``device``, ``img_mode`` (``'RGB'`` or
    ``'L'``) and ``bad_images`` (``'raise'``: a corrupt file raises an error naming it when met;
    ``'skip'``: unreadable files are found up front and dropped with a warning).

    >>> dls = ImageDataLoaders.from_folder(path, valid_pct=0.2, item_tfms=Resize(32), bs=64)  # doctest: +SKIP
    >>> dls = ImageDataLoaders.from_name_re(path, files, r"^([a-z_]+)_\\d+", item_tfms=Resize(224))  # doctest: +SKIP
    """

    @staticmethod
    def from_folder(
        path,
        train: str = "train",
        valid: str = "valid",
        valid_pct: float | None = None,
        seed: int | None = None,
        vocab=None,
        item_tfms=None,
        batch_tfms=None,
        img_mode: str = "RGB",
        bs: int = 64,
        val_bs: int | None = None,
        num_workers: int | None = None,
        device=None,
        shuffle: bool = True,
        bad_images: str = "raise",
        **kwargs,
    ):
        """ImageNet-style folders: ``path/train/<class>/*.jpg`` and ``path/valid/<class>/*.jpg``; the label is the
        parent folder's name. With ``valid_pct``, every image under ``path`` is used and a random share
        becomes the validation set (``path/<class>/*.jpg`` works then).

        A class folder holding no images is reported with a warning (it cannot be a class).
        """
        path = Path(path)
        if not path.is_dir():
            raise DataError(
                f"Expected a folder of images. Received: path={str(path)!r}, which "
                f"{'is a file' if path.exists() else 'does not exist'}. Fix: pass the folder that holds train/ and "
                "valid/ (or the class folders, with valid_pct=0.2)."
            )
        if valid_pct is None:
            missing = [n for n in (train, valid) if not (path / n).is_dir()]
            if missing:
                subs = sorted(d.name for d in path.iterdir() if d.is_dir())
                raise DataError(
                    f"Expected sub-folders {train!r} and {valid!r} in {str(path)!r}. Received: sub-folders {subs[:10]}"
                    f"{' ...' if len(subs) > 10 else ''} (missing {missing}).{suggest(missing[0], subs)} Fix: pass "
                    "train=/valid= with your folder names, or valid_pct=0.2 to split the images at random."
                )
            roots = [path / train, path / valid]
            files = get_image_files(path, folders=[train, valid])
            splitter = GrandparentSplitter(train_name=train, valid_name=valid)
        else:
            roots = [path]
            files = get_image_files(path)
            splitter = RandomSplitter(valid_pct, seed=seed)
        _warn_empty_classes(roots, files, vocab)
        files = _drop_bad(files, bad_images)
        blocks = (ImageBlock(mode=img_mode), CategoryBlock(vocab=vocab))
        return _dataloaders(
            blocks,
            files,
            None,
            parent_label,
            splitter,
            item_tfms,
            batch_tfms,
            path,
            bs,
            val_bs,
            num_workers,
            device,
            shuffle,
            kwargs,
        )

    @staticmethod
    def from_path_func(
        path,
        fnames,
        label_func: Callable,
        valid_pct: float = 0.2,
        seed: int | None = None,
        item_tfms=None,
        batch_tfms=None,
        img_mode: str = "RGB",
        y_block=None,
        bs: int = 64,
        val_bs: int | None = None,
        num_workers: int | None = None,
        device=None,
        shuffle: bool = True,
        bad_images: str = "raise",
        **kwargs,
    ):
        """Labels from ``label_func(path_of_file)``; a random ``valid_pct`` share is the validation set."""
        files = _drop_bad(_resolve_files(path, fnames), bad_images)
        blocks = (ImageBlock(mode=img_mode), _y_block(y_block))
        return _dataloaders(
            blocks,
            files,
            None,
            label_func,
            RandomSplitter(valid_pct, seed=seed),
            item_tfms,
            batch_tfms,
            path,
            bs,
            val_bs,
            num_workers,
            device,
            shuffle,
            kwargs,
        )

    @staticmethod
    def from_name_func(
        path, fnames, label_func: Callable, valid_pct: float = 0.2, seed: int | None = None, **kwargs
    ):
        """Labels from ``label_func(file_name)`` (the name only, e.g. ``'cat_12.jpg'``).

        >>> dls = ImageDataLoaders.from_name_func(path, files, lambda n: n[0].isupper(), item_tfms=Resize(224))  # doctest: +SKIP
        """
        return ImageDataLoaders.from_path_func(
            path, fnames, using_attr(label_func, "name"), valid_pct=valid_pct, seed=seed, **kwargs
        )

    @staticmethod
    def from_path_re(path, fnames, pat: str, valid_pct: float = 0.2, seed: int | None = None, **kwargs):
        """Labels from the first group of regular expression ``pat`` searched in the whole path."""
        return ImageDataLoaders.from_path_func(
            path, fnames, RegexLabeller(pat), valid_pct=valid_pct, seed=seed, **kwargs
        )

    @staticmethod
    def from_name_re(path, fnames, pat: str, valid_pct: float = 0.2, seed: int | None = None, **kwargs):
        """Labels from the first group of regular expression ``pat`` searched in the file name.

        >>> dls = ImageDataLoaders.from_name_re(path, files, r"^(.+)_\\d+\\.jpg$")  # doctest: +SKIP
        """
        return ImageDataLoaders.from_name_func(
            path, fnames, RegexLabeller(pat), valid_pct=valid_pct, seed=seed, **kwargs
        )

    @staticmethod
    def from_df(
        df,
        path=".",
        valid_pct: float = 0.2,
        seed: int | None = None,
        fn_col=0,
        folder: str | None = None,
        suff: str = "",
        label_col=1,
        label_delim: str | None = None,
        y_block=None,
        valid_col=None,
        item_tfms=None,
        batch_tfms=None,
        img_mode: str = "RGB",
        bs: int = 64,
        val_bs: int | None = None,
        num_workers: int | None = None,
        device=None,
        shuffle: bool = True,
        bad_images: str = "raise",
        **kwargs,
    ):
        """A table with a file-name column ``fn_col`` (relative to ``path/folder``, plus ``suff``) and label
        column(s) ``label_col``. ``label_delim`` (e.g. ``' '``) makes it multi-label; ``y_block`` picks another
        target block (e.g. ``RegressionBlock()``); ``valid_col`` names a boolean column marking validation rows,
        otherwise a random ``valid_pct`` share is used.
        """
        import pandas as pd

        if not isinstance(df, pd.DataFrame):
            raise DataError(
                f"Expected a pandas DataFrame. Received: df={type(df).__name__}. Fix: pd.read_csv(...)."
            )
        if len(df) == 0:
            raise DataError("Expected a DataFrame with rows. Received: an empty DataFrame.")
        pref = Path(path) / folder if folder is not None else Path(path)
        get_x = ColReader(fn_col, pref=pref, suff=suff)
        if y_block is None:
            y_block = MultiCategoryBlock() if label_delim is not None else CategoryBlock()
        get_y = ColReader(label_col, label_delim=label_delim)
        splitter = ColSplitter(valid_col) if valid_col is not None else RandomSplitter(valid_pct, seed=seed)
        rows = df
        if bad_images == "skip":
            keep = _drop_bad(list(range(len(df))), bad_images, get_file=lambda i: get_x(df.iloc[i]))
            rows = df.iloc[keep].reset_index(drop=True)
        else:
            _drop_bad([], bad_images)
        blocks = (ImageBlock(mode=img_mode), _y_block(y_block))
        return _dataloaders(
            blocks,
            rows,
            get_x,
            get_y,
            splitter,
            item_tfms,
            batch_tfms,
            path,
            bs,
            val_bs,
            num_workers,
            device,
            shuffle,
            kwargs,
        )

    @staticmethod
    def from_csv(path, csv_fname: str = "labels.csv", header="infer", delimiter: str | None = None, **kwargs):
        """:meth:`from_df` on ``path/csv_fname`` read with pandas."""
        import pandas as pd

        f = Path(path) / csv_fname
        if not f.is_file():
            raise DataError(
                f"Expected a CSV file. Received: {str(f)!r}, which does not exist. Fix: check csv_fname."
            )
        df = pd.read_csv(f, header=header, **({"delimiter": delimiter} if delimiter is not None else {}))
        return ImageDataLoaders.from_df(df, path=path, **kwargs)

    @staticmethod
    def from_lists(
        path,
        fnames,
        labels,
        valid_pct: float = 0.2,
        seed: int | None = None,
        y_block=None,
        item_tfms=None,
        batch_tfms=None,
        img_mode: str = "RGB",
        bs: int = 64,
        val_bs: int | None = None,
        num_workers: int | None = None,
        device=None,
        shuffle: bool = True,
        bad_images: str = "raise",
        **kwargs,
    ):
        """Parallel lists of files (relative to ``path`` or absolute) and labels."""
        files, labels = _resolve_files(path, fnames), list(labels)
        if len(files) != len(labels):
            raise DataError(
                f"Expected one label per file. Received: {len(files)} files and {len(labels)} labels. "
                "Fix: pass two lists of the same length."
            )
        items = list(zip(files, labels))
        items = _drop_bad(items, bad_images, get_file=_ItemAt(0))
        blocks = (ImageBlock(mode=img_mode), _y_block(y_block))
        return _dataloaders(
            blocks,
            items,
            _ItemAt(0),
            _ItemAt(1),
            RandomSplitter(valid_pct, seed=seed),
            item_tfms,
            batch_tfms,
            path,
            bs,
            val_bs,
            num_workers,
            device,
            shuffle,
            kwargs,
        )


def _y_block(y_block):
    if y_block is None:
        return CategoryBlock()
    return y_block() if isinstance(y_block, type) else y_block


def _warn_empty_classes(roots, files, vocab) -> None:
    """Warn about class folders (direct sub-folders of ``roots``) that hold no image file."""
    if vocab is not None:
        return
    roots = [Path(r) for r in roots]
    stop = set(roots)
    with_images: set = set()
    for f in files:
        for parent in Path(f).parents:
            if parent in stop or parent in with_images:
                break
            with_images.add(parent)
    empty = []
    for root in roots:
        if not root.is_dir():
            continue
        for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if d not in with_images:
                others = sorted({p.suffix.lower() or p.name for p in d.iterdir() if p.is_file()})
                empty.append(f"{str(d)!r}" + (f" (holds only {others[:5]} files)" if others else " (empty)"))
    if empty:
        warnings.warn(
            f"Class folder(s) with no image files, left out of the classes: {', '.join(empty[:5])}"
            f"{' ...' if len(empty) > 5 else ''}. Fix: add images (extensions such as .png, .jpg, .webp; see "
            "learnkit.data.getters.image_extensions), or remove the folder.",
            stacklevel=3,
        )


class SegmentationDataLoaders:
    """Factories for segmentation DataLoaders: images with masks of class codes.

    >>> dls = SegmentationDataLoaders.from_label_func(path, files, lambda f: masks / f.name,  # doctest: +SKIP
    ...                                                codes=["background", "object"], item_tfms=Resize(128))
    """

    @staticmethod
    def from_label_func(
        path,
        fnames,
        label_func: Callable,
        valid_pct: float = 0.2,
        seed: int | None = None,
        codes: Sequence[str] | None = None,
        item_tfms=None,
        batch_tfms=None,
        img_mode: str = "RGB",
        bs: int = 16,
        val_bs: int | None = None,
        num_workers: int | None = None,
        device=None,
        shuffle: bool = True,
        bad_images: str = "raise",
        **kwargs,
    ):
        """Masks at ``label_func(image_path)``; ``codes`` names the classes (pixel value i = ``codes[i]``)."""
        files = _drop_bad(_resolve_files(path, fnames), bad_images)
        blocks = (ImageBlock(mode=img_mode), MaskBlock(codes=codes))
        return _dataloaders(
            blocks,
            files,
            None,
            label_func,
            RandomSplitter(valid_pct, seed=seed),
            item_tfms,
            batch_tfms,
            path,
            bs,
            val_bs,
            num_workers,
            device,
            shuffle,
            kwargs,
        )
