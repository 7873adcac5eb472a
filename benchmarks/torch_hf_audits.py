"""JW's four audits in eager PyTorch on a ``transformers`` BERT classifier, written as an expert.

The model is ``transformers``' own ``BertForSequenceClassification`` (eval mode, eager
attention, every parameter frozen: no weight gradients are ever computed). The audited
attention α is attn_audit's (``attn_audit/audits/transformer_model.py``): the LAST layer's
[CLS]-query row, averaged over the heads and renormalised over the real pieces (positions
``1 … n − 2``); a new α replaces the last layer's [CLS] rows as ``mix_heads(...,
"reweighted")`` does, and only the last layer's [CLS] position is re-run.

How it reads and replaces that row: the states below the last layer are computed once per
batch with the model's own modules (``bert.embeddings``, ``bert.encoder.layer[:-1]``); the
last ``BertLayer`` is then called piece by piece on them — its ``attention.self.query`` at
[CLS] only, its ``key`` and ``value`` at every position, the softmax over the valid keys
(the row we read), and ``attention.output``, ``intermediate``, ``output``, the pooler and
the classifier at [CLS] for any number of replacement rows at once. The rest of the last
layer (its other query positions) is never computed: nothing downstream reads it.

- ``gradient``: ``|Σ_d ∂ŷ_c/∂e_{t,d} · e_{t,d}|`` w.r.t. the word embeddings (positions and
  token types added after), the last layer's [CLS] rows held fixed (``detach``), the
  earlier layers' attention free; normalised over the real pieces.
- ``loo``: every deletion variant of a batch (only the real positions: ``Σ_b (n_b − 2)``
  rows, each one piece shorter) through the model in passes of about ``tokens_per_pass``
  pieces, each pass padded only to its own longest variant; ``TVD`` to the original output.
- ``permutation``: the 100 shuffles of every instance of a batch as one ``[B, 100, H, T]``
  block of rows through the cached last layer; the median (the mean of the two middle
  values, as ``jnp.median``) of the TVDs.
- ``adversarial``: ``K`` candidates × the batch's instances optimised together (one
  ``[B, K, T]`` logit tensor, ``torch.optim.Adam(amsgrad=True, fused=True)``) on the cached
  states, with the objective and settings of ``attn_audit.audits.adversarial`` (SPEC §3.5).

Token ids are ``transformers``' own (BERT's [PAD] is 0, as attn_audit's). Batches are
``token_ids [B, T]`` (long) and ``lengths [B]``; no padding rows. This module imports
neither JAX nor attn_audit, so that the eager process pays only for torch and
``transformers``.
"""

import dataclasses
import math

import torch

NUM_PERMUTATIONS = 100
EPS = 1e-10  # JW's epsilon inside the logs (SPEC §3.5)


@dataclasses.dataclass(frozen=True)
class Adversary:
    """``attn_audit.audits.adversarial.AdversarySettings``'s fields and defaults (JW's; the
    benchmark's test checks that they are the same)."""

    num_candidates: int = 5
    steps: int = 500
    learning_rate: float = 0.01
    init_scale: float = 3.0
    output_margin: float = 0.01
    output_penalty: float = 500.0
    epsilon: float = 0.05


JW_ADVERSARY = Adversary()


def real_token_mask(lengths: torch.Tensor, num_positions: int) -> torch.Tensor:
    """``[B, T]`` bool: positions ``1 … n − 2`` (not [CLS], [SEP] or padding)."""
    positions = torch.arange(num_positions, device=lengths.device)[None, :]
    return (positions >= 1) & (positions <= lengths[:, None] - 2)


def valid_mask(lengths: torch.Tensor, num_positions: int) -> torch.Tensor:
    """``[B, T]`` bool: positions ``< n`` (the keys attention may read)."""
    return torch.arange(num_positions, device=lengths.device)[None, :] < lengths[:, None]


