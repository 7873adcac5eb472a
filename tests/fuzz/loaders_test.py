"""Every loader on damaged copies of small valid files: the result is a well-formed data
set, or a DataError that names the file; never another exception from inside a loader.

Each case writes its files into a fresh temporary folder (Hypothesis runs many cases per
test, so pytest's per-test ``tmp_path`` would be shared between them).
"""

import contextlib
import csv
import gzip
import io
import json
import pathlib
import re
import tempfile

from hypothesis import currently_in_test_context, event, given
from hypothesis import strategies as st

from attn_audit import data
from attn_audit.data.dataset import SPLITS, Example
from tests._fixtures import TREES
from tests.fuzz._mutations import mutated, mutated_archive, tar_gz


@contextlib.contextmanager
def data_folder():
    with tempfile.TemporaryDirectory(prefix="attn_audit_fuzz_") as folder:
        yield pathlib.Path(folder)


def write(path: pathlib.Path, payload: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(payload)


def kind_of(message: str, folder: pathlib.Path) -> str:
    """The kind of a DataError, for ``--hypothesis-show-statistics``: its problem without
    the file, the line, the text shown, byte values and numbers."""
    problem = re.sub(r"^\S*, line \d+: ", "", message.replace(str(folder), "<data>"))
    problem = re.split(r": '|: \.\.\.'| \(|\. |, got ", problem)[0]
    problem = re.sub(r"\S*/\S*", "<file>", problem)
    return re.sub(r"0x[0-9a-f]+|(?<!UTF-)\b\d+\b", "N", problem)[:80]


def record(outcome: str) -> None:
    if currently_in_test_context():  # not in test_the_seeds_load, which is no property
        event(outcome)


def load_or_data_error(name: str, folder: pathlib.Path) -> data.TextDataset | None:
    """Loads ``name``: a data set that loads must be well formed, and a DataError must name
    a file in ``folder`` and print as UTF-8 (no lone surrogates from damaged names). Every
    split is read here (a loader may read a split on first use: SST's ``LazySplits``)."""
    try:
        dataset = data.load_dataset(name, folder)
        dict(dataset.splits)
    except data.DataError as error:
        message = str(error)
        assert str(folder) in message, message
        message.encode("utf-8")
        record(f"DataError: {kind_of(message, folder)}")
        return None
    record("loaded")
    assert set(dataset.splits) == set(SPLITS)
    for examples in dataset.splits.values():
        for example in examples:
            assert isinstance(example, Example)
            assert 0 <= example.label < dataset.num_classes
            for tokens in (example.tokens, example.question or ()):
                assert all(isinstance(t, str) and t and not t.isspace() for t in tokens)
            assert (example.question is not None) == (dataset.task == "qa")
    return dataset


def encode_or_data_error(dataset: data.TextDataset) -> int:
    """Encodes every split as training does; returns how many encoded. A split that the
    length filter empties is the pipeline's DataError, which says so."""
    vocab = data.vocabulary_for(dataset)
    encoded_splits = 0
    for split in SPLITS:
        try:
            encoded = data.encode_split(dataset, split, vocab)
        except data.DataError as error:
            assert f"The {split} split of {dataset.name} is empty" in str(error), str(error)
            continue
        for ids in encoded.token_ids:
            assert ids[0] == data.SOS and ids[-1] == data.EOS and ids.max() < len(vocab)
        encoded_splits += 1
    return encoded_splits


def check(name: str, folder: pathlib.Path) -> None:
    """The property: a well-formed data set whose splits encode, or a clear DataError."""
    dataset = load_or_data_error(name, folder)
    if dataset is not None:
        encode_or_data_error(dataset)


# ------------------------------------------------------------------ seeds: small valid files


def sst_trees() -> str:
    longer = [
        f"({label} (2 A) ({label} " + "(2 very) " * n + f"({label} {word})))"
        for n, (label, word) in enumerate([(4, "good"), (0, "bad"), (3, "fine"), (1, "dull")] * 2)
    ]
    return "\n".join(TREES + longer) + "\n"


SST_FILES = {name: sst_trees() for name in ("train.txt", "dev.txt", "test.txt")}


def agnews_csv() -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\n")
    for i in range(30):
        for cls in "1234":
            words = " and ".join(["news"] * (1 + i % 7))
            writer.writerow([cls, f"Title {i}", f"{words} of class {cls}, item {i}\\more #36;5"])
    return buffer.getvalue().encode()


def snli_jsonl(split: str) -> bytes:
    labels = ("entailment", "neutral", "contradiction", "-")
    lines = [
        json.dumps(
            {
                "annotator_labels": [labels[i % 4]],
                "gold_label": labels[i % 4],
                "pairID": f"{split}{i}",
                "sentence1": f"Two dogs run in the park {i} times.",
                "sentence2": "Animals move.",
            }
        )
        for i in range(40)
    ]
    return ("\n".join(lines) + "\n").encode()


BABI_STORY = (
    b"1 Mary moved to the bathroom.\n2 John went to the hallway.\n3 Where is Mary? \tbathroom\t1\n"
    b"4 Daniel went back to the hallway.\n5 Where is Daniel? \thallway\t4\n"
    b"1 Sandra journeyed to the office.\n2 Where is Sandra? \toffice\t1\n"
)


def babi_files() -> dict[str, bytes]:
    root = "tasks_1-20_v1-2"
    files = {}
    for task, stem in data.babi.TASK_FILES.items():
        files[f"{root}/en/{stem}_train.txt"] = BABI_STORY * 2
        files[f"{root}/en/{stem}_test.txt"] = BABI_STORY
        files[f"{root}/en-10k/{stem}_test.txt"] = BABI_STORY
        if task != 3:  # as in ../shared/data: task 3 falls back to the 1k file
            files[f"{root}/en-10k/{stem}_train.txt"] = BABI_STORY * 3
    return files


def imdb_files() -> dict[str, bytes]:
    files = {"aclImdb/README": b"Large Movie Review Dataset v1.0\n"}
    for part in ("train", "test"):
        for polarity, rating in (("neg", 2), ("pos", 9)):
            for i in range(6):
                files[f"aclImdb/{part}/{polarity}/{i}_{rating}.txt"] = (
                    f"A {polarity} review number {i}.<br /><br />It was seen by "
                    f"{'many ' * (4 + i)}people."
                ).encode()
    return files


NEWS_POST = b"""From: fan@example.edu
Subject: Re: the game

In article <123@x.edu> someone writes:
> quoted line that must go
The Bruins played 3 periods of great hockey tonight
and the goalie was strong .
--
Signature Fan
"""


def newsgroups_files() -> dict[str, bytes]:
    return {
        f"20news-bydate-{part}/{group}/{1000 + i}": NEWS_POST
        for part in ("train", "test")
        for group in ("rec.sport.baseball", "rec.sport.hockey", "sci.space")
        for i in range(3)
    }


@st.composite
def mutated_folder_files(draw, files: dict[str, bytes]) -> dict[str, bytes]:
    """``files`` with one file damaged, deleted or duplicated under a new name."""
    files = dict(files)
    name = draw(st.sampled_from(sorted(files)))
    change = draw(st.sampled_from(("damage", "damage", "delete", "copy")))
    if change == "damage":
        files[name] = draw(mutated(files[name]))
    elif change == "delete":
        del files[name]
    else:
        files[name + draw(st.sampled_from(("~", ".bak", "_1", "0")))] = files[name]
    return files


# ------------------------------------------------------------------ the properties


def test_the_seeds_load():
    """The undamaged seeds are valid data sets (else every case below would be an error)."""
    with data_folder() as folder:
        for name, text in SST_FILES.items():
            write(folder / "sst" / name, text.encode())
        write(folder / "ag_news" / "test.csv", agnews_csv())
        for split in ("dev", "test"):
            write(folder / "snli" / f"snli_1.0_{split}.jsonl", snli_jsonl(split))
        write(
            folder / "babi" / "tasks_1-20_v1-2.partial.tar.gz", tar_gz(list(babi_files().items()))
        )
        write(folder / "imdb" / "aclImdb_v1.tar.gz", tar_gz(list(imdb_files().items())))
        write(folder / "20news" / "20news-bydate.tar.gz", tar_gz(list(newsgroups_files().items())))
        for name in data.LOADERS:
            assert encode_or_data_error(load_or_data_error(name, folder)) == 3, name


@given(name=st.sampled_from(sorted(SST_FILES)), content=st.data())
def test_sst(name, content):
    with data_folder() as folder:
        for other, text in SST_FILES.items():
            write(folder / "sst" / other, text.encode())
        write(folder / "sst" / name, content.draw(mutated(SST_FILES[name].encode())))
        check("sst", folder)


@given(content=mutated(agnews_csv()), with_train=st.booleans())
def test_agnews(content, with_train):
    with data_folder() as folder:
        write(folder / "ag_news" / "test.csv", content)
        if with_train:
            write(folder / "ag_news" / "train.csv", agnews_csv())
        check("agnews", folder)


@given(split=st.sampled_from(("dev", "test")), compressed=st.booleans(), content=st.data())
def test_snli(split, compressed, content):
    """Damage to the JSON lines (plain or then compressed), or to the gzip stream itself."""
    with data_folder() as folder:
        for other in ("dev", "test"):
            write(folder / "snli" / f"snli_1.0_{other}.jsonl", snli_jsonl(other))
        damaged = content.draw(mutated(snli_jsonl(split)))
        (folder / "snli" / f"snli_1.0_{split}.jsonl").unlink()
        if compressed:
            if content.draw(st.booleans(), label="damage the gzip stream instead"):
                damaged = content.draw(mutated(gzip.compress(snli_jsonl(split), mtime=0)))
            else:
                damaged = gzip.compress(damaged, mtime=0)
            write(folder / "snli" / f"snli_1.0_{split}.jsonl.gz", damaged)
        else:
            write(folder / "snli" / f"snli_1.0_{split}.jsonl", damaged)
        check("snli", folder)


@given(task=st.sampled_from((1, 2, 3)), extracted=st.booleans(), content=st.data())
def test_babi(task, extracted, content):
    with data_folder() as folder:
        if extracted:
            for name, payload in content.draw(mutated_folder_files(babi_files())).items():
                write(folder / "babi" / name, payload)
        else:
            archive = content.draw(mutated_archive(babi_files()))
            write(folder / "babi" / "tasks_1-20_v1-2.partial.tar.gz", archive)
        check(f"babi{task}", folder)


@given(extracted=st.booleans(), content=st.data())
def test_imdb(extracted, content):
    with data_folder() as folder:
        if extracted:
            for name, payload in content.draw(mutated_folder_files(imdb_files())).items():
                write(folder / "imdb" / name, payload)
        else:
            write(
                folder / "imdb" / "aclImdb_v1.tar.gz", content.draw(mutated_archive(imdb_files()))
            )
        check("imdb", folder)


@given(extracted=st.booleans(), content=st.data())
def test_newsgroups(extracted, content):
    with data_folder() as folder:
        if extracted:
            for name, payload in content.draw(mutated_folder_files(newsgroups_files())).items():
                write(folder / "20news" / name, payload)
        else:
            archive = content.draw(mutated_archive(newsgroups_files()))
            write(folder / "20news" / "20news-bydate.tar.gz", archive)
        check("20news", folder)
