"""The data set container every loader returns, and helpers shared by loaders."""

import dataclasses
import os
import pathlib
import tarfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping, Sequence

import numpy as np

SPLITS = ("train", "dev", "test")
TASKS = ("classification", "qa")
DATA_ENV_VAR = "ATTN_AUDIT_DATA"
RESTORE = (
    "The file looks damaged or is not the original distribution; restore the original file "
    "(download it again)."
)
# What reading a damaged file, gzip stream or tar archive raises, from the standard library.
READ_ERRORS = (OSError, EOFError, zlib.error, tarfile.TarError)
_EXCERPT_CHARACTERS = 60
_UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


class DataError(ValueError):
    """A data file is missing or malformed; the message says which and what to do."""


@dataclasses.dataclass(frozen=True)
class Example:
    """One instance: a text (the attended passage) and its label.

    For QA and NLI, ``question`` holds the question (bAbI) or the hypothesis
    (SNLI); ``label`` is the index of the answer among ``label_names``.
    ``text`` is the text before JW's cleaning, where a loader keeps it (SST),
    for tokenizers of pretrained models (``attn_audit.pretrained.minilm``).
    For word-piece models ``tokens`` are the pieces, ``words`` the words of the text and
    ``word_index`` the word of each piece (SPEC §10: records are reported per word too).
    ``evidence`` marks, per token, the human-annotated evidence where the data set has it
    (SST: the token's leaf is labelled ≤ 1 or ≥ 3; a planted task: the markers; SPEC §9),
    1 or 0; None elsewhere. ``text_evidence`` is the same per word of ``text`` as
    ``text.split(" ")`` gives them (SST's leaves), for tokenizers that read the text.
    """

    id: str
    tokens: tuple[str, ...]
    label: int
    question: tuple[str, ...] | None = None
    text: str | None = None
    words: tuple[str, ...] | None = None
    word_index: tuple[int, ...] | None = None
    evidence: tuple[int, ...] | None = None
    text_evidence: tuple[int, ...] | None = None


class LazySplits(MutableMapping):
    """``{split: examples}`` whose splits are read on first use: ``readers`` maps each split
    to a function returning its examples. A command that uses one split (an audit of the
    test set) does not parse the others; a damaged file is reported when its split is read.
    """

    def __init__(self, readers: Mapping[str, Callable[[], list[Example]]]):
        self._readers = dict(readers)
        self._read: dict[str, list[Example]] = {}

    def __getitem__(self, split: str) -> list[Example]:
        if split not in self._read:
            self._read[split] = self._readers[split]()  # KeyError for an unknown split
        return self._read[split]

    def __setitem__(self, split: str, examples: list[Example]) -> None:
        self._readers[split] = lambda: examples  # the split as given, never read from a file
        self._read[split] = examples

    def __delitem__(self, split: str) -> None:
        del self._readers[split]
        self._read.pop(split, None)

    def __contains__(self, split) -> bool:
        return split in self._readers  # without reading it

    def __iter__(self) -> Iterator[str]:
        return iter(self._readers)

    def __len__(self) -> int:
        return len(self._readers)

    def __repr__(self) -> str:
        return f"LazySplits({sorted(self._readers)}, read: {sorted(self._read)})"


@dataclasses.dataclass
class TextDataset:
    """The three splits of one data set, before the length filter.

    Attributes:
      name: the registry name (``sst``, ``agnews``, ...).
      task: ``classification`` or ``qa`` (QA and NLI share the QA models).
      label_names: class names; ``label`` indexes into it.
      splits: ``{"train": [...], "dev": [...], "test": [...]}`` (a dict, or ``LazySplits``
        that read each split on first use).
      min_df: the minimum document frequency for the vocabulary (SPEC §1).
      min_length, max_length: JW's strict length bounds on real tokens
        (``min_length < n < max_length``); ``None`` means the split's own
        minimum or maximum, so the shortest and longest examples are dropped
        (JW's quirk, SPEC §1).
      length_filter: whether the filter applies at all (JW filtered the
        classification sets only, not QA/NLI).
      punctuation: the tokenizer mode used (recorded with each run).
      notes: what this copy of the data differs in from the paper's, one line
        each; every output that reports on the data carries them.
      evidence: what the examples' ``evidence`` marks, in words, where they carry it.
      markers: a planted task's marker words, which every tokenizer must know.
    """

    name: str
    task: str
    label_names: tuple[str, ...]
    splits: MutableMapping[str, list[Example]]
    min_df: int
    min_length: int | None = None
    max_length: int | None = None
    length_filter: bool = True
    punctuation: str = "split"
    notes: list[str] = dataclasses.field(default_factory=list)
    evidence: str | None = None
    markers: tuple[str, ...] | None = None

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}.")
        missing = [s for s in SPLITS if s not in self.splits]
        if missing:
            raise ValueError(f"Data set {self.name!r} lacks the splits {missing}.")

    @property
    def num_classes(self) -> int:
        return len(self.label_names)


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> pathlib.Path:
    """The data folder: ``data_dir`` if given, else ``$ATTN_AUDIT_DATA``, else
    ``../shared/data`` beside the repository root."""
    if data_dir:
        path = pathlib.Path(data_dir)
    elif os.environ.get(DATA_ENV_VAR):
        path = pathlib.Path(os.environ[DATA_ENV_VAR])
    else:
        path = pathlib.Path(__file__).resolve().parents[3] / "shared" / "data"
    if not path.is_dir():
        raise DataError(
            f"The data folder {path} does not exist. Pass --data_dir=DIR or set "
            f"{DATA_ENV_VAR}=DIR to the folder that holds sst/, ag_news/, imdb/, ..."
        )
    return path.resolve()


