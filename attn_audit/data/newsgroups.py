"""20 Newsgroups "bydate", rec.sport.baseball (0) vs rec.sport.hockey (1) (JW, SPEC §1).

Reads ``20news/20news-bydate.tar.gz`` in place (or the extracted folders
``20news-bydate-{train,test}/``). Posts are latin-1. Headers, signature
footers and quoted replies are removed the way scikit-learn's
``fetch_20newsgroups(remove=("headers", "footers", "quotes"))`` does. JW pooled
all posts of the two groups, held out 20% as test (stratified, seed 13478),
then 20% of the rest as dev (stratified, seed 13478); our draws are seeded
numpy permutations, not scikit-learn's.
"""

import pathlib
import re
import tarfile

from attn_audit.data.dataset import DataError, Example, TextDataset, seeded_split
from attn_audit.data.text import tokenize

GROUPS = {"rec.sport.baseball": 0, "rec.sport.hockey": 1}
TARBALL = "20news-bydate.tar.gz"
TEST_FRACTION = 0.2
DEV_FRACTION = 0.2
SPLIT_SEED = 13478
_POST_PATH = re.compile(r"(?:^|/)20news-bydate-(train|test)/([\w.]+)/(\d+)$")
_QUOTE_LINE = re.compile(r"(writes in|writes:|wrote:|says:|said:|^In article|^Quoted from|^\||^>)")


def strip_header(text: str) -> str:
    """Everything after the first blank line."""
    _, blank, body = text.partition("\n\n")
    return body


def strip_quotes(text: str) -> str:
    """Drops lines that quote another post or introduce a quote."""
    return "\n".join(line for line in text.split("\n") if not _QUOTE_LINE.search(line))


def strip_footer(text: str) -> str:
    """Drops the signature: everything from the last line made only of dashes."""
    lines = text.strip().split("\n")
    for line_number in range(len(lines) - 1, -1, -1):
        if lines[line_number].strip().strip("-") == "":
            break
    return "\n".join(lines[:line_number]) if line_number > 0 else text


def clean_post(text: str) -> str:
    return strip_footer(strip_quotes(strip_header(text)))


def _posts_from_tarball(path: pathlib.Path):
    try:
        with tarfile.open(path, "r:gz") as archive:
            for member in archive:
                match = _POST_PATH.search(member.name)
                if member.isfile() and match and match.group(2) in GROUPS:
                    yield match.groups(), archive.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError) as error:
        raise DataError(
            f"Cannot read the 20 Newsgroups archive {path} ({error}). Replace it with the "
            "original 20news-bydate.tar.gz."
        ) from None


def _posts_from_folders(folder: pathlib.Path):
    for part in ("train", "test"):
        for group in GROUPS:
            for path in sorted((folder / f"20news-bydate-{part}" / group).glob("*")):
                yield (part, group, path.name), path.read_bytes()


def load(data_dir: pathlib.Path) -> TextDataset:
    folder = data_dir / "20news"
    if (folder / "20news-bydate-train").is_dir():
        source = _posts_from_folders(folder)
    elif (folder / TARBALL).is_file():
        source = _posts_from_tarball(folder / TARBALL)
    else:
        raise DataError(
            f"No 20 Newsgroups data in {folder}: expected {TARBALL} or the folders "
            "20news-bydate-train/ and 20news-bydate-test/. Download the bydate archive "
            "and put it there."
        )
    posts = []
    for (part, group, post_id), raw in source:
        posts.append(
            Example(
                id=f"{part}-{group}-{post_id}",
                tokens=tokenize(clean_post(raw.decode("latin-1"))),
                label=GROUPS[group],
            )
        )
    found = {label: sum(p.label == label for p in posts) for label in GROUPS.values()}
    if not all(found.values()):
        raise DataError(
            f"The 20 Newsgroups data in {folder} lacks posts of {GROUPS} (found {found}). "
            "Restore the complete bydate archive."
        )
    posts.sort(key=lambda p: p.id)
    rest, test = seeded_split(posts, TEST_FRACTION, SPLIT_SEED, labels=[p.label for p in posts])
    train, dev = seeded_split(rest, DEV_FRACTION, SPLIT_SEED, labels=[p.label for p in rest])
    return TextDataset(
        name="20news",
        task="classification",
        label_names=("baseball", "hockey"),
        splits={"train": train, "dev": dev, "test": test},
        min_df=2,
        min_length=6,
        max_length=500,
    )
