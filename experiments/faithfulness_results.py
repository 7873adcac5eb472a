r"""Faithfulness across models: trains (or reuses) every model, judges every explainer.

  python -m experiments.faithfulness_results [--datasets=sst,agnews,imdb \
      --encoders=lstm,cnn,average --attentions=tanh,dot \
      --transformers=transformer_l6,minilm_finetune_cls --transformer_datasets=sst \
      --limit=200 --randomisation_limit=20 --runs_dir=runs/reproduce --results_dir=results \
      --data_dir=DIR]

For every data set × encoder × attention: trains with ``experiments.reproduce``'s recipe
and budgets (the same runs: either command reuses the other's); for every data set of
``--transformer_datasets``, trains each recipe of ``TRANSFORMER_RECIPES``. Then runs
``experiments.faithfulness``' metrics on a seeded sample of ``--limit`` test instances
(``randomisation_limit`` of them for the randomisation check), and writes

- ``results/faithfulness/<dataset>_<model>.json``: each model's summary (means, CIs,
  paired comparisons, timings), kept in the repository so that the table outlives the runs;
- ``results/faithfulness.csv``: one row per model × explainer, every mean with its 95% CI;
- ``results/RESULTS.md`` (section ``faithfulness``): per model, the explainers ranked by
  ERASER comprehensiveness, with sufficiency, flips, randomisation and agreement with
  attention, and how attention compares with each (paired bootstrap).

The table and the section cover every summary in ``results/faithfulness/`` (this command's
and earlier ones'), so models can be measured one command at a time. Finished runs and
metrics are reused, so the command can be stopped and started again.
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
    DEFAULT_EXPLAINERS,
    MAP_EXPLAINERS,
    ExplainerSettings,
    ExplainOptions,
    checked_explainers,
)
from attn_audit.faithfulness import (
    METRICS,
    FaithfulnessOptions,
    FaithfulnessSettings,
    blocks_without_parameters,
    checked_metrics,
    run_faithfulness,
)
from attn_audit.report import tables
from attn_audit.report.faithfulness import model_rows, model_section, rounded
from attn_audit.report.faithfulness_summary import summarize_faithfulness
from attn_audit.training.run_folder import load_run
from experiments._budgets import SAMPLE_SEED, apply_budget
from experiments._setup import setup

DATASETS = ("sst", "agnews", "20news", "imdb", "snli", "babi1", "babi2", "babi3")
# Long documents cost T² per perturbation explainer: fewer instances there.
DATASET_LIMITS = {"imdb": 40, "20news": 60}
# Transformers, trained as the README's and RESULTS' AZ runs were (SPEC §6).
TRANSFORMER_RECIPES = {
    # Abnar & Zuidema's depth: 6 blocks, 4 heads, width 128, CLS, from GloVe.
    "transformer_l6": {"encoder": "transformer", "attention": "self", "num_layers": 6,
                       "epochs": 5},
    # all-MiniLM-L6-v2 fine-tuned, CLS pooling.
    "minilm_finetune_cls": {"encoder": "minilm", "attention": "self",
                            **training.MINILM_TRAIN_SIZES, "embeddings": "random",
                            "learning_rate": 2e-5, "finetune_encoder": True, "epochs": 2},
}  # fmt: skip
# MiniLM's forward pass costs about 20× the BiLSTM's: fewer instances.
MODEL_LIMITS = {"minilm_finetune_cls": 60}

_DATASETS = flags.DEFINE_list("datasets", ["sst", "agnews", "imdb"], "Data sets.")
_ENCODERS = flags.DEFINE_list("encoders", ["lstm", "cnn", "average"], "Encoders.")
_ATTENTIONS = flags.DEFINE_list("attentions", ["tanh", "dot"], "Attentions.")
_EXPLAINERS = flags.DEFINE_list("explainers", list(DEFAULT_EXPLAINERS), "Explainers to judge.")
_TRANSFORMERS = flags.DEFINE_list(
    "transformers", list(TRANSFORMER_RECIPES), f"Transformers, from {list(TRANSFORMER_RECIPES)}."
)
_TRANSFORMER_DATASETS = flags.DEFINE_list(
    "transformer_datasets", ["sst"], "Data sets (of --datasets) the transformers are trained on."
)
_LIMIT = flags.DEFINE_integer("limit", 200, "Test instances per model (a seeded sample).")
_DATASET_LIMITS = flags.DEFINE_list(
    "dataset_limits", [], f"Per data set --limit, as name:N (defaults {DATASET_LIMITS})."
)
_MODEL_LIMITS = flags.DEFINE_list(
    "model_limits", [], f"Per transformer --limit, as name:N (defaults {MODEL_LIMITS})."
)
_METRICS = flags.DEFINE_list("metrics", list(METRICS), f"Metrics, from {list(METRICS)}.")
_RANDOMISATION_LIMIT = flags.DEFINE_integer(
    "randomisation_limit", 20, "Instances of the randomisation check per model."
)
_MEASURE = flags.DEFINE_bool(
    "measure",
    True,
    "Train and measure; --nomeasure only rebuilds the table and the section "
    "from the summaries in results/faithfulness/.",
)
_RUNS_DIR = flags.DEFINE_string("runs_dir", "runs/reproduce", "Where the runs go.")
_RESULTS_DIR = flags.DEFINE_string("results_dir", "results", "Where the table goes.")
_EPOCHS = flags.DEFINE_integer("epochs", None, "Override every run's epochs (tests).")
_DATA_DIR = flags.DEFINE_string(
    "data_dir", None, "Folder with the original data files (default: $ATTN_AUDIT_DATA)."
)


def stage_minutes(timings: dict) -> dict[str, float]:
    """Minutes of each stage, summed over every process that worked on it (resumes too)."""
    return {stage: sum(run["wall_seconds"] for run in found.get("runs", [])) / 60
            for stage, found in timings.items() if isinstance(found, dict)}  # fmt: skip


def summary_file(results: pathlib.Path, dataset: str, model: str) -> pathlib.Path:
    return results / "faithfulness" / f"{dataset}_{model.replace('+', '_')}.json"


def measured_summaries(results: pathlib.Path) -> list[dict]:
    """Every model's summary in ``results/faithfulness/``, data sets in ``DATASETS`` order."""
    order = {name: i for i, name in enumerate(DATASETS)}
    summaries = [json.loads(path.read_text())
                 for path in (results / "faithfulness").glob("*.json")]  # fmt: skip
    return sorted(summaries, key=lambda s: (order.get(s["provenance"]["dataset"], len(order)),
                                            s["provenance"]["model"]))  # fmt: skip


