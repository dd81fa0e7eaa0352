"""AWD-LSTM (Merity et al.) from scratch, its language-model and classifier heads, and their splitters.

- :class:`AWD_LSTM`: an embedding with *embedding dropout* (whole rows of the matrix dropped), then
  ``n_layers`` LSTMs with *weight dropout* on their hidden-to-hidden matrices (:class:`WeightDropout`) and
  *variational* dropout (:class:`RNNDropout`, one mask per sequence) on the input and between layers. The
  hidden state is carried from one call to the next (a language model reads its stream batch after batch)
  until :meth:`AWD_LSTM.reset`.
- :class:`LanguageModel`: the encoder plus a :class:`LinearDecoder` whose weight is *tied* to the embedding.
- :class:`SentenceClassifier`: the encoder, then *masked concat pooling* (the last real token's output, the
  max and the mean over the real tokens, padding left out) and a small head (:class:`PoolingLinearClassifier`).

The configs use fastai's keys; ``config=`` of the learner factories overrides any of them:

>>> sorted(awd_lstm_lm_config)
['bidir', 'emb_sz', 'embed_p', 'hidden_p', 'input_p', 'n_hid', 'n_layers', 'out_bias', 'output_p', 'pad_token', 'tie_weights', 'weight_p']
>>> lm = get_language_model(AWD_LSTM, 100, config=dict(emb_sz=16, n_hid=32, n_layers=2))
>>> lm(torch.randint(0, 100, (2, 7))).shape
torch.Size([2, 7, 100])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from ..exceptions import ModelError
from ..models.registry import register_model

__all__ = [
    "AWD_LSTM",
    "awd_lstm_lm_config",
    "awd_lstm_clas_config",
    "dropout_mask",
    "RNNDropout",
    "EmbeddingDropout",
    "WeightDropout",
    "LinearDecoder",
    "LanguageModel",
    "PoolingLinearClassifier",
    "SentenceClassifier",
    "masked_concat_pool",
    "get_language_model",
    "get_text_classifier",
    "awd_lstm_lm_split",
    "awd_lstm_clas_split",
    "awd_lstm_lm",
    "awd_lstm_clas",
]

#: the language model's defaults (fastai's keys and values)
awd_lstm_lm_config = dict(
    emb_sz=400,
    n_hid=1152,
    n_layers=3,
    pad_token=1,
    bidir=False,
    output_p=0.1,
    hidden_p=0.15,
    input_p=0.25,
    embed_p=0.02,
    weight_p=0.2,
    tie_weights=True,
    out_bias=True,
)
#: the classifier's defaults (fastai's keys and values)
awd_lstm_clas_config = dict(
    emb_sz=400,
    n_hid=1152,
    n_layers=3,
    pad_token=1,
    bidir=False,
    output_p=0.4,
    hidden_p=0.3,
    input_p=0.4,
    embed_p=0.05,
    weight_p=0.5,
)

_DROPS = ("output_p", "hidden_p", "input_p", "embed_p", "weight_p")


def dropout_mask(x: torch.Tensor, size, p: float) -> torch.Tensor:
    """A dropout mask like ``x`` (dtype, device) of shape ``size``: zeros with probability ``p``, the rest
    ``1 / (1 - p)`` (fastai's name). Both dropouts below draw theirs here and differ only in its shape.

    >>> m = dropout_mask(torch.ones(1), (1000,), 0.5)
    >>> sorted(set(m.tolist()))
    [0.0, 2.0]
    """
    return x.new_empty(size).bernoulli_(1 - p).div_(1 - p)


class RNNDropout(nn.Module):
    """Variational dropout on ``(B, T, C)``: one mask per sequence and channel, shared over time.

    >>> d = RNNDropout(0.5).train(); y = d(torch.ones(2, 5, 3))
    >>> bool((y == y[:, :1]).all())  # the same mask at every time step
    True
    """

    def __init__(self, p: float = 0.5):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        return x * dropout_mask(x, (x.size(0), 1, x.size(2)), self.p)


class EmbeddingDropout(nn.Module):
    """Embedding dropout: whole rows (words) of the embedding matrix zeroed, the rest scaled by ``1/(1-p)``.

    Called with the ids and the ``nn.Embedding`` to look them up in (which it does not own, so the state
    dict holds the embedding once).

    >>> emb = nn.Embedding(10, 4); d = EmbeddingDropout(0.5)
    >>> d(torch.tensor([[1, 2]]), emb).shape
    torch.Size([1, 2, 4])
    """

    def __init__(self, embed_p: float):
        super().__init__()
        self.embed_p = embed_p

    def forward(self, words: torch.Tensor, emb: nn.Embedding) -> torch.Tensor:
        w = emb.weight
        if self.training and self.embed_p:
            w = w * dropout_mask(w, (w.size(0), 1), self.embed_p)
        return F.embedding(
            words, w, emb.padding_idx, emb.max_norm, emb.norm_type, emb.scale_grad_by_freq, emb.sparse
        )


class WeightDropout(nn.Module):
    """DropConnect on a recurrent layer's weights (``weight_hh_l0`` by default) while training.

    The dropped weight is passed to the wrapped module for that call only (``torch.func.functional_call``);
    the module's own parameter stays the one the optimizer updates.

    >>> wd = WeightDropout(nn.LSTM(3, 4, batch_first=True), 0.5)
    >>> wd(torch.randn(2, 5, 3))[0].shape
    torch.Size([2, 5, 4])
    """

    def __init__(self, module: nn.Module, weight_p: float, layer_names=("weight_hh_l0",)):
        super().__init__()
        self.module, self.weight_p, self.layer_names = module, weight_p, tuple(layer_names)

    def forward(self, *args):
        if not self.training or not self.weight_p:
            return self.module(*args)
        params = {
            n: F.dropout(getattr(self.module, n), self.weight_p, training=True) for n in self.layer_names
        }
        return functional_call(self.module, params, args)


class AWD_LSTM(nn.Module):
    """The AWD-LSTM encoder: ``(B, T)`` token ids -> ``(B, T, emb_sz)`` outputs of the last layer.

    The hidden state carries over between calls (detached) until :meth:`reset`; a batch of another size
    starts from zeros. After each call, :meth:`rnn_outputs` gives the last layer's output (what AR/TAR
    regularisation uses).

    Example: ``AWD_LSTM(100, emb_sz=20, n_hid=30, n_layers=2)(torch.randint(0, 100, (2, 5))).shape``
    -> ``(2, 5, 20)``.
    """

    def __init__(
        self,
        vocab_sz: int,
        emb_sz: int = 400,
        n_hid: int = 1152,
        n_layers: int = 3,
        pad_token: int = 1,
        hidden_p: float = 0.2,
        input_p: float = 0.6,
        embed_p: float = 0.1,
        weight_p: float = 0.5,
        bidir: bool = False,
    ):
        super().__init__()
        if bidir:
            raise ModelError(
                "Expected bidir=False. Received: bidir=True (a bidirectional language model would see the "
                "tokens it predicts). Fix: leave bidir=False."
            )
        self.vocab_sz, self.emb_sz, self.n_hid, self.n_layers, self.pad_token = (
            vocab_sz,
            emb_sz,
            n_hid,
            n_layers,
            pad_token,
        )
        self.encoder = nn.Embedding(vocab_sz, emb_sz, padding_idx=pad_token)
        self.encoder.weight.data.uniform_(-0.1, 0.1)
        self.encoder_dp = EmbeddingDropout(embed_p)
        self.rnns = nn.ModuleList(
            [
                WeightDropout(
                    nn.LSTM(
                        emb_sz if i == 0 else n_hid,
                        emb_sz if i == n_layers - 1 else n_hid,
                        1,
                        batch_first=True,
                    ),
                    weight_p,
                )
                for i in range(n_layers)
            ]
        )
        self.input_dp = RNNDropout(input_p)
        self.hidden_dps = nn.ModuleList([RNNDropout(hidden_p) for _ in range(n_layers)])
        self.hidden = None
        self._raw_out = None

    def reset(self) -> None:
        """Forget the hidden state (the next call starts from zeros)."""
        self.hidden = None

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        bs = inp.size(0)
        if self.hidden is not None and self.hidden[0][0].size(1) != bs:
            self.hidden = None
        out = self.input_dp(self.encoder_dp(inp, self.encoder))
        new_hidden = []
        for i, (rnn, hdp) in enumerate(zip(self.rnns, self.hidden_dps)):
            h = None if self.hidden is None else self.hidden[i]
            out, hi = rnn(out) if h is None else rnn(out, h)
            new_hidden.append((hi[0].detach(), hi[1].detach()))
            if i == self.n_layers - 1:
                self._raw_out = out
            else:
                out = hdp(out)
        self.hidden = new_hidden
        return out

    def rnn_outputs(self) -> torch.Tensor | None:
        """The last layer's output of the last call (before any output dropout)."""
        return self._raw_out


