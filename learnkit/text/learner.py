"""Text learners: ``language_model_learner`` and ``text_classifier_learner`` (the ULMFiT flow), their callbacks,
encoder transfer and generation.

- :class:`ModelResetter` resets the recurrent state at each training epoch start and before validation
  (the LM loader's rows are contiguous across batches, so the state carries in between).
- :class:`RNNRegularizer` adds AR (``alpha``: activations of the dropped output) and TAR (``beta``: change of
  the raw output between time steps) to the training loss.
- :meth:`TextLearner.save_encoder` writes the encoder with its vocab; :meth:`TextLearner.load_encoder` maps the
  embedding rows *by token* when the classifier's vocab differs (tokens the encoder never saw get the mean
  embedding), never by index.
- Pretrained weights: ``pretrained=True`` downloads the WikiText-103 AWD-LSTM (``URLs.WT103_FWD``) through
  :func:`learnkit.data.external.untar_data` (checksum, cache, resume), loads it with
  ``torch.load(weights_only=True)`` and the vocab without running any pickled code, and maps it by token.

>>> lm = language_model_learner(dls_lm, AWD_LSTM, drop_mult=0.3, metrics=[accuracy, Perplexity()])  # doctest: +SKIP
>>> lm.fit_one_cycle(1, 2e-2); lm.save_encoder("enc")                                            # doctest: +SKIP
>>> learn = text_classifier_learner(dls, AWD_LSTM, drop_mult=0.5, metrics=accuracy)             # doctest: +SKIP
>>> learn.load_encoder("enc"); learn.fine_tune(4, 1e-2)                                           # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import pickle
import re
from pathlib import Path

import torch
import torch.nn.functional as F

from ..callbacks.core import Callback
from ..data.external import URLs, untar_data
from ..exceptions import DataError, ModelError
from ..export import register_learner
from ..factory import finish_learner
from ..learner import Learner
from ..metrics import Perplexity, accuracy
from ..models.registry import create_model
from ..utils import atomic_save, listify, safe_load
from .data import TextClassifierRecipe, TextLMRecipe
from .models import AWD_LSTM, _check_arch, awd_lstm_clas_split, awd_lstm_lm_split
from .tokenize import BOS, EOS, FLD, PAD, TK_MAJ, TK_REP, TK_UP, TK_WREP, UNK

__all__ = [
    "ModelResetter",
    "RNNRegularizer",
    "TextLearner",
    "LMLearner",
    "language_model_learner",
    "text_classifier_learner",
    "decode_spec_tokens",
    "load_vocab_file",
    "ENCODER_FORMAT",
]

ENCODER_FORMAT = "learnkit.text.encoder"


class ModelResetter(Callback):
    """Reset the model's recurrent state (``model.reset()``) at each training epoch start, before validation
    and after fit.

    Example: ``Learner(dls, model, cbs=[ModelResetter(), RNNRegularizer()])`` (the text learners add it).
    """

    order = -5

    def _reset(self) -> None:
        m = self.learn.model
        if hasattr(m, "reset"):
            m.reset()

    def before_train(self) -> None:
        self._reset()

    def before_validate(self) -> None:
        self._reset()

    def after_fit(self) -> None:
        self._reset()


class RNNRegularizer(Callback):
    """AR and TAR (Merity et al.): ``loss += alpha * mean(dropped_out**2) + beta * mean((raw[t+1] - raw[t])**2)``
    while training. The model gives ``(raw, dropped)`` with ``rnn_outputs()`` (AWD-LSTM models do).

    Example: ``Learner(dls, model, cbs=[ModelResetter(), RNNRegularizer(alpha=2.0, beta=1.0)])``.
    """

    order = 5

    def __init__(self, alpha: float = 2.0, beta: float = 1.0):
        self.alpha, self.beta = alpha, beta

    def after_loss(self) -> None:
        learn = self.learn
        if not learn.training or learn.loss_grad is None or not hasattr(learn.model, "rnn_outputs"):
            return
        raw, dropped = learn.model.rnn_outputs()
        if raw is None:
            return
        reg = 0.0
        if self.alpha:
            reg = reg + self.alpha * dropped.float().pow(2).mean()
        if self.beta and raw.size(1) > 1:
            reg = reg + self.beta * (raw[:, 1:] - raw[:, :-1]).float().pow(2).mean()
        learn.loss_grad = learn.loss_grad + reg


# ---------------------------------------------------------------------------------------------- vocab files
class _NoGlobals(pickle.Unpickler):
    """Reads a pickle of plain containers and strings only; any class or function reference is refused."""

    def find_class(self, module, name):
        raise DataError(
            f"The vocab pickle refers to {module}.{name}, which learnkit will not load (only plain lists "
            "of strings are read from pickles). Fix: save the vocab as a JSON list of tokens."
        )


def load_vocab_file(path: str | os.PathLike) -> list[str]:
    """A vocab (list of tokens) from ``.json`` (a list), ``.txt`` (one token a line) or ``.pkl`` (fastai's
    ``itos``: read without executing anything: only lists and strings are accepted).

    Example: ``vocab = load_vocab_file('itos_wt103.pkl')``; ``vocab[:3]``.
    """
    path = Path(path)
    if path.suffix == ".json":
        vocab = json.loads(path.read_text(encoding="utf-8"))
    elif path.suffix == ".txt":
        vocab = path.read_text(encoding="utf-8").split("\n")
    else:
        with open(path, "rb") as f:
            vocab = _NoGlobals(f).load()
    if not isinstance(vocab, list) or not all(isinstance(t, str) for t in vocab):
        raise DataError(f"Expected {str(path)!r} to hold a list of tokens. Received: {type(vocab).__name__}.")
    return vocab


def _from_fastai_keys(sd: dict) -> dict:
    """fastai's AWD-LSTM state-dict layout ('0.rnns.0.weight_hh_l0_raw', '1.decoder.weight') -> ours."""
    if not any(k.startswith("0.") for k in sd):
        return sd
    out = {}
    for k, v in sd.items():
        if ".encoder_dp." in k or re.search(r"rnns\.\d+\.module\.weight_hh_l0$", k):
            continue
        k = re.sub(r"^0\.", "encoder.", k)
        k = re.sub(r"^1\.", "decoder.", k)
        k = re.sub(r"(rnns\.\d+)\.weight_hh_l0_raw$", r"\1.module.weight_hh_l0", k)
        out[k] = v
    return out


