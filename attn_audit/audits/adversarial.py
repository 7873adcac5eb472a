"""The adversarial attention search (JW §3.3, SPEC §3.5).

Per instance, K attention distributions are parameterised as free logits
(initialised at ``3·N(0, 1)``, masked like α) and trained with PyTorch's AMSGrad
(JW's ``torch.optim.Adam(amsgrad=True)``, lr 0.01, 500 steps) on

    L = Σ_k [ −JSD(α_k, α̂) + 500·ReLU(TVD(ŷ(α_k), ŷ(α̂)) − 0.01) ] − mean_{k1<k2} JSD(α_k1, α_k2)

with the encoder states held fixed. Candidates whose output moves by more than
ε = 0.05 (TVD) are discarded; the original α always counts (JSD 0); the audit
reports the largest surviving JSD. The optimiser loop is a ``lax.scan``.
"""

import dataclasses

import jax
import jax.numpy as jnp
import optax

from attn_audit import stats
from attn_audit.audits.protocol import original_pass
from attn_audit.models import masked_softmax, real_token_mask
from attn_audit.training.optimizer import torch_amsgrad


@dataclasses.dataclass(frozen=True)
class AdversarySettings:
    """JW's settings (SPEC §3.5)."""

    num_candidates: int = 5
    steps: int = 500
    learning_rate: float = 0.01
    init_scale: float = 3.0
    output_margin: float = 0.01
    output_penalty: float = 500.0
    epsilon: float = 0.05


JW_ADVERSARY = AdversarySettings()


def _negative_entropy(p: jax.Array, eps: float) -> jax.Array:
    """``Σ_t p_t log(p_t + eps)`` over the last axis (``eps`` as ``stats.kl``)."""
    return jnp.sum(p * jnp.log(p + eps), axis=-1)


def adversarial_objective(logits, decode_fn, alpha, probabilities, mask, settings, eps=1e-10):
    """``L`` above for candidate logits ``[K, T]``; ``decode_fn(α [T]) -> ŷ [C]``.

    JSDs use ``JSD(p, q) = ½ Σ p log p + ½ Σ q log q − Σ m log m`` (``m = (p + q)/2``, logs
    of ``· + eps``), the same value as ``stats.jsd`` with one log per element and pair
    instead of three, and the K(K−1)/2 distinct pairs only: this loop runs 500 times.
    """
    candidates = masked_softmax(logits, mask)
    outputs = jax.vmap(decode_fn)(candidates)
    own = _negative_entropy(candidates, eps)  # [K]
    divergence = 0.5 * (own + _negative_entropy(alpha, eps)) - _negative_entropy(
        0.5 * (candidates + alpha[None, :]), eps
    )
    output_change = stats.tvd(outputs, probabilities[None, :])
    penalty = settings.output_penalty * jax.nn.relu(output_change - settings.output_margin)
    # The K(K−1)/2 pairs (k, k + d) as static slices, one offset d at a time: no gather,
    # whose gradient (a scatter) XLA:CPU runs slowly, and no small matmuls.
    pairwise = [
        0.5 * (own[:-offset] + own[offset:])
        - _negative_entropy(0.5 * (candidates[:-offset] + candidates[offset:]), eps)
        for offset in range(1, settings.num_candidates)
    ]
    num_pairs = settings.num_candidates * (settings.num_candidates - 1) // 2
    diversity = sum(jnp.sum(pairs) for pairs in pairwise) / max(num_pairs, 1)
    return jnp.sum(penalty - divergence) - diversity


def adversarial_search(model, params, instance, key, settings=JW_ADVERSARY) -> dict:
    """Searches adversarial attention for one instance.

    Returns:
      a dict with ``candidates [K, T]``, ``candidate_jsd [K]``, ``candidate_tvd [K]``,
      ``max_jsd`` (scalar: the largest JSD among candidates with TVD ≤ ε, or 0),
      ``selected`` (index of that candidate, −1 when only the original survives),
      ``selected_attention [T]`` (the original α when ``selected`` is −1) and
      ``selected_tvd`` (0 when ``selected`` is −1).
    """
    _, states, alpha, probabilities = original_pass(model, params, instance)
    alpha = jax.lax.stop_gradient(alpha)
    probabilities = jax.lax.stop_gradient(probabilities)
    num_positions = alpha.shape[0]
    mask = real_token_mask(instance["length"], num_positions)

    def decode_fn(candidate):
        return model.decode(params, instance, states, candidate)

    def objective(logits):
        return adversarial_objective(logits, decode_fn, alpha, probabilities, mask, settings)

    optimizer = torch_amsgrad(settings.learning_rate)
    # Drawn as [T, K] and transposed: position t's draws do not depend on the padded width T
    # (JAX's counter-based bits), so an instance gets the same adversary at any bucket width.
    noise = jax.random.normal(key, (num_positions, settings.num_candidates)).T
    logits = settings.init_scale * noise
    opt_state = optimizer.init(logits)

    def step(carry, _):
        logits, opt_state = carry
        grads = jax.grad(objective)(logits)
        updates, opt_state = optimizer.update(grads, opt_state, logits)
        return (optax.apply_updates(logits, updates), opt_state), None

    (logits, _), _ = jax.lax.scan(step, (logits, opt_state), None, length=settings.steps)
    candidates = masked_softmax(logits, mask)
    candidate_jsd = stats.jsd(candidates, alpha[None, :])
    candidate_tvd = stats.tvd(jax.vmap(decode_fn)(candidates), probabilities[None, :])
    surviving = jnp.where(candidate_tvd <= settings.epsilon, candidate_jsd, -jnp.inf)
    best = jnp.argmax(surviving)
    found = surviving[best] > 0.0
    return {
        "candidates": candidates,
        "candidate_jsd": candidate_jsd,
        "candidate_tvd": candidate_tvd,
        "max_jsd": jnp.where(found, surviving[best], 0.0),
        "selected": jnp.where(found, best, -1),
        "selected_attention": jnp.where(found, candidates[best], alpha),
        "selected_tvd": jnp.where(found, candidate_tvd[best], 0.0),
    }
