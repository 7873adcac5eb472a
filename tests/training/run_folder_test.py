"""attn_audit.training.run_folder: a missing run and a damaged checkpoint are clear errors;
without its parameters a run still encodes its data."""

import pytest

from attn_audit import data, training
from attn_audit.training.checkpoint import CheckpointError
from attn_audit.training.run_folder import load_run
from tests._fixtures import TINY, write_toy_sst


def test_corrupt_checkpoint_and_missing_run_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="Train first"):
        load_run(tmp_path / "nothing")
    dataset = data.load_dataset("sst", write_toy_sst(tmp_path / "data", n=40))
    training.run_training(training.TrainConfig(epochs=1, **TINY), tmp_path / "run", dataset=dataset)
    for path in (tmp_path / "run" / "checkpoints" / "best").rglob("*"):
        if path.is_file() and path.stat().st_size > 0 and "metadata" not in path.name:
            path.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="is damaged: its file .* has 7 bytes, not the"):
        load_run(tmp_path / "run")
    # a command that runs no model reads the configs and vocabulary only
    light = load_run(tmp_path / "run", restore_params=False)
    assert light.params is None and light.best_epoch is None and light.vocab is not None
    assert light.split_encoder()(dataset, "test").examples
    # A checkpoint of an older version (no record of its files) fails in orbax, as clearly.
    (tmp_path / "run" / "checkpoints" / "best.sha256.json").unlink()
    with pytest.raises(CheckpointError, match="is unreadable"):
        load_run(tmp_path / "run")
