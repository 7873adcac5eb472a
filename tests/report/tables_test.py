"""attn_audit.report.tables: CSV tables and Markdown sections rewritten in place."""

import csv

from attn_audit.report import tables


def test_replace_section_is_idempotent(tmp_path):
    path = tmp_path / "RESULTS.md"
    tables.replace_section(path, "wp:sst", "first")
    tables.replace_section(path, "wp:agnews", "other")
    tables.replace_section(path, "wp:sst", "second")
    text = path.read_text()
    assert "second" in text and "first" not in text and text.count("wp:sst start") == 1
    assert "other" in text


def test_write_csv_takes_the_union_of_columns_in_first_seen_order(tmp_path):
    rows = [
        {"dataset": "sst", "model": "lstm", "tau": 0.4},
        {"dataset": "imdb", "auc": 0.9, "model": "cnn"},
        {"dataset": "babi1"},
    ]
    path = tmp_path / "table.csv"
    assert tables.write_csv(path, rows) == path
    with open(path, newline="", encoding="utf-8") as f:
        read = list(csv.DictReader(f))
    assert list(read[0]) == ["dataset", "model", "tau", "auc"]
    assert read == [
        {"dataset": "sst", "model": "lstm", "tau": "0.4", "auc": ""},
        {"dataset": "imdb", "model": "cnn", "tau": "", "auc": "0.9"},
        {"dataset": "babi1", "model": "", "tau": "", "auc": ""},
    ]
    # Written again, the file is replaced, not appended to.
    tables.write_csv(path, rows[:1])
    assert path.read_text(encoding="utf-8").splitlines() == ["dataset,model,tau", "sst,lstm,0.4"]
