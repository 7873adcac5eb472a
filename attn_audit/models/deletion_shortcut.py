"""The leave-one-out shortcut: encoder states of a sequence without one token, without
re-encoding it (SPEC §3; STYLE: "deleting a token leaves the BiLSTM's forward prefix and
backward suffix unchanged").

- Average: ``h_t`` depends on ``x_t`` alone, so a variant's states are the original ones
  with one row removed.
- BiLSTM: the forward prefix before the deleted position and the backward suffix after it
  are unchanged; only the two new chains run. The variants without ``p`` and without its
  mirror ``n − 1 − p`` share single-direction lanes (``bilstm_states_without_pair``).
- CNN: a state sees ``r`` tokens either side (``r`` the widest kernel's half), so only the
  ``2r`` states around the deleted position change; the rest are the original states,
  shifted (``cnn_states_without``).

Masking a token (occlusion's blank-out, SPEC §7) leaves the same halves unchanged: the
BiLSTM's masked variants p and ``n − 1 − p`` share lanes too
(``bilstm_states_masked_pair``). Coalitions of masked tokens, and integrated gradients'
path points between the mask token and the sequence, read their input projections from
the same context (``bilstm_states_blended``).

``audits.JWModel.deletion_states``, ``masking_states`` and ``coalition_states`` use it; every
path is tested equal to re-encoding.
"""

import jax
import jax.numpy as jnp

from attn_audit.models.config import ModelConfig
from attn_audit.models.encoders import (
    Params,
    bilstm_input_gates,
    bilstm_run,
    cnn_states,
    encode_states,
    recomputed_lstm_cell,
    valid_reversal_index,
)
from attn_audit.models.primitives import valid_mask


def bilstm_deletion_context(
    rnn: Params, embedded: jax.Array, length: jax.Array, readout: jax.Array | None = None
) -> dict:
    """What every leave-one-out variant of a BiLSTM shares (see ``bilstm_states_without_pair``).

    Args:
      rnn: ``{"forward": cell, "backward": cell}``.
      embedded: ``[T, E]``, zero at ``t >= length``.
      length: scalar int.

      readout: optional linear ``[2H, F]`` the variants' states are read out through.

    Returns:
      ``{"input_gates": [2, T, 4H]}`` (input projections ``W_ih x_t + b`` of the forward and
      the backward cell), the original states ``{"forward", "backward"}_{"hidden",
      "memory"}: [T, H]`` (backward state at t has read ``x_{length-1} … x_t``) and
      ``"forward_half"``, ``"backward_half"``: the two directions' hidden states read out
      through their rows of ``readout`` (``[T, F]`` each; the hidden states without one).
    """
    reversal = valid_reversal_index(length, embedded.shape[0])
    forward_gates, backward_gates = bilstm_input_gates(rnn, embedded)
    hidden, memory = bilstm_run(rnn, forward_gates, backward_gates[reversal])
    halves = (hidden[0], hidden[1][reversal])
    if readout is not None:
        rows = halves[0].shape[-1]
        halves = (halves[0] @ readout[:rows], halves[1] @ readout[rows:])
    return {
        "input_gates": jnp.stack([forward_gates, backward_gates]),
        "forward_hidden": hidden[0],
        "forward_memory": memory[0],
        "backward_hidden": hidden[1][reversal],
        "backward_memory": memory[1][reversal],
        "forward_half": halves[0],
        "backward_half": halves[1],
    }


def _read(context: dict, key: str, row, index=slice(None)) -> jax.Array:
    """``context[key]`` at ``index`` along the sequence. ``row``: None for the context of one
    sequence; else the context is a batch's (leading axis B, ``protocol.batch_pair_shortcut``)
    and ``row`` its sequence, read in place (no copy of the row's context per variant)."""
    return context[key][index] if row is None else context[key][row, index]


def _state_at(context: dict, row, direction: str, index: jax.Array, exists: jax.Array) -> tuple:
    """The original ``(h, c)`` of ``direction`` at ``index``; the zero state if not ``exists``."""
    return tuple(
        jnp.where(exists, _read(context, f"{direction}_{part}", row, index), 0.0)
        for part in ("hidden", "memory")
    )


