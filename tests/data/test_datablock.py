"""DataBlock as fastai course code uses it (DataFrames, loader helpers, new()), the summary on the real
pipeline, and loaders an application plugs in (dl_type / dl_kwargs / batch samplers)."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from learnkit.data import CategoryBlock, DataBlock, DataRecipe, RegressionBlock
from learnkit.data.loaders import DataLoaders
from learnkit.data.pipeline import SamplePipeline
from learnkit.exceptions import DataError


@pytest.fixture()
def wine_df():
    from sklearn.datasets import load_wine

    d = load_wine(as_frame=True)
    df = d.frame.rename(columns={"target": "cls"})
    df["cls"] = df["cls"].map({0: "barolo", 1: "grignolino", 2: "barbera"})
    df["is_valid"] = [i % 5 == 0 for i in range(len(df))]
    return df.sample(frac=1.0, random_state=0)  # a shuffled index, as after a user's own shuffling


def _wine_block(**kw):
    def splitter(df):  # fastai-book style: the splitter reads the DataFrame
        return df.index[~df["is_valid"]].tolist(), df.index[df["is_valid"]].tolist()

    args = dict(
        blocks=(RegressionBlock(n_out=3), CategoryBlock),
        get_x=lambda r: [r["alcohol"], r["malic_acid"], r["flavanoids"]],
        get_y=lambda r: r["cls"],
        splitter=splitter,
    )
    args.update(kw)
    return DataBlock(**args)


def test_dataframe_splitter_gets_the_dataframe_and_getters_index_rows_by_column(wine_df):
    dsets = _wine_block().datasets(wine_df)
    assert len(dsets.valid) == int(wine_df["is_valid"].sum()) and len(dsets.train) + len(dsets.valid) == 178
    assert all(r["is_valid"] for r in dsets.valid.items) and not any(r["is_valid"] for r in dsets.train.items)
    assert dsets.train.vocab == ["barbera", "barolo", "grignolino"]
    x, y = dsets.valid[0]
    first = dsets.valid.items[0]
    assert torch.allclose(x, torch.tensor([first["alcohol"], first["malic_acid"], first["flavanoids"]]))
    assert dsets.train.vocab[int(y)] == first["cls"]


def test_fastai_loader_helpers_on_dls_and_each_loader(wine_df):
    dls = _wine_block().dataloaders(wine_df, bs=16, num_workers=0, device="cpu")
    assert dls.bs == 16
    xb, yb = dls.valid.one_batch()
    assert xb.shape == (32, 3) and yb.shape == (32,)
    dec = dls.train.decode_batch(dls.train.one_batch())
    assert len(dec) == 16 and all(lbl in dls.vocab for _, lbl in dec)
    assert dls.cpu() is dls and dls.device.type == "cpu"
    other = dls.new()
    assert other.recipe is dls.recipe and len(other.train) == len(dls.train)
    assert isinstance(dls.train.show_batch(), object)


def test_show_batch_on_a_loader_draws_its_items(wine_df):
    import matplotlib

    matplotlib.use("Agg")
    dls = _wine_block().dataloaders(wine_df, bs=4, num_workers=0, device="cpu")
    fig = dls.valid.show_batch(max_n=4)
    assert len([ax for ax in fig.axes if ax.get_title()]) == 4


def test_datablock_new_changes_transforms_and_keeps_the_rest(wine_df):
    from learnkit.data.transforms import BatchTransform

    class Double(BatchTransform):
        def __call__(self, batch, kinds, train):
            return (batch[0] * 2, *batch[1:])

    db = _wine_block()
    db2 = db.new(batch_tfms=Double())
    assert db2.splitter is db.splitter and db2.get_y is db.get_y and db.batch_tfms == []
    b1 = db.dataloaders(wine_df, bs=8, num_workers=0, shuffle=False, device="cpu").valid.one_batch()
    b2 = db2.dataloaders(wine_df, bs=8, num_workers=0, shuffle=False, device="cpu").valid.one_batch()
    assert torch.allclose(b2[0], b1[0] * 2) and torch.equal(b1[1], b2[1])
    with pytest.raises(DataError, match="item_tfm"):
        db.new(item_tfm=None)


def test_dataloaders_path_is_the_users(wine_df, tmp_path):
    assert _wine_block().dataloaders(wine_df, bs=8, num_workers=0, device="cpu").path == type(tmp_path)(".")
    dls = _wine_block().dataloaders(wine_df, bs=8, num_workers=0, device="cpu", path=tmp_path)
    assert dls.path == tmp_path
    folder = tmp_path / "data"
    folder.mkdir()
    wine_df.to_csv(folder / "wine.csv", index=False)
    db = _wine_block(get_items=lambda p: __import__("pandas").read_csv(p / "wine.csv"))
    # a folder source: dls.path is still fastai's '.', so learn.export() writes beside the script
    assert db.dataloaders(folder, bs=8, num_workers=0, device="cpu").path == type(tmp_path)(".")


def test_summary_runs_the_real_item_pipeline(wine_df, monkeypatch, capsys):
    calls = []
    real = SamplePipeline.sample

    def spy(self, *a, **kw):
        calls.append(kw.get("trace") is not None)
        return real(self, *a, **kw)

    monkeypatch.setattr(SamplePipeline, "sample", spy)
    text = _wine_block().summary(wine_df, bs=4)
    assert calls and calls[0] is True  # the traced walk is the loaders' own sample()
    assert len(calls) == 1 + 4  # one traced item, then the batch of 4 through the dataset
    for step in (
        "-> 142 training, 36 validation",
        "[get_x] _wine_block",
        "[get_y] _wine_block",
        "[CategoryBlock.encode_many]",
        "[RegressionBlock.to_tensor]",
        "[collate]",
        "[decode]",
    ):
        assert step in text, step


def test_summary_names_the_step_that_fails_inside_the_pipeline(wine_df, capsys):
    from learnkit.data.transforms import ItemTransform

    class Boom(ItemTransform):
        def __call__(self, sample, kinds, train):
            raise ValueError("boom")

    with pytest.raises(DataError, match="step 'item transform"):
        _wine_block(item_tfms=Boom()).summary(wine_df)
    assert "FAILED at step 'item transform" in capsys.readouterr().out


# ---------------------------------------------------------------- loaders an application plugs in
class SortedBatches:
    """A sort-by-length style batch sampler: fixed batches in a chosen order (shardable)."""

    def __init__(self, ds, bs, shuffle=False, drop_last=False, generator=None):
        self.order = sorted(range(len(ds)), key=lambda i: -i)  # "longest first"
        self.bs = bs
        self.epochs = []

    def __iter__(self):
        for i in range(0, len(self.order), self.bs):
            yield self.order[i : i + self.bs]

    def __len__(self):
        return (len(self.order) + self.bs - 1) // self.bs

    def set_epoch(self, epoch):
        self.epochs.append(epoch)


class MyLoader(DataLoader):
    pass


def test_datasets_dataloaders_takes_a_batch_sampler_factory_and_a_loader_class(wine_df):
    dsets = _wine_block().datasets(wine_df)
    dls = dsets.dataloaders(
        bs=10,
        num_workers=0,
        device="cpu",
        batch_sampler=SortedBatches,
        dl_type=MyLoader,
        dl_kwargs={"timeout": 0},
    )
    assert isinstance(dls.train.loader, MyLoader) and isinstance(
        dls.train.loader.batch_sampler, SortedBatches
    )
    xb, yb = dls.train.one_batch()
    assert len(xb) == 10
    first = [dsets.train[i][0] for i in range(len(dsets.train) - 1, len(dsets.train) - 11, -1)]
    assert torch.equal(xb, torch.stack(first))  # the sampler's order, not a shuffle
    dls.train.set_epoch(3)
    assert dls.train.loader.batch_sampler.epochs == [3]
    with pytest.raises(DataError, match="factory"):
        dsets.dataloaders(bs=10, num_workers=0, batch_sampler=42)


def test_dataloaders_without_recipe_behave_as_plain_loaders_and_a_non_recipe_is_refused():
    x, y = torch.randn(10, 2), torch.arange(10)
    dls = DataLoaders.from_tensors((x, y), (x, y), bs=5, device="cpu", shuffle=False)
    b = dls.one_batch()
    assert dls.decode(b) is b and dls.vocab is None and dls.c is None and dls.n_inp is None
    with pytest.raises(DataError, match="no data recipe"):
        dls.test_dl(["a"])

    class Duck:
        vocab = ["a"]

    with pytest.raises(DataError, match="DataRecipe"):
        DataLoaders(dls.train, recipe=Duck(), device="cpu")

    class Minimal(DataRecipe):
        c = 4

    dls2 = DataLoaders(dls.train.loader, recipe=Minimal(), device="cpu")
    assert dls2.c == 4 and dls2.train.after_batch is None  # the default after_batch costs nothing per batch
    with pytest.raises(DataError, match="Minimal does not implement show_batch"):
        dls2.show_batch()
