"""The floor every explainer is compared with (SPEC §7): a seeded random ranking."""

import jax
import jax.numpy as jnp

from attn_audit.models import real_token_mask


def random_scores(instance, key: jax.Array) -> jax.Array:
    """Uniform ``[0, 1)`` scores on the real tokens from ``key``: ``[T]``, 0 elsewhere.

    Position t's draw does not depend on the padded width T (threefry draws by index).
    """
    num_positions = instance["token_ids"].shape[0]
    scores = jax.random.uniform(key, (num_positions,))
    return jnp.where(real_token_mask(instance["length"], num_positions), scores, 0.0)
