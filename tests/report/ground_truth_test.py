"""attn_audit.report.ground_truth: where the mass goes on misses, the CSV rows and the
RESULTS.md section from hand-made entries."""

import numpy as np
import pytest
from scipy import stats

from attn_audit.report.ground_truth import (
    csv_rows,
    exact_by_class,
    markdown_section,
    miss_masses,
    ranking_agreement,
)


def _scored(values):
    return [{"plausibility": {"attention": v}} for v in values]


def test_exact_top_k_by_predicted_class():
    scored = [{"index": i, "plausibility": {"attention": {"exact_top_k": v}}}
              for i, v in enumerate([1.0, 0.0, 1.0, None, 1.0])]  # fmt: skip
    predicted = {0: 1, 1: 0, 2: 0, 3: 0, 4: 1}
    assert exact_by_class(scored, predicted, "attention") == {
        "0": {"mean": 0.5, "count": 2}, "1": {"mean": 1.0, "count": 2}}  # fmt: skip


def test_miss_masses_average_only_the_misses():
    scored = _scored([
        {"exact_top_k": 1.0, "evidence_mass": 0.9, "neighbour_mass": 0.05},
        {"exact_top_k": 0.0, "evidence_mass": 0.2, "neighbour_mass": 0.5},
        {"exact_top_k": 0.0, "evidence_mass": 0.4, "neighbour_mass": 0.1},
        {"exact_top_k": None, "evidence_mass": None, "neighbour_mass": None},  # undefined
        None,  # the explainer did not run on this instance
    ])  # fmt: skip
    found = miss_masses(scored, "attention")
    assert found["misses"] == 2
    assert found["miss_evidence_mass"] == pytest.approx(0.3)
    assert found["miss_neighbour_mass"] == pytest.approx(0.3)
    assert found["miss_other_mass"] == pytest.approx(0.4)
    none = miss_masses(scored[:1], "attention")
    assert none == {"misses": 0, "miss_evidence_mass": None, "miss_neighbour_mass": None,
                    "miss_other_mass": None}  # fmt: skip


def test_rows_and_section_from_entries():
    interval = {"mean": 0.5, "low": 0.25, "high": 0.75, "count": 4}
    measures = {m: interval for m in ("auprc", "top_k_f1", "exact_top_k", "evidence_mass",
                                      "neighbour_mass")}  # fmt: skip
    entries = [
        {"task": "planted:xor", "encoder": encoder, "test_accuracy": accuracy, "instances": 4,
         "defined": 4, "evidence": "the planted markers (a, b, c, d)",
         "label_names": ["b same as d", "b differs from d"],
         "explainers": {"attention": {**measures, "misses": 2, "miss_evidence_mass": 0.1,
                                      "miss_neighbour_mass": 0.6, "miss_other_mass": 0.3,
                                      "exact_top_k_by_class": {
                                          "0": {"mean": 0.25, "count": 2},
                                          "1": {"mean": 1.0, "count": 2}}}}}
        for encoder, accuracy in (("average", 0.99), ("lstm", 0.98))
    ]  # fmt: skip
    rows = csv_rows(entries)
    assert [r["encoder"] for r in rows] == ["average", "lstm"]
    assert rows[0]["exact_top_k_low"] == 0.25 and rows[1]["misses"] == 2
    assert rows[0]["exact_top_k_by_class"] == "0:0.2500;1:1.0000"
    section = markdown_section(entries, "python -m experiments.ground_truth", 1.0)
    assert "Test accuracy: BiLSTM 0.980, Average 0.990" in section  # encoders in a fixed order
    assert "| explainer | BiLSTM | Average |" in section
    assert "| attention | 50% [25, 75] | 50% [25, 75] |" in section
    assert "| attention | 2: 0.10 / 0.60 / 0.30 | 2: 0.10 / 0.60 / 0.30 |" in section
    assert "0 = b same as d, 1 = b differs from d" in section
    assert "| attention | 25% / 100% | 25% / 100% |" in section


def _records(ground, eraser):
    """Plausibility and ERASER records from ``[X, N]`` tables over explainers a, b, c, ..."""
    names = "abcdefgh"[: len(ground)]
    scored = [
        {"index": n, "plausibility": {x: {"auprc": ground[i][n]} for i, x in enumerate(names)}}
        for n in range(len(ground[0]))
    ]
    metrics = [{"index": n, "metrics": {x: {
        "aopc_comprehensiveness": {"delete": eraser[i][n]},
        "aopc_sufficiency": {"delete": -eraser[i][n]}} for i, x in enumerate(names)}}
        for n in range(len(ground[0]))]  # fmt: skip
    return scored, metrics, list(names)


def test_ranking_agreement_is_kendall_tau_of_the_means_with_a_bootstrap_ci():
    rng = np.random.default_rng(0)
    ground = rng.random((5, 40))
    scored, metrics, names = _records(ground, 2 * ground + 0.01 * rng.random((5, 40)))
    found = ranking_agreement(scored, metrics, names, seed=1, resamples=200)
    for metric in ("aopc_comprehensiveness", "aopc_sufficiency"):  # sufficiency negated
        assert found[metric]["tau"] == pytest.approx(1.0)
        assert found[metric]["low"] <= found[metric]["tau"] <= found[metric]["high"] + 1e-12
    noise = rng.random((5, 40))
    scored, metrics, names = _records(ground, noise)
    found = ranking_agreement(scored, metrics, names, seed=1, resamples=200)
    expected = stats.kendalltau(ground.mean(1), noise.mean(1)).statistic
    assert found["aopc_comprehensiveness"]["tau"] == pytest.approx(expected)
    assert found["aopc_comprehensiveness"]["instances"] == 40
    # an instance with an undefined measure is left out of both sides
    scored[3]["plausibility"]["b"]["auprc"] = None
    found = ranking_agreement(scored, metrics, names, seed=1, resamples=50)
    keep = np.arange(40) != 3
    expected = stats.kendalltau(ground[:, keep].mean(1), noise[:, keep].mean(1)).statistic
    assert found["aopc_comprehensiveness"]["tau"] == pytest.approx(expected)
    assert found["aopc_comprehensiveness"]["instances"] == 39
    with pytest.raises(ValueError, match="different instances"):
        ranking_agreement(scored[:-1], metrics, names)
