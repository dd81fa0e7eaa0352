"""Tokenization: the course's special tokens and rules, a fast regex word tokenizer, parallel and cached runs.

A text goes through the *rules* (plain ``str -> str`` functions, run in order), then the *tokenizer*
(``str -> list[str]``). The default rules, ``defaults.text_proc_rules``, are

=====================  ==============================================================================
rule                   what it does
=====================  ==============================================================================
``fix_html``           HTML entities and leftovers (``&amp;``, ``<br />``, ``\\n`` written out) to text
``replace_rep``        a character repeated 3+ times -> ``xxrep <n> <char>`` (``cccc`` -> ``xxrep 4 c``)
``replace_wrep``       a word repeated 3+ times -> ``xxwrep <n> <word>`` (``a a a`` -> ``xxwrep 3 a``)
``spec_add_spaces``    spaces around ``/``, ``#`` and ``\\`` so they become tokens of their own
``rm_useless_spaces``  runs of spaces -> one space
``replace_all_caps``   an all-caps word -> ``xxup <word lowercased>``
``replace_maj``        a capitalised word -> ``xxmaj <word lowercased>``
``lowercase``          everything lowercased, with ``xxbos`` in front
=====================  ==============================================================================

:class:`WordTokenizer` splits with one compiled regular expression: URLs, e-mail addresses, mentions and
hashtags, numbers (``1,000.5``), English contractions (``don't`` -> ``do n't``), words in any script, and
every other non-space character (punctuation, emoji) as its own token. It never drops a non-space
character: ``''.join(tokens)`` is the text without its whitespace.

:func:`tokenize_texts` runs a :class:`Tokenizer` over many texts in worker processes when the corpus is
large, and caches the result on disk keyed by the texts, the tokenizer's settings and the learnkit
version, so a second run is a file read. A cache file that does not match (other settings, other
version, damaged) is ignored and rewritten.

>>> tok = Tokenizer()
>>> tok("The MOVIE wasn't good!!!!")
['xxbos', 'xxmaj', 'the', 'xxup', 'movie', 'was', "n't", 'good', 'xxrep', '4', '!']
"""

from __future__ import annotations

import hashlib
import html
import io
import json
import math
import os
import re
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from .. import __version__
from ..data.getters import get_files
from ..data.loaders import default_num_workers
from ..exceptions import DataError
from ..utils import atomic_write_bytes

__all__ = [
    "UNK",
    "PAD",
    "BOS",
    "EOS",
    "FLD",
    "TK_REP",
    "TK_WREP",
    "TK_UP",
    "TK_MAJ",
    "defaults",
    "fix_html",
    "replace_rep",
    "replace_wrep",
    "spec_add_spaces",
    "rm_useless_spaces",
    "replace_all_caps",
    "replace_maj",
    "lowercase",
    "register_rule",
    "WordTokenizer",
    "SubwordTokenizer",
    "Tokenizer",
    "tokenize_texts",
    "tokenize_df",
    "tokenize_folder",
    "read_text_file",
]

UNK, PAD, BOS, EOS, FLD = "xxunk", "xxpad", "xxbos", "xxeos", "xxfld"
TK_REP, TK_WREP, TK_UP, TK_MAJ = "xxrep", "xxwrep", "xxup", "xxmaj"

# ----------------------------------------------------------------------------------------------- rules
_RE_BR = re.compile(r"<\s*br\s*/?\s*>", re.IGNORECASE)
_RE_TAG = re.compile(r"</?[a-zA-Z][^<>]{0,40}>")


def fix_html(t: str) -> str:
    """Undo common HTML leftovers: entities (``&amp;`` ``&#39;``), ``<br />`` and escaped newlines.

    >>> fix_html("a&amp;b<br />c &quot;d&quot;")
    'a&b\\nc "d"'
    """
    t = (
        t.replace("#39;", "'")
        .replace("\\n", "\n")
        .replace('\\"', '"')
        .replace(" @.@ ", ".")
        .replace(" @-@ ", "-")
    )
    t = _RE_BR.sub("\n", t)
    t = html.unescape(t)
    return t.replace("nbsp;", " ").replace("\xa0", " ")


_RE_REP = re.compile(r"(\S)\1\1+")  # \1\1+ rather than \1{2,}: the same matches, found faster


