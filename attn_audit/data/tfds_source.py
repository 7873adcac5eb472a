"""The online path: data sets through tensorflow-datasets (``tfds:<name>``).

Supported names and how their splits map to ours:

| name | text | train / dev / test |
|---|---|---|
| ``glue/sst2`` | sentence | train less 10% / that 10% / validation (GLUE hides test labels) |
| ``imdb_reviews`` | text, < 400 tokens | train 80% / 20% / 20% of test (as JW) |
| ``ag_news_subset`` | description, World 0 vs Business 1 | train 85% / 15% / test |
| ``snli`` | premise, hypothesis as question | train / validation / test |

Reading uses ``tfds.data_source`` (random access, no TensorFlow needed once
the data is prepared); downloading and preparing the data the first time
needs internet and ``pip install -e '.[tfds]'``.
"""

import importlib
import pathlib

import numpy as np

from attn_audit.data.dataset import DataError, Example, TextDataset, seeded_split
from attn_audit.data.text import tokenize

# name -> (module under tensorflow_datasets.text that registers the builder, settings)
TFDS_DATASETS = {
    "glue/sst2": "glue",
    "imdb_reviews": "imdb",
    "ag_news_subset": "ag_news_subset",
    "snli": "snli",
}
SPLIT_SEED = 1378


def text_of(value) -> str:
    """A TFDS text feature (bytes, str or a 0-d array of either) as ``str``."""
    if isinstance(value, bytes | np.bytes_):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray):
        return text_of(value.item())
    return str(value)


def data_source(name: str, split: str, data_dir: pathlib.Path | None = None):
    """TFDS's random-access source of ``name``'s ``split`` (records read one at a time, so
    memory does not grow with the split); a DataError saying what to do when TFDS cannot
    provide it (not installed, unknown name or split, not downloaded and offline)."""
    try:
        import tensorflow_datasets as tfds  # an optional dependency
    except ImportError:
        raise DataError(
            "tfds:<name> needs tensorflow-datasets: pip install -e '.[tfds]'."
        ) from None
    if name in TFDS_DATASETS:
        importlib.import_module(f"tensorflow_datasets.text.{TFDS_DATASETS[name]}")
    try:
        return tfds.data_source(name, split=split, data_dir=data_dir, download=True)
    except Exception as error:  # tfds raises many kinds; say what to do in one place
        raise DataError(
            f"TFDS could not provide {name!r} split {split!r} ({type(error).__name__}: {error}). "
            "The first use downloads the data and needs internet and TensorFlow "
            "(pip install -e '.[tfds]'); offline, use the original files with --dataset=sst, "
            "agnews, imdb, ... and --data_dir."
        ) from None


def _read(name: str, split: str, data_dir: pathlib.Path | None):
    source = data_source(name, split, data_dir)
    return [source[i] for i in range(len(source))]


def load(name: str, tfds_data_dir: pathlib.Path | None = None) -> TextDataset:
    """Loads ``name`` (without the ``tfds:`` prefix) through tensorflow-datasets."""
    if name not in TFDS_DATASETS:
        raise DataError(
            f"Unknown TFDS data set {name!r}; supported: {sorted(TFDS_DATASETS)} "
            "(write --dataset=tfds:<name>)."
        )

    def examples(split, text_key, label_map=None, question_key=None):
        out = []
        for i, record in enumerate(_read(name, split, tfds_data_dir)):
            label = int(record["label"])
            if label_map is not None:
                if label not in label_map:
                    continue
                label = label_map[label]
            if label < 0:  # unlabelled (GLUE test, SNLI pairs without a gold label)
                continue
            question = tokenize(text_of(record[question_key])) if question_key else None
            tokens = tokenize(text_of(record[text_key]))
            out.append(Example(f"{split}-{i}", tokens, label, question))
        return out

    notes = [f"Loaded through tensorflow-datasets as {name!r}."]
    if name == "glue/sst2":
        train, dev = seeded_split(examples("train", "sentence"), 0.1, SPLIT_SEED)
        test = examples("validation", "sentence")
        notes.append("glue/sst2: test is GLUE's validation split (test labels are hidden).")
        return TextDataset(
            "tfds:glue/sst2", "classification", ("negative", "positive"),
            {"train": train, "dev": dev, "test": test}, min_df=1, min_length=5, notes=notes,
        )  # fmt: skip
    if name == "imdb_reviews":
        short = {
            split: [e for e in examples(split, "text") if len(e.tokens) < 400]
            for split in ("train", "test")
        }
        train, dev = seeded_split(short["train"], 0.2, SPLIT_SEED)
        _, test = seeded_split(short["test"], 0.2, SPLIT_SEED)
        return TextDataset(
            "tfds:imdb_reviews", "classification", ("negative", "positive"),
            {"train": train, "dev": dev, "test": test}, min_df=10, min_length=6, notes=notes,
        )  # fmt: skip
    if name == "ag_news_subset":
        world_business = {0: 0, 2: 1}
        train_all = examples("train", "description", world_business)
        train, dev = seeded_split(train_all, 0.15, SPLIT_SEED, labels=[e.label for e in train_all])
        test = examples("test", "description", world_business)
        return TextDataset(
            "tfds:ag_news_subset", "classification", ("world", "business"),
            {"train": train, "dev": dev, "test": test}, min_df=5, notes=notes,
        )  # fmt: skip
    splits = {
        ours: examples(theirs, "premise", question_key="hypothesis")
        for ours, theirs in (("train", "train"), ("dev", "validation"), ("test", "test"))
    }
    return TextDataset(
        "tfds:snli", "qa", ("entailment", "neutral", "contradiction"), splits, min_df=3,
        length_filter=False, notes=notes,
    )  # fmt: skip
