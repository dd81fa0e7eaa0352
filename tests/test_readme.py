"""The README's code blocks run (and docs/migrating-from-fastai.md's), offline, on small real data.

How it works:

- Every fenced ```` ```python ```` block of the two documents is preceded by an HTML comment (invisible once
  rendered) naming the setup that creates what the block expects: ``<!-- readme-test: setup=NAME -->``.
  A block that cannot run here says why, visibly, in the sentence next to it, and carries
  ``<!-- readme-test: skip=REASON -->``; the test counts those (at most :data:`MAX_SKIPPED`). A python
  block without a marker, or a marker naming no setup, fails :func:`test_every_python_block_has_a_setup`.
  Shell blocks (``make demo``, ``torchrun``) are not run here (``tests/test_cli.py`` runs the commands).
- Each block runs as written in a fresh namespace, in its own temporary working directory, with the network
  switched off (any socket connection raises), ``$TORCH_HOME``, ``$LEARNKIT_HOME`` and ``$HF_HOME`` pointing
  into that directory and ``HF_HUB_OFFLINE=1``. Line numbers in a traceback are the document's own.
- The setup (``SETUPS``) writes the files and defines the names the block uses without defining them (``path``,
  ``df``, ``x_train``...): see ``tests/readme_fixtures.py`` for the data (all shipped inside installed
  packages) and the pretrained files (random weights placed where learnkit looks, honestly named).
- A setup may substitute text in its block (``Setup.subs``): only to make a block small enough for a CPU test
  or to point it at a local stand-in of something that would be downloaded. Every substitution says why and
  must match the block (a stale one fails the test). They are all listed in :data:`SETUPS` below.
- Every top-level expression's value is recorded (as a notebook would show it) and the setup's ``check``
  asserts on the results: ``predict`` returned a label of the data and probabilities, the export reloads
  to the same predictions, the files the block writes exist, and so on.
"""

from __future__ import annotations

import ast
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import readme_fixtures as RF
import torch

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", ROOT / "docs" / "migrating-from-fastai.md"]
MARKER = re.compile(r"^<!--\s*readme-test:\s*(setup|skip)=(.+?)\s*-->\s*$")
FENCE = re.compile(r"^```(\w*)\s*$")
MAX_SKIPPED = 1
SMALL_AWD = dict(emb_sz=64, n_hid=128, n_layers=2)
HUB_REPO = "learnkit-tests/tiny-bert"


# ---------------------------------------------------------------------------------------------- extraction
@dataclass
class Block:
    doc: str
    line: int  # line of the first code line in the document (1-based)
    code: str
    setup: str | None = None
    skip: str | None = None

    @property
    def id(self) -> str:
        return f"{Path(self.doc).stem}:{self.line}:{self.setup or 'skip'}"


def python_blocks(path: Path) -> list[Block]:
    """The fenced python blocks of ``path``, each with the marker on the line before its fence (if any)."""
    lines = path.read_text(encoding="utf-8").split("\n")
    blocks, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        lang, start = m.group(1), i
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        if lang == "python":
            marker = MARKER.match(lines[start - 1]) if start else None
            kind, value = (marker.group(1), marker.group(2)) if marker else (None, None)
            blocks.append(
                Block(
                    doc=str(path.relative_to(ROOT)),
                    line=start + 2,
                    code="\n".join(lines[start + 1 : end]) + "\n",
                    setup=value if kind == "setup" else None,
                    skip=value if kind == "skip" else None,
                )
            )
        i = end + 1
    return blocks


BLOCKS = [b for doc in DOCS for b in python_blocks(doc)]


# ---------------------------------------------------------------------------------------------- setups
@dataclass
class Setup:
    """``build(root, request) -> names``; ``subs``: ``(old, new, why)``; ``check(ns, values)``."""

    build: Callable[[Path, pytest.FixtureRequest], dict]
    check: Callable[[dict, list], None]
    subs: list[tuple[str, str, str]] = field(default_factory=list)


