"""The value of a coalition of tokens (SPEC §7): ``v(S) = p(ŷ | x_S)``, other real tokens removed.

A coalition is a bool ``keep [T]`` over positions; only the real tokens
(``1 … length − 2``) are ever removed. Removing a token means masking it (its id
becomes the mask token, UNK by default) or deleting it (the sequence closes up,
one shorter, as JW's leave-one-out does).
"""

import jax
import jax.numpy as jnp

from attn_audit.audits.protocol import batch_pair_shortcut, batch_predictions, original_pass
from attn_audit.batch_engine import chunked_vmap, ragged_map
from attn_audit.data.vocab import PAD
from attn_audit.models import real_token_mask

REMOVALS = ("mask", "delete")


def check_removal(removal: str) -> None:
    if removal not in REMOVALS:
        raise ValueError(f"Unknown removal {removal!r}; choose from {list(REMOVALS)}.")


def remove_tokens(instance: dict, keep: jax.Array, removal: str, mask_token_id: int) -> dict:
    """``instance`` with the real tokens outside ``keep`` masked or deleted.

    Args:
      instance: one instance (``token_ids [T]``, ``length``, ...).
      keep: bool ``[T]``; positions that are not real tokens are kept whatever it says.
      removal: ``"mask"`` (the id becomes ``mask_token_id``) or ``"delete"`` (the kept
        ids close up in order, PAD fills the end, ``length`` drops by the number removed).
      mask_token_id: the id of the mask token.

    Returns:
      The instance with new ``token_ids`` (and ``length`` when deleting).
    """
    check_removal(removal)
    token_ids, length = instance["token_ids"], instance["length"]
    num_positions = token_ids.shape[0]
    removed = real_token_mask(length, num_positions) & ~keep
    if removal == "mask":
        return {**instance, "token_ids": jnp.where(removed, mask_token_id, token_ids)}
    order = jnp.argsort(removed, stable=True)  # kept positions first, in their order
    new_length = length - jnp.sum(removed, dtype=length.dtype)
    closed_up = jnp.where(jnp.arange(num_positions) < new_length, token_ids[order], PAD)
    return {**instance, "token_ids": closed_up, "length": new_length}


def predicted_class(model, params, instance) -> jax.Array:
    """``ŷ = argmax p(· | x)``, the class every explainer explains (int scalar)."""
    return jnp.argmax(original_pass(model, params, instance)[3])


def sampled_scores(
    model, params, instance, key: jax.Array, draw, estimate, removal: str, mask_token_id: int,
    chunk: int | None = None,
) -> jax.Array:  # fmt: skip
    """A sampling explainer (KernelSHAP, LIME) on one instance: ``draw`` its coalitions,
    evaluate them ``chunk`` at a time (``coalition_values``), ``estimate`` the scores ``[T]``.
    ``draw`` and ``estimate`` as ``sampled_scores_of_batch``'s."""
    target = predicted_class(model, params, instance)
    num_positions, num_real = instance["token_ids"].shape[0], instance["length"] - 2
    players, keeps = draw(key, num_positions, num_real)
    values = coalition_values(model, params, instance, keeps, target, removal, mask_token_id, chunk)
    return estimate(players, values, num_real, num_positions)


def sampled_scores_of_batch(
    model, params, instances, keys: jax.Array, draw, estimate, removal: str,
    mask_token_id: int, per_step: int,
) -> jax.Array:  # fmt: skip
    """A sampling explainer (KernelSHAP, LIME) on every row of a batch, ``keys [B]`` one per
    row: each row draws its coalitions, those of the rows with real tokens are evaluated
    ``per_step`` at a time (``coalition_values_of_batch``), and each row estimates its scores.

    Args:
      draw: ``(key, T, n) -> (players [S, N], keeps [S', T])``.
      estimate: ``(players, values [S'], n, T) -> scores [T]``.

    Returns:
      ``[B, T]``, each row as the per-instance explainer gives it.
    """
    _, targets = batch_predictions(model, params, instances)
    num_positions = instances["token_ids"].shape[1]
    num_real = instances["length"] - 2
    players, keeps = jax.vmap(lambda key, n: draw(key, num_positions, n))(keys, num_real)
    needed = jnp.broadcast_to((num_real >= 1)[:, None], keeps.shape[:2])
    values = coalition_values_of_batch(
        model, params, instances, keeps, needed, targets, removal, mask_token_id, per_step
    )
    return jax.vmap(lambda p, v, n: estimate(p, v, n, num_positions))(players, values, num_real)


def coalition_values(
    model, params, instance, keeps: jax.Array, target, removal: str, mask_token_id: int,
    chunk: int | None = None,
) -> jax.Array:  # fmt: skip
    """``v(S) = p(target | x_S)`` for each coalition ``keeps [S, T]``: ``[S]``.

    Each coalition is one forward pass, vmapped (``chunk`` at a time, see ``chunked_vmap``).
    """
    probabilities = coalition_probabilities(
        model, params, instance, keeps, removal, mask_token_id, chunk
    )
    return probabilities[:, target]