def _rep_sub(m: re.Match) -> str:
    return f" {TK_REP} {len(m.group(0))} {m.group(1)} "


def replace_rep(t: str) -> str:
    """A non-space character repeated 3 or more times -> `` xxrep <n> <char> `` (fastai v2's rule).

    >>> replace_rep("cooool!!!")
    'c xxrep 4 o l xxrep 3 ! '
    """
    return _RE_REP.sub(_rep_sub, t)


# \b before a word char is "not after a word char"; the word is possessive (a shorter prefix can never be
# followed by whitespace), so a word that is not repeated fails after one look
_RE_WREP = re.compile(r"\b(\w++)\s+\1(?!\w)(?:\s+\1(?!\w))+")  # one repeat, then one or more


def _wrep_sub(m: re.Match) -> str:
    return f" {TK_WREP} {len(m.group(0).split())} {m.group(1)} "


def replace_wrep(t: str) -> str:
    """A word repeated 3 or more times in a row -> `` xxwrep <n> <word> `` (fastai v2's rule).

    >>> replace_wrep("this is so so so good")
    'this is  xxwrep 3 so  good'
    """
    return _RE_WREP.sub(_wrep_sub, t)


def spec_add_spaces(t: str) -> str:
    """Spaces around ``/``, ``#`` and ``\\`` so they are tokens of their own.

    >>> spec_add_spaces("#fun/times")
    ' # fun / times'
    """
    # three C-speed replacements (no regex pass): the characters are distinct, so the order does not matter
    return t.replace("/", " / ").replace("#", " # ").replace("\\", " \\ ")


_RE_SPACES = re.compile(" {2,}")


def rm_useless_spaces(t: str) -> str:
    """Runs of spaces -> one space.

    >>> rm_useless_spaces("a   b  c")
    'a b c'
    """
    return _RE_SPACES.sub(" ", t) if "  " in t else t


# The capitalisation rules look for a letter that is not lowercase ASCII ([^\W\d_a-z]) and only then
# check that it starts a word (the lookbehind comes second: the regex engine skips ahead over every other
# character at C speed instead of trying the lookbehind at each position).
_RE_ALLCAPS = re.compile(r"[^\W\d_a-z](?<![\w'].)[^\W\d_a-z]+(?![\w'])")


def _caps_sub(m: re.Match) -> str:
    w = m.group(0)
    return f"{TK_UP} {w.lower()}" if w.isupper() else w


def replace_all_caps(t: str) -> str:
    """A word of 2+ capital letters -> ``xxup <word lowercased>``.

    >>> replace_all_caps("I LOVE it")
    'I xxup love it'
    """
    return _RE_ALLCAPS.sub(_caps_sub, t)


_RE_MAJ = re.compile(r"([^\W\d_a-z])(?<![\w'].)([^\W\d_]*)")


def _maj_sub(m: re.Match) -> str:
    a, b = m.group(1), m.group(2)
    if a.isupper() and (not b or b.islower()):
        return f"{TK_MAJ} {a.lower()}{b}"
    return m.group(0)


def replace_maj(t: str) -> str:
    """A capitalised word (first letter upper, rest lower) -> ``xxmaj <word lowercased>``.

    >>> replace_maj("The Cat sat")
    'xxmaj the xxmaj cat sat'
    """
    return _RE_MAJ.sub(_maj_sub, t)


def _caps_maj_sub(m: re.Match) -> str:
    a, b = m.group(1), m.group(2)
    w = m.group(0)
    end, s = m.end(), m.string
    if len(w) > 1 and w.isupper() and (end == len(s) or not (s[end].isalnum() or s[end] in "_'")):
        # what replace_all_caps writes; replace_maj then runs over it as it would in sequence
        return replace_maj(f"{TK_UP} {w.lower()}")
    if a.isupper() and (not b or b.islower()):
        return f"{TK_MAJ} {a.lower()}{b}"
    return w


def _caps_then_maj(t: str) -> str:
    """``replace_maj(replace_all_caps(t))`` in one pass (both rules start at the same words)."""
    return _RE_MAJ.sub(_caps_maj_sub, t)


def lowercase(t: str, add_bos: bool = True, add_eos: bool = False) -> str:
    """Lowercase, with ``xxbos`` in front (and ``xxeos`` at the end when ``add_eos``).

    >>> lowercase("Hello")
    'xxbos hello'
    """
    return (f"{BOS} " if add_bos else "") + t.lower().strip() + (f" {EOS}" if add_eos else "")


