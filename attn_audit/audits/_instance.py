"""Helpers shared by the audits: the real-token mask and the original forward pass."""

from attn_audit.models import attention_mask

# bool [T]: True on the real tokens, positions 1 … length − 2 (SPEC §1).
real_token_mask = attention_mask


def original_pass(model, params, instance):
    """``(embedded [T, E], states, α [T], ŷ [C])`` of the unmodified instance."""
    embedded = model.embed(params, instance)
    states = model.encode(params, instance, embedded)
    alpha = model.attention(params, instance, states)
    probabilities = model.decode(params, instance, states, alpha)
    return embedded, states, alpha, probabilities
