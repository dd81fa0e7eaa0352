"""Issue 8: archive bombs are refused before anything is written, with the numbers and the override."""

from __future__ import annotations

import io
import shutil
import socket
import tarfile
import zipfile
from collections import namedtuple
from pathlib import Path

import pytest

from learnkit.data import external
from learnkit.data.external import extract_archive, untar_data
from learnkit.exceptions import DataError, UnsafeFileError

MiB = 1 << 20


class _Zeros(io.RawIOBase):
    """``n`` zero bytes, read in chunks (no big buffer in memory)."""

    def __init__(self, n: int):
        self.left = n

    def readable(self):
        return True

    def readinto(self, b):
        k = min(len(b), self.left)
        b[:k] = bytes(k)
        self.left -= k
        return k


def _tar_bomb(path: Path, size: int) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        tf.addfile(tarfile.TarInfo("bomb/readme.txt"), io.BytesIO(b""))
        info = tarfile.TarInfo("bomb/zeros.bin")
        info.size = size
        tf.addfile(info, io.BufferedReader(_Zeros(size)))
    return path


def _zip_bomb(path: Path, size: int) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf, zf.open("zeros.bin", "w") as f:
        for _ in range(size // MiB):
            f.write(bytes(MiB))
    return path


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture(scope="module")
def bombs(tmp_path_factory):
    d = tmp_path_factory.mktemp("bombs")
    return {"tgz": _tar_bomb(d / "bomb.tgz", 160 * MiB), "zip": _zip_bomb(d / "bomb.zip", 160 * MiB)}


@pytest.mark.parametrize("kind", ["tgz", "zip"])
def test_archive_bomb_is_refused_with_the_numbers(kind, bombs, tmp_path, monkeypatch):
    bomb = bombs[kind]
    assert bomb.stat().st_size < 400 * 1024  # a few hundred KiB ...
    dest = tmp_path / "out"
    with pytest.raises(UnsafeFileError) as ei:
        extract_archive(bomb, dest)
    msg = str(ei.value)
    assert str(160 * MiB) in msg and str(bomb.stat().st_size) in msg and "max_ratio=100" in msg
    assert "archive bomb" in msg and "Fix" in msg and "max_ratio=None" in msg
    assert list(dest.rglob("*")) == []  # nothing written

    # through untar_data (archive placed by hand: no network): refused, no temp folder left
    home = tmp_path / "home"
    monkeypatch.setenv("LEARNKIT_HOME", str(home))
    (home / "archive").mkdir(parents=True)
    shutil.copy(bomb, home / "archive" / bomb.name)
    url = f"http://127.0.0.1:{_closed_port()}/{bomb.name}"
    with pytest.raises(UnsafeFileError, match="max_ratio"):
        untar_data(url, show_progress=False)
    assert list((home / "data").iterdir()) == []


def test_limits_can_be_lifted_explicitly(tmp_path):
    small = _tar_bomb(tmp_path / "small.tgz", 20 * MiB)  # ratio about 1000, over the 16 MiB floor
    with pytest.raises(UnsafeFileError, match="compression ratio"):
        extract_archive(small, tmp_path / "a")
    out = extract_archive(small, tmp_path / "b", max_ratio=None)
    assert (out / "bomb" / "zeros.bin").stat().st_size == 20 * MiB
    with pytest.raises(UnsafeFileError, match=r"max_size=1000 \(1000 bytes\)") as ei:
        extract_archive(small, tmp_path / "c", max_size=1000, max_ratio=None)
    assert str(20 * MiB) in str(ei.value)
    assert not (tmp_path / "c" / "bomb").exists()


def test_not_enough_disk_space_is_refused(tmp_path, monkeypatch):
    arch = tmp_path / "ok.tgz"
    with tarfile.open(arch, "w:gz") as tf:
        info = tarfile.TarInfo("d/data.bin")
        payload = bytes(range(256)) * 40
        info.size = len(payload)
        tf.addfile(info, io.BytesIO(payload))
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(external.shutil, "disk_usage", lambda p: usage(10**6, 10**6 - 100, 100))
    with pytest.raises(DataError, match="Not enough free disk space") as ei:
        extract_archive(arch, tmp_path / "out")
    assert "10240 bytes" in str(ei.value) and "100 bytes" in str(ei.value)
    assert list((tmp_path / "out").rglob("*")) == []
