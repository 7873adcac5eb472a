"""JW's published Table 2 (SPEC §3), to print beside our numbers.

Cells are ``mean ± std (Sig. Frac.)`` as printed in the paper; JW published
τ_g for the BiLSTM and Average encoders and τ_loo for the BiLSTM, per class of
the binary classification data sets.
"""

# dataset -> encoder -> measure -> per-class cells (class index order of our loaders).
JW_TABLE2 = {
    "sst": {
        "lstm": {
            "tau_gradient": ("0.40 ± 0.21 (0.59)", "0.38 ± 0.19 (0.58)"),
            "tau_loo": ("0.34 ± 0.20 (0.47)", "0.33 ± 0.19 (0.47)"),
        },
        "average": {"tau_gradient": ("0.69 ± 0.15 (0.93)", "0.69 ± 0.14 (0.94)")},
    },
    "imdb": {
        "lstm": {
            "tau_gradient": ("0.37 ± 0.07 (1.00)", "0.37 ± 0.08 (0.99)"),
            "tau_loo": ("0.30 ± 0.07", "0.31 ± 0.07"),
        },
        "average": {"tau_gradient": ("0.65 ± 0.05", "0.66 ± 0.05")},
    },
    "20news": {
        "lstm": {
            "tau_gradient": ("0.08 ± 0.15 (0.31)", "0.13 ± 0.16 (0.48)"),
            "tau_loo": ("0.05 ± 0.15", "0.14 ± 0.14"),
        },
        "average": {"tau_gradient": ("0.65 ± 0.09", "0.66 ± 0.09")},
    },
    "agnews": {
        "lstm": {
            "tau_gradient": ("0.42 ± 0.11 (0.93)", "0.35 ± 0.13 (0.81)"),
            "tau_loo": ("0.35 ± 0.13", "0.32 ± 0.13"),
        },
        "average": {"tau_gradient": ("0.77 ± 0.08", "0.75 ± 0.07")},
    },
}


def paper_row(dataset: str, encoder: str, label_names) -> dict[str, dict[str, str]] | None:
    """``{measure: {class name: cell}}`` for ``summary_markdown``, or None if JW has none."""
    cells = JW_TABLE2.get(dataset, {}).get(encoder)
    if cells is None:
        return None
    return {
        measure: dict(zip(label_names, values, strict=True)) for measure, values in cells.items()
    }
