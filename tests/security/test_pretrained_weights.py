"""Issue 8: pretrained weights in the cache never run code; their hash is checked; offline errors say where."""

from __future__ import annotations

import functools
import hashlib
import http.server
import socket
import threading
from pathlib import Path

import pytest
import torch
import torchvision.models as tvm
from torchvision.models._api import Weights, WeightsEnum

from learnkit.data import external
from learnkit.exceptions import CheckpointError, ModelError, UnsafeFileError
from learnkit.models.pretrained import (
    hash_prefix,
    load_pretrained_state,
    load_pretrained_weights,
    pretrained_cache_dir,
    pretrained_file,
)
from learnkit.vision import create_body, create_vision_model


class _RunsCode:
    """Unpickling this creates the file ``marker``: proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setattr(external, "_RETRY_WAIT", 0.0)
    folder = tmp_path / "torch" / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    return folder


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _weights_for(url: str):
    """A torchvision weights enum (as torchvision declares its own) whose file lives at ``url``."""
    cats = tvm.SqueezeNet1_1_Weights.IMAGENET1K_V1.meta["categories"]

    class TinyWeights(WeightsEnum):
        V1 = Weights(url=url, transforms=None, meta={"categories": cats})
        DEFAULT = V1

    return TinyWeights.V1


def test_the_cache_is_torchvisions(torch_home):
    assert pretrained_cache_dir() == torch_home
    url = tvm.ResNet18_Weights.IMAGENET1K_V1.url
    assert pretrained_file(url) == torch_home / "resnet18-f37072fd.pth"
    assert hash_prefix("resnet18-f37072fd.pth") == "f37072fd"
    assert hash_prefix("lstm_fwd.pth") is None


def test_crafted_pickle_at_the_cache_path_runs_nothing(torch_home, tmp_path):
    marker = tmp_path / "code_ran"
    # 1. at the very path our offline message names for resnet18: refused (its hash is wrong), nothing runs
    evil = torch_home / "resnet18-f37072fd.pth"
    torch.save({"conv1.weight": torch.zeros(1), "x": _RunsCode(marker)}, evil)
    with pytest.raises(CheckpointError, match="wrong SHA-256") as ei:
        create_vision_model("resnet18", n_out=2, pretrained=True)
    assert str(evil) in str(ei.value) and "Fix" in str(ei.value)
    assert not marker.exists()
    # 2. even with a matching hash in its name the pickle is refused, not unpickled
    named = torch_home / f"evil-{_sha(evil)[:8]}.pth"
    evil.rename(named)
    with pytest.raises(UnsafeFileError, match="pickled Python objects") as ei:
        load_pretrained_state(named)
    assert str(named) in str(ei.value) and "Nothing in it was run" in str(ei.value)
    w = _weights_for(f"https://example.invalid/models/{named.name}")
    with pytest.raises(UnsafeFileError):
        create_body("squeezenet1_1", weights=w)
    assert not marker.exists()


def test_real_state_dict_with_right_hash_loads_into_the_model(torch_home):
    torch.manual_seed(0)
    src = tvm.squeezenet1_1(weights=None)
    tmp = torch_home / "tmp.pth"
    torch.save(src.state_dict(), tmp)
    file = torch_home / f"squeezenet1_1-{_sha(tmp)[:10]}.pth"
    tmp.rename(file)
    w = _weights_for(f"https://example.invalid/models/{file.name}")

    body = create_body("squeezenet1_1", weights=w)  # no network: found in the cache
    for (k, v), ref in zip(body.state_dict().items(), src.features.state_dict().values(), strict=True):
        assert torch.equal(v, ref), k
    model = create_vision_model("squeezenet1_1", n_out=3, weights=w)
    assert torch.equal(model[0][0].weight, src.features[0].weight)
    x = torch.randn(2, 3, 64, 64)
    src.eval(), body.eval()
    assert torch.allclose(body(x), src.features(x))

    # a plain torch model loads the same way (the function text/transformers use too)
    fresh = load_pretrained_weights(tvm.squeezenet1_1(weights=None), file)
    assert torch.equal(fresh.classifier[1].weight, src.classifier[1].weight)


def test_wrong_hash_is_refused(torch_home):
    file = torch_home / "squeezenet1_1-deadbeef.pth"
    torch.save(tvm.squeezenet1_1(weights=None).state_dict(), file)
    with pytest.raises(CheckpointError, match="deadbeef") as ei:
        create_body("squeezenet1_1", weights=_weights_for(f"https://example.invalid/{file.name}"))
    assert str(file) in str(ei.value) and "delete it" in str(ei.value)
    with pytest.raises(CheckpointError, match="wrong SHA-256"):
        load_pretrained_state(file, sha256="0" * 64, check_hash=False)
    assert len(load_pretrained_state(file, check_hash=False)) > 0  # explicit opt-out


def test_offline_error_names_the_file_and_the_folder(torch_home):
    url = f"http://127.0.0.1:{_closed_port()}/models/squeezenet1_1-0123abcd.pth"
    with pytest.raises(ModelError) as ei:
        create_body("squeezenet1_1", weights=_weights_for(url))
    msg = str(ei.value)
    assert "squeezenet1_1-0123abcd.pth" in msg and str(torch_home) in msg and url in msg
    assert "pretrained=False" in msg
    with pytest.raises(ModelError, match="download=False"):
        load_pretrained_state(url, download=False)
    assert list(torch_home.iterdir()) == []


def test_download_goes_through_the_safe_downloader(torch_home, tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    src = tvm.squeezenet1_1(weights=None)
    tmp = served / "tmp.pth"
    torch.save(src.state_dict(), tmp)
    name = f"squeezenet1_1-{_sha(tmp)[:8]}.pth"
    tmp.rename(served / name)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/{name}"
        sd = load_pretrained_state(url, show_progress=False)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert torch.equal(sd["features.0.weight"], src.features[0].weight)
    assert sorted(p.name for p in torch_home.iterdir()) == [name]  # no .part or temp file left
