import io
import logging
import tarfile

import pytest

from attn_audit import data

STORY = """1 Mary moved to the bathroom.
2 John went to the hallway.
3 Where is Mary? \tbathroom\t1
4 Daniel went back to the hallway.
5 Where is Daniel? \thallway\t4
1 Sandra journeyed to the office.
2 Where is Sandra? \toffice\t1
"""


def write_babi(folder, stories=STORY * 10, with_10k_task3=False):
    (folder / "babi").mkdir(parents=True, exist_ok=True)
    root = "tasks_1-20_v1-2"
    files = {}
    for task, stem in data.babi.TASK_FILES.items():
        files[f"{root}/en/{stem}_train.txt"] = stories
        files[f"{root}/en/{stem}_test.txt"] = stories
        files[f"{root}/en-10k/{stem}_test.txt"] = stories
        if task != 3 or with_10k_task3:
            files[f"{root}/en-10k/{stem}_train.txt"] = stories + stories
    with tarfile.open(folder / "babi" / "tasks_1-20_v1-2.partial.tar.gz", "w:gz") as archive:
        for name, text in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(text.encode())
            archive.addfile(info, io.BytesIO(text.encode()))
    return folder


def test_passages_questions_answers(tmp_path):
    dataset = data.load_dataset("babi1", write_babi(tmp_path))
    test = dataset.splits["test"]
    assert len(test) == 30 and dataset.label_names == ("bathroom", "hallway", "office")
    second = test[1]
    assert second.tokens == (
        "mary", "moved", "to", "the", "bathroom", ".", "john", "went", "to", "the", "hallway",
        ".", "daniel", "went", "back", "to", "the", "hallway",
    )  # fmt: skip
    assert second.question == ("where", "is", "daniel", "?") and second.label == 1
    assert len(dataset.splits["train"]) + len(dataset.splits["dev"]) == 60  # the 10k file


def test_task3_falls_back_to_1k_file(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        dataset = data.load_dataset("babi3", write_babi(tmp_path))
    assert "1k file en/qa3_three-supporting-facts_train.txt" in caplog.text
    assert len(dataset.splits["train"]) + len(dataset.splits["dev"]) == 30 and dataset.notes


def test_malformed_line(tmp_path):
    write_babi(tmp_path, stories="Mary moved.\n")
    with pytest.raises(data.DataError, match=r"qa2_two-supporting-facts_train.txt, line 1"):
        data.load_dataset("babi2", tmp_path)


def test_real_babi_task3_fallback(real_data_dir):
    dataset = data.load_dataset("babi3", real_data_dir)
    assert len(dataset.splits["train"]) + len(dataset.splits["dev"]) == 1000
    assert len(dataset.splits["test"]) == 1000 and dataset.notes