def _stacked(forward: tuple, backward: tuple) -> tuple:
    """``(h, c)`` of both directions stacked: each ``[2, H]``."""
    return jax.tree.map(lambda f, b: jnp.stack([f, b]), forward, backward)


def _chain_starts(context: dict, row, position, mirror, length) -> tuple:
    """Where the two variants' new chains start, ``(first, second)``, each ``(h, c)`` of
    both lanes ``[2, H]``: the original forward state before the removed token and backward
    state after it (the zero state past either end), for p (first) and q (second)."""
    last = context["forward_hidden"].shape[-2] - 1
    forward = [_state_at(context, row, "forward", jnp.maximum(removed - 1, 0), removed > 0)
               for removed in (position, mirror)]  # fmt: skip
    backward = [
        _state_at(context, row, "backward", jnp.minimum(removed + 1, last), removed + 1 < length)
        for removed in (position, mirror)
    ]
    return tuple(_stacked(f, b) for f, b in zip(forward, backward, strict=True))


def _two_chains(
    rnn: Params,
    input_gates: jax.Array,
    row,
    step_index: jax.Array,
    first_start: tuple,
    second_start: tuple,
    switch: jax.Array,
    presence: jax.Array | None = None,
    num_steps: jax.Array | None = None,
) -> jax.Array:
    """A forward and a backward LSTM lane, each running two chains back to back.

    Lane d (0 forward, 1 backward) continues from ``first_start[d]`` for steps
    ``s < switch[d]`` and restarts from ``second_start[d]`` at step ``switch[d]``;
    its input projection at step s is ``input_gates[d, step_index[d, s]]``, read
    inside the loop (XLA fuses the read into the step; gathering all steps' inputs
    beforehand writes and transposes ``[S, lanes, 4H]``, which cost more than the loop).
    Each direction's recurrent product is its own matmul (a batched one runs slower
    on XLA:CPU).

    Args:
      rnn: ``{"forward": cell, "backward": cell}``.
      input_gates: ``[2, T, 4H]`` (``[B, 2, T, 4H]`` with a ``row``: see ``_read``).
      row: None, or the row of a batch's ``input_gates``.
      step_index: int ``[2, S]``.
      first_start, second_start: ``(h, c)``, each ``[2, H]``.
      switch: int ``[2]``.
      presence: optional float ``[2, S]``: step s then reads
        ``(1 − w) · input_gates[d, −1] + w · input_gates[d, step_index[d, s]]`` with
        ``w = presence[d, s]`` (the last row is the mask token's, ``masking_context``),
        exactly one of the two rows at w = 0 or 1.
      num_steps: optional int scalar ≤ S, the same for every variant run together (not
        ``vmap``-ed): only the first ``num_steps`` steps run (a loop whose trip count is
        data: variants of short sequences skip their padded width), the rest of the output
        is zero. Not reverse-differentiable; None runs all S steps in a ``scan``.

    Returns:
      hidden states ``[2, S, H]``.
    """
    # h Wᵀ, not W h: under vmap the lanes stay the leading axis (no transpose per step).
    transposed = (rnn["forward"]["weight_hh"].T, rnn["backward"]["weight_hh"].T)
    directions = jnp.arange(2)

    def read(index):
        if row is None:
            return input_gates[directions, index]
        return input_gates[row, directions, index]

    def step(carry, inputs):
        index, restarts, weight = inputs  # [2], [2], [2] or None
        hidden, memory = (
            jnp.where(restarts[:, None], start, value)
            for start, value in zip(second_start, carry, strict=True)
        )
        recurrent = jnp.stack([hidden[0] @ transposed[0], hidden[1] @ transposed[1]])
        projected = read(index)
        if weight is not None:
            projected = (1.0 - weight)[:, None] * absent + weight[:, None] * projected
        hidden, memory = recomputed_lstm_cell(projected + recurrent, memory)
        return (hidden, memory), hidden

    absent = None if presence is None else read(jnp.full(2, input_gates.shape[-2] - 1))
    steps = jnp.arange(step_index.shape[1])
    restarts = steps[:, None] == switch[None, :]  # [S, 2]
    weights = None if presence is None else presence.T
    if num_steps is None:
        hiddens = jax.lax.scan(step, first_start, (step_index.T, restarts, weights))[1]
        return hiddens.swapaxes(0, 1)

    def run_step(s, state):
        carry, hiddens = state
        inputs = (step_index[:, s], restarts[s], None if weights is None else weights[s])
        carry, hidden = step(carry, inputs)
        return carry, hiddens.at[:, s].set(hidden)

    hiddens = jnp.zeros((2, step_index.shape[1], first_start[0].shape[-1]), first_start[0].dtype)
    bound = jnp.minimum(num_steps, step_index.shape[1])
    return jax.lax.fori_loop(0, bound, run_step, (first_start, hiddens))[1]


