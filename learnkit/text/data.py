"""Text data: numericalization, the language-model stream loader, the sorted classifier loader, recipes.

``TextDataLoaders.from_df / from_csv / from_folder`` tokenize (cached, in parallel for big corpora), build the
vocab on the training split (:class:`Numericalize`) and return loaders:

- **language model** (``is_lm=True``): every document (shuffled each training epoch) joined into one token
  stream, cut into ``bs`` contiguous rows; each batch is the next ``seq_len`` window of every row, and the
  target is the input shifted by one token. Row ``j`` of batch ``k + 1`` continues row ``j`` of batch
  ``k``, so the model carries its hidden state across batches (:class:`~learnkit.text.learner.ModelResetter`
  resets it at each epoch start and before validation). No padding anywhere.
- **classifier**: documents of similar length batched together (training: sorted by length inside random
  chunks of ``50 * bs``; validation: fully sorted, longest first), padded at the *end* with ``xxpad`` (the
  model's pooling masks padding out), truncated to ``max_len`` tokens (a warning counts the documents cut).
  ``dls.vocab`` is ``[text_vocab, label_vocab]``.

Tokenizer protocol (``tokenizer=`` of the factories and of :class:`TextBlock`)
-----------------------------------------------------------------------------
A *plain* tokenizer is a callable ``text -> list[str]`` (a :class:`~learnkit.text.tokenize.Tokenizer`, or
any function, which is then run after the rules): tokens then go through :class:`Numericalize`.

A *numericalized* tokenizer (e.g. a Hugging Face one, :class:`learnkit.text.hf.HFTokenizer`) produces the
ids itself. It has

==================================  ===================================================================
member                              meaning
==================================  ===================================================================
``numericalized = True``            class attribute: marks the protocol
``encode_batch(texts) -> ids``      ``list[str] -> list[list[int]]``
``pad_id: int``                     the id batches are padded with
``vocab: list[str]``                id -> token (its length is the embedding size needed)
``decode(ids) -> str``              ids back to text
``spec() -> dict``                  its settings as plain data (str, numbers, lists, dicts, bytes)
``from_spec(spec)``                 class method: rebuild from ``spec()``
``sort_batches: bool`` (optional)   ``False``: classifier training batches are random (not grouped by
                                    length); default ``True``
==================================  ===================================================================

Then :class:`Numericalize` is skipped, batches are padded with ``pad_id``, and the recipe's export spec
stores ``{'name': type(tok).__name__, 'spec': tok.spec()}``. The class must be registered with
:func:`register_tokenizer` (``load_learner`` rebuilds it by that name, and never imports a name read
from a file).

>>> import pandas as pd
>>> df = pd.DataFrame({"text": ["a good film", "a bad film"] * 20, "label": ["pos", "neg"] * 20})
>>> dls = TextDataLoaders.from_df(df, text_col="text", label_col="label", bs=8, min_freq=1)
>>> dls.vocab[1]
['neg', 'pos']
"""

from __future__ import annotations

import copy
import math
import warnings
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..data.block import (
    CategoryBlock,
    MultiCategoryBlock,
    RegressionBlock,
    SamplePipeline,
    TransformBlock,
    block_from_spec,
)
from ..data.loaders import DataLoaders
from ..data.recipe import DataRecipe
from ..exceptions import DataError
from ..export import register_recipe
from ..losses import CrossEntropyLossFlat
from .tokenize import (
    PAD,
    UNK,
    Tokenizer,
    _check_texts,
    _join_cols,
    _text_files,
    defaults,
    read_text_file,
    tokenize_texts,
)

__all__ = [
    "register_tokenizer",
    "tokenizer_from_spec",
    "Numericalize",
    "TextBlock",
    "LMLoader",
    "LMDataLoader",
    "SortedTextLoader",
    "TextLMRecipe",
    "TextClassifierRecipe",
    "TextDataLoaders",
    "pad_collate",
]

# ---------------------------------------------------------------------------------- tokenizer registry
_TOKENIZERS: dict[str, type] = {}


def register_tokenizer(cls: type) -> type:
    """Class decorator: register a numericalized tokenizer class (see the module docstring) by its name, so
    ``load_learner`` can rebuild it with ``cls.from_spec``.

    >>> @register_tokenizer
    ... class CharIds:
    ...     numericalized = True
    """
    if not isinstance(cls, type) or not getattr(cls, "numericalized", False):
        raise DataError(
            f"Expected a tokenizer class with numericalized = True. Received: {cls!r}. Fix: see the "
            "tokenizer protocol in learnkit.text.data."
        )
    _TOKENIZERS[cls.__name__] = cls
    return cls


def tokenizer_from_spec(spec: dict):
    """Rebuild a tokenizer from a recipe's ``'tokenizer'`` spec (word pipeline or a registered class).

    Example: ``tokenizer_from_spec({'name': 'Tokenizer', 'spec': Tokenizer().spec()})`` -> a ``Tokenizer``.
    """
    if spec.get("name") == "Tokenizer":
        return Tokenizer.from_spec(spec["spec"])
    name = spec.get("name")
    if name not in _TOKENIZERS and name == "HFTokenizer":
        import importlib

        importlib.import_module("learnkit.text.hf")
    if name not in _TOKENIZERS:
        raise DataError(
            f"The file names the tokenizer class {name!r}, which is not registered. Expected one of "
            f"{sorted(_TOKENIZERS) + ['Tokenizer']}. Fix: import the module that defines it (it calls "
            "learnkit.text.register_tokenizer) before load_learner."
        )
    return _TOKENIZERS[name].from_spec(spec["spec"])


def _is_numericalized(tok) -> bool:
    return bool(getattr(tok, "numericalized", False))


def _tokenizer_spec(tok) -> dict:
    if _is_numericalized(tok):
        if type(tok).__name__ not in _TOKENIZERS:
            raise DataError(
                f"Expected a registered tokenizer class (so load_learner can rebuild it). Received: "
                f"{type(tok).__name__}. Fix: decorate it with learnkit.text.register_tokenizer."
            )
        return {"name": type(tok).__name__, "spec": tok.spec()}
    return {"name": "Tokenizer", "spec": tok.spec()}


