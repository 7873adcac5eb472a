"""Every statistic of attn_audit, once, one module each:

- ``kendall``: Kendall's τ-b with its p-value (numpy), ``scipy.stats.kendalltau``'s, row by
  row over a masked batch (SPEC §3.3, §6), and the fraction of significant rows;
- ``distances``: TVD / KL / JSD (JAX, over the last axis, used inside jitted audits;
  SPEC §3.2, §3.5, §6) with float64 numpy twins ``tvd_np`` / ``jsd_np``;
- ``ranks``: Spearman's ρ (JAX), ``scipy.stats.spearmanr``'s with average ranks, 0 where
  undefined (SPEC §5);
- ``bootstrap``: a percentile bootstrap confidence interval of means, paired across rows,
  NaN-aware (``scipy.stats.bootstrap(method='percentile')``'s).
"""

from attn_audit.stats.bootstrap import bootstrap_mean_ci
from attn_audit.stats.distances import JW_EPS, jsd, jsd_np, kl, tvd, tvd_np
from attn_audit.stats.kendall import EXACT_MAX_SIZE, kendall_tau_b, significant_fraction
from attn_audit.stats.ranks import spearman_rho

__all__ = [
    "EXACT_MAX_SIZE", "JW_EPS", "bootstrap_mean_ci", "jsd", "jsd_np", "kendall_tau_b", "kl",
    "significant_fraction", "spearman_rho", "tvd", "tvd_np",
]  # fmt: skip
