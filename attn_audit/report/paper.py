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


# JW's mean τ_g over classes, tanh attention (SPEC §3): for the binary sets the mean of the
# two per-class cells above; SNLI's three class cells and bAbI's one cell over all instances
# as printed (SNLI's class order in JW's code is not known here, only their mean is used).
JW_MEAN_TAU_G = {
    **{
        dataset: {
            encoder: sum(float(cell.split()[0]) for cell in cells["tau_gradient"])
            / len(cells["tau_gradient"])
            for encoder, cells in encoders.items()
        }
        for dataset, encoders in JW_TABLE2.items()
    },
    "snli": {"lstm": (0.36 + 0.42 + 0.40) / 3, "average": (0.54 + 0.59 + 0.53) / 3},
    "babi1": {"lstm": 0.23, "average": 0.66},
    "babi2": {"lstm": 0.17, "average": 0.84},
    "babi3": {"lstm": 0.30, "average": 0.76},
}
# bAbI's τ_g is JW's over all instances; the other sets' is per class, then averaged.
INSTANCE_WEIGHTED = ("babi1", "babi2", "babi3")
# τ_g of the runs committed with JW's code, per predicted class (bAbI: over all instances):
# successar/AttentionExplanation, graph_outputs/GradientPval_kendalltau/<set>+<encoder>+tanh.csv
# at its last commit (752b779, 2019-05-15; babi_1 and babi_3 Average: d74cab1, 2019-04-25).
# The statistic of the paper's cells (Kendall τ between attention and |∇ŷ·e| over the real
# tokens, Trainers/PlottingQA.py and PlottingBC.py's plot_grads), from JW's own runs; they
# differ from the published cells by up to 0.19 (bAbI 2 BiLSTM). JW's bAbI 2 Average run
# predicted one answer for every question (its file has a single class row).
JW_CODE_TAU_G = {
    "sst": {"lstm": (0.3432, 0.3637), "average": (0.6112, 0.5996)},
    "agnews": {"lstm": (0.3579, 0.4187), "average": (0.7818, 0.7592)},
    "20news": {"lstm": (0.0662, 0.2096), "average": (0.7868, 0.7538)},
    "imdb": {"lstm": (0.4420, 0.4319), "average": (0.6743, 0.6752)},
    "snli": {"lstm": (0.3059, 0.3262, 0.3071), "average": (0.5875, 0.5847, 0.5736)},
    "babi1": {"lstm": (0.2508,), "average": (0.7174,)},
    "babi2": {"lstm": (-0.0168,), "average": (0.6777,)},
    "babi3": {"lstm": (0.2390,), "average": (0.6073,)},
}
JW_CODE_MEAN_TAU_G = {
    dataset: {encoder: sum(cells) / len(cells) for encoder, cells in encoders.items()}
    for dataset, encoders in JW_CODE_TAU_G.items()
}
# Test accuracy of the tanh runs committed with JW's code (graph_outputs/evaluate/
# <set>+<encoder>+tanh.json of the same repository, 0dfca29 or d74cab1, April 2019; binary
# sets: "micro avg/precision"). AG News there trained on the 120,000-text train file.
JW_CODE_ACCURACY = {
    "sst": {"lstm": 0.808, "average": 0.807},
    "agnews": {"lstm": 0.958, "average": 0.954},
    "20news": {"lstm": 0.922, "average": 0.913},
    "imdb": {"lstm": 0.898, "average": 0.883},
    "snli": {"lstm": 0.779, "average": 0.750},
    "babi1": {"lstm": 1.000, "average": 0.436},
    "babi2": {"lstm": 0.653, "average": 0.167},
    "babi3": {"lstm": 0.643, "average": 0.320},
}


def mean_tau_g(dataset: str, rows) -> float | None:
    """Our τ_g averaged as JW's cell is: the mean over classes of the per-class means (rows:
    ``{"n", "tau_g_mean"}`` per predicted class), or over instances for bAbI."""
    rows = [row for row in rows if row["n"] and row["tau_g_mean"] is not None]
    if not rows:
        return None
    if dataset in INSTANCE_WEIGHTED:
        return sum(row["n"] * row["tau_g_mean"] for row in rows) / sum(row["n"] for row in rows)
    return sum(row["tau_g_mean"] for row in rows) / len(rows)
