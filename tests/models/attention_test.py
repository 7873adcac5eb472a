"""attn_audit.models.attention: masked attention weights by hand, and uniform attention."""

import math

import jax
import jax.numpy as jnp
import numpy as np

from attn_audit import models


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
