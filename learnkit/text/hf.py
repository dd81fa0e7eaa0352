"""Fine-tune a pretrained Hugging Face transformer through the Learner (the ``transformers`` extra).

>>> from learnkit.text import *                                                        # doctest: +SKIP
>>> tok = HFTokenizer("microsoft/deberta-v3-small")                                    # doctest: +SKIP
>>> dls = TextDataLoaders.from_df(df, text_col="text", label_col="label", tokenizer=tok)  # doctest: +SKIP
>>> learn = hf_learner(dls, "microsoft/deberta-v3-small", metrics=accuracy)           # doctest: +SKIP
>>> learn.fine_tune(2, 2e-5)                                                           # doctest: +SKIP
>>> learn.export("reviews.lk"); learn.save_pretrained("reviews-hf")                    # doctest: +SKIP

- :class:`HFTokenizer` wraps ``AutoTokenizer`` in the numericalized-tokenizer protocol of
  :mod:`learnkit.text.data`: fast batched encoding, ids cached per text, ``pad_id`` for the classifier
  loader's padding, ``decode`` for ``show_batch``, and a spec holding the tokenizer files' *content*, so an
  export alone rebuilds it.
- :func:`hf_learner` builds ``AutoModelForSequenceClassification`` sized from the data (``num_labels``,
  ``id2label``; single-label, multi-label or regression from the target block), wrapped in
  :class:`HFSequenceClassifier` so the loop sees logits and the attention mask comes from the pad id; the
  loss is the target block's, and :func:`hf_splitter` gives embeddings / encoder layers in groups / head,
  so ``freeze``, ``fine_tune`` and ``lr=slice(...)`` work as for every other pretrained model.
- ``learn.export`` stores the model as the registered factory ``'hf_sequence_classifier'`` with the model's
  config as plain data plus the weights (pickle-free; ``trust_remote_code`` is never set), and
  ``learn.save_pretrained(dir)`` (:class:`HFLearner`, what :func:`hf_learner` returns; also the function
  :func:`save_pretrained`) writes an HF-format folder (safetensors) for the HF ecosystem.

Where models come from: a local folder written by ``save_pretrained``, or a hub name looked up in the HF
cache (``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else ``~/.cache/huggingface/hub``); with ``HF_HUB_OFFLINE=1``
(or ``TRANSFORMERS_OFFLINE=1``) nothing is downloaded, and a model missing from the cache is an error naming
it and the cache folder.

``transformers`` is imported on first use (it is an optional extra, and slow to import): importing
``learnkit.text`` works without it, and the first call says ``pip install 'learnkit[transformers]'``.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import torch
from torch import nn

from ..data.recipe import DataRecipe
from ..distributed import rank_distrib
from ..exceptions import DataError, ModelError
from ..export import register_learner
from ..factory import finish_learner, n_out_from_data
from ..learner import Learner
from ..losses import BCEWithLogitsLossFlat, CrossEntropyLossFlat, L1LossFlat, MSELossFlat
from ..models.registry import register_model
from ..optim import Adam
from .data import register_tokenizer

__all__ = [
    "HFLearner",
    "HFTokenizer",
    "HFSequenceClassifier",
    "hf_learner",
    "hf_splitter",
    "hf_sequence_classifier",
    "save_pretrained",
    "hf_cache_dir",
]

#: the tasks ``hf_learner`` knows, by HF's ``problem_type`` names, and the short names it also accepts
TASKS = ("single_label_classification", "multi_label_classification", "regression")
_TASK_ALIASES = {
    "classification": "single_label_classification",
    "single_label": "single_label_classification",
    "multi_label": "multi_label_classification",
    "multilabel": "multi_label_classification",
}
_TRUE = ("1", "true", "yes", "on")
#: largest number of texts whose ids an :class:`HFTokenizer` keeps (the cache is cleared when full)
CACHE_SIZE = 200_000


# ------------------------------------------------------------------------------------ the optional import
def _transformers():
    """The ``transformers`` module, or an ImportError that says how to install the extra."""
    try:
        return importlib.import_module("transformers")
    except ImportError as e:
        raise ImportError(
            "learnkit's Hugging Face models need the transformers extra, which is not installed "
            f"({e}). Fix: pip install 'learnkit[transformers]' (transformers, tokenizers, safetensors)."
        ) from e


@contextlib.contextmanager
def _quiet_hf():
    """Silence transformers' load reports and progress bars for the duration (restored after)."""
    hl = importlib.import_module("transformers.utils.logging")
    old, bars = hl.get_verbosity(), hl.is_progress_bar_enabled()
    hl.set_verbosity_error()
    hl.disable_progress_bar()
    try:
        yield
    finally:
        hl.set_verbosity(old)
        if bars:
            hl.enable_progress_bar()


