r"""Reproduces JW's Table 2 and figures: train (or reuse) and audit every model.

  python -m experiments.reproduce [--datasets=sst,agnews,20news,imdb,snli,babi1,babi2,babi3 \
      --encoders=lstm,cnn,average --attentions=tanh,dot --runs_dir=runs/reproduce \
      --results_dir=results --data_dir=DIR --full_budget --epochs=N --train_limit=N]

For every data set × encoder × attention: trains with the paper's recipe (or the reduced
budget of ``experiments._budgets``, for the sets too large for a 2-core CPU), audits the
test split (all four audits), and writes

- ``results/table2/<dataset>_<encoder>_<attention>.json``: each model's rows, budget, data
  notes, accuracy and minutes; a run replaces only the models it measures;
- ``results/table2.csv``: one row per data set × encoder × attention × predicted class,
  of every model under ``results/table2/``;
- ``results/RESULTS.md`` (section ``reproduce``): our mean τ_g against JW's with the
  difference, and every class's numbers beside the paper's;
- ``results/figures/<dataset>_lstm_tanh_*.png``: the BiLSTM+tanh figures of each set.

A model whose dev accuracy is no better than always giving the most frequent answer has
learnt nothing (a bAbI model can stay at the answer prior for all 100 epochs); it is trained
again with the next seed, up to ``--max_seeds`` (``training.train_until_learnt``), and the table
says so. Finished runs and audits are reused, so the command can be stopped and started again.
"""

import json
import pathlib
import shutil
import sys
import time

import jax
from absl import app, flags, logging

from attn_audit import data, report, training
from attn_audit.audits import AuditOptions, JWModel, run_audit
from attn_audit.report import figures, summarize
from attn_audit.report.table2 import COLUMNS, budget_text, markdown_section, table_rows
from attn_audit.training.run_folder import load_run
from experiments._budgets import SAMPLE_SEED, apply_budget
from experiments._setup import setup

DATASETS = ("sst", "agnews", "20news", "imdb", "snli", "babi1", "babi2", "babi3")
ENCODERS = ("lstm", "cnn", "average")
ATTENTIONS = ("tanh", "dot")
_DATASETS = flags.DEFINE_list("datasets", list(DATASETS), "Data sets.")
_ENCODERS = flags.DEFINE_list("encoders", list(ENCODERS), "Encoders.")
_ATTENTIONS = flags.DEFINE_list("attentions", list(ATTENTIONS), "Attentions.")
_RUNS_DIR = flags.DEFINE_string("runs_dir", "runs/reproduce", "Where the runs go.")
_RESULTS_DIR = flags.DEFINE_string("results_dir", "results", "Where tables and figures go.")
_FULL_BUDGET = flags.DEFINE_bool("full_budget", False, "Ignore REDUCED_BUDGETS.")
_MAX_SEEDS = flags.DEFINE_integer(
    "max_seeds",
    3,
    "Seeds to try while a model learns nothing (training.train_until_learnt).",
    lower_bound=1,
)
_EPOCHS = flags.DEFINE_integer("epochs", None, "Override every run's epochs (tests).")
_TRAIN_LIMIT = flags.DEFINE_integer(
    "train_limit", None, "Train every model on a seeded sample of N training instances."
)
_MEASURE = flags.DEFINE_bool(
    "measure", True, "Train and audit; --nomeasure only rebuilds the tables from results/table2/."
)
_DATA_DIR = flags.DEFINE_string(
    "data_dir", None, "Folder with the original data files (default: $ATTN_AUDIT_DATA)."
)


def model_file(results: pathlib.Path, dataset: str, encoder: str, attention: str):
    return results / "table2" / f"{dataset}_{encoder}_{attention}.json"


def measured_models(results: pathlib.Path) -> list[dict]:
    """Every model's entry under ``results/table2/``, in data set, encoder, attention order."""
    order = {name: i for i, name in enumerate(DATASETS + ENCODERS + ATTENTIONS)}
    models = [json.loads(path.read_text()) for path in (results / "table2").glob("*.json")]
    return sorted(models, key=lambda m: tuple(
        order.get(m[key], len(order)) for key in ("dataset", "encoder", "attention")
    ))  # fmt: skip


def _measured_at_paper_budget(results: pathlib.Path, dataset, encoder, attention) -> bool:
    """Whether the model's entry exists and was measured at the paper's budget."""
    path = model_file(results, dataset, encoder, attention)
    return path.exists() and budget_text(json.loads(path.read_text())["budget"]) == "the paper's"


