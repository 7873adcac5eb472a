"""attn_audit.report.table2: JW's Table 2 rows from an audit summary, and the RESULTS.md section
beside the paper's numbers."""

import pytest

from attn_audit.report import paper, table2


def audit_summary():
    def tau(mean):
        return {"mean": mean, "std": 0.1, "sig_frac": 0.5}

    return {
        "label_names": ["negative", "positive"],
        "table2": {
            "negative": {
                "n": 3,
                "tau_gradient": tau(0.4),
                "tau_loo": tau(0.3),
                "tau_gradient_loo": tau(0.6),
            },
            "positive": {
                "n": 2,
                "tau_gradient": tau(0.2),
                "tau_loo": tau(0.1),
                "tau_gradient_loo": tau(0.5),
            },
            "all": {"n": 5, "tau_gradient": tau(0.32)},
            "unused": {"n": 0},
        },  # fmt: skip
        "permutation": {"by_class": {"negative": {"median": 0.05}}},
        "adversarial": {"by_class": {"positive": {"share_jsd_ge_0_6": 0.75}}},
    }


def test_table_rows_one_per_class_with_instances():
    rows = table2.table_rows("sst", "lstm", "tanh", audit_summary(),
                             {"accuracy": 0.8, "roc_auc": 0.9})  # fmt: skip
    assert [row["class"] for row in rows] == ["negative", "positive"]
    negative, positive = rows
    assert set(table2.COLUMNS) <= set(negative)
    assert (negative["n"], negative["tau_g_mean"], negative["tau_loo_std"]) == (3, 0.4, 0.1)
    assert negative["perm_median_tvd_median"] == 0.05 and positive["perm_median_tvd_median"] is None
    assert positive["adv_share_jsd_ge_0_6"] == 0.75 and negative["adv_share_jsd_ge_0_6"] is None


def test_budget_text():
    assert table2.budget_text({"epochs": None, "train_limit": None}) == "the paper's"
    assert table2.budget_text({"epochs": 2, "train_limit": 500}) == "epochs 2, train_limit 500"


@pytest.fixture
def model():
    rows = table2.table_rows("sst", "lstm", "tanh", audit_summary(),
                             {"accuracy": 0.8, "roc_auc": 0.9})  # fmt: skip
    return {"dataset": "sst", "encoder": "lstm", "attention": "tanh", "rows": rows,
            "budget": {"epochs": None}, "data_notes": ["note A"], "label_names": ["negative",
            "positive"], "test_accuracy": 0.8, "training_minutes": 1.25, "audit_minutes": 0.5,
            "seed": 1, "seeds_that_learnt_nothing": [0]}  # fmt: skip


def test_comparison_with_jw_and_jw_code(model):
    lines = table2.comparison_lines([model])
    (row,) = [line for line in lines if line.startswith("| sst |")]
    ours = paper.mean_tau_g("sst", model["rows"])
    published = paper.JW_MEAN_TAU_G["sst"]["lstm"]
    assert f"| {ours:.3f} | {published:.3f} |" in row
    difference = f"{ours - published:+.3f}"
    assert (f"**{difference}**" if abs(ours - published) > 0.08 else difference) in row
    assert row.endswith("| 1.2 | 0.5 |")


def test_markdown_section_has_every_class_the_paper_and_the_notes(model):
    text = table2.markdown_section([model], wall_minutes=3.0)
    assert "| sst | lstm+tanh | negative | 3 | 0.800 | 0.900 | 0.40 ± 0.10 (0.50) |" in text
    assert "| | *JW* |" in text  # the paper's cells under each class of a tanh model
    assert "- sst: the paper's (lstm+tanh)" in text and "- sst: note A" in text
    assert "seed(s) 0 learnt nothing" in text and "seed 1 is kept" in text
    assert text.rstrip().endswith("Wall time of the last command: 3.0 min.")
    assert "Wall time" not in table2.markdown_section([model], wall_minutes=None)
