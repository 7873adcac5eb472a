"""Tests for attn_audit.models: shapes, masking, padding invariance, a naive BiLSTM loop."""

import functools
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attn_audit import models
from attn_audit.models import deletion_shortcut, encoders

SOS, EOS, PAD = 2, 3, 0
VOCAB_SIZE = 20

# (task, num_classes): binary gives one sigmoid output, 3 a softmax; qa has 4 candidates.
TASKS = [("classification", 2), ("classification", 3), ("qa", 4)]


def tiny_config(encoder="lstm", attention="tanh", task="classification", num_classes=2):
    """A fast model: E=8, 6 LSTM units per direction, 3 filters per CNN kernel."""
    return models.ModelConfig(
        vocab_size=VOCAB_SIZE,
        num_classes=num_classes,
        encoder=encoder,
        attention=attention,
        task=task,
        embed_dim=8,
        hidden_size=6,
        cnn_filters=3,
    )


def padded(real_tokens, num_positions):
    """``[SOS] + real_tokens + [EOS]`` padded with PAD to ``num_positions``: (ids, length)."""
    sequence = [SOS, *real_tokens, EOS]
    ids = np.full(num_positions, PAD, np.int32)
    ids[: len(sequence)] = sequence
    return ids, np.int32(len(sequence))


def random_batch(config, batch_size, num_positions, seed, *, padding_row=False):
    """Random real tokens (ids 4..V-1) of random lengths; optionally a last all-PAD row.

    The data layer fills a short batch with rows of length 0 and only PAD.
    """
    rng = np.random.default_rng(seed)

    def sequences(width):
        rows = [
            padded(rng.integers(4, VOCAB_SIZE, rng.integers(1, width - 1)), width)
            for _ in range(batch_size)
        ]
        ids, lengths = (np.stack(column) for column in zip(*rows, strict=True))
        if padding_row:
            ids[-1], lengths[-1] = PAD, 0
        return ids, lengths

    batch = dict(zip(("token_ids", "lengths"), sequences(num_positions), strict=True))
    if config.task == "qa":
        batch["question_ids"], batch["question_lengths"] = sequences(5)
    return batch


# Jitted once here: JAX shares compiled code between equal configs and shapes, and eager
# execution of the scans and gradients is many times slower than compiling them.
forward_batch = jax.jit(models.forward_batch, static_argnums=1)
forward = jax.jit(models.forward, static_argnums=1, static_argnames=("stop_attention_gradient",))


@functools.cache
def initial_params(config, seed=0):
    """``models.init`` per (config, seed), shared by the tests; JAX arrays are immutable."""
    return models.init(jax.random.key(seed), config)


# ---------------------------------------------------------------- configuration


def test_config_rejects_unknown_names_and_lists_the_valid_ones():
    with pytest.raises(ValueError, match="lstm, cnn, average"):
        models.ModelConfig(vocab_size=20, num_classes=2, encoder="gru")
    with pytest.raises(ValueError, match="tanh, dot"):
        models.ModelConfig(vocab_size=20, num_classes=2, attention="bahdanau")
    with pytest.raises(ValueError, match="num_classes"):
        models.ModelConfig(vocab_size=20, num_classes=1)
    with pytest.raises(ValueError, match="odd"):
        models.ModelConfig(vocab_size=20, num_classes=2, cnn_kernel_sizes=(2,))
    with pytest.raises(ValueError, match="Unknown ModelConfig keys"):
        models.ModelConfig.from_dict({"vocab_size": 20, "num_classes": 2, "dropout": 0.5})


def test_config_json_round_trip_and_hashable():
    config = tiny_config("cnn", "dot", "qa", 5)
    restored = models.ModelConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert restored == config and hash(restored) == hash(config)


