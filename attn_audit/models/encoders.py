"""Token embeddings and the three JW encoders: BiLSTM, CNN and Average (SPEC §2).

Every function here works on ONE sequence and on an encoder's own parameter
subtree (``params["encoder"]`` or ``params["question_encoder"]``):

    {"embedding": {"weight": [V, E]},
     # lstm:    "rnn": {"forward":  {"weight_ih": [4H, E], "weight_hh": [4H, H],
     #                               "bias_ih": [4H], "bias_hh": [4H]},
     #                  "backward": {same}}          gate order i, f, g, o
     # cnn:     "convolutions": {"kernel_1": {"weight": [F, E, 1], "bias": [F]}, ...}
     # average: "projection": {"weight": [H, E], "bias": [H]}
    }

Shapes follow PyTorch (``nn.LSTM``, ``nn.Conv1d``, ``nn.Linear``) so that
``attn_audit.interop.export`` is a rename. A sequence is
``[SOS] + tokens + [EOS]`` padded with PAD to length T; ``length`` counts the
non-PAD positions. States at padding positions (``t >= length``) are zero, and
no state at a valid position depends on T.
"""

import math

import jax
import jax.numpy as jnp

from attn_audit.models import _layers
from attn_audit.models.config import ModelConfig

Params = dict

# Fixed by the data layer (attn_audit.data.vocab): PAD=0, UNK=1, SOS=2, EOS=3.
PAD_ID = 0

_LSTM_DIRECTIONS = ("forward", "backward")


def valid_mask(length: jax.Array, num_positions: int) -> jax.Array:
    """``t < length``: the non-PAD positions, SOS and EOS included.

    Args:
      length: scalar int, the number of non-PAD positions.
      num_positions: T.

    Returns:
      bool ``[T]``.
    """
    return jnp.arange(num_positions) < length


def init_encoder(key: jax.Array, config: ModelConfig) -> Params:
    """Initialises an embedding plus one encoder like PyTorch's defaults.

    The embedding is ``N(0, 1)`` (``nn.Embedding``) with the PAD row zeroed
    (as ``padding_idx=0``); LSTM weights are ``U(±1/sqrt(H))``; convolutions
    ``U(±1/sqrt(E k))``; the projection ``U(±1/sqrt(E))``.
    """
    embedding_key, encoder_key = jax.random.split(key)
    del key  # not used anymore
    embedding = jax.random.normal(embedding_key, (config.vocab_size, config.embed_dim))
    params = {"embedding": {"weight": embedding.at[PAD_ID].set(0.0)}}
    if config.encoder == "lstm":
        params["rnn"] = _init_bilstm(encoder_key, config.embed_dim, config.hidden_size)
    elif config.encoder == "cnn":
        params["convolutions"] = _init_convolutions(encoder_key, config)
    else:
        params["projection"] = _layers.init_linear(
            encoder_key, config.embed_dim, config.hidden_size
        )
    return params


def _init_bilstm(key: jax.Array, input_size: int, hidden_size: int) -> Params:
    bound = 1.0 / math.sqrt(hidden_size)
    shapes = {
        "weight_ih": (4 * hidden_size, input_size),
        "weight_hh": (4 * hidden_size, hidden_size),
        "bias_ih": (4 * hidden_size,),
        "bias_hh": (4 * hidden_size,),
    }
    rnn = {}
    for direction, direction_key in zip(
        _LSTM_DIRECTIONS, jax.random.split(key, len(_LSTM_DIRECTIONS)), strict=True
    ):
        tensor_keys = jax.random.split(direction_key, len(shapes))
        rnn[direction] = {
            name: _layers.uniform(tensor_key, shape, bound)
            for (name, shape), tensor_key in zip(shapes.items(), tensor_keys, strict=True)
        }
    return rnn


def _init_convolutions(key: jax.Array, config: ModelConfig) -> Params:
    convolutions = {}
    kernel_keys = jax.random.split(key, len(config.cnn_kernel_sizes))
    for kernel_size, kernel_key in zip(config.cnn_kernel_sizes, kernel_keys, strict=True):
        weight_key, bias_key = jax.random.split(kernel_key)
        bound = 1.0 / math.sqrt(config.embed_dim * kernel_size)
        convolutions[f"kernel_{kernel_size}"] = {
            "weight": _layers.uniform(
                weight_key, (config.cnn_filters, config.embed_dim, kernel_size), bound
            ),
            "bias": _layers.uniform(bias_key, (config.cnn_filters,), bound),
        }
    return convolutions


