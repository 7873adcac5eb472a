"""attn_audit.report.summary: summary numbers against numpy, omitted audits, Markdown."""

import json

import numpy as np
import pytest

from attn_audit import report
from tests._fixtures import LABELS, without


def bin_of(max_attention):
    """Max-attention bin by explicit comparisons (JW: [0,.25), [.25,.5), [.5,.75), [.75,1])."""
    if max_attention < 0.25:
        return 0
    if max_attention < 0.5:
        return 1
    if max_attention < 0.75:
        return 2
    return 3


@pytest.fixture(scope="module")
def summary(records):
    return report.summarize(records, LABELS, {"model": "bilstm-tanh", "seed": 0})


@pytest.mark.parametrize("group", ["negative", "positive", "all"])
@pytest.mark.parametrize(
    "tau_field, p_field",
    [("tau_gradient", "p_gradient"), ("tau_loo", "p_loo"), ("tau_gradient_loo", "p_gradient_loo")],
)
def test_table2_matches_numpy(records, summary, group, tau_field, p_field):
    chosen = [r for r in records if group == "all" or LABELS[r["predicted_class"]] == group]
    defined = [r for r in chosen if r[tau_field] is not None]
    taus = np.array([r[tau_field] for r in defined])
    p_values = np.array([r[p_field] for r in defined])
    row = summary["table2"][group]
    assert row["n"] == len(chosen)
    cell = row[tau_field]
    assert cell["undefined"] == sum(r[tau_field] is None for r in chosen)
    assert cell["n_defined"] == len(defined)
    assert cell["mean"] == pytest.approx(np.mean(taus), abs=1e-12)
    assert cell["std"] == pytest.approx(np.std(taus, ddof=0), abs=1e-12)
    assert cell["sig_frac"] == pytest.approx(np.mean(p_values <= 0.05), abs=1e-12)


def test_bins_include_edges_and_match_explicit_comparisons(records, summary):
    max_attention = [r["max_attention"] for r in records]
    assert {0.25, 0.5, 0.75, 1.0} <= set(max_attention)
    expected_bins = np.array([bin_of(a) for a in max_attention])
    tvd = np.array([r["permutation_median_tvd"] for r in records])
    jsd = np.array([r["adversarial_max_jsd"] for r in records])
    for number, row in enumerate(summary["permutation"]["bins"]):
        in_bin = tvd[expected_bins == number]
        assert row["n"] == in_bin.size
        assert row["median"] == pytest.approx(np.median(in_bin))
        assert row["q25"] == pytest.approx(np.quantile(in_bin, 0.25))
        assert row["q75"] == pytest.approx(np.quantile(in_bin, 0.75))
        adversarial_row = summary["adversarial"]["bins"][number]
        assert adversarial_row["n"] == in_bin.size
        assert adversarial_row["median_max_jsd"] == pytest.approx(
            np.median(jsd[expected_bins == number])
        )
    assert summary["permutation"]["median"] == pytest.approx(np.median(tvd))


def test_edge_values_fall_in_the_upper_bin():
    max_attention = [0.0, 0.1, 0.25, 0.4, 0.5, 0.6, 0.75, 0.9, 1.0]
    records = [
        {"id": str(i), "predicted_class": 0, "max_attention": a, "permutation_median_tvd": i / 10}
        for i, a in enumerate(max_attention)
    ]
    bins = report.summarize(records, LABELS)["permutation"]["bins"]
    assert [row["n"] for row in bins] == [2, 2, 2, 3]
    assert [row["median"] for row in bins] == pytest.approx([0.05, 0.25, 0.45, 0.7])
    assert [row["bin"] for row in bins] == list(report.MAX_ATTENTION_BINS)


