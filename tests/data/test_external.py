"""Tests for learnkit.data.external against a local HTTP server on 127.0.0.1 (no other traffic)."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import re
import shutil
import socket
import tarfile
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from learnkit.data import external
from learnkit.data.external import (
    DownloadError,
    URLs,
    download_url,
    extract_archive,
    learnkit_home,
    untar_data,
)
from learnkit.exceptions import DataError, UnsafeFileError

# --------------------------------------------------------------------------------------------------
# A small HTTP server that honours Range and can drop connections


class _State:
    def __init__(self):
        self.requests: list[tuple[str, str | None]] = []
        self.honour_range = True
        self.cut_after: int | None = None  # send only this many body bytes, then close the socket
        self.cuts_left = 0  # ... for this many requests


class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output quiet
        pass

    def do_GET(self):
        st: _State = self.server.state
        rng = self.headers.get("Range")
        st.requests.append((self.path, rng))
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404, "Not Found")
            return
        data = path.read_bytes()
        start = 0
        m = re.fullmatch(r"bytes=(\d+)-", (rng or "").strip())
        if m and st.honour_range:
            start = int(m.group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if st.cut_after is not None and st.cuts_left > 0:
            st.cuts_left -= 1
            self.wfile.write(body[: st.cut_after])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)


class _Server:
    def __init__(self, root: Path):
        self.root = root
        handler = functools.partial(_RangeHandler, directory=str(root))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.state = _State()
        self.httpd.state = self.state
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    @property
    def requests(self):
        return self.state.requests

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def home(tmp_path, monkeypatch):
    h = tmp_path / "lkhome"
    monkeypatch.setenv("LEARNKIT_HOME", str(h))
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setattr(external, "_RETRY_WAIT", 0.0)
    return h


@pytest.fixture
def server(tmp_path, home):
    root = tmp_path / "served"
    root.mkdir()
    srv = _Server(root)
    yield srv
    srv.close()


# --------------------------------------------------------------------------------------------------
# Real data: digits written as PNGs, packed into archives


@pytest.fixture(scope="module")
def digits_tree(tmp_path_factory) -> Path:
    """A small 'digits' dataset folder: train/<label>/<i>.png and labels.csv."""
    root = tmp_path_factory.mktemp("src") / "digits"
    d = load_digits()
    rows = ["name,label"]
    for i in range(24):
        label = int(d.target[i])
        img = (d.images[i] * (255 / 16)).astype(np.uint8)
        f = root / "train" / str(label) / f"{i}.png"
        f.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(f)
        rows.append(f"train/{label}/{i}.png,{label}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _make_tgz(src: Path, out: Path) -> Path:
    with tarfile.open(out, "w:gz") as tf:
        tf.add(src, arcname=src.name)  # a single top-level folder, like the course archives
    return out


def _make_zip_flat(src: Path, out: Path) -> Path:
    with zipfile.ZipFile(out, "w") as zf:
        for p in sorted(src.rglob("*")):
            if p.is_file():
                zf.write(p, arcname=str(p.relative_to(src)))  # several top-level entries
    return out


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# --------------------------------------------------------------------------------------------------
# Tests


def test_learnkit_home_and_url_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("LEARNKIT_HOME", str(tmp_path / "h"))
    assert learnkit_home() == tmp_path / "h"
    assert URLs.path(URLs.PETS) == tmp_path / "h" / "archive" / "oxford-iiit-pet.tgz"
    assert URLs.path(URLs.ML_100k, "data") == tmp_path / "h" / "data" / "ml-100k"
    monkeypatch.delenv("LEARNKIT_HOME")
    assert learnkit_home() == Path.home() / ".learnkit"
    assert URLs.PETS == "https://s3.amazonaws.com/fast-ai-imageclas/oxford-iiit-pet.tgz"
    assert URLs.MNIST_SAMPLE == "https://s3.amazonaws.com/fast-ai-sample/mnist_sample.tgz"
    names = URLs.names()
    for n in ("MNIST_TINY", "IMDB", "ML_100k", "CAMVID_TINY", "BIRDS", "YELP_REVIEWS_POLARITY"):
        assert n in names
    assert "S3" not in names and "SAMPLE" not in names
    with pytest.raises(DataError, match="kind"):
        URLs.path(URLs.PETS, "models")


def test_untar_tgz_extracts_and_reuses_cache(server, home, digits_tree, tmp_path):
    tgz = _make_tgz(digits_tree, server.root / "digits.tgz")
    url = server.url("digits.tgz")

    path = untar_data(url)  # with the progress bar on
    assert path == home / "data" / "digits"
    assert _files(path) == _files(digits_tree)
    assert (home / "archive" / "digits.tgz").read_bytes() == tgz.read_bytes()
    # the images are real and decode to the digits they were made from
    d = load_digits()
    arr = np.asarray(Image.open(path / "train" / str(d.target[5]) / "5.png"))
    assert np.array_equal(arr, (d.images[5] * (255 / 16)).astype(np.uint8))
    assert len(server.requests) == 1
    assert not list((home / "data").glob(".digits.extracting-*"))

    # second call: cached, no request
    assert untar_data(url, show_progress=False) == path
    assert len(server.requests) == 1

    # extracted folder removed: re-extracted from the kept archive, still no request
    shutil.rmtree(path)
    assert _files(untar_data(url, show_progress=False)) == _files(digits_tree)
    assert len(server.requests) == 1

    # force_download fetches again
    untar_data(url, force_download=True, show_progress=False)
    assert len(server.requests) == 2


def test_untar_zip_with_several_top_level_entries(server, home, digits_tree):
    _make_zip_flat(digits_tree, server.root / "flat.zip")
    path = untar_data(server.url("flat.zip"), show_progress=False)
    assert path == home / "data" / "flat"
    assert _files(path) == _files(digits_tree)
    assert (path / "labels.csv").read_text().startswith("name,label")


def test_custom_data_and_archive_folders(server, tmp_path, digits_tree):
    _make_tgz(digits_tree, server.root / "digits.tgz")
    path = untar_data(
        server.url("digits.tgz"), data=tmp_path / "d", archive=tmp_path / "a", show_progress=False
    )
    assert path == tmp_path / "d" / "digits"
    assert (tmp_path / "a" / "digits.tgz").is_file()
    assert _files(path) == _files(digits_tree)


def test_resume_after_dropped_connection(server, home, digits_tree, tmp_path):
    tgz = _make_tgz(digits_tree, server.root / "digits.tgz")
    total = tgz.stat().st_size
    cut = total // 2
    server.state.cut_after, server.state.cuts_left = cut, 1
    dest = tmp_path / "dl" / "digits.tgz"
    part = dest.with_name("digits.tgz.part")

    with pytest.raises(DownloadError) as ei:
        download_url(server.url("digits.tgz"), dest, retries=0, chunk_size=1024, show_progress=False)
    msg = str(ei.value)
    assert server.url("digits.tgz") in msg and str(dest) in msg and str(part) in msg
    assert isinstance(ei.value, ConnectionError) and isinstance(ei.value, DataError)
    assert not dest.exists()
    assert part.stat().st_size == cut
    assert part.read_bytes() == tgz.read_bytes()[:cut]

    out = download_url(server.url("digits.tgz"), dest, sha256=_sha(tgz), chunk_size=1024, show_progress=False)
    assert out == dest
    assert server.requests[-1][1] == f"bytes={cut}-"
    assert dest.read_bytes() == tgz.read_bytes()
    assert not part.exists()


def test_retries_resume_within_one_call(server, digits_tree, tmp_path):
    tgz = _make_tgz(digits_tree, server.root / "digits.tgz")
    server.state.cut_after, server.state.cuts_left = 1000, 2
    dest = download_url(server.url("digits.tgz"), tmp_path / "x.tgz", retries=2, show_progress=False)
    assert dest.read_bytes() == tgz.read_bytes()
    assert [r for _, r in server.requests] == [None, "bytes=1000-", "bytes=2000-"]


def test_server_ignoring_range_restarts_from_zero(server, digits_tree, tmp_path):
    tgz = _make_tgz(digits_tree, server.root / "digits.tgz")
    server.state.honour_range = False
    dest = tmp_path / "x.tgz"
    # a partial file with wrong bytes: appending a full body to it would corrupt the result
    dest.with_name("x.tgz.part").write_bytes(b"garbage" * 100)
    download_url(server.url("digits.tgz"), dest, show_progress=False)
    assert server.requests[-1][1] == "bytes=700-"  # asked to resume, got a 200
    assert dest.read_bytes() == tgz.read_bytes()


def test_complete_part_file_answered_416(server, digits_tree, tmp_path):
    tgz = _make_tgz(digits_tree, server.root / "digits.tgz")
    dest = tmp_path / "x.tgz"
    dest.with_name("x.tgz.part").write_bytes(tgz.read_bytes())
    download_url(server.url("digits.tgz"), dest, show_progress=False)
    assert server.requests == [("/digits.tgz", f"bytes={tgz.stat().st_size}-")]
    assert dest.read_bytes() == tgz.read_bytes()


def test_checksum_and_size_mismatch_delete_the_file(server, home, digits_tree, tmp_path):
    tgz = _make_tgz(digits_tree, server.root / "digits.tgz")
    dest = tmp_path / "x.tgz"
    wrong = "0" * 64
    with pytest.raises(DataError) as ei:
        download_url(server.url("digits.tgz"), dest, sha256=wrong, show_progress=False)
    msg = str(ei.value)
    assert wrong in msg and _sha(tgz) in msg and "deleted" in msg and "Fix" in msg
    assert not dest.exists() and not dest.with_name("x.tgz.part").exists()

    with pytest.raises(DataError, match=f"Expected size={tgz.stat().st_size + 1}"):
        download_url(server.url("digits.tgz"), dest, size=tgz.stat().st_size + 1, show_progress=False)
    assert not dest.exists()

    # through untar_data: nothing extracted either
    with pytest.raises(DataError, match="sha256"):
        untar_data(server.url("digits.tgz"), sha256=wrong, show_progress=False)
    assert not (home / "archive" / "digits.tgz").exists()
    assert not (home / "data" / "digits").exists()

    # right checksum: accepted
    good = download_url(server.url("digits.tgz"), dest, sha256=_sha(tgz), size=tgz.stat().st_size)
    assert good.read_bytes() == tgz.read_bytes()
    with pytest.raises(DataError, match="64 hexadecimal"):
        download_url(server.url("digits.tgz"), dest, sha256="abc")


def _tar_with(out: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(out, "w:gz") as tf:
        for info, payload in members:
            if payload is not None:
                info.size = len(payload)
                tf.addfile(info, io.BytesIO(payload))
            else:
                tf.addfile(info)
    return out


def _file(name: str, payload: bytes = b"evil") -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), payload


def _link(name: str, target: str, kind=tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


def _device(name: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
    return info, None


@pytest.mark.parametrize(
    "case",
    ["dotdot", "absolute", "symlink_etc", "symlink_write_through", "link_chain", "hardlink", "device"],
)
def test_malicious_archives_are_refused(case, home, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    ok = _file("pkg/ok.txt", b"fine")
    members = {
        "dotdot": [ok, _file("pkg/../../../outside/evil.txt")],
        "absolute": [ok, _file(str(outside / "evil.txt"))],
        "symlink_etc": [ok, _link("pkg/etc", "/etc")],
        "symlink_write_through": [ok, _link("pkg/out", "../../../outside"), _file("pkg/out/evil.txt")],
        # each link looks harmless on its own; together they point above the destination
        "link_chain": [
            ok,
            _link("pkg/d/up", ".."),
            _link("pkg/d/up2", "up/.."),
            _link("pkg/esc", "d/up2/.."),
        ],
        "hardlink": [ok, _link("pkg/passwd", "/etc/passwd", tarfile.LNKTYPE)],
        "device": [ok, _device("pkg/null")],
    }[case]
    # placed by hand in the archive folder: no network involved
    (home / "archive").mkdir(parents=True)
    archive = _tar_with(home / "archive" / "evil.tgz", members)
    url = f"http://127.0.0.1:{_closed_port()}/evil.tgz"

    with pytest.raises(UnsafeFileError) as ei:
        untar_data(url, show_progress=False)
    msg = str(ei.value)
    assert str(archive) in msg and "Fix" in msg
    assert list(outside.iterdir()) == []
    assert not (home / "data" / "evil").exists()
    assert not (home / "data" / ".evil.learnkit-complete").exists()
    assert [p.name for p in (home / "data").iterdir()] == []  # no temp folder left behind
    assert not (tmp_path / "evil.txt").exists()

    dest = tmp_path / "direct"
    with pytest.raises(UnsafeFileError):
        extract_archive(archive, dest)
    assert list(dest.rglob("*")) == []  # checked before anything was written


def test_zip_escape_is_refused(home, tmp_path):
    (home / "archive").mkdir(parents=True)
    archive = home / "archive" / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ok.txt", "fine")
        zf.writestr("../evil.txt", "evil")
    with pytest.raises(UnsafeFileError, match=re.escape("'../evil.txt'")):
        untar_data(f"http://127.0.0.1:{_closed_port()}/evil.zip", show_progress=False)
    assert not (home / "evil.txt").exists() and not (home / "data" / "evil").exists()


def test_half_extracted_folder_is_re_extracted(server, home, digits_tree):
    _make_tgz(digits_tree, server.root / "digits.tgz")
    url = server.url("digits.tgz")
    data = home / "data"
    # an interrupted extraction from an earlier run: a partial folder and no completion marker
    (data / "digits" / "train").mkdir(parents=True)
    (data / "digits" / "labels.csv").write_text("truncated")
    path = untar_data(url, show_progress=False)
    assert _files(path) == _files(digits_tree)

    # marker lost after damage: re-extracted from the archive, without a new request
    (data / ".digits.learnkit-complete").unlink()
    next(path.rglob("*.png")).unlink()
    (path / "junk.tmp").write_text("x")
    assert _files(untar_data(url, show_progress=False)) == _files(digits_tree)
    assert len(server.requests) == 1
    assert (data / ".digits.learnkit-complete").is_file()


def test_unreachable_url_names_url_and_where_to_put_the_file(home, digits_tree, tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}/digits.tgz"
    with pytest.raises(DownloadError) as ei:
        untar_data(url, retries=0, timeout=5, show_progress=False)
    msg = str(ei.value)
    target = home / "archive" / "digits.tgz"
    assert url in msg and str(target) in msg and "Expected" in msg and "Fix" in msg
    # following the advice works offline
    _make_tgz(digits_tree, target)
    assert _files(untar_data(url, retries=0, show_progress=False)) == _files(digits_tree)


def test_http_404_is_not_retried_and_names_the_path(server, home):
    with pytest.raises(DownloadError, match="404") as ei:
        untar_data(server.url("missing.tgz"), retries=3, show_progress=False)
    assert str(home / "archive" / "missing.tgz") in str(ei.value)
    assert len(server.requests) == 1


def test_not_an_archive_is_a_clear_error(home, tmp_path):
    (home / "archive").mkdir(parents=True)
    (home / "archive" / "notes.tgz").write_bytes(b"this is not a tar file" * 10)
    with pytest.raises(DataError, match="force_download=True"):
        untar_data(f"http://127.0.0.1:{_closed_port()}/notes.tgz", show_progress=False)
    assert [p.name for p in (home / "data").iterdir()] == []


# --------------------------------------------------------------------------------------------------
# Issue 8: names taken from a URL never leave learnkit's folders


def _escaping_urls(server, tmp_path) -> dict[str, str]:
    outside = str(tmp_path / "outside").replace("/", "%2F")
    return {
        "dotdot": server.url("..%2F..%2Fx.tgz"),
        "dotdot_backslash": server.url("..%5C..%5Cx.tgz"),
        "absolute": server.url(f"{outside}%2Fx.tgz"),
        "drive": server.url("C%3A%5Cx.tgz"),
        "dataset_dot": server.url("..tgz"),
    }


@pytest.mark.parametrize("case", ["dotdot", "dotdot_backslash", "absolute", "drive", "dataset_dot"])
def test_download_names_cannot_escape_the_cache(case, server, home, digits_tree, tmp_path):
    _make_tgz(digits_tree, server.root / "x.tgz")
    _make_tgz(digits_tree, server.root / "..tgz")
    outside = tmp_path / "outside"
    (outside / "x").mkdir(parents=True)
    (outside / "x" / "keep.txt").write_text("precious")
    (outside / "x.tgz").write_text("precious archive")
    home.mkdir(parents=True)
    before = sorted(str(p) for p in tmp_path.rglob("*") if "lkhome" not in str(p))
    url = _escaping_urls(server, tmp_path)[case]
    calls = [
        lambda: untar_data(url, show_progress=False),
        lambda: untar_data(url, force_download=True, show_progress=False),
        lambda: URLs.path(url, "data"),
    ]
    if case != "dataset_dot":  # '..tgz' is a fine file name; only the dataset folder '.' is refused
        calls.append(lambda: download_url(url, home, show_progress=False))
    for call in calls:
        with pytest.raises(UnsafeFileError, match="Fix") as ei:
            call()
        assert url in str(ei.value)
    after = sorted(str(p) for p in tmp_path.rglob("*") if "lkhome" not in str(p))
    assert after == before  # nothing written, replaced or deleted outside $LEARNKIT_HOME
    assert (outside / "x" / "keep.txt").read_text() == "precious"
    assert (outside / "x.tgz").read_text() == "precious archive"
    assert server.requests == []  # refused before any network traffic


def test_a_symlink_in_the_cache_cannot_redirect_a_download(server, home, digits_tree, tmp_path):
    _make_tgz(digits_tree, server.root / "digits.tgz")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (home / "archive").mkdir(parents=True)
    (home / "archive" / "digits.tgz").symlink_to(outside / "digits.tgz")
    with pytest.raises(UnsafeFileError, match="outside its folder"):
        untar_data(server.url("digits.tgz"), show_progress=False)
    assert list(outside.iterdir()) == []


def test_percent_escaped_plain_names_still_work(server, home, digits_tree):
    _make_tgz(digits_tree, server.root / "my digits.tgz")
    path = untar_data(server.url("my%20digits.tgz"), show_progress=False)
    assert path == home / "data" / "my digits" and _files(path) == _files(digits_tree)


def test_folders_left_by_a_killed_extraction_are_cleaned(server, home, digits_tree):
    import os
    import subprocess
    import sys
    import time

    from learnkit.utils import owner_tag

    _make_tgz(digits_tree, server.root / "digits.tgz")
    data = home / "data"
    host = owner_tag().split("-")[1]
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    dead = data / f".digits.extracting-lk-{host}-{p.pid}-abc"
    live = data / f".digits.extracting-lk-{host}-{os.getppid()}-def"  # a concurrent extraction: kept
    old = data / ".digits.extracting-x1y2"  # an older version's name, untouched for two hours
    stale = data / f".digits.stale-lk-{host}-{p.pid}-ghi"
    for d in (dead, live, old, stale):
        (d / "digits" / "train").mkdir(parents=True)
        (d / "digits" / "train" / "half.png").write_bytes(b"partial")
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    path = untar_data(server.url("digits.tgz"), show_progress=False)
    assert _files(path) == _files(digits_tree)
    assert sorted(p.name for p in data.iterdir()) == sorted(
        [".digits.learnkit-complete", "digits", live.name]
    )
