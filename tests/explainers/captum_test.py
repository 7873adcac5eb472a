"""attn_audit.explainers against Captum run on the PyTorch twin with the same exported weights.

Integrated gradients and gradient × input against Captum's layer methods on the twin's
embedding layer, occlusion against ``FeatureAblation``, permutation-sampling Shapley and
KernelSHAP against ``ShapleyValueSampling`` and ``KernelShap`` (statistically, and all
against exact Shapley values). Every explainer explains ``p(ŷ | x)`` with UNK as the mask.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from captum.attr import (
    FeatureAblation,
    KernelShap,
    LayerGradientXActivation,
    LayerIntegratedGradients,
    ShapleyValueSampling,
)
from captum.attr._utils.approximation_methods import approximation_parameters

from attn_audit import explainers, interop
from attn_audit.audits import JWModel
from tests._fixtures import EOS, PAD, SOS, initial_params, padded, tiny_config
from tests.reference import torch_model

UNK = 1
WIDTH = 10
NUM_POINTS = 50
# 5 and 8 real tokens, padded to one width: one compiled program per model and explainer.
SENTENCES = ((5, 9, 4, 17, 11), (12, 7, 19, 6, 8, 15, 4, 10))
# A binary BiLSTM (one sigmoid) and a 3-class CNN (softmax).
MODELS = [("lstm", "tanh", 2), ("cnn", "tanh", 3)]

# Gradients: both sides run float32 and sum in different orders; measured |ours − Captum| is
# at most 4e-9 on scores of 2e-4 … 2e-2 (relative 5.5e-6), so 1e-4 relative plus a 1e-7
# floor for scores near zero. The other rule is 2e-4 … 3e-3 off, another sentence 100%.
RTOL, ATOL = 1e-4, 1e-7
# The completeness gap |Σ IG − (f(x) − f(b))| against Captum's convergence delta: measured
# 6e-8 on gaps of 2e-8 … 2e-4 (the CNN's ReLUs bend the path). With Captum's trapezoid
# weights the gap would be 2% of f(x) − f(b), 5e-4 here.
GAP_ATOL = 5e-7
# Occlusion evaluates the same masked inputs on both sides: float32 rounding only (measured
# 3e-8).
OCCLUSION_ATOL = 2e-6
# Sampled estimates against each other and against exact values, in standard errors (measured
# at most 3.1); Captum's spread, and that of our KernelSHAP, over NUM_SEEDS seeds.
NUM_SIGMAS = 4.0
NUM_SEEDS = 10
EFFICIENCY_ATOL = 3e-6

integrated_gradients = jax.jit(
    explainers.integrated_gradients,
    static_argnames=("model", "mask_token_id", "num_points", "rule"),
)
grad_input = jax.jit(explainers.grad_input, static_argnames="model")
grad_l2 = jax.jit(explainers.grad_l2, static_argnames="model")
occlusion = jax.jit(explainers.occlusion, static_argnames=("model", "mask_token_id"))
shapley_exact = jax.jit(explainers.shapley_exact, static_argnames=("model", "mask_token_id"))
shapley_sampling = jax.jit(
    explainers.shapley_sampling, static_argnames=("model", "mask_token_id", "num_permutations")
)
kernel_shap = jax.jit(
    explainers.kernel_shap, static_argnames=("model", "mask_token_id", "num_samples")
)


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Once XLA has run, ATen's two intra-op threads fight XLA's for the 2 cores: a call of
    the twin takes ~100 ms instead of ~1 ms. One thread keeps Captum's loops fast."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@functools.cache
def model_and_twin(encoder, attention, num_classes):
    """``(JWModel, params, twin)``: the twin loads ``to_torch_state_dict(params)`` (float32)."""
    config = tiny_config(encoder, attention, "classification", num_classes)
    params = initial_params(config)
    twin = torch_model.load_torch_model(interop.to_torch_state_dict(params, config), config)
    return JWModel(config), params, twin


class Case:
    """One sentence on one model, for both sides: the JAX instance, the twin's long tensors
    ``[1, T]`` and ``[1]``, the twin's predicted class ŷ and n."""

    def __init__(self, model_spec, sentence):
        self.model, self.params, self.twin = model_and_twin(*model_spec)
        token_ids, length = padded(sentence, WIDTH)
        self.instance = {"token_ids": jnp.asarray(token_ids), "length": jnp.asarray(length)}
        self.token_ids = torch.as_tensor(token_ids, dtype=torch.long)[None]
        self.lengths = torch.as_tensor([length], dtype=torch.long)
        self.sentence = torch.as_tensor(sentence, dtype=torch.long)[None]
        self.num_real = len(sentence)
        with torch.no_grad():
            self.target = int(self.probabilities(self.token_ids, self.lengths).argmax())

    def probabilities(self, token_ids, lengths):
        """The twin's ``p(· | x)``: ``[B, C]``, the forward function Captum differentiates."""
        return self.twin(token_ids, lengths)[0]

    def probabilities_of_sentence(self, sentence):
        """``[B, n]`` real tokens → ``p(· | [SOS] + tokens + [EOS])`` ``[B, C]``.

        Captum's perturbation methods see only the real tokens, so they never mask SOS/EOS.
        """
        rows, num_real = sentence.shape
        token_ids = torch.full((rows, WIDTH), PAD, dtype=torch.long)
        token_ids[:, 0], token_ids[:, num_real + 1] = SOS, EOS
        token_ids[:, 1 : num_real + 1] = sentence
        return self.probabilities(token_ids, torch.full((rows,), num_real + 2, dtype=torch.long))

    def real(self, scores):
        """``[T]`` → the real tokens' ``[n]`` (positions 1 … n), as float64 numpy."""
        return np.asarray(scores, np.float64)[..., 1 : self.num_real + 1]

    def assert_zero_off_real(self, scores):
        scores = np.asarray(scores)
        assert np.all(scores[0] == 0.0) and np.all(scores[self.num_real + 1 :] == 0.0), scores


