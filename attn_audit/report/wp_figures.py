"""Figures of Wiegreffe & Pinter's tests (SPEC §4): seed variance and the adversary's trade-off."""

import pathlib

import numpy as np

from attn_audit.report.fields import MAX_ATTENTION_BINS, max_attention_bin


def seed_figure(variance: dict, path: pathlib.Path, title: str) -> pathlib.Path:
    """Violin-free boxplot of the per-instance median JSD across seeds per max-attention bin."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 3.5), dpi=100)
    axes = figure.add_subplot()
    bins = max_attention_bin(variance["max_attention"])
    groups = [variance["median_jsd"][bins == b] for b in range(len(MAX_ATTENTION_BINS))]
    axes.boxplot([g if len(g) else [np.nan] for g in groups], showfliers=False)
    axes.set_xticks(range(1, 5), [f"{n}\n(n={len(g)})" for n, g in zip(MAX_ATTENTION_BINS, groups,
                                                                         strict=True)])  # fmt: skip
    axes.set_xlabel("max attention of the base model")
    axes.set_ylabel("median JSD(α_base, α_seed)")
    axes.set_ylim(0, 0.7)
    axes.set_title(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path)
    return path


def adversarial_figure(points: list[dict], path: pathlib.Path, title: str) -> pathlib.Path:
    """WP's Figure: mean TVD(ŷ_adv, ŷ_base) against mean JSD(α_adv, α_base), one point per λ."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5, 3.5), dpi=100)
    axes = figure.add_subplot()
    jsd = [p["jsd"] for p in points]
    tvd = [p["tvd"] for p in points]
    axes.plot(jsd, tvd, "o-")
    for p in points:
        axes.annotate(f"λ={p['lambda']:g}", (p["jsd"], p["tvd"]), fontsize=8,
                      textcoords="offset points", xytext=(4, 4))  # fmt: skip
    axes.set_xlabel("mean JSD(α_adv, α_base)")
    axes.set_ylabel("mean TVD(ŷ_adv, ŷ_base)")
    axes.set_xlim(0, 0.7)
    axes.set_title(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path)
    return path
