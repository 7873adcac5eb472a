"""The model configuration: which encoder, attention and task, and their sizes (SPEC §2, §5).

A ``ModelConfig`` is a frozen, hashable dataclass so that it can be a static
argument of ``jax.jit``; every model function takes it explicitly.
"""

import dataclasses
from collections.abc import Mapping
from typing import Any

# JW's encoders, each followed by one attention layer (tanh, dot or uniform).
ENCODERS = ("lstm", "cnn", "average")
# "uniform" is WP's baseline: α = 1 / (number of real tokens), no attention parameters.
ATTENTIONS = ("tanh", "dot", "uniform")
TASKS = ("classification", "qa")
# Transformer encoders (SPEC §5) carry their own multi-head self-attention, written
# attention="self"; the audited α is the last layer's CLS row (models/transformer.py).
# Kept apart from ENCODERS, which the JW-model code and tests iterate over.
TRANSFORMER_ENCODERS = ("transformer",)
TRANSFORMER_ATTENTIONS = ("self",)
POOLINGS = ("cls", "mean")
# What ``forward(stop_attention_gradient=...)`` holds fixed: nothing, the audited α (JW's α;
# a transformer's last-block CLS row) or every attention map.
STOP_ATTENTION_GRADIENT = ("none", "audited", "all")
# BERT's number of learned positions; training raises it when a data set needs more.
DEFAULT_MAX_POSITIONS = 512
# The transformer's feed-forward activation: exact (erf) GELU, its tanh approximation
# (Hugging Face's "gelu_new" / "gelu_pytorch_tanh"), or ReLU.
HIDDEN_ACTIVATIONS = ("gelu", "gelu_tanh", "relu")
# The activation of the layer between the pooled vector and the classifier: none (ours: the
# classifier reads the pooled vector), tanh (BERT's pooler, RoBERTa's head), relu (DistilBERT's
# pre_classifier), gelu (ELECTRA's head).
CLASSIFIER_ACTIVATIONS = ("none", "tanh", "relu", "gelu")
# How two classes are read out: one sigmoid logit (JW) or two softmax logits (Hugging Face).
TWO_CLASS_OUTPUTS = ("sigmoid", "softmax")

