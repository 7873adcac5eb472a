"""Tests for attn_audit.models.transformer: shapes, masking, padding, the CLS override,
the stopped attention gradient and a PyTorch twin on the same weights.

The audits' adapter is tested in tests/audits/transformer_model_test.py, BERT names in
tests/pretrained/bert_test.py, training in tests/training/ and the train command in
tests/experiments/train_test.py."""

import dataclasses

import jax
import numpy as np
import pytest

from attn_audit import models
from attn_audit.models import transformer
from attn_audit.pretrained import bert
from tests._fixtures import (
    PAD,
    REAL,
    VOCAB_SIZE,
    batch_of,
    forward_batch,
    initial_params,
    padded,
)
from tests._fixtures import tiny_transformer_config as tiny_config

forward = jax.jit(
    transformer.forward, static_argnums=1, static_argnames=("stop_attention_gradient",)
)


CONFIGS = [tiny_config(), tiny_config(3, "mean"), tiny_config(2, "cls", 1, 1, embed_dim=7)]


def test_config_checks_the_transformer_settings():
    with pytest.raises(ValueError, match="attention='self'"):
        models.ModelConfig(vocab_size=20, num_classes=2, encoder="transformer")
    with pytest.raises(ValueError, match="multiple of num_heads"):
        dataclasses.replace(tiny_config(), num_heads=5)
    with pytest.raises(ValueError, match="classification"):
        dataclasses.replace(tiny_config(), task="qa")
    with pytest.raises(ValueError, match="pooling"):
        dataclasses.replace(tiny_config(), pooling="max")
    with pytest.raises(ValueError, match="tanh, dot, uniform"):
        models.ModelConfig(vocab_size=20, num_classes=2, attention="self")
    config = tiny_config(3, "mean")
    assert models.ModelConfig.from_dict(config.to_dict()) == config
    assert config.state_dim == 12 and config.head_dim == 4


@pytest.mark.parametrize("config", CONFIGS, ids=["cls", "mean-3-classes", "1-head-1-layer-E7"])
def test_shapes_masking_and_padding_invariance(config):
    """Batches of 1 and 3 (with a padding row): shapes; every attention row sums to 1 over
    the non-PAD keys and is exactly 0 on PAD keys and past the length; α lives on the real
    tokens; and T=8 vs T=13 gives the same logits and maps (1e-6)."""
    params = initial_params(config)
    other = list(np.random.default_rng(0).integers(4, VOCAB_SIZE, 9))
    outputs = {}
    for rows, width in (([REAL], 8), ([REAL, other, None], 13)):
        batch = batch_of(rows, width)
        logits, aux = outputs[width] = forward_batch(params, config, batch)
        batch_size, layers, heads = len(rows), config.num_layers, config.num_heads
        assert logits.shape == (batch_size, config.output_dim)
        assert aux["attention_maps"].shape == (batch_size, layers, heads, width, width)
        assert aux["layer_states"].shape == (batch_size, layers, width, 12)
        assert aux["states"].shape == (batch_size, width, 12)
        assert aux["attention"].shape == aux["attention_mask"].shape == (batch_size, width)
        assert np.all(np.isfinite(logits))
        maps, alpha = np.asarray(aux["attention_maps"]), np.asarray(aux["attention"])
        for row, length in enumerate(batch["lengths"]):
            np.testing.assert_allclose(maps[row, :, :, :length].sum(-1), 1.0, atol=1e-6)
            assert np.all(maps[row, :, :, :, length:] == 0.0)
            assert np.all(maps[row, :, :, length:, :] == 0.0)
            real = np.zeros(width, bool)
            real[1 : max(length - 1, 1)] = True
            assert np.all(alpha[row][~real] == 0.0) and np.all(alpha[row][real] > 0.0)
            np.testing.assert_allclose(alpha[row].sum(), 1.0 if real.any() else 0.0, atol=1e-6)
            np.testing.assert_array_equal(aux["states"][row, length:], 0.0)
    (logits_8, aux_8), (logits_13, aux_13) = outputs[8], outputs[13]
    np.testing.assert_allclose(logits_8[0], logits_13[0], atol=1e-6)
    np.testing.assert_allclose(
        aux_8["attention_maps"][0], aux_13["attention_maps"][0, :, :, :8, :8], atol=1e-6
    )
    np.testing.assert_allclose(aux_8["attention"][0], aux_13["attention"][0, :8], atol=1e-6)


def test_audited_attention_is_the_head_mean_of_the_last_cls_row_over_real_tokens():
    config = tiny_config()
    token_ids, length = padded(REAL, 9)
    _, aux = forward(initial_params(config), config, token_ids, length)
    row = np.asarray(aux["attention_maps"][-1, :, 0, :]).mean(0)
    expected = np.zeros(9)
    expected[1 : length - 1] = row[1 : length - 1] / row[1 : length - 1].sum()
    np.testing.assert_allclose(aux["attention"], expected, rtol=1e-6, atol=1e-7)


