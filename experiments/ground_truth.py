r"""Do the explanations find the evidence the model used? Planted tasks and SST's word labels.

  python -m experiments.ground_truth [--tasks=planted:single,planted:xor,planted:and,\
planted:mixed,sst --encoders=lstm,cnn,average,transformer --explainers=attention,gradient,...\
      --limit=200 --epochs=N --runs_dir=runs/ground_truth --results_dir=results --data_dir=DIR]

``--encoders=minilm`` fine-tunes all-MiniLM-L6-v2 whole (2e-5; its word pieces carry the
evidence of the words they come from). For every task × encoder: trains the model (or
reuses the finished run in
``RUNS_DIR/<task>/<encoder>``), explains the first ``--limit`` test instances with every
explainer (``experiments.explain``'s engine; rollout and flow too for transformers), and
scores each explanation against the data's evidence (``experiments.plausibility``'s):
the planted markers (``data.planted``) or SST's human word labels; then measures ERASER's
comprehensiveness and sufficiency of the same explanations (``experiments.faithfulness``'s,
deletion and masking) and asks whether they rank the explainers as the evidence does
(Kendall's τ with a bootstrap CI). Writes

- ``RESULTS_DIR/ground_truth/<task>_<encoder>.json``: the model's accuracy, and per
  explainer the means with 95% bootstrap CIs of exact top-k, top-k F1, AUPRC and the mass
  on and beside the evidence, where the mass goes on the instances it misses, and the
  ERASER-vs-evidence rank agreement;
- ``RESULTS_DIR/ground_truth.csv``: one row per task × encoder × explainer, of every model
  measured so far;
- the ``ground_truth`` section of ``RESULTS_DIR/RESULTS.md``.

Finished runs and explanations are reused, so the command can be stopped and started again.
"""

import json
import pathlib
import sys
import time

import jax
from absl import app, flags, logging

from attn_audit import data, training
from attn_audit.audits import auditable_model
from attn_audit.explainers import (
    MAP_EXPLAINERS,
    ExplainerSettings,
    ExplainOptions,
    checked_explainers,
    run_explain,
)
from attn_audit.faithfulness import FaithfulnessSettings
from attn_audit.faithfulness.plausibility_runner import run_plausibility
from attn_audit.faithfulness.runner import FaithfulnessOptions, run_faithfulness
from attn_audit.report.ground_truth import (
    csv_rows,
    markdown_section,
    model_entry,
    ranking_agreement,
)
from attn_audit.report.tables import replace_section, write_csv
from attn_audit.training.run_folder import load_run
from experiments._setup import USER_ERRORS, machine_provenance, setup, write_report_page

TASKS = ("planted:single", "planted:xor", "planted:and", "planted:mixed", "sst")
ENCODERS = ("lstm", "cnn", "average", "transformer")
EXPLAINERS = ("attention", "gradient", "grad_l2", "grad_input", "integrated_gradients",
              "occlusion", "shapley_sampling", "lime", "random")  # fmt: skip

_TASKS = flags.DEFINE_list("tasks", list(TASKS), "Data sets with evidence (planted:..., sst).")
_ENCODERS = flags.DEFINE_list("encoders", list(ENCODERS), "Encoders to train and explain.")
_EXPLAINERS = flags.DEFINE_list("explainers", list(EXPLAINERS), "Explainers to judge.")
_LIMIT = flags.DEFINE_integer("limit", 200, "Test instances explained per model.", lower_bound=1)
_EPOCHS = flags.DEFINE_integer("epochs", None, "Epochs (default: the paper's, 8).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the explainers and the bootstrap.")
_RUNS_DIR = flags.DEFINE_string("runs_dir", "runs/ground_truth", "Where the runs go.")
_RESULTS_DIR = flags.DEFINE_string("results_dir", "results", "Where the tables go.")
_DATA_DIR = flags.DEFINE_string(
    "data_dir", None, "Folder with the original data files (default: $ATTN_AUDIT_DATA)."
)


def folder_name(task: str) -> str:
    """A file name for a data set name: ``planted:mixed:rate=1`` → ``planted_mixed_rate1``."""
    return task.replace(":", "_").replace("=", "").replace(",", "_").replace(".", "")


def train_config(task: str, encoder: str) -> training.TrainConfig:
    settings = training.paper_defaults(task)
    if encoder in ("transformer", "minilm"):
        settings["attention"] = "self"
    finetune = encoder == "minilm"  # MiniLM fine-tuned whole (SPEC §10), at BERT's rate
    if finetune:
        settings.update(training.MINILM_TRAIN_SIZES, embeddings="random", learning_rate=2e-5)
    if _EPOCHS.value is not None:
        settings["epochs"] = _EPOCHS.value
    return training.TrainConfig(
        dataset=task, encoder=encoder, seed=0, finetune_encoder=finetune, **settings
    )