def require_file(path: pathlib.Path, what: str) -> pathlib.Path:
    """Returns ``path`` if it is a file, else raises a DataError naming it."""
    if not path.is_file():
        raise DataError(
            f"Missing file {path} ({what}). Put the original file there, or point "
            f"--data_dir / {DATA_ENV_VAR} at the folder that has it."
        )
    return path


def excerpt(text: str, at: int | None = None, limit: int = _EXCERPT_CHARACTERS) -> str:
    """``text`` in quotes, cut to about ``limit`` characters around the 0-based position
    ``at`` (default: the start), with ``...`` where it was cut; characters that do not
    print (tabs, control characters) are shown escaped, as ``repr`` shows them."""
    text = text.rstrip("\r\n")
    start = 0
    if len(text) > limit:
        start = 0 if at is None else min(max(at - limit // 2, 0), len(text) - limit)
    cut = text[start : start + limit]
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in cut)
    return (
        ("..." if start > 0 else "") + f"'{shown}'" + ("..." if start + limit < len(text) else "")
    )


def malformed(
    path: os.PathLike | str,
    line_number: int,
    problem: str,
    text: str | None = None,
    at: int | None = None,
    remedy: str = RESTORE,
) -> DataError:
    """A DataError for a malformed line, naming the file and the 1-based line.

    Args:
      path: the file (or ``archive:member``).
      line_number: 1-based.
      problem: what is wrong, e.g. ``"a node's label must be 0-4, got '7'"``.
      text: the offending line; shortened (around ``at``, 0-based) into the message.
      remedy: what to do; by default, restore the original file.
    """
    shown = "" if text is None else f": {excerpt(text, at)}"
    return DataError(f"{path}, line {line_number}: {problem}{shown}. {remedy}")


def decode_utf8(raw: bytes, where: os.PathLike | str, first_line: int = 1) -> str:
    """``raw`` decoded as UTF-8 (a byte-order mark at the file's start dropped).

    Args:
      raw: a whole file, or one line of it.
      where: the file (or ``archive:member``) for the message.
      first_line: the 1-based line ``raw`` starts at.

    Raises:
      DataError: naming the line and column of the first byte that is not UTF-8, with
        the line shown and a guess at the encoding the file was saved in.
    """
    if first_line == 1 and raw.startswith(_UTF8_BOM):
        raw = raw[len(_UTF8_BOM) :]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line_start = raw.rfind(b"\n", 0, error.start) + 1
        line_end = raw.find(b"\n", error.start)
        line = raw[line_start : len(raw) if line_end < 0 else line_end]
        # The bytes before the first bad one are UTF-8: count the column in characters.
        column = len(raw[line_start : error.start].decode("utf-8"))
        if raw.startswith(_UTF16_BOMS) or b"\x00" in line:
            encoding = "UTF-16"
        else:
            encoding = "WINDOWS-1252"
        raise malformed(
            where,
            first_line + raw.count(b"\n", 0, error.start),
            f"byte {raw[error.start]:#04x} at column {column + 1} is not UTF-8 (was the file "
            f"saved as {encoding}?)",
            line.decode("utf-8", errors="backslashreplace"),
            at=column,
            remedy="Restore the original UTF-8 file (download it again), or convert this one "
            f"to UTF-8 (e.g. iconv -f {encoding} -t UTF-8).",
        ) from None


def utf8_lines(binary_lines: Iterable[bytes], where: os.PathLike | str) -> Iterator[str]:
    """The lines of a file opened in binary mode, each decoded by ``decode_utf8``.

    Lines end at ``\\n`` only (and keep it), so line numbers are the ones an editor
    shows; a character such as U+2028 does not start a new line.
    """
    for line_number, line in enumerate(binary_lines, start=1):
        yield decode_utf8(line, where, first_line=line_number)


def seeded_split(
    items: Sequence, fraction: float, seed: int, labels: Sequence[int] | None = None
) -> tuple[list, list]:
    """Splits ``items`` into (rest, held_out) with ``fraction`` held out.

    A seeded permutation (numpy's PCG64); with ``labels`` the split is
    stratified (each class loses the same share). Deterministic for a seed,
    but not the same draw as scikit-learn's ``train_test_split`` that JW used.
    """
    rng = np.random.default_rng(seed)
    if labels is None:
        groups = [np.arange(len(items))]
    else:
        labels = np.asarray(labels)
        groups = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    held_out = []
    for group in groups:
        group = rng.permutation(group)
        held_out.extend(group[: int(round(fraction * len(group)))].tolist())
    held_out_set = set(held_out)
    rest = [items[i] for i in range(len(items)) if i not in held_out_set]
    return rest, [items[i] for i in sorted(held_out)]
