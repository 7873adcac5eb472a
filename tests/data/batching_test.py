import numpy as np
import pytest

from attn_audit import data
from attn_audit.data.pipeline import EncodedSplit


def encoded(lengths, with_questions=False):
    rng = np.random.default_rng(0)
    token_ids = [
        np.concatenate([[2], rng.integers(4, 50, n), [3]]).astype(np.int32) for n in lengths
    ]
    questions = [np.asarray([2, 7, 3], np.int32) for _ in lengths] if with_questions else None
    labels = np.arange(len(lengths), dtype=np.int32) % 2
    return EncodedSplit([None] * len(lengths), token_ids, labels, questions)


def test_boundaries_cover_max_length():
    boundaries = data.bucket_boundaries(1000)
    assert boundaries[0] == 16 and boundaries[-1] >= 1000 and len(boundaries) <= 12
    assert all(b % 8 == 0 for b in boundaries)
    with pytest.raises(ValueError, match="longer than the largest bucket"):
        data.bucket_of(17, (8, 16))


def test_bounded_shapes_and_every_row_once():
    lengths = np.random.default_rng(1).integers(1, 300, 500)
    split = encoded(lengths)
    boundaries = data.bucket_boundaries(int(lengths.max()) + 2)
    seen, shapes = [], set()
    for batch in data.batches(split, 32, boundaries, rng=np.random.default_rng(2)):
        shapes.add(batch["token_ids"].shape)
        real = batch["index"] >= 0
        seen += batch["index"][real].tolist()
        np.testing.assert_array_equal(batch["weights"], real.astype(np.float32))
        for row in np.flatnonzero(real):
            i = batch["index"][row]
            n = batch["lengths"][row]
            np.testing.assert_array_equal(batch["token_ids"][row, :n], split.token_ids[i])
            assert (batch["token_ids"][row, n:] == data.PAD).all()
            assert batch["labels"][row] == split.labels[i]
    assert sorted(seen) == list(range(len(lengths)))  # nothing lost, nothing twice
    assert len(shapes) <= len(boundaries)
    assert {s[0] for s in shapes} == {32}


def test_evaluation_order_is_deterministic_and_qa_has_questions():
    split = encoded([3, 20, 5], with_questions=True)
    boundaries = data.bucket_boundaries(24)
    first = [b["index"].tolist() for b in data.batches(split, 2, boundaries)]
    second = [b["index"].tolist() for b in data.batches(split, 2, boundaries)]
    assert first == second == [[0, 2], [1, -1]]
    batch = next(data.batches(split, 2, boundaries))
    assert batch["question_ids"].shape == (2, 16) and batch["question_lengths"].tolist() == [3, 3]
