"""experiments.train end to end: a killed run resumes to the same result; a transformer trains
and its run reloads."""

import json
import pathlib
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from attn_audit import data, training
from attn_audit.training.run_folder import load_run
from tests._fixtures import command_runner, write_toy_sst

REPO = pathlib.Path(__file__).resolve().parents[2]


def _train_flags(data_dir, workdir, epochs):
    return [
        "--dataset=sst", f"--data_dir={data_dir}", f"--workdir={workdir}", f"--epochs={epochs}",
        "--embed_dim=8", "--hidden_size=6", "--batch_size=8", "--embeddings=random",
    ]  # fmt: skip


def _train_command(data_dir, workdir, epochs):
    return [sys.executable, "-m", "experiments.train", *_train_flags(data_dir, workdir, epochs)]


def test_killed_run_resumes_to_the_same_result(tmp_path):
    """SIGKILL after the first checkpoint, then at a random point (seeded) of a later epoch:
    the resumed run's losses, test metrics and parameters equal an uninterrupted run's, bit
    for bit."""
    data_dir = write_toy_sst(tmp_path / "data", n=400)
    epochs = 8  # a warm epoch of this toy run takes ~0.05 s: enough left to kill in
    killed = tmp_path / "killed"
    rng = np.random.default_rng(18)
    for kill in range(2):
        process = subprocess.Popen(
            _train_command(data_dir, killed, epochs), cwd=REPO,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while not (killed / "checkpoints" / "latest" / str(kill + 1)).is_dir():
            assert process.poll() is None, "training ended before it could be killed"
            assert time.monotonic() < deadline, "no checkpoint after 120 s"
            time.sleep(0.002)
        time.sleep(rng.uniform(0.0, 0.02))  # somewhere in the next epoch, or in its saving
        process.send_signal(signal.SIGKILL)
        process.wait()
        finished = json.loads((killed / "metrics.json").read_text())
        assert "test" not in finished and len(finished["epochs"]) < epochs

    resumed = subprocess.run(
        _train_command(data_dir, killed, epochs), cwd=REPO, capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "Resuming" in resumed.stderr

    # The run that is never killed needs no process of its own.
    straight = tmp_path / "straight"
    command_runner("train")[1](*_train_flags(data_dir, straight, epochs))
    a = json.loads((killed / "metrics.json").read_text())
    b = json.loads((straight / "metrics.json").read_text())
    assert [e["train_loss"] for e in a["epochs"]] == [e["train_loss"] for e in b["epochs"]]
    assert a["test"] == b["test"]
    for x, y in zip(jax.tree.leaves(load_run(killed).params),
                    jax.tree.leaves(load_run(straight).params), strict=True):  # fmt: skip
        assert np.array_equal(np.asarray(x), np.asarray(y))


def test_train_command_trains_a_transformer_and_its_run_reloads(tmp_path, capsys):
    """``experiments.train --encoder=transformer`` with sizes by flags (in this process); the
    run folder reloads (checkpoint, config) and reproduces its recorded test accuracy."""
    data_dir = write_toy_sst(tmp_path / "data", n=40)
    workdir = tmp_path / "run"
    _, run_train = command_runner("train")
    options = [
        "--dataset=sst", f"--data_dir={data_dir}", f"--workdir={workdir}",
        "--encoder=transformer", "--epochs=1", "--batch_size=8", "--embeddings=random",
        "--embed_dim=8", "--hidden_size=12", "--num_layers=1", "--num_heads=3", "--ff_dim=16",
        "--pooling=mean",
    ]  # fmt: skip
    run_train(*options)
    assert "sst transformer+self: test accuracy" in capsys.readouterr().out
    assert "test" in json.loads((workdir / "metrics.json").read_text())  # a finished run
    run = load_run(workdir)
    expected = {"encoder": "transformer", "attention": "self", "embed_dim": 8, "hidden_size": 12}
    expected.update(num_layers=1, num_heads=3, ff_dim=16, pooling="mean")
    assert {k: run.config["model"][k] for k in expected} == expected
    dataset = data.load_dataset("sst", data_dir)
    test = data.encode_split(dataset, "test", run.vocab)
    boundaries = tuple(run.config["data"]["bucket_boundaries"])
    report = training.evaluate(run.params, run.model_config, test, boundaries)
    assert report["accuracy"] == run.metrics["test"]["accuracy"]
    # A JW encoder with a transformer's attention (or the reverse) is a clear error.
    with pytest.raises(SystemExit) as bad:
        run_train(*options[:3], "--encoder=lstm", "--attention=self")
    assert bad.value.code != 0 and "attention='self'" in str(bad.value.code)


@pytest.mark.parametrize(
    "flag, message",
    [
        ("--learning_rate=nan", "learning_rate must be a finite number above 0, got nan"),
        ("--learning_rate=-1", "a negative rate ascends the loss"),
        ("--epochs=0", "epochs must be at least 1"),
    ],
)
def test_out_of_range_flags_are_one_line_errors_and_write_nothing(tmp_path, flag, message):
    _, run_train = command_runner("train")
    workdir = tmp_path / "run"
    with pytest.raises(SystemExit) as bad:
        run_train(*_train_flags(write_toy_sst(tmp_path / "data", n=20), workdir, 1)[:-5], flag)
    assert message in str(bad.value.code)
    assert not workdir.exists()


def test_a_workdir_that_is_a_file_or_is_being_written_is_a_one_line_error(tmp_path):
    from attn_audit.folder_lock import folder_lock

    _, run_train = command_runner("train")
    data_dir = write_toy_sst(tmp_path / "data", n=20)
    (tmp_path / "file").write_text("not a run")
    with pytest.raises(SystemExit) as bad:
        run_train(*_train_flags(data_dir, tmp_path / "file", 1))
    assert "is a file, not a folder" in str(bad.value.code)
    with folder_lock(tmp_path / "busy"), pytest.raises(SystemExit) as bad:
        run_train(*_train_flags(data_dir, tmp_path / "busy", 1))
    assert f"is writing {tmp_path / 'busy'}" in str(bad.value.code)
