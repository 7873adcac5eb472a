"""Tests for attn_audit.interop: JW state-dict names, round trips, and the PyTorch twin."""

import functools

import jax
import numpy as np
import pytest
import torch

from attn_audit import interop, models
from tests._fixtures import tiny_config
from tests.reference import torch_model

SOS, EOS, PAD = 2, 3, 0
VOCAB_SIZE = 20
TASKS = [("classification", 2), ("classification", 3), ("qa", 4)]
CLASSIFICATION_MODELS = [
    (encoder, attention) for encoder in models.ENCODERS for attention in models.ATTENTIONS
]

# Tolerance for JAX vs PyTorch: both run float32, but they sum in different orders (XLA
# fuses the LSTM gates and the convolutions differently from ATen), which moves results by
# a few float32 ulps (~1e-7) per operation; at these tiny sizes the drift stays far below 1e-5.
TOLERANCE = 1e-5

forward_batch = jax.jit(models.forward_batch, static_argnums=1)


@functools.cache
def initial_params(config, seed=0):
    return models.init(jax.random.key(seed), config)


def expected_classification_names(encoder, attention):
    """The names of JW's classification model, written out as SPEC §2 / the brief list them."""
    names = ["encoder.embedding.weight"]
    if encoder == "lstm":
        names += [
            f"encoder.rnn.{tensor}_l0{suffix}"
            for suffix in ("", "_reverse")
            for tensor in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        ]
    elif encoder == "cnn":
        names += [f"encoder.convolutions.{i}.{t}" for i in range(4) for t in ("weight", "bias")]
    else:
        names += ["encoder.projection.weight", "encoder.projection.bias"]
    if attention == "tanh":
        names += [
            "decoder.attention.attn1.weight",
            "decoder.attention.attn1.bias",
            "decoder.attention.attn2.weight",
        ]
    elif attention == "dot":
        names += ["decoder.attention.attn1.weight"]
    # uniform attention has no parameters
    return sorted(names + ["decoder.linear_1.weight", "decoder.linear_1.bias"])


def torch_batch(config, seed):
    """Three instances of lengths T, 3 (one real token) and 8 at T=13; for qa, questions at Tq=9.

    Every row has a real token: PyTorch's masked softmax gives NaN without one and
    pack_padded_sequence refuses length 0.
    """
    rng = np.random.default_rng(seed)

    def rows(width, lengths):
        ids = np.full((len(lengths), width), PAD, np.int64)
        for row, length in enumerate(lengths):
            ids[row, :length] = [SOS, *rng.integers(4, VOCAB_SIZE, length - 2), EOS]
        return ids, np.asarray(lengths, np.int64)

    batch = dict(zip(("token_ids", "lengths"), rows(13, [13, 3, 8]), strict=True))
    if config.task == "qa":
        question = rows(9, [9, 3, 5])
        batch.update(zip(("question_ids", "question_lengths"), question, strict=True))
    return batch


def run_both(config, params, torch_twin, batch):
    """(JAX probabilities, JAX attention), (torch probabilities, torch attention) as numpy."""
    jax_batch = {name: value.astype(np.int32) for name, value in batch.items()}
    logits, aux = forward_batch(params, config, jax_batch)
    with torch.no_grad():
        probabilities, attention = torch_twin(
            *(torch.as_tensor(batch[name]) for name in sorted(batch, key=_argument_order))
        )
    return (
        (np.asarray(models.probabilities(logits, config)), np.asarray(aux["attention"])),
        (probabilities.numpy(), attention.numpy()),
    )


def _argument_order(name):
    return ("token_ids", "lengths", "question_ids", "question_lengths").index(name)


# ---------------------------------------------------------------- names and round trips


@pytest.mark.parametrize("encoder,attention", CLASSIFICATION_MODELS)
def test_state_dict_names_are_jw_names(encoder, attention):
    config = tiny_config(encoder, attention)
    state_dict = interop.to_torch_state_dict(initial_params(config), config)
    assert sorted(state_dict) == expected_classification_names(encoder, attention)
    assert sorted(torch_model.TorchModel(config).state_dict()) == sorted(state_dict)
    assert all(value.dtype == np.float32 for value in state_dict.values())


def test_state_dict_layout_is_pytorch_layout():
    """Shapes of torch.nn.LSTM(E, 128, bidirectional), Conv1d(E, 32, k), Linear(H, 1)."""
    shapes = {}
    for encoder in models.ENCODERS:
        config = models.ModelConfig(vocab_size=30, num_classes=2, encoder=encoder, embed_dim=10)
        twin = torch_model.TorchModel(config)
        params = interop.from_torch_state_dict(twin.state_dict(), config)
        exported = interop.to_torch_state_dict(params, config)
        for name, tensor in twin.state_dict().items():
            np.testing.assert_array_equal(exported[name], tensor.numpy())
        shapes.update({name: value.shape for name, value in exported.items()})
    assert shapes["encoder.rnn.weight_ih_l0_reverse"] == (512, 10)
    assert shapes["encoder.rnn.weight_hh_l0"] == (512, 128)
    assert shapes["encoder.convolutions.3.weight"] == (32, 10, 7)
    assert shapes["encoder.projection.weight"] == (128, 10)
    assert shapes["decoder.linear_1.weight"] == (1, 128)


