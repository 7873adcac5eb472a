"""The data set container every loader returns, and helpers shared by loaders."""

import dataclasses
import os
import pathlib
from collections.abc import Sequence

import numpy as np

SPLITS = ("train", "dev", "test")
TASKS = ("classification", "qa")
DATA_ENV_VAR = "ATTN_AUDIT_DATA"


class DataError(ValueError):
    """A data file is missing or malformed; the message says which and what to do."""


@dataclasses.dataclass(frozen=True)
class Example:
    """One instance: a text (the attended passage) and its label.

    For QA and NLI, ``question`` holds the question (bAbI) or the hypothesis
    (SNLI); ``label`` is the index of the answer among ``label_names``.
    ``text`` is the text before JW's cleaning, where a loader keeps it (SST),
    for tokenizers of pretrained models (``attn_audit.pretrained.minilm``).
    """

    id: str
    tokens: tuple[str, ...]
    label: int
    question: tuple[str, ...] | None = None
    text: str | None = None


@dataclasses.dataclass
class TextDataset:
    """The three splits of one data set, before the length filter.

    Attributes:
      name: the registry name (``sst``, ``agnews``, ...).
      task: ``classification`` or ``qa`` (QA and NLI share the QA models).
      label_names: class names; ``label`` indexes into it.
      splits: ``{"train": [...], "dev": [...], "test": [...]}``.
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
    """

    name: str
    task: str
    label_names: tuple[str, ...]
    splits: dict[str, list[Example]]
    min_df: int
    min_length: int | None = None
    max_length: int | None = None
    length_filter: bool = True
    punctuation: str = "split"
    notes: list[str] = dataclasses.field(default_factory=list)

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


def malformed(path: os.PathLike | str, line_number: int, problem: str) -> DataError:
    """A DataError for a malformed line, naming the file and the 1-based line."""
    return DataError(
        f"{path}, line {line_number}: {problem}. The file looks damaged or is not the "
        "original distribution; restore the original file."
    )


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
