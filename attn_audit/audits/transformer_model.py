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
from attn_audit.models import transformer


@dataclasses.dataclass(frozen=True)
class TransformerModel:
    """attn_audit's transformer (``models.transformer``) as an ``AuditableModel``.

    α is the last block's CLS-query row averaged over heads, over the real tokens.

    - ``encode`` gives everything up to the last block's attention: ``{"last_inputs":
      [T, D], "last_values": [T, H, d_h], "cls_rows": [H, T], "states": [T, D]}``;
    - ``decode(α)`` re-runs the last block at the CLS position only (no other
      position depends on its row) with the rows ``transformer.mix_heads(cls_rows,
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
        if self.head_mixing not in transformer.HEAD_MIXINGS:
            raise ValueError(
                f"head_mixing must be one of {transformer.HEAD_MIXINGS}; got {self.head_mixing!r}."
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

    def attention(self, params, instance, states):
        return transformer.audited_attention(states["cls_rows"][:, None, :], instance["length"])

    def decode(self, params, instance, states, alpha):
        length = instance["length"]
        rows = transformer.mix_heads(
            jax.lax.stop_gradient(states["cls_rows"]), alpha, length, self.head_mixing
        )
        last_block = jax.tree.map(lambda stacked: stacked[-1], params["encoder"]["layers"])
        cls_state = transformer.block_output(
            last_block, self.config, states["last_inputs"][:1], states["last_values"],
            rows[:, None, :],
        )[0]  # fmt: skip
        # A batch's padding row (length 0) keeps its zero state, as in the forward pass.
        cls_state = jnp.where(length > 0, cls_state, 0.0)
        pooled = transformer.pool(self.config, states["states"].at[0].set(cls_state), length)
        return models.probabilities(transformer.classify(params, pooled), self.config)


def auditable_model(config: models.ModelConfig) -> JWModel | TransformerModel:
    """The adapter for a model configuration: ``TransformerModel`` or ``JWModel``."""
    return TransformerModel(config) if config.is_transformer else JWModel(config)
