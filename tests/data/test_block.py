"""The DataBlock API on real files: scikit-learn's digits written as PNG folders and CSVs in a tmp dir."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch import nn

from learnkit import Learner, accuracy, load_learner, set_seed
from learnkit.data import pipeline as pipeline_mod
from learnkit.data.block import (
    BlockDataset,
    CategoryBlock,
    DataBlock,
    DataBlockRecipe,
    MultiCategoryBlock,
    RegressionBlock,
    TransformBlock,
    block_from_spec,
    recipe_from_spec,
    register_block,
)
from learnkit.data.getters import ColReader, RegexLabeller, get_image_files, parent_label
from learnkit.data.loaders import DataLoaders
from learnkit.data.splitters import (
    ColSplitter,
    FuncSplitter,
    GrandparentSplitter,
    IndexSplitter,
    RandomSplitter,
)
from learnkit.data.transforms import BatchTransform, IntToFloat, ItemTransform
from learnkit.exceptions import DataError
from learnkit.losses import BCEWithLogitsLossFlat, CrossEntropyLossFlat, MSELossFlat
from learnkit.models import create_model, register_model

N_TRAIN, N_VALID = 20, 5  # per class


# ------------------------------------------------------------------------------------------ data on disk
@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory):
    """``train/<d>/<d>_<i>.png`` (20 per digit) and ``valid/<d>/`` (5 per digit), ``labels.csv`` (fname,
    label, is_valid, value) and ``multi.csv`` (fname, tags: 'even'/'odd' and 'small'/'big')."""
    from sklearn.datasets import load_digits

    d = load_digits()
    root = tmp_path_factory.mktemp("digits")
    seen = {c: 0 for c in range(10)}
    rows = []
    for img, y in zip(d.images, d.target):
        i = seen[y]
        if i >= N_TRAIN + N_VALID:
            continue
        split = "train" if i < N_TRAIN else "valid"
        rel = f"{split}/{y}/{y}_{i}.png"
        (root / split / str(y)).mkdir(parents=True, exist_ok=True)
        Image.fromarray((img * 255 / 16).astype(np.uint8)).save(root / rel)
        tags = f"{'even' if y % 2 == 0 else 'odd'} {'small' if y < 5 else 'big'}"
        rows.append(
            {"fname": rel, "label": str(y), "is_valid": split == "valid", "value": float(y), "tags": tags}
        )
        seen[y] += 1
    df = pd.DataFrame(rows)
    df[["fname", "label", "is_valid", "value"]].to_csv(root / "labels.csv", index=False)
    df[["fname", "tags", "is_valid"]].to_csv(root / "multi.csv", index=False)
    return root


@register_block
class DigitPngBlock(TransformBlock):
    """Test block: a grayscale PNG path -> float tensor (1, H, W) in [0, 1]."""

    kind = "tensor"

    def encode(self, value):
        with Image.open(value) as im:
            return torch.from_numpy(np.asarray(im.convert("L"), dtype=np.float32) / 255.0)[None]


def digit_label(f) -> str:
    return parent_label(f)


def broken_label(f) -> str:
    if f.name == "3_2.png":
        raise KeyError("no label for this file")
    return parent_label(f)


def _png_block(**kw):
    kw.setdefault("splitter", GrandparentSplitter())
    kw.setdefault("get_y", digit_label)
    kw.setdefault("blocks", (DigitPngBlock, CategoryBlock))
    return DataBlock(get_items=get_image_files, **kw)


class ScaleTensors(BatchTransform):
    """Batch transform: doubles 'tensor' elements; decode halves them."""

    order = 50

    def __call__(self, batch, kinds, train):
        return tuple(x * 2 if k == "tensor" else x for x, k in zip(batch, kinds))

    def decode(self, batch, kinds):
        return tuple(x / 2 if k == "tensor" else x for x, k in zip(batch, kinds))


class FailOnThree(ItemTransform):
    """Item transform that fails on the digit 3 (an encoded category index)."""

    order = 5

    def __call__(self, sample, kinds, train):
        if int(sample[1]) == 3:
            raise ValueError("cannot transform a three")
        return sample


# ------------------------------------------------------------------------------------------ the happy path
def test_png_folders_to_dataloaders(digits_dir):
    dls = _png_block().dataloaders(digits_dir, bs=16, num_workers=0, shuffle=False)
    assert isinstance(dls, DataLoaders)
    assert isinstance(dls.train.loader, torch.utils.data.DataLoader)
    assert (len(dls.train_ds), len(dls.valid_ds)) == (10 * N_TRAIN, 10 * N_VALID)
    assert isinstance(dls.train_ds, BlockDataset)
    assert dls.vocab == [str(c) for c in range(10)] and dls.c == 10 and dls.n_inp == 1
    assert isinstance(dls.loss_func, CrossEntropyLossFlat)
    assert len(dls.train) == 10 * N_TRAIN // 16  # drop_last: more items than bs
    assert len(dls.valid) == -(-10 * N_VALID // 32)  # val_bs = 2 * bs, last batch kept
    x, y = dls.one_batch()
    assert x.shape == (16, 1, 8, 8) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert y.shape == (16,) and y.dtype == torch.int64
    # decoded labels are the folder names of the very items in the batch (no shuffle)
    files = dls.train_ds.items[:16]
    assert [lab for _, lab in dls.decode((x, y))] == [f.parent.name for f in files]
    # and the pixels are those of the files
    with Image.open(files[0]) as im:
        assert torch.allclose(x[0, 0] * 255, torch.from_numpy(np.asarray(im, dtype=np.float32)))
    # valid items: exactly the files under valid/
    assert all(f.parent.parent.name == "valid" for f in dls.valid_ds.items)


def test_show_batch_draws_items_with_their_labels(digits_dir):
    dls = _png_block().dataloaders(digits_dir, bs=8, num_workers=0, shuffle=False)
    fig = dls.show_batch(max_n=6)
    drawn = [ax for ax in fig.axes if ax.get_images()]
    assert len(drawn) == 6
    labels = [f.parent.name for f in dls.train_ds.items[:6]]
    assert [ax.get_title() for ax in drawn] == labels


def test_batch_transforms_run_on_the_batch_and_decode_undoes_them(digits_dir):
    dls = _png_block(batch_tfms=ScaleTensors()).dataloaders(digits_dir, bs=8, num_workers=0, shuffle=False)
    x, y = dls.one_batch()
    raw = dls.train_ds[0][0]
    assert torch.allclose(x[0], raw * 2)
    (x0, lab0), *_ = dls.decode((x, y))
    assert torch.allclose(x0, raw) and lab0 == dls.train_ds.items[0].parent.name
    assert dls.recipe.batch_pipe.tfms[0].__class__ is ScaleTensors


def test_csv_with_col_reader_and_col_splitter(digits_dir):
    df = pd.read_csv(digits_dir / "labels.csv")
    dblock = DataBlock(
        blocks=(DigitPngBlock, CategoryBlock),
        get_x=ColReader("fname", pref=digits_dir),
        get_y=ColReader("label"),
        splitter=ColSplitter("is_valid"),
    )
    dsets = dblock.datasets(df)
    assert (len(dsets.train), len(dsets.valid)) == (int((~df.is_valid).sum()), int(df.is_valid.sum()))
    assert dsets.vocab == list(range(10))  # the CSV's labels are read back as integers
    x, y = dsets.valid[7]
    row = df[df.is_valid].iloc[7]
    assert int(y) == dsets.vocab.index(row["label"]) and x.shape == (1, 8, 8)
    assert dsets.decode((x, y))[1] == row["label"]


def test_multi_label_csv(digits_dir):
    df = pd.read_csv(digits_dir / "multi.csv")
    dblock = DataBlock(
        blocks=(DigitPngBlock, MultiCategoryBlock),
        get_x=ColReader("fname", pref=digits_dir),
        get_y=ColReader("tags", label_delim=" "),
        splitter=ColSplitter(),
    )
    dls = dblock.dataloaders(df, bs=10, num_workers=0, shuffle=False)
    assert dls.vocab == ["big", "even", "odd", "small"] and dls.c == 4
    assert isinstance(dls.loss_func, BCEWithLogitsLossFlat)
    x, y = dls.one_batch()
    assert y.shape == (10, 4) and y.dtype == torch.float32
    assert torch.equal(y.sum(1), torch.full((10,), 2.0))
    decoded = [set(lab) for _, lab in dls.decode((x, y))]
    assert decoded == [set(t.split()) for t in df[~df.is_valid].tags[:10]]
    # already-encoded vectors with named columns
    enc = DataBlock(
        blocks=(TransformBlock, MultiCategoryBlock(encoded=True, vocab=["a", "b", "c"])),
        splitter=IndexSplitter([0]),
    )
    ds = enc.datasets([(torch.zeros(2), [1, 0, 1]), (torch.ones(2), [0, 1, 0]), (torch.ones(2), [1, 1, 0])])
    assert ds.train[0][1].tolist() == [0.0, 1.0, 0.0] and ds.decode(ds.train[1])[1] == ["a", "b"]


def test_regression_block(digits_dir):
    df = pd.read_csv(digits_dir / "labels.csv")
    dblock = DataBlock(
        blocks=(DigitPngBlock, RegressionBlock),
        get_x=ColReader("fname", pref=digits_dir),
        get_y=ColReader("value"),
        splitter=ColSplitter(),
    )
    dls = dblock.dataloaders(df, bs=8, num_workers=0, shuffle=False)
    assert dls.c == 1 and isinstance(dls.loss_func, MSELossFlat) and dls.vocab is None
    x, y = dls.one_batch()
    assert y.dtype == torch.float32 and y.tolist() == df[~df.is_valid].value[:8].tolist()
    (xb,) = next(iter(dls.test_dl(df.head(3))))  # DataFrame rows go through get_x
    assert torch.equal(xb, x[:3])
    xb, yb = next(iter(dls.test_dl(df.head(3), with_labels=True)))
    assert yb.tolist() == df.value[:3].tolist()
    two = DataBlock(blocks=(TransformBlock, RegressionBlock(n_out=2)), splitter=IndexSplitter([0]))
    ds = two.datasets([(torch.zeros(3), [1.0, 2.0]), (torch.ones(3), [3.0, 4.0])])
    assert ds.train[0][1].tolist() == [3.0, 4.0] and ds.c == 2
    with pytest.raises(DataError, match="finite"):
        DataBlock(blocks=(TransformBlock, RegressionBlock), splitter=IndexSplitter([0])).datasets(
            [(torch.zeros(1), 1.0), (torch.zeros(1), float("nan"))]
        )


def test_multiple_inputs_with_a_getter_per_block(digits_dir):
    dblock = DataBlock(
        blocks=(DigitPngBlock, TransformBlock, CategoryBlock),
        n_inp=2,
        get_items=get_image_files,
        get_x=[str, _name_length],
        get_y=digit_label,
        splitter=GrandparentSplitter(),
    )
    dls = dblock.dataloaders(digits_dir, bs=4, num_workers=0, shuffle=False)
    assert dblock.n_inp == 2 and dls.n_inp == 2
    x1, x2, y = dls.one_batch()
    assert x1.shape == (4, 1, 8, 8) and x2.tolist() == [len(f.name) for f in dls.train_ds.items[:4]]
    assert [lab for *_, lab in dls.decode((x1, x2, y))] == [f.parent.name for f in dls.train_ds.items[:4]]


def _name_length(f) -> int:
    return len(f.name)


def test_test_dl_with_and_without_labels(digits_dir, tmp_path):
    dls = _png_block().dataloaders(digits_dir, bs=8, num_workers=0)
    files = get_image_files(digits_dir / "valid")[:6]
    (xb,) = next(iter(dls.test_dl(files)))
    assert xb.shape == (6, 1, 8, 8)
    xb2, yb = next(iter(dls.test_dl(files, with_labels=True)))
    assert torch.equal(xb, xb2) and [dls.vocab[i] for i in yb.tolist()] == [f.parent.name for f in files]
    # a label that the vocab does not know, at inference
    odd = tmp_path / "extra" / "x" / "odd.png"
    odd.parent.mkdir(parents=True, exist_ok=True)
    odd.write_bytes(files[0].read_bytes())
    with pytest.raises(DataError, match=r"unknown label\(s\) \['x'\]") as e:
        dls.test_dl([files[0], odd], with_labels=True)
    assert "odd.png" in str(e.value)


def test_datasets_are_picklable_for_spawned_workers(digits_dir):
    dls = _png_block().dataloaders(digits_dir, bs=8, num_workers=0, shuffle=False)
    ds = pickle.loads(pickle.dumps(dls.train_ds))
    assert torch.equal(ds[3][0], dls.train_ds[3][0]) and int(ds[3][1]) == int(dls.train_ds[3][1])
    coll = pickle.loads(pickle.dumps(dls.train.loader.collate_fn))
    assert coll([ds[0], ds[1]])[0].shape == (2, 1, 8, 8)


def test_loaders_with_a_worker_give_the_same_batches(digits_dir):
    dls0 = _png_block().dataloaders(digits_dir, bs=16, num_workers=0, shuffle=False)
    dls1 = _png_block().dataloaders(digits_dir, bs=16, num_workers=1, shuffle=False)
    assert dls1.train.loader.persistent_workers
    b0, b1 = dls0.one_batch(1), dls1.one_batch(1)
    assert torch.equal(b0[0], b1[0]) and torch.equal(b0[1], b1[1])


def test_seeded_shuffle_and_default_split_are_reproducible(digits_dir):
    def first(seed):
        set_seed(seed)
        dls = DataBlock(
            blocks=(DigitPngBlock, CategoryBlock), get_items=get_image_files, get_y=digit_label
        ).dataloaders(digits_dir, bs=8, num_workers=0, seed=5)
        return dls.valid_ds.idxs, dls.one_batch()[1].tolist()

    assert first(0) == first(0)
    assert first(0)[0] != first(1)[0]


def test_category_block_options():
    blk = CategoryBlock(sort=False)
    blk.setup(["b", "a", None, "b"])
    assert blk.vocab == ["b", "a"]
    na = CategoryBlock(add_na=True)
    na.setup(["b", "a"])
    assert na.vocab == ["#na#", "a", "b"] and na.encode_many(["a", "zzz", None]).tolist() == [1, 0, 0]
    fixed = CategoryBlock(vocab=["z", "y"])
    fixed.setup(["y"])
    assert fixed.vocab == ["z", "y"] and fixed.decode_pred(torch.tensor(0)) == "z"
    mixed = CategoryBlock()
    mixed.setup([2, "a", 1])
    assert mixed.vocab == [1, 2, "a"]


# ------------------------------------------------------------------------------------------ summary
def test_summary_walks_every_step(digits_dir, capsys):
    text = _png_block(batch_tfms=ScaleTensors()).summary(digits_dir, bs=4)
    out = capsys.readouterr().out
    assert text.strip() == out.strip()
    for step in (
        "[get_items]",
        "[splitter]",
        "[setup] CategoryBlock",
        "vocab (10)",
        "[get_y] digit_label",
        "[DigitPngBlock.encode]",
        "[CategoryBlock.to_tensor]",
        "[collate]",
        "[batch transform ScaleTensors",
        "[decode]",
    ):
        assert step in text, step
    assert "200 training, 50 validation" in text
    assert "Tensor(shape=(4, 1, 8, 8)" in text


def test_summary_points_at_the_failing_get_y(digits_dir, capsys):
    with pytest.raises(DataError, match="step 'get_y'") as e:
        _png_block(get_y=broken_label).summary(digits_dir)
    msg = str(e.value)
    assert (
        "broken_label" in msg and "3_2.png" in msg and "KeyError" in msg and "no label for this file" in msg
    )
    assert "FAILED at step 'get_y'" in capsys.readouterr().out


def test_summary_points_at_a_failing_item_transform(digits_dir, capsys):
    with pytest.raises(DataError) as e:
        _png_block(item_tfms=FailOnThree(), splitter=FuncSplitter(_is_valid_folder)).summary(
            digits_dir / "train", bs=64
        )
    msg = str(e.value)
    assert "FailOnThree" in msg and "cannot transform a three" in msg and "/3/" in msg


def _is_valid_folder(f) -> bool:
    return f.name.endswith("_0.png")


# ------------------------------------------------------------------------------------------ bad input
def test_get_y_raising_names_the_item_and_the_function(digits_dir):
    with pytest.raises(DataError, match="get_y=broken_label failed on item") as e:
        _png_block(get_y=broken_label).datasets(digits_dir)
    assert "3_2.png" in str(e.value)


def test_regex_labeller_without_match_names_the_file(digits_dir):
    with pytest.raises(DataError, match="no match") as e:
        _png_block(get_y=RegexLabeller(r"cat_(\d+)")).datasets(digits_dir)
    assert "0_0.png" in str(e.value)


def test_empty_folder_and_empty_items(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no matching files") as e:
        _png_block().datasets(tmp_path / "empty")
    assert "empty" in str(e.value) and ".png" in str(e.value)
    with pytest.raises(DataError, match="get_items=list_nothing returned no items"):
        DataBlock(blocks=(TransformBlock, CategoryBlock), get_items=list_nothing).datasets(tmp_path)


def list_nothing(path) -> list:
    return []


def test_split_without_validation_or_training_items(digits_dir):
    with pytest.raises(DataError, match="0 for validation") as e:
        _png_block(splitter=FuncSplitter(_never)).datasets(digits_dir)
    assert "RandomSplitter" in str(e.value)
    with pytest.raises(DataError, match="0 for training"):
        _png_block(splitter=FuncSplitter(_always)).datasets(digits_dir)
    with pytest.raises(DataError, match="valid indices between 0 and 249"):
        _png_block(splitter=_bad_split).datasets(digits_dir)


def _never(o) -> bool:
    return False


def _always(o) -> bool:
    return True


def _bad_split(items):
    return [0, 1], [500]


def test_unseen_validation_labels_are_listed_with_a_fix(digits_dir):
    with pytest.raises(DataError, match=r"unknown label\(s\) \['9'\] on 25 item") as e:
        _png_block(splitter=FuncSplitter(_nines_and_valid_zeros)).datasets(digits_dir)
    msg = str(e.value)
    assert "validation split" in msg and "TrainTestSplitter" in msg and "vocab=" in msg and "/9/9_" in msg
    dsets = _png_block(
        blocks=(DigitPngBlock, CategoryBlock(add_na=True)), splitter=FuncSplitter(_nines_and_valid_zeros)
    ).datasets(digits_dir)
    assert dsets.vocab[0] == "#na#" and "9" not in dsets.vocab
    assert {dsets.decode(dsets.valid[i])[1] for i in range(len(dsets.valid))} == {"#na#", "0"}
    fixed = _png_block(
        blocks=(DigitPngBlock, CategoryBlock(vocab=[str(c) for c in range(10)])),
        splitter=FuncSplitter(_nines_and_valid_zeros),
    ).datasets(digits_dir)
    assert fixed.decode(fixed.valid[len(fixed.valid) - 1])[1] == "9"


def _nines_and_valid_zeros(f) -> bool:
    return f.parent.name == "9" or (f.parent.name == "0" and f.parent.parent.name == "valid")


def test_getters_that_do_not_match_the_blocks():
    items = [(torch.zeros(2), "a"), (torch.ones(2), "b"), (torch.ones(2), "a")]
    with pytest.raises(DataError, match="one element per block"):
        DataBlock(blocks=(TransformBlock, TransformBlock, CategoryBlock)).datasets(items)
    with pytest.raises(DataError, match=r"get_x to give 2 values.*Received: 1 value"):
        DataBlock(
            blocks=(TransformBlock, TransformBlock, CategoryBlock),
            n_inp=2,
            get_x=_first,
            get_y=_second,
            splitter=IndexSplitter([0]),
        ).datasets(items)
    with pytest.raises(DataError, match="MultiCategoryBlock"):
        DataBlock(
            blocks=(TransformBlock, CategoryBlock), get_x=_first, get_y=_as_tuple, splitter=IndexSplitter([0])
        ).datasets(items)
    with pytest.raises(DataError, match="list of 1 functions"):
        DataBlock(blocks=(TransformBlock, CategoryBlock), get_y=[_first, _second])
    with pytest.raises(DataError, match="TransformBlock instances or classes"):
        DataBlock(blocks=(TransformBlock, "category"))
    with pytest.raises(DataError, match="n_inp"):
        DataBlock(blocks=(TransformBlock, CategoryBlock), n_inp=3)
    with pytest.raises(DataError, match="batch_tfms"):
        DataBlock(blocks=(TransformBlock, CategoryBlock), item_tfms=ScaleTensors())


def _first(o):
    return o[0]


def _second(o):
    return o[1]


def _as_tuple(o):
    return (o[1], o[1])


def test_a_lambda_with_spawned_workers_gets_a_clear_error(digits_dir, monkeypatch):
    dblock = _png_block(get_y=lambda f: f.parent.name)
    monkeypatch.setattr(pipeline_mod, "_worker_start_method", lambda: "spawn")
    with pytest.raises(DataError, match="named function.*num_workers=0") as e:
        dblock.dataloaders(digits_dir, num_workers=2)
    assert "get_y" in str(e.value) and "spawn" in str(e.value)
    assert len(dblock.dataloaders(digits_dir, num_workers=0).train_ds) == 200  # fine without workers
    monkeypatch.setattr(pipeline_mod, "_worker_start_method", lambda: "fork")
    assert dblock.dataloaders(digits_dir, num_workers=1).train.loader.num_workers == 1  # forked: no pickling


def test_a_failing_encode_or_item_transform_names_the_item(digits_dir, tmp_path):
    bad = tmp_path / "data" / "train" / "1" / "broken.png"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not a png")
    (tmp_path / "data" / "valid" / "1").mkdir(parents=True)
    (tmp_path / "data" / "valid" / "1" / "ok.png").write_bytes(
        next(digits_dir.glob("train/1/*.png")).read_bytes()
    )
    dsets = _png_block().datasets(tmp_path / "data")
    with pytest.raises(DataError, match="DigitPngBlock.encode failed on item") as e:
        dsets.train[0]
    assert "broken.png" in str(e.value)
    ds = _png_block(item_tfms=FailOnThree()).datasets(digits_dir).valid
    three = next(i for i, f in enumerate(ds.items) if f.parent.name == "3")
    with pytest.raises(DataError, match="Item transform FailOnThree") as e:
        ds[three]
    assert ds.items[three].name in str(e.value)


# ------------------------------------------------------------------------------------------ export and training
def test_recipe_spec_is_plain_data_and_rebuilds(digits_dir, tmp_path):
    dls = _png_block().dataloaders(digits_dir, bs=8, num_workers=0)
    spec = dls.recipe.spec()
    torch.save(spec, tmp_path / "spec.pt")
    back = recipe_from_spec(torch.load(tmp_path / "spec.pt", weights_only=True))
    assert back.vocab == dls.vocab and back.n_inp == 1 and back.kinds == ("tensor", "category")
    assert type(back.blocks[0]) is DigitPngBlock
    assert type(block_from_spec(CategoryBlock(vocab=[3, 1]).spec())) is CategoryBlock
    img = block_from_spec(TransformBlock(batch_tfms=IntToFloat("float16"), kind="image").spec())
    assert img.kind == "image" and img.batch_tfms[0].dtype == "float16"
    with pytest.raises(DataError, match="registered block"):
        block_from_spec({"name": "NoSuchBlock", "kwargs": {}, "state": {}})
    (xb,) = next(iter(back.test_dl([digits_dir / "valid" / "4" / "4_20.png"])))
    assert xb.shape == (1, 1, 8, 8)


class TinyNet(nn.Module):
    def __init__(self, n_in: int = 64, n_out: int = 10, hidden: int = 64):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, n_out))

    def forward(self, x):
        return self.net(x)


@register_model(name="test_block_tiny_net", tags=("test",))
def tiny_net(n_in: int = 64, n_out: int = 10, hidden: int = 64):
    return TinyNet(n_in, n_out, hidden)


def test_learner_on_datablock_loaders_infers_the_loss_and_learns(digits_dir):
    set_seed(0)
    dls = _png_block().dataloaders(digits_dir, bs=16, num_workers=0, seed=0)
    learn = Learner(dls, create_model("test_block_tiny_net", n_out=dls.c), metrics=accuracy)
    assert isinstance(learn.loss_func, CrossEntropyLossFlat)
    learn.fit_one_cycle(4, 2e-2, quiet=True)
    loss, acc = learn.validate()
    assert acc > 0.7  # chance is 0.1
    label, idx, probs = learn.predict(digits_dir / "valid" / "6" / "6_20.png")
    assert label == dls.vocab[int(idx)] and probs.shape == (10,)
    fig = learn.show_results(max_n=4)
    assert len([ax for ax in fig.axes if ax.get_images()]) == 4


def test_export_and_load_learner_predict_a_raw_tensor(tmp_path):
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.data[:400], dtype=torch.float32) / 16
    names = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    items = [(xi, names[t]) for xi, t in zip(x, d.target[:400])]
    set_seed(0)
    dls = DataBlock(blocks=(TransformBlock, CategoryBlock), splitter=RandomSplitter(0.2, seed=0)).dataloaders(
        items, bs=32, num_workers=0
    )
    assert dls.vocab == sorted(names)
    learn = Learner(dls, create_model("test_block_tiny_net", n_out=10), path=tmp_path)
    learn.fit_one_cycle(6, 1e-2, quiet=True)
    f = learn.export("digits.lk")
    loaded = load_learner(f)
    assert loaded.dls.vocab == dls.vocab and isinstance(loaded.loss_func, CrossEntropyLossFlat)
    valid = dls.valid_ds.items
    preds = [loaded.predict(xi)[0] for xi, _ in valid[:30]]
    assert preds == [learn.predict(xi)[0] for xi, _ in valid[:30]]
    assert np.mean([p == lab for p, (_, lab) in zip(preds, valid[:30])]) > 0.8
    assert all(isinstance(p, str) for p in preds)
    xb, yb = next(iter(loaded.dls.test_dl(valid[:5], with_labels=True)))  # (x, y) items, no getters needed
    assert [loaded.dls.vocab[i] for i in yb.tolist()] == [lab for _, lab in valid[:5]]


def test_recipe_without_targets_and_decode_pred_of_several_labels():
    r = DataBlockRecipe([TransformBlock(), MultiCategoryBlock(vocab=["a", "b", "c"])], n_inp=1)
    assert r.decode_pred(torch.tensor([True, False, True])) == ["a", "c"]
    assert r.c == 3 and isinstance(r.loss_func, BCEWithLogitsLossFlat)
    only = DataBlock(blocks=TransformBlock, splitter=IndexSplitter([0])).datasets(
        [torch.zeros(2), torch.ones(2)]
    )
    assert only.n_inp == 1 and only.recipe.loss_func is None and only.train[0][0].tolist() == [1.0, 1.0]


@pytest.mark.cuda
def test_loaders_on_cuda_pin_memory_and_decode(digits_dir):
    dls = _png_block(batch_tfms=ScaleTensors()).dataloaders(
        digits_dir, bs=8, num_workers=0, shuffle=False, device="cuda"
    )
    assert dls.train.loader.pin_memory
    x, y = dls.one_batch()
    assert x.is_cuda and y.is_cuda
    assert torch.allclose(x[0].cpu(), dls.train_ds[0][0] * 2)
    assert [lab for _, lab in dls.decode((x, y))] == [f.parent.name for f in dls.train_ds.items[:8]]
    learn = Learner(dls, create_model("test_block_tiny_net", n_out=10))
    learn.fit(1, 1e-2, quiet=True)
    assert learn.predict(digits_dir / "valid" / "1" / "1_20.png")[0] in dls.vocab


# ------------------------------------------------------------------------------------------ batch transforms in workers
def _as_float(i):
    return float(i)


def _parity(i):
    return float(i % 2)


class _AddAndTag(BatchTransform):
    """Adds 1000 (train) or 2000 (valid) to the inputs, and replaces the targets by the id of the process
    that ran it, so a test can see how often, in which mode and where the batch transforms ran."""

    order = 50

    def __call__(self, batch, kinds, train):
        x, y = batch
        return x + (1000.0 if train else 2000.0), torch.full_like(y, float(os.getpid()))


class _Plus(BatchTransform):
    order = 60

    def __init__(self, v, fn=None):
        self.v, self.fn = v, fn

    def __call__(self, batch, kinds, train):
        return (batch[0] + self.v, *batch[1:])


def _numbers_block(tfm=None):
    return DataBlock(
        blocks=(TransformBlock, RegressionBlock),
        get_x=_as_float,
        get_y=_parity,
        splitter=IndexSplitter(range(32, 40)),
        batch_tfms=[_AddAndTag()] + ([tfm] if tfm is not None else []),
    )


def _xs(dl):
    return torch.cat([xb for xb, _ in dl])


def test_cpu_batch_transforms_run_once_in_the_workers():
    me = float(os.getpid())
    dls = _numbers_block().dataloaders(list(range(40)), bs=8, num_workers=1, device="cpu", seed=0)
    assert dls.train.tfms_in_workers and dls.valid.tfms_in_workers
    batches = list(dls.train)
    x = torch.cat([xb for xb, _ in batches])
    assert sorted((x - 1000).tolist()) == list(range(32))  # once each, in training mode
    assert all((yb != me).all() for _, yb in batches)  # ... in a worker process
    valid = torch.arange(32, 40, dtype=torch.float32)
    assert torch.equal(_xs(dls.valid), valid + 2000) and torch.equal(_xs(dls.valid), valid + 2000)
    # flipping the valid loader to training mode (what Learner.tta does) reaches the workers
    dls.valid.train = True
    assert torch.equal(_xs(dls.valid), valid + 1000)
    dls.valid.train = False
    assert torch.equal(_xs(dls.valid), valid + 2000)
    # transforms added after the workers started are used from the next iteration on
    dls.recipe.add_batch_tfms(_Plus(1.0))
    assert torch.equal(_xs(dls.valid), valid + 2001)
    # the same seed gives the same shuffling as main-process transforms
    same = _numbers_block().dataloaders(list(range(40)), bs=8, num_workers=0, device="cpu", seed=0)
    assert not same.train.tfms_in_workers
    xb, yb = same.one_batch()
    assert torch.equal(xb, batches[0][0]) and (yb == me).all()


def test_batch_transforms_stay_in_the_main_process_when_they_must(monkeypatch):
    from learnkit.data import loaders as loaders_mod

    me = float(os.getpid())
    valid = torch.arange(32, 40, dtype=torch.float32)
    # not picklable (a lambda): spawned workers could not receive it
    dls = _numbers_block(_Plus(1.0, fn=lambda v: v)).dataloaders(list(range(40)), bs=8, num_workers=1)
    assert not dls.train.tfms_in_workers
    assert torch.equal(_xs(dls.valid), valid + 2001) and (dls.one_batch()[1] == me).all()
    # an accelerator, or too little shared memory for float batches
    dls = _numbers_block().dataloaders(list(range(40)), bs=8, num_workers=1, device="cpu")
    dls.train.device = torch.device("cuda")
    assert not dls.train.tfms_in_workers and dls.valid.tfms_in_workers
    monkeypatch.setattr(loaders_mod, "MIN_SHM_BYTES", 1 << 62)
    assert not dls.valid.tfms_in_workers
    assert torch.equal(_xs(dls.valid), valid + 2000)
