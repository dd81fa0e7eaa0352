"""Getters and labellers on real files (scikit-learn digits written as PNG folders)."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from learnkit.data.getters import (
    ColReader,
    FileGetter,
    ImageGetter,
    RegexLabeller,
    get_files,
    get_image_files,
    get_text_files,
    grandparent_label,
    image_extensions,
    parent_label,
    using_attr,
)
from learnkit.exceptions import DataError


@pytest.fixture(scope="module")
def digit_tree(tmp_path_factory):
    """``train/<digit>/<i>.png`` (3 per class) and ``valid/<digit>/<i>.png`` (1 per class), plus noise files."""
    from sklearn.datasets import load_digits

    d = load_digits()
    root = tmp_path_factory.mktemp("digits")
    counts = {"train": 3, "valid": 1}
    seen = {c: 0 for c in range(10)}
    for img, y in zip(d.images, d.target):
        i = seen[y]
        if i >= 4:
            continue
        split = "train" if i < counts["train"] else "valid"
        folder = root / split / str(y)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray((img * 255 / 16).astype(np.uint8)).save(folder / f"{y}_{i}.png")
        seen[y] += 1
    (root / "train" / "README.txt").write_text("not an image")
    (root / "train" / "0" / "UPPER.PNG").write_bytes((root / "train" / "0" / "0_0.png").read_bytes())
    (root / ".hidden").mkdir()
    (root / ".hidden" / "x.png").write_bytes(b"")
    (root / "train" / ".cache.png").write_bytes(b"")
    return root


def test_get_image_files_finds_every_png_sorted_and_skips_hidden(digit_tree):
    files = get_image_files(digit_tree)
    assert len(files) == 41  # 40 digits + UPPER.PNG (extensions match case-insensitively)
    assert all(isinstance(f, Path) for f in files)
    assert files == get_image_files(digit_tree)  # deterministic
    strs = [str(f) for f in files]
    assert not any(".hidden" in s or ".cache" in s for s in strs)
    # each folder's files sorted by name, folders in name order
    assert strs.index(str(digit_tree / "train" / "0" / "0_0.png")) < strs.index(
        str(digit_tree / "train" / "1" / "1_0.png")
    )
    assert strs.index(str(digit_tree / "train" / "9" / "9_2.png")) < strs.index(
        str(digit_tree / "valid" / "0" / "0_3.png")
    )
    walked = sorted(
        os.path.join(r, f)
        for r, ds, fs in os.walk(digit_tree)
        if "/." not in r
        for f in fs
        if os.path.splitext(f)[1].lower() in image_extensions and not f.startswith(".")
    )
    assert sorted(strs) == walked


def test_get_files_extensions_recurse_and_folders(digit_tree):
    assert len(get_files(digit_tree, extensions="png")) == 41  # no dot, any case
    assert len(get_files(digit_tree, extensions=[".PNG"])) == 41
    assert [f.name for f in get_files(digit_tree / "train", extensions=".txt")] == ["README.txt"]
    assert get_files(digit_tree / "train", recurse=False) == [digit_tree / "train" / "README.txt"]
    valid = get_image_files(digit_tree, folders="valid")
    assert len(valid) == 10 and all(f.parent.parent.name == "valid" for f in valid)
    assert len(get_image_files(digit_tree, folders=["train", "valid"])) == 41
    assert [f.name for f in get_text_files(digit_tree)] == ["README.txt"]
    assert len(FileGetter(extensions=".png", folders=["valid"])(digit_tree)) == 10
    g = pickle.loads(pickle.dumps(ImageGetter(suffix="valid")))
    assert len(g(digit_tree)) == 10


def test_get_files_follows_links_without_looping(digit_tree, tmp_path):
    (tmp_path / "data").mkdir()
    os.symlink(digit_tree / "valid", tmp_path / "data" / "linked")
    os.symlink(tmp_path / "data", tmp_path / "data" / "loop")  # a cycle
    assert len(get_image_files(tmp_path / "data")) == 10
    with pytest.raises(DataError):
        get_image_files(tmp_path / "data", followlinks=False)


def test_empty_folder_and_wrong_extensions_name_the_path_and_extensions(digit_tree, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="empty") as e:
        get_image_files(empty)
    assert ".png" in str(e.value) and ".jpg" in str(e.value)
    with pytest.raises(DataError, match=r"\.webm") as e:
        get_files(digit_tree, extensions=".webm")
    assert str(digit_tree) in str(e.value)
    assert get_files(empty, allow_empty=True) == []
    with pytest.raises(DataError, match="no such folder"):
        get_files(tmp_path / "missing")
    with pytest.raises(DataError, match="not a folder"):
        get_files(digit_tree / "train" / "README.txt")


def test_parent_and_grandparent_labels(digit_tree):
    f = get_image_files(digit_tree, folders="valid")[3]
    assert parent_label(f) == "3" == parent_label(str(f))
    assert grandparent_label(f) == "valid"


def test_regex_labeller_search_match_and_errors(digit_tree):
    files = get_image_files(digit_tree / "valid")
    lab = RegexLabeller(r"(\d)_\d+\.png$")
    assert [lab(f) for f in files] == [parent_label(f) for f in files]
    assert RegexLabeller(r"^(\d)", match=True)("7_1.png") == "7"
    with pytest.raises(DataError, match="match the start") as e:
        RegexLabeller(r"(\d)_", match=True)(files[0])
    assert str(files[0]) in str(e.value)
    with pytest.raises(DataError, match="no match") as e:
        lab("notes/readme.txt")
    assert "readme.txt" in str(e.value)
    with pytest.raises(DataError, match="valid regular expression"):
        RegexLabeller(r"([a-z")
    lab2 = pickle.loads(pickle.dumps(lab))
    assert lab2(files[5]) == "5"


def test_col_reader_on_dicts_pandas_rows_and_positions(digit_tree):
    df = pd.DataFrame({"fname": ["a.png", "b.png"], "tags": ["cat dog", np.nan], "y": [1.5, 2.0]})
    rows = df.to_dict("records")
    assert ColReader("fname")(rows[0]) == "a.png"
    assert ColReader("fname", pref=digit_tree)(rows[0]) == str(digit_tree / "a.png")
    assert ColReader("fname", pref="imgs/", suff=".bak")(rows[1]) == "imgs/b.png.bak"
    assert ColReader("tags", label_delim=" ")(rows[0]) == ["cat", "dog"]
    assert ColReader("tags", label_delim=" ")(rows[1]) == []  # missing -> no labels
    assert ColReader(["fname", "y"])(rows[1]) == ["b.png", 2.0]
    assert ColReader(2)(rows[0]) == 1.5  # position
    assert ColReader("y")(df.iloc[1]) == 2.0  # a pandas row
    assert ColReader(0)(df.iloc[0]) == "a.png"
    with pytest.raises(DataError, match="Did you mean 'fname'"):
        ColReader("fnam")(rows[0])
    assert pickle.loads(pickle.dumps(ColReader("y")))(rows[0]) == 1.5


def test_using_attr(digit_tree):
    f = get_image_files(digit_tree, folders="train")[0]
    g = using_attr(RegexLabeller(r"^(\d)"), "name")
    assert g(f) == parent_label(f)
    assert pickle.loads(pickle.dumps(g))(f) == parent_label(f)
    with pytest.raises(DataError):
        using_attr("name", "x")


def test_symlink_loops_and_aliases_list_each_file_once(digit_tree, tmp_path):
    """Issue 8: a tree with a symlink loop and links to folders/files listed elsewhere."""
    import shutil

    from learnkit.data.splitters import RandomSplitter

    root = tmp_path / "tree"
    shutil.copytree(digit_tree, root)
    (root / "train" / "3" / "loop").symlink_to(root / "train")  # a loop back up the tree
    (root / "alias").symlink_to(root / "valid")  # the same folder under a second name (sorts first)
    (root / "valid" / "5" / "again.png").symlink_to(root / "valid" / "5" / "5_3.png")  # a file alias
    expected = {os.path.realpath(p) for p in get_image_files(digit_tree, followlinks=False)}
    files = get_image_files(root)
    reals = [os.path.realpath(f) for f in files]
    assert len(reals) == len(set(reals)) == 41  # every image exactly once
    assert {r.replace(str(root), str(digit_tree)) for r in reals} == expected
    rel = [f.relative_to(root).parts for f in files]
    assert not any("alias" in r or "loop" in r or "again.png" in r for r in rel)  # real paths preferred
    train, valid = RandomSplitter(valid_pct=0.3, seed=0)(files)
    assert not {reals[i] for i in train} & {reals[i] for i in valid}  # no image in both splits
    assert files == get_image_files(root)  # still deterministic
