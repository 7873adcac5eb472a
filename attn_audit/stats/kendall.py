"""Kendall's τ-b with its p-value, row by row over a masked batch (numpy).

Reproduces ``scipy.stats.kendalltau`` (``variant='b'``, ``method='auto'``,
``alternative='two-sided'``) (SPEC §3.3, §6); ``significant_fraction`` counts the rows
whose p-value is at most α.
"""

import functools
import math

import numpy as np
from scipy import special

# scipy's 'auto' rule picks the exact null distribution up to this many samples (no ties).
EXACT_MAX_SIZE = 33
# About this many [b, T, T] pair elements are held at once (roughly 10 bytes each in temporaries).
_PAIR_ELEMENTS_PER_CHUNK = 1 << 25


def kendall_tau_b(x: np.ndarray, y: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Kendall's τ-b and its two-sided p-value per row, over the positions where ``mask`` holds.

    ``τ_b = (P − Q) / sqrt((P + Q + T) (P + Q + U))`` with P concordant pairs, Q discordant
    pairs, T pairs tied only in x, U pairs tied only in y (SPEC §3.3, §6). Row ``b`` equals
    ``scipy.stats.kendalltau(x[b][mask[b]], y[b][mask[b]])``, following its rules:

    - NaN τ and p where fewer than 2 positions are valid, where x or y is constant over them,
      or where a valid value is NaN (``nan_policy='propagate'``).
    - Exact p (the distribution of inversions of a random permutation) when neither x nor y
      has ties and (``n ≤ 33`` or ``min(Q, n(n−1)/2 − Q) ≤ 1``); otherwise the normal
      approximation with the tie-corrected variance
      ``(m(2n+5) − Σ t(t−1)(2t+5) − Σ u(u−1)(2u+5)) / 18 + 2 T' U' / m
      + Σ t(t−1)(t−2) · Σ u(u−1)(u−2) / (9 m (n−2))``, ``m = n(n−1)``, over tie groups of
      sizes t in x and u in y, T' and U' the pairs tied in x and in y.

    Pairs are counted with ``[b, T, T]`` sign matrices, chunked over the batch.

    Args:
      x: ``[batch, seq]`` real scores (e.g. attention weights).
      y: ``[batch, seq]`` real scores (e.g. gradient or LOO importance).
      mask: ``[batch, seq]`` bool, True where a position counts; rows may differ.

    Returns:
      ``(tau, p_value)``, each float64 ``[batch]``.
    """
    x, y, mask = np.asarray(x), np.asarray(y), np.asarray(mask)
    if x.ndim != 2 or x.shape != y.shape or x.shape != mask.shape:
        raise ValueError(
            f"kendall_tau_b expects x, y and mask of one shape [batch, seq]; got x {x.shape}, "
            f"y {y.shape}, mask {mask.shape}. Add a batch axis (x[None]) for a single vector."
        )
    if mask.dtype != np.bool_:
        raise ValueError(
            f"kendall_tau_b expects a bool mask, got {mask.dtype}; pass mask.astype(bool)."
        )
    for name, values in (("x", x), ("y", y)):
        if values.dtype.kind not in "biuf":  # bool, int, uint, float
            raise ValueError(f"kendall_tau_b expects real numbers in {name}, got {values.dtype}.")

    batch, seq = x.shape
    counts = {
        name: np.zeros(batch, np.int64)
        for name in ("con_minus_dis", "dis", "xtie", "ytie", "x0", "x1", "y0", "y1")
    }
    chunk = max(1, _PAIR_ELEMENTS_PER_CHUNK // max(1, seq * seq))
    for start in range(0, batch, chunk):
        rows = slice(start, start + chunk)
        for name, value in _pair_counts(x[rows], y[rows], mask[rows]).items():
            counts[name][rows] = value

    size = mask.sum(axis=-1, dtype=np.int64)
    tot = size * (size - 1) // 2
    con_minus_dis, dis = counts["con_minus_dis"], counts["dis"]
    xtie, ytie = counts["xtie"], counts["ytie"]
    has_nan = (mask & (_isnan(x) | _isnan(y))).any(axis=-1)
    # scipy: constant x or y (every pair tied) leaves τ undefined; n < 2 gives tot == 0 == xtie.
    undefined = (xtie == tot) | (ytie == tot) | has_nan

    with np.errstate(divide="ignore", invalid="ignore"):
        tau = con_minus_dis / np.sqrt(tot - xtie) / np.sqrt(tot - ytie)
        tau = np.clip(tau, -1.0, 1.0)

        m = size * (size - 1.0)
        var = (
            (m * (2 * size + 5) - counts["x1"] - counts["y1"]) / 18
            + (2 * xtie * ytie) / m
            + counts["x0"] * counts["y0"] / (9 * m * (size - 2))
        )
        z = con_minus_dis / np.sqrt(var)
        p_asymptotic = 2 * special.ndtr(-np.abs(z))

    fewer_pairs = np.minimum(dis, tot - dis)
    exact = (xtie == 0) & (ytie == 0) & ((size <= EXACT_MAX_SIZE) | (fewer_pairs <= 1))
    p_value = np.where(exact, _exact_p_value(size, fewer_pairs, exact), p_asymptotic)
    tau = np.where(undefined, np.nan, tau)
    p_value = np.where(undefined, np.nan, p_value)
    return tau.astype(np.float64), p_value.astype(np.float64)


def _isnan(values: np.ndarray) -> np.ndarray:
    if np.issubdtype(values.dtype, np.inexact):
        return np.isnan(values)
    return np.zeros(values.shape, bool)


def _pair_counts(x: np.ndarray, y: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
    """Pair and tie-group counts per row of ``[b, T]`` inputs, all int64 ``[b]``.

    Works on all ordered pairs (i, j), so every unordered pair is seen twice and the diagonal
    (always tied) once; the counts below correct for both.
    """
    pair = mask[:, :, None] & mask[:, None, :]  # [b, T, T]
    sign_x = _pairwise_sign(x)
    sign_y = _pairwise_sign(y)
    product = np.where(pair, sign_x * sign_y, np.int8(0))  # +1 concordant, −1 discordant
    tied_x = pair & (sign_x == 0)
    tied_y = pair & (sign_y == 0)
    # Size of the tie group each valid position belongs to (itself included): [b, T].
    group_x = tied_x.sum(axis=-1, dtype=np.int64)
    group_y = tied_y.sum(axis=-1, dtype=np.int64)

    def group_sums(group: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # Σ over groups of t·f(t) is Σ over their members of f(t): scipy's sums, member-wise.
        pairs = np.where(mask, group - 1, 0).sum(axis=-1) // 2
        cubic = np.where(mask, (group - 1) * (group - 2), 0).sum(axis=-1)
        variance = np.where(mask, (group - 1) * (2 * group + 5), 0).sum(axis=-1)
        return pairs, cubic, variance

    xtie, x0, x1 = group_sums(group_x)
    ytie, y0, y1 = group_sums(group_y)
    return {
        "con_minus_dis": product.sum(axis=(1, 2), dtype=np.int64) // 2,
        "dis": (product < 0).sum(axis=(1, 2), dtype=np.int64) // 2,
        "xtie": xtie,
        "ytie": ytie,
        "x0": x0,
        "x1": x1,
        "y0": y0,
        "y1": y1,
    }


def _pairwise_sign(values: np.ndarray) -> np.ndarray:
    """``sign(v_i − v_j)`` as int8 ``[b, T, T]``, by comparison so that infinities order."""
    left, right = values[:, :, None], values[:, None, :]
    return (left > right).astype(np.int8) - (left < right).astype(np.int8)


def _exact_p_value(size: np.ndarray, fewer_pairs: np.ndarray, exact: np.ndarray) -> np.ndarray:
    """Two-sided exact p for ``size`` untied samples with ``fewer_pairs = min(C, Q)``; float64.

    Rows where ``exact`` is False get NaN. Beyond ``EXACT_MAX_SIZE`` scipy only goes exact
    when ``min(C, Q) ≤ 1``, whose p has a closed form.
    """
    table = _exact_p_table()
    small = exact & (size <= EXACT_MAX_SIZE)
    large = exact & ~small
    from_table = table[np.where(small, size, 0), np.where(small, fewer_pairs, 0)]
    # scipy: 2/n! when min(C, Q) = 0, 2/(n−1)! when it is 1, and 0 once k! overflows float64.
    two_over_factorial = _two_over_factorial()
    k = np.where(large, size - fewer_pairs, 0)
    closed_form = np.where(
        k < len(two_over_factorial),
        two_over_factorial[np.minimum(k, len(two_over_factorial) - 1)],
        0.0,
    )
    return np.where(small, from_table, np.where(large, np.minimum(closed_form, 1.0), np.nan))


@functools.cache
def _two_over_factorial() -> np.ndarray:
    """``2 / k!`` for ``k < 171`` (beyond, k! overflows float64 and scipy returns 0)."""
    return np.array([2.0 / math.factorial(k) for k in range(171)])


@functools.cache
def _exact_p_table() -> np.ndarray:
    """scipy's exact two-sided p, ``[n, c]`` for ``n ≤ 33``, ``c ≤ n(n−1)/4``; NaN elsewhere.

    Replicates ``scipy.stats._mstats_basic._kendall_p_exact`` branch by branch, with the same
    float64 operations, so the numbers agree bit for bit. Row n of ``_inversion_counts`` is the
    full distribution; scipy's truncated recurrence computes the same prefix values.
    """
    max_pairs = EXACT_MAX_SIZE * (EXACT_MAX_SIZE - 1) // 2
    table = np.full((EXACT_MAX_SIZE + 1, max_pairs // 2 + 1), np.nan)
    for n in range(1, EXACT_MAX_SIZE + 1):
        tot = n * (n - 1) // 2
        counts = _inversion_counts(n) if n >= 3 else None
        for c in range(tot // 2 + 1):
            if n <= 2:
                prob = 1.0
            elif c == 0:
                prob = 2.0 / math.factorial(n)
            elif c == 1:
                prob = 2.0 / math.factorial(n - 1)
            elif 4 * c == n * (n - 1):
                prob = 1.0
            else:
                prob = 2.0 * np.sum(counts[: c + 1]) / math.factorial(n)
            table[n, c] = np.clip(prob, 0, 1)
    return table


def _inversion_counts(n: int) -> np.ndarray:
    """Number of permutations of n items with k inversions (Mahonian numbers), float64 ``[k]``.

    The recurrence of scipy's ``_kendall_p_exact``: start from n = 2, then per j a running
    sum and a shifted subtraction.
    """
    length = n * (n - 1) // 2 + 1
    counts = np.zeros(length)
    counts[0:2] = 1.0
    for j in range(3, n + 1):
        counts = np.cumsum(counts)
        counts[j:] -= counts[: length - j]
    return counts


def significant_fraction(p_values: np.ndarray, alpha: float = 0.05) -> dict[str, float | int]:
    """Share of defined p-values ``≤ alpha`` ("Sig. Frac.", SPEC §3.3), NaN p-values excluded.

    Args:
      p_values: any shape, e.g. ``[instances]`` from ``kendall_tau_b``; NaN marks undefined τ.
      alpha: significance level.

    Returns:
      ``{"significant_fraction": float (NaN when no p-value is defined),
      "num_defined": int, "num_undefined": int}``.
    """
    p_values = np.asarray(p_values, np.float64).ravel()
    defined = ~np.isnan(p_values)
    num_defined = int(defined.sum())
    significant = int(np.count_nonzero(p_values[defined] <= alpha))
    return {
        "significant_fraction": significant / num_defined if num_defined else float("nan"),
        "num_defined": num_defined,
        "num_undefined": int(p_values.size - num_defined),
    }
