r"""Explains a trained run's predictions with every explainer (SPEC §7), batched.

  python -m experiments.explain --workdir=runs/sst_lstm_tanh \
      [--split=test --limit=N --explainers=attention,gradient,... --batch_size=32 \
       --seed=0 --buckets=4 --removal=mask --ig_points=50 --ig_rule=gausslegendre \
       --shapley_permutations=20 --kernel_samples=500 --lime_samples=1000 --data_dir=DIR]

Writes ``WORKDIR/explain/<split>/``: ``records.jsonl`` (per instance: tokens, prediction,
one score list per explainer over the real tokens, integrated gradients' completeness
gap, sampled Shapley values' standard errors), ``summary.json`` and ``summary.md``
(per explainer: compile and run seconds, mean Kendall τ-b with attention). An
interrupted run resumes: the same command skips the batches already done. Exact
Shapley values (``shapley_exact``, 2^n forward passes for n ≤ 16 tokens) run only
when named in ``--explainers``.
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
    run_explain,
)
from attn_audit.explainers.gradients import IG_RULES
from attn_audit.explainers.perturbation import REMOVALS
from attn_audit.report.explanations import explanations_markdown, summarize_explanations
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
_SPLIT = flags.DEFINE_enum("split", "test", ["train", "dev", "test"], "Split to explain.")
_LIMIT = flags.DEFINE_integer("limit", None, "Explain only the first N instances of the split.")
_EXPLAINERS = flags.DEFINE_list(
    "explainers",
    list(DEFAULT_EXPLAINERS),
    f"Explainers to run, from {list(EXPLAINERS)}; a transformer's default adds "
    f"{list(MAP_EXPLAINERS)}.",
)
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the sampled explainers and the random floor.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 32, "Instances per batch.")
_BUCKETS = flags.DEFINE_integer(
    "buckets",
    ExplainOptions.num_buckets,
    "Padded widths to explain at (one compiled program each), fitted to the split.",
)
_REMOVAL = flags.DEFINE_enum(
    "removal", "mask", list(REMOVALS), "How perturbation explainers remove a token."
)
_IG_POINTS = flags.DEFINE_integer("ig_points", 50, "Integrated gradients' points.")
_IG_RULE = flags.DEFINE_enum("ig_rule", "gausslegendre", list(IG_RULES), "IG's quadrature.")
_PERMUTATIONS = flags.DEFINE_integer(
    "shapley_permutations", 20, "Orders per instance for sampled Shapley values (even)."
)
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
        if _BUCKETS.value < 1:
            raise ValueError(f"--buckets must be at least 1, got {_BUCKETS.value}.")
        if _BATCH_SIZE.value < 1:
            raise ValueError(f"--batch_size must be at least 1, got {_BATCH_SIZE.value}.")
        run = load_run(_WORKDIR.value)
        if run.model_config.is_transformer and not _EXPLAINERS.present:
            explainers = checked_explainers(explainers + MAP_EXPLAINERS)  # rollout and flow too
        settings = ExplainerSettings(
            mask_token_id=run.mask_token_id,
            removal=_REMOVAL.value, ig_points=_IG_POINTS.value, ig_rule=_IG_RULE.value,
            shapley_permutations=_PERMUTATIONS.value, kernel_samples=_KERNEL_SAMPLES.value,
            lime_samples=_LIME_SAMPLES.value,
        )  # fmt: skip
        dataset = data.load_dataset(run.config["data"]["name"], _DATA_DIR.value)
        split = run.split_encoder()(dataset, _SPLIT.value, share(_LIMIT.value))
        options = ExplainOptions(
            split=_SPLIT.value, explainers=explainers, seed=_SEED.value,
            batch_size=_BATCH_SIZE.value, limit=_LIMIT.value, num_buckets=_BUCKETS.value,
            settings=settings,
        )  # fmt: skip
        out_dir = run.workdir / "explain" / _SPLIT.value
        records, timings = run_explain(
            auditable_model(run.model_config), run.params, split, None, out_dir, options
        )
    except USER_ERRORS as error:
        exit_with_error(error)
    if not writes_results():
        return
    timings["process_seconds"] = time.perf_counter() - start
    provenance = {
        "run": str(run.workdir),
        "data": {"name": dataset.name, "split": _SPLIT.value, "instances": len(records)},
        "explain": options.to_dict(),
        **machine_provenance(),
        "timings": timings,
    }  # fmt: skip
    summary = summarize_explanations(records, explainers, provenance)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, allow_nan=False))
    markdown = explanations_markdown(summary)
    (out_dir / "summary.md").write_text(markdown)
    logging.info("Wrote %s: records.jsonl, summary.json, summary.md.", out_dir)
    print(markdown)
    write_report_page(run.workdir, _SPLIT.value)


if __name__ == "__main__":
    app.run(main)
