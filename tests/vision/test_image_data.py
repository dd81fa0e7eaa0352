"""Image data: opening every kind of file, the ImageDataLoaders factories, masks and points, bad input.

Real images: scikit-learn's bundled digits (upscaled) and photos, written to disk in a temporary folder.
"""

from __future__ import annotations

import io
import re
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from learnkit.data.block import DataBlock, RegressionBlock
from learnkit.data.getters import get_image_files, parent_label
from learnkit.data.splitters import RandomSplitter
from learnkit.data.transforms import Normalize, imagenet_stats
from learnkit.exceptions import DataError
from learnkit.vision.augment import Resize, aug_transforms
from learnkit.vision.data import (
    ImageBlock,
    ImageDataLoaders,
    PILImageBW,
    PointBlock,
    SegmentationDataLoaders,
    open_mask,
    to_image,
    verify_images,
)


# ------------------------------------------------------------------------------------------- fixtures
def _digit_arrays(n=120, size=24, seed=0):
    from sklearn.datasets import load_digits

    d = load_digits()
    idx = np.random.default_rng(seed).permutation(len(d.target))[:n]
    out = []
    for i in idx:
        img = Image.fromarray((d.images[i] / 16 * 255).astype(np.uint8)).resize((size, size), Image.BILINEAR)
        out.append((np.asarray(img), int(d.target[i]), int(i)))
    return out


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory):
    """120 digits as 24x24 RGB PNGs: path/{train,valid}/<digit>/<i>.png."""
    root = tmp_path_factory.mktemp("digits")
    for k, (arr, y, i) in enumerate(_digit_arrays()):
        split = "valid" if k % 5 == 0 else "train"
        f = root / split / str(y) / f"d{y}_{i:04d}.png"
        f.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).convert("RGB").save(f)
    return root


@pytest.fixture(scope="module")
def photo():
    """One of scikit-learn's bundled photos (427 x 640 RGB) as a PIL image."""
    from sklearn.datasets import load_sample_images

    return Image.fromarray(load_sample_images().images[0])


def _labels(dls, which="train"):
    ds = dls.train_ds if which == "train" else dls.valid_ds
    return [dls.vocab[int(ds[i][1])] for i in range(len(ds))], ds.items


# ------------------------------------------------------------------------------------------- opening
def test_to_image_converts_modes_and_bit_depths(tmp_path, photo):
    small = photo.resize((32, 24))
    grey = small.convert("L")
    files = {}
    files["rgb.jpg"] = small
    files["grey.png"] = grey
    files["rgba.png"] = small.convert("RGBA")
    files["palette.png"] = small.convert("P", palette=Image.ADAPTIVE, colors=16)
    files["bw.png"] = grey.convert("1")
    files["cmyk.jpg"] = small.convert("CMYK")
    for name, img in files.items():
        img.save(tmp_path / name)
    for name in files:
        rgb = to_image(tmp_path / name, "RGB")
        assert rgb.mode == "RGB" and rgb.size == (32, 24), name
        assert to_image(tmp_path / name, "L").mode == "L"
    # the colour content survives: the palette and CMYK copies are close to the original
    ref = np.asarray(small, dtype=np.float32)
    for name in ("palette.png", "cmyk.jpg", "rgba.png"):
        got = np.asarray(to_image(tmp_path / name), dtype=np.float32)
        assert np.abs(got - ref).mean() < 25, name


def test_sixteen_bit_images_are_scaled_not_clipped(tmp_path):
    ramp = np.linspace(0, 65535, 64 * 8).reshape(8, 64).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "ramp16.png")
    assert Image.open(tmp_path / "ramp16.png").mode.startswith("I")
    img = to_image(tmp_path / "ramp16.png", "L")
    arr = np.asarray(img).astype(int)
    np.testing.assert_allclose(arr, np.rint(ramp / 257.0), atol=1)
    assert arr.min() == 0 and arr.max() == 255
    # a 16-bit array passed directly goes the same way
    assert np.asarray(to_image(ramp, "L")).max() == 255


