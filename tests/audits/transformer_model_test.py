"""attn_audit.audits.transformer_model: the transformer's audit adapter decodes like the model,
and JW's audits run on it."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attn_audit import audits, models
from attn_audit.audits import transformer_model
from attn_audit.audits.protocol import original_pass
from attn_audit.models import transformer
from tests._fixtures import REAL, initial_params, padded
from tests._fixtures import tiny_transformer_config as tiny_config

forward = jax.jit(
    transformer.forward, static_argnums=1, static_argnames=("stop_attention_gradient",)
)


CONFIGS = [tiny_config(), tiny_config(3, "mean")]


@pytest.mark.parametrize("config", CONFIGS[:2], ids=["cls", "mean"])
def test_audit_adapter_decodes_like_the_full_model(config):
    """decode(α̂) is the model's output ("reweighted"); decode(α) equals the full forward pass
    with the last CLS row replaced by mix_heads(α), for both head mixings."""
    params = initial_params(config)
    token_ids, length = padded(REAL, 9)
    instance = {"token_ids": token_ids, "length": length}
    logits, aux = forward(params, config, token_ids, length)
    alpha = jnp.asarray(np.r_[0, 0.5, 0.1, 0.1, 0.2, 0.1, 0, 0, 0], jnp.float32)
    for head_mixing in transformer_model.HEAD_MIXINGS:
        model = audits.TransformerModel(config, head_mixing)

        @jax.jit
        def passes(params, model=model):
            _, states, own_alpha, probabilities = original_pass(model, params, instance)
            return own_alpha, probabilities, model.decode(params, instance, states, alpha), states

        own_alpha, probabilities, decoded, states = passes(params)
        np.testing.assert_allclose(own_alpha, aux["attention"], atol=1e-7)
        rows = transformer_model.mix_heads(states["cls_rows"], alpha, length, head_mixing)
        np.testing.assert_allclose(rows.sum(-1), 1.0, atol=1e-6)
        np.testing.assert_array_equal(rows[:, 0], states["cls_rows"][:, 0])  # SOS mass kept
        overridden, _ = forward(params, config, token_ids, length, attention_override=rows)
        expected = models.probabilities(overridden, config)
        np.testing.assert_allclose(decoded, expected, atol=1e-6)
        if head_mixing == "reweighted":
            np.testing.assert_allclose(
                probabilities, models.probabilities(logits, config), atol=1e-6
            )
    assert audits.auditable_model(config) == audits.TransformerModel(config)
    assert isinstance(audits.auditable_model(dataclasses.replace(
        config, encoder="lstm", attention="tanh")), audits.JWModel)  # fmt: skip


def test_jw_audits_run_on_the_transformer():
    """The engine's audits accept the adapter: finite, zero off the real tokens."""
    config = tiny_config()
    params = initial_params(config)
    instance = {"token_ids": jnp.asarray(padded(REAL, 9)[0]), "length": jnp.int32(7)}
    model = audits.TransformerModel(config)
    real = np.asarray(models.real_token_mask(7, 9))

    @jax.jit
    def run(params):
        return (
            audits.gradient_importance(model, params, instance),
            audits.leave_one_out(model, params, instance),
            audits.permutation_median_tvd(model, params, instance, jax.random.key(1)),
        )

    gradient, loo, permutation = run(params)
    for scores in (gradient, loo):
        assert np.all(np.isfinite(scores)) and np.all(np.asarray(scores)[~real] == 0.0)
    np.testing.assert_allclose(np.sum(gradient), 1.0, atol=1e-6)
    assert np.isfinite(permutation) and permutation >= 0.0
