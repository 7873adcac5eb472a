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


def write_tarball(folder, per_group=10):
    (folder / "20news").mkdir(parents=True, exist_ok=True)
    with tarfile.open(folder / "20news" / "20news-bydate.tar.gz", "w:gz") as archive:
        for part in ("train", "test"):
            for group in ("rec.sport.baseball", "rec.sport.hockey", "sci.space"):
                for i in range(per_group):
                    payload = POST.encode("latin-1")
                    info = tarfile.TarInfo(f"20news-bydate-{part}/{group}/{1000 + i}")
                    info.size = len(payload)
                    archive.addfile(info, io.BytesIO(payload))
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
