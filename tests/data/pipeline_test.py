import numpy as np
import pytest

from attn_audit import data
from attn_audit.data.dataset import Example, TextDataset


def example(n, label=0, i=0):
    return Example(id=f"e{i}", tokens=tuple(f"w{j}" for j in range(n)), label=label)


def test_length_filter_is_strict_and_defaults_to_split_extremes():
    examples = [example(n, i=n) for n in (2, 5, 6, 9, 12)]
    assert [len(e.tokens) for e in data.filter_by_length(examples, 5, None)] == [6, 9]
    assert [len(e.tokens) for e in data.filter_by_length(examples, None, None)] == [5, 6, 9]
    assert [len(e.tokens) for e in data.filter_by_length(examples, 1, 12)] == [2, 5, 6, 9]


def test_encode_wraps_in_sos_eos_and_uses_train_vocabulary():
    dataset = TextDataset(
        name="toy", task="classification", label_names=("a", "b"), min_df=1, min_length=0,
        max_length=100,
        splits={
            "train": [Example("t0", ("good", "film"), 1)],
            "dev": [Example("d0", ("bad", "film"), 0)],
            "test": [Example("s0", ("film",), 0)],
        },
    )  # fmt: skip
    vocab = data.vocabulary_for(dataset)
    assert "bad" not in vocab.tokens  # dev words never enter the vocabulary
    dev = data.encode_split(dataset, "dev", vocab)
    np.testing.assert_array_equal(dev.token_ids[0], [data.SOS, data.UNK, vocab.id("film"), 3])


def test_empty_split_after_filter_is_an_error():
    dataset = TextDataset(
        name="toy", task="classification", label_names=("a", "b"), min_df=1, min_length=10,
        splits={"train": [example(3)], "dev": [example(3)], "test": [example(3)]},
    )  # fmt: skip
    with pytest.raises(data.DataError, match="empty after the length filter"):
        data.encode_split(dataset, "test", data.vocabulary_for(dataset))


def test_sample_indices_are_a_seeded_sorted_sample_not_the_first_n():
    first = data.sample_indices(1000, 100, seed=3)
    assert first == data.sample_indices(1000, 100, seed=3)
    assert first != data.sample_indices(1000, 100, seed=4)
    assert first == sorted(set(first)) and len(first) == 100
    assert first != list(range(100)) and max(first) > 500
    # A split sorted by class keeps both classes (the first 100 would be all one class).
    labels = np.repeat([0, 1], 500)
    assert 30 < labels[first].sum() < 70
    assert data.sample_indices(5, 10, seed=0) == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="at least 1"):
        data.sample_indices(5, 0, seed=0)


def test_subset_split_keeps_examples_ids_labels_and_questions_together():
    examples = [Example(id=str(i), tokens=(f"w{i}",), label=i % 3) for i in range(6)]
    token_ids = [np.asarray([2, 10 + i, 3], np.int32) for i in range(6)]
    questions = [np.asarray([2, 20 + i, 3], np.int32) for i in range(6)]
    split = data.EncodedSplit(examples, token_ids, np.arange(6, dtype=np.int32) % 3, questions)
    kept = data.subset_split(split, [1, 4])
    assert [e.tokens for e in kept.examples] == [("w1",), ("w4",)]
    assert [ids[1] for ids in kept.token_ids] == [11, 14]
    assert kept.labels.tolist() == [1, 1]
    assert [q[1] for q in kept.question_ids] == [21, 24]
    assert kept.index.tolist() == [1, 4]  # their numbers in the whole split
    assert data.subset_split(kept, [1]).index.tolist() == [4]


def toy_dataset(count=11):
    words = ["good", "bad", "film", "plot", "dull"]
    test = [Example(f"s{i}", tuple(words[: 1 + i % 5]), i % 2) for i in range(count)]
    return TextDataset(
        name="toy", task="classification", label_names=("a", "b"), min_df=1, min_length=0,
        max_length=100, splits={"train": test, "dev": test, "test": test},
    )  # fmt: skip


@pytest.mark.parametrize("limit", [None, 7, 50])
def test_the_shares_of_a_job_partition_the_split_and_keep_its_numbers(limit):
    dataset = toy_dataset()
    vocab = data.vocabulary_for(dataset)
    whole = data.encode_split(dataset, "test", vocab)
    count = 11 if limit is None else min(limit, 11)
    seen = []
    for process in range(3):
        share = data.encode_split(dataset, "test", vocab, data.Share(process, 3, limit))
        assert share.index.tolist() == list(range(process, count, 3))
        for position, number in enumerate(share.index):
            assert share.examples[position] == whole.examples[number]
            np.testing.assert_array_equal(share.token_ids[position], whole.token_ids[number])
            assert share.labels[position] == whole.labels[number]
        seen += share.index.tolist()
    assert sorted(seen) == list(range(count))
    alone = data.encode_split(dataset, "test", vocab, data.Share(limit=limit))
    assert alone.index.tolist() == list(range(count))


def test_a_share_names_its_problem():
    with pytest.raises(ValueError, match=r"Process id 3 is not in \[0, 3\)"):
        data.Share(3, 3)
    with pytest.raises(ValueError, match="--limit must be at least 1"):
        data.Share(0, 1, limit=0)
    with pytest.raises(ValueError, match="0 examples but"):
        data.EncodedSplit([], [], np.zeros(0, np.int32), index=np.arange(2))


def test_batches_carry_the_instance_numbers_and_the_positions():
    dataset = toy_dataset()
    share = data.encode_split(dataset, "test", data.vocabulary_for(dataset), data.Share(1, 2))
    for batch in data.batches(share, 4, (8,)):
        real = batch["row"] >= 0
        assert (batch["index"][real] == share.index[batch["row"][real]]).all()
        assert (batch["index"][~real] == -1).all()
