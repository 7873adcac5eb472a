"""attn_audit.training.checkpoint: parameters survive a save and a restore."""

import jax
import jax.numpy as jnp

from attn_audit import models
from attn_audit.training.checkpoint import RunCheckpoints
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
