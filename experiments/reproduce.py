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
from attn_audit.report import figures, paper_row, summarize
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

COLUMNS = (
    "dataset", "encoder", "attention", "class", "n", "test_accuracy", "test_roc_auc",
    "tau_g_mean", "tau_g_std", "tau_g_sig_frac", "tau_loo_mean", "tau_loo_std",
    "tau_loo_sig_frac", "tau_g_loo_mean", "perm_median_tvd_median", "adv_share_jsd_ge_0_6",
)  # fmt: skip


def table_rows(dataset, encoder, attention, summary, test_metrics) -> list[dict]:
    rows = []
    for name, cell in summary["table2"].items():
        if name == "all" or not cell["n"]:
            continue

        def tau(measure, key, cell=cell):
            return cell.get(measure, {}).get(key)

        permutation = summary.get("permutation", {}).get("by_class", {}).get(name, {})
        adversarial = summary.get("adversarial", {}).get("by_class", {}).get(name, {})
        rows.append({
            "dataset": dataset, "encoder": encoder, "attention": attention, "class": name,
            "n": cell["n"], "test_accuracy": test_metrics["accuracy"],
            "test_roc_auc": test_metrics["roc_auc"],
            "tau_g_mean": tau("tau_gradient", "mean"), "tau_g_std": tau("tau_gradient", "std"),
            "tau_g_sig_frac": tau("tau_gradient", "sig_frac"),
            "tau_loo_mean": tau("tau_loo", "mean"), "tau_loo_std": tau("tau_loo", "std"),
            "tau_loo_sig_frac": tau("tau_loo", "sig_frac"),
            "tau_g_loo_mean": tau("tau_gradient_loo", "mean"),
            "perm_median_tvd_median": permutation.get("median"),
            "adv_share_jsd_ge_0_6": adversarial.get("share_jsd_ge_0_6"),
            "label_names": list(summary["label_names"]),
        })  # fmt: skip
    return rows


def _cell(mean, std=None, frac=None):
    if mean is None:
        return "—"
    text = f"{mean:.2f}" + (f" ± {std:.2f}" if std is not None else "")
    return text + (f" ({frac:.2f})" if frac is not None else "")


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


def budget_text(budget: dict) -> str:
    kept = {key: value for key, value in budget.items() if value is not None}
    return ", ".join(f"{key} {value}" for key, value in kept.items()) or "the paper's"


def _minutes(value) -> str:
    return "—" if value is None else f"{value:.1f}"


def _difference(value: float) -> str:
    shown = f"{value:+.3f}"
    return f"**{shown}**" if abs(value) > 0.08 else shown


def _paper_code_spread() -> float:
    """The largest gap between a published mean τ_g and that of JW's committed run."""
    return max(
        abs(value - report.JW_CODE_MEAN_TAU_G[dataset][encoder])
        for dataset, encoders in report.JW_MEAN_TAU_G.items()
        for encoder, value in encoders.items()
    )