#: rule name -> function; rules are stored by name in exports, so a custom rule must be registered
_RULES: dict[str, Callable[[str], str]] = {}


def register_rule(fn: Callable[[str], str], name: str | None = None) -> Callable[[str], str]:
    """Register a custom text rule (``str -> str``) so exports can name it and ``load_learner`` finds it.

    >>> @register_rule
    ... def no_digits(t): return re.sub(r"[0-9]", "0", t)
    """
    key = name or getattr(fn, "__name__", None)
    if not callable(fn) or not key or key == "<lambda>":
        raise DataError(f"Expected a named function str -> str. Received: {fn!r}. Fix: define it with def.")
    _RULES[key] = fn
    return fn


for _f in (
    fix_html,
    replace_rep,
    replace_wrep,
    spec_add_spaces,
    rm_useless_spaces,
    replace_all_caps,
    replace_maj,
    lowercase,
):
    register_rule(_f)

#: learnkit's text defaults (fastai's names): the special tokens and the rules run before tokenizing
defaults = SimpleNamespace(
    text_spec_tok=[UNK, PAD, BOS, EOS, FLD, TK_REP, TK_WREP, TK_UP, TK_MAJ],
    text_proc_rules=[
        fix_html,
        replace_rep,
        replace_wrep,
        spec_add_spaces,
        rm_useless_spaces,
        replace_all_caps,
        replace_maj,
        lowercase,
    ],
)


def _rule_name(r) -> str:
    name = getattr(r, "__name__", None)
    if name is None or _RULES.get(name) is not r:
        raise DataError(
            f"Expected text rules that are registered by name (so an export can name them). Received: "
            f"{r!r}. Fix: decorate it with learnkit.text.register_rule."
        )
    return name


def _rule_from_name(name: str):
    if name not in _RULES:
        raise DataError(
            f"The file names the text rule {name!r}, which is not registered here. Expected one of "
            f"{sorted(_RULES)}. Fix: import the module that registers it (register_rule) first."
        )
    return _RULES[name]


# ------------------------------------------------------------------------------------------- tokenizers
# The first two branches are fast paths that give exactly what the full list below them would: a special
# token or a run of letters/digits followed by a character none of the later branches can continue with (a plain word), and a
# punctuation character no later branch can start with. Only the case-insensitive parts are marked (?i:...)
# (case folding on every character class slows the whole pattern down); quantifiers are possessive where
# giving characters back could never produce a match.
_WORD_RE = re.compile(
    r"""
    (?:(?i:xx[a-z]++)|(?!(?i:xx))[^\W_]++)(?![\w.+@'\-:,])   # fast path: a plain word or special token
  | [^\w\s.+\-@#']                                          # fast path: punctuation, emoji, symbols
  | (?i:https?://|www\.)[^\s<>"']+[^\s<>"'.,;:!?)\]]       # URLs
  | [\w.+-]++@[\w-]++(?:\.[\w-]++)+                         # e-mail addresses
  | [@#][^\W_][\w]*                                        # mentions and hashtags
  | \d++(?:[.,]\d++)+                                       # 1,000.5 and 3.14
  | (?=[^\W\d_]++(?i:'t)\b)[^\W\d_]+(?=(?i:n't)\b)          # do|n't (the lookahead skips other words fast)
  | (?i:n't)\b                                             # n't
  | '(?i:s|re|ve|ll|d|m)\b                                 # 's 're 've 'll 'd 'm
  | (?i:xx[a-z]+)                                          # special tokens
  | [^\W_]+                                                # words and numbers, any script
  | _+                                                     # underscores
  | \S                                                     # anything else
    """,
    re.VERBOSE,
)


