"""A post-LN Transformer encoder classifier (BERT/MiniLM layout) as pure functions (SPEC §5).

    token_ids --embed--> e [T, E] --(project E→D)+ position, LayerNorm--> x_0 [T, D]
      --L blocks--> x_L [T, D] --pool (CLS row or mean)--> [D] --linear--> logits [O]

Each block is BERT's (post-LN):

    A_h = softmax(q_h k_hᵀ / √d_h)  over the non-PAD keys      [H, T, T]
    y   = LayerNorm(x + W_o concat_h(A_h v_h) + b_o)
    x'  = LayerNorm(y + W_2 GELU(W_1 y + b_1) + b_2)           GELU exact (erf)

The sequence is JW's ``[SOS] + tokens + [EOS]`` then PAD (or BERT's ``[CLS] +
pieces + [SEP]``); position 0 is the CLS position. ``length`` counts the non-PAD
positions; keys past it get exactly zero attention, so no output at a valid
position depends on the bucket length T.

**The audited attention.** JW's audits need one distribution α over the real
tokens (positions ``1 … length − 2``). Here it is the last layer's CLS-query
row, averaged over heads and renormalised over the real tokens
(``audited_attention``). ``forward`` can replace that row (``attention_override``:
one row ``[T]`` for all heads, or one per head ``[H, T]``); ``audits.transformer_model.mix_heads``
turns a new α into such rows, and ``attn_audit.audits.TransformerModel`` adapts the
model to the audits' protocol.

The parameter tree (PyTorch layout: linear weights ``[out, in]``; the L blocks
are stacked along a leading axis so that they run under one ``lax.scan``):

    {"encoder": {"embedding": {"weight": [V, E]},
                 "embedding_projection": {"weight": [D, E], "bias": [D]},  # only if E != D
                 "position_embedding": {"weight": [P, D]},     # [P, E] if projection_after_norm
                 "token_type_embedding": {"weight": [types, D]},  # only if token_types
                 "embedding_norm": {"weight": [D], "bias": [D]},
                 "layers": {"query" | "key" | "value" | "attention_output":
                                {"weight": [L, D, D], "bias": [L, D]},
                            "attention_norm": {"weight": [L, D], "bias": [L, D]},
                            "intermediate": {"weight": [L, F, D], "bias": [L, F]},
                            "output": {"weight": [L, D, F], "bias": [L, D]},
                            "output_norm": {"weight": [L, D], "bias": [L, D]}}},
     "decoder": {"pre_classifier": {"weight": [D, D], "bias": [D]},  # if classifier_activation
                 "linear_1": {"weight": [O, D], "bias": [O]}}}

The same function covers the Hugging Face families (SPEC §10) through the config: the
feed-forward activation, RoBERTa's position offset, ELECTRA's projection after the
embedding norm, the token-type row 0 added at every position, and the heads' layer
before the classifier. ``attn_audit.pretrained.hf`` imports their checkpoints.

``attn_audit.pretrained.bert`` maps it to and from BERT's names.
"""

import math

import jax
import jax.numpy as jnp

from attn_audit.models import primitives
from attn_audit.models.config import STOP_ATTENTION_GRADIENT, ModelConfig

Params = dict

# BERT's initialiser: N(0, 0.02) for embeddings and dense weights.
INIT_STD = 0.02


# ---------------------------------------------------------------- parameters


