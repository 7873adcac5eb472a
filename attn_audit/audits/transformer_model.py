"""The transformer (``models.transformer``) as an auditable model, and the adapter picker.

JW's audits need one attention distribution α over the real tokens and a
decoder that takes another α (SPEC §3). For a transformer, α is the last
block's CLS-query row, averaged over heads and renormalised over the real
tokens; a new α re-runs that block at the CLS position only.
"""

import dataclasses

import jax
import jax.numpy as jnp

from attn_audit import models
from attn_audit.audits.protocol import JWModel
from attn_audit.models import real_token_mask, transformer

HEAD_MIXINGS = ("reweighted", "shared")


@dataclasses.dataclass(frozen=True)
class TransformerModel:
    """attn_audit's transformer (``models.transformer``) as an ``AuditableModel``.

    α is the last block's CLS-query row averaged over heads, over the real tokens.

    - ``encode`` gives everything up to the last block's attention: ``{"last_inputs":
      [T, D], "last_values": [T, H, d_h], "cls_rows": [H, T], "states": [T, D]}``;
    - ``decode(α)`` re-runs the last block at the CLS position only (no other
      position depends on its row) with the rows ``mix_heads(cls_rows,
      α, head_mixing)``. ``"reweighted"`` (default) gives back the model's own
      output at the model's α; ``"shared"`` gives one α to every head.

    ``cls_rows`` are held fixed (stop-gradient), so the gradient audit holds the
    audited attention fixed as JW's does; the earlier blocks' attention still
    moves with the input. With mean pooling only position 0's share of the mean
    depends on α.
    """

    config: models.ModelConfig
    head_mixing: str = "reweighted"

    def __post_init__(self):
        if not self.config.is_transformer:
            raise ValueError(
                f"TransformerModel needs encoder='transformer'; got {self.config.encoder!r} "
                "(use JWModel, or auditable_model(config) to pick)."
            )
        if self.head_mixing not in HEAD_MIXINGS:
            raise ValueError(
                f"head_mixing must be one of {HEAD_MIXINGS}; got {self.head_mixing!r}."
            )

    def embed(self, params, instance):
        return transformer.embed(params, self.config, instance["token_ids"])

    def encode(self, params, instance, embedded):
        encoded = transformer.encode(params, self.config, embedded, instance["length"])
        return {
            "last_inputs": encoded["last_inputs"],
            "last_values": encoded["last_values"],
            "cls_rows": encoded["attention_maps"][-1, :, 0, :],
            "states": encoded["states"],
        }

    def forward(self, params, instance, embedded):
        """The model's probabilities ``[C]`` from ``e`` with no attention held (the plain
        forward pass): what the gradient explainers differentiate."""
        logits, _ = transformer.forward_from_embedded(
            params, self.config, embedded, instance["length"]
        )
        return models.probabilities(logits, self.config)

    def attention_maps(self, params, instance) -> jax.Array:
        """Every block's attention ``[L, H, T, T]`` (rows queries), for rollout and flow."""
        embedded = self.embed(params, instance)
        encoded = transformer.encode(params, self.config, embedded, instance["length"])
        return encoded["attention_maps"]

    def attention(self, params, instance, states):
        return transformer.audited_attention(states["cls_rows"][:, None, :], instance["length"])

    def decode(self, params, instance, states, alpha):
        length = instance["length"]
        rows = mix_heads(jax.lax.stop_gradient(states["cls_rows"]), alpha, length, self.head_mixing)
        last_block = jax.tree.map(lambda stacked: stacked[-1], params["encoder"]["layers"])
        cls_state = transformer.block_output(
            last_block, self.config, states["last_inputs"][:1], states["last_values"],
            rows[:, None, :],
        )[0]  # fmt: skip
        # A batch's padding row (length 0) keeps its zero state, as in the forward pass.
        cls_state = jnp.where(length > 0, cls_state, 0.0)
        pooled = transformer.pool(self.config, states["states"].at[0].set(cls_state), length)
        return models.probabilities(transformer.classify(params, self.config, pooled), self.config)


def mix_heads(
    cls_rows: jax.Array, alpha: jax.Array, length: jax.Array, head_mixing: str = "reweighted"
) -> jax.Array:
    """The last block's CLS rows ``[H, T]`` once the audited α is replaced by ``alpha``.

    Every head keeps its own mass on the non-real positions (SOS/[CLS], EOS/[SEP])
    and its total mass ``m_h`` on the real tokens; what changes is how ``m_h`` is
    spread over the real tokens ``t``:

    - ``"reweighted"``: ``A'_h[t] ∝ A_h[t] · α_t / α̂_t``, scaled to sum ``m_h``: each
      head keeps its preferences relative to the head average ``α̂``. With
      ``alpha = α̂`` the rows are the model's own, so ``decode(α̂)`` is the
      model's output (to float rounding).
    - ``"shared"``: ``A'_h[t] = m_h · α_t``: one distribution for every head. With
      ``alpha = α̂`` it differs from the model as far as its heads disagree.

    Args:
      cls_rows: the model's own rows ``[H, T]`` (positions past length are 0).
      alpha: the new α ``[T]``, on the real tokens, summing to 1.
      length: scalar int.
      head_mixing: ``"reweighted"`` or ``"shared"``.

    Returns:
      ``[H, T]``.
    """
    if head_mixing not in HEAD_MIXINGS:
        raise ValueError(f"head_mixing must be one of {HEAD_MIXINGS}; got {head_mixing!r}.")
    real = real_token_mask(length, cls_rows.shape[-1])[None, :]  # [1, T]
    real_rows = jnp.where(real, cls_rows, 0.0)
    real_mass = jnp.sum(real_rows, axis=-1, keepdims=True)  # m_h, [H, 1]
    if head_mixing == "shared":
        spread = real_mass * jnp.where(real, alpha[None, :], 0.0)
    else:
        own_alpha = transformer.audited_attention(cls_rows[:, None, :], length)[None, :]  # α̂ [1, T]
        positive = real & (own_alpha > 0)
        ratio = jnp.where(positive, alpha[None, :] / jnp.where(positive, own_alpha, 1.0), 0.0)
        tilted = real_rows * ratio
        total = jnp.sum(tilted, axis=-1, keepdims=True)
        spread = real_mass * tilted / jnp.where(total > 0, total, 1.0)
    return jnp.where(real, spread, cls_rows)


def auditable_model(config: models.ModelConfig) -> JWModel | TransformerModel:
    """The adapter for a model configuration: ``TransformerModel`` or ``JWModel``."""
    return TransformerModel(config) if config.is_transformer else JWModel(config)
