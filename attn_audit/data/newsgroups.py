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

from attn_audit.data.dataset import READ_ERRORS, DataError, Example, TextDataset, seeded_split
from attn_audit.data.text import tokenize

GROUPS = {"rec.sport.baseball": 0, "rec.sport.hockey": 1}
TARBALL = "20news-bydate.tar.gz"
TEST_FRACTION = 0.2
DEV_FRACTION = 0.2
SPLIT_SEED = 13478
PARTS = ("train", "test")
_GROUP_FILE = re.compile(r"(?:^|/)20news-bydate-(train|test)/([^/]+)/([^/]+)$")
_POST_ID = re.compile(r"\d+")
RESTORE = "Restore the complete bydate archive (the original 20news-bydate.tar.gz)."
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
    """``(archive:member, (part, group, file name), bytes)`` for the two groups' files."""
    try:
        with tarfile.open(path, "r:gz") as archive:
            for member in archive:
                match = _GROUP_FILE.search(member.name)
                if member.isfile() and match and match.group(2) in GROUPS:
                    raw = archive.extractfile(member).read()
                    yield f"{path}:{member.name}", match.groups(), raw
    except READ_ERRORS as error:
        raise DataError(
            f"Cannot read the 20 Newsgroups archive {path} ({error}). Replace it with the "
            "original 20news-bydate.tar.gz."
        ) from None


def _posts_from_folders(folder: pathlib.Path):
    for part in PARTS:
        for group in GROUPS:
            for path in sorted((folder / f"20news-bydate-{part}" / group).glob("*")):
                if path.is_file():
                    yield str(path), (part, group, path.name), path.read_bytes()


def read_posts(folder: pathlib.Path) -> list[Example]:
    """The posts of the two groups, cleaned, in id order.

    Raises:
      DataError: naming the file when a group folder holds a file whose name is not a
        post number or a post twice, or when a part lacks one of the groups.
    """
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
    posts, seen = [], set()
    found = {(part, group): 0 for part in PARTS for group in GROUPS}
    for where, (part, group, post_id), raw in source:
        if post_id.startswith("."):
            continue  # hidden files such as macOS's ._* and .DS_Store
        if not _POST_ID.fullmatch(post_id):
            raise DataError(
                f"{where}: unexpected file in a newsgroup folder (posts are named by their "
                f"number, such as 52550). {RESTORE}"
            )
        example_id = f"{part}-{group}-{post_id}"
        if example_id in seen:
            raise DataError(f"{where}: the post {part}/{group}/{post_id} occurs twice. {RESTORE}")
        seen.add(example_id)
        found[part, group] += 1
        posts.append(
            Example(
                id=example_id,
                # Posts are latin-1, where every byte is a character: decoding cannot fail.
                tokens=tokenize(clean_post(raw.decode("latin-1"))),
                label=GROUPS[group],
            )
        )
    empty = [f"20news-bydate-{part}/{group}/" for (part, group), n in found.items() if n == 0]
    if empty:
        raise DataError(
            f"The 20 Newsgroups data in {folder} has no posts in {', '.join(empty)}. {RESTORE}"
        )
    posts.sort(key=lambda p: p.id)
    return posts


def load(data_dir: pathlib.Path) -> TextDataset:
    folder = data_dir / "20news"
    posts = read_posts(folder)
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
