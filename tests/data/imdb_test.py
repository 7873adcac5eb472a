import io
import tarfile

import pytest

from attn_audit import data


def review_files(n=30):
    files = {}
    for part in ("train", "test"):
        for polarity in ("neg", "pos"):
            for i in range(n):
                words = " ".join(["word"] * (7 + i))
                files[f"aclImdb/{part}/{polarity}/{i}_{3 if polarity == 'neg' else 8}.txt"] = (
                    f"A {polarity} review.<br /><br />{words}"
                )
    files["aclImdb/train/pos/99_9.txt"] = " ".join(["long"] * 450)  # ≥ 400 tokens: dropped
    return files


def write_tarball(folder, files):
    (folder / "imdb").mkdir(parents=True, exist_ok=True)
    with tarfile.open(folder / "imdb" / "aclImdb_v1.labelled.tar.gz", "w:gz") as archive:
        for name, text in files.items():
            payload = text if isinstance(text, bytes) else text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))
    return folder


def write_folder(folder, files):
    for name, text in files.items():
        path = folder / "imdb" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return folder


@pytest.mark.parametrize("writer", [write_tarball, write_folder])
def test_tarball_and_folder_give_the_same_splits(tmp_path, writer):
    dataset = data.load_dataset("imdb", writer(tmp_path, review_files()))
    sizes = {s: len(e) for s, e in dataset.splits.items()}
    assert sizes == {"train": 48, "dev": 12, "test": 12}  # 60 short train reviews, 20% of test
    example = next(e for e in dataset.splits["train"] if e.id == "train-pos-0_8")
    assert example.tokens[:4] == ("a", "pos", "review", ".") and "br" not in example.tokens
    assert all(len(e.tokens) < 400 for s in dataset.splits.values() for e in s)


def test_missing_data_and_corrupt_archive(tmp_path):
    with pytest.raises(data.DataError, match="No IMDB data in .*aclImdb_v1.tar.gz"):
        data.load_dataset("imdb", tmp_path)
    (tmp_path / "imdb").mkdir(exist_ok=True)
    (tmp_path / "imdb" / "aclImdb_v1.labelled.tar.gz").write_bytes(b"not a tarball")
    with pytest.raises(data.DataError, match="Cannot read the IMDB archive"):
        data.load_dataset("imdb", tmp_path)


@pytest.mark.parametrize("writer", [write_tarball, write_folder])
@pytest.mark.parametrize(
    "change, message",
    [
        (
            {"aclImdb/train/pos/notes.txt": "my notes"},
            r"aclImdb/train/pos/notes\.txt: unexpected file in a review folder",
        ),
        (
            {"aclImdb/test/neg/5_3.txt.orig": "a backup"},
            r"aclImdb/test/neg/5_3\.txt\.orig: unexpected file",
        ),
        (
            {"aclImdb/train/pos/77_3.txt": "rated 3"},
            r"aclImdb/train/pos/77_3\.txt: a rating of 3 in pos/ .*1-4 in neg/ and 7-10 in pos/",
        ),
        (
            {"aclImdb/test/neg/77_0.txt": "rated 0"},
            r"aclImdb/test/neg/77_0\.txt: a rating of 0 in neg/",
        ),
        (
            {"aclImdb/train/neg/77_2.txt": b"A \x93quoted\x94 word"},
            r"aclImdb/train/neg/77_2\.txt, line 1: byte 0x93 at column 3 is not UTF-8",
        ),
        (
            {"aclImdb/train/neg/77_2.txt": b"Fine.<br />\nStill fine.\n\xff"},
            r"aclImdb/train/neg/77_2\.txt, line 3: byte 0xff at column 1",
        ),
    ],
)
def test_bad_review_file_names_the_file(tmp_path, writer, change, message):
    writer(tmp_path, {**review_files(4), **change})
    with pytest.raises(data.DataError, match=message):
        data.load_dataset("imdb", tmp_path)


@pytest.mark.parametrize("writer", [write_tarball, write_folder])
def test_an_empty_review_folder_is_named(tmp_path, writer):
    files = {n: t for n, t in review_files(4).items() if "/test/pos/" not in n}
    writer(tmp_path, files)
    with pytest.raises(data.DataError, match=r"has no test reviews in aclImdb/test/pos/"):
        data.load_dataset("imdb", tmp_path)


def test_a_review_twice_in_the_archive_is_named(tmp_path):
    write_tarball(tmp_path, review_files(4))
    archive = tmp_path / "imdb" / "aclImdb_v1.labelled.tar.gz"
    with tarfile.open(archive, "r:gz") as source:
        members = [(m, source.extractfile(m).read()) for m in source.getmembers()]
    with tarfile.open(archive, "w:gz") as target:
        for member, payload in members + members[:1]:
            target.addfile(member, io.BytesIO(payload))
    with pytest.raises(data.DataError, match=r"gz:aclImdb/train/neg/0_3\.txt: the review .* twice"):
        data.load_dataset("imdb", tmp_path)


def test_hidden_files_and_other_folders_are_skipped(tmp_path):
    files = {
        **review_files(4),
        "aclImdb/train/pos/._0_8.txt": b"\x00\x05\x16\x07 AppleDouble",
        "aclImdb/train/unsup/0_0.txt": "unlabelled",
        "aclImdb/imdbEr.txt": "0.1",
    }
    sizes = {
        s: len(e)
        for s, e in data.load_dataset("imdb", write_folder(tmp_path, files)).splits.items()
    }
    assert sum(sizes.values()) == 8 + 2  # the 8 short train reviews, 20% of the 8 test ones


def test_truncated_archive_names_the_file(tmp_path):
    write_tarball(tmp_path, review_files(4))
    archive = tmp_path / "imdb" / "aclImdb_v1.labelled.tar.gz"
    archive.write_bytes(archive.read_bytes()[:-40])
    with pytest.raises(data.DataError, match=r"Cannot read the IMDB archive .*labelled\.tar\.gz"):
        data.load_dataset("imdb", tmp_path)
