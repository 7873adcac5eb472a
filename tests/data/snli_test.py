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