def _match_embeds(old: torch.Tensor, old_vocab: list[str], new_vocab: list[str]) -> tuple[torch.Tensor, int]:
    """Rows of ``old`` re-ordered for ``new_vocab`` by token; unseen tokens get the mean row. Returns the
    matrix and how many tokens were found."""
    o2i = {t: i for i, t in enumerate(old_vocab)}
    mean = old.mean(0)
    new = mean.expand(len(new_vocab), old.size(1)).clone()
    found = 0
    for i, t in enumerate(new_vocab):
        j = o2i.get(t)
        if j is not None and j < old.size(0):
            new[i] = old[j]
            found += 1
    return new, found


def _remap_vocab(
    sd: dict, old_vocab: list[str], new_vocab: list[str], keys=("encoder.weight",), bias_keys=()
) -> int:
    """Re-order the rows of ``sd[keys]`` (and ``bias_keys``) from ``old_vocab`` to ``new_vocab`` by token."""
    if old_vocab == list(new_vocab):
        return len(new_vocab)
    found = 0
    for k in keys:
        if k in sd:
            sd[k], found = _match_embeds(sd[k], old_vocab, new_vocab)
    for k in bias_keys:
        if k in sd:
            sd[k] = _match_embeds(sd[k][:, None], old_vocab, new_vocab)[0][:, 0]
    return found


# ---------------------------------------------------------------------------------------------- learners
def decode_spec_tokens(tokens: list[str]) -> list[str]:
    """Undo the rules' special tokens: ``xxmaj w`` -> ``W``, ``xxup w`` -> ``W`` upper, ``xxrep n c`` -> ``c*n``,
    ``xxwrep n w`` -> ``w`` n times; ``xxbos``/``xxeos``/``xxpad``/``xxfld`` dropped.

    >>> decode_spec_tokens(["xxbos", "xxmaj", "hi", "xxup", "you", "xxrep", "3", "!"])
    ['Hi', 'YOU', '!!!']
    """
    out, i = [], 0
    while i < len(tokens):
        t = tokens[i]
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        if t in (BOS, EOS, PAD, FLD):
            i += 1
        elif t == TK_MAJ and nxt is not None:
            out.append(nxt[:1].upper() + nxt[1:])
            i += 2
        elif t == TK_UP and nxt is not None:
            out.append(nxt.upper())
            i += 2
        elif t in (TK_REP, TK_WREP) and nxt is not None and nxt.isdigit() and i + 2 < len(tokens):
            n, w = int(nxt), tokens[i + 2]
            out.append(w * n if t == TK_REP else " ".join([w] * n))
            i += 3
        else:
            out.append(t)
            i += 1
    return out


