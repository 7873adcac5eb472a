r"""Prints a data set's statistics as JSON, to compare with the paper.

  python -m experiments.data_stats --dataset=sst [--data_dir=DIR]

Per split: size before and after JW's length filter, label counts, length
percentiles (real tokens, after the filter); plus the vocabulary size (train
split, the data set's min_df) and notes on how this copy differs from the
paper's. Expected for SST (a few seconds): test size 1,725 and 13,682 words
(13,686 ids with PAD/UNK/SOS/EOS), 1.0% below JW's 13,826.

bAbI 1 and 2 add ``order_free_ceiling``: the test accuracy no model blind to sentence order
(the Average encoder) can beat, estimated from ``--babi_orders`` shuffles of each story
(``data.babi.order_free_ceiling``; about 20 s for 3,000), and ``rules_agreement``, the share
of test answers the task's rules reproduce from the original order (1.0).
"""

import json
import sys

import numpy as np
from absl import app, flags

from attn_audit import data

_DATASET = flags.DEFINE_string("dataset", "sst", "Data set name, or tfds:<name>.")
_BABI_ORDERS = flags.DEFINE_integer(
    "babi_orders", 3000, "Shuffles per bAbI 1–2 story for the order-free ceiling (0: skip)."
)
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
    if dataset.name in ("babi1", "babi2") and _BABI_ORDERS.value:
        ceiling, agreement = data.babi.order_free_ceiling(
            dataset.splits["test"], dataset.label_names, _BABI_ORDERS.value,
            np.random.default_rng(0),
        )  # fmt: skip
        report["order_free_ceiling"] = {"orders": _BABI_ORDERS.value, "test_accuracy": ceiling,
                                        "rules_agreement": agreement}  # fmt: skip
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    app.run(main)
