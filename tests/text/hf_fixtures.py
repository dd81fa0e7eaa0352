"""Real data and a tiny real model folder for the Hugging Face tests (and the benchmark).

- :func:`docstring_corpus`: real English text with real labels: the summary paragraph of the docstrings of
  public functions and classes of numpy, pandas and torch, labelled by library (and by function/class).
- :func:`make_tiny_model`: a WordPiece tokenizer trained with ``tokenizers`` on that corpus's training
  texts and a 2-layer BERT (hidden size 32), both written with ``save_pretrained`` into a folder, so the
  tests load them through the real ``from_pretrained`` code, offline.
- :func:`fake_hub_cache`: the same folder laid out as a hub model in an HF cache (``models--org--name``).

Run as a script under torchrun (``hf_fixtures.py OUT MODEL_DIR``) it fine-tunes with DDP and writes each
rank's final weights to ``OUT/rank{r}.pt`` (see ``test_hf.py::test_ddp_two_processes``).
"""

from __future__ import annotations

import inspect
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd

LIBS = ("numpy", "pandas", "torch")


def _summary(doc: str | None) -> str | None:
    if not doc:
        return None
    para = doc.strip().split("\n\n")[0]
    text = " ".join(para.split())
    if len(text) < 20 or len(text) > 400 or text.startswith((">>>", "..")):
        return None
    return text


def _members(mod, prefix: str):
    for name in sorted(dir(mod)):
        if name.startswith("_"):
            continue
        try:
            obj = getattr(mod, name)
        except Exception:
            continue
        if inspect.isclass(obj) or inspect.isfunction(obj) or inspect.isbuiltin(obj) or callable(obj):
            yield f"{prefix}{name}", obj


def docstring_corpus(n_per_lib: int = 150, seed: int = 0) -> pd.DataFrame:
    """``text, lib, kind, n_words, is_valid``: up to ``n_per_lib`` docstring summaries per library, 25% valid."""
    import numpy
    import pandas
    import torch

    sources = {
        "numpy": [(numpy, "np."), (numpy.linalg, "np.linalg."), (numpy.random, "np.random.")],
        "pandas": [(pandas, "pd."), (pandas.DataFrame, "df."), (pandas.Series, "s.")],
        "torch": [(torch, "torch."), (torch.nn, "nn."), (torch.nn.functional, "F.")],
    }
    rows, seen = [], set()
    for lib, mods in sources.items():
        lib_rows = []
        for mod, prefix in mods:
            for _, obj in _members(mod, prefix):
                text = _summary(inspect.getdoc(obj))
                if text is None or text in seen:
                    continue
                seen.add(text)
                lib_rows.append(
                    {"text": text, "lib": lib, "kind": "class" if inspect.isclass(obj) else "function"}
                )
        rng = np.random.default_rng(seed)
        pick = rng.permutation(len(lib_rows))[:n_per_lib]
        rows += [lib_rows[i] for i in sorted(pick)]
    df = pd.DataFrame(rows)
    df["labels"] = df["lib"] + " " + df["kind"]
    words = np.log1p(df["text"].str.split().str.len())
    df["n_words"] = ((words - words.mean()) / words.std()).astype("float32")  # standardised log word count
    rng = np.random.default_rng(seed + 1)
    df["is_valid"] = rng.random(len(df)) < 0.25
    return df.reset_index(drop=True)


def make_tiny_model(
    folder, texts, vocab_size: int = 2000, hidden: int = 32, layers: int = 2, max_len: int = 96, seed: int = 0
) -> Path:
    """A WordPiece tokenizer trained on ``texts`` and a random 2-layer BERT, ``save_pretrained`` into ``folder``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    folder = Path(folder)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(
        list(texts),
        trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False),
    )
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    tok.decoder = decoders.WordPiece()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=max_len,
    )
    fast.save_pretrained(str(folder))
    torch.manual_seed(seed)
    cfg = BertConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=hidden * 2,
        max_position_embeddings=128,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    BertModel(cfg).save_pretrained(str(folder))
    return folder


def fake_hub_cache(model_dir, hf_home, repo: str = "learnkit-tests/tiny-bert") -> str:
    """Copy ``model_dir`` into ``hf_home/hub`` laid out as the hub cache holds ``repo``; returns ``repo``."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    root = Path(hf_home) / "hub" / ("models--" + repo.replace("/", "--"))
    snap = root / "snapshots" / commit
    snap.mkdir(parents=True)
    for f in Path(model_dir).iterdir():
        shutil.copy(f, snap / f.name)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(commit)
    return repo


