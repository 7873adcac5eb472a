"""The whole JW model as pure functions: ``init`` and ``forward`` (JW §3, SPEC §2).

The forward pass is split where audits intervene:

    token_ids --embed--> e [T, E] --encode--> h [T, H] --attention_scores--> a [T]
      --attention_weights--> α [T] --decode(h, α, q)--> logits [O]

Every function works on ONE instance (no batch axis); ``forward_batch`` vmaps
``forward``. ``config`` is a frozen dataclass: pass it as a static argument to
``jax.jit`` (``jax.jit(forward_batch, static_argnums=1)``). ``encoder="transformer"``
dispatches to ``transformer.py``, whose α is its last block's CLS attention row
(see there for its parameter tree).

The parameter tree:

    {"encoder": {"embedding": ..., "rnn" | "convolutions" | "projection": ...},
     "question_encoder": {same layout}          # qa only, a separate encoder
     "attention": {...},                        # see attention.py; decayed for qa only
     "decoder": {...}}                          # see decoder.py
"""

from collections.abc import Mapping

import jax
import jax.numpy as jnp

from attn_audit.models import attention as attention_lib
from attn_audit.models import decoder as decoder_lib
from attn_audit.models import encoders, primitives, transformer
from attn_audit.models.config import STOP_ATTENTION_GRADIENT, ModelConfig

Params = dict


def init(key: jax.Array, config: ModelConfig) -> Params:
    """Initialises all parameters like PyTorch's defaults (see the submodules).

    Args:
      key: a ``jax.random.key``.
      config: the model configuration.

    Returns:
      the parameter tree described in the module docstring, float32.
    """
    if config.is_transformer:
        return transformer.init(key, config)
    encoder_key, question_key, attention_key, decoder_key = jax.random.split(key, 4)
    del key  # not used anymore
    params = {
        "encoder": encoders.init_encoder(encoder_key, config),
        "attention": attention_lib.init_attention(attention_key, config),
        "decoder": decoder_lib.init_decoder(decoder_key, config),
    }
    if config.task == "qa":
        params["question_encoder"] = encoders.init_encoder(question_key, config)
    return params


def weight_decay_mask(params: Params) -> Params:
    """True for every leaf that takes weight decay (SPEC §2).

    JW's classifiers have two optimisers and leave the ``"attention"`` subtree undecayed;
    their QA/NLI model has one optimiser that decays everything. A qa model is recognised
    by its ``"question_encoder"``. Fits
    ``optax.add_decayed_weights(weight_decay, mask=weight_decay_mask)``.
    """
    decays_attention = "question_encoder" in params
    return {
        name: jax.tree.map(
            lambda _, decays=(decays_attention or name != "attention"): decays, subtree
        )
        for name, subtree in params.items()
    }


def embed(params: Params, config: ModelConfig, token_ids: jax.Array) -> jax.Array:
    """Embeds the attended sequence: ``[T] -> [T, E]``, zero at PAD positions."""
    _check_rank("token_ids", token_ids, 1)
    if config.is_transformer:
        return transformer.embed(params, config, token_ids)
    return encoders.embed_tokens(params["encoder"], token_ids)


def encode(
    params: Params, config: ModelConfig, embedded: jax.Array, length: jax.Array
) -> jax.Array:
    """Encoder states of the attended sequence: ``[T, E] -> [T, H]``, zero where ``t >= length``."""
    _check_rank("embedded", embedded, 2)
    if config.is_transformer:
        return transformer.encode(params, config, embedded, length)["states"]
    return encoders.encode_states(params["encoder"], config, embedded, length)


def question_vector(
    params: Params, config: ModelConfig, question_ids: jax.Array, question_length: jax.Array
) -> jax.Array:
    """The question vector ``q`` from the separate question encoder (qa only).

    lstm: final forward and backward states; cnn: max over valid positions;
    average: mean over valid positions (``encoders.summary_vector``).

    Args:
      params: the model parameters (reads ``params["question_encoder"]``).
      config: the model configuration, ``task="qa"``.
      question_ids: int ``[Tq]``, ``[SOS] + question + [EOS]`` then PAD.
      question_length: scalar int, non-PAD positions of the question.

    Returns:
      ``[H]``.
    """
    if config.task != "qa":
        raise ValueError(f"question_vector needs task='qa'; this model has task={config.task!r}.")
    _check_rank("question_ids", question_ids, 1)
    question_params = params["question_encoder"]
    embedded = encoders.embed_tokens(question_params, question_ids)
    states = encoders.encode_states(question_params, config, embedded, question_length)
    return encoders.summary_vector(config, states, question_length)


