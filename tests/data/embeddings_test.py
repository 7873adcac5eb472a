"""attn_audit.data.embeddings: the pretrained matrix, and the shipped GloVe table."""

import jax
import numpy as np

from attn_audit.data import embeddings
from attn_audit.data.vocab import PAD, build_vocabulary


def test_found_words_take_their_vectors_and_pad_is_zero():
    vocab = build_vocabulary([("good", "film", "zzyzx")], min_df=1)
    word_rows = {"good": 0, "film": 1, "bad": 2}
    vectors = np.arange(6, dtype=np.float32).reshape(3, 2)
    matrix, found = embeddings.pretrained_matrix(vocab, word_rows, vectors, jax.random.key(0))
    assert found == 2 and matrix.shape == (len(vocab), 2) and matrix.dtype == np.float32
    np.testing.assert_array_equal(matrix[vocab.id("good")], vectors[0])
    np.testing.assert_array_equal(matrix[vocab.id("film")], vectors[1])
    np.testing.assert_array_equal(matrix[PAD], 0.0)
    assert np.all(matrix[vocab.id("zzyzx")] != 0.0)  # drawn at random


def test_glove50_table_is_the_shipped_one():
    word_rows, vectors = embeddings.load_glove50()
    assert vectors.shape == (400_000, 50) and len(word_rows) == 400_000
    assert word_rows["the"] == 0