def test_transparent_pixels_become_white(tmp_path):
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[..., 0] = 200  # red, but fully transparent except the first pixel
    rgba[0, 0, 3] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "t.png")
    arr = np.asarray(to_image(tmp_path / "t.png", "RGB"))
    assert tuple(arr[0, 0]) == (200, 0, 0)
    assert tuple(arr[3, 3]) == (255, 255, 255)


def test_exif_orientation_is_applied(tmp_path):
    arr = np.zeros((20, 40, 3), dtype=np.uint8)
    arr[:, :10] = 255  # a white band on the left of a landscape image
    img = Image.fromarray(arr)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: the viewer must rotate 90 degrees clockwise
    img.save(tmp_path / "rot.jpg", exif=exif, quality=95)
    out = to_image(tmp_path / "rot.jpg", "L")
    assert out.size == (20, 40)  # width and height swapped
    a = np.asarray(out).astype(int)
    assert a[:10].mean() > 200 and a[-10:].mean() < 50  # the band is now at the top


def test_to_image_accepts_arrays_tensors_and_pil(photo):
    arr = np.asarray(photo.resize((16, 12)))
    ref = np.asarray(to_image(arr))
    chw = torch.tensor(arr).permute(2, 0, 1)
    assert np.array_equal(np.asarray(to_image(chw)), ref)
    assert np.array_equal(np.asarray(to_image(chw.float() / 255)), ref)
    assert np.array_equal(np.asarray(to_image(Image.fromarray(arr))), ref)
    assert to_image(arr, None).mode == "RGB"
    with pytest.raises(DataError, match="Expected an image"):
        to_image({"not": "an image"})
    with pytest.raises(DataError, match="mode"):
        ImageBlock(mode="RGBX")
    assert ImageBlock(cls=PILImageBW).n_channels == 1