TINY_IMAGES = "tiny images keep a CPU test fast (the pipeline is the same at any size)"
STANDIN_TV = (
    "the ImageNet weights are a download: random weights are cached in $TORCH_HOME/hub/checkpoints under a "
    "name carrying their own hash (learnkit verifies it) and passed as a weights enum; resnet18, the same "
    "family as resnet34 at half the CPU time (a resnet34 step takes ~8 s on the loaded 2-core test machine)"
)


def _predicted(value, classes) -> None:
    """``value`` is what a classifier's ``predict`` returns: (label, index, probabilities)."""
    assert isinstance(value, tuple) and len(value) == 3, value
    label, idx, probs = value
    assert str(label) in [str(c) for c in classes] and int(idx) == [str(c) for c in classes].index(str(label))
    assert isinstance(probs, torch.Tensor) and probs.shape == (len(classes),)
    assert torch.isclose(probs.sum(), torch.tensor(1.0), atol=1e-4) and int(probs.argmax()) == int(idx)


# ---- vision: the tour
def build_pets_names(root: Path, request) -> dict:
    from learnkit.vision import get_image_files

    path = root / "images"
    RF.write_named_images(path, n_per_photo=60)
    RF.photo_crops(1, seed=9)[0][1].save(root / "cat.jpg")  # a crop the model has not seen

    def label_func(fname):
        return str(fname).split("_")[0]

    return {
        "path": path,
        "files": get_image_files(path),
        "label_func": label_func,
        "standin_resnet18": request.getfixturevalue("standin_resnet18"),
    }


def check_pets_names(ns: dict, values: list) -> None:
    import matplotlib.pyplot as plt

    learn, dls = ns["learn"], ns["dls"]
    assert list(dls.vocab) == ["china", "flower"]
    assert len(learn.recorder.values) == 1  # the unfrozen epoch of fine_tune(1) (each fit starts a record)
    assert len(plt.get_fignums()) >= 2  # show_results and the confusion matrix
    _predicted(values[-1], dls.vocab)
    assert Path(learn.path) == ns["path"] and (ns["path"] / "pets.lk").is_file()
    # the reloaded export predicts as the learner that wrote it
    torch.testing.assert_close(learn.predict("cat.jpg")[2], values[-1][2])


# ---- any PyTorch model
def build_tensors(root: Path, request) -> dict:
    from sklearn.datasets import load_wine
    from torch import nn

    from learnkit import set_seed

    set_seed(0)
    d = load_wine()
    x = torch.tensor(d.data, dtype=torch.float32)
    x = (x - x.mean(0)) / x.std(0)
    y = torch.tensor(d.target)
    idx = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    tr, va = idx[:142], idx[142:]
    my_module = nn.Sequential(nn.Linear(13, 32), nn.ReLU(), nn.Linear(32, 3))
    return {"x_train": x[tr], "y_train": y[tr], "x_valid": x[va], "y_valid": y[va], "my_module": my_module}


def check_tensors(ns: dict, values: list) -> None:
    from learnkit import load_learner

    learn = ns["learn"]
    assert len(learn.recorder.values) == 5
    acc = float(learn.validate()[1])
    majority = float(ns["y_valid"].bincount().max()) / len(ns["y_valid"])
    assert acc > majority, (acc, majority)
    loaded = load_learner(Path(learn.path) / "model.lk")
    learn.model.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(ns["x_valid"]), learn.model(ns["x_valid"]))


# ---- text: ULMFiT
def build_docstrings_lm(root: Path, request) -> dict:
    from learnkit import set_seed
    from learnkit.data import URLs
    from learnkit.text import defaults

    set_seed(0)
    df = RF.text_corpus()
    words = pd.Series(re.findall(r"[a-z]+", " ".join(df["text"]).lower())).value_counts()
    vocab = list(defaults.text_spec_tok) + list(words.index[:1500]) + ["wikitext", "only", "words"]
    RF.wt103_standin(URLs.path(URLs.WT103_FWD), vocab, SMALL_AWD)
    return {"df": df, "small_awd": SMALL_AWD}


