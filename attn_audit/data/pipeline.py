"""From examples to id arrays: JW's length filter, encoding, and split statistics."""

import dataclasses

import numpy as np

from attn_audit.data.dataset import DataError, Example, TextDataset
from attn_audit.data.vocab import UNK, Vocabulary, build_vocabulary


@dataclasses.dataclass
class EncodedSplit:
    """One split as ragged id sequences, each ``[SOS] + ids + [EOS]``.

    Attributes:
      examples: the kept examples (after the length filter), in file order.
      token_ids: ``len(examples)`` int32 arrays, lengths ``len(tokens) + 2``.
      labels: int32 ``[len(examples)]``.
      question_ids: for QA/NLI, the questions encoded the same way, else None.
      index: int64 ``[len(examples)]``, each instance's number in the whole split (records
        and per-instance keys use it); default ``0 .. n − 1``. A process's ``Share`` of a
        split holds only some instances, with their numbers in the whole.
    """

    examples: list[Example]
    token_ids: list[np.ndarray]
    labels: np.ndarray
    question_ids: list[np.ndarray] | None = None
    index: np.ndarray | None = None

    def __post_init__(self):
        if self.index is None:
            self.index = np.arange(len(self.examples), dtype=np.int64)
        self.index = np.asarray(self.index, np.int64)
        if self.index.shape != (len(self.examples),):
            raise ValueError(
                f"EncodedSplit has {len(self.examples)} examples but {self.index.shape} indices."
            )

    def __len__(self) -> int:
        return len(self.examples)


@dataclasses.dataclass(frozen=True)
class Share:
    """The instances of a split that one process of a job works on.

    Of the split's first ``limit`` instances (all if None), every ``num_processes``-th
    from ``process_id``: interleaved, so every process gets a like mix of lengths (and
    so of buckets) and about the same work.
    """

    process_id: int = 0
    num_processes: int = 1
    limit: int | None = None

    def __post_init__(self):
        if not 0 <= self.process_id < self.num_processes:
            raise ValueError(
                f"Process id {self.process_id} is not in [0, {self.num_processes}): give each "
                f"of the {self.num_processes} processes its own id from 0."
            )
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"--limit must be at least 1, got {self.limit}.")

    def indices(self, count: int) -> np.ndarray:
        """The share's instance numbers among ``count`` instances, increasing."""
        stop = count if self.limit is None else min(count, self.limit)
        return np.arange(self.process_id, stop, self.num_processes, dtype=np.int64)


def filter_by_length(
    examples: list[Example], min_length: int | None, max_length: int | None
) -> list[Example]:
    """JW's filter: keeps ``min_length < len(tokens) < max_length``, both strict.

    An unset bound is the split's own minimum or maximum, so the shortest and
    the longest examples are always dropped (JW's quirk, SPEC §1).
    """
    if not examples:
        return []
    lengths = [len(e.tokens) for e in examples]
    lower = min(lengths) if min_length is None else min_length
    upper = max(lengths) if max_length is None else max_length
    return [e for e, n in zip(examples, lengths, strict=True) if lower < n < upper]


def kept_examples(dataset: TextDataset, split: str) -> list[Example]:
    """The examples of ``split`` that pass the data set's length filter, if it has one."""
    if split not in dataset.splits:
        raise ValueError(f"Unknown split {split!r}; expected one of {sorted(dataset.splits)}.")
    if not dataset.length_filter:
        return list(dataset.splits[split])
    return filter_by_length(dataset.splits[split], dataset.min_length, dataset.max_length)


def vocabulary_for(dataset: TextDataset) -> Vocabulary:
    """The vocabulary of the train split (before the length filter, as JW)."""
    documents = [e.tokens for e in dataset.splits["train"]]
    if dataset.task == "qa":
        documents += [e.question for e in dataset.splits["train"]]
    return build_vocabulary(documents, dataset.min_df)


def encode_split(
    dataset: TextDataset, split: str, vocab: Vocabulary, share: Share | None = None
) -> EncodedSplit:
    """Filters ``split`` by length and encodes it with ``vocab``: all of it, or only
    ``share``'s instances (numbered as in the whole split).

    Raises:
      DataError: the split is empty, or a planted task's marker is not in ``vocab``.
    """
    unknown = [word for word in dataset.markers or () if vocab.id(word) == UNK]
    if unknown:
        raise DataError(
            f"The marker words {unknown} of {dataset.name} are not in the vocabulary, so the "
            "model cannot see the evidence; train on this data set (its train split holds "
            "them), not on another one."
        )
    examples = kept_examples(dataset, split)
    if not examples:
        raise DataError(
            f"The {split} split of {dataset.name} is empty after the length filter "
            f"({dataset.min_length} < tokens < {dataset.max_length}); check the data files."
        )
    index = None
    if share is not None:
        index = share.indices(len(examples))
        examples = [examples[i] for i in index]
    token_ids = [np.asarray(vocab.encode(e.tokens), np.int32) for e in examples]
    question_ids = None
    if dataset.task == "qa":
        question_ids = [np.asarray(vocab.encode(e.question), np.int32) for e in examples]
    labels = np.asarray([e.label for e in examples], np.int32)
    return EncodedSplit(examples, token_ids, labels, question_ids, index)


def split_statistics(dataset: TextDataset, split: str) -> dict:
    """Size before/after the length filter, label counts and length percentiles."""
    raw = dataset.splits[split]
    kept = kept_examples(dataset, split)
    lengths = np.asarray([len(e.tokens) for e in kept]) if kept else np.zeros(1)
    counts = np.bincount([e.label for e in kept], minlength=dataset.num_classes)
    return {
        "size_before_length_filter": len(raw),
        "size": len(kept),
        "label_counts": {
            name: int(count) for name, count in zip(dataset.label_names, counts, strict=True)
        },
        "length_percentiles": {
            f"p{q}": float(np.percentile(lengths, q)) for q in (0, 5, 25, 50, 75, 95, 100)
        },
    }


def sample_indices(num_items: int, limit: int, seed: int) -> list[int]:
    """A seeded random sample of ``min(limit, num_items)`` indices of ``num_items``, sorted.

    For budgets that keep only part of a split: files are often sorted by class
    (IMDB's first 4,000 training reviews are all negative), so the first N are not a sample.
    """
    if limit < 1:
        raise ValueError(f"A sample needs at least 1 item; got limit={limit}.")
    rng = np.random.default_rng(seed)
    return sorted(rng.permutation(num_items)[:limit].tolist())


def subset_split(split: EncodedSplit, indices) -> EncodedSplit:
    """The instances at positions ``indices`` of an encoded split, in that order (their
    numbers ``index`` kept)."""
    indices = np.asarray(indices, np.int64)
    questions = split.question_ids
    return EncodedSplit(
        [split.examples[i] for i in indices],
        [split.token_ids[i] for i in indices],
        split.labels[indices],
        None if questions is None else [questions[i] for i in indices],
        split.index[indices],
    )
