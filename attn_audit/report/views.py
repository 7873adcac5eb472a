"""The attention-view sweep's report: per view and per layer × head, with multiple-testing
control across heads (SPEC §10 "Heads"; the sweep is ``attn_audit.audits.views``).

Labels name the views: ``layer{l}/head{h}`` (one head's CLS row, layers and heads 0-based),
``layer{l}/mean`` (that layer's head mean), ``rollout`` and ``flow`` (AZ's relevance, last
layer's CLS row). Per view, over the instances:

- ``tau_gradient`` / ``tau_loo``: mean and std (ddof 0) of Kendall τ-b between the view's α
  and the gradient / LOO importance, undefined τ excluded and counted; JW's ``sig_frac`` (the
  share of instances with Kendall p ≤ 0.05) and ``sig_frac_bh`` (the share rejected by
  Benjamini–Hochberg at q over that view's instances); the one-sided Wilcoxon signed-rank
  test of τ > 0 over instances (``wilcoxon_p``) and, for heads, its BH adjustment across all
  swept heads (``wilcoxon_p_bh``, ``significant_bh``);
- ``permutation_median_tvd``: the median over instances of each instance's median
  permutation TVD; ``adversarial_max_jsd``: the median over instances of the adversary's max
  JSD. Both are null for rollout and flow: they have no attention to replace.

numpy only (no JAX), like the rest of ``attn_audit.report``.
"""

import math
import re
from collections.abc import Mapping, Sequence

import numpy as np

from attn_audit import multiple_testing

RELEVANCE_VIEWS = ("rollout", "flow")
TAU_NAMES = ("gradient", "loo")
SIGNIFICANCE_LEVEL = 0.05
NOT_DEFINED = (
    "not defined: rollout and flow read every layer's attention and have no one attention to "
    "replace, so the permutation and adversarial audits do not apply"
)
_LABEL = re.compile(r"layer(\d+)/(?:head(\d+)|(mean))")


def view_label(layer: int, head: int | None) -> str:
    """``layer{l}/head{h}``, or ``layer{l}/mean`` for ``head=None``."""
    return f"layer{layer}/mean" if head is None else f"layer{layer}/head{head}"


def parse_view_label(label: str) -> tuple[str, int | None, int | None]:
    """``(kind, layer, head)``: kind ``"head"``, ``"layer_mean"``, ``"rollout"`` or ``"flow"``."""
    if label in RELEVANCE_VIEWS:
        return label, None, None
    match = _LABEL.fullmatch(label)
    if match is None:
        raise ValueError(
            f"Unknown attention view {label!r}; a view is 'layer<l>/head<h>', 'layer<l>/mean', "
            "'rollout' or 'flow' (layers and heads from 0)."
        )
    if match.group(3):
        return "layer_mean", int(match.group(1)), None
    return "head", int(match.group(1)), int(match.group(2))


def _float(value) -> float | None:
    value = float(value)
    return None if math.isnan(value) else value


def _as_float_array(values) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], np.float64)


def _tau_summary(tau: np.ndarray, p_value: np.ndarray, q: float) -> dict:
    """One view's τ over instances: mean, std, Sig. Frac. (raw and BH), Wilcoxon τ > 0."""
    defined = ~np.isnan(tau)
    values = tau[defined]
    significance = defined & ~np.isnan(p_value)
    _, reject = multiple_testing.benjamini_hochberg(np.where(significance, p_value, np.nan), q)
    statistic, wilcoxon_p = multiple_testing.wilcoxon_greater(tau)
    tested = int(significance.sum())
    return {
        "mean": _float(values.mean()) if values.size else None,
        "std": _float(values.std(ddof=0)) if values.size else None,
        "num_defined": int(defined.sum()),
        "num_undefined": int((~defined).sum()),
        "sig_frac": _float(np.mean(p_value[significance] <= SIGNIFICANCE_LEVEL))
        if tested
        else None,
        "sig_frac_bh": _float(np.mean(reject[significance])) if tested else None,
        "wilcoxon_statistic": _float(statistic),
        "wilcoxon_p": _float(wilcoxon_p),
    }


def _median(values) -> float | None:
    values = _as_float_array(values)
    return _float(np.median(values)) if values.size else None


