"""A PyTorch BERT encoder written from the BERT paper and Hugging Face's ``BertModel``.

It exists to check ``attn_audit.models.transformer`` (and the MiniLM port)
against an independent implementation on the same weights: it loads BERT
state-dict names directly (``load_state_dict``), with none of the JAX side's
mapping code, and follows Hugging Face's computation: word + position +
token-type embeddings, LayerNorm; per block, scaled dot-product attention with
an additive mask of ``finfo.min`` on padding keys, post-LN residuals and an
exact (erf) GELU. Dropout is omitted (inference). Only tests import this module.
"""

import math

import numpy as np
import torch
from torch import nn


class _Embeddings(nn.Module):
    def __init__(self, vocab_size, hidden_size, max_positions, token_types, eps):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab_size, hidden_size)
        self.position_embeddings = nn.Embedding(max_positions, hidden_size)
        self.token_type_embeddings = nn.Embedding(token_types, hidden_size)
        self.LayerNorm = nn.LayerNorm(hidden_size, eps=eps)

    def forward(self, input_ids):
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)[None, :]
        token_types = torch.zeros_like(input_ids)
        summed = self.word_embeddings(input_ids) + self.token_type_embeddings(token_types)
        return self.LayerNorm(summed + self.position_embeddings(positions))


class _SelfAttention(nn.Module):
    def __init__(self, hidden_size, num_heads):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, hidden_size // num_heads
        self.query = nn.Linear(hidden_size, hidden_size)
        self.key = nn.Linear(hidden_size, hidden_size)
        self.value = nn.Linear(hidden_size, hidden_size)

    def _heads(self, x):  # [B, T, D] -> [B, H, T, d]
        batch, length, _ = x.shape
        return x.view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, hidden, additive_mask):
        query, key, value = (self._heads(f(hidden)) for f in (self.query, self.key, self.value))
        scores = query @ key.transpose(-1, -2) / math.sqrt(self.head_dim) + additive_mask
        probabilities = torch.softmax(scores, dim=-1)
        context = (probabilities @ value).transpose(1, 2).reshape(hidden.shape)
        return context, probabilities


class _DenseNorm(nn.Module):
    """BERT's ``SelfOutput`` / ``Output``: ``LayerNorm(dense(x) + residual)``."""

    def __init__(self, in_features, hidden_size, eps):
        super().__init__()
        self.dense = nn.Linear(in_features, hidden_size)
        self.LayerNorm = nn.LayerNorm(hidden_size, eps=eps)

    def forward(self, x, residual):
        return self.LayerNorm(self.dense(x) + residual)


class _Attention(nn.Module):
    def __init__(self, hidden_size, num_heads, eps):
        super().__init__()
        self.self = _SelfAttention(hidden_size, num_heads)
        self.output = _DenseNorm(hidden_size, hidden_size, eps)

    def forward(self, hidden, additive_mask):
        context, probabilities = self.self(hidden, additive_mask)
        return self.output(context, hidden), probabilities


class _Intermediate(nn.Module):
    def __init__(self, hidden_size, intermediate_size):
        super().__init__()
        self.dense = nn.Linear(hidden_size, intermediate_size)

    def forward(self, x):
        return nn.functional.gelu(self.dense(x))  # exact erf GELU, BERT's "gelu"


class _Layer(nn.Module):
    def __init__(self, hidden_size, num_heads, intermediate_size, eps):
        super().__init__()
        self.attention = _Attention(hidden_size, num_heads, eps)
        self.intermediate = _Intermediate(hidden_size, intermediate_size)
        self.output = _DenseNorm(intermediate_size, hidden_size, eps)

    def forward(self, hidden, additive_mask):
        attended, probabilities = self.attention(hidden, additive_mask)
        return self.output(self.intermediate(attended), attended), probabilities


class _Encoder(nn.Module):
    def __init__(self, num_layers, *sizes):
        super().__init__()
        self.layer = nn.ModuleList(_Layer(*sizes) for _ in range(num_layers))


class TorchBert(nn.Module):
    """BERT's encoder with Hugging Face's module names (``embeddings.*``, ``encoder.layer.*``).

    With ``num_classes`` it also has ``classifier`` (a linear layer on the pooled
    output: ``[CLS]`` or the mean over non-PAD positions), the twin of the JAX
    transformer's head.
    """

    def __init__(
        self,
        vocab_size: int,
        hidden_size: int,
        num_layers: int,
        num_heads: int,
        intermediate_size: int,
        max_positions: int = 512,
        token_types: int = 2,
        eps: float = 1e-12,
        num_outputs: int | None = None,
        pooling: str = "cls",
    ):
        super().__init__()
        self.embeddings = _Embeddings(vocab_size, hidden_size, max_positions, token_types, eps)
        self.encoder = _Encoder(num_layers, hidden_size, num_heads, intermediate_size, eps)
        self.pooling = pooling
        if num_outputs is not None:
            self.classifier = nn.Linear(hidden_size, num_outputs)

    @classmethod
    def from_config(cls, config, *, classifier: bool = True) -> "TorchBert":
        """A twin of a ``ModelConfig`` with ``encoder="transformer"``, with or without its head."""
        return cls(
            config.vocab_size, config.hidden_size, config.num_layers, config.num_heads,
            config.ff_dim, config.max_positions, eps=config.layer_norm_eps,
            num_outputs=config.output_dim if classifier else None, pooling=config.pooling,
        )  # fmt: skip

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict:
        """Args: ``input_ids`` ``[B, T]``, ``attention_mask`` ``[B, T]`` (1 on non-PAD).

        Returns:
          ``{"hidden_states": [L + 1] of [B, T, D] (embeddings first),
          "attentions": [L] of [B, H, T, T], "logits": [B, O] (with a classifier)}``.
        """
        mask = attention_mask.to(torch.float32)
        additive_mask = (1.0 - mask[:, None, None, :]) * torch.finfo(torch.float32).min
        hidden = self.embeddings(input_ids)
        hidden_states, attentions = [hidden], []
        for layer in self.encoder.layer:
            hidden, probabilities = layer(hidden, additive_mask)
            hidden_states.append(hidden)
            attentions.append(probabilities)
        outputs = {"hidden_states": hidden_states, "attentions": attentions}
        if hasattr(self, "classifier"):
            if self.pooling == "cls":
                pooled = hidden[:, 0]
            else:
                pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
            outputs["logits"] = self.classifier(pooled)
        return outputs


def load_bert_weights(model: TorchBert, weights: dict) -> TorchBert:
    """Loads BERT-named arrays into ``model`` (strict), ignoring the pooler and position ids."""
    state = {
        name: torch.from_numpy(np.array(value, np.float32))  # a writable copy
        for name, value in weights.items()
        if not name.startswith(("pooler.", "embeddings.position_ids"))
    }
    model.load_state_dict(state, strict=True)
    return model.eval()