def _read_out(context: dict, row, outputs: tuple, readout: jax.Array | None) -> tuple:
    """``(original halves, chain outputs, combine)`` of a pair's states: the hidden states
    and ``concatenate``, or with a linear ``readout [2H, F]`` each half read out through its
    rows, ``[h_f; h_b] R = h_f R_f + h_b R_b``, and ``add``."""
    # Read out already (bilstm_deletion_context).
    originals = (_read(context, "forward_half", row), _read(context, "backward_half", row))
    if readout is None:
        return (
            originals,
            outputs,
            lambda forward, backward: jnp.concatenate([forward, backward], axis=-1),
        )
    hidden_size = outputs[0].shape[-1]
    halves = (readout[:hidden_size], readout[hidden_size:])
    outputs = tuple(h @ r for h, r in zip(outputs, halves, strict=True))
    return originals, outputs, jnp.add


def _deleted_states(
    originals: tuple[jax.Array, jax.Array],
    outputs: tuple[jax.Array, jax.Array],
    position: jax.Array,
    offsets: tuple[jax.Array, jax.Array],
    length: jax.Array,
    combine,
) -> jax.Array:
    """``combine(forward half, backward half)`` of the variant without ``position``.

    Variant position ``j`` holds original token ``j`` before ``position`` and ``j + 1``
    from it on. Forward: ``originals[0][j]`` before ``position``, then chain output
    ``outputs[0][offsets[0] + j − position]``. Backward: chain output
    ``outputs[1][offsets[1] + position − 1 − j]`` before ``position``, then
    ``originals[1][j + 1]``. Zero at ``j >= length − 1``.
    """
    num_positions = outputs[0].shape[0] + 1
    last_output = num_positions - 2
    positions = jnp.arange(num_positions)
    before = (positions < position)[:, None]
    forward_new = outputs[0][jnp.clip(offsets[0] + positions - position, 0, last_output)]
    backward_new = outputs[1][jnp.clip(offsets[1] + position - 1 - positions, 0, last_output)]
    following = jnp.minimum(positions + 1, num_positions - 1)
    forward_half = jnp.where(before, originals[0], forward_new)
    backward_half = jnp.where(before, backward_new, originals[1][following])
    return jnp.where((positions < length - 1)[:, None], combine(forward_half, backward_half), 0.0)


