import gzip
import json
import logging

import pytest

from attn_audit import data


def write_snli(folder, n=40):
    (folder / "snli").mkdir(parents=True, exist_ok=True)
    labels = ["entailment", "neutral", "contradiction", "-"]
    for split in ("dev", "test"):
        with gzip.open(folder / "snli" / f"snli_1.0_{split}.jsonl.gz", "wt") as f:
            for i in range(n):
                pair = {
                    "gold_label": labels[i % 4],
                    "sentence1": f"Two dogs run {i}.",
                    "sentence2": "Animals move.",
                    "pairID": f"{split}{i}",
                }
                f.write(json.dumps(pair) + "\n")
    return folder


def test_train_on_dev_drops_unlabelled_and_says_so(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        dataset = data.load_dataset("snli", write_snli(tmp_path))
    assert dataset.task == "qa" and dataset.num_classes == 3
    assert len(dataset.splits["test"]) == 30  # every 4th pair has gold label '-'
    assert len(dataset.splits["train"]) + len(dataset.splits["dev"]) == 30
    assert "trains on SNLI's dev file" in caplog.text and dataset.notes
    example = dataset.splits["test"][0]
    assert example.tokens == ("two", "dogs", "run", "qqq", ".")
    assert example.question == ("animals", "move", ".") and example.label == 0


def test_malformed_json_line(tmp_path):
    write_snli(tmp_path)
    with gzip.open(tmp_path / "snli" / "snli_1.0_test.jsonl.gz", "wt") as f:
        f.write('{"gold_label": "neutral"}\n')
    with pytest.raises(data.DataError, match=r"snli_1.0_test.jsonl.gz, line 1: not an SNLI"):
        data.load_dataset("snli", tmp_path)


def write_test_lines(folder, payload: bytes):
    write_snli(folder)
    with gzip.open(folder / "snli" / "snli_1.0_test.jsonl.gz", "wb") as f:
        f.write(json.dumps({"gold_label": "neutral", "sentence1": "A", "sentence2": "B"}).encode())
        f.write(b"\n" + payload)


@pytest.mark.parametrize(
    "bad_line, message",
    [
        (b'{"gold_label": "neutral", "sentence1": "A"}', r"not an SNLI pair: it lacks sentence2"),
        (b'{"gold_label": "neutral", "sentence1": "A", "sentence2"', r"not a JSON line \("),
        (b'["neutral", "A", "B"]', r"expected a JSON object"),
        (
            b'{"gold_label": "neutral", "sentence1": 7, "sentence2": "B"}',
            r"the field sentence1 should be a string, got int",
        ),
        (
            b'{"gold_label": "maybe", "sentence1": "A", "sentence2": "B"}',
            r"unknown gold_label 'maybe'",
        ),
        (
            b'{"gold_label": "neutral", "sentence1": "caf\xe9", "sentence2": "B"}',
            r"byte 0xe9 at column 44 is not UTF-8",
        ),
    ],
)
def test_bad_line_names_file_line_and_text(tmp_path, bad_line, message):
    write_test_lines(tmp_path, bad_line)
    with pytest.raises(data.DataError, match=r"snli_1\.0_test\.jsonl\.gz, line 2: " + message):
        data.load_dataset("snli", tmp_path)


def test_plain_jsonl_is_read_and_checked_too(tmp_path):
    write_snli(tmp_path)
    (tmp_path / "snli" / "snli_1.0_test.jsonl.gz").unlink()
    (tmp_path / "snli" / "snli_1.0_test.jsonl").write_text('{"gold_label": "neutral"}\n')
    with pytest.raises(data.DataError, match=r"snli_1\.0_test\.jsonl, line 1: not an SNLI pair"):
        data.load_dataset("snli", tmp_path)


def test_damaged_gzip_names_the_file(tmp_path):
    write_snli(tmp_path)
    path = tmp_path / "snli" / "snli_1.0_dev.jsonl.gz"
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(data.DataError, match=r"Cannot read .*snli_1\.0_dev\.jsonl\.gz .*Restore"):
        data.load_dataset("snli", tmp_path)


def test_a_file_without_a_gold_labelled_pair_is_an_error(tmp_path):
    write_snli(tmp_path)
    with gzip.open(tmp_path / "snli" / "snli_1.0_test.jsonl.gz", "wt") as f:
        f.write('{"gold_label": "-", "sentence1": "A", "sentence2": "B"}\n')
    with pytest.raises(data.DataError, match=r"snli_1\.0_test\.jsonl\.gz holds no SNLI pair"):
        data.load_dataset("snli", tmp_path)
