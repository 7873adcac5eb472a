"""The primitives every model shares, each written once: the token masks, the masked
softmax, the linear layer and layer norm.

A linear layer is a dict ``{"weight": [out, in], "bias": [out]}`` (``bias`` optional),
the layout of ``torch.nn.Linear``, initialised like PyTorch's defaults, so exporting to
PyTorch is a rename.

A sequence is ``[SOS] + tokens + [EOS]`` then PAD (BERT: ``[CLS] + pieces + [SEP]``);
``length`` counts its non-PAD positions. The real tokens are positions
``1 … length − 2`` (SPEC §1): attention, audits and explainers live there only.
"""

import math

import jax
import jax.numpy as jnp

from attn_audit.data.vocab import PAD

Params = dict

# The padding id of every vocabulary here (JW's and BERT's [PAD]), fixed by attn_audit.data.vocab.
PAD_ID = PAD


def valid_mask(length: jax.Array, num_positions: int) -> jax.Array:
    """``t < length``: the non-PAD positions, SOS and EOS included.

    Args:
      length: scalar int, the number of non-PAD positions.
      num_positions: T.

    Returns:
      bool ``[T]``.
    """
    return jnp.arange(num_positions) < length


def is_real_token(positions, length):
    """``1 <= t <= length − 2`` for every position t: a real token, not SOS, EOS or PAD.

    Works on jax and numpy arrays alike (broadcasting ``positions`` against ``length``).
    """
    return (positions >= 1) & (positions <= length - 2)


def real_token_mask(length: jax.Array, num_positions: int) -> jax.Array:
    """The real tokens of a sequence: bool ``[T]``, True at ``1 <= t <= length − 2``.

    Args:
      length: scalar int, the number of non-PAD positions (SOS and EOS included).
      num_positions: T.

    Returns:
      bool ``[T]``.
    """
    return is_real_token(jnp.arange(num_positions), length)


def masked_softmax(scores: jax.Array, mask: jax.Array) -> jax.Array:
    """Softmax over the last axis restricted to ``mask``, exactly 0 off it.

    ``p_t = exp(s_t) / Σ_{u in mask} exp(s_u)`` on the mask. Equivalent to filling masked
    scores with ``-inf`` before the softmax, but written with a double ``where`` so that
    neither values nor gradients become NaN, even when the mask is empty (then ``p = 0``).

    Args:
      scores: ``[..., T]``.
      mask: bool, broadcastable to ``scores`` (e.g. ``real_token_mask(length, T)``).

    Returns:
      ``[..., T]``, summing to 1 over the mask (0 where the mask is empty).
    """
    mask = jnp.broadcast_to(mask, scores.shape)
    largest = jnp.max(jnp.where(mask, scores, -jnp.inf), axis=-1, keepdims=True)
    largest = jax.lax.stop_gradient(jnp.where(jnp.isfinite(largest), largest, 0.0))
    exponentials = jnp.where(mask, jnp.exp(jnp.where(mask, scores - largest, 0.0)), 0.0)
    total = jnp.sum(exponentials, axis=-1, keepdims=True)
    return exponentials / jnp.where(total > 0, total, 1.0)


def uniform(key: jax.Array, shape: tuple[int, ...], bound: float) -> jax.Array:
    """Samples ``U(-bound, bound)`` in float32."""
    return jax.random.uniform(key, shape, jnp.float32, minval=-bound, maxval=bound)


def init_linear(
    key: jax.Array, in_features: int, out_features: int, *, bias: bool = True
) -> Params:
    """A ``torch.nn.Linear(in_features, out_features, bias)`` with its default init.

    PyTorch draws weight and bias from ``U(-1/sqrt(in), 1/sqrt(in))``.

    Returns:
      ``{"weight": [out, in], "bias": [out]}``; no ``"bias"`` when ``bias=False``.
    """
    weight_key, bias_key = jax.random.split(key)
    bound = 1.0 / math.sqrt(in_features)
    layer = {"weight": uniform(weight_key, (out_features, in_features), bound)}
    if bias:
        layer["bias"] = uniform(bias_key, (out_features,), bound)
    return layer


def linear(layer: Params, inputs: jax.Array) -> jax.Array:
    """``x Wᵀ + b`` on the last axis.

    Args:
      layer: ``{"weight": [out, in], "bias": [out]}`` (bias optional).
      inputs: ``[..., in]``.

    Returns:
      ``[..., out]``.
    """
    outputs = inputs @ layer["weight"].T
    if "bias" in layer:
        outputs = outputs + along_last(layer["bias"], outputs)
    return outputs


def along_last(vector: jax.Array, like: jax.Array) -> jax.Array:
    """``[D] -> [1, …, 1, D]`` with the rank of ``like`` (rank promotion is an error here)."""
    return vector.reshape((1,) * (like.ndim - 1) + vector.shape)


def layer_norm(norm: Params, inputs: jax.Array, eps: float) -> jax.Array:
    """``γ (x − μ) / sqrt(σ² + ε) + β`` over the last axis (biased variance, as PyTorch).

    Args:
      norm: ``{"weight": γ [D], "bias": β [D]}``.
      inputs: ``[..., D]``.
      eps: ε.

    Returns:
      ``[..., D]``.
    """
    mean = jnp.mean(inputs, axis=-1, keepdims=True)
    variance = jnp.mean(jnp.square(inputs - mean), axis=-1, keepdims=True)
    normalised = (inputs - mean) * jax.lax.rsqrt(variance + eps)
    return normalised * along_last(norm["weight"], inputs) + along_last(norm["bias"], inputs)