def main(argv):
    del argv
    setup()
    from attn_audit.report import tables

    root, results = pathlib.Path(_RUNS_DIR.value), pathlib.Path(_RESULTS_DIR.value)
    (results / "figures").mkdir(parents=True, exist_ok=True)
    (results / "table2").mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    skipped = []
    for name in _DATASETS.value if _MEASURE.value else []:
        try:
            dataset = data.load_dataset(name, _DATA_DIR.value)
        except data.DataError as error:
            logging.warning("Skipping %s: %s", name, error)
            skipped.append(f"{name}: skipped ({error})")
            continue
        budget, train_limit, audit_limit = apply_budget(
            dataset, _FULL_BUDGET.value, _EPOCHS.value, _TRAIN_LIMIT.value
        )
        for encoder in _ENCODERS.value:
            for attention in _ATTENTIONS.value:
                config = training.TrainConfig(
                    dataset=name, encoder=encoder, attention=attention,
                    **{**training.paper_defaults(name), **budget},
                )  # fmt: skip
                workdir = root / name / f"{encoder}_{attention}"
                this_budget = {**budget, "train_limit": train_limit, "audit_limit": audit_limit}
                if _measured_at_paper_budget(results, name, encoder, attention) and (
                    budget_text(this_budget) != "the paper's"
                ):
                    logging.warning(
                        "Keeping %s: it was measured at the paper's budget, this run's is "
                        "smaller (%s). Pass --full_budget to measure it again, or delete it.",
                        model_file(results, name, encoder, attention),
                        budget_text(this_budget),
                    )
                    continue
                logging.info("reproduce: %s %s+%s", name, encoder, attention)
                history, workdir, learnt_nothing = training.train_until_learnt(
                    config, workdir, dataset, _MAX_SEEDS.value
                )
                run = load_run(workdir)
                test = data.encode_split(dataset, "test", run.vocab)
                if audit_limit:
                    test = data.subset_split(
                        test, data.sample_indices(len(test), audit_limit, SAMPLE_SEED)
                    )
                out_dir = workdir / "audit" / "test"
                options = AuditOptions()
                records, timings = run_audit(
                    JWModel(run.model_config), run.params, test, None, out_dir, options,
                )  # fmt: skip
                label_names = run.config["data"]["label_names"]
                summary = summarize(records, label_names, {"timings": timings})
                (out_dir / "summary.json").write_text(report.summary_json(summary))
                model = {
                    "dataset": name, "encoder": encoder, "attention": attention,
                    "run": f"{name}/{workdir.name}", "label_names": list(label_names),
                    "budget": this_budget,
                    "data_notes": list(dataset.notes),
                    "seed": run.config["train"]["seed"],
                    "seeds_that_learnt_nothing": learnt_nothing,
                    "test_accuracy": history["test"]["accuracy"],
                    "test_roc_auc": history["test"]["roc_auc"],
                    "training_minutes": history.get("total_train_seconds", 0.0) / 60,
                    # Every process that worked on the audit (a resumed one too).
                    "audit_minutes": sum(r["wall_seconds"] for r in timings["runs"]) / 60,
                    "rows": [{c: r[c] for c in COLUMNS} for r in table_rows(
                        name, encoder, attention, summary, history["test"])],
                }  # fmt: skip
                model_file(results, name, encoder, attention).write_text(
                    json.dumps(model, indent=1, allow_nan=False) + "\n"
                )
                if (encoder, attention) == ("lstm", "tanh"):
                    for path in figures.write_all(records, label_names, out_dir):
                        shutil.copy(path, results / "figures" / f"{name}_lstm_tanh_{path.name}")
                # This model's programs are not needed again; a long sweep that keeps every
                # compiled program runs out of memory maps ("LLVM ... Cannot allocate memory").
                jax.clear_caches()
    models = measured_models(results)
    if not models and not _MEASURE.value:
        raise app.UsageError(
            f"--nomeasure rebuilds the table from {results / 'table2'}/*.json, but there are "
            "none: run without --nomeasure first, or pass the --results_dir that holds them."
        )
    tables.write_csv(results / "table2.csv", [row for model in models for row in model["rows"]])
    wall_minutes = (time.perf_counter() - start) / 60 if _MEASURE.value else None
    section = markdown_section(models, wall_minutes)
    if skipped:
        section += "\n" + "\n".join(f"- {note}" for note in skipped) + "\n"
    tables.replace_section(results / "RESULTS.md", "reproduce", section)
    print(section)


if __name__ == "__main__":
    sys.exit(app.run(main))
