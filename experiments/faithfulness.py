r"""Which explanation is faithful? ERASER, decision flips, randomisation, agreement (SPEC §8).

  python -m experiments.faithfulness --workdir=runs/sst_lstm_tanh \
      [--split=test --limit=N --explainers=attention,gradient,... \
       --metrics=eraser,flip,agreement,randomisation --randomisation_limit=50 \
       --batch_size=32 --seed=0 --buckets=4 --removal=mask --flip_removal=delete \
       --shapley_permutations=20 --kernel_samples=500 --lime_samples=1000 --data_dir=DIR]

Explains the split first (``WORKDIR/explain/<split>`` is reused when it was explained
with the same options, else the explanations go to ``faithfulness/<split>/explain``),
then writes ``WORKDIR/faithfulness/<split>/``: ``metrics/records.jsonl`` (per instance and
explainer: ERASER's curves and AOPCs with deletion and masking, the decision flip; the
agreement of every pair), ``randomisation/records.jsonl`` (Spearman ρ per re-initialised
variant), ``summary.json`` and ``summary.md`` (every mean with a 95% bootstrap CI, a
ranking of the explainers, paired differences) and ``figures/``. Resumable: the same
command skips what is done.
"""

import json
import sys
import time

from absl import app, flags, logging

from attn_audit import data
from attn_audit.audits import auditable_model
from attn_audit.explainers import (
    DEFAULT_EXPLAINERS,
    EXPLAINERS,
    MAP_EXPLAINERS,
    ExplainerSettings,
    ExplainOptions,
    checked_explainers,
)
from attn_audit.explainers.perturbation import REMOVALS
from attn_audit.faithfulness import (
    METRICS,
    FaithfulnessOptions,
    FaithfulnessSettings,
    blocks_without_parameters,
    checked_metrics,
    run_faithfulness,
)
from attn_audit.report.faithfulness import faithfulness_markdown
from attn_audit.report.faithfulness_figures import write_faithfulness_figures
from attn_audit.report.faithfulness_summary import summarize_faithfulness
from attn_audit.training.run_folder import load_run
from experiments._processes import (
    command_settings,
    exit_with_error,
    join_job,
    share,
    writes_results,
)
from experiments._setup import USER_ERRORS, machine_provenance, setup, write_report_page

_WORKDIR = flags.DEFINE_string("workdir", None, "Run folder of a trained model.", required=True)
_SPLIT = flags.DEFINE_enum("split", "test", ["train", "dev", "test"], "Split to measure.")
_LIMIT = flags.DEFINE_integer("limit", None, "Only the first N instances of the split.")
_EXPLAINERS = flags.DEFINE_list(
    "explainers",
    list(DEFAULT_EXPLAINERS),
    f"Explainers to judge, from {list(EXPLAINERS)}; a transformer's default adds "
    f"{list(MAP_EXPLAINERS)}.",
)
_METRICS = flags.DEFINE_list("metrics", list(METRICS), f"Metrics, from {list(METRICS)}.")
_RANDOMISATION_LIMIT = flags.DEFINE_integer(
    "randomisation_limit",
    FaithfulnessOptions.randomisation_limit,
    "Instances of the randomisation check (each re-runs every explainer on 7 models).",
)
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the explainers, the re-initialisation, the CIs.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 32, "Instances per batch.")
_BUCKETS = flags.DEFINE_integer(
    "buckets", ExplainOptions.num_buckets, "Padded widths (one compiled program each)."
)
_REMOVAL = flags.DEFINE_enum(
    "removal", "mask", list(REMOVALS), "How perturbation explainers remove a token."
)
_FLIP_REMOVAL = flags.DEFINE_enum(
    "flip_removal", "delete", list(REMOVALS), "How decision flips remove tokens."
)
_PERMUTATIONS = flags.DEFINE_integer("shapley_permutations", 20, "Sampled Shapley's orders.")
_KERNEL_SAMPLES = flags.DEFINE_integer("kernel_samples", 500, "KernelSHAP's coalitions.")
_LIME_SAMPLES = flags.DEFINE_integer("lime_samples", 1000, "LIME's samples per instance.")
_DATA_DIR = flags.DEFINE_string(
    "data_dir", None, "Folder with the original data files (default: $ATTN_AUDIT_DATA)."
)


