"""Training objectives: JW's losses and Wiegreffe & Pinter's guided training (SPEC §2, §4).

Binary classification: BCE with ``pos_weight = N_neg / N_pos``; multi-class and QA/NLI:
softmax cross-entropy. A ``Guide`` (another trained run) either freezes this model's
attention to its own (WP §3.3) or makes this model its adversary (WP §4).
"""

import dataclasses

import jax
import jax.numpy as jnp
import optax

from attn_audit import models, stats


@dataclasses.dataclass(frozen=True)
class Guide:
    """Another trained model that shapes this training (WP §3.3 and §4).

    ``role="frozen_attention"``: this model decodes with the guide's α (stop-gradient);
    ``role="adversary"``: this model is trained to match the guide's outputs while its
    attention moves away: loss ``TVD(ŷ, ŷ_g) − λ·KL(α ‖ α_g)``, averaged (or, with
    ``wp_quirk``, summed over the batch with WP's half TVD ``½|p − p_g|`` for binary).
    """

    config: models.ModelConfig
    role: str
    adversarial_lambda: float = 0.0
    wp_quirk: bool = False


def guide_outputs(guide_params, guide: Guide, batch):
    """The guide's ``(probabilities [B, C], attention [B, T])``, held constant."""
    logits, aux = models.forward_batch(guide_params, guide.config, batch)
    outputs = models.probabilities(logits, guide.config), aux["attention"]
    return jax.lax.stop_gradient(outputs)


def adversarial_terms(probabilities, attention, guide_probabilities, guide_attention, guide):
    """Per-row ``(TVD(ŷ, ŷ_g), KL(α ‖ α_g), JSD(α, α_g))``; WP's half TVD with ``wp_quirk``."""
    output_change = stats.tvd(probabilities, guide_probabilities)
    if guide.wp_quirk and guide.config.binary:
        output_change = 0.5 * output_change
    return (
        output_change,
        stats.kl(attention, guide_attention),
        stats.jsd(attention, guide_attention),
    )


def loss_fn(
    params, model_config, batch, pos_weight, guide_params=None, guide=None, freeze_encoder=False
):
    """Mean loss over the real rows of ``batch`` (``weights`` is 0 on padding rows).

    Binary: ``−[w·y·log σ(z) + (1−y)·log σ(−z)]`` with ``w = pos_weight``;
    otherwise ``−log softmax(z)_y``. With an adversary ``guide``, WP's objective
    instead (see ``Guide``). ``freeze_encoder`` stops the gradient at the encoder,
    so that its backward pass is not even computed.
    """
    if freeze_encoder:
        params = {**params, "encoder": jax.lax.stop_gradient(params["encoder"])}
    weights = batch["weights"]
    if guide is not None:
        guide_probabilities, guide_attention = guide_outputs(guide_params, guide, batch)
        if guide.role == "frozen_attention":
            batch = {**batch, "attention_override": guide_attention}
    logits, aux = models.forward_batch(params, model_config, batch)
    if guide is not None and guide.role == "adversary":
        output_change, divergence, _ = adversarial_terms(
            models.probabilities(logits, model_config), aux["attention"],
            guide_probabilities, guide_attention, guide,
        )  # fmt: skip
        per_row = output_change - guide.adversarial_lambda * divergence
        if guide.wp_quirk:
            return jnp.sum(per_row * weights)
        return jnp.sum(per_row * weights) / jnp.maximum(jnp.sum(weights), 1.0)
    labels = batch["labels"]
    if model_config.binary:
        z = logits[:, 0]
        y = labels.astype(z.dtype)
        per_row = pos_weight * y * jax.nn.softplus(-z) + (1.0 - y) * jax.nn.softplus(z)
    else:
        per_row = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    return jnp.sum(per_row * weights) / jnp.maximum(jnp.sum(weights), 1.0)