@functools.cache
def cases_of(model_spec):
    """The ``SENTENCES`` on one of ``MODELS``, built once per test session."""
    return tuple(Case(model_spec, sentence) for sentence in SENTENCES)


@functools.cache
def exact_shapley(case):
    """Exact Shapley values of the case's real tokens: ``[n]`` float64."""
    phi, done = shapley_exact(case.model, case.params, case.instance, mask_token_id=UNK)
    assert bool(done)
    return case.real(phi)


# ---------------------------------------------------------------- integrated gradients


@pytest.mark.parametrize("rule", explainers.gradients.IG_RULES)
def test_integration_points_are_captums(rule):
    """Nodes equal Captum's ``alphas(50)``; weights its ``step_sizes(50)``, except that
    Captum's trapezoid weights are ``1/m`` (halved at the ends; they sum to (m − 1)/m) for
    nodes ``1/(m − 1)`` apart, and ours ``1/(m − 1)``, the trapezoid rule (they sum to 1)."""
    step_sizes, alphas = approximation_parameters(rule)
    nodes, weights = explainers.integration_points(rule, NUM_POINTS)
    # Captum's trapezoid nodes come from a float32 torch.linspace.
    np.testing.assert_allclose(nodes, alphas(NUM_POINTS), rtol=0, atol=1e-7)
    captum_weights = np.asarray(step_sizes(NUM_POINTS))
    if rule == "riemann_trapezoid":
        captum_weights *= NUM_POINTS / (NUM_POINTS - 1)
    np.testing.assert_allclose(weights, captum_weights, rtol=1e-12, atol=0)
    assert np.sum(weights) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("rule", explainers.gradients.IG_RULES)
