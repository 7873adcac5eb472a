"""Distances between distributions over the last axis: TVD, KL and JSD in JAX, used inside
jitted audits (SPEC §3.2, §3.5, §6), and their float64 numpy twins ``tvd_np`` / ``jsd_np``.
"""

import jax
import jax.numpy as jnp
import numpy as np

# JW's epsilon inside the logs of KL and JSD (SPEC §3.5).
JW_EPS = 1e-10


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


def jsd_np(p: np.ndarray, q: np.ndarray) -> float:
    """JSD in nats with JW's 1e-10 inside the logs (float64; ``attn_audit.stats.jsd`` in numpy)."""
    p, q = np.asarray(p, np.float64), np.asarray(q, np.float64)
    m = 0.5 * (p + q)

    def kl(a, b):
        return float(np.sum(a * (np.log(a + JW_EPS) - np.log(b + JW_EPS))))

    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


def tvd_np(p: np.ndarray, q: np.ndarray) -> float:
    return float(0.5 * np.abs(np.asarray(p, np.float64) - np.asarray(q, np.float64)).sum())
