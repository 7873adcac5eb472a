"""Shapley values of the real tokens (SPEC §7): exact, permutation sampling, KernelSHAP.

The players are the real tokens: player ``j`` is position ``j + 1``. A batch padded
to width T has ``N = T − 2`` player slots; an instance with ``n < N`` real tokens
leaves slots ``n … N − 1`` empty (removing them changes nothing), so their value is 0
and the others' are those of the n-player game. ``v(S) = p(ŷ | x_S)``
(``perturbation.coalition_values``: the tokens outside S masked, or deleted).
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from attn_audit.audits.protocol import original_pass
from attn_audit.explainers.perturbation import (
    batch_predictions,
    coalition_values,
    coalition_values_of_batch,
    keep_from_players,
    random_player_ranks,
    sampled_scores,
    sampled_scores_of_batch,
    scores_on_positions,
)

# Exact Shapley evaluates 2^N coalitions per instance: 16 players are 65,536 forward passes.
MAX_EXACT_PLAYERS = 16


def coalition_bits(num_players: int) -> np.ndarray:
    """Every coalition of ``num_players``: bool ``[2^N, N]``, row c holds the bits of c."""
    codes = np.arange(2**num_players)
    return ((codes[:, None] >> np.arange(num_players)) & 1).astype(bool)


def _log_shapley_weight(size, num_real):
    """``log(s! (n − s − 1)! / n!)``, the weight of a coalition of size s not holding t."""
    return (
        jax.lax.lgamma(size + 1.0)
        + jax.lax.lgamma(jnp.maximum(num_real - size, 1.0))
        - jax.lax.lgamma(num_real + 1.0)
    )


def shapley_from_values(values: jax.Array, num_real) -> jax.Array:
    """Exact Shapley values from ``v`` of every coalition ``c`` (``coalition_bits`` order).

    ``φ_t = Σ_{S ∌ t} w(|S|) [v(S ∪ t) − v(S)]``, ``w(s) = s! (n − s − 1)! / n!``, over
    the coalitions of the first ``num_real`` players (codes below ``2^n``; the others
    hold empty slots and repeat them). Each coalition's value is read once: with
    ``b_ct`` its bits, ``φ_t = Σ_c v_c [b_ct (w(s_c − 1) + w(s_c)) − w(s_c)]``, taking
    ``w(n) = w(−1) = 0``.

    Args:
      values: ``[2^N]``.
      num_real: n ≤ N (int scalar).

    Returns:
      ``[N]``, zero for the empty slots.
    """
    num_players = int(np.log2(values.shape[0]))
    bits = coalition_bits(num_players)
    sizes = jnp.asarray(bits.sum(axis=1), values.dtype)
    num_real = jnp.asarray(num_real, values.dtype)
    valid = jnp.right_shift(jnp.arange(values.shape[0]), num_real.astype(jnp.int32)) == 0

    def weight(size):
        inside = (size >= 0) & (size <= num_real - 1)
        return jnp.where(inside, jnp.exp(_log_shapley_weight(size, num_real)), 0.0)

    weighted = jnp.where(valid, values, 0.0)
    with_t = jnp.asarray(bits, values.dtype).T @ (weighted * (weight(sizes - 1) + weight(sizes)))
    phi = with_t - jnp.sum(weighted * weight(sizes))
    return jnp.where(jnp.arange(num_players) < num_real, phi, 0.0)


def _setting(model, params, instance):
    probabilities = original_pass(model, params, instance)[3]
    num_positions = instance["token_ids"].shape[0]
    return jnp.argmax(probabilities), num_positions, instance["length"] - 2


def shapley_exact(
    model, params, instance, mask_token_id: int, removal: str = "mask",
    max_players: int = MAX_EXACT_PLAYERS, chunk: int | None = None,
) -> tuple[jax.Array, jax.Array]:  # fmt: skip
    """Exact Shapley values by evaluating all ``2^N`` coalitions once, ``N = min(T − 2, max)``.

    Returns:
      ``(φ [T], zero off the real tokens; done)``: ``done`` is False (and φ NaN) for an
      instance with more than ``max_players`` real tokens.
    """
    target, num_positions, num_real = _setting(model, params, instance)
    num_players = max(0, min(num_positions - 2, max_players))
    keeps = keep_from_players(jnp.asarray(coalition_bits(num_players)), num_positions)
    values = coalition_values(model, params, instance, keeps, target, removal, mask_token_id, chunk)
    return _exact_estimate(values, num_real, num_players, num_positions)


def _exact_estimate(values, num_real, num_players: int, num_positions: int):
    done = num_real <= num_players
    phi = scores_on_positions(shapley_from_values(values, jnp.minimum(num_real, num_players)),
                              num_positions)  # fmt: skip
    return jnp.where(done, phi, jnp.nan), done


def _batch_setting(model, params, instances):
    """``(targets [B], T, n [B])`` of a batch."""
    return (
        batch_predictions(model, params, instances)[1],
        instances["token_ids"].shape[1],
        instances["length"] - 2,
    )


def shapley_exact_of_batch(
    model, params, instances, mask_token_id: int, removal: str, max_players: int, per_step: int
) -> tuple[jax.Array, jax.Array]:
    """``shapley_exact`` of every row of a batch, evaluating only the ``2^n`` coalitions of each
    row's n real tokens (none for a row past ``max_players``): ``(φ [B, T], done [B])``."""
    targets, num_positions, num_real = _batch_setting(model, params, instances)
    num_players = max(0, min(num_positions - 2, max_players))
    keeps = keep_from_players(jnp.asarray(coalition_bits(num_players)), num_positions)
    codes = jnp.arange(2**num_players)[None, :]
    needed = (num_real[:, None] >= 1) & (num_real[:, None] <= num_players)
    needed &= jnp.right_shift(codes, jnp.clip(num_real, 0, num_players)[:, None]) == 0
    values = coalition_values_of_batch(
        model, params, instances, keeps, needed, targets, removal, mask_token_id, per_step
    )
    return jax.vmap(
        lambda row_values, row_real: _exact_estimate(row_values, row_real, num_players,
                                                     num_positions)
    )(values, num_real)  # fmt: skip


