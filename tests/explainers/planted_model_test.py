"""A hand-built model that uses only a planted marker (SPEC §9): what each explainer must
give, derived by hand.

The model is JW's Average encoder with hand-set weights. Every embedding is 0 but the two
markers' (A1 = ``c·e₀``, A0 = ``−c·e₀``); ``h_t = tanh(e_t)``; attention scores
``a_t = s·tanh(h_{t,0} + b)``; the logit is ``Σ_t α_t h_{t,0} = α_m tanh(±c)`` and
``p(1) = σ(logit)``. The mask token's embedding is 0 too, so masking a non-marker token
changes nothing: every non-marker is a null player, and

- exact Shapley gives 0 to every non-marker and ``p(ŷ|x) − p(ŷ|all masked) = p(ŷ|x) − ½``
  (efficiency) to the marker;
- occlusion gives 0 to every non-marker and ``p(ŷ|x) − ½`` to the marker;
- integrated gradients (mask baseline) gives 0 to every non-marker (``e_t − b_t = 0``) and,
  by completeness, ``p(ŷ|x) − ½`` to the marker;
- attention gives the marker ``α_m = e^{a_m} / (e^{a_m} + (n − 1) e^{a_0})`` over the
  ``n`` real tokens (SOS and EOS are not attended), ``a_0 = s·tanh(b)``;
- the plain gradient is *not* zero off the marker: ``∂logit/∂e_{t,0} = α_t(1 − logit·s·
  (1 − tanh² b))`` for a non-marker t (moving a non-marker's embedding would change the
  output, though the model never does), so gradient saliency spreads mass the model does
  not use.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attn_audit import models
from attn_audit.audits import JWModel
from attn_audit.explainers import gradients, shapley
from attn_audit.explainers.occlusion import occlusion
from attn_audit.faithfulness.plausibility import plausibility
from tests._fixtures import padded

VOCAB, MASK_ID, A0, A1 = 12, 1, 6, 7
C, S, B = 2.0, 3.0, 0.5


def marker_model():
    config = models.ModelConfig(
        vocab_size=VOCAB, num_classes=2, encoder="average", attention="tanh",
        task="classification", embed_dim=2, hidden_size=2,
    )  # fmt: skip
    embedding = np.zeros((VOCAB, 2), np.float32)
    embedding[A1, 0], embedding[A0, 0] = C, -C
    params = {
        "encoder": {"embedding": {"weight": jnp.asarray(embedding)},
                    "projection": {"weight": jnp.eye(2), "bias": jnp.zeros(2)}},
        "attention": {"attn1": {"weight": jnp.asarray([[1.0, 0.0]]), "bias": jnp.asarray([B])},
                      "attn2": {"weight": jnp.asarray([[S]])}},
        "decoder": {"linear_1": {"weight": jnp.asarray([[1.0, 0.0]]), "bias": jnp.zeros(1)}},
    }  # fmt: skip
    reference = models.init(jax.random.key(0), config)
    assert jax.tree.map(jnp.shape, params) == jax.tree.map(jnp.shape, reference)
    return JWModel(config), params


@functools.partial(jax.jit, static_argnums=0)
def explanations(model, params, instance):
    phi, done = shapley.shapley_exact(model, params, instance, MASK_ID, "mask", 10)
    ig, gap = gradients.integrated_gradients(model, params, instance, MASK_ID, 64)
    return {
        "shapley": phi, "done": done, "ig": ig, "gap": gap,
        "occlusion": occlusion(model, params, instance, MASK_ID, "mask"),
        "grad_l2": gradients.grad_l2(model, params, instance),
    }  # fmt: skip


@pytest.mark.parametrize(("marker", "position"), [(A1, 3), (A0, 1), (A1, 7)])
def test_explainers_on_a_model_that_uses_only_the_marker(marker, position):
    model, params = marker_model()
    real = [4, 5, 8, 9, 10, 11, 4]
    real.insert(position - 1, marker)  # real token j sits at position j + 1
    ids, length = padded(real, 12)
    instance = {"token_ids": jnp.asarray(ids), "length": jnp.asarray(length)}
    logits, aux = models.forward(params, model.config, instance["token_ids"], length)
    p1 = float(models.probabilities(logits, model.config)[1])
    predicted = 1 if marker == A1 else 0
    p_hat = p1 if predicted else 1 - p1
    assert p_hat > 0.5

    # attention by hand: n real tokens, the marker's score against everyone else's
    attended = int(length) - 2
    a_marker, a_other = S * np.tanh(np.tanh(C if marker == A1 else -C) + B), S * np.tanh(B)
    alpha = np.exp(a_marker) / (np.exp(a_marker) + (attended - 1) * np.exp(a_other))
    attention = np.asarray(aux["attention"])
    assert attention[position] == pytest.approx(alpha, rel=1e-5)
    assert p1 == pytest.approx(1 / (1 + np.exp(-alpha * np.tanh(C if marker == A1 else -C))),
                               rel=1e-5)  # fmt: skip

    got = jax.device_get(explanations(model, params, instance))
    off_marker = np.ones(12, bool)
    off_marker[position] = False
    assert bool(got["done"])
    for name in ("shapley", "occlusion", "ig"):
        # 0 up to float32 rounding of p (two ulps at p ≈ 0.6)
        np.testing.assert_allclose(got[name][off_marker], 0.0, atol=2.5e-7, err_msg=name)
        assert got[name][position] == pytest.approx(p_hat - 0.5, abs=2e-6), name

    # the plain gradient is not zero where the model does not look
    logit = alpha * np.tanh(C if marker == A1 else -C)
    sign = 1.0 if predicted else -1.0  # ∂(1 − p1)/∂e = −∂p1/∂e
    dp_dlogit = p1 * (1 - p1)
    for t in range(1, attended + 1):
        if t == position:
            continue
        alpha_t = (1 - alpha) / (attended - 1)
        expected = abs(sign * dp_dlogit * alpha_t * (1 - logit * S * (1 - np.tanh(B) ** 2)))
        assert got["grad_l2"][t] == pytest.approx(expected, rel=1e-4), t

    # plausibility: the exact explainers find the marker, exactly, with all their mass
    evidence = np.zeros(12, np.int32)
    evidence[position] = 1
    for name in ("shapley", "occlusion", "ig"):
        scores = plausibility(jnp.asarray(got[name]), jnp.asarray(evidence), length)
        assert float(scores["exact_top_k"]) == 1.0 and float(scores["auprc"]) == 1.0, name
        # all but float32 rounding (checked token by token above)
        assert float(scores["evidence_mass"]) == pytest.approx(1.0, abs=1e-3), name
    gradient_scores = plausibility(jnp.asarray(got["grad_l2"]), jnp.asarray(evidence), length)
    assert float(gradient_scores["evidence_mass"]) < 0.9
