"""Course datasets: their URLs, and a safe, resumable download-and-extract cache.

``untar_data(URLs.PETS)`` downloads the archive once into ``learnkit_home()/'archive'``, extracts it
once into ``learnkit_home()/'data'`` and returns the dataset folder; later calls return at once.

* Downloads stream to ``<file>.part`` and resume with an HTTP ``Range`` request after a dropped
  connection; the finished file is renamed into place atomically, so a file at the final path is
  always complete.
* Sizes and SHA-256 checksums are verified when known; a bad file is deleted, never used.
* Extraction refuses archive members that would land outside the destination (absolute paths,
  ``..``, links pointing outside, device files) before writing anything, extracts into a temporary
  folder and renames it into place; a completion marker beside the folder tells a finished
  extraction from an interrupted one.
* Offline? Every download error names the URL and the exact path where a file fetched by other
  means can be placed; learnkit then uses it without touching the network.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import posixpath
import re
import shutil
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
import zipfile
from pathlib import Path

from tqdm.auto import tqdm

from ..exceptions import DataError, UnsafeFileError
from ..utils import LPath, atomic_write_bytes, fsync_dir, glob_escape, owner_tag, remove_stale

__all__ = [
    "URLs",
    "KNOWN_CHECKS",
    "DownloadError",
    "learnkit_home",
    "download_url",
    "untar_data",
    "extract_archive",
    "MAX_EXTRACT_SIZE",
    "MAX_EXTRACT_RATIO",
]

_USER_AGENT = "learnkit/0.1 (+https://pypi.org/project/learnkit; python-urllib)"
_RETRY_WAIT = 1.0  # seconds before the first retry; doubles each retry (tests set it to 0)
_MAX_LINK_HOPS = 40
_ARCHIVE_SUFFIXES = (".tar.gz", ".tar.bz2", ".tar.xz", ".tgz", ".tbz2", ".tbz", ".txz", ".tar", ".zip")
_MARKER_SUFFIX = ".learnkit-complete"
_FILTER_ERROR = getattr(tarfile, "FilterError", ())  # Python versions with extraction filters
MAX_EXTRACT_SIZE = 32 << 30
"""Default cap on the total size an archive may declare (32 GiB); override with ``max_size=``."""
MAX_EXTRACT_RATIO = 100.0
"""Default cap on (total declared size) / (archive size); override with ``max_ratio=``."""
_RATIO_FLOOR = 16 << 20  # the ratio is only checked above this total: tiny archives have noisy ratios


class DownloadError(DataError, ConnectionError):
    """A download failed (network down, server error, dropped connection).

    It is both a :class:`~learnkit.exceptions.DataError` and a built-in :class:`ConnectionError`, and its
    message names the URL and the path where a file fetched by other means can be placed.
    """


# --------------------------------------------------------------------------------------------------
# Where things live


def learnkit_home() -> Path:
    """The folder learnkit keeps downloads in: ``$LEARNKIT_HOME`` if set, else ``~/.learnkit``.

    Archives go to ``learnkit_home()/'archive'`` and extracted datasets to ``learnkit_home()/'data'``.

    >>> learnkit_home() / "data"  # doctest: +SKIP
    PosixPath('/home/me/.learnkit/data')
    """
    return Path(os.environ.get("LEARNKIT_HOME") or "~/.learnkit").expanduser()


def _check_name(name: str, url, what: str = "file name") -> str:
    """Refuse a (decoded) name that is not one plain path component: no ``/``, ``\\``, ``..``, drive or NUL."""
    bad = (
        not name
        or name in (".", "..")
        or "/" in name
        or "\\" in name
        or "\0" in name
        or bool(re.match(r"[A-Za-z]:", name))
    )
    if bad:
        raise UnsafeFileError(
            f"Refused the {what} {name!r} taken from url={str(url)!r}: after decoding %-escapes it is not a plain "
            "file name (it holds '/', '\\', '..', a drive or is empty), so it could be written outside "
            "learnkit's folders. Expected a URL whose last path segment is a plain file name such as "
            "'mnist_tiny.tgz'. Fix: check the URL; if it is right, download the file yourself and pass "
            "dest= (download_url) with a plain file name."
        )
    return name


def _inside(folder: Path, path: Path, url) -> Path:
    """``path`` if it resolves to a location inside ``folder`` (symlinks followed), else UnsafeFileError."""
    root = os.path.realpath(folder)
    real = os.path.realpath(path)
    if os.path.commonpath([root, real]) != root or real == root:
        raise UnsafeFileError(
            f"Refused to use {str(path)!r} for url={str(url)!r}: it resolves to {real!r}, outside its folder "
            f"{root!r}. Expected every file learnkit writes to stay inside its folder. Fix: check the URL, and "
            "remove any symbolic link placed in that folder."
        )
    return path


def _url_filename(url: str) -> str:
    """The file name at the end of ``url``'s path (query and fragment ignored, %-escapes decoded).

    A decoded name that is not one plain component (``'..%2Fx.tgz'``, ``'%2Fetc%2Fpasswd'``) is refused.
    """
    raw = posixpath.basename(urllib.parse.urlsplit(str(url)).path)
    name = urllib.parse.unquote(raw)
    if not raw or raw in (".", ".."):
        raise DataError(
            f"Expected a URL that ends in a file name (like '.../mnist_tiny.tgz'). Received: url={url!r}. "
            "Fix: pass the address of the file itself, or pass dest= with the file name to save to."
        )
    return _check_name(name, url)


def _dataset_name(fname: str) -> str:
    """``'oxford-iiit-pet.tgz'`` -> ``'oxford-iiit-pet'`` (any known archive suffix removed)."""
    low = fname.lower()
    for suffix in _ARCHIVE_SUFFIXES:
        if low.endswith(suffix) and len(fname) > len(suffix):
            return fname[: -len(suffix)]
    return Path(fname).stem or fname


class URLs:
    """Where the course datasets live (the public S3 buckets the fastai course uses) and where they land.

    >>> URLs.MNIST_TINY
    'https://s3.amazonaws.com/fast-ai-sample/mnist_tiny.tgz'
    >>> path = untar_data(URLs.MNIST_TINY)  # doctest: +SKIP
    >>> URLs.path(URLs.MNIST_TINY, "data").name
    'mnist_tiny'
    """

    S3 = "https://s3.amazonaws.com/fast-ai-"
    SAMPLE = f"{S3}sample/"
    URL = SAMPLE  # the name fastai users know
    S3_IMAGE = f"{S3}imageclas/"
    S3_IMAGELOC = f"{S3}imagelocal/"
    S3_AUDI = f"{S3}audio/"
    S3_NLP = f"{S3}nlp/"
    S3_COCO = f"{S3}coco/"
    S3_MODEL = f"{S3}modelzoo/"
    GOOGLE = "https://storage.googleapis.com/"

    # Small samples used throughout the course
    ADULT_SAMPLE = f"{SAMPLE}adult_sample.tgz"
    BIWI_SAMPLE = f"{SAMPLE}biwi_sample.tgz"
    CIFAR = f"{SAMPLE}cifar10.tgz"
    CAMVID_TINY = f"{SAMPLE}camvid_tiny.tgz"
    DOGS = f"{SAMPLE}dogscats.tgz"
    HUMAN_NUMBERS = f"{SAMPLE}human_numbers.tgz"
    IMDB_SAMPLE = f"{SAMPLE}imdb_sample.tgz"
    ML_SAMPLE = f"{SAMPLE}movie_lens_sample.tgz"
    MNIST_SAMPLE = f"{SAMPLE}mnist_sample.tgz"
    MNIST_TINY = f"{SAMPLE}mnist_tiny.tgz"
    PLANET_SAMPLE = f"{SAMPLE}planet_sample.tgz"
    PLANET_TINY = f"{SAMPLE}planet_tiny.tgz"

    # Image classification
    CALTECH_101 = f"{S3_IMAGE}caltech_101.tgz"
    CARS = f"{S3_IMAGE}stanford-cars.tgz"
    CIFAR_100 = f"{S3_IMAGE}cifar100.tgz"
    CUB_200_2011 = f"{S3_IMAGE}CUB_200_2011.tgz"
    BIRDS = CUB_200_2011
    FLOWERS = f"{S3_IMAGE}oxford-102-flowers.tgz"
    FOOD = f"{S3_IMAGE}food-101.tgz"
    IMAGENETTE = f"{S3_IMAGE}imagenette2.tgz"
    IMAGENETTE_160 = f"{S3_IMAGE}imagenette2-160.tgz"
    IMAGENETTE_320 = f"{S3_IMAGE}imagenette2-320.tgz"
    IMAGEWOOF = f"{S3_IMAGE}imagewoof2.tgz"
    IMAGEWOOF_160 = f"{S3_IMAGE}imagewoof2-160.tgz"
    IMAGEWOOF_320 = f"{S3_IMAGE}imagewoof2-320.tgz"
    IMAGEWANG = f"{S3_IMAGE}imagewang.tgz"
    IMAGEWANG_160 = f"{S3_IMAGE}imagewang-160.tgz"
    IMAGEWANG_320 = f"{S3_IMAGE}imagewang-320.tgz"
    LSUN_BEDROOMS = f"{S3_IMAGE}bedroom.tgz"
    MNIST = f"{S3_IMAGE}mnist_png.tgz"
    MNIST_VAR_SIZE_TINY = f"{S3_IMAGE}mnist_var_size_tiny.tgz"
    PETS = f"{S3_IMAGE}oxford-iiit-pet.tgz"

    # Localization, segmentation, detection
    BIWI_HEAD_POSE = f"{S3_IMAGELOC}biwi_head_pose.tgz"
    CAMVID = f"{S3_IMAGELOC}camvid.tgz"
    PASCAL_2007 = f"{S3_IMAGELOC}pascal_2007.tgz"
    PASCAL_2012 = f"{S3_IMAGELOC}pascal_2012.tgz"
    COCO_SAMPLE = f"{S3_COCO}coco_sample.tgz"
    COCO_TINY = f"{S3_COCO}coco_tiny.tgz"
    SIIM_SMALL = f"{S3_IMAGELOC}siim_small.tgz"
    TCGA_SMALL = f"{S3_IMAGELOC}tcga_small.tgz"

    # Text
    IMDB = f"{S3_NLP}imdb.tgz"
    WIKITEXT = f"{S3_NLP}wikitext-103.tgz"
    WIKITEXT_TINY = f"{S3_NLP}wikitext-2.tgz"
    AG_NEWS = f"{S3_NLP}ag_news_csv.tgz"
    AMAZON_REVIEWS = f"{S3_NLP}amazon_review_full_csv.tgz"
    AMAZON_REVIEWS_POLARITY = f"{S3_NLP}amazon_review_polarity_csv.tgz"
    DBPEDIA = f"{S3_NLP}dbpedia_csv.tgz"
    MT_ENG_FRA = f"{S3_NLP}giga-fren.tgz"
    SOGOU_NEWS = f"{S3_NLP}sogou_news_csv.tgz"
    YAHOO_ANSWERS = f"{S3_NLP}yahoo_answers_csv.tgz"
    YELP_REVIEWS = f"{S3_NLP}yelp_review_full_csv.tgz"
    YELP_REVIEWS_POLARITY = f"{S3_NLP}yelp_review_polarity_csv.tgz"

    # Tabular and collaborative filtering
    ML_100k = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"

    # Audio
    MACAQUES = f"{GOOGLE}ml-animal-sounds-datasets/macaques.zip"
    ZEBRA_FINCH = f"{GOOGLE}ml-animal-sounds-datasets/zebra_finch.zip"

    # Pretrained language models (fastai's AWD-LSTM weights on WikiText-103)
    WT103_FWD = f"{S3_MODEL}wt103-fwd.tgz"
    WT103_BWD = f"{S3_MODEL}wt103-bwd.tgz"

    @staticmethod
    def path(url: str, kind: str = "archive") -> Path:
        """Where ``url`` is kept locally: its archive (``kind='archive'``) or extracted folder (``'data'``).

        >>> URLs.path(URLs.PETS).name
        'oxford-iiit-pet.tgz'
        """
        fname = _url_filename(url)
        if kind == "archive":
            return learnkit_home() / "archive" / fname
        if kind == "data":
            return learnkit_home() / "data" / _check_name(_dataset_name(fname), url, "dataset name")
        raise DataError(
            f"Expected kind='archive' or kind='data'. Received: kind={kind!r}. Fix: use one of those."
        )

    @classmethod
    def names(cls) -> list[str]:
        """The names of all dataset constants, e.g. ``['ADULT_SAMPLE', 'AG_NEWS', ...]``."""
        return sorted(
            k
            for k, v in vars(cls).items()
            if not k.startswith("_") and isinstance(v, str) and v.lower().endswith(_ARCHIVE_SUFFIXES)
        )


KNOWN_CHECKS: dict[str, dict] = {}
"""Known ``{"size": int, "sha256": str}`` per URL, used by :func:`untar_data` when none are passed.