def test_default_sizes_match_jw():
    """SPEC §2 widths: BiLSTM 2·128, CNN 4·32, Average 128, binary has one output."""
    shapes = {}
    for encoder in models.ENCODERS:
        config = models.ModelConfig(vocab_size=100, num_classes=2, encoder=encoder)
        params = jax.eval_shape(functools.partial(models.init, config=config), jax.random.key(0))
        shapes[encoder] = (config.state_dim, params)
        assert params["encoder"]["embedding"]["weight"].shape == (100, 300)
        assert params["decoder"]["linear_1"]["weight"].shape == (1, config.state_dim)
    assert shapes["lstm"][0] == 256 and shapes["cnn"][0] == 128 and shapes["average"][0] == 128
    rnn = shapes["lstm"][1]["encoder"]["rnn"]["backward"]
    assert rnn["weight_ih"].shape == (512, 300) and rnn["weight_hh"].shape == (512, 128)
    convolution = shapes["cnn"][1]["encoder"]["convolutions"]["kernel_7"]
    assert convolution["weight"].shape == (32, 300, 7)
    attention = shapes["lstm"][1]["attention"]
    assert attention["attn1"]["weight"].shape == (128, 256)
    assert set(attention["attn2"]) == {"weight"}  # v has no bias


# ---------------------------------------------------------------- initialisation


def test_init_follows_pytorch_defaults_and_zeroes_the_pad_row():
    config = tiny_config("lstm", "tanh")
    params = models.init(jax.random.key(0), config)
    embedding = params["encoder"]["embedding"]["weight"]
    np.testing.assert_array_equal(embedding[PAD], 0.0)
    assert 0.5 < float(jnp.std(embedding[1:])) < 1.5  # N(0, 1)
    lstm_bound = 1 / math.sqrt(config.hidden_size)
    for tensor in jax.tree.leaves(params["encoder"]["rnn"]):
        assert float(jnp.max(jnp.abs(tensor))) <= lstm_bound
    attn1 = params["attention"]["attn1"]["weight"]
    assert float(jnp.max(jnp.abs(attn1))) <= 1 / math.sqrt(config.state_dim)
    assert jax.tree.all(jax.tree.map(lambda x: x.dtype == jnp.float32, params))


def test_init_is_reproducible_and_key_dependent():
    config = tiny_config("cnn", "tanh", "qa", 4)
    first, again = models.init(jax.random.key(3), config), models.init(jax.random.key(3), config)
    other = models.init(jax.random.key(4), config)
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.all(a == b)), first, again))
    assert not bool(
        jnp.all(first["decoder"]["linear_2"]["weight"] == other["decoder"]["linear_2"]["weight"])
    )
    # The question encoder is separate, not a copy of the passage encoder.
    assert not bool(
        jnp.all(
            first["encoder"]["embedding"]["weight"]
            == first["question_encoder"]["embedding"]["weight"]
        )
    )


def test_weight_decay_mask_spares_only_attention():
    params = models.init(jax.random.key(0), tiny_config("average", "tanh", "qa", 4))
    mask = models.weight_decay_mask(params)
    assert jax.tree.structure(mask) == jax.tree.structure(params)
    for name, subtree in mask.items():
        assert all(leaf == (name != "attention") for leaf in jax.tree.leaves(subtree))


# ---------------------------------------------------------------- shapes, masking, padding


def bucketed_batches(config, seed):
    """One instance alone at T=8 (question Tq=6), and first in a batch of 3 at T=13 (Tq=9).

    The batch of 3 also holds a random instance and a data-layer padding row
    (length 0, all PAD), as the last batch of a split has.
    """
    real_tokens, question_tokens = [5, 9, 4, 17, 11], [6, 8]
    rng = np.random.default_rng(seed)
    batches = {}
    for batch_size, num_positions, question_positions in ((1, 8, 6), (3, 13, 9)):
        rows = [padded(real_tokens, num_positions)]
        questions = [padded(question_tokens, question_positions)]
        if batch_size == 3:
            rows += [padded(rng.integers(4, VOCAB_SIZE, 11), num_positions)]
            rows += [(np.zeros(num_positions, np.int32), np.int32(0))]
            questions += [padded(rng.integers(4, VOCAB_SIZE, 3), question_positions)]
            questions += [(np.zeros(question_positions, np.int32), np.int32(0))]
        columns = map(np.stack, zip(*rows, strict=True))
        batch = dict(zip(("token_ids", "lengths"), columns, strict=True))
        if config.task == "qa":
            question_columns = map(np.stack, zip(*questions, strict=True))
            batch.update(zip(("question_ids", "question_lengths"), question_columns, strict=True))
        batches[batch_size] = batch
    return batches