def check_docstrings_lm(ns: dict, values: list) -> None:
    from learnkit.data import URLs

    lm, learn = ns["lm"], ns["learn"]
    # pretrained=True really ran: untar_data extracted the archive placed in its cache
    assert (URLs.path(URLs.WT103_FWD, "data") / "lstm_fwd.pth").is_file()
    generated = next(v for v in values if isinstance(v, str))  # words outside the corpus come back as xxunk
    assert generated.startswith("The ") and len(generated.split()) >= 20, generated
    assert (Path(lm.path) / lm.model_dir / "enc.pth").is_file()
    emb = lm.model.encoder.encoder.weight
    assert emb.shape == (len(ns["dls_lm"].vocab), SMALL_AWD["emb_sz"])
    assert len(learn.recorder.values) == 4  # the unfrozen epochs of fine_tune(4)
    _predicted(values[-1], learn.dls.vocab[1])


# ---- text: a hub transformer
def build_docstrings_hub(root: Path, request) -> dict:
    import os

    from learnkit import set_seed

    set_seed(0)
    df = RF.text_corpus()
    RF.tiny_hub_model(
        root / "tiny-bert-src", df["text"][~df["is_valid"]], Path(os.environ["HF_HOME"]), HUB_REPO
    )
    return {"df": df}


def check_docstrings_hub(ns: dict, values: list) -> None:
    learn = ns["learn"]
    assert len(learn.recorder.values) == 2
    pred = next(v for v in values if isinstance(v, tuple))
    _predicted(pred, learn.dls.vocab[1])
    folder = Path("reviews-hf")
    assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
    assert (Path(learn.path) / "reviews.lk").is_file() or Path("reviews.lk").is_file()


# ---- tabular and random forests
def build_census(root: Path, request) -> dict:
    from learnkit import set_seed

    set_seed(0)
    path = root / "data"
    path.mkdir()
    RF.census_table().to_csv(path / "adult.csv", index=False)
    df = pd.read_csv(path / "adult.csv")
    valid_idx = list(range(0, len(df), 5))
    train_idx = [i for i in range(len(df)) if i % 5]
    return {
        "path": path,
        "df": df,
        "cat": list(RF.CENSUS_CAT),
        "cont": list(RF.CENSUS_CONT),
        "valid_idx": valid_idx,
        "splits": (train_idx, valid_idx),
        "new_df": df.drop(columns=["salary"]).iloc[valid_idx[:40]],
    }


def check_census_tabular(ns: dict, values: list) -> None:
    learn, dls = ns["learn"], ns["dls"]
    classes = sorted(ns["df"]["salary"].unique())
    row, clas, probs = ns["row"], ns["clas"], ns["probs"]  # fastai's order: decoded row, class index, probs
    assert isinstance(row, pd.DataFrame) and len(row) == 1
    _predicted((row["salary"].iloc[0], clas, probs), classes)
    assert row["gender"].iloc[0] == ns["df"]["gender"].iloc[0]  # the inputs come back decoded
    assert len(learn.recorder.values) == 3
    assert float(learn.validate()[1]) > 0.55  # the two classes split at the median: chance is 0.5
    valid_preds, _ = learn.get_preds(dl=dls.valid)  # new_df: the first 40 validation rows, target dropped
    torch.testing.assert_close(ns["preds"], valid_preds[:40])


def check_census_forest(ns: dict, values: list) -> None:
    from learnkit.tabular import load_forest

    to, m = ns["to"], ns["m"]
    np.testing.assert_allclose(ns["bias"] + ns["contrib"].sum(1), ns["pred"], rtol=1e-6, atol=1e-8)
    assert Path("rf.pt").is_file()
    np.testing.assert_array_equal(load_forest("rf.pt").predict(to.valid.xs), m.predict(to.valid.xs))
    assert float((m.predict(to.valid.xs) == np.asarray(to.valid.y)).mean()) > 0.55


# ---- collaborative filtering
def build_movielens(root: Path, request) -> dict:
    from learnkit import set_seed

    set_seed(0)
    RF.movielens_ratings().to_csv(root / "ratings.csv", index=False)
    ratings = pd.read_csv(root / "ratings.csv")
    return {"ratings": ratings, "user": int(ratings["userId"].iloc[0])}


