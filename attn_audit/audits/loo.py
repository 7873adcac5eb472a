"""Leave-one-out importance by deletion (JW §3.1, SPEC §3.2)."""

import jax
import jax.numpy as jnp

from attn_audit import stats
from attn_audit.audits.protocol import (
    batch_pair_shortcut,
    batch_predictions,
    original_pass,
    pair_values_of_batch,
)
from attn_audit.batch_engine import chunked_vmap, ragged_map
from attn_audit.models import is_real_token, real_token_mask


def delete_position(token_ids: jax.Array, position: jax.Array) -> jax.Array:
    """``token_ids`` without ``position``: later ids shift left, PAD enters at the end. ``[T]``."""
    num_positions = token_ids.shape[0]
    source = jnp.arange(num_positions) + (jnp.arange(num_positions) >= position)
    shifted = token_ids[jnp.minimum(source, num_positions - 1)]
    return jnp.where(source < num_positions, shifted, 0)


def deleted_variant(instance: dict, position: jax.Array) -> dict:
    """``instance`` with the token at ``position`` deleted (``delete_position``, length − 1)."""
    variant = dict(instance)
    variant["token_ids"] = delete_position(instance["token_ids"], position)
    variant["length"] = instance["length"] - 1
    return variant


def output_change(model, params, variant, variant_states, probabilities) -> jax.Array:
    """``TVD(ŷ(variant), probabilities)`` from the variant's states: a scalar."""
    alpha = model.attention(params, variant, variant_states)
    return stats.tvd(model.decode(params, variant, variant_states, alpha), probabilities)


def leave_one_out(model, params, instance, positions_per_chunk: int | None = None) -> jax.Array:
    """``Δŷ_t = TVD(ŷ(x₋t), ŷ(x))`` for every real token ``t`` (binary: ``|σ₋t − σ|``).

    The token is deleted, not masked: the sequence gets one shorter and the whole
    model is re-run, one variant per position: vmapped over positions ``1 … T − 2`` at
    once, or ``positions_per_chunk`` at a time (``lax.map``) to bound memory on
    long texts. A model with ``deletion_states`` (see ``protocol``) supplies the
    variants' states without re-encoding, two at a time (positions p and
    ``length − 1 − p`` for ``p = 1 … ⌈(T − 2) / 2⌉``); attention and decoder still run
    per variant.

    Returns:
      ``[T]``, zero off the real tokens.
    """
    embedded, states, _, probabilities = original_pass(model, params, instance)
    num_positions, length = instance["token_ids"].shape[0], instance["length"]
    shortcut = getattr(model, "deletion_states", None)
    states_without_pair = shortcut and shortcut(params, instance, embedded, states)

    def without(position):
        variant = deleted_variant(instance, position)
        variant_states = model.encode(params, variant, model.embed(params, variant))
        return output_change(model, params, variant, variant_states, probabilities)

    def without_pair(position):
        pair = jnp.stack([position, length - 1 - position])
        variants = jax.vmap(lambda removed: deleted_variant(instance, removed))(pair)
        changes = jax.vmap(
            lambda variant, variant_states: output_change(
                model, params, variant, variant_states, probabilities
            )
        )(variants, states_without_pair(position))
        return pair, changes

    # Real tokens sit at 1 … length − 2 <= T − 2: SOS (0) and position T − 1 are never deleted.
    if states_without_pair is None:
        positions = jnp.arange(1, max(num_positions - 1, 1))
        changes = chunked_vmap(without, positions, positions_per_chunk)
    else:
        num_lanes = max((num_positions - 1) // 2, 1)  # ⌈(T − 2) / 2⌉ pairs
        chunk = positions_per_chunk and max(positions_per_chunk // 2, 1)
        positions, changes = chunked_vmap(without_pair, jnp.arange(1, num_lanes + 1), chunk)
        positions, changes = positions.reshape(-1), changes.reshape(-1)
    # Positions off the real tokens (pairs beyond the middle, padding) are dropped.
    is_real = is_real_token(positions, length)
    positions = jnp.where(is_real, positions, num_positions)
    changes = jnp.zeros(num_positions, changes.dtype).at[positions].set(changes, mode="drop")
    return jnp.where(real_token_mask(length, num_positions), changes, 0.0)


def leave_one_out_of_pairs(model, params, instances, pairs_per_step: int | None) -> jax.Array:
    """``leave_one_out`` of every row of a batch, for a model with ``deletion_states``: only
    each row's real pairs of deletions run (``protocol.pair_values_of_batch``: for a row of
    n tokens ``⌊(n − 1) / 2⌋`` pairs, not ``⌈(T − 2) / 2⌉``), ``pairs_per_step`` at a time.
    Equal to ``leave_one_out`` of each row (tested). ``[B, T]``, zero off the real tokens."""
    embedded, states, _, probabilities = jax.vmap(
        lambda instance: original_pass(model, params, instance)
    )(instances)
    shortcut = batch_pair_shortcut(
        lambda *row: model.deletion_states(params, *row), instances, embedded, states
    )

    def changes(row, instance, pair, pair_states):
        variants = jax.vmap(lambda removed: deleted_variant(instance, removed))(pair)
        return jax.vmap(
            lambda variant, variant_states: output_change(
                model, params, variant, variant_states, probabilities[row]
            )
        )(variants, pair_states)

    return pair_values_of_batch(shortcut, instances, changes, pairs_per_step)


def leave_one_out_of_batch(model, params, instances, variants_per_step: int) -> jax.Array:
    """``leave_one_out`` of every row of a batch, running only the real deletions.

    The per-instance function re-runs ``T − 2`` variants of every row, padding included;
    here only the (row, position) pairs of real tokens run, ``variants_per_step`` at a time
    (``batch_engine.ragged_map``: ``⌈Σ_b n_b / variants_per_step⌉`` steps). For models
    without a deletion shortcut (transformers, Flax models); each variant is the whole model
    at width T, as in ``leave_one_out``, whose result this equals.

    Args:
      instances: a batch of instances, each leaf ``[B, ...]``.
      variants_per_step: deletion variants run together (one vmapped step).

    Returns:
      ``[B, T]``, zero off the real tokens.
    """
    num_positions = instances["token_ids"].shape[1]
    lengths = instances["length"]
    probabilities, _ = batch_predictions(model, params, instances)
    # Item j of a row deletes position j + 1 (1 … T − 2: SOS and position T − 1 never are).
    candidates = jnp.arange(1, max(num_positions - 1, 1))

    def change(row, item):
        instance = jax.tree.map(lambda leaf: leaf[row], instances)
        variant = deleted_variant(instance, candidates[item])
        variant_states = model.encode(params, variant, model.embed(params, variant))
        return output_change(model, params, variant, variant_states, probabilities[row])

    needed = is_real_token(candidates[None, :], lengths[:, None])  # [B, T − 2]
    changes = ragged_map(change, needed, variants_per_step)
    changes = jnp.pad(changes, ((0, 0), (1, num_positions - 1 - candidates.shape[0])))
    real = is_real_token(jnp.arange(num_positions)[None, :], lengths[:, None])
    return jnp.where(real, changes, 0.0)
