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
        dict(data.load_dataset("sst", tmp_path).splits)  # a split is parsed when read


def test_missing_file_says_what_to_do(tmp_path):
    write_sst(tmp_path)
    (tmp_path / "sst" / "dev.txt").unlink()
    with pytest.raises(data.DataError, match=r"Missing file .*dev.txt .*--data_dir"):
        data.load_dataset("sst", tmp_path)


def test_parse_tree_rejects_unbalanced_brackets():
    with pytest.raises(ValueError):
        sst.parse_tree("(3 (2 It) (3 works)")


@pytest.mark.parametrize(
    "bad_tree, message",
    [
        ("(7 (2 bad) (2 tree))", r"a node's label must be 0-4, got '7' \(column 2\)"),
        ("(3 (2 It) (9 works))", r"a node's label must be 0-4, got '9' \(column 12\)"),
        ("(3 (2 It) (3 works)", r"unbalanced parentheses: 1 node\(s\) still open"),
        ("(3 (2 It))) ((3 works)", r"text after the end of the tree \(column 11\)"),
        ("(3 (2 It) ((3 works)))", r"a node without a label"),
        ("(3 (2 great film))", r"a leaf holds one word, this one holds more"),
        ("(3 (2 It) works)", r"a node holds both a word and a subtree"),
        ("(3 ())", r"an empty node"),
    ],
)
def test_bad_tree_names_file_line_and_text(tmp_path, bad_tree, message):
    write_sst(tmp_path, TREES[:1] + [bad_tree])
    with pytest.raises(data.DataError, match=r"sst/train\.txt, line 2: " + message) as error:
        dict(data.load_dataset("sst", tmp_path).splits)
    assert repr(bad_tree) in str(error.value) and "restore the original file" in str(error.value)


def test_bytes_that_are_not_utf8_name_file_line_and_column(tmp_path):
    write_sst(tmp_path)
    # Windows-1252 quotes (0x91, 0x92), as an editor that saved the file in that encoding writes.
    (tmp_path / "sst" / "dev.txt").write_bytes(
        TREES[0].encode() + b"\n(3 (3 \x91Good\x92) (2 film))\n"
    )
    with pytest.raises(
        data.DataError,
        match=r"sst/dev\.txt, line 2: byte 0x91 at column 7 is not UTF-8 \(was the file saved "
        r"as WINDOWS-1252\?\): '\(3 \(3 \\x91Good\\x92\) \(2 film\)\)'\. .*iconv",
    ):
        dict(data.load_dataset("sst", tmp_path).splits)


def test_a_utf16_file_is_named_as_such(tmp_path):
    write_sst(tmp_path)
    (tmp_path / "sst" / "test.txt").write_text("\n".join(TREES), encoding="utf-16")
    with pytest.raises(data.DataError, match=r"test\.txt, line 1: byte 0xff .*saved as UTF-16"):
        dict(data.load_dataset("sst", tmp_path).splits)


def test_a_utf8_byte_order_mark_is_read_past(tmp_path):
    write_sst(tmp_path)
    (tmp_path / "sst" / "train.txt").write_text("\n".join(TREES), encoding="utf-8-sig")
    assert len(data.load_dataset("sst", tmp_path).splits["train"]) == 3


def test_a_file_without_a_polar_tree_is_an_error(tmp_path):
    write_sst(tmp_path)
    (tmp_path / "sst" / "dev.txt").write_text(TREES[1] + "\n\n")
    with pytest.raises(data.DataError, match=r"dev\.txt holds no tree with a positive"):
        dict(data.load_dataset("sst", tmp_path).splits)


def test_a_word_with_a_no_break_space_is_one_leaf():
    # SST writes the film "8 1/2" so (train.txt, line 4342); a pattern over leaves lost it.
    assert sst.parse_tree("(1 (2 like) (2 8\xa01\\/2))") == (1, ["like", "8\xa01\\/2"], [2, 2])


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


def test_leaf_labels_mark_the_human_evidence_token_by_token(tmp_path):
    trees = [
        # phrase labels above the leaves do not count; punctuation leaves give no token
        "(3 (2 It) (4 (2 's) (4 (3 a) (4 (2 -LRB-) (4 (4 great) (2 -RRB-)) (2 film)))))",
        # one leaf with a digit and a no-break space: three tokens, each its leaf's label
        "(1 (0 Awful) (1 (4 8\xa01\\/2) (2 in) (2 2002)))",
        "(0 (1 Dull) (2 ,) (0 (2 slow-moving) (1 can't)))",
    ]
    (tmp_path / "sst").mkdir()
    for name in ("train.txt", "dev.txt", "test.txt"):
        (tmp_path / "sst" / name).write_text("\n".join(trees) + "\n")
    examples = sst.read_split(tmp_path / "sst" / "test.txt", "test")
    got = [list(zip(e.tokens, e.evidence, strict=True)) for e in examples]
    assert got[0] == [("it", 0), ("s", 0), ("a", 1), ("great", 1), ("film", 0)]
    assert got[1] == [("awful", 1), ("qqq", 1), ("qqq", 1), ("qqq", 1), ("in", 0), ("qqq", 0)]
    assert got[2] == [("dull", 1), ("slow", 0), ("moving", 0), ("can", 1), ("t", 1)]
    for example in examples:  # leaf by leaf gives the tokens of the whole text
        assert example.tokens == data.tokenize(example.text, punctuation="strip")


def test_real_sst_evidence_lines_up_with_every_sentence(real_data_dir):
    dataset = data.load_dataset("sst", real_data_dir)
    for split in ("train", "test"):
        examples = dataset.splits[split]
        assert all(len(e.evidence) == len(e.tokens) for e in examples)
        assert all(e.tokens == data.tokenize(e.text, punctuation="strip") for e in examples)
        share = sum(sum(e.evidence) for e in examples) / sum(len(e.tokens) for e in examples)
        assert 0.1 < share < 0.5, share  # most words of a sentence are neutral leaves


def test_text_evidence_is_per_leaf_of_the_text(tmp_path):
    """``text_evidence`` follows ``text.split(" ")`` (the leaves), punctuation leaves too."""
    (tmp_path / "sst").mkdir()
    tree = "(0 (1 Dull) (2 ,) (0 (2 slow-moving) (1 can't)))"
    for name in ("train.txt", "dev.txt", "test.txt"):
        (tmp_path / "sst" / name).write_text(tree + "\n")
    (example,) = sst.read_split(tmp_path / "sst" / "test.txt", "test")
    assert example.text.split(" ") == ["Dull", ",", "slow-moving", "can't"]
    assert example.text_evidence == (1, 0, 0, 1)


def test_each_split_is_parsed_when_first_read(tmp_path):
    write_sst(tmp_path)
    (tmp_path / "sst" / "train.txt").write_text("this is not a tree\n")
    dataset = data.load_dataset("sst", tmp_path)  # the test split alone is fine
    assert "train" in dataset.splits and set(dataset.splits) == {"train", "dev", "test"}
    assert [e.tokens for e in dataset.splits["test"]] == [
        e.tokens for e in data.sst.read_split(tmp_path / "sst" / "test.txt", "test")
    ]
    with pytest.raises(data.DataError, match=r"train.txt, line 1: not a labelled PTB tree"):
        dataset.splits["train"]
    dataset.splits["train"] = dataset.splits["test"][:1]  # a replaced split is kept as given
    assert dataset.splits["train"] == dataset.splits["test"][:1]