def check_movielens(ns: dict, values: list) -> None:
    import matplotlib.pyplot as plt

    titles = set(ns["ratings"]["title"])
    top = next(v for v in values if isinstance(v, list))
    assert len(top) == 5 and all(t in titles for t in top)
    recs, similar = (v for v in values if isinstance(v, pd.DataFrame))
    assert len(recs) == 10 and len(similar) == 5
    seen = set(ns["ratings"].loc[ns["ratings"]["userId"] == ns["user"], "title"])
    assert not seen & set(recs["title"])
    assert "Toy Story (1995)" not in set(similar["title"])
    assert plt.get_fignums()
    valid_mse = float(ns["learn"].validate()[0])
    assert valid_mse < float(ns["ratings"]["rating"].var()), valid_mse  # beats predicting the mean


# ---- the DataBlock API
def build_digit_folders(root: Path, request) -> dict:
    return {"path": RF.write_digit_folders(root / "digits")}


def check_digit_folders(ns: dict, values: list) -> None:
    dls = ns["dls"]
    assert list(dls.vocab) == ["0", "1", "2"]
    x, y = dls.one_batch()
    assert x.shape == (64, 3, 32, 32) and y.shape == (64,)
    assert len(dls.valid.dataset) == 30


# ---- distributed training (a single process here)
def build_pets_archive(root: Path, request) -> dict:
    from learnkit.data import URLs

    RF.pets_standin(URLs.path(URLs.PETS))
    return {"standin_resnet18": request.getfixturevalue("standin_resnet18")}


def check_pets_archive(ns: dict, values: list) -> None:
    from learnkit.data import URLs

    assert Path(ns["path"]) == URLs.path(URLs.PETS, "data")
    assert list(ns["dls"].vocab) == ["china", "flower"]
    assert len(ns["learn"].recorder.values) == 1


# ---- the migration guide's imports
def check_imports(ns: dict, values: list) -> None:
    for name in (
        "vision_learner",
        "text_classifier_learner",
        "tabular_learner",
        "collab_learner",
        "untar_data",
    ):
        assert callable(ns[name]), name
    assert hasattr(ns["Path"], "ls") and ns["np"].__name__ == "numpy"


SETUPS: dict[str, Setup] = {
    "pets_names": Setup(
        build_pets_names,
        check_pets_names,
        [
            ("Resize(224)", "Resize(32)", TINY_IMAGES),
            ("resnet34, metrics", "resnet18, weights=standin_resnet18, metrics", STANDIN_TV),
        ],
    ),
    "tensors": Setup(build_tensors, check_tensors),
    "docstrings_lm": Setup(
        build_docstrings_lm,
        check_docstrings_lm,
        [
            (
                "language_model_learner(dls_lm, AWD_LSTM,",
                "language_model_learner(dls_lm, AWD_LSTM, config=small_awd,",
                "the WikiText-103 AWD-LSTM (400/1152/3) takes minutes per batch on a CPU; a small one in the "
                "same archive layout is placed where untar_data caches wt103-fwd.tgz and loaded as pretrained",
            ),
            (
                "text_classifier_learner(dls, AWD_LSTM,",
                "text_classifier_learner(dls, AWD_LSTM, config=small_awd,",
                "the classifier's encoder must match the small language model's to load_encoder",
            ),
        ],
    ),
    "docstrings_hub": Setup(
        build_docstrings_hub,
        check_docstrings_hub,
        [
            (
                '"microsoft/deberta-v3-small"',
                f'"{HUB_REPO}"',
                "a hub model is a download: a tiny BERT and its tokenizer are laid out in $HF_HOME/hub as the "
                "hub cache holds a model, and loaded by name offline",
            )
        ],
    ),
    "census": Setup(build_census, check_census_tabular),
    "census_forest": Setup(build_census, check_census_forest),
    "movielens": Setup(build_movielens, check_movielens),
    "digit_folders": Setup(
        build_digit_folders,
        check_digit_folders,
        [("Resize(460)", "Resize(48)", TINY_IMAGES), ("size=224", "size=32", TINY_IMAGES)],
    ),
    "pets_archive": Setup(
        build_pets_archive,
        check_pets_archive,
        [
            ("Resize(224)", "Resize(32)", TINY_IMAGES),
            ('"resnet34", metrics', '"resnet18", weights=standin_resnet18, metrics', STANDIN_TV),
            (
                "fine_tune(3)",
                "fine_tune(1)",
                "one epoch shows the same calls work (the tour block above trains too)",
            ),
        ],
    ),
    "imports": Setup(lambda root, request: {}, check_imports),
}


