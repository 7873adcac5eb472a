"""attn_audit.explainers.shapley: exact Shapley values equal a brute-force loop over coalitions
and satisfy the axioms; KernelSHAP over every coalition is exact Shapley; sampled Shapley is
efficient per order and converges to exact within its standard errors."""

import functools
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attn_audit.explainers import lime_text, perturbation, shapley
from tests._fixtures import instance_of, tiny_batch, tiny_model

MASK_ID = 1
WIDTH = 10  # 8 player slots


@functools.partial(jax.jit, static_argnums=(0, 3, 4))
def exact(model, params, instance, removal="mask", max_players=shapley.MAX_EXACT_PLAYERS):
    return shapley.shapley_exact(model, params, instance, MASK_ID, removal, max_players)


@functools.partial(jax.jit, static_argnums=(0, 4))
def sampled(model, params, instance, key, num_permutations):
    return shapley.shapley_sampling(model, params, instance, key, MASK_ID, num_permutations)


@functools.partial(jax.jit, static_argnums=(0, 4))
def kernel(model, params, instance, key, num_samples):
    return shapley.kernel_shap(model, params, instance, key, MASK_ID, num_samples)


# Jitted: run eagerly, the vmapped scans cost seconds per call.
coalition_values = jax.jit(perturbation.coalition_values, static_argnums=(0, 5, 6))
predicted_class = jax.jit(perturbation.predicted_class, static_argnums=0)


def game(model, params, instance, removal="mask"):
    """``v(S)`` for every subset S of the n real tokens (players 0 … n − 1), by itertools."""
    n = int(instance["length"]) - 2
    num_positions = instance["token_ids"].shape[0]
    subsets = [s for size in range(n + 1) for s in itertools.combinations(range(n), size)]
    keeps = np.ones((len(subsets), num_positions), bool)
    for row, subset in enumerate(subsets):
        keeps[row, 1 : n + 1] = [p in subset for p in range(n)]
    target = predicted_class(model, params, instance)
    values = coalition_values(model, params, instance, jnp.asarray(keeps), target, removal, MASK_ID)
    return n, dict(zip(subsets, np.asarray(values, np.float64), strict=True))


def brute_force(n, v):
    """``φ_t = Σ_{S ⊆ N∖{t}} |S|! (n − |S| − 1)! / n! [v(S ∪ t) − v(S)]``, term by term."""
    phi = np.zeros(n)
    for t in range(n):
        for subset, value in v.items():
            if t not in subset:
                weight = math.factorial(len(subset)) * math.factorial(n - len(subset) - 1)
                phi[t] += weight / math.factorial(n) * (v[tuple(sorted(subset + (t,)))] - value)
    return phi


@pytest.mark.parametrize(
    ("encoder", "removal", "length"),
    [("lstm", "mask", 8), ("cnn", "delete", 7), ("average", "mask", 3)],
)
def test_exact_shapley_equals_the_brute_force_loop(encoder, removal, length):
    model, params = tiny_model(encoder, "tanh")
    instance = instance_of(tiny_batch((length,), width=WIDTH, seed=length), 0)
    n, v = game(model, params, instance, removal)
    phi, done = exact(model, params, instance, removal)
    assert bool(done)
    # float32 sums of 2^n terms against float64 ones: about 1 ulp of the values (~0.5).
    np.testing.assert_allclose(np.asarray(phi)[1 : n + 1], brute_force(n, v), atol=1e-6)
    assert (np.asarray(phi)[n + 1 :] == 0).all() and phi[0] == 0
    assert np.asarray(phi).sum() == pytest.approx(v[tuple(range(n))] - v[()], abs=1e-6)


def test_exact_shapley_refuses_an_instance_over_the_player_limit():
    model, params = tiny_model()
    instance = instance_of(tiny_batch((9,), width=WIDTH), 0)
    phi, done = exact(model, params, instance, "mask", 6)  # 7 real tokens
    assert not bool(done) and np.isnan(np.asarray(phi)).all()


def axiom_instance(token_ids):
    ids = np.zeros(WIDTH, np.int32)
    ids[: len(token_ids) + 2] = [2, *token_ids, 3]
    return {"token_ids": jnp.asarray(ids), "length": jnp.asarray(len(token_ids) + 2, jnp.int32)}


