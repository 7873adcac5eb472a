"""What every audit starts from: the original forward pass of one instance."""

import jax


def original_pass(model, params, instance):
    """``(embedded [T, E], states, α [T], ŷ [C])`` of the unmodified instance."""
    embedded = model.embed(params, instance)
    states = model.encode(params, instance, embedded)
    alpha = model.attention(params, instance, states)
    probabilities = model.decode(params, instance, states, alpha)
    return embedded, states, alpha, probabilities


def chunked_vmap(function, inputs, chunk: int | None):
    """``vmap(function)(inputs)``, or ``chunk`` rows at a time (``lax.map``) to bound memory.

    ``inputs`` is an array or pytree with a leading axis; ``chunk`` None (or at least its
    length) vmaps all rows at once.
    """
    rows = jax.tree.leaves(inputs)[0].shape[0]
    if chunk is None or chunk >= rows:
        return jax.vmap(function)(inputs)
    return jax.lax.map(function, inputs, batch_size=chunk)