@pytest.mark.parametrize("task,num_classes", TASKS)
@pytest.mark.parametrize("attention", models.ATTENTIONS)
@pytest.mark.parametrize("encoder", models.ENCODERS)
def test_shapes_masking_and_padding_invariance(encoder, attention, task, num_classes):
    """For batch sizes 1 and 3: output shapes; α exactly 0 on SOS, EOS, PAD and summing
    to 1 over real tokens; zero states past the length; finite outputs on a padding row;
    and the same instance bucketed to T=8 and T=13 gives the same logits and α (1e-6)."""
    config = tiny_config(encoder, attention, task, num_classes)
    params = initial_params(config)
    outputs = {}
    for batch_size, batch in bucketed_batches(config, seed=1).items():
        num_positions = batch["token_ids"].shape[1]
        logits, aux = outputs[batch_size] = forward_batch(params, config, batch)

        assert logits.shape == (batch_size, config.output_dim)
        assert aux["states"].shape == (batch_size, num_positions, config.state_dim)
        assert aux["embedded"].shape == (batch_size, num_positions, config.embed_dim)
        assert aux["context"].shape == (batch_size, config.state_dim)
        for name in ("scores", "attention", "attention_mask"):
            assert aux[name].shape == (batch_size, num_positions)
        if task == "qa":
            assert aux["question"].shape == (batch_size, config.state_dim)
        else:
            assert aux["question"] is None
        assert np.all(np.isfinite(logits))
        probabilities = models.probabilities(logits, config)
        assert probabilities.shape == (batch_size, num_classes)
        np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-6)

        alpha = np.asarray(aux["attention"])
        for row, length in enumerate(batch["lengths"]):
            real = np.zeros(num_positions, bool)
            real[1 : max(length - 1, 1)] = True
            np.testing.assert_array_equal(aux["attention_mask"][row], real)
            assert np.all(alpha[row][~real] == 0.0)  # exactly, not approximately
            assert np.all(alpha[row][real] > 0.0)
            expected_total = 1.0 if real.any() else 0.0  # a padding row has no real token
            np.testing.assert_allclose(alpha[row].sum(), expected_total, atol=1e-6)
            np.testing.assert_array_equal(aux["states"][row, length:], 0.0)

    (logits_8, aux_8), (logits_13, aux_13) = outputs[1], outputs[3]
    np.testing.assert_allclose(logits_8[0], logits_13[0], atol=1e-6)
    np.testing.assert_allclose(aux_8["attention"][0], aux_13["attention"][0, :8], atol=1e-6)
    np.testing.assert_allclose(aux_8["states"][0], aux_13["states"][0, :8], atol=1e-6)


def test_attention_weights_two_tokens_by_hand():
    """Scores (0, 1) on two real tokens give α = [1, e] / (1 + e); SOS/EOS/PAD get 0."""
    scores = jnp.array([5.0, 0.0, 1.0, -2.0, 7.0])
    mask = models.real_token_mask(jnp.int32(4), 5)
    np.testing.assert_array_equal(mask, [False, True, True, False, False])
    alpha = models.attention_weights(scores, mask)
    e = math.e
    np.testing.assert_allclose(alpha, [0.0, 1 / (1 + e), e / (1 + e), 0.0, 0.0], rtol=1e-6)
    assert alpha[0] == 0.0 and alpha[3] == 0.0 and alpha[4] == 0.0


def test_attention_weights_empty_mask_is_zero_with_finite_gradient():
    scores = jnp.array([0.3, -1.0, 2.0])
    mask = models.real_token_mask(jnp.int32(2), 3)  # [SOS, EOS, PAD]: no real token
    np.testing.assert_array_equal(models.attention_weights(scores, mask), 0.0)
    gradient = jax.grad(lambda s: jnp.sum(models.attention_weights(s, mask) ** 2))(scores)
    np.testing.assert_array_equal(gradient, 0.0)


def test_attention_weights_large_scores_do_not_overflow():
    scores = jnp.array([0.0, 1000.0, 999.0, -1e30])
    alpha = models.attention_weights(scores, jnp.array([False, True, True, False]))
    np.testing.assert_allclose(alpha, [0.0, 1 / (1 + math.exp(-1)), 1 / (1 + math.e), 0.0])


def test_uniform_attention():
    mask = models.real_token_mask(jnp.int32(5), 6)
    np.testing.assert_allclose(models.uniform_attention(mask), [0, 1 / 3, 1 / 3, 1 / 3, 0, 0])