class TextLearner(Learner):
    """A :class:`~learnkit.Learner` for AWD-LSTM models, with encoder transfer (``save_encoder`` /
    ``load_encoder``) and vocab-aware pretrained loading (``load_pretrained``).

    Example: ``learn = text_classifier_learner(dls, AWD_LSTM); learn.load_encoder('finetuned')``.
    """

    def _encoder(self):
        enc = getattr(self.model, "encoder", None)
        if enc is None:
            raise ModelError(
                f"Expected a model with an .encoder (AWD-LSTM). Received: {type(self.model).__name__}."
            )
        return enc

    def _text_vocab(self) -> list[str]:
        v = self.dls.vocab
        return list(v[0] if v and isinstance(v[0], (list, tuple)) else v)

    def save_encoder(self, name: str | os.PathLike) -> Path:
        """Save the encoder's weights with the vocab they were trained on (``path/model_dir/name.pth``)."""
        enc = self._encoder()
        state = {
            "format": ENCODER_FORMAT,
            "version": 1,
            "vocab": self._text_vocab(),
            "state_dict": {k: v.detach().cpu() for k, v in enc.state_dict().items()},
        }
        return atomic_save(state, self._file(name))

    def load_encoder(self, name: str | os.PathLike, device=None) -> TextLearner:
        """Load an encoder written by :meth:`save_encoder`; its embedding is mapped to this data's vocab by token."""
        f = self._file(name)
        st = safe_load(f)
        if not isinstance(st, dict) or st.get("format") != ENCODER_FORMAT:
            what = "a file with no learnkit format mark"
            if isinstance(st, dict):
                if st.get("format") == "learnkit.weights":
                    what = "a whole model's weights written by learn.save()"
                elif st.get("format") == "learnkit.export":
                    what = "a learner export written by learn.export()"
                elif all(isinstance(v, torch.Tensor) for v in st.values()):
                    what = f"a plain state dict ({len(st)} tensors, e.g. {list(st)[:3]})"
            raise ModelError(
                f"{str(f)!r} is not an encoder file: it is {what}. Expected a file written by "
                "lm.save_encoder(name). Fix: call save_encoder on the language-model learner and load that "
                "(for learn.save() weights, use learn.load(name))."
            )
        sd = dict(st["state_dict"])
        vocab = self._text_vocab()
        found = _remap_vocab(sd, list(st["vocab"]), vocab)
        if found == 0:
            raise ModelError(
                f"The encoder {str(f)!r} shares no token with this data's vocab, so nothing can be "
                "transferred. Fix: build the classifier's data with text_vocab=dls_lm.vocab."
            )
        from ..learner import load_state_checked

        load_state_checked(self._encoder(), sd, strict=True, source=str(f))
        self.encoder_tokens_found = found
        if self.opt is not None:
            self.freeze_to(self.frozen_idx)
        return self

    def load_pretrained(self, wgts_fname, vocab_fname, model=None) -> TextLearner:
        """Load pretrained LM weights (learnkit's or fastai's layout, ``weights_only``) and their vocab, mapped
        to this data's vocab by token."""
        wgts = safe_load(wgts_fname)
        if isinstance(wgts, dict) and "model" in wgts and isinstance(wgts["model"], dict):
            wgts = wgts["model"]
        sd = _from_fastai_keys(dict(wgts))
        old_vocab = load_vocab_file(vocab_fname)
        _remap_vocab(
            sd,
            old_vocab,
            self._text_vocab(),
            ("encoder.encoder.weight", "decoder.decoder.weight"),
            ("decoder.decoder.bias",),
        )
        if "decoder.decoder.weight" not in sd and "encoder.encoder.weight" in sd:
            sd["decoder.decoder.weight"] = sd["encoder.encoder.weight"]
        from ..learner import load_state_checked

        load_state_checked(model or self.model, sd, strict=True, source=str(wgts_fname))
        return self


