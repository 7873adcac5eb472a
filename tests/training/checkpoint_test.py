"""attn_audit.training.checkpoint: parameters survive a save and a restore; damaged or
non-finite checkpoints are clear errors."""

import json

import jax
import jax.numpy as jnp
import pytest

from attn_audit import models
from attn_audit.training.checkpoint import CheckpointError, RunCheckpoints, checksum
from tests._fixtures import initial_params
from tests._fixtures import tiny_transformer_config as tiny_config


def test_checkpoint_round_trip(tmp_path):
    config = tiny_config(3, "mean")
    params = initial_params(config, seed=2)
    checkpoints = RunCheckpoints(tmp_path)
    try:
        checkpoints.save("best", 1, params)
        epoch, restored = checkpoints.restore("best", models.init(jax.random.key(0), config))
    finally:
        checkpoints.close()
    assert epoch == 1
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.all(a == b)), restored, params))


def _saved(tmp_path, params, epoch=1):
    checkpoints = RunCheckpoints(tmp_path)
    try:
        checkpoints.save("best", epoch, params)
    finally:
        checkpoints.close()


def _restore(tmp_path, template):
    checkpoints = RunCheckpoints(tmp_path)
    try:
        return checkpoints.restore("best", template)
    finally:
        checkpoints.close()


def test_arrays_that_differ_from_the_saved_ones_are_refused(tmp_path):
    config = tiny_config(3, "mean")
    params = initial_params(config, seed=2)
    _saved(tmp_path, params)
    record = tmp_path / "checkpoints" / "best.sha256.json"
    assert json.loads(record.read_text()) == {"epoch": 1, "sha256": checksum(params)}
    # Other arrays saved at epoch 2 under the first arrays' checksum: as if bytes had changed.
    _saved(tmp_path, jax.tree.map(lambda leaf: leaf + 1e-3, params), epoch=2)
    record.write_text(json.dumps({"epoch": 2, "sha256": checksum(params)}))
    with pytest.raises(CheckpointError, match="is damaged: its arrays differ.*train again"):
        _restore(tmp_path, params)


def test_flipped_bytes_or_missing_files_are_clear_errors(tmp_path):
    config = tiny_config(3, "mean")
    params = initial_params(config, seed=2)
    for case in ("flipped", "deleted"):
        folder = tmp_path / case
        _saved(folder, params)
        files = sorted(
            (
                p
                for p in (folder / "checkpoints" / "best" / "1").rglob("*")
                if p.is_file() and "d" in p.parent.name
            ),
            key=lambda p: p.stat().st_size,
        )
        assert files, "no array data file found"
        if case == "flipped":
            data = bytearray(files[-1].read_bytes())
            for i in range(len(data) // 2, len(data) // 2 + 64):
                data[i] ^= 0xFF
            files[-1].write_bytes(bytes(data))
        else:
            for file in files:
                file.unlink()
        expected = "is damaged: its arrays differ" if case == "flipped" else "is unreadable"
        with pytest.raises(CheckpointError, match=expected):
            _restore(folder, params)


def test_non_finite_parameters_are_refused_on_load(tmp_path):
    params = initial_params(tiny_config(3, "mean"), seed=2)
    broken = jax.tree.map(lambda leaf: leaf.at[..., 0].set(jnp.nan), params)
    _saved(tmp_path, broken)
    with pytest.raises(CheckpointError, match="holds NaN or inf in .*diverged"):
        _restore(tmp_path, params)


def test_a_step_left_by_a_killed_run_is_saved_again(tmp_path):
    """A run killed after saving ``best`` for an epoch but before ``latest`` redoes that epoch
    on resume, and saves the same step again."""
    params = initial_params(tiny_config(3, "mean"), seed=2)
    _saved(tmp_path, params, epoch=3)
    again = jax.tree.map(lambda leaf: leaf * 2, params)
    _saved(tmp_path, again, epoch=3)
    epoch, restored = _restore(tmp_path, params)
    assert epoch == 3
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.all(a == b)), restored, again))