class LinearDecoder(nn.Module):
    """Output dropout then a linear layer to the vocab; its weight tied to the embedding when given.

    Example: ``LinearDecoder(n_out=100, n_hid=20, tie_encoder=enc.encoder)``.
    """

    def __init__(
        self,
        n_out: int,
        n_hid: int,
        output_p: float = 0.1,
        tie_encoder: nn.Module | None = None,
        bias: bool = True,
    ):
        super().__init__()
        self.output_dp = RNNDropout(output_p)
        self.decoder = nn.Linear(n_hid, n_out, bias=bias)
        self.decoder.weight.data.uniform_(-0.1, 0.1)
        if bias:
            self.decoder.bias.data.zero_()
        if tie_encoder is not None:
            self.decoder.weight = tie_encoder.weight
        self._dropped = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._dropped = self.output_dp(x)
        return self.decoder(self._dropped)


class LanguageModel(nn.Module):
    """Encoder then decoder: ``(B, T)`` ids -> ``(B, T, vocab)`` next-token scores. ``reset()`` the state.

    Example: ``lm = LanguageModel(encoder, decoder); lm(ids)``; ``lm.reset()`` between texts.
    """

    def __init__(self, encoder: AWD_LSTM, decoder: LinearDecoder):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder

    def reset(self) -> None:
        self.encoder.reset()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))

    def rnn_outputs(self):
        """``(raw, dropped)``: the last layer's output before and after the output dropout (for AR/TAR)."""
        return self.encoder.rnn_outputs(), self.decoder._dropped


