"""Image item transforms and batch augmentation on real photos and digits: sizes, alignment of masks and
points with the image, determinism, one grid_sample per batch, dtypes, specs and pickling."""

from __future__ import annotations

import json
import math
import pickle
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from learnkit.data.transforms import (
    BatchTransform,
    IntToFloat,
    Normalize,
    compose_batch,
    compose_item,
    transform_from_spec,
)
from learnkit.exceptions import DataError
from learnkit.vision.augment import (
    TRANSFORMS,
    AffineCoordTfm,
    Brightness,
    CenterCrop,
    Contrast,
    Dihedral,
    Flip,
    FlipItem,
    Hue,
    LightingTfm,
    RandomCrop,
    RandomErasing,
    RandomResizedCrop,
    RandomResizedCropGPU,
    Resize,
    Rotate,
    Saturation,
    Warp,
    Zoom,
    aug_transforms,
    mask_to_tensor,
    pil_to_uint8_tensor,
)

BILINEAR = Image.Resampling.BILINEAR
PALETTE = np.array([[230, 30, 30], [30, 200, 40], [40, 60, 230], [240, 220, 30]], np.uint8)


# ------------------------------------------------------------------------------------------ data
@pytest.fixture(scope="module")
def photos():
    """scikit-learn's two sample photos (china, flower), 640x427, as PIL images."""
    from sklearn.datasets import load_sample_images

    return [Image.fromarray(a) for a in load_sample_images().images]


@pytest.fixture(scope="module")
def digits():
    """scikit-learn's 8x8 digits upscaled to 32x32 grayscale PIL images, with their labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    imgs = [
        Image.fromarray((im * 255 / 16).astype(np.uint8)).resize((32, 32), BILINEAR) for im in d.images[:8]
    ]
    return imgs, d.target[:8]


@pytest.fixture()
def photo_file(photos, tmp_path):
    """A 96x64 photo and a matching palette mask written to disk and opened like a user's files."""
    img = photos[0].resize((96, 64), BILINEAR)
    lab = np.digitize(np.asarray(img.convert("L")), [80, 140, 200]).astype(np.uint8)
    mask = Image.fromarray(lab).convert("P")
    mask.putpalette(PALETTE.flatten().tolist() + [0] * (768 - PALETTE.size))
    img.save(tmp_path / "img.png")
    mask.save(tmp_path / "mask.png")
    return Image.open(tmp_path / "img.png"), Image.open(tmp_path / "mask.png")


