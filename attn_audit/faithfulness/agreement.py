"""Agreement between explainers (SPEC §8): Kendall τ-b and top-20% Jaccard, per instance.

τ-b is ``stats.kendall_tau_b`` (scipy's, ties included). The top 20% of an explainer are
its top ``max(1, ⌈0.2·n⌉)`` real tokens, ties by position (``ranking``), and the
Jaccard index of two explainers is ``|A ∩ B| / |A ∪ B|`` of their top sets.
"""

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np

from attn_audit import stats
from attn_audit.faithfulness.ranking import token_ranks, top_count
from attn_audit.models import is_real_token

AGREEMENT_PERCENT = 20


def explainer_pairs(explainers) -> list[tuple[str, str]]:
    """Every unordered pair of explainers, in order."""
    return list(itertools.combinations(explainers, 2))


@functools.partial(jax.jit, static_argnames=("percent",))
def top_jaccard(scores: jax.Array, lengths: jax.Array, percent: int = AGREEMENT_PERCENT):
    """``[B, X, X]`` Jaccard index of the explainers' top ``percent``% tokens.

    Args:
      scores: ``[B, X, T]`` scores laid out on positions.
      lengths: ``[B]`` non-PAD positions.
    """

    def one(instance_scores, length):
        ranks = jax.vmap(token_ranks, in_axes=(0, None))(instance_scores, length)
        top = ranks < top_count(length - 2, percent)  # [X, T]
        both = jnp.sum(top[:, None, :] & top[None, :, :], axis=-1)
        either = jnp.sum(top[:, None, :] | top[None, :, :], axis=-1)
        return both / jnp.maximum(either, 1)

    return jax.vmap(one)(scores, lengths)


def pairwise_agreement(scores, available, lengths, explainers) -> dict[str, dict[str, np.ndarray]]:
    """Per instance τ-b and top-20% Jaccard for every pair of explainers.

    Args:
      scores: ``[B, X, T]`` laid out on positions; available: ``[B, X]`` bool.
      lengths: ``[B]``; explainers: the X names.

    Returns:
      ``"a|b"`` → ``{"tau": [B], "jaccard": [B]}`` (NaN where either explainer has no
      scores; τ-b NaN where scipy's is: a constant explainer, fewer than 2 tokens).
    """
    scores, available, lengths = np.asarray(scores), np.asarray(available), np.asarray(lengths)
    real = is_real_token(np.arange(scores.shape[-1])[None, :], lengths[:, None])
    jaccard = np.asarray(top_jaccard(scores, lengths))
    index = {name: i for i, name in enumerate(explainers)}
    pairs = {}
    for first, second in explainer_pairs(explainers):
        i, j = index[first], index[second]
        both = available[:, i] & available[:, j]
        tau, _ = stats.kendall_tau_b(scores[:, i], scores[:, j], real & both[:, None])
        pairs[f"{first}|{second}"] = {
            "tau": np.where(both, tau, np.nan),
            "jaccard": np.where(both, jaccard[:, i, j], np.nan),
        }
    return pairs