# JW's convolutional encoder: kernels 1, 3, 5, 7 with 32 filters each (SPEC §2).
DEFAULT_CNN_KERNEL_SIZES = (1, 3, 5, 7)
DEFAULT_CNN_FILTERS = 32


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """What model to build (JW §3, SPEC §2).

    Attributes:
      vocab_size: number of token ids, the four special ids
        (``PAD=0, UNK=1, SOS=2, EOS=3``) included.
      num_classes: classification: the number of labels (2 gives ONE sigmoid
        output, more a softmax); qa: the number of answer candidates.
      encoder: ``"lstm"`` (BiLSTM), ``"cnn"``, ``"average"`` or ``"transformer"``.
      attention: ``"tanh"`` (additive), ``"dot"`` (scaled dot product) or
        ``"uniform"`` (WP's frozen ``1/n`` baseline, no parameters) for JW's
        encoders; ``"self"`` (its own attention) for the transformer.
      task: ``"classification"`` or ``"qa"`` (NLI is qa with the hypothesis
        as the question). The transformer does classification only.
      embed_dim: embedding width E.
      hidden_size: LSTM width per direction, the ``average`` projection width,
        or the transformer's model width D (E is projected to D when they
        differ). Unused by ``cnn``, whose width is fixed by its filters.
      cnn_kernel_sizes: odd kernel widths of the ``cnn`` encoder.
      cnn_filters: filters per kernel width of the ``cnn`` encoder.
      num_layers: transformer blocks L.
      num_heads: attention heads per block; must divide ``hidden_size``.
      ff_dim: width of the transformer's GELU feed-forward layer.
      max_positions: rows of the learned position embedding (longest sequence).
      pooling: what the transformer's classifier reads: ``"cls"`` (position 0,
        SOS for JW's layout, ``[CLS]`` for BERT) or ``"mean"`` (over the non-PAD
        positions, SOS/EOS included, as sentence-transformers).
      layer_norm_eps: the transformer's layer-norm epsilon (BERT: 1e-12).
      hidden_act: the feed-forward activation, one of ``HIDDEN_ACTIVATIONS``.
      classifier_activation: ``"none"``: the classifier reads the pooled vector; else a
        ``D -> D`` layer with this activation comes first (BERT's pooler, DistilBERT's
        pre_classifier, RoBERTa's and ELECTRA's ``classifier.dense``).
      token_types: rows of the token-type embedding (BERT 2, RoBERTa 1; 0: none). Every
        token has type 0 (one segment), so row 0 is added at every position.
      position_offset: the position id of the first token (RoBERTa: ``padding_idx + 1``).
      projection_after_norm: the ``E -> D`` projection comes after the embedding layer
        norm (ELECTRA's ``embeddings_project``: positions and norm are E wide) instead of
        before the positions are added.
      two_class_output: two classes as one sigmoid logit (``"sigmoid"``, JW) or as two
        softmax logits (``"softmax"``, Hugging Face's sequence classifiers).
    """

    vocab_size: int
    num_classes: int
    encoder: str = "lstm"
    attention: str = "tanh"
    task: str = "classification"
    embed_dim: int = 300
    hidden_size: int = 128
    cnn_kernel_sizes: tuple[int, ...] = DEFAULT_CNN_KERNEL_SIZES
    cnn_filters: int = DEFAULT_CNN_FILTERS
    num_layers: int = 2
    num_heads: int = 4
    ff_dim: int = 512
    max_positions: int = DEFAULT_MAX_POSITIONS
    pooling: str = "cls"
    layer_norm_eps: float = 1e-12
    hidden_act: str = "gelu"
    classifier_activation: str = "none"
    token_types: int = 0
    position_offset: int = 0
    projection_after_norm: bool = False
    two_class_output: str = "sigmoid"

    def __post_init__(self):
        # JSON gives lists; keep the config hashable for jax.jit.
        object.__setattr__(self, "cnn_kernel_sizes", tuple(self.cnn_kernel_sizes))
        _check_choice("encoder", self.encoder, ENCODERS + TRANSFORMER_ENCODERS)
        _check_choice("task", self.task, TASKS)
        if self.is_transformer:
            _check_transformer(self)
        else:
            _check_choice("attention", self.attention, ATTENTIONS)
        if self.vocab_size < 5:
            raise ValueError(
                f"vocab_size must count the 4 special ids (PAD, UNK, SOS, EOS) and at least "
                f"one word, so >= 5; got {self.vocab_size}."
            )
        if self.num_classes < 2:
            raise ValueError(
                f"num_classes must be >= 2 (2 gives one sigmoid output); got {self.num_classes}."
            )
        for name in ("embed_dim", "hidden_size", "cnn_filters"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int; got {value!r}.")
        if not self.cnn_kernel_sizes or any(
            not isinstance(k, int) or k < 1 or k % 2 == 0 for k in self.cnn_kernel_sizes
        ):
            raise ValueError(
                "cnn_kernel_sizes must be a non-empty tuple of odd positive ints (same padding "
                f"(k - 1) // 2 keeps the length only for odd k); got {self.cnn_kernel_sizes!r}."
            )
        if self.state_dim < 2:
            raise ValueError(
                f"The encoder width must be >= 2 so that attention and QA layers of width "
                f"state_dim // 2 exist; got state_dim={self.state_dim}."
            )

    @property
    def is_transformer(self) -> bool:
        """True for encoders with their own self-attention (``TRANSFORMER_ENCODERS``)."""
        return self.encoder in TRANSFORMER_ENCODERS

    @property
    def binary(self) -> bool:
        """True for two-class classification read out as one sigmoid output."""
        return (
            self.task == "classification"
            and self.num_classes == 2
            and self.two_class_output == "sigmoid"
        )

    @property
    def output_dim(self) -> int:
        """Number of logits: 1 for one-sigmoid binary classification, else ``num_classes``."""
        return 1 if self.binary else self.num_classes

    @property
    def state_dim(self) -> int:
        """Width H of the encoder states ``h_t`` (SPEC §2 table)."""
        if self.encoder == "lstm":
            return 2 * self.hidden_size
        if self.encoder == "cnn":
            return len(self.cnn_kernel_sizes) * self.cnn_filters
        return self.hidden_size  # average, transformer

    @property
    def head_dim(self) -> int:
        """Width of one transformer attention head, ``hidden_size // num_heads``."""
        return self.hidden_size // self.num_heads

    @property
    def attention_hidden_dim(self) -> int:
        """Width H // 2 of the tanh attention layer and the QA decoder's hidden layer."""
        return self.state_dim // 2

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; ``ModelConfig.from_dict`` inverts it."""
        fields = dataclasses.asdict(self)
        fields["cnn_kernel_sizes"] = list(self.cnn_kernel_sizes)
        return fields

    @classmethod
    def from_dict(cls, fields: Mapping[str, Any]) -> "ModelConfig":
        """Builds a config from ``to_dict`` output, rejecting unknown keys."""
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(fields) - known)
        if unknown:
            raise ValueError(
                f"Unknown ModelConfig keys {unknown}; the known keys are {sorted(known)}."
            )
        return cls(**fields)


def _check_transformer(config: ModelConfig) -> None:
    if config.attention not in TRANSFORMER_ATTENTIONS:
        raise ValueError(
            f"encoder={config.encoder!r} has its own self-attention: pass attention='self' "
            f"(got {config.attention!r}; tanh/dot/uniform go with {', '.join(ENCODERS)})."
        )
    if config.task != "classification":
        raise ValueError(
            f"encoder={config.encoder!r} supports task='classification' only; got {config.task!r}."
        )
    _check_choice("pooling", config.pooling, POOLINGS)
    for name in ("num_layers", "num_heads", "ff_dim", "max_positions"):
        value = getattr(config, name)
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int; got {value!r}.")
    if config.hidden_size % config.num_heads:
        raise ValueError(
            f"hidden_size={config.hidden_size} must be a multiple of num_heads={config.num_heads} "
            "(each head gets hidden_size // num_heads dimensions)."
        )
    if not config.layer_norm_eps > 0:
        raise ValueError(f"layer_norm_eps must be positive; got {config.layer_norm_eps!r}.")
    _check_choice("hidden_act", config.hidden_act, HIDDEN_ACTIVATIONS)
    _check_choice("classifier_activation", config.classifier_activation, CLASSIFIER_ACTIVATIONS)
    _check_choice("two_class_output", config.two_class_output, TWO_CLASS_OUTPUTS)
    for name in ("token_types", "position_offset"):
        value = getattr(config, name)
        if not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be an int >= 0; got {value!r}.")
    if config.position_offset >= config.max_positions:
        raise ValueError(
            f"position_offset={config.position_offset} leaves no position of the "
            f"{config.max_positions} learned ones."
        )
    if config.projection_after_norm and config.embed_dim == config.hidden_size:
        raise ValueError(
            "projection_after_norm needs an embedding projection (embed_dim != hidden_size); "
            f"both are {config.hidden_size}."
        )


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"Unknown {name} {value!r}; choose one of {', '.join(choices)}.")
