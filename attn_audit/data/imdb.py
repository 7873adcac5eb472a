"""IMDB movie reviews, the aclImdb tree (JW, SPEC §1).

Reads ``imdb/aclImdb/`` if extracted, else the tarball
(``aclImdb_v1.labelled.tar.gz`` or the original ``aclImdb_v1.tar.gz``) in
place. Reviews are ``{train,test}/{neg,pos}/<id>_<rating>.txt``; ``<br />``
tags become spaces. JW kept reviews under 400 tokens, split train 80/20 into
train/dev (seed 1378) and kept 20% of the short test reviews as test
(seed 1378). Our splits are seeded numpy permutations, not scikit-learn's draw.
"""

import pathlib
import re
import tarfile

from attn_audit.data.dataset import (
    READ_ERRORS,
    DataError,
    Example,
    TextDataset,
    decode_utf8,
    seeded_split,
)
from attn_audit.data.text import tokenize

MAX_TOKENS = 400  # keep reviews with fewer tokens than this
DEV_FRACTION = 0.2
TEST_FRACTION = 0.2
SPLIT_SEED = 1378
TARBALLS = ("aclImdb_v1.labelled.tar.gz", "aclImdb_v1.tar.gz")
PARTS = ("train", "test")
# The originators' ratings: negative reviews are rated 1-4 of 10, positive ones 7-10.
RATINGS = {"neg": range(1, 5), "pos": range(7, 11)}
_REVIEW_FOLDER = re.compile(r"(?:^|/)aclImdb/(train|test)/(neg|pos)/([^/]+)$")
_REVIEW_NAME = re.compile(r"(\d+)_(\d+)\.txt")
_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
RESTORE = "Restore the complete aclImdb tree (or the original aclImdb_v1.tar.gz)."


def _reviews_from_folder(root: pathlib.Path):
    """``(where, name in the aclImdb tree, read the bytes)`` for every file of the tree."""
    for path in sorted(root.rglob("*")):
        if path.is_file():
            yield str(path), str(path.relative_to(root.parent)), path.read_bytes


def _reviews_from_tarball(path: pathlib.Path):
    """``(archive:member, member, read the bytes)`` for the files in review folders."""
    try:
        with tarfile.open(path, "r:gz") as archive:
            for member in archive:
                if member.isfile() and _REVIEW_FOLDER.search(member.name):
                    raw = archive.extractfile(member).read()
                    yield f"{path}:{member.name}", member.name, lambda raw=raw: raw
    except READ_ERRORS as error:
        raise DataError(
            f"Cannot read the IMDB archive {path} ({error}). Replace it with the original "
            "aclImdb tarball or extract it so that imdb/aclImdb/ exists."
        ) from None


def read_reviews(folder: pathlib.Path) -> dict[str, list[Example]]:
    """All reviews of the original train and test parts, in file-name order.

    Raises:
      DataError: naming the file when a review folder holds a file that is not
        ``<id>_<rating>.txt``, a rating that does not fit its folder, a review twice or
        text that is not UTF-8 (with the line), or when a review folder is empty.
    """
    if (folder / "aclImdb").is_dir():
        source = _reviews_from_folder(folder / "aclImdb")
        where_tree = folder / "aclImdb"
    else:
        tarballs = [folder / name for name in TARBALLS if (folder / name).is_file()]
        if not tarballs:
            raise DataError(
                f"No IMDB data in {folder}: expected the folder aclImdb/ or one of {TARBALLS}. "
                "Download aclImdb_v1.tar.gz from ai.stanford.edu/~amaas/data/sentiment/ "
                "and put it there."
            )
        source = _reviews_from_tarball(tarballs[0])
        where_tree = tarballs[0]
    parts = {part: [] for part in PARTS}
    seen = set()
    for where, name, read in source:
        folder_match = _REVIEW_FOLDER.search(name)
        if folder_match is None:
            continue  # README, imdb.vocab, urls, train/unsup/, ...
        part, polarity, file_name = folder_match.groups()
        if file_name.startswith("."):
            continue  # hidden files such as macOS's ._* and .DS_Store
        name_match = _REVIEW_NAME.fullmatch(file_name)
        if name_match is None:
            raise DataError(
                f"{where}: unexpected file in a review folder (reviews are named "
                f"<id>_<rating>.txt, such as 0_3.txt). {RESTORE}"
            )
        review_id, rating = name_match.groups()
        if int(rating) not in RATINGS[polarity]:
            raise DataError(
                f"{where}: a rating of {int(rating)} in {polarity}/ (the originators put reviews "
                f"rated {RATINGS['neg'][0]}-{RATINGS['neg'][-1]} in neg/ and "
                f"{RATINGS['pos'][0]}-{RATINGS['pos'][-1]} in pos/). {RESTORE}"
            )
        example_id = f"{part}-{polarity}-{review_id}_{rating}"
        if example_id in seen:
            raise DataError(
                f"{where}: the review {part}/{polarity}/{file_name} occurs twice. {RESTORE}"
            )
        seen.add(example_id)
        text = _BREAK.sub(" ", decode_utf8(read(), where))
        parts[part].append(
            Example(id=example_id, tokens=tokenize(text), label=int(polarity == "pos"))
        )
    for part, examples in parts.items():
        for polarity, label in (("neg", 0), ("pos", 1)):
            if not any(e.label == label for e in examples):
                raise DataError(
                    f"The IMDB data in {where_tree} has no {part} reviews in "
                    f"aclImdb/{part}/{polarity}/ (<id>_<rating>.txt files). {RESTORE}"
                )
        examples.sort(key=lambda e: e.id)
    return parts


def load(data_dir: pathlib.Path) -> TextDataset:
    parts = read_reviews(data_dir / "imdb")
    short_train = [e for e in parts["train"] if len(e.tokens) < MAX_TOKENS]
    short_test = [e for e in parts["test"] if len(e.tokens) < MAX_TOKENS]
    train, dev = seeded_split(short_train, DEV_FRACTION, SPLIT_SEED)
    _, test = seeded_split(short_test, TEST_FRACTION, SPLIT_SEED)
    return TextDataset(
        name="imdb",
        task="classification",
        label_names=("negative", "positive"),
        splits={"train": train, "dev": dev, "test": test},
        min_df=10,
        min_length=6,
    )
