"""The output layer on top of the attention context ``c = Σ_t α_t h_t`` (JW §3, SPEC §2).

``params["decoder"]`` holds, by task:

    classification: {"linear_1": {"weight": [O, H], "bias": [O]}}
    qa:             {"linear_1p": {"weight": [H/2, H], "bias": [H/2]},
                     "linear_1q": {"weight": [H/2, H], "bias": [H/2]},
                     "linear_2":  {"weight": [O, H/2], "bias": [O]}}

with ``O = config.output_dim`` (1 for binary classification). ``decode``
takes α as an argument, so audits can re-run the decoder with another
attention (permutation, adversarial search) while the states stay fixed.
"""

import jax
import jax.numpy as jnp

from attn_audit.models import primitives
from attn_audit.models.config import ModelConfig

Params = dict


def init_decoder(key: jax.Array, config: ModelConfig) -> Params:
    """Initialises the decoder like ``torch.nn.Linear`` defaults."""
    state_dim, output_dim = config.state_dim, config.output_dim
    if config.task == "classification":
        return {"linear_1": primitives.init_linear(key, state_dim, output_dim)}
    hidden_dim = config.attention_hidden_dim
    passage_key, question_key, output_key = jax.random.split(key, 3)
    return {
        "linear_1p": primitives.init_linear(passage_key, state_dim, hidden_dim),
        "linear_1q": primitives.init_linear(question_key, state_dim, hidden_dim),
        "linear_2": primitives.init_linear(output_key, hidden_dim, output_dim),
    }


def attention_context(states: jax.Array, alpha: jax.Array) -> jax.Array:
    """``c = Σ_t α_t h_t``: ``[T, H], [T] -> [H]``."""
    return alpha @ states


def decode_context(
    params: Params,
    config: ModelConfig,
    context: jax.Array,
    question: jax.Array | None = None,
    answer_mask: jax.Array | None = None,
) -> jax.Array:
    """Logits from the context vector.

    - classification: ``Linear(H -> O)(c)``;
    - qa: ``Linear_2(tanh(Linear_1p(c) + Linear_1q(q)))``, then ``-inf`` on
      candidates where ``answer_mask`` is False (JW's entity mask; all ones for
      SNLI and bAbI, which is the default).

    Args:
      params: the model parameters (reads ``params["decoder"]``).
      config: the model configuration.
      context: ``[H]``.
      question: ``[H]`` for qa, ``None`` for classification.
      answer_mask: optional bool ``[num_classes]`` (qa only).

    Returns:
      logits ``[config.output_dim]``.
    """
    layers = params["decoder"]
    if config.task == "classification":
        if question is not None or answer_mask is not None:
            raise ValueError("Classification takes no question vector and no answer_mask.")
        return primitives.linear(layers["linear_1"], context)
    if question is None:
        raise ValueError("task='qa' needs the question vector q [H]; got question=None.")
    hidden = jnp.tanh(
        primitives.linear(layers["linear_1p"], context)
        + primitives.linear(layers["linear_1q"], question)
    )
    logits = primitives.linear(layers["linear_2"], hidden)
    if answer_mask is not None:
        logits = jnp.where(answer_mask, logits, -jnp.inf)
    return logits


def decode(
    params: Params,
    config: ModelConfig,
    states: jax.Array,
    alpha: jax.Array,
    question: jax.Array | None = None,
    answer_mask: jax.Array | None = None,
) -> jax.Array:
    """Logits given states and ANY attention α: ``decode_context(c = Σ_t α_t h_t)``.

    Args:
      params: the model parameters.
      config: the model configuration.
      states: ``[T, H]``.
      alpha: ``[T]``.
      question: ``[H]`` for qa, ``None`` for classification.
      answer_mask: optional bool ``[num_classes]`` (qa only).

    Returns:
      logits ``[config.output_dim]``.
    """
    context = attention_context(states, alpha)
    return decode_context(params, config, context, question, answer_mask)


def project_states(params: Params, config: ModelConfig, states: jax.Array) -> jax.Array:
    """Per-token projections through the decoder's first (linear) layer, bias left out.

    The decoder's first layer is linear in ``c = Σ_t α_t h_t``, so
    ``W c = Σ_t α_t (W h_t)``: with ``P = h Wᵀ`` computed once, any other α costs
    ``α P`` (``[T]·[T, O]``) instead of ``α h`` (``[T]·[T, H]``). The permutation
    test and the adversarial search re-score thousands of α on fixed states.

    Returns:
      classification: ``[T, O]`` (``linear_1``); qa: ``[T, H/2]`` (``linear_1p``).
    """
    layers = params["decoder"]
    first = layers["linear_1"] if config.task == "classification" else layers["linear_1p"]
    return states @ first["weight"].T


def decode_projected(
    params: Params,
    config: ModelConfig,
    projected: jax.Array,
    alpha: jax.Array,
    question: jax.Array | None = None,
) -> jax.Array:
    """``decode`` from ``project_states``' ``[T, P]``: the same logits ``[config.output_dim]``."""
    layers = params["decoder"]
    if config.task == "classification":
        return alpha @ projected + layers["linear_1"]["bias"]
    if question is None:
        raise ValueError("task='qa' needs the question vector q [H]; got question=None.")
    hidden = jnp.tanh(
        alpha @ projected
        + layers["linear_1p"]["bias"]
        + primitives.linear(layers["linear_1q"], question)
    )
    return primitives.linear(layers["linear_2"], hidden)
