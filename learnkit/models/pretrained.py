"""Pretrained weights, loaded safely: one function every application uses for downloaded weights.

:func:`load_pretrained_state` finds a weights file in the cache torchvision uses
(``$TORCH_HOME/hub/checkpoints``, see ``torch.hub.get_dir()``), verifies the SHA-256 prefix that the file
name carries (torchvision's ``name-<sha256 prefix>.pth`` convention), and loads it with
``torch.load(weights_only=True)``: tensors and plain data only, so a crafted file placed in the cache
cannot run code. When the file is missing it is downloaded with learnkit's own download code
(:func:`learnkit.data.external.download_url`: resumable, atomic, checksummed); offline, the error names
the file and the folder to put it in.

Vision uses it for torchvision weights (``weights.url``); text (AWD-LSTM WikiText weights) and
transformers-style checkpoints call the same function with their own URL or a local file.

>>> from torchvision.models import resnet18, ResNet18_Weights
>>> model = resnet18(weights=None)
>>> load_pretrained_weights(model, ResNet18_Weights.IMAGENET1K_V1.url)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from ..data.external import DownloadError, _inside, _url_filename, download_url
from ..exceptions import CheckpointError, ModelError, UnsafeFileError

__all__ = [
    "pretrained_cache_dir",
    "pretrained_file",
    "hash_prefix",
    "load_pretrained_state",
    "load_pretrained_weights",
]

_HASH_PREFIX = re.compile(r"-([0-9a-f]{6,64})\.")


def pretrained_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """The folder pretrained weights are kept in: ``cache_dir`` if given, else torchvision's cache
    ``torch.hub.get_dir()/'checkpoints'`` (``$TORCH_HOME/hub/checkpoints``).

    >>> pretrained_cache_dir().name
    'checkpoints'
    """
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    return Path(torch.hub.get_dir()) / "checkpoints"


def _is_url(s: str) -> bool:
    return bool(re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", s))


def pretrained_file(url_or_filename: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where the weights for ``url_or_filename`` are (or will be) kept; nothing is downloaded.

    A URL maps to ``pretrained_cache_dir(cache_dir)/<file name of the URL>`` (a name that decodes to a path
    is refused); a local path is returned as is.

    >>> pretrained_file("https://download.pytorch.org/models/resnet18-f37072fd.pth").name
    'resnet18-f37072fd.pth'
    """
    s = os.fspath(url_or_filename)
    if not _is_url(s):
        return Path(s).expanduser()
    folder = pretrained_cache_dir(cache_dir)
    return _inside(folder, folder / _url_filename(s), s)


def hash_prefix(filename: str | os.PathLike) -> str | None:
    """The SHA-256 prefix a weights file name carries (``'resnet18-f37072fd.pth'`` -> ``'f37072fd'``), or None.

    >>> hash_prefix("resnet18-f37072fd.pth")
    'f37072fd'
    >>> hash_prefix("lstm_fwd.pth") is None
    True
    """
    found = _HASH_PREFIX.findall(os.path.basename(os.fspath(filename)))
    return found[-1] if found else None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _download(url: str, file: Path, sha256: str | None, show_progress: bool) -> None:
    try:
        download_url(url, file, sha256=sha256, show_progress=show_progress)
    except DownloadError as e:
        raise ModelError(
            f"Expected the pretrained weights file {file.name!r} in {str(file.parent)!r} ($TORCH_HOME/hub/"
            f"checkpoints, see torch.hub.get_dir()) or a working download. Received: the file is not there and "
            f"downloading {url} failed ({str(e).split('. ')[0]}). Fix: connect to the internet, or download "
            f"{url} on another machine and copy it to {str(file)!r}, or pass pretrained=False to train from "
            "scratch."
        ) from e


