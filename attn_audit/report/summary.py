"""A JSON-ready summary of audit records (JW Table 2, Figs. 3 and 5–6) and its Markdown report.

Conventions, also written into the summary under ``conventions``:
  * ``std`` is the population standard deviation (``ddof = 0``, numpy's default).
  * An undefined τ (null: constant vector or one token) is excluded from ``mean``, ``std`` and
    ``sig_frac`` and counted in ``undefined``. JW kept NaN and so reported NaN means.
  * ``sig_frac`` is the share, among instances with a defined τ and p, of those with p ≤ 0.05.
  * Quantiles are numpy's linear interpolation. A statistic of an empty group is ``None``.
  * An audit whose fields are absent from every record is left out, never filled in.
"""

import json
import math
from collections.abc import Mapping, Sequence

import numpy as np

from attn_audit.report import fields
from attn_audit.report.fields import MAX_ATTENTION_BINS, MAX_ATTENTION_EDGES, TAU_FIELDS

SIGNIFICANCE_LEVEL = 0.05
ADVERSARIAL_QUANTILES = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)
# JW Fig. 5: max JSD over [0, 0.7] (JSD in nats is at most ln 2 ≈ 0.693), 0.05 wide bins.
JSD_HISTOGRAM_RANGE = (0.0, 0.7)
JSD_HISTOGRAM_BINS = 14
HIGH_JSD = 0.6

TAU_LABELS = {
    "tau_gradient": "τ_g (α vs gradient)",
    "tau_loo": "τ_loo (α vs LOO)",
    "tau_gradient_loo": "τ_g,loo (gradient vs LOO)",
}


def summarize(
    records: Sequence[dict],
    label_names: Sequence[str] | None,
    provenance: Mapping | None = None,
) -> dict:
    """Summarises audit records per predicted class and overall (JW Table 2, Figs. 3, 5, 6).

    Args:
      records: per-instance dicts (fields: ``attn_audit.report.records``).
      label_names: class names indexed by class number; a class missing here is named by its
        number.
      provenance: passed through unchanged (model, data, seed, code version, timings, ...).

    Returns:
      A JSON-ready dict with ``n_instances``, ``label_names``, ``class_counts``,
      ``conventions``, and, for the audits that were run, ``table2``, ``permutation`` and
      ``adversarial``; then ``provenance``. See the module docstring for the conventions.
    """
    records = list(records)
    classes = fields.predicted_classes(records)
    groups = {
        fields.class_name(c, label_names): classes == c
        for c in fields.class_order(classes, label_names)
    }
    summary = {
        "n_instances": len(records),
        "label_names": None if label_names is None else [str(name) for name in label_names],
        "class_counts": {name: int(mask.sum()) for name, mask in groups.items()},
        "conventions": {
            "std_ddof": 0,
            "significance_level": SIGNIFICANCE_LEVEL,
            "undefined_tau": "excluded from mean, std and sig_frac; counted in 'undefined'",
            "quantiles": "numpy linear interpolation",
            "max_attention_bins": list(MAX_ATTENTION_BINS),
        },
    }
    groups["all"] = np.ones(len(records), dtype=bool)

    measures = [name for name in TAU_FIELDS if fields.has_field(records, name)]
    if measures:
        summary["table2"] = _table2(records, groups, measures)
    if fields.has_field(records, "permutation_median_tvd"):
        summary["permutation"] = _permutation(records, groups)
    if fields.has_field(records, "adversarial_max_jsd"):
        summary["adversarial"] = _adversarial(records, groups)
    summary["provenance"] = provenance
    return summary


def _table2(records, groups, measures) -> dict:
    columns = {}
    for tau_field in measures:
        p_field = TAU_FIELDS[tau_field]
        columns[tau_field] = (
            *fields.field_values(records, tau_field),
            fields.field_values(records, p_field)[0],
        )
    table = {}
    for name, mask in groups.items():
        row = {"n": int(mask.sum())}
        for tau_field, (tau, present, p_value) in columns.items():
            row[tau_field] = _tau_statistics(tau[mask], present[mask], p_value[mask])
        table[name] = row
    return table


def _tau_statistics(tau: np.ndarray, present: np.ndarray, p_value: np.ndarray) -> dict:
    """mean, std (ddof 0), sig_frac and the undefined count of one group's τ ``[n]``."""
    defined = present & np.isfinite(tau)
    with_p = defined & np.isfinite(p_value)
    values = tau[defined]
    return {
        "mean": _float(values.mean()) if values.size else None,
        "std": _float(values.std(ddof=0)) if values.size else None,
        "sig_frac": _float(np.mean(p_value[with_p] <= SIGNIFICANCE_LEVEL))
        if with_p.any()
        else None,
        "undefined": int((present & ~np.isfinite(tau)).sum()),
        "n_defined": int(defined.sum()),
    }


