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
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from attn_audit.models import primitives
from attn_audit.models.config import ModelConfig
from attn_audit.models.primitives import PAD_ID, valid_mask

Params = dict

_LSTM_DIRECTIONS = ("forward", "backward")


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
    return {**params, **_KINDS[config.encoder].init(encoder_key, config)}


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
            name: primitives.uniform(tensor_key, shape, bound)
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
            "weight": primitives.uniform(
                weight_key, (config.cnn_filters, config.embed_dim, kernel_size), bound
            ),
            "bias": primitives.uniform(bias_key, (config.cnn_filters,), bound),
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
    states = _KINDS[config.encoder].states(encoder_params, config, embedded, length)
    return jnp.where(is_valid[:, None], states, 0.0)


def _gate_activation_constants(hidden_size: int) -> tuple[jax.Array, jax.Array]:
    """``(scale, shift) [4H]`` with ``tanh(x·s)·s + shift`` = σ on i, f, o and tanh on g."""
    halves = jnp.full((hidden_size,), 0.5)
    scale = jnp.concatenate([halves, halves, jnp.ones((hidden_size,)), halves])
    shift = jnp.concatenate([halves, halves, jnp.zeros((hidden_size,)), halves])
    return scale, shift


def lstm_cell(gates: jax.Array, memory: jax.Array) -> tuple[jax.Array, jax.Array]:
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


# The cell rematerialised when differentiated: a reverse pass keeps only its inputs per step
# and recomputes its activations, where storing them ([T, 4H] several times) cost more than
# the tanh again: integrated gradients' gradient program at width 24 −22%, a training step
# and grad × input about −10 to −15% (same gradients, bit for bit).
recomputed_lstm_cell = jax.checkpoint(lstm_cell)


def bilstm_input_gates(rnn: Params, inputs: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``W_ih x_t + b_ih + b_hh`` of both directions for every t: ``[T, E] -> ([T, 4H], [T, 4H])``.

    One matmul for both directions (``[8H, E]``, no recurrence): under ``vmap`` it stays a
    plain matrix product, where a per-direction product batched over directions ran about
    three times slower on XLA:CPU.
    """
    forward, backward = rnn["forward"], rnn["backward"]
    both = primitives.linear(
        {
            "weight": jnp.concatenate([forward["weight_ih"], backward["weight_ih"]]),
            "bias": jnp.concatenate(
                [forward["bias_ih"] + forward["bias_hh"], backward["bias_ih"] + backward["bias_hh"]]
            ),
        },
        inputs,
    )
    return tuple(jnp.split(both, 2, axis=-1))


def bilstm_run(
    rnn: Params, forward_gates: jax.Array, backward_gates: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Two LSTM lanes from zero state in one scan; ``(h [2, T, H], c [2, T, H])``.

    Lane 0 runs ``rnn["forward"]`` over ``forward_gates [T, 4H]``, lane 1
    ``rnn["backward"]`` over ``backward_gates [T, 4H]`` (already in the order it reads
    them). PyTorch's cell: ``[i, f, g, o] = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh``.
    Each lane's recurrent product is its own matmul and its own carry: a product batched
    over the two lanes ran about twice as slowly on XLA:CPU under ``vmap`` over instances.
    """
    cells = (rnn["forward"], rnn["backward"])
    hidden_size = cells[0]["weight_hh"].shape[1]

    def step(carry, gates_from_input):
        carry = tuple(
            recomputed_lstm_cell(gates + cell["weight_hh"] @ hidden, memory)
            for cell, gates, (hidden, memory) in zip(cells, gates_from_input, carry, strict=True)
        )
        return carry, carry

    zeros = jnp.zeros((hidden_size,), forward_gates.dtype)
    _, lanes = jax.lax.scan(step, ((zeros, zeros), (zeros, zeros)), (forward_gates, backward_gates))
    (forward_hidden, forward_memory), (backward_hidden, backward_memory) = lanes
    return (
        jnp.stack([forward_hidden, backward_hidden]),
        jnp.stack([forward_memory, backward_memory]),
    )


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
    reverse back. Both directions run in one scan (``bilstm_run``).
    """
    reversal = valid_reversal_index(length, embedded.shape[0])
    forward_gates, backward_gates = bilstm_input_gates(rnn, embedded)
    hiddens = bilstm_run(rnn, forward_gates, backward_gates[reversal])[0]  # [2, T, H]
    return jnp.concatenate([hiddens[0], hiddens[1][reversal]], axis=-1)


def cnn_states(convolutions: Params, config: ModelConfig, embedded: jax.Array) -> jax.Array:
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
    - cnn: max over the real tokens of each feature (JW zeroes SOS, EOS and PAD
      before pooling ReLU features, so they never win);
    - average: mean over the valid positions (SOS and EOS included).

    Args:
      config: picks the encoder kind.
      states: ``[T, H]`` from ``encode_states``.
      length: scalar int, number of non-PAD positions; 0 (a batch's padding row)
        gives a zero vector.

    Returns:
      ``[H]``.
    """
    return _KINDS[config.encoder].summary(states, length)


# ---------------------------------------------------------------- one entry per encoder kind


def _lstm_summary(states: jax.Array, length: jax.Array) -> jax.Array:
    half = states.shape[1] // 2
    # A batch's padding rows have length 0: read position 0 there (its state is 0).
    last = jnp.maximum(length - 1, 0)
    return jnp.concatenate([states[last, :half], states[0, half:]])


def _cnn_summary(states: jax.Array, length: jax.Array) -> jax.Array:
    # ReLU states are >= 0, so a zero floor equals JW's max over zeroed positions, and
    # a sequence without real tokens (a padding row) gives 0.
    is_real = primitives.real_token_mask(length, states.shape[0])
    return jnp.max(jnp.where(is_real[:, None], states, 0.0), axis=0)


def _average_summary(states: jax.Array, length: jax.Array) -> jax.Array:
    is_valid = valid_mask(length, states.shape[0])
    total = jnp.sum(jnp.where(is_valid[:, None], states, 0.0), axis=0)
    return total / jnp.maximum(length, 1).astype(states.dtype)


def _average_states(encoder_params, config, embedded, length):
    """Average: ``h_t = tanh(W e_t + b)``, no context (JW's "Average" encoder)."""
    return jnp.tanh(primitives.linear(encoder_params["projection"], embedded))


class _Kind(NamedTuple):
    """An encoder kind: ``init(key, config) -> subtree``, ``states(params, config, e, length)
    -> [T, H]`` and ``summary(states, length) -> [H]``."""

    init: Callable
    states: Callable
    summary: Callable


_KINDS = {
    "lstm": _Kind(
        init=lambda key, config: {"rnn": _init_bilstm(key, config.embed_dim, config.hidden_size)},
        states=lambda params, config, embedded, length: _bilstm_states(
            params["rnn"], embedded, length
        ),
        summary=_lstm_summary,
    ),
    "cnn": _Kind(
        init=lambda key, config: {"convolutions": _init_convolutions(key, config)},
        states=lambda params, config, embedded, length: cnn_states(
            params["convolutions"], config, embedded
        ),
        summary=_cnn_summary,
    ),
    "average": _Kind(
        init=lambda key, config: {
            "projection": primitives.init_linear(key, config.embed_dim, config.hidden_size)
        },
        states=_average_states,
        summary=_average_summary,
    ),
}
