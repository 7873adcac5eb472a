"""Testing many heads at once: the one-sided Wilcoxon signed-rank test of a per-instance
statistic over instances, and Benjamini–Hochberg across the tests (SPEC §10 "Heads").

A head's question is whether its attention ranks tokens like the gradient / LOO: its
per-instance Kendall τ are tested for τ > 0 with ``wilcoxon_greater`` (one p_h per head),
and ``benjamini_hochberg`` at q = 0.05 over the L × H heads decides which are significant,
controlling the false discovery rate. Inside one head, the per-instance Kendall p-values are
corrected over that head's instances the same way.

numpy and scipy only (no JAX): ``attn_audit.report`` reads it. Both functions reproduce
scipy (``scipy.stats.wilcoxon(..., alternative="greater")`` and
``scipy.stats.false_discovery_control(..., method="bh")``), written out here so that the
rule that picks the p-value method is stated, and undefined entries (NaN, e.g. the τ of a
constant vector) are left out instead of making every result NaN.
"""

import itertools

import numpy as np
from scipy import special

# scipy's method="auto": exact null distribution up to this many observations; above, the
# normal approximation.
WILCOXON_EXACT_MAX_SIZE = 50
# With ties or zeros, scipy enumerates all 2^n sign flips when 2^n is at most its 9999
# resamples (n <= 13), else it uses the normal approximation.
WILCOXON_SIGN_FLIP_MAX_SIZE = 13


