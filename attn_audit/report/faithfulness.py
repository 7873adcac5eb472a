"""The faithfulness summary as Markdown (``experiments.faithfulness``): the ranking table with
95% CIs, significant paired differences, the randomisation table, the agreement matrices; and
across models (``experiments.faithfulness_results``): each model's CSV rows and section.

Pure Python (no jax), like the rest of ``report``.
"""

CASCADE_LABELS = {"cascade/decoder": "decoder", "cascade/attention": "+ attention",
                  "cascade/encoder": "+ encoder", "cascade/embeddings": "+ embeddings"}  # fmt: skip
INDEPENDENT = ("independent/attention", "independent/encoder", "independent/embeddings")


def interval_cell(entry: dict | None, pattern: str = "{:.3f}") -> str:
    """``mean [low, high]``, or ``–`` where there is no value."""
    if not entry or entry.get("mean") is None:
        return "–"
    if entry.get("low") is None or entry.get("high") is None:
        return pattern.format(entry["mean"])
    low, high = pattern.format(entry["low"]), pattern.format(entry["high"])
    return f"{pattern.format(entry['mean'])} [{low}, {high}]"


def _ranking_lines(summary: dict) -> list[str]:
    removals = summary["removals"]
    entries = summary["explainers"]
    headers = ["rank", "explainer"]
    for removal in removals:
        headers += [f"AOPC comp ({removal}) ↑", f"AOPC suff ({removal}) ↓"]
    headers += ["flip fraction ↓", "top-1 flip rate ↑", "never flipped ↓"]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for rank, name in enumerate(summary["ranking"], start=1):
        entry = entries[name]
        cells = [str(rank), f"**{name}**" if name == "attention" else name]
        for removal in removals:
            for curve in ("aopc_comprehensiveness", "aopc_sufficiency"):
                cells.append(interval_cell(entry.get(curve, {}).get(removal)))
        for statistic in ("flip_fraction", "top1_flip_rate", "never_flipped"):
            cells.append(interval_cell(entry.get(statistic)))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def difference_from(pairs: dict, reference: str, other: str) -> dict | None:
    """The paired difference ``other − reference`` from ``pairs`` (``"a|b"`` holds a − b)."""
    if f"{other}|{reference}" in pairs:
        return pairs[f"{other}|{reference}"]
    entry = pairs.get(f"{reference}|{other}")
    if entry is None:
        return None
    flipped = {"low": None if entry["high"] is None else -entry["high"],
               "high": None if entry["low"] is None else -entry["low"]}  # fmt: skip
    mean = None if entry["mean"] is None else -entry["mean"]
    return {**entry, "mean": mean, **flipped}


def _significance_lines(summary: dict, reference: str = "attention") -> list[str]:
    comparisons = summary["comparisons"]
    metrics = list(comparisons)
    lines = [
        f"Each explainer minus {reference}, mean over instances with its 95% paired bootstrap "
        "CI; * where the CI excludes 0 (↑: higher is more faithful, ↓: lower). Every pair of "
        "explainers is in `summary.json` (`comparisons`).",
        "",
        "| explainer | " + " | ".join(
            f"{m} {'↓' if m.startswith(('aopc_sufficiency', 'flip')) else '↑'}" for m in metrics
        ) + " |",
        "|---|" + "---|" * len(metrics),
    ]  # fmt: skip
    for name in summary["ranking"]:
        if name == reference:
            continue
        cells = []
        for metric in metrics:
            entry = difference_from(comparisons[metric], reference, name)
            mark = " *" if entry and entry["significant"] else ""
            cells.append(interval_cell(entry, "{:+.3f}") + mark)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    counts = [f"{metric}: {sum(e['significant'] for e in pairs.values())} of {len(pairs)}"
              for metric, pairs in comparisons.items()]  # fmt: skip
    return lines + ["", "Significant pairs among all explainers: " + "; ".join(counts) + "."]


def _randomisation_lines(summary: dict) -> list[str]:
    randomisation = summary["randomisation"]
    columns = [v for v in (*CASCADE_LABELS, *INDEPENDENT) if v in randomisation]
    names = [CASCADE_LABELS.get(v, v.replace("independent/", "only ")) for v in columns]
    lines = ["| explainer | " + " | ".join(names) + " |", "|---|" + "---|" * len(columns)]
    for explainer in summary["ranking"]:
        cells = [interval_cell(randomisation[v].get(explainer), "{:.2f}") for v in columns]
        lines.append(f"| {explainer} | " + " | ".join(cells) + " |")
    return lines


def _empty_block_lines(provenance: dict) -> list[str]:
    empty = provenance.get("blocks_without_parameters") or []
    if not empty:
        return []
    return ["", f"This model has no parameters in {', '.join(empty)}: re-initialising "
            f"{'it' if len(empty) == 1 else 'them'} alone changes nothing, so those columns "
            "show ρ = 1 by construction, not an explainer that ignores the model."]  # fmt: skip


