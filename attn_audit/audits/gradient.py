"""Gradient importance with attention held fixed (JW §3.1, SPEC §3.1)."""

import jax
import jax.numpy as jnp

from attn_audit.audits.protocol import original_pass
from attn_audit.models import real_token_mask


def gradient_importance(model, params, instance) -> jax.Array:
    """Importance of each token for the predicted class, attention held fixed.

    ``g = ∂ŷ_c / ∂e`` with ``c = argmax ŷ`` and ``α`` a constant (stop-gradient);
    the importance of token ``t`` is ``|Σ_d g_{t,d} e_{t,d}|`` (the gradient with
    respect to the one-hot input), normalised to sum 1 over the real tokens.
    For a binary model, ``|∂(1 − σ)| = |∂σ|``, so this equals JW's sigmoid gradient.

    Args:
      model: an ``AuditableModel``.
      params: its parameters.
      instance: one instance (``token_ids [T]``, ``length``, ...).

    Returns:
      ``[T]``, zero off the real tokens.
    """
    embedded, _, alpha, probabilities = original_pass(model, params, instance)
    predicted = jnp.argmax(probabilities)
    fixed_alpha = jax.lax.stop_gradient(alpha)

    def predicted_probability(inputs):
        states = model.encode(params, instance, inputs)
        return model.decode(params, instance, states, fixed_alpha)[predicted]

    grads = jax.grad(predicted_probability)(embedded)
    mask = real_token_mask(instance["length"], embedded.shape[0])
    importance = jnp.where(mask, jnp.abs(jnp.sum(grads * embedded, axis=-1)), 0.0)
    total = jnp.sum(importance)
    return jnp.where(total > 0, importance / jnp.where(total > 0, total, 1.0), importance)
