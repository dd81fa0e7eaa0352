"""The ULMFiT flow on real text (LM -> encoder -> classifier), export and reload, encoder transfer, generation,
callbacks, pretrained weights through the download path, and the CLI."""

from __future__ import annotations

import functools
import http.server
import io
import pickle
import tarfile
import threading
import warnings

import pytest
import torch

from learnkit import load_learner
from learnkit.exceptions import ModelError
from learnkit.metrics import accuracy
from learnkit.text import (
    AWD_LSTM,
    ModelResetter,
    RNNRegularizer,
    TextDataLoaders,
    get_language_model,
    language_model_learner,
    text_classifier_learner,
)

CFG = dict(emb_sz=32, n_hid=48, n_layers=2)


@pytest.fixture(scope="module")
def ulmfit(tmp_path_factory, corpus_df):
    """The course's flow, small: LM fine-tuned on all texts, encoder saved, classifier trained on it."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ulmfit")
    dls_lm = TextDataLoaders.from_df(
        corpus_df, path=path, text_col="text", is_lm=True, valid_pct=0.1, bs=32, seq_len=32, seed=0
    )
    lm = language_model_learner(dls_lm, AWD_LSTM, config=CFG, drop_mult=0.3, pretrained=False)
    with lm.no_bar():
        lm.fit_one_cycle(1, 2e-2)
    lm.save_encoder("enc")
    dls = TextDataLoaders.from_df(
        corpus_df,
        path=path,
        text_col="text",
        label_col="label",
        valid_col="is_valid",
        text_vocab=dls_lm.vocab,
        bs=16,
        seed=0,
    )
    learn = text_classifier_learner(dls, AWD_LSTM, config=CFG, drop_mult=0.3, metrics=accuracy)
    learn.load_encoder("enc")
    with learn.no_bar():
        learn.fine_tune(3, 2e-2)
    return dict(path=path, lm=lm, dls_lm=dls_lm, learn=learn, dls=dls, df=corpus_df)


def test_ulmfit_flow_beats_majority_class(ulmfit):
    lm, learn, df = ulmfit["lm"], ulmfit["learn"], ulmfit["df"]
    lm_loss, lm_acc, ppl = lm.validate()
    assert ppl < len(ulmfit["dls_lm"].vocab) / 4  # far better than guessing among the vocab
    _, acc = learn.validate()
    majority = df[df.is_valid].label.value_counts(normalize=True).max()
    assert acc > majority + 0.1, (acc, majority)


def test_predict_raw_text_and_export_reload(ulmfit):
    learn = ulmfit["learn"]
    text = "Return a new DataFrame with the index reset and the columns sorted by label."
    label, idx, probs = learn.predict(text)
    assert label in ("pandas", "torch") and probs.shape == (2,) and int(idx) == int(probs.argmax())
    f = learn.export(ulmfit["path"] / "clas.lk")
    raw = torch.load(f, weights_only=True)  # pickle-free
    assert raw["data"]["block"]["tokenizer"]["spec"]["rules"][0] == "fix_html"
    loaded = load_learner(f)
    label2, idx2, probs2 = loaded.predict(text)
    assert label2 == label and torch.allclose(probs, probs2, atol=1e-5)
    valid_texts = ulmfit["df"][ulmfit["df"].is_valid].text.tolist()[:20]
    p1 = learn.get_preds(dl=learn.dls.test_dl(valid_texts))[0]
    p2 = loaded.get_preds(dl=loaded.dls.test_dl(valid_texts))[0]
    assert torch.allclose(p1, p2, atol=1e-5)


def test_lm_generates_and_lm_export_reloads(ulmfit):
    lm = ulmfit["lm"]
    torch.manual_seed(0)
    out = lm.predict("Returns a new", n_words=12, temperature=0.75)
    assert out.startswith("Returns a new") and len(out.split()) >= 12 + 3 - 2
    assert "xxunk" not in out.split()[3:]
    assert len(lm.predict("The", n_words=3, min_p=0.01).split()) >= 3
    f = lm.export(ulmfit["path"] / "lm.lk")
    loaded = load_learner(f)
    assert loaded.dls.vocab == ulmfit["dls_lm"].vocab


def test_gradual_unfreezing_through_the_splitter(ulmfit):
    learn = ulmfit["learn"]
    groups = learn.splitter(learn.model)
    assert len(groups) == 4  # embedding, 2 LSTM layers, head

    def trainable():
        return [all(p.requires_grad for p in g) for g in groups]

    learn.freeze()
    assert trainable() == [False, False, False, True]
    learn.freeze_to(-2)
    assert trainable() == [False, False, True, True]
    learn.freeze_to(-3)
    assert trainable() == [False, True, True, True]
    learn.unfreeze()
    assert trainable() == [True] * 4


def test_load_encoder_maps_embeddings_by_token(ulmfit, corpus_df):
    lm = ulmfit["lm"]
    # a classifier whose vocab differs from the LM's (built from fewer texts, its own min_freq)
    dls2 = TextDataLoaders.from_df(
        corpus_df.iloc[::2], path=ulmfit["path"], text_col="text", label_col="label", min_freq=2, bs=32
    )
    lm_vocab, vocab2 = ulmfit["dls_lm"].vocab, dls2.vocab[0]
    assert lm_vocab != vocab2
    learn2 = text_classifier_learner(dls2, AWD_LSTM, config=CFG)
    learn2.load_encoder("enc")
    emb_lm, emb2 = lm.model.encoder.encoder.weight, learn2.model.encoder.encoder.weight
    for tok in ("tensor", "dataframe", "the", "xxmaj"):
        assert torch.allclose(emb2[vocab2.index(tok)], emb_lm[lm_vocab.index(tok)].to(emb2.device))
    unseen = [i for i, t in enumerate(vocab2) if t not in lm_vocab]
    assert unseen and torch.allclose(emb2[unseen[0]], emb_lm.mean(0), atol=1e-5)


def test_load_encoder_on_a_file_that_is_not_an_encoder(ulmfit):
    learn = ulmfit["learn"]
    learn.save("whole_model")
    with pytest.raises(
        ModelError, match="not an encoder file: it is a whole model's weights written by learn.save"
    ):
        learn.load_encoder("whole_model")
    torch.save({"w": torch.zeros(2)}, learn.path / learn.model_dir / "plain.pth")
    with pytest.raises(ModelError, match="plain state dict"):
        learn.load_encoder("plain")


def test_model_resetter_and_rnn_regularizer(ulmfit):
    lm = ulmfit["lm"]
    assert any(isinstance(c, ModelResetter) for c in lm.cbs)
    reg = next(c for c in lm.cbs if isinstance(c, RNNRegularizer))
    assert (reg.alpha, reg.beta) == (2.0, 1.0)
    lm.model.train()
    x, y = lm.dls.one_batch()
    lm.model.reset()
    lm.training, lm.xb, lm.yb = True, (x,), (y,)
    lm.pred = lm.model(x)
    base = lm.loss_func(lm.pred, y)
    lm.loss_grad = base
    reg.after_loss()
    raw, dropped = lm.model.rnn_outputs()
    expected = base + 2.0 * dropped.pow(2).mean() + 1.0 * (raw[:, 1:] - raw[:, :-1]).pow(2).mean()
    assert torch.allclose(lm.loss_grad, expected)
    lm.training = False
    lm.model.eval()
    lm.model.encoder.hidden = "stale"
    cb = next(c for c in lm.cbs if isinstance(c, ModelResetter))
    cb.before_validate()
    assert lm.model.encoder.hidden is None


# ------------------------------------------------------------------------------------------ pretrained weights
def _fastai_layout_archive(tmp_path, vocab):
    """A WT103-style archive: fastai's state-dict layout and a pickled itos list (a small model)."""
    torch.manual_seed(1)
    src = get_language_model(AWD_LSTM, len(vocab), config=CFG)
    sd = {}
    for k, v in src.state_dict().items():
        k = k.replace("encoder.", "0.", 1) if k.startswith("encoder.") else k.replace("decoder.", "1.", 1)
        if k.endswith("module.weight_hh_l0"):
            sd[k.replace("module.weight_hh_l0", "weight_hh_l0_raw")] = v
            sd[k] = v
        else:
            sd[k] = v
        if k == "0.encoder.weight":
            sd["0.encoder_dp.emb.weight"] = v
    buf = io.BytesIO()
    torch.save(sd, buf)
    itos = pickle.dumps(list(vocab))
    arch = tmp_path / "serve" / "wt103-fwd.tgz"
    arch.parent.mkdir(parents=True)
    with tarfile.open(arch, "w:gz") as tf:
        for name, data in (("wt103-fwd/lstm_fwd.pth", buf.getvalue()), ("wt103-fwd/itos_wt103.pkl", itos)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return src, arch


def test_pretrained_weights_through_the_download_path(tmp_path, monkeypatch, ulmfit):
    monkeypatch.setenv("LEARNKIT_HOME", str(tmp_path / "home"))
    dls_lm = ulmfit["dls_lm"]
    file_vocab = list(reversed(dls_lm.vocab))[:200] + ["onlyinfile"]
    src, arch = _fastai_layout_archive(tmp_path, file_vocab)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(arch.parent))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/wt103-fwd.tgz"
        lm = language_model_learner(dls_lm, AWD_LSTM, config=CFG, pretrained=True, pretrained_url=url)
    finally:
        server.shutdown()
    assert (
        tmp_path / "home" / "archive" / "wt103-fwd.tgz"
    ).exists()  # cached where untar_data keeps archives
    emb, src_emb = lm.model.encoder.encoder.weight, src.encoder.encoder.weight
    tok = file_vocab[5]
    assert torch.allclose(emb[dls_lm.vocab.index(tok)], src_emb[5])  # mapped by token, not by index
    w_src = src.encoder.rnns[1].module.weight_hh_l0
    assert torch.allclose(lm.model.encoder.rnns[1].module.weight_hh_l0, w_src)
    groups = lm.splitter(lm.model)
    assert [all(p.requires_grad for p in g) for g in groups] == [False, False, True]  # body frozen


