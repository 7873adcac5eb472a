"""Decision flips (Serrano & Smith 2019, "Is attention interpretable?"; SPEC §8), one instance.

Remove the real tokens one by one in the explainer's order (highest score first, ties by
position) and find the first prefix whose predicted class differs from ``ŷ``: the fraction
of tokens removed then (1.0, and not flipped, when no prefix flips it), and whether the
top token alone flips it. Fewer removals mean a more faithful ranking.
"""

import jax
import jax.numpy as jnp

from attn_audit.audits.protocol import original_pass
from attn_audit.explainers.perturbation import (
    batch_predictions,
    coalition_probabilities,
    coalition_probabilities_of_batch,
)
from attn_audit.faithfulness.ranking import token_ranks


def decision_flip(
    model, params, instance, scores: jax.Array, removal: str, mask_token_id: int,
    chunk: int | None = None,
) -> dict[str, jax.Array]:  # fmt: skip
    """Decision flips of X explainers' orders on one instance of ``n`` real tokens.

    Every prefix ``j = 1 … T − 2`` of each order is one forward pass (those past ``n``
    are ignored), so the program has one shape per width.

    Args:
      model, params, instance, removal, mask_token_id, chunk: as ``eraser.eraser``.
      scores: ``[X, T]``, each explainer's scores laid out on positions.

    Returns:
      ``{"flip_fraction": [X]`` (j/n at the first flip, 1.0 if none), ``"flipped": [X]``
      bool, ``"top1_flip": [X]`` bool (removing the top token flips the decision)``}``.
    """
    num_explainers, num_positions = scores.shape
    length = instance["length"]
    num_tokens = length - 2
    target = jnp.argmax(original_pass(model, params, instance)[3])
    ranks = jax.vmap(token_ranks, in_axes=(0, None))(scores, length)  # [X, T]
    prefixes = jnp.arange(1, num_positions - 1)  # [J], J = T − 2
    keeps = ranks[:, None, :] >= prefixes[None, :, None]  # [X, J, T]: top j removed
    probabilities = coalition_probabilities(
        model, params, instance, keeps.reshape(-1, num_positions), removal, mask_token_id, chunk
    )
    classes = jnp.argmax(probabilities, axis=-1).reshape(num_explainers, -1)  # [X, J]
    changed = (classes != target) & (prefixes <= num_tokens)[None, :]
    flipped = jnp.any(changed, axis=-1)
    first = jnp.argmax(changed, axis=-1) + 1  # removals at the first flip
    fraction = jnp.where(flipped, first / jnp.maximum(num_tokens, 1), 1.0)
    return {"flip_fraction": fraction, "flipped": flipped, "top1_flip": changed[:, 0]}


def decision_flip_of_batch(
    model, params, instances, scores: jax.Array, removal: str, mask_token_id: int,
    per_step: int | None = None,
) -> dict[str, jax.Array]:  # fmt: skip
    """``decision_flip`` of every row of a batch (``scores [B, X, T]``), running only each
    row's prefixes ``j ≤ n`` (not the padded width's ``T − 2``), ``per_step`` at a time.
    Returns ``[B, X]`` arrays, as ``decision_flip`` per row."""
    num_rows, num_explainers, num_positions = scores.shape
    lengths = instances["length"]
    num_tokens = lengths - 2
    _, targets = batch_predictions(model, params, instances)
    ranks = jax.vmap(jax.vmap(token_ranks, in_axes=(0, None)))(scores, lengths)  # [B, X, T]
    prefixes = jnp.arange(1, num_positions - 1)  # [J]
    keeps = ranks[:, :, None, :] >= prefixes[None, None, :, None]  # [B, X, J, T]
    within = prefixes[None, :] <= num_tokens[:, None]  # [B, J]
    needed = jnp.broadcast_to(within[:, None, :], keeps.shape[:3]).reshape(num_rows, -1)
    found = coalition_probabilities_of_batch(
        model, params, instances, keeps.reshape(num_rows, -1, num_positions), needed, removal,
        mask_token_id, per_step,
    )  # fmt: skip
    classes = jnp.argmax(found, axis=-1).reshape(num_rows, num_explainers, -1)  # [B, X, J]
    changed = (classes != targets[:, None, None]) & within[:, None, :]
    flipped = jnp.any(changed, axis=-1)
    first = jnp.argmax(changed, axis=-1) + 1
    fraction = jnp.where(flipped, first / jnp.maximum(num_tokens, 1)[:, None], 1.0)
    return {"flip_fraction": fraction, "flipped": flipped, "top1_flip": changed[..., 0]}
