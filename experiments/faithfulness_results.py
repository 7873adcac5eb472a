r"""Faithfulness across models: trains (or reuses) every model, judges every explainer.

  python -m experiments.faithfulness_results [--datasets=sst,agnews,imdb \
      --encoders=lstm,cnn,average --attentions=tanh,dot --limit=300 \
      --randomisation_limit=30 --runs_dir=runs/reproduce --results_dir=results --data_dir=DIR]

For every data set × encoder × attention: trains with ``experiments.reproduce``'s recipe
and budgets (the same runs: either command reuses the other's), then runs
``experiments.faithfulness``' metrics on a seeded sample of ``--limit`` test instances
(``randomisation_limit`` of them for the randomisation check), and writes

- ``results/faithfulness.csv``: one row per model × explainer, every mean with its 95% CI;
- ``results/RESULTS.md`` (section ``faithfulness``): per model, the explainers ranked by
  ERASER comprehensiveness, with sufficiency, flips, randomisation and agreement with
  attention, and how attention compares with each (paired bootstrap).

Both cover every model measured so far under ``--runs_dir`` (this command's and earlier
ones': each model's ``summary.json``), so data sets can be run one command at a time.
Finished runs and metrics are reused, so the command can be stopped and started again.
"""

import json
import pathlib
import sys
import time

import jax
from absl import app, flags, logging

from attn_audit import data, training
from attn_audit.audits import JWModel
from attn_audit.explainers import DEFAULT_EXPLAINERS, ExplainOptions, checked_explainers
from attn_audit.faithfulness import FaithfulnessOptions, run_faithfulness
from attn_audit.faithfulness.summary import summarize_faithfulness
from attn_audit.report import tables
from attn_audit.report.faithfulness import interval_cell
from attn_audit.training.run_folder import load_run
from experiments._budgets import SAMPLE_SEED, apply_budget
from experiments._setup import setup

CASCADE_END = "cascade/embeddings"
DATASETS = ("sst", "agnews", "20news", "imdb", "snli", "babi1", "babi2", "babi3")
# Long documents cost T² per perturbation explainer: fewer instances there.
DATASET_LIMITS = {"imdb": 40, "20news": 60}

_DATASETS = flags.DEFINE_list("datasets", ["sst", "agnews", "imdb"], "Data sets.")
_ENCODERS = flags.DEFINE_list("encoders", ["lstm", "cnn", "average"], "Encoders.")
_ATTENTIONS = flags.DEFINE_list("attentions", ["tanh", "dot"], "Attentions.")
_EXPLAINERS = flags.DEFINE_list("explainers", list(DEFAULT_EXPLAINERS), "Explainers to judge.")
_LIMIT = flags.DEFINE_integer("limit", 200, "Test instances per model (a seeded sample).")
_DATASET_LIMITS = flags.DEFINE_list(
    "dataset_limits", [], f"Per data set --limit, as name:N (defaults {DATASET_LIMITS})."
)
_RANDOMISATION_LIMIT = flags.DEFINE_integer(
    "randomisation_limit", 20, "Instances of the randomisation check per model."
)
_RUNS_DIR = flags.DEFINE_string("runs_dir", "runs/reproduce", "Where the runs go.")
_RESULTS_DIR = flags.DEFINE_string("results_dir", "results", "Where the table goes.")
_EPOCHS = flags.DEFINE_integer("epochs", None, "Override every run's epochs (tests).")
_DATA_DIR = flags.DEFINE_string(
    "data_dir", None, "Folder with the original data files (default: $ATTN_AUDIT_DATA)."
)


def model_rows(dataset, model, accuracy, summary) -> list[dict]:
    """One CSV row per explainer: means and CIs of the headline statistics."""
    rows = []
    tau = summary["agreement"].get("tau", {})
    for rank, name in enumerate(summary["ranking"], start=1):
        entry = summary["explainers"][name]
        row = {"dataset": dataset, "model": model, "test_accuracy": accuracy,
               "instances": summary["instances"], "explainer": name, "rank": rank}  # fmt: skip
        statistics = {
            "aopc_comp_delete": entry.get("aopc_comprehensiveness", {}).get("delete"),
            "aopc_suff_delete": entry.get("aopc_sufficiency", {}).get("delete"),
            "aopc_comp_mask": entry.get("aopc_comprehensiveness", {}).get("mask"),
            "aopc_suff_mask": entry.get("aopc_sufficiency", {}).get("mask"),
            "flip_fraction": entry.get("flip_fraction"),
            "top1_flip_rate": entry.get("top1_flip_rate"),
            "rho_randomised": summary["randomisation"].get(CASCADE_END, {}).get(name),
            "tau_with_attention": tau.get(f"attention|{name}"),
        }
        for statistic, found in statistics.items():
            for part in ("mean", "low", "high"):
                row[f"{statistic}_{part}"] = None if found is None else found[part]
        rows.append(row)
    return rows


def _versus_attention(summary, metric: str, higher_is_better: bool) -> str:
    better, worse = [], []
    for pair, entry in summary["comparisons"].get(metric, {}).items():
        first, second = pair.split("|")
        if "attention" not in (first, second) or not entry["significant"]:
            continue
        other = second if first == "attention" else first
        attention_higher = (entry["mean"] > 0) == (first == "attention")
        (better if attention_higher == higher_is_better else worse).append(other)
    return (f"better than {', '.join(better) or 'none'}; "
            f"worse than {', '.join(worse) or 'none'}")  # fmt: skip


