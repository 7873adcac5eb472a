"""ERASER's comprehensiveness and sufficiency (DeYoung et al. 2020; SPEC §8), one instance.

With ``f(x) = p(ŷ | x)`` and ``r_k`` the top ``max(1, ⌈k·n⌉)`` tokens of an explainer:

    comp_k = f(x) − f(x ∖ r_k)        (r_k removed; higher is more faithful)
    suff_k = f(x) − f(r_k)            (only r_k kept, in order; lower is more faithful)
    AOPC_comp = mean_k comp_k,  AOPC_suff = mean_k suff_k

over ``k ∈ {1, 5, 10, 20, 50}%``. ERASER deletes the tokens; masking them (the mask
token in their place) is the other reading, and both are computed.
"""

import jax
import jax.numpy as jnp

from attn_audit.audits.protocol import original_pass
from attn_audit.explainers.perturbation import (
    batch_predictions,
    coalition_values,
    coalition_values_of_batch,
)
from attn_audit.faithfulness.ranking import PERCENTS, token_ranks, top_count

# ERASER's rule (deletion) first, then masking.
ERASER_REMOVALS = ("delete", "mask")


def rationale_masks(scores: jax.Array, length, percents=PERCENTS) -> jax.Array:
    """Bool ``[X, K, T]``: the top ``max(1, ⌈k·n⌉)`` real tokens of each explainer's ``[X, T]``."""
    ranks = jax.vmap(token_ranks, in_axes=(0, None))(scores, length)  # [X, T]
    counts = top_count(length - 2, jnp.asarray(percents))  # [K]
    return ranks[:, None, :] < counts[None, :, None]


def eraser(
    model, params, instance, scores: jax.Array, mask_token_id: int, removals=ERASER_REMOVALS,
    percents=PERCENTS, chunk: int | None = None,
) -> dict[str, jax.Array]:  # fmt: skip
    """ERASER's curves for X explainers' scores of one instance.

    Args:
      model: an ``AuditableModel``; params: its parameters.
      instance: one instance (``token_ids [T]``, ``length``, ...).
      scores: ``[X, T]``, each explainer's scores laid out on positions.
      mask_token_id: the mask token (for ``"mask"``).
      removals: a tuple of ``explainers.perturbation.REMOVALS``.
      percents: the k of ``r_k``, integer percents.
      chunk: coalitions per vmapped step (see ``chunked_vmap``).

    Returns:
      ``{"comprehensiveness": [R, X, K], "sufficiency": [R, X, K]}``, R the removals.
    """
    num_explainers, num_positions = scores.shape
    probabilities = original_pass(model, params, instance)[3]
    target = jnp.argmax(probabilities)
    rationale = rationale_masks(scores, instance["length"], percents)  # [X, K, T]
    keeps = jnp.concatenate([~rationale, rationale]).reshape(-1, num_positions)
    curves = {"comprehensiveness": [], "sufficiency": []}
    for removal in removals:
        values = coalition_values(
            model, params, instance, keeps, target, removal, mask_token_id, chunk
        )
        comprehensiveness, sufficiency = jnp.split(probabilities[target] - values, 2)
        curves["comprehensiveness"].append(comprehensiveness.reshape(num_explainers, -1))
        curves["sufficiency"].append(sufficiency.reshape(num_explainers, -1))
    return {name: jnp.stack(values) for name, values in curves.items()}


def eraser_of_batch(
    model, params, instances, scores: jax.Array, mask_token_id: int, removals=ERASER_REMOVALS,
    percents=PERCENTS, per_step: int | None = None,
) -> dict[str, jax.Array]:  # fmt: skip
    """``eraser`` of every row of a batch (``scores [B, X, T]``): the coalitions of the rows
    that are instances (not padding) run ``per_step`` at a time in one flat ``vmap``
    (``coalition_values_of_batch``). Returns ``[B, R, X, K]`` curves, as ``eraser`` per row."""
    num_rows, num_explainers, num_positions = scores.shape
    probabilities, targets = batch_predictions(model, params, instances)
    full = jnp.take_along_axis(probabilities, targets[:, None], axis=-1)  # [B, 1]
    rationale = jax.vmap(lambda s, n: rationale_masks(s, n, percents))(
        scores, instances["length"]
    )  # [B, X, K, T]
    keeps = jnp.concatenate([~rationale, rationale], axis=1).reshape(num_rows, -1, num_positions)
    needed = jnp.broadcast_to((instances["length"] >= 1)[:, None], keeps.shape[:2])
    curves = {"comprehensiveness": [], "sufficiency": []}
    for removal in removals:
        values = coalition_values_of_batch(
            model, params, instances, keeps, needed, targets, removal, mask_token_id, per_step
        )
        comprehensiveness, sufficiency = jnp.split(full - values, 2, axis=1)
        curves["comprehensiveness"].append(comprehensiveness.reshape(num_rows, num_explainers, -1))
        curves["sufficiency"].append(sufficiency.reshape(num_rows, num_explainers, -1))
    return {name: jnp.stack(values, axis=1) for name, values in curves.items()}
