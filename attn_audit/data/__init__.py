"""Data: original files → examples → vocabulary → id arrays → bucketed batches."""

import pathlib

from attn_audit.data import (
    agnews,
    babi,
    corpus,
    imdb,
    newsgroups,
    planted,
    snli,
    sst,
    tfds_source,
)
from attn_audit.data.batching import (
    batches,
    bucket_boundaries,
    bucket_of,
    fewest_padded_boundaries,
)
from attn_audit.data.dataset import (
    DATA_ENV_VAR,
    DataError,
    Example,
    LazySplits,
    TextDataset,
    resolve_data_dir,
)
from attn_audit.data.pipeline import (
    EncodedSplit,
    Share,
    encode_split,
    filter_by_length,
    sample_indices,
    split_statistics,
    subset_split,
    vocabulary_for,
)
from attn_audit.data.text import tokenize
from attn_audit.data.vocab import EOS, PAD, SOS, UNK, Vocabulary, build_vocabulary

LOADERS = {
    "sst": sst.load,
    "agnews": agnews.load,
    "imdb": imdb.load,
    "20news": newsgroups.load,
    "snli": snli.load,
    "babi1": lambda data_dir: babi.load(data_dir, task=1),
    "babi2": lambda data_dir: babi.load(data_dir, task=2),
    "babi3": lambda data_dir: babi.load(data_dir, task=3),
}
TFDS_PREFIX = "tfds:"


def load_dataset(name: str, data_dir: str | pathlib.Path | None = None) -> TextDataset:
    """Loads a data set by name from the original files in ``data_dir``.

    Args:
      name: one of ``LOADERS`` (``sst``, ``agnews``, ``imdb``, ``20news``, ``snli``,
        ``babi1``–``babi3``), ``planted:<task>[:options]`` (``data.planted``: marker words
        planted in SST or AG News sentences) or ``tfds:<name>`` for the online TFDS path.
      data_dir: the data folder; default ``$ATTN_AUDIT_DATA``, else ``../shared/data``.
        For ``tfds:`` names it is TFDS's own data folder (default: TFDS's).
    """
    if name.startswith(planted.PREFIX):
        return planted.load(name, resolve_data_dir(data_dir))
    if name.startswith(TFDS_PREFIX):
        return tfds_source.load(
            name[len(TFDS_PREFIX) :], pathlib.Path(data_dir) if data_dir else None
        )
    if name not in LOADERS:
        raise DataError(
            f"Unknown dataset {name!r}. Choose one of {sorted(LOADERS)}, "
            f"planted:<task> with <task> in {list(planted.TASKS)}, or "
            f"tfds:<name> with <name> in {sorted(tfds_source.TFDS_DATASETS)}."
        )
    return LOADERS[name](resolve_data_dir(data_dir))


__all__ = [
    "DATA_ENV_VAR", "DataError", "EOS", "EncodedSplit", "Example", "LOADERS", "LazySplits",
    "PAD", "SOS", "Share", "TextDataset", "UNK", "Vocabulary", "batches",
    "bucket_boundaries", "bucket_of", "fewest_padded_boundaries", "corpus",
    "build_vocabulary", "encode_split", "filter_by_length", "load_dataset", "resolve_data_dir",
    "sample_indices", "split_statistics", "subset_split", "tokenize", "vocabulary_for",
]  # fmt: skip
