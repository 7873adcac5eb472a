"""Attention scores and masked attention weights (JW §3, SPEC §2).

Scores ``a_t`` come from encoder states ``h [T, H]`` (and, for QA, the
question vector ``q [H]``); the weights ``α = softmax(a)`` live on the real
tokens only (positions ``1 … length-2``) and are EXACTLY zero on SOS, EOS and
padding. The parameter subtree ``params["attention"]`` holds, by kind:

    tanh, classification: {"attn1": {"weight": [H/2, H], "bias": [H/2]},
                           "attn2": {"weight": [1, H/2]}}
    tanh, qa:             {"attn1p": {"weight": [H/2, H], "bias": [H/2]},
                           "attn1q": {"weight": [H/2, H], "bias": [H/2]},
                           "attn2":  {"weight": [1, H/2]}}
    dot, classification:  {"attn1": {"weight": [1, H]}}
    dot, qa:              {}   (a_t = h_t · q / sqrt(H) has no parameters)
    uniform:              {}   (a_t = 0, so α = 1/n on the n real tokens; WP §3.1)

Only attention parameters live under ``"attention"``: the trainer leaves this
subtree out of weight decay (SPEC §2).
"""

import math

import jax
import jax.numpy as jnp

from attn_audit.models import primitives
from attn_audit.models.config import ModelConfig

Params = dict


def init_attention(key: jax.Array, config: ModelConfig) -> Params:
    """Initialises the attention parameters like ``torch.nn.Linear`` defaults."""
    state_dim, hidden_dim = config.state_dim, config.attention_hidden_dim
    if config.attention == "uniform":
        return {}
    if config.attention == "dot":
        if config.task == "qa":
            return {}
        return {"attn1": primitives.init_linear(key, state_dim, 1, bias=False)}
    if config.task == "qa":
        passage_key, question_key, output_key = jax.random.split(key, 3)
        return {
            "attn1p": primitives.init_linear(passage_key, state_dim, hidden_dim),
            "attn1q": primitives.init_linear(question_key, state_dim, hidden_dim),
            "attn2": primitives.init_linear(output_key, hidden_dim, 1, bias=False),
        }
    hidden_key, output_key = jax.random.split(key)
    return {
        "attn1": primitives.init_linear(hidden_key, state_dim, hidden_dim),
        "attn2": primitives.init_linear(output_key, hidden_dim, 1, bias=False),
    }


def attention_scores(
    params: Params, config: ModelConfig, states: jax.Array, question: jax.Array | None = None
) -> jax.Array:
    """Unnormalised scores ``a_t`` for every position (masking comes later).

    - tanh: ``a_t = v · tanh(W h_t + b)``; qa: ``v · tanh(W_p h_t + b_p + W_q q + b_q)``;
    - dot:  ``a_t = w · h_t / sqrt(H)``;   qa: ``h_t · q / sqrt(H)``;
    - uniform: ``a_t = 0`` (the masked softmax then gives ``1/n``).

    It is ``scores_from_keys(attention_keys(h))``: the states enter through a linear map only.

    Args:
      params: the model parameters (reads ``params["attention"]``).
      config: the model configuration.
      states: encoder states ``[T, H]``.
      question: ``[H]`` for qa, ``None`` for classification.

    Returns:
      ``[T]``.
    """
    keys = attention_keys(params, config, states, question)
    return scores_from_keys(params, config, keys, question)


def attention_keys(
    params: Params, config: ModelConfig, states: jax.Array, question: jax.Array | None = None
) -> jax.Array:
    """The part of the scores that is linear in the states, bias-free: ``[T, H] -> [T, K]``.

    tanh: ``W h_t`` (``W_p h_t`` for qa), ``K = H/2``; dot: ``w · h_t`` (``h_t · q`` for qa),
    ``K = 1``; uniform: ``K = 0``. Linear in ``h``, so the keys of a sum of states are the sum
    of their keys (leave-one-out reads BiLSTM variants through this map,
    ``models.deletion_shortcut.bilstm_states_without_pair``).
    """
    _check_question(config, question)
    if config.attention == "uniform":
        return jnp.zeros(states.shape[:1] + (0,), states.dtype)
    layers = params["attention"]
    if config.attention == "dot":
        if config.task == "qa":
            return (states @ question)[:, None]
        return states @ layers["attn1"]["weight"].T
    first = layers["attn1p"] if config.task == "qa" else layers["attn1"]
    return states @ first["weight"].T


def scores_from_keys(
    params: Params, config: ModelConfig, keys: jax.Array, question: jax.Array | None = None
) -> jax.Array:
    """``attention_scores`` from ``attention_keys``' ``[T, K]``: ``[T]``."""
    _check_question(config, question)
    if config.attention == "uniform":
        return jnp.zeros(keys.shape[:1], keys.dtype)
    layers = params["attention"]
    if config.attention == "dot":
        return keys[:, 0] * (1.0 / math.sqrt(config.state_dim))
    if config.task == "qa":
        bias = layers["attn1p"]["bias"] + primitives.linear(layers["attn1q"], question)
    else:
        bias = layers["attn1"]["bias"]
    return primitives.linear(layers["attn2"], jnp.tanh(keys + bias[None, :]))[:, 0]


def attention_weights(scores: jax.Array, mask: jax.Array) -> jax.Array:
    """Masked softmax: ``α_t = exp(a_t) / Σ_{s in mask} exp(a_s)`` on the mask, exactly 0 off it.

    Equivalent to filling masked scores with ``-inf`` before the softmax, but
    written with a double ``where`` so that neither values nor gradients
    become NaN, even when the mask is empty (then ``α = 0``).

    Args:
      scores: ``[T]``.
      mask: bool ``[T]``, e.g. ``real_token_mask(length, T)``.

    Returns:
      ``[T]``, summing to 1 over the mask (0 if the mask is empty).
    """
    if scores.shape != mask.shape:
        raise ValueError(
            f"scores and mask must have the same shape; got {scores.shape} and {mask.shape}."
        )
    return primitives.masked_softmax(scores, mask)


def uniform_attention(mask: jax.Array) -> jax.Array:
    """``α_t = 1 / |mask|`` on the mask, 0 elsewhere (WP's uniform baseline, SPEC §4)."""
    count = jnp.sum(mask)
    return jnp.where(mask, 1.0 / jnp.maximum(count, 1), 0.0).astype(jnp.float32)


def _check_question(config: ModelConfig, question: jax.Array | None) -> None:
    if config.task == "qa" and question is None:
        raise ValueError("task='qa' needs the question vector q [H]; got question=None.")
    if config.task != "qa" and question is not None:
        raise ValueError(
            f"task={config.task!r} takes no question vector; pass question=None or use task='qa'."
        )
