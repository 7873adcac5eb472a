"""What every audit starts from: the original forward pass of one instance."""

import jax
import jax.numpy as jnp


def original_pass(model, params, instance):
    """``(embedded [T, E], states, α [T], ŷ [C])`` of the unmodified instance."""
    embedded = model.embed(params, instance)
    states = model.encode(params, instance, embedded)
    alpha = model.attention(params, instance, states)
    probabilities = model.decode(params, instance, states, alpha)
    return embedded, states, alpha, probabilities


def chunked_vmap(function, inputs, chunk: int | None):
    """``vmap(function)(inputs)``, or at most ``chunk`` rows at a time to bound memory.

    ``inputs`` is an array or pytree with a leading axis of R rows; ``chunk`` None (or at
    least R) vmaps all rows at once. Otherwise the rows go in ``⌈R / chunk⌉`` equal steps
    (``lax.map`` over a vmapped body; the last row repeated to fill the last step, its
    results dropped): one body to compile, where ``lax.map(batch_size=...)`` compiles a
    second one for the remainder.
    """
    rows = jax.tree.leaves(inputs)[0].shape[0]
    if chunk is None or chunk >= rows:
        return jax.vmap(function)(inputs)
    steps = -(-rows // chunk)
    size = -(-rows // steps)

    def to_steps(x):
        filled = jnp.concatenate([x, jnp.repeat(x[-1:], steps * size - rows, axis=0)])
        return filled.reshape(steps, size, *x.shape[1:])

    outputs = jax.lax.map(jax.vmap(function), jax.tree.map(to_steps, inputs))
    return jax.tree.map(lambda y: y.reshape(steps * size, *y.shape[2:])[:rows], outputs)
