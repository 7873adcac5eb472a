r"""Wiegreffe & Pinter's tests of attention (SPEC §4) on one data set.

  python -m experiments.wp_tests --dataset=sst \
      [--tests=uniform,seeds,diagnostic,adversarial --seeds=8 --lambdas=0.001,0.01,0.1,1 \
       --runs_dir=runs/wp --results_dir=results --epochs=N --wp_quirk --data_dir=DIR]

Trains (or reuses, from ``--runs_dir/<dataset>/``) the base BiLSTM+tanh model and:

- uniform: the same model with attention frozen at 1/n (test F1 and AUC beside the base);
- seeds: the base model with 8 other seeds; per test instance the median over seeds of
  JSD(α_base, α_seed) and of TVD(ŷ_base, ŷ_seed), by the base's max attention;
- diagnostic: an Average encoder with attention (a) trained, (b) uniform, (c) frozen to
  the base BiLSTM's attention (test F1);
- adversarial: fresh BiLSTMs trained on TVD(ŷ_adv, ŷ_base) − λ·KL(α_adv ‖ α_base) for
  each λ (true TVD and means; ``--wp_quirk`` for WP's half TVD and sums).

Writes ``results/wp_<dataset>.csv``, ``results/figures/wp_<dataset>_{seeds,adversarial}.png``
and the data set's section of ``results/RESULTS.md``. Every run uses the same training
settings, so all seeds share one compiled training step. Expected on a 2-core CPU: about
15 minutes for SST, 6 for AG News.
"""

import dataclasses
import pathlib
import sys
import time

import numpy as np
from absl import app, flags, logging

from attn_audit import data, training
from attn_audit.evaluations import wp
from attn_audit.report import tables, wp_figures
from attn_audit.training.checkpoint import CheckpointError
from attn_audit.training.run_folder import load_run
from experiments._setup import setup

TESTS = ("uniform", "seeds", "diagnostic", "adversarial")
_DATASET = flags.DEFINE_string("dataset", "sst", "Data set name.")
_TESTS = flags.DEFINE_list("tests", list(TESTS), f"Tests to run, from {list(TESTS)}.")
_SEEDS = flags.DEFINE_integer("seeds", 8, "Other seeds for the seed-variance test.")
_LAMBDAS = flags.DEFINE_list("lambdas", ["0.001", "0.01", "0.1", "1"], "λ of the adversaries.")
_RUNS_DIR = flags.DEFINE_string("runs_dir", "runs/wp", "Where the trained runs go.")
_RESULTS_DIR = flags.DEFINE_string("results_dir", "results", "Where tables and figures go.")
_EPOCHS = flags.DEFINE_integer("epochs", None, "Epochs of every run (default: the paper's).")
_WP_QUIRK = flags.DEFINE_bool("wp_quirk", False, "WP's half TVD and sums in the adversary loss.")
_DATA_DIR = flags.DEFINE_string(
    "data_dir", None, "Folder with the original data files (default: $ATTN_AUDIT_DATA)."
)


def _fmt(value, digits=3):
    return (
        "—"
        if value is None or (isinstance(value, float) and np.isnan(value))
        else (f"{value:.{digits}f}")
    )


