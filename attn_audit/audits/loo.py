"""Leave-one-out importance by deletion (JW §3.1, SPEC §3.2)."""

import jax
import jax.numpy as jnp

from attn_audit import stats
from attn_audit.audits._instance import original_pass, real_token_mask


def delete_position(token_ids: jax.Array, position: jax.Array) -> jax.Array:
    """``token_ids`` without ``position``: later ids shift left, PAD enters at the end. ``[T]``."""
    num_positions = token_ids.shape[0]
    source = jnp.arange(num_positions) + (jnp.arange(num_positions) >= position)
    shifted = token_ids[jnp.minimum(source, num_positions - 1)]
    return jnp.where(source < num_positions, shifted, 0)


def leave_one_out(model, params, instance, positions_per_chunk: int | None = None) -> jax.Array:
    """``Δŷ_t = TVD(ŷ(x₋t), ŷ(x))`` for every real token ``t`` (binary: ``|σ₋t − σ|``).

    The token is deleted, not masked: the sequence gets one shorter and the whole
    model is re-run, one variant per position: vmapped over positions ``1 … T − 2`` at
    once, or ``positions_per_chunk`` at a time (``lax.map``) to bound memory on
    long texts. A model with ``deletion_states`` (see ``protocol``) supplies the
    variants' states without re-encoding; attention and decoder still run per variant.

    Returns:
      ``[T]``, zero off the real tokens.
    """
    embedded, states, _, probabilities = original_pass(model, params, instance)
    num_positions = instance["token_ids"].shape[0]
    shortcut = getattr(model, "deletion_states", None)
    states_without = shortcut and shortcut(params, instance, embedded, states)

    def without(position):
        variant = dict(instance)
        variant["token_ids"] = delete_position(instance["token_ids"], position)
        variant["length"] = instance["length"] - 1
        if states_without is None:
            *_, variant_probabilities = original_pass(model, params, variant)
        else:
            variant_states = states_without(position)
            alpha = model.attention(params, variant, variant_states)
            variant_probabilities = model.decode(params, variant, variant_states, alpha)
        return stats.tvd(variant_probabilities, probabilities)

    # Real tokens sit at 1 … length − 2 <= T − 2: SOS (0) and position T − 1 are never deleted.
    positions = jnp.arange(1, max(num_positions - 1, 1))
    if positions_per_chunk is None or positions_per_chunk >= positions.shape[0]:
        changes = jax.vmap(without)(positions)
    else:
        changes = jax.lax.map(without, positions, batch_size=positions_per_chunk)
    changes = jnp.zeros(num_positions, changes.dtype).at[positions].set(changes)
    return jnp.where(real_token_mask(instance["length"], num_positions), changes, 0.0)