def coalition_probabilities(
    model, params, instance, keeps: jax.Array, removal: str, mask_token_id: int,
    chunk: int | None = None,
) -> jax.Array:  # fmt: skip
    """Every class's probability ``p(· | x_S)`` for each coalition ``keeps [S, T]``: ``[S, C]``."""

    def probabilities(keep):
        variant = remove_tokens(instance, keep, removal, mask_token_id)
        return original_pass(model, params, variant)[3]

    return chunked_vmap(probabilities, keeps, chunk)


def coalition_values_of_batch(
    model, params, instances, keeps: jax.Array, needed: jax.Array, targets: jax.Array,
    removal: str, mask_token_id: int, per_step: int,
) -> jax.Array:  # fmt: skip
    """``v_b(S) = p(target_b | x_b,S)`` of the needed coalitions of a batch, and only those.

    Args:
      instances: a batch of instances, each leaf ``[B, ...]``.
      keeps: bool ``[B, S, T]`` (each row's coalitions) or ``[S, T]`` (the same for all).
      needed: bool ``[B, S]``: the coalitions whose value is used.
      targets: ``[B]`` classes.
      removal, mask_token_id: as ``remove_tokens``.
      per_step: coalitions evaluated together (``batch_engine.ragged_map``).

    Returns:
      ``[B, S]``, 0 where not needed.
    """
    return _coalitions_of_batch(
        model, params, instances, keeps, needed, removal, mask_token_id, per_step,
        lambda probabilities, row: probabilities[targets[row]],
    )  # fmt: skip


def coalition_probabilities_of_batch(
    model, params, instances, keeps: jax.Array, needed: jax.Array, removal: str,
    mask_token_id: int, per_step: int,
) -> jax.Array:  # fmt: skip
    """Every class's probability of the needed coalitions of a batch (as
    ``coalition_values_of_batch``): ``[B, S, C]``, 0 where not needed."""
    return _coalitions_of_batch(
        model, params, instances, keeps, needed, removal, mask_token_id, per_step,
        lambda probabilities, row: probabilities,
    )  # fmt: skip


def _coalitions_of_batch(
    model, params, instances, keeps, needed, removal, mask_token_id, per_step, read
) -> jax.Array:  # fmt: skip
    num_positions = instances["token_ids"].shape[1]
    shortcut = removal == "mask" and coalition_shortcut(model, params, instances, mask_token_id)

    def value(row, coalition, longest=None):
        instance = jax.tree.map(lambda leaf: leaf[row], instances)
        keep = keeps[coalition] if keeps.ndim == 2 else keeps[row, coalition]
        variant = remove_tokens(instance, keep, removal, mask_token_id)
        if not shortcut:
            return read(original_pass(model, params, variant)[3], row)
        masked = real_token_mask(instance["length"], num_positions) & ~keep
        presence = jnp.where(masked, 0.0, 1.0)
        states = shortcut.states(shortcut.context, row, presence, longest)
        alpha = model.attention(params, variant, states)
        return read(model.decode(params, variant, states, alpha), row)

    # Through the shortcut, a step's coalitions run only as many positions as its longest row.
    of_step = (lambda rows: jnp.max(instances["length"][rows])) if shortcut else None
    return ragged_map(value, needed, per_step, of_step)


def coalition_shortcut(model, params, instances, mask_token_id: int):
    """The batch's ``model.coalition_states`` (see ``audits.protocol``) for coalitions of
    masked tokens, its context stacked over the rows, or None for a model without one."""
    if getattr(model, "coalition_states", None) is None:
        return None
    embedded, states = jax.vmap(lambda instance: original_pass(model, params, instance)[:2])(
        instances
    )
    return batch_pair_shortcut(
        lambda *row: model.coalition_states(params, *row, mask_token_id),
        instances, embedded, states,
    )  # fmt: skip


def keep_from_players(players: jax.Array, num_positions: int) -> jax.Array:
    """Player ``j`` is position ``j + 1``: bool ``[..., N]`` → keep ``[..., T]`` (N ≤ T − 2).

    Positions without a player (SOS, and those after the N players) are kept.
    """
    num_players = players.shape[-1]
    before = jnp.ones((*players.shape[:-1], 1), bool)
    after = jnp.ones((*players.shape[:-1], num_positions - 1 - num_players), bool)
    return jnp.concatenate([before, players, after], axis=-1)


def scores_on_positions(player_scores: jax.Array, num_positions: int) -> jax.Array:
    """Player scores ``[N]`` laid out on positions ``[T]`` (player j at j + 1, zeros elsewhere)."""
    num_players = player_scores.shape[-1]
    return jnp.pad(player_scores, (1, num_positions - 1 - num_players))


def random_player_ranks(
    key: jax.Array, num_players: int, num_draws: int, num_real
) -> tuple[jax.Array, jax.Array]:
    """Random orders of the real players, and one more uniform number per draw.

    Returns:
      ``(ranks [num_draws, N], uniform [num_draws])``: each row of ``ranks`` ranks the real
      players 0 … n − 1 at random (the empty slots after them). One draw of shape
      ``[N + 1, num_draws]`` (row 0 the extra numbers): player j's numbers do not depend on
      N, and one random program is compiled, not two.
    """
    draws = jax.random.uniform(key, (num_players + 1, num_draws))
    uniform, draws = draws[0], draws[1:].T
    draws = jnp.where((jnp.arange(num_players) < num_real)[None, :], draws, jnp.inf)
    return jnp.argsort(jnp.argsort(draws, axis=-1), axis=-1), uniform
