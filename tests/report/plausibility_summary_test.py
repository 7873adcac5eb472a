"""The plausibility summary: means over the defined instances with bootstrap CIs, the
ranking by AUPRC, paired differences, and its Markdown."""

import numpy as np
import pytest

from attn_audit.report.plausibility_summary import plausibility_markdown, summarize_plausibility


def _records(n=60, seed=0):
    rng = np.random.default_rng(seed)
    records = []
    for index in range(n):
        undefined = index % 10 == 0
        entry = {}
        for name, centre in (("attention", 0.6), ("occlusion", 0.5), ("random", 0.3)):
            value = None if undefined else float(np.clip(rng.normal(centre, 0.1), 0, 1))
            entry[name] = {"auprc": value, "top_k_f1": value, "exact_top_k": value}
        records.append({"index": index, "plausibility": entry})
    return records


def test_means_ranking_and_paired_differences():
    records = _records()
    summary = summarize_plausibility(records, ["random", "occlusion", "attention"], {"x": 1})
    assert summary["instances"] == 60 and summary["defined"] == 54
    assert summary["ranking"] == ["attention", "occlusion", "random"]
    for name in ("attention", "occlusion", "random"):
        values = [r["plausibility"][name]["auprc"] for r in records]
        defined = [v for v in values if v is not None]
        entry = summary["explanations"][name]["auprc"]
        assert entry["mean"] == pytest.approx(np.mean(defined))
        assert entry["count"] == 54 and entry["low"] < entry["mean"] < entry["high"]
    pair = summary["comparisons"]["auprc"]["random|attention"]
    assert pair["mean"] < 0 and pair["significant"]
    markdown = plausibility_markdown(summary)
    assert "| 1 | **attention** |" in markdown and "54 instances have evidence" in markdown
    assert "- random: " in markdown and " *" in markdown