def comparison_lines(models) -> list[str]:
    """Ours against JW's mean τ_g (tanh attention), one row per model JW published."""
    lines = [
        "### Ours against JW, mean τ_g over classes (tanh attention)", "",
        "Ours: the mean over predicted classes of the per-class means (bAbI: over all "
        "instances, as JW's cell is); **bold**: more than 0.08 apart. JW: the paper's cells; "
        "JW's code: the same statistic from the runs committed with JW's code "
        "(`report.JW_CODE_TAU_G` says where), which differ from the paper's by up to "
        f"{_paper_code_spread():.2f}. "
        "acc: our test accuracy, and in brackets that of the run committed with JW's code. "
        "Minutes: training, and the audit process that measured the model.", "",
        "| data | model | budget | acc (JW's code) | τ_g ours | τ_g JW | ours − JW | "
        "τ_g JW's code | ours − code | train min | audit min |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for model in models:
        published = report.JW_MEAN_TAU_G.get(model["dataset"], {}).get(model["encoder"])
        ours = report.mean_tau_g(model["dataset"], model["rows"])
        if model["attention"] != "tanh" or published is None or ours is None:
            continue
        from_code = report.JW_CODE_MEAN_TAU_G.get(model["dataset"], {}).get(model["encoder"])
        code_cells = ("—", "—") if from_code is None else (
            f"{from_code:.3f}", _difference(ours - from_code))  # fmt: skip
        code = report.JW_CODE_ACCURACY.get(model["dataset"], {}).get(model["encoder"])
        accuracy = f"{model['test_accuracy']:.3f}" + (f" ({code:.3f})" if code else "")
        lines.append(
            f"| {model['dataset']} | {model['encoder']}+tanh | {budget_text(model['budget'])} | "
            f"{accuracy} | {ours:.3f} | {published:.3f} | {_difference(ours - published)} | "
            f"{code_cells[0]} | {code_cells[1]} | "
            f"{_minutes(model.get('training_minutes'))} | {_minutes(model.get('audit_minutes'))} |"
        )
    return lines + [""]


def markdown_section(models, wall_minutes) -> str:
    lines = [
        "## JW's Table 2, reproduced", "",
        "Command: `python -m experiments.reproduce`. Each model's entry is in "
        "`results/table2/`; a run of some data sets or models replaces only theirs. Cells "
        "are mean ± std (Sig. Frac.) of "
        "Kendall τ-b per predicted class; JW's published cells in the rows marked *JW*. "
        "perm = median over instances of the permutation median TVD; adv ≥ 0.6 = share of "
        "instances whose adversarial max JSD is at least 0.6.", "",
        *comparison_lines(models),
        "### Per class", "",
        "| data | model | class | n | acc | AUC | τ_g | τ_loo | τ_g,loo | perm | adv ≥ 0.6 |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for model in models:
        published = None
        if model["attention"] == "tanh":
            published = paper_row(model["dataset"], model["encoder"], model["label_names"])
        for row in model["rows"]:
            lines.append(
                f"| {row['dataset']} | {row['encoder']}+{row['attention']} | {row['class']} | "
                f"{row['n']} | {row['test_accuracy']:.3f} | {row['test_roc_auc']:.3f} | "
                f"{_cell(row['tau_g_mean'], row['tau_g_std'], row['tau_g_sig_frac'])} | "
                f"{_cell(row['tau_loo_mean'], row['tau_loo_std'], row['tau_loo_sig_frac'])} | "
                f"{_cell(row['tau_g_loo_mean'])} | {_cell(row['perm_median_tvd_median'])} | "
                f"{_cell(row['adv_share_jsd_ge_0_6'])} |"
            )
            if published:
                lines.append(
                    f"| | *JW* | | | | | {published.get('tau_gradient', {}).get(row['class'], '—')}"
                    f" | {published.get('tau_loo', {}).get(row['class'], '—')} | | | |"
                )
    lines += ["", "Budgets and data notes:", ""]
    budgets, notes = {}, []
    for model in models:
        name = f"{model['encoder']}+{model['attention']}"
        budgets.setdefault(model["dataset"], {}).setdefault(budget_text(model["budget"]), [])
        budgets[model["dataset"]][budget_text(model["budget"])].append(name)
        notes += [f"{model['dataset']}: {n}" for n in model["data_notes"]]
        if model.get("seeds_that_learnt_nothing"):
            seeds = ", ".join(str(s) for s in model["seeds_that_learnt_nothing"])
            notes.append(
                f"{model['dataset']} {name}: seed(s) {seeds} learnt nothing (dev accuracy not "
                f"above always giving the most frequent answer); seed {model['seed']} is kept."
            )
    for dataset, by_budget in budgets.items():
        parts = [f"{budget} ({', '.join(names)})" for budget, names in by_budget.items()]
        lines.append(f"- {dataset}: {'; '.join(parts)}")
    lines += [f"- {note}" for note in dict.fromkeys(notes)]
    if wall_minutes is not None:  # None: rebuilt without measuring (--nomeasure)
        lines += ["", f"Wall time of the last command: {wall_minutes:.1f} min."]
    lines.append("")
    return "\n".join(lines)


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
