"""attn_audit.models.config: ModelConfig's checks, JSON round trip and hashing."""

import json

import pytest

from attn_audit import models
from tests._fixtures import tiny_config


def test_config_rejects_unknown_names_and_lists_the_valid_ones():
    with pytest.raises(ValueError, match="lstm, cnn, average"):
        models.ModelConfig(vocab_size=20, num_classes=2, encoder="gru")
    with pytest.raises(ValueError, match="tanh, dot"):
        models.ModelConfig(vocab_size=20, num_classes=2, attention="bahdanau")
    with pytest.raises(ValueError, match="num_classes"):
        models.ModelConfig(vocab_size=20, num_classes=1)
    with pytest.raises(ValueError, match="odd"):
        models.ModelConfig(vocab_size=20, num_classes=2, cnn_kernel_sizes=(2,))
    with pytest.raises(ValueError, match="Unknown ModelConfig keys"):
        models.ModelConfig.from_dict({"vocab_size": 20, "num_classes": 2, "dropout": 0.5})


def test_config_json_round_trip_and_hashable():
    config = tiny_config("cnn", "dot", "qa", 5)
    restored = models.ModelConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert restored == config and hash(restored) == hash(config)