# ------------------------------------------------------------------------------------------- bad files
def test_corrupt_truncated_and_fake_images(tmp_path, digits_dir, photo):
    good = get_image_files(digits_dir)[0]
    buf = io.BytesIO()
    photo.save(buf, format="JPEG")
    (tmp_path / "truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 3])
    (tmp_path / "notes.png").write_text("this is a text file with an image extension")
    (tmp_path / "empty.jpg").write_bytes(b"")
    for name, pattern in (
        ("truncated.jpg", "corrupt or truncated"),
        ("notes.png", "not an image"),
        ("empty.jpg", "not an image"),
    ):
        with pytest.raises(DataError, match=pattern) as e:
            to_image(tmp_path / name)
        assert name in str(e.value)
    bad = verify_images([good, tmp_path / "truncated.jpg", tmp_path / "notes.png", tmp_path / "empty.jpg"])
    assert sorted(p.name for p in bad) == ["empty.jpg", "notes.png", "truncated.jpg"]
    reasons = dict(verify_images([tmp_path / "notes.png"], with_reasons=True))
    assert "cannot identify" in reasons[tmp_path / "notes.png"]


@pytest.fixture
def folder_with_bad_file(tmp_path, digits_dir):
    import shutil

    root = tmp_path / "data"
    shutil.copytree(digits_dir, root)
    bad = root / "train" / "3" / "broken.png"
    data = (root / "train" / "3").glob("*.png").__next__().read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    return root, bad


def test_corrupt_file_met_in_training_names_the_file(folder_with_bad_file):
    root, bad = folder_with_bad_file
    dls = ImageDataLoaders.from_folder(root, bs=200, num_workers=0, shuffle=False)
    with pytest.raises(DataError, match=re.escape(str(bad))):
        for _ in dls.train:
            pass


def test_corrupt_file_in_a_worker_names_the_file(folder_with_bad_file):
    root, bad = folder_with_bad_file
    dls = ImageDataLoaders.from_folder(root, bs=200, num_workers=1, shuffle=False)
    with pytest.raises(DataError, match="broken.png"):
        for _ in dls.train:
            pass


def test_bad_images_skip_drops_with_a_warning(folder_with_bad_file):
    root, bad = folder_with_bad_file
    with pytest.warns(UserWarning, match="broken.png"):
        dls = ImageDataLoaders.from_folder(root, bs=200, num_workers=0, bad_images="skip")
    assert bad not in dls.train_ds.items
    assert sum(len(b[1]) for b in dls.train) == len(dls.train_ds)
    with pytest.raises(DataError, match="bad_images"):
        ImageDataLoaders.from_folder(root, bad_images="ignore")


def test_class_folder_without_images_warns(tmp_path, digits_dir):
    import shutil

    root = tmp_path / "data"
    shutil.copytree(digits_dir, root)
    (root / "train" / "cats").mkdir()
    (root / "train" / "cats" / "readme.txt").write_text("photos to come")
    with pytest.warns(UserWarning, match=r"cats.*\.txt"):
        dls = ImageDataLoaders.from_folder(root, num_workers=0)
    assert "cats" not in dls.vocab
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an explicit vocab says the user knows: no warning
        ImageDataLoaders.from_folder(root, num_workers=0, vocab=[str(i) for i in range(10)])


def test_wildly_different_sizes_and_modes_in_one_batch(tmp_path, photo):
    imgs = [
        photo.resize((300, 40)).convert("RGBA"),
        photo.crop((0, 0, 17, 211)).convert("L"),
        photo.resize((64, 64)).convert("P", palette=Image.ADAPTIVE),
        photo.resize((640, 427)),
        Image.fromarray(np.asarray(photo.convert("L").resize((50, 30)), dtype=np.uint16) * 257),
    ]
    files = []
    for i, img in enumerate(imgs * 2):
        f = tmp_path / f"{'ab'[i % 2]}_{i}.png"
        img.save(f)
        files.append(f)
    dls = ImageDataLoaders.from_name_func(
        tmp_path, files, lambda n: n[0], valid_pct=0.3, seed=0, item_tfms=Resize(32), bs=16, num_workers=0
    )
    x, y = dls.one_batch()
    assert x.shape == (len(dls.train_ds), 3, 32, 32) and x.dtype == torch.float32
    assert 0 <= float(x.min()) and float(x.max()) <= 1
    no_resize = ImageDataLoaders.from_name_func(
        tmp_path, files, lambda n: n[0], valid_pct=0.3, seed=0, bs=16, num_workers=0
    )
    with pytest.raises(DataError, match=r"Resize\(224\)"):
        no_resize.one_batch()


# ------------------------------------------------------------------------------------------- factories
def test_from_folder_train_valid(digits_dir):
    dls = ImageDataLoaders.from_folder(digits_dir, item_tfms=Resize(16), bs=8, num_workers=0)
    assert dls.vocab == [str(i) for i in range(10)] and dls.c == 10
    assert len(dls.train_ds) == 96 and len(dls.valid_ds) == 24
    labels, items = _labels(dls, "valid")
    assert all(p.parent.parent.name == "valid" for p in items)
    assert labels == [p.parent.name for p in items]
    x, y = dls.one_batch()
    assert x.shape == (8, 3, 16, 16) and y.dtype == torch.int64
    with pytest.raises(DataError, match="valid_pct"):
        ImageDataLoaders.from_folder(digits_dir, valid="val")
    with pytest.raises(DataError, match="does not exist"):
        ImageDataLoaders.from_folder(digits_dir / "nope")


def test_from_folder_valid_pct_grayscale(digits_dir):
    dls = ImageDataLoaders.from_folder(digits_dir, valid_pct=0.25, seed=1, img_mode="L", bs=16, num_workers=0)
    assert len(dls.train_ds) + len(dls.valid_ds) == 120 and len(dls.valid_ds) == 30
    x, _ = dls.one_batch()
    assert x.shape[1] == 1
    labels, items = _labels(dls)
    assert labels == [p.parent.name for p in items]


def test_from_name_func_re_path_func_re(digits_dir):
    files = get_image_files(digits_dir)
    expected = {f: f.name[1] for f in files}  # 'd7_0123.png' -> '7'
    for dls in (
        ImageDataLoaders.from_name_func(digits_dir, files, lambda name: name[1], seed=0, num_workers=0),
        ImageDataLoaders.from_name_re(digits_dir, files, r"^d(\d)_", seed=0, num_workers=0),
        ImageDataLoaders.from_path_func(digits_dir, files, parent_label, seed=0, num_workers=0),
        ImageDataLoaders.from_path_re(digits_dir, files, r"/(\d)/[^/]+$", seed=0, num_workers=0),
    ):
        assert dls.vocab == [str(i) for i in range(10)]
        assert len(dls.valid_ds) == 24
        for which in ("train", "valid"):
            labels, items = _labels(dls, which)
            assert labels == [expected[p] for p in items]


def test_from_df_csv_lists_and_multilabel(digits_dir):
    files = get_image_files(digits_dir)
    rel = [str(f.relative_to(digits_dir)) for f in files]
    ys = [f.parent.name for f in files]
    df = pd.DataFrame(
        {
            "name": rel,
            "label": ys,
            "is_valid": [f.parent.parent.name == "valid" for f in files],
            "tags": [f"{y} {'even' if int(y) % 2 == 0 else 'odd'}" for y in ys],
        }
    )
    dls = ImageDataLoaders.from_df(
        df, digits_dir, fn_col="name", label_col="label", valid_col="is_valid", num_workers=0
    )
    assert len(dls.valid_ds) == 24 and dls.c == 10
    x, y = dls.one_batch()
    assert x.shape[0] == y.shape[0]
    df.to_csv(digits_dir / "labels.csv", index=False)
    dls = ImageDataLoaders.from_csv(digits_dir, "labels.csv", fn_col=0, label_col=1, seed=0, num_workers=0)
    labels, items = _labels(dls)
    assert labels == [items_row["label"] for items_row in items]
    multi = ImageDataLoaders.from_df(
        df, digits_dir, fn_col="name", label_col="tags", label_delim=" ", seed=0, num_workers=0
    )
    assert "even" in multi.vocab and "odd" in multi.vocab and multi.c == 12
    _, yb = multi.one_batch()
    assert yb.dtype == torch.float32 and (yb.sum(1) == 2).all()
    lists = ImageDataLoaders.from_lists(digits_dir, rel, ys, seed=0, num_workers=0)
    labels, items = _labels(lists)
    assert labels == [lab for _, lab in items]
    with pytest.raises(DataError, match="one label per file"):
        ImageDataLoaders.from_lists(digits_dir, rel, ys[:-1])


def test_regression_target_with_images(digits_dir):
    files = get_image_files(digits_dir)
    dls = ImageDataLoaders.from_path_func(
        digits_dir,
        files,
        lambda p: float(p.parent.name),
        y_block=RegressionBlock,
        seed=0,
        num_workers=0,
        bs=8,
    )
    x, y = dls.one_batch()
    assert y.dtype == torch.float32 and y.shape == (8,) and dls.c == 1


# ------------------------------------------------------------------------------------------- masks and points
def _write_segmentation(root, n=24, size=24, skew=False):
    """Digit images with masks: class 1 where the stroke is bright, 2 on the left half of the background."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for pos, (arr, _y, i) in enumerate(_digit_arrays(n, size)):
        mask = np.where(arr > 100, 1, 0).astype(np.uint8)
        mask[:, : size // 2][mask[:, : size // 2] == 0] = 2
        Image.fromarray(arr).convert("RGB").save(root / "images" / f"{i}.png")
        m = Image.fromarray(mask)
        if skew and pos % 2:  # every other mask, so both splits hold some
            m = m.resize((size + 3, size))
        m.save(root / "masks" / f"{i}.png")
    return get_image_files(root / "images")


def test_segmentation_masks_follow_their_images(tmp_path):
    torch.manual_seed(0)  # the augmentation draws from torch's global RNG
    files = _write_segmentation(tmp_path)
    codes = ["background", "digit", "left"]
    dls = SegmentationDataLoaders.from_label_func(
        tmp_path,
        files,
        lambda f: f.parent.parent / "masks" / f.name,
        codes=codes,
        item_tfms=Resize(20),
        batch_tfms=aug_transforms(max_rotate=30, max_warp=0.3, max_zoom=1.3, p_affine=1.0, max_lighting=0),
        bs=8,
        num_workers=0,
        seed=0,
    )
    assert dls.c == 3 and dls.vocab == codes
    x, m = dls.one_batch()
    assert x.shape == (8, 3, 20, 20) and m.shape == (8, 20, 20) and m.dtype == torch.int64
    assert set(m.unique().tolist()) <= {0, 1, 2}
    # after rotation/zoom/warp the digit class still sits on the bright pixels of its image
    bright = x.mean(1) > 0.6
    dark = x.mean(1) < 0.2
    assert (m[bright] == 1).float().mean() > 0.9
    assert (m[dark] != 1).float().mean() > 0.9
    # class 2 sits on the left half (no flip) or the right half (flipped) of each image, never both halves
    for i in range(8):
        left = (m[i, :, :8] == 2).float().mean()
        right = (m[i, :, 12:] == 2).float().mean()
        assert max(left, right) > 0.1 and min(left, right) < 0.05
    fig = dls.show_batch(max_n=4)
    assert len(fig.axes) >= 4 and len(fig.axes[0].images) == 2  # image + mask overlay


def test_mask_codes_found_when_not_given_and_exported(tmp_path):
    files = _write_segmentation(tmp_path, n=12)
    dls = SegmentationDataLoaders.from_label_func(
        tmp_path,
        files,
        lambda f: f.parent.parent / "masks" / f.name,
        item_tfms=Resize(16),
        num_workers=0,
        seed=0,
    )
    assert dls.vocab == ["0", "1", "2"]
    from learnkit.data.block import recipe_from_spec

    rebuilt = recipe_from_spec(dls.recipe.spec())
    assert rebuilt.vocab == ["0", "1", "2"] and rebuilt.blocks[1].kind == "mask"


def test_mask_size_differing_from_image(tmp_path):
    files = _write_segmentation(tmp_path, n=8, skew=True)
    dls = SegmentationDataLoaders.from_label_func(
        tmp_path,
        files,
        lambda f: f.parent.parent / "masks" / f.name,
        codes=["b", "d", "l"],
        item_tfms=Resize(16),
        bs=8,
        num_workers=0,
    )
    with pytest.raises(DataError, match=r"mask.*size") as e:
        dls.one_batch()
    assert ".png" in str(e.value)  # names the item


def test_open_mask_rejects_colour_masks():
    rgb = np.zeros((4, 4, 3), dtype=np.uint8)
    rgb[0, 0] = (255, 0, 0)
    with pytest.raises(DataError, match="single-channel"):
        open_mask(Image.fromarray(rgb))
    grey_as_rgb = np.repeat(np.arange(16, dtype=np.uint8).reshape(4, 4, 1), 3, axis=2)
    assert np.array_equal(np.asarray(open_mask(Image.fromarray(grey_as_rgb))), grey_as_rgb[..., 0])


def test_points_move_with_flips_and_are_scaled(tmp_path):
    files = []
    pts = {}
    for _arr, _y, i in _digit_arrays(16, 24):
        img = np.zeros((24, 32), dtype=np.uint8)
        img[4:8, 20:24] = 255  # a bright square whose centre is the keypoint
        f = tmp_path / f"{i}.png"
        Image.fromarray(img).save(f)
        files.append(f)
        pts[f.name] = [[22.0, 6.0]]
    db = DataBlock(
        blocks=(ImageBlock(mode="L"), PointBlock),
        get_y=lambda f: pts[f.name],
        splitter=RandomSplitter(0.25, seed=0),
        batch_tfms=aug_transforms(max_rotate=0, max_warp=0, max_zoom=1, max_lighting=0),
    )
    dls = db.dataloaders(files, bs=12, num_workers=0)
    assert dls.c == 2
    x, p = dls.one_batch()
    assert p.shape == (12, 1, 2) and float(p.abs().max()) <= 1
    # the point sits on the bright square whether or not the image was flipped
    for i in range(12):
        px = int((p[i, 0, 0] + 1) * 32 / 2)
        py = int((p[i, 0, 1] + 1) * 24 / 2)
        assert x[i, 0, py, px] > 0.5
    decoded = dls.decode((x, p))
    assert torch.allclose(decoded[0][1], torch.tensor([[22.0, 6.0]]), atol=0.6) or torch.allclose(
        decoded[0][1], torch.tensor([[10.0, 6.0]]), atol=0.6
    )


# ------------------------------------------------------------------------------------------- showing and inference
def test_show_batch_and_test_dl(digits_dir, photo):
    dls = ImageDataLoaders.from_folder(digits_dir, item_tfms=Resize(16), bs=8, num_workers=0)
    b = dls.one_batch()
    fig = dls.show_batch(b, max_n=4)
    assert len(fig.axes) == 4 and all(len(ax.images) == 1 for ax in fig.axes)
    assert [ax.get_title() for ax in fig.axes] == [dls.vocab[int(y)] for y in b[1][:4]]
    items = [
        get_image_files(digits_dir)[0],
        photo,
        np.asarray(photo),
        torch.tensor(np.asarray(photo)).permute(2, 0, 1),
    ]
    (x,) = next(iter(dls.test_dl(items)))
    assert x.shape == (4, 3, 16, 16)
    assert torch.allclose(x[1], x[2]) and torch.allclose(x[2], x[3])


# ------------------------------------------------------------------------------------------- CPU: augmentation in workers
def _aug_dls(digits_dir, num_workers):
    return ImageDataLoaders.from_folder(
        digits_dir,
        item_tfms=Resize(16),
        batch_tfms=[*aug_transforms(p_affine=1.0, p_lighting=1.0), Normalize.from_stats(*imagenet_stats)],
        bs=8,
        num_workers=num_workers,
        device="cpu",
        shuffle=False,
    )


def test_cpu_augmentation_in_workers_matches_the_main_process(digits_dir):
    work, main = _aug_dls(digits_dir, 1), _aug_dls(digits_dir, 0)
    assert work.train.tfms_in_workers and not main.train.tfms_in_workers
    # validation: deterministic, so the very same tensors wherever the transforms run
    for (xw, yw), (xm, ym) in zip(work.valid, main.valid):
        assert torch.allclose(xw, xm, atol=1e-6) and torch.equal(yw, ym)
    # training: augmented once (not twice, not never): the same shape and value range as in the main process
    xw, yw = work.one_batch()
    xm, _ = main.one_batch()
    assert xw.shape == xm.shape == (8, 3, 16, 16) and xw.dtype == torch.float32
    raw = work.train.loader.dataset  # item pipeline only: uint8 images
    plain = torch.stack([raw[i][0] for i in range(8)]).float() / 255
    dec = torch.stack([torch.from_numpy(t[0]).permute(2, 0, 1) for t in work.decode((xw, yw))])
    assert dec.min() >= 0 and dec.max() <= 1  # Normalize was applied exactly once
    assert (dec - plain).abs().mean() > 0.02  # augmented ...
    assert abs(float(dec.mean() - plain.mean())) < 0.1  # ... but still the same pictures
    assert abs(float(xw.mean() - xm.mean())) < 0.5 and abs(float(xw.std() - xm.std())) < 0.5
    # show_batch decodes worker-made batches into the labelled images
    fig = work.show_batch(max_n=4)
    assert [ax.get_title() for ax in fig.axes] == [work.vocab[int(y)] for y in yw[:4]]
    assert all(0 <= ax.images[0].get_array().min() and ax.images[0].get_array().max() <= 1 for ax in fig.axes)