class LMLearner(TextLearner):
    """The language-model learner: :meth:`predict` generates text.

    Example: ``language_model_learner(dls_lm, AWD_LSTM).predict('I liked this movie', n_words=10)``.
    """

    def predict(
        self,
        text: str,
        n_words: int = 1,
        no_unk: bool = True,
        temperature: float = 1.0,
        min_p: float | None = None,
        no_bar: bool = False,
        decoder=decode_spec_tokens,
        only_last_word: bool = False,
    ) -> str:
        """``text`` followed by ``n_words`` sampled tokens (``temperature`` < 1 is more conservative; ``min_p``
        leaves out tokens below that probability; ``no_unk`` never samples ``xxunk``)."""
        if temperature <= 0:
            raise ModelError(f"Expected temperature > 0. Received: temperature={temperature}.")
        recipe = self.dls.recipe
        block = recipe.block
        ids = recipe.encode_texts([text])[0].tolist()
        vocab = block.vocab
        if not ids:
            ids = [vocab.index(BOS)] if BOS in vocab else [0]
        unk = vocab.index(UNK) if (no_unk and UNK in vocab) else None
        model = self.model
        model.eval()
        if hasattr(model, "reset"):
            model.reset()
        new = []
        with torch.no_grad():
            inp = torch.tensor([ids], device=self.device)
            for _ in range(int(n_words)):
                logits = model(inp)[0, -1].float()
                probs = F.softmax(logits / temperature, dim=-1)
                if unk is not None:
                    probs[unk] = 0.0
                if min_p is not None:
                    keep = probs >= min_p
                    if keep.any():
                        probs = probs * keep
                idx = int(torch.multinomial(probs / probs.sum(), 1))
                new.append(idx)
                inp = torch.tensor([[idx]], device=self.device)  # the state carries the context
        if hasattr(model, "reset"):
            model.reset()
        if block.num is None:
            return block.tokenizer.decode(ids + new)
        toks = [vocab[i] for i in (new[-1:] if only_last_word else ids + new)]
        return block.tokenizer.sep.join(decoder(toks))


#: the one-cycle momentum cycle of the text learners (fastai's TextLearner; the core's default is 0.95-0.85)
TEXT_MOMS = (0.8, 0.7, 0.8)


def _learner_kwargs(kwargs: dict, extra_cbs: list) -> dict:
    kw = dict(kwargs)
    kw["cbs"] = listify(kw.get("cbs")) + extra_cbs
    kw.setdefault("moms", TEXT_MOMS)
    return kw


def _finish(cls, dls, model, splitter, freeze: bool, **kwargs):
    """The core's finishing step (:func:`learnkit.factory.finish_learner`) with a text Learner subclass."""
    return finish_learner(dls, model, default_splitter=splitter, freeze=freeze, learner_cls=cls, **kwargs)


def _pretrained_files(url: str, fnames) -> tuple[Path, Path]:
    try:
        folder = untar_data(url)
    except (OSError, DataError) as e:
        raise ModelError(
            f"Could not get the pretrained language model from {url} ({e}). Fix: place the archive "
            "where the message above says (or its extracted files, passing pretrained_fnames=(weights, "
            "vocab)), or pass pretrained=False to train from scratch."
        ) from e
    if fnames is not None:
        w, v = (
            folder / f"{fnames[0]}" if not str(fnames[0]).endswith(".pth") else folder / fnames[0],
            folder / (fnames[1] if Path(str(fnames[1])).suffix else f"{fnames[1]}.pkl"),
        )
        w = w if w.suffix else w.with_suffix(".pth")
        return w, v
    pths = sorted(folder.glob("*.pth"))
    vocabs = sorted([*folder.glob("*.pkl"), *folder.glob("*.json")])
    if not pths or not vocabs:
        raise ModelError(
            f"Expected a weights file (*.pth) and a vocab (*.pkl or *.json) in {str(folder)!r}. "
            f"Received: {sorted(p.name for p in folder.iterdir())}. Fix: pass pretrained_fnames=(w, v)."
        )
    return pths[0], vocabs[0]


