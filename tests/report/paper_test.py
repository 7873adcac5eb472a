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
