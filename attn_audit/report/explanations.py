"""Summaries of explainer records (``experiments.explain``): timings, diagnostics, agreement.

Pure numpy (no jax), like the rest of ``report``.
"""

import numpy as np

from attn_audit import stats


def _padded(rows: list[list[float]]) -> tuple[np.ndarray, np.ndarray]:
    width = max((len(r) for r in rows), default=0)
    values = np.zeros((len(rows), width))
    mask = np.zeros((len(rows), width), bool)
    for i, row in enumerate(rows):
        values[i, : len(row)], mask[i, : len(row)] = row, True
    return values, mask


def mean_tau_with(records: list[dict], reference: str, explainer: str) -> float | None:
    """Mean Kendall τ-b between two explainers' scores over the instances where it is defined."""
    pairs = [(r[reference], r[explainer]) for r in records
             if r.get(reference) is not None and r.get(explainer) is not None]  # fmt: skip
    if not pairs:
        return None
    x, mask = _padded([a for a, _ in pairs])
    y, _ = _padded([b for _, b in pairs])
    tau, _ = stats.kendall_tau_b(x, y, mask)
    finite = tau[np.isfinite(tau)]
    return float(finite.mean()) if finite.size else None


def summarize_explanations(records: list[dict], explainers, provenance: dict) -> dict:
    """Per explainer: instances explained, compile and run seconds, mean τ-b with attention.

    Args:
      records: ``explainers.run_explain``'s records.
      explainers: the explainers run.
      provenance: run, data, options, machine and ``timings`` (with ``program_seconds`` and
        ``program_compile_seconds``, keyed by program: ``prediction`` holds attention).

    Returns:
      A JSON-ready dict: ``instances``, ``explainers`` (name → entry), ``provenance``.
    """
    timings = provenance.get("timings", {})
    run_seconds, compile_seconds = (
        timings.get("program_seconds", {}),
        timings.get("program_compile_seconds", {}),
    )
    entries = {}
    for name in explainers:
        program = "prediction" if name == "attention" else name
        done = sum(r.get(name) is not None for r in records)
        entry = {
            "instances": done,
            "compile_seconds": compile_seconds.get(program),
            "run_seconds": run_seconds.get(program),
        }
        if entry["run_seconds"] is not None and records:
            entry["ms_per_instance"] = 1000.0 * entry["run_seconds"] / len(records)
        if "attention" in explainers and name != "attention":
            entry["mean_tau_with_attention"] = mean_tau_with(records, "attention", name)
        if name == "integrated_gradients":
            gaps = np.array([r["integrated_gradients_completeness_gap"] for r in records])
            entry["completeness_gap"] = {
                "mean": float(gaps.mean()), "median": float(np.median(gaps)),
                "max": float(gaps.max()),
            } if gaps.size else None  # fmt: skip
        if name == "shapley_sampling":
            errors = [e for r in records for e in r["shapley_sampling_standard_error"]]
            entry["mean_standard_error"] = float(np.mean(errors)) if errors else None
        entries[name] = entry
    return {"instances": len(records), "explainers": entries, "provenance": provenance}


def _cell(value, pattern: str) -> str:
    return "–" if value is None else pattern.format(value)


def explanations_markdown(summary: dict) -> str:
    """The summary as Markdown: one row per explainer, then the diagnostics."""
    provenance = summary["provenance"]
    lines = [
        f"# Explanations of {summary['instances']} instances",
        "",
        f"Run `{provenance.get('run', '?')}`, split `{provenance.get('data', {}).get('split')}`.",
        "",
        "| explainer | instances | mean τ-b with attention | compile s | run s | ms / instance |",
        "|---|---|---|---|---|---|",
    ]
    for name, entry in summary["explainers"].items():
        cells = [
            name, str(entry["instances"]),
            _cell(entry.get("mean_tau_with_attention"), "{:.3f}"),
            _cell(entry["compile_seconds"], "{:.1f}"), _cell(entry["run_seconds"], "{:.1f}"),
            _cell(entry.get("ms_per_instance"), "{:.2f}"),
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    explainers = summary["explainers"]
    gap = explainers.get("integrated_gradients", {}).get("completeness_gap")
    if gap:
        lines += [
            "",
            "Integrated gradients' completeness gap |Σ IG − (f(x) − f(b))|: "
            f"mean {gap['mean']:.2e}, median {gap['median']:.2e}, max {gap['max']:.2e}.",
        ]
    error = explainers.get("shapley_sampling", {}).get("mean_standard_error")
    if error is not None:
        lines += ["", f"Sampled Shapley values' mean standard error per token: {error:.2e}."]
    if "shapley_exact" in explainers:
        lines += ["", f"Exact Shapley values: {explainers['shapley_exact']['instances']} of "
                  f"{summary['instances']} instances (the others have more tokens than "
                  "`shapley_max_tokens`)."]  # fmt: skip
    timings = provenance.get("timings", {})
    if timings:
        lines += [
            "",
            f"Wall {timings.get('wall_seconds', 0):.1f} s, of which "
            f"{timings.get('compile_wait_seconds', 0):.1f} s waiting for compilation "
            f"({timings.get('compile_seconds', 0):.1f} s compiling on two threads).",
        ]
    return "\n".join(lines) + "\n"