@pytest.mark.parametrize(
    "encoder,task,num_classes", [("lstm", "qa", 4), ("cnn", "classification", 3)]
)
def test_forward_batch_matches_a_loop_of_forward(encoder, task, num_classes):
    config = tiny_config(encoder, "tanh", task, num_classes)
    params = initial_params(config)
    batch = bucketed_batches(config, seed=2)[3]
    batch_logits, batch_aux = forward_batch(params, config, batch)
    for row in range(3):
        question = {}
        if task == "qa":
            question = {
                "question_ids": batch["question_ids"][row],
                "question_length": batch["question_lengths"][row],
            }
        logits, aux = forward(
            params, config, batch["token_ids"][row], batch["lengths"][row], **question
        )
        np.testing.assert_allclose(batch_logits[row], logits, atol=1e-6)
        np.testing.assert_allclose(batch_aux["attention"][row], aux["attention"], atol=1e-6)


def test_forward_batch_does_not_retrace_for_new_values():
    config = tiny_config("average", "tanh")
    params = initial_params(config)
    traces = []

    def counted_forward(params, batch):
        traces.append(1)
        return models.forward_batch(params, config, batch)[0]

    jitted = jax.jit(counted_forward)
    for seed in range(3):
        jitted(params, random_batch(config, 4, 10, seed)).block_until_ready()
    assert len(traces) == 1


def test_forward_rejects_a_batch_and_a_missing_question():
    config = tiny_config("lstm", "tanh", "qa", 4)
    params = initial_params(config)
    token_ids, length = padded([5, 6], 6)
    with pytest.raises(ValueError, match="forward_batch"):
        models.forward(params, config, token_ids[None], length, token_ids, length)
    with pytest.raises(ValueError, match="question_ids"):
        models.forward(params, config, token_ids, length)
    with pytest.raises(KeyError, match="question_lengths"):
        models.forward_batch(
            params, config, {"token_ids": token_ids[None], "lengths": length[None]}
        )


# ---------------------------------------------------------------- the BiLSTM against a naive loop


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


@pytest.mark.parametrize("encoder", ["lstm", "average"])
def test_states_without_pair_equal_encoding_each_deleted_sequence(encoder):
    """Both variants of every pair (p, n − 1 − p), SOS and EOS included, as states and through
    a random linear readout, against encoding the shorter sequence from scratch."""
    config = tiny_config(encoder, "tanh")
    params = initial_params(config)
    readout = jax.random.normal(jax.random.key(5), (config.state_dim, 3))
    for length in (3, 6, 10):
        token_ids, length = padded(list(range(4, 4 + length - 2)), 12)
        embedded = models.embed(params, config, token_ids)
        context = deletion_shortcut.deletion_context(params["encoder"], config, embedded, length)
        for position in range(length):
            pair = [
                deletion_shortcut.states_without_pair(
                    params["encoder"], config, context, length, jnp.int32(position), matrix
                )
                for matrix in (None, readout)
            ]
            for member, deleted in enumerate([position, length - 1 - position]):
                kept = [t for t in range(12) if t != deleted] + [11]
                shorter = jnp.where(jnp.arange(12) < length - 1, token_ids[jnp.array(kept)], 0)
                expected = models.encode(
                    params, config, models.embed(params, config, shorter), length - 1
                )
                np.testing.assert_allclose(pair[0][member], expected, atol=1e-6)
                np.testing.assert_allclose(pair[1][member], expected @ readout, atol=1e-5)


def test_valid_reversal_index_is_an_involution():
    index = encoders.valid_reversal_index(jnp.int32(4), 7)
    np.testing.assert_array_equal(index, [3, 2, 1, 0, 4, 5, 6])
    np.testing.assert_array_equal(index[index], np.arange(7))


@pytest.mark.parametrize("encoder,reduce", [("cnn", np.max), ("average", np.mean)])
def test_question_vector_is_max_or_mean_over_valid_positions(encoder, reduce):
    config = tiny_config(encoder, "dot", "qa", 4)
    params = initial_params(config)
    question_ids, question_length = padded([7, 12, 5], 9)
    question_params = {"encoder": params["question_encoder"]}
    embedded = models.embed(question_params, config, question_ids)
    states = np.asarray(models.encode(question_params, config, embedded, question_length))
    question = models.question_vector(params, config, question_ids, question_length)
    np.testing.assert_allclose(question, reduce(states[:question_length], axis=0), atol=1e-6)


