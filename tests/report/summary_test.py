"""Reports: summary numbers against numpy, omitted audits, Markdown, PNG figures, records files."""

import copy
import json
import re

import numpy as np
import pytest

from attn_audit import report

LABELS = ["negative", "positive"]
WORDS = ["the", "film", "was", "a", "remarkably", "dull", "superb", "plot", "!", "$5", "it's"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
AUDIT_FIELDS = {
    "loo": ("loo", "tau_loo", "p_loo", "tau_gradient_loo", "p_gradient_loo"),
    "permutation": ("permutation_median_tvd",),
    "adversarial": ("adversarial_attention", "adversarial_max_jsd", "adversarial_tvd"),
}
# Attention whose max sits exactly on a bin edge: 0.25, 0.5, 0.75 and 1.0.
EDGE_ATTENTION = [[0.25] * 4, [0.5, 0.5], [0.75, 0.25], [1.0]]


def make_records(num=40, seed=0):
    """Seeded records of two classes with varied lengths, some null τ and null adversaries."""
    rng = np.random.default_rng(seed)
    records = []
    for number in range(num):
        if number < len(EDGE_ATTENTION):
            attention = np.array(EDGE_ATTENTION[number])
        else:
            attention = rng.dirichlet(np.full(int(rng.integers(3, 45)), 0.3))
        length = len(attention)
        positive = float(rng.random())
        record = {
            "id": f"ex{number}",
            "index": number,
            "tokens": [str(w) for w in rng.choice(WORDS, length)],
            "label": int(rng.integers(0, 2)),
            "prediction": [1 - positive, positive],
            "predicted_class": int(positive > 0.5),
            "attention": attention.tolist(),
            "gradient": rng.dirichlet(np.ones(length)).tolist(),
            "loo": rng.random(length).tolist(),
            "max_attention": float(attention.max()),
            "permutation_median_tvd": float(rng.random() * 0.3),
        }
        for tau_field, p_field, every in [
            ("tau_gradient", "p_gradient", 7),
            ("tau_loo", "p_loo", 5),
            ("tau_gradient_loo", "p_gradient_loo", 9),
        ]:
            undefined = number % every == 3
            record[tau_field] = None if undefined else float(rng.uniform(-0.5, 0.9))
            record[p_field] = None if undefined else float(rng.random() ** 3)
        if number % 6 == 1:
            record.update(adversarial_attention=None, adversarial_max_jsd=0.0, adversarial_tvd=0.0)
        else:
            record.update(
                adversarial_attention=rng.dirichlet(np.full(length, 0.3)).tolist(),
                adversarial_max_jsd=float(rng.uniform(0.3, 0.69)),
                adversarial_tvd=float(rng.uniform(0.0, 0.05)),
            )
        records.append(record)
    return records


def without(records, *audits):
    """``records`` with the fields of ``audits`` removed, as if those audits were not run."""
    records = copy.deepcopy(records)
    for record in records:
        for audit in audits:
            for field in AUDIT_FIELDS[audit]:
                record.pop(field, None)
    return records


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
def records():
    return make_records()


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


def assert_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, path
    assert len(data) < 200_000, (path, len(data))


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


def test_records_round_trip_with_nan_as_null(records, tmp_path):
    path = tmp_path / "records.jsonl"
    written = copy.deepcopy(records[:3])
    written[0]["tau_gradient"] = float("nan")
    written[1]["attention"] = np.array([0.5, np.nan], dtype=np.float32)
    written[1]["max_attention"] = np.float32(0.5)
    written[2]["index"] = np.int64(2)
    assert report.write_records(path, written) == path
    read = report.read_records(path)
    assert read[0]["tau_gradient"] is None
    assert read[1]["attention"] == [0.5, None]
    assert type(read[1]["max_attention"]) is float and type(read[2]["index"]) is int
    expected = copy.deepcopy(records[:3])
    expected[0]["tau_gradient"] = None
    expected[1]["attention"], expected[1]["max_attention"] = [0.5, None], 0.5
    assert read == expected
    assert report.read_records(report.write_records(path, records)) == records


@pytest.mark.parametrize("bad_line", ['{"id": "b", "index": ', "[1, 2]"])
def test_malformed_line_names_file_and_line(tmp_path, bad_line):
    path = tmp_path / "records.jsonl"
    path.write_text('{"id": "a", "index": 0}\n\n' + bad_line + "\n", encoding="utf-8")
    with pytest.raises(report.RecordsFormatError, match=re.escape(f"{path}:3:")):
        report.read_records(path)


def test_missing_predicted_class_is_a_clear_error():
    with pytest.raises(ValueError, match="'predicted_class'"):
        report.summarize([{"id": "x"}], LABELS)


def test_paper_rows_name_our_classes():
    from attn_audit.report import paper_row

    row = paper_row("sst", "lstm", ("negative", "positive"))
    assert row["tau_gradient"] == {
        "negative": "0.40 ± 0.21 (0.59)",
        "positive": "0.38 ± 0.19 (0.58)",
    }
    assert paper_row("sst", "cnn", ("negative", "positive")) is None
    assert paper_row("babi1", "lstm", ("a", "b")) is None
