"""Occlusion (blank-out, SPEC §7): ``f(x) − f(x with token t removed)`` for each real token."""

import jax
import jax.numpy as jnp

from attn_audit.audits.protocol import batch_pair_shortcut, original_pass, pair_values_of_batch
from attn_audit.batch_engine import chunked_vmap
from attn_audit.explainers.perturbation import (
    coalition_values,
    coalition_values_of_batch,
    remove_tokens,
)
from attn_audit.models import is_real_token, real_token_mask


def occlusion_keeps(num_positions: int) -> jax.Array:
    """bool ``[T − 2, T]``: row t − 1 removes position t, t = 1 … T − 2 (SOS and the last
    position are never real)."""
    return ~jnp.eye(num_positions, dtype=bool)[1 : num_positions - 1]


def pair_shortcut(model, params, instance, embedded, states, removal: str, mask_token_id: int):
    """The model's shortcut for the variants of ``instance`` without one token, or ``None``:
    ``p -> states`` of the pair (p removed, ``length − 1 − p`` removed), from
    ``model.masking_states`` (mask) or ``model.deletion_states`` (delete); see
    ``audits.protocol``."""
    if removal == "mask":
        shortcut = getattr(model, "masking_states", None)
        return shortcut and shortcut(params, instance, embedded, states, mask_token_id)
    shortcut = getattr(model, "deletion_states", None)
    return shortcut and shortcut(params, instance, embedded, states)


def occlusion(
    model, params, instance, mask_token_id: int, removal: str = "mask", chunk: int | None = None,
    shortcut: bool = True,
) -> jax.Array:  # fmt: skip
    """``[T]``: ``p(ŷ | x) − p(ŷ | x without t)``, t masked (or deleted); 0 off the real tokens.

    Signed, unlike JW's leave-one-out (``audits.loo``: the TVD of the whole output). A
    model with ``masking_states`` (mask) or ``deletion_states`` (delete) supplies the
    variants' states two at a time, reusing what the removal leaves unchanged
    (``occlusion_of_pairs``); ``shortcut=False`` re-runs the whole model per variant (the
    reference the shortcut is tested against). ``chunk``: variants per step.
    """
    embedded, states, _, probabilities = original_pass(model, params, instance)
    target = jnp.argmax(probabilities)
    num_positions = instance["token_ids"].shape[0]
    pair_states = shortcut and pair_shortcut(
        model, params, instance, embedded, states, removal, mask_token_id
    )
    if pair_states:
        values = occlusion_of_pairs(model, params, instance, pair_states, target, removal,
                                    mask_token_id, chunk)  # fmt: skip
    else:
        keeps = occlusion_keeps(num_positions)
        values = coalition_values(
            model, params, instance, keeps, target, removal, mask_token_id, chunk
        )
        values = jnp.pad(values, 1)
    changes = probabilities[target] - values
    return jnp.where(real_token_mask(instance["length"], num_positions), changes, 0.0)


def occlusion_of_pairs(
    model, params, instance, pair_states, target, removal: str, mask_token_id: int,
    chunk: int | None = None,
) -> jax.Array:  # fmt: skip
    """``p(target | x without t)`` for every real token t, from ``pair_states`` (see
    ``pair_shortcut``): pairs ``(p, n − 1 − p)`` for ``p = 1 … ⌈(T − 2) / 2⌉``, ``chunk``
    variants a step. ``[T]``, 0 off the real tokens."""
    num_positions, length = instance["token_ids"].shape[0], instance["length"]
    positions = jnp.arange(num_positions)

    def values_of_pair(position):
        pair = jnp.stack([position, length - 1 - position])
        variants = jax.vmap(
            lambda removed: remove_tokens(instance, positions != removed, removal, mask_token_id)
        )(pair)

        def value(variant, variant_states):
            alpha = model.attention(params, variant, variant_states)
            return model.decode(params, variant, variant_states, alpha)[target]

        return jax.vmap(value)(variants, pair_states(position))

    firsts = jnp.arange(1, max((num_positions - 1) // 2, 1) + 1)
    values = chunked_vmap(values_of_pair, firsts, chunk and max(chunk // 2, 1))  # [pairs, 2]
    mirrors = length - 1 - firsts
    # Each real token once: p from the pair's first variant while p ≤ q, q from its second.
    slots = jnp.stack([jnp.where(firsts <= mirrors, firsts, num_positions),
                       jnp.where(mirrors > firsts, mirrors, num_positions)], axis=1)  # fmt: skip
    found = jnp.zeros(num_positions, values.dtype)
    found = found.at[slots.reshape(-1)].set(values.reshape(-1), mode="drop")
    return jnp.where(real_token_mask(length, num_positions), found, 0.0)


# A variant from the pair shortcut holds a fraction of a re-encoded variant's memory (no input
# projections of its own): XLA's temporary buffers for the SST test set's four widths were
# 13-78 MiB against 68-558 MiB for re-encoding, at the same variants a step. So the pair path
# runs 4x the variants of the memory budget a step (1.1x faster than 1x, 2026-12-07).
PAIR_VARIANTS_PER_BUDGETED_VARIANT = 4


def occlusion_of_batch(
    model, params, instances, mask_token_id: int, removal: str, per_step: int
) -> jax.Array:
    """``occlusion`` of every row of a batch. ``[B, T]``.

    With the model's shortcut (``pair_shortcut``), only each row's real pairs of variants
    run (``protocol.pair_values_of_batch``), ``PAIR_VARIANTS_PER_BUDGETED_VARIANT · per_step``
    variants at a time. Without it only
    the real tokens are removed: ``Σ_b n_b`` forward passes instead of ``B · (T − 2)``,
    ``per_step`` at a time (``coalition_values_of_batch``).
    """
    num_positions = instances["token_ids"].shape[1]
    lengths = instances["length"][:, None]
    real = is_real_token(jnp.arange(num_positions)[None, :], lengths)
    embedded, states, _, probabilities = jax.vmap(
        lambda instance: original_pass(model, params, instance)
    )(instances)
    targets = jnp.argmax(probabilities, axis=-1)
    full = jnp.take_along_axis(probabilities, targets[:, None], axis=-1)
    shortcut = batch_pair_shortcut(
        lambda *row: pair_shortcut(model, params, *row, removal, mask_token_id),
        instances, embedded, states,
    )  # fmt: skip
    if shortcut is not None:
        positions = jnp.arange(num_positions)

        def values(row, instance, pair, pair_states):
            def value(removed, variant_states):
                variant = remove_tokens(instance, positions != removed, removal, mask_token_id)
                alpha = model.attention(params, variant, variant_states)
                return model.decode(params, variant, variant_states, alpha)[targets[row]]

            return jax.vmap(value)(pair, pair_states)

        pairs_per_step = max(PAIR_VARIANTS_PER_BUDGETED_VARIANT * per_step // 2, 1)
        found = pair_values_of_batch(shortcut, instances, values, pairs_per_step)
        return jnp.where(real, full - found, 0.0)
    needed = is_real_token(jnp.arange(1, num_positions - 1)[None, :], lengths)
    found = coalition_values_of_batch(
        model, params, instances, occlusion_keeps(num_positions), needed, targets, removal,
        mask_token_id, per_step,
    )  # fmt: skip
    return jnp.where(real, full - jnp.pad(found, ((0, 0), (1, 1))), 0.0)