def init(key: jax.Array, config: ModelConfig) -> Params:
    """BERT's initialisation: N(0, 0.02) weights, zero biases, unit layer norms.

    The classifier is ``torch.nn.Linear``'s default, as in JW's decoders.

    Returns:
      the parameter tree of the module docstring, float32.
    """
    _check_config(config)
    keys = dict(
        zip(
            ("embedding", "projection", "position", "layers", "decoder"),
            jax.random.split(key, 5),
            strict=True,
        )
    )
    del key  # not used anymore
    width, depth = config.hidden_size, config.num_layers
    position_key, type_key = jax.random.split(keys["position"])
    embedding_width = embedding_norm_width(config)
    encoder = {
        "embedding": {"weight": _normal(keys["embedding"], (config.vocab_size, config.embed_dim))},
        "position_embedding": {
            "weight": _normal(position_key, (config.max_positions, embedding_width))
        },
        "embedding_norm": _layer_norm_params((), embedding_width),
    }
    if config.token_types:
        encoder["token_type_embedding"] = {
            "weight": _normal(type_key, (config.token_types, embedding_width))
        }
    if config.embed_dim != width:
        encoder["embedding_projection"] = {
            "weight": _normal(keys["projection"], (width, config.embed_dim)),
            "bias": jnp.zeros((width,), jnp.float32),
        }
    shapes = {
        "query": (width, width),
        "key": (width, width),
        "value": (width, width),
        "attention_output": (width, width),
        "intermediate": (config.ff_dim, width),
        "output": (width, config.ff_dim),
    }
    layers = {}
    for (name, shape), layer_key in zip(
        shapes.items(), jax.random.split(keys["layers"], len(shapes)), strict=True
    ):
        layers[name] = {
            "weight": _normal(layer_key, (depth, *shape)),
            "bias": jnp.zeros((depth, shape[0]), jnp.float32),
        }
    layers["attention_norm"] = _layer_norm_params((depth,), width)
    layers["output_norm"] = _layer_norm_params((depth,), width)
    encoder["layers"] = layers
    return {"encoder": encoder, "decoder": init_classifier(keys["decoder"], config)}


def init_classifier(key: jax.Array, config: ModelConfig) -> Params:
    """A new classification head: ``linear_1``, after ``pre_classifier`` if the config has one.

    ``linear_1`` is ``torch.nn.Linear``'s default (JW's decoders); ``pre_classifier``
    (``D -> D``) is BERT's N(0, 0.02) with a zero bias.
    """
    pre_key, linear_key = jax.random.split(key)
    width = config.hidden_size
    decoder = {"linear_1": primitives.init_linear(linear_key, width, config.output_dim)}
    if config.classifier_activation != "none":
        decoder["pre_classifier"] = {
            "weight": _normal(pre_key, (width, width)),
            "bias": jnp.zeros((width,), jnp.float32),
        }
    return decoder


def embedding_norm_width(config: ModelConfig) -> int:
    """Width of the position embedding and the embedding layer norm: E for ELECTRA's layout
    (``projection_after_norm``), else D."""
    return config.embed_dim if config.projection_after_norm else config.hidden_size