def _agreement_lines(summary: dict, measure: str) -> list[str]:
    pairs = summary["agreement"][measure]
    names = summary["ranking"]
    lines = ["| | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for first in names:
        cells = []
        for second in names:
            entry = pairs.get(f"{first}|{second}") or pairs.get(f"{second}|{first}")
            cells.append("1" if first == second else interval_cell(entry, "{:.2f}").split(" ")[0])
        lines.append(f"| {first} | " + " | ".join(cells) + " |")
    return lines


def _timing_lines(timings: dict) -> list[str]:
    """Each stage's seconds, summed over every process that worked on it (its ``runs``)."""
    names = ("wall_seconds", "compile_wait_seconds", "compile_seconds", "run_seconds")
    lines = ["| stage | processes | batches | wall s | compile wait s | "
             "compile s (two threads) | run s |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for stage, found in timings.items():
        if not isinstance(found, dict):
            continue
        runs = found.get("runs") or [found]
        cells = [sum(run.get(name) or 0.0 for run in runs) for name in names]
        batches = sum(run.get("batches", 0) for run in runs)
        lines.append(f"| {stage} | {len(runs)} | {batches} | "
                     + " | ".join(f"{c:.1f}" for c in cells) + " |")  # fmt: skip
    return lines


def faithfulness_markdown(summary: dict) -> str:
    """The summary as Markdown, every mean with its 95% bootstrap CI."""
    provenance = summary["provenance"]
    percents = ", ".join(f"{p}%" for p in summary["percents"])
    lines = [
        f"# Faithfulness of {len(summary['explainers'])} explainers on "
        f"{summary['instances']} instances",
        "",
        f"Run `{provenance.get('run', '?')}`, split `{provenance.get('data', {}).get('split')}`. "
        "Means with 95% percentile-bootstrap CIs (1,000 resamples of instances, seeded).",
        "",
        "## Ranking by ERASER comprehensiveness",
        "",
        f"AOPC over k ∈ {{{percents}}} (ERASER deletes the top-k tokens; masking replaces them "
        "with the mask token). Flip fraction: share of tokens removed in the explainer's order "
        "until the decision flips (1.0 when it never does).",
        "",
        *_ranking_lines(summary),
    ]
    if summary["comparisons"] and "attention" in summary["explainers"]:
        lines += ["", "### Against attention", "", *_significance_lines(summary)]
    if summary["randomisation"]:
        lines += [
            "",
            f"## Model parameter randomisation ({summary['randomisation_instances']} instances)",
            "",
            "Spearman ρ between the absolute scores on the trained model and on the model with "
            "blocks re-initialised: cascading from the output down, then one block at a time. "
            "An explainer that ignores the model keeps ρ near 1.",
            "",
            *_randomisation_lines(summary),
            *_empty_block_lines(provenance),
        ]
    if summary["agreement"]:
        lines += ["", "## Agreement between explainers (mean Kendall τ-b)", "",
                  *_agreement_lines(summary, "tau"),
                  "", "## Agreement between explainers (mean top-20% Jaccard)", "",
                  *_agreement_lines(summary, "jaccard")]  # fmt: skip
    timings = provenance.get("timings", {})
    if timings:
        lines += ["", "## Timings", "",
                  "Summed over every process that worked on a stage (resumed runs add theirs).",
                  "", *_timing_lines(timings)]  # fmt: skip
        if "process_seconds" in timings:
            lines += ["", f"This process: {timings['process_seconds']:.1f} s."]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- across models

# The last step of the cascading randomisation: every block re-initialised.
CASCADE_END = "cascade/embeddings"


def model_rows(dataset, model, accuracy, summary) -> list[dict]:
    """One CSV row per explainer of one model's summary (``experiments.faithfulness_results``):
    means and CIs of the headline statistics."""
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
    """One model's RESULTS.md section of ``experiments.faithfulness_results``: the explainers
    ranked, with CIs, and how attention compares with each (paired CIs)."""
    found = summary["provenance"]
    minutes = found.get("stage_minutes", {})
    lines = [
        f"### {dataset}, {model} (test accuracy {accuracy:.3f}; {summary['instances']} "
        f"instances, randomisation {summary['randomisation_instances'] or 'not measured'})",
        "",
        f"Training: {found.get('budget', 'not recorded')}, "
        f"{found.get('training_minutes', float('nan')):.1f} min. Faithfulness: "
        + ", ".join(f"{stage} {value:.1f} min" for stage, value in minutes.items())
        + ".",
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
    empty = summary["provenance"].get("blocks_without_parameters") or []
    if empty:
        lines += [f"No parameters in {', '.join(empty)}: its independent re-initialisation "
                  "changes nothing (ρ = 1 by construction).", ""]  # fmt: skip
    return lines


def rounded(tree, digits: int = 5):
    """``tree`` with its floats rounded to ``digits`` decimals (the committed summaries)."""
    if isinstance(tree, float):
        return round(tree, digits)
    if isinstance(tree, dict):
        return {key: rounded(value, digits) for key, value in tree.items()}
    if isinstance(tree, list):
        return [rounded(value, digits) for value in tree]
    return tree