def embed_tokens(encoder_params: Params, token_ids: jax.Array) -> jax.Array:
    """Looks up embeddings and zeroes PAD positions: ``e_t = E[x_t] · [x_t != PAD]``.

    Args:
      encoder_params: an encoder subtree with ``"embedding"``.
      token_ids: int ``[T]``.

    Returns:
      ``[T, E]``.
    """
    embedded = encoder_params["embedding"]["weight"][token_ids]
    is_token = (token_ids != PAD_ID).astype(embedded.dtype)
    return embedded * is_token[:, None]


def encode_states(
    encoder_params: Params, config: ModelConfig, embedded: jax.Array, length: jax.Array
) -> jax.Array:
    """Runs the configured encoder over one embedded sequence.

    Args:
      encoder_params: an encoder subtree.
      config: picks ``lstm`` / ``cnn`` / ``average``.
      embedded: ``[T, E]``; positions ``t >= length`` are read as zeros.
      length: scalar int, the number of non-PAD positions.

    Returns:
      states ``h`` of shape ``[T, config.state_dim]``, zero where ``t >= length``.
    """
    is_valid = valid_mask(length, embedded.shape[0])
    # Inputs past `length` are ignored even when a caller passes non-zero ones there.
    embedded = jnp.where(is_valid[:, None], embedded, 0.0)
    if config.encoder == "lstm":
        states = _bilstm_states(encoder_params["rnn"], embedded, length)
    elif config.encoder == "cnn":
        states = _cnn_states(encoder_params["convolutions"], config, embedded)
    else:
        # Average: h_t = tanh(W e_t + b), no context (JW's "Average" encoder).
        states = jnp.tanh(_layers.linear_per_position(encoder_params["projection"], embedded))
    return jnp.where(is_valid[:, None], states, 0.0)


def _gate_activation_constants(hidden_size: int) -> tuple[jax.Array, jax.Array]:
    """``(scale, shift) [4H]`` with ``tanh(x·s)·s + shift`` = σ on i, f, o and tanh on g."""
    halves = jnp.full((hidden_size,), 0.5)
    scale = jnp.concatenate([halves, halves, jnp.ones((hidden_size,)), halves])
    shift = jnp.concatenate([halves, halves, jnp.zeros((hidden_size,)), halves])
    return scale, shift


def _lstm_cell(gates: jax.Array, memory: jax.Array) -> tuple[jax.Array, jax.Array]:
    """PyTorch's LSTM cell from pre-activations ``gates [..., 4H]`` (i, f, g, o), ``c [..., H]``.

    ``c' = σ(f) c + σ(i) tanh(g)``, ``h' = σ(o) tanh(c')``; returns ``(h', c')``.
    All four activations are one ``tanh`` pass over ``[4H]``, with
    ``σ(x) = tanh(x / 2) / 2 + 1 / 2``: XLA:CPU runs the LSTM loop about twice as
    fast as with four separate activations (benchmarks/RESULTS.md).
    """
    leading = (1,) * (gates.ndim - 1)  # the cell also runs on stacked lanes [..., 4H]
    scale, shift = (
        c.astype(gates.dtype).reshape(leading + (-1,))
        for c in _gate_activation_constants(memory.shape[-1])
    )
    activated = jnp.tanh(gates * scale) * scale + shift
    input_gate, forget_gate, candidate, output_gate = jnp.split(activated, 4, axis=-1)
    memory = forget_gate * memory + input_gate * candidate
    return output_gate * jnp.tanh(memory), memory


def _input_gates(cell: Params, inputs: jax.Array) -> jax.Array:
    """``W_ih x_t + b_ih + b_hh`` for every t: ``[T, E] -> [T, 4H]`` (one matmul, no recurrence)."""
    return _layers.linear_per_position(
        {"weight": cell["weight_ih"], "bias": cell["bias_ih"] + cell["bias_hh"]}, inputs
    )


