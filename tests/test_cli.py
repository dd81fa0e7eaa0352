"""The ``learnkit`` command: the vision demo, training on an image folder, and predicting with an export."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from learnkit.cli import main, write_digits_folder


@pytest.fixture
def no_cached_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))


def test_demo_trains_exports_reloads_and_predicts(tmp_path, capsys, no_cached_weights):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--json", "--cpu"]) == 0
    text = capsys.readouterr().out
    assert "trained from scratch" in text and "no cached resnet18 weights" in text
    assert "Final validation accuracy" in text
    summary = json.loads(text.strip().splitlines()[-1])
    assert summary["accuracy"] >= 0.9 and summary["pretrained"] is False
    assert summary["prediction"] == summary["true"] or summary["accuracy"] < 1
    for name in ("show_results.png", "confusion_matrix.png", "loss.png", "digits_export.lk"):
        assert (out / name).stat().st_size > 1000, name
    st = torch.load(out / "digits_export.lk", weights_only=True)
    assert st["model"]["factory"] == "vision_model"
    # the images are a real ImageNet-style folder
    assert (
        len(list((out / "digits" / "train").glob("*/*.png")))
        + len(list((out / "digits" / "valid").glob("*/*.png")))
        == 1797
    )


def test_train_images_then_predict(tmp_path, capsys, no_cached_weights):
    data = write_digits_folder(tmp_path / "data", size=16, n=300)
    export = tmp_path / "model.lk"
    code = main(
        [
            "train",
            "images",
            str(data),
            "--arch",
            "simple_cnn",
            "--epochs",
            "2",
            "--size",
            "16",
            "--bs",
            "32",
            "--lr",
            "1e-2",
            "--no-augment",
            "--workers",
            "0",
            "--out",
            str(export),
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "training from scratch" in text and "Exported to" in text
    files = sorted((data / "valid").glob("*/*.png"))[:3]
    assert main(["predict", str(export), *map(str, files), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [r["file"] for r in rows] == list(map(str, files))
    assert all(r["label"] in [str(i) for i in range(10)] and 0 <= r["probability"] <= 1 for r in rows)


def test_errors_are_reported_without_a_traceback(tmp_path, capsys):
    assert main(["predict", str(tmp_path / "missing.lk"), "x.png"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("learnkit: error:") and "missing.lk" in err
    (tmp_path / "empty").mkdir()
    assert main(["train", "images", str(tmp_path / "empty"), "--no-pretrained"]) == 2
    assert "Expected" in capsys.readouterr().err


def test_console_entry_point_help():
    res = subprocess.run(
        [sys.executable, "-m", "learnkit.cli", "--help"], capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0
    for cmd in ("demo", "train", "predict"):
        assert cmd in res.stdout


def test_an_application_adds_its_train_command_through_the_cli_protocol(monkeypatch, capsys):
    """A new application plugs `learnkit train <what>` in with a learnkit.<app>.cli module: no core list changes."""
    import types

    from learnkit import registry

    mod = types.ModuleType("learnkit.fakeapp.cli")
    seen = {}

    def add_parser(subparsers):
        p = subparsers.add_parser("fake", help="a fake application")
        p.add_argument("path")

    def main_(args):
        seen["path"] = args.path
        return 0

    mod.add_parser, mod.main = add_parser, main_
    monkeypatch.setitem(sys.modules, "learnkit.fakeapp.cli", mod)
    monkeypatch.setitem(registry.APPLICATIONS, "fakeapp", "learnkit.fakeapp")
    assert main(["train", "fake", "data/"]) == 0 and seen == {"path": "data/"}
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert "fake" in out and "images" in out  # vision's command and the new one, side by side
