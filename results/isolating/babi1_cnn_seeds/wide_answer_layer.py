"""bAbI 1 CNN + tanh with JW's vocabulary-wide answer layer (an isolating run, not library).

JW's ``entity_list`` is every word of the training passages and questions, so their output
layer spans the vocabulary; ours spans the 6 places. Here the label names are the 6 places
followed by every other training word (labels keep their indices, so only the output layer
widens: 6 -> 21 classes). Data from ``ATTN_AUDIT_DATA``.

Since 52d4468 the library's bAbI loader does this itself, with JW's exact candidates (the
36 words of tasks 1–3's training files, questions without "?"), so on a later checkout this
script adds nothing: ``extra`` is empty. The CSV beside it was measured at 6c37829.

    python results/isolating/babi1_cnn_seeds/wide_answer_layer.py SEED
"""

import dataclasses
import sys

from attn_audit import data, training


def main(seed: int) -> None:
    dataset = data.load_dataset("babi1")
    words = sorted({t for e in dataset.splits["train"] for t in e.tokens + e.question})
    extra = tuple(w for w in words if w not in dataset.label_names)
    wide = dataclasses.replace(dataset, label_names=dataset.label_names + extra)
    config = training.TrainConfig(
        dataset="babi1", encoder="cnn", attention="tanh", seed=seed,
        **training.paper_defaults("babi1"),
    )  # fmt: skip
    history = training.run_training(config, f"runs/babi1_cnn_wide_s{seed}", dataset=wide)
    print(len(wide.label_names), "answers; test", history["test"])


if __name__ == "__main__":
    main(int(sys.argv[1]))
