import pytest

from attn_audit import data
from attn_audit.data import sst
from tests._fixtures import TREES, write_sst


def test_binary_rule_and_cleaning(tmp_path):
    dataset = data.load_dataset("sst", write_sst(tmp_path))
    train = dataset.splits["train"]
    assert [e.label for e in train] == [1, 0, 0]  # neutral root dropped; ≥3 positive
    assert train[0].tokens == ("it", "s", "a", "great", "film")
    assert train[1].tokens == ("dull", "and", "slow")
    assert train[2].tokens == ("awful", "qqq")
    assert [e.id for e in train] == ["train-1", "train-3", "train-4"]


def test_malformed_line_names_file_and_line(tmp_path):
    write_sst(tmp_path, TREES[:1] + ["this is not a tree"])
    with pytest.raises(data.DataError, match=r"train.txt, line 2: not a labelled PTB tree"):
        data.load_dataset("sst", tmp_path)


def test_missing_file_says_what_to_do(tmp_path):
    write_sst(tmp_path)
    (tmp_path / "sst" / "dev.txt").unlink()
    with pytest.raises(data.DataError, match=r"Missing file .*dev.txt .*--data_dir"):
        data.load_dataset("sst", tmp_path)


def test_parse_tree_rejects_unbalanced_brackets():
    with pytest.raises(ValueError):
        sst.parse_tree("(3 (2 It) (3 works)")


def test_real_sst_matches_the_paper(real_data_dir):
    dataset = data.load_dataset("sst", real_data_dir)
    assert {s: len(e) for s, e in dataset.splits.items()} == {
        "train": 6920, "dev": 872, "test": 1821,
    }  # fmt: skip
    test = data.encode_split(dataset, "test", data.vocabulary_for(dataset))
    assert len(test) == 1725
    assert (test.labels == 0).sum() == 863 and (test.labels == 1).sum() == 862
    words = data.vocabulary_for(dataset).num_words
    assert abs(words - 13826) / 13826 < 0.015, words
