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
            payload = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))
    return folder


def write_folder(folder, files):
    for name, text in files.items():
        path = folder / "imdb" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
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
