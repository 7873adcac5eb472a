"""JW's attention models (BiLSTM / CNN / Average encoders, tanh / dot attention) and a
Transformer encoder classifier, as pure functions.

See ``model.py`` for the forward pass and the parameter tree, SPEC §2 for the science;
``transformer.py`` for the transformer (SPEC §5).
"""

from attn_audit.models import transformer
from attn_audit.models.attention import (
    attention_keys,
    attention_scores,
    attention_weights,
    scores_from_keys,
    uniform_attention,
)
from attn_audit.models.config import (
    ATTENTIONS,
    ENCODERS,
    POOLINGS,
    STOP_ATTENTION_GRADIENT,
    TASKS,
    TRANSFORMER_ATTENTIONS,
    TRANSFORMER_ENCODERS,
    ModelConfig,
)
from attn_audit.models.decoder import attention_context, decode, decode_context
from attn_audit.models.encoders import valid_reversal_index
from attn_audit.models.model import (
    embed,
    encode,
    forward,
    forward_batch,
    forward_from_embedded,
    init,
    probabilities,
    question_vector,
    weight_decay_mask,
)
from attn_audit.models.primitives import (
    PAD_ID,
    is_real_token,
    masked_softmax,
    real_token_mask,
    valid_mask,
)

__all__ = [
    "ATTENTIONS",
    "ENCODERS",
    "PAD_ID",
    "POOLINGS",
    "STOP_ATTENTION_GRADIENT",
    "TASKS",
    "TRANSFORMER_ATTENTIONS",
    "TRANSFORMER_ENCODERS",
    "ModelConfig",
    "attention_context",
    "attention_keys",
    "attention_scores",
    "attention_weights",
    "decode",
    "decode_context",
    "embed",
    "encode",
    "forward",
    "forward_batch",
    "forward_from_embedded",
    "init",
    "is_real_token",
    "masked_softmax",
    "probabilities",
    "question_vector",
    "real_token_mask",
    "scores_from_keys",
    "transformer",
    "uniform_attention",
    "valid_mask",
    "valid_reversal_index",
    "weight_decay_mask",
]
