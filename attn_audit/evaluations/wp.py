"""Wiegreffe & Pinter's tests (SPEC §4): what the runs' predictions say.

Training is ``attn_audit.training`` (``attention="uniform"``, ``frozen_attention_from``,
``adversary_of``); this module compares the trained models' test predictions:

- ``seed_variance``: per instance, the median over seeds of ``JSD(α_base, α_seed)`` and of
  ``TVD(ŷ_base, ŷ_seed)``, binned by the base model's max attention (WP §3.2).

Figures: ``attn_audit.report.wp_figures``; tables: ``attn_audit.report.tables``.
"""

import numpy as np

from attn_audit.report.fields import MAX_ATTENTION_BINS, max_attention_bin
from attn_audit.stats import jsd_np, tvd_np


def seed_variance(base, seeds) -> dict:
    """Per-instance medians over seeds, and their medians per max-attention bin.

    Args:
      base: the base model's ``training.Predictions`` on the test split.
      seeds: the other seeds' ``training.Predictions`` on the same split.

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
    bins_of_instances = max_attention_bin(max_attention)
    bins = []
    for b, name in enumerate(MAX_ATTENTION_BINS):
        members = bins_of_instances == b
        bins.append({
            "bin": name, "n": int(members.sum()),
            "median_jsd": float(np.median(median_jsd[members])) if members.any() else None,
            "median_tvd": float(np.median(median_tvd[members])) if members.any() else None,
        })  # fmt: skip
    return {
        "median_jsd": median_jsd, "median_tvd": median_tvd, "max_attention": max_attention,
        "bins": bins,
    }  # fmt: skip
