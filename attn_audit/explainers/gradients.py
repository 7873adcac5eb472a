"""Gradient explainers through the whole model (SPEC §7, §9): gradient × input, the
gradient's L2 norm and integrated gradients.

Unlike JW's gradient audit (``audits.gradient``), attention is not held fixed:
``f(e) = p(ŷ | e)`` is differentiated through the encoder, the attention and the
decoder, as Captum differentiates a model's forward function.
"""

import jax
import jax.numpy as jnp
import numpy as np

from attn_audit.audits.protocol import original_pass
from attn_audit.batch_engine import chunked_vmap, ragged_map
from attn_audit.explainers.perturbation import coalition_shortcut, remove_tokens
from attn_audit.models import real_token_mask

IG_RULES = ("gausslegendre", "riemann_trapezoid")


def _probability_of_embedded(model, params, instance, target):
    """``e [T, E] -> p(target | e)``; the token ids only set the length and the question.

    The model's ``forward`` where it has one (the transformers' adapters: their ``decode``
    holds the heads' own rows, so its gradient is not the model's), else
    ``decode(encode(e), attention(encode(e)))``.
    """
    forward = getattr(model, "forward", None)
    if forward is not None:
        return lambda embedded: forward(params, instance, embedded)[target]

    def probability(embedded):
        states = model.encode(params, instance, embedded)
        alpha = model.attention(params, instance, states)
        return model.decode(params, instance, states, alpha)[target]

    return probability


def _embedding_gradient(model, params, instance):
    """``(e [T, E], ∂f/∂e [T, E], real [T])`` with ``f = p(ŷ | x)`` through the whole model."""
    embedded, _, _, probabilities = original_pass(model, params, instance)
    target = jnp.argmax(probabilities)
    gradient = jax.grad(_probability_of_embedded(model, params, instance, target))(embedded)
    return embedded, gradient, real_token_mask(instance["length"], embedded.shape[0])


def grad_input(model, params, instance) -> jax.Array:
    """``Σ_d e_{t,d} ∂f/∂e_{t,d}`` with ``f = p(ŷ | x)``: ``[T]``, zero off the real tokens."""
    embedded, gradient, real = _embedding_gradient(model, params, instance)
    return jnp.where(real, jnp.sum(gradient * embedded, axis=-1), 0.0)


def grad_l2(model, params, instance) -> jax.Array:
    """Gradient L2 norm (Bastings et al. 2022's Grad-L2): ``‖∂f/∂e_t‖₂`` with
    ``f = p(ŷ | x)`` through the whole model: ``[T]``, zero off the real tokens."""
    _, gradient, real = _embedding_gradient(model, params, instance)
    return jnp.where(real, jnp.sqrt(jnp.sum(gradient * gradient, axis=-1)), 0.0)


def integration_points(rule: str, num_points: int) -> tuple[np.ndarray, np.ndarray]:
    """``(a [m], w [m])`` on [0, 1] with ``∫₀¹ g ≈ Σ_k w_k g(a_k)``; Captum's two rules by name.

    ``gausslegendre``: Legendre nodes and weights mapped from [-1, 1] (exact for
    polynomials of degree < 2m), Captum's default and the same as Captum's.
    ``riemann_trapezoid``: ``a = 0, 1/(m−1), …, 1`` with weights ``1/(m−1)``, halved at
    both ends (they sum to 1). Captum 0.9 weights the same nodes ``1/m`` (summing to
    ``1 − 1/m``), so its trapezoid IG is ``(m−1)/m`` of this one and misses completeness
    by ``1/m`` of ``f(x) − f(b)`` (tests/explainers/captum_test.py pins the factor).
    """
    if rule not in IG_RULES:
        raise ValueError(f"Unknown integration rule {rule!r}; choose from {list(IG_RULES)}.")
    if num_points < 2:
        raise ValueError(f"Integrated gradients needs at least 2 points, got {num_points}.")
    if rule == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(num_points)
        return 0.5 * (nodes + 1.0), 0.5 * weights
    weights = np.full(num_points, 1.0 / (num_points - 1))
    weights[[0, -1]] /= 2.0
    return np.linspace(0.0, 1.0, num_points), weights


