import csv
import logging

import pytest

from attn_audit import data


def write_agnews(folder, rows_per_class=20, with_train=False):
    (folder / "ag_news").mkdir(parents=True, exist_ok=True)
    names = ["test.csv"] + (["train.csv"] if with_train else [])
    for name in names:
        with open(folder / "ag_news" / name, "w", newline="") as f:
            writer = csv.writer(f, quoting=csv.QUOTE_ALL)
            for i in range(rows_per_class):
                for cls in ("1", "2", "3", "4"):
                    writer.writerow(
                        [cls, f"title {i}", f"Desc of class {cls} item {i}\\more #36;5"]
                    )
    return folder


def test_world_vs_business_description_only(tmp_path):
    dataset = data.load_dataset("agnews", write_agnews(tmp_path, with_train=True))
    test = dataset.splits["test"]
    assert len(test) == 40 and {e.label for e in test} == {0, 1}
    assert test[0].tokens == ("desc", "of", "class", "qqq", "item", "qqq", "more", "$", "qqq")
    assert len(dataset.splits["train"]) + len(dataset.splits["dev"]) == 40
    assert dataset.notes == []


def test_only_test_file_carves_splits_and_says_so(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        dataset = data.load_dataset("agnews", write_agnews(tmp_path))
    sizes = {s: len(e) for s, e in dataset.splits.items()}
    assert sum(sizes.values()) == 40 and sizes["test"] == 12
    assert "carved from test.csv" in caplog.text and dataset.notes
    again = data.load_dataset("agnews", tmp_path)
    assert [e.id for e in again.splits["dev"]] == [e.id for e in dataset.splits["dev"]]


def test_malformed_row(tmp_path):
    write_agnews(tmp_path)
    with open(tmp_path / "ag_news" / "test.csv", "a") as f:
        f.write('"9","bad class","text"\n')
    with pytest.raises(data.DataError, match=r"test.csv, line 81: expected 'class"):
        data.load_dataset("agnews", tmp_path)


def test_real_agnews(real_data_dir):
    dataset = data.load_dataset("agnews", real_data_dir)
    sizes = {s: len(e) for s, e in dataset.splits.items()}
    assert sum(sizes.values()) == 3800  # 1,900 World + 1,900 Business test rows
    assert sizes["test"] == 1140


def append_to_test_csv(folder, payload: bytes):
    write_agnews(folder)
    with open(folder / "ag_news" / "test.csv", "ab") as f:
        f.write(payload)


@pytest.mark.parametrize(
    "bad_row, message",
    [
        (b'"1","title only"\n', r"line 81: expected 3 columns .*, got 2: '1,title only'"),
        (b'"3","a","b","c"\n', r"line 81: expected 3 columns .*, got 4: '3,a,b,c'"),
        (b'"0","title","text"\n', r"line 81: expected .* got the class '0': '0,title,text'"),
        (b'"World","title","text"\n', r"line 81: .*got the class 'World'"),
        (b"\n", r"line 81: expected 3 columns .*, got 0: ''"),
        (b'"3","title","unfinished\n', r"line 81: not valid CSV \(unexpected end of data\)"),
        (b'"3","ti"tle","text"\n', r"line 81: not valid CSV \(',' expected after '\"'\)"),
        (b'"3","title","caf\xe9"\n', r"line 81: byte 0xe9 at column 17 is not UTF-8"),
    ],
)
def test_bad_row_names_file_line_and_text(tmp_path, bad_row, message):
    append_to_test_csv(tmp_path, bad_row)
    with pytest.raises(data.DataError, match=r"ag_news/test\.csv, " + message):
        data.load_dataset("agnews", tmp_path)


def test_a_file_without_world_or_business_rows_is_an_error(tmp_path):
    (tmp_path / "ag_news").mkdir()
    (tmp_path / "ag_news" / "test.csv").write_text('"2","Sports","text"\n"4","Sci","text"\n')
    with pytest.raises(data.DataError, match=r"test\.csv holds no World \(1\) or Business"):
        data.load_dataset("agnews", tmp_path)
