"""User corpora larger than memory: JSON lines, CSV, a folder of text files or a TFDS split,
read in chunks.

A corpus is named ``jsonl:PATH``, ``csv:PATH`` (a header row names the columns),
``dir:PATH`` (every ``*.txt`` file below ``PATH``, in sorted order, one text each) or
``tfds:NAME:SPLIT`` (any tensorflow-datasets data set with a text feature, and a split in
TFDS's syntax, slices included: ``tfds:imdb_reviews:test[:10000]``).
JSON lines and CSV are read by pyarrow's dataset scanner, which reads ahead a few blocks of
the file at a time, so memory is bounded by the chunk, not by the corpus; a folder is
listed one level at a time (``os.scandir``) and read file by file; a TFDS split through
``tfds.data_source``, one record at a time.

Texts are numbered in file order from 0 (the records' ``index``). A text is tokenised as
the trained run's data was (``punctuation``); its label is read from ``label_field`` (a
class index or name) or, without one, is −1: the audits use the predicted class anyway.
"""

import dataclasses
import os
import pathlib
import re
from collections.abc import Iterator

import numpy as np

from attn_audit.data import tfds_source
from attn_audit.data.dataset import DataError, Example
from attn_audit.data.text import tokenize

CORPUS_KINDS = ("jsonl", "csv", "dir", "tfds")
NO_LABEL = -1


# How the data sets' loaders tokenise (data.text.tokenize); a corpus is read the same way as
# the data its model was trained on.
_PUNCTUATION = {"sst": "strip"}


def training_punctuation(dataset_name: str) -> str:
    """The tokenizer mode of the data set a run was trained on (``config["data"]["name"]``;
    a planted task's, its source's)."""
    from attn_audit.data import planted

    if dataset_name.startswith(planted.PREFIX):
        dataset_name = planted.parse_name(dataset_name).source
    return _PUNCTUATION.get(dataset_name, "split")


def is_corpus(name: str) -> bool:
    """Whether ``name`` names a user corpus (``kind:PATH``, ``tfds:NAME:SPLIT``) rather than a
    data set (``tfds:NAME`` is the training data set of that name)."""
    kind, _, rest = name.partition(":")
    return kind in CORPUS_KINDS and bool(rest) and (kind != "tfds" or ":" in rest)


@dataclasses.dataclass(frozen=True)
class Corpus:
    """A user corpus: ``kind`` (``CORPUS_KINDS``), ``path`` (a TFDS corpus: the data set's
    name), the field of its texts and, optionally, of its labels (a folder's texts have
    none); ``split``: a TFDS corpus's split."""

    kind: str
    path: pathlib.Path
    text_field: str = "text"
    label_field: str | None = None
    split: str | None = None

    @classmethod
    def parse(cls, name: str, text_field: str = "text", label_field: str | None = None):
        """``Corpus`` of ``kind:PATH``; a DataError, saying what is wrong, otherwise."""
        kind, _, path = name.partition(":")
        if kind not in CORPUS_KINDS or not path:
            raise DataError(
                f"A corpus is kind:PATH with kind in {CORPUS_KINDS} (tfds:NAME:SPLIT); got "
                f"{name!r}."
            )
        if kind == "tfds":
            tfds_name, _, split = path.partition(":")
            if not tfds_name or not split:
                raise DataError(
                    f"A TFDS corpus names its split: tfds:NAME:SPLIT (tfds:imdb_reviews:test); "
                    f"got {name!r}."
                )
            return cls(kind, pathlib.PurePosixPath(tfds_name), text_field, label_field, split)
        path = pathlib.Path(path).expanduser()
        if not path.exists():
            raise DataError(f"The corpus {path} does not exist; check the path after {kind}:.")
        if kind == "dir" and not path.is_dir():
            raise DataError(f"{path} is a file; dir: takes a folder of .txt files.")
        if kind != "dir" and path.is_dir():
            raise DataError(f"{path} is a folder; {kind}: takes one file (dir: takes a folder).")
        if kind == "dir" and label_field is not None:
            raise DataError("A folder's texts have no label field; drop --label_field.")
        return cls(kind, path, text_field, label_field)

    @property
    def name(self) -> str:
        """A folder name for this corpus's outputs: ``<kind>-<file or folder name>``
        (``tfds-<name>-<split>``, characters other than letters, digits, ``-_.`` as ``_``)."""
        if self.kind == "tfds":
            return "tfds-" + re.sub(r"[^\w.-]", "_", f"{self.path}-{self.split}")
        return f"{self.kind}-{self.path.stem if self.kind != 'dir' else self.path.name}"

    @property
    def source(self) -> str:
        """The corpus as messages name it: its file or folder, or TFDS's name and split."""
        if self.kind == "tfds":
            return f"TFDS {str(self.path)!r} split {self.split!r}"
        return str(self.path)