def integrated_gradients(
    model, params, instance, mask_token_id: int, num_points: int = 50,
    rule: str = "gausslegendre", chunk: int | None = None,
) -> tuple[jax.Array, jax.Array]:  # fmt: skip
    """Integrated gradients from the mask-token baseline (Sundararajan et al. 2017, SPEC §7).

    ``IG_t = Σ_d (e_{t,d} − b_{t,d}) Σ_k w_k ∂f(b + a_k(e − b))/∂e_{t,d}``, with ``b`` the
    embedding of the instance whose real tokens are all the mask token (SOS, EOS and
    the question kept) and ``(a_k, w_k)`` from ``integration_points``. The gradients at
    the ``m`` points are vmapped, ``chunk`` points at a time.

    Returns:
      ``(IG [T], zero off the real tokens; completeness gap |Σ_t IG_t − (f(x) − f(b))|)``.
    """
    embedded, _, _, probabilities = original_pass(model, params, instance)
    target = jnp.argmax(probabilities)
    num_positions = embedded.shape[0]
    masked = remove_tokens(instance, jnp.zeros(num_positions, bool), "mask", mask_token_id)
    baseline = model.embed(params, masked)
    probability = _probability_of_embedded(model, params, instance, target)
    alphas, weights = integration_points(rule, num_points)
    difference = embedded - baseline
    gradients = chunked_vmap(
        lambda a: jax.grad(probability)(baseline + a * difference),
        jnp.asarray(alphas, embedded.dtype),
        chunk,
    )
    average_gradient = jnp.tensordot(jnp.asarray(weights, embedded.dtype), gradients, axes=1)
    scores = jnp.sum(difference * average_gradient, axis=-1)
    scores = jnp.where(real_token_mask(instance["length"], num_positions), scores, 0.0)
    gap = jnp.abs(jnp.sum(scores) - (probabilities[target] - probability(baseline)))
    return scores, gap


def integrated_gradients_of_batch(
    model, params, instances, mask_token_id: int, num_points: int = 50,
    rule: str = "gausslegendre", per_step: int | None = None,
) -> tuple[jax.Array, jax.Array]:  # fmt: skip
    """``integrated_gradients`` of every row of a batch: the (row, point) gradients of the rows
    with real tokens run ``per_step`` at a time (``batch_engine.ragged_map``), one flat
    ``vmap`` instead of a ``vmap`` over rows of one over points.

    Each point's contribution is taken as the derivative along the path,
    ``∂/∂w_t f(b + w ⊙ (e − b)) = Σ_d (e − b)_{t,d} ∂f/∂e_{t,d}`` at ``w = a``. A model with
    ``coalition_states`` (``audits.protocol``; JW's BiLSTM) evaluates ``f`` at ``w`` from its
    first layer's two projections, ``(1 − w_t) P(b_t) + w_t P(e_t)`` (affine), so no point
    is embedded or projected and no ``[T, E]`` gradient is formed; others differentiate the
    embedded point.

    Returns:
      ``(IG [B, T], completeness gap [B])``, as ``integrated_gradients`` gives each row.
    """
    embedded, _, _, probabilities = jax.vmap(lambda i: original_pass(model, params, i))(instances)
    targets = jnp.argmax(probabilities, axis=-1)
    num_rows, num_positions = instances["token_ids"].shape
    none_kept = jnp.zeros(num_positions, bool)
    baselines = jax.vmap(
        lambda i: model.embed(params, remove_tokens(i, none_kept, "mask", mask_token_id))
    )(instances)
    alphas, weights = (jnp.asarray(v, embedded.dtype) for v in integration_points(rule, num_points))

    real = jax.vmap(lambda n: real_token_mask(n, num_positions))(instances["length"])

    def probability(row, point):
        instance = jax.tree.map(lambda leaf: leaf[row], instances)
        return _probability_of_embedded(model, params, instance, targets[row])(point)

    shortcut = coalition_shortcut(model, params, instances, mask_token_id)

    def path_gradient(row, point):  # Σ_d (e − b)_{t,d} ∂f/∂e_{t,d} at b + a (e − b): [T]
        if shortcut is None:
            start, difference = baselines[row], embedded[row] - baselines[row]
            gradient = jax.grad(lambda e: probability(row, e))(start + alphas[point] * difference)
            return jnp.sum(difference * gradient, axis=-1)
        instance = jax.tree.map(lambda leaf: leaf[row], instances)

        def along_path(presence):  # f(b + w ⊙ (e − b)), w = 1 off the real tokens
            states = shortcut.states(shortcut.context, row, jnp.where(real[row], presence, 1.0))
            alpha = model.attention(params, instance, states)
            return model.decode(params, instance, states, alpha)[targets[row]]

        return jax.grad(along_path)(jnp.full(num_positions, alphas[point]))

    needed = jnp.broadcast_to((instances["length"] >= 1)[:, None], (num_rows, num_points))
    path_gradients = ragged_map(path_gradient, needed, per_step)  # [B, m, T]
    scores = jnp.where(real, jnp.tensordot(weights, path_gradients, axes=(0, 1)), 0.0)
    rows = jnp.arange(num_rows)
    baseline_values = jax.vmap(probability)(rows, baselines)
    full_values = jnp.take_along_axis(probabilities, targets[:, None], axis=-1)[:, 0]
    gap = jnp.abs(jnp.sum(scores, axis=-1) - (full_values - baseline_values))
    return scores, gap
