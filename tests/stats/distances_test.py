"""attn_audit.stats.distances: TVD / JSD / KL by hand and against scipy."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import spatial
from scipy import stats as scipy_stats

from attn_audit import stats


def test_tvd_by_hand():
    np.testing.assert_allclose(stats.tvd(jnp.array([1.0, 0.0]), jnp.array([0.0, 1.0])), 1.0)
    np.testing.assert_allclose(
        stats.tvd(jnp.array([0.5, 0.3, 0.2]), jnp.array([0.2, 0.3, 0.5])), 0.3, atol=1e-7
    )
    # One sigmoid output as (σ, 1−σ): TVD = |σ_p − σ_q| (SPEC §6).
    np.testing.assert_allclose(stats.tvd(jnp.array([0.9, 0.1]), jnp.array([0.6, 0.4])), 0.3)


def test_jsd_and_kl_by_hand():
    p = jnp.array([0.7, 0.2, 0.1])
    np.testing.assert_allclose(stats.jsd(p, p), 0.0, atol=1e-7)
    np.testing.assert_allclose(stats.kl(p, p), 0.0, atol=1e-7)
    one_hot_a, one_hot_b = jnp.array([1.0, 0.0]), jnp.array([0.0, 1.0])
    np.testing.assert_allclose(stats.jsd(one_hot_a, one_hot_b), math.log(2), atol=1e-6)
    np.testing.assert_allclose(
        stats.kl(jnp.array([0.5, 0.5]), jnp.array([0.25, 0.75])),
        0.5 * math.log(2) + 0.5 * math.log(2 / 3),
        atol=1e-6,
    )


def test_jsd_and_kl_match_scipy():
    rng = np.random.default_rng(11)
    p = rng.dirichlet(np.ones(10), size=16)
    q = rng.dirichlet(np.full(10, 0.3), size=16)
    # jensenshannon is the square root of JSD, in nats when base is e (its default).
    expected_jsd = spatial.distance.jensenshannon(p, q, axis=-1) ** 2
    # KL(q ‖ p): q has near-zero entries, where the eps in the log of p would show.
    expected_kl = scipy_stats.entropy(q, p, axis=-1)
    # float32 logs of ten terms: ~1e-7 each; eps = 1e-10 moves the value by ~1e-9.
    np.testing.assert_allclose(stats.jsd(jnp.array(p), jnp.array(q)), expected_jsd, atol=2e-6)
    np.testing.assert_allclose(stats.kl(jnp.array(q), jnp.array(p)), expected_kl, atol=1e-5)
    np.testing.assert_allclose(
        stats.tvd(jnp.array(p), jnp.array(q)), 0.5 * np.abs(p - q).sum(-1), atol=1e-6
    )


def test_distances_are_vmappable_jittable_and_broadcast_within_a_rank():
    rng = np.random.default_rng(13)
    p = jnp.array(rng.dirichlet(np.ones(6), size=5), jnp.float32)
    q = jnp.array(rng.dirichlet(np.ones(6), size=5), jnp.float32)
    for distance in (stats.tvd, stats.jsd, stats.kl):
        batched = distance(p, q)
        assert batched.shape == (5,)
        np.testing.assert_allclose(jax.vmap(distance)(p, q), batched, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(jax.jit(distance)(p, q), batched, rtol=1e-6, atol=1e-7)
    # The adversarial audit's pairwise form: [K, 1, T] against [1, K, T] gives [K, K].
    pairwise = stats.jsd(p[:, None, :], p[None, :, :])
    assert pairwise.shape == (5, 5)
    np.testing.assert_allclose(jnp.diagonal(pairwise), 0.0, atol=1e-7)
    np.testing.assert_allclose(pairwise, pairwise.T, atol=1e-7)


@pytest.mark.parametrize("distance", [stats.tvd, stats.jsd, stats.kl])
def test_gradients_are_finite_at_one_hot_inputs(distance):
    one_hot_a, one_hot_b = jnp.array([1.0, 0.0, 0.0]), jnp.array([0.0, 1.0, 0.0])
    for q in (one_hot_a, one_hot_b):
        grad_p, grad_q = jax.grad(distance, argnums=(0, 1))(one_hot_a, q)
        assert jnp.all(jnp.isfinite(grad_p)) and jnp.all(jnp.isfinite(grad_q))