def _worked_minutes(timings: dict) -> float:
    """Wall minutes of every process that ran batches of a job (``run_batches``' log)."""
    return sum(run["wall_seconds"] for run in timings.get("runs", [])) / 60


def measure(dataset, encoder: str, explainers: tuple[str, ...], workdir: pathlib.Path) -> dict:
    """Trains (or reuses), explains and judges one model; returns its results entry."""
    start = time.perf_counter()
    history = training.run_training(train_config(dataset.name, encoder), workdir, None, dataset)
    run = load_run(workdir)
    if run.model_config.is_transformer:
        explainers = checked_explainers(explainers + MAP_EXPLAINERS)
    split = run.split_encoder()(dataset, "test")
    options = ExplainOptions(
        split="test", explainers=explainers, seed=_SEED.value, limit=_LIMIT.value,
        settings=ExplainerSettings(mask_token_id=run.mask_token_id),
    )  # fmt: skip
    explanations, explain_timings = run_explain(
        auditable_model(run.model_config), run.params, split, None,
        run.workdir / "explain" / "test", options,
    )  # fmt: skip
    provenance = {
        "run": str(run.workdir),
        "data": {"name": dataset.name, "split": "test"},
        "evidence": dataset.evidence,
        "explain": options.to_dict(),
        **machine_provenance(),
    }  # fmt: skip
    scored, summary = run_plausibility(run.workdir, "test", split.examples, provenance, _SEED.value)
    # ERASER's metrics of the same explanations, to compare their ranking with the evidence's.
    faithfulness = FaithfulnessOptions(
        explain=options, metrics=("eraser",),
        settings=FaithfulnessSettings(mask_token_id=run.mask_token_id),
    )  # fmt: skip
    metric_records, _, faithfulness_timings = run_faithfulness(
        auditable_model(run.model_config), run.params, split,
        run.workdir / "faithfulness" / "test", faithfulness,
        explain_dir=run.workdir / "explain" / "test",
    )  # fmt: skip
    agreement = ranking_agreement(scored, metric_records, summary["ranking"], seed=_SEED.value)
    write_report_page(run.workdir, "test")  # each model's page, with the evidence row
    return model_entry(
        dataset.name, encoder, history["test"], scored, summary,
        minutes={  # the work itself, over every process that did it (a resumed one too)
            "training": history.get("total_train_seconds", 0.0) / 60,
            "explain": _worked_minutes(explain_timings),
            "eraser": _worked_minutes(faithfulness_timings.get("metrics", {})),
            "this_call": (time.perf_counter() - start) / 60,
        },
        agreement=agreement,
        predicted={r["index"]: r["predicted_class"] for r in explanations},
        label_names=run.config["data"]["label_names"],
    )  # fmt: skip


def main(argv):
    del argv
    setup()
    results = pathlib.Path(_RESULTS_DIR.value)
    (results / "ground_truth").mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    try:
        explainers = checked_explainers(_EXPLAINERS.value)
        for task in _TASKS.value:
            if task != "sst" and not task.startswith(data.planted.PREFIX):
                raise ValueError(
                    f"{task} carries no evidence to judge against; the tasks are planted:<task> "
                    "(data.planted) and sst (its word labels)."
                )
        for task in _TASKS.value:
            dataset = data.load_dataset(task, _DATA_DIR.value)
            for encoder in _ENCODERS.value:
                logging.info("ground_truth: %s %s", dataset.name, encoder)
                workdir = pathlib.Path(_RUNS_DIR.value) / folder_name(dataset.name) / encoder
                entry = measure(dataset, encoder, explainers, workdir)
                entry["run"] = f"{folder_name(dataset.name)}/{encoder}"
                path = results / "ground_truth" / f"{folder_name(dataset.name)}_{encoder}.json"
                path.write_text(json.dumps(entry, indent=1, allow_nan=False) + "\n")
                # This model's programs are not needed again (memory maps, see reproduce.py).
                jax.clear_caches()
    except USER_ERRORS as error:
        sys.exit(f"error: {error}")
    entries = [json.loads(p.read_text()) for p in sorted((results / "ground_truth").glob("*.json"))]
    write_csv(results / "ground_truth.csv", csv_rows(entries))
    command = "python -m experiments.ground_truth " + " ".join(sys.argv[1:])
    section = markdown_section(entries, command.strip(), (time.perf_counter() - start) / 60)
    replace_section(results / "RESULTS.md", "ground_truth", section)
    print(section)


if __name__ == "__main__":
    app.run(main)
