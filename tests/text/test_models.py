"""AWD-LSTM pieces: dropouts, tied decoder, carried hidden state, masked pooling, configs."""

from __future__ import annotations

import pytest
import torch

from learnkit.exceptions import ModelError
from learnkit.models import create_model
from learnkit.text import (
    AWD_LSTM,
    EmbeddingDropout,
    RNNDropout,
    awd_lstm_clas_config,
    awd_lstm_lm_config,
    get_language_model,
    get_text_classifier,
    masked_concat_pool,
)

SMALL = dict(emb_sz=16, n_hid=24, n_layers=2)


def test_configs_have_fastais_keys():
    assert set(awd_lstm_lm_config) == {
        "emb_sz",
        "n_hid",
        "n_layers",
        "pad_token",
        "bidir",
        "output_p",
        "hidden_p",
        "input_p",
        "embed_p",
        "weight_p",
        "tie_weights",
        "out_bias",
    }
    assert set(awd_lstm_clas_config) <= set(awd_lstm_lm_config)


def test_config_override_and_unknown_key():
    lm = get_language_model(AWD_LSTM, 40, config=SMALL, drop_mult=0.5)
    assert lm.encoder.emb_sz == 16 and len(lm.encoder.rnns) == 2
    assert lm.encoder.input_dp.p == pytest.approx(awd_lstm_lm_config["input_p"] * 0.5)
    with pytest.raises(ModelError, match="unknown keys \\['emb_size'\\]"):
        get_language_model(AWD_LSTM, 40, config={"emb_size": 8})


def test_tied_decoder_and_shapes():
    lm = get_language_model(AWD_LSTM, 40, config=SMALL)
    assert lm.decoder.decoder.weight is lm.encoder.encoder.weight
    assert lm(torch.randint(0, 40, (3, 7))).shape == (3, 7, 40)


def test_hidden_state_carries_until_reset():
    torch.manual_seed(0)
    lm = get_language_model(AWD_LSTM, 40, config=SMALL).eval()
    x = torch.randint(0, 40, (2, 6))
    a = lm(x)
    b = lm(x)  # same input, state carried from the first call
    lm.reset()
    c = lm(x)
    assert not torch.allclose(a, b) and torch.allclose(a, c)
    # carrying the state over two halves equals one pass over the whole sequence
    lm.reset()
    whole = lm(torch.cat([x, x], 1))
    lm.reset()
    halves = torch.cat([lm(x), lm(x)], 1)
    assert torch.allclose(whole, halves, atol=1e-5)


def test_weight_dropout_only_while_training_and_grad_reaches_weight():
    torch.manual_seed(0)
    enc = AWD_LSTM(30, 8, 12, 1, hidden_p=0, input_p=0, embed_p=0, weight_p=0.9)
    x = torch.randint(0, 30, (2, 5))
    enc.eval()
    e1 = enc(x)
    enc.reset()
    assert torch.allclose(e1, enc(x))
    enc.train()
    enc.reset()
    out = enc(x)
    assert not torch.allclose(out, e1)
    out.sum().backward()
    assert enc.rnns[0].module.weight_hh_l0.grad is not None
    assert sum(1 for _ in enc.parameters()) == 1 + 4  # embedding + one LSTM's 4 tensors: no duplicate weight


def test_rnn_and_embedding_dropout_masks():
    x = torch.ones(4, 9, 6)
    y = RNNDropout(0.5).train()(x)
    assert torch.equal(y, y[:, :1].expand_as(y)) and set(y.unique().tolist()) <= {0.0, 2.0}
    emb = torch.nn.Embedding(50, 5)
    ed = EmbeddingDropout(0.5).train()
    out = ed(torch.arange(50)[None], emb)[0]
    zero_rows = (out == 0).all(1)
    assert 5 < int(zero_rows.sum()) < 45  # whole words dropped
    assert torch.allclose(out[~zero_rows], emb.weight[~zero_rows] * 2)


def test_masked_concat_pool_ignores_padding():
    torch.manual_seed(0)
    clas = get_text_classifier(AWD_LSTM, 40, 3, config=SMALL, pad_idx=1).eval()
    doc = torch.randint(2, 40, (1, 6))
    padded = torch.cat([doc, torch.ones(1, 5, dtype=torch.long)], 1)
    batch = torch.cat([padded, torch.randint(2, 40, (1, 11))])
    assert torch.allclose(clas(doc), clas(batch)[:1], atol=1e-5)
    out = torch.arange(6.0).view(1, 3, 2)
    pooled = masked_concat_pool(out, torch.tensor([[True, True, False]]))
    assert pooled.tolist() == [[2.0, 3.0, 2.0, 3.0, 1.0, 2.0]]


def test_classifier_truncates_to_max_len():
    clas = get_text_classifier(AWD_LSTM, 40, 2, config=SMALL, max_len=8).eval()
    x = torch.randint(2, 40, (2, 30))
    assert torch.allclose(clas(x), clas(x[:, :8]))


def test_registered_factories_carry_a_plain_spec():
    m = create_model("awd_lstm_clas", vocab_sz=40, n_class=2, config=SMALL)
    assert m.learnkit_spec == {
        "factory": "awd_lstm_clas",
        "kwargs": {"vocab_sz": 40, "n_class": 2, "config": SMALL},
    }
    with pytest.raises(ModelError, match="bidir=False"):
        AWD_LSTM(10, bidir=True)