def load_pretrained_state(
    url_or_filename: str | os.PathLike,
    cache_dir: str | os.PathLike | None = None,
    check_hash: bool = True,
    *,
    sha256: str | None = None,
    download: bool = True,
    key: str | None = None,
    map_location="cpu",
    show_progress: bool = True,
) -> dict:
    """Load a pretrained state dict safely and return it (a dict of tensors).

    Args:
        url_or_filename: the weights' URL (kept in the cache under its file name) or a local file.
        cache_dir: the cache folder; default ``torch.hub.get_dir()/'checkpoints'`` (torchvision's).
        check_hash: verify the SHA-256 prefix in the file name (``name-<prefix>.pth``), as torchvision does,
            every time the file is loaded (a corrupted or swapped file is refused).
        sha256: the full SHA-256 of the file, when known (verified on download and load).
        download: fetch a missing file (resumable, atomic); ``False`` only looks in the cache.
        key: the entry holding the state dict when the file wraps it (e.g. ``'model'`` or ``'state_dict'``).
        map_location: where tensors are loaded (default CPU).

    Raises :class:`~learnkit.exceptions.UnsafeFileError` for a file holding pickled objects (nothing of it
    runs), :class:`~learnkit.exceptions.CheckpointError` for a wrong hash or an unreadable file (both
    naming the file), and :class:`~learnkit.exceptions.ModelError` when the file is missing offline.

    >>> sd = load_pretrained_state(ResNet18_Weights.IMAGENET1K_V1.url)  # doctest: +SKIP
    """
    s = os.fspath(url_or_filename)
    file = pretrained_file(s, cache_dir)
    if not file.is_file():
        if not _is_url(s):
            raise ModelError(
                f"Expected a pretrained weights file. Received: {str(file)!r}, which does not exist. "
                "Fix: check the path, or pass the weights' URL to download them."
            )
        if not download:
            raise ModelError(
                f"Expected the pretrained weights file {file.name!r} in {str(file.parent)!r}. Received: no such "
                f"file, and download=False. Fix: download {s} and copy it to {str(file)!r}, or pass download=True."
            )
        _download(s, file, sha256, show_progress)
    if check_hash or sha256:
        prefix = hash_prefix(file.name) if check_hash else None
        if sha256 or prefix:
            got = _sha256(file)
            want = (sha256 or prefix).lower()
            if not got.startswith(want):
                raise CheckpointError(
                    f"The pretrained weights file {str(file)!r} has the wrong SHA-256: expected it to start with "
                    f"{want!r} (from {'sha256=' if sha256 else 'its file name'}). Received: {got[: max(len(want), 8)]!r}. "
                    "The file is corrupted or not the file its name says. Fix: delete it so it downloads again, or "
                    f"copy the right file to {str(file.parent)!r}."
                )
    try:
        obj = torch.load(file, map_location=map_location, weights_only=True)
    except Exception as e:  # UnpicklingError for refused globals, RuntimeError/EOFError for a damaged file
        msg = str(e)
        if "weights_only" in msg or "Unsupported global" in msg or "GLOBAL" in msg:
            raise UnsafeFileError(
                f"Refused to load the pretrained weights file {str(file)!r}: it contains pickled Python objects, "
                "which could run code when loaded. Nothing in it was run. Expected a file of tensors (a state "
                f"dict). Fix: delete it and download the weights again from their official source into "
                f"{str(file.parent)!r}, or convert them yourself with torch.save(model.state_dict(), path)."
            ) from e
        raise CheckpointError(
            f"Could not read the pretrained weights file {str(file)!r} ({type(e).__name__}: {msg[:200]}). "
            f"Expected a complete file saved with torch.save. Fix: delete it so it downloads again, or copy a "
            f"good copy to {str(file.parent)!r}."
        ) from e
    if key is not None:
        if not isinstance(obj, Mapping) or key not in obj:
            keys = list(obj)[:8] if isinstance(obj, Mapping) else type(obj).__name__
            raise CheckpointError(
                f"Expected the entry {key!r} in {str(file)!r}. Received: {keys}. Fix: pass key=None or one of those."
            )
        obj = obj[key]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(
            f"Expected a state dict (names -> tensors) in {str(file)!r}. Received: {type(obj).__name__}"
            f"{f' with keys {list(obj)[:8]}' if isinstance(obj, Mapping) else ''}. Fix: pass key= with the entry "
            "that holds the state dict."
        )
    return dict(obj)


def load_pretrained_weights(
    model: nn.Module, url_or_filename: str | os.PathLike, strict: bool = True, **kwargs
) -> nn.Module:
    """:func:`load_pretrained_state` then ``model.load_state_dict``; mismatched keys are listed. Returns ``model``.

    >>> load_pretrained_weights(resnet18(weights=None), ResNet18_Weights.DEFAULT.url)  # doctest: +SKIP
    """
    sd = load_pretrained_state(url_or_filename, **kwargs)
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    shape = [k for k in own if k in sd and tuple(sd[k].shape) != tuple(own[k].shape)]
    if shape or (strict and (missing or unexpected)):
        raise CheckpointError(
            f"The pretrained weights {os.fspath(url_or_filename)!r} do not fit {type(model).__name__} (missing: "
            f"{missing[:5]}, unexpected: {unexpected[:5]}, different shapes: {shape[:5]}). Expected weights for "
            "the same architecture. Fix: build the model that matches the weights, or pass strict=False."
        )
    model.load_state_dict(sd, strict=strict)
    return model
