"""Wiegreffe & Pinter's tests (SPEC §4): what the runs' predictions say, as tables and figures.

Training is ``attn_audit.train`` (``attention="uniform"``, ``frozen_attention_from``,
``adversary_of``); this module compares the trained models' test predictions:

- ``seed_variance``: per instance, the median over seeds of ``JSD(α_base, α_seed)`` and of
  ``TVD(ŷ_base, ŷ_seed)``, binned by the base model's max attention (WP §3.2);
- ``guide_divergence``: mean ``TVD(ŷ_adv, ŷ_base)`` and ``JSD(α_adv, α_base)`` of an
  adversarially trained model (WP §4).
"""

import csv
import pathlib

import numpy as np

from attn_audit.report import MAX_ATTENTION_BINS, MAX_ATTENTION_EDGES

EPS = 1e-10


def jsd_np(p: np.ndarray, q: np.ndarray) -> float:
    """JSD in nats with JW's 1e-10 inside the logs (float64; ``attn_audit.stats.jsd`` in numpy)."""
    p, q = np.asarray(p, np.float64), np.asarray(q, np.float64)
    m = 0.5 * (p + q)

    def kl(a, b):
        return float(np.sum(a * (np.log(a + EPS) - np.log(b + EPS))))

    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


def tvd_np(p: np.ndarray, q: np.ndarray) -> float:
    return float(0.5 * np.abs(np.asarray(p, np.float64) - np.asarray(q, np.float64)).sum())


def max_attention_bin(value: float) -> int:
    """Index into ``MAX_ATTENTION_BINS``; 1.0 falls in the last bin."""
    return int(min(np.searchsorted(MAX_ATTENTION_EDGES, value, side="right") - 1, 3))


def seed_variance(base, seeds) -> dict:
    """Per-instance medians over seeds, and their medians per max-attention bin.

    Args:
      base: the base model's ``train.Predictions`` on the test split.
      seeds: the other seeds' ``train.Predictions`` on the same split.

    Returns:
      ``{"median_jsd": [N], "median_tvd": [N], "max_attention": [N], "bins": [...]}``.
    """
    n = len(base.attention)
    jsd = np.asarray([[jsd_np(base.attention[i], s.attention[i]) for s in seeds] for i in range(n)])
    tvd = np.asarray(
        [[tvd_np(base.probabilities[i], s.probabilities[i]) for s in seeds] for i in range(n)]
    )
    max_attention = np.asarray([a.max() for a in base.attention])
    median_jsd, median_tvd = np.median(jsd, axis=1), np.median(tvd, axis=1)
    bins = []
    for b, name in enumerate(MAX_ATTENTION_BINS):
        members = np.asarray([max_attention_bin(v) == b for v in max_attention])
        bins.append({
            "bin": name, "n": int(members.sum()),
            "median_jsd": float(np.median(median_jsd[members])) if members.any() else None,
            "median_tvd": float(np.median(median_tvd[members])) if members.any() else None,
        })  # fmt: skip
    return {
        "median_jsd": median_jsd, "median_tvd": median_tvd, "max_attention": max_attention,
        "bins": bins,
    }  # fmt: skip


def write_csv(path: pathlib.Path, rows: list[dict]) -> pathlib.Path:
    """One row per (test, setting); missing cells stay empty."""
    columns = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def seed_figure(variance: dict, path: pathlib.Path, title: str) -> pathlib.Path:
    """Violin-free boxplot of the per-instance median JSD across seeds per max-attention bin."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 3.5), dpi=100)
    axes = figure.add_subplot()
    groups = [
        variance["median_jsd"][[max_attention_bin(v) == b for v in variance["max_attention"]]]
        for b in range(4)
    ]
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


def replace_section(path: pathlib.Path, key: str, text: str) -> None:
    """Puts ``text`` between ``<!-- key start -->`` and ``<!-- key end -->`` in ``path``."""
    start, end = f"<!-- {key} start -->", f"<!-- {key} end -->"
    block = f"{start}\n{text.rstrip()}\n{end}\n"
    content = path.read_text(encoding="utf-8") if path.exists() else "# Results\n\n"
    if start in content and end in content:
        before, rest = content.split(start, 1)
        _, after = rest.split(end, 1)
        content = before + block + after.lstrip("\n")
    else:
        content = content.rstrip("\n") + "\n\n" + block
    path.write_text(content, encoding="utf-8")