def language_model_learner(
    dls,
    arch=AWD_LSTM,
    config: dict | None = None,
    drop_mult: float = 1.0,
    backwards: bool = False,
    pretrained: bool = True,
    pretrained_fnames=None,
    pretrained_url: str | None = None,
    alpha: float = 2.0,
    beta: float = 1.0,
    **learner_kwargs,
) -> LMLearner:
    """An AWD-LSTM language model on ``dls`` (from ``TextDataLoaders(..., is_lm=True)``).

    ``pretrained=True`` loads the WikiText-103 weights (``pretrained_url``, default ``URLs.WT103_FWD``; or
    ``pretrained_fnames=(weights, vocab)`` inside that download) and freezes all but the embeddings/decoder;
    ``pretrained=False`` trains from scratch. ``config`` overrides ``awd_lstm_lm_config``. The loss is
    flattened cross-entropy; ``metrics`` default to accuracy and :class:`~learnkit.metrics.Perplexity`.

    Example: ``learn = language_model_learner(dls_lm, AWD_LSTM, drop_mult=0.3); learn.fine_tune(1, 2e-2)``.
    """
    _check_arch(arch)
    if backwards:
        raise ModelError("Expected backwards=False. Received: backwards=True (not supported yet).")
    if not isinstance(dls.recipe, TextLMRecipe):
        raise DataError(
            "Expected language-model DataLoaders. Received: DataLoaders without a language-model recipe. "
            "Fix: TextDataLoaders.from_df(df, text_col='text', is_lm=True)."
        )
    vocab_sz = len(dls.vocab)
    cfg = dict(config or {})
    cfg.setdefault("pad_token", dls.recipe.block.pad_id)
    model = create_model("awd_lstm_lm", vocab_sz=vocab_sz, config=cfg, drop_mult=drop_mult)
    if learner_kwargs.get("metrics") is None:
        learner_kwargs["metrics"] = [accuracy, Perplexity()]
    kw = _learner_kwargs(learner_kwargs, [ModelResetter(), RNNRegularizer(alpha, beta)])
    learn = _finish(LMLearner, dls, model, awd_lstm_lm_split, False, **kw)
    if pretrained:
        w, v = _pretrained_files(pretrained_url or URLs.WT103_FWD, pretrained_fnames)
        learn.load_pretrained(w, v)
        learn.freeze()
    return learn


def text_classifier_learner(
    dls,
    arch=AWD_LSTM,
    seq_len: int = 72,
    config: dict | None = None,
    backwards: bool = False,
    pretrained: bool = True,
    drop_mult: float = 0.5,
    n_out: int | None = None,
    lin_ftrs=None,
    ps=None,
    max_len: int = 72 * 20,
    y_range=None,
    alpha: float = 2.0,
    beta: float = 1.0,
    **learner_kwargs,
) -> TextLearner:
    """An AWD-LSTM classifier with masked concat pooling on ``dls`` (from ``TextDataLoaders`` with labels).

    Load the fine-tuned language model's encoder with ``learn.load_encoder('enc')`` (``pretrained=True``
    freezes all but the head, so ``fine_tune`` trains the head first; ``freeze_to(-2)``, ``freeze_to(-3)``,
    ``unfreeze()`` unfreeze gradually). Documents longer than ``max_len`` tokens are truncated to their first
    ``max_len`` tokens. ``config`` overrides ``awd_lstm_clas_config``.

    Example: ``learn = text_classifier_learner(dls, AWD_LSTM, drop_mult=0.5, metrics=accuracy)``.
    """
    from ..factory import n_out_from_data

    _check_arch(arch)
    if backwards or y_range is not None:
        raise ModelError(
            "Expected backwards=False and y_range=None (not supported yet). Received: "
            f"backwards={backwards}, y_range={y_range}."
        )
    if not isinstance(dls.recipe, TextClassifierRecipe):
        raise DataError(
            "Expected classifier DataLoaders. Received: DataLoaders without a text-classifier recipe. "
            "Fix: TextDataLoaders.from_df(df, text_col='text', label_col='label')."
        )
    n_out = n_out_from_data(dls, n_out)
    model = create_model(
        "awd_lstm_clas",
        vocab_sz=len(dls.vocab[0]),
        n_class=n_out,
        config=dict(config or {}),
        drop_mult=drop_mult,
        lin_ftrs=lin_ftrs,
        ps=ps,
        pad_idx=dls.recipe.block.pad_id,
        max_len=max_len,
    )
    kw = _learner_kwargs(learner_kwargs, [ModelResetter(), RNNRegularizer(alpha, beta)])
    return _finish(TextLearner, dls, model, awd_lstm_clas_split, pretrained, **kw)


# load_learner gives back the class that was exported (generation needs LMLearner.predict)
register_learner("text", "learnkit.text.learner:TextLearner")
register_learner("text.lm", "learnkit.text.learner:LMLearner")
