"""attn_audit.training.config: TrainConfig's checks on embeddings and MiniLM's sizes."""

import pytest

from attn_audit import training


def test_embedding_size_must_match_the_vectors():
    with pytest.raises(ValueError, match="50-d vectors but embed_dim is 300"):
        training.TrainConfig(embeddings="glove50", embed_dim=300)
    with pytest.raises(ValueError, match="embeddings must be one of"):
        training.TrainConfig(embeddings="fasttext")


def test_train_config_keeps_minilm_sizes():
    with pytest.raises(ValueError, match="its own sizes"):
        training.TrainConfig(encoder="minilm", attention="self")
    with pytest.raises(ValueError, match="attention='self'"):
        training.TrainConfig(encoder="minilm", attention="tanh", **training.MINILM_TRAIN_SIZES)
    with pytest.raises(ValueError, match="finetune_encoder"):
        training.TrainConfig(encoder="lstm", finetune_encoder=True)
    config = training.TrainConfig(encoder="minilm", attention="self", **training.MINILM_TRAIN_SIZES)
    assert training.freezes_encoder(config)
