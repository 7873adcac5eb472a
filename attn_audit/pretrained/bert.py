"""BERT state-dict names <-> the parameters of ``attn_audit.models.transformer`` (numpy only).

Hugging Face's ``BertModel`` names (as in MiniLM's ``model.safetensors``):

    embeddings.word_embeddings.weight           -> encoder.embedding.weight
    embeddings.position_embeddings.weight       -> encoder.position_embedding.weight
      + embeddings.token_type_embeddings.weight[0]  (folded in: every token has type 0)
    embeddings.LayerNorm.{weight,bias}          -> encoder.embedding_norm
    encoder.layer.{i}.attention.self.{query,key,value}.{weight,bias}
                                                -> encoder.layers.{query,key,value}[i]
    encoder.layer.{i}.attention.output.dense    -> encoder.layers.attention_output[i]
    encoder.layer.{i}.attention.output.LayerNorm-> encoder.layers.attention_norm[i]
    encoder.layer.{i}.intermediate.dense        -> encoder.layers.intermediate[i]
    encoder.layer.{i}.output.dense              -> encoder.layers.output[i]
    encoder.layer.{i}.output.LayerNorm          -> encoder.layers.output_norm[i]
    classifier.{weight,bias}                    -> decoder.linear_1  (ours; not in BERT)

BERT's ``pooler`` (a tanh layer on [CLS] trained for next-sentence prediction)
and the ``position_ids`` buffer are not used. Both sides store linear weights
as ``[out, in]``, so the mapping is a rename plus stacking of the blocks.
"""

from collections.abc import Mapping

import numpy as np

from attn_audit.models.config import ModelConfig

Params = dict

# BERT name suffix of each block tensor -> (our layer name, tensor name).
BLOCK_TENSORS = {
    "attention.self.query": "query",
    "attention.self.key": "key",
    "attention.self.value": "value",
    "attention.output.dense": "attention_output",
    "attention.output.LayerNorm": "attention_norm",
    "intermediate.dense": "intermediate",
    "output.dense": "output",
    "output.LayerNorm": "output_norm",
}
# Present in BERT checkpoints, not part of the encoder.
IGNORED_PREFIXES = ("pooler.", "embeddings.position_ids")
TOKEN_TYPES = 2


def from_bert_state_dict(weights: Mapping[str, np.ndarray], config: ModelConfig) -> Params:
    """The ``"encoder"`` subtree (and ``"decoder"`` if ``classifier.*`` is present).

    Args:
      weights: BERT names to arrays (``safetensors.numpy.load_file``, or a torch
        state dict's tensors as numpy).
      config: the transformer configuration the weights must fit.

    Returns:
      ``{"encoder": {...}}`` (plus ``"decoder"``), float32, in the layout of
      ``models.transformer.init``.

    Raises:
      ValueError: a tensor is missing, unexpected or of the wrong shape.
    """
    weights = {name: np.asarray(value) for name, value in weights.items()}
    used = set()

    def take(name):
        if name not in weights:
            raise ValueError(
                f"The BERT weights lack {name!r}; is this a BertModel checkpoint with "
                f"{config.num_layers} layers?"
            )
        used.add(name)
        return weights[name].astype(np.float32)

    positions = take("embeddings.position_embeddings.weight")
    token_types = take("embeddings.token_type_embeddings.weight")
    encoder = {
        "embedding": {"weight": take("embeddings.word_embeddings.weight")},
        "position_embedding": {"weight": positions + token_types[0][None, :]},
        "embedding_norm": {
            "weight": take("embeddings.LayerNorm.weight"),
            "bias": take("embeddings.LayerNorm.bias"),
        },
        "layers": {},
    }
    for suffix, layer in BLOCK_TENSORS.items():
        encoder["layers"][layer] = {
            tensor: np.stack(
                [take(f"encoder.layer.{i}.{suffix}.{tensor}") for i in range(config.num_layers)]
            )
            for tensor in ("weight", "bias")
        }
    params = {"encoder": encoder}
    if "classifier.weight" in weights:
        params["decoder"] = {
            "linear_1": {"weight": take("classifier.weight"), "bias": take("classifier.bias")}
        }
    unexpected = sorted(
        name for name in set(weights) - used if not name.startswith(IGNORED_PREFIXES)
    )
    if unexpected:
        raise ValueError(
            f"Unexpected BERT tensors {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}; "
            f"the config has num_layers={config.num_layers}."
        )
    _check_shapes(params, config)
    return params


def to_bert_state_dict(params: Params, config: ModelConfig) -> dict[str, np.ndarray]:
    """The inverse of ``from_bert_state_dict``: BERT names to float32 arrays.

    ``token_type_embeddings`` are written as zeros (the type-0 row lives in the
    position embeddings); the classifier becomes ``classifier.{weight,bias}``.
    """
    if "embedding_projection" in params["encoder"]:
        raise ValueError(
            "BERT has no embedding projection: export needs embed_dim == hidden_size "
            f"(got {config.embed_dim} and {config.hidden_size})."
        )
    _check_shapes(params, config)
    encoder = params["encoder"]
    state = {
        "embeddings.word_embeddings.weight": encoder["embedding"]["weight"],
        "embeddings.position_embeddings.weight": encoder["position_embedding"]["weight"],
        "embeddings.token_type_embeddings.weight": np.zeros(
            (TOKEN_TYPES, config.hidden_size), np.float32
        ),
        "embeddings.LayerNorm.weight": encoder["embedding_norm"]["weight"],
        "embeddings.LayerNorm.bias": encoder["embedding_norm"]["bias"],
    }
    for i in range(config.num_layers):
        for suffix, layer in BLOCK_TENSORS.items():
            for tensor in ("weight", "bias"):
                state[f"encoder.layer.{i}.{suffix}.{tensor}"] = encoder["layers"][layer][tensor][i]
    if "decoder" in params:
        state["classifier.weight"] = params["decoder"]["linear_1"]["weight"]
        state["classifier.bias"] = params["decoder"]["linear_1"]["bias"]
    return {name: np.asarray(value, np.float32) for name, value in state.items()}


def _check_shapes(params: Params, config: ModelConfig) -> None:
    width, depth = config.hidden_size, config.num_layers
    encoder = params["encoder"]
    expected = {
        ("embedding", "weight"): (config.vocab_size, config.embed_dim),
        ("position_embedding", "weight"): (config.max_positions, width),
        ("embedding_norm", "weight"): (width,),
        ("layers", "query", "weight"): (depth, width, width),
        ("layers", "intermediate", "weight"): (depth, config.ff_dim, width),
        ("layers", "output", "weight"): (depth, width, config.ff_dim),
    }
    for path, shape in expected.items():
        value = encoder
        for key in path:
            value = value[key]
        if tuple(value.shape) != shape:
            raise ValueError(
                f"encoder.{'.'.join(path)} has shape {tuple(value.shape)} but the config "
                f"(vocab {config.vocab_size}, width {width}, {depth} layers, ff {config.ff_dim}, "
                f"{config.max_positions} positions) needs {shape}."
            )
