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


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("learning_rate", float("nan"), "learning_rate must be a finite number above 0"),
        ("learning_rate", float("inf"), "learning_rate must be a finite number above 0"),
        ("learning_rate", -1.0, "a negative rate ascends the loss"),
        ("learning_rate", 0.0, "learning_rate must be a finite number above 0"),
        ("weight_decay", -1e-5, "weight_decay must be a finite number of at least 0"),
        ("weight_decay", float("nan"), "weight_decay must be a finite number of at least 0"),
        ("adversarial_lambda", -0.1, "adversarial_lambda must be a finite number of at least 0"),
        ("epochs", 0, "epochs must be at least 1"),
        ("batch_size", -2, "batch_size must be at least 1"),
        ("num_layers", 0, "num_layers must be at least 1"),
        ("num_heads", 0, "num_heads must be at least 1"),
        ("ff_dim", 0, "ff_dim must be at least 1"),
        ("pooling", "max", "pooling must be one of"),
    ],
)
def test_out_of_range_hyperparameters_are_refused(field, value, message):
    with pytest.raises(ValueError, match=message):
        training.TrainConfig(**{field: value})


def test_in_range_hyperparameters_are_kept():
    config = training.TrainConfig(learning_rate=2e-5, weight_decay=0.0, adversarial_lambda=0.0)
    assert config.learning_rate == 2e-5