def main(argv):
    del argv
    setup()
    unknown = sorted(set(_TESTS.value) - set(TESTS))
    if unknown:
        sys.exit(f"error: Unknown tests {unknown} in --tests; choose from {list(TESTS)}.")
    try:
        lambdas = [float(v) for v in _LAMBDAS.value]
        dataset = data.load_dataset(_DATASET.value, _DATA_DIR.value)
    except (ValueError, data.DataError) as error:
        sys.exit(f"error: {error}")
    if dataset.task != "classification":
        sys.exit(f"error: WP's tests are for classification data sets; {dataset.name} is QA/NLI.")
    settings = training.paper_defaults(dataset.name)
    if _EPOCHS.value:
        settings["epochs"] = _EPOCHS.value
    root = pathlib.Path(_RUNS_DIR.value) / dataset.name
    results = pathlib.Path(_RESULTS_DIR.value)
    (results / "figures").mkdir(parents=True, exist_ok=True)
    base_config = training.TrainConfig(dataset=dataset.name, encoder="lstm", attention="tanh",
                                    **settings)  # fmt: skip
    start = time.perf_counter()

    def trained(name, config):
        logging.info("WP %s: %s", dataset.name, name)
        history = training.run_training(config, root / name, dataset=dataset)
        return history["test"]

    try:
        base_test = trained("base", base_config)
        base = load_run(root / "base")
    except (CheckpointError, ValueError, FileNotFoundError, ImportError) as error:
        sys.exit(f"error: {error}")
    test = data.encode_split(dataset, "test", base.vocab)
    boundaries = tuple(base.config["data"]["bucket_boundaries"])
    base_predictions = training.predict(base.params, base.model_config, test, boundaries)
    rows = [{"test": "base", "setting": "lstm+tanh", **base_test}]
    lines = [
        f"## Wiegreffe & Pinter's tests: {dataset.name}", "",
        f"Command: `python -m experiments.wp_tests --dataset={dataset.name}` "
        f"(training: {settings}). Test split: {len(test)} instances." + (
            " " + " ".join(dataset.notes) if dataset.notes else ""),
        "",
    ]  # fmt: skip

    def metric_row(name, result):
        return (f"| {name} | {_fmt(result['accuracy'])} | {_fmt(result['macro_f1'])} | "
                f"{_fmt(result['roc_auc'])} |")  # fmt: skip

    if "uniform" in _TESTS.value:
        uniform = trained("uniform", dataclasses.replace(base_config, attention="uniform"))
        rows.append({"test": "uniform", "setting": "lstm+uniform", **uniform})
        lines += [
            "### Uniform attention baseline (WP §3.1)", "",
            "| model | accuracy | macro-F1 | ROC-AUC |", "|---|---|---|---|",
            metric_row("BiLSTM, trained tanh attention", base_test),
            metric_row("BiLSTM, uniform attention (1/n)", uniform), "",
        ]  # fmt: skip

    if "seeds" in _TESTS.value:
        seed_predictions = []
        for seed in range(1, _SEEDS.value + 1):
            result = trained(f"seed_{seed}", dataclasses.replace(base_config, seed=seed))
            rows.append({"test": "seeds", "setting": f"seed {seed}", **result})
            run = load_run(root / f"seed_{seed}")
            seed_predictions.append(
                training.predict(run.params, run.model_config, test, boundaries)
            )
        variance = wp.seed_variance(base_predictions, seed_predictions)
        for b in variance["bins"]:
            rows.append({"test": "seeds", "setting": f"max attention {b['bin']}", "n": b["n"],
                         "median_jsd": b["median_jsd"], "median_tvd": b["median_tvd"]})  # fmt: skip
        wp_figures.seed_figure(
            variance, results / "figures" / f"wp_{dataset.name}_seeds.png",
            f"{dataset.name}: attention across {_SEEDS.value} seeds",
        )  # fmt: skip
        lines += [
            f"### Seed variance (WP §3.2): {_SEEDS.value} other seeds", "",
            "Per test instance, the median over seeds of JSD(α_base, α_seed) and of "
            "TVD(ŷ_base, ŷ_seed); the table gives their medians per max-attention bin of the "
            "base model.", "",
            "| max attention | n | median JSD | median TVD |", "|---|---|---|---|",
            *(f"| {b['bin']} | {b['n']} | {_fmt(b['median_jsd'])} | {_fmt(b['median_tvd'])} |"
              for b in variance["bins"]),
            f"| all | {len(test)} | {_fmt(float(np.median(variance['median_jsd'])))} | "
            f"{_fmt(float(np.median(variance['median_tvd'])))} |", "",
            f"![seeds](figures/wp_{dataset.name}_seeds.png)", "",
        ]  # fmt: skip

    if "diagnostic" in _TESTS.value:
        average = dataclasses.replace(base_config, encoder="average")
        variants = {
            "average, trained tanh attention": ("avg_trained", average),
            "average, uniform attention": ("avg_uniform",
                                           dataclasses.replace(average, attention="uniform")),
            "average, frozen BiLSTM attention": ("avg_frozen_base", dataclasses.replace(
                average, frozen_attention_from=str(root / "base"))),
        }  # fmt: skip
        lines += ["### Diagnostic: attention in a non-contextual model (WP §3.3)", "",
                  "| model | accuracy | macro-F1 | ROC-AUC |", "|---|---|---|---|"]  # fmt: skip
        for label, (name, config) in variants.items():
            result = trained(name, config)
            rows.append({"test": "diagnostic", "setting": label, **result})
            lines.append(metric_row(label, result))
        lines += [metric_row("(BiLSTM base, for reference)", base_test), ""]

    if "adversarial" in _TESTS.value:
        points = []
        for value in lambdas:
            result = trained(f"adversary_lambda_{value:g}", dataclasses.replace(
                base_config, adversary_of=str(root / "base"), adversarial_lambda=value,
                wp_quirk=_WP_QUIRK.value))  # fmt: skip
            points.append({"lambda": value, "tvd": result["tvd_to_guide"],
                           "jsd": result["jsd_to_guide"]})  # fmt: skip
            rows.append({"test": "adversarial", "setting": f"lambda {value:g}", **result})
        wp_figures.adversarial_figure(
            points, results / "figures" / f"wp_{dataset.name}_adversarial.png",
            f"{dataset.name}: model-consistent adversaries",
        )  # fmt: skip
        lines += [
            "### Model-consistent adversarial training (WP §4)", "",
            "Fresh BiLSTMs trained on mean TVD(ŷ_adv, ŷ_base) − λ·mean KL(α_adv ‖ α_base)"
            + (" (WP's half TVD and sums)" if _WP_QUIRK.value else " (true TVD, means)")
            + "; test means against the base model, and test metrics against the labels.", "",
            "| λ | mean TVD | mean JSD | accuracy | macro-F1 |", "|---|---|---|---|---|",
            *(f"| {p['lambda']:g} | {_fmt(p['tvd'])} | {_fmt(p['jsd'])} | "
              f"{_fmt(r['accuracy'])} | {_fmt(r['macro_f1'])} |"
              for p, r in zip(points, [r for r in rows if r["test"] == "adversarial"],
                              strict=True)),
            "", f"![adversarial](figures/wp_{dataset.name}_adversarial.png)", "",
        ]  # fmt: skip

    csv_path = tables.write_csv(results / f"wp_{dataset.name}.csv", rows)
    minutes = (time.perf_counter() - start) / 60
    lines.append(f"Wall time of the command: {minutes:.1f} min on this machine (runs reused "
                 "where they existed).")  # fmt: skip
    tables.replace_section(results / "RESULTS.md", f"wp:{dataset.name}", "\n".join(lines))
    print("\n".join(lines))
    logging.info("Wrote %s and %s.", csv_path, results / "RESULTS.md")


if __name__ == "__main__":
    app.run(main)