def shapley_sampling(
    model, params, instance, key: jax.Array, mask_token_id: int, num_permutations: int = 20,
    removal: str = "mask", chunk: int | None = None,
) -> tuple[jax.Array, jax.Array]:  # fmt: skip
    """Permutation-sampling Shapley values with antithetic pairs (Castro et al. 2009).

    ``m/2`` random orders of the real tokens and their reverses; in each order every
    token's marginal contribution ``v(before ∪ t) − v(before)`` (N − 1 coalitions per
    order, ``v(∅)`` and ``v(N)`` evaluated once for all). ``φ_t`` is the mean over the m
    orders; its standard error is that of the ``m/2`` pair means (a pair's two orders are
    not independent).

    Returns:
      ``(φ [T], standard error [T])``, zero off the real tokens.
    """
    _check_permutations(num_permutations)
    target, num_positions, num_real = _setting(model, params, instance)
    ranks, keeps = _sampling_coalitions(key, num_positions, num_real, num_permutations)
    values = coalition_values(model, params, instance, keeps, target, removal, mask_token_id, chunk)
    return _sampling_estimate(values, ranks, num_positions)


def shapley_sampling_of_batch(
    model, params, instances, keys: jax.Array, mask_token_id: int, num_permutations: int,
    removal: str, per_step: int,
) -> tuple[jax.Array, jax.Array]:  # fmt: skip
    """``shapley_sampling`` of every row of a batch (``keys [B]``, one per row), evaluating only
    what its n real tokens need: ``2 + m (n − 1)`` coalitions, not ``2 + m (N − 1)`` (a prefix
    of k ≥ n players of an order holds every real token: its value is ``v(N)``).

    Returns:
      ``(φ [B, T], standard error [B, T])``.
    """
    _check_permutations(num_permutations)
    targets, num_positions, num_real = _batch_setting(model, params, instances)
    ranks, keeps = jax.vmap(
        lambda key, row_real: _sampling_coalitions(key, num_positions, row_real, num_permutations)
    )(keys, num_real)  # fmt: skip
    steps = jnp.arange(1, num_positions - 2)  # prefix sizes k = 1 … N − 1
    inner = steps[None, None, :] < num_real[:, None, None]  # [B, 1, N − 1]
    inner = jnp.broadcast_to(inner, (num_real.shape[0], num_permutations, steps.shape[0]))
    ends = jnp.broadcast_to((num_real >= 1)[:, None], (num_real.shape[0], 2))
    needed = jnp.concatenate([ends, inner.reshape(num_real.shape[0], -1)], axis=1)
    values = coalition_values_of_batch(
        model, params, instances, keeps, needed, targets, removal, mask_token_id, per_step
    )
    values = jnp.where(needed, values, values[:, 1:2])
    return jax.vmap(lambda v, r: _sampling_estimate(v, r, num_positions))(values, ranks)


