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
    """

    examples: list[Example]
    token_ids: list[np.ndarray]
    labels: np.ndarray
    question_ids: list[np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.examples)


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


def encode_split(dataset: TextDataset, split: str, vocab: Vocabulary) -> EncodedSplit:
    """Filters ``split`` by length and encodes it with ``vocab``.

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
    token_ids = [np.asarray(vocab.encode(e.tokens), np.int32) for e in examples]
    question_ids = None
    if dataset.task == "qa":
        question_ids = [np.asarray(vocab.encode(e.question), np.int32) for e in examples]
    labels = np.asarray([e.label for e in examples], np.int32)
    return EncodedSplit(examples, token_ids, labels, question_ids)


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


def subset_split(split: EncodedSplit, indices: list[int]) -> EncodedSplit:
    """The instances ``indices`` of an encoded split, in that order."""
    questions = split.question_ids
    return EncodedSplit(
        [split.examples[i] for i in indices],
        [split.token_ids[i] for i in indices],
        split.labels[np.asarray(indices, np.int64)],
        None if questions is None else [questions[i] for i in indices],
    )