def forward_from_embedded(
    params: Params,
    config: ModelConfig,
    embedded: jax.Array,
    length: jax.Array,
    question: jax.Array | None = None,
    *,
    answer_mask: jax.Array | None = None,
    attention_override: jax.Array | None = None,
    stop_attention_gradient: str = "none",
) -> tuple[jax.Array, dict]:
    """The forward pass from given input embeddings, for gradients w.r.t. ``e``.

    Args:
      params: the model parameters.
      config: the model configuration.
      embedded: ``[T, E]``; ``embed`` gives the model's own.
      length: scalar int, the number of non-PAD positions.
      question: ``[H]`` from ``question_vector`` for qa, else ``None``.
      answer_mask: optional bool ``[num_classes]`` of allowed answers (qa only).
      attention_override: optional ``[T]`` used instead of the model's α (WP's
        uniform or frozen attention); scores are still computed and returned.
        Transformer: the last block's CLS row, ``[T]`` for every head or ``[H, T]``.
      stop_attention_gradient: one of ``STOP_ATTENTION_GRADIENT``: ``"none"``; ``"audited"``
        holds α fixed, ``stop_gradient(α)`` (JW's gradient audit; transformer: the last
        block's CLS row); ``"all"`` every attention map (JW's models have one: α).

    Returns:
      ``(logits [O], aux)`` with aux ``{"embedded": [T, E], "states": [T, H],
      "scores": [T], "attention_mask": bool [T], "attention": α [T],
      "context": [H], "question": [H] or None}``; for the transformer see
      ``transformer.forward_from_embedded`` (no scores; all attention maps).
    """
    _check_rank("embedded", embedded, 2)
    if config.is_transformer:
        if question is not None or answer_mask is not None:
            raise ValueError("The transformer classifies; it takes no question or answer_mask.")
        return transformer.forward_from_embedded(
            params, config, embedded, length, attention_override=attention_override,
            stop_attention_gradient=stop_attention_gradient,
        )  # fmt: skip
    num_positions = embedded.shape[0]
    states = encoders.encode_states(params["encoder"], config, embedded, length)
    scores = attention_lib.attention_scores(params, config, states, question)
    mask = primitives.real_token_mask(length, num_positions)
    if attention_override is None:
        alpha = attention_lib.attention_weights(scores, mask)
    else:
        _check_rank("attention_override", attention_override, 1)
        alpha = attention_override
    if stop_attention_gradient not in STOP_ATTENTION_GRADIENT:
        raise ValueError(
            f"stop_attention_gradient must be one of {STOP_ATTENTION_GRADIENT}; "
            f"got {stop_attention_gradient!r}."
        )
    if stop_attention_gradient != "none":
        alpha = jax.lax.stop_gradient(alpha)
    context = decoder_lib.attention_context(states, alpha)
    logits = decoder_lib.decode_context(params, config, context, question, answer_mask)
    aux = {
        "embedded": embedded,
        "states": states,
        "scores": scores,
        "attention_mask": mask,
        "attention": alpha,
        "context": context,
        "question": question,
    }
    return logits, aux