# ---------------------------------------------------------------- gradients and interventions


@pytest.mark.parametrize("encoder", models.ENCODERS)
def test_forward_from_embedded_and_decode_reproduce_forward(encoder):
    config = tiny_config(encoder, "tanh", "classification", 3)
    params = initial_params(config)
    token_ids, length = padded([4, 8, 15, 16], 9)

    @jax.jit
    def outputs(params):
        logits, aux = models.forward(params, config, token_ids, length)
        from_embedded, _ = models.forward_from_embedded(params, config, aux["embedded"], length)
        decoded = models.decode(params, config, aux["states"], aux["attention"])
        # Another α through the same decoder: the uniform one, as attention_override.
        uniform = models.uniform_attention(aux["attention_mask"])
        overridden, aux_overridden = models.forward_from_embedded(
            params, config, aux["embedded"], length, attention_override=uniform
        )
        decoded_uniform = models.decode(params, config, aux["states"], uniform)
        return logits, from_embedded, decoded, overridden, decoded_uniform, uniform, aux_overridden

    logits, from_embedded, decoded, overridden, decoded_uniform, uniform, aux_overridden = outputs(
        params
    )
    np.testing.assert_allclose(from_embedded, logits, atol=1e-6)
    np.testing.assert_allclose(decoded, logits, atol=1e-6)
    np.testing.assert_array_equal(aux_overridden["attention"], uniform)
    np.testing.assert_allclose(decoded_uniform, overridden, atol=1e-6)
    assert not np.allclose(overridden, logits)


@pytest.mark.parametrize("encoder", models.ENCODERS)
def test_stop_attention_gradient_cuts_the_path_through_alpha(encoder):
    """With α held fixed the attention parameters get no gradient; without, they do."""
    config = tiny_config(encoder, "tanh")
    params = initial_params(config)
    token_ids, length = padded([4, 8, 15, 16], 8)
    embedded = models.embed(params, config, token_ids)

    @functools.partial(jax.grad, argnums=(0, 1))
    def logit_gradients(params, embedded, stop):
        logits, _ = models.forward_from_embedded(
            params, config, embedded, length, stop_attention_gradient=stop
        )
        return logits[0]

    @jax.jit
    def stopped_and_flowing(params, embedded):
        stopped = logit_gradients(params, embedded, "audited")
        return stopped, logit_gradients(params, embedded, "none")

    (stopped, embedded_stopped), (flowing, embedded_flowing) = stopped_and_flowing(params, embedded)
    assert all(np.all(g == 0.0) for g in jax.tree.leaves(stopped["attention"]))
    assert all(np.any(g != 0.0) for g in jax.tree.leaves(flowing["attention"]))
    # The encoder (but its embedding, bypassed here) and the decoder still get gradients.
    del stopped["encoder"]["embedding"]
    assert all(np.any(g != 0.0) for g in jax.tree.leaves((stopped["encoder"], stopped["decoder"])))
    # JW's gradient audit differentiates w.r.t. the embeddings with α held fixed.
    assert not np.allclose(embedded_stopped, embedded_flowing)
    # Positions past the length never influence the output.
    np.testing.assert_array_equal(embedded_stopped[length:], 0.0)


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


def test_probabilities_binary_is_one_minus_sigmoid_and_sigmoid():
    config = tiny_config()
    logits = jnp.array([[0.0], [2.0], [-40.0]])
    expected_positive = 1 / (1 + np.exp(-np.array([0.0, 2.0, -40.0])))
    probabilities = models.probabilities(logits, config)
    np.testing.assert_allclose(probabilities[:, 1], expected_positive, rtol=1e-6)
    np.testing.assert_allclose(probabilities[:, 0], 1 - expected_positive, rtol=1e-6)
    with pytest.raises(ValueError, match="output_dim"):
        models.probabilities(jnp.zeros((2, 3)), config)


def test_answer_mask_excludes_candidates():
    config = tiny_config("average", "dot", "qa", 4)
    params = initial_params(config)
    batch = bucketed_batches(config, seed=3)[3]
    batch["answer_mask"] = np.array([[True, False, True, False]] * 3)
    logits, _ = forward_batch(params, config, batch)
    probabilities = models.probabilities(logits, config)
    np.testing.assert_array_equal(probabilities[:, [1, 3]], 0.0)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-6)
