"""attn_audit.training.loop: one step moves every parameter, a tiny run learns and writes its
run folder, runs share one compiled step, and a transformer's loss falls."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from attn_audit import data, models, training
from attn_audit.training.run_folder import load_run
from tests._fixtures import TINY, VOCAB_SIZE, batch_of, initial_params, write_toy_sst
from tests._fixtures import tiny_transformer_config as tiny_config


@pytest.mark.parametrize("encoder", models.ENCODERS)
@pytest.mark.parametrize("attention", models.ATTENTIONS)
def test_one_step_changes_every_parameter(tmp_path, encoder, attention):
    dataset = data.load_dataset("sst", write_toy_sst(tmp_path, n=40))
    vocab = data.vocabulary_for(dataset)
    split = data.encode_split(dataset, "train", vocab)
    batch = next(data.batches(split, 16, data.bucket_boundaries(20)))
    config = training.TrainConfig(encoder=encoder, attention=attention, **TINY)
    model_config = models.ModelConfig(
        vocab_size=len(vocab), num_classes=2, encoder=encoder, attention=attention,
        embed_dim=8, hidden_size=6,
    )  # fmt: skip
    params = models.init(jax.random.key(1), model_config)
    before = jax.tree.map(np.array, params)
    optimizer = training.make_optimizer(config)
    inputs = {k: jnp.asarray(v) for k, v in batch.items() if k != "index"}
    after, _, loss, norm = training.train_step(
        params, optimizer.init(params), inputs, jnp.float32(1.0),
        model_config=model_config, optimizer=optimizer,
    )  # fmt: skip
    assert np.isfinite(float(loss)) and float(norm) > 0
    unchanged = [
        jax.tree_util.keystr(path)
        for path, old, new in zip(
            jax.tree_util.tree_leaves_with_path(before),
            jax.tree.leaves(before),
            jax.tree.leaves(after),
            strict=True,
        )
        if np.array_equal(old, np.asarray(new))
    ]
    assert not unchanged


def test_tiny_run_learns_and_writes_its_run_folder(tmp_path):
    dataset = data.load_dataset("sst", write_toy_sst(tmp_path / "data", n=200))
    config = training.TrainConfig(epochs=5, learning_rate=0.02, **TINY)
    history = training.run_training(config, tmp_path / "run", dataset=dataset)
    assert len(history["epochs"]) == 5 and history["selection_metric"] == "roc_auc"
    # Seeds 0-3 all reach test ROC-AUC 1.0 and accuracy ≥ 0.96 on this toy task.
    assert history["test"]["roc_auc"] > 0.95 and history["test"]["accuracy"] > 0.9, history["test"]
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["test"] == history["test"]
    run = load_run(tmp_path / "run")
    assert run.best_epoch == history["best_epoch"]
    assert run.vocab.tokens == data.vocabulary_for(dataset).tokens
    # The restored best parameters reproduce the recorded test metrics.
    test = data.encode_split(dataset, "test", run.vocab)
    boundaries = tuple(run.config["data"]["bucket_boundaries"])
    report = training.evaluate(run.params, run.model_config, test, boundaries)
    assert report["accuracy"] == history["test"]["accuracy"]

    # A second run with another configuration in the same folder is refused.
    with pytest.raises(ValueError, match="different configuration"):
        training.run_training(
            training.TrainConfig(epochs=6, **TINY), tmp_path / "run", dataset=dataset
        )


def test_runs_with_other_seeds_reuse_the_compiled_train_step(tmp_path):
    dataset = data.load_dataset("sst", write_toy_sst(tmp_path / "data", n=40))
    config = training.TrainConfig(epochs=1, **TINY)
    training.run_training(config, tmp_path / "seed0", dataset=dataset)
    compiled = training.train_step._cache_size()
    training.run_training(dataclasses.replace(config, seed=1), tmp_path / "seed1", dataset=dataset)
    assert training.train_step._cache_size() == compiled


def cue_batches(num_batches, batch_size=16, seed=0):
    """Label 1 iff token 5 occurs: one attention head on it solves the task."""
    rng = np.random.default_rng(seed)
    for _ in range(num_batches):
        rows, labels = [], []
        for _ in range(batch_size):
            tokens = list(rng.integers(6, VOCAB_SIZE, int(rng.integers(3, 8))))
            label = int(rng.integers(0, 2))
            if label:
                tokens[int(rng.integers(0, len(tokens)))] = 5
            rows.append(tokens)
            labels.append(label)
        batch = batch_of(rows, 10)
        batch.update(labels=np.asarray(labels, np.int32), weights=np.ones(batch_size, np.float32))
        yield {k: jnp.asarray(v) for k, v in batch.items()}


def test_a_short_training_run_decreases_the_loss():
    config = tiny_config()
    train_config = training.TrainConfig(encoder="transformer", attention="self", learning_rate=3e-3)
    optimizer = training.make_optimizer(train_config)
    params = jax.tree.map(jnp.copy, initial_params(config))
    first = jax.tree.map(jnp.copy, params)
    opt_state = optimizer.init(params)
    losses = []
    for batch in cue_batches(60):
        params, opt_state, loss, _ = training.train_step(
            params, opt_state, batch, jnp.float32(1.0), model_config=config, optimizer=optimizer
        )
        losses.append(float(loss))
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10]), losses
    # Every parameter tensor moved.
    moved = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), params, first)
    assert all(jax.tree.leaves(moved))


def test_training_stops_at_the_first_non_finite_step_and_keeps_the_last_good_epoch(
    tmp_path, monkeypatch
):
    from attn_audit.training import loop

    dataset = data.load_dataset("sst", write_toy_sst(tmp_path / "data", n=120))
    config = training.TrainConfig(epochs=3, **TINY)
    real_step, calls, bad_call = loop.train_step, [], []

    def step(*args, **kwargs):
        params, opt_state, loss, norm = real_step(*args, **kwargs)
        calls.append(None)
        if len(calls) == (bad_call[0] if bad_call else -1):
            norm = jnp.float32(jnp.inf)  # as an exploding gradient would
        return params, opt_state, loss, norm

    monkeypatch.setattr(loop, "train_step", step)
    history = training.run_training(config, tmp_path / "good", dataset=dataset)
    steps_per_epoch = len(calls) // 3
    assert all(np.isfinite(e["train_loss"]) for e in history["epochs"])

    calls.clear()
    bad_call.append(steps_per_epoch + 3)  # epoch 2, step 3
    with pytest.raises(
        training.TrainingDiverged,
        match="epoch 2, step 3: loss .*, gradient "
        "norm inf.*keeps epoch 1's checkpoints.*lower --learning_rate",
    ):
        training.run_training(config, tmp_path / "bad", dataset=dataset)
    saved = json.loads((tmp_path / "bad" / "metrics.json").read_text())  # strict JSON
    assert [e["epoch"] for e in saved["epochs"]] == [1] and "test" not in saved
    assert training.RunCheckpoints(tmp_path / "bad").latest_epoch() == 1

    calls.clear()
    bad_call[0] = 2  # epoch 1: no checkpoint yet
    with pytest.raises(training.TrainingDiverged, match="epoch 1, step 2.*no checkpoint"):
        training.run_training(config, tmp_path / "first", dataset=dataset)


def test_cnn_filters_reach_the_model_and_matter_only_to_a_cnn_run(tmp_path):
    dataset = data.load_dataset("sst", write_toy_sst(tmp_path / "data", n=40))
    cnn = training.TrainConfig(epochs=1, encoder="cnn", cnn_filters=2, **TINY)
    training.run_training(cnn, tmp_path / "cnn", dataset=dataset)
    assert load_run(tmp_path / "cnn").model_config.cnn_filters == 2
    with pytest.raises(ValueError, match="different configuration"):
        training.run_training(
            dataclasses.replace(cnn, cnn_filters=3), tmp_path / "cnn", dataset=dataset
        )
    # A BiLSTM run has no filters: it resumes under another value (bAbI's recipe changed it).
    lstm = training.TrainConfig(epochs=1, **TINY)
    history = training.run_training(lstm, tmp_path / "lstm", dataset=dataset)
    again = training.run_training(
        dataclasses.replace(lstm, cnn_filters=3), tmp_path / "lstm", dataset=dataset
    )
    assert again["test"] == history["test"]
    assert training.paper_defaults("babi2")["cnn_filters"] == 8  # JW: hidden_size // 4


def test_train_until_learnt_tries_the_next_seed_only_while_nothing_is_learnt(tmp_path):
    dataset = data.load_dataset("sst", write_toy_sst(tmp_path / "data", n=200))
    config = training.TrainConfig(epochs=5, learning_rate=0.02, **TINY)
    history, folder, learnt_nothing = training.train_until_learnt(config, tmp_path / "run", dataset)
    assert folder == tmp_path / "run" and learnt_nothing == [] and history["test"]["accuracy"] > 0.9

    # Labels drawn at random, independently of the text: no seed can learn them.
    rng = np.random.default_rng(0)
    noise = dataclasses.replace(dataset, splits={
        name: [dataclasses.replace(e, label=int(rng.integers(2))) for e in examples]
        for name, examples in dataset.splits.items()
    })  # fmt: skip
    config = training.TrainConfig(epochs=1, **TINY)
    history, folder, learnt_nothing = training.train_until_learnt(
        config, tmp_path / "noise", noise, max_seeds=2
    )
    assert learnt_nothing == [0, 1] and folder == tmp_path / "noise_seed1"
    assert load_run(folder).config["train"]["seed"] == 1 and (tmp_path / "noise").is_dir()
    with pytest.raises(ValueError, match="max_seeds must be at least 1"):
        training.train_until_learnt(config, tmp_path / "x", noise, max_seeds=0)


def test_a_finished_run_is_reused_without_restoring_its_optimiser_state(tmp_path, monkeypatch):
    dataset = data.load_dataset("sst", write_toy_sst(tmp_path / "data", n=40))
    config = training.TrainConfig(epochs=1, **TINY)
    history = training.run_training(config, tmp_path / "run", dataset=dataset)

    # An optimiser whose state has another structure (as after an optimiser change) cannot
    # restore the saved state; a finished run must not need it.
    def other_optimizer(train_config):
        return optax.chain(optax.identity(), training.make_optimizer(train_config))

    monkeypatch.setattr("attn_audit.training.loop.make_optimizer", other_optimizer)
    assert training.run_training(config, tmp_path / "run", dataset=dataset) == history
    # An unfinished run still restores it, and says why it cannot.
    longer = dataclasses.replace(config, epochs=2)
    (tmp_path / "run" / "config.json").write_text(
        (tmp_path / "run" / "config.json").read_text().replace('"epochs": 1', '"epochs": 2')
    )
    with pytest.raises(training.CheckpointError, match="unreadable"):
        training.run_training(longer, tmp_path / "run", dataset=dataset)
