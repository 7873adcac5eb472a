"""User corpora read in chunks: JSON lines, CSV, a folder of text files; clear errors; memory
bounded by the chunk, not the corpus."""

import dataclasses
import json
import tracemalloc

import pytest

from attn_audit import data
from attn_audit.data import corpus as corpus_lib

LABELS = ("negative", "positive")


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def read_all(corpus, chunk_size=2, **options):
    return list(corpus_lib.read_chunks(corpus, chunk_size, LABELS, **options))


def test_json_lines_in_chunks_with_labels_by_name_or_index(tmp_path):
    path = write_jsonl(tmp_path / "reviews.jsonl", [
        {"body": "A good film!", "stars": "positive"}, {"body": "dull", "stars": "negative"},
        {"body": "It's 2 hours", "stars": "1"},
    ])  # fmt: skip
    corpus = corpus_lib.Corpus.parse(f"jsonl:{path}", "body", "stars")
    assert corpus.name == "jsonl-reviews"
    chunks = read_all(corpus)
    assert [first for first, _ in chunks] == [0, 2]
    examples = [e for _, chunk in chunks for e in chunk]
    assert [e.tokens for e in examples] == [("a", "good", "film", "!"), ("dull",),
                                            ("it's", "qqq", "hours")]  # fmt: skip
    assert [e.label for e in examples] == [1, 0, 1]
    assert [e.id for e in examples] == ["jsonl-reviews:0", "jsonl-reviews:1", "jsonl-reviews:2"]
    assert examples[0].text == "A good film!"
    stripped = read_all(corpus, punctuation="strip")  # SST's mode: punctuation dropped
    assert stripped[0][1][0].tokens == ("a", "good", "film")
    assert [len(c) for _, c in read_all(corpus, chunk_size=5, limit=2)] == [2]


def test_csv_and_a_folder_of_texts(tmp_path):
    path = tmp_path / "texts.csv"
    path.write_text('id,text,label\n1,"great, truly",positive\n2,awful,negative\n')
    examples = [e for _, c in read_all(corpus_lib.Corpus.parse(f"csv:{path}", label_field="label"))
                for e in c]  # fmt: skip
    assert [e.tokens for e in examples] == [("great", ",", "truly"), ("awful",)]
    assert [e.label for e in examples] == [1, 0]
    folder = tmp_path / "texts"
    (folder / "b").mkdir(parents=True)
    (folder / "b" / "2.txt").write_text("second text")
    (folder / "a.txt").write_text("first")
    (folder / "notes.md").write_text("not a text")
    found = read_all(corpus_lib.Corpus.parse(f"dir:{folder}"), chunk_size=10)
    assert [e.tokens for e in found[0][1]] == [("first",), ("second", "text")]
    assert {e.label for e in found[0][1]} == {corpus_lib.NO_LABEL}


def test_bad_corpora_name_the_problem(tmp_path):
    with pytest.raises(data.DataError, match="does not exist"):
        corpus_lib.Corpus.parse(f"jsonl:{tmp_path / 'missing.jsonl'}")
    with pytest.raises(data.DataError, match="kind:PATH"):
        corpus_lib.Corpus.parse("parquet:x")
    with pytest.raises(data.DataError, match="is a folder"):
        corpus_lib.Corpus.parse(f"jsonl:{tmp_path}")
    path = write_jsonl(tmp_path / "c.jsonl", [{"text": "fine", "label": 3}, {"text": "  "}])
    with pytest.raises(data.DataError, match=r"no field 'body' \(its fields: \['text', 'label'\]"):
        read_all(corpus_lib.Corpus.parse(f"jsonl:{path}", "body"))
    with pytest.raises(data.DataError, match="Text 0 of .* has the label 3 in 'label', not one"):
        read_all(corpus_lib.Corpus.parse(f"jsonl:{path}", label_field="label"))
    with pytest.raises(data.DataError, match="Text 1 of .* is empty"):
        read_all(corpus_lib.Corpus.parse(f"jsonl:{path}"))
    mixed = write_jsonl(tmp_path / "m.jsonl", [{"text": "a", "label": "positive"},
                                               {"text": "b", "label": 0}])  # fmt: skip
    with pytest.raises(data.DataError, match="cannot be read as jsonl .*changed from string"):
        read_all(corpus_lib.Corpus.parse(f"jsonl:{mixed}", label_field="label"))
    broken = tmp_path / "b.jsonl"
    broken.write_text('{"text": "fine"}\n{"text": "cut off\n')
    with pytest.raises(data.DataError, match="cannot be read as jsonl"):
        read_all(corpus_lib.Corpus.parse(f"jsonl:{broken}"))