def bilstm_states_without_pair(
    rnn: Params,
    context: dict,
    length: jax.Array,
    position: jax.Array,
    readout: jax.Array | None = None,
    row: jax.Array | None = None,
    longest: jax.Array | None = None,
) -> jax.Array:
    """BiLSTM states of the sequence without ``p = position`` and without ``q = n − 1 − p``.

    Deleting token p from ``x_0 … x_{n-1}`` leaves the forward states before p
    and the backward states after p unchanged. Only two chains are new: the
    forward one from ``(h_{p-1}, c_{p-1})`` over ``x_{p+1} … x_{n-1}`` (n − 1 − p
    steps) and the backward one from ``(h^b_{p+1}, c^b_{p+1})`` over ``x_{p-1} … x_0``
    (p steps). The mirrored deletion q = n − 1 − p needs p forward and n − 1 − p
    backward steps, so the two variants' forward chains fill one lane of n − 1
    steps, and their backward chains another. Each lane runs one direction (one
    recurrent matmul a step), both in one scan of ``T − 1`` steps, with the input
    projections reused: half the recurrent work of re-encoding, none of it
    discarded. Equal to ``encode_states`` on each deleted sequence (tested).

    With a linear ``readout`` ``R [2H, F]``, returns ``states @ R`` without
    materialising the states: ``[h_f; h_b] R = h_f R_f + h_b R_b``, so each chain and
    each original half is read out once and variants add the halves they consist of.

    Args:
      rnn: ``{"forward": cell, "backward": cell}``.
      context: ``bilstm_deletion_context`` of the original sequence (built with the same
        ``readout``), or of a batch's sequences stacked (then ``row`` picks one, ``_read``).
      length: scalar int n of the original sequence; the variants have n − 1.
      position: scalar int p in ``[0, n)``.
      readout: optional ``[2H, F]``.
      row: None, or the row of a batched ``context``.
      longest: optional int scalar ≥ n, the longest length among the sequences whose
        variants run together (not ``vmap``-ed): the chains stop there instead of at the
        padded width (``_two_chains``' ``num_steps``); not reverse-differentiable.

    Returns:
      ``[2, T, 2H]`` (``[2, T, F]`` with ``readout``): without p, then without q; zero at
      ``t >= n − 1``.
    """
    num_positions = context["forward_hidden"].shape[-2]
    mirror = length - 1 - position
    steps = jnp.arange(num_positions - 1)
    last = num_positions - 1
    # Forward lane: p's chain for n − 1 − p = q steps (x_{p+1} …), then q's chain (x_{q+1} …).
    forward_index = jnp.where(steps < mirror, position + 1 + steps, steps + 1)
    # Backward lane: p's chain for p steps (x_{p-1} … x_0), then q's chain (x_{q-1} … x_0).
    backward_index = jnp.where(
        steps < position, position - 1 - steps, mirror - 1 - (steps - position)
    )
    outputs = _two_chains(
        rnn,
        context["input_gates"],
        row,
        jnp.clip(jnp.stack([forward_index, backward_index]), 0, last),
        *_chain_starts(context, row, position, mirror, length),
        jnp.stack([mirror, position]),
        num_steps=None if longest is None else longest - 1,
    )
    originals, outputs, combine = _read_out(context, row, outputs, readout)
    without_position = _deleted_states(originals, outputs, position, (0, 0), length, combine)
    without_mirror = _deleted_states(
        originals, outputs, mirror, (mirror, position), length, combine
    )
    return jnp.stack([without_position, without_mirror])


def _masked_states(
    originals: tuple[jax.Array, jax.Array],
    outputs: tuple[jax.Array, jax.Array],
    position: jax.Array,
    offsets: tuple[jax.Array, jax.Array],
    length: jax.Array,
    combine,
) -> jax.Array:
    """``combine(forward half, backward half)`` of the variant with ``position`` masked.

    Forward: ``originals[0][t]`` before ``position``, then chain output
    ``outputs[0][offsets[0] + t − position]``. Backward: chain output
    ``outputs[1][offsets[1] + position − t]`` up to ``position``, then ``originals[1][t]``.
    Zero at ``t >= length``.
    """
    num_positions = originals[0].shape[0]
    last_output = outputs[0].shape[0] - 1
    positions = jnp.arange(num_positions)
    forward_new = outputs[0][jnp.clip(offsets[0] + positions - position, 0, last_output)]
    backward_new = outputs[1][jnp.clip(offsets[1] + position - positions, 0, last_output)]
    forward_half = jnp.where((positions < position)[:, None], originals[0], forward_new)
    backward_half = jnp.where((positions > position)[:, None], originals[1], backward_new)
    return jnp.where((positions < length)[:, None], combine(forward_half, backward_half), 0.0)


