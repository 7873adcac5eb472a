"""Helpers shared by the audits: the real-token mask and the original forward pass."""

import jax
import jax.numpy as jnp


def real_token_mask(length: jax.Array, num_positions: int) -> jax.Array:
    """bool ``[T]``: True on the real tokens, positions ``1 … length − 2`` (SPEC §1)."""
    positions = jnp.arange(num_positions)
    return (positions >= 1) & (positions <= length - 2)


def original_pass(model, params, instance):
    """``(embedded [T, E], states, α [T], ŷ [C])`` of the unmodified instance."""
    embedded = model.embed(params, instance)
    states = model.encode(params, instance, embedded)
    alpha = model.attention(params, instance, states)
    probabilities = model.decode(params, instance, states, alpha)
    return embedded, states, alpha, probabilities