# ----------------------------------------------------------------------------------------- numericalize
class Numericalize:
    """Tokens <-> ids with a vocab fitted on the training texts.

    The vocab is the special tokens first (``defaults.text_spec_tok``: ``xxunk`` is 0, ``xxpad`` is 1), then
    the tokens seen at least ``min_freq`` times, most frequent first, at most ``max_vocab`` of them, padded
    with ``xxfake`` entries to a multiple of 8 (faster matrix products). Unknown tokens map to ``xxunk``.

    >>> num = Numericalize(min_freq=1).setup([["xxbos", "a", "b", "a"]])
    >>> num(["a", "b", "zzz"]).tolist(), num.decode(num(["a", "b"]))
    ([9, 10, 0], 'a b')
    """

    def __init__(
        self,
        vocab: Sequence[str] | None = None,
        min_freq: int = 3,
        max_vocab: int = 60000,
        special_toks: Sequence[str] | None = None,
    ):
        if int(min_freq) < 1 or int(max_vocab) < 1:
            raise DataError(
                f"Expected min_freq >= 1 and max_vocab >= 1. Received: min_freq={min_freq}, "
                f"max_vocab={max_vocab}."
            )
        self.min_freq, self.max_vocab = int(min_freq), int(max_vocab)
        self.special_toks = list(defaults.text_spec_tok if special_toks is None else special_toks)
        self.vocab: list[str] | None = None
        if vocab is not None:
            self._set(list(vocab))

    def _set(self, vocab: list[str]) -> None:
        if UNK not in vocab or PAD not in vocab:
            raise DataError(
                f"Expected a vocab that contains {UNK!r} and {PAD!r}. Received: {len(vocab)} tokens "
                f"starting {vocab[:5]}. Fix: pass the vocab of a learnkit text DataLoaders (dls.vocab)."
            )
        self.vocab = vocab
        self.o2i = {t: i for i, t in enumerate(vocab)}
        self.unk_id, self.pad_id = self.o2i[UNK], self.o2i[PAD]

    def setup(self, token_lists=None, counter: Counter | None = None) -> Numericalize:
        """Fit the vocab on the training ``token_lists`` (or a ``Counter``) unless one was given."""
        if self.vocab is not None:
            return self
        if counter is None:
            counter = Counter()
            for d in token_lists:
                counter.update(d)
        specials = set(self.special_toks)
        words = [t for t, c in counter.most_common() if c >= self.min_freq and t not in specials]
        vocab = self.special_toks + words[: self.max_vocab]
        vocab += [f"xxfake{i}" for i in range(-len(vocab) % 8)]
        self._set(vocab)
        return self

    def __call__(self, tokens: Sequence[str]) -> np.ndarray:
        get, unk = self.o2i.get, self.unk_id
        return np.fromiter((get(t, unk) for t in tokens), dtype=np.int64, count=len(tokens))

    def encode_many(self, token_lists) -> list[np.ndarray]:
        return [self(t) for t in token_lists]

    def decode(self, ids, sep: str = " ") -> str:
        """Ids back to text (tokens joined with ``sep``; padding left out)."""
        ids = ids.tolist() if hasattr(ids, "tolist") else list(ids)
        return sep.join(self.vocab[i] for i in ids if i != self.pad_id)

    def __len__(self) -> int:
        return len(self.vocab or ())


