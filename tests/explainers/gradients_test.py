"""attn_audit.explainers.gradients: the quadrature rules, integrated gradients against a plain
loop over its points and its completeness, gradient × input against forward-mode derivatives."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attn_audit import audits, batch_engine, models
from attn_audit.explainers import gradients, perturbation
from tests._fixtures import (
    CASES,
    instance_of,
    tiny_batch,
    tiny_model,
    tiny_transformer_config,
)

MASK_ID = 1


def test_gauss_legendre_is_exact_for_polynomials_below_degree_2m():
    alphas, weights = gradients.integration_points("gausslegendre", 5)
    for degree in range(10):
        assert (weights * alphas**degree).sum() == pytest.approx(1 / (degree + 1), rel=1e-12)
    assert (weights * alphas**10).sum() != pytest.approx(1 / 11, rel=1e-9)


def test_trapezoid_halves_the_end_weights():
    alphas, weights = gradients.integration_points("riemann_trapezoid", 5)
    np.testing.assert_allclose(alphas, [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(weights, [0.125, 0.25, 0.25, 0.25, 0.125])


def test_bad_rules_and_point_counts_are_clear_errors():
    with pytest.raises(ValueError, match="Unknown integration rule 'simpson'"):
        gradients.integration_points("simpson", 10)
    with pytest.raises(ValueError, match="at least 2 points"):
        gradients.integration_points("gausslegendre", 1)


@functools.partial(jax.jit, static_argnums=(0, 3, 4, 5))
def integrated(model, params, instance, points, rule, chunk=None):
    return gradients.integrated_gradients(model, params, instance, MASK_ID, points, rule, chunk)


def batch_case(case):
    encoder, attention, task, classes = case
    model, params = tiny_model(encoder, attention, task, classes)
    batch = tiny_batch((9, 5), width=12, seed=6, questions=task == "qa")
    return model, params, [instance_of(batch, row) for row in range(2)]


def probability_of(model, params, instance, target, embedded):
    """``p(target | e)`` through the whole model, as the explainers differentiate it."""
    states = model.encode(params, instance, embedded)
    alpha = model.attention(params, instance, states)
    return model.decode(params, instance, states, alpha)[target]


reference_gradient = jax.jit(jax.grad(probability_of, argnums=4), static_argnums=0)
reference_probability = jax.jit(probability_of, static_argnums=0)
predicted_class = jax.jit(perturbation.predicted_class, static_argnums=0)
embed = jax.jit(lambda model, params, instance: model.embed(params, instance), static_argnums=0)


@pytest.mark.parametrize("case", CASES, ids=["-".join(map(str, c)) for c in CASES])
def test_integrated_gradients_equal_a_loop_over_points_and_are_complete(case):
    model, params, instances = batch_case(case)
    for instance in instances:
        scores, gap = integrated(model, params, instance, 50, "gausslegendre", 7)  # chunks of 7
        # The plain reading of the formula: one gradient per point, summed with its weight.
        embedded = embed(model, params, instance)
        target = predicted_class(model, params, instance)
        masked = perturbation.remove_tokens(instance, jnp.zeros(12, bool), "mask", MASK_ID)
        baseline = embed(model, params, masked)
        total = np.zeros(embedded.shape)
        for a, w in zip(*gradients.integration_points("gausslegendre", 50), strict=True):
            point = baseline + a * (embedded - baseline)
            total += w * np.asarray(reference_gradient(model, params, instance, target, point))
        expected = (np.asarray(embedded - baseline) * total).sum(axis=-1)
        np.testing.assert_allclose(np.asarray(scores), expected, atol=2e-6)
        change = float(
            reference_probability(model, params, instance, target, embedded)
            - reference_probability(model, params, instance, target, baseline)
        )
        assert float(gap) == pytest.approx(abs(float(np.sum(scores)) - change), abs=1e-6)
        # 50 Gauss–Legendre points integrate a smooth path almost exactly; the CNN's ReLUs
        # make the integrand kinked, and the rule's error larger.
        tolerance = 1e-2 if model.config.encoder == "cnn" else 1e-4
        assert float(gap) < tolerance * max(abs(change), 1e-3)


@pytest.mark.parametrize(
    "encoder, attention, task", [("lstm", "tanh", "classification"), ("cnn", "tanh",
    "classification"), ("lstm", "dot", "qa")], ids=["lstm", "cnn", "lstm-qa"],
)  # fmt: skip
def test_integrated_gradients_of_a_batch_equal_each_row_alone(encoder, attention, task):
    """The batch (the BiLSTM's path points blended from its first layer's two projections,
    ``coalition_states``; the CNN's embedded) against each row's plain IG, which embeds
    every point and differentiates it; a padding row; QA keeps the question."""
    model, params = tiny_model(encoder, attention, task, 3)
    batch = tiny_batch((3, 9, 12, 5), width=12, seed=2, questions=task == "qa")
    batch["lengths"][3], batch["token_ids"][3] = 0, 0  # a padding row
    instances = batch_engine.instances_from_batch({k: jnp.asarray(v) for k, v in batch.items()})
    has_hook = perturbation.coalition_shortcut(model, params, instances, MASK_ID) is not None
    assert has_hook == (encoder == "lstm")
    of_batch = jax.jit(gradients.integrated_gradients_of_batch, static_argnums=(0, 3, 4, 5, 6))
    scores, gap = of_batch(model, params, instances, MASK_ID, 20, "gausslegendre", 7)
    for row in range(4):
        alone, alone_gap = integrated(
            model, params, instance_of(batch, row), 20, "gausslegendre", None
        )
        assert np.abs(np.asarray(alone)).max() > 0 or row == 3
        np.testing.assert_allclose(scores[row], alone, atol=1e-6)
        assert float(gap[row]) == pytest.approx(float(alone_gap), abs=1e-6)
    np.testing.assert_array_equal(scores[3], 0.0)


def test_trapezoid_converges_to_gauss_legendre():
    model, params, (instance, _) = batch_case(CASES[0])
    exact, _ = integrated(model, params, instance, 50, "gausslegendre")
    coarse, _ = integrated(model, params, instance, 10, "riemann_trapezoid")
    fine, _ = integrated(model, params, instance, 200, "riemann_trapezoid")
    coarse_error, fine_error = (np.abs(np.asarray(s - exact)).max() for s in (coarse, fine))
    assert fine_error < coarse_error / 50  # the trapezoid's error falls as 1/m²


@pytest.mark.parametrize("case", CASES[:2], ids=["lstm", "cnn"])
def test_gradient_times_input_is_the_directional_derivative_along_each_embedding(case):
    model, params, instances = batch_case(case)
    instance = instances[0]
    embedded = embed(model, params, instance)
    target = predicted_class(model, params, instance)
    scores = np.asarray(jax.jit(gradients.grad_input, static_argnums=0)(model, params, instance))
    directions = jnp.eye(12)[:, :, None] * embedded[None, :, :]  # token t's embedding alone

    @jax.jit
    def derivatives(directions):  # forward mode, one direction per token
        along = lambda d: jax.jvp(  # noqa: E731
            lambda e: probability_of(model, params, instance, target, e), (embedded,), (d,)
        )[1]
        return jax.vmap(along)(directions)

    expected = np.where((np.arange(12) >= 1) & (np.arange(12) <= 7), derivatives(directions), 0)
    np.testing.assert_allclose(scores, expected, atol=1e-7)


def test_a_transformers_gradient_explainers_differentiate_its_plain_forward_pass():
    """Every head's rows move with the input: grad × input and IG are the gradients of
    ``models.forward`` itself, not of the audit's decode (which holds the heads' rows)."""
    config = tiny_transformer_config(num_heads=3, num_layers=2)
    params = models.init(jax.random.key(3), config)
    # Larger query, key and embedding weights: sharp heads that disagree (measured: the held
    # rows' gradient × input then differs from the model's by half its size).
    layers, encoder = params["encoder"]["layers"], params["encoder"]
    for name in ("query", "key"):
        layers[name]["weight"] = 8.0 * layers[name]["weight"]
    encoder["embedding"]["weight"] = 10.0 * encoder["embedding"]["weight"]
    model = audits.TransformerModel(config)
    instance = instance_of(tiny_batch((9, 5), width=12, seed=6), 0)
    embedded = embed(model, params, instance)
    target = int(predicted_class(model, params, instance))

    def plain(e):
        logits, _ = models.forward_from_embedded(params, config, e, instance["length"])
        return models.probabilities(logits, config)[target]

    plain_gradient = jax.jit(jax.grad(plain))
    real = (np.arange(12) >= 1) & (np.arange(12) <= 7)
    expected = np.where(real, np.sum(np.asarray(plain_gradient(embedded) * embedded), -1), 0)
    scores = jax.jit(gradients.grad_input, static_argnums=0)(model, params, instance)
    np.testing.assert_allclose(np.asarray(scores), expected, rtol=1e-5, atol=1e-9)
    # The audit's decode holds the heads' rows, so its gradient differs: the test can fail.
    held = np.sum(np.asarray(reference_gradient(model, params, instance, target, embedded)
                             * embedded), -1)  # fmt: skip
    assert np.max(np.abs(np.where(real, held, 0) - expected)) > 0.05 * np.max(np.abs(expected))

    ig, gap = integrated(model, params, instance, 50, "gausslegendre", None)
    masked = perturbation.remove_tokens(instance, jnp.zeros(12, bool), "mask", MASK_ID)
    baseline = embed(model, params, masked)
    alphas, weights = gradients.integration_points("gausslegendre", 50)
    total = sum(w * np.asarray(plain_gradient(baseline + a * (embedded - baseline)))
                for a, w in zip(alphas, weights, strict=True))  # fmt: skip
    expected_ig = np.where(real, np.sum(np.asarray(embedded - baseline) * total, -1), 0)
    np.testing.assert_allclose(np.asarray(ig), expected_ig, rtol=1e-4, atol=1e-8)
    change = jax.jit(plain)(embedded) - jax.jit(plain)(baseline)
    assert float(gap) < 1e-4 * max(abs(float(change)), 1e-3)