class WordTokenizer:
    """A fast rule-based word tokenizer (one compiled regular expression; no spaCy).

    Keeps URLs, e-mails, ``@mentions`` and ``#hashtags`` whole, splits English contractions
    (``don't`` -> ``do n't``, ``it's`` -> ``it 's``), keeps ``3.14`` and ``1,000`` as one number, words of
    any script as words, and puts every other non-space character (punctuation, emoji) in a token of its
    own. No non-space character is ever dropped.

    >>> WordTokenizer()("I don't like www.x.com :)")
    ['I', 'do', "n't", 'like', 'www.x.com', ':', ')']
    """

    def __init__(self, lang: str = "en"):
        self.lang = lang

    def __call__(self, text: str) -> list[str]:
        return _WORD_RE.findall(text)

    def spec(self) -> dict:
        return {"name": "WordTokenizer", "lang": self.lang}

    def __repr__(self) -> str:
        return f"WordTokenizer(lang={self.lang!r})"


#: fastai's name for the default word tokenizer
SpacyTokenizer = WordTokenizer


class SubwordTokenizer:
    """A sentencepiece unigram/BPE subword tokenizer trained on your corpus (``pip install learnkit[text]``).

    Call :meth:`setup` with training texts (done by the data factories), then call it on a text. The trained
    model travels in :meth:`spec` as bytes, so exports carry it.

    >>> sp = SubwordTokenizer(vocab_sz=200)  # doctest: +SKIP
    >>> sp.setup(texts); sp("unbelievable")  # doctest: +SKIP
    ['▁un', 'believ', 'able']
    """

    def __init__(
        self,
        vocab_sz: int = 2000,
        model_type: str = "unigram",
        char_coverage: float = 0.9998,
        lang: str = "en",
        model_bytes: bytes | None = None,
    ):
        try:
            import sentencepiece  # noqa: F401
        except ImportError as e:
            raise DataError(
                "SubwordTokenizer needs the sentencepiece package. Received: it is not installed. "
                "Fix: pip install 'learnkit[text]' (or pip install sentencepiece)."
            ) from e
        self.vocab_sz, self.model_type, self.char_coverage, self.lang = (
            vocab_sz,
            model_type,
            char_coverage,
            lang,
        )
        self.model_bytes, self._sp = model_bytes, None

    def setup(self, texts: Iterable[str]) -> SubwordTokenizer:
        """Train the subword model on ``texts`` (a list of strings)."""
        import sentencepiece as spm

        texts = [t for t in texts if t]
        if not texts:
            raise DataError("Expected texts to train the subword tokenizer on. Received: no non-empty text.")
        buf = io.BytesIO()
        n_chars = len(set("".join(texts[:2000])))
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(texts),
            model_writer=buf,
            vocab_size=self.vocab_sz,
            model_type=self.model_type,
            character_coverage=self.char_coverage,
            hard_vocab_limit=False,
            minloglevel=2,
            user_defined_symbols=[t for t in defaults.text_spec_tok if t != UNK],
            unk_piece=UNK,
            bos_id=-1,
            eos_id=-1,
            pad_id=-1,
            input_sentence_size=200000,
            shuffle_input_sentence=True,
            max_sentencepiece_length=max(4, min(16, n_chars)),
        )
        self.model_bytes, self._sp = buf.getvalue(), None
        return self

    @property
    def sp(self):
        if self._sp is None:
            import sentencepiece as spm

            if self.model_bytes is None:
                raise DataError(
                    "The SubwordTokenizer is not trained. Expected setup(texts) first. "
                    "Fix: call tok.setup(train_texts), or let TextDataLoaders do it."
                )
            self._sp = spm.SentencePieceProcessor(model_proto=self.model_bytes)
        return self._sp

    def __call__(self, text: str) -> list[str]:
        return self.sp.encode(text, out_type=str)

    def __getstate__(self):  # for worker processes: the processor is rebuilt from the bytes
        return {**self.__dict__, "_sp": None}

    def spec(self) -> dict:
        return {
            "name": "SubwordTokenizer",
            "vocab_sz": self.vocab_sz,
            "model_type": self.model_type,
            "char_coverage": self.char_coverage,
            "lang": self.lang,
            "model_bytes": self.model_bytes,
        }


def _tok_from_spec(spec: dict):
    spec = dict(spec)
    name = spec.pop("name")
    if name == "WordTokenizer":
        return WordTokenizer(**spec)
    if name == "SubwordTokenizer":
        return SubwordTokenizer(**spec)
    raise DataError(
        f"Unknown word tokenizer {name!r} in the file. Expected WordTokenizer or SubwordTokenizer."
    )


#: adjacent rules run as one pass with the same result (``Tokenizer`` keeps the rules themselves for its spec)
_FUSED = {(replace_all_caps, replace_maj): _caps_then_maj}