def _permutation(records, groups) -> dict:
    tvd, present = fields.field_values(records, "permutation_median_tvd")
    usable = present & np.isfinite(tvd)
    bins = _bins_of(records, usable)
    result = {**_spread(tvd[usable]), "bins": _binned_spread(tvd, usable, bins)}
    result["by_class"] = {
        name: {**_spread(tvd[usable & mask]), "bins": _binned_spread(tvd, usable & mask, bins)}
        for name, mask in groups.items()
        if name != "all"
    }
    return result


def _adversarial(records, groups) -> dict:
    jsd, present = fields.field_values(records, "adversarial_max_jsd")
    tvd, tvd_present = fields.field_values(records, "adversarial_tvd")
    usable = present & np.isfinite(jsd)
    only_original = np.array([r.get("adversarial_attention") is None for r in records], dtype=bool)
    bins = _bins_of(records, usable)
    values = jsd[usable]
    # Clip so every instance lands in the histogram (JSD ≤ ln 2 < 0.7 unless numerically noisy).
    counts, edges = np.histogram(
        np.clip(values, *JSD_HISTOGRAM_RANGE), bins=JSD_HISTOGRAM_BINS, range=JSD_HISTOGRAM_RANGE
    )
    tvd_usable = usable & tvd_present & np.isfinite(tvd)
    result = {
        "n": int(values.size),
        "max_jsd_quantiles": {
            f"{q:g}": (_float(np.quantile(values, q)) if values.size else None)
            for q in ADVERSARIAL_QUANTILES
        },
        "max_jsd_histogram": {
            "edges": [round(float(edge), 10) for edge in edges],
            "counts": [int(count) for count in counts],
        },
        "share_jsd_ge_0_6": _share(values >= HIGH_JSD),
        "share_only_original": _share(only_original[usable]),
        "median_tvd": _median(tvd[tvd_usable]),
        "bins": [
            {
                **_bin_bounds(number),
                "n": int(np.sum(usable & (bins == number))),
                "median_max_jsd": _median(jsd[usable & (bins == number)]),
            }
            for number in range(len(MAX_ATTENTION_BINS))
        ],
        "by_class": {
            name: {
                "n": int(np.sum(usable & mask)),
                "median_max_jsd": _median(jsd[usable & mask]),
                "share_jsd_ge_0_6": _share(jsd[usable & mask] >= HIGH_JSD),
                "share_only_original": _share(only_original[usable & mask]),
            }
            for name, mask in groups.items()
            if name != "all"
        },
    }
    return result


def _bins_of(records, usable: np.ndarray) -> np.ndarray:
    """Max-attention bin of each record ``[N]``; -1 where ``usable`` is False."""
    bins = np.full(len(records), -1, dtype=np.int64)
    chosen = [record for record, use in zip(records, usable, strict=True) if use]
    if chosen:
        bins[usable] = fields.max_attention_bin(fields.max_attention(chosen))
    return bins


def _bin_bounds(number: int) -> dict:
    return {
        "bin": MAX_ATTENTION_BINS[number],
        "lower": MAX_ATTENTION_EDGES[number],
        "upper": MAX_ATTENTION_EDGES[number + 1],
    }


def _binned_spread(values, usable, bins) -> list[dict]:
    return [
        {**_bin_bounds(number), **_spread(values[usable & (bins == number)])}
        for number in range(len(MAX_ATTENTION_BINS))
    ]


def _spread(values: np.ndarray) -> dict:
    if not values.size:
        return {"n": 0, "median": None, "q25": None, "q75": None}
    q25, median, q75 = np.quantile(values, [0.25, 0.5, 0.75])
    return {"n": int(values.size), "median": _float(median), "q25": _float(q25), "q75": _float(q75)}


def _median(values: np.ndarray) -> float | None:
    return _float(np.median(values)) if values.size else None


def _share(flags: np.ndarray) -> float | None:
    return _float(np.mean(flags)) if flags.size else None


