"""Numericalize, the LM stream loader, the sorted classifier loader, TextDataLoaders factories, bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from learnkit.data import CategoryBlock
from learnkit.exceptions import DataError
from learnkit.text import (
    LMLoader,
    Numericalize,
    SortedTextLoader,
    TextBlock,
    TextDataLoaders,
    register_tokenizer,
    tokenize_texts,
)


def test_numericalize_round_trip_specials_first_multiple_of_8(corpus_df):
    toks = tokenize_texts(corpus_df.text.tolist())
    num = Numericalize(min_freq=3, max_vocab=60000).setup(toks)
    assert num.vocab[:9] == ["xxunk", "xxpad", "xxbos", "xxeos", "xxfld", "xxrep", "xxwrep", "xxup", "xxmaj"]
    assert len(num.vocab) % 8 == 0
    doc = toks[3]
    ids = num(doc)
    known = [t if t in num.o2i else "xxunk" for t in doc]
    assert num.decode(ids) == " ".join(known)
    counts = pd.Series([t for d in toks for t in d]).value_counts()
    assert all(counts[t] >= 3 for t in num.vocab[9:] if not t.startswith("xxfake"))
    small = Numericalize(min_freq=1, max_vocab=20).setup(toks)
    assert (
        len(small.vocab) == 32
        and small.vocab[9] == counts.index[counts.index.map(lambda t: t not in small.vocab[:9])][0]
    )


def test_lm_loader_contiguous_across_batches_and_shifted():
    docs = [np.arange(i * 100, i * 100 + 37) for i in range(9)]
    dl = LMLoader(docs, bs=4, seq_len=10, shuffle=False)
    stream = np.concatenate(docs)
    batches = list(dl)
    assert len(batches) == len(dl) == 9  # ceil(((333 - 1) // 4) / 10)
    xs = torch.cat([b[0] for b in batches], 1)
    ys = torch.cat([b[1] for b in batches], 1)
    n = (len(stream) - 1) // 4
    for r in range(4):  # each row is one contiguous piece of the stream, batch after batch
        assert xs[r].tolist() == stream[r * n : (r + 1) * n].tolist()
        assert ys[r].tolist() == stream[r * n + 1 : (r + 1) * n + 1].tolist()
    assert xs.numel() == 4 * n  # nothing padded


def test_lm_loader_reshuffles_documents_each_epoch():
    docs = [np.full(20, i) for i in range(30)]
    dl = LMLoader(docs, bs=2, seq_len=50, shuffle=True, seed=0)
    firsts = [tuple(next(iter(dl))[0][:, 0].tolist()) for _ in range(4)]
    assert len(set(firsts)) > 1
    assert sorted(torch.cat([x.flatten() for x, _ in dl]).unique().tolist()) == list(range(30))


def test_classifier_loader_pads_and_sorts():
    rng = np.random.default_rng(0)
    docs = [np.arange(2, 2 + int(n)) for n in rng.integers(1, 60, 200)]
    y = torch.arange(200)
    valid = SortedTextLoader(docs, y, bs=16, pad_id=1)
    lens = [int((x != 1).sum(1).max()) for x, _ in valid]
    assert lens == sorted(lens, reverse=True)  # validation: fully sorted, longest first
    for x, yb in valid:
        for row, i in zip(x, yb.tolist()):
            n = len(docs[i])
            assert row[:n].tolist() == docs[i].tolist() and (row[n:] == 1).all()  # padded at the end
    train = SortedTextLoader(docs, y, bs=16, pad_id=1, shuffle=True, seed=1, chunk_mult=4)
    seen, waste_sorted = [], 0
    for x, yb in train:
        seen += yb.tolist()
        waste_sorted += int((x == 1).sum())
    assert sorted(seen) == list(range(200))
    waste_random = sum(
        int((16 * max(len(docs[i]) for i in b)) - sum(len(docs[i]) for i in b))
        for b in np.array_split(rng.permutation(200), 13)
    )
    assert waste_sorted < waste_random / 2  # similar lengths together: far less padding than random batches


def test_from_df_classifier_vocab_layout_show_batch_and_test_dl(corpus_df):
    dls = TextDataLoaders.from_df(corpus_df, text_col="text", label_col="label", valid_col="is_valid", bs=32)
    text_vocab, labels = dls.vocab
    assert labels == ["pandas", "torch"] and text_vocab[1] == "xxpad" and dls.c == 2
    assert len(dls.valid_ds) == int(corpus_df.is_valid.sum())
    table = dls.show_batch(max_n=3, display=False)
    assert list(table.columns) == ["text", "category"] and table.text[0].startswith("xxbos")
    (x,) = next(iter(dls.test_dl(["A new DataFrame.", "Returns a tensor of the same size as input."])))
    assert x.shape[0] == 2 and x[0, 0].item() == text_vocab.index("xxbos")


def test_from_csv_lm_and_text_vocab_reused(corpus_csv):
    dls_lm = TextDataLoaders.from_csv(
        corpus_csv, text_col="text", is_lm=True, valid_pct=0.1, bs=8, seq_len=20
    )
    x, y = dls_lm.one_batch()
    assert x.shape == (8, 20) and torch.equal(x[:, 1:], y[:, :-1])
    assert dls_lm.show_batch(max_n=2, display=False).shape == (2, 2)
    dls = TextDataLoaders.from_csv(corpus_csv, text_col="text", label_col="label", text_vocab=dls_lm.vocab)
    assert dls.vocab[0] == dls_lm.vocab


def test_from_folder_labels_from_folder_names(tmp_path, corpus_df):
    for i, (t, lab, v) in enumerate(corpus_df[["text", "label", "is_valid"]].itertuples(index=False)):
        f = tmp_path / ("valid" if v else "train") / lab / f"{i}.txt"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(t, encoding="utf-8")
    dls = TextDataLoaders.from_folder(tmp_path, bs=16)
    assert dls.vocab[1] == ["pandas", "torch"]
    assert len(dls.valid_ds) == int(corpus_df.is_valid.sum())
    lm = TextDataLoaders.from_folder(tmp_path, is_lm=True, bs=8, seq_len=16)
    assert lm.train.loader.n_tokens + lm.valid.loader.n_tokens > 10 * len(corpus_df)


def test_text_block_from_df(corpus_df):
    blk = TextBlock.from_df("text", is_lm=True, seq_len=24, min_freq=2)
    dls = TextDataLoaders.from_df(corpus_df, text_col="text", is_lm=True, text_block=blk, bs=4)
    assert dls.one_batch()[0].shape == (4, 24)


# ------------------------------------------------------------------------------------------ bad input
def test_nan_and_empty_texts_are_kept_and_counted(corpus_df):
    df = corpus_df.copy()
    df.loc[0, "text"] = np.nan
    df.loc[1, "text"] = ""
    with pytest.warns(UserWarning, match="2 of .* texts are empty or missing"):
        dls = TextDataLoaders.from_df(df, text_col="text", label_col="label", valid_col="is_valid")
    assert len(dls.train_ds) + len(dls.valid_ds) == len(df)  # nothing lost


def test_one_class_label_column_is_an_error(corpus_df):
    df = corpus_df.assign(label="pandas")
    with pytest.raises(DataError, match="at least 2 classes.*one class .'pandas'."):
        TextDataLoaders.from_df(df, text_col="text", label_col="label")


def test_long_documents_truncated_with_warning(corpus_df):
    with pytest.warns(UserWarning, match="longer than max_len=20 tokens and are truncated"):
        dls = TextDataLoaders.from_df(corpus_df, text_col="text", label_col="label", max_len=20)
    assert max(x.shape[1] for x, _ in dls.train) <= 20


def test_bad_utf8_file_in_folder_is_named(tmp_path):
    for lab in ("a", "b"):
        for i in range(3):
            f = tmp_path / "train" / lab / f"ok{i}.txt"
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(f"fine text number {i} here", encoding="utf-8")
        (tmp_path / "valid" / lab).mkdir(parents=True)
        (tmp_path / "valid" / lab / "v.txt").write_text("valid text", encoding="utf-8")
    (tmp_path / "train" / "a" / "bad.txt").write_bytes(b"caf\xe9 cr\xe8me")
    with pytest.raises(DataError, match=r"bad\.txt.*encoding=.*errors='replace'"):
        TextDataLoaders.from_folder(tmp_path)
    dls = TextDataLoaders.from_folder(tmp_path, errors="replace", min_freq=1, bs=2)
    assert len(dls.train_ds) == 7 and len(dls.valid_ds) == 2  # nothing lost


def test_missing_columns_name_the_columns(corpus_df):
    with pytest.raises(DataError, match="label_col='stars'.*columns are"):
        TextDataLoaders.from_df(corpus_df, text_col="text", label_col="stars")
    with pytest.raises(DataError, match="text_col='body'"):
        TextDataLoaders.from_df(corpus_df, text_col="body", label_col="label")


# ------------------------------------------------------------------------------------------ tokenizer protocol
@register_tokenizer
class CharIds:
    """A tiny numericalized tokenizer: one id per character (the protocol the hf helper's tokenizer follows)."""

    numericalized = True

    def __init__(self, chars: str = "abcdefghijklmnopqrstuvwxyz .,"):
        self.chars = chars
        self.vocab = ["<pad>", "<unk>"] + list(chars)
        self.pad_id = 0

    def encode_batch(self, texts):
        return [[self.vocab.index(c) if c in self.chars else 1 for c in t.lower()] for t in texts]

    def decode(self, ids):
        return "".join(self.vocab[i] for i in ids if i > 1)

    def spec(self):
        return {"chars": self.chars}

    @classmethod
    def from_spec(cls, spec):
        return cls(**spec)


def test_numericalized_tokenizer_protocol_pads_with_its_pad_id(corpus_df):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dls = TextDataLoaders.from_df(
            corpus_df, text_col="text", label_col="label", tokenizer=CharIds(), bs=8
        )
    x, _ = next(iter(dls.valid))
    assert (x == 0).any() and dls.vocab[0][:2] == ["<pad>", "<unk>"]
    assert dls.recipe.spec()["block"]["tokenizer"] == {"name": "CharIds", "spec": {"chars": CharIds().chars}}
    again = type(dls.recipe).from_spec(dls.recipe.spec())
    (xt,) = next(iter(again.test_dl(["abc"])))
    assert xt.tolist() == [[2, 3, 4]]
    assert dls.recipe.decode_batch((xt,))[0][0] == "abc"


# ------------------------------------------------------------------------------------------ DDP sharding
def _shards(dl, world, seed=0):
    import copy

    return [copy.copy(dl).shard(world, r, seed) for r in range(world)]  # what DistributedTrainer does


def test_lm_loader_shard_disjoint_covering_equal_length_and_shard_eval_exact():
    from learnkit.data.loaders import EvalShardable, Shardable

    docs = [np.arange(i * 1000, i * 1000 + 50 + 7 * i) for i in range(20)]  # every token id unique
    dl = LMLoader(docs, bs=3, seq_len=8, shuffle=True)
    assert isinstance(dl, Shardable) and isinstance(dl, EvalShardable)
    n_tok = sum(len(d) for d in docs)
    for epoch in (0, 1):
        ranks = _shards(dl, 2)
        for r in ranks:
            r.set_epoch(epoch)
        lens = [len(r) for r in ranks]
        batches = [list(r) for r in ranks]
        assert len(set(lens)) == 1 and [len(b) for b in batches] == lens  # same number of steps
        seen = [set(torch.cat([x.flatten() for x, _ in b]).tolist()) for b in batches]
        assert not seen[0] & seen[1]  # disjoint
        assert len(seen[0] | seen[1]) > n_tok - 2 * 3 - 1  # covering (all but < bs * world + 1 tokens)
        for b in batches:  # each rank's rows are still contiguous and shifted by one
            xs, ys = torch.cat([x for x, _ in b], 1), torch.cat([y for _, y in b], 1)
            assert b[0][0].shape[0] == 3 and (xs[:, 1:] == ys[:, :-1]).all()
    # validation: the ranks' rows together are exactly one process's batches
    vdl = LMLoader(docs, bs=5, seq_len=8)
    parts = [list(vdl.shard_eval(3, r)) for r in range(3)]
    for k, (x, y) in enumerate(vdl):
        assert torch.equal(torch.cat([p[k][0] for p in parts]), x)
        assert torch.equal(torch.cat([p[k][1] for p in parts]), y)
    with pytest.raises(DataError, match="rank < num_replicas"):
        dl.shard(2, 2)


def test_classifier_loader_shard_disjoint_sorted_equal_length_and_shard_eval_order():
    rng = np.random.default_rng(0)
    n = 203
    docs = [np.full(int(k), 5) for k in rng.integers(1, 300, n)]
    ids = torch.arange(n)  # the targets are the document indices, so a batch says which documents it holds
    dl = SortedTextLoader(docs, ids, bs=8, pad_id=1, shuffle=True, seed=3)
    ranks = _shards(dl, 3)
    got = [[y.tolist() for _, y in r] for r in ranks]
    assert len({len(r) for r in ranks}) == 1 and [len(g) for g in got] == [len(r) for r in ranks]
    flat = [i for g in got for b in g for i in b]
    assert set(flat) == set(range(n))  # covering
    n_batches = -(-n // 8)
    fill = 3 * len(ranks[0]) - n_batches  # batches repeated to give every rank as many
    assert len(flat) - n == sum(len(b) for b in dl.batch_order()[:fill])
    # apart from the batches that fill the last round, no document is on two ranks
    firsts = [set(i for b in g[: len(g) - (1 if r >= 3 - fill else 0)] for i in b) for r, g in enumerate(got)]
    assert not (firsts[0] & firsts[1]) and not (firsts[0] & firsts[2]) and not (firsts[1] & firsts[2])
    # sorting by length still pays: each rank's padding is far below random batching's
    lens = np.array([len(d) for d in docs])
    pad = sum(int((lens[b].max() - lens[b]).sum()) for g in got for b in map(np.array, g))
    rand = sum(int((lens[b].max() - lens[b]).sum()) for b in np.array_split(rng.permutation(n), n_batches))
    assert pad < rand / 2
    # validation: contiguous shares in the loader's order (longest first), unpadded
    vdl = SortedTextLoader(docs, ids, bs=16, pad_id=1)
    whole = [i for _, y in vdl for i in y.tolist()]
    parts = [[i for _, y in vdl.shard_eval(3, r) for i in y.tolist()] for r in range(3)]
    assert sum(parts, []) == whole and sorted(whole) == list(range(n))


def test_text_dataloaders_shard_through_the_distributed_trainers_protocol(corpus_df):
    # the functions DistributedTrainer calls on each rank, on real TextDataLoaders (LM and classifier)
    from learnkit.distributed import _inner, _shard_train_inner, _shard_valid_inner

    lm = TextDataLoaders.from_df(corpus_df, text_col="text", is_lm=True, bs=8, seq_len=20, seed=0)
    clas = TextDataLoaders.from_df(corpus_df, text_col="text", label_col="label", valid_col="is_valid", bs=8)
    for dls in (lm, clas):
        train, valid = _inner(dls.train), _inner(dls.valid)
        shards = [_shard_train_inner(train, 2, r, seed=5) for r in (0, 1)]
        assert len(shards[0]) == len(shards[1]) >= len(train) // 2
        assert len(list(shards[0])) == len(shards[0])
        parts = [list(_shard_valid_inner(valid, 2, r)) for r in (0, 1)]
        assert sum(len(b[0]) for p in parts for b in p) > 0
        assert train.num_replicas == 1  # the loaders themselves are untouched (sharded copies)


# ------------------------------------------------------------------------------------------ generic DataBlock
def _batches(dl):
    return [tuple(t.clone() for t in b) for b in dl]


def test_text_block_in_a_generic_datablock_lm_and_classifier_match_the_factories(corpus_df):
    from learnkit.data import ColReader, ColSplitter, DataBlock
    from learnkit.text import TextClassifierRecipe, TextLMRecipe

    lm_block = DataBlock(
        blocks=TextBlock.from_df("text", is_lm=True),
        get_x=ColReader("text"),
        splitter=ColSplitter("is_valid"),
    )
    dls_lm = lm_block.dataloaders(corpus_df, bs=8, seq_len=20, seed=0)
    assert isinstance(dls_lm.recipe, TextLMRecipe) and dls_lm.recipe.loss_func is not None
    x, y = dls_lm.one_batch()
    assert x.shape == (8, 20) and torch.equal(x[:, 1:], y[:, :-1])
    ref_lm = TextDataLoaders.from_df(
        corpus_df, text_col="text", is_lm=True, valid_col="is_valid", bs=8, seq_len=20, seed=0
    )
    assert dls_lm.vocab == ref_lm.vocab
    assert all(map(torch.equal, *zip(*[(a[0], b[0]) for a, b in zip(dls_lm.valid, ref_lm.valid)])))

    clas_block = DataBlock(
        blocks=(TextBlock.from_df("text", vocab=dls_lm.vocab), CategoryBlock),
        get_x=ColReader("text"),
        get_y=ColReader("label"),
        splitter=ColSplitter("is_valid"),
    )
    dls = clas_block.dataloaders(corpus_df, bs=16, seed=0)
    assert isinstance(dls.recipe, TextClassifierRecipe)
    assert dls.vocab[0] == dls_lm.vocab and dls.vocab[1] == ["pandas", "torch"]
    ref = TextDataLoaders.from_df(
        corpus_df, text_col="text", label_col="label", valid_col="is_valid", text_vocab=dls_lm.vocab, bs=16
    )
    got, want = _batches(dls.valid), _batches(ref.valid)  # same length-sorted, padded batches and labels
    assert len(got) == len(want) and all(torch.equal(a, b) for g, w in zip(got, want) for a, b in zip(g, w))
    assert clas_block.blocks[0].vocab == dls_lm.vocab  # the DataBlock's own block stays as it was given


def test_text_block_from_folder_in_a_datablock_and_misuse_is_explained(tmp_path, corpus_df):
    from learnkit.data import DataBlock, GrandparentSplitter, get_text_files, parent_label

    for i, (t, lab, v) in enumerate(corpus_df[["text", "label", "is_valid"]].itertuples(index=False)):
        f = tmp_path / ("valid" if v else "train") / lab / f"{i}.txt"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(t, encoding="utf-8")
    block = DataBlock(
        blocks=(TextBlock.from_folder(tmp_path), CategoryBlock),
        get_items=get_text_files,
        get_y=parent_label,
        splitter=GrandparentSplitter(),
    )
    dls = block.dataloaders(tmp_path, bs=16)
    assert dls.vocab[1] == ["pandas", "torch"] and len(dls.valid_ds) == int(corpus_df.is_valid.sum())
    x, y = dls.one_batch()
    assert x.shape[0] == 16 and set(y.tolist()) <= {0, 1}
    with pytest.raises(DataError, match="batches its data itself"):
        block.summary(tmp_path)
    with pytest.raises(DataError, match="no target block"):
        DataBlock(blocks=(TextBlock.from_df("text", is_lm=True), CategoryBlock)).dataloaders(corpus_df)
