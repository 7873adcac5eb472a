"""attn_audit.models.decoder: decoding any α reproduces the forward pass; the answer mask."""

import jax
import numpy as np
import pytest

from attn_audit import models
from tests._fixtures import bucketed_batches, forward_batch, initial_params, padded, tiny_config


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


def test_answer_mask_excludes_candidates():
    config = tiny_config("average", "dot", "qa", 4)
    params = initial_params(config)
    batch = bucketed_batches(config, seed=3)[3]
    batch["answer_mask"] = np.array([[True, False, True, False]] * 3)
    logits, _ = forward_batch(params, config, batch)
    probabilities = models.probabilities(logits, config)
    np.testing.assert_array_equal(probabilities[:, [1, 3]], 0.0)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-6)