Empty by default (learnkit only lists checksums it has verified); add your own to pin a dataset:
``KNOWN_CHECKS[URLs.MNIST_TINY] = {"sha256": "..."}``.
"""


# --------------------------------------------------------------------------------------------------
# Downloading


class _NetworkFailure(Exception):
    """Internal: a transient network problem (retried, then reported as DownloadError)."""


class _HTTPFailure(Exception):
    """Internal: the server answered with an HTTP error status."""

    def __init__(self, code: int, reason: str):
        super().__init__(f"HTTP {code} {reason}")
        self.code = code


def _check_sha256(sha256):
    if sha256 is None:
        return None
    s = str(sha256).strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", s):
        raise DataError(
            f"Expected a SHA-256 checksum of 64 hexadecimal characters. Received: sha256={sha256!r}. "
            "Fix: pass the output of `sha256sum <file>` (or hashlib.sha256(...).hexdigest()), or None."
        )
    return s


def _sha256_of(path: Path, chunk_size: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            h.update(chunk)
    return h.hexdigest()


def _mismatch(path: Path, size: int | None, sha256: str | None) -> tuple[str, object, object] | None:
    """``None`` if ``path`` has the expected size and checksum, else ``(what, expected, received)``."""
    got_size = path.stat().st_size
    if size is not None and got_size != size:
        return "size", size, got_size
    if sha256 is not None:
        got = _sha256_of(path)
        if got != sha256:
            return "sha256", sha256, got
    return None


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """``'bytes 100-199/200'`` -> ``(100, 200)``; ``'bytes */200'`` -> ``(None, 200)``; unknown parts are None."""
    m = re.fullmatch(r"\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)\s*", value or "")
    if not m:
        return None, None
    start = int(m.group(1)) if m.group(1) is not None else None
    total = int(m.group(2)) if m.group(2) != "*" else None
    return start, total


def _open(url: str, offset: int, timeout: float):
    headers = {"User-Agent": _USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError:
        raise
    except ValueError as e:  # "unknown url type" and friends
        raise DataError(
            f"Expected an http(s) URL. Received: url={url!r} ({e}). Fix: check the URL, e.g. use URLs.PETS."
        ) from e
    except (OSError, http.client.HTTPException) as e:  # URLError, refused, timeout, DNS failure, reset
        reason = getattr(e, "reason", None) or e
        raise _NetworkFailure(f"{type(e).__name__}: {reason}") from e


def _fetch(url: str, part: Path, size: int | None, timeout: float, chunk_size: int, show_progress: bool):
    """Bring ``part`` to the complete file, resuming from its current length when the server allows."""
    offset = part.stat().st_size if part.exists() else 0
    if size is not None and offset > size:
        part.unlink()
        offset = 0
    if size is not None and offset == size and offset > 0:
        return  # already complete; the caller verifies it
    try:
        resp = _open(url, offset, timeout)
    except urllib.error.HTTPError as e:
        with e:
            if e.code == 416 and offset:  # our partial file is at (or past) the end of the server's file
                _, total = _content_range(e.headers.get("Content-Range"))
                if total == offset:
                    return
                part.unlink()
                return _fetch(url, part, size, timeout, chunk_size, show_progress)
            raise _HTTPFailure(e.code, str(e.reason)) from e
    with resp:
        status = resp.status
        length = resp.headers.get("Content-Length")
        length = int(length) if length and length.strip().isdigit() else None
        if offset and status == 206:
            start, total = _content_range(resp.headers.get("Content-Range"))
            if start != offset:  # the server sent another range than asked: start over
                resp.close()
                part.unlink()
                return _fetch(url, part, size, timeout, chunk_size, show_progress)
            if total is None and length is not None:
                total = offset + length
            mode = "ab"
        else:  # 200: a full body, either because we asked for it or because the server ignored Range
            offset, total, mode = 0, length, "wb"
        got = offset
        with (
            open(part, mode) as f,
            tqdm(
                total=total,
                initial=offset,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=part.name[: -len(".part")],
                disable=not show_progress,
                leave=False,
            ) as bar,
        ):
            while True:
                try:
                    chunk = resp.read(chunk_size)
                except (OSError, http.client.HTTPException) as e:
                    raise _NetworkFailure(
                        f"connection lost after {got} bytes ({type(e).__name__}: {e})"
                    ) from e
                if not chunk:
                    break
                f.write(chunk)
                got += len(chunk)
                bar.update(len(chunk))
    if total is not None and got < total:
        raise _NetworkFailure(f"connection closed after {got} of {total} bytes")


def download_url(
    url: str,
    dest: str | os.PathLike,
    *,
    size: int | None = None,
    sha256: str | None = None,
    show_progress: bool = True,
    timeout: float = 30,
    chunk_size: int = 1 << 20,
    retries: int = 2,
    overwrite: bool = False,
) -> Path:
    """Download ``url`` to the file ``dest`` (a folder gets the URL's file name) and return its path.

    The bytes stream into ``dest + '.part'``; a partial file left by a dropped connection is resumed
    with an HTTP ``Range`` request (started over if the server ignores ranges). ``size`` (bytes) and
    ``sha256`` are verified when given: a bad file is deleted and a :class:`DataError` says what was
    expected and what arrived. The complete file is renamed into place atomically, so a file found at
    ``dest`` is complete and is returned as is (after verification) unless ``overwrite=True``.

    Network failures are retried ``retries`` times (resuming), then raise :class:`DownloadError` naming
    the URL and ``dest``, where a file fetched by other means can be placed.

    >>> download_url(URLs.MNIST_TINY, "/tmp/mnist_tiny.tgz")  # doctest: +SKIP
    PosixPath('/tmp/mnist_tiny.tgz')
    """
    dest = Path(dest).expanduser()
    if dest.is_dir():
        dest = _inside(dest, dest / _url_filename(url), url)
    sha256 = _check_sha256(sha256)
    if size is not None and (not isinstance(size, int) or size < 0):
        raise DataError(f"Expected size to be a number of bytes (int >= 0) or None. Received: size={size!r}.")
    if int(retries) < 0:
        raise DataError(f"Expected retries >= 0. Received: retries={retries!r}.")
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    if dest.exists():
        if not overwrite:
            bad = _mismatch(dest, size, sha256)
            if bad is None:
                return LPath(dest)
            what, expected, got = bad
            warnings.warn(
                f"{str(dest)!r} does not match the expected {what} ({expected} != {got}); downloading it again.",
                stacklevel=2,
            )
        dest.unlink()
        if part.exists():
            part.unlink()

    attempt = 0
    while True:
        try:
            _fetch(str(url), part, size, timeout, int(chunk_size), show_progress)
            break
        except (_NetworkFailure, _HTTPFailure) as e:
            retriable = isinstance(e, _NetworkFailure) or e.code >= 500 or e.code in (408, 429)
            if not retriable or attempt >= retries:
                raise DownloadError(_download_failure_message(url, dest, part, e)) from e
            time.sleep(_RETRY_WAIT * 2**attempt)
            attempt += 1

    bad = _mismatch(part, size, sha256)
    if bad is not None:
        what, expected, got = bad
        part.unlink()
        raise DataError(
            f"The file downloaded from {url} has the wrong {what}. Expected {what}={expected}. "
            f"Received: {what}={got}. The bad file was deleted. Fix: run again to download it afresh; if the "
            f"mismatch persists, the file on the server has changed: pass the new {what} (or {what}=None to "
            f"skip the check), or place a copy you trust at {str(dest)!r}."
        )
    os.replace(part, dest)
    fsync_dir(dest.parent)
    return LPath(dest)


def _download_failure_message(url, dest: Path, part: Path, err: Exception) -> str:
    kept = part.stat().st_size if part.exists() else 0
    resume = (
        f"The {kept} bytes received so far are kept in {str(part)!r}; running again resumes from there. "
        if kept
        else ""
    )
    if isinstance(err, _HTTPFailure) and err.code < 500:
        expected = "a URL that serves the file"
        fix = "check the URL (the URLs class lists the known datasets), or"
    else:
        expected = "a reachable server"
        fix = "check your network connection (and proxy settings: http_proxy/https_proxy) and run again, or"
    return (
        f"Could not download {url} ({err}). Expected {expected}. Received: url={url!r}. {resume}"
        f"Fix: {fix} fetch the file another way (a browser, or `curl -L -C - -o '{dest}' '{url}'`) "
        f"and place it at {str(dest)!r}; learnkit then uses it without downloading."
    )


# --------------------------------------------------------------------------------------------------
# Safe extraction


def _split(name: str) -> list[str]:
    return [p for p in re.split(r"[/\\]", name) if p not in ("", ".")]


def _is_absolute(name: str) -> bool:
    return name.startswith(("/", "\\")) or bool(re.match(r"[A-Za-z]:", name))


def _resolve(parts: list[str], links: dict[str, str], base: list[str] | None = None) -> list[str] | None:
    """Resolve ``parts`` from ``base`` (both relative to the extraction root) following the archive's own
    symlinks (``links``: member path -> target), like ``realpath`` would after extraction.

    Returns the resolved components, or ``None`` when the path escapes the root, goes through an
    absolute link, or loops.
    """
    stack = list(base or [])
    todo = list(parts)
    hops = 0
    while todo:
        comp = todo.pop(0)
        if comp in ("", "."):
            continue
        if comp == "..":
            if not stack:
                return None
            stack.pop()
            continue
        stack.append(comp)
        target = links.get("/".join(stack))
        if target is not None:
            hops += 1
            if hops > _MAX_LINK_HOPS or _is_absolute(target):
                return None
            stack.pop()
            todo = _split(target) + todo
    return stack


def _unsafe(archive: Path, member: str, why: str) -> UnsafeFileError:
    return UnsafeFileError(
        f"Refused to extract {str(archive)!r}: member {member!r} {why}. Expected every member to stay inside "
        "the extraction folder (no absolute paths, no '..', no links pointing outside, no device files). "
        f"Received: member={member!r}. Nothing was extracted. Fix: this archive is corrupted or malicious; "
        "delete it and download it again from a source you trust."
    )


def _check_tar(tf: tarfile.TarFile, archive: Path) -> None:
    members = tf.getmembers()
    links = {}
    for m in members:
        if m.issym() and not _is_absolute(m.name):
            key = _resolve(_split(m.name), {})
            if key:
                links["/".join(key)] = m.linkname
    for m in members:
        name = m.name
        if m.ischr() or m.isblk():
            raise _unsafe(archive, name, "is a device file")
        if m.isfifo():
            raise _unsafe(archive, name, "is a named pipe (FIFO)")
        if not (m.isfile() or m.isdir() or m.issym() or m.islnk()):
            raise _unsafe(archive, name, "has an unsupported type")
        if _is_absolute(name):
            raise _unsafe(archive, name, "has an absolute path")
        parts = _split(name)
        if m.issym():
            parent = _resolve(parts[:-1], links)
            if parent is None or _resolve(parts[-1:], {}, parent) is None:
                raise _unsafe(archive, name, "would be written outside the destination")
            if _is_absolute(m.linkname):
                raise _unsafe(archive, name, f"is a link to the absolute path {m.linkname!r}")
            if _resolve(_split(m.linkname), links, parent) is None:
                raise _unsafe(archive, name, f"is a link to {m.linkname!r}, outside the destination")
        else:
            if _resolve(parts, links) is None:
                raise _unsafe(archive, name, "would be written outside the destination")
            if m.islnk():
                if _is_absolute(m.linkname) or _resolve(_split(m.linkname), links) is None:
                    raise _unsafe(archive, name, f"is a hard link to {m.linkname!r}, outside the destination")


def _check_zip(zf: zipfile.ZipFile, archive: Path) -> None:
    for info in zf.infolist():
        name = info.filename
        if _is_absolute(name):
            raise _unsafe(archive, name, "has an absolute path")
        if _resolve(_split(name), {}) is None:
            raise _unsafe(archive, name, "would be written outside the destination")


def _human(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _check_budget(archive: Path, dest: Path, total: int, max_size, max_ratio) -> None:
    """Refuse an archive bomb (declared size over ``max_size`` or ratio over ``max_ratio``) or a lack of space."""
    packed = max(archive.stat().st_size, 1)
    ratio = total / packed
    fix_args = "max_size=None, max_ratio=None"
    if max_size is not None and total > max_size:
        raise UnsafeFileError(
            f"Refused to extract {str(archive)!r}: its members declare {total} bytes ({_human(total)}) in all, "
            f"over the limit max_size={max_size} ({_human(max_size)}). Expected an archive no larger than that "
            f"when extracted. Nothing was extracted. Fix: if you trust the archive and have the space, pass a "
            f"larger max_size= (or {fix_args}) to untar_data / extract_archive."
        )
    if max_ratio is not None and total > _RATIO_FLOOR and ratio > max_ratio:
        raise UnsafeFileError(
            f"Refused to extract {str(archive)!r}: {packed} bytes ({_human(packed)}) would extract to {total} "
            f"bytes ({_human(total)}), a compression ratio of {ratio:.0f}, over the limit max_ratio={max_ratio:g}: "
            "it looks like an archive bomb. Nothing was extracted. Fix: if you trust the archive, pass a larger "
            f"max_ratio= (or {fix_args}) to untar_data / extract_archive."
        )
    free = shutil.disk_usage(dest).free
    if total > free:
        raise DataError(
            f"Not enough free disk space to extract {str(archive)!r}: it needs {total} bytes ({_human(total)}), "
            f"and {str(dest)!r} has {free} bytes ({_human(free)}) free. Expected enough free space. Nothing was "
            "extracted. Fix: free some space, or pass data= (untar_data) / another dest on a larger disk."
        )


def extract_archive(
    archive: str | os.PathLike,
    dest: str | os.PathLike,
    *,
    max_size: int | None = MAX_EXTRACT_SIZE,
    max_ratio: float | None = MAX_EXTRACT_RATIO,
) -> Path:
    """Safely extract a ``.tgz``/``.tar.gz``/``.tar``/``.tar.bz2``/``.tar.xz``/``.zip`` file into ``dest``.

    Every member is checked before anything is written; an archive with absolute paths, ``..``
    escapes, links pointing outside ``dest`` or device files raises
    :class:`~learnkit.exceptions.UnsafeFileError`. So does an archive bomb: members declaring more than
    ``max_size`` bytes in all (default 32 GiB), or more than ``max_ratio`` times the archive's own size
    (default 100, checked above 16 MiB); pass ``None`` to lift a limit for an archive you trust. An
    archive larger than the free disk space raises :class:`~learnkit.exceptions.DataError`. Returns ``dest``.

    >>> extract_archive("mnist_tiny.tgz", "/tmp/mnist")  # doctest: +SKIP
    """
    archive, dest = Path(archive), Path(dest)
    if not archive.is_file():
        raise DataError(f"Expected an archive file. Received: archive={str(archive)!r} (no such file).")
    dest.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            _check_zip(zf, archive)
            _check_budget(archive, dest, sum(i.file_size for i in zf.infolist()), max_size, max_ratio)
            zf.extractall(dest)
        return dest
    try:
        tf = tarfile.open(archive)  # detects gzip/bz2/xz compression itself
    except (tarfile.TarError, EOFError, OSError) as e:
        raise DataError(
            f"Expected a tar (.tgz, .tar.gz, .tar, .tar.bz2, .tar.xz) or .zip archive. Received: "
            f"archive={str(archive)!r}, which cannot be read as one ({e}). Fix: delete it and download it "
            "again (pass force_download=True to untar_data)."
        ) from e
    with tf:
        try:
            _check_tar(tf, archive)
            total = sum(m.size for m in tf.getmembers() if m.isfile())
            _check_budget(archive, dest, total, max_size, max_ratio)
            if hasattr(tarfile, "data_filter"):  # a second, realpath-based check by the standard library
                tf.extractall(dest, filter="data")
            else:
                tf.extractall(dest)
        except _FILTER_ERROR as e:
            raise _unsafe(archive, getattr(getattr(e, "tarinfo", None), "name", "?"), str(e)) from e
        except (tarfile.TarError, EOFError, zipfile.BadZipFile) as e:
            raise DataError(
                f"Expected a complete archive. Received: archive={str(archive)!r}, which is truncated or "
                f"corrupted ({e}). Fix: delete it and download it again (force_download=True)."
            ) from e
    return dest


# --------------------------------------------------------------------------------------------------
# untar_data


def _marker_of(dest: Path) -> Path:
    return dest.parent / f".{dest.name}{_MARKER_SUFFIX}"


def _rmtree(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def untar_data(
    url: str,
    data: str | os.PathLike | None = None,
    archive: str | os.PathLike | None = None,
    force_download: bool = False,
    sha256: str | None = None,
    *,
    size: int | None = None,
    show_progress: bool = True,
    timeout: float = 30,
    retries: int = 2,
    max_size: int | None = MAX_EXTRACT_SIZE,
    max_ratio: float | None = MAX_EXTRACT_RATIO,
) -> Path:
    """Download the archive at ``url`` (once) and extract it (once); return the dataset folder.

    The folder is an :class:`~learnkit.utils.LPath` (a ``Path`` with ``.ls()``).
    The archive is kept in ``archive`` (default ``learnkit_home()/'archive'``) and extracted into
    ``data/<name>`` (default ``learnkit_home()/'data'``), ``<name>`` being the archive's file name
    without its extension. When the archive holds a single top-level folder, that folder *is*
    ``data/<name>``. Extraction goes to a temporary folder that is renamed into place, then a marker
    file ``data/.<name>.learnkit-complete`` is written: a folder without it (an interrupted
    extraction) is extracted again. ``force_download=True`` discards both archive and folder.

    ``sha256`` / ``size`` (or an entry of :data:`KNOWN_CHECKS`) are verified on download. Offline, the
    :class:`DownloadError` names the archive path where a file fetched by other means can be placed.
    ``max_size`` / ``max_ratio`` guard against archive bombs (see :func:`extract_archive`).

    >>> path = untar_data(URLs.MNIST_TINY)  # doctest: +SKIP
    >>> sorted(p.name for p in path.iterdir())  # doctest: +SKIP
    ['labels.csv', 'models', 'test', 'train', 'valid']
    """
    fname = _url_filename(url)
    home = learnkit_home()
    archive_dir = Path(archive).expanduser() if archive is not None else home / "archive"
    data_dir = Path(data).expanduser() if data is not None else home / "data"
    archive_path = _inside(archive_dir, archive_dir / fname, url)
    dest = _inside(data_dir, data_dir / _check_name(_dataset_name(fname), url, "dataset name"), url)
    marker = _inside(data_dir, _marker_of(dest), url)
    known = KNOWN_CHECKS.get(url, {})
    sha256 = sha256 if sha256 is not None else known.get("sha256")
    size = size if size is not None else known.get("size")

    if force_download:
        for p in (marker, archive_path, archive_path.with_name(archive_path.name + ".part")):
            if p.exists():
                p.unlink()
        _rmtree(dest)
    if marker.exists() and dest.is_dir():
        return LPath(dest)

    download_url(
        url,
        archive_path,
        size=size,
        sha256=sha256,
        show_progress=show_progress,
        timeout=timeout,
        retries=retries,
    )
    data_dir.mkdir(parents=True, exist_ok=True)
    for kind in ("extracting", "stale"):  # left by a run killed while extracting (its process is gone)
        remove_stale(data_dir, f".{glob_escape(dest.name)}.{kind}-*")
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.extracting-{owner_tag()}-", dir=data_dir))
    try:
        extract_archive(archive_path, tmp, max_size=max_size, max_ratio=max_ratio)
        entries = list(tmp.iterdir())
        single = len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink()
        new = entries[0] if single else tmp
        if marker.exists():
            marker.unlink()
        if dest.exists() or dest.is_symlink():  # an interrupted or stale extraction: replace it
            stale = Path(tempfile.mkdtemp(prefix=f".{dest.name}.stale-{owner_tag()}-", dir=data_dir))
            os.replace(dest, stale / "old")
            _rmtree(stale)
        os.replace(new, dest)
        fsync_dir(data_dir)
        info = {"url": url, "archive": str(archive_path), "size": archive_path.stat().st_size}
        if sha256:
            info["sha256"] = sha256
        atomic_write_bytes(json.dumps(info, indent=1).encode(), marker)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return LPath(dest)