def _normal(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    return INIT_STD * jax.random.normal(key, shape, jnp.float32)


def _layer_norm_params(leading: tuple[int, ...], width: int) -> Params:
    return {
        "weight": jnp.ones((*leading, width), jnp.float32),
        "bias": jnp.zeros((*leading, width), jnp.float32),
    }


# ---------------------------------------------------------------- building blocks


def _split_heads(config: ModelConfig, projected: jax.Array) -> jax.Array:
    """``[T, D] -> [T, H, d_h]``."""
    return projected.reshape(projected.shape[0], config.num_heads, config.head_dim)


def attention_probabilities(
    layer: Params, config: ModelConfig, inputs: jax.Array, key_mask: jax.Array
) -> jax.Array:
    """One block's attention maps ``softmax(q kᵀ / √d_h)`` over the valid keys: ``[H, T, T]``.

    Rows are queries, columns keys (as SPEC §5 and BERT's ``attentions``).
    """
    queries = _split_heads(config, primitives.linear(layer["query"], inputs))
    keys = _split_heads(config, primitives.linear(layer["key"], inputs))
    scores = jnp.einsum("qhd,khd->hqk", queries, keys) / math.sqrt(config.head_dim)
    return primitives.masked_softmax(scores, key_mask)


def block_output(
    layer: Params, config: ModelConfig, inputs: jax.Array, values: jax.Array, maps: jax.Array
) -> jax.Array:
    """The rest of a block once its attention is known, for any set of query rows.

    Args:
      layer: one block's parameters.
      config: the model configuration.
      inputs: the block's inputs at the query positions, ``[Q, D]`` (the residual).
      values: ``v`` of every position, ``[T, H, d_h]``.
      maps: attention rows of those queries, ``[H, Q, T]``.

    Returns:
      ``[Q, D]``: ``LN(y + FF(y))`` with ``y = LN(x + W_o concat_h(A_h v_h) + b_o)``.
    """
    mixed = jnp.einsum("hqk,khd->qhd", maps, values).reshape(inputs.shape)
    attended = primitives.layer_norm(
        layer["attention_norm"], inputs + primitives.linear(layer["attention_output"], mixed),
        config.layer_norm_eps,
    )  # fmt: skip
    hidden = activation(config.hidden_act, primitives.linear(layer["intermediate"], attended))
    return primitives.layer_norm(
        layer["output_norm"],
        attended + primitives.linear(layer["output"], hidden),
        config.layer_norm_eps,
    )


def _block(layer, config, inputs, key_mask, stop_gradient):
    maps = attention_probabilities(layer, config, inputs, key_mask)
    if stop_gradient:
        maps = jax.lax.stop_gradient(maps)
    values = _split_heads(config, primitives.linear(layer["value"], inputs))
    return block_output(layer, config, inputs, values, maps), maps


def activation(name: str, inputs: jax.Array) -> jax.Array:
    """A named activation: ``"gelu"`` (exact, erf), ``"gelu_tanh"``, ``"relu"``, ``"tanh"``,
    or ``"none"`` (the identity)."""
    if name == "gelu":
        return jax.nn.gelu(inputs, approximate=False)
    if name == "gelu_tanh":
        return jax.nn.gelu(inputs, approximate=True)
    if name == "relu":
        return jax.nn.relu(inputs)
    if name == "tanh":
        return jnp.tanh(inputs)
    if name == "none":
        return inputs
    raise ValueError(f"Unknown activation {name!r}.")


def _check_config(config: ModelConfig) -> None:
    if not config.is_transformer:
        raise ValueError(
            f"models.transformer builds encoder='transformer' models; got {config.encoder!r}."
        )


def _layer(layers: Params, index: int) -> Params:
    return jax.tree.map(lambda stacked: stacked[index], layers)


# ---------------------------------------------------------------- the forward pass


def embed(params: Params, config: ModelConfig, token_ids: jax.Array) -> jax.Array:
    """Token embeddings ``E[x_t]``, zero at PAD: ``[T] -> [T, E]``.

    Positions, the projection and the embedding layer norm come in ``encode``,
    so that gradient audits differentiate with respect to the word vectors only.
    """
    _check_config(config)
    embedded = params["encoder"]["embedding"]["weight"][token_ids]
    return embedded * (token_ids != primitives.PAD_ID).astype(embedded.dtype)[:, None]


def encode(
    params: Params,
    config: ModelConfig,
    embedded: jax.Array,
    length: jax.Array,
    *,
    attention_override: jax.Array | None = None,
    stop_attention_gradient: str = "none",
) -> dict:
    """Runs the L blocks over one embedded sequence.

    Args:
      params: the model parameters.
      config: the model configuration.
      embedded: ``[T, E]`` from ``embed`` (positions ``t >= length`` are ignored).
      length: scalar int, the number of non-PAD positions.
      attention_override: optional replacement of the LAST block's CLS-query row:
        ``[T]`` (one row given to every head) or ``[H, T]`` (one per head).
        Used as given: pass rows that sum to 1 and are 0 on PAD.
      stop_attention_gradient: ``"none"``, ``"audited"`` (hold the last block's CLS
        row fixed, the audited α) or ``"all"`` (every attention map of every block).

    Returns:
      ``{"states": x_L [T, D] (zero past length), "layer_states": [L, T, D]
      (each block's output, zero past length), "attention_maps": [L, H, T, T]
      (rows past length zero), "last_inputs": x_{L-1} [T, D], "last_values":
      [T, H, d_h] (the last block's v)}``.
    """
    _check_config(config)
    if stop_attention_gradient not in STOP_ATTENTION_GRADIENT:
        raise ValueError(
            f"stop_attention_gradient must be one of {STOP_ATTENTION_GRADIENT}; "
            f"got {stop_attention_gradient!r}."
        )
    num_positions = embedded.shape[0]
    usable = config.max_positions - config.position_offset
    if num_positions > usable:
        raise ValueError(
            f"The sequence has {num_positions} positions but the model has {usable} "
            f"(max_positions={config.max_positions}, position_offset={config.position_offset}); "
            "build the model with a larger max_positions or use shorter buckets."
        )
    encoder = params["encoder"]
    key_mask = jnp.arange(num_positions) < length
    inputs = embedded
    projection = encoder.get("embedding_projection")
    if projection is not None and not config.projection_after_norm:
        inputs = primitives.linear(projection, inputs)
    offset = config.position_offset
    inputs = inputs + encoder["position_embedding"]["weight"][offset : offset + num_positions]
    if "token_type_embedding" in encoder:  # one segment: every token has type 0
        inputs = inputs + encoder["token_type_embedding"]["weight"][:1]
    inputs = primitives.layer_norm(encoder["embedding_norm"], inputs, config.layer_norm_eps)
    if projection is not None and config.projection_after_norm:
        inputs = primitives.linear(projection, inputs)

    layers = encoder["layers"]
    stop_all = stop_attention_gradient == "all"

    def step(hidden, layer):
        outputs, maps = _block(layer, config, hidden, key_mask, stop_all)
        return outputs, (outputs, maps)

    # All blocks but the last under one scan; the last one alone, where α can be replaced.
    first_layers = jax.tree.map(lambda stacked: stacked[:-1], layers)
    last_inputs, (first_states, first_maps) = jax.lax.scan(step, inputs, first_layers)
    last_layer = _layer(layers, config.num_layers - 1)
    maps = attention_probabilities(last_layer, config, last_inputs, key_mask)
    if attention_override is not None:
        if attention_override.shape not in ((num_positions,), (config.num_heads, num_positions)):
            raise ValueError(
                f"attention_override must be [T] or [H, T] = "
                f"[{config.num_heads}, {num_positions}]; "
                f"got shape {attention_override.shape}."
            )
        rows = jnp.broadcast_to(attention_override, (config.num_heads, num_positions))
        maps = maps.at[:, 0, :].set(rows.astype(maps.dtype))
    if stop_all:
        maps = jax.lax.stop_gradient(maps)
    elif stop_attention_gradient == "audited":
        maps = maps.at[:, 0, :].set(jax.lax.stop_gradient(maps[:, 0, :]))
    values = _split_heads(config, primitives.linear(last_layer["value"], last_inputs))
    states = block_output(last_layer, config, last_inputs, values, maps)

    valid = key_mask[:, None]  # [T, 1]: rows of states, query rows of maps
    layer_states = jnp.concatenate([first_states, states[None]])
    all_maps = jnp.concatenate([first_maps, maps[None]])
    return {
        "states": jnp.where(valid, states, 0.0),
        "layer_states": jnp.where(valid[None], layer_states, 0.0),
        "attention_maps": jnp.where(valid[None, None], all_maps, 0.0),
        "last_inputs": last_inputs,
        "last_values": values,
    }


def pool(config: ModelConfig, states: jax.Array, length: jax.Array) -> jax.Array:
    """What the classifier reads: ``h_0`` (CLS) or the mean of ``h_t`` over ``t < length``.

    Args:
      config: picks ``config.pooling``.
      states: ``[T, D]``, zero past ``length``.
      length: scalar int; 0 (a batch's padding row) gives a zero mean.

    Returns:
      ``[D]``.
    """
    if config.pooling == "cls":
        return states[0]
    valid = primitives.valid_mask(length, states.shape[0])
    total = jnp.sum(jnp.where(valid[:, None], states, 0.0), axis=0)
    return total / jnp.maximum(length, 1).astype(states.dtype)


def classify(params: Params, config: ModelConfig, pooled: jax.Array) -> jax.Array:
    """Logits ``[O]`` of the pooled vector ``[D]``: ``Linear(D -> O)``, after
    ``act(Linear(D -> D))`` when the config has a ``classifier_activation``."""
    decoder = params["decoder"]
    if "pre_classifier" in decoder:
        pooled = activation(
            config.classifier_activation, primitives.linear(decoder["pre_classifier"], pooled)
        )
    return primitives.linear(decoder["linear_1"], pooled)


def audited_attention(maps: jax.Array, length: jax.Array) -> jax.Array:
    """α: the last block's CLS row averaged over heads, renormalised over the real tokens.

    ``α_t = Σ_h A_h[0, t] / Σ_{s real} Σ_h A_h[0, s]`` for ``1 <= t <= length − 2``, else 0.

    Args:
      maps: ``[L, H, T, T]`` or the last block's ``[H, T, T]``.
      length: scalar int.

    Returns:
      ``[T]``, summing to 1 over the real tokens (0 when there are none).
    """
    last = maps[-1] if maps.ndim == 4 else maps
    real = primitives.real_token_mask(length, last.shape[-1])
    mean_row = jnp.where(real, jnp.mean(last[:, 0, :], axis=0), 0.0)
    total = jnp.sum(mean_row)
    return mean_row / jnp.where(total > 0, total, 1.0)


def forward_from_embedded(
    params: Params,
    config: ModelConfig,
    embedded: jax.Array,
    length: jax.Array,
    *,
    attention_override: jax.Array | None = None,
    stop_attention_gradient: str = "none",
) -> tuple[jax.Array, dict]:
    """Logits from input embeddings, for gradients w.r.t. ``e``.

    Args:
      params, config, embedded, length, attention_override, stop_attention_gradient:
        see ``encode``.

    Returns:
      ``(logits [O], aux)`` with aux ``{"embedded": [T, E], "states": [T, D],
      "layer_states": [L, T, D], "attention_maps": [L, H, T, T],
      "attention_mask": bool [T] (real tokens), "attention": α [T]
      (``audited_attention``), "context": the pooled vector [D], "question": None}``.
    """
    encoded = encode(
        params, config, embedded, length,
        attention_override=attention_override, stop_attention_gradient=stop_attention_gradient,
    )  # fmt: skip
    pooled = pool(config, encoded["states"], length)
    aux = {
        "embedded": embedded,
        "states": encoded["states"],
        "layer_states": encoded["layer_states"],
        "attention_maps": encoded["attention_maps"],
        "attention_mask": primitives.real_token_mask(length, embedded.shape[0]),
        "attention": audited_attention(encoded["attention_maps"], length),
        "context": pooled,
        "question": None,
    }
    return classify(params, config, pooled), aux


def forward(
    params: Params,
    config: ModelConfig,
    token_ids: jax.Array,
    length: jax.Array,
    *,
    attention_override: jax.Array | None = None,
    stop_attention_gradient: str = "none",
) -> tuple[jax.Array, dict]:
    """The forward pass for one instance: ``token_ids [T]`` to ``(logits [O], aux)``.

    See ``forward_from_embedded``; ``models.forward`` dispatches here.
    """
    embedded = embed(params, config, token_ids)
    return forward_from_embedded(
        params, config, embedded, length,
        attention_override=attention_override, stop_attention_gradient=stop_attention_gradient,
    )  # fmt: skip