@pytest.mark.parametrize("model_spec", MODELS, ids=lambda spec: spec[0])
def test_integrated_gradients_equal_layer_integrated_gradients(model_spec, rule):
    """IG from the all-UNK baseline (SOS, EOS, PAD kept) with 50 points of ``rule`` equals
    Captum's ``LayerIntegratedGradients`` on the twin's embedding, summed over its width."""
    for case in cases_of(model_spec):
        ours, gap = integrated_gradients(
            case.model, case.params, case.instance, mask_token_id=UNK, num_points=NUM_POINTS,
            rule=rule,
        )  # fmt: skip
        baseline = torch.where(case.token_ids > EOS, UNK, case.token_ids)
        layer_ig = LayerIntegratedGradients(case.probabilities, case.twin.encoder.embedding)
        theirs, delta = layer_ig.attribute(
            case.token_ids, baselines=baseline, target=case.target,
            additional_forward_args=(case.lengths,), n_steps=NUM_POINTS, method=rule,
            return_convergence_delta=True,
        )  # fmt: skip
        theirs = theirs.sum(dim=-1)[0].detach().numpy().astype(np.float64)
        # Captum's delta is Σ_t IG_t − (f(x) − f(b)) with its own IG.
        output_change = theirs.sum() - float(delta[0])
        if rule == "riemann_trapezoid":
            theirs *= NUM_POINTS / (NUM_POINTS - 1)  # Captum's weights: see the test above
        case.assert_zero_off_real(ours)
        np.testing.assert_allclose(case.real(ours), case.real(theirs), rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(theirs[case.num_real + 1 :], 0.0, atol=ATOL)
        assert float(gap) == pytest.approx(abs(theirs.sum() - output_change), abs=GAP_ATOL)


# ---------------------------------------------------------------- gradient × input


@pytest.mark.parametrize("model_spec", MODELS, ids=lambda spec: spec[0])
def test_grad_input_equals_layer_gradient_x_activation(model_spec):
    """``Σ_d e_{t,d} ∂f/∂e_{t,d}`` equals Captum's ``LayerGradientXActivation`` on the embedding,
    summed over its width, on the real tokens. Captum also scores SOS and EOS (nonzero
    through the BiLSTM and the convolutions); SPEC §7 never scores them, and ours are 0."""
    for case in cases_of(model_spec):
        ours = grad_input(case.model, case.params, case.instance)
        layer = LayerGradientXActivation(case.probabilities, case.twin.encoder.embedding)
        theirs = layer.attribute(
            case.token_ids, target=case.target, additional_forward_args=(case.lengths,)
        )
        theirs = theirs.sum(dim=-1)[0].detach().numpy()
        case.assert_zero_off_real(ours)
        np.testing.assert_allclose(case.real(ours), case.real(theirs), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("model_spec", MODELS, ids=lambda spec: spec[0])
def test_grad_l2_equals_the_norm_of_captums_layer_gradient(model_spec):
    """``‖∂f/∂e_t‖₂`` (Bastings et al.'s Grad-L2) equals the L2 norm over the embedding width
    of Captum's ``LayerGradientXActivation`` without the inputs (the layer's gradient)."""
    for case in cases_of(model_spec):
        ours = grad_l2(case.model, case.params, case.instance)
        layer = LayerGradientXActivation(
            case.probabilities, case.twin.encoder.embedding, multiply_by_inputs=False
        )
        theirs = layer.attribute(
            case.token_ids, target=case.target, additional_forward_args=(case.lengths,)
        )
        theirs = torch.linalg.vector_norm(theirs, dim=-1)[0].detach().numpy()
        case.assert_zero_off_real(ours)
        np.testing.assert_allclose(case.real(ours), case.real(theirs), rtol=RTOL, atol=ATOL)


# ---------------------------------------------------------------- occlusion


@pytest.mark.parametrize("model_spec", MODELS, ids=lambda spec: spec[0])
def test_occlusion_equals_feature_ablation(model_spec):
    """``p(ŷ | x) − p(ŷ | x with t → UNK)`` equals Captum's ``FeatureAblation`` of the token
    ids with baseline UNK, on the real tokens (Captum also ablates SOS, EOS and PAD)."""
    for case in cases_of(model_spec):
        ours = occlusion(case.model, case.params, case.instance, mask_token_id=UNK)
        theirs = FeatureAblation(case.probabilities).attribute(
            case.token_ids, baselines=UNK, target=case.target,
            additional_forward_args=(case.lengths,),
        )  # fmt: skip
        case.assert_zero_off_real(ours)
        np.testing.assert_allclose(case.real(ours), case.real(theirs[0]), rtol=0,
                                   atol=OCCLUSION_ATOL)  # fmt: skip


# ---------------------------------------------------------------- Shapley values


def captum_runs(explainer, case, **options):
    """``[NUM_SEEDS, n]``: Captum's estimate over the real tokens, one per torch seed."""
    runs = []
    for seed in range(NUM_SEEDS):
        torch.manual_seed(seed)
        attribution = explainer(case.probabilities_of_sentence).attribute(
            case.sentence, baselines=UNK, target=case.target, **options
        )
        runs.append(attribution[0].numpy())
    return np.asarray(runs, np.float64)


def assert_within(estimate, reference, standard_error, what):
    """``|estimate − reference| ≤ NUM_SIGMAS · standard_error``, token by token."""
    distance = np.abs(estimate - reference) / standard_error
    assert np.all(distance <= NUM_SIGMAS), f"{what}: {np.round(distance, 2)} standard errors"


@pytest.mark.parametrize("model_spec", MODELS, ids=lambda spec: spec[0])
def test_shapley_sampling_agrees_with_shapley_value_sampling(model_spec, key):
    """Ours (antithetic pairs, their SE) and Captum's ``ShapleyValueSampling`` (plain random
    orders; its spread measured over torch seeds) at 40 permutations agree, and both sit
    within 4 SE of exact Shapley values; at 400 ours does too, with a smaller SE."""
    few, many = 40, 400
    for case in cases_of(model_spec):
        exact = exact_shapley(case)
        key, few_key, many_key = jax.random.split(key, 3)
        phi, error = shapley_sampling(
            case.model, case.params, case.instance, few_key, mask_token_id=UNK,
            num_permutations=few,
        )  # fmt: skip
        phi, error = case.real(phi), case.real(error)
        runs = captum_runs(
            ShapleyValueSampling, case, n_samples=few, perturbations_per_eval=case.num_real
        )
        captum, captum_error = runs.mean(axis=0), runs.std(axis=0, ddof=1) / np.sqrt(NUM_SEEDS)
        assert_within(phi, captum, np.hypot(error, captum_error), "ours − Captum")
        assert_within(phi, exact, error, f"ours ({few}) − exact")
        assert_within(captum, exact, captum_error, f"Captum ({few}) − exact")

        phi, many_error = shapley_sampling(
            case.model, case.params, case.instance, many_key, mask_token_id=UNK,
            num_permutations=many,
        )  # fmt: skip
        phi, many_error = case.real(phi), case.real(many_error)
        assert_within(phi, exact, many_error, f"ours ({many}) − exact")
        assert np.all(many_error < error)


def kernel_shap_runs(case, key, num_samples):
    """``[NUM_SEEDS, n]``: our KernelSHAP over the real tokens, one per key."""
    keys = jax.random.split(key, NUM_SEEDS)
    return np.stack([
        case.real(kernel_shap(case.model, case.params, case.instance, run_key, mask_token_id=UNK,
                              num_samples=num_samples))
        for run_key in keys
    ])  # fmt: skip


@pytest.mark.parametrize("model_spec", MODELS, ids=lambda spec: spec[0])
def test_kernel_shap_agrees_with_captum_kernel_shap(model_spec, key):
    """Ours and Captum's ``KernelShap`` at 200 sampled coalitions agree within their spreads
    (both measured over seeds) and are efficient; at 10,000 ours is near exact values.

    Both draw a coalition's size with probability ∝ 1/(s (n − s)), then its members
    uniformly, and give each draw weight 1. Ours solves the least squares under
    ``Σ φ = v(N) − v(∅)``; Captum fits an unconstrained regression with an intercept, the
    full and the empty coalition weighted 10⁶ so that the constraint nearly holds. Captum's
    ``n_samples`` counts those two coalitions; ours evaluates them besides ``num_samples``.
    """
    few, many = 200, 10_000
    for case in cases_of(model_spec):
        exact = exact_shapley(case)
        key, few_key, many_key = jax.random.split(key, 3)
        ours = kernel_shap_runs(case, few_key, few)
        runs = captum_runs(KernelShap, case, n_samples=few + 2, perturbations_per_eval=64)
        ours_error = ours.std(axis=0, ddof=1) / np.sqrt(NUM_SEEDS)
        captum_error = runs.std(axis=0, ddof=1) / np.sqrt(NUM_SEEDS)
        assert_within(ours.mean(axis=0), runs.mean(axis=0), np.hypot(ours_error, captum_error),
                      "ours − Captum")  # fmt: skip
        # Efficiency: ours by its constraint, Captum's by the 10⁶ weights; float32 least squares
        # on both sides, measured 1.1e-6 off.
        np.testing.assert_allclose(ours.sum(axis=1), exact.sum(), rtol=0, atol=EFFICIENCY_ATOL)
        np.testing.assert_allclose(runs.sum(axis=1), exact.sum(), rtol=0, atol=EFFICIENCY_ATOL)

        # KernelSHAP's solution is a ratio of sampled moments, biased at O(1/m): at 200 its runs
        # are compared with exact values by their largest error only. At 10,000 the bias is
        # below the mean's SE, and a wrong size distribution (uniform: 3–8 SE) shows.
        many_runs = kernel_shap_runs(case, many_key, many)
        many_error = many_runs.std(axis=0, ddof=1) / np.sqrt(NUM_SEEDS)
        assert_within(many_runs.mean(axis=0), exact, many_error, f"ours ({many}) − exact")
        largest_few, largest_many = np.abs(ours - exact).max(), np.abs(many_runs - exact).max()
        assert largest_many < 0.5 * largest_few  # √(10,000/200) ≈ 7
        assert largest_many < 0.05 * np.abs(exact).max()
