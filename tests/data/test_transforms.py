"""The transform protocol: composition, IntToFloat, Normalize, specs and pickling (real digits and photos)."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch

from learnkit.data.transforms import (
    BatchPipeline,
    BatchTransform,
    IntToFloat,
    ItemPipeline,
    ItemTransform,
    Normalize,
    compose_batch,
    compose_item,
    imagenet_stats,
    register_transform,
    transform_from_spec,
)
from learnkit.exceptions import DataError


@pytest.fixture(scope="module")
def digit_batch():
    """16 scikit-learn digits as a uint8 (B, 1, 8, 8) image batch with their labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images[:16] * (255 / 16)).round().to(torch.uint8)[:, None]
    return x, torch.tensor(d.target[:16])


@pytest.fixture(scope="module")
def photo_batch():
    """Four 32x48 crops of scikit-learn's sample photos as a uint8 (4, 3, 32, 48) batch."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    imgs = []
    for arr in load_sample_images().images:
        small = np.asarray(Image.fromarray(arr).resize((96, 64), Image.Resampling.BILINEAR))
        imgs += [small[:32, :48], small[32:, 48:]]
    return torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).contiguous()


class _Record(ItemTransform):
    """Appends its tag to the 'tensor' element (a list), to observe the order of application."""

    def __init__(self, tag: str, order: int):
        self.tag, self.order = tag, order

    def __call__(self, sample, kinds, train):
        return tuple(x + [self.tag] if k == "tensor" else x for x, k in zip(sample, kinds))


class _Scale(BatchTransform):
    def __init__(self, f: float, order: int):
        self.f, self.order = f, order

    def __call__(self, batch, kinds, train):
        return tuple(x * self.f if k == "regression" else x for x, k in zip(batch, kinds))

    def decode(self, batch, kinds):
        return tuple(x / self.f if k == "regression" else x for x, k in zip(batch, kinds))


class _Shift(_Scale):
    def __call__(self, batch, kinds, train):
        return tuple(x + self.f if k == "regression" else x for x, k in zip(batch, kinds))

    def decode(self, batch, kinds):
        return tuple(x - self.f if k == "regression" else x for x, k in zip(batch, kinds))


def test_int_to_float_scales_images_only(digit_batch):
    x, y = digit_batch
    out = IntToFloat()((x, y), ("image", "category"), train=True)
    assert out[0].dtype == torch.float32 and out[1] is y
    assert torch.allclose(out[0], x.float() / 255)
    assert 0 <= out[0].min() and out[0].max() <= 1
    half = IntToFloat("float16")((x,), ("image",), train=False)[0]
    assert half.dtype == torch.float16 and torch.allclose(half.float(), x.float() / 255, atol=1e-3)
    already = out[0]
    assert IntToFloat()((already,), ("image",), train=True)[0] is already  # float images untouched
    assert IntToFloat().decode(out, ("image", "category")) == out
    mask = torch.zeros(2, 8, 8, dtype=torch.int64)
    assert IntToFloat()((mask,), ("mask",), train=True)[0] is mask
    with pytest.raises(DataError, match="dtype"):
        IntToFloat("float8")


def test_normalize_decode_roundtrip_and_stats(photo_batch):
    x = IntToFloat()((photo_batch,), ("image",), True)[0]
    norm = Normalize.from_batch(x)
    y = norm((x, torch.arange(4)), ("image", "category"), train=True)
    # per-channel mean 0 / std 1 with the batch's own statistics
    flat = y[0].transpose(0, 1).reshape(3, -1)
    assert torch.allclose(flat.mean(1), torch.zeros(3), atol=1e-4)
    assert torch.allclose(flat.std(1), torch.ones(3), atol=1e-3)
    assert torch.equal(y[1], torch.arange(4))
    back = norm.decode(y, ("image", "category"))[0]
    assert torch.allclose(back, x, atol=1e-5)
    # imagenet statistics, one value broadcast to every channel, and 16-bit floats
    inet = Normalize.from_stats(*imagenet_stats)
    assert inet.mean == imagenet_stats[0] and isinstance(inet.std, list)
    assert torch.allclose(inet.decode(inet((x,), ("image",), False), ("image",))[0], x, atol=1e-5)
    gray = Normalize(0.5, 0.25)
    assert torch.allclose(gray((x,), ("image",), False)[0], (x - 0.5) / 0.25)
    xh = x.to(torch.bfloat16)
    yh = inet((xh,), ("image",), False)[0]
    assert yh.dtype == torch.bfloat16
    assert torch.allclose(inet.decode((yh,), ("image",))[0].float(), x, atol=0.05)


def test_normalize_caches_device_stats_and_checks_input(photo_batch):
    norm = Normalize.from_stats(*imagenet_stats)
    x = photo_batch.float() / 255
    norm((x,), ("image",), True)
    cached = dict(norm._cache)
    norm((x,), ("image",), True)
    assert len(norm._cache) == 1 and all(norm._cache[k][0] is cached[k][0] for k in cached)
    norm((x.double(),), ("image",), True)
    assert len(norm._cache) == 2
    with pytest.raises(DataError, match="IntToFloat"):
        norm((photo_batch,), ("image",), True)  # uint8: IntToFloat missing
    with pytest.raises(DataError, match="channels"):
        norm((x[:, :2],), ("image",), True)
    with pytest.raises(DataError, match="same length"):
        Normalize([0.5, 0.5], [0.2])
    with pytest.raises(DataError, match="> 0"):
        Normalize([0.5], [0.0])
    with pytest.raises(DataError, match="non-empty"):
        Normalize([], [])


def test_compose_sorts_by_order_and_decodes_in_reverse(digit_batch):
    pipe = compose_item([_Record("c", 3), _Record("a", 1), _Record("b", 1)])
    assert isinstance(pipe, ItemPipeline) and len(pipe) == 3
    out = pipe(([], 7), ("tensor", "category"), train=True)
    assert out == (["a", "b", "c"], 7)  # sorted by order, ties keep the given order
    assert compose_item(None)(([], 1), ("tensor", "category"), True) == ([], 1)
    assert len(compose_item([pipe, _Record("d", 0)])) == 4  # pipelines flatten

    # shift (order 1) then scale (order 2): (v + 1) * 3; decode must undo scale first
    bp = compose_batch([_Scale(3.0, 2), _Shift(1.0, 1)])
    v = torch.tensor([1.0, 2.0])
    enc = bp((v,), ("regression",), train=True)[0]
    assert torch.allclose(enc, (v + 1) * 3)
    assert torch.allclose(bp.decode((enc,), ("regression",))[0], v)

    x, y = digit_batch
    full = compose_batch([Normalize.from_stats([0.3], [0.4]), IntToFloat()])
    assert [type(t) for t in full.tfms] == [IntToFloat, Normalize]
    enc_x, enc_y = full((x, y), ("image", "category"), train=True)
    assert torch.equal(enc_y, y)
    assert torch.allclose(full.decode((enc_x, enc_y), ("image", "category"))[0], x.float() / 255, atol=1e-6)


def test_compose_rejects_wrong_transforms_and_kinds():
    with pytest.raises(DataError, match="batch_tfms"):
        compose_item([IntToFloat()])
    with pytest.raises(DataError, match="item_tfms"):
        compose_batch([_Record("a", 0)])
    with pytest.raises(DataError, match="ItemTransform"):
        compose_item([lambda s, k, t: s])
    with pytest.raises(DataError, match="one kind per element"):
        compose_item([_Record("a", 0)])(([], 1), ("tensor",), True)
    with pytest.raises(DataError, match="one kind per element"):
        compose_batch([IntToFloat()])((torch.zeros(1, 1, 2, 2),), ("image", "category"), True)


def test_spec_roundtrip_is_plain_data(tmp_path, photo_batch):
    pipe = compose_batch([IntToFloat("float32"), Normalize.from_stats(*imagenet_stats)])
    spec = pipe.spec()
    json.dumps(spec)  # plain data only
    from learnkit.utils import atomic_save, safe_load

    atomic_save({"tfms": spec}, tmp_path / "spec.pth")
    loaded = safe_load(tmp_path / "spec.pth")["tfms"]  # torch.load(weights_only=True)
    rebuilt = transform_from_spec(loaded)
    assert isinstance(rebuilt, BatchPipeline) and rebuilt.spec() == spec
    a = pipe((photo_batch,), ("image",), True)[0]
    b = rebuilt((photo_batch,), ("image",), True)[0]
    assert torch.equal(a, b)
    for t in (IntToFloat("bfloat16"), Normalize([0.1, 0.2], [0.3, 0.4]), compose_item([])):
        assert transform_from_spec(t.spec()).spec() == t.spec()


def test_transform_from_spec_errors_and_registration(monkeypatch):
    import learnkit.data.transforms as tmod

    monkeypatch.setattr(
        tmod.TRANSFORM_REGISTRY, "_items", dict(tmod.TRANSFORM_REGISTRY._items)
    )  # stays local
    with pytest.raises(DataError, match="Did you mean 'Normalize'"):
        transform_from_spec({"name": "Normalise", "kwargs": {}})
    with pytest.raises(DataError, match="spec"):
        transform_from_spec("Normalize")
    with pytest.raises(DataError, match="constructor"):
        transform_from_spec({"name": "Normalize", "kwargs": {"mean": [0.5]}})

    @register_transform
    class _Triple(BatchTransform):
        order = 5

        def __init__(self, k: float = 3.0):
            self.k = k

        def __call__(self, batch, kinds, train):
            return tuple(x * self.k for x in batch)

        def spec_kwargs(self):
            return {"k": self.k}

    t = transform_from_spec(_Triple(2.0).spec())
    assert isinstance(t, _Triple) and t.k == 2.0
    with pytest.raises(DataError, match="not used yet"):
        register_transform(type("Normalize", (BatchTransform,), {}))
    with pytest.raises(DataError, match="subclass"):
        register_transform(_Triple())


def test_transforms_pickle_after_use(photo_batch):
    norm = Normalize.from_stats(*imagenet_stats)
    pipe = compose_batch([IntToFloat(), norm])
    before = pipe((photo_batch,), ("image",), True)[0]
    assert norm._cache  # device copies cached ...
    clone = pickle.loads(pickle.dumps(pipe))
    assert clone.tfms[1]._cache == {}  # ... but not pickled
    assert torch.equal(clone((photo_batch,), ("image",), True)[0], before)
    item = pickle.loads(pickle.dumps(compose_item([_Record("a", 2)])))
    assert item(([], 0), ("tensor", "category"), True) == (["a"], 0)


# ------------------------------------------------------------------------------------------ chunked CPU batches
class _Sizes(BatchTransform):
    """Records the batch sizes it sees; adds 1 to the 'regression' element (to count applications)."""

    def __init__(self, per_item: bool, order: int):
        self.per_item, self.order, self.sizes = per_item, order, []

    def __call__(self, batch, kinds, train):
        self.sizes.append(len(batch[0]))
        return tuple(x + 1 if k == "regression" else x for x, k in zip(batch, kinds))


def _photo_stack(photo_batch, n):
    """``n`` images (the four photo crops, repeated) as a uint8 batch, with a float target 0..n-1."""
    x = photo_batch.repeat((n + 3) // 4, 1, 1, 1)[:n].contiguous()
    return x, torch.arange(n, dtype=torch.float32)


def test_cpu_batches_run_per_item_transforms_in_chunks(photo_batch, monkeypatch):
    from learnkit.data import transforms as T

    x, y = _photo_stack(photo_batch, 10)
    kinds = ("image", "regression")
    per_img = 3 * 32 * 48 * 4  # bytes of one float image
    monkeypatch.setattr(T, "CHUNK_BYTES", 3 * per_img)  # 3 images per chunk
    first, whole, last = _Sizes(True, order=10), _Sizes(False, order=20), _Sizes(True, order=30)
    pipe = compose_batch([IntToFloat(), first, Normalize([0.5] * 3, [0.25] * 3), whole, last])
    out_x, out_y = pipe((x, y), kinds, train=True)
    assert first.sizes == [3, 3, 3, 1] and last.sizes == [3, 3, 3, 1]
    assert whole.sizes == [10]  # a transform that may mix items sees the whole batch
    assert torch.equal(out_y, y + 3)  # every transform applied exactly once, items kept in order
    ref = (x.float() / 255 - 0.5) / 0.25
    assert out_x.shape == x.shape and out_x.dtype == torch.float32
    assert torch.allclose(out_x, ref, atol=1e-5)
    # small batches, or batches with elements of other lengths, run in one go
    first.sizes.clear()
    pipe((x[:2], y[:2]), kinds, train=True)
    assert first.sizes == [2]
    first.sizes.clear()
    pipe((x, torch.arange(3.0)), kinds, train=True)
    assert first.sizes == [10]


def test_chunked_augmentation_matches_whole_batch(photo_batch, monkeypatch):
    from learnkit.data import transforms as T
    from learnkit.vision.augment import aug_transforms

    x, y = _photo_stack(photo_batch, 8)
    kinds = ("image", "regression")
    pipe = compose_batch([IntToFloat(), *aug_transforms(size=24, min_scale=0.5), Normalize(*imagenet_stats)])
    assert pipe.per_item
    whole = pipe((x, y), kinds, train=False)
    monkeypatch.setattr(T, "CHUNK_BYTES", 3 * 24 * 24 * 4)  # the 32x48 inputs: one image per chunk
    chunked = pipe((x, y), kinds, train=False)
    assert torch.allclose(chunked[0], whole[0], atol=1e-6) and torch.equal(chunked[1], y)
    # training: every image gets its own draw, also inside a chunk; same seed -> same batch
    same = x[:1].expand(8, -1, -1, -1).contiguous()
    torch.manual_seed(0)
    a = pipe((same, y), kinds, train=True)[0]
    torch.manual_seed(0)
    b = pipe((same, y), kinds, train=True)[0]
    assert torch.equal(a, b) and a.shape == (8, 3, 24, 24)
    assert min((a[0] - a[i]).abs().max().item() for i in range(1, 8)) > 1e-3
    # one draw for the whole batch: not per item, so never split
    assert not compose_batch(aug_transforms(batch=True)).per_item