def test_a_corpus_is_read_the_way_its_model_was_trained():
    assert corpus_lib.training_punctuation("sst") == "strip"
    assert corpus_lib.training_punctuation("agnews") == "split"
    assert corpus_lib.training_punctuation("planted:single") == "strip"  # SST sentences
    assert corpus_lib.training_punctuation("planted:single:source=agnews") == "split"


@pytest.mark.parametrize("chunk_size", [500])
def test_memory_follows_the_chunk_not_the_corpus(tmp_path, chunk_size):
    def peak_of_reading(count):
        rows = ({"text": f"text number {i} " + "word " * 30} for i in range(count))
        path = write_jsonl(tmp_path / f"{count}.jsonl", rows)
        tracemalloc.start()
        texts = 0
        for _, chunk in corpus_lib.read_chunks(corpus_lib.Corpus.parse(f"jsonl:{path}"),
                                               chunk_size, LABELS):  # fmt: skip
            texts += len(chunk)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert texts == count
        return peak

    small, large = peak_of_reading(2_000), peak_of_reading(40_000)
    assert large < 1.5 * small, (small, large)  # 20 times the texts, about the same memory


def test_a_tfds_split_is_a_corpus_read_in_chunks():
    tfds = pytest.importorskip("tensorflow_datasets", reason="in the [test] extra; install it")
    corpus = corpus_lib.Corpus.parse("tfds:imdb_reviews:test[:25]", label_field="label")
    assert corpus.name == "tfds-imdb_reviews-test__25_"
    assert corpus_lib.is_corpus("tfds:imdb_reviews:test") and corpus_lib.is_corpus("csv:x")
    assert not corpus_lib.is_corpus("tfds:imdb_reviews") and not corpus_lib.is_corpus("sst")
    with tfds.testing.mock_data(num_examples=25):
        source = tfds.data_source("imdb_reviews", split="test")
        records = [source[i] for i in range(len(source))]
        chunks = read_all(corpus, chunk_size=10)
        unlabelled = read_all(dataclasses.replace(corpus, label_field=None), chunk_size=10)
        with pytest.raises(data.DataError, match=r"no feature 'body' \(its features: \['label'"):
            read_all(dataclasses.replace(corpus, text_field="body"))
    assert [first for first, _ in chunks] == [0, 10, 20]
    examples = [e for _, chunk in chunks for e in chunk]
    assert [e.text for e in examples] == [r["text"] for r in records]
    assert [e.label for e in examples] == [int(r["label"]) for r in records]
    assert [e.tokens for e in examples] == [data.tokenize(r["text"]) for r in records]
    assert examples[3].id == "tfds-imdb_reviews-test__25_:3"
    assert {e.label for _, c in unlabelled for e in c} == {corpus_lib.NO_LABEL}


def test_bad_tfds_corpora_name_the_problem():
    pytest.importorskip("tensorflow_datasets", reason="in the [test] extra; install it")
    with pytest.raises(data.DataError, match=r"names its split: tfds:NAME:SPLIT"):
        corpus_lib.Corpus.parse("tfds:imdb_reviews:")
    no_such = corpus_lib.Corpus.parse("tfds:no_such_data_set:test")
    with pytest.raises(data.DataError, match="TFDS could not provide 'no_such_data_set' split"):
        read_all(no_such)