def test_overriding_the_cls_row_with_the_models_own_gives_the_same_output():
    """Per-head rows [H, T] reproduce the model; one row [T] does when there is one head;
    another row changes the output; only the last block's CLS row is replaced."""
    token_ids, length = padded(REAL, 9)
    for config in (tiny_config(), tiny_config(num_heads=1)):
        params = initial_params(config)

        @jax.jit
        def overridden(params, config=config):
            def run(rows):
                return transformer.forward(
                    params, config, token_ids, length, attention_override=rows
                )

            logits, aux = transformer.forward(params, config, token_ids, length)
            own_rows = aux["attention_maps"][-1, :, 0, :]
            uniform = models.uniform_attention(aux["attention_mask"])
            batch = {**batch_of([REAL], 9), "attention_override": uniform[None]}
            return {
                "logits": logits, "maps": aux["attention_maps"], "uniform": uniform,
                "own_rows": run(own_rows)[0], "own_row_0": run(own_rows[0])[0],
                "uniform_row": run(uniform), "forward_batch": models.forward_batch(
                    params, config, batch)[0][0],
            }  # fmt: skip

        out = overridden(params)
        np.testing.assert_allclose(out["own_rows"], out["logits"], atol=1e-6)
        if config.num_heads == 1:
            np.testing.assert_allclose(out["own_row_0"], out["logits"], atol=1e-6)
        changed, aux_changed = out["uniform_row"]
        assert not np.allclose(changed, out["logits"])
        np.testing.assert_array_equal(
            aux_changed["attention_maps"][-1, :, 0, :],
            np.broadcast_to(out["uniform"], (config.num_heads, 9)),
        )
        np.testing.assert_array_equal(
            aux_changed["attention_maps"][:, :, 1:], out["maps"][:, :, 1:]
        )
        # models.forward_batch passes batch["attention_override"] through.
        np.testing.assert_allclose(out["forward_batch"], changed, atol=1e-6)


def test_stop_attention_gradient():
    """ "all" cuts every query/key gradient; "audited" with CLS pooling cuts the last block's
    (only its CLS row reaches the output) and keeps the first block's."""
    config = tiny_config()
    params = initial_params(config)
    token_ids, length = padded(REAL, 9)

    @jax.jit
    def query_key_gradients(params):
        def logit(params, stop):
            return transformer.forward(
                params, config, token_ids, length, stop_attention_gradient=stop
            )[0][0]

        out = {}
        for stop in models.STOP_ATTENTION_GRADIENT:
            layers = jax.grad(logit)(params, stop)["encoder"]["layers"]
            out[stop] = {name: layers[name]["weight"] for name in ("query", "key")}
        return out

    gradients = query_key_gradients(params)
    for name in ("query", "key"):
        assert np.all(np.asarray(gradients["all"][name]) == 0.0)
        assert np.all(np.asarray(gradients["audited"][name][-1]) == 0.0)
        assert np.any(np.asarray(gradients["audited"][name][0]) != 0.0)
        assert np.any(np.asarray(gradients["none"][name][-1]) != 0.0)
    with pytest.raises(ValueError, match="stop_attention_gradient"):
        transformer.forward(params, config, token_ids, length, stop_attention_gradient="some")


def test_too_long_a_sequence_says_how_to_fix_it():
    config = tiny_config()
    with pytest.raises(ValueError, match="max_positions"):
        transformer.forward(initial_params(config), config, *padded(list(range(4, 19)), 17))


# ---------------------------------------------------------------- a PyTorch twin


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_matches_a_pytorch_bert_on_the_same_weights(pooling):
    """Logits, every block's hidden states and attention maps agree with an independent
    PyTorch BERT (Hugging Face's computation) within 1e-5: both float32, O(1) values after
    layer norm, different summation orders."""
    torch = pytest.importorskip("torch")
    from tests.reference import torch_bert

    config = tiny_config(3, pooling)
    params = initial_params(config, seed=1)
    batch = batch_of([REAL, [7, 8], list(range(4, 15))], 13)
    logits, aux = forward_batch(params, config, batch)
    twin = torch_bert.TorchBert.from_config(config)
    torch_bert.load_bert_weights(twin, bert.to_bert_state_dict(params, config))
    ids = torch.from_numpy(batch["token_ids"]).long()
    with torch.no_grad():
        out = twin(ids, (ids != PAD).long())
    np.testing.assert_allclose(logits, out["logits"].numpy(), atol=1e-5)
    valid = batch["token_ids"] != PAD
    for layer in range(config.num_layers):
        hidden = out["hidden_states"][layer + 1].numpy() * valid[..., None]
        np.testing.assert_allclose(aux["layer_states"][:, layer], hidden, atol=1e-5)
        maps = out["attentions"][layer].numpy() * valid[:, None, :, None]
        np.testing.assert_allclose(aux["attention_maps"][:, layer], maps, atol=1e-5)


def test_forward_batch_does_not_retrace_for_new_values():
    config = tiny_config()
    params = initial_params(config)
    traces = []

    @jax.jit
    def logits(params, batch):
        traces.append(1)
        return models.forward_batch(params, config, batch)[0]

    for seed in range(3):
        rng = np.random.default_rng(seed)
        rows = [list(rng.integers(4, VOCAB_SIZE, int(rng.integers(1, 8)))) for _ in range(4)]
        logits(params, batch_of(rows, 10)).block_until_ready()
    assert len(traces) == 1