def _float(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


# ---------------------------------------------------------------------------------------------
# Markdown


def format_tau_cell(statistics: Mapping | None) -> str:
    """JW's Table 2 cell: ``"0.40 ± 0.21 (0.59)"`` = mean ± std (sig. frac.); "—" if undefined."""
    if not statistics or statistics.get("mean") is None:
        return "—"
    cell = f"{statistics['mean']:.2f} ± {statistics['std']:.2f}"
    if statistics.get("sig_frac") is not None:
        cell += f" ({statistics['sig_frac']:.2f})"
    return cell


def summary_markdown(
    summary: Mapping, paper_row: Mapping[str, Mapping[str, str]] | None = None
) -> str:
    """A readable Markdown report of ``summarize``'s output.

    Args:
      summary: the dict ``summarize`` returned (or its JSON read back).
      paper_row: the paper's published cells for the same data set, measure -> class -> text,
        e.g. ``{"tau_gradient": {"negative": "0.40 ± 0.21 (0.59)"}}``; shown beside ours.

    Returns:
      Markdown text ending in a newline.
    """
    lines = [f"# Attention audit: {summary['n_instances']} instances", ""]
    counts = ", ".join(f"{name} {n}" for name, n in summary.get("class_counts", {}).items())
    lines += [f"Predicted classes: {counts or 'none'}.", ""]
    if "table2" in summary:
        lines += _table2_markdown(summary["table2"], paper_row)
    if "permutation" in summary:
        lines += _permutation_markdown(summary["permutation"])
    if "adversarial" in summary:
        lines += _adversarial_markdown(summary["adversarial"])
    lines += _provenance_markdown(summary.get("provenance"))
    return "\n".join(lines).rstrip("\n") + "\n"


def _table2_markdown(table2: Mapping, paper_row: Mapping | None) -> list[str]:
    first_row = next(iter(table2.values()))
    measures = [name for name in TAU_FIELDS if name in first_row]
    lines = [
        "## Agreement of attention with importance (JW Table 2)",
        "",
        "Cells are mean ± std (share with p ≤ 0.05) of Kendall τ-b per predicted class; std is "
        "the population std (ddof = 0). Undefined τ (constant vectors) are excluded and counted.",
        "",
        "| class | source | n | "
        + " | ".join(TAU_LABELS[m] for m in measures)
        + " | undefined τ |",
        "|---|---|---|" + "---|" * len(measures) + "---|",
    ]
    for name, row in table2.items():
        cells = [format_tau_cell(row[m]) for m in measures]
        undefined = " / ".join(str(row[m]["undefined"]) for m in measures)
        lines.append(f"| {name} | ours | {row['n']} | " + " | ".join(cells) + f" | {undefined} |")
        if paper_row:
            paper_cells = [str(paper_row.get(m, {}).get(name, "—")) for m in measures]
            if any(cell != "—" for cell in paper_cells):
                lines.append(f"| {name} | JW 2019 | | " + " | ".join(paper_cells) + " | |")
    lines.append("")
    if len(measures) > 1:
        lines += [f"Undefined τ column order: {' / '.join(TAU_LABELS[m] for m in measures)}.", ""]
    return lines


def _permutation_markdown(permutation: Mapping) -> list[str]:
    lines = [
        "## Permutation (JW Fig. 3)",
        "",
        "Median over permutations of TVD(ŷ_perm, ŷ), by the instance's max attention.",
        f"Overall median {_number(permutation['median'])} (IQR {_number(permutation['q25'])}"
        f"–{_number(permutation['q75'])}, n = {permutation['n']}).",
        "",
        "| max attention | n | median | q25 | q75 |",
        "|---|---|---|---|---|",
    ]
    for row in permutation["bins"]:
        lines.append(
            f"| {row['bin']} | {row['n']} | {_number(row['median'])} | {_number(row['q25'])} "
            f"| {_number(row['q75'])} |"
        )
    by_class = permutation.get("by_class", {})
    if by_class:
        lines += ["", "| class | n | median | q25 | q75 |", "|---|---|---|---|---|"]
        for name, row in by_class.items():
            lines.append(
                f"| {name} | {row['n']} | {_number(row['median'])} | {_number(row['q25'])} "
                f"| {_number(row['q75'])} |"
            )
    return lines + [""]


def _adversarial_markdown(adversarial: Mapping) -> list[str]:
    quantiles = adversarial["max_jsd_quantiles"]
    lines = [
        "## Adversarial attention (JW Figs. 5–6)",
        "",
        "Max JSD (nats, at most ln 2 ≈ 0.693) between α and an attention whose output stays "
        f"within TVD ε of the original; n = {adversarial['n']}.",
        "",
        "| quantile | " + " | ".join(quantiles) + " |",
        "|---|" + "---|" * len(quantiles),
        "| max JSD | " + " | ".join(_number(v) for v in quantiles.values()) + " |",
        "",
        f"- share with max JSD ≥ 0.6: {_number(adversarial['share_jsd_ge_0_6'])}",
        f"- share where only the original attention survived: "
        f"{_number(adversarial['share_only_original'])}",
        f"- median output TVD of the selected adversary: {_number(adversarial['median_tvd'])}",
        "",
        "| max attention | n | median max JSD |",
        "|---|---|---|",
    ]
    for row in adversarial["bins"]:
        lines.append(f"| {row['bin']} | {row['n']} | {_number(row['median_max_jsd'])} |")
    by_class = adversarial.get("by_class", {})
    if by_class:
        lines += [
            "",
            "| class | n | median max JSD | share ≥ 0.6 | only original |",
            "|---|---|---|---|---|",
        ]
        for name, row in by_class.items():
            lines.append(
                f"| {name} | {row['n']} | {_number(row['median_max_jsd'])} "
                f"| {_number(row['share_jsd_ge_0_6'])} | {_number(row['share_only_original'])} |"
            )
    return lines + [""]


def _provenance_markdown(provenance) -> list[str]:
    lines = ["## Provenance", ""]
    if not provenance:
        return lines + ["(none given)", ""]
    if not isinstance(provenance, Mapping):
        return lines + [f"`{json.dumps(provenance, default=str)}`", ""]
    for key, value in provenance.items():
        text = (
            value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
        )
        lines.append(f"- {key}: `{text}`")
    return lines + [""]


def _number(value) -> str:
    return "—" if value is None else f"{value:.3f}"
