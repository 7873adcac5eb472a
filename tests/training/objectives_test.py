"""attn_audit.training.objectives: the loss by hand; guided runs, a frozen attention and WP's
adversary."""

import dataclasses

import jax
import numpy as np
import pytest

from attn_audit import data, training
from attn_audit.training.run_folder import load_run
from tests._fixtures import (
    TINY,
    bucketed_batches,
    forward_batch,
    initial_params,
    tiny_config,
    write_toy_sst,
)


def test_guided_runs_frozen_attention_and_adversary(tmp_path):
    dataset = data.load_dataset("sst", write_toy_sst(tmp_path / "data", n=80))
    base = training.TrainConfig(epochs=2, learning_rate=0.02, **TINY)
    training.run_training(base, tmp_path / "base", dataset=dataset)
    base_run = load_run(tmp_path / "base")
    vocab = base_run.vocab
    test = data.encode_split(dataset, "test", vocab)
    boundaries = tuple(base_run.config["data"]["bucket_boundaries"])
    base_predictions = training.predict(base_run.params, base_run.model_config, test, boundaries)

    # Diagnostic: an Average model decoding with the base model's attention.
    frozen = dataclasses.replace(
        base, encoder="average", frozen_attention_from=str(tmp_path / "base")
    )
    training.run_training(frozen, tmp_path / "frozen", dataset=dataset)
    frozen_run = load_run(tmp_path / "frozen")
    guide, guide_params = training.load_guide(frozen, vocab)
    assert guide.role == "frozen_attention"
    predictions = training.predict(
        frozen_run.params, frozen_run.model_config, test, boundaries, guide_params, guide
    )
    for ours, theirs in zip(predictions.attention, base_predictions.attention, strict=True):
        np.testing.assert_allclose(ours, theirs, atol=1e-6)

    # Model-consistent adversary: outputs follow the base model, attention moves away.
    adversary = dataclasses.replace(
        base, adversary_of=str(tmp_path / "base"), adversarial_lambda=1.0, epochs=3
    )
    history = training.run_training(adversary, tmp_path / "adversary", dataset=dataset)
    assert history["selection_metric"] == "neg_objective"
    first, last = history["epochs"][0]["dev"], history["epochs"][-1]["dev"]
    assert last["kl_to_guide"] > first["kl_to_guide"] - 1e-6
    assert {"tvd_to_guide", "jsd_to_guide", "kl_to_guide"} <= set(history["test"])

    with pytest.raises(ValueError, match="not both"):
        dataclasses.replace(base, adversary_of="a", frozen_attention_from="b")


@pytest.mark.parametrize("num_classes", [2, 3])
def test_loss_is_the_weighted_cross_entropy_of_the_real_rows(num_classes):
    """Binary: −[w·y·log σ(z) + (1−y)·log σ(−z)]; else −log softmax(z)_y; the mean over rows
    of weight 1 (the batch's last row is a padding row of weight 0)."""
    config = tiny_config("average", "tanh", "classification", num_classes)
    params = initial_params(config)
    batch = bucketed_batches(config, seed=4)[3]
    batch["labels"] = np.array([1, 0, 1], np.int32)
    batch["weights"] = np.array([1.0, 1.0, 0.0], np.float32)
    loss = training.loss_fn(params, config, batch, 2.0)
    logits = np.asarray(forward_batch(params, config, batch)[0], np.float64)
    if num_classes == 2:
        z = logits[:, 0]
        expected = [-2.0 * np.log(1 / (1 + np.exp(-z[0]))), -np.log(1 / (1 + np.exp(z[1])))]
    else:
        log_softmax = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        expected = [-log_softmax[0, 1], -log_softmax[1, 0]]
    assert float(loss) == pytest.approx(np.mean(expected), rel=1e-5)
    # The padding row's label does not matter.
    batch["labels"][2] = 0
    assert float(training.loss_fn(params, config, batch, 2.0)) == pytest.approx(float(loss))
    gradient = jax.grad(training.loss_fn)(params, config, batch, 2.0)
    assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(gradient))
