"""The tabular command line and the public surface of learnkit.tabular."""

from __future__ import annotations

import argparse
import importlib
import inspect
import json

import torch

from learnkit import load_learner
from learnkit.tabular import cli


def test_cli_trains_and_exports_with_inferred_types(penguins_csv, tmp_path, capsys):
    out = tmp_path / "p.lk"
    rc = cli.main(
        [
            "train",
            str(penguins_csv),
            "--y",
            "species",
            "--epochs",
            "2",
            "--out",
            str(out),
            "--json",
            "--cpu",
            "--layers",
            "32",
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert "categorical (3): island, sex, year" in text
    assert "continuous (4): bill_length_mm, bill_depth_mm, flipper_length_mm, body_mass_g" in text
    summary = json.loads(text.strip().splitlines()[-1])
    assert summary["metric"] > 0.6  # majority class is ~0.44
    learn = load_learner(out)
    assert learn.dls.recipe.cat_names[:3] == ["island", "sex", "year"]
    # override: year as continuous; drop island
    rc = cli.main(
        [
            "train",
            str(penguins_csv),
            "--y",
            "species",
            "--epochs",
            "1",
            "--out",
            str(out),
            "--cpu",
            "--cont",
            "bill_length_mm,year",
            "--drop",
            "island",
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert "continuous (2): bill_length_mm, year" in text and "island" not in text.split("continuous")[0]


def test_cli_bad_target_and_subparser(penguins_csv, capsys):
    assert cli.main(["train", str(penguins_csv), "--y", "specie", "--cpu"]) == 2
    assert "Did you mean 'species'" in capsys.readouterr().err
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="what")
    cli.add_parser(sub)
    args = p.parse_args(["tabular", str(penguins_csv), "--y", "species"])
    assert args.func is cli.main and args.epochs == 3


def test_public_names_import_and_are_documented():
    for modname in ("learnkit.tabular",):  # learnkit.tabular.all: tests/test_public_api.py
        mod = importlib.import_module(modname)
        assert len(mod.__all__) == len(set(mod.__all__))
        for name in mod.__all__:
            obj = getattr(mod, name)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                assert (inspect.getdoc(obj) or "").strip(), name
    ns: dict = {}
    exec("from learnkit.tabular import *", ns)
    for name in (
        "TabularPandas",
        "TabularDataLoaders",
        "tabular_learner",
        "random_forest",
        "Learner",
        "accuracy",
        "load_learner",
        "Categorify",
        "Normalize",
        "FillMissing",
        "CategoryBlock",
    ):
        assert name in ns, name
    assert ns["Normalize"].__module__ == "learnkit.tabular.core"  # the tabular proc, as in fastai
    ns = {}
    exec("from learnkit.tabular.all import *", ns)
    assert ns["torch"] is torch and ns["pd"].__name__ == "pandas" and "partial" in ns


def test_tabular_model_is_registered():
    from learnkit.models import create_model, list_models

    assert "tabular_model" in list_models()
    m = create_model("tabular_model", emb_szs=[[3, 2]], n_cont=2, out_sz=4, layers=[8])
    assert m.learnkit_spec["factory"] == "tabular_model"
    assert m(torch.zeros(3, 1).long(), torch.zeros(3, 2)).shape == (3, 4)
