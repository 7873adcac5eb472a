import io
import logging
import tarfile

import numpy as np
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
            payload = text if isinstance(text, bytes) else text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))
    return folder


def test_passages_questions_answers(tmp_path):
    dataset = data.load_dataset("babi1", write_babi(tmp_path))
    test = dataset.splits["test"]
    # JW's candidates: every word of tasks 1–3's training passages and questions, "?" dropped.
    assert len(test) == 30 and dataset.label_names == (
        ".", "back", "bathroom", "daniel", "hallway", "is", "john", "journeyed", "mary", "moved",
        "office", "sandra", "the", "to", "went", "where",
    )  # fmt: skip
    second = test[1]
    assert second.tokens == (
        "mary", "moved", "to", "the", "bathroom", ".", "john", "went", "to", "the", "hallway",
        ".", "daniel", "went", "back", "to", "the", "hallway",
    )  # fmt: skip
    assert second.question == ("where", "is", "daniel")
    assert dataset.label_names[second.label] == "hallway"
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


@pytest.mark.parametrize("task, jw_vocabulary", [(1, 24), (2, 38), (3, 39)])
def test_real_babi_candidates_are_jw_entity_list(real_data_dir, task, jw_vocabulary):
    dataset = data.load_dataset(f"babi{task}", real_data_dir)
    examples = dataset.splits["train"] + dataset.splits["dev"]
    words = {w for e in examples for w in e.tokens + e.question}
    assert len(words) + 4 == jw_vocabulary  # JW's vocabulary counts PAD, UNK, SOS and EOS
    assert set(dataset.label_names) >= words and len(dataset.label_names) == 36


@pytest.mark.parametrize(
    "bad_story, message",
    [
        ("1 Mary moved.\n3 John went.\n", r"line 2: the line is numbered 3 after 1; .*again at 1"),
        ("1 Mary moved.\n2 John went.\n2 Where?\tx\n", r"line 3: the line is numbered 2 after 2"),
        ("2 Mary moved.\n", r"line 1: the line is numbered 2 after 0"),
        ("1 Mary moved.\n2 Where is Mary?\t\t1\n", r"line 2: a question needs '<question>"),
        ("1 Mary moved.\n2 Where?\tx\t1\textra\n", r"line 2: a question needs"),
        ("1 Mary moved.\n2 Where is Mary?\tbathroom\t5\n", r"line 2: the supporting facts '5'"),
        ("1 Mary moved.\n2 Where is Mary?\tbathroom\tone\n", r"line 2: the supporting facts"),
        ("1 Mary moved.\nMary came back.\n", r"line 2: expected '<number> <sentence>'"),
        ("1 Mary moved.\n2 John went.\n", r"holds no question"),
    ],
)
def test_bad_story_names_file_line_and_text(tmp_path, bad_story, message):
    write_babi(tmp_path, stories=bad_story)
    where = r"tasks_1-20_v1-2\.partial\.tar\.gz:tasks_1-20_v1-2/en-10k/qa1_single-supporting-fact_"
    with pytest.raises(data.DataError, match=where + r"train\.txt(, | )" + message):
        data.load_dataset("babi1", tmp_path)


def test_bytes_that_are_not_utf8_name_member_and_line(tmp_path):
    write_babi(tmp_path, stories=STORY.encode() + b"1 Mary went to the caf\xe9.\n")
    with pytest.raises(
        data.DataError,
        match=r"qa1_single-supporting-fact_train\.txt, line 8: byte 0xe9 at column 23 is not "
        r"UTF-8 .*'1 Mary went to the caf\\xe9\.'",
    ):
        data.load_dataset("babi1", tmp_path)


def add_lines(archive, member, lines: bytes):
    with tarfile.open(archive, "r:gz") as source:
        files = {m.name: source.extractfile(m).read() for m in source.getmembers()}
    files[f"tasks_1-20_v1-2/{member}"] += lines
    with tarfile.open(archive, "w:gz") as target:
        for name, payload in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            target.addfile(info, io.BytesIO(payload))


def test_candidates_are_the_words_of_all_three_training_files(tmp_path):
    archive = write_babi(tmp_path) / "babi" / "tasks_1-20_v1-2.partial.tar.gz"
    two_train, three_train = (
        "en-10k/qa2_two-supporting-facts_train.txt",
        "en/qa3_three-supporting-facts_train.txt",
    )
    add_lines(archive, two_train, b"1 John got the milk.\n2 Where is John?\toffice\t1\n")
    add_lines(archive, three_train, b"1 Mary took the apple.\n2 Where is Mary?\toffice\t1\n")
    one, two = data.load_dataset("babi1", tmp_path), data.load_dataset("babi2", tmp_path)
    assert {"got", "milk", "took", "apple"} <= set(one.label_names)
    assert one.label_names == two.label_names


