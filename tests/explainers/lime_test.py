"""attn_audit.explainers.lime: LIME's samples, weights and ridge, against scikit-learn and the
``lime`` package's own ridge (``LimeBase``) on the same samples."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sklearn.linear_model
import sklearn.metrics.pairwise
from lime import lime_base

from attn_audit.explainers import lime_text, perturbation
from tests._fixtures import instance_of, tiny_batch, tiny_model

MASK_ID = 1


def test_samples_keep_everything_first_then_remove_1_to_n_minus_1_tokens():
    players = np.asarray(lime_text.lime_samples(jax.random.key(0), 10, 2000, 7))
    assert players[0, :7].all() and not players[:, 7:].any()
    removed = 7 - players[1:, :7].sum(axis=1)
    assert removed.min() == 1 and removed.max() == 6
    counts = np.bincount(removed, minlength=7)[1:]
    assert (np.abs(counts / counts.sum() - 1 / 6) < 0.03).all()  # uniform on 1 … n − 1
    chosen = 1 - players[1:, :7].mean(axis=0)  # each token equally likely to go
    assert np.ptp(chosen) < 0.06


def test_weights_are_the_exponential_kernel_of_the_cosine_distance_times_100():
    players = np.asarray(lime_text.lime_samples(jax.random.key(1), 8, 50, 8))
    distances = 100 * sklearn.metrics.pairwise.cosine_distances(players, players[:1]).ravel()
    np.testing.assert_allclose(
        np.asarray(lime_text.lime_weights(jnp.asarray(players), 8)),
        np.exp(-(distances**2) / 25**2), rtol=2e-5, atol=1e-7,
    )  # fmt: skip


def test_weighted_ridge_equals_scikit_learn():
    rng = np.random.default_rng(0)
    features = (rng.random((60, 6)) < 0.6).astype(np.float32)
    features[:, 5] = 0.0  # an empty slot: coefficient 0
    targets, weights = rng.random(60).astype(np.float32), rng.random(60).astype(np.float32)
    arrays = map(jnp.asarray, (features, targets, weights))
    coefficients, intercept = lime_text.weighted_ridge(*arrays)
    reference = sklearn.linear_model.Ridge(alpha=1.0).fit(features, targets, sample_weight=weights)
    np.testing.assert_allclose(np.asarray(coefficients), reference.coef_, atol=2e-6)
    assert float(intercept) == pytest.approx(reference.intercept_, abs=2e-6)


@functools.partial(jax.jit, static_argnums=(0, 4, 5))
def explain(model, params, instance, key, num_samples, removal):
    return lime_text.lime(model, params, instance, key, MASK_ID, num_samples, removal)


@pytest.mark.parametrize("removal", ["mask", "delete"])
def test_lime_equals_the_lime_packages_ridge_on_the_same_samples(removal):
    model, params = tiny_model("lstm", "tanh", num_classes=3)
    instance = instance_of(tiny_batch((9,), width=12, seed=3), 0)
    key, n, num_samples = jax.random.key(4), 7, 300
    scores = np.asarray(explain(model, params, instance, key, num_samples, removal))
    # The same samples, scored by the model, then lime's own regression on them.
    players = lime_text.lime_samples(key, 10, num_samples, n)
    target = jax.jit(perturbation.predicted_class, static_argnums=0)(model, params, instance)
    values = jax.jit(perturbation.coalition_values, static_argnums=(0, 5, 6))(
        model, params, instance, perturbation.keep_from_players(players, 12), target, removal,
        MASK_ID,
    )  # fmt: skip
    data = np.asarray(players, np.float64)[:, :n]
    distances = 100 * sklearn.metrics.pairwise.cosine_distances(data, data[:1]).ravel()
    explainer = lime_base.LimeBase(lambda d: np.exp(-(d**2) / 25**2), random_state=0)
    _, pairs, _, _ = explainer.explain_instance_with_data(
        data, np.asarray(values, np.float64)[:, None], distances, 0, n, feature_selection="none"
    )
    expected = np.zeros(n)
    for feature, coefficient in pairs:
        expected[feature] = coefficient
    np.testing.assert_allclose(scores[1 : n + 1], expected, atol=2e-6)
    assert (scores[n + 1 :] == 0).all() and scores[0] == 0
