"""attn_audit.faithfulness.{ranking,eraser,flip}: ERASER's curves and the decision flips equal a
plain loop of SPEC §8's formulas (Python lists, ``models.forward``), and a hand-built model
whose evidence is one known word gets the values the formulas predict."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attn_audit import models
from attn_audit.data.vocab import UNK
from attn_audit.faithfulness import decision_flip, eraser, ranking
from attn_audit.faithfulness.eraser import eraser_of_batch
from attn_audit.faithfulness.flip import decision_flip_of_batch
from tests._fixtures import forward_probabilities, instance_of, tiny_batch, tiny_model

one_eraser = jax.jit(eraser, static_argnums=(0, 4, 5, 6, 7))
one_flip = jax.jit(decision_flip, static_argnums=(0, 4, 5, 6))


def reference_order(scores):
    """Real tokens by score, highest first, ties by position (SPEC §8)."""
    return sorted(range(len(scores)), key=lambda t: (-scores[t], t))


def reference_probability(model, params, tokens, width):
    ids = np.zeros(width, np.int32)
    ids[: len(tokens) + 2] = [2, *tokens, 3]
    return forward_probabilities(model, params, ids, len(tokens) + 2)[0]


def reference_eraser(model, params, tokens, scores, removal, width):
    """``(comp [K], suff [K])`` by the formulas, one variant sentence at a time."""
    full = reference_probability(model, params, tokens, width)
    target = int(np.argmax(full))
    order, n = reference_order(scores), len(tokens)
    comp, suff = [], []
    for percent in ranking.PERCENTS:
        top = set(order[: max(1, math.ceil(percent * n / 100))])
        removed_variant, kept_variant = [], []
        for t, token in enumerate(tokens):
            (kept_variant if t in top else removed_variant).append(token)
            if removal == "mask":
                (removed_variant if t in top else kept_variant).append(UNK)
        for curve, variant in ((comp, removed_variant), (suff, kept_variant)):
            probabilities = reference_probability(model, params, variant, width)
            curve.append(full[target] - probabilities[target])
    return np.asarray(comp), np.asarray(suff)


def reference_flip(model, params, tokens, scores, removal, width):
    full = reference_probability(model, params, tokens, width)
    order, n = reference_order(scores), len(tokens)
    for removed in range(1, n + 1):
        gone = set(order[:removed])
        variant = [UNK if t in gone else token for t, token in enumerate(tokens)
                   if removal == "mask" or t not in gone]  # fmt: skip
        if np.argmax(reference_probability(model, params, variant, width)) != np.argmax(full):
            return removed / n, True, removed == 1
    return 1.0, False, False


def positioned(scores_by_explainer, width):
    out = np.zeros((len(scores_by_explainer), width), np.float32)
    for row, scores in enumerate(scores_by_explainer):
        out[row, 1 : 1 + len(scores)] = scores
    return jnp.asarray(out)


def test_top_count_is_exact_ceiling_and_ranks_break_ties_by_position():
    n = np.arange(1, 400)
    for percent in ranking.PERCENTS:
        expected = [max(1, math.ceil(percent * int(m) / 100)) for m in n]
        np.testing.assert_array_equal(np.asarray(ranking.top_count(n, percent)), expected)
    scores = jnp.asarray([9.0, 0.5, 2.0, 0.5, 2.0, 7.0, 0.0])  # 5 real tokens at 1 … 5
    np.testing.assert_array_equal(ranking.token_ranks(scores, 7), [7, 3, 1, 4, 2, 0, 7])


@pytest.mark.parametrize("encoder,removal", [("lstm", "delete"), ("lstm", "mask"),
                                              ("cnn", "delete")])  # fmt: skip
def test_eraser_and_flips_equal_the_formulas_on_each_instance(encoder, removal):
    model, params = tiny_model(encoder, "tanh", num_classes=2, seed=1)
    width = 14
    batch = tiny_batch((12, 5, 9), width=width, seed=7)
    rng = np.random.default_rng(0)
    for row in range(3):
        instance = instance_of(batch, row)
        tokens = [int(t) for t in batch["token_ids"][row, 1 : batch["lengths"][row] - 1]]
        n = len(tokens)
        explainers = [rng.normal(size=n), rng.integers(0, 3, size=n).astype(float)]  # ties too
        scores = positioned(explainers, width)
        curves = one_eraser(model, params, instance, scores, UNK, (removal,),
                            ranking.PERCENTS, 3)  # fmt: skip
        flips = one_flip(model, params, instance, scores, removal, UNK, 5)
        for column, explainer_scores in enumerate(explainers):
            comp, suff = reference_eraser(model, params, tokens, explainer_scores, removal, width)
            np.testing.assert_allclose(curves["comprehensiveness"][0, column], comp, atol=2e-6)
            np.testing.assert_allclose(curves["sufficiency"][0, column], suff, atol=2e-6)
            fraction, flipped, top1 = reference_flip(
                model, params, tokens, explainer_scores, removal, width
            )
            assert float(flips["flip_fraction"][column]) == pytest.approx(fraction, abs=1e-7)
            assert bool(flips["flipped"][column]) == flipped
            assert bool(flips["top1_flip"][column]) == top1


def context(model, params, tokens, width):
    ids = np.zeros(width, np.int32)
    ids[: len(tokens) + 2] = [2, *tokens, 3]
    _, aux = models.forward(params, model.config, jnp.asarray(ids), len(tokens) + 2)
    return np.asarray(aux["context"])


def evidence_model(tokens, evidence_id, width):
    """An Average model where every word but ``evidence_id`` (UNK included) embeds to zero,
    so they are interchangeable; its output layer is set so that ``tokens`` get logit +2 and
    ``tokens`` without the evidence word −2 (the decision rests on that word alone)."""
    model, params = tiny_model("average", "tanh", num_classes=2, seed=2)
    embedding = np.zeros_like(params["encoder"]["embedding"]["weight"])
    embedding[evidence_id] = 3.0 * np.random.default_rng(0).normal(size=embedding.shape[1])
    params["encoder"]["embedding"]["weight"] = jnp.asarray(embedding)
    with_word = context(model, params, tokens, width)
    without = context(model, params, [UNK if t == evidence_id else t for t in tokens], width)
    weight = 4.0 * (with_word - without) / np.sum(np.square(with_word - without))
    params["decoder"]["linear_1"] = {
        "weight": jnp.asarray(weight[None, :], jnp.float32),
        "bias": jnp.asarray([-2.0 - weight @ without], jnp.float32),
    }
    return model, params


def test_a_model_with_one_known_evidence_word():
    tokens = [5, 8, 7, 9, 6, 10, 11, 12, 13, 14]  # the evidence word 7 at token 3
    width, n = 12, 10
    model, params = evidence_model(tokens, 7, width)
    ids = np.zeros((1, width), np.int32)
    ids[0, : n + 2] = [2, *tokens, 3]
    instance = instance_of({"token_ids": ids, "lengths": np.asarray([n + 2], np.int32)}, 0)
    oracle = np.arange(n, 0, -1.0) / 100
    oracle[2] = 1.0  # the evidence first
    anti = -oracle  # the evidence last
    scores = positioned([oracle, anti], width)
    full = reference_probability(model, params, tokens, width)
    target = int(np.argmax(full))
    all_unknown = reference_probability(model, params, [UNK] * n, width)
    unchanged_without = full[target] - all_unknown[target]
    curves = one_eraser(model, params, instance, scores, UNK, ("mask",), ranking.PERCENTS, None)
    comp, suff = curves["comprehensiveness"][0], curves["sufficiency"][0]
    # Masking: every other word is UNK already as far as the model sees.
    np.testing.assert_allclose(comp[0], unchanged_without, atol=1e-6)  # the oracle: all of it
    np.testing.assert_allclose(suff[0], 0.0, atol=1e-6)  # the evidence alone suffices
    np.testing.assert_allclose(comp[1, :4], 0.0, atol=1e-6)  # r_k without the evidence: nothing
    np.testing.assert_allclose(comp[1, 4], 0.0, atol=1e-6)  # 50%: still 5 of the 9 others
    np.testing.assert_allclose(suff[1], unchanged_without, atol=1e-6)
    np.testing.assert_allclose(full, [1 / (1 + np.exp(2)), 1 / (1 + np.exp(-2))], atol=1e-6)
    np.testing.assert_allclose(unchanged_without, np.tanh(1.0), atol=1e-6)  # σ(2) − σ(−2)
    flips = one_flip(model, params, instance, scores, "mask", UNK, None)
    np.testing.assert_array_equal(flips["top1_flip"], [True, False])
    np.testing.assert_allclose(flips["flip_fraction"], [1 / n, 1.0])
    np.testing.assert_array_equal(flips["flipped"], [True, True])  # the last removal flips it


@pytest.mark.parametrize("encoder", ["lstm", "cnn"])
def test_the_whole_batch_metrics_equal_each_row_alone(encoder):
    """``eraser_of_batch`` and ``decision_flip_of_batch`` (the rows' coalitions in one flat
    vmap, in steps of 5 spanning rows; flips only up to each row's n) equal the per-instance
    metrics row by row; a padding row runs nothing and breaks nothing."""
    model, params = tiny_model(encoder, "tanh", num_classes=3)
    batch = tiny_batch((3, 9, 12, 6), width=12, seed=4)
    batch["lengths"][3], batch["token_ids"][3] = 0, 0  # a padding row
    instances = {"token_ids": jnp.asarray(batch["token_ids"]),
                 "length": jnp.asarray(batch["lengths"])}  # fmt: skip
    scores = jnp.asarray(np.random.default_rng(7).normal(size=(4, 2, 12)), jnp.float32)
    curves = jax.jit(eraser_of_batch, static_argnums=(0, 4, 5, 6, 7))(
        model, params, instances, scores, UNK, ("delete", "mask"), ranking.PERCENTS, 5
    )
    flips = jax.jit(decision_flip_of_batch, static_argnums=(0, 4, 5, 6))(
        model, params, instances, scores, "mask", UNK, 5
    )
    for row in range(3):
        instance = instance_of(batch, row)
        alone = one_eraser(model, params, instance, scores[row], UNK, ("delete", "mask"),
                           ranking.PERCENTS, None)  # fmt: skip
        for name in ("comprehensiveness", "sufficiency"):
            np.testing.assert_allclose(curves[name][row], alone[name], atol=1e-6)
        alone_flips = one_flip(model, params, instance, scores[row], "mask", UNK, None)
        for name in ("flip_fraction", "flipped", "top1_flip"):
            np.testing.assert_array_equal(flips[name][row], alone_flips[name])
    assert all(np.isfinite(np.asarray(value)).all() for value in curves.values())
