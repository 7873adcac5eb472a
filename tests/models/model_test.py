"""attn_audit.models.model: init, shapes, masking, padding invariance, forward vs forward_batch,
the stopped attention gradient and the output probabilities."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attn_audit import models
from tests._fixtures import (
    PAD,
    TASKS,
    VOCAB_SIZE,
    bucketed_batches,
    forward_batch,
    initial_params,
    padded,
    tiny_config,
)


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


forward = jax.jit(models.forward, static_argnums=1, static_argnames=("stop_attention_gradient",))


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


@pytest.mark.parametrize("task,num_classes", [("classification", 2), ("qa", 4)])
def test_weight_decay_mask_spares_attention_in_classifiers_only(task, num_classes):
    """JW decay everything in their one-optimiser QA/NLI model, all but attention elsewhere."""
    params = models.init(jax.random.key(0), tiny_config("average", "tanh", task, num_classes))
    mask = models.weight_decay_mask(params)
    assert jax.tree.structure(mask) == jax.tree.structure(params)
    assert "attention" in mask and jax.tree.leaves(mask["attention"])
    for name, subtree in mask.items():
        expected = task == "qa" or name != "attention"
        assert all(leaf == expected for leaf in jax.tree.leaves(subtree))


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


def test_probabilities_binary_is_one_minus_sigmoid_and_sigmoid():
    config = tiny_config()
    logits = jnp.array([[0.0], [2.0], [-40.0]])
    expected_positive = 1 / (1 + np.exp(-np.array([0.0, 2.0, -40.0])))
    probabilities = models.probabilities(logits, config)
    np.testing.assert_allclose(probabilities[:, 1], expected_positive, rtol=1e-6)
    np.testing.assert_allclose(probabilities[:, 0], 1 - expected_positive, rtol=1e-6)
    with pytest.raises(ValueError, match="output_dim"):
        models.probabilities(jnp.zeros((2, 3)), config)


@pytest.mark.parametrize("encoder,invariant", [("average", True), ("lstm", False)])
def test_only_the_average_encoder_is_blind_to_token_order(encoder, invariant):
    # The premise of data.babi.order_free_ceiling: the Average model's answer depends on the
    # passage only through its bag of tokens.
    config = tiny_config(encoder, "tanh", "qa", 4)
    params = initial_params(config)
    token_ids, length = padded(np.arange(4, 12), 10)
    question_ids, question_length = padded([5, 7], 5)
    shuffled = token_ids.copy()
    shuffled[1:9] = np.random.default_rng(0).permutation(token_ids[1:9])  # SOS, EOS stay
    logits = [
        forward(params, config, ids, length, question_ids=question_ids,
                question_length=question_length)[0]
        for ids in (token_ids, shuffled)
    ]  # fmt: skip
    assert np.allclose(logits[0], logits[1], atol=1e-6) == invariant
