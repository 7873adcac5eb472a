r"""The whole audit of a split in eager PyTorch, as one process (for end-to-end timing).

  python -m benchmarks.torch_audit_process --workdir=runs/sst_lstm_tanh --style=original

Loads the run's best weights into the PyTorch twin, batches the test split like the JAX
engine (batch 32, same buckets), runs gradient, LOO, permutation and adversarial audits
in the chosen style (``original``: JW's loops; ``batched``: the best eager PyTorch), and
prints the wall time of each stage as JSON.

The batched style runs the permutation test on up to ``FIXED_STATE_ROWS`` instances of a
bucket at once, not 32: its cost is dispatch per call, not arithmetic (SST's test set:
2.7 s in batches of 32, 1.5 s over whole buckets). The adversary stays at 32 rows a call:
over whole buckets its 500 Adam steps a call cost more, not less (75.7 s against 62.2 s,
2026-12-06, same machine), their arithmetic growing with the rows. Gradient and LOO keep
the engine's batches of 32 (LOO runs a batch's B·T variants in chunks of 64 rows).
"""

import json
import time

START = time.perf_counter()

import numpy as np  # noqa: E402
import torch  # noqa: E402
from absl import app, flags  # noqa: E402

from attn_audit import data  # noqa: E402
from attn_audit.interop import to_torch_state_dict  # noqa: E402
from attn_audit.training.run_folder import load_run  # noqa: E402
from benchmarks.torch_audits import BatchedStyle, OriginalStyle  # noqa: E402
from tests.reference.torch_model import load_torch_model  # noqa: E402

_WORKDIR = flags.DEFINE_string("workdir", "runs/sst_lstm_tanh", "Run folder.")
_STYLE = flags.DEFINE_enum("style", "original", ["original", "batched"], "Eager style.")
_LIMIT = flags.DEFINE_integer("limit", None, "First N test instances.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Data folder (default $ATTN_AUDIT_DATA).")

# Batched style: instances per call of the permutation test (a whole SST bucket).
FIXED_STATE_ROWS = 1024
FIXED_STATE_STAGES = ("permutation",)


def torch_rows(batch):
    real = batch["index"] >= 0  # eager code needs no padding rows
    return (torch.from_numpy(batch["token_ids"][real].astype(np.int64)),
            torch.from_numpy(batch["lengths"][real].astype(np.int64)))  # fmt: skip


def main(argv):
    del argv
    torch.manual_seed(0)
    run = load_run(_WORKDIR.value)
    twin = load_torch_model(to_torch_state_dict(run.params, run.model_config), run.model_config)
    style = (OriginalStyle if _STYLE.value == "original" else BatchedStyle)(twin)
    dataset = data.load_dataset(run.config["data"]["name"], _DATA_DIR.value)
    split = data.encode_split(dataset, "test", run.vocab)
    if _LIMIT.value:
        split = data.EncodedSplit(split.examples[: _LIMIT.value], split.token_ids[: _LIMIT.value],
                                  split.labels[: _LIMIT.value])  # fmt: skip
    boundaries = tuple(run.config["data"]["bucket_boundaries"])
    seconds = {"startup": time.perf_counter() - START}
    stages = ("gradient", "loo", "permutation", "adversarial")
    seconds.update(dict.fromkeys(stages, 0.0))
    wide = _STYLE.value == "batched"
    plans = {32: [s for s in stages if not (wide and s in FIXED_STATE_STAGES)]}
    if wide:
        plans[FIXED_STATE_ROWS] = list(FIXED_STATE_STAGES)
    for rows, planned in plans.items():
        for batch in data.batches(split, rows, boundaries):
            token_ids, lengths = torch_rows(batch)
            for stage in planned:
                begin = time.perf_counter()
                getattr(style, stage)(token_ids, lengths)
                seconds[stage] += time.perf_counter() - begin
    seconds["total"] = time.perf_counter() - START
    print(json.dumps({"style": _STYLE.value, "instances": len(split), "seconds": seconds}))


if __name__ == "__main__":
    app.run(main)