def summarize_views(
    records: Sequence[Mapping], labels: Sequence[str], num_layers: int, num_heads: int,
    q: float = 0.05,
) -> dict:  # fmt: skip
    """Per-view statistics and the heads found significant before and after BH.

    Args:
      records: the sweep's per-instance records (``audits.views.view_records``): each has
        ``"views": {label: {"tau_gradient", "p_gradient", "tau_loo", "p_loo",
        "permutation_median_tvd", "adversarial_max_jsd", ...}}`` (a field absent when its
        audit was not run or is not defined; τ null when undefined).
      labels: the swept views, in the order to report them.
      num_layers, num_heads: the model's L and H, for the tables.
      q: the false discovery rate of both BH corrections.

    Returns:
      ``{"q", "num_layers", "num_heads", "n_instances", "labels", "views": {label: {...}},
      "heads": {"tau_gradient" | "tau_loo": {"num_heads", "num_tested", "significant",
      "share_significant", "significant_bh", "share_significant_bh"}}, "notes"}``: the head
      counts are over the swept ``layer{l}/head{h}`` views, significant meaning Wilcoxon
      p ≤ q before correction and BH-adjusted p ≤ q after.
    """
    views = {}
    for label in labels:
        kind, layer, head = parse_view_label(label)
        entries = [record["views"][label] for record in records]
        view = {"kind": kind, "layer": layer, "head": head, "n_instances": len(entries)}
        for name in TAU_NAMES:
            if entries and f"tau_{name}" in entries[0]:
                tau = _as_float_array([e[f"tau_{name}"] for e in entries])
                p_value = _as_float_array([e[f"p_{name}"] for e in entries])
                view[f"tau_{name}"] = _tau_summary(tau, p_value, q)
        for field in ("permutation_median_tvd", "adversarial_max_jsd"):
            present = [e[field] for e in entries if field in e]
            view[field] = _median(present) if present else None
        if kind in RELEVANCE_VIEWS:
            view["permutation_and_adversarial"] = NOT_DEFINED
        views[label] = view

    heads = {}
    head_labels = [label for label in labels if views[label]["kind"] == "head"]
    for name in TAU_NAMES:
        key = f"tau_{name}"
        if not head_labels or key not in views[head_labels[0]]:
            continue
        p_values = _as_float_array([views[label][key]["wilcoxon_p"] for label in head_labels])
        adjusted, reject = multiple_testing.benjamini_hochberg(p_values, q)
        for label, p_bh, significant in zip(head_labels, adjusted, reject, strict=True):
            views[label][key]["wilcoxon_p_bh"] = _float(p_bh)
            views[label][key]["significant_bh"] = bool(significant)
        tested = int((~np.isnan(p_values)).sum())
        before = int(np.sum(p_values[~np.isnan(p_values)] <= q))
        after = int(reject.sum())
        heads[key] = {
            "num_heads": len(head_labels),
            "num_tested": tested,
            "significant": before,
            "share_significant": before / tested if tested else None,
            "significant_bh": after,
            "share_significant_bh": after / tested if tested else None,
        }
    return {
        "q": q,
        "num_layers": num_layers,
        "num_heads": num_heads,
        "n_instances": len(records),
        "labels": list(labels),
        "views": views,
        "heads": heads,
        "notes": {
            "layers_and_heads": "0-based; layer<l>/mean is that layer's head mean",
            "sig_frac": "share of instances with a defined τ whose Kendall p ≤ 0.05 (JW)",
            "sig_frac_bh": "the same after Benjamini–Hochberg at q over the view's instances",
            "wilcoxon": "one-sided Wilcoxon signed-rank test of τ > 0 over instances "
            "(zero_method 'wilcox', as scipy's default); undefined τ left out",
            "heads": "BH at q across the swept heads of each τ; significant before: p ≤ q",
            "permutation_median_tvd": "median over instances of the median permutation TVD",
            "adversarial_max_jsd": "median over instances of the adversary's max JSD",
            "rollout_flow": NOT_DEFINED,
        },
    }


def _cell(value, digits: int = 2, mark: bool = False) -> str:
    if value is None:
        return "—"
    return f"{value:.{digits}f}{'★' if mark else ''}"