def bilstm_states_masked_pair(
    rnn: Params,
    context: dict,
    length: jax.Array,
    position: jax.Array,
    readout: jax.Array | None = None,
    row: jax.Array | None = None,
    longest: jax.Array | None = None,
) -> jax.Array:
    """BiLSTM states of the sequence with ``p = position`` masked, and with ``q = n − 1 − p``.

    Replacing ``x_p`` by the mask token ``m`` leaves the forward states before p and the
    backward states after p unchanged (occlusion's prefix reuse). Only two chains are
    new: the forward one from ``(h_{p-1}, c_{p-1})`` over ``m, x_{p+1} … x_{n-1}`` (n − p
    steps) and the backward one from ``(h^b_{p+1}, c^b_{p+1})`` over ``m, x_{p-1} … x_0``
    (p + 1 steps). The mirror q needs p + 1 forward and n − p backward steps, so the two
    variants' forward chains fill one lane of n + 1 steps and their backward chains
    another: about half the recurrent work of re-encoding both, and no input projection
    (the mask token's is the context's last row of input projections). Equal to
    ``encode_states`` on each masked sequence (tested). ``readout``, ``row``, ``longest``: as
    ``bilstm_states_without_pair``.

    Args:
      rnn: ``{"forward": cell, "backward": cell}``.
      context: ``masking_context`` of the original sequence.
      length: scalar int n (both variants keep it).
      position: scalar int p in ``[0, n)``.
      readout: optional ``[2H, F]``.

    Returns:
      ``[2, T, 2H]`` (``[2, T, F]`` with ``readout``): p masked, then q masked; zero at
      ``t >= n``.
    """
    num_positions = context["forward_hidden"].shape[-2]
    mirror = length - 1 - position
    steps = jnp.arange(num_positions + 1)
    last, masked = num_positions - 1, num_positions  # the mask row follows the T positions
    # Forward lane: p's chain for n − p steps (positions p …), then q's (positions q …).
    forward_switch = length - position
    forward_index = jnp.where(
        steps < forward_switch, position + steps, mirror + steps - forward_switch
    )
    forward_index = jnp.where((steps == 0) | (steps == forward_switch), masked,
                              jnp.clip(forward_index, 0, last))  # fmt: skip
    # Backward lane: p's chain for p + 1 steps (positions p … 0), then q's (q … 0).
    backward_switch = position + 1
    backward_index = jnp.where(
        steps < backward_switch, position - steps, mirror - (steps - backward_switch)
    )
    backward_index = jnp.where((steps == 0) | (steps == backward_switch), masked,
                               jnp.clip(backward_index, 0, last))  # fmt: skip
    outputs = _two_chains(
        rnn,
        context["input_gates"],
        row,
        jnp.stack([forward_index, backward_index]),
        *_chain_starts(context, row, position, mirror, length),
        jnp.stack([forward_switch, backward_switch]),
        num_steps=None if longest is None else longest + 1,
    )
    originals, outputs, combine = _read_out(context, row, outputs, readout)
    masked_position = _masked_states(originals, outputs, position, (0, 0), length, combine)
    masked_mirror = _masked_states(
        originals, outputs, mirror, (forward_switch, backward_switch), length, combine
    )
    return jnp.stack([masked_position, masked_mirror])


def bilstm_states_blended(
    rnn: Params,
    context: dict,
    length: jax.Array,
    presence: jax.Array,
    readout: jax.Array | None = None,
    row: jax.Array | None = None,
    longest: jax.Array | None = None,
) -> jax.Array:
    """BiLSTM states of the sequence whose embedding at t is ``w_t e_t + (1 − w_t) m``, with
    ``w = presence`` and ``m`` the mask token's embedding: ``w_t = 0`` masks token t, 1 keeps
    it, and between them lie integrated gradients' path points.

    The input projection is affine, so the projection of that embedding is
    ``(1 − w_t) P(m) + w_t P(e_t)``: both rows are in the masking context
    (``masking_context``) and are blended inside the recurrent loop — no embedding and no
    input projection per variant, and exactly one row at ``w_t`` = 0 or 1. Both directions
    run from the zero state (a coalition of several masked tokens shares no prefix with the
    original). Equal to ``encode_states`` on the blended embeddings (tested).

    Args:
      rnn: ``{"forward": cell, "backward": cell}``.
      context: ``masking_context`` of the original sequence (built with the same ``readout``),
        or of a batch's sequences stacked (then ``row`` picks one, ``_read``).
      length: scalar int n (the variant keeps it).
      presence: float ``[T]``; differentiable.
      readout: optional ``[2H, F]``.
      row: None, or the row of a batched ``context``.
      longest: optional int scalar ≥ n, the longest length among the sequences whose
        variants run together (not ``vmap``-ed): the chains stop there instead of at the
        padded width (``_two_chains``' ``num_steps``); not reverse-differentiable.

    Returns:
      ``[T, 2H]`` (``[T, F]`` with ``readout``), zero at ``t >= n``.
    """
    num_positions = context["forward_hidden"].shape[-2]
    positions = jnp.arange(num_positions)
    reversal = valid_reversal_index(length, num_positions)
    zero = jnp.zeros(context["forward_hidden"].shape[-1:], context["input_gates"].dtype)
    start = (jnp.stack([zero, zero]),) * 2
    presence = presence.astype(zero.dtype)
    outputs = _two_chains(
        rnn, context["input_gates"], row, jnp.stack([positions, reversal]), start, start,
        jnp.full(2, num_positions),  # never restarts
        jnp.stack([presence, presence[reversal]]), longest,
    )  # fmt: skip
    halves = (outputs[0], outputs[1][reversal])
    if readout is None:
        states = jnp.concatenate(halves, axis=-1)
    else:
        hidden_size = halves[0].shape[-1]
        states = halves[0] @ readout[:hidden_size] + halves[1] @ readout[hidden_size:]
    return jnp.where((positions < length)[:, None], states, 0.0)


