"""attn_audit.report.figures: every figure is a PNG, for odd inputs too."""

import copy

import pytest

from attn_audit import report
from tests._fixtures import LABELS, assert_png, without


def all_null_adversaries(records):
    records = copy.deepcopy(records)
    for record in records:
        record.update(adversarial_attention=None, adversarial_max_jsd=0.0, adversarial_tvd=0.0)
    return records


@pytest.mark.parametrize(
    "case",
    ["full", "all_adversaries_null", "one_class_only", "three_label_names", "single_record"],
)
def test_every_figure_is_a_png(records, tmp_path, case):
    labels = LABELS
    if case == "all_adversaries_null":
        records = all_null_adversaries(records)
    elif case == "one_class_only":
        records = [r for r in records if r["predicted_class"] == 1]
    elif case == "three_label_names":
        labels = ["negative", "positive", "neutral"]
    elif case == "single_record":
        records = records[4:5]
    paths = report.write_all(records, labels, tmp_path)
    assert [p.name for p in paths] == list(report.figures.FIGURE_NAMES.values())
    for path in paths:
        assert_png(path)


def test_figures_skip_absent_audits_and_survive_empty_input(records, tmp_path):
    paths = report.write_all(without(records, "permutation", "adversarial"), LABELS, tmp_path / "a")
    assert [p.name for p in paths] == ["tau_histograms.png", "attention_heatmaps.png"]
    assert report.write_all([], LABELS, tmp_path / "b") == []
    for figure in (
        report.tau_histograms,
        report.permutation_violin,
        report.adversarial_histogram,
        report.adversarial_violin,
    ):
        assert_png(figure([], LABELS, tmp_path / f"empty_{figure.__name__}.png"))
    assert_png(report.attention_heatmaps([], tmp_path / "empty_heatmaps.png"))


def test_heatmaps_prefer_short_high_jsd_instances_and_handle_long_texts(records, tmp_path):
    long_only = [r for r in records if len(r["tokens"]) > 30 and r["adversarial_attention"]]
    assert long_only
    assert_png(report.attention_heatmaps(long_only, tmp_path / "long.png", num_instances=2))
    assert_png(report.attention_heatmaps(records, tmp_path / "one.png", num_instances=1))
