r"""Does an explanation find the evidence? Plausibility against the data's ground truth (SPEC §9).

  python -m experiments.plausibility --workdir=runs/sst_lstm_tanh [--split=test --seed=0 \
      --data_dir=DIR]

Scores every explanation the run holds for the split — each explainer of
``experiments.explain`` and, when the run was audited, leave-one-out — against the
evidence of the data set (SST: the words whose own leaf is labelled ≤ 1 or ≥ 3; a planted
task, ``planted:<task>``: its markers): per
instance AUPRC, top-k F1, exact top-k (k = the number of evidence words) and the share of
the scores' mass on and beside the evidence; then means
with 95% bootstrap CIs, a ranking by AUPRC and paired differences. Writes
``WORKDIR/plausibility/<split>/``: ``records.jsonl``, ``summary.json``, ``summary.md``,
and refreshes the run's report page. Reads the records; recomputes no explanation.
"""

import sys
import time

from absl import app, flags, logging

from attn_audit import data
from attn_audit.faithfulness.plausibility_runner import run_plausibility
from attn_audit.report.plausibility_summary import plausibility_markdown
from attn_audit.training.run_folder import load_run
from experiments._setup import USER_ERRORS, machine_provenance, setup, write_report_page

_WORKDIR = flags.DEFINE_string("workdir", None, "Run folder of a trained model.", required=True)
_SPLIT = flags.DEFINE_enum("split", "test", ["train", "dev", "test"], "Split to judge.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the bootstrap.")
_DATA_DIR = flags.DEFINE_string(
    "data_dir", None, "Folder with the original data files (default: $ATTN_AUDIT_DATA)."
)


def main(argv):
    del argv
    setup()
    start = time.perf_counter()
    try:
        run = load_run(_WORKDIR.value, restore_params=False)  # no model runs here
        dataset = data.load_dataset(run.config["data"]["name"], _DATA_DIR.value)
        examples = run.split_encoder()(dataset, _SPLIT.value).examples
        provenance = {
            "run": str(run.workdir),
            "data": {"name": dataset.name, "split": _SPLIT.value},
            "evidence": dataset.evidence,
            **machine_provenance(),
        }  # fmt: skip
        scored, summary = run_plausibility(
            run.workdir, _SPLIT.value, examples, provenance, _SEED.value
        )
    except USER_ERRORS as error:
        sys.exit(f"error: {error}")
    print(plausibility_markdown(summary))
    logging.info("Wrote %s (%d instances) in %.1f s.", run.workdir / "plausibility" / _SPLIT.value,
                 len(scored), time.perf_counter() - start)  # fmt: skip
    write_report_page(run.workdir, _SPLIT.value)


if __name__ == "__main__":
    app.run(main)
