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

from attn_audit.data.dataset import DataError, Example, TextDataset, seeded_split
from attn_audit.data.text import tokenize

MAX_TOKENS = 400  # keep reviews with fewer tokens than this
DEV_FRACTION = 0.2
TEST_FRACTION = 0.2
SPLIT_SEED = 1378
TARBALLS = ("aclImdb_v1.labelled.tar.gz", "aclImdb_v1.tar.gz")
_REVIEW_PATH = re.compile(r"(?:^|/)aclImdb/(train|test)/(neg|pos)/(\d+)_(\d+)\.txt$")
_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)


def _reviews_from_folder(root: pathlib.Path):
    for path in sorted(root.rglob("*.txt")):
        yield str(path.relative_to(root.parent)), path.read_bytes()


def _reviews_from_tarball(path: pathlib.Path):
    try:
        with tarfile.open(path, "r:gz") as archive:
            for member in archive:
                if member.isfile() and _REVIEW_PATH.search(member.name):
                    yield member.name, archive.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError) as error:
        raise DataError(
            f"Cannot read the IMDB archive {path} ({error}). Replace it with the original "
            "aclImdb tarball or extract it so that imdb/aclImdb/ exists."
        ) from None


def read_reviews(folder: pathlib.Path) -> dict[str, list[Example]]:
    """All reviews of the original train and test parts, in file-name order."""
    if (folder / "aclImdb").is_dir():
        source = _reviews_from_folder(folder / "aclImdb")
    else:
        tarballs = [folder / name for name in TARBALLS if (folder / name).is_file()]
        if not tarballs:
            raise DataError(
                f"No IMDB data in {folder}: expected the folder aclImdb/ or one of {TARBALLS}. "
                "Download aclImdb_v1.tar.gz from ai.stanford.edu/~amaas/data/sentiment/ "
                "and put it there."
            )
        source = _reviews_from_tarball(tarballs[0])
    parts = {"train": [], "test": []}
    for name, raw in source:
        match = _REVIEW_PATH.search(name)
        if match is None:
            continue
        part, polarity, review_id, rating = match.groups()
        text = _BREAK.sub(" ", raw.decode("utf-8", errors="replace"))
        parts[part].append(
            Example(
                id=f"{part}-{polarity}-{review_id}_{rating}",
                tokens=tokenize(text),
                label=int(polarity == "pos"),
            )
        )
    for part, examples in parts.items():
        if not examples:
            raise DataError(
                f"The IMDB data in {folder} has no {part} reviews ({part}/pos/*.txt, "
                f"{part}/neg/*.txt). Restore the complete aclImdb tree."
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
