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


def _sigmoid(x: jax.Array) -> jax.Array:
    """``σ(x) = (1 + tanh(x / 2)) / 2``, the same function; inside XLA:CPU's LSTM loop it runs
    faster than ``jax.nn.sigmoid`` (measured in benchmarks/RESULTS.md)."""
    return 0.5 * jnp.tanh(0.5 * x) + 0.5


def _lstm_cell(gates: jax.Array, memory: jax.Array) -> tuple[jax.Array, jax.Array]:
    """PyTorch's LSTM cell from pre-activations ``gates [4H]`` (order i, f, g, o) and ``c [H]``.

    ``c' = σ(f) c + σ(i) tanh(g)``, ``h' = σ(o) tanh(c')``; returns ``(h', c')``.
    """
    input_gate, forget_gate, candidate, output_gate = jnp.split(gates, 4)
    memory = _sigmoid(forget_gate) * memory + _sigmoid(input_gate) * jnp.tanh(candidate)
    return _sigmoid(output_gate) * jnp.tanh(memory), memory


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
    """What every leave-one-out variant of a BiLSTM shares (see ``bilstm_states_without``).

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


def bilstm_states_without(
    rnn: Params, context: dict, length: jax.Array, position: jax.Array
) -> jax.Array:
    """BiLSTM states of the sequence with ``position`` deleted, from the shared ``context``.

    Deleting token p from ``x_0 … x_{n-1}`` leaves the forward states before p
    and the backward states from p on (variant positions; original ones shifted
    by one) unchanged. Only two chains are new: the forward one from
    ``(h_{p-1}, c_{p-1})`` over ``x_{p+1} … x_{n-1}`` (n − 1 − p steps) and the
    backward one from ``(h^b_{p+1}, c^b_{p+1})`` over ``x_{p-1} … x_0`` (p steps).
    They run back to back in ONE scan of ``T − 1`` steps (n − 1 of them used),
    half the recurrent steps of re-encoding both directions, with the input
    projections reused. Equal to ``encode_states`` on the deleted sequence (tested).

    Args:
      rnn: ``{"forward": cell, "backward": cell}``.
      context: ``bilstm_deletion_context`` of the original sequence.
      length: scalar int n of the original sequence; the variant has n − 1.
      position: scalar int p in ``[0, n)``.

    Returns:
      ``[T, 2H]``, zero at ``t >= n − 1``.
    """
    forward_gates, backward_gates = context["forward_gates"], context["backward_gates"]
    num_positions = forward_gates.shape[0]
    forward_steps = jnp.maximum(length - 1 - position, 0)
    previous = jnp.maximum(position - 1, 0)
    following = jnp.minimum(position + 1, num_positions - 1)
    has_previous, has_following = position > 0, position + 1 < length
    forward_start = tuple(
        jnp.where(has_previous, context[f"forward_{part}"][previous], 0.0)
        for part in ("hidden", "memory")
    )
    backward_start = tuple(
        jnp.where(has_following, context[f"backward_{part}"][following], 0.0)
        for part in ("hidden", "memory")
    )

    # Each step's input projection, gathered before the loop (gathers inside it are slow).
    steps = jnp.arange(num_positions - 1)
    is_forward = steps < forward_steps
    forward_index = jnp.minimum(position + 1 + steps, num_positions - 1)
    backward_index = jnp.maximum(position - 1 - (steps - forward_steps), 0)
    step_gates = jnp.where(
        is_forward[:, None], forward_gates[forward_index], backward_gates[backward_index]
    )  # [T-1, 4H]

    def step(carry, inputs):
        gates_from_input, forward, starts_backward = inputs
        # The forward chain ends after `forward_steps` steps; the backward chain starts fresh.
        hidden, memory = (
            jnp.where(starts_backward, start, value)
            for start, value in zip(backward_start, carry, strict=True)
        )
        recurrent = jnp.where(
            forward,
            rnn["forward"]["weight_hh"] @ hidden,
            rnn["backward"]["weight_hh"] @ hidden,
        )
        hidden, memory = _lstm_cell(gates_from_input + recurrent, memory)
        return (hidden, memory), hidden

    _, outputs = jax.lax.scan(
        step, forward_start, (step_gates, is_forward, steps == forward_steps)
    )  # [T-1, H]
    positions = jnp.arange(num_positions)
    last_output = num_positions - 2
    before = positions < position
    # Variant position q >= p holds original token q + 1.
    forward_new = outputs[jnp.clip(positions - position, 0, last_output)]
    backward_new = outputs[jnp.clip(forward_steps + position - 1 - positions, 0, last_output)]
    forward_half = jnp.where(before[:, None], context["forward_hidden"], forward_new)
    backward_half = jnp.where(
        before[:, None],
        backward_new,
        context["backward_hidden"][jnp.minimum(positions + 1, num_positions - 1)],
    )
    states = jnp.concatenate([forward_half, backward_half], axis=-1)
    return jnp.where((positions < length - 1)[:, None], states, 0.0)


def has_deletion_shortcut(config: ModelConfig) -> bool:
    """Whether ``states_without`` is cheaper than re-encoding a deleted sequence (lstm, average)."""
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
      a dict for ``states_without``.
    """
    if not has_deletion_shortcut(config):
        raise ValueError(f"No deletion shortcut for encoder {config.encoder!r}; re-encode instead.")
    if config.encoder == "average":
        return {"states": encode_states(encoder_params, config, embedded, length)}
    embedded = jnp.where(valid_mask(length, embedded.shape[0])[:, None], embedded, 0.0)
    return bilstm_deletion_context(encoder_params["rnn"], embedded, length)


def states_without(
    encoder_params: Params,
    config: ModelConfig,
    context: dict,
    length: jax.Array,
    position: jax.Array,
) -> jax.Array:
    """``encode_states`` of the sequence with ``position`` deleted (length − 1), from ``context``.

    - average: ``h_t`` depends on ``x_t`` alone, so the variant's states are the
      original ones with row p removed;
    - lstm: ``bilstm_states_without``.

    Returns:
      ``[T, H]``, zero at ``t >= length − 1``.
    """
    if config.encoder == "lstm":
        return bilstm_states_without(encoder_params["rnn"], context, length, position)
    states = context["states"]
    num_positions = states.shape[0]
    positions = jnp.arange(num_positions)
    source = jnp.minimum(positions + (positions >= position), num_positions - 1)
    return jnp.where((positions < length - 1)[:, None], states[source], 0.0)


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
