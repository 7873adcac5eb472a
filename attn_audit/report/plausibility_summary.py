"""The plausibility summary (SPEC §9): each explanation's AUPRC, top-k F1 and exact top-k
against the data's evidence, means with 95% bootstrap CIs, a ranking and paired differences.

As the faithfulness summary (``faithfulness_summary``): the explanations share their
resamples of instances, so the CI of a difference is paired, and a difference is
significant when its CI excludes 0. Instances where a measure is undefined (evidence all 0
or all 1) are left out of its means and counted.
"""

import jax
import numpy as np

from attn_audit import stats
from attn_audit.faithfulness.plausibility import PLAUSIBILITY_MEASURES
from attn_audit.report.faithfulness import difference_from, interval_cell
from attn_audit.report.faithfulness_summary import RESAMPLES, interval_entry, paired_differences
from attn_audit.report.fields import PLAUSIBILITY_TITLES

MEASURE_TITLES = PLAUSIBILITY_TITLES


def summarize_plausibility(records: list[dict], names, provenance: dict, seed: int = 0) -> dict:
    """Means with 95% bootstrap CIs (1,000 resamples of instances, seeded) per explanation.

    Returns:
      ``{"instances", "defined", "explanations": {name: {measure: {mean, low, high,
      count}}}, "ranking"`` (by mean AUPRC, best first) ``, "comparisons": {measure: {"a|b":
      paired CI of mean(a − b) with significant}}, "provenance"}``.
    """
    keys = jax.random.split(jax.random.key(seed), 2 * len(PLAUSIBILITY_MEASURES))
    entries = {name: {} for name in names}
    comparisons = {}
    for m, measure in enumerate(PLAUSIBILITY_MEASURES):
        values = np.full((len(names), len(records)), np.nan)
        for x, name in enumerate(names):
            for n, record in enumerate(records):
                value = (record["plausibility"].get(name) or {}).get(measure)
                values[x, n] = np.nan if value is None else value
        found = stats.bootstrap_mean_ci(values, keys[2 * m], RESAMPLES)
        for x, name in enumerate(names):
            entries[name][measure] = interval_entry(found, x)
        comparisons[measure] = paired_differences(values, list(names), keys[2 * m + 1])

    def mean_auprc(name):
        mean = entries[name]["auprc"]["mean"]
        return -np.inf if mean is None else mean

    defined = sum(
        any((r["plausibility"].get(n) or {}).get("auprc") is not None for n in names)
        for r in records
    )
    return {"instances": len(records), "defined": defined, "explanations": entries,
            "ranking": sorted(names, key=mean_auprc, reverse=True), "comparisons": comparisons,
            "provenance": provenance}  # fmt: skip


def plausibility_markdown(summary: dict) -> str:
    """The summary as Markdown: the ranking with CIs, then the significant differences."""
    lines = [
        f"# Plausibility against the data's evidence: {summary['instances']} instances",
        "",
        f"{summary['defined']} instances have evidence that is neither empty nor every token "
        "(the others are undefined and left out). Means with 95% bootstrap CIs over "
        f"{RESAMPLES:,} resamples of instances; tokens ranked by |score|, ties by position.",
        "",
        "| rank | explanation | " + " | ".join(MEASURE_TITLES.values()) + " |",
        "|---|---|" + "---|" * len(MEASURE_TITLES),
    ]
    for rank, name in enumerate(summary["ranking"], start=1):
        cells = [interval_cell(summary["explanations"][name][m]) for m in MEASURE_TITLES]
        label = f"**{name}**" if name == "attention" else name
        lines.append(f"| {rank} | {label} | " + " | ".join(cells) + " |")
    pairs = summary["comparisons"].get("auprc", {})
    if "attention" in summary["ranking"]:
        lines += ["", "AUPRC of each explanation minus attention's (paired 95% CI; * excludes 0):",
                  ""]  # fmt: skip
        for name in summary["ranking"]:
            if name == "attention":
                continue
            entry = difference_from(pairs, "attention", name)
            if entry is not None:
                mark = " *" if entry["significant"] else ""
                lines.append(f"- {name}: {interval_cell(entry)}{mark}")
    return "\n".join(lines) + "\n"