def main(argv):
    del argv
    setup()
    start = time.perf_counter()
    try:
        join_job(command_settings(sys.modules[__name__]))
        explainers = checked_explainers(_EXPLAINERS.value)
        metrics = checked_metrics(_METRICS.value)
        for name, flag in (("--buckets", _BUCKETS), ("--batch_size", _BATCH_SIZE)):
            if flag.value < 1:
                raise ValueError(f"{name} must be at least 1, got {flag.value}.")
        run = load_run(_WORKDIR.value)
        if run.model_config.is_transformer and not _EXPLAINERS.present:
            explainers = checked_explainers(explainers + MAP_EXPLAINERS)
        mask_token_id = run.mask_token_id
        explain = ExplainOptions(
            split=_SPLIT.value, explainers=explainers, seed=_SEED.value,
            batch_size=_BATCH_SIZE.value, limit=_LIMIT.value, num_buckets=_BUCKETS.value,
            settings=ExplainerSettings(
                mask_token_id=mask_token_id, removal=_REMOVAL.value,
                shapley_permutations=_PERMUTATIONS.value, kernel_samples=_KERNEL_SAMPLES.value,
                lime_samples=_LIME_SAMPLES.value,
            ),
        )  # fmt: skip
        options = FaithfulnessOptions(
            explain=explain, metrics=metrics, randomisation_limit=_RANDOMISATION_LIMIT.value,
            settings=FaithfulnessSettings(mask_token_id=mask_token_id,
                                          flip_removal=_FLIP_REMOVAL.value),
        )  # fmt: skip
        dataset = data.load_dataset(run.config["data"]["name"], _DATA_DIR.value)
        split = run.split_encoder()(dataset, _SPLIT.value, share(_LIMIT.value))
        out_dir = run.workdir / "faithfulness" / _SPLIT.value
        explain_dir = reusable_explanations(run.workdir / "explain" / _SPLIT.value, explain)
        metric_records, randomised, timings = run_faithfulness(
            auditable_model(run.model_config), run.params, split, out_dir, options, explain_dir
        )
    except USER_ERRORS as error:
        exit_with_error(error)
    if not writes_results():
        return
    timings["process_seconds"] = time.perf_counter() - start
    provenance = {
        "run": str(run.workdir),
        "data": {"name": dataset.name, "split": _SPLIT.value, "instances": len(metric_records)},
        "faithfulness": options.to_dict(),
        "explanations": str(explain_dir or out_dir / "explain"),
        **machine_provenance(),
        "timings": timings,
        "blocks_without_parameters": list(blocks_without_parameters(run.params)),
    }  # fmt: skip
    summary = summarize_faithfulness(
        metric_records, randomised, explainers, options.settings, provenance, _SEED.value
    )
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, allow_nan=False))
    markdown = faithfulness_markdown(summary)
    (out_dir / "summary.md").write_text(markdown)
    write_faithfulness_figures(summary, out_dir)
    logging.info("Wrote %s: records, summary.json, summary.md, figures/.", out_dir)
    print(markdown)
    write_report_page(run.workdir, _SPLIT.value)


def reusable_explanations(folder, explain: ExplainOptions):
    """``folder`` when ``experiments.explain`` wrote it with exactly these options, else None."""
    saved = folder / "explain_config.json"
    if (folder / "records.jsonl").exists() and saved.exists():
        if json.loads(saved.read_text()) == explain.to_dict():
            return folder
    return None


if __name__ == "__main__":
    app.run(main)
