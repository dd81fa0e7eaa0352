"""The pickle-free export: torch.nn models rebuilt from a spec, recipe kinds through the registry, file names."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from learnkit import DataLoaders, Learner, load_learner
from learnkit.exceptions import ModelError, UnsafeFileError
from learnkit.export import RECIPES, build_torch_layer, read_export, recipe_from_spec, torch_layer_spec
from learnkit.utils import atomic_save

ROOT = Path(__file__).resolve().parents[1]


def _wine_learner(wine_tensors, model, path):
    (xt, yt), (xv, yv) = wine_tensors
    dls = DataLoaders.from_tensors((xt, yt), (xv, yv), bs=32, seed=0, device="cpu")
    return Learner(dls, model, loss_func=nn.CrossEntropyLoss(), path=path)


def test_plain_sequential_of_torch_layers_exports_and_loads_the_same_predictions(wine_tensors, tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(13, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.1), nn.Linear(32, 3))
    learn = _wine_learner(wine_tensors, model, tmp_path)
    learn.fit(2, lr=1e-2, quiet=True)
    f = learn.export("export.pkl")  # any name the user picks, any extension
    assert f == tmp_path / "export.pkl" and f.is_file()
    loaded = load_learner(f)
    x = wine_tensors[1][0]
    assert torch.equal(loaded.get_preds(dl=x)[0], learn.get_preds(dl=x)[0])
    st = read_export(f)
    assert st["model"]["kind"] == "torch.nn"
    assert [c[1]["class"] for c in st["model"]["layer"]["children"]] == [
        "Linear",
        "BatchNorm1d",
        "ReLU",
        "Dropout",
        "Linear",
    ]


def test_nested_containers_and_recurrent_layers_round_trip():
    torch.manual_seed(0)
    m = nn.ModuleDict(
        {
            "emb": nn.Embedding(20, 6, padding_idx=0),
            "rnn": nn.LSTM(6, 8, num_layers=2, batch_first=True, bidirectional=True),
            "head": nn.Sequential(
                nn.LayerNorm(16),
                nn.Conv1d(16, 4, 3, padding=1, bias=False),
                nn.ModuleList([nn.GELU("tanh"), nn.LeakyReLU(0.2)]),
            ),
        }
    )
    rebuilt = build_torch_layer(torch_layer_spec(m))
    rebuilt.load_state_dict(m.state_dict())  # strict: same keys and shapes
    x = torch.randint(1, 20, (2, 5))

    def run(mod):
        h, _ = mod["rnn"](mod["emb"](x))
        h = mod["head"][0](h).transpose(1, 2)
        return mod["head"][1](h)

    m.eval(), rebuilt.eval()
    assert torch.equal(run(m), run(rebuilt))
    assert rebuilt["head"][1].bias is None and rebuilt["emb"].padding_idx == 0


def test_custom_class_inside_a_model_is_named_with_both_options(wine_tensors, tmp_path):
    class Scale(nn.Module):
        def forward(self, x):
            return x * 2

    learn = _wine_learner(wine_tensors, nn.Sequential(nn.Linear(13, 3), Scale()), tmp_path)
    with pytest.raises(ModelError, match=r"Scale at model\.1") as e:
        learn.export("x.pkl")
    assert "@register_model" in str(e.value) and "factory=" in str(e.value)


def test_a_subclass_of_a_torch_layer_is_not_taken_for_the_layer(wine_tensors, tmp_path):
    class MyLinear(nn.Linear):
        def forward(self, x):
            return super().forward(x) + 1

    with pytest.raises(ModelError, match="MyLinear"):
        _wine_learner(wine_tensors, MyLinear(13, 3), tmp_path).export("x.pkl")


def test_a_layer_class_outside_the_allowlist_in_a_file_is_refused(tmp_path):
    with pytest.raises(UnsafeFileError, match="allowlist"):
        build_torch_layer({"class": "Exec", "args": {}})
    with pytest.raises(UnsafeFileError):
        build_torch_layer({"class": "Sequential", "children": [["0", {"class": "os.system", "args": {}}]]})


def test_weights_that_do_not_match_the_spec_are_refused_on_load(wine_tensors, tmp_path):
    learn = _wine_learner(wine_tensors, nn.Sequential(nn.Linear(13, 3)), tmp_path)
    f = learn.export("m.lk")
    st = read_export(f)
    st["state_dict"]["0.weight"] = torch.zeros(4, 13)
    atomic_save(st, f)
    with pytest.raises(Exception, match="0.weight"):
        load_learner(f)


def test_missing_export_names_the_sibling_that_exists(wine_tensors, tmp_path):
    learn = _wine_learner(wine_tensors, nn.Sequential(nn.Linear(13, 3)), tmp_path)
    learn.export("export.pkl")
    with pytest.raises(ModelError, match=r"export\.pkl"):
        load_learner(tmp_path / "export.lk")


def test_course_code_loading_export_pkl_after_a_plain_export_gets_the_file(wine_tensors, tmp_path):
    learn = _wine_learner(wine_tensors, nn.Sequential(nn.Linear(13, 3)), tmp_path)
    learn.export()  # learnkit's default name: export.lk
    x = wine_tensors[1][0][:4]
    with pytest.warns(UserWarning, match=r"loading .*export\.lk"):
        loaded = load_learner(tmp_path / "export.pkl")  # fastai's default name, as course code spells it
    learn.model.eval()
    assert torch.equal(loaded.model(x), learn.model(x))
    with pytest.raises(ModelError, match="No export"):
        load_learner(tmp_path / "other.pkl")  # only fastai's default name falls back


def test_export_then_load_by_the_same_relative_name_finds_the_file(wine_tensors, tmp_path, monkeypatch):
    """The product in one line: learn.export("pets.lk"); load_learner("pets.lk") with learn.path elsewhere."""
    data, elsewhere = tmp_path / "data", tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    learn = _wine_learner(wine_tensors, nn.Sequential(nn.Linear(13, 3)), data)
    written = learn.export("wine-model.lk")
    assert written == data / "wine-model.lk" and not (elsewhere / "wine-model.lk").exists()
    x = wine_tensors[1][0][:4]
    learn.model.eval()
    assert torch.equal(load_learner("wine-model.lk").model(x), learn.model(x))
    (elsewhere / "wine-model.lk").write_bytes(b"not an export")  # a file in the working directory wins
    with pytest.raises(Exception, match="wine-model.lk"):
        load_learner("wine-model.lk")
    with pytest.raises(ModelError, match="No export"):
        load_learner("never-exported.lk")


def test_unknown_recipe_kind_lists_the_known_ones():
    with pytest.raises(ModelError, match="datablock"):
        recipe_from_spec({"kind": "no_such_recipe"})
    assert "datablock" in RECIPES


def test_load_learner_in_a_fresh_process_imports_the_application_the_file_needs(tmp_path):
    """An ImageBlock recipe and a vision model load without importing learnkit.vision first."""
    from learnkit.data import CategoryBlock, DataBlock
    from learnkit.models import create_model
    from learnkit.vision import ImageBlock

    imgs = [torch.randint(0, 255, (3, 16, 16), dtype=torch.uint8) for _ in range(8)]
    items = [(im, "ab"[i % 2]) for i, im in enumerate(imgs)]
    dls = DataBlock(
        blocks=(ImageBlock, CategoryBlock), splitter=lambda o: (list(range(6)), [6, 7])
    ).dataloaders(items, bs=4, num_workers=0, device="cpu")
    learn = Learner(dls, create_model("simple_cnn", n_out=2), path=tmp_path)
    f = learn.export("export.pkl")
    code = (
        "import sys; from learnkit import load_learner; "
        f"l = load_learner({str(f)!r}); "
        "assert 'learnkit.vision' in sys.modules; print(type(l.dls.recipe).__name__, l.dls.vocab)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(ROOT), "LEARNKIT_DEVICE": "cpu", "PATH": "/usr/bin:/bin"},
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "DataBlockRecipe ['a', 'b']" in out.stdout
