"""Dense layers stored in PyTorch layout, initialised like PyTorch's defaults.

A layer is a dict ``{"weight": [out, in], "bias": [out]}`` (``bias`` optional),
the layout of ``torch.nn.Linear``, so exporting to PyTorch is a rename.
"""

import math

import jax
import jax.numpy as jnp

Params = dict


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
    """``W x + b`` for one vector.

    Args:
      layer: ``{"weight": [out, in], "bias": [out]}`` (bias optional).
      inputs: ``[in]``.

    Returns:
      ``[out]``.
    """
    outputs = layer["weight"] @ inputs
    if "bias" in layer:
        outputs = outputs + layer["bias"]
    return outputs


def linear_per_position(layer: Params, inputs: jax.Array) -> jax.Array:
    """``linear`` applied to every row: ``[T, in] -> [T, out]``."""
    return jax.vmap(linear, in_axes=(None, 0))(layer, inputs)