def cnn_states_without(
    convolutions: Params,
    config: ModelConfig,
    context: dict,
    length: jax.Array,
    position: jax.Array,
    readout: jax.Array | None = None,
    row: jax.Array | None = None,
) -> jax.Array:
    """CNN states of the sequence without ``p = position``, re-computing ``2r`` of them.

    With ``r = max_k (k − 1) / 2``, variant state ``j`` reads the variant's tokens
    ``j − r … j + r``. For ``j < p − r`` they are the original ``j − r … j + r``, and for
    ``j ≥ p + r`` the original ``j + 1 − r … j + 1 + r``: the state is the original
    ``h_j``, or ``h_{j+1}``. Only ``j ∈ [p − r, p + r)`` are new; they are the
    convolution of the variant's tokens ``p − 2r … p + 2r − 1`` (zero outside the sequence),
    whose middle ``2r`` outputs see no padding of that window. Equal to ``encode_states``
    on the deleted sequence (tested).

    Args:
      convolutions: the encoder's ``"convolutions"`` subtree.
      config: ``config.cnn_kernel_sizes``.
      context: ``{"embedded": [T, E] zero at t >= length, "states": [T, H]}`` of the
        original sequence (``deletion_context``).
      length: scalar int n of the original sequence; the variant has n − 1.
      position: scalar int p in ``[0, n)``.
      readout: optional linear ``[H, F]``: returns ``states @ readout`` (the context's
        states are read out already, ``deletion_context``).
      row: None, or the row of a batched ``context`` (``_read``).

    Returns:
      ``[T, H]`` (``[T, F]`` with ``readout``), zero at ``t >= n − 1``.
    """
    num_positions = context["states"].shape[-2]
    positions = jnp.arange(num_positions)
    shifted = _read(
        context, "states", row, jnp.minimum(positions + (positions >= position), num_positions - 1)
    )
    reach = max((kernel_size - 1) // 2 for kernel_size in config.cnn_kernel_sizes)
    if reach:
        window = position - 2 * reach + jnp.arange(4 * reach)  # variant positions
        source = window + (window >= position)  # their original positions
        inside = (window >= 0) & (source < num_positions)
        window_tokens = _read(context, "embedded", row, jnp.clip(source, 0, num_positions - 1))
        tokens = jnp.where(inside[:, None], window_tokens, 0)
        new = cnn_states(convolutions, config, tokens)[reach : 3 * reach]  # j ∈ [p − r, p + r)
        if readout is not None:
            new = new @ readout
        offset = positions - (position - reach)
        is_new = (offset >= 0) & (offset < 2 * reach)
        shifted = jnp.where(is_new[:, None], new[jnp.clip(offset, 0, 2 * reach - 1)], shifted)
    return jnp.where((positions < length - 1)[:, None], shifted, 0.0)


def has_deletion_shortcut(config: ModelConfig) -> bool:
    """Whether ``states_without_pair`` beats re-encoding a deleted sequence (all three)."""
    return config.encoder in ("lstm", "cnn", "average")


def has_masking_shortcut(config: ModelConfig) -> bool:
    """Whether ``masked_pair_states`` exists for this encoder (the BiLSTM only: masking one
    token of the CNN or the average changes few states, and re-encoding them is cheap)."""
    return config.encoder == "lstm"


def mask_input_gates(encoder_params: Params, mask_embedding: jax.Array) -> jax.Array:
    """``[2, 4H]``: the BiLSTM's input projection of the mask token's embedding ``[E]``."""
    forward, backward = bilstm_input_gates(encoder_params["rnn"], mask_embedding[None])
    return jnp.concatenate([forward, backward])


def masking_context(
    encoder_params: Params,
    embedded: jax.Array,
    length: jax.Array,
    mask_embedding: jax.Array,
    readout: jax.Array | None = None,
) -> dict:
    """What all masked variants of one BiLSTM sequence share (``bilstm_states_masked_pair``):
    ``deletion_context``'s, the mask token's input projections (``mask_embedding [E]``)
    following the T positions' in ``"input_gates" [2, T + 1, 4H]``."""
    embedded = jnp.where(valid_mask(length, embedded.shape[0])[:, None], embedded, 0.0)
    context = bilstm_deletion_context(encoder_params["rnn"], embedded, length, readout)
    mask_gates = mask_input_gates(encoder_params, mask_embedding)
    context["input_gates"] = jnp.concatenate([context["input_gates"], mask_gates[:, None]], 1)
    return context


def deletion_context(
    encoder_params: Params,
    config: ModelConfig,
    embedded: jax.Array,
    length: jax.Array,
    readout: jax.Array | None = None,
) -> dict:
    """What all leave-one-out variants of one sequence share.

    Args:
      encoder_params: an encoder subtree.
      config: ``config.encoder`` in ``("lstm", "cnn", "average")``.
      embedded: ``[T, E]``; positions ``t >= length`` are read as zeros.
      length: scalar int.
      readout: optional linear ``[H, F]``: the original states are kept read out through it
        (once per sequence, not once per variant); pass the same to ``states_without_pair``.

    Returns:
      a dict for ``states_without_pair``.
    """
    if not has_deletion_shortcut(config):
        raise ValueError(f"No deletion shortcut for encoder {config.encoder!r}; re-encode instead.")
    if config.encoder == "lstm":
        embedded = jnp.where(valid_mask(length, embedded.shape[0])[:, None], embedded, 0.0)
        return bilstm_deletion_context(encoder_params["rnn"], embedded, length, readout)
    if config.encoder == "cnn":
        embedded = jnp.where(valid_mask(length, embedded.shape[0])[:, None], embedded, 0.0)
    states = encode_states(encoder_params, config, embedded, length)
    states = states if readout is None else states @ readout
    return (
        {"states": states}
        if config.encoder == "average"
        else {"embedded": embedded, "states": states}
    )


def states_without_pair(
    encoder_params: Params,
    config: ModelConfig,
    context: dict,
    length: jax.Array,
    position: jax.Array,
    readout: jax.Array | None = None,
    row: jax.Array | None = None,
    longest: jax.Array | None = None,
) -> jax.Array:
    """``encode_states`` of the sequence without ``p = position`` and without ``n − 1 − p``.

    - average: ``h_t`` depends on ``x_t`` alone, so a variant's states are the
      original ones with one row removed;
    - lstm: ``bilstm_states_without_pair`` (the two variants share their lanes);
    - cnn: ``cnn_states_without``, once per variant.

    With a linear ``readout [H, F]`` (the one ``deletion_context`` was given), returns the
    states' readout ``states @ readout`` instead (for the BiLSTM without materialising the
    states). ``row``: None, or the row of a batched ``context`` (``_read``); ``longest``: the
    BiLSTM's bound on the lengths run together (``bilstm_states_without_pair``).

    Returns:
      ``[2, T, H]`` (``[2, T, F]`` with ``readout``), zero at ``t >= length − 1``.
    """
    if config.encoder == "lstm":
        rnn = encoder_params["rnn"]
        return bilstm_states_without_pair(rnn, context, length, position, readout, row, longest)
    if config.encoder == "cnn":
        convolutions = encoder_params["convolutions"]
        return jnp.stack([
            cnn_states_without(convolutions, config, context, length, deleted, readout, row)
            for deleted in (position, length - 1 - position)
        ])  # fmt: skip
    num_positions = context["states"].shape[-2]
    positions = jnp.arange(num_positions)

    def without(deleted):  # the context's states are read out already (deletion_context)
        source = jnp.minimum(positions + (positions >= deleted), num_positions - 1)
        return jnp.where(
            (positions < length - 1)[:, None], _read(context, "states", row, source), 0.0
        )

    return jnp.stack([without(position), without(length - 1 - position)])