def test_symmetry_and_dummy_on_an_order_free_model():
    """The Average encoder ignores word order, so two equal words are symmetric players; a word
    that already is the mask token is a dummy player (masking it changes nothing)."""
    model, params = tiny_model("average", "tanh")
    instance = axiom_instance([5, 9, 5, MASK_ID, 12])
    phi = np.asarray(exact(model, params, instance)[0])[1:6]
    assert phi[0] == pytest.approx(phi[2], abs=1e-7) and abs(phi[0] - phi[1]) > 1e-4
    assert phi[3] == pytest.approx(0.0, abs=1e-7)
    sampled_phi, error = map(np.asarray, sampled(model, params, instance, jax.random.key(0), 8))
    assert sampled_phi[4] == 0.0 and error[4] == 0.0  # its marginal gain is 0 in every order
    kernel_phi = np.asarray(kernel(model, params, instance, jax.random.key(0), 400))[1:6]
    assert abs(kernel_phi[3]) < 0.1 * np.abs(phi).max()


def test_kernel_shap_over_every_coalition_is_exact_shapley():
    model, params = tiny_model("lstm", "dot")
    instance = instance_of(tiny_batch((9,), width=WIDTH, seed=2), 0)
    n, v = game(model, params, instance)
    bits = shapley.coalition_bits(n)
    inner = bits[1:-1]  # neither empty nor full
    values = jnp.asarray([v[tuple(np.flatnonzero(b))] for b in inner], jnp.float32)
    weights = shapley.shapley_kernel_weights(inner.sum(axis=1), n)
    phi = shapley.kernel_shap_solution(
        jnp.asarray(inner), values, weights, v[tuple(range(n))], v[()], n
    )
    np.testing.assert_allclose(np.asarray(phi), brute_force(n, v), atol=1e-6)


def test_kernel_weights_are_the_shapley_kernel():
    n = 7
    for size in range(1, n):
        expected = (n - 1) / (math.comb(n, size) * size * (n - size))
        assert float(shapley.shapley_kernel_weights(size, n)) == pytest.approx(expected, rel=1e-5)
    assert float(shapley.shapley_kernel_weights(0, n)) == 0.0
    assert float(shapley.shapley_kernel_weights(n, n)) == 0.0


def test_sampled_shapley_is_efficient_and_converges_to_exact():
    model, params = tiny_model("lstm", "tanh")
    instance = instance_of(tiny_batch((9,), width=WIDTH, seed=7), 0)
    n, v = game(model, params, instance)
    truth = brute_force(n, v)
    errors = {}
    for m in (8, 400):
        phi, error = map(np.asarray, sampled(model, params, instance, jax.random.key(1), m))
        # Every order's gains telescope to v(N) − v(∅), so their mean does too.
        assert phi.sum() == pytest.approx(v[tuple(range(n))] - v[()], abs=1e-6)
        errors[m] = np.abs(phi[1 : n + 1] - truth).max()
        assert (np.abs(phi[1 : n + 1] - truth) <= 4 * error[1 : n + 1] + 1e-7).all()
    assert errors[400] < errors[8]


def test_kernel_shap_is_efficient_and_converges_to_exact():
    model, params = tiny_model("cnn", "tanh")
    instance = instance_of(tiny_batch((8,), width=WIDTH, seed=8), 0)
    n, v = game(model, params, instance)
    truth = brute_force(n, v)
    errors = []
    for samples in (50, 3000):
        phi = np.asarray(kernel(model, params, instance, jax.random.key(2), samples))
        assert phi.sum() == pytest.approx(v[tuple(range(n))] - v[()], abs=1e-6)
        errors.append(np.abs(phi[1 : n + 1] - truth).max())
    assert errors[1] < errors[0] and errors[1] < 0.1 * np.abs(truth).max()


# ------------------------------------------------------------------ whole batches


