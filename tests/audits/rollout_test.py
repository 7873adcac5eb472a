"""attn_audit.audits.rollout: raw and residual attention by hand, rollout against a numpy loop,
lengths, compilation and input checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attn_audit.audits import rollout
from tests._fixtures import numpy_residual, random_attention


def numpy_rollout(attention):
    residual = numpy_residual(attention)
    rolled, current = [], np.eye(residual.shape[-1])
    for layer in residual:
        current = layer @ current
        rolled.append(current)
    return np.stack(rolled)


def test_raw_attention_is_the_head_average():
    attention = random_attention(0, layers=2, n=4)
    np.testing.assert_allclose(rollout.raw_attention(attention), attention.mean(1), atol=1e-7)


def test_residual_attention_of_two_tokens_by_hand():
    # One layer, one head, attention [1, e]/(1+e) in both rows.
    e = np.e
    attention = np.array([[[[1 / (1 + e), e / (1 + e)], [1 / (1 + e), e / (1 + e)]]]], np.float32)
    expected = np.array(
        [[0.5 / (1 + e) + 0.5, 0.5 * e / (1 + e)], [0.5 / (1 + e), 0.5 * e / (1 + e) + 0.5]]
    )
    np.testing.assert_allclose(rollout.residual_attention(attention)[0], expected, atol=1e-6)


def test_residual_attention_renormalises_rows():
    attention = 3.0 * random_attention(1, layers=3, n=5)  # rows sum to 3
    residual = rollout.residual_attention(attention)
    np.testing.assert_allclose(residual.sum(-1), 1.0, atol=1e-6)
    np.testing.assert_allclose(residual, numpy_residual(attention), atol=1e-6)


@pytest.mark.parametrize("layers, n", [(1, 3), (3, 5), (6, 8)])
def test_rollout_matches_a_numpy_loop(layers, n):
    attention = random_attention(layers, layers, n)
    rolled = jax.jit(rollout.rollout)(attention)
    assert rolled.shape == (layers, n, n)
    # float32 products of up to 6 row-stochastic 8x8 matrices: 1e-5 absorbs rounding.
    np.testing.assert_allclose(rolled, numpy_rollout(attention), atol=1e-5)
    np.testing.assert_allclose(rolled.sum(-1), 1.0, atol=1e-5)


def test_rollout_vmapped_with_lengths_equals_each_instance_cut_to_its_length():
    n, lengths = 6, np.array([6, 3, 1, 5])
    attention = np.stack([random_attention(seed, layers=3, n=n) for seed in range(len(lengths))])
    batched = jax.jit(jax.vmap(rollout.rollout))(attention, lengths)
    for instance, length, rolled in zip(attention, lengths, batched, strict=True):
        expected = np.zeros((3, n, n))
        expected[:, :length, :length] = numpy_rollout(instance[..., :length, :length])
        np.testing.assert_allclose(rolled, expected, atol=1e-5)


def test_rollout_does_not_recompile_for_new_lengths():
    rollout_batch = jax.jit(jax.vmap(rollout.rollout))
    attention = np.stack([random_attention(seed, layers=2, n=4) for seed in range(3)])
    rollout_batch(attention, jnp.array([4, 2, 3]))
    rollout_batch(attention, jnp.array([1, 4, 4]))
    assert rollout_batch._cache_size() == 1


@pytest.mark.parametrize("function", [rollout.raw_attention, rollout.rollout])
def test_jax_functions_reject_a_wrong_rank(function):
    with pytest.raises(ValueError, match=r"\[layers, heads, n, n\].*jax.vmap"):
        function(np.ones((2, 4, 4), np.float32))
    with pytest.raises(ValueError, match="square"):
        function(np.ones((2, 1, 4, 3), np.float32))