def read_chunks(
    corpus: Corpus, chunk_size: int, label_names, punctuation: str = "split",
    limit: int | None = None,
) -> Iterator[tuple[int, list[Example]]]:  # fmt: skip
    """``(number of the chunk's first text, its examples)`` for each ``chunk_size`` texts,
    in corpus order (the first ``limit`` texts when given).

    Raises:
      DataError: a missing text field, an empty text, or a label that is not a class of
        the run; the message names the text's number (its line, after a CSV header).
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}.")
    chunk, first = [], 0
    for number, (text, label) in enumerate(_texts(corpus)):
        if limit is not None and number >= limit:
            break
        chunk.append(_example(corpus, number, text, label, label_names, punctuation))
        if len(chunk) == chunk_size:
            yield first, chunk
            chunk, first = [], number + 1
    if chunk:
        yield first, chunk


def _texts(corpus: Corpus) -> Iterator[tuple[str | None, object]]:
    if corpus.kind == "tfds":
        yield from _tfds_texts(corpus)
        return
    if corpus.kind == "dir":
        for path in _text_files(corpus.path):
            yield path.read_text(encoding="utf-8", errors="replace"), None
        return
    import pyarrow.dataset  # only here: a data set that is not a corpus never needs it

    try:
        source = pyarrow.dataset.dataset(corpus.path, format="json" if corpus.kind == "jsonl"
                                         else "csv")  # fmt: skip
        fields = [corpus.text_field] + ([corpus.label_field] if corpus.label_field else [])
        missing = [field for field in fields if field not in source.schema.names]
        if missing:
            raise DataError(
                f"The corpus {corpus.path} has no field {missing[0]!r} (its fields: "
                f"{source.schema.names}); choose --text_field / --label_field among them."
            )
        for batch in source.to_batches(columns=fields, batch_size=4096):
            columns = batch.to_pydict()
            labels = columns.get(corpus.label_field, [None] * batch.num_rows)
            yield from zip(columns[corpus.text_field], labels, strict=True)
    except pyarrow.ArrowException as error:  # a malformed file
        reason = str(error).split(": ")[-1] if ": " in str(error) else str(error)
        unit = "line must be one JSON object" if corpus.kind == "jsonl" else "row needs the columns"
        raise DataError(
            f"The corpus {corpus.path} cannot be read as {corpus.kind} ({reason.strip()}); each "
            f"{unit}, with one type per field (labels all names or all indices)."
        ) from None


def _tfds_texts(corpus: Corpus) -> Iterator[tuple[str | None, object]]:
    source = tfds_source.data_source(str(corpus.path), corpus.split)
    fields = [corpus.text_field] + ([corpus.label_field] if corpus.label_field else [])
    for number in range(len(source)):
        record = source[number]
        missing = [field for field in fields if field not in record]
        if missing:
            raise DataError(
                f"The corpus {corpus.source} has no feature {missing[0]!r} (its features: "
                f"{sorted(record)}); choose --text_field / --label_field among them."
            )
        label = record[corpus.label_field] if corpus.label_field else None
        yield tfds_source.text_of(record[corpus.text_field]), label


def _text_files(folder: pathlib.Path) -> Iterator[pathlib.Path]:
    """Every ``*.txt`` file below ``folder``, in sorted order, one folder in memory at a time."""
    with os.scandir(folder) as entries:
        ordered = sorted(entries, key=lambda entry: entry.name)
    for entry in ordered:
        if entry.is_dir():
            yield from _text_files(pathlib.Path(entry.path))
        elif entry.name.endswith(".txt"):
            yield pathlib.Path(entry.path)


def _example(corpus, number, text, label, label_names, punctuation) -> Example:
    where = f"Text {number} of {corpus.source}"
    if not isinstance(text, str):
        raise DataError(f"{where} has no {corpus.text_field!r} (or not a string): {text!r}.")
    tokens = tokenize(text, punctuation)
    if not tokens:
        raise DataError(f"{where} is empty (no token): remove it from the corpus.")
    return Example(
        id=f"{corpus.name}:{number}", tokens=tokens, text=text,
        label=_label(where, corpus, label, label_names),
    )  # fmt: skip


def _label(where: str, corpus: Corpus, label, label_names) -> int:
    if corpus.label_field is None:
        return NO_LABEL
    if isinstance(label, np.ndarray | np.generic):  # TFDS: a 0-d array of an int or bytes
        label = label.item()
    if isinstance(label, bytes):
        label = label.decode("utf-8")
    if isinstance(label, str) and label in label_names:
        return list(label_names).index(label)
    if isinstance(label, int | str) and str(label).lstrip("-").isdigit():
        if 0 <= int(label) < len(label_names):
            return int(label)
    raise DataError(
        f"{where} has the label {label!r} in {corpus.label_field!r}, not one of the run's "
        f"classes {list(label_names)} (a name, or an index from 0)."
    )
