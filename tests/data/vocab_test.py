import json

import pytest

from attn_audit.data.vocab import EOS, PAD, SOS, UNK, Vocabulary, build_vocabulary


def test_ids_and_min_df():
    documents = [("a", "b", "b"), ("b", "c"), ("a", "b")]
    vocab = build_vocabulary(documents, min_df=2)
    # b appears in 3 documents, a in 2, c in 1 (dropped at min_df 2).
    assert vocab.tokens == ("<PAD>", "<UNK>", "<SOS>", "<EOS>", "b", "a")
    assert (PAD, UNK, SOS, EOS) == (0, 1, 2, 3)
    assert vocab.encode(["a", "c", "b"]) == [SOS, 5, UNK, 4, EOS]
    assert vocab.num_words == 2


def test_document_frequency_counts_documents_not_occurrences():
    vocab = build_vocabulary([("x", "x", "x"), ("y",), ("y",)], min_df=2)
    assert "x" not in vocab.tokens and "y" in vocab.tokens


def test_save_and_load_round_trip(tmp_path):
    vocab = build_vocabulary([("hello", "world")], min_df=1)
    vocab.save(tmp_path / "vocab.json")
    assert Vocabulary.load(tmp_path / "vocab.json") == vocab


def test_missing_and_corrupt_files_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="No vocabulary at .*--workdir"):
        Vocabulary.load(tmp_path / "absent.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="is corrupt"):
        Vocabulary.load(tmp_path / "bad.json")
    (tmp_path / "wrong.json").write_text(json.dumps({"min_df": 1, "tokens": ["a"]}))
    with pytest.raises(ValueError, match="is corrupt"):
        Vocabulary.load(tmp_path / "wrong.json")


def test_min_df_must_be_positive():
    with pytest.raises(ValueError, match="min_df must be at least 1"):
        build_vocabulary([("a",)], min_df=0)
