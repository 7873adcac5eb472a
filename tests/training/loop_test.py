"""Training: one step moves every parameter, a tiny run learns, a killed run resumes."""

import dataclasses
import json
import pathlib
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attn_audit import data, models, training
from attn_audit.training.checkpoint import CheckpointError
from attn_audit.training.run_folder import load_run

from .sst_test import write_sst

REPO = pathlib.Path(__file__).resolve().parents[1]
FILLER = ["the", "film", "plot", "actor", "scene", "story", "music", "cast"]


def toy_trees(n, seed):
    """SST-style trees whose label is carried by one of four sentiment words."""
    rng = np.random.default_rng(seed)
    trees = []
    for _ in range(n):
        label = int(rng.integers(0, 2))
        cue = rng.choice(["great", "superb"] if label else ["awful", "dull"])
        words = list(rng.choice(FILLER, int(rng.integers(6, 12))))
        words.insert(int(rng.integers(0, len(words))), cue)
        leaves = " ".join(f"(2 {w})" for w in words)
        trees.append(f"({4 if label else 0} {leaves})")
    return trees


def write_toy_sst(folder, n=96):
    folder = write_sst(folder, toy_trees(n, seed=0))
    (folder / "sst" / "dev.txt").write_text("\n".join(toy_trees(n // 2, seed=1)) + "\n")
    (folder / "sst" / "test.txt").write_text("\n".join(toy_trees(n // 2, seed=2)) + "\n")
    return folder


TINY = {"embed_dim": 8, "hidden_size": 6, "batch_size": 16}


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
    after, _, loss = training.train_step(
        params, optimizer.init(params), inputs, jnp.float32(1.0),
        model_config=model_config, optimizer=optimizer,
    )  # fmt: skip
    assert np.isfinite(float(loss))
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


def test_corrupt_checkpoint_and_missing_run_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="Train first"):
        load_run(tmp_path / "nothing")
    dataset = data.load_dataset("sst", write_toy_sst(tmp_path / "data", n=40))
    training.run_training(training.TrainConfig(epochs=1, **TINY), tmp_path / "run", dataset=dataset)
    for path in (tmp_path / "run" / "checkpoints" / "best").rglob("*"):
        if path.is_file() and path.stat().st_size > 0 and "metadata" not in path.name:
            path.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="is unreadable"):
        load_run(tmp_path / "run")


def _train_command(data_dir, workdir, epochs):
    return [
        sys.executable, "-m", "experiments.train", "--dataset=sst", f"--data_dir={data_dir}",
        f"--workdir={workdir}", f"--epochs={epochs}", "--embed_dim=8", "--hidden_size=6",
        "--batch_size=8", "--embeddings=random",
    ]  # fmt: skip


def test_killed_run_resumes_to_the_same_result(tmp_path):
    data_dir = write_toy_sst(tmp_path / "data", n=400)
    epochs = 4
    killed = tmp_path / "killed"
    process = subprocess.Popen(
        _train_command(data_dir, killed, epochs), cwd=REPO,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not (killed / "checkpoints" / "latest" / "1").is_dir():
        assert process.poll() is None, "training ended before it could be killed"
        assert time.monotonic() < deadline, "no checkpoint after 120 s"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished = json.loads((killed / "metrics.json").read_text())
    assert "test" not in finished and len(finished["epochs"]) < epochs

    resumed = subprocess.run(
        _train_command(data_dir, killed, epochs), cwd=REPO, capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "Resuming" in resumed.stderr

    straight = tmp_path / "straight"
    subprocess.run(_train_command(data_dir, straight, epochs), cwd=REPO, check=True,
                   capture_output=True)  # fmt: skip
    a = json.loads((killed / "metrics.json").read_text())
    b = json.loads((straight / "metrics.json").read_text())
    assert [e["train_loss"] for e in a["epochs"]] == [e["train_loss"] for e in b["epochs"]]
    assert a["test"] == b["test"]


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


def test_runs_with_other_seeds_reuse_the_compiled_train_step(tmp_path):
    dataset = data.load_dataset("sst", write_toy_sst(tmp_path / "data", n=40))
    config = training.TrainConfig(epochs=1, **TINY)
    training.run_training(config, tmp_path / "seed0", dataset=dataset)
    compiled = training.train_step._cache_size()
    training.run_training(dataclasses.replace(config, seed=1), tmp_path / "seed1", dataset=dataset)
    assert training.train_step._cache_size() == compiled
