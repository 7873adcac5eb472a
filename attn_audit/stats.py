"""Every statistic of attn_audit, once: Kendall's τ-b with its p-value (numpy), TVD/JSD/KL
(JAX, with float64 numpy twins ``tvd_np`` / ``jsd_np``), Spearman's ρ (JAX) and a percentile
bootstrap confidence interval of means, paired across rows (``bootstrap_mean_ci``, JAX).

Kendall's τ-b reproduces ``scipy.stats.kendalltau`` (``variant='b'``, ``method='auto'``,
``alternative='two-sided'``) row by row over a masked batch (SPEC §3.3, §6). The distribution
distances are JAX functions over the last axis, used inside jitted audits (SPEC §3.2, §3.5, §6).
Spearman's ρ matches ``scipy.stats.spearmanr`` with average ranks, 0 where undefined (SPEC §5).
The bootstrap interval is ``scipy.stats.bootstrap(method='percentile')``'s, NaN-aware.
"""

import functools
import math
import operator

import jax
import jax.numpy as jnp
import numpy as np
from scipy import special

# scipy's 'auto' rule picks the exact null distribution up to this many samples (no ties).
EXACT_MAX_SIZE = 33
# About this many [b, T, T] pair elements are held at once (roughly 10 bytes each in temporaries).
_PAIR_ELEMENTS_PER_CHUNK = 1 << 25
# JW's epsilon inside the logs of KL and JSD (SPEC §3.5).
JW_EPS = 1e-10


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


def tvd(p: jax.Array, q: jax.Array) -> jax.Array:
    """Total variation distance ``½ Σ_c |p_c − q_c|`` over the last axis (SPEC §6).

    Args:
      p: ``[..., C]`` probabilities.
      q: ``[..., C]`` probabilities, same rank as ``p`` (axes of size 1 broadcast).

    Returns:
      ``[...]``.
    """
    return 0.5 * jnp.sum(jnp.abs(p - q), axis=-1)


def kl(p: jax.Array, q: jax.Array, eps: float = 1e-10) -> jax.Array:
    """``KL(p ‖ q) = Σ_c p_c (log(p_c + eps) − log(q_c + eps))``, natural log, last axis.

    ``eps`` inside the logs, as JW's ``kld``, keeps zeros (masked positions, one-hots) finite
    in value and gradient (SPEC §3.5).

    Args:
      p: ``[..., C]`` probabilities.
      q: ``[..., C]`` probabilities, same rank as ``p``.
      eps: added to the probabilities inside the logs.

    Returns:
      ``[...]``.
    """
    return jnp.sum(p * (jnp.log(p + eps) - jnp.log(q + eps)), axis=-1)


def jsd(p: jax.Array, q: jax.Array, eps: float = 1e-10) -> jax.Array:
    """Jensen–Shannon divergence ``½ KL(p ‖ m) + ½ KL(q ‖ m)``, ``m = (p + q)/2`` (SPEC §6).

    Natural log, so it lies in ``[0, ln 2]``; ``eps`` as in ``kl``.

    Args:
      p: ``[..., C]`` probabilities.
      q: ``[..., C]`` probabilities, same rank as ``p``.
      eps: added to the probabilities inside the logs.

    Returns:
      ``[...]``.
    """
    m = 0.5 * (p + q)
    return 0.5 * kl(p, m, eps) + 0.5 * kl(q, m, eps)


# ---------------------------------------------------------------- numpy twins (float64)


def jsd_np(p: np.ndarray, q: np.ndarray) -> float:
    """JSD in nats with JW's 1e-10 inside the logs (float64; ``attn_audit.stats.jsd`` in numpy)."""
    p, q = np.asarray(p, np.float64), np.asarray(q, np.float64)
    m = 0.5 * (p + q)

    def kl(a, b):
        return float(np.sum(a * (np.log(a + JW_EPS) - np.log(b + JW_EPS))))

    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


def tvd_np(p: np.ndarray, q: np.ndarray) -> float:
    return float(0.5 * np.abs(np.asarray(p, np.float64) - np.asarray(q, np.float64)).sum())


# ---------------------------------------------------------------- rank correlation