def forward(
    params: Params,
    config: ModelConfig,
    token_ids: jax.Array,
    length: jax.Array,
    question_ids: jax.Array | None = None,
    question_length: jax.Array | None = None,
    *,
    answer_mask: jax.Array | None = None,
    attention_override: jax.Array | None = None,
    stop_attention_gradient: str = "none",
) -> tuple[jax.Array, dict]:
    """The forward pass for one instance: token ids to logits (JW §3).

    Args:
      params: the model parameters.
      config: the model configuration.
      token_ids: int ``[T]``, ``[SOS] + tokens + [EOS]`` then PAD.
      length: scalar int, the number of non-PAD positions.
      question_ids: int ``[Tq]`` (qa only).
      question_length: scalar int (qa only).
      answer_mask, attention_override, stop_attention_gradient: see
        ``forward_from_embedded``.

    Returns:
      ``(logits [O], aux)`` as ``forward_from_embedded``.
    """
    _check_rank("token_ids", token_ids, 1)
    if config.task == "qa":
        if question_ids is None or question_length is None:
            raise ValueError("task='qa' needs question_ids [Tq] and question_length.")
        question = question_vector(params, config, question_ids, question_length)
    else:
        if question_ids is not None or question_length is not None:
            raise ValueError(
                f"task={config.task!r} takes no question; pass question_ids=None or use task='qa'."
            )
        question = None
    embedded = embed(params, config, token_ids)
    return forward_from_embedded(
        params,
        config,
        embedded,
        length,
        question,
        answer_mask=answer_mask,
        attention_override=attention_override,
        stop_attention_gradient=stop_attention_gradient,
    )


def forward_batch(
    params: Params,
    config: ModelConfig,
    batch: Mapping[str, jax.Array],
    *,
    stop_attention_gradient: str = "none",
) -> tuple[jax.Array, dict]:
    """``forward`` vmapped over a batch.

    Args:
      params: the model parameters.
      config: the model configuration.
      batch: ``"token_ids"`` int ``[B, T]`` and ``"lengths"`` int ``[B]``; for qa
        also ``"question_ids"`` ``[B, Tq]`` and ``"question_lengths"`` ``[B]``;
        optionally ``"answer_mask"`` bool ``[B, C]`` (qa) and
        ``"attention_override"`` ``[B, T]``. Other keys (labels, ids) are ignored.
      stop_attention_gradient: see ``forward_from_embedded``.

    Returns:
      ``(logits [B, O], aux)`` with every aux entry gaining a leading ``B`` axis.
    """
    for name in ("token_ids", "lengths"):
        if name not in batch:
            raise KeyError(f"forward_batch needs batch[{name!r}]; got keys {sorted(batch)}.")
    _check_rank("batch['token_ids']", batch["token_ids"], 2)
    inputs = {
        name: batch[name]
        for name in ("question_ids", "question_lengths", "answer_mask", "attention_override")
        if name in batch
    }
    if config.task == "qa" and not {"question_ids", "question_lengths"} <= set(inputs):
        raise KeyError(
            "task='qa' needs batch['question_ids'] [B, Tq] and batch['question_lengths'] [B]; "
            f"got keys {sorted(batch)}."
        )

    def forward_one(token_ids, length, extra):
        return forward(
            params,
            config,
            token_ids,
            length,
            extra.get("question_ids"),
            extra.get("question_lengths"),
            answer_mask=extra.get("answer_mask"),
            attention_override=extra.get("attention_override"),
            stop_attention_gradient=stop_attention_gradient,
        )

    return jax.vmap(forward_one)(batch["token_ids"], batch["lengths"], inputs)


def probabilities(logits: jax.Array, config: ModelConfig) -> jax.Array:
    """The output distribution ``ŷ``: binary ``[1 - σ(z), σ(z)]``, else ``softmax(z)``.

    Args:
      logits: ``[..., O]``.
      config: the model configuration.

    Returns:
      ``[..., num_classes]``.
    """
    if logits.shape[-1] != config.output_dim:
        raise ValueError(
            f"logits must end in output_dim={config.output_dim}; got shape {logits.shape}."
        )
    if config.binary:
        # σ(-z) rather than 1 - σ(z): exact for confident negatives.
        return jnp.concatenate([jax.nn.sigmoid(-logits), jax.nn.sigmoid(logits)], axis=-1)
    return jax.nn.softmax(logits, axis=-1)


def _check_rank(name: str, array: jax.Array, rank: int) -> None:
    if jnp.ndim(array) != rank:
        hint = " Use forward_batch for batches." if jnp.ndim(array) == rank + 1 else ""
        raise ValueError(
            f"{name} must have rank {rank} (one instance); got shape {jnp.shape(array)}.{hint}"
        )
