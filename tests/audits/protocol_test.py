"""attn_audit.audits.protocol: a hand-written AuditableModel audited by hand, and JWModel's
deletion shortcut and projected decoding."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attn_audit import audits, models
from tests._fixtures import CASES, instance_of, tiny_batch, tiny_model


@dataclasses.dataclass(frozen=True)
class TwoTokenModel:
    """A hand-computable model: e_t = [t-th weight], h = e, scores (0, 1), ŷ = σ(w·Σ α h)."""

    def embed(self, params, instance):
        return params["vectors"][instance["token_ids"]]

    def encode(self, params, instance, embedded):
        return embedded

    def attention(self, params, instance, states):
        mask = models.real_token_mask(instance["length"], states.shape[0])
        return models.masked_softmax(params["scores"][instance["token_ids"]], mask)

    def decode(self, params, instance, states, alpha):
        positive = jax.nn.sigmoid(params["w"] * jnp.sum(alpha * states[:, 0]))
        return jnp.stack([1 - positive, positive])


def test_hand_computable_two_token_case():
    # ids: PAD 0, UNK 1, SOS 2, EOS 3, word a = 4 (h = 1, score 0), word b = 5 (h = 2, score 1).
    params = {
        "vectors": jnp.asarray([[0.0], [0.0], [0.0], [0.0], [1.0], [2.0]]),
        "scores": jnp.asarray([0.0, 0.0, 0.0, 0.0, 0.0, 1.0]),
        "w": jnp.asarray(1.0),
    }
    instance = {"token_ids": jnp.asarray([2, 4, 5, 3, 0]), "length": jnp.asarray(4)}
    model = TwoTokenModel()
    e = math.e
    alpha = np.asarray([0, 1, e, 0, 0]) / (1 + e)
    z = (1 + 2 * e) / (1 + e)
    sigma = 1 / (1 + math.exp(-z))
    *_, alpha_jax, probabilities = audits.protocol.original_pass(model, params, instance)
    np.testing.assert_allclose(alpha_jax, alpha, atol=1e-7)
    np.testing.assert_allclose(probabilities, [1 - sigma, sigma], atol=1e-7)
    # Gradient (α fixed): ∂σ/∂e_t = σ(1−σ)·α_t, so importance ∝ α_t·e_t = (1, 2e)/(1+e).
    gradient = np.asarray(audits.gradient_importance(model, params, instance))
    np.testing.assert_allclose(gradient, np.asarray([0, 1, 2 * e, 0, 0]) / (1 + 2 * e), atol=1e-6)
    # LOO: without a, ŷ = σ(2); without b, ŷ = σ(1).
    loo = np.asarray(audits.leave_one_out(model, params, instance))
    s1, s2 = 1 / (1 + math.exp(-1)), 1 / (1 + math.exp(-2))
    np.testing.assert_allclose(loo, [0, abs(s2 - sigma), abs(s1 - sigma), 0, 0], atol=1e-6)
    # Both permutations of two tokens: identity (TVD 0) or the swap.
    swapped = 1 / (1 + math.exp(-(e + 2) / (1 + e)))
    tvds = np.asarray(audits.permutation_tvds(model, params, instance, jax.random.key(0), 50))
    assert set(np.round(tvds.astype(float), 6)) <= {0.0, round(abs(swapped - sigma), 6)}


@pytest.mark.parametrize(
    "encoder, task", [("lstm", "classification"), ("average", "qa"), ("cnn", "classification"),
                      ("cnn", "qa")]
)  # fmt: skip
def test_deletion_shortcut_equals_re_encoding_the_deleted_sequence(encoder, task):
    model, params = tiny_model(encoder, "tanh", task, 2 if task == "classification" else 3)
    batch = tiny_batch(questions=task == "qa")
    for row, length in enumerate(batch["lengths"]):
        instance = instance_of(batch, row)
        embedded = model.embed(params, instance)
        states = model.encode(params, instance, embedded)
        states_without_pair = model.deletion_states(params, instance, embedded, states)
        for position in range(length):  # SOS and EOS included
            got = states_without_pair(jnp.asarray(position))
            for member, deleted in enumerate([position, length - 1 - position]):
                variant = dict(instance)
                variant["token_ids"] = audits.delete_position(instance["token_ids"], deleted)
                variant["length"] = length - 1
                expected = model.encode(params, variant, model.embed(params, variant))
                for key in ("keys", "projected"):
                    np.testing.assert_allclose(
                        got[key][member], expected[key], atol=1e-6, err_msg=f"{key} {deleted}"
                    )


@pytest.mark.parametrize("encoder, attention, task, num_classes", CASES)
def test_decoding_through_projections_equals_the_plain_decoder(
    encoder, attention, task, num_classes
):
    model, params = tiny_model(encoder, attention, task, num_classes)
    instance = instance_of(tiny_batch(questions=task == "qa"), 2)
    states = model.encode(params, instance, model.embed(params, instance))
    alpha = jax.random.dirichlet(jax.random.key(3), jnp.ones(12))
    plain = models.decode(params, model.config, states["states"], alpha, states["question"])
    expected = models.probabilities(plain, model.config)
    np.testing.assert_allclose(model.decode(params, instance, states, alpha), expected, atol=1e-6)