def benjamini_hochberg(p_values, q: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Benjamini–Hochberg adjusted p-values and the hypotheses rejected at FDR ``q``.

    With the m defined p-values sorted, ``p_(1) ≤ … ≤ p_(m)``, the adjusted value of
    ``p_(i)`` is ``min_{j ≥ i} min(1, m · p_(j) / j)``; a hypothesis is rejected when its
    adjusted p-value is ``≤ q``, the same set as BH's step-up rule (reject ``p_(1) … p_(k)``
    for the largest k with ``p_(k) ≤ k q / m``). Equals
    ``scipy.stats.false_discovery_control(p, method="bh")`` on the defined entries.

    Args:
      p_values: ``[m]`` p-values in [0, 1]; NaN marks an untested hypothesis, left out of m.
      q: the false discovery rate, ``0 < q < 1``.

    Returns:
      ``(adjusted, reject)``: float64 ``[m]`` (NaN where the input is NaN) and bool ``[m]``.
    """
    p_values = np.asarray(p_values, np.float64)
    if p_values.ndim != 1:
        raise ValueError(
            f"benjamini_hochberg expects one family of p-values [m]; got shape "
            f"{p_values.shape}. Correct each family (e.g. each head's instances) separately."
        )
    if not 0 < q < 1:
        raise ValueError(f"benjamini_hochberg needs 0 < q < 1 (e.g. 0.05); got {q!r}.")
    defined = ~np.isnan(p_values)
    values = p_values[defined]
    if np.any((values < 0) | (values > 1)):
        raise ValueError(
            f"benjamini_hochberg expects p-values in [0, 1]; got values from {values.min()} to "
            f"{values.max()}."
        )
    adjusted = np.full(p_values.shape, np.nan)
    order = np.argsort(values, kind="stable")
    m = len(values)
    scaled = values[order] * m / np.arange(1, m + 1)
    stepped_up = np.minimum.accumulate(scaled[::-1])[::-1]  # min over j >= i
    defined_adjusted = np.empty(m)
    defined_adjusted[order] = np.minimum(stepped_up, 1.0)
    adjusted[defined] = defined_adjusted
    reject = np.zeros(p_values.shape, bool)
    reject[defined] = defined_adjusted <= q
    return adjusted, reject


def wilcoxon_greater(values) -> tuple[float, float]:
    """The one-sided Wilcoxon signed-rank test of "the values are centred above 0".

    ``R⁺ = Σ_{d_i > 0} rank(|d_i|)`` over the nonzero values (zeros dropped: Wilcoxon's
    ``zero_method="wilcox"``, scipy's default; ties at their average rank). The p-value is
    ``P(R⁺_null ≥ R⁺)`` under random signs, computed as ``scipy.stats.wilcoxon(values,
    alternative="greater")`` (``method="auto"``, no continuity correction) does it
    (scipy 1.17):

    - n ≤ 50 values with no zero and no tie among ``|d|``: the exact null distribution of R⁺
      (n independent signs);
    - n ≤ 13 with a zero or a tie: all 2^n sign flips of the values (a permutation test,
      deterministic because it is exhaustive), ``p = #{flips: R⁺ ≥ R⁺_obs (1 − 100 ε)} / 2^n``;
    - otherwise the normal approximation ``z = (R⁺ − n'(n'+1)/4) / σ`` with
      ``σ² = (n'(n'+1)(2n'+1) − Σ (t³ − t)/2) / 24`` over the n' nonzero values and their
      tie groups of sizes t.

    n counts the defined values, zeros included (scipy's rule). NaN values are left out (an
    undefined τ); scipy's default would return NaN instead. A single value 0 gives p = 1 (the
    sign flips; scipy raises).

    Args:
      values: ``[n]`` real numbers, e.g. one head's per-instance τ; NaN marks undefined.

    Returns:
      ``(R⁺, p)``; both NaN when no value is defined, and p NaN when every value is 0 and
      n > 13 (as scipy's normal approximation with σ = 0); with every value 0 and n ≤ 13 the
      sign flips give p = 1, as scipy.
    """
    values = np.asarray(values, np.float64)
    if values.ndim != 1:
        raise ValueError(f"wilcoxon_greater expects values [n]; got shape {values.shape}.")
    values = values[~np.isnan(values)]
    size = len(values)
    if size == 0:
        return float("nan"), float("nan")
    nonzero = values[values != 0]
    ranks, tie_sizes = _average_ranks(np.abs(nonzero))
    statistic = float(np.sum(ranks[nonzero > 0]))
    has_zeros = len(nonzero) < size
    has_ties = bool(np.any(tie_sizes > 1))
    if size <= WILCOXON_EXACT_MAX_SIZE and not (has_zeros or has_ties):
        return statistic, _exact_survival(size, int(np.floor(statistic)))
    if size <= WILCOXON_SIGN_FLIP_MAX_SIZE:
        return statistic, _sign_flip_p_value(values, ranks, statistic)
    count = len(nonzero)
    mean = count * (count + 1.0) / 4
    variance = (count * (count + 1.0) * (2 * count + 1) - np.sum(tie_sizes**3 - tie_sizes) / 2) / 24
    if variance <= 0:
        return statistic, float("nan")
    return statistic, float(special.ndtr(-(statistic - mean) / np.sqrt(variance)))


def _average_ranks(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """1-based ranks with ties at their average (scipy's rankdata) and the tie-group sizes."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    sizes = np.diff(np.r_[starts, len(values)])
    average = starts + (sizes + 1) / 2  # mean of the 1-based ranks start+1 … start+size
    ranks = np.empty(len(values))
    ranks[order] = np.repeat(average, sizes)
    return ranks, sizes.astype(np.float64)


def _exact_survival(size: int, statistic: int) -> float:
    """``P(R⁺ ≥ statistic)`` for ``size`` untied nonzero values: R⁺ is a sum of a random
    subset of ``{1, …, size}``, each subset with probability ``2^-size``."""
    counts = np.zeros(size * (size + 1) // 2 + 1)
    counts[0] = 1.0
    for rank in range(1, size + 1):  # subsets of {1 … rank}: with or without rank
        counts[rank:] = counts[rank:] + counts[:-rank].copy()
    return float(min(1.0, np.sum(counts[statistic:]) / 2.0**size))


def _sign_flip_p_value(values: np.ndarray, ranks: np.ndarray, statistic: float) -> float:
    """``P(R⁺ ≥ observed)`` over all 2^n sign flips of ``values`` (zeros flip to zeros)."""
    nonzero_ranks = np.zeros(len(values))
    nonzero_ranks[values != 0] = ranks
    signs = np.array(list(itertools.product((1.0, -1.0), repeat=len(values))))  # [2^n, n]
    flipped_positive = signs * np.sign(values)[None, :] > 0
    null = np.sum(np.where(flipped_positive, nonzero_ranks[None, :], 0.0), axis=1)
    tolerance = abs(statistic) * np.finfo(np.float64).eps * 100
    return float(np.mean(null >= statistic - tolerance))
