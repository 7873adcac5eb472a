"""attn_audit.report.faithfulness across models: each model's CSV rows and RESULTS.md section,
from a summary with made-up numbers (the single-run Markdown is tested with the runner)."""

import copy

import pytest

from attn_audit.report import faithfulness
from tests.report.faithfulness_figures_test import RANKING, ci, synthetic_summary


def summary_with_comparisons():
    summary = synthetic_summary()
    summary["explainers"]["occlusion"]["flip_fraction"] = ci(0.25)
    summary["comparisons"] = {
        "aopc_comprehensiveness/delete": {  # occlusion − attention > 0: attention worse
            "occlusion|attention": {"mean": 0.3, "significant": True},
            "attention|random": {"mean": 0.2, "significant": True},  # attention better
            "gradient|attention": {"mean": 0.1, "significant": False},
        },
    }
    summary["provenance"] = {"budget": "epochs 2", "training_minutes": 1.5,
                             "stage_minutes": {"explain": 2.0, "metrics": 0.5}}  # fmt: skip
    return summary


def test_model_rows_carry_every_statistic_with_its_interval():
    summary = summary_with_comparisons()
    rows = faithfulness.model_rows("sst", "lstm+tanh", 0.8, summary)
    assert [row["explainer"] for row in rows] == RANKING
    assert [row["rank"] for row in rows] == [1, 2, 3, 4]
    occlusion = rows[0]
    assert occlusion["aopc_comp_delete_mean"] == 1.0
    assert occlusion["aopc_comp_delete_low"] == pytest.approx(0.95)
    assert occlusion["flip_fraction_high"] == pytest.approx(0.30)
    cascade_end = summary["randomisation"][faithfulness.CASCADE_END]["occlusion"]["mean"]
    assert occlusion["rho_randomised_mean"] == cascade_end
    # Measures a summary lacks are empty cells, not errors.
    assert rows[1]["flip_fraction_mean"] is None and rows[1]["top1_flip_rate_low"] is None


def test_model_section_ranks_and_compares_with_attention():
    lines = faithfulness.model_section("sst", "lstm+tanh", 0.8, summary_with_comparisons())
    text = "\n".join(lines)
    assert lines[0].startswith("### sst, lstm+tanh (test accuracy 0.800; 8 instances")
    assert "Training: epochs 2, 1.5 min. Faithfulness: explain 2.0 min, metrics 0.5 min." in text
    table = [line for line in lines if line.startswith("| ") and line[2].isdigit()]
    assert [row.split(" | ")[1] for row in table] == ["occlusion", "gradient", "**attention**",
                                                      "random"]  # fmt: skip
    # Only significant pairs count, and the direction follows the pair's order.
    assert "comprehensiveness better than random; worse than occlusion;" in text
    assert "flips better than none; worse than none." in text


def test_model_section_says_when_a_block_has_no_parameters():
    summary = summary_with_comparisons()
    assert "No parameters" not in "\n".join(faithfulness.model_section("sst", "m", 0.8, summary))
    summary = copy.deepcopy(summary)
    summary["provenance"]["blocks_without_parameters"] = ["attention"]
    assert "No parameters in attention" in "\n".join(
        faithfulness.model_section("sst", "m", 0.8, summary)
    )


def test_rounded_rounds_floats_only_at_any_depth():
    tree = {"a": 0.123456789, "b": [1, 2.000004, {"c": None, "d": "x"}], "e": True}
    assert faithfulness.rounded(tree) == {"a": 0.12346, "b": [1, 2.0, {"c": None, "d": "x"}],
                                          "e": True}  # fmt: skip
    assert faithfulness.rounded(0.55555, 2) == 0.56
