"""A PyTorch twin of JW's model, to check the JAX model against on the same weights.

The module and parameter names are those of ``attn_audit.interop.export``
(JW's ``Transparency`` code), so ``to_torch_state_dict`` loads with
``strict=True``. The twin runs batched, padded input the way JW's code does:
``pack_padded_sequence`` for the BiLSTM and ``-inf`` on SOS, EOS and PAD before
the attention softmax. Only tests and benchmarks import this module.
"""

import math
from collections.abc import Mapping

import numpy as np
import torch
from torch import nn
from torch.nn.utils import rnn as rnn_utils

from attn_audit.models.config import ModelConfig

PAD_ID = 0


def _as_config(config: ModelConfig | Mapping) -> ModelConfig:
    return config if isinstance(config, ModelConfig) else ModelConfig.from_dict(config)


def _valid_mask(lengths: torch.Tensor, num_positions: int) -> torch.Tensor:
    """``t < length`` as bool ``[B, T]``."""
    return torch.arange(num_positions, device=lengths.device)[None, :] < lengths[:, None]


class TorchEncoder(nn.Module):
    """Embedding plus a BiLSTM, CNN or Average encoder; ``forward`` gives ``(states, summary)``."""

    def __init__(self, config: ModelConfig | Mapping):
        super().__init__()
        config = _as_config(config)
        self.kind = config.encoder
        self.embedding = nn.Embedding(config.vocab_size, config.embed_dim, padding_idx=PAD_ID)
        if self.kind == "lstm":
            self.rnn = nn.LSTM(
                config.embed_dim, config.hidden_size, batch_first=True, bidirectional=True
            )
        elif self.kind == "cnn":
            self.convolutions = nn.ModuleList(
                nn.Conv1d(config.embed_dim, config.cnn_filters, k, padding=(k - 1) // 2)
                for k in config.cnn_kernel_sizes
            )
        else:
            self.projection = nn.Linear(config.embed_dim, config.hidden_size)

    def forward(
        self, token_ids: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Args: token_ids ``[B, T]``, lengths ``[B]``.

        Returns:
          states ``[B, T, H]`` (zero at padding) and the summary ``[B, H]`` used as
          the question vector (final LSTM states / max over real tokens / mean over valid
          positions).
        """
        num_positions = token_ids.shape[1]
        valid = _valid_mask(lengths, num_positions)
        embedded = self.embedding(token_ids) * (token_ids != PAD_ID)[..., None]
        if self.kind == "lstm":
            packed = rnn_utils.pack_padded_sequence(
                embedded, lengths.cpu(), batch_first=True, enforce_sorted=False
            )
            packed_states, (final_hidden, _) = self.rnn(packed)
            states, _ = rnn_utils.pad_packed_sequence(
                packed_states, batch_first=True, total_length=num_positions
            )
            # final_hidden: [2, B, H], forward direction's last state then backward's.
            summary = torch.cat([final_hidden[0], final_hidden[1]], dim=-1)
            return states, summary
        if self.kind == "cnn":
            channels_first = embedded.transpose(1, 2)  # [B, E, T]
            features = torch.cat([conv(channels_first) for conv in self.convolutions], dim=1)
            states = torch.relu(features).transpose(1, 2) * valid[..., None]
            # JW's EncoderCNN: zero SOS, EOS and PAD (its `masks`), then max-pool over T.
            positions = torch.arange(num_positions, device=lengths.device)
            real = (positions >= 1) & (positions[None] <= lengths[:, None] - 2)
            summary = (states * real[..., None]).max(dim=1).values
            return states, summary
        states = torch.tanh(self.projection(embedded)) * valid[..., None]
        summary = states.sum(dim=1) / lengths[:, None].to(states.dtype)
        return states, summary


class TorchAttention(nn.Module):
    """JW's TanhAttention / DotAttention (and their QA variants); gives scores ``[B, T]``."""

    def __init__(self, config: ModelConfig | Mapping):
        super().__init__()
        config = _as_config(config)
        self.kind, self.task = config.attention, config.task
        self.scale = 1.0 / math.sqrt(config.state_dim)
        state_dim, hidden_dim = config.state_dim, config.attention_hidden_dim
        if self.kind == "tanh":
            if self.task == "qa":
                self.attn1p = nn.Linear(state_dim, hidden_dim)
                self.attn1q = nn.Linear(state_dim, hidden_dim)
            else:
                self.attn1 = nn.Linear(state_dim, hidden_dim)
            self.attn2 = nn.Linear(hidden_dim, 1, bias=False)
        elif self.kind == "dot" and self.task == "classification":
            self.attn1 = nn.Linear(state_dim, 1, bias=False)

    def forward(self, states: torch.Tensor, question: torch.Tensor | None = None) -> torch.Tensor:
        if self.kind == "uniform":
            return torch.zeros(states.shape[:2], dtype=states.dtype, device=states.device)
        if self.kind == "tanh":
            if self.task == "qa":
                hidden = self.attn1p(states) + self.attn1q(question)[:, None, :]
            else:
                hidden = self.attn1(states)
            return self.attn2(torch.tanh(hidden)).squeeze(-1)
        if self.task == "qa":
            return torch.einsum("bth,bh->bt", states, question) * self.scale
        return self.attn1(states).squeeze(-1) * self.scale


class TorchDecoder(nn.Module):
    """Attention, masked softmax and the output layers; gives ``(logits, attention)``."""

    def __init__(self, config: ModelConfig | Mapping):
        super().__init__()
        config = _as_config(config)
        self.task = config.task
        self.attention = TorchAttention(config)
        if self.task == "classification":
            self.linear_1 = nn.Linear(config.state_dim, config.output_dim)
        else:
            self.linear_1p = nn.Linear(config.state_dim, config.attention_hidden_dim)
            self.linear_1q = nn.Linear(config.state_dim, config.attention_hidden_dim)
            self.linear_2 = nn.Linear(config.attention_hidden_dim, config.output_dim)

    def forward(
        self,
        states: torch.Tensor,
        lengths: torch.Tensor,
        question: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Args: states ``[B, T, H]``, lengths ``[B]``, question ``[B, H]`` (qa).

        Returns:
          logits ``[B, O]`` and attention ``[B, T]``.
        """
        positions = torch.arange(states.shape[1], device=states.device)[None, :]
        real_tokens = (positions >= 1) & (positions <= lengths[:, None] - 2)
        scores = self.attention(states, question).masked_fill(~real_tokens, -math.inf)
        attention = torch.softmax(scores, dim=-1)
        context = (attention[..., None] * states).sum(dim=1)
        if self.task == "classification":
            return self.linear_1(context), attention
        hidden = torch.tanh(self.linear_1p(context) + self.linear_1q(question))
        return self.linear_2(hidden), attention


class TorchModel(nn.Module):
    """``encoder`` (+ ``question_encoder`` for qa) and ``decoder``, JW's module layout."""

    def __init__(self, config: ModelConfig | Mapping):
        super().__init__()
        self.config = _as_config(config)
        self.encoder = TorchEncoder(self.config)
        if self.config.task == "qa":
            self.question_encoder = TorchEncoder(self.config)
        self.decoder = TorchDecoder(self.config)

    def forward(
        self,
        token_ids: torch.Tensor,
        lengths: torch.Tensor,
        question_ids: torch.Tensor | None = None,
        question_lengths: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Args: token_ids ``[B, T]``, lengths ``[B]`` (+ the question's for qa).

        Returns:
          probabilities ``[B, num_classes]`` (binary: ``[1 - σ, σ]``) and attention ``[B, T]``.
        """
        states, _ = self.encoder(token_ids, lengths)
        question = None
        if self.config.task == "qa":
            _, question = self.question_encoder(question_ids, question_lengths)
        logits, attention = self.decoder(states, lengths, question)
        if self.config.binary:
            positive = torch.sigmoid(logits)
            return torch.cat([1.0 - positive, positive], dim=-1), attention
        return torch.softmax(logits, dim=-1), attention


def load_torch_model(
    state_dict: Mapping[str, np.ndarray], config: ModelConfig | Mapping
) -> TorchModel:
    """A ``TorchModel`` in eval mode with ``state_dict`` loaded strictly.

    Args:
      state_dict: ``{name: array}`` from ``to_torch_state_dict`` or an ``np.load``-ed ``.npz``.
      config: a ``ModelConfig`` or its ``to_dict()``.
    """
    model = TorchModel(config)
    # Copies: arrays exported from JAX or read from an .npz may be read-only.
    tensors = {name: torch.tensor(np.array(value)) for name, value in state_dict.items()}
    model.load_state_dict(tensors, strict=True)
    return model.eval()