# ---------------------------------------------------------------------------------------------- running
@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: on a shared 2-core machine more threads make these tiny models slower."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def standin_resnet18(tmp_path_factory):
    """A ``$TORCH_HOME`` holding random resnet18 weights under their own hash, and the enum member for them."""
    home = tmp_path_factory.mktemp("torch_home")
    return home, RF.torchvision_standin("resnet18", home)


@pytest.fixture
def offline(monkeypatch):
    """Any attempt to open a network connection fails at once (nothing may be downloaded)."""

    connect = socket.socket.connect

    def guarded(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            raise OSError(f"network access is disabled in the README test (connect to {address!r})")
        return connect(sock, address)  # local (Unix) sockets, e.g. DataLoader workers, still work

    def refuse(address, *args, **kwargs):
        raise OSError(f"network access is disabled in the README test (connect to {address!r})")

    monkeypatch.setattr(socket.socket, "connect", guarded)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _instrument(code: str, block: Block) -> ast.Module:
    """The block's code with every top-level expression's value recorded, at the document's line numbers."""
    tree = ast.parse(code, filename=block.doc)
    for i, node in enumerate(tree.body):
        if isinstance(node, ast.Expr):
            call = ast.Call(ast.Name("_readme_record", ast.Load()), [node.value], [])
            tree.body[i] = ast.copy_location(ast.Expr(call), node)
    ast.fix_missing_locations(tree)
    ast.increment_lineno(tree, block.line - 1)
    return tree


def substituted(block: Block) -> str:
    code = block.code
    for old, new, why in SETUPS[block.setup].subs:
        assert old in code, (
            f"{block.id}: the substitution {old!r} -> {new!r} ({why}) no longer matches the block"
        )
        code = code.replace(old, new)
    return code


def test_every_python_block_has_a_setup():
    assert len(BLOCKS) >= 10, [b.id for b in BLOCKS]
    unmarked = [b.id for b in BLOCKS if b.setup is None and b.skip is None]
    assert not unmarked, (
        f"python blocks without a '<!-- readme-test: setup=NAME -->' line before their fence: {unmarked}"
    )
    unknown = [b.id for b in BLOCKS if b.setup is not None and b.setup not in SETUPS]
    assert not unknown, f"blocks naming a setup that tests/test_readme.py does not define: {unknown}"
    unused = set(SETUPS) - {b.setup for b in BLOCKS}
    assert not unused, f"setups no block uses (remove them): {sorted(unused)}"
    skipped = [b for b in BLOCKS if b.skip is not None]
    assert len(skipped) <= MAX_SKIPPED, [(b.id, b.skip) for b in skipped]
    assert all(len(b.skip) >= 20 for b in skipped), [(b.id, b.skip) for b in skipped]


RUNNABLE = [b for b in BLOCKS if b.setup is not None]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("block", RUNNABLE, ids=[b.id for b in RUNNABLE])
def test_readme_block_runs(block, tmp_path, monkeypatch, offline, request):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LEARNKIT_HOME", str(tmp_path / "learnkit_home"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("LEARNKIT_QUIET", "1")
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    setup = SETUPS[block.setup]
    names = setup.build(tmp_path, request)
    if "standin_resnet18" in names:  # the cached stand-in weights live in their own $TORCH_HOME
        home, names["standin_resnet18"] = names["standin_resnet18"]
        monkeypatch.setenv("TORCH_HOME", str(home))
    values: list = []
    ns = {"__name__": "__readme__", "_readme_record": values.append, **names}
    exec(compile(_instrument(substituted(block), block), block.doc, "exec"), ns)
    setup.check(ns, values)
