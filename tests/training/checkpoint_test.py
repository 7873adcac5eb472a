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
    saved = json.loads(record.read_text())
    assert (saved["epoch"], saved["sha256"]) == (1, checksum(params)) and saved["files"]
    # Other arrays saved at epoch 2 under the first arrays' checksum: as if bytes had changed.
    _saved(tmp_path, jax.tree.map(lambda leaf: leaf + 1e-3, params), epoch=2)
    record.write_text(json.dumps({"epoch": 2, "sha256": checksum(params)}))
    with pytest.raises(CheckpointError, match="is damaged: its arrays differ.*train again"):
        _restore(tmp_path, params)


@pytest.mark.parametrize(
    "damage, message",
    [
        # Orbax alone loaded such arrays silently, or failed half-way through its reads.
        ("flipped", "is damaged: its file .* differs from the one saved"),
        ("deleted", "is damaged: its file .* is missing"),
        ("truncated", "is damaged: its file .* has [0-9]+ bytes, not the [0-9]+ saved"),
    ],
)
def test_damaged_files_are_clear_errors(tmp_path, damage, message):
    params = initial_params(tiny_config(3, "mean"), seed=2)
    _saved(tmp_path, params)
    step = tmp_path / "checkpoints" / "best" / "1"
    data_files = sorted((p for p in step.rglob("*") if p.is_file() and p.parent.name == "d"),
                        key=lambda p: p.stat().st_size)  # fmt: skip
    assert data_files, "no array data file found"
    largest = data_files[-1]
    content = bytearray(largest.read_bytes())
    if damage == "flipped":
        for i in range(len(content) // 2, len(content) // 2 + 64):
            content[i] ^= 0xFF
        largest.write_bytes(bytes(content))
    elif damage == "truncated":
        largest.write_bytes(bytes(content[: len(content) // 2]))
    else:
        largest.unlink()
    with pytest.raises(CheckpointError, match=message):
        _restore(tmp_path, params)


def test_a_record_of_file_sizes_only_still_checks_sizes(tmp_path):
    """Records written before the files' SHA-256 was kept hold ``{name: bytes}``."""
    params = initial_params(tiny_config(3, "mean"), seed=2)
    _saved(tmp_path, params)
    record = tmp_path / "checkpoints" / "best.sha256.json"
    saved = json.loads(record.read_text())
    saved["files"] = {name: size for name, (size, _) in saved["files"].items()}
    record.write_text(json.dumps(saved))
    epoch, restored = _restore(tmp_path, params)
    assert epoch == 1
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.all(a == b)), restored, params))
    name = next(iter(saved["files"]))
    saved["files"][name] += 1
    record.write_text(json.dumps(saved))
    with pytest.raises(CheckpointError, match=f"its file {name} has .* bytes, not the"):
        _restore(tmp_path, params)


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
