r"""Raw attention, the residual graph and attention rollout (Abnar & Zuidema 2020, §3; SPEC §5).

A transformer's attention read as a layered graph: one node per (layer, position), layer 0
the input tokens, and an edge from node (l−1, j) to node (l, i) weighted by the
head-averaged attention with the residual added, ``A'_l = rownorm(0.5·Ā_l + 0.5·I)``.

- ``raw_attention``: the head average ``Ā_l``;
- ``residual_attention``: ``A'_l``;
- ``rollout``: ``R_1 = A'_1``, ``R_l = A'_l · R_{l−1}``, the sum over paths of the products
  of their weights (jit- and vmap-able).

The exact max-flow reading of the same graph is ``attn_audit.audits.flow``.

**Padding.** An optional ``length`` keeps positions ``[0, length)``: the attention is cut to
them before the residual and the renormalisation, and the padded rows and columns of every
output are zero.
"""

import jax
import jax.numpy as jnp


def _check_attention_shape(attention, function: str) -> None:
    if attention.ndim != 4 or attention.shape[-1] != attention.shape[-2]:
        raise ValueError(
            f"{function} expects attention of shape [layers, heads, n, n] (square maps, "
            f"rows queries); got {tuple(attention.shape)}. For a batch use "
            f"jax.vmap({function}); for one head add an axis (attention[:, None])."
        )


def _position_mask(n: int, length) -> jax.Array | None:
    """``[n, n]`` True where both the query and the key are among the first ``length``."""
    if length is None:
        return None
    real = jnp.arange(n) < length  # [n]
    return real[:, None] & real[None, :]


def raw_attention(attention: jax.Array, length: int | jax.Array | None = None) -> jax.Array:
    """Head-averaged attention maps, ``Ā_l = mean_h A_{l,h}`` (AZ §3, "raw attention").

    Args:
      attention: ``[layers, heads, n, n]`` attention weights, rows queries, columns keys.
      length: number of real positions; padded rows and columns of the result are 0.

    Returns:
      ``[layers, n, n]``.
    """
    _check_attention_shape(attention, "raw_attention")
    averaged = jnp.mean(attention, axis=1)
    mask = _position_mask(attention.shape[-1], length)
    return averaged if mask is None else jnp.where(mask[None], averaged, 0)


def residual_attention(attention: jax.Array, length: int | jax.Array | None = None) -> jax.Array:
    """Head average with the residual connection, ``A' = rownorm(0.5·Ā + 0.5·I)`` (AZ §3).

    ``rownorm`` divides each row by its sum, so every real row sums to 1 whatever the input's
    row sums. With ``length``, the attention is cut to the first ``length`` positions before
    the renormalisation, and the padded rows and columns are 0.

    Args:
      attention: ``[layers, heads, n, n]`` nonnegative attention weights.
      length: number of real positions (an int or a traced scalar), or None for all.

    Returns:
      ``[layers, n, n]``.
    """
    _check_attention_shape(attention, "residual_attention")
    averaged = raw_attention(attention, length)
    n = attention.shape[-1]
    augmented = 0.5 * averaged + 0.5 * jnp.eye(n, dtype=averaged.dtype)[None]  # [layers, n, n]
    normalised = augmented / jnp.sum(augmented, axis=-1, keepdims=True)
    mask = _position_mask(n, length)
    return normalised if mask is None else jnp.where(mask[None], normalised, 0)


def rollout(attention: jax.Array, length: int | jax.Array | None = None) -> jax.Array:
    """Attention rollout, ``R_1 = A'_1``, ``R_l = A'_l · R_{l−1}`` (AZ §3, SPEC §5).

    ``R_l[i, j]`` is the sum over paths from input token j to position i of layer l of the
    products of the residual attention weights along the path. One ``lax.scan`` over layers;
    jit it at the call site and vmap it over a batch (``jax.vmap(rollout)(attention, lengths)``).

    Args:
      attention: ``[layers, heads, n, n]`` nonnegative attention weights.
      length: number of real positions; padded rows and columns of the result are 0.

    Returns:
      ``[layers, n, n]``: rows are positions of layer l (queries), columns input tokens; each
      real row sums to 1.
    """
    _check_attention_shape(attention, "rollout")
    residual = residual_attention(attention, length)

    def step(previous, layer):
        current = layer @ previous  # [n, n]
        return current, current

    identity = jnp.eye(attention.shape[-1], dtype=residual.dtype)
    _, rolled = jax.lax.scan(step, identity, residual)
    return rolled
