"""Tokenizer rules one by one, the word tokenizer, the cached/parallel runs, and property tests."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import learnkit.text.tokenize as tk
from learnkit.exceptions import DataError
from learnkit.text import (
    SubwordTokenizer,
    Tokenizer,
    WordTokenizer,
    defaults,
    fix_html,
    lowercase,
    replace_all_caps,
    replace_maj,
    replace_rep,
    replace_wrep,
    rm_useless_spaces,
    spec_add_spaces,
    tokenize_df,
    tokenize_folder,
    tokenize_texts,
)


# ------------------------------------------------------------------------------------------ rules one by one
def test_fix_html_entities_and_breaks():
    assert (
        fix_html("Tom &amp; Jerry<br /><br />were #39;great#39; &quot;fun&quot;")
        == "Tom & Jerry\n\nwere 'great' \"fun\""
    )
    assert fix_html("a\\nb") == "a\nb"


def test_replace_rep_counts_characters():
    # fastai v2: three or more of the same character
    assert replace_rep("cccc") == " xxrep 4 c "
    assert replace_rep("I loooove it!!!!!") == "I l xxrep 4 o ve it xxrep 5 ! "
    assert replace_rep("good!!!") == "good xxrep 3 ! "
    assert replace_rep("good!! too") == "good!! too"  # two: unchanged


def test_replace_wrep_counts_words():
    # fastai v2: a word three or more times in a row
    assert replace_wrep("word word word").split() == ["xxwrep", "3", "word"]
    out = replace_wrep("this is very very very very good")
    assert out.split() == ["this", "is", "xxwrep", "4", "very", "good"]
    assert replace_wrep("very very good") == "very very good"  # twice: unchanged
    assert replace_wrep("so so sorry") == "so so sorry"  # a longer word is not a repeat


def test_spec_add_spaces_and_rm_useless_spaces():
    assert spec_add_spaces("#tag/and\\x").split() == ["#", "tag", "/", "and", "\\", "x"]
    assert rm_useless_spaces("a    b  c ") == "a b c "


def test_replace_all_caps_and_maj():
    assert replace_all_caps("I LOVED this MOVIE") == "I xxup loved this xxup movie"
    assert replace_maj("The Movie was OK") == "xxmaj the xxmaj movie was OK"
    assert replace_maj("iPhone McDonald") == "iPhone McDonald"  # mixed case left alone


def test_lowercase_adds_bos():
    assert lowercase("Hello World") == "xxbos hello world"
    assert lowercase("Hi", add_eos=True) == "xxbos hi xxeos"


def test_default_rules_in_order():
    names = [r.__name__ for r in defaults.text_proc_rules]
    assert names == [
        "fix_html",
        "replace_rep",
        "replace_wrep",
        "spec_add_spaces",
        "rm_useless_spaces",
        "replace_all_caps",
        "replace_maj",
        "lowercase",
    ]
    assert defaults.text_spec_tok[:2] == ["xxunk", "xxpad"]


def test_tokenizer_full_pipeline_on_real_sentence():
    toks = Tokenizer()("The MOVIE wasn't good!!!! Visit https://example.com &amp; tell @bob #fail")
    assert toks[:8] == ["xxbos", "xxmaj", "the", "xxup", "movie", "was", "n't", "good"]
    assert ["xxrep", "4", "!"] == toks[8:11]
    assert "&" in toks and "@bob" in toks


# ------------------------------------------------------------------------------------------ word tokenizer
@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "I don't know, it's 3.14 or 1,000.",
            ["I", "do", "n't", "know", ",", "it", "'s", "3.14", "or", "1,000", "."],
        ),
        ("see https://pytorch.org/docs now", ["see", "https://pytorch.org/docs", "now"]),
        ("mail me@x.org @anna #ml", ["mail", "me@x.org", "@anna", "#ml"]),
        ("good 😀👍 день 東京", ["good", "😀", "👍", "день", "東京"]),
        ("xxbos xxmaj hi", ["xxbos", "xxmaj", "hi"]),
    ],
)
def test_word_tokenizer_cases(text, expected):
    assert WordTokenizer()(text) == expected


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=200))
def test_word_tokenizer_never_loses_a_non_space_character(text):
    toks = WordTokenizer()(text)
    assert "".join(toks) == re.sub(r"\s", "", text)
    assert all(t and not re.search(r"\s", t) for t in toks)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=200))
def test_full_tokenizer_never_crashes(text):
    toks = Tokenizer()(text)
    assert toks[0] == "xxbos" and all(isinstance(t, str) and t for t in toks)


# The straightforward tokenizer regex (no fast paths, case-insensitive throughout): the oracle that
# WordTokenizer's faster pattern must agree with token for token.
_REFERENCE_WORD_RE = re.compile(
    r"""
    (?:https?://|www\.)[^\s<>"']+[^\s<>"'.,;:!?)\]]
  | [\w.+-]+@[\w-]+(?:\.[\w-]+)+
  | [@#][^\W_][\w]*
  | \d+(?:[.,]\d+)+
  | [^\W\d_]+(?=n't\b)
  | n't\b
  | '(?:s|re|ve|ll|d|m)\b
  | xx[a-z]+
  | [^\W_]+
  | _+
  | \S
    """,
    re.VERBOSE | re.IGNORECASE,
)

# text made of the pieces the rules and the tokenizer react to, so the examples hit their edges
_tricky = st.lists(
    st.sampled_from(
        [
            "a",
            "B",
            "Ab",
            "CD",
            "É",
            "é",
            "東",
            "Σ",
            "İ",
            "ϒ",
            "xx",
            "XX",
            "n't",
            "'s",
            "'",
            "1",
            "3.14",
            "1,0",
            " ",
            "  ",
            "\n",
            "!",
            ".",
            ",",
            "-",
            "_",
            "/",
            "#",
            "@",
            "\\",
            ":",
            "http://a.b",
            "www.",
            "&amp;",
            "<br />",
            "so so so",
            "aaa",
            "@b",
            "#c",
            "x@y.z",
        ]  # fmt: skip
    ),
    max_size=40,
).map("".join)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(_tricky, st.text(max_size=120)))
def test_fast_pipeline_equals_rules_one_by_one_and_reference_regex(text):
    # Tokenizer fuses replace_all_caps+replace_maj and WordTokenizer uses fast paths: same tokens as
    # running each rule in order and then the plain reference regex
    slow = text
    for rule in defaults.text_proc_rules:
        slow = rule(slow)
    assert Tokenizer()(text) == _REFERENCE_WORD_RE.findall(slow)
    assert WordTokenizer()(text) == _REFERENCE_WORD_RE.findall(text)


# ------------------------------------------------------------------------------------------ many texts
def test_tokenize_texts_nan_and_empty_kept_with_warning():
    with pytest.warns(UserWarning, match="2 of 3 texts are empty or missing"):
        out = tokenize_texts(["Hi there", float("nan"), ""], rules=[])
    assert out == [["Hi", "there"], [], []]


def test_parallel_matches_serial(monkeypatch, corpus_df):
    texts = corpus_df.text.tolist()[:200]
    serial = tokenize_texts(texts, n_workers=0)
    monkeypatch.setattr(tk, "PARALLEL_MIN_CHARS", 0)
    assert tokenize_texts(texts, n_workers=2) == serial


def test_cache_hit_edit_rule_change_and_version(tmp_path, monkeypatch, corpus_df):
    texts = corpus_df.text.tolist()[:100]
    first = tokenize_texts(texts, n_workers=0, cache_dir=tmp_path)
    files = list(tmp_path.glob("tok-*.npz"))
    assert len(files) == 1
    calls = []
    real_run = tk._run
    monkeypatch.setattr(tk, "_run", lambda tok, t, nw: calls.append(len(t)) or real_run(tok, t, nw))
    assert tokenize_texts(texts, n_workers=0, cache_dir=tmp_path) == first and calls == []  # read back
    edited = texts[:-1] + [texts[-1] + " An edit."]
    assert tokenize_texts(edited, n_workers=0, cache_dir=tmp_path)[-1][-3:] == ["an", "edit", "."]
    assert calls == [100]  # an edited text -> re-tokenized
    tokenize_texts(texts, n_workers=0, rules=[], cache_dir=tmp_path)
    assert calls == [100, 100]  # other rules -> other key
    monkeypatch.setattr(tk, "__version__", "999.0")
    assert tokenize_texts(texts, n_workers=0, cache_dir=tmp_path) == first
    assert calls == [100, 100, 100]  # another version's cache is not used


def test_damaged_cache_is_ignored(tmp_path):
    texts = ["One text.", "Two texts."]
    good = tokenize_texts(texts, cache_dir=tmp_path)
    (f,) = tmp_path.glob("tok-*.npz")
    f.write_bytes(b"not a cache")
    assert tokenize_texts(texts, cache_dir=tmp_path) == good


def test_tokenize_df_joins_fields_and_counts():
    df = pd.DataFrame({"title": ["Great", "Bad"], "body": ["Loved it.", None]})
    out, count = tokenize_df(df, ["title", "body"])
    assert out["text"][0] == [
        "xxbos",
        "xxfld",
        "1",
        "xxmaj",
        "great",
        "xxfld",
        "2",
        "xxmaj",
        "loved",
        "it",
        ".",
    ]
    assert count["xxfld"] == 4 and list(out["text_length"]) == [11, 7]


def test_tokenize_folder_writes_tokens_and_counter(tmp_path):
    (tmp_path / "docs" / "a").mkdir(parents=True)
    (tmp_path / "docs" / "a" / "1.txt").write_text("Hello World!", encoding="utf-8")
    (tmp_path / "docs" / "2.txt").write_text("Bye now.", encoding="utf-8")
    out = tokenize_folder(tmp_path / "docs")
    assert (out / "a" / "1.txt").read_text() == "xxbos xxmaj hello xxmaj world !"
    assert json.loads((out / "counter.json").read_text())["xxbos"] == 2


def test_tokenize_folder_bad_utf8_names_file(tmp_path):
    (tmp_path / "d").mkdir()
    bad = tmp_path / "d" / "latin.txt"
    bad.write_bytes("café crème".encode("latin-1"))
    with pytest.raises(DataError, match="latin.txt.*not valid utf-8.*errors='replace'"):
        tokenize_folder(tmp_path / "d")
    out = tokenize_folder(tmp_path / "d", errors="replace")
    assert "caf" in (out / "latin.txt").read_text()


def test_unregistered_rule_cannot_be_cached_or_exported(tmp_path):
    with pytest.raises(DataError, match="register_rule"):
        tokenize_texts(["x"], rules=[lambda t: t], cache_dir=tmp_path)


def test_subword_tokenizer_trains_and_round_trips(corpus_df):
    sp = SubwordTokenizer(vocab_sz=300).setup(corpus_df.text.tolist()[:200])
    toks = sp("Returns a new tensor with the sine of the elements.")
    assert 3 < len(toks) < 40
    assert "".join(toks).replace("▁", " ").strip() == "Returns a new tensor with the sine of the elements."
    again = tk._tok_from_spec(sp.spec())
    assert again("the elements") == sp("the elements")


def test_cache_stores_no_pickle(tmp_path):
    tokenize_texts(["Plain text."], cache_dir=tmp_path)
    (f,) = tmp_path.glob("*.npz")
    with np.load(f, allow_pickle=False) as z:
        assert set(z.files) == {"meta", "lens", "ids"}