def masked_concat_pool(out: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``(B, T, C)`` outputs and a ``(B, T)`` mask of real tokens -> ``(B, 3C)``: [last real, max, mean].

    >>> out = torch.tensor([[[1.0], [3.0], [9.0]]]); mask = torch.tensor([[True, True, False]])
    >>> masked_concat_pool(out, mask).tolist()  # the padded 9 is ignored
    [[3.0, 3.0, 2.0]]
    """
    m = mask.unsqueeze(-1)
    lens = mask.sum(1)
    last = out[torch.arange(out.size(0), device=out.device), (lens - 1).clamp(min=0)]
    mx = out.masked_fill(~m, float("-inf")).max(1).values
    mx = torch.where(lens.unsqueeze(-1) > 0, mx, torch.zeros_like(mx))
    mean = (out * m).sum(1) / lens.clamp(min=1).unsqueeze(-1).to(out.dtype)
    return torch.cat([last, mx, mean], 1)


class PoolingLinearClassifier(nn.Module):
    """Masked concat pooling then [BatchNorm, Dropout, Linear, ReLU] blocks (``layers`` sizes, ``ps`` drops).

    Example: ``PoolingLinearClassifier(layers=[3 * 400, 50, 2], ps=[0.2, 0.1])``.
    """

    def __init__(self, layers: list[int], ps: list[float]):
        super().__init__()
        mods = []
        for i, (n_in, n_out, p) in enumerate(zip(layers[:-1], layers[1:], ps)):
            mods += [nn.BatchNorm1d(n_in), nn.Dropout(p), nn.Linear(n_in, n_out)]
            if i < len(layers) - 2:
                mods.append(nn.ReLU(inplace=True))
        self.layers = nn.Sequential(*mods)

    def forward(self, out: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.layers(masked_concat_pool(out, mask))


class SentenceClassifier(nn.Module):
    """``(B, T)`` padded ids -> ``(B, n_class)``: the encoder over the first ``max_len`` tokens (documented
    truncation), masked concat pooling over the real (non-``pad_idx``) tokens, the head.

    Example: ``SentenceClassifier(encoder, head, max_len=720)(ids).shape`` -> ``(bs, n_class)``.
    """

    def __init__(
        self, encoder: AWD_LSTM, head: PoolingLinearClassifier, max_len: int = 72 * 20, pad_idx: int = 1
    ):
        super().__init__()
        self.encoder, self.head, self.max_len, self.pad_idx = encoder, head, max_len, pad_idx

    def reset(self) -> None:
        self.encoder.reset()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.max_len and x.size(1) > self.max_len:
            x = x[:, : self.max_len]
        self.encoder.reset()  # documents are independent
        out = self.encoder(x)
        return self.head(out, x != self.pad_idx)

    def rnn_outputs(self):
        raw = self.encoder.rnn_outputs()
        return raw, raw


def _config(base: dict, config: dict | None, drop_mult: float) -> dict:
    cfg = dict(base)
    if config:
        unknown = sorted(set(config) - set(base) - {"lin_ftrs", "ps"})
        if unknown:
            raise ModelError(
                f"Expected config keys from {sorted(base)}. Received: unknown keys {unknown}. "
                "Fix: check the spelling (fastai's names)."
            )
        cfg.update(config)
    for k in _DROPS:
        if k in cfg:
            cfg[k] = cfg[k] * drop_mult
    return cfg


def _check_arch(arch) -> None:
    if arch is not AWD_LSTM and arch != "AWD_LSTM":
        raise ModelError(
            f"Expected arch=AWD_LSTM (the text architecture learnkit implements). Received: {arch!r}. "
            "Fix: pass AWD_LSTM, or a transformer through learnkit.text.hf."
        )


def get_language_model(
    arch, vocab_sz: int, config: dict | None = None, drop_mult: float = 1.0
) -> LanguageModel:
    """An AWD-LSTM language model for ``vocab_sz`` tokens (``config`` overrides ``awd_lstm_lm_config``).

    Example: ``get_language_model(AWD_LSTM, vocab_sz=1000, drop_mult=0.3)``.
    """
    _check_arch(arch)
    cfg = _config(awd_lstm_lm_config, config, drop_mult)
    enc = AWD_LSTM(
        vocab_sz,
        cfg["emb_sz"],
        cfg["n_hid"],
        cfg["n_layers"],
        cfg["pad_token"],
        cfg["hidden_p"],
        cfg["input_p"],
        cfg["embed_p"],
        cfg["weight_p"],
        cfg["bidir"],
    )
    dec = LinearDecoder(
        vocab_sz,
        cfg["emb_sz"],
        cfg["output_p"],
        enc.encoder if cfg["tie_weights"] else None,
        bias=cfg["out_bias"],
    )
    return LanguageModel(enc, dec)


def get_text_classifier(
    arch,
    vocab_sz: int,
    n_class: int,
    seq_len: int = 72,
    config: dict | None = None,
    drop_mult: float = 1.0,
    lin_ftrs=None,
    ps=None,
    pad_idx: int = 1,
    max_len: int = 72 * 20,
) -> SentenceClassifier:
    """An AWD-LSTM classifier (``config`` overrides ``awd_lstm_clas_config``); head sizes ``lin_ftrs`` (50).

    Example: ``get_text_classifier(AWD_LSTM, vocab_sz=1000, n_class=2, drop_mult=0.5)``.
    """
    _check_arch(arch)
    cfg = _config(awd_lstm_clas_config, config, drop_mult)
    cfg["pad_token"] = pad_idx
    enc = AWD_LSTM(
        vocab_sz,
        cfg["emb_sz"],
        cfg["n_hid"],
        cfg["n_layers"],
        pad_idx,
        cfg["hidden_p"],
        cfg["input_p"],
        cfg["embed_p"],
        cfg["weight_p"],
        cfg["bidir"],
    )
    lin_ftrs = list(lin_ftrs or cfg.get("lin_ftrs") or [50])
    layers = [cfg["emb_sz"] * 3] + lin_ftrs + [n_class]
    ps = list(ps or cfg.get("ps") or [0.1] * len(lin_ftrs))
    ps = [cfg["output_p"]] + [p * drop_mult for p in ps]
    if len(ps) != len(layers) - 1:
        raise ModelError(
            f"Expected one dropout per head layer ({len(layers) - 2} values). Received: ps={ps[1:]}."
        )
    return SentenceClassifier(enc, PoolingLinearClassifier(layers, ps), max_len=max_len, pad_idx=pad_idx)


@register_model(tags=("text",))
def awd_lstm_lm(vocab_sz: int, config: dict | None = None, drop_mult: float = 1.0) -> LanguageModel:
    """Registered factory of the AWD-LSTM language model (what exports name).

    Example: ``awd_lstm_lm(vocab_sz=1000, drop_mult=0.3)``.
    """
    return get_language_model(AWD_LSTM, vocab_sz, config, drop_mult)


@register_model(tags=("text",))
def awd_lstm_clas(
    vocab_sz: int,
    n_class: int,
    config: dict | None = None,
    drop_mult: float = 1.0,
    lin_ftrs=None,
    ps=None,
    pad_idx: int = 1,
    max_len: int = 72 * 20,
) -> SentenceClassifier:
    """Registered factory of the AWD-LSTM classifier (what exports name).

    Example: ``awd_lstm_clas(vocab_sz=1000, n_class=2, drop_mult=0.5)``.
    """
    return get_text_classifier(
        AWD_LSTM,
        vocab_sz,
        n_class,
        config=config,
        drop_mult=drop_mult,
        lin_ftrs=lin_ftrs,
        ps=ps,
        pad_idx=pad_idx,
        max_len=max_len,
    )


def awd_lstm_lm_split(model: LanguageModel) -> list[list[nn.Parameter]]:
    """Parameter groups of the LM: one per LSTM layer, then the embedding with the (tied) decoder.

    Example: ``Learner(dls, model, splitter=awd_lstm_lm_split)``; ``len(awd_lstm_lm_split(model))``.
    """
    enc = model.encoder
    groups = [list(r.parameters()) for r in enc.rnns]
    seen = {id(p) for g in groups for p in g}
    last = [p for p in list(enc.encoder.parameters()) + list(model.decoder.parameters()) if id(p) not in seen]
    uniq, ids = [], set()
    for p in last:
        if id(p) not in ids:
            ids.add(id(p))
            uniq.append(p)
    return groups + [uniq]


def awd_lstm_clas_split(model: SentenceClassifier) -> list[list[nn.Parameter]]:
    """Parameter groups of the classifier: the embedding, each LSTM layer, the head (so ``freeze_to(-2)``
    trains the last LSTM and the head).

    Example: ``Learner(dls, model, splitter=awd_lstm_clas_split)``, then ``learn.freeze_to(-2)``.
    """
    enc = model.encoder
    return (
        [list(enc.encoder.parameters())]
        + [list(r.parameters()) for r in enc.rnns]
        + [list(model.head.parameters())]
    )