def id_tensors(tok, texts):
    """Texts -> one ``(n, longest)`` int64 tensor of ids padded with ``tok.pad_id`` (no loader needed)."""
    import torch

    ids = tok.encode_batch(list(texts))
    out = torch.full((len(ids), max(map(len, ids))), tok.pad_id, dtype=torch.int64)
    for i, row in enumerate(ids):
        out[i, : len(row)] = torch.tensor(row)
    return out


def tensor_task(model_dir, n_train: int = 128, world: int = 1, bs_global: int = 32):
    """``(DataLoaders, classes)``: the corpus's library labels over padded id tensors (a TensorLoader with a
    seed, so one process and ``world`` processes see the same global batches)."""
    import torch

    from learnkit import DataLoaders
    from learnkit.text.hf import HFTokenizer

    df = docstring_corpus(80)
    tok = HFTokenizer(model_dir)
    x = id_tensors(tok, df["text"])
    classes = sorted(df["lib"].unique())
    y = torch.tensor([classes.index(v) for v in df["lib"]])
    perm = torch.randperm(len(df), generator=torch.Generator().manual_seed(0))
    tr, va = perm[:n_train], perm[n_train:]
    dls = DataLoaders.from_tensors(
        (x[tr], y[tr]), (x[va], y[va]), bs=bs_global // world, seed=7, device="cpu"
    )
    return dls, classes


def ddp_learner(model_dir, path, world: int = 1):
    """The DDP test's learner: the tiny model on :func:`tensor_task`, unfrozen."""
    import torch

    from learnkit import CrossEntropyLossFlat, accuracy, set_seed
    from learnkit.text.hf import hf_learner

    set_seed(0)
    dls, _ = tensor_task(model_dir, world=world)
    learn = hf_learner(
        dls,
        model_dir,
        task="classification",
        num_labels=3,
        loss_func=CrossEntropyLossFlat(),
        metrics=accuracy,
        path=path,
        pad_id=0,
    )
    learn.unfreeze()
    torch.manual_seed(0)
    return learn


def _ddp_main(out: str, model_dir: str) -> None:
    """Under torchrun: one epoch of DDP fine-tuning (the Learner adds the DistributedTrainer itself); every
    rank writes its final weights, and rank 0 an HF folder with save_pretrained."""
    import torch

    from learnkit.distributed import num_distrib, rank_distrib
    from learnkit.text.hf import save_pretrained

    learn = ddp_learner(model_dir, out, world=2)
    learn.fit(1, 1e-3, quiet=True)
    save_pretrained(learn, "hf-out")
    sd = {k: v.detach().clone() for k, v in learn.model.state_dict().items()}
    torch.save(
        {
            "rank": rank_distrib(),
            "world": num_distrib(),
            "weights": sd,
            "losses": learn.recorder.losses,
            "n_train_batches": len(learn.dls.train),
        },
        Path(out) / f"rank{rank_distrib()}.pt",
    )


def _ddp_text_main(out: str, model_dir: str) -> None:
    """Under torchrun: hf_learner on TextDataLoaders (HFTokenizer) trained with DDP; every rank writes its
    final weights, the texts it trained on and the recorder's values."""
    import torch

    from learnkit import accuracy, set_seed
    from learnkit.distributed import num_distrib, rank_distrib
    from learnkit.text.data import TextDataLoaders
    from learnkit.text.hf import HFTokenizer, hf_learner

    set_seed(0)
    df = docstring_corpus()
    dls = TextDataLoaders.from_df(
        df,
        text_col="text",
        label_col="lib",
        valid_col="is_valid",
        bs=16,
        seed=0,
        tokenizer=HFTokenizer(model_dir),
    )
    learn = hf_learner(dls, model_dir, metrics=accuracy, path=out)
    learn.unfreeze()
    seen = []

    from learnkit import Callback

    class Seen(Callback):
        def after_batch(self):
            if self.learn.training:
                seen.append([[i for i in row if i != 0] for row in self.learn.xb[0].tolist()])

    learn.fit_one_cycle(2, 1e-2, cbs=[Seen()], quiet=True)
    learn.save_pretrained("hf-text-ddp")
    torch.save(
        {
            "rank": rank_distrib(),
            "world": num_distrib(),
            "weights": {k: v.detach().clone() for k, v in learn.model.state_dict().items()},
            "values": [[float(v) for v in row] for row in learn.recorder.values],
            "seen": seen,
            "n_train": int((~df["is_valid"]).sum()),
            "majority": float(df[df["is_valid"]]["lib"].value_counts(normalize=True).max()),
        },
        Path(out) / f"text_rank{rank_distrib()}.pt",
    )


if __name__ == "__main__":
    (_ddp_text_main if sys.argv[3:] == ["text"] else _ddp_main)(sys.argv[1], sys.argv[2])