def model_section(dataset, model, accuracy, summary) -> list[str]:
    lines = [
        f"### {dataset}, {model} (test accuracy {accuracy:.3f}; {summary['instances']} "
        f"instances, randomisation {summary['randomisation_instances']})",
        "",
        "| rank | explainer | AOPC comp (delete) ↑ | AOPC suff (delete) ↓ | AOPC comp (mask) ↑ | "
        "flip fraction ↓ | ρ after full randomisation | τ-b with attention |",
        "|---|---|---|---|---|---|---|---|",
    ]
    tau = summary["agreement"].get("tau", {})
    for rank, name in enumerate(summary["ranking"], start=1):
        entry = summary["explainers"][name]
        cells = [
            str(rank), f"**{name}**" if name == "attention" else name,
            interval_cell(entry.get("aopc_comprehensiveness", {}).get("delete")),
            interval_cell(entry.get("aopc_sufficiency", {}).get("delete")),
            interval_cell(entry.get("aopc_comprehensiveness", {}).get("mask")),
            interval_cell(entry.get("flip_fraction"), "{:.2f}"),
            interval_cell(summary["randomisation"].get(CASCADE_END, {}).get(name), "{:.2f}"),
            "–" if name == "attention" else interval_cell(tau.get(f"attention|{name}"), "{:.2f}"),
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Attention, paired 95% CIs: comprehensiveness "
        + _versus_attention(summary, "aopc_comprehensiveness/delete", True)
        + "; sufficiency " + _versus_attention(summary, "aopc_sufficiency/delete", False)
        + "; flips " + _versus_attention(summary, "flip_fraction", False) + ".",
        "",
    ]  # fmt: skip
    return lines


def measured_summaries(root: pathlib.Path) -> list[dict]:
    """Every model's faithfulness summary under ``root``, data sets in ``DATASETS`` order."""
    order = {name: i for i, name in enumerate(DATASETS)}
    paths = root.glob("*/*/faithfulness/test_sample*/summary.json")
    summaries = [json.loads(path.read_text()) for path in paths]
    return sorted(summaries, key=lambda s: (order.get(s["provenance"]["dataset"], len(order)),
                                            s["provenance"]["model"],
                                            s["instances"]))  # fmt: skip


def main(argv):
    del argv
    setup()
    explainers = checked_explainers(_EXPLAINERS.value)
    root, results = pathlib.Path(_RUNS_DIR.value), pathlib.Path(_RESULTS_DIR.value)
    results.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    rows, sections, notes = [], [], []
    limits = dict(DATASET_LIMITS)
    limits.update({k: int(v) for k, v in (item.split(":") for item in _DATASET_LIMITS.value)})
    for name in _DATASETS.value:
        try:
            dataset = data.load_dataset(name, _DATA_DIR.value)
        except data.DataError as error:
            logging.warning("Skipping %s: %s", name, error)
            notes.append(f"{name}: skipped ({error})")
            continue
        budget, train_limit, _ = apply_budget(dataset, epochs=_EPOCHS.value)
        notes.append(f"{name}: training budget {budget or 'the paper’s'}, "
                     f"train_limit {train_limit}")  # fmt: skip
        for encoder in _ENCODERS.value:
            for attention in _ATTENTIONS.value:
                model_start = time.perf_counter()
                config = training.TrainConfig(
                    dataset=name, encoder=encoder, attention=attention,
                    **{**training.paper_defaults(name), **budget},
                )  # fmt: skip
                workdir = root / name / f"{encoder}_{attention}"
                logging.info("faithfulness_results: %s %s+%s", name, encoder, attention)
                history = training.run_training(config, workdir, dataset=dataset)
                run = load_run(workdir)
                test = data.encode_split(dataset, "test", run.vocab)
                limit = limits.get(name, _LIMIT.value)
                test = data.subset_split(test, data.sample_indices(len(test), limit, SAMPLE_SEED))
                options = FaithfulnessOptions(
                    explain=ExplainOptions(explainers=explainers),
                    randomisation_limit=_RANDOMISATION_LIMIT.value,
                )
                out_dir = workdir / "faithfulness" / f"test_sample{limit}"
                metric_records, randomised, timings = run_faithfulness(
                    JWModel(run.model_config), run.params, test, out_dir, options
                )
                provenance = {"run": f"{name}/{encoder}_{attention}", "dataset": name,
                              "model": f"{encoder}+{attention}", "timings": timings,
                              "test_accuracy": history["test"]["accuracy"],
                              "seconds": time.perf_counter() - model_start}  # fmt: skip
                summary = summarize_faithfulness(
                    metric_records, randomised, explainers, options.settings, provenance
                )
                (out_dir / "summary.json").write_text(json.dumps(summary, indent=2,
                                                                 allow_nan=False))  # fmt: skip
                jax.clear_caches()  # this model's programs are not needed again
    for summary in measured_summaries(root):
        found = summary["provenance"]
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
        "model). The per-instance records are under each run's `faithfulness/` folder.", "",
        *sections, "Data notes:", "", *[f"- {note}" for note in notes], "",
        f"Wall time of the last command: {minutes:.1f} min.", "",
    ])  # fmt: skip
    tables.replace_section(results / "RESULTS.md", "faithfulness", section)
    print(section)


if __name__ == "__main__":
    sys.exit(app.run(main))