# ---------------------------------------------------------------------------------------------- the block
class TextBlock(TransformBlock):
    """How texts become ids: the tokenizer (and its rules), the vocab and, for a language model, ``seq_len``.

    fastai's constructors: ``TextBlock.from_df(text_cols, vocab=None, is_lm=False, seq_len=72, min_freq=3,
    max_vocab=60000, tok=None, rules=None, ...)`` and ``TextBlock.from_folder(path, ...)``. Two ways to use it:

    - in a generic :class:`~learnkit.data.DataBlock`, as in fastai::

        DataBlock(blocks=TextBlock.from_df('text', is_lm=True), get_x=ColReader('text'),
                  splitter=ColSplitter()).dataloaders(df, bs=64, seq_len=72)
        DataBlock(blocks=(TextBlock.from_df('text', vocab=dls_lm.vocab), CategoryBlock),
                  get_x=ColReader('text'), get_y=ColReader('label'), splitter=ColSplitter()).dataloaders(df)

      The block batches the data itself (``builds_loaders``): the texts (what ``get_x`` gives: a string, a
      row, or a file path that is read) are tokenized together, and the loaders are the ones
      :class:`TextDataLoaders` builds (a token stream for a language model, length-sorted padded batches
      for a classifier), with the text recipes the text learners and exports use. The per-item ``encode``
      of other blocks does not apply: :meth:`encode` takes a list of texts.
    - as ``text_block=`` of :meth:`TextDataLoaders.from_df` / ``from_folder`` (the factories build one from
      their own arguments otherwise).

    ``tokenizer=`` takes a numericalized tokenizer (see the module docstring).

    >>> blk = TextBlock.from_df("text", is_lm=True, seq_len=36, min_freq=1)
    >>> blk.setup(["A first text.", "A second one."]).encode(["A text"])[0].tolist()
    [2, 8, 9, 12]
    """

    kind = "text"
    builds_loaders = True

    def __init__(
        self,
        tok=None,
        vocab=None,
        is_lm: bool = False,
        seq_len: int = 72,
        min_freq: int = 3,
        max_vocab: int = 60000,
        rules=None,
        n_workers: int | None = None,
        text_cols="text",
        mark_fields: bool | None = None,
        cache_dir=None,
        tokenizer=None,
        encoding: str = "utf-8",
        errors: str = "strict",
        path=None,
    ):
        tok = tokenizer if tokenizer is not None else tok
        if _is_numericalized(tok):
            self.tokenizer, self.num = tok, None
        else:
            self.tokenizer = tok if isinstance(tok, Tokenizer) else Tokenizer(tok, rules)
            self.num = Numericalize(vocab, min_freq=min_freq, max_vocab=max_vocab)
        self.is_lm, self.seq_len, self.n_workers, self.text_cols = is_lm, int(seq_len), n_workers, text_cols
        self.mark_fields, self.cache_dir, self.encoding, self.errors = (
            mark_fields,
            cache_dir,
            encoding,
            errors,
        )
        self.path = path
        if self.seq_len < 1:
            raise DataError(f"Expected seq_len >= 1. Received: seq_len={seq_len}.")

    @classmethod
    def from_df(
        cls,
        text_cols="text",
        vocab=None,
        is_lm: bool = False,
        seq_len: int = 72,
        backwards: bool = False,
        min_freq: int = 3,
        max_vocab: int = 60000,
        tok=None,
        rules=None,
        sep: str = " ",
        n_workers=None,
        mark_fields=None,
        tok_text_col: str = "text",
        cache_dir=None,
        tokenizer=None,
    ) -> TextBlock:
        """A text block reading ``text_cols`` of a DataFrame (several columns are joined with ``xxfld``)."""
        if backwards:
            raise DataError(
                "Expected backwards=False. Received: backwards=True (backward language models are not "
                "supported yet). Fix: train a forward model."
            )
        return cls(
            tok,
            vocab,
            is_lm,
            seq_len,
            min_freq,
            max_vocab,
            rules,
            n_workers,
            text_cols,
            mark_fields,
            cache_dir,
            tokenizer,
        )

    @classmethod
    def from_folder(
        cls,
        path,
        vocab=None,
        is_lm: bool = False,
        seq_len: int = 72,
        backwards: bool = False,
        min_freq: int = 3,
        max_vocab: int = 60000,
        tok=None,
        rules=None,
        extensions=(".txt",),
        folders=None,
        output_dir=None,
        n_workers=None,
        encoding: str = "utf-8",
        errors: str = "strict",
        cache_dir=None,
        tokenizer=None,
    ) -> TextBlock:
        """A text block reading text files (``encoding``; ``errors='replace'`` reads files with bad bytes)."""
        blk = cls.from_df(
            "text",
            vocab,
            is_lm,
            seq_len,
            backwards,
            min_freq,
            max_vocab,
            tok,
            rules,
            n_workers=n_workers,
            cache_dir=cache_dir,
            tokenizer=tokenizer,
        )
        blk.encoding, blk.errors, blk.path = encoding, errors, path
        return blk

    # ---------------------------------------------------------------- inside a generic DataBlock
    def build_dataloaders(
        self,
        dblock,
        items,
        train_idx: list,
        valid_idx: list,
        bs: int = 64,
        shuffle: bool = True,
        device=None,
        val_bs: int | None = None,
        seed: int | None = None,
        path=".",
        seq_len: int | None = None,
        num_workers=None,
        pin_memory=None,
        drop_last=None,
        **kwargs,
    ) -> TextDataLoaders:
        """``DataBlock.dataloaders`` for a DataBlock with this block as its input: the texts of the split
        items (through the DataBlock's ``get_x``/``get_y``) go to :meth:`TextDataLoaders.from_texts`.

        ``seq_len`` overrides the block's (fastai's ``dataloaders(..., seq_len=80)``); ``num_workers``,
        ``pin_memory`` and ``drop_last`` do not apply (the text loaders batch tensors held in memory).
        """
        blocks = dblock.blocks
        if type(blocks[0]) is not type(self) or dblock.n_inp != 1 or len(blocks) > 2:
            raise DataError(
                "Expected a DataBlock with the TextBlock first, as its one input, and at most one target "
                f"block. Received: blocks={[type(b).__name__ for b in blocks]}, n_inp={dblock.n_inp}. Fix: "
                "DataBlock(blocks=(TextBlock.from_df('text'), CategoryBlock), ...)."
            )
        if self.is_lm and len(blocks) > 1:
            raise DataError(
                f"Expected no target block with TextBlock(is_lm=True) (the targets are the next tokens). "
                f"Received: {type(blocks[1]).__name__}. Fix: blocks=TextBlock.from_df('text', is_lm=True)."
            )
        order = [int(i) for i in train_idx] + [int(i) for i in valid_idx]
        mask = [False] * len(train_idx) + [True] * len(valid_idx)
        pipe = SamplePipeline(blocks, 1, dblock.get_x, dblock.get_y)
        raw = pipe.values_for(items, order, range(len(blocks)))
        texts = self._texts_of(raw[0])
        if seq_len is not None:
            self.seq_len = int(seq_len)
        y_block = copy.deepcopy(blocks[1]) if len(blocks) > 1 else None
        return TextDataLoaders.from_texts(
            texts,
            raw.get(1),
            path=path,
            seed=seed,
            valid_mask=mask,
            y_block=y_block,
            is_lm=self.is_lm,
            bs=bs,
            val_bs=val_bs,
            text_block=self,
            device=device,
            shuffle=shuffle,
            **kwargs,
        )

    def _texts_of(self, values: list) -> list:
        """What ``get_x`` gave -> the texts: strings as they are, file paths read, rows' text columns."""
        if values and all(isinstance(v, dict) for v in values):  # rows (get_x=None over a DataFrame)
            cols = self.text_cols
            multi = not isinstance(cols, (str, int)) and len(list(cols)) > 1
            mark = multi if self.mark_fields is None else self.mark_fields
            return _join_cols(pd.DataFrame(values), cols, mark)
        return [
            read_text_file(v if self.path is None else Path(self.path) / v, self.encoding, self.errors)
            if isinstance(v, Path)
            else v
            for v in values
        ]

    # ---------------------------------------------------------------- fitting and encoding
    @property
    def vocab(self) -> list[str]:
        return list(self.tokenizer.vocab) if self.num is None else self.num.vocab

    @property
    def pad_id(self) -> int:
        return int(self.tokenizer.pad_id) if self.num is None else self.num.pad_id

    def tokenize(self, texts: list[str]) -> list[list[str]]:
        """Texts -> token lists (word pipeline; cached when ``cache_dir`` is set)."""
        return tokenize_texts(texts, n_workers=self.n_workers, tok=self.tokenizer, cache_dir=self.cache_dir)

    def setup(self, train_texts: list[str], tokens: list[list[str]] | None = None) -> TextBlock:
        """Fit the vocab (and a subword model) on the training texts."""
        if self.num is None:
            return self
        tok = self.tokenizer.tok
        if hasattr(tok, "setup") and getattr(tok, "model_bytes", 1) is None:
            tok.setup([self._pre(t) for t in train_texts])
        self.num.setup(tokens if tokens is not None else self.tokenize(train_texts))
        return self

    def _pre(self, t: str) -> str:
        for r in self.tokenizer.rules:
            t = r(t)
        return t

    def encode(self, texts: list[str], tokens: list[list[str]] | None = None) -> list[np.ndarray]:
        """Texts -> arrays of ids."""
        if self.num is None:
            return [np.asarray(ids, dtype=np.int64) for ids in self.tokenizer.encode_batch(list(texts))]
        if self.num.vocab is None:
            raise DataError(
                "Expected a fitted TextBlock. Received: no vocab yet. Fix: call setup(train_texts) "
                "first, or pass vocab=."
            )
        return self.num.encode_many(tokens if tokens is not None else self.tokenize(texts))

    def decode(self, ids) -> str:
        """Ids back to text (padding left out)."""
        if self.num is None:
            ids = ids.tolist() if hasattr(ids, "tolist") else list(ids)
            return self.tokenizer.decode([i for i in ids if i != self.pad_id])
        return self.num.decode(ids)

    def spec(self) -> dict:
        return {
            "tokenizer": _tokenizer_spec(self.tokenizer),
            "vocab": None if self.num is None else self.num.vocab,
            "is_lm": self.is_lm,
            "seq_len": self.seq_len,
        }

    @classmethod
    def from_spec(cls, spec: dict) -> TextBlock:
        tok = tokenizer_from_spec(spec["tokenizer"])
        return cls(
            tok,
            vocab=spec.get("vocab"),
            is_lm=spec.get("is_lm", False),
            seq_len=spec.get("seq_len", 72),
            min_freq=1,
            n_workers=0,
        )


