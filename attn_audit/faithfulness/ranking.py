"""Token rankings shared by the faithfulness metrics (SPEC §8): order by score, ties by position.

ERASER's rationale ``r_k`` is the top ``max(1, ⌈k·n⌉)`` real tokens; decision flips remove
the tokens in this order; agreement compares the top 20%. One definition for all of them.
"""

import jax.numpy as jnp

from attn_audit.models import real_token_mask

# ERASER's k ∈ {1, 5, 10, 20, 50}%, as integer percents (⌈k·n⌉ computed exactly).
PERCENTS = (1, 5, 10, 20, 50)


def top_count(num_tokens, percent):
    """``max(1, ⌈percent · n / 100⌉)`` in integer arithmetic (numpy or JAX integers): exact,
    with no float rounding at the ceiling to reason about."""
    return jnp.maximum(1, (percent * num_tokens + 99) // 100)


def token_ranks(scores, length):
    """Each position's rank among the real tokens: 0 for the highest score.

    Ties go to the earlier position. Positions that are not real tokens get rank T, so
    ``ranks < c`` selects the top ``c`` real tokens.

    Args:
      scores: ``[T]`` float, one explainer's scores.
      length: scalar int, non-PAD positions (SOS and EOS included).

    Returns:
      int32 ``[T]``.
    """
    num_positions = scores.shape[-1]
    real = real_token_mask(length, num_positions)
    order = jnp.argsort(jnp.where(real, -scores, jnp.inf), stable=True)
    ranks = jnp.zeros(num_positions, jnp.int32).at[order].set(jnp.arange(num_positions))
    return jnp.where(real, ranks, num_positions)