def planned_models(datasets: list[str]) -> list[tuple[str, str, dict]]:
    """``(dataset, model name, TrainConfig fields)`` of every model the flags ask for."""
    models = []
    for dataset in datasets:
        for encoder in _ENCODERS.value:
            for attention in _ATTENTIONS.value:
                fields = {"encoder": encoder, "attention": attention}
                models.append((dataset, f"{encoder}+{attention}", fields))
        if dataset in _TRANSFORMER_DATASETS.value:
            models += [(dataset, name, TRANSFORMER_RECIPES[name]) for name in _TRANSFORMERS.value]
    return models


def measure(dataset, model: str, fields: dict, budget: dict, limit: int, runs: pathlib.Path,
            explainers: list[str]) -> dict:  # fmt: skip
    """Trains (or reuses) one model and returns its faithfulness summary."""
    model_start = time.perf_counter()
    train_fields = {**training.paper_defaults(dataset.name), **fields, **budget}
    config = training.TrainConfig(dataset=dataset.name, **train_fields)
    workdir = runs / dataset.name / model.replace("+", "_")
    logging.info("faithfulness_results: %s %s", dataset.name, model)
    history = training.run_training(config, workdir, dataset=dataset)
    run = load_run(workdir)
    if run.model_config.is_transformer and not _EXPLAINERS.present:
        explainers = checked_explainers(explainers + MAP_EXPLAINERS)
    mask_token_id = run.mask_token_id
    test = run.split_encoder()(dataset, "test")
    test = data.subset_split(test, data.sample_indices(len(test), limit, SAMPLE_SEED))
    options = FaithfulnessOptions(
        explain=ExplainOptions(explainers=explainers,
                               settings=ExplainerSettings(mask_token_id=mask_token_id)),
        metrics=checked_metrics(_METRICS.value),
        randomisation_limit=_RANDOMISATION_LIMIT.value,
        settings=FaithfulnessSettings(mask_token_id=mask_token_id),
    )  # fmt: skip
    out_dir = workdir / "faithfulness" / f"test_sample{limit}"
    metric_records, randomised, timings = run_faithfulness(
        auditable_model(run.model_config), run.params, test, out_dir, options
    )
    provenance = {"run": f"{dataset.name}/{workdir.name}", "dataset": dataset.name,
                  "model": model, "timings": timings, "test_accuracy": history["test"]["accuracy"],
                  "training_minutes": history.get("total_train_seconds", 0.0) / 60,
                  "stage_minutes": stage_minutes(timings),
                  "blocks_without_parameters": list(blocks_without_parameters(run.params)),
                  "seconds": time.perf_counter() - model_start}  # fmt: skip
    summary = summarize_faithfulness(
        metric_records, randomised, explainers, options.settings, provenance
    )
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, allow_nan=False))
    jax.clear_caches()  # this model's programs are not needed again
    return summary