def test_an_answer_the_train_file_lacks_names_the_line(tmp_path):
    archive = write_babi(tmp_path) / "babi" / "tasks_1-20_v1-2.partial.tar.gz"
    test = "en-10k/qa1_single-supporting-fact_test.txt"
    add_lines(archive, test, b"1 Mary moved to the attic.\n2 Where is Mary?\tattic\t1\n")
    with pytest.raises(
        data.DataError, match=test + r", line 72: the answer 'attic' is no word of the bAbI 1–3 tr"
    ):
        data.load_dataset("babi1", tmp_path)


def test_damaged_archive_names_the_file(tmp_path):
    archive = write_babi(tmp_path) / "babi" / "tasks_1-20_v1-2.partial.tar.gz"
    archive.write_bytes(archive.read_bytes()[:200])
    with pytest.raises(data.DataError, match=r"Cannot read the bAbI archive .*partial\.tar\.gz"):
        data.load_dataset("babi2", tmp_path)


def test_extracted_folder_is_checked_too(tmp_path):
    folder = tmp_path / "babi" / "tasks_1-20_v1-2" / "en-10k"
    folder.mkdir(parents=True)
    for stem in data.babi.TASK_FILES.values():
        (folder / f"{stem}_train.txt").write_text(STORY)
        (folder / f"{stem}_test.txt").write_text(STORY + "1 Mary moved.\n5 John went.\n")
    with pytest.raises(data.DataError, match=r"en-10k/qa2_two-supporting-facts_test\.txt, line 9"):
        data.load_dataset("babi2", tmp_path)


def _sentences(text):
    return data.babi.passage_statements(tuple(text.split()))


def test_story_answer_follows_the_rules_of_tasks_1_and_2():
    moves = _sentences("mary moved to the bathroom . mary went back to the hallway")
    assert data.babi.story_answer(moves, ("where", "is", "mary", "?")) == "hallway"
    assert data.babi.story_answer(moves[::-1], ("where", "is", "mary", "?")) == "bathroom"
    assert data.babi.story_answer(moves, ("where", "is", "john", "?")) is None
    story = _sentences(
        "john picked up the milk there . john went to the office . mary went to the garden . "
        "john dropped the milk . mary got the milk there . mary moved to the kitchen"
    )
    where_milk = ("where", "is", "the", "milk", "?")
    assert data.babi.story_answer(story, where_milk) == "kitchen"  # with its holder
    assert data.babi.story_answer(story[:4], where_milk) == "office"  # where it was dropped
    assert data.babi.story_answer(story[:1], where_milk) is None  # held, holder's place unknown
    # Against the rules: dropped before it was taken; taken while someone else holds it.
    assert data.babi.story_answer([story[3], *story[:3]], where_milk) is None
    assert data.babi.story_answer([story[0], story[4]], where_milk) is None
    with pytest.raises(ValueError, match="Not a bAbI 1–2 sentence"):
        data.babi.story_answer(_sentences("mary sang the milk"), where_milk)


def test_order_free_ceiling_by_hand():
    labels = ("bathroom", "hallway", "office")
    two_moves = data.Example("a", tuple("mary moved to the bathroom . mary went to the hallway"
                                        .split()), 1, ("where", "is", "mary", "?"))  # fmt: skip
    one_move = data.Example("b", ("john", "went", "to", "the", "office"), 2,
                            ("where", "is", "john", "?"))  # fmt: skip
    rng = np.random.default_rng(0)
    ceiling, agreement = data.babi.order_free_ceiling([two_moves], labels, 2000, rng)
    assert agreement == 1.0 and ceiling == pytest.approx(0.5, abs=0.04)  # either order, 1/2
    ceiling, agreement = data.babi.order_free_ceiling([two_moves, one_move], labels, 2000, rng)
    assert agreement == 1.0 and ceiling == pytest.approx(0.75, abs=0.02)
    wrong = data.Example("c", one_move.tokens, 0, one_move.question)
    assert data.babi.order_free_ceiling([wrong], labels, 10, rng) == (1.0, 0.0)


@pytest.mark.parametrize("task", [1, 2])
def test_real_babi_rules_reproduce_every_answer(real_data_dir, task):
    dataset = data.load_dataset(f"babi{task}", real_data_dir)
    test = dataset.splits["test"]
    ceiling, agreement = data.babi.order_free_ceiling(
        test, dataset.label_names, 100, np.random.default_rng(0)
    )
    assert agreement == 1.0
    assert 0.55 < ceiling < 0.72  # about 0.6; few orders over-estimate it (max of frequencies)