def _check_permutations(num_permutations: int) -> None:
    if num_permutations < 4 or num_permutations % 2:
        raise ValueError(
            f"Shapley sampling needs an even number of permutations ≥ 4, got {num_permutations}."
        )


def _sampling_coalitions(key, num_positions: int, num_real, num_permutations: int):
    """``(ranks [m, N], keeps [2 + m (N − 1), T])``: each order's rank of every player (the
    second half reverses the first), and the coalitions ∅, N, then each order's first
    k = 1 … N − 1 players."""
    num_players, half = num_positions - 2, num_permutations // 2
    ranks, _ = random_player_ranks(key, num_players, half, num_real)
    # The reverse order ranks real player p at n − 1 − rank(p); empty slots stay last.
    is_real = (jnp.arange(num_players) < num_real)[None, :]
    reversed_ranks = jnp.where(is_real, num_real - 1 - ranks, ranks)
    ranks = jnp.concatenate([ranks, reversed_ranks])  # [m, N]
    # The first k players of each order, k = 1 … N − 1; v(∅) and v(N) once for all orders.
    steps = jnp.arange(1, num_players)
    prefixes = ranks[:, None, :] < steps[None, :, None]  # [m, N − 1, N]
    ends = jnp.stack([jnp.zeros(num_players, bool), jnp.ones(num_players, bool)])
    coalitions = jnp.concatenate([ends, prefixes.reshape(-1, num_players)])
    return ranks, keep_from_players(coalitions, num_positions)


def _sampling_estimate(values, ranks, num_positions: int):
    """``(φ [T], standard error [T])`` from the values of ``_sampling_coalitions``."""
    num_permutations, num_players = ranks.shape
    half = num_permutations // 2
    inner = values[2:].reshape(num_permutations, num_players - 1)
    empty, full = jnp.broadcast_to(values[:2, None, None], (2, num_permutations, 1))
    gains = jnp.diff(jnp.concatenate([empty, inner, full], axis=-1), axis=-1)
    contributions = jnp.take_along_axis(gains, ranks, axis=-1)  # [m, N]: player p's gain
    pairs = (contributions[:half] + contributions[half:]) / 2.0
    phi = jnp.mean(pairs, axis=0)
    error = jnp.std(pairs, axis=0, ddof=1) / math.sqrt(half)
    return scores_on_positions(phi, num_positions), scores_on_positions(error, num_positions)


def shapley_kernel_weights(sizes, num_real):
    """``π(z) = (n − 1) / (C(n, |z|) |z| (n − |z|))``; 0 for the empty and the full coalition."""
    sizes = jnp.asarray(sizes, jnp.float32)
    num_real = jnp.asarray(num_real, jnp.float32)
    inside = (sizes >= 1) & (sizes <= num_real - 1)
    safe = jnp.where(inside, sizes, 1.0)
    log_choose = (
        jax.lax.lgamma(num_real + 1.0) - jax.lax.lgamma(safe + 1.0)
        - jax.lax.lgamma(jnp.maximum(num_real - safe, 0.0) + 1.0)
    )  # fmt: skip
    log_pi = jnp.log(jnp.maximum(num_real - 1.0, 1.0)) - log_choose - jnp.log(safe)
    log_pi = log_pi - jnp.log(jnp.maximum(num_real - safe, 1.0))
    return jnp.where(inside, jnp.exp(log_pi), 0.0)


