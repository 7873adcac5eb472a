"""The permutation test: shuffle attention over the real tokens (JW §3.2, SPEC §3.4)."""

import jax
import jax.numpy as jnp

from attn_audit import stats
from attn_audit.audits.protocol import original_pass
from attn_audit.batch_engine import chunked_vmap
from attn_audit.models import real_token_mask

NUM_PERMUTATIONS = 100


def permute_real_tokens(alpha: jax.Array, mask: jax.Array, key: jax.Array) -> jax.Array:
    """``α`` with its values shuffled uniformly among the positions where ``mask`` holds.

    Positions off the mask keep 0. ``[T] -> [T]``.
    """
    num_positions = alpha.shape[0]
    # Real positions in a random order (others after them), and in their own order.
    shuffled = jnp.argsort(jnp.where(mask, jax.random.uniform(key, (num_positions,)), 2.0))
    in_order = jnp.argsort(jnp.where(mask, jnp.arange(num_positions), num_positions))
    return jnp.zeros_like(alpha).at[in_order].set(alpha[shuffled])


def permutation_tvds(
    model, params, instance, key: jax.Array, num_permutations: int = NUM_PERMUTATIONS,
    chunk: int | None = None,
) -> jax.Array:  # fmt: skip
    """``TVD(ŷ(h, π(α)), ŷ(h, α))`` for ``num_permutations`` shuffles ``π``; states fixed.

    The shuffles are vmapped, ``chunk`` at a time when given (``chunked_vmap``: the same
    shuffles and results, less memory for a decode that re-runs whole blocks).

    Returns:
      ``[num_permutations]``; the audit's statistic is their median.
    """
    _, states, alpha, probabilities = original_pass(model, params, instance)
    mask = real_token_mask(instance["length"], alpha.shape[0])

    def one(permutation_key):
        permuted = permute_real_tokens(alpha, mask, permutation_key)
        return stats.tvd(model.decode(params, instance, states, permuted), probabilities)

    return chunked_vmap(one, jax.random.split(key, num_permutations), chunk)


def permutation_median_tvd(
    model, params, instance, key, num_permutations=NUM_PERMUTATIONS, chunk=None
):
    """The median over shuffles of the output change (a scalar)."""
    return jnp.median(permutation_tvds(model, params, instance, key, num_permutations, chunk))