# ---------------------------------------------------------------------------------------------- loaders
def _check_rank(num_replicas, rank) -> None:
    if int(num_replicas) < 1 or not 0 <= int(rank) < int(num_replicas):
        raise DataError(
            f"Expected num_replicas >= 1 and 0 <= rank < num_replicas. Received: num_replicas={num_replicas}, "
            f"rank={rank}. Fix: pass the process group's world size and this process's rank."
        )


class LMLoader:
    """Language-model batches: the documents joined into ``bs`` contiguous streams, ``seq_len`` windows.

    Each epoch (when ``shuffle``) the documents are put in a new order, concatenated, and the stream is cut
    into ``bs`` rows of equal length; batch ``k`` is ``x[:, k*seq_len:(k+1)*seq_len]`` and its target the same
    window shifted by one token. Every token but the last ``< bs`` of the stream is used; no padding.

    >>> dl = LMLoader([np.arange(50)], bs=2, seq_len=5)
    >>> x, y = next(iter(dl)); x.tolist(), y.tolist()
    ([[0, 1, 2, 3, 4], [24, 25, 26, 27, 28]], [[1, 2, 3, 4, 5], [25, 26, 27, 28, 29]])
    """

    def __init__(
        self,
        docs: Sequence[np.ndarray],
        bs: int = 64,
        seq_len: int = 72,
        shuffle: bool = False,
        seed: int | None = None,
        drop_last: bool = False,
    ):
        self.docs = [np.asarray(d, dtype=np.int64) for d in docs]
        self.bs, self.seq_len, self.shuffle, self.seed, self.drop_last = (
            int(bs),
            int(seq_len),
            shuffle,
            seed,
            drop_last,
        )
        self.n_tokens = int(sum(len(d) for d in self.docs))
        self.epoch, self._start_batch = 0, 0
        # the stream is cut into n_rows rows and this loader yields rows [row_lo, row_hi): all of them
        # unless sharded (shard: this rank's bs rows of bs * num_replicas; shard_eval: a share of the bs rows)
        self.num_replicas, self.rank = 1, 0
        self.n_rows, self.row_lo, self.row_hi = self.bs, 0, self.bs
        if self.bs < 1 or self.seq_len < 1:
            raise DataError(f"Expected bs >= 1 and seq_len >= 1. Received: bs={bs}, seq_len={seq_len}.")
        self._check_tokens()

    def _check_tokens(self) -> None:
        if self.row_len < 1:
            raise DataError(
                f"Expected at least {self.n_rows + 1} tokens for the language-model loader ({self.n_rows} "
                f"rows; bs={self.bs}, replicas={self.num_replicas}). Received: {self.n_tokens} tokens. "
                "Fix: use a smaller bs, or more text."
            )

    @property
    def row_len(self) -> int:
        """Tokens per stream (row) and epoch."""
        return (self.n_tokens - 1) // self.n_rows

    @property
    def dataset(self):
        return self.docs

    def __len__(self) -> int:
        if self.row_hi <= self.row_lo:
            return 0
        n = self.row_len / self.seq_len
        return int(n) if self.drop_last else math.ceil(n)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def skip(self, n_batches: int) -> None:
        self._start_batch = n_batches

    def shard(self, num_replicas: int, rank: int, seed: int = 0) -> LMLoader:
        """Make this loader yield rank ``rank``'s share for distributed training (the sharding protocol of
        :mod:`learnkit.data.loaders`).

        Every rank draws the same document order (``seed + epoch``), cuts the stream into
        ``bs * num_replicas`` rows and reads its own ``bs`` of them: ranks see disjoint tokens, every rank
        has the same number of batches, and each row still continues from one batch to the next.

        >>> dl = LMLoader([np.arange(41)], bs=2, seq_len=5).shard(2, 1)
        >>> next(iter(dl))[0].tolist()
        [[20, 21, 22, 23, 24], [30, 31, 32, 33, 34]]
        """
        _check_rank(num_replicas, rank)
        self.num_replicas, self.rank = int(num_replicas), int(rank)
        self.n_rows, self.row_lo, self.row_hi = (
            self.bs * self.num_replicas,
            self.bs * rank,
            self.bs * (rank + 1),
        )
        if self.seed is None:
            self.seed = seed
        self._check_tokens()
        return self

    def shard_eval(self, num_replicas: int, rank: int) -> LMLoader:
        """A copy reading rank ``rank``'s contiguous share of the ``bs`` rows (for evaluation): together the
        ranks evaluate exactly the windows one process would, each once (a rank may get no rows).

        >>> [len(LMLoader([np.arange(41)], bs=4, seq_len=5).shard_eval(3, r)) for r in range(3)]
        [2, 2, 2]
        """
        _check_rank(num_replicas, rank)
        if self.num_replicas != 1:
            raise DataError(
                "Expected an unsharded LMLoader for shard_eval. Received: one sharded for "
                f"{self.num_replicas} replicas. Fix: call shard_eval on the original loader."
            )
        new = copy.copy(self)
        new.row_lo, new.row_hi = self.bs * rank // num_replicas, self.bs * (rank + 1) // num_replicas
        return new

    def _stream(self) -> torch.Tensor:
        if self.shuffle:
            g = torch.Generator()
            if self.seed is not None:
                g.manual_seed(self.seed + self.epoch)
            else:
                g.manual_seed(int(torch.empty((), dtype=torch.int64).random_().item()))
            order = torch.randperm(len(self.docs), generator=g).tolist()
            self.epoch += 1  # a seeded loader still draws a new order each epoch (set_epoch pins it)
        else:
            order = range(len(self.docs))
        return torch.from_numpy(np.concatenate([self.docs[i] for i in order]))

    def __iter__(self):
        s = self._stream()
        n, rows = self.row_len, self.n_rows
        x = s[: rows * n].view(rows, n)[self.row_lo : self.row_hi]
        y = s[1 : rows * n + 1].view(rows, n)[self.row_lo : self.row_hi]
        start, self._start_batch = self._start_batch, 0
        stop = len(self) * self.seq_len if self.row_hi > self.row_lo else 0
        return (
            (x[:, i : i + self.seq_len], y[:, i : i + self.seq_len])
            for i in range(start * self.seq_len, stop, self.seq_len)
        )


