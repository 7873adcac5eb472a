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

from absl import app, flags

from attn_audit import data
from attn_audit.faithfulness.plausibility import score_records
from attn_audit.report import read_records, summary_json, write_records
from attn_audit.report.fields import explanation_fields
from attn_audit.report.plausibility_summary import plausibility_markdown, summarize_plausibility
from attn_audit.training.run_folder import load_run
from experiments._setup import USER_ERRORS, machine_provenance, setup, write_report_page

_WORKDIR = flags.DEFINE_string("workdir", None, "Run folder of a trained model.", required=True)
_SPLIT = flags.DEFINE_enum("split", "test", ["train", "dev", "test"], "Split to judge.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the bootstrap.")
_DATA_DIR = flags.DEFINE_string(
    "data_dir", None, "Folder with the original data files (default: $ATTN_AUDIT_DATA)."
)


def explanation_records(workdir, split: str) -> tuple[list[dict], list[str]]:
    """The run's explanations of ``split``, one record per instance, and their names:
    every explainer's scores, and the audit's leave-one-out as ``loo`` when audited."""
    folder = workdir / "explain" / split
    if not (folder / "records.jsonl").exists():
        raise FileNotFoundError(
            f"{folder / 'records.jsonl'} does not exist: explain the split first, "
            f"python -m experiments.explain --workdir={workdir} --split={split}"
        )
    records = read_records(folder / "records.jsonl")
    names = explanation_fields(records)
    audit = workdir / "audit" / split / "records.jsonl"
    if audit.exists():
        loo = {r["index"]: r.get("loo") for r in read_records(audit)}
        if any(value is not None for value in loo.values()):
            records = [{**r, "loo": loo.get(r["index"])} for r in records]
            names.append("loo")
    return records, names


def main(argv):
    del argv
    setup()
    start = time.perf_counter()
    try:
        run = load_run(_WORKDIR.value, restore_params=False)  # no model runs here
        records, names = explanation_records(run.workdir, _SPLIT.value)
        dataset = data.load_dataset(run.config["data"]["name"], _DATA_DIR.value)
        examples = run.split_encoder()(dataset, _SPLIT.value).examples
        if all(example.evidence is None for example in examples):
            raise ValueError(
                f"{dataset.name}'s {_SPLIT.value} split carries no evidence to judge against "
                "(SST's word labels and the planted tasks, planted:<task>, have it)."
            )
        evidence = []
        for record in records:
            example = examples[record["index"]]
            if list(example.tokens) != record["tokens"]:
                raise ValueError(
                    f"Record {record['id']} (index {record['index']}) holds other tokens than "
                    f"the data set's instance {example.id}: the explanations were made from "
                    "other data; explain the split again."
                )
            evidence.append(example.evidence)
        scored = score_records(records, evidence, names)
    except USER_ERRORS as error:
        sys.exit(f"error: {error}")
    out_dir = run.workdir / "plausibility" / _SPLIT.value
    write_records(out_dir / "records.jsonl", scored)
    provenance = {
        "run": str(run.workdir),
        "data": {"name": dataset.name, "split": _SPLIT.value, "instances": len(scored)},
        "evidence": dataset.evidence,
        **machine_provenance(),
        "timings": {"process_seconds": time.perf_counter() - start},
    }  # fmt: skip
    summary = summarize_plausibility(scored, names, provenance, _SEED.value)
    (out_dir / "summary.json").write_text(summary_json(summary))
    markdown = plausibility_markdown(summary)
    (out_dir / "summary.md").write_text(markdown)
    print(markdown)
    write_report_page(run.workdir, _SPLIT.value)


if __name__ == "__main__":
    app.run(main)
