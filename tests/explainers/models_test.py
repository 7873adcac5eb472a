"""The explainers on every kind of model the audits accept: a transformer (with AZ's rollout
and flow of its attention), a QA model (scores over the passage, the question untouched),
and a clear error where a model has no attention maps."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attn_audit import audits, models
from attn_audit.evaluations import az
from attn_audit.explainers import engine
from tests._fixtures import (
    padded_batch,
    tiny_batch,
    tiny_model,
    tiny_transformer_config,
)

SETTINGS = engine.ExplainerSettings(ig_points=20, shapley_permutations=4, kernel_samples=24)
forward = jax.jit(models.forward, static_argnums=1)


def test_a_transformers_attention_rollout_and_flow_are_azs_of_its_forward_pass():
    config = tiny_transformer_config()
    params = models.init(jax.random.key(1), config)
    chosen = ("attention", "attention_rollout", "attention_flow", "occlusion")
    explainer = engine.BatchExplainer(audits.TransformerModel(config), params, chosen, None,
                                      SETTINGS)  # fmt: skip
    batch = padded_batch((6, 9, 4), 12)
    batch["index"][2] = -1  # a padding row
    results = explainer(batch)
    for row in range(2):
        ids, length = jnp.asarray(batch["token_ids"][row]), int(batch["lengths"][row])
        logits, aux = forward(params, config, ids, length)
        maps = aux["attention_maps"]
        relevance = az.layer_relevance(maps, length)
        np.testing.assert_allclose(results["attention_rollout"][row], relevance["rollout"][-1],
                                   atol=1e-6)  # fmt: skip
        flow = az.flow_relevance(np.asarray(maps), length)[-1]
        np.testing.assert_allclose(results["attention_flow"][row], flow, atol=1e-5)
        np.testing.assert_allclose(results["attention"][row], aux["attention"], atol=1e-6)
        probabilities = np.asarray(models.probabilities(logits, config))
        target = int(np.argmax(probabilities))
        for t in range(1, length - 1):  # occlusion: the forward pass with token t masked
            masked, _ = forward(params, config, ids.at[t].set(1), length)
            change = probabilities[target] - models.probabilities(masked, config)[target]
            assert results["occlusion"][row, t] == pytest.approx(float(change), abs=1e-6)
    assert not results["attention_flow"][2].any()


def test_qa_explanations_cover_the_passage_and_leave_the_question():
    model, params = tiny_model("lstm", "tanh", task="qa", num_classes=4)
    explainer = engine.BatchExplainer(model, params, ("occlusion", "shapley_sampling"), None,
                                      SETTINGS)  # fmt: skip
    batch = tiny_batch((7, 5), width=10, questions=True)
    batch["index"] = np.arange(2, dtype=np.int32)
    results = explainer(batch)
    question = (batch["question_ids"][0], batch["question_lengths"][0])

    def forward_probabilities(ids, length, question):
        logits, _ = forward(params, model.config, jnp.asarray(ids), length, *question)
        return np.asarray(models.probabilities(logits, model.config)), None

    for row in range(2):
        ids, length = batch["token_ids"][row], int(batch["lengths"][row])
        full, _ = forward_probabilities(ids, length, question)
        target = int(np.argmax(full))
        for t in range(1, length - 1):
            masked, _ = forward_probabilities(np.where(np.arange(10) == t, 1, ids),
                                              length, question)  # fmt: skip
            assert results["occlusion"][row, t] == pytest.approx(full[target] - masked[target],
                                                                 abs=1e-6)  # fmt: skip
        # Efficiency: the sampled values sum to v(N) − v(∅), ∅ the passage all masked.
        blank = np.where((np.arange(10) >= 1) & (np.arange(10) <= length - 2), 1, ids)
        empty, _ = forward_probabilities(blank, length, question)
        total = results["shapley_sampling"][row].sum()
        assert total == pytest.approx(full[target] - empty[target], abs=1e-6)


def test_rollout_and_flow_need_a_transformer():
    model, params = tiny_model()
    with pytest.raises(ValueError, match=r"\['attention_rollout'\] read every block's attention"):
        engine.BatchExplainer(model, params, ("attention", "attention_rollout"))