def _average_ranks(values: jax.Array, mask: jax.Array) -> jax.Array:
    """1-based ranks among the masked entries, ties at their average rank (scipy's rankdata).

    ``rank_i = #{j: x_j < x_i} + (#{j: x_j = x_i} + 1) / 2`` over masked j. O(T²).
    """
    below = (values[None, :] < values[:, None]) & mask[None, :]  # [i, j]: x_j < x_i
    tied = (values[None, :] == values[:, None]) & mask[None, :]
    return jnp.sum(below, axis=1) + (jnp.sum(tied, axis=1) + 1) / 2


def spearman_rho(a: jax.Array, b: jax.Array, mask: jax.Array) -> jax.Array:
    """Spearman's ρ of ``a`` and ``b`` over the masked entries; 0 where it is undefined.

    ``ρ = Σ (r_a − r̄_a)(r_b − r̄_b) / sqrt(Σ (r_a − r̄_a)² · Σ (r_b − r̄_b)²)`` with average
    ranks for ties, as ``scipy.stats.spearmanr``. A constant vector (or fewer than two
    entries) makes ρ NaN in scipy; here it is 0, as AZ's evaluation counts it (SPEC §5).

    Args:
      a, b: ``[T]``.
      mask: bool ``[T]``, the entries to correlate.

    Returns:
      a scalar in [−1, 1].
    """
    if a.shape != b.shape or a.shape != mask.shape:
        raise ValueError(
            f"spearman_rho needs a, b and mask of one shape [T]; got {a.shape}, {b.shape} and "
            f"{mask.shape}. vmap it for batches."
        )
    count = jnp.maximum(jnp.sum(mask), 1)
    centred = []
    for values in (a, b):
        ranks = _average_ranks(values, mask)
        mean = jnp.sum(jnp.where(mask, ranks, 0.0)) / count
        centred.append(jnp.where(mask, ranks - mean, 0.0))
    covariance = jnp.sum(centred[0] * centred[1])
    scale = jnp.sqrt(jnp.sum(jnp.square(centred[0])) * jnp.sum(jnp.square(centred[1])))
    return jnp.where(scale > 0, covariance / jnp.where(scale > 0, scale, 1.0), 0.0)


# ---------------------------------------------------------------- bootstrap


