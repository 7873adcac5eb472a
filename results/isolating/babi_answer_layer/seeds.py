"""One bAbI model at the paper's budget for several seeds, with the library's recipe as it is.

Rows (seed, test accuracy, best epoch) are appended to ``seeds.csv`` beside this file, with
the commit they were measured at. Data from ``ATTN_AUDIT_DATA``.

    python results/isolating/babi_answer_layer/seeds.py DATASET ENCODER ATTENTION SEED...
"""

import pathlib
import subprocess
import sys

from attn_audit import data, training

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from ablate import append_row  # noqa: E402


def main(name: str, encoder: str, attention: str, seeds: list[int]) -> None:
    dataset = data.load_dataset(name)
    here = pathlib.Path(__file__).resolve()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=here.parent, capture_output=True, text=True
    ).stdout.strip()
    out = here.with_name("seeds.csv")
    for seed in seeds:
        config = training.TrainConfig(
            dataset=name, encoder=encoder, attention=attention, seed=seed,
            **training.paper_defaults(name),
        )  # fmt: skip
        history = training.run_training(
            config, f"runs/seeds/{name}_{encoder}_{attention}_s{seed}", dataset=dataset
        )
        row = {
            "dataset": name, "model": f"{encoder}+{attention}", "seed": seed,
            "test_accuracy": history["test"]["accuracy"], "best_epoch": history["best_epoch"],
            "commit": commit,
        }  # fmt: skip
        append_row(out, row)
        print(row, flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], [int(s) for s in sys.argv[4:]])