# ------------------------------------------------------------------------------------ finding the files
def hf_cache_dir() -> Path:
    """The folder hub models are looked up in: ``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else
    ``~/.cache/huggingface/hub`` (read at each call, so a changed ``HF_HOME`` takes effect at once).

    >>> hf_cache_dir().name
    'hub'
    """
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface"
    )
    return Path(home).expanduser() / "hub"


def _offline() -> bool:
    return any(
        os.environ.get(k, "").strip().lower() in _TRUE for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


_HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")


def _source(name_or_path) -> tuple[str, dict, bool]:
    """``(what from_pretrained gets, its keyword arguments, whether it is a local folder)``."""
    if not isinstance(name_or_path, (str, os.PathLike)) or not str(name_or_path):
        raise ModelError(
            f"Expected a model folder or a hub name such as 'bert-base-uncased'. Received: "
            f"name_or_path={name_or_path!r}."
        )
    s = str(name_or_path)
    p = Path(s).expanduser()
    if p.is_dir():
        return str(p), {"local_files_only": True}, True
    if isinstance(name_or_path, os.PathLike) or not _HUB_NAME.match(s) or s.startswith("."):
        raise _not_found(s, local=True)
    return s, {"cache_dir": str(hf_cache_dir()), "local_files_only": _offline()}, False


def _not_found(name: str, local: bool, err: Exception | None = None) -> ModelError:
    cache = hf_cache_dir()
    why = f" ({type(err).__name__}: {str(err).splitlines()[0][:300]})" if err is not None and str(err) else ""
    if local:
        what = f"there is no folder {name!r}, and it is not a hub name"
    else:
        mode = (
            "offline (HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE)" if _offline() else "and could not be downloaded"
        )
        what = f"it is not in the Hugging Face cache folder {str(cache)!r} {mode}"
    return ModelError(
        f"Could not load the Hugging Face model or tokenizer {name!r}: {what}{why}. Expected a folder written by "
        f"save_pretrained (config.json, weights, tokenizer files) or a hub name whose files are in the cache "
        f"folder {str(cache)!r}. Fix: check the name or path; or download it once on a machine with internet "
        f"(e.g. `hf download {name}` with the same HF_HOME) and copy the cache folder over; or point HF_HOME at "
        "the cache that has it."
    )


def _from_pretrained(loader, name_or_path, **kwargs):
    """``loader.from_pretrained`` with learnkit's file lookup and a clear error when files are missing."""
    src, kw, local = _source(name_or_path)
    try:
        with _quiet_hf():
            return loader.from_pretrained(src, **kw, **kwargs)
    except (OSError, ValueError) as e:
        if "trust_remote_code" in str(e):
            raise ModelError(
                f"The model {str(name_or_path)!r} needs custom code from its repository (trust_remote_code), which "
                "learnkit never runs. Expected a model type that transformers ships. Fix: pick a model whose "
                "architecture is built into transformers."
            ) from e
        raise _not_found(str(name_or_path), local=local, err=e) from e


# ------------------------------------------------------------------------------------ the tokenizer
def _safe_file_name(name) -> bool:
    return (
        isinstance(name, str)
        and bool(name)
        and Path(name).name == name
        and not name.startswith(".")
        and "\\" not in name
        and name not in ("..",)
    )


def _tokenizer_files(tok) -> dict:
    """The files ``tok.save_pretrained`` writes, as ``{file name: str or bytes}``."""
    with tempfile.TemporaryDirectory() as d:
        tok.save_pretrained(d)
        out = {}
        for f in sorted(Path(d).iterdir()):
            if f.is_file():
                data = f.read_bytes()
                try:
                    out[f.name] = data.decode("utf-8")
                except UnicodeDecodeError:
                    out[f.name] = data
        return out


@register_tokenizer
class HFTokenizer:
    """A Hugging Face tokenizer (``AutoTokenizer``) in learnkit's numericalized-tokenizer protocol.

    Args:
        name_or_path: a folder written by ``save_pretrained`` or a hub name in the HF cache (see the module
            docstring for where it is looked up).
        max_len: cut encoded texts to this many tokens (special tokens included). ``None``: the tokenizer's
            own ``model_max_length`` when it has one, else no cut.
        sort_batches: ``False`` (default): classifier loaders built with this tokenizer draw random training
            batches, as the HF Trainer does; ``True``: batches of similar lengths (less padding, faster), as
            for AWD-LSTM. A transformer masks padding, so grouping by length only saves time, and where length
            goes with the label it makes batches lopsided in the labels (measured: lower accuracy; see
            ``benchmarks/transformers.py``). Each batch is padded to its longest text either way.

    Texts are encoded in fast batched calls; the ids of each text are cached, so the same texts encode once.
    ``pad_id`` is the tokenizer's pad token (its end-of-text token when it has none, as for GPT-2).

    >>> tok = HFTokenizer("path/to/model")            # doctest: +SKIP
    >>> ids = tok.encode_batch(["A fine film.", "Dull."])  # doctest: +SKIP
    >>> tok.decode(ids[0])                             # doctest: +SKIP
    'a fine film.'
    """

    numericalized = True

    def __init__(
        self, name_or_path, max_len: int | None = None, sort_batches: bool = False, *, _tokenizer=None
    ):
        if max_len is not None and (isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 2):
            raise DataError(f"Expected max_len to be None or an int >= 2. Received: max_len={max_len!r}.")
        if not isinstance(sort_batches, bool):
            raise DataError(
                f"Expected sort_batches to be True or False. Received: sort_batches={sort_batches!r}."
            )
        self.name_or_path, self.max_len, self.sort_batches = str(name_or_path), max_len, sort_batches
        tf = _transformers()
        self.tok = _tokenizer if _tokenizer is not None else _from_pretrained(tf.AutoTokenizer, name_or_path)
        if not getattr(self.tok, "is_fast", True):
            raise DataError(
                f"Expected a fast (Rust) tokenizer for {self.name_or_path!r}. Received: "
                f"{type(self.tok).__name__}. Fix: save the tokenizer with a tokenizer.json file."
            )
        self._cache: dict[str, list[int]] = {}
        self._vocab: list[str] | None = None

    # ---------------------------------------------------------------- the protocol
    @property
    def cut(self) -> int | None:
        """The length texts are cut to (``max_len``, or the tokenizer's own limit when it has one)."""
        if self.max_len is not None:
            return self.max_len
        m = getattr(self.tok, "model_max_length", None)
        return int(m) if isinstance(m, int) and 0 < m < 1_000_000 else None

    @property
    def pad_id(self) -> int:
        """The id batches are padded with (the attention mask is computed from it)."""
        for i in (self.tok.pad_token_id, self.tok.eos_token_id, self.tok.unk_token_id):
            if i is not None:
                return int(i)
        return 0

    @property
    def vocab(self) -> list[str]:
        """Token of each id (``len(vocab)`` is the embedding size the model needs)."""
        if self._vocab is None:
            self._vocab = [str(t) for t in self.tok.convert_ids_to_tokens(list(range(len(self.tok))))]
        return self._vocab

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Texts -> token ids (special tokens added, cut to :attr:`cut`), in one batched call for new texts."""
        texts = list(texts)
        bad = next((t for t in texts if not isinstance(t, str)), None)
        if bad is not None:
            raise DataError(
                f"Expected texts (str). Received: an item of type {type(bad).__name__}: {bad!r:.80}."
            )
        new = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if new:
            if len(self._cache) + len(new) > CACHE_SIZE:
                self._cache.clear()
            cut = self.cut
            enc = self.tok(
                new,
                add_special_tokens=True,
                truncation=cut is not None,
                max_length=cut,
                return_attention_mask=False,
                return_token_type_ids=False,
            )["input_ids"]
            self._cache.update(zip(new, enc))
        return [self._cache[t] for t in texts]

    def __call__(self, texts: Sequence[str]) -> list[list[int]]:
        """Same as :meth:`encode_batch`."""
        return self.encode_batch(texts)

    def decode(self, ids) -> str:
        """Ids back to text, without padding and special tokens."""
        ids = ids.tolist() if hasattr(ids, "tolist") else list(ids)
        pad = self.pad_id
        return self.tok.decode([int(i) for i in ids if i != pad], skip_special_tokens=True)

    def save_pretrained(self, path) -> Path:
        """Write the tokenizer files to the folder ``path`` (HF format)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.tok.save_pretrained(str(path))
        return path

    # ---------------------------------------------------------------- export
    def spec(self) -> dict:
        """Plain data: the name, ``max_len``, ``sort_batches`` and the tokenizer files' content (str or bytes by file name)."""
        return {
            "name_or_path": self.name_or_path,
            "max_len": self.max_len,
            "sort_batches": self.sort_batches,
            "files": _tokenizer_files(self.tok),
        }

    @classmethod
    def from_spec(cls, spec: dict) -> HFTokenizer:
        """Rebuild from :meth:`spec` (the files are written to a temporary folder and loaded from there)."""
        files = spec.get("files")
        if not isinstance(files, dict) or not files:
            raise DataError(
                "Expected the tokenizer spec to hold the tokenizer files. Received: no files. Fix: "
                "re-export with learnkit's HFTokenizer."
            )
        tf = _transformers()
        with tempfile.TemporaryDirectory() as d:
            for name, content in files.items():
                if not _safe_file_name(name) or not isinstance(content, (str, bytes)):
                    raise DataError(
                        f"Expected plain tokenizer file names with text or bytes. Received: file "
                        f"{name!r} of type {type(content).__name__}. The file may be damaged or crafted."
                    )
                data = content.encode("utf-8") if isinstance(content, str) else content
                (Path(d) / name).write_bytes(data)
            try:
                with _quiet_hf():
                    tok = tf.AutoTokenizer.from_pretrained(d, local_files_only=True)
            except (OSError, ValueError) as e:
                raise DataError(
                    f"Could not rebuild the tokenizer {spec.get('name_or_path')!r} from the export: {e}. "
                    "Fix: export again with the same transformers version."
                ) from e
        return cls(
            spec.get("name_or_path", "exported"),
            spec.get("max_len"),
            bool(spec.get("sort_batches", False)),
            _tokenizer=tok,
        )

    def __repr__(self) -> str:
        return f"HFTokenizer({self.name_or_path!r}, max_len={self.max_len}, vocab={len(self.tok)}, pad_id={self.pad_id})"


# ------------------------------------------------------------------------------------ the model
def _config_dict(config) -> dict:
    """The HF config as plain JSON data (dict keys are strings; ``id2label`` keys come back as ints)."""
    return json.loads(config.to_json_string(use_diff=False))


class HFSequenceClassifier(nn.Module):
    """``AutoModelForSequenceClassification`` (``.hf``) seen by the loop: ``ids -> logits``.

    ``forward(input_ids, attention_mask=None, **kwargs)``: the mask is ``input_ids != pad_id`` when not
    given (the classifier loader pads with the tokenizer's pad id); dict batches with ``input_ids`` and
    ``attention_mask`` work too. ``learnkit_spec`` names the registered factory with the config as plain
    data, which is what ``learn.export`` stores.

    >>> model = hf_sequence_classifier(config, pad_id=0)   # doctest: +SKIP
    >>> model(torch.tensor([[2, 17, 3, 0]])).shape         # doctest: +SKIP
    torch.Size([1, 2])
    """

    def __init__(self, hf_model: nn.Module, pad_id: int = 0):
        super().__init__()
        self.hf, self.pad_id = hf_model, int(pad_id)
        cfg = hf_model.config
        if getattr(cfg, "pad_token_id", None) is None:
            cfg.pad_token_id = self.pad_id
        self.max_positions = getattr(cfg, "max_position_embeddings", None)
        self.learnkit_spec = {
            "factory": "hf_sequence_classifier",
            "kwargs": {"config": _config_dict(cfg), "pad_id": self.pad_id},
        }

    @property
    def config(self):
        """The HF model's config."""
        return self.hf.config

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs
    ) -> torch.Tensor:
        if input_ids.dtype not in (torch.int64, torch.int32):
            raise ModelError(
                f"Expected token ids (int64) for the transformer. Received: a {input_ids.dtype} tensor "
                f"of shape {tuple(input_ids.shape)}. Fix: build the data with tokenizer=HFTokenizer(...)."
            )
        if self.max_positions is not None and input_ids.shape[-1] > self.max_positions:
            raise ModelError(
                f"Expected at most {self.max_positions} tokens per text (the model's position "
                f"embeddings). Received: a batch of {input_ids.shape[-1]} tokens. Fix: "
                f"HFTokenizer(..., max_len={self.max_positions}) or a smaller max_len for the loaders."
            )
        if attention_mask is None:
            attention_mask = (input_ids != self.pad_id).long()
        return self.hf(input_ids=input_ids, attention_mask=attention_mask, **kwargs).logits

    def save_pretrained(self, path, tokenizer: HFTokenizer | None = None) -> Path:
        """Write an HF-format folder (``config.json``, ``model.safetensors``, and the tokenizer's files when
        given) that ``AutoModelForSequenceClassification.from_pretrained(path)`` loads. Files are written to
        a temporary folder beside ``path`` first and moved into place one by one."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
        try:
            with _quiet_hf():
                self.hf.save_pretrained(str(tmp))
            if tokenizer is not None:
                tokenizer.save_pretrained(tmp)
            path.mkdir(exist_ok=True)
            for f in sorted(tmp.iterdir()):
                os.replace(f, path / f.name)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return path


def _config_from_dict(config: dict):
    tf = _transformers()
    mt = config.get("model_type") if isinstance(config, dict) else None
    mapping = tf.CONFIG_MAPPING
    if mt not in mapping:
        raise ModelError(
            f"Expected an HF config with a model_type that transformers knows. Received: "
            f"model_type={mt!r}. Fix: install a transformers version that has this architecture."
        )
    return mapping[mt].from_dict(dict(config))


@register_model(name="hf_sequence_classifier", tags=("text", "transformers"))
def hf_sequence_classifier(config: dict, pad_id: int = 0) -> HFSequenceClassifier:
    """The registered factory behind :func:`hf_learner`'s models: ``AutoModelForSequenceClassification`` built
    from an HF config given as plain data (no weights are loaded; ``load_learner`` loads the export's).
    Never runs code from a model repository.

    >>> model = hf_sequence_classifier({"model_type": "bert", "vocab_size": 100, "hidden_size": 16,
    ...     "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32})  # doctest: +SKIP
    """
    tf = _transformers()
    with _quiet_hf():
        hf = tf.AutoModelForSequenceClassification.from_config(_config_from_dict(config))
    return HFSequenceClassifier(hf, pad_id)


# ------------------------------------------------------------------------------------ the splitter
def hf_splitter(model: nn.Module, n_layer_groups: int = 2) -> list[list[nn.Parameter]]:
    """Parameter groups of an HF sequence classifier: embeddings, the encoder layers cut into
    ``n_layer_groups`` groups (in order), and the head (classifier and pooler).

    Parameters of the base model that are neither embeddings nor layers (e.g. a final layer norm, DeBERTa's
    relative position embeddings) go with the embeddings. ``learn.freeze()`` then trains the head only (and
    the LayerNorms, unless ``learn.train_bn = False``), and ``lr=slice(a, b)`` spreads rates from the
    embeddings (``a``) to the head (``b``).

    >>> learn = hf_learner(dls, path, splitter=partial(hf_splitter, n_layer_groups=3))  # doctest: +SKIP
    """
    hf = model.hf if isinstance(model, HFSequenceClassifier) else model
    if int(n_layer_groups) < 1:
        raise ModelError(f"Expected n_layer_groups >= 1. Received: n_layer_groups={n_layer_groups}.")
    base = getattr(hf, "base_model", hf)
    if base is hf:
        raise ModelError(
            f"Expected a Hugging Face model with a base model and a head. Received: "
            f"{type(hf).__name__}. Fix: build it with AutoModelForSequenceClassification."
        )
    lists = [m for m in base.modules() if isinstance(m, nn.ModuleList) and len(m)]
    if not lists:
        raise ModelError(
            f"Expected the encoder layers of {type(hf).__name__} in a ModuleList. Received: none. Fix: "
            "pass your own splitter=... to hf_learner."
        )
    layers = max(lists, key=lambda m: sum(p.numel() for p in m.parameters()))
    in_base = {id(p) for p in base.parameters()}
    pooler = [p for n, c in base.named_children() if "pool" in n for p in c.parameters()]
    head = [p for p in hf.parameters() if id(p) not in in_base] + pooler
    taken = {id(p) for p in head} | {id(p) for p in layers.parameters()}
    emb = [p for p in base.parameters() if id(p) not in taken]
    n = min(int(n_layer_groups), len(layers))
    bounds = [round(i * len(layers) / n) for i in range(n + 1)]
    chunks = [
        [p for layer in layers[bounds[i] : bounds[i + 1]] for p in layer.parameters()] for i in range(n)
    ]
    return [g for g in [emb, *chunks, head] if g]


# ------------------------------------------------------------------------------------ the learner
def _task(dls, task: str | None) -> str:
    if task is not None:
        t = _TASK_ALIASES.get(task, task)
        if t not in TASKS:
            raise ModelError(
                f"Expected task to be one of {list(TASKS)} (or {sorted(_TASK_ALIASES)}). Received: "
                f"task={task!r}."
            )
        return t
    loss = getattr(dls, "loss_func", None)
    if isinstance(loss, BCEWithLogitsLossFlat):
        return "multi_label_classification"
    if isinstance(loss, (MSELossFlat, L1LossFlat)):
        return "regression"
    if isinstance(loss, CrossEntropyLossFlat) or loss is None and getattr(dls, "vocab", None) is not None:
        return "single_label_classification"
    raise ModelError(
        "Expected the data to say which task this is (a CategoryBlock, MultiCategoryBlock or "
        f"RegressionBlock target), or task=... Received: DataLoaders with loss {type(loss).__name__}. "
        f"Fix: hf_learner(dls, name, task='single_label_classification'), one of {list(TASKS)}."
    )


def _labels(dls) -> list[str] | None:
    v = getattr(dls, "vocab", None)
    if v is None:
        return None
    if len(v) and isinstance(v[0], (list, tuple)):  # text recipes: [text_vocab, label_vocab]
        v = v[-1]
    return [str(x) for x in v] if v is not None else None


def _data_tokenizer(dls):
    """The data's numericalized tokenizer (a text classifier recipe's), or None."""
    block = getattr(getattr(dls, "recipe", None), "block", None)
    tok = getattr(block, "tokenizer", None)
    return tok if getattr(tok, "numericalized", False) else None


class HFLearner(Learner):
    """The :class:`~learnkit.Learner` that :func:`hf_learner` returns: a Learner in every way, plus
    :meth:`save_pretrained` to hand the fine-tuned transformer to the Hugging Face ecosystem.

    ``load_learner`` on an export of it gives an ``HFLearner`` back.

    >>> learn = hf_learner(dls, "bert-base-uncased", metrics=accuracy)  # doctest: +SKIP
    >>> learn.fine_tune(2, 2e-5); learn.save_pretrained("reviews-hf")  # doctest: +SKIP
    """

    def save_pretrained(self, path, tokenizer: HFTokenizer | None = None) -> Path:
        """Write the model as an HF-format folder (``config.json`` with the data's labels,
        ``model.safetensors``, and the data's tokenizer files) that
        ``AutoModelForSequenceClassification.from_pretrained(path)`` and ``AutoTokenizer.from_pretrained(path)``
        load. Relative paths go under ``learn.path``; under DDP only rank 0 writes. Returns the folder.

        >>> learn.save_pretrained("reviews-hf")  # doctest: +SKIP
        """
        return save_pretrained(self, path, tokenizer=tokenizer)


# load_learner gives back an HFLearner (so save_pretrained works on a loaded export too)
register_learner("text.hf", "learnkit.text.hf:HFLearner")

#: hf_learner's default optimizer: learnkit's Adam (AdamW, decoupled weight decay 0.01) with the betas and eps
#: transformers are trained with (torch's and the HF Trainer's defaults) instead of fastai's (0.99, 1e-5)
TRANSFORMER_ADAM = partial(Adam, mom=0.9, sqr_mom=0.999, eps=1e-8)

_TASK_LOSS = {
    "single_label_classification": CrossEntropyLossFlat,
    "multi_label_classification": BCEWithLogitsLossFlat,
    "regression": MSELossFlat,
}


def hf_learner(
    dls,
    name_or_path,
    task: str | None = None,
    metrics=None,
    *,
    pretrained: bool = True,
    num_labels: int | None = None,
    n_layer_groups: int = 2,
    pad_id: int | None = None,
    loss_func=None,
    splitter=None,
    freeze: bool | None = None,
    **learner_kwargs,
):
    """A :class:`~learnkit.Learner` fine-tuning the HF model ``name_or_path`` as a sequence classifier on ``dls``.

    Args:
        dls: text classifier loaders (``TextDataLoaders.from_df(..., tokenizer=HFTokenizer(name))``), or any
            DataLoaders whose batches are ``(token_ids, target)`` padded with the tokenizer's pad id.
        name_or_path: a ``save_pretrained`` folder or a hub name in the HF cache (see the module docstring).
        task: ``'single_label_classification'``, ``'multi_label_classification'`` or ``'regression'``;
            ``None`` reads it from the target block (CategoryBlock, MultiCategoryBlock, RegressionBlock).
        metrics: as for Learner (default: the data's default metrics).
        pretrained: load the pretrained weights (the head is new); ``False`` builds the model from its config
            with random weights. A pretrained model starts frozen (head only), like every learnkit factory.
        num_labels: the number of outputs, for data that cannot tell (loaders over plain tensors); given
            with data that can, it must agree.
        n_layer_groups: encoder layer groups of :func:`hf_splitter` (discriminative LRs, ``freeze_to``).
        pad_id: the id the batches are padded with (default: the data's tokenizer's, else the model config's).
        loss_func, splitter, **learner_kwargs: passed to the Learner (default loss: the target block's).
            The default ``opt_func`` is :data:`TRANSFORMER_ADAM`: AdamW with betas (0.9, 0.999) and eps 1e-8,
            the settings transformers are trained with. learnkit's Adam default (eps 1e-5, beta2 0.99) damps
            most of a transformer's updates: in the tests' tiny BERT after one epoch, 81% of the weights
            (92% of the word embeddings) had sqrt(v) < 1e-5, so eps, not the gradient scale, set their
            step; switching measured about +0.03 accuracy (``benchmarks/transformers.py`` ablation). Pass
            ``opt_func=...`` for another optimizer. The default ``moms`` is ``None``: ``fit_one_cycle`` and
            ``fine_tune`` leave Adam's beta1 at 0.9 instead of cycling it through (0.95, 0.85, 0.95), as
            transformers are fine-tuned (measured: +0.04 +- 0.02 accuracy over 40 seeds on the tiny BERT);
            ``moms=(0.95, 0.85, 0.95)`` brings the cycle back.

    Returns an :class:`HFLearner`. ``num_labels``, ``id2label`` and ``label2id`` come from the data, so
    ``learn.save_pretrained(dir)`` writes a model whose labels read as the data's classes.

    >>> learn = hf_learner(dls, "bert-base-uncased", metrics=accuracy)  # doctest: +SKIP
    >>> learn.fine_tune(2, 2e-5)                                          # doctest: +SKIP
    """
    tf = _transformers()
    task = _task(dls, task)
    if num_labels is None and getattr(dls, "c", None) is None and task == "regression":
        n_out = 1
    else:
        n_out = n_out_from_data(dls, num_labels, what="num_labels")
    labels = _labels(dls) if task != "regression" else None
    kw = {"num_labels": n_out, "problem_type": task}
    if labels is not None and len(labels) == n_out:
        kw.update(id2label=dict(enumerate(labels)), label2id={lab: i for i, lab in enumerate(labels)})
    config = _from_pretrained(tf.AutoConfig, name_or_path, **kw)
    data_tok = _data_tokenizer(dls)
    word_block = getattr(getattr(dls, "recipe", None), "block", None)
    if data_tok is None and getattr(word_block, "tokenizer", None) is not None:
        raise ModelError(
            "Expected text loaders tokenized for this transformer. Received: loaders built with learnkit's word "
            "tokenizer and vocab, whose ids mean nothing to a pretrained model. Fix: "
            f"TextDataLoaders.from_df(..., tokenizer=HFTokenizer({str(name_or_path)!r}))."
        )
    if pad_id is None:
        pad_id = data_tok.pad_id if data_tok is not None else getattr(config, "pad_token_id", None)
        pad_id = 0 if pad_id is None else pad_id
    vocab_size = getattr(config, "vocab_size", None)
    if data_tok is not None and vocab_size is not None and len(data_tok.vocab) > vocab_size:
        raise ModelError(
            f"Expected the data's tokenizer to fit the model: the tokenizer has {len(data_tok.vocab)} "
            f"tokens and {str(name_or_path)!r} embeds {vocab_size}. Received: tokenizer="
            f"{data_tok!r}. Fix: build the loaders with HFTokenizer({str(name_or_path)!r})."
        )
    if pretrained:
        hf = _from_pretrained(tf.AutoModelForSequenceClassification, name_or_path, config=config)
    else:
        with _quiet_hf():
            hf = tf.AutoModelForSequenceClassification.from_config(config)
    model = HFSequenceClassifier(hf, pad_id)
    if loss_func is None and getattr(dls, "loss_func", None) is None:
        loss_func = _TASK_LOSS[task]()
    if metrics is None and isinstance(getattr(dls, "recipe", None), DataRecipe):
        metrics = dls.recipe.default_metrics()
    learner_kwargs.setdefault("opt_func", TRANSFORMER_ADAM)
    learner_kwargs.setdefault("moms", None)  # fit_one_cycle leaves beta1 alone
    return finish_learner(
        dls,
        model,
        default_splitter=partial(hf_splitter, n_layer_groups=n_layer_groups),
        freeze=pretrained if freeze is None else freeze,
        splitter=splitter,
        learner_cls=HFLearner,
        loss_func=loss_func,
        metrics=metrics,
        **learner_kwargs,
    )


def save_pretrained(learn, path, tokenizer: HFTokenizer | None = None) -> Path:
    """Write ``learn``'s transformer as an HF-format folder (``config.json`` with the data's labels,
    ``model.safetensors``, and the data's HF tokenizer files), for ``from_pretrained`` in the HF ecosystem.

    Relative paths go under ``learn.path``; under DDP only rank 0 writes. Returns the folder. Same as the
    method ``learn.save_pretrained(path)`` of the :class:`HFLearner` that :func:`hf_learner` returns.

    >>> save_pretrained(learn, "reviews-hf")                                        # doctest: +SKIP
    >>> AutoModelForSequenceClassification.from_pretrained(learn.path / "reviews-hf")  # doctest: +SKIP
    """
    model = learn.model  # the plain module, also during a distributed fit
    if not isinstance(model, HFSequenceClassifier):
        raise ModelError(
            f"Expected a Learner made by hf_learner (an HFSequenceClassifier model). Received: "
            f"{type(model).__name__}. Fix: use learn.export() for other models."
        )
    path = Path(path)
    if not path.is_absolute():
        path = Path(learn.path) / path
    if tokenizer is None:
        tok = _data_tokenizer(learn.dls)
        tokenizer = tok if isinstance(tok, HFTokenizer) else None
    if rank_distrib() == 0:
        model.save_pretrained(path, tokenizer=tokenizer)
    return path