def test_pretrained_offline_says_which_file_where(tmp_path, monkeypatch, ulmfit):
    monkeypatch.setenv("LEARNKIT_HOME", str(tmp_path / "home"))
    with pytest.raises(ModelError) as e:
        language_model_learner(
            ulmfit["dls_lm"],
            AWD_LSTM,
            config=CFG,
            pretrained=True,
            pretrained_url="http://127.0.0.1:9/wt103-fwd.tgz",
        )
    msg = str(e.value)
    assert "wt103-fwd.tgz" in msg and str(tmp_path / "home" / "archive") in msg and "pretrained=False" in msg


# ------------------------------------------------------------------------------------------ CLI
def test_cli_trains_and_exports(tmp_path, corpus_df):
    from learnkit.text.cli import _standalone

    f = tmp_path / "docs.csv"
    corpus_df.iloc[::3].to_csv(f, index=False)
    out = tmp_path / "model.lk"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc = _standalone(
            [
                "train",
                "text",
                str(f),
                "--text-col",
                "text",
                "--label-col",
                "label",
                "--small",
                "--epochs",
                "1",
                "--lm-epochs",
                "1",
                "--bs",
                "32",
                "--seq-len",
                "32",
                "--out",
                str(out),
            ]
        )
    assert rc == 0
    label, _, probs = load_learner(out).predict("Returns a tensor filled with zeros.")
    assert label in ("pandas", "torch") and abs(float(probs.sum()) - 1) < 1e-5


def test_text_learners_use_fastais_momentum_cycle(ulmfit):
    # fastai's TextLearner cycles momentum 0.8 -> 0.7 -> 0.8 (the core's default is 0.95 -> 0.85 -> 0.95)
    lm, learn = ulmfit["lm"], ulmfit["learn"]
    assert lm.moms == learn.moms == (0.8, 0.7, 0.8)
    assert learn.opt.param_groups[-1]["betas"][0] == pytest.approx(0.8, abs=1e-3)  # where the cycle ends
    other = language_model_learner(
        ulmfit["dls_lm"], AWD_LSTM, config=CFG, pretrained=False, moms=(0.9, 0.8, 0.9)
    )
    assert other.moms == (0.9, 0.8, 0.9)