def _fuse(rules: list[Callable]) -> list[Callable]:
    out: list[Callable] = []
    for r in rules:
        fused = _FUSED.get((out[-1], r)) if out else None
        if fused is not None:
            out[-1] = fused
        else:
            out.append(r)
    return out


class Tokenizer:
    """Rules then a tokenizer: ``Tokenizer()(text) -> list of tokens`` (``Tokenizer(tok, rules)``).

    Args:
        tok: ``str -> list[str]`` (default :class:`WordTokenizer`); a :class:`SubwordTokenizer` works too.
        rules: ``str -> str`` functions run in order (default ``defaults.text_proc_rules``).
        sep: what :meth:`decode` joins tokens with.

    >>> Tokenizer(rules=[])("Hi there!")
    ['Hi', 'there', '!']
    """

    def __init__(self, tok=None, rules: Sequence[Callable] | None = None, sep: str = " "):
        self.tok = WordTokenizer() if tok is None else tok
        self.rules = list(defaults.text_proc_rules if rules is None else rules)
        self.sep = sep
        self._fused_from, self._steps = list(self.rules), _fuse(self.rules)

    def __call__(self, text: str) -> list[str]:
        if self.rules != self._fused_from:  # the rules list was edited after construction
            self._fused_from, self._steps = list(self.rules), _fuse(self.rules)
        for r in self._steps:
            text = r(text)
        return self.tok(text)

    def decode(self, tokens: Sequence[str]) -> str:
        """Tokens back to one string (joined with ``sep``)."""
        return self.sep.join(tokens)

    def spec(self) -> dict:
        """The settings as plain data (rules by name): what the cache keys on and exports carry."""
        tok_spec = self.tok.spec() if hasattr(self.tok, "spec") else None
        if tok_spec is None:
            raise DataError(
                f"Expected a tokenizer with spec() (so it can be cached and exported). Received: "
                f"{self.tok!r}. Fix: use WordTokenizer/SubwordTokenizer or give yours a spec() method."
            )
        return {"tok": tok_spec, "rules": [_rule_name(r) for r in self.rules], "sep": self.sep}

    @classmethod
    def from_spec(cls, spec: dict) -> Tokenizer:
        """Rebuild from :meth:`spec`."""
        return cls(
            _tok_from_spec(spec["tok"]), [_rule_from_name(n) for n in spec["rules"]], spec.get("sep", " ")
        )

    def __repr__(self) -> str:
        return f"Tokenizer(tok={self.tok!r}, rules={[getattr(r, '__name__', r) for r in self.rules]})"


# ------------------------------------------------------------------------------------- parallel + cache
#: below this many characters a corpus is tokenized in this process (starting workers costs more)
PARALLEL_MIN_CHARS = 4_000_000


def _tok_chunk(args):
    tok, texts = args
    return [tok(t) for t in texts]


def _run(tok: Tokenizer, texts: list[str], n_workers: int) -> list[list[str]]:
    n_chars = sum(map(len, texts))
    if n_workers <= 1 or n_chars < PARALLEL_MIN_CHARS or len(texts) < 2 * n_workers:
        return [tok(t) for t in texts]
    n_chunks = n_workers * 4
    size = math.ceil(len(texts) / n_chunks)
    chunks = [(tok, texts[i : i + size]) for i in range(0, len(texts), size)]
    out: list[list[str]] = []
    with ProcessPoolExecutor(n_workers) as ex:
        for part in ex.map(_tok_chunk, chunks):
            out.extend(part)
    return out


#: bumped whenever a built-in rule or the word tokenizer changes its output (old caches are then not reused)
TOKENIZER_REVISION = 2


def _cache_key(tok: Tokenizer, texts: list[str]) -> str:
    h = hashlib.sha256()
    key = {"v": __version__, "rev": TOKENIZER_REVISION, "tok": _spec_for_key(tok)}
    h.update(json.dumps(key, sort_keys=True).encode())
    for t in texts:
        b = t.encode("utf-8", "surrogatepass")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


def _spec_for_key(tok: Tokenizer) -> dict:
    spec = tok.spec()
    t = dict(spec["tok"])
    if isinstance(t.get("model_bytes"), bytes):
        t["model_bytes"] = hashlib.sha256(t["model_bytes"]).hexdigest()
    return {**spec, "tok": t}