def _lstm_run(cell: Params, input_gates: jax.Array) -> tuple[jax.Array, jax.Array]:
    """One LSTM direction from zero state over ``input_gates [T, 4H]``; ``(h [T, H], c [T, H])``.

    PyTorch's cell: ``[i, f, g, o] = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh``.
    """
    hidden_size = cell["weight_hh"].shape[1]

    def step(carry, gates_from_input):
        hidden, memory = carry
        hidden, memory = _lstm_cell(gates_from_input + cell["weight_hh"] @ hidden, memory)
        return (hidden, memory), (hidden, memory)

    zeros = jnp.zeros((hidden_size,), input_gates.dtype)
    _, (hiddens, memories) = jax.lax.scan(step, (zeros, zeros), input_gates)
    return hiddens, memories


def _lstm_direction(cell: Params, inputs: jax.Array) -> jax.Array:
    """One LSTM direction over ``inputs [T, E]`` from zero state; returns ``[T, H]``."""
    return _lstm_run(cell, _input_gates(cell, inputs))[0]


def valid_reversal_index(length: jax.Array, num_positions: int) -> jax.Array:
    """Gather index that reverses the first ``length`` positions and keeps the rest.

    ``index[t] = length - 1 - t`` for ``t < length``, else ``t``. It is its own
    inverse, so gathering with it twice restores the order.
    """
    positions = jnp.arange(num_positions)
    return jnp.where(positions < length, length - 1 - positions, positions)


def _bilstm_states(rnn: Params, embedded: jax.Array, length: jax.Array) -> jax.Array:
    """A one-layer BiLSTM as PyTorch runs it on a packed sequence; ``[T, 2H]``.

    The forward direction reads positions ``0 … T-1`` (states at valid positions
    never see padding). The backward direction must start at ``length - 1``, as
    with ``pack_padded_sequence``: reverse the valid prefix, run forward, and
    reverse back. Both directions run in one vmapped scan.
    """
    reversal = valid_reversal_index(length, embedded.shape[0])
    stacked_cells = jax.tree.map(lambda f, b: jnp.stack([f, b]), rnn["forward"], rnn["backward"])
    stacked_inputs = jnp.stack([embedded, embedded[reversal]])  # [2, T, E]
    hiddens = jax.vmap(_lstm_direction)(stacked_cells, stacked_inputs)  # [2, T, H]
    forward_states = hiddens[0]
    backward_states = hiddens[1][reversal]
    return jnp.concatenate([forward_states, backward_states], axis=-1)


def bilstm_deletion_context(rnn: Params, embedded: jax.Array, length: jax.Array) -> dict:
    """What every leave-one-out variant of a BiLSTM shares (see ``bilstm_states_without_pair``).

    Args:
      rnn: ``{"forward": cell, "backward": cell}``.
      embedded: ``[T, E]``, zero at ``t >= length``.
      length: scalar int.

    Returns:
      ``{"forward_gates", "backward_gates": [T, 4H]}`` (input projections ``W_ih x_t + b``),
      and the original states ``{"forward", "backward"}_{"hidden", "memory"}: [T, H]``
      (backward state at t has read ``x_{length-1} … x_t``).
    """
    reversal = valid_reversal_index(length, embedded.shape[0])
    forward_gates = _input_gates(rnn["forward"], embedded)
    backward_gates = _input_gates(rnn["backward"], embedded)
    forward_hidden, forward_memory = _lstm_run(rnn["forward"], forward_gates)
    backward_hidden, backward_memory = _lstm_run(rnn["backward"], backward_gates[reversal])
    return {
        "forward_gates": forward_gates,
        "backward_gates": backward_gates,
        "forward_hidden": forward_hidden,
        "forward_memory": forward_memory,
        "backward_hidden": backward_hidden[reversal],
        "backward_memory": backward_memory[reversal],
    }


def _state_at(context: dict, direction: str, index: jax.Array, exists: jax.Array) -> tuple:
    """The original ``(h, c)`` of ``direction`` at ``index``; the zero state if not ``exists``."""
    return tuple(
        jnp.where(exists, context[f"{direction}_{part}"][index], 0.0)
        for part in ("hidden", "memory")
    )


def _stacked(forward: tuple, backward: tuple) -> tuple:
    """``(h, c)`` of both directions stacked: each ``[2, H]``."""
    return jax.tree.map(lambda f, b: jnp.stack([f, b]), forward, backward)


