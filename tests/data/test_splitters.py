"""Splitters: sizes, reproducibility, and their errors (real files from scikit-learn's digits)."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from learnkit.data.getters import get_image_files, parent_label
from learnkit.data.splitters import (
    ColSplitter,
    EndSplitter,
    FileSplitter,
    FuncSplitter,
    GrandparentSplitter,
    IndexSplitter,
    MaskSplitter,
    RandomSplitter,
    TrainTestSplitter,
)
from learnkit.device import set_seed
from learnkit.exceptions import DataError


@pytest.fixture(scope="module")
def digit_files(tmp_path_factory):
    """40 digit PNGs: ``train/<digit>/`` 3 per class, ``valid/<digit>/`` 1 per class."""
    from sklearn.datasets import load_digits

    d = load_digits()
    root = tmp_path_factory.mktemp("digits")
    seen = {c: 0 for c in range(10)}
    for img, y in zip(d.images, d.target):
        i = seen[y]
        if i >= 4:
            continue
        folder = root / ("train" if i < 3 else "valid") / str(y)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray((img * 255 / 16).astype(np.uint8)).save(folder / f"{y}_{i}.png")
        seen[y] += 1
    return get_image_files(root)


def _check_partition(tr, va, n):
    assert tr.dtype == np.int64 and va.dtype == np.int64
    assert len(set(tr.tolist()) & set(va.tolist())) == 0
    assert sorted(tr.tolist() + va.tolist()) == list(range(n))


def test_random_splitter_sizes_and_seed():
    items = list(range(1000))
    tr, va = RandomSplitter(0.2, seed=42)(items)
    assert (len(tr), len(va)) == (800, 200)
    _check_partition(tr, va, 1000)
    tr2, va2 = RandomSplitter(0.2, seed=42)(items)
    assert va.tolist() == va2.tolist()
    assert va.tolist() != RandomSplitter(0.2, seed=43)(items)[1].tolist()
    assert va.tolist() != list(range(800, 1000))  # actually random
    assert len(RandomSplitter(0.25, seed=0)(list(range(10)))[1]) == 2  # round(2.5) -> 2 (banker's) is fine
    # seed=None draws from torch's generator, so set_seed makes it reproducible
    set_seed(3)
    a = RandomSplitter(0.3)(items)[1]
    set_seed(3)
    assert a.tolist() == RandomSplitter(0.3)(items)[1].tolist()
    with pytest.raises(DataError, match="valid_pct"):
        RandomSplitter(1.5)
    assert pickle.loads(pickle.dumps(RandomSplitter(0.2, seed=1)))(items)[1].tolist() == (
        RandomSplitter(0.2, seed=1)(items)[1].tolist()
    )


def test_random_splitter_depends_only_on_seed_and_count():
    """Same (seed, n) -> same split whatever the global RNG state or the items; it is numpy's PCG64 stream
    (stable across numpy versions and machines), not the platform's or torch's generator."""
    np.random.seed(0)
    set_seed(1)
    a = RandomSplitter(0.2, seed=7)(list(range(500)))[1]
    np.random.seed(99)
    set_seed(2)
    b = RandomSplitter(0.2, seed=7)([f"file_{i}.png" for i in range(500)])[1]
    assert a.tolist() == b.tolist()
    stream = np.random.Generator(np.random.PCG64(7)).random(500)
    assert sorted(a.tolist()) == sorted(np.argsort(stream, kind="stable")[:100].tolist())


def test_train_test_splitter_stratifies(digit_files):
    tr, va = TrainTestSplitter(test_size=0.5, random_state=0, stratify=parent_label)(digit_files)
    _check_partition(tr, va, 40)
    assert sorted(parent_label(digit_files[i]) for i in va) == sorted(
        str(c) for c in range(10) for _ in range(2)
    )
    labels = [parent_label(f) for f in digit_files]
    tr2, va2 = TrainTestSplitter(test_size=0.5, random_state=0, stratify=labels)(digit_files)
    assert va.tolist() == va2.tolist()
    with pytest.raises(DataError, match="stratify"):
        TrainTestSplitter(test_size=0.05, random_state=0, stratify=parent_label)(
            digit_files
        )  # 2 < 10 classes
    with pytest.raises(DataError, match="one stratify label per item"):
        TrainTestSplitter(stratify=labels[:5])(digit_files)


def test_index_mask_func_end_splitters(digit_files):
    n = len(digit_files)
    tr, va = IndexSplitter([0, 5, 39])(digit_files)
    assert va.tolist() == [0, 5, 39] and len(tr) == n - 3
    with pytest.raises(DataError, match="between 0 and 39"):
        IndexSplitter([40])(digit_files)
    mask = [parent_label(f) == "7" for f in digit_files]
    tr, va = MaskSplitter(mask)(digit_files)
    assert [parent_label(digit_files[i]) for i in va] == ["7"] * 4
    with pytest.raises(DataError, match="one mask value per item"):
        MaskSplitter(mask[:-1])(digit_files)
    tr, va = FuncSplitter(_is_seven)(digit_files)
    assert [parent_label(digit_files[i]) for i in va] == ["7"] * 4
    _check_partition(tr, va, n)
    tr, va = EndSplitter(0.25)(digit_files)
    assert va.tolist() == list(range(30, 40)) and tr.tolist() == list(range(30))
    tr, va = EndSplitter(0.25, valid_last=False)(digit_files)
    assert va.tolist() == list(range(10))


def _is_seven(f) -> bool:
    return parent_label(f) == "7"


def test_grandparent_splitter(digit_files):
    tr, va = GrandparentSplitter()(digit_files)
    assert (len(tr), len(va)) == (30, 10)
    assert all(digit_files[i].parent.parent.name == "valid" for i in va)
    with pytest.raises(DataError, match=r"folders two levels up are \['train', 'valid'\]"):
        GrandparentSplitter(valid_name="val")(digit_files)


def test_file_splitter(digit_files, tmp_path):
    listing = tmp_path / "valid.txt"
    listing.write_text("\n".join(f.name for f in digit_files[:4]) + "\n" + str(digit_files[-1]) + "\n")
    tr, va = FileSplitter(listing)(digit_files)
    assert va.tolist() == [0, 1, 2, 3, 39]
    with pytest.raises(DataError, match="readable text file"):
        FileSplitter(tmp_path / "nope.txt")(digit_files)


def test_col_splitter_on_rows_and_dataframes(tmp_path):
    df = pd.DataFrame({"x": range(6), "is_valid": [False, True, False, False, True, False]})
    rows = df.to_dict("records")
    assert ColSplitter()(rows)[1].tolist() == [1, 4]
    assert ColSplitter()(df)[1].tolist() == [1, 4]
    assert ColSplitter(1)(rows)[1].tolist() == [1, 4]
    df.to_csv(tmp_path / "t.csv", index=False)
    strs = pd.read_csv(tmp_path / "t.csv", dtype=str).to_dict("records")  # 'True'/'False' strings
    assert ColSplitter()(strs)[1].tolist() == [1, 4]
    with pytest.raises(DataError, match="column 'split'"):
        ColSplitter("split")(rows)


# ---------------------------------------------------------------- issue 8 item 4: overlapping or repeated splits
def test_overlapping_or_repeated_split_indices_are_refused_listing_some():
    from learnkit.data import DataBlock
    from learnkit.data.pipeline import check_splits

    items = list(range(20))
    dblock = DataBlock(splitter=lambda o: (list(range(0, 15)), list(range(12, 20))), get_y=lambda o: o % 2)
    with pytest.raises(DataError, match=r"3 indices in both .* e\.g\. \[12, 13, 14\]"):
        dblock.datasets(items)
    dblock = DataBlock(splitter=lambda o: ([0, 1, 1, 2] + list(range(3, 15)), list(range(15, 20))))
    with pytest.raises(DataError, match=r"index 1 appears 2 times"):
        dblock.datasets(items)
    check_splits(list(range(15)), list(range(15, 20)))  # a proper split passes
