"""attn_audit.report.paper: JW's published Table 2 rows under our class names."""


def test_paper_rows_name_our_classes():
    from attn_audit.report import paper_row

    row = paper_row("sst", "lstm", ("negative", "positive"))
    assert row["tau_gradient"] == {
        "negative": "0.40 ± 0.21 (0.59)",
        "positive": "0.38 ± 0.19 (0.58)",
    }
    assert paper_row("sst", "cnn", ("negative", "positive")) is None
    assert paper_row("babi1", "lstm", ("a", "b")) is None


def test_jw_code_tau_g_covers_every_published_row_with_a_cell_per_class():
    from attn_audit import report

    for dataset, encoders in report.JW_MEAN_TAU_G.items():
        for encoder in encoders:
            cells = report.JW_CODE_TAU_G[dataset][encoder]
            classes = 1 if dataset.startswith("babi") else 3 if dataset == "snli" else 2
            assert len(cells) == classes and all(-1 <= cell <= 1 for cell in cells)
            assert report.JW_CODE_MEAN_TAU_G[dataset][encoder] == sum(cells) / classes