def _two_chains(
    rnn: Params,
    input_gates: jax.Array,
    step_index: jax.Array,
    first_start: tuple,
    second_start: tuple,
    switch: jax.Array,
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
      input_gates: ``[2, T, 4H]``.
      step_index: int ``[2, S]``.
      first_start, second_start: ``(h, c)``, each ``[2, H]``.
      switch: int ``[2]``.

    Returns:
      hidden states ``[2, S, H]``.
    """
    # h Wᵀ, not W h: under vmap the lanes stay the leading axis (no transpose per step).
    transposed = (rnn["forward"]["weight_hh"].T, rnn["backward"]["weight_hh"].T)
    directions = jnp.arange(2)

    def step(carry, inputs):
        index, restarts = inputs  # [2], [2]
        hidden, memory = (
            jnp.where(restarts[:, None], start, value)
            for start, value in zip(second_start, carry, strict=True)
        )
        recurrent = jnp.stack([hidden[0] @ transposed[0], hidden[1] @ transposed[1]])
        gates = input_gates[directions, index] + recurrent
        hidden, memory = _lstm_cell(gates, memory)
        return (hidden, memory), hidden

    steps = jnp.arange(step_index.shape[1])
    restarts = steps[:, None] == switch[None, :]  # [S, 2]
    hiddens = jax.lax.scan(step, first_start, (step_index.T, restarts))[1]
    return hiddens.swapaxes(0, 1)


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
      context: ``bilstm_deletion_context`` of the original sequence.
      length: scalar int n of the original sequence; the variants have n − 1.
      position: scalar int p in ``[0, n)``.
      readout: optional ``[2H, F]``.

    Returns:
      ``[2, T, 2H]`` (``[2, T, F]`` with ``readout``): without p, then without q; zero at
      ``t >= n − 1``.
    """
    forward_gates, backward_gates = context["forward_gates"], context["backward_gates"]
    num_positions = forward_gates.shape[0]
    mirror = length - 1 - position
    steps = jnp.arange(num_positions - 1)
    last = num_positions - 1
    # Forward lane: p's chain for n − 1 − p = q steps (x_{p+1} …), then q's chain (x_{q+1} …).
    forward_index = jnp.where(steps < mirror, position + 1 + steps, steps + 1)
    forward_starts = (
        _state_at(context, "forward", jnp.maximum(position - 1, 0), position > 0),
        _state_at(context, "forward", jnp.maximum(mirror - 1, 0), mirror > 0),
    )
    # Backward lane: p's chain for p steps (x_{p-1} … x_0), then q's chain (x_{q-1} … x_0).
    backward_index = jnp.where(
        steps < position, position - 1 - steps, mirror - 1 - (steps - position)
    )
    backward_starts = (
        _state_at(context, "backward", jnp.minimum(position + 1, last), position + 1 < length),
        _state_at(context, "backward", jnp.minimum(mirror + 1, last), mirror + 1 < length),
    )
    outputs = _two_chains(
        rnn,
        jnp.stack([forward_gates, backward_gates]),
        jnp.clip(jnp.stack([forward_index, backward_index]), 0, last),
        _stacked(forward_starts[0], backward_starts[0]),
        _stacked(forward_starts[1], backward_starts[1]),
        jnp.stack([mirror, position]),
    )
    originals = (context["forward_hidden"], context["backward_hidden"])

    def combine(forward_half, backward_half):
        return jnp.concatenate([forward_half, backward_half], axis=-1)

    if readout is not None:
        hidden_size = originals[0].shape[-1]
        halves = (readout[:hidden_size], readout[hidden_size:])
        originals = tuple(h @ r for h, r in zip(originals, halves, strict=True))
        outputs = tuple(h @ r for h, r in zip(outputs, halves, strict=True))
        combine = jnp.add
    without_position = _deleted_states(originals, outputs, position, (0, 0), length, combine)
    without_mirror = _deleted_states(
        originals, outputs, mirror, (mirror, position), length, combine
    )
    return jnp.stack([without_position, without_mirror])


def has_deletion_shortcut(config: ModelConfig) -> bool:
    """Whether ``states_without_pair`` beats re-encoding a deleted sequence (lstm, average)."""
    return config.encoder in ("lstm", "average")


def deletion_context(
    encoder_params: Params, config: ModelConfig, embedded: jax.Array, length: jax.Array
) -> dict:
    """What all leave-one-out variants of one sequence share (lstm and average only).

    Args:
      encoder_params: an encoder subtree.
      config: ``config.encoder`` in ``("lstm", "average")``.
      embedded: ``[T, E]``; positions ``t >= length`` are read as zeros.
      length: scalar int.

    Returns:
      a dict for ``states_without_pair``.
    """
    if not has_deletion_shortcut(config):
        raise ValueError(f"No deletion shortcut for encoder {config.encoder!r}; re-encode instead.")
    if config.encoder == "average":
        return {"states": encode_states(encoder_params, config, embedded, length)}
    embedded = jnp.where(valid_mask(length, embedded.shape[0])[:, None], embedded, 0.0)
    return bilstm_deletion_context(encoder_params["rnn"], embedded, length)


def states_without_pair(
    encoder_params: Params,
    config: ModelConfig,
    context: dict,
    length: jax.Array,
    position: jax.Array,
    readout: jax.Array | None = None,
) -> jax.Array:
    """``encode_states`` of the sequence without ``p = position`` and without ``n − 1 − p``.

    - average: ``h_t`` depends on ``x_t`` alone, so a variant's states are the
      original ones with one row removed;
    - lstm: ``bilstm_states_without_pair`` (the two variants share their lanes).

    With a linear ``readout [H, F]``, returns the states' readout ``states @ readout``
    instead (for the BiLSTM without materialising the states).

    Returns:
      ``[2, T, H]`` (``[2, T, F]`` with ``readout``), zero at ``t >= length − 1``.
    """
    if config.encoder == "lstm":
        rnn = encoder_params["rnn"]
        return bilstm_states_without_pair(rnn, context, length, position, readout)
    states = context["states"] if readout is None else context["states"] @ readout
    num_positions = states.shape[0]
    positions = jnp.arange(num_positions)

    def without(deleted):
        source = jnp.minimum(positions + (positions >= deleted), num_positions - 1)
        return jnp.where((positions < length - 1)[:, None], states[source], 0.0)

    return jnp.stack([without(position), without(length - 1 - position)])


def _cnn_states(convolutions: Params, config: ModelConfig, embedded: jax.Array) -> jax.Array:
    """``ReLU(concat_k Conv1d_k(e))`` with same padding ``(k-1)//2``; ``[T, K·F]``.

    PAD embeddings are zero and the convolution pads with zeros, so a valid
    position sees the same inputs whatever the bucket length T.
    """
    channels_first = embedded.T[None]  # [1, E, T]
    outputs = []
    for kernel_size in config.cnn_kernel_sizes:
        convolution = convolutions[f"kernel_{kernel_size}"]
        half = (kernel_size - 1) // 2
        # lax convolutions are cross-correlations, like torch.nn.Conv1d.
        features = jax.lax.conv_general_dilated(
            channels_first,
            convolution["weight"],
            window_strides=(1,),
            padding=[(half, half)],
            dimension_numbers=("NCH", "OIH", "NCH"),
        )[0]  # [F, T]
        outputs.append(features + convolution["bias"][:, None])
    return jax.nn.relu(jnp.concatenate(outputs, axis=0).T)


def summary_vector(config: ModelConfig, states: jax.Array, length: jax.Array) -> jax.Array:
    """The question vector ``q`` read off a question encoder's states (JW's ``last_hidden``).

    - lstm: ``[h_fwd at length-1, h_bwd at 0]``, the final state of each direction;
    - cnn: max over the valid positions of each feature;
    - average: mean over the valid positions (SOS and EOS included).

    Args:
      config: picks the encoder kind.
      states: ``[T, H]`` from ``encode_states``.
      length: scalar int, number of non-PAD positions; 0 (a batch's padding row)
        gives a zero vector.

    Returns:
      ``[H]``.
    """
    is_valid = valid_mask(length, states.shape[0])
    if config.encoder == "lstm":
        half = states.shape[1] // 2
        # A batch's padding rows have length 0: read position 0 there (its state is 0).
        last = jnp.maximum(length - 1, 0)
        return jnp.concatenate([states[last, :half], states[0, half:]])
    if config.encoder == "cnn":
        largest = jnp.max(jnp.where(is_valid[:, None], states, -jnp.inf), axis=0)
        return jnp.where(length > 0, largest, 0.0)
    total = jnp.sum(jnp.where(is_valid[:, None], states, 0.0), axis=0)
    return total / jnp.maximum(length, 1).astype(states.dtype)
