"""attn_audit.audits.permutation: TVDs against a loop over the same shuffles; uniform shuffles."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attn_audit import audits, models
from tests._fixtures import instance_of, tiny_batch, tiny_model


def test_permutation_equals_a_loop_over_the_same_permutations():
    model, params = tiny_model("lstm", "tanh")
    batch = tiny_batch()
    key = jax.random.key(3)
    for row in range(len(batch["lengths"])):
        instance = instance_of(batch, row)
        tvds = np.asarray(audits.permutation_tvds(model, params, instance, key, 20))
        embedded = model.embed(params, instance)
        states = model.encode(params, instance, embedded)
        alpha = model.attention(params, instance, states)
        original = np.asarray(model.decode(params, instance, states, alpha))
        mask = np.asarray(models.real_token_mask(instance["length"], 12))
        for i, permutation_key in enumerate(jax.random.split(key, 20)):
            permuted = audits.permute_real_tokens(alpha, jnp.asarray(mask), permutation_key)
            assert sorted(np.asarray(permuted)[mask]) == pytest.approx(
                sorted(np.asarray(alpha)[mask])
            )
            assert np.all(np.asarray(permuted)[~mask] == 0)
            shuffled = np.asarray(model.decode(params, instance, states, permuted))
            assert tvds[i] == pytest.approx(0.5 * np.abs(shuffled - original).sum(), abs=1e-6)


def test_permutations_are_uniform_over_positions():
    alpha = jnp.asarray([0.0, 1.0, 0.0, 0.0, 0.0])
    mask = jnp.asarray([False, True, True, True, False])
    moved = jax.vmap(lambda k: audits.permute_real_tokens(alpha, mask, k))(
        jax.random.split(jax.random.key(0), 3000)
    )
    share = np.asarray(moved).mean(axis=0)
    np.testing.assert_allclose(share[1:4], 1 / 3, atol=0.03)
    assert share[0] == share[4] == 0


@pytest.mark.parametrize("chunk", [1, 7, 30])
def test_shuffles_in_chunks_equal_shuffles_at_once(chunk):
    """The same keys, so the same shuffles: chunking only bounds the memory."""
    model, params = tiny_model("lstm", "tanh")
    instance = instance_of(tiny_batch(), 2)
    key = jax.random.key(4)
    tvds = jax.jit(audits.permutation_tvds, static_argnums=(0, 4, 5))
    at_once = tvds(model, params, instance, key, 30, None)
    np.testing.assert_allclose(tvds(model, params, instance, key, 30, chunk), at_once, atol=1e-7)
