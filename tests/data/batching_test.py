import itertools

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


@pytest.mark.parametrize(("count", "batch_size", "multiple", "rows"), [
    (40, 32, 1, 20), (64, 32, 1, 32), (65, 32, 1, 22), (5, 32, 1, 5), (5, 32, 4, 8),
    (437, 32, 1, 32), (437, 32, 8, 32), (33, 32, 2, 18), (1, 32, 1, 1),
])  # fmt: skip
def test_balanced_rows_fill_a_buckets_batches_evenly(count, batch_size, multiple, rows):
    assert data.batching.balanced_rows(count, batch_size, multiple) == rows
    batches_needed = -(-count // batch_size)
    assert rows % multiple == 0 and -(-count // rows) == batches_needed
    assert rows * batches_needed - count < batches_needed * multiple  # padding rows


@pytest.mark.parametrize("multiple", [1, 2, 4])
def test_balanced_batches_hold_every_row_once_with_one_shape_per_bucket(multiple):
    lengths = np.random.default_rng(3).integers(1, 60, 150)
    split = encoded(lengths)
    boundaries = data.fewest_padded_boundaries([n + 2 for n in lengths], 4)
    plain = list(data.batches(split, 32, boundaries))
    balanced = list(data.batches(split, 32, boundaries, balanced_multiple=multiple))
    assert len(balanced) == len(plain)  # as many batches, fewer padding rows
    shapes = {b["token_ids"].shape for b in balanced}
    assert len(shapes) == len({b["token_ids"].shape[1] for b in balanced}) <= len(boundaries)
    assert all(rows % multiple == 0 and rows <= 32 for rows, _ in shapes)
    for batch in balanced:
        real = batch["index"] >= 0
        np.testing.assert_array_equal(batch["weights"], real.astype(np.float32))
    seen = sorted(i for b in balanced for i in b["index"] if i >= 0)
    assert seen == list(range(len(lengths)))
    padding = sum(int((b["index"] < 0).sum()) for b in balanced)
    assert padding < sum(int((b["index"] < 0).sum()) for b in plain)
    assert padding < len(boundaries) * multiple * 5  # < (batches per bucket) · multiple each


def test_evaluation_order_is_deterministic_and_qa_has_questions():
    split = encoded([3, 20, 5], with_questions=True)
    boundaries = data.bucket_boundaries(24)
    first = [b["index"].tolist() for b in data.batches(split, 2, boundaries)]
    second = [b["index"].tolist() for b in data.batches(split, 2, boundaries)]
    assert first == second == [[0, 2], [1, -1]]
    batch = next(data.batches(split, 2, boundaries))
    assert batch["question_ids"].shape == (2, 16) and batch["question_lengths"].tolist() == [3, 3]


def _padded_cost(boundaries, lengths):
    return sum(data.bucket_of(n, boundaries) ** 2 for n in lengths)


@pytest.mark.parametrize("seed", range(40))
def test_fewest_padded_boundaries_equal_a_brute_force_search(seed):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 70, rng.integers(1, 40))
    num_buckets = int(rng.integers(1, 5))
    got = data.fewest_padded_boundaries(lengths, num_buckets)
    widths = range(8, -(-int(lengths.max()) // 8) * 8 + 1, 8)
    # Every choice of at most num_buckets widths that covers the longest length.
    best = min(
        (_padded_cost(chosen, lengths), len(chosen))
        for count in range(1, num_buckets + 1)
        for chosen in itertools.combinations(widths, count)
        if chosen[-1] >= lengths.max()
    )
    assert (_padded_cost(got, lengths), len(got)) == best
    assert list(got) == sorted(set(got)) and all(b % 8 == 0 for b in got)


def test_fewest_padded_boundaries_fit_the_lengths_and_refuse_bad_input():
    assert data.fewest_padded_boundaries([9, 10, 11, 40], 2) == (16, 40)
    assert data.fewest_padded_boundaries([9, 10, 11, 40], 1) == (40,)
    assert data.fewest_padded_boundaries([5, 5, 5], 3) == (8,)  # no empty buckets
    with pytest.raises(ValueError, match="at least one length"):
        data.fewest_padded_boundaries([], 2)
    with pytest.raises(ValueError, match="num_buckets must be at least 1"):
        data.fewest_padded_boundaries([4], 0)
