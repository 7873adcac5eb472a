"""attn_audit.models.encoders: the BiLSTM against a naive loop, the reversal index, the question
summary (max / mean) and the PAD embedding row."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attn_audit import models
from attn_audit.models import encoders
from tests._fixtures import PAD, initial_params, padded, tiny_config


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _numpy_lstm(cell, inputs):
    """PyTorch's LSTM cell, one time step per Python iteration, float64."""
    weight_ih, weight_hh, bias_ih, bias_hh = (
        np.asarray(cell[name], np.float64)
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    )
    hidden, memory = np.zeros(weight_hh.shape[1]), np.zeros(weight_hh.shape[1])
    outputs = []
    for x in inputs:
        gates = weight_ih @ x + bias_ih + weight_hh @ hidden + bias_hh
        i, f, g, o = np.split(gates, 4)
        memory = _sigmoid(f) * memory + _sigmoid(i) * np.tanh(g)
        hidden = _sigmoid(o) * np.tanh(memory)
        outputs.append(hidden)
    return np.stack(outputs)


def test_bilstm_matches_a_per_timestep_numpy_loop():
    """Forward over 0..L-1, backward over L-1..0 only (as pack_padded_sequence), zero padding;
    the question vector is [final forward, final backward] state.

    Tolerance 1e-5: JAX runs in float32, the loop in float64.
    """
    config = tiny_config("lstm", "tanh", "qa", 4)
    params = initial_params(config)
    encode = jax.jit(models.encode, static_argnums=1)
    question_vector = jax.jit(models.question_vector, static_argnums=1)
    rnn = params["encoder"]["rnn"]
    # Share the passage encoder as question encoder, to check question_vector on the same loop.
    params = {**params, "question_encoder": params["encoder"]}
    for length in (3, 6, 10):
        token_ids, length = padded(list(range(4, 4 + length - 2)), 10)
        embedded = models.embed(params, config, token_ids)
        states = encode(params, config, embedded, length)

        valid = np.asarray(embedded, np.float64)[:length]
        forward_states = _numpy_lstm(rnn["forward"], valid)
        backward_states = _numpy_lstm(rnn["backward"], valid[::-1])[::-1]
        expected = np.zeros((10, config.state_dim))
        expected[:length] = np.concatenate([forward_states, backward_states], axis=1)
        np.testing.assert_allclose(states, expected, atol=1e-5)

        question = question_vector(params, config, token_ids, length)
        expected_question = np.concatenate([forward_states[-1], backward_states[0]])
        np.testing.assert_allclose(question, expected_question, atol=1e-5)


def test_valid_reversal_index_is_an_involution():
    index = encoders.valid_reversal_index(jnp.int32(4), 7)
    np.testing.assert_array_equal(index, [3, 2, 1, 0, 4, 5, 6])
    np.testing.assert_array_equal(index[index], np.arange(7))


@pytest.mark.parametrize("encoder,positions", [("cnn", slice(1, 4)), ("average", slice(0, 5))])
def test_question_vector_is_max_over_real_tokens_or_mean_over_valid_positions(encoder, positions):
    """CNN: the max over the real tokens (JW zero SOS and EOS before pooling); Average: the
    mean over SOS, the real tokens and EOS (JW's sum over the sequence ÷ its length)."""
    config = tiny_config(encoder, "dot", "qa", 4)
    params = initial_params(config)
    question_ids, question_length = padded([7, 12, 5], 9)  # SOS 7 12 5 EOS, then PAD
    assert int(question_length) == 5
    question_params = {"encoder": params["question_encoder"]}
    embedded = models.embed(question_params, config, question_ids)
    states = np.asarray(models.encode(question_params, config, embedded, question_length))
    question = models.question_vector(params, config, question_ids, question_length)
    reduce = np.max if encoder == "cnn" else np.mean
    np.testing.assert_allclose(question, reduce(states[positions], axis=0), atol=1e-6)


def test_pad_embedding_row_gets_no_gradient():
    config = tiny_config("cnn", "tanh")
    params = initial_params(config)
    token_ids, length = padded([4, 5], 8)

    @jax.jit
    @jax.grad
    def logit_gradient(params):
        return models.forward(params, config, token_ids, length)[0][0]

    gradient = logit_gradient(params)["encoder"]["embedding"]["weight"]
    np.testing.assert_array_equal(gradient[PAD], 0.0)
    assert np.any(gradient[4] != 0.0)