#: fastai's name
LMDataLoader = LMLoader


def pad_collate(docs: Sequence[np.ndarray], pad_id: int, max_len: int | None = None) -> torch.Tensor:
    """Id arrays -> one ``(n, longest)`` int64 tensor, padded at the end with ``pad_id`` (cut at ``max_len``).

    >>> pad_collate([np.array([5, 6, 7]), np.array([8])], pad_id=1).tolist()
    [[5, 6, 7], [8, 1, 1]]
    """
    lens = [min(len(d), max_len) if max_len else len(d) for d in docs]
    out = torch.full((len(docs), max(max(lens, default=1), 1)), int(pad_id), dtype=torch.int64)
    for i, (d, n) in enumerate(zip(docs, lens)):
        if n:
            out[i, :n] = torch.from_numpy(np.asarray(d[:n], dtype=np.int64))
    return out


class SortedTextLoader:
    """Classifier batches of documents with similar lengths, padded at the end with ``pad_id``.

    ``shuffle=True`` (training): a random permutation cut into chunks of ``chunk_mult * bs`` documents, each
    chunk sorted by length, then the batches shuffled; with ``sort=False`` the random permutation is cut
    into batches as it is (each batch still padded only to its longest document). ``shuffle=False,
    sort=True`` (validation): all documents sorted by length, longest first. ``sort=False`` keeps the given
    order (``test_dl``).
    ``targets``: a tensor with one row per document, or ``None`` (inference).

    >>> dl = SortedTextLoader([np.array([5, 6, 7]), np.array([8])], torch.tensor([0, 1]), bs=2, pad_id=1)
    >>> x, y = next(iter(dl)); x.tolist(), y.tolist()
    ([[5, 6, 7], [8, 1, 1]], [0, 1])
    """

    def __init__(
        self,
        docs: Sequence[np.ndarray],
        targets: torch.Tensor | None = None,
        bs: int = 64,
        pad_id: int = 1,
        shuffle: bool = False,
        sort: bool = True,
        max_len: int | None = None,
        seed: int | None = None,
        chunk_mult: int = 50,
    ):
        self.docs, self.targets, self.bs, self.pad_id = list(docs), targets, int(bs), int(pad_id)
        self.shuffle, self.sort, self.max_len, self.seed, self.chunk_mult = (
            shuffle,
            sort,
            max_len,
            seed,
            chunk_mult,
        )
        self.lens = np.array([len(d) for d in self.docs], dtype=np.int64)
        if max_len:
            self.lens = np.minimum(self.lens, max_len)
        self.epoch, self._start_batch = 0, 0
        self.num_replicas, self.rank = 1, 0
        if self.bs < 1:
            raise DataError(f"Expected bs >= 1. Received: bs={bs}.")

    @property
    def dataset(self):
        return self.docs

    def __len__(self) -> int:
        return math.ceil(math.ceil(len(self.docs) / self.bs) / self.num_replicas)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def skip(self, n_batches: int) -> None:
        self._start_batch = n_batches

    def shard(self, num_replicas: int, rank: int, seed: int = 0) -> SortedTextLoader:
        """Make this loader yield rank ``rank``'s batches for distributed training (the sharding protocol of
        :mod:`learnkit.data.loaders`).

        Every rank builds the same epoch of length-sorted batches (``seed + epoch``) and takes every
        ``num_replicas``-th of them, starting at ``rank``: disjoint documents, the same sort-by-length
        batching as one process, and the same number of batches on every rank (the last round is filled
        with batches from the start of the epoch, as ``DistributedSampler`` pads).

        >>> dl = SortedTextLoader([np.arange(k + 1) for k in range(8)], torch.arange(8), bs=2).shard(2, 0)
        >>> [y.tolist() for x, y in dl]
        [[7, 6], [3, 2]]
        """
        _check_rank(num_replicas, rank)
        self.num_replicas, self.rank = int(num_replicas), int(rank)
        if self.seed is None:
            self.seed = seed
        return self

    def shard_eval(self, num_replicas: int, rank: int) -> SortedTextLoader:
        """A copy over rank ``rank``'s contiguous share of the documents in this loader's order (for
        evaluation): concatenated in rank order, the ranks' batches give this loader's order, unpadded.

        >>> dl = SortedTextLoader([np.arange(k + 1) for k in range(5)], torch.arange(5), bs=2)
        >>> [y.tolist() for x, y in dl.shard_eval(2, 1)]
        [[2, 1], [0]]
        """
        _check_rank(num_replicas, rank)
        if self.num_replicas != 1 or self.shuffle:
            raise DataError(
                "Expected an unsharded, unshuffled SortedTextLoader for shard_eval. Received: "
                f"num_replicas={self.num_replicas}, shuffle={self.shuffle}. Fix: call shard_eval on the "
                "validation loader."
            )
        n = len(self.docs)
        idx = np.argsort(-self.lens, kind="stable") if self.sort else np.arange(n)
        part = idx[n * rank // num_replicas : n * (rank + 1) // num_replicas]
        new = copy.copy(self)
        new.docs, new.lens, new.sort = [self.docs[i] for i in part], self.lens[part], False
        new.targets = None if self.targets is None else self.targets[torch.from_numpy(part)]
        return new

    def batch_order(self) -> list[np.ndarray]:
        """The index arrays of this epoch's batches (this rank's, when sharded)."""
        batches = self._all_batches()
        if self.num_replicas == 1:
            return batches
        per_rank = math.ceil(len(batches) / self.num_replicas)
        total = per_rank * self.num_replicas
        batches = batches + batches[: total - len(batches)]  # fill the last round (as DistributedSampler)
        return batches[self.rank :: self.num_replicas]

    def _all_batches(self) -> list[np.ndarray]:
        n, bs = len(self.docs), self.bs
        if self.shuffle:
            rng = np.random.default_rng(
                self.seed + self.epoch
                if self.seed is not None
                else int(torch.empty((), dtype=torch.int64).random_().item())
            )
            self.epoch += 1
            idx = rng.permutation(n)
            if not self.sort:
                return [idx[i : i + bs] for i in range(0, n, bs)]
            cs = bs * self.chunk_mult
            idx = np.concatenate(
                [c[np.argsort(-self.lens[c], kind="stable")] for c in np.split(idx, range(cs, n, cs))]
            )
            batches = [idx[i : i + bs] for i in range(0, n, bs)]
            perm = rng.permutation(len(batches))
            return [batches[i] for i in perm]
        idx = np.argsort(-self.lens, kind="stable") if self.sort else np.arange(n)
        return [idx[i : i + bs] for i in range(0, n, bs)]

    def __iter__(self):
        order = self.batch_order()
        start, self._start_batch = self._start_batch, 0
        return (self._batch(b) for b in order[start:])

    def _batch(self, b: np.ndarray):
        x = pad_collate([self.docs[i] for i in b], self.pad_id, self.max_len)
        if self.targets is None:
            return (x,)
        return x, self.targets[torch.from_numpy(b)]


# ---------------------------------------------------------------------------------------------- recipes
def _show_table(rows: list[dict], max_n: int, display: bool):
    df = pd.DataFrame(rows[:max_n])
    if display:
        try:
            from IPython import get_ipython
            from IPython.display import display as _display

            if get_ipython() is not None:
                _display(df)
                return df
        except ImportError:
            pass
        with pd.option_context("display.max_colwidth", 120):
            print(df.to_string())
    return df


class TextLMRecipe(DataRecipe):
    """The data recipe of a language model (``dls.recipe``): tokenizer, vocab, ``seq_len``.

    ``vocab`` is the token list; ``c`` its length; the loss is flattened cross-entropy over the tokens.

    Example: ``dls_lm = TextDataLoaders.from_folder(path, is_lm=True); dls_lm.recipe.vocab[:5]``.
    """

    kind = "text_lm"
    n_inp = 1

    def __init__(self, block: TextBlock, bs: int = 64):
        self.block, self.bs = block, bs
        self.loss_func = CrossEntropyLossFlat()

    @property
    def vocab(self):
        return self.block.vocab

    @property
    def c(self) -> int:
        return len(self.block.vocab)

    def default_metrics(self) -> list:
        from ..metrics import Perplexity, accuracy

        return [accuracy, Perplexity()]

    def decode_batch(self, batch, max_n: int | None = None) -> list[tuple]:
        x, *rest = batch
        n = len(x) if max_n is None else min(max_n, len(x))
        out = []
        for i in range(n):
            item = [self.block.decode(x[i].cpu())]
            if rest:
                item.append(self.block.decode(rest[0][i].cpu()))
            out.append(tuple(item))
        return out

    def show_batch(self, batch, max_n: int = 9, display: bool = True, **kwargs):
        """A table of decoded input windows and their targets (shifted by one token)."""
        rows = [
            {"text": t[0], **({"text_": t[1]} if len(t) > 1 else {})} for t in self.decode_batch(batch, max_n)
        ]
        return _show_table(rows, max_n, display)

    def show_results(self, batch, decoded_preds, max_n: int = 9, display: bool = True, **kwargs):
        rows = [
            {"text": t[0], "target": t[1] if len(t) > 1 else "", "pred": self.block.decode(p.cpu())}
            for t, p in zip(self.decode_batch(batch, max_n), decoded_preds)
        ]
        return _show_table(rows, max_n, display)

    def encode_texts(self, texts) -> list[np.ndarray]:
        return self.block.encode(_check_texts(texts))

    def test_dl(self, items, with_labels: bool = False, bs: int = 64, **kwargs):
        """Raw texts -> a loader of padded id batches (input only)."""
        return SortedTextLoader(self.encode_texts(items), None, bs=bs, pad_id=self.block.pad_id, sort=False)

    def spec(self) -> dict:
        return {"kind": self.kind, "block": self.block.spec(), "bs": self.bs}

    @classmethod
    def from_spec(cls, spec: dict) -> TextLMRecipe:
        return cls(TextBlock.from_spec(spec["block"]), bs=spec.get("bs", 64))


class TextClassifierRecipe(DataRecipe):
    """The data recipe of a text classifier: tokenizer and vocab, the label block, ``max_len``.

    ``vocab`` is ``[text_vocab, label_vocab]`` (fastai's layout); ``c`` the number of classes.

    Example: ``dls = TextDataLoaders.from_folder(path, text_vocab=dls_lm.vocab); dls.recipe.c``.
    """

    kind = "text_classifier"
    n_inp = 1

    def __init__(
        self, block: TextBlock, y_block: TransformBlock, bs: int = 64, max_len: int | None = 72 * 20
    ):
        self.block, self.y_block, self.bs, self.max_len = block, y_block, bs, max_len
        self.loss_func = y_block.loss_func()

    @property
    def vocab(self):
        return [self.block.vocab, self.y_block.vocab]

    @property
    def c(self):
        return self.y_block.c

    def default_metrics(self) -> list:
        return []

    def decode_pred(self, decoded):
        return self.y_block.decode_pred(decoded)

    def decode_batch(self, batch, max_n: int | None = None) -> list[tuple]:
        x, *rest = batch
        n = len(x) if max_n is None else min(max_n, len(x))
        out = []
        for i in range(n):
            item = [self.block.decode(x[i].cpu())]
            if rest:
                item.append(self.y_block.decode(rest[0][i].cpu()))
            out.append(tuple(item))
        return out

    def show_batch(self, batch, max_n: int = 9, display: bool = True, **kwargs):
        """A table of decoded texts with their labels."""
        rows = [
            {"text": t[0], **({"category": t[1]} if len(t) > 1 else {})}
            for t in self.decode_batch(batch, max_n)
        ]
        return _show_table(rows, max_n, display)

    def show_results(self, batch, decoded_preds, max_n: int = 9, display: bool = True, **kwargs):
        rows = []
        for t, p in zip(self.decode_batch(batch, max_n), decoded_preds):
            rows.append(
                {
                    "text": t[0],
                    "category": t[1] if len(t) > 1 else "",
                    "category_": self.y_block.decode(p.cpu() if hasattr(p, "cpu") else p),
                }
            )
        return _show_table(rows, max_n, display)

    def test_dl(self, items, with_labels: bool = False, bs: int = 64, **kwargs):
        """Raw texts (in their order) -> padded batches; ``with_labels``: items are ``(text, label)`` pairs."""
        if with_labels:
            texts, labels = [t for t, _ in items], [y for _, y in items]
            y = self.y_block.encode_many(labels, what="the test labels")
        else:
            texts, y = items, None
        docs = self.block.encode(_check_texts(texts))
        return SortedTextLoader(docs, y, bs=bs, pad_id=self.block.pad_id, sort=False, max_len=self.max_len)

    def spec(self) -> dict:
        return {
            "kind": self.kind,
            "block": self.block.spec(),
            "y_block": self.y_block.spec(),
            "bs": self.bs,
            "max_len": self.max_len,
        }

    @classmethod
    def from_spec(cls, spec: dict) -> TextClassifierRecipe:
        return cls(
            TextBlock.from_spec(spec["block"]),
            block_from_spec(spec["y_block"]),
            bs=spec.get("bs", 64),
            max_len=spec.get("max_len"),
        )


register_recipe(TextLMRecipe.kind, "learnkit.text.data:TextLMRecipe.from_spec")
register_recipe(TextClassifierRecipe.kind, "learnkit.text.data:TextClassifierRecipe.from_spec")


# ------------------------------------------------------------------------------------------ the factories
def _split_idx(n: int, valid_pct: float, seed: int | None, valid_mask=None) -> tuple[np.ndarray, np.ndarray]:
    if valid_mask is not None:
        m = np.asarray(valid_mask, dtype=bool)
        return np.flatnonzero(~m), np.flatnonzero(m)
    if not 0 <= valid_pct < 1:
        raise DataError(f"Expected 0 <= valid_pct < 1. Received: valid_pct={valid_pct}.")
    rng = np.random.default_rng(seed)
    idx = rng.permutation(n)
    nv = int(round(n * valid_pct))
    return np.sort(idx[nv:]), np.sort(idx[:nv])


def _as_bool_col(df, col) -> np.ndarray:
    if col not in df.columns:
        raise DataError(
            f"Expected a validation column in the DataFrame. Received: valid_col={col!r}; columns are "
            f"{list(df.columns)}."
        )
    v = df[col]
    if v.dtype == bool:
        return v.to_numpy()
    lowered = v.astype(str).str.strip().str.lower()
    ok = lowered.isin(["true", "false", "1", "0", "yes", "no"])
    if not ok.all():
        raise DataError(f"Expected True/False values in valid_col={col!r}. Received: {v[~ok].iloc[0]!r}.")
    return lowered.isin(["true", "1", "yes"]).to_numpy()


def _y_block(y_block, label_delim):
    if y_block is None:
        return MultiCategoryBlock() if label_delim is not None else CategoryBlock()
    if isinstance(y_block, type):
        y_block = y_block()
    if not isinstance(y_block, (CategoryBlock, MultiCategoryBlock, RegressionBlock)):
        raise DataError(
            f"Expected y_block to be CategoryBlock, MultiCategoryBlock or RegressionBlock. Received: "
            f"{y_block!r}."
        )
    return y_block


def _column(df, col):
    """A column given by name, or by position when no column has that (int) name (fastai's text_col=0)."""
    if isinstance(col, int) and col not in df.columns and 0 <= col < df.shape[1]:
        return df.columns[col]
    return col


def _fastai_aliases(kwargs: dict, tok_tfm=None, vocab=None, text_vocab=None) -> dict:
    """The factories' keyword arguments with fastai's spellings mapped to ours (``tok_tfm`` -> ``tok``,
    ``vocab`` -> ``text_vocab``), in one place for ``from_df`` / ``from_csv`` / ``from_folder``."""
    out = dict(kwargs)
    if tok_tfm is not None:
        out.setdefault("tok", tok_tfm)
    if text_vocab is not None or vocab is not None:
        out["text_vocab"] = text_vocab if text_vocab is not None else vocab
    return out


class TextDataLoaders(DataLoaders):
    """Text ``DataLoaders`` for a language model (``is_lm=True``) or a classifier; fastai's factories.

    See the module docstring for the batches. ``text_vocab``: the LM's vocab (``dls_lm.vocab``) so the
    classifier numericalizes with the same ids as the encoder it reuses. ``tokenizer``: a tokenizer (see the
    module docstring); ``tok``/``rules`` customise the word pipeline. ``cache_dir``: cache tokenized texts.

    Example: ``dls = TextDataLoaders.from_texts(texts, labels, valid_pct=0.2, bs=32)``.
    """

    @classmethod
    def from_texts(
        cls,
        texts,
        labels=None,
        path=".",
        valid_pct: float = 0.2,
        seed: int | None = None,
        valid_mask=None,
        y_block=None,
        label_delim=None,
        text_vocab=None,
        is_lm: bool = False,
        seq_len: int = 72,
        bs: int = 64,
        val_bs: int | None = None,
        min_freq: int = 3,
        max_vocab: int = 60000,
        tok=None,
        rules=None,
        tokenizer=None,
        text_block: TextBlock | None = None,
        n_workers: int | None = None,
        cache_dir=None,
        max_len: int | None = 72 * 20,
        device=None,
        shuffle: bool = True,
    ) -> TextDataLoaders:
        """The factory the others call: a list of texts (and of labels for a classifier)."""
        texts = _check_texts(texts)
        n = len(texts)
        if n == 0:
            raise DataError("Expected at least one text. Received: none. Fix: check the column or folder.")
        tr, va = _split_idx(n, valid_pct, seed, valid_mask)
        if len(tr) == 0:
            raise DataError(
                f"Expected texts in the training split. Received: all {n} texts in validation. "
                "Fix: check valid_col / valid_pct."
            )
        blk = (
            text_block
            if text_block is not None
            else TextBlock(
                tok,
                text_vocab,
                is_lm,
                seq_len,
                min_freq,
                max_vocab,
                rules,
                n_workers,
                cache_dir=cache_dir,
                tokenizer=tokenizer,
            )
        )
        if text_vocab is not None and blk.num is not None and blk.num.vocab is None:
            blk.num._set(list(text_vocab))
        if blk.num is not None:
            tokens = blk.tokenize(texts)
            blk.setup([texts[i] for i in tr], [tokens[i] for i in tr])
            docs = blk.encode(texts, tokens)
        else:
            docs = blk.encode(texts)
        if is_lm or blk.is_lm:
            blk.is_lm = True
            recipe = TextLMRecipe(blk, bs=bs)
            tdl = LMLoader([docs[i] for i in tr], bs=bs, seq_len=blk.seq_len, shuffle=shuffle, seed=seed)
            vdocs = [docs[i] for i in va]
            n_vtok = sum(len(d) for d in vdocs)
            vbs = max(1, min(val_bs or bs, (n_vtok - 1) // 2))  # a small validation set gets fewer rows
            vdl = LMLoader(vdocs, bs=vbs, seq_len=blk.seq_len) if n_vtok > 2 else None
            return cls(tdl, vdl, device=device, recipe=recipe, path=path, loss_func=recipe.loss_func)
        if labels is None:
            raise DataError(
                "Expected labels for a classifier. Received: none. Fix: pass label_col=..., or is_lm=True "
                "for a language model."
            )
        labels = list(labels)
        yb = _y_block(y_block, label_delim)
        if isinstance(yb, MultiCategoryBlock) and label_delim is not None:
            labels = [
                [] if (v is None or (isinstance(v, float) and math.isnan(v))) else str(v).split(label_delim)
                for v in labels
            ]
        yb.setup([labels[i] for i in tr])
        if isinstance(yb, CategoryBlock) and yb.c is not None and yb.c < 2:
            raise DataError(
                f"Expected at least 2 classes in the label column for a classifier. Received: one class "
                f"({yb.vocab[0]!r}) in all {len(tr)} training texts. Fix: check label_col, or train a "
                "language model (is_lm=True) on unlabelled text."
            )
        y = yb.encode_many(labels, what="the labels")
        if max_len:
            n_cut = sum(1 for d in docs if len(d) > max_len)
            if n_cut:
                warnings.warn(
                    f"{n_cut} of {n} documents are longer than max_len={max_len} tokens and are truncated "
                    "to their first max_len tokens. Fix: pass a larger max_len to keep more.",
                    stacklevel=3,
                )
        recipe = TextClassifierRecipe(blk, yb, bs=bs, max_len=max_len)
        pad = blk.pad_id
        tdl = SortedTextLoader(
            [docs[i] for i in tr],
            y[torch.from_numpy(tr)],
            bs=bs,
            pad_id=pad,
            shuffle=shuffle,
            sort=bool(getattr(blk.tokenizer, "sort_batches", True)),
            max_len=max_len,
            seed=seed,
        )
        vdl = (
            SortedTextLoader(
                [docs[i] for i in va],
                y[torch.from_numpy(va)],
                bs=val_bs or bs * 2,
                pad_id=pad,
                max_len=max_len,
            )
            if len(va)
            else None
        )
        return cls(tdl, vdl, device=device, recipe=recipe, path=path, loss_func=recipe.loss_func)

    @classmethod
    def from_df(
        cls,
        df,
        path=".",
        valid_pct: float = 0.2,
        seed: int | None = None,
        text_col=0,
        label_col=1,
        label_delim=None,
        y_block=None,
        text_vocab=None,
        is_lm: bool = False,
        valid_col=None,
        seq_len: int = 72,
        bs: int = 64,
        val_bs: int | None = None,
        tok_tfm=None,
        **kwargs,
    ) -> TextDataLoaders:
        """From a DataFrame: ``text_col`` (name, index, or a list of columns joined with ``xxfld``), ``label_col``,
        ``valid_col`` (a boolean column marking validation rows) or a random ``valid_pct`` split."""
        if not isinstance(df, pd.DataFrame):
            raise DataError(f"Expected a pandas DataFrame. Received: {type(df).__name__}.")
        text_col = _column(df, text_col)
        multi = not isinstance(text_col, (str, int)) and len(list(text_col)) > 1
        texts = _join_cols(df, text_col, multi)
        labels = None
        if not is_lm:
            label_col = _column(df, label_col)
            if label_col not in df.columns:
                raise DataError(
                    f"Expected a label column in the DataFrame. Received: label_col={label_col!r}; columns "
                    f"are {list(df.columns)}. Fix: pass label_col=<one of them>, or is_lm=True."
                )
            labels = df[label_col].tolist()
        mask = _as_bool_col(df, valid_col) if valid_col is not None else None
        kwargs = _fastai_aliases(kwargs, tok_tfm=tok_tfm)
        return cls.from_texts(
            texts,
            labels,
            path=path,
            valid_pct=valid_pct,
            seed=seed,
            valid_mask=mask,
            y_block=y_block,
            label_delim=label_delim,
            text_vocab=text_vocab,
            is_lm=is_lm,
            seq_len=seq_len,
            bs=bs,
            val_bs=val_bs,
            **kwargs,
        )

    @classmethod
    def from_csv(
        cls, path, csv_fname="labels.csv", header="infer", delimiter=None, **kwargs
    ) -> TextDataLoaders:
        """From a CSV file ``path/csv_fname`` (or ``path`` itself when it is the file); see :meth:`from_df`."""
        p = Path(path)
        f = p if p.is_file() else p / csv_fname
        if not f.exists():
            raise DataError(f"Expected a CSV file. Received: {str(f)!r}, which does not exist.")
        df = pd.read_csv(f, header=header, **({} if delimiter is None else {"delimiter": delimiter}))
        return cls.from_df(df, path=str(f.parent if p.is_file() else p), **kwargs)

    @classmethod
    def from_folder(
        cls,
        path,
        train: str = "train",
        valid: str = "valid",
        valid_pct: float | None = None,
        seed: int | None = None,
        vocab=None,
        text_vocab=None,
        is_lm: bool = False,
        tok_tfm=None,
        seq_len: int = 72,
        bs: int = 64,
        extensions=(".txt",),
        encoding: str = "utf-8",
        errors: str = "strict",
        **kwargs,
    ) -> TextDataLoaders:
        """From folders of text files: ``path/train/<label>/*.txt`` and ``path/valid/<label>/*.txt`` (labels from
        folder names), or a random ``valid_pct`` split of ``path/<label>/``. ``is_lm=True`` reads every text
        under ``path``. A file that is not valid ``encoding`` is an error naming it (``errors='replace'``)."""
        path = Path(path)
        kwargs = _fastai_aliases(kwargs, tok_tfm=tok_tfm, vocab=vocab, text_vocab=text_vocab)
        if is_lm or valid_pct is not None or not (path / train).is_dir():
            files = _text_files(path, extensions)
            roots = [path]
        else:
            files = _text_files(path, extensions, [train] + ([valid] if (path / valid).is_dir() else []))
            roots = [path / train, path / valid]
        if not files:
            raise DataError(f"Expected {'/'.join(extensions)} files under {str(path)!r}. Received: none.")
        texts = [read_text_file(f, encoding, errors) for f in files]
        labels = None if is_lm else [f.parent.name for f in files]
        mask = None
        if valid_pct is None and not is_lm and roots[0] != path:
            mask = [roots[1] in f.parents for f in files]
        if valid_pct is None:
            valid_pct = 0.1 if is_lm else (0.0 if mask is not None else 0.2)
        return cls.from_texts(
            texts,
            labels,
            path=str(path),
            valid_pct=valid_pct if mask is None else 0.0,
            seed=seed,
            valid_mask=mask,
            is_lm=is_lm,
            seq_len=seq_len,
            bs=bs,
            **kwargs,
        )
