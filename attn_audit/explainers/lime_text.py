"""LIME for text (Ribeiro et al. 2016) as ``lime``'s text explainer does it (SPEC §7).

Sample 0 is the instance itself; each other sample removes ``s`` real tokens,
``s`` uniform on ``1 … n − 1``, chosen uniformly. Its weight is
``exp(−d²/25²)`` with ``d`` = 100 × the cosine distance between its binary mask
and all-ones; a ridge regression (α = 1, with intercept) of ``p(ŷ | sample)`` on
the masks gives the scores. Where ``lime`` differs from SPEC §7: it removes
``1 … n`` tokens, its kernel is ``sqrt(exp(−d²/25²))``, and its features are the
distinct words (``bow=True``), not positions.
"""

import functools

import jax
import jax.numpy as jnp

from attn_audit.explainers.perturbation import (
    keep_from_players,
    random_player_ranks,
    sampled_scores,
    sampled_scores_of_batch,
    scores_on_positions,
)

KERNEL_WIDTH = 25.0
RIDGE_ALPHA = 1.0


def lime_weights(players: jax.Array, num_real) -> jax.Array:
    """Sample weights ``[S]``: ``exp(−d²/25²)``, ``d = 100 (1 − |z| / √(|z| n))``.

    ``d`` is 100 × the cosine distance between the mask z and all-ones over n tokens.
    """
    kept = jnp.sum(players, axis=-1).astype(jnp.float32)
    cosine = kept / jnp.sqrt(jnp.maximum(kept, 1.0) * jnp.maximum(num_real, 1))
    distance = 100.0 * (1.0 - cosine)
    return jnp.exp(-(distance**2) / KERNEL_WIDTH**2)


def weighted_ridge(features, targets, weights, alpha: float = RIDGE_ALPHA):
    """scikit-learn's ``Ridge(alpha, fit_intercept=True).fit(X, y, sample_weight=w)``.

    Centres ``X`` and ``y`` on their weighted means, then solves
    ``(Xcᵀ W Xc + α I) β = Xcᵀ W yc``; the intercept is ``ȳ − x̄·β``. A column of
    zeros gets β = 0.

    Args:
      features: ``[S, N]``; targets: ``[S]``; weights: ``[S]``.

    Returns:
      ``(β [N], intercept)``.
    """
    total = jnp.sum(weights)
    feature_mean = weights @ features / total
    target_mean = weights @ targets / total
    centred = features - feature_mean[None, :]
    gram = centred.T @ (weights[:, None] * centred) + alpha * jnp.eye(features.shape[-1])
    coefficients = jnp.linalg.solve(gram, centred.T @ (weights * (targets - target_mean)))
    return coefficients, target_mean - feature_mean @ coefficients


def lime_samples(key: jax.Array, num_players: int, num_samples: int, num_real) -> jax.Array:
    """LIME's neighbourhood: bool ``[S, N]``, True where a real token is kept.

    Row 0 keeps every real token; row i removes ``s_i`` of them, ``s_i`` uniform on
    ``1 … n − 1`` (1 when n = 1), chosen uniformly. Empty slots (``≥ n``) are False.
    """
    ranks, uniform = random_player_ranks(key, num_players, num_samples - 1, num_real)
    removed_count = 1 + jnp.floor(uniform * jnp.maximum(num_real - 1, 1)).astype(jnp.int32)
    real = jnp.arange(num_players) < num_real
    return jnp.concatenate([real[None, :], (ranks >= removed_count[:, None]) & real[None, :]])


def lime(
    model, params, instance, key: jax.Array, mask_token_id: int, num_samples: int = 1000,
    removal: str = "mask", chunk: int | None = None,
) -> jax.Array:  # fmt: skip
    """LIME scores ``[T]`` (ridge coefficients), zero off the real tokens."""
    if num_samples < 2:
        raise ValueError(f"LIME needs at least 2 samples, got {num_samples}.")
    draw = functools.partial(_lime_coalitions, num_samples=num_samples)
    return sampled_scores(
        model, params, instance, key, draw, _lime_estimate, removal, mask_token_id, chunk
    )


def lime_of_batch(
    model, params, instances, keys: jax.Array, mask_token_id: int, num_samples: int,
    removal: str, per_step: int,
) -> jax.Array:  # fmt: skip
    """``lime`` of every row of a batch (``keys [B]``, one per row), evaluating the samples of
    the rows with real tokens only, ``per_step`` at a time: ``[B, T]``."""
    if num_samples < 2:
        raise ValueError(f"LIME needs at least 2 samples, got {num_samples}.")
    draw = functools.partial(_lime_coalitions, num_samples=num_samples)
    return sampled_scores_of_batch(
        model, params, instances, keys, draw, _lime_estimate, removal, mask_token_id, per_step
    )


def _lime_coalitions(key, num_positions: int, num_real, num_samples: int):
    """``(players [S, N], keeps [S, T])``: LIME's neighbourhood (``lime_samples``)."""
    players = lime_samples(key, num_positions - 2, num_samples, num_real)
    return players, keep_from_players(players, num_positions)


def _lime_estimate(players, values, num_real, num_positions: int) -> jax.Array:
    """LIME's scores ``[T]``: the weighted ridge's coefficients on the real tokens."""
    coefficients, _ = weighted_ridge(
        players.astype(values.dtype), values, lime_weights(players, num_real)
    )
    real = jnp.arange(players.shape[-1]) < num_real
    return scores_on_positions(jnp.where(real, coefficients, 0.0), num_positions)