def main(argv):
    del argv
    setup()
    try:
        explainers = checked_explainers(_EXPLAINERS.value)
        checked_metrics(_METRICS.value)
        unknown = sorted(set(_TRANSFORMERS.value) - set(TRANSFORMER_RECIPES))
        if unknown:
            raise ValueError(
                f"Unknown transformers {unknown}; choose from {list(TRANSFORMER_RECIPES)}."
            )
    except ValueError as error:
        sys.exit(f"error: {error}")
    runs, results = pathlib.Path(_RUNS_DIR.value), pathlib.Path(_RESULTS_DIR.value)
    (results / "faithfulness").mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    limits = {**DATASET_LIMITS, **MODEL_LIMITS}
    for item in _DATASET_LIMITS.value + _MODEL_LIMITS.value:
        name, _, count = item.partition(":")
        limits[name] = int(count)
    for name in _DATASETS.value if _MEASURE.value else []:
        try:
            dataset = data.load_dataset(name, _DATA_DIR.value)
        except data.DataError as error:
            logging.warning("Skipping %s: %s", name, error)
            continue
        budget, train_limit, _ = apply_budget(dataset, epochs=_EPOCHS.value)
        note = (f"training budget {budget or 'the paper’s'}"
                + (f", {train_limit} training instances" if train_limit else ""))  # fmt: skip
        for _, model, fields in planned_models([name]):
            limit = limits.get(model, limits.get(name, _LIMIT.value))
            summary = measure(dataset, model, fields, budget, limit, runs, explainers)
            summary["provenance"]["budget"] = note
            path = summary_file(results, name, model)
            path.write_text(json.dumps(rounded(summary), indent=1, allow_nan=False) + "\n")
    rows, sections = [], []
    for summary in measured_summaries(results):
        found = summary["provenance"]
        path = summary_file(results, found["dataset"], found["model"])
        path.write_text(json.dumps(rounded(summary), indent=1, allow_nan=False) + "\n")
        accuracy = found["test_accuracy"]
        rows += model_rows(found["dataset"], found["model"], accuracy, summary)
        sections += model_section(found["dataset"], found["model"], accuracy, summary)
    tables.write_csv(results / "faithfulness.csv", rows)
    minutes = (time.perf_counter() - start) / 60
    section = "\n".join([
        "## Which explanation is faithful? (SPEC §8)", "",
        "Command: `python -m experiments.faithfulness_results`. Per model, a seeded sample of "
        "test instances; means with 95% percentile-bootstrap CIs over instances; "
        "ρ after full randomisation: Spearman ρ of absolute scores between the trained model "
        "and the model with every block re-initialised (near 1: the explainer ignores the "
        "model). Each model's summary is in `results/faithfulness/`; the per-instance records "
        "are under each run's `faithfulness/` folder. Minutes are wall time on the machine "
        "that measured the model, summed over resumed runs.", "",
        *sections,
        f"Wall time of the last command: {minutes:.1f} min.", "",
    ])  # fmt: skip
    tables.replace_section(results / "RESULTS.md", "faithfulness", section)
    print(section)


if __name__ == "__main__":
    sys.exit(app.run(main))
