"""Occlusion (blank-out, SPEC §7): ``f(x) − f(x with token t removed)`` for each real token."""

import jax
import jax.numpy as jnp

from attn_audit.audits.protocol import original_pass
from attn_audit.explainers.perturbation import (
    batch_predictions,
    coalition_values,
    coalition_values_of_batch,
)
from attn_audit.models import is_real_token, real_token_mask


def occlusion_keeps(num_positions: int) -> jax.Array:
    """bool ``[T − 2, T]``: row t − 1 removes position t, t = 1 … T − 2 (SOS and the last
    position are never real)."""
    return ~jnp.eye(num_positions, dtype=bool)[1 : num_positions - 1]


def occlusion(
    model, params, instance, mask_token_id: int, removal: str = "mask", chunk: int | None = None
) -> jax.Array:
    """``[T]``: ``p(ŷ | x) − p(ŷ | x without t)``, t masked (or deleted); 0 off the real tokens.

    Signed, unlike JW's leave-one-out (``audits.loo``: the TVD of the whole output).
    """
    probabilities = original_pass(model, params, instance)[3]
    target = jnp.argmax(probabilities)
    num_positions = instance["token_ids"].shape[0]
    keeps = occlusion_keeps(num_positions)
    values = coalition_values(model, params, instance, keeps, target, removal, mask_token_id, chunk)
    changes = jnp.pad(probabilities[target] - values, 1)
    return jnp.where(real_token_mask(instance["length"], num_positions), changes, 0.0)


def occlusion_of_batch(
    model, params, instances, mask_token_id: int, removal: str, per_step: int
) -> jax.Array:
    """``occlusion`` of every row of a batch, removing only real tokens: ``Σ_b n_b`` forward
    passes instead of ``B · (T − 2)`` (``coalition_values_of_batch``). ``[B, T]``."""
    probabilities, targets = batch_predictions(model, params, instances)
    num_positions = instances["token_ids"].shape[1]
    lengths = instances["length"][:, None]
    needed = is_real_token(jnp.arange(1, num_positions - 1)[None, :], lengths)
    values = coalition_values_of_batch(
        model, params, instances, occlusion_keeps(num_positions), needed, targets, removal,
        mask_token_id, per_step,
    )  # fmt: skip
    full = jnp.take_along_axis(probabilities, targets[:, None], axis=-1)
    changes = jnp.pad(full - values, ((0, 0), (1, 1)))
    return jnp.where(is_real_token(jnp.arange(num_positions)[None, :], lengths), changes, 0.0)