@pytest.mark.parametrize("task,num_classes", TASKS)
@pytest.mark.parametrize("attention", models.ATTENTIONS)
@pytest.mark.parametrize("encoder", models.ENCODERS)
def test_round_trip_reproduces_params(encoder, attention, task, num_classes):
    config = tiny_config(encoder, attention, task, num_classes)
    params = initial_params(config)
    state_dict = interop.to_torch_state_dict(params, config)
    if task == "qa":
        assert any(name.startswith("question_encoder.") for name in state_dict)
    restored = interop.from_torch_state_dict(state_dict, config)
    assert jax.tree.structure(restored) == jax.tree.structure(params)
    for restored_leaf, leaf in zip(jax.tree.leaves(restored), jax.tree.leaves(params), strict=True):
        np.testing.assert_array_equal(restored_leaf, leaf)
    twin = torch_model.load_torch_model(state_dict, config)  # strict=True inside
    assert sorted(twin.state_dict()) == sorted(state_dict)


def test_npz_round_trip(tmp_path):
    config = tiny_config("cnn", "tanh", "classification", 3)
    params = initial_params(config)
    path = tmp_path / "model.npz"
    np.savez(path, **interop.to_torch_state_dict(params, config))
    with np.load(path) as state_dict:
        restored = interop.from_torch_state_dict(state_dict, config)
        torch_model.load_torch_model(state_dict, config)
    for restored_leaf, leaf in zip(jax.tree.leaves(restored), jax.tree.leaves(params), strict=True):
        np.testing.assert_array_equal(restored_leaf, leaf)


def test_mismatches_raise_clear_errors():
    config = tiny_config("lstm", "tanh")
    state_dict = interop.to_torch_state_dict(initial_params(config), config)
    missing = dict(state_dict)
    del missing["encoder.rnn.bias_hh_l0_reverse"]
    with pytest.raises(ValueError, match="missing.*bias_hh_l0_reverse"):
        interop.from_torch_state_dict(missing, config)
    wrong_shape = {**state_dict, "decoder.linear_1.weight": np.zeros((3, 12), np.float32)}
    with pytest.raises(ValueError, match=r"decoder.linear_1.weight has shape \(3, 12\)"):
        interop.from_torch_state_dict(wrong_shape, config)
    with pytest.raises(ValueError, match="do not match the cnn/tanh/classification model"):
        interop.to_torch_state_dict(initial_params(config), tiny_config("cnn", "tanh"))


# ---------------------------------------------------------------- JAX against the PyTorch twin


@pytest.mark.parametrize("num_classes", [2, 3])
@pytest.mark.parametrize("encoder,attention", CLASSIFICATION_MODELS)
def test_jax_matches_torch_twin_on_the_same_weights(encoder, attention, num_classes):
    config = tiny_config(encoder, attention, "classification", num_classes)
    params = initial_params(config)
    twin = torch_model.load_torch_model(interop.to_torch_state_dict(params, config), config)
    (jax_probabilities, jax_attention), (torch_probabilities, torch_attention) = run_both(
        config, params, twin, torch_batch(config, seed=num_classes)
    )
    assert torch_probabilities.shape == (3, num_classes)
    np.testing.assert_allclose(jax_probabilities, torch_probabilities, atol=TOLERANCE)
    np.testing.assert_allclose(jax_attention, torch_attention, atol=TOLERANCE)
    # Both give exact zeros on SOS, EOS and padding.
    np.testing.assert_array_equal(jax_attention == 0.0, torch_attention == 0.0)


@pytest.mark.parametrize("attention", models.ATTENTIONS)
@pytest.mark.parametrize("encoder", models.ENCODERS)
def test_jax_matches_torch_twin_on_qa(encoder, attention):
    config = tiny_config(encoder, attention, "qa", 4)
    params = initial_params(config)
    twin = torch_model.load_torch_model(interop.to_torch_state_dict(params, config), config)
    (jax_probabilities, jax_attention), (torch_probabilities, torch_attention) = run_both(
        config, params, twin, torch_batch(config, seed=5)
    )
    np.testing.assert_allclose(jax_probabilities, torch_probabilities, atol=TOLERANCE)
    np.testing.assert_allclose(jax_attention, torch_attention, atol=TOLERANCE)


@pytest.mark.parametrize("encoder", models.ENCODERS)
def test_torch_initialised_weights_run_the_same_in_jax(encoder):
    """The other direction: PyTorch's own init, imported with from_torch_state_dict."""
    config = tiny_config(encoder, "tanh")
    torch.manual_seed(0)
    twin = torch_model.TorchModel(config).eval()
    params = interop.from_torch_state_dict(twin.state_dict(), config)
    (jax_probabilities, jax_attention), (torch_probabilities, torch_attention) = run_both(
        config, params, twin, torch_batch(config, seed=7)
    )
    np.testing.assert_allclose(jax_probabilities, torch_probabilities, atol=TOLERANCE)
    np.testing.assert_allclose(jax_attention, torch_attention, atol=TOLERANCE)
