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
