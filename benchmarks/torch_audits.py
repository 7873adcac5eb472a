"""JW's audits in eager PyTorch, on the PyTorch twin of a classification model, two ways.

- ``OriginalStyle``: as JW's code did it: per batch, one full encoder pass per LOO
  position, Python loops over instances and permutations, 500 eager optimiser steps.
- ``BatchedStyle``: the best eager PyTorch we can write with the same algebra as the
  JAX engine: every LOO variant of a batch in one (chunked) encoder pass, all
  permutations of a batch in one decoder call, the adversary batched over instances.

Both take the same padded batches as the JAX engine (``token_ids [B, T]``, ``lengths [B]``)
and return numpy arrays aligned with them. Binary and multi-class classification.
"""

import math

import numpy as np
import torch

from tests.reference.torch_model import TorchModel

NUM_PERMUTATIONS = 100
EPS = 1e-10


def real_token_mask(lengths: torch.Tensor, num_positions: int) -> torch.Tensor:
    positions = torch.arange(num_positions)[None, :]
    return (positions >= 1) & (positions <= lengths[:, None] - 2)


def probabilities_from_logits(model: TorchModel, logits: torch.Tensor) -> torch.Tensor:
    if model.config.binary:
        positive = torch.sigmoid(logits)
        return torch.cat([1.0 - positive, positive], dim=-1)
    return torch.softmax(logits, dim=-1)


def encode(model: TorchModel, token_ids, lengths):
    states, _ = model.encoder(token_ids, lengths)
    return states


def attention(model: TorchModel, states, lengths):
    mask = real_token_mask(lengths, states.shape[1])
    scores = model.decoder.attention(states).masked_fill(~mask, -math.inf)
    return torch.softmax(scores, dim=-1).masked_fill(~mask, 0.0)


def decode(model: TorchModel, states, alpha):
    """``ŷ [.., C]`` from states ``[.., T, H]`` and any α ``[.., T]``."""
    context = (alpha[..., None] * states).sum(dim=-2)
    return probabilities_from_logits(model, model.decoder.linear_1(context))


def tvd(p, q):
    return 0.5 * (p - q).abs().sum(-1)


def jsd(p, q):
    m = 0.5 * (p + q)

    def kl(a, b):
        return (a * (torch.log(a + EPS) - torch.log(b + EPS))).sum(-1)

    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


def gradient_importance(model, token_ids, lengths):
    """|Σ_d g·e| for the predicted class, attention held fixed; normalised. ``[B, T]``."""
    embedded = model.encoder.embedding(token_ids).detach().requires_grad_(True)
    captured = model.encoder.embedding.register_forward_hook(lambda m, i, o: embedded)
    try:
        states = encode(model, token_ids, lengths)
    finally:
        captured.remove()
    alpha = attention(model, states, lengths).detach()
    probabilities = decode(model, states, alpha)
    predicted = probabilities.argmax(-1)
    probabilities.gather(1, predicted[:, None]).sum().backward()
    importance = (embedded.grad * embedded).sum(-1).abs().detach()
    importance = importance.masked_fill(~real_token_mask(lengths, token_ids.shape[1]), 0.0)
    return (importance / importance.sum(-1, keepdim=True).clamp_min(1e-30)).numpy()


def delete(token_ids, position):
    pad = torch.zeros_like(token_ids[:, :1])
    return torch.cat([token_ids[:, :position], token_ids[:, position + 1 :], pad], dim=1)


class OriginalStyle:
    """JW's loops, eager."""

    def __init__(self, model: TorchModel):
        self.model = model

    @torch.no_grad()
    def predict(self, token_ids, lengths):
        states = encode(self.model, token_ids, lengths)
        alpha = attention(self.model, states, lengths)
        return decode(self.model, states, alpha), alpha, states

    def gradient(self, token_ids, lengths):
        return gradient_importance(self.model, token_ids, lengths)

    @torch.no_grad()
    def loo(self, token_ids, lengths):
        original, _, _ = self.predict(token_ids, lengths)
        changes = torch.zeros(token_ids.shape)
        # One encoder pass per position, as JW's remove_and_run; rows too short stay 0.
        for position in range(1, int(lengths.max()) - 1):
            shorter = torch.clamp(lengths - 1, min=1)
            deleted, _, _ = self.predict(delete(token_ids, position), shorter)
            valid = position <= lengths - 2
            changes[:, position] = torch.where(valid, tvd(deleted, original), 0.0)
        return changes.numpy()

    @torch.no_grad()
    def permutation(self, token_ids, lengths, seed=0):
        original, alpha, states = self.predict(token_ids, lengths)
        generator = np.random.default_rng(seed)
        medians = np.zeros(len(lengths))
        for row in range(len(lengths)):  # JW looped over instances and permutations
            real = np.arange(1, int(lengths[row]) - 1)
            changes = []
            for _ in range(NUM_PERMUTATIONS):
                permuted = alpha[row].clone()
                permuted[real] = alpha[row][generator.permutation(real)]
                changes.append(tvd(decode(self.model, states[row], permuted), original[row]))
            medians[row] = float(torch.stack(changes).median())
        return medians

    def adversarial(self, token_ids, lengths, steps=500, seed=0, candidates=5):
        with torch.no_grad():
            original, alpha, states = self.predict(token_ids, lengths)
        return adversarial_search(self.model, states, alpha, original, lengths, steps, seed,
                                  candidates)  # fmt: skip


