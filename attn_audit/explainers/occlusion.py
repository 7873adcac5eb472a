"""Occlusion (blank-out, SPEC §7): ``f(x) − f(x with token t removed)`` for each real token."""

import jax
import jax.numpy as jnp

from attn_audit.audits.protocol import original_pass
from attn_audit.explainers.perturbation import coalition_values
from attn_audit.models import real_token_mask


def occlusion(
    model, params, instance, mask_token_id: int, removal: str = "mask", chunk: int | None = None
) -> jax.Array:
    """``[T]``: ``p(ŷ | x) − p(ŷ | x without t)``, t masked (or deleted); 0 off the real tokens.

    Signed, unlike JW's leave-one-out (``audits.loo``: the TVD of the whole output).
    """
    probabilities = original_pass(model, params, instance)[3]
    target = jnp.argmax(probabilities)
    num_positions = instance["token_ids"].shape[0]
    # Row t − 1 removes position t, t = 1 … T − 2 (SOS and the last position are never real).
    keeps = ~jnp.eye(num_positions, dtype=bool)[1 : num_positions - 1]
    values = coalition_values(model, params, instance, keeps, target, removal, mask_token_id, chunk)
    changes = jnp.pad(probabilities[target] - values, 1)
    return jnp.where(real_token_mask(instance["length"], num_positions), changes, 0.0)
