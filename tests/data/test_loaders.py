"""DataLoaders and TensorLoader: batching by slicing, shuffling, sharding, skipping, devices, bad input."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from learnkit import DataLoaders, TensorLoader
from learnkit.exceptions import DataError


def test_tensor_loader_covers_every_item_once_per_epoch(digits_tensors):
    (x, y), _ = digits_tensors
    dl = TensorLoader(x, y, bs=100, shuffle=True)
    seen = torch.cat([yb for _, yb in dl])
    assert len(dl) == 15 and len(seen) == len(y)
    assert torch.equal(seen.sort().values, y.sort().values)
    first = torch.cat([xb for xb, _ in dl])
    second = torch.cat([xb for xb, _ in dl])
    assert not torch.equal(first, second)  # reshuffled each epoch


def test_tensor_loader_drop_last_seed_and_skip(digits_tensors):
    (x, y), _ = digits_tensors
    dl = TensorLoader(x, y, bs=100, shuffle=True, drop_last=True, seed=5)
    assert len(dl) == 14 and all(len(xb) == 100 for xb, _ in dl)
    a = [yb for _, yb in dl]
    b = [yb for _, yb in dl]
    assert all(torch.equal(i, j) for i, j in zip(a, b))  # seed + same epoch -> same order
    dl.skip(10)
    rest = list(dl)
    assert len(rest) == 4 and torch.equal(rest[0][1], a[10])
    dl.set_epoch(1)
    assert not torch.equal(next(iter(dl))[1], a[0])


def test_tensor_loader_shards_like_a_distributed_sampler(wine_tensors):
    (x, y), _ = wine_tensors
    shards = [
        TensorLoader(x, torch.arange(len(x)), bs=16, shuffle=True).shard(2, r, seed=0) for r in range(2)
    ]
    idx = [torch.cat([i for _, i in s]) for s in shards]
    assert len(idx[0]) == len(idx[1]) == 71
    assert set(torch.cat(idx).tolist()) == set(range(142))


def test_from_datasets_and_dataloaders(wine_tensors):
    (xt, yt), (xv, yv) = wine_tensors
    dls = DataLoaders.from_datasets(
        TensorDataset(xt, yt), TensorDataset(xv, yv), bs=32, num_workers=0, device="cpu"
    )
    xb, yb = dls.one_batch()
    assert xb.shape == (32, 13) and len(dls.valid) == 1
    dls2 = DataLoaders.from_dataloaders(DataLoader(TensorDataset(xt, yt), batch_size=10), None, device="cpu")
    assert len(dls2.train) == 15 and dls2.valid is None
    assert "DataLoaders" in repr(dls2)


def test_bad_input_errors(wine_tensors):
    (xt, yt), _ = wine_tensors
    with pytest.raises(DataError, match="same length"):
        TensorLoader(xt, yt[:-1])
    with pytest.raises(DataError, match=r"train=\(x, y\)"):
        DataLoaders.from_tensors(xt, None)
    with pytest.raises(DataError, match="0 items"):
        DataLoaders.from_datasets(TensorDataset(xt[:0], yt[:0]), None, num_workers=0)
    with pytest.raises(DataError, match="iterable"):
        DataLoaders(42)
    dls = DataLoaders.from_tensors((xt, yt), None, device="cpu")
    with pytest.raises(DataError, match="no recipe"):
        dls.show_batch()
    with pytest.raises(DataError, match="no data recipe"):
        dls.test_dl(["a.png"])


# ---------------------------------------------------------------- issue 8 item 5: bad inputs name the item and field
def test_from_tensors_with_a_list_of_strings_names_the_field_and_item():
    x = torch.randn(4, 3)
    with pytest.raises(DataError, match=r"train\[1\].*Item 0 is str 'cat'"):
        DataLoaders.from_tensors((x, ["cat", "dog", "cat", "dog"]), device="cpu")
    with pytest.raises(DataError, match=r"valid\[0\].*Item 1 is tensor\(shape=\(2,\)"):
        DataLoaders.from_tensors(
            (x, torch.zeros(4)), ([torch.zeros(3), torch.zeros(2)], torch.zeros(2)), device="cpu"
        )


class _NoneAt(torch.utils.data.Dataset):
    def __init__(self, bad, field=None):
        self.bad, self.field = bad, field

    def __len__(self):
        return 6

    def __getitem__(self, i):
        if i != self.bad:
            return torch.zeros(2), i
        return None if self.field is None else (torch.zeros(2), None)


def test_a_dataset_yielding_none_names_the_item_and_the_field():
    with pytest.raises(DataError, match="Received: None for item 0.*forgotten `return`"):
        DataLoaders.from_datasets(_NoneAt(0), num_workers=0, device="cpu")
    dls = DataLoaders.from_datasets(_NoneAt(3, field=1), bs=6, shuffle=False, num_workers=0, device="cpu")
    with pytest.raises(DataError, match=r"field \[1\] is None for sample 3 of the batch"):
        next(iter(dls.train))