def tvd(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    return 0.5 * (p - q).abs().sum(-1)


def negative_entropy(p: torch.Tensor) -> torch.Tensor:
    """``Σ_t p_t log(p_t + eps)`` over the last axis."""
    return (p * torch.log(p + EPS)).sum(-1)


def jsd(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """``½ KL(p ‖ m) + ½ KL(q ‖ m)`` with eps inside the logs (``attn_audit.stats.jsd``)."""
    m = 0.5 * (p + q)
    log_m = torch.log(m + EPS)
    return 0.5 * (p * (torch.log(p + EPS) - log_m)).sum(-1) + 0.5 * (
        q * (torch.log(q + EPS) - log_m)
    ).sum(-1)


def audited_attention(rows: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """α ``[B, T]`` from the last layer's [CLS] rows ``[B, H, T]``: head mean, real pieces,
    renormalised."""
    mean = rows.mean(dim=1).masked_fill(~real, 0.0)
    total = mean.sum(-1, keepdim=True)
    return mean / torch.where(total > 0, total, torch.ones_like(total))


def head_mixer(rows: torch.Tensor, real: torch.Tensor):
    """``alpha [B, *E, T] -> rows [B, *E, H, T]``: the [CLS] rows once α is replaced, as
    ``mix_heads(..., "reweighted")`` (``attn_audit/audits/transformer_model.py``).

    ``rows [B, H, T]`` are the model's own. Each head keeps its mass off the real pieces and
    its total mass ``m_h`` on them, spread as ``A_h[t] · α_t / α̂_t`` rescaled to ``m_h``. The
    parts that do not depend on the new α are computed here, once per batch.
    """
    batch, heads, width = rows.shape
    own = audited_attention(rows, real)  # α̂ [B, T]
    positive = real & (own > 0)
    real_rows = rows.masked_fill(~real[:, None, :], 0.0)
    mass = real_rows.sum(-1, keepdim=True)  # m_h [B, H, 1]
    # A_h[t] / α̂_t on the real pieces where α̂ > 0, else 0: [B, H, T]
    safe_own = torch.where(positive, own, 1.0)[:, None, :]
    tilt = torch.where(positive[:, None, :], real_rows / safe_own, 0.0)
    keep = torch.where(real[:, None, :], 0.0, rows)  # the rows off the real pieces

    def mix(alpha: torch.Tensor) -> torch.Tensor:
        extra = alpha.shape[1:-1]
        shape = (batch,) + (1,) * len(extra) + (heads, width)
        tilted = tilt.view(shape) * alpha.unsqueeze(-2)  # [B, *E, H, T]
        total = tilted.sum(-1, keepdim=True)
        spread = mass.view(shape[:-1] + (1,)) * tilted / torch.where(total > 0, total, 1.0)
        return spread + keep.view(shape)

    return mix


def mix_heads(rows: torch.Tensor, alpha: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """``head_mixer(rows, real)(alpha)``."""
    return head_mixer(rows, real)(alpha)


def masked_softmax(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return torch.softmax(logits.masked_fill(~mask, -math.inf), dim=-1).masked_fill(~mask, 0.0)


@dataclasses.dataclass
class Cached:
    """One batch's states below the last layer and the last layer's [CLS] attention.

    ``hidden`` ``[B, T, D]`` (the last layer's inputs), ``rows`` ``[B, H, T]`` ([CLS] query),
    ``values`` ``[B, H, T, d_h]``, ``real`` ``[B, T]``, ``alpha`` ``[B, T]``."""

    hidden: torch.Tensor
    rows: torch.Tensor
    values: torch.Tensor
    real: torch.Tensor
    alpha: torch.Tensor


class HFAudits:
    """The four audits on a ``BertForSequenceClassification`` (see the module docstring)."""

    def __init__(self, model, tokens_per_pass: int = 16384):
        if getattr(model, "bert", None) is None:
            raise ValueError(f"HFAudits needs a BertForSequenceClassification, got {type(model)}.")
        self.model = model.eval().requires_grad_(False)
        self.bert = model.bert
        self.last = model.bert.encoder.layer[-1]
        attention = self.last.attention.self
        self.num_heads = attention.num_attention_heads
        self.head_dim = attention.attention_head_size
        self.scaling = attention.scaling
        self.tokens_per_pass = tokens_per_pass

    # ------------------------------------------------------------------ the model, in pieces

    def lower(self, token_ids, lengths, word_embeddings=None) -> torch.Tensor:
        """The last layer's inputs ``[B, T, D]``: embeddings and the first L − 1 ``BertLayer``s
        (the additive key mask that ``BertModel`` builds for eager attention)."""
        hidden = self.bert.embeddings(
            input_ids=None if word_embeddings is not None else token_ids,
            inputs_embeds=word_embeddings,
        )
        keep = valid_mask(lengths, token_ids.shape[1])
        additive = torch.zeros(keep.shape, dtype=hidden.dtype).masked_fill(
            ~keep, torch.finfo(hidden.dtype).min
        )[:, None, None, :]
        for layer in self.bert.encoder.layer[:-1]:
            hidden = layer(hidden, additive)
        return hidden

    def cls_attention(self, hidden, lengths) -> tuple[torch.Tensor, torch.Tensor]:
        """The last layer's [CLS]-query rows ``[B, H, T]`` and its values ``[B, H, T, d_h]``."""
        attention = self.last.attention.self
        batch, width, _ = hidden.shape
        query = attention.query(hidden[:, 0]).view(batch, self.num_heads, 1, self.head_dim)
        key = attention.key(hidden).view(batch, width, self.num_heads, self.head_dim)
        value = attention.value(hidden).view(batch, width, self.num_heads, self.head_dim)
        key, value = key.transpose(1, 2), value.transpose(1, 2)  # [B, H, T, d_h]
        scores = (query @ key.transpose(-1, -2)).squeeze(-2) * self.scaling  # [B, H, T]
        keep = valid_mask(lengths, width)[:, None, :]
        return torch.softmax(scores.masked_fill(~keep, -math.inf), dim=-1), value

    def decode(self, cls_inputs, values, rows) -> torch.Tensor:
        """``p(· | x)`` ``[B, *E, C]`` with the last layer's [CLS] rows ``[B, *E, H, T]``.

        ``cls_inputs`` ``[B, D]``: the last layer's input at [CLS] (the residual)."""
        batch, heads, width = rows.shape[0], rows.shape[-2], rows.shape[-1]
        extra = rows.shape[1:-2]
        flat = rows.reshape(batch, -1, heads, width)  # [B, E, H, T]
        mixed = torch.einsum("beht,bhtd->behd", flat, values).reshape(batch, flat.shape[1], -1)
        attended = self.last.attention.output(mixed, cls_inputs[:, None, :])
        states = self.last.output(self.last.intermediate(attended), attended)
        pooled = self.bert.pooler.activation(self.bert.pooler.dense(states))
        logits = self.model.classifier(self.model.dropout(pooled))
        return torch.softmax(logits, dim=-1).reshape(batch, *extra, -1)

    def cache(self, token_ids, lengths) -> Cached:
        hidden = self.lower(token_ids, lengths)
        rows, values = self.cls_attention(hidden, lengths)
        real = real_token_mask(lengths, token_ids.shape[1])
        return Cached(hidden, rows, values, real, audited_attention(rows, real))

    @torch.inference_mode()
    def predict(self, token_ids, lengths) -> tuple[torch.Tensor, torch.Tensor]:
        """``(p(· | x) [B, C], α [B, T])``."""
        cached = self.cache(token_ids, lengths)
        return self.decode(cached.hidden[:, 0], cached.values, cached.rows), cached.alpha

    # ------------------------------------------------------------------ the four audits

    def gradient(self, token_ids, lengths) -> torch.Tensor:
        """JW's gradient importance ``[B, T]`` (zero off the real pieces, summing to 1)."""
        with torch.no_grad():
            words = self.bert.embeddings.word_embeddings(token_ids)
        words.requires_grad_(True)
        hidden = self.lower(token_ids, lengths, words)
        rows, values = self.cls_attention(hidden, lengths)
        probabilities = self.decode(hidden[:, 0], values, rows.detach())  # α held fixed
        predicted = probabilities.detach().argmax(-1, keepdim=True)
        (gradient,) = torch.autograd.grad(probabilities.gather(1, predicted).sum(), words)
        real = real_token_mask(lengths, token_ids.shape[1])
        importance = (gradient * words.detach()).sum(-1).abs().masked_fill(~real, 0.0)
        total = importance.sum(-1, keepdim=True)
        return importance / torch.where(total > 0, total, torch.ones_like(total))

    def probabilities(self, token_ids, lengths) -> torch.Tensor:
        """The model's output (its own α), ``[B, C]``; the last layer at [CLS] only."""
        cached = self.cache(token_ids, lengths)
        return self.decode(cached.hidden[:, 0], cached.values, cached.rows)

    @torch.inference_mode()
    def loo(self, token_ids, lengths) -> torch.Tensor:
        """``TVD(ŷ(x₋t), ŷ(x))`` ``[B, T]`` for every real piece (deleted, not masked)."""
        batch, width = token_ids.shape
        original = self.probabilities(token_ids, lengths)
        real = real_token_mask(lengths, width)
        rows, positions = real.nonzero(as_tuple=True)  # the variants, instance by instance
        columns = torch.arange(width - 1)
        source = columns[None, :] + (columns[None, :] >= positions[:, None]).long()
        variant_lengths = lengths[rows] - 1
        variants = token_ids[rows[:, None], source]
        variants = variants.masked_fill(columns[None, :] >= variant_lengths[:, None], 0)
        changes = torch.empty(len(rows))
        sizes = variant_lengths.tolist()
        start = 0
        while start < len(sizes):  # passes of about tokens_per_pass pieces, each trimmed
            longest, stop = sizes[start], start + 1
            while stop < len(sizes) and (stop - start + 1) * max(longest, sizes[stop]) <= (
                self.tokens_per_pass
            ):
                longest = max(longest, sizes[stop])
                stop += 1
            found = self.probabilities(variants[start:stop, :longest], variant_lengths[start:stop])
            changes[start:stop] = tvd(found, original[rows[start:stop]])
            start = stop
        out = torch.zeros(batch, width)
        out[rows, positions] = changes
        return out

    @torch.inference_mode()
    def permutation(
        self,
        token_ids,
        lengths,
        sources=None,
        generator=None,
        num_permutations: int = NUM_PERMUTATIONS,
        return_tvds: bool = False,
    ):
        """The median over shuffles of ``TVD(ŷ(π(α)), ŷ(α))`` ``[B]``, states fixed.

        ``sources`` ``[B, P, T]`` (optional): position ``t`` of shuffle ``p`` takes α of
        ``sources[b, p, t]`` (a permutation of the real pieces; elsewhere a position where α
        is 0); by default uniform shuffles drawn from ``generator``.
        """
        cached = self.cache(token_ids, lengths)
        batch, width = token_ids.shape
        alpha, real = cached.alpha, cached.real
        if sources is None:
            keys = torch.rand(batch, num_permutations, width, generator=generator)
            shuffled = keys.masked_fill(~real[:, None, :], 2.0).argsort(-1)
            in_order = torch.where(real, torch.arange(width), width).argsort(-1)
            sources = torch.empty_like(shuffled).scatter_(
                2, in_order[:, None, :].expand_as(shuffled), shuffled
            )
        permuted = torch.gather(alpha[:, None, :].expand(sources.shape), 2, sources)
        cls_inputs = cached.hidden[:, 0]
        original = self.decode(cls_inputs, cached.values, cached.rows)
        outputs = self.decode(cls_inputs, cached.values, mix_heads(cached.rows, permuted, real))
        tvds = tvd(outputs, original[:, None, :])  # [B, P]
        medians = torch.quantile(tvds, 0.5, dim=1)  # linear: the two middle values' mean
        return (medians, tvds) if return_tvds else medians

    def adversarial(
        self,
        token_ids,
        lengths,
        noise=None,
        generator=None,
        settings: Adversary = JW_ADVERSARY,
        trace_steps: tuple[int, ...] = (),
    ) -> dict:
        """JW's adversarial search, ``K`` candidates × the batch's instances at once.

        ``noise`` ``[B, K, T]`` (optional): the N(0, 1) draws of the initial logits (scaled
        by ``init_scale``); by default drawn from ``generator``. ``trace_steps``: steps
        after which to record each instance's objective (``"trace"``: ``[len, B]``).

        Returns:
          ``max_jsd [B]`` (largest JSD to α among candidates with TVD ≤ ε, else 0),
          ``candidate_jsd``, ``candidate_tvd`` ``[B, K]``, ``candidates [B, K, T]``,
          ``objective [B]`` (each instance's objective at the final logits) and ``trace``.
        """
        with torch.no_grad():  # constants of the search
            cached = self.cache(token_ids, lengths)
            original = self.decode(cached.hidden[:, 0], cached.values, cached.rows)
        cls_inputs, rows, values = cached.hidden[:, 0], cached.rows, cached.values
        alpha, real = cached.alpha, cached.real
        mix = head_mixer(rows, real)
        batch, width = token_ids.shape
        k = settings.num_candidates
        if noise is None:
            noise = torch.randn(batch, k, width, generator=generator)
        logits = (settings.init_scale * noise).requires_grad_(True)
        optimizer = torch.optim.Adam([logits], lr=settings.learning_rate, amsgrad=True, fused=True)
        mask = real[:, None, :]
        first, second = torch.triu_indices(k, k, 1)
        own_alpha = negative_entropy(alpha)[:, None]  # [B, 1]

        def objective(logits):
            candidates = masked_softmax(logits, mask)  # [B, K, T]
            outputs = self.decode(cls_inputs, values, mix(candidates))
            own = negative_entropy(candidates)  # [B, K]
            divergence = 0.5 * (own + own_alpha) - negative_entropy(
                0.5 * (candidates + alpha[:, None, :])
            )
            change = tvd(outputs, original[:, None, :])
            penalty = settings.output_penalty * torch.relu(change - settings.output_margin)
            pairs = 0.5 * (own[:, first] + own[:, second]) - negative_entropy(
                0.5 * (candidates[:, first] + candidates[:, second])
            )
            diversity = pairs.mean(-1) if len(first) else torch.zeros(batch)
            return (penalty - divergence).sum(-1) - diversity  # [B]

        trace = []
        for step in range(settings.steps):
            optimizer.zero_grad(set_to_none=True)
            per_instance = objective(logits)
            per_instance.sum().backward()
            optimizer.step()
            if step + 1 in trace_steps:
                with torch.no_grad():
                    trace.append(objective(logits))
        with torch.no_grad():
            candidates = masked_softmax(logits, mask)
            outputs = self.decode(cls_inputs, values, mix(candidates))
            candidate_tvd = tvd(outputs, original[:, None, :])
            candidate_jsd = jsd(candidates, alpha[:, None, :])
            surviving = torch.where(candidate_tvd <= settings.epsilon, candidate_jsd, -math.inf)
            best = surviving.max(dim=1).values
            return {
                "max_jsd": torch.where(best > 0, best, 0.0),
                "candidate_jsd": candidate_jsd,
                "candidate_tvd": candidate_tvd,
                "candidates": candidates,
                "objective": objective(logits),
                "trace": torch.stack(trace) if trace else torch.zeros(0, batch),
            }


def length_sorted_batches(pieces, batch_size: int = 32):
    """Eager batching: the instances sorted by length, ``batch_size`` at a time, each batch
    padded (with 0, BERT's [PAD]) to its own longest; no padding rows.

    Args:
      pieces: one sequence of token ids per instance ([CLS] and [SEP] included).

    Yields:
      ``(indices [b] into pieces, token_ids [b, T] long, lengths [b] long)``.
    """
    order = sorted(range(len(pieces)), key=lambda i: (len(pieces[i]), i))
    for start in range(0, len(order), batch_size):
        indices = order[start : start + batch_size]
        lengths = torch.as_tensor([len(pieces[i]) for i in indices], dtype=torch.long)
        token_ids = torch.zeros(len(indices), int(lengths.max()), dtype=torch.long)
        for row, i in enumerate(indices):
            token_ids[row, : len(pieces[i])] = torch.as_tensor(list(pieces[i]), dtype=torch.long)
        yield indices, token_ids, lengths