def kernel_shap_solution(
    players: jax.Array, values: jax.Array, weights: jax.Array, full_value, empty_value, num_real
) -> jax.Array:
    """KernelSHAP's weighted least squares under the efficiency constraint.

    ``min_φ Σ_i w_i (v_i − v(∅) − z_i·φ)²`` subject to ``Σ_t φ_t = v(N) − v(∅)``, solved
    through its KKT system (least-squares, so that a rank-deficient sample still gives
    the minimum-norm answer). Slots at or after ``num_real`` are fixed at 0.

    Args:
      players: bool ``[S, N]``, the coalitions z_i.
      values: ``[S]``, ``v(z_i)``; weights: ``[S]``.
      full_value, empty_value: ``v(N)``, ``v(∅)``.
      num_real: n.

    Returns:
      ``φ [N]``.
    """
    num_players = players.shape[-1]
    real = jnp.arange(num_players) < num_real
    features = jnp.where(real[None, :], players, False).astype(values.dtype)
    # Normalised: the same solution, and a KKT system scaled like its row of ones.
    weights = weights / jnp.sum(weights)
    gram = features.T @ (weights[:, None] * features)
    gram = jnp.where(real[:, None] & real[None, :], gram, jnp.eye(num_players, dtype=gram.dtype))
    moment = jnp.where(real, features.T @ (weights * (values - empty_value)), 0.0)
    constraint = real.astype(values.dtype)
    system = jnp.block([[gram, constraint[:, None]], [constraint[None, :], jnp.zeros((1, 1))]])
    right = jnp.concatenate([moment, jnp.reshape(full_value - empty_value, (1,))])
    solution = jnp.linalg.lstsq(system, right)[0]
    return jnp.where(real, solution[:num_players], 0.0)


def kernel_shap(
    model, params, instance, key: jax.Array, mask_token_id: int, num_samples: int = 500,
    removal: str = "mask", chunk: int | None = None,
) -> jax.Array:  # fmt: skip
    """KernelSHAP (Lundberg & Lee 2017) with ``num_samples`` coalitions drawn from the kernel.

    A coalition's size s ∈ 1 … n − 1 is drawn with probability ∝ ``(n − 1) / (s (n − s))``
    (the Shapley kernel summed over the ``C(n, s)`` coalitions of that size), then its
    members uniformly; drawn in proportion to the kernel, each sample has weight 1 in
    ``kernel_shap_solution``. ``v(N)`` and ``v(∅)`` are evaluated exactly.

    Returns:
      ``φ [T]``, zero off the real tokens.
    """
    draw = functools.partial(_kernel_coalitions, num_samples=num_samples)
    return sampled_scores(
        model, params, instance, key, draw, _kernel_estimate, removal, mask_token_id, chunk
    )


def kernel_shap_of_batch(
    model, params, instances, keys: jax.Array, mask_token_id: int, num_samples: int,
    removal: str, per_step: int,
) -> jax.Array:  # fmt: skip
    """``kernel_shap`` of every row of a batch (``keys [B]``, one per row), evaluating the
    coalitions of the rows with real tokens only, ``per_step`` at a time: ``[B, T]``."""
    draw = functools.partial(_kernel_coalitions, num_samples=num_samples)
    return sampled_scores_of_batch(
        model, params, instances, keys, draw, _kernel_estimate, removal, mask_token_id, per_step
    )


def _kernel_coalitions(key, num_positions: int, num_real, num_samples: int):
    """``(players [S, N], keeps [2 + S, T])``: S coalitions drawn from the Shapley kernel (see
    ``kernel_shap``), and the keeps of N, ∅, then each of them."""
    num_players = num_positions - 2
    ranks, uniform = random_player_ranks(key, num_players, num_samples, num_real)
    sizes = jnp.arange(1, max(num_players, 1) + 1, dtype=jnp.float32)
    size_mass = 1.0 / (sizes * jnp.maximum(num_real - sizes, 1))
    size_mass = jnp.where(sizes <= num_real - 1, size_mass, 0.0)
    cumulative = jnp.cumsum(size_mass)
    drawn = uniform * cumulative[-1]
    size = 1 + jnp.searchsorted(cumulative, drawn, side="right")
    players = ranks < size[:, None]
    ends = jnp.stack([jnp.ones(num_players, bool), jnp.zeros(num_players, bool)])
    return players, keep_from_players(jnp.concatenate([ends, players]), num_positions)


def _kernel_estimate(players, values, num_real, num_positions: int) -> jax.Array:
    """φ ``[T]`` from the values of N, ∅ and the sampled coalitions (``kernel_shap_solution``)."""
    weights = jnp.ones(players.shape[0], values.dtype)
    phi = kernel_shap_solution(players, values[2:], weights, values[0], values[1], num_real)
    return scores_on_positions(phi, num_positions)