class BatchedStyle(OriginalStyle):
    """The same audits with the JAX engine's batching, eager."""

    @torch.no_grad()
    def loo(self, token_ids, lengths, chunk=64):
        batch, width = token_ids.shape
        original, _, _ = self.predict(token_ids, lengths)
        positions = torch.arange(width)
        # Every (instance, position) variant as one row: [B·T, T].
        source = positions[None, :] + (positions[None, :] >= positions[:, None]).long()
        gathered = token_ids[:, source.clamp(max=width - 1)]  # [B, T, T]
        variants = torch.where(source[None] < width, gathered, 0).reshape(batch * width, width)
        variant_lengths = torch.clamp(lengths - 1, min=1).repeat_interleave(width)
        outputs = []
        for start in range(0, batch * width, chunk * width):
            stop = start + chunk * width
            outputs.append(self.predict(variants[start:stop], variant_lengths[start:stop])[0])
        deleted = torch.cat(outputs).reshape(batch, width, -1)
        changes = tvd(deleted, original[:, None, :])
        return changes.masked_fill(~real_token_mask(lengths, width), 0.0).numpy()

    @torch.no_grad()
    def permutation(self, token_ids, lengths, seed=0):
        original, alpha, states = self.predict(token_ids, lengths)
        generator = torch.Generator().manual_seed(seed)
        batch, width = token_ids.shape
        mask = real_token_mask(lengths, width)
        keys = torch.rand(batch, NUM_PERMUTATIONS, width, generator=generator)
        shuffled = torch.where(mask[:, None], keys, 2.0).argsort(-1)
        in_order = torch.where(mask, torch.arange(width), width).argsort(-1)
        permuted = torch.zeros(batch, NUM_PERMUTATIONS, width)
        values = torch.gather(alpha[:, None].expand(-1, NUM_PERMUTATIONS, -1), 2, shuffled)
        permuted.scatter_(2, in_order[:, None].expand(-1, NUM_PERMUTATIONS, -1), values)
        outputs = decode(self.model, states[:, None], permuted)
        return tvd(outputs, original[:, None]).median(dim=1).values.numpy()


def adversarial_search(model, states, alpha, original, lengths, steps, seed, candidates):
    """JW's adversary, batched over instances (as JW's code): ``max JSD [B]`` within ε."""
    generator = torch.Generator().manual_seed(seed)
    batch, width = alpha.shape
    mask = real_token_mask(lengths, width)[:, None, :]
    logits = (3.0 * torch.randn(batch, candidates, width, generator=generator)).requires_grad_()
    optimizer = torch.optim.Adam([logits], lr=0.01, amsgrad=True)
    pairs = torch.triu(torch.ones(candidates, candidates, dtype=torch.bool), 1)

    def candidates_of(values):
        weights = torch.softmax(values.masked_fill(~mask, -math.inf), dim=-1)
        return weights.masked_fill(~mask, 0.0).nan_to_num(0.0)

    for _ in range(steps):
        optimizer.zero_grad()
        weights = candidates_of(logits)
        outputs = decode(model, states[:, None], weights)
        divergence = jsd(weights, alpha[:, None])
        change = tvd(outputs, original[:, None])
        pairwise = jsd(weights[:, :, None], weights[:, None, :])[:, pairs].mean(-1)
        loss = (500.0 * torch.relu(change - 0.01) - divergence).sum() - pairwise.sum()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        weights = candidates_of(logits)
        change = tvd(decode(model, states[:, None], weights), original[:, None])
        divergence = jsd(weights, alpha[:, None])
        surviving = torch.where(change <= 0.05, divergence, torch.zeros_like(divergence))
        return surviving.max(dim=1).values.numpy()