def whole_batch_case(encoder):
    """A BiLSTM/CNN batch with rows of 1, 2, 5 and 7 real tokens and a padding row."""
    model, params = tiny_model(encoder, "tanh", num_classes=3)
    batch = tiny_batch((3, 4, 7, 9), width=12)
    batch["token_ids"] = np.concatenate([batch["token_ids"], np.zeros((1, 12), np.int32)])
    batch["lengths"] = np.concatenate([batch["lengths"], [0]]).astype(np.int32)
    instances = {
        "token_ids": jnp.asarray(batch["token_ids"]),
        "length": jnp.asarray(batch["lengths"]),
    }
    return model, params, batch, instances


@pytest.mark.parametrize("removal", ["mask", "delete"])
@pytest.mark.parametrize("encoder", ["lstm", "cnn"])
def test_sampled_and_exact_shapley_of_a_batch_equal_each_row_alone(encoder, removal):
    model, params, batch, instances = whole_batch_case(encoder)
    keys = jax.random.split(jax.random.key(5), 5)
    of_batch = jax.jit(shapley.shapley_sampling_of_batch, static_argnums=(0, 4, 5, 6, 7))
    phi, error = of_batch(model, params, instances, keys, MASK_ID, 6, removal, 7)
    exact_of_batch = jax.jit(shapley.shapley_exact_of_batch, static_argnums=(0, 3, 4, 5, 6))
    exact_phi, done = exact_of_batch(model, params, instances, MASK_ID, removal, 5, 9)
    np.testing.assert_array_equal(done, [True, True, True, False, True])
    for row in range(4):  # the padding row has nothing to explain: all zeros
        instance = instance_of(batch, row)
        alone, alone_error = sampled_with(model, params, instance, keys[row], 6, removal)
        np.testing.assert_allclose(phi[row], alone, atol=1e-6)
        np.testing.assert_allclose(error[row], alone_error, atol=1e-6)
        alone_exact, _ = exact(model, params, instance, removal, max_players=5)
        np.testing.assert_allclose(exact_phi[row], alone_exact, atol=1e-6, equal_nan=True)
    np.testing.assert_array_equal(phi[4], 0.0)
    np.testing.assert_array_equal(exact_phi[4], 0.0)


@pytest.mark.parametrize("removal", ["mask", "delete"])
@pytest.mark.parametrize("encoder", ["lstm", "cnn"])
def test_kernel_shap_and_lime_of_a_batch_equal_each_row_alone(encoder, removal):
    """Whole-batch KernelSHAP and LIME: the same per-row draws, only the real rows' coalitions
    run (in steps of 7 spanning rows); each row as its per-instance explainer gives it."""
    model, params, batch, instances = whole_batch_case(encoder)
    keys = jax.random.split(jax.random.key(6), 5)
    kernel_of_batch = jax.jit(shapley.kernel_shap_of_batch, static_argnums=(0, 4, 5, 6, 7))
    kernel_phi = kernel_of_batch(model, params, instances, keys, MASK_ID, 40, removal, 7)
    lime_of_batch = jax.jit(lime_text.lime_of_batch, static_argnums=(0, 4, 5, 6, 7))
    lime_scores = lime_of_batch(model, params, instances, keys, MASK_ID, 60, removal, 7)
    kernel_alone = jax.jit(shapley.kernel_shap, static_argnums=(0, 4, 5, 6))
    lime_alone = jax.jit(lime_text.lime, static_argnums=(0, 4, 5, 6))
    for row in range(4):
        instance = instance_of(batch, row)
        np.testing.assert_allclose(
            kernel_phi[row],
            kernel_alone(model, params, instance, keys[row], MASK_ID, 40, removal),
            atol=1e-6,
        )
        np.testing.assert_allclose(
            lime_scores[row],
            lime_alone(model, params, instance, keys[row], MASK_ID, 60, removal),
            atol=1e-5,  # a ridge solve on values that differ by rounding (another batch shape)
        )
    np.testing.assert_array_equal(kernel_phi[4], 0.0)
    np.testing.assert_array_equal(lime_scores[4], 0.0)


@functools.partial(jax.jit, static_argnums=(0, 4, 5))
def sampled_with(model, params, instance, key, num_permutations, removal):
    return shapley.shapley_sampling(
        model, params, instance, key, MASK_ID, num_permutations, removal
    )
