import io
import tarfile

import pytest

from attn_audit import data
from attn_audit.data import newsgroups

POST = """From: fan@example.edu
Subject: Re: the game

In article <123@x.edu> someone writes:
> quoted line that must go
The Bruins played 3 periods of great hockey tonight
and the goalie was strong .
--
Signature Fan
"""


def post_files(per_group=10):
    return {
        f"20news-bydate-{part}/{group}/{1000 + i}": POST.encode("latin-1")
        for part in ("train", "test")
        for group in ("rec.sport.baseball", "rec.sport.hockey", "sci.space")
        for i in range(per_group)
    }


def write_tarball(folder, per_group=10, files=None):
    (folder / "20news").mkdir(parents=True, exist_ok=True)
    with tarfile.open(folder / "20news" / "20news-bydate.tar.gz", "w:gz") as archive:
        for name, payload in (files or post_files(per_group)).items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))
    return folder


def write_folders(folder, per_group=10, files=None):
    for name, payload in (files or post_files(per_group)).items():
        path = folder / "20news" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(payload)
    return folder


def test_clean_post_removes_header_quotes_and_footer():
    cleaned = newsgroups.clean_post(POST)
    assert "From:" not in cleaned and "quoted" not in cleaned and "writes" not in cleaned
    assert "Signature" not in cleaned and "Bruins" in cleaned


def test_two_groups_stratified_splits(tmp_path):
    dataset = data.load_dataset("20news", write_tarball(tmp_path))
    sizes = {s: len(e) for s, e in dataset.splits.items()}
    assert sizes == {"train": 26, "dev": 6, "test": 8}  # 40 posts: 20% test, 20% of rest dev
    for split in dataset.splits.values():
        assert sum(e.label == 0 for e in split) == sum(e.label == 1 for e in split)
    assert dataset.splits["train"][0].tokens[:3] == ("the", "bruins", "played")


def test_missing_archive(tmp_path):
    with pytest.raises(data.DataError, match="No 20 Newsgroups data"):
        data.load_dataset("20news", tmp_path)


@pytest.mark.parametrize("writer", [write_tarball, write_folders])
def test_tarball_and_folders_give_the_same_posts(tmp_path, writer):
    dataset = data.load_dataset("20news", writer(tmp_path, files=post_files(5)))
    assert sum(map(len, dataset.splits.values())) == 20  # 5 posts × 2 groups × 2 parts


@pytest.mark.parametrize("writer", [write_tarball, write_folders])
@pytest.mark.parametrize(
    "name, message",
    [
        ("20news-bydate-train/rec.sport.hockey/README", r"train/rec\.sport\.hockey/README: "),
        ("20news-bydate-test/rec.sport.baseball/1001~", r"test/rec\.sport\.baseball/1001~: "),
    ],
)
def test_unexpected_file_in_a_group_folder_is_named(tmp_path, writer, name, message):
    writer(tmp_path, files={**post_files(3), name: b"notes"})
    with pytest.raises(
        data.DataError,
        match=message + r"unexpected file in a newsgroup folder .*Restore the complete bydate",
    ):
        data.load_dataset("20news", tmp_path)


def test_a_part_without_a_group_is_named(tmp_path):
    files = {n: p for n, p in post_files(3).items() if "test/rec.sport.hockey" not in n}
    write_tarball(tmp_path, files=files)
    with pytest.raises(data.DataError, match=r"no posts in 20news-bydate-test/rec\.sport\.hockey/"):
        data.load_dataset("20news", tmp_path)


def test_a_post_twice_in_the_archive_is_named(tmp_path):
    (tmp_path / "20news").mkdir()
    members = [*post_files(3).items(), ("20news-bydate-train/rec.sport.hockey/1000", b"again")]
    with tarfile.open(tmp_path / "20news" / "20news-bydate.tar.gz", "w:gz") as archive:
        for name, payload in members:
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))
    with pytest.raises(data.DataError, match=r"hockey/1000: the post .*/1000 occurs twice"):
        data.load_dataset("20news", tmp_path)


def test_truncated_archive_names_the_file(tmp_path):
    archive = write_tarball(tmp_path) / "20news" / "20news-bydate.tar.gz"
    archive.write_bytes(archive.read_bytes()[:-40])
    with pytest.raises(data.DataError, match=r"Cannot read the 20 Newsgroups archive .*bydate"):
        data.load_dataset("20news", tmp_path)
