"""Spearman's ρ in JAX, masked, with average ranks: ``scipy.stats.spearmanr``'s, 0 where
undefined (SPEC §5).
"""

import jax
import jax.numpy as jnp


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