def class_sample(photo, w=192, h=128, block=8):
    """An image whose colour encodes a class (blocks from the photo's brightness) and its mask."""
    g = np.asarray(photo.convert("L").resize((w // block, h // block), BILINEAR)).astype(float)
    lab = np.digitize(g, np.quantile(g, [0.25, 0.5, 0.75])).astype(np.uint8)
    lab = np.kron(lab, np.ones((block, block), np.uint8))
    return Image.fromarray(PALETTE[lab]), Image.fromarray(lab)


def colour_labels(x: torch.Tensor) -> torch.Tensor:
    """Nearest palette class of each pixel of a float (B, 3, H, W) batch in [0, 1]."""
    pal = torch.tensor(PALETTE / 255.0, dtype=torch.float32, device=x.device)
    d = ((x.float()[:, None] - pal[None, :, :, None, None]) ** 2).sum(2)
    return d.argmin(1)


def interior(mask: torch.Tensor) -> torch.Tensor:
    """Pixels whose 3x3 neighbourhood has one label (away from class boundaries and the image border)."""
    m = mask.float()[:, None]
    same = (F.max_pool2d(m, 3, 1, 1) == -F.max_pool2d(-m, 3, 1, 1))[:, 0]
    same[:, [0, -1]] = False
    same[:, :, [0, -1]] = False
    return same


def agreement(x: torch.Tensor, mask: torch.Tensor) -> float:
    keep = interior(mask)
    assert keep.float().mean() > 0.3, "too few interior pixels to judge"
    return (colour_labels(x) == mask)[keep].float().mean().item()


def dot_sample(photo, pts, w=192, h=128, r=4.0):
    """A darkened photo with a red, a green and a blue dot centred at ``pts`` (pixel coordinates)."""
    base = np.asarray(photo.resize((w, h), BILINEAR)).astype(float) * 0.2
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    for c, (px, py) in enumerate(pts):
        disc = (xx - px) ** 2 + (yy - py) ** 2 <= r * r
        base[disc] = 0
        base[disc, c] = 255
    return Image.fromarray(base.astype(np.uint8)), torch.tensor(pts, dtype=torch.float32)


def dot_centres(x: torch.Tensor) -> torch.Tensor:
    """Centroids (B, 3, 2) of the red, green and blue dots of a float (B, 3, H, W) batch (NaN: not found)."""
    x = x.float()
    other = (x.sum(1, keepdim=True) - x) / 2
    w = (x - other).clamp_min(0)
    w = torch.where(w > 0.35, w, torch.zeros_like(w))
    h_, w_ = x.shape[-2:]
    ys = (torch.arange(h_, device=x.device) + 0.5).view(h_, 1).expand(h_, w_)
    xs = (torch.arange(w_, device=x.device) + 0.5).view(1, w_).expand(h_, w_)
    tot = w.sum((-2, -1))
    return torch.stack([(w * xs).sum((-2, -1)) / tot, (w * ys).sum((-2, -1)) / tot], -1)


def dot_pts(k: int, w=192, h=128):
    """Three well separated dot centres (at pixel centres) in the middle of the image, varying with ``k``."""
    dx, dy = (k % 3) * 4, (k % 2) * 4
    return [(int(0.35 * w) + dx + 0.5, int(0.35 * h) + dy + 0.5), (int(0.62 * w) - dx + 0.5, int(0.45 * h) + 0.5),
            (int(0.45 * w) + 0.5, int(0.66 * h) - dy + 0.5)]  # fmt: skip


def to_batch(samples, kinds):
    """Collate PIL samples the way the image/mask blocks do (uint8 (B,C,H,W), int64 (B,H,W), points (B,n,2))."""
    cols = []
    for i, k in enumerate(kinds):
        items = [s[i] for s in samples]
        if k == "image":
            cols.append(torch.stack([pil_to_uint8_tensor(o) for o in items]))
        elif k == "mask":
            cols.append(torch.stack([mask_to_tensor(o) for o in items]))
        else:
            cols.append(torch.stack(items) if isinstance(items[0], torch.Tensor) else torch.tensor(items))
    return tuple(cols)


def check_points(x, pts, tol=2.0, margin=4.0, min_checked=0.5):
    found = dot_centres(x)
    h, w = x.shape[-2:]
    inside = (
        (pts[..., 0] > margin)
        & (pts[..., 0] < w - margin)
        & (pts[..., 1] > margin)
        & (pts[..., 1] < h - margin)
    )
    assert inside.float().mean() >= min_checked, "too few points stayed in view to check"
    err = (found - pts).norm(dim=-1)[inside]
    assert not torch.isnan(err).any(), "a point in view has no dot under it"
    if len(err):
        assert err.max() < tol, f"points off their dots by up to {err.max():.2f} px"
    return len(err)


# ------------------------------------------------------------------------------ tensor conversion
def test_pil_to_tensor_and_mask_to_tensor(photo_file, digits):
    img, mask = photo_file
    t = pil_to_uint8_tensor(img)
    assert t.dtype == torch.uint8 and t.shape == (3, 64, 96)
    assert torch.equal(t.permute(1, 2, 0), torch.from_numpy(np.array(img)))
    g = pil_to_uint8_tensor(digits[0][0])
    assert g.shape == (1, 32, 32) and torch.equal(g[0], torch.from_numpy(np.array(digits[0][0])))
    assert pil_to_uint8_tensor(img.convert("RGBA")).shape == (4, 64, 96)
    assert torch.equal(
        pil_to_uint8_tensor(img.convert("P")), pil_to_uint8_tensor(img.convert("P").convert("RGB"))
    )
    m = mask_to_tensor(mask)
    assert m.dtype == torch.int64 and m.shape == (64, 96)
    assert torch.equal(m, torch.from_numpy(np.asarray(mask).astype(np.int64)))  # palette indices, not colours
    assert set(m.unique().tolist()) <= {0, 1, 2, 3}
    assert torch.equal(mask_to_tensor(Image.fromarray(np.asarray(mask).astype(np.int32))), m)  # mode 'I'
    with pytest.raises(DataError, match="mode"):
        pil_to_uint8_tensor(img.convert("I"))
    with pytest.raises(DataError, match="single-channel"):
        mask_to_tensor(img)


# ------------------------------------------------------------------------------- item transforms
@pytest.mark.parametrize("method", ["crop", "pad", "squish"])
@pytest.mark.parametrize("size", [32, (24, 40), (40, 24)])
def test_resize_sizes_modes_and_masks(photo_file, method, size):
    img, mask = photo_file
    tfm = Resize(size, method=method)
    h, w = (size, size) if isinstance(size, int) else size
    for train in (True, False):
        out_img, out_mask, lbl = tfm((img, mask, 3), ("image", "mask", "category"), train=train)
        assert out_img.size == (w, h) and out_img.mode == "RGB"
        assert out_mask.size == (w, h) and out_mask.mode == "P" and out_mask.getpalette() == mask.getpalette()
        assert set(np.unique(np.asarray(out_mask))) <= set(
            np.unique(np.asarray(mask))
        )  # nearest: no new labels
        assert lbl == 3
    gray = tfm((img.convert("L"),), ("image",), train=False)[0]
    assert gray.mode == "L" and gray.size == (w, h)


def test_resize_valid_is_deterministic_and_train_random(photo_file):
    img, _ = photo_file
    crop = Resize(32)
    valid = [np.asarray(crop((img,), ("image",), train=False)[0]) for _ in range(3)]
    assert all(np.array_equal(valid[0], v) for v in valid)
    # centre crop of a 96x64 image to a square: the box (16, 0, 80, 64) resized
    assert np.array_equal(valid[0], np.asarray(img.resize((32, 32), BILINEAR, box=(16, 0, 80, 64))))
    random.seed(0)
    train = {np.asarray(crop((img,), ("image",), train=True)[0]).tobytes() for _ in range(8)}
    assert len(train) > 3
    squish = Resize((20, 30), method="squish")((img,), ("image",), train=True)[0]
    assert np.array_equal(np.asarray(squish), np.asarray(img.resize((30, 20), BILINEAR)))
    same = Resize((64, 96))
    sample = (img,)
    assert same(sample, ("image",), train=True) is sample  # already the right size: untouched


def test_resize_pad_letterboxes(photo_file):
    img, _ = photo_file  # 96 wide, 64 high: padding goes above and below
    zeros = np.asarray(Resize(48, method="pad", pad_mode="zeros")((img,), ("image",), train=False)[0])
    assert zeros.shape == (48, 48, 3)
    assert (zeros[:8] == 0).all() and (zeros[-8:] == 0).all() and zeros[8:40].mean() > 20
    refl = np.asarray(Resize(48, method="pad", pad_mode="reflection")((img,), ("image",), train=False)[0])
    assert np.array_equal(refl[:8], refl[8:16][::-1])  # mirrored content
    border = np.asarray(Resize(48, method="pad", pad_mode="border")((img,), ("image",), train=False)[0])
    assert (border[:8] == border[8]).all()


@pytest.mark.parametrize(
    "tfm",
    [
        Resize(48, method="crop"),
        Resize((40, 56), method="pad", pad_mode="zeros"),
        Resize(48, method="squish"),
        RandomResizedCrop(56, min_scale=0.35),
        CenterCrop((72, 100)),
        RandomCrop(72),
        FlipItem(p=1.0),
    ],
    ids=lambda t: type(t).__name__ + getattr(t, "method", ""),
)
def test_item_transforms_keep_points_on_dots(photos, tfm):
    random.seed(1)
    checked = 0
    for k in range(4):
        img, pts = dot_sample(photos[k % 2], dot_pts(k))
        for train in (True, False):
            out_img, out_pts = tfm((img, pts), ("image", "points"), train=train)
            x = pil_to_uint8_tensor(out_img)[None].float() / 255
            checked += check_points(x, out_pts[None], tol=1.0, margin=3.0, min_checked=0.0)
    assert checked >= 12  # of 24 points, at least half stayed in view


def test_item_transforms_keep_masks_aligned(photos):
    random.seed(2)
    pipe = compose_item([RandomResizedCrop(64, min_scale=0.3), FlipItem(), Resize(48, method="pad")])
    samples = [pipe((*class_sample(p), 0), ("image", "mask", "category"), True) for p in photos * 3]
    x, m, _ = to_batch(samples, ("image", "mask", "category"))
    assert x.shape == (6, 3, 48, 48) and m.shape == (6, 48, 48)
    assert agreement(x.float() / 255, m) > 0.97


def test_random_resized_crop_box_statistics(photos):
    img = photos[1].resize((80, 60), BILINEAR)
    corners = torch.tensor([[0.0, 0.0], [80.0, 60.0]])
    tfm = RandomResizedCrop((30, 40), min_scale=0.3, ratio=(0.8, 1.25))
    random.seed(3)
    for _ in range(30):
        out, c = tfm((img, corners), ("image", "points"), train=True)
        assert out.size == (40, 30)
        # the corners tell the box: output = (input - box_origin) * out_size / box_size
        sx, sy = (c[1, 0] - c[0, 0]) / 80, (c[1, 1] - c[0, 1]) / 60
        bw, bh = 40 / sx, 30 / sy
        x0, y0 = -c[0, 0] / sx, -c[0, 1] / sy
        assert -1e-3 <= x0 and x0 + bw <= 80 + 1e-3 and -1e-3 <= y0 and y0 + bh <= 60 + 1e-3
        assert 0.3 - 1e-4 <= bw * bh / (80 * 60) <= 1 + 1e-4 or (bw >= 80 - 1e-3 or bh >= 60 - 1e-3)
        rel = (bw / bh) / (40 / 30)
        assert 0.8 - 1e-4 <= rel <= 1.25 + 1e-4
    # valid: centre box of the output aspect shrunk by 1 / (1 + val_xtra), same every time
    v1, c1 = tfm((img, corners), ("image", "points"), train=False)
    v2, _ = tfm((img, corners), ("image", "points"), train=False)
    assert np.array_equal(np.asarray(v1), np.asarray(v2))
    bw = 40 / ((c1[1, 0] - c1[0, 0]) / 80)
    assert math.isclose(bw, 80 / 1.14, rel_tol=1e-4)


def test_center_random_crop_and_flip_item(photo_file, digits):
    img, mask = photo_file
    arr = np.asarray(img)
    cc = np.asarray(CenterCrop((32, 48))((img,), ("image",), train=True)[0])
    assert np.array_equal(cc, arr[16:48, 24:72])
    small = digits[0][0]  # 32x32 digit inside a 40x36 crop: zero padding around it
    big = np.asarray(CenterCrop((40, 36))((small,), ("image",), train=False)[0])
    assert big.shape == (40, 36) and np.array_equal(big[4:36, 2:34], np.asarray(small)) and big[:4].max() == 0
    random.seed(4)
    origin = torch.tensor([[0.0, 0.0]])
    offsets = set()
    for _ in range(6):
        out, m, p = RandomCrop(24)((img, mask, origin), ("image", "mask", "points"), train=True)
        x0, y0 = int(-p[0, 0]), int(-p[0, 1])
        offsets.add((x0, y0))
        assert np.array_equal(np.asarray(out), arr[y0 : y0 + 24, x0 : x0 + 24])
        assert np.array_equal(np.asarray(m), np.asarray(mask)[y0 : y0 + 24, x0 : x0 + 24])
    assert len(offsets) > 1
    vc = RandomCrop(24)((img,), ("image",), train=False)[0]
    assert np.array_equal(np.asarray(vc), arr[20:44, 36:60])
    flipped, fm, fp = FlipItem(p=1.0)(
        (img, mask, torch.tensor([[10.0, 5.0]])), ("image", "mask", "points"), True
    )
    assert np.array_equal(np.asarray(flipped), arr[:, ::-1]) and np.array_equal(
        np.asarray(fm), np.asarray(mask)[:, ::-1]
    )
    assert torch.allclose(fp, torch.tensor([[86.0, 5.0]]))
    sample = (img, mask)
    assert FlipItem(p=1.0)(sample, ("image", "mask"), train=False) is sample


def test_item_transform_errors(photo_file):
    img, mask = photo_file
    with pytest.raises(DataError, match="Did you mean 'crop'"):
        Resize(32, method="crp")
    with pytest.raises(DataError, match="size"):
        Resize(0)
    with pytest.raises(DataError, match="size"):
        RandomResizedCrop((32, 32, 3))
    with pytest.raises(DataError, match="PIL image"):
        Resize(32)((pil_to_uint8_tensor(img),), ("image",), True)
    with pytest.raises(DataError, match="same size"):
        Resize(32)((img, mask.resize((10, 10))), ("image", "mask"), True)
    with pytest.raises(DataError, match=r"\(n, 2\)"):
        Resize(32)((img, torch.zeros(3)), ("image", "points"), True)


# ----------------------------------------------------------------------------- batch augmentation
def geo_batch(photos, n=6, size=96):
    """(image uint8, mask, points) batch from class-coloured photos with dots drawn in."""
    samples = []
    for k in range(n):
        img, mask = class_sample(photos[k % 2])
        samples.append((img, mask, torch.tensor(dot_pts(k), dtype=torch.float32)))
    return to_batch(samples, ("image", "mask", "points"))


def test_batch_augmentation_keeps_masks_aligned(photos):
    random.seed(5)
    torch.manual_seed(5)
    items = compose_item([RandomResizedCrop(96, min_scale=0.5), FlipItem()])
    samples = [items((*class_sample(p), 1), ("image", "mask", "category"), True) for p in photos * 3]
    kinds = ("image", "mask", "category")
    batch = to_batch(samples, kinds)
    tfms = compose_batch(
        [
            IntToFloat(),
            *aug_transforms(size=64, min_scale=0.6, flip_vert=True, max_rotate=30, min_zoom=0.9, max_zoom=1.3,
                            max_warp=0.3, p_affine=1.0, max_lighting=0.0),
        ]
    )  # fmt: skip
    x, m, c = tfms(batch, kinds, train=True)
    assert x.shape == (6, 3, 64, 64) and m.shape == (6, 64, 64) and m.dtype == torch.int64
    assert torch.equal(c, batch[2])
    assert set(m.unique().tolist()) <= {0, 1, 2, 3}
    assert agreement(x, m) > 0.95
    # the images really changed geometry: not just a resize of the input
    plain = F.interpolate(batch[0].float() / 255, size=(64, 64), mode="bilinear", align_corners=True)
    assert (x - plain).abs().mean() > 0.05


def test_batch_augmentation_keeps_points_on_dots(photos):
    random.seed(6)
    torch.manual_seed(6)
    items = compose_item([RandomResizedCrop(96, min_scale=0.6), FlipItem()])
    kinds = ("image", "points")
    samples = [items(dot_sample(photos[k % 2], dot_pts(k)), kinds, True) for k in range(8)]
    batch = to_batch(samples, kinds)
    tfms = compose_batch(
        [IntToFloat(), *aug_transforms(size=64, min_scale=0.7, max_rotate=30, max_zoom=1.2, max_warp=0.3,
                                       p_affine=1.0, max_lighting=0.0, pad_mode="zeros")]
    )  # fmt: skip
    x, pts = tfms(batch, kinds, train=True)
    assert pts.shape == (8, 3, 2) and pts.dtype == torch.float32
    moved = (pts - batch[1] * (64 / 96)).norm(dim=-1)
    assert moved.mean() > 1.0  # the augmentation did move them
    check_points(x, pts, tol=1.0)
    # validation: only the resize to 64, points scale with the image
    xv, pv = tfms(batch, kinds, train=False)
    assert torch.allclose(pv, batch[1] * (64 / 96), atol=1e-4)
    check_points(xv, pv, tol=1.0)


def test_one_grid_sample_per_batch_for_affine_and_warp(photos, monkeypatch):
    calls = []
    real = F.grid_sample

    def counting(*args, **kwargs):
        calls.append(kwargs.get("mode"))
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "grid_sample", counting)
    x, m, p = geo_batch(photos)
    x = x.float() / 255
    (tfm,) = aug_transforms(size=48, min_scale=0.5, max_lighting=0, p_affine=1.0)
    assert [type(o).__name__ for o in tfm.ops] == ["RandomResizedCropGPU", "Flip", "Rotate", "Zoom", "Warp"]
    out = tfm((x,), ("image",), train=True)[0]
    assert out.shape == (6, 3, 48, 48) and calls == ["bilinear"]
    calls.clear()
    tfm((x, m, p), ("image", "mask", "points"), train=True)
    assert calls == ["bilinear", "nearest"]  # one per sampled element; points use no sampling
    calls.clear()
    (no_size,) = aug_transforms(max_lighting=0)
    batch = (x, m, p)
    assert no_size(batch, ("image", "mask", "points"), train=False) is batch and calls == []


def test_batch_transforms_deterministic_given_seed(photos):
    x, m, p = geo_batch(photos)
    kinds = ("image", "mask", "points")
    tfms = compose_batch(
        [IntToFloat(), *aug_transforms(size=40, min_scale=0.5), Normalize([0.5] * 3, [0.25] * 3)]
    )
    torch.manual_seed(11)
    a = tfms((x, m, p), kinds, train=True)
    torch.manual_seed(11)
    b = tfms((x, m, p), kinds, train=True)
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    c = tfms((x, m, p), kinds, train=True)
    assert not torch.equal(a[0], c[0])
    v1 = tfms((x, m, p), kinds, train=False)
    v2 = tfms((x, m, p), kinds, train=False)
    assert all(torch.equal(u, v) for u, v in zip(v1, v2))
    # decode undoes Normalize: images back in [0, 1]
    dec = tfms.decode(a, kinds)[0]
    assert dec.min() >= -1e-5 and dec.max() <= 1 + 1e-5


def test_batch_geometry_exact_cases(photos):
    x, m, p = geo_batch(photos, n=4)
    x = x.float() / 255
    kinds = ("image", "mask", "points")
    fx, fm, fp = Flip(p=1.0)((x, m, p), kinds, train=True)
    assert torch.allclose(fx, x.flip(-1), atol=1e-4) and torch.equal(fm, m.flip(-1))
    assert torch.allclose(fp[..., 0], 192 - p[..., 0], atol=1e-3) and torch.allclose(
        fp[..., 1], p[..., 1], atol=1e-3
    )
    # valid RandomResizedCropGPU to the input height: a pure centre crop
    cx, cm, cp = RandomResizedCropGPU((128, 128))((x, m, p), kinds, train=False)
    assert torch.allclose(cx, x[..., 32:160], atol=1e-4) and torch.equal(cm, m[..., 32:160])
    assert torch.allclose(cp, p - torch.tensor([32.0, 0.0]), atol=1e-3)
    # Dihedral on square images: each output is one of the 8 symmetries of its input
    sq = x[..., :128, :128]
    dx = Dihedral(p=1.0)((sq,), ("image",), train=True)[0]
    for i in range(4):
        syms = [sq[i].rot90(k, (-2, -1)) for k in range(4)]
        syms += [s.flip(-1) for s in syms]
        assert min((dx[i] - s).abs().max().item() for s in syms) < 1e-4
    # batch=True: one draw for the whole batch
    same = x[:1].expand(4, -1, -1, -1)
    out = AffineCoordTfm([Rotate(40, p=1.0, batch=True), Zoom(1.0, 1.5, p=1.0, batch=True)])(
        (same,), ("image",), True
    )
    assert all(torch.allclose(out[0][0], o, atol=1e-6) for o in out[0][1:])
    # uint8 images are sampled and rounded back
    u8 = (x * 255).round().to(torch.uint8)
    torch.manual_seed(0)
    a = AffineCoordTfm([Rotate(20, p=1.0)])((u8,), ("image",), True)[0]
    torch.manual_seed(0)
    b = AffineCoordTfm([Rotate(20, p=1.0)])((u8.float(),), ("image",), True)[0]
    assert a.dtype == torch.uint8 and (a.float() - b.round()).abs().max() <= 1


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_batch_augmentation_other_dtypes(photos, dtype):
    x, m, p = geo_batch(photos, n=4)
    x = x.float() / 255
    kinds = ("image", "mask", "points")
    tfms = compose_batch(aug_transforms(size=40, min_scale=0.5, p_lighting=1.0))
    torch.manual_seed(3)
    ref = tfms((x, m, p), kinds, train=True)
    torch.manual_seed(3)
    out = tfms((x.to(dtype), m, p), kinds, train=True)
    assert out[0].dtype == dtype and out[1].dtype == torch.int64
    assert (out[0].float() - ref[0]).abs().max() < (1e-5 if dtype == torch.float64 else 2e-2)
    assert torch.equal(out[1], ref[1]) and torch.allclose(out[2], ref[2])


def test_lighting(photos):
    x = geo_batch(photos, n=4)[0].float() / 255
    kinds = ("image",)
    assert LightingTfm([Brightness(), Contrast()])((x,), kinds, train=False)[0] is x
    assert torch.equal(LightingTfm([Brightness(p=0.0), Contrast(p=0.0)])((x,), kinds, train=True)[0], x)
    torch.manual_seed(0)
    b = Brightness(0.5, p=1.0)((x,), kinds, train=True)[0]
    assert b.shape == x.shape and 0 <= b.min() and b.max() <= 1
    # brightness moves every pixel of an image in the same direction
    d = (b - x).flatten(1)
    mid = (x.flatten(1) > 0.05) & (x.flatten(1) < 0.95)
    for i in range(4):
        di = d[i][mid[i]]
        assert (di >= -1e-4).all() or (di <= 1e-4).all()
    assert d.abs().mean() > 1e-2
    # contrast keeps the order of pixel values and the mid grey
    c = Contrast(0.5, p=1.0)((x,), kinds, train=True)[0]
    order = x[0, 0].flatten().argsort()
    assert (c[0, 0].flatten()[order].diff() >= -1e-6).all()
    grey = torch.full((2, 3, 4, 4), 0.5)
    assert torch.allclose(Contrast(0.5, p=1.0)((grey,), kinds, True)[0], grey, atol=1e-5)
    with pytest.raises(DataError, match="IntToFloat"):
        LightingTfm([Brightness()])(((x * 255).to(torch.uint8),), kinds, True)


def test_aug_transforms_options():
    tfms = aug_transforms()
    assert [type(t).__name__ for t in tfms] == ["AffineCoordTfm", "LightingTfm"]
    assert [type(o).__name__ for o in tfms[0].ops] == ["Flip", "Rotate", "Zoom", "Warp"]
    assert tfms[0].size is None
    vert = aug_transforms(flip_vert=True, mult=2.0, max_zoom=1.0, xtra_tfms=[Normalize([0.5], [0.5])])
    assert [type(o).__name__ for o in vert[0].ops] == ["Dihedral", "Rotate", "Warp"]
    assert vert[0].ops[1].max_deg == 20.0 and math.isclose(vert[0].ops[2].magnitude, 0.4)
    assert isinstance(vert[-1], Normalize)
    sized = aug_transforms(size=(32, 48), do_flip=False, max_rotate=0, max_warp=0, max_lighting=0, max_zoom=1)
    assert len(sized) == 1 and sized[0].size == (32, 48)
    out = sized[0]((torch.rand(2, 3, 50, 60),), ("image",), train=True)[0]
    assert out.shape == (2, 3, 32, 48)
    assert aug_transforms(do_flip=False, max_rotate=0, max_warp=0, max_lighting=0, max_zoom=1) == []
    with pytest.raises(DataError, match="magnitude"):
        Warp(0.6)
    with pytest.raises(DataError, match="spatial"):
        AffineCoordTfm([Brightness()])
    with pytest.raises(DataError, match="one crop"):
        AffineCoordTfm([RandomResizedCropGPU(8), RandomResizedCropGPU(8)])
    with pytest.raises(DataError, match=r"\(B, C, H, W\)"):
        Flip()((torch.rand(3, 8, 8),), ("image",), True)
    with pytest.raises(DataError, match="same batch size"):
        Flip()((torch.rand(2, 3, 8, 8), torch.zeros(2, 8, 9, dtype=torch.long)), ("image", "mask"), True)


def all_transforms():
    return [
        Resize((20, 30), method="pad", pad_mode="border"),
        RandomResizedCrop(24, min_scale=0.5, ratio=(0.9, 1.1), val_xtra=0.2),
        CenterCrop(20),
        RandomCrop((16, 24)),
        FlipItem(0.3),
        Flip(0.4, batch=True),
        Dihedral(0.6),
        Rotate(25, p=0.9),
        Zoom(0.9, 1.4, p=0.8),
        Warp(0.3, p=0.7),
        RandomResizedCropGPU(20, min_scale=0.4, ratio=(1, 1)),
        Brightness(0.3, p=0.6),
        Contrast(0.4, p=0.5),
        Saturation(0.3, p=0.6, draw=0.5),
        Hue(0.1, p=0.5),
        RandomErasing(p=0.5, max_count=2),
        Rotate(25, p=0.9, draw=[10.0, -5.0]),
        *aug_transforms(size=(20, 24), min_scale=0.5, pad_mode="border", mode="nearest"),
    ]


def test_spec_roundtrip_every_transform(photos):
    tfms = all_transforms()
    assert {type(t).__name__ for t in tfms} == set(TRANSFORMS)  # every registered transform is covered
    img, mask = class_sample(photos[0], w=48, h=32, block=4)
    sample = (img, mask, torch.tensor([[10.5, 12.5]]))
    batch = to_batch([sample, sample], ("image", "mask", "points"))
    batch = (batch[0].float() / 255, *batch[1:])
    kinds = ("image", "mask", "points")
    for t in tfms:
        spec = t.spec()
        json.dumps(spec)
        clone = transform_from_spec(json.loads(json.dumps(spec)))
        assert type(clone) is type(t) and clone.spec() == spec
        if isinstance(t, BatchTransform):
            torch.manual_seed(7)
            a = t(batch, kinds, train=True)
            torch.manual_seed(7)
            b = clone(batch, kinds, train=True)
            assert all(torch.equal(u, v) for u, v in zip(a, b))
        else:
            random.seed(7)
            a = t(sample, kinds, train=True)
            random.seed(7)
            b = clone(sample, kinds, train=True)
            assert np.array_equal(np.asarray(a[0]), np.asarray(b[0])) and torch.equal(a[2], b[2])


def test_every_transform_pickles():
    pipes = [compose_item([t for t in all_transforms()[:5]]), compose_batch(all_transforms()[5:])]
    for t in [*all_transforms(), *pipes]:
        clone = pickle.loads(pickle.dumps(t))
        assert clone.spec() == t.spec()


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_pipeline_on_cuda_fp16(photos):
    torch.manual_seed(0)
    random.seed(0)
    kinds = ("image", "mask", "points")
    samples = []
    for k in range(8):
        img, mask = class_sample(photos[k % 2])
        samples.append((img, mask, torch.tensor(dot_pts(k), dtype=torch.float32)))
    batch = tuple(t.cuda() for t in to_batch(samples, kinds))
    geo = compose_batch(
        [
            IntToFloat("float16"),
            *aug_transforms(size=64, min_scale=0.6, max_rotate=30, p_affine=1.0, max_lighting=0),
        ]
    )
    x, m, p = geo(batch, kinds, train=True)
    assert x.is_cuda and x.dtype == torch.float16 and m.is_cuda and m.dtype == torch.int64 and p.is_cuda
    assert agreement(x, m) > 0.95
    dots = [dot_sample(photos[k % 2], dot_pts(k)) for k in range(8)]
    dbatch = tuple(t.cuda() for t in to_batch(dots, ("image", "points")))
    dx, dp = geo(dbatch, ("image", "points"), train=True)
    check_points(dx, dp)
    full = compose_batch(
        [*geo.tfms, *aug_transforms(max_lighting=0.3, p_lighting=1.0)[1:], Normalize([0.5] * 3, [0.2] * 3)]
    )
    y = full(batch, kinds, train=True)[0]
    assert y.dtype == torch.float16 and torch.isfinite(y).all()
    dec = full.decode((y, m, p), kinds)[0]
    assert dec.dtype == torch.float16 and dec.min() > -0.02 and dec.max() < 1.02


# ------------------------------------------------------------------------------------------ fast paths
@pytest.mark.parametrize("align_corners", [True, False])
def test_sampling_grid_matches_the_reference_construction(align_corners):
    torch.manual_seed(0)
    affine = AffineCoordTfm(
        [Flip(), Rotate(30, p=1.0), Zoom(1.0, 1.5, p=1.0)], size=(20, 28), align_corners=align_corners
    )
    m, hw, projective = affine.matrices(5, (40, 50), True, "cpu")
    assert not projective
    ref = F.affine_grid(m[:, :2], [5, 1, *hw], align_corners=align_corners)
    assert torch.allclose(affine._grid(m, hw, False), ref, atol=1e-5)
    warp = AffineCoordTfm([Rotate(30, p=1.0), Warp(0.4, p=1.0)], align_corners=align_corners)
    m, hw, projective = warp.matrices(5, (40, 50), True, "cpu")
    assert projective
    # homogeneous coordinates of every output pixel through the 3x3 maps, then divided by the last one
    ys, xs = F.affine_grid(torch.eye(2, 3)[None], [1, 1, *hw], align_corners=align_corners)[0].unbind(-1)[
        ::-1
    ]
    pts = torch.stack([xs, ys, torch.ones_like(xs)], -1).view(1, -1, 3) @ m.transpose(1, 2)
    ref = (pts[..., :2] / pts[..., 2:]).view(5, *hw, 2)
    assert torch.allclose(warp._grid(m, hw, True), ref, atol=1e-5)


class _SlowBrightness(Brightness):
    """Brightness through the generic ``logits`` protocol (no folding)."""

    def logits(self, x, n, device):
        _, shift, applied = self.affine(n, device)
        return x + shift.view(n, 1, 1, 1), applied


class _SlowContrast(Contrast):
    def logits(self, x, n, device):
        scale, _, applied = self.affine(n, device)
        return x * scale.view(n, 1, 1, 1), applied


def test_folded_lighting_equals_one_op_after_the_other(photos):
    x = geo_batch(photos, n=6)[0].float() / 255
    kinds = ("image",)
    torch.manual_seed(4)
    fast = LightingTfm([Brightness(0.4, p=0.5), Contrast(0.4, p=0.5)])((x,), kinds, True)[0]
    torch.manual_seed(4)
    slow = LightingTfm([_SlowBrightness(0.4, p=0.5), _SlowContrast(0.4, p=0.5)])((x,), kinds, True)[0]
    assert torch.allclose(fast, slow, atol=1e-5)
    unchanged = [i for i in range(6) if torch.equal(fast[i], x[i])]
    assert 0 < len(unchanged) < 6 and all(torch.equal(slow[i], x[i]) for i in unchanged)
    # the input batch itself is never modified
    before = x.clone()
    LightingTfm([Brightness(0.4, p=1.0), Contrast(0.4, p=1.0)])((x,), kinds, True)
    assert torch.equal(x, before)
