"""A percentile bootstrap confidence interval of means, paired across rows, NaN-aware (JAX):
``scipy.stats.bootstrap(method='percentile')``'s.
"""

import functools
import operator

import jax
import jax.numpy as jnp
import numpy as np


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
