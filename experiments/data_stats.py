r"""Prints a data set's statistics as JSON, to compare with the paper.

  python -m experiments.data_stats --dataset=sst [--data_dir=DIR]

Per split: size before and after JW's length filter, label counts, length
percentiles (real tokens, after the filter); plus the vocabulary size (train
split, the data set's min_df) and notes on how this copy differs from the
paper's. Expected for SST (a few seconds): test size 1,725 and 13,682 words
(13,686 ids with PAD/UNK/SOS/EOS), 1.0% below JW's 13,826.
"""

import json
import sys

from absl import app, flags

from attn_audit import data

_DATASET = flags.DEFINE_string("dataset", "sst", "Data set name, or tfds:<name>.")
_DATA_DIR = flags.DEFINE_string(
    "data_dir", None, "Folder with the original data files (default: $ATTN_AUDIT_DATA)."
)


def main(argv):
    del argv
    try:
        dataset = data.load_dataset(_DATASET.value, _DATA_DIR.value)
    except data.DataError as error:
        sys.exit(f"error: {error}")
    vocab = data.vocabulary_for(dataset)
    report = {
        "dataset": dataset.name,
        "task": dataset.task,
        "label_names": list(dataset.label_names),
        "min_df": dataset.min_df,
        "length_filter": {
            "applied": dataset.length_filter,
            "min_length": dataset.min_length,
            "max_length": dataset.max_length,
        },
        "vocabulary_words": vocab.num_words,
        "vocabulary_size_with_specials": len(vocab),
        "splits": {split: data.split_statistics(dataset, split) for split in data.dataset.SPLITS},
        "notes": dataset.notes,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    app.run(main)