def bootstrap_mean_ci(
    values, key, resamples: int = 1000, level: float = 0.95, *, return_means: bool = False
) -> dict[str, np.ndarray]:
    """Percentile bootstrap confidence interval of the mean of each row, NaN entries ignored.

    For resample ``r`` draw ``N`` instance indices ``i_r1 … i_rN`` uniformly with replacement
    and take ``m_r = nanmean(x[i_r1], …, x[i_rN])``; the interval is the ``(1 − level)/2`` and
    ``(1 + level)/2`` quantiles of ``m_1 … m_R`` with linear interpolation (``np.quantile``'s
    default), as ``scipy.stats.bootstrap(..., method='percentile')``.

    Paired rows: every leading row is resampled with the SAME indices, so the rows of one call
    are paired by instance. The interval of a row holding per-instance differences ``a − b``
    is a paired comparison, and its resample means are those of ``a`` minus those of ``b``
    (without NaN). Calls with the same key and the same N draw the same indices too.

    NaN marks a missing instance: means are nanmeans over the finite entries (``±inf`` is
    refused: it has no mean; mark it NaN if it means missing). Missing entries are drawn like
    the others, so a resample of a row with missing entries holds a random number of values;
    resamples that hold none are left out of the quantiles. With no NaN this is scipy's
    bootstrap (other random numbers). A row with no value gets NaN mean, low and high; a row
    with one value gets ``low = high = mean``.

    The resampling is one jitted JAX program vmapped over resamples, in float32 around each
    row's float64 mean (so a large common offset costs no precision); it holds
    ``rows · resamples · N`` float32 values at once.

    Args:
      values: ``[..., N]`` real numbers, ``N ≥ 1`` instances on the last axis; the leading
        axes are separate statistics (e.g. ``[explainers, N]``). NaN means missing, ±inf is
        an error.
      key: a JAX PRNG key; the same key gives the same resamples.
      resamples: the number of bootstrap resamples ``R ≥ 1``.
      level: the confidence level, ``0 < level < 1``.
      return_means: also return the resample means.

    Returns:
      float64 numpy arrays of shape ``[...]``: ``"mean"`` (the nanmean of each row),
      ``"low"``, ``"high"``, and ``"count"`` (int64, the number of finite entries); with
      ``return_means``, ``"resample_means"`` float64 ``[..., R]`` (NaN where a resample drew
      no value).
    """
    values = np.asarray(values)
    if values.dtype.kind not in "biuf":  # bool, int, uint, float
        raise ValueError(
            f"bootstrap_mean_ci expects real numbers, got dtype {values.dtype}; pass a float "
            "array [..., N] with NaN for missing entries."
        )
    if values.ndim < 1 or values.shape[-1] < 1:
        raise ValueError(
            f"bootstrap_mean_ci needs values [..., N] with N ≥ 1 instances on the last axis; "
            f"got shape {values.shape}. Pass at least one instance (NaN for a missing one)."
        )
    if np.isinf(values).any():
        raise ValueError(
            f"bootstrap_mean_ci got {np.isinf(values).sum()} infinite value(s) in values of shape "
            f"{values.shape}; a mean over them is not defined. Mark them missing with NaN "
            "(values[np.isinf(values)] = np.nan) or fix what produced them."
        )
    try:
        resamples = operator.index(resamples)
    except TypeError:
        raise ValueError(
            f"bootstrap_mean_ci needs an integer number of resamples, got {resamples!r}; "
            "pass e.g. resamples=1000."
        ) from None
    if resamples < 1:
        raise ValueError(
            f"bootstrap_mean_ci needs resamples ≥ 1, got {resamples}; pass e.g. resamples=1000."
        )
    if not 0 < level < 1:
        raise ValueError(
            f"bootstrap_mean_ci needs a confidence level strictly between 0 and 1, got {level!r}; "
            "pass e.g. level=0.95 (not 95)."
        )

    leading, size = values.shape[:-1], values.shape[-1]
    rows = values.reshape(-1, size).astype(np.float64)  # [rows, N]
    missing = np.isnan(rows)
    count = np.sum(~missing, axis=-1)
    empty = count == 0
    mean = np.full(len(rows), np.nan)
    mean[~empty] = np.nanmean(rows[~empty], axis=-1)
    centre = np.where(empty, 0.0, mean)
    centred = (rows - centre[:, None]).astype(np.float32)
    offsets = _bootstrap_offsets(jnp.asarray(centred), key, resamples)  # [rows, R]
    resample_means = centre[:, None] + np.asarray(offsets, np.float64)

    low, high = np.full(len(rows), np.nan), np.full(len(rows), np.nan)
    drawn = ~np.all(np.isnan(resample_means), axis=-1)  # some resample holds a value
    if drawn.any():
        quantiles = np.nanquantile(
            resample_means[drawn], [(1 - level) / 2, (1 + level) / 2], axis=-1
        )  # [2, drawn rows]
        low[drawn], high[drawn] = quantiles
    single = count == 1  # the value itself, even where no resample drew it
    low[single], high[single] = mean[single], mean[single]

    result = {
        "mean": mean.reshape(leading),
        "low": low.reshape(leading),
        "high": high.reshape(leading),
        "count": count.astype(np.int64).reshape(leading),
    }
    if return_means:
        result["resample_means"] = resample_means.reshape(*leading, resamples)
    return result


@functools.partial(jax.jit, static_argnames="resamples")
def _bootstrap_offsets(centred: jax.Array, key: jax.Array, resamples: int) -> jax.Array:
    """Nanmeans of ``resamples`` resamples of the instances, the same ones for every row.

    Args:
      centred: float32 ``[rows, N]``, NaN where missing.
      key: PRNG key.
      resamples: ``R``.

    Returns:
      float32 ``[rows, R]``, NaN where a resample drew only missing entries.
    """
    size = centred.shape[-1]
    indices = jax.random.randint(key, (resamples, size), 0, size)  # [R, N]

    def resample_mean(instance_indices: jax.Array) -> jax.Array:  # [N] -> [rows]
        return jnp.nanmean(centred[:, instance_indices], axis=-1)

    return jax.vmap(resample_mean, out_axes=-1)(indices)