def test_adversarial_matches_numpy(records, summary):
    jsd = np.array([r["adversarial_max_jsd"] for r in records])
    tvd = np.array([r["adversarial_tvd"] for r in records])
    adversarial = summary["adversarial"]
    assert adversarial["n"] == len(records)
    quantiles = adversarial["max_jsd_quantiles"]
    assert list(quantiles) == ["0", "0.1", "0.25", "0.5", "0.75", "0.9", "1"]
    for key, value in quantiles.items():
        assert value == pytest.approx(np.quantile(jsd, float(key)))
    counts, edges = np.histogram(jsd, bins=14, range=(0.0, 0.7))
    assert adversarial["max_jsd_histogram"]["counts"] == counts.tolist()
    assert adversarial["max_jsd_histogram"]["edges"] == pytest.approx(edges)
    assert adversarial["share_jsd_ge_0_6"] == pytest.approx(np.mean(jsd >= 0.6))
    only_original = [r["adversarial_attention"] is None for r in records]
    assert adversarial["share_only_original"] == pytest.approx(np.mean(only_original))
    assert adversarial["median_tvd"] == pytest.approx(np.median(tvd))


def test_summary_is_strict_json_and_passes_provenance_through(summary):
    text = json.dumps(summary, allow_nan=False)
    assert json.loads(text) == summary
    assert summary["provenance"] == {"model": "bilstm-tanh", "seed": 0}
    assert summary["n_instances"] == 40
    assert list(summary["table2"]) == ["negative", "positive", "all"]


def test_absent_audits_are_omitted(records):
    summary = report.summarize(without(records, "loo", "permutation", "adversarial"), LABELS)
    assert "permutation" not in summary and "adversarial" not in summary
    assert set(summary["table2"]["all"]) == {"n", "tau_gradient"}
    markdown = report.summary_markdown(summary)
    assert "Permutation" not in markdown and "Adversarial" not in markdown
    bare = [{"id": "x", "predicted_class": 1, "tokens": ["a"]}]
    assert "table2" not in report.summarize(bare, LABELS)


def test_a_vocabulary_of_classes_lists_only_those_predicted(records):
    # bAbI: 36 candidate answers, a handful ever predicted.
    vocabulary = ("negative", "positive", "x", "y", "z")
    negatives = [r for r in records if r["predicted_class"] == 0]
    assert report.summarize(negatives, vocabulary)["class_counts"] == {"negative": len(negatives)}
    counts = report.summarize(records, vocabulary)["class_counts"]
    assert list(counts) == ["negative", "positive"] and sum(counts.values()) == len(records)


def test_class_without_instances_has_empty_statistics(records):
    negatives = [r for r in records if r["predicted_class"] == 0]
    summary = report.summarize(negatives, LABELS)
    assert summary["class_counts"] == {"negative": len(negatives), "positive": 0}
    empty = summary["table2"]["positive"]["tau_gradient"]
    assert empty == {"mean": None, "std": None, "sig_frac": None, "undefined": 0, "n_defined": 0}
    assert summary["adversarial"]["by_class"]["positive"]["median_max_jsd"] is None
    markdown = report.summary_markdown(summary)
    assert "| positive | ours | 0 | — | — | — |" in markdown
    json.dumps(summary, allow_nan=False)


def test_markdown_has_formatted_row_and_paper_row(records, summary):
    cell = summary["table2"]["negative"]["tau_gradient"]
    expected = f"{cell['mean']:.2f} ± {cell['std']:.2f} ({cell['sig_frac']:.2f})"
    assert report.format_tau_cell(cell) == expected
    paper = {"tau_gradient": {"negative": "0.40 ± 0.21 (0.59)", "positive": "0.38 ± 0.19 (0.58)"}}
    markdown = report.summary_markdown(summary, paper_row=paper)
    negative_row = next(
        line for line in markdown.splitlines() if line.startswith("| negative | ours")
    )
    assert expected in negative_row
    undefined = " / ".join(
        str(summary["table2"]["negative"][m]["undefined"])
        for m in ("tau_gradient", "tau_loo", "tau_gradient_loo")
    )
    assert negative_row.endswith(f"| {undefined} |")
    assert "| negative | JW 2019 | | 0.40 ± 0.21 (0.59) | — | — | |" in markdown
    assert "| [0.75, 1] |" in markdown
    assert "bilstm-tanh" in markdown


def test_missing_predicted_class_is_a_clear_error():
    with pytest.raises(ValueError, match="'predicted_class'"):
        report.summarize([{"id": "x"}], LABELS)