def _grid(summary: Mapping, title: str, cell) -> list[str]:
    """A Markdown table of ``cell(view)`` with layers as rows and heads (then mean) as columns."""
    views = summary["views"]
    layers = sorted({v["layer"] for v in views.values() if v["layer"] is not None})
    heads = sorted({v["head"] for v in views.values() if v["head"] is not None})
    columns = [(h, f"head {h}") for h in heads]
    if any(v["kind"] == "layer_mean" for v in views.values()):
        columns.append((None, "mean"))
    lines = [f"### {title}", "", "| layer | " + " | ".join(name for _, name in columns) + " |"]
    lines.append("|---" * (len(columns) + 1) + "|")
    for layer in layers:
        cells = []
        for head, _ in columns:
            view = views.get(view_label(layer, head))
            cells.append("" if view is None else cell(view))
        lines.append(f"| {layer} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _tau(view: Mapping, name: str) -> Mapping:
    return view.get(f"tau_{name}") or {}


def views_markdown(summary: Mapping) -> str:
    """A readable Markdown report of ``summarize_views``: the head counts, one layer × head
    table per figure, and a table of the rollout and flow views."""
    q = summary["q"]
    lines = [
        "## Which attention, where? Attention views",
        "",
        f"{summary['n_instances']} instances; {summary['num_layers']} layers × "
        f"{summary['num_heads']} heads (0-based). Each view's α is its CLS-query row over the "
        "real tokens; τ is Kendall τ-b with the gradient (that view's attention held fixed) "
        "or with leave-one-out.",
        "",
    ]
    if summary["heads"]:
        lines += [
            f"Heads whose τ is > 0 (one-sided Wilcoxon signed-rank over instances): p ≤ {q} "
            f"before correction, and after Benjamini–Hochberg at q = {q} across the heads.",
            "",
            "| τ with | heads tested | significant | after BH |",
            "|---|---|---|---|",
        ]
        for key, counts in summary["heads"].items():
            share = counts["share_significant"]
            share_bh = counts["share_significant_bh"]
            lines.append(
                f"| {key.removeprefix('tau_')} | {counts['num_tested']} / {counts['num_heads']} | "
                f"{counts['significant']} ({_cell(share and 100 * share, 0)}%) | "
                f"{counts['significant_bh']} ({_cell(share_bh and 100 * share_bh, 0)}%) |"
            )
        lines.append("")
    grid_views = any(v["layer"] is not None for v in summary["views"].values())
    if grid_views:
        for name, title in (("gradient", "τ_g"), ("loo", "τ_loo")):
            if not any(_tau(v, name) for v in summary["views"].values()):
                continue
            lines += _grid(
                summary, f"Mean {title} (★: Wilcoxon τ > 0 significant after BH across heads)",
                lambda v, n=name: _cell(_tau(v, n).get("mean"), mark=_tau(v, n).get(
                    "significant_bh", False)),
            )  # fmt: skip
            lines += _grid(
                summary, f"Sig. Frac. of {title}: Kendall p ≤ 0.05 / after BH within the view",
                lambda v, n=name: f"{_cell(_tau(v, n).get('sig_frac'))} / "
                f"{_cell(_tau(v, n).get('sig_frac_bh'))}",
            )  # fmt: skip
            lines += _grid(
                summary, f"Wilcoxon p of {title} > 0 (BH-adjusted across heads)",
                lambda v, n=name: _cell(_tau(v, n).get("wilcoxon_p"), 3)
                + (f" ({_cell(_tau(v, n)['wilcoxon_p_bh'], 3)})"
                   if _tau(v, n).get("wilcoxon_p_bh") is not None else ""),
            )  # fmt: skip
        for field, title in (
            ("permutation_median_tvd", "Permutation: median over instances of the median TVD"),
            ("adversarial_max_jsd", "Adversarial: median over instances of the max JSD"),
        ):
            if any(v[field] is not None for v in summary["views"].values()):
                lines += _grid(summary, title, lambda v, f=field: _cell(v[f], 3))
    relevance = [label for label in summary["labels"] if label in RELEVANCE_VIEWS]
    if relevance:
        lines += [
            "### Rollout and flow (last layer's CLS row)",
            "",
            "| view | mean τ_g | Sig. Frac. τ_g | Wilcoxon p τ_g | mean τ_loo | Sig. Frac. τ_loo "
            "| Wilcoxon p τ_loo | permutation | adversarial |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for label in relevance:
            view = summary["views"][label]
            cells = []
            for name in TAU_NAMES:
                tau = _tau(view, name)
                cells += [
                    _cell(tau.get("mean")),
                    f"{_cell(tau.get('sig_frac'))} / {_cell(tau.get('sig_frac_bh'))}",
                    _cell(tau.get("wilcoxon_p"), 3),
                ]
            lines.append(f"| {label} | " + " | ".join(cells) + " | n/a | n/a |")
        lines += ["", f"n/a: {NOT_DEFINED}. The gradient holds every attention map fixed.", ""]
    return "\n".join(lines)
