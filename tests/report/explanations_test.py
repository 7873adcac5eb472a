"""attn_audit.report.explanations: the explainer summary's τ against scipy, its timings and
diagnostics, and its Markdown table."""

import numpy as np
import pytest
import scipy.stats

from attn_audit.report import explanations


def toy_records(num=12, seed=0):
    rng = np.random.default_rng(seed)
    records = []
    for index in range(num):
        n = int(rng.integers(2, 9))
        records.append({
            "index": index, "tokens": [f"w{i}" for i in range(n)],
            "attention": rng.random(n).tolist(), "occlusion": rng.normal(size=n).tolist(),
            "integrated_gradients": rng.normal(size=n).tolist(),
            "integrated_gradients_completeness_gap": float(rng.random() * 1e-6),
            "shapley_exact": None if n > 6 else rng.normal(size=n).tolist(),
        })  # fmt: skip
    return records


TIMINGS = {
    "program_seconds": {"prediction": 0.5, "occlusion": 2.0, "integrated_gradients": 4.0,
                        "shapley_exact": 8.0},
    "program_compile_seconds": {"prediction": 1.0, "occlusion": 1.5,
                                "integrated_gradients": 3.0, "shapley_exact": 2.5},
    "wall_seconds": 20.0, "compile_wait_seconds": 3.0, "compile_seconds": 8.0,
}  # fmt: skip
EXPLAINERS = ("attention", "integrated_gradients", "occlusion", "shapley_exact")


def test_summary_means_scipys_tau_and_reports_each_programs_seconds():
    records = toy_records()
    summary = explanations.summarize_explanations(
        records, EXPLAINERS, {"run": "runs/x", "data": {"split": "test"}, "timings": TIMINGS}
    )
    entries = summary["explainers"]
    for name in ("occlusion", "shapley_exact"):
        taus = [scipy.stats.kendalltau(r["attention"], r[name]).statistic
                for r in records if r[name] is not None]  # fmt: skip
        assert entries[name]["mean_tau_with_attention"] == pytest.approx(np.mean(taus), abs=1e-9)
    assert entries["shapley_exact"]["instances"] == sum(len(r["tokens"]) <= 6 for r in records)
    assert entries["attention"]["run_seconds"] == 0.5  # the prediction program
    assert entries["occlusion"]["ms_per_instance"] == pytest.approx(2000 / 12)
    gaps = [r["integrated_gradients_completeness_gap"] for r in records]
    assert entries["integrated_gradients"]["completeness_gap"]["max"] == max(gaps)
    markdown = explanations.explanations_markdown(summary)
    assert "| occlusion | 12 |" in markdown and "compile" in markdown
    assert "Exact Shapley values:" in markdown and "completeness gap" in markdown
