"""attn_audit.training.evaluate: predictions in data order over bucketed batches, the metrics
report, the guide's terms and the selection metric."""

import dataclasses

import jax
import numpy as np
import pytest

from attn_audit import data, models, training
from attn_audit.data.dataset import Example
from attn_audit.training import metrics
from tests._fixtures import initial_params, padded, tiny_config

# Lengths (SOS/EOS included) on both sides of the first boundary, interleaved, so that the
# buckets reorder the instances.
LENGTHS = [12, 4, 7, 14, 3, 9, 6, 16, 8, 5]
BOUNDARIES = (8, 16)
forward = jax.jit(models.forward, static_argnums=1)


def toy_split(num_classes, seed=0):
    rng = np.random.default_rng(seed)
    examples, token_ids = [], []
    for number, length in enumerate(LENGTHS):
        ids, _ = padded(rng.integers(4, 20, length - 2), length)
        token_ids.append(ids)
        examples.append(Example(f"e{number}", tuple(map(str, ids[1:-1])), 0))
    labels = np.arange(len(LENGTHS), dtype=np.int32) % num_classes
    return data.EncodedSplit(examples, token_ids, labels)


@pytest.mark.parametrize("num_classes", [2, 3])
def test_predictions_are_each_instance_alone_in_data_order(num_classes):
    config = tiny_config("average", "tanh", "classification", num_classes)
    params = initial_params(config)
    split = toy_split(num_classes)
    predictions = training.predict(params, config, split, BOUNDARIES)
    assert predictions.probabilities.shape == (len(LENGTHS), num_classes)
    assert predictions.guide_probabilities is None and predictions.guide_attention is None
    for i, ids in enumerate(split.token_ids):
        alone = np.zeros(16, np.int32)  # one width for all: padding changes nothing
        alone[: len(ids)] = ids
        logits, aux = forward(params, config, alone, np.int32(len(ids)))
        np.testing.assert_allclose(
            predictions.probabilities[i], models.probabilities(logits, config), atol=1e-6
        )
        # Attention over the real tokens only: SOS and EOS cut off.
        assert predictions.attention[i].shape == (len(ids) - 2,)
        np.testing.assert_allclose(
            predictions.attention[i], aux["attention"][1 : len(ids) - 1], atol=1e-6
        )
    np.testing.assert_array_equal(
        training.predict_split(params, config, split, BOUNDARIES), predictions.probabilities
    )
    report = training.evaluate(params, config, split, BOUNDARIES)
    assert report == metrics.classification_report(split.labels, predictions.probabilities)
    assert report["accuracy"] == pytest.approx(
        np.mean(predictions.probabilities.argmax(1) == split.labels)
    )


def test_an_adversary_guide_adds_its_terms_to_the_report():
    config = tiny_config("average", "tanh")
    params, other = initial_params(config), initial_params(config, seed=1)
    split = toy_split(2)
    guide = training.Guide(config, "adversary", adversarial_lambda=0.5)
    itself = training.evaluate(params, config, split, BOUNDARIES, params, guide)
    for name in ("tvd_to_guide", "kl_to_guide", "jsd_to_guide", "neg_objective"):
        assert itself[name] == pytest.approx(0.0, abs=1e-6), name
    report = training.evaluate(params, config, split, BOUNDARIES, other, guide)
    ours = training.predict(params, config, split, BOUNDARIES)
    theirs = training.predict(other, config, split, BOUNDARIES)
    tvd = np.mean(0.5 * np.abs(ours.probabilities - theirs.probabilities).sum(1))
    assert report["tvd_to_guide"] == pytest.approx(tvd, abs=1e-6) and tvd > 0
    assert report["kl_to_guide"] > 0 and report["jsd_to_guide"] > 0
    assert report["neg_objective"] == pytest.approx(
        -(report["tvd_to_guide"] - 0.5 * report["kl_to_guide"])
    )
    assert report["accuracy"] == training.evaluate(params, config, split, BOUNDARIES)["accuracy"]


def test_selection_metric():
    binary, three = tiny_config(), tiny_config(num_classes=3)
    assert training.selection_metric(binary) == "roc_auc"
    assert training.selection_metric(three) == "accuracy"
    adversary = training.Guide(binary, "adversary")
    assert training.selection_metric(binary, adversary) == "neg_objective"
    frozen = dataclasses.replace(adversary, role="frozen_attention")
    assert training.selection_metric(binary, frozen) == "roc_auc"
