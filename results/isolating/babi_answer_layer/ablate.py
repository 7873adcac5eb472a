"""Which of 52d4468's two changes moves a bAbI model: the answer layer, or the dropped "?".

The loader now gives JW's 36 candidate answers and questions without "?". This rebuilds
the other three variants from it (labels re-indexed into the 6 places; "?" appended to
every question) and trains each at the paper's budget, everything else equal. Test
accuracy and the best epoch go to ``ablate.csv`` beside this file (one row per run,
appended). Data from ``ATTN_AUDIT_DATA``.

    python results/isolating/babi_answer_layer/ablate.py DATASET ENCODER ATTENTION SEED...
"""

import csv
import dataclasses
import pathlib
import sys

from attn_audit import data, training

VARIANTS = {  # name: (JW's 36 candidates?, question keeps "?"?)
    "36 answers, no ?": (True, False),
    "36 answers, with ?": (True, True),
    "6 answers, no ?": (False, False),
    "6 answers, with ?": (False, True),
}


def append_row(path: pathlib.Path, row: dict) -> None:
    """Appends ``row`` to the CSV at ``path``, with a header when the file is new."""
    new_file = not path.exists()
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(row))
        if new_file:
            writer.writeheader()
        writer.writerow(row)


def variant(dataset: data.TextDataset, wide: bool, question_mark: bool) -> data.TextDataset:
    names = dataset.label_names
    places = tuple(sorted({names[e.label] for e in dataset.splits["train"]}))
    splits = {}
    for split, examples in dataset.splits.items():
        splits[split] = [
            dataclasses.replace(
                example,
                label=example.label if wide else places.index(names[example.label]),
                question=example.question + ("?",) if question_mark else example.question,
            )
            for example in examples
        ]
    return dataclasses.replace(dataset, label_names=names if wide else places, splits=splits)


def main(dataset_name: str, encoder: str, attention: str, seeds: list[int]) -> None:
    dataset = data.load_dataset(dataset_name)
    out = pathlib.Path(__file__).with_name("ablate.csv")
    for seed in seeds:
        for name, (wide, question_mark) in VARIANTS.items():
            config = training.TrainConfig(
                dataset=dataset_name, encoder=encoder, attention=attention, seed=seed,
                **training.paper_defaults(dataset_name),
            )  # fmt: skip
            tag = f"{'36' if wide else '6'}{'q' if question_mark else ''}"
            workdir = f"runs/ablate/{dataset_name}_{encoder}_{attention}_{tag}_s{seed}"
            history = training.run_training(
                config, workdir, dataset=variant(dataset, wide, question_mark)
            )
            row = {
                "dataset": dataset_name, "model": f"{encoder}+{attention}", "seed": seed,
                "variant": name, "test_accuracy": history["test"]["accuracy"],
                "best_epoch": history["best_epoch"],
            }  # fmt: skip
            append_row(out, row)
            print(row, flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], [int(s) for s in sys.argv[4:]])
