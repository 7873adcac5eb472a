"""Our training loop with JW's batches instead of length buckets: does the batch order matter?

JW's ``Question_Answering.Model.train`` sorts the training passages by length with 10%
noise, cuts batches of 50 in that order and visits them shuffled
(``get_sorting_index_with_noise_from_lengths``). Ours shuffles within length buckets. Here
``data.batches`` is replaced, for training only, by JW's order (each batch padded to the
bucket of its longest passage and question, so that few shapes compile); everything else
is ``training.run_training`` with the paper's defaults. Rows go to ``jw_batches.csv``.

    python results/isolating/babi_answer_layer/jw_batches.py DATASET ENCODER ATTENTION SEED...
"""

import pathlib
import subprocess
import sys

import numpy as np

from attn_audit import data, training
from attn_audit.data import batching

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from ablate import append_row  # noqa: E402

NOISE = 0.1
_BUCKETED = batching.batches


def jw_batches(split, batch_size, boundaries, rng=None):
    """JW's training order when ``rng`` is given; our buckets (evaluation) otherwise."""
    if rng is None:
        yield from _BUCKETED(split, batch_size, boundaries)
        return
    lengths = np.array([len(ids) for ids in split.token_ids])
    order = np.argsort(lengths + rng.uniform(-NOISE, NOISE, len(lengths)) * lengths)
    for start in rng.permutation(np.arange(0, len(order), batch_size)):
        rows = order[start : start + batch_size]
        text_width = batching.bucket_of(max(lengths[rows]), boundaries)
        questions = max(len(split.question_ids[i]) for i in rows)
        question_width = batching.bucket_of(questions, boundaries)
        yield batching.batch_of_rows(split, rows, batch_size, text_width, question_width)


def main(name: str, encoder: str, attention: str, seeds: list[int]) -> None:
    data.batches = jw_batches  # training.loop calls data.batches
    dataset = data.load_dataset(name)
    here = pathlib.Path(__file__).resolve()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=here.parent, capture_output=True, text=True
    ).stdout.strip()
    for seed in seeds:
        config = training.TrainConfig(
            dataset=name, encoder=encoder, attention=attention, seed=seed,
            **training.paper_defaults(name),
        )  # fmt: skip
        history = training.run_training(
            config, f"runs/seeds/{name}_{encoder}_{attention}_jwbatches_s{seed}", dataset=dataset
        )
        row = {
            "dataset": name, "model": f"{encoder}+{attention}", "seed": seed,
            "batches": "JW's (sorted with noise)", "test_accuracy": history["test"]["accuracy"],
            "best_epoch": history["best_epoch"], "commit": commit,
        }  # fmt: skip
        append_row(here.with_name("jw_batches.csv"), row)
        print(row, flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], [int(s) for s in sys.argv[4:]])
