"""JW's Table 2 as attn_audit measured it (``experiments.reproduce``): CSV rows per predicted
class, our mean τ_g against the paper's and JW's code, and the RESULTS.md section.

A model's entry (``results/table2/<dataset>_<encoder>_<attention>.json``) holds ``dataset``,
``encoder``, ``attention``, ``rows`` (``table_rows``), ``budget``, ``data_notes``,
``label_names``, ``test_accuracy``, the minutes and the seeds that learnt nothing.
"""

from attn_audit.report import paper
from attn_audit.report.paper import paper_row

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
        abs(value - paper.JW_CODE_MEAN_TAU_G[dataset][encoder])
        for dataset, encoders in paper.JW_MEAN_TAU_G.items()
        for encoder, value in encoders.items()
    )


def comparison_lines(models) -> list[str]:
    """Ours against JW's mean τ_g (tanh attention), one row per model JW published."""
    lines = [
        "### Ours against JW, mean τ_g over classes (tanh attention)", "",
        "Ours: the mean over predicted classes of the per-class means (bAbI: over all "
        "instances, as JW's cell is); **bold**: more than 0.08 apart. JW: the paper's cells; "
        "JW's code: the same statistic from the runs committed with JW's code "
        "(`paper.JW_CODE_TAU_G` says where), which differ from the paper's by up to "
        f"{_paper_code_spread():.2f}. "
        "acc: our test accuracy, and in brackets that of the run committed with JW's code. "
        "Minutes: training, and the audit process that measured the model.", "",
        "| data | model | budget | acc (JW's code) | τ_g ours | τ_g JW | ours − JW | "
        "τ_g JW's code | ours − code | train min | audit min |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for model in models:
        published = paper.JW_MEAN_TAU_G.get(model["dataset"], {}).get(model["encoder"])
        ours = paper.mean_tau_g(model["dataset"], model["rows"])
        if model["attention"] != "tanh" or published is None or ours is None:
            continue
        from_code = paper.JW_CODE_MEAN_TAU_G.get(model["dataset"], {}).get(model["encoder"])
        code_cells = ("—", "—") if from_code is None else (
            f"{from_code:.3f}", _difference(ours - from_code))  # fmt: skip
        code = paper.JW_CODE_ACCURACY.get(model["dataset"], {}).get(model["encoder"])
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
