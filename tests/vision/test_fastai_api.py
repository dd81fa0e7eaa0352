"""Issue 14: course-style vision code runs with only the import changed (through the public API)."""

from __future__ import annotations

import pathlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from learnkit.data import get_files, get_image_files
from learnkit.utils import L, LPath
from learnkit.vision import verify_images


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    """``<split>/<label>/<i>.png`` from scikit-learn's bundled digits, as users have image folders."""
    root = tmp_path_factory.mktemp("digits")
    d = load_digits()
    for i in range(60):
        split = "train" if i < 45 else "valid"
        f = root / split / str(int(d.target[i])) / f"{i}.png"
        f.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((d.images[i] * (255 / 16)).astype(np.uint8)).resize((16, 16)).save(f)
    return root


def test_paths_have_ls_and_file_lists_have_L_methods(digits):
    path = LPath(digits)
    assert path.ls() == [path / "train", path / "valid"] and isinstance(path.ls(), L)
    assert isinstance(path.ls()[0], LPath) and isinstance(path.ls()[0], pathlib.Path)
    assert path.ls(file_exts=".png") == []
    files = get_image_files(path)
    assert isinstance(files, L) and isinstance(files, list) and len(files) == 60
    assert isinstance(files[0], LPath) and isinstance(files[0].parent, LPath)
    assert files.sorted(key=lambda f: int(f.stem)).attrgot("stem")[:3] == ["0", "1", "2"]
    assert files.sorted("name") == sorted(files, key=lambda f: f.name)
    labels = files.map(lambda f: f.parent.name)
    assert set(labels) <= {str(i) for i in range(10)} and len(labels) == 60
    valid = files.filter(lambda f: f.parts[-3] == "valid")
    assert len(valid) == 15 and isinstance(valid, L)
    assert L([(1, "a"), (2, "b")]).itemgot(1) == ["a", "b"]
    assert files[[0, 2]] == [files[0], files[2]] and files[1:3] == files[1:3]
    assert files[0].parent.ls(n_max=2) == sorted((files[0].parent).iterdir())[:2]
    assert len(get_files(path, ".png")) == 60
    assert repr(L([1, 2])) == "(#2) [1, 2]"


def test_untar_data_returns_a_path_with_ls(tmp_path, monkeypatch):
    import socket
    import tarfile

    from learnkit.data import untar_data

    monkeypatch.setenv("LEARNKIT_HOME", str(tmp_path / "home"))
    src = tmp_path / "ds"
    (src / "images").mkdir(parents=True)
    (src / "images" / "a.png").write_bytes(b"x")
    (src / "labels.csv").write_text("a\n")
    (tmp_path / "home" / "archive").mkdir(parents=True)
    with tarfile.open(tmp_path / "home" / "archive" / "ds.tgz", "w:gz") as tf:
        tf.add(src, arcname="ds")
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    path = untar_data(f"http://127.0.0.1:{port}/ds.tgz", show_progress=False)  # placed by hand: offline
    assert isinstance(path, LPath)
    assert path.ls().attrgot("name") == ["images", "labels.csv"]
    assert (path / "images").ls()[0].name == "a.png"


def test_verify_images_result_maps_unlink(digits, tmp_path):
    import shutil

    root = tmp_path / "imgs"
    shutil.copytree(digits / "valid", root)
    (root / "0" / "broken.png").write_bytes(b"not an image")
    (root / "1" / "truncated.png").write_bytes((next((root / "1").glob("*.png"))).read_bytes()[:40])
    failed = verify_images(get_image_files(root))
    assert sorted(f.name for f in failed) == ["broken.png", "truncated.png"]
    failed.map(Path.unlink)
    assert verify_images(get_image_files(root)) == [] and len(get_image_files(root)) == 15