def _save_cache(path: Path, key: str, toks: list[list[str]]) -> None:
    counts = Counter()
    for d in toks:
        counts.update(d)
    vocab = list(counts)
    idx = {t: i for i, t in enumerate(vocab)}
    lens = np.fromiter((len(d) for d in toks), dtype=np.int64, count=len(toks))
    ids = np.fromiter((idx[t] for d in toks for t in d), dtype=np.int32, count=int(lens.sum()))
    buf = io.BytesIO()
    meta = json.dumps({"key": key, "version": __version__, "vocab": vocab}).encode()
    np.savez(buf, meta=np.frombuffer(meta, dtype=np.uint8), lens=lens, ids=ids)
    atomic_write_bytes(buf.getvalue(), path)


def _load_cache(path: Path, key: str, n: int) -> list[list[str]] | None:
    """The cached tokens when ``path`` holds exactly this key (None otherwise: not trusted blindly)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(bytes(z["meta"]).decode())
            lens, ids = z["lens"], z["ids"]
    except (OSError, ValueError, KeyError, json.JSONDecodeError, EOFError):
        return None
    if (
        meta.get("key") != key
        or meta.get("version") != __version__
        or len(lens) != n
        or int(lens.sum()) != len(ids)
    ):
        return None
    vocab = meta["vocab"]
    if len(ids) and (int(ids.max()) >= len(vocab) or int(ids.min()) < 0):
        return None
    words = np.array(vocab, dtype=object)[ids] if len(vocab) else np.array([], dtype=object)
    bounds = np.cumsum(lens)[:-1] if n else []
    return [list(p) for p in np.split(words, bounds)] if n else []


def tokenize_texts(
    texts: Iterable[str],
    n_workers: int | None = None,
    rules=None,
    tok=None,
    cache_dir: str | os.PathLike | None = None,
) -> list[list[str]]:
    """Tokenize ``texts`` with ``Tokenizer(tok, rules)``; in worker processes for large corpora.

    Args:
        n_workers: processes (default :func:`~learnkit.data.loaders.default_num_workers`); corpora under
            ``PARALLEL_MIN_CHARS`` characters run here.
        rules, tok: as :class:`Tokenizer` (``tok`` may also be a ready :class:`Tokenizer`).
        cache_dir: when set, the result is cached there keyed by the texts, the settings and the learnkit
            version; a second call with the same inputs reads it back.

    >>> tokenize_texts(["Hello world.", "Bye!"], rules=[])
    [['Hello', 'world', '.'], ['Bye', '!']]
    """
    texts = _check_texts(texts)
    tokenizer = tok if isinstance(tok, Tokenizer) else Tokenizer(tok, rules)
    nw = default_num_workers() if n_workers is None else int(n_workers)
    if cache_dir is None:
        return _run(tokenizer, texts, nw)
    key = _cache_key(tokenizer, texts)
    path = Path(cache_dir) / f"tok-{key[:32]}.npz"
    got = _load_cache(path, key, len(texts)) if path.exists() else None
    if got is not None:
        return got
    toks = _run(tokenizer, texts, nw)
    _save_cache(path, key, toks)
    return toks


def _check_texts(texts) -> list[str]:
    if isinstance(texts, str):
        raise DataError("Expected a list of texts. Received: one str. Fix: tokenize_texts([text]).")
    out, bad = [], 0
    for t in texts:
        if isinstance(t, str):
            out.append(t)
        elif t is None or (isinstance(t, float) and math.isnan(t)):
            out.append("")
            bad += 1
        else:
            out.append(str(t))
    n_empty = sum(1 for t in out if not t.strip())
    if n_empty:
        warnings.warn(
            f"{n_empty} of {len(out)} texts are empty or missing (NaN/None: {bad}); they are kept as "
            "empty texts. Fix: drop them first (df.dropna(subset=[text_col])) if they should not count.",
            stacklevel=3,
        )
    return out


def _join_cols(df, text_cols, mark_fields: bool) -> list[str]:
    import pandas as pd

    cols = [text_cols] if isinstance(text_cols, (str, int)) else list(text_cols)
    for c in cols:
        if c not in df.columns and not (isinstance(c, int) and 0 <= c < df.shape[1]):
            raise DataError(
                f"Expected a text column in the DataFrame. Received: text_col={c!r}; columns are "
                f"{list(df.columns)}. Fix: pass text_col=<one of them>."
            )
    series = [df[c] if c in df.columns else df.iloc[:, c] for c in cols]
    if len(series) == 1:
        return series[0].tolist()
    out = []
    for vals in zip(*[s.tolist() for s in series]):
        parts = ["" if (v is None or (isinstance(v, float) and pd.isna(v))) else str(v) for v in vals]
        out.append(" ".join(f"{FLD} {i + 1} {p}" if mark_fields else p for i, p in enumerate(parts)))
    return out


def tokenize_df(
    df,
    text_cols,
    n_workers: int | None = None,
    rules=None,
    mark_fields: bool | None = None,
    tok=None,
    tok_text_col: str = "text",
    cache_dir=None,
):
    """Tokenize ``text_cols`` of ``df`` (several columns are joined, with ``xxfld i`` marks by default).

    Returns ``(df_copy, counter)``: a copy with the token lists in ``tok_text_col`` and their lengths in
    ``text_length``, and a ``Counter`` of the tokens (fastai's return value).

    >>> import pandas as pd
    >>> out, count = tokenize_df(pd.DataFrame({"text": ["Hi!"]}), "text", rules=[])
    >>> out["text"][0], count["Hi"]
    (['Hi', '!'], 1)
    """
    multi = not isinstance(text_cols, (str, int)) and len(list(text_cols)) > 1
    texts = _join_cols(df, text_cols, multi if mark_fields is None else mark_fields)
    toks = tokenize_texts(texts, n_workers=n_workers, rules=rules, tok=tok, cache_dir=cache_dir)
    out = df.copy()
    out[tok_text_col] = toks
    out["text_length"] = [len(t) for t in toks]
    count = Counter()
    for t in toks:
        count.update(t)
    return out, count


def read_text_file(f: str | os.PathLike, encoding: str = "utf-8", errors: str = "strict") -> str:
    """The text of file ``f``; a file that is not valid ``encoding`` is a :class:`DataError` naming it.

    >>> read_text_file("review.txt")  # doctest: +SKIP
    """
    try:
        return Path(f).read_text(encoding=encoding, errors=errors)
    except UnicodeDecodeError as e:
        raise DataError(
            f"The file {str(f)!r} is not valid {encoding} text ({e.reason} at byte {e.start}). "
            f"Expected {encoding} text files. Fix: pass encoding='<its encoding>' (e.g. 'latin-1'), "
            "or errors='replace' to read it with the bad bytes replaced."
        ) from e


def tokenize_folder(
    path,
    extensions=(".txt",),
    folders=None,
    output_dir=None,
    n_workers: int | None = None,
    rules=None,
    tok=None,
    encoding: str = "utf-8",
    errors: str = "strict",
) -> Path:
    """Tokenize every text file under ``path`` (optionally only in ``folders``) into ``output_dir``.

    Writes one file per input (tokens separated by spaces, same relative path) and ``counter.json``;
    returns ``output_dir`` (default ``<path>_tok`` beside ``path``). Results are cached under
    ``output_dir/.cache``, so a second run only re-tokenizes what changed.

    >>> out = tokenize_folder("imdb/train")  # doctest: +SKIP
    """
    path = Path(path)
    files = _text_files(path, extensions, folders)
    out = Path(output_dir) if output_dir is not None else path.parent / f"{path.name}_tok"
    texts = [read_text_file(f, encoding, errors) for f in files]
    toks = tokenize_texts(texts, n_workers=n_workers, rules=rules, tok=tok, cache_dir=out / ".cache")
    count = Counter()
    for f, t in zip(files, toks):
        dest = out / f.relative_to(path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(" ".join(t), encoding="utf-8")
        count.update(t)
    atomic_write_bytes(json.dumps(dict(count)).encode(), out / "counter.json")
    return out


def _text_files(path, extensions=(".txt",), folders=None) -> list[Path]:
    """The text files under ``path`` (optionally only inside the sub-folders ``folders``): the core's
    :func:`~learnkit.data.getters.get_files` (hidden files skipped, a deterministic order), empty allowed."""
    return list(get_files(path, extensions=list(extensions), folders=folders, allow_empty=True))
