"""Plausibility against ground-truth evidence (SPEC §9), for one instance, then vmapped.

The evidence is a 0/1 mask over the real tokens (SST: the tokens whose leaf is labelled
≤ 1 or ≥ 3; a planted task: the markers). Tokens are ranked by ``|score|`` — evidence of
either polarity counts (SST marks negative and positive words alike; a signed explainer
gives words against the predicted class negative scores) — ties by position, as every
ranking here (``ranking.token_ranks``).

- **AUPRC**: average precision ``Σ_n (R_n − R_{n−1}) P_n`` over the distinct score
  thresholds (a tie is one threshold), as ``sklearn.metrics.average_precision_score``.
- **Top-k F1**: with ``k`` = the number of evidence tokens, the top ``k`` tokens against
  the evidence; both sets have ``k`` members, so F1 = precision = recall = ``|top ∩ E| / k``.
- **Exact top-k**: whether the top ``k`` tokens are exactly the evidence (planted tasks).
- **Top-1 on evidence**: whether the top token is evidence (with two markers, an
  explanation can find one and miss the other).
- **Evidence mass** ``Σ_{t∈E} |s_t| / Σ_t |s_t|`` over the real tokens, and **neighbour
  mass**, the same share on the tokens next to an evidence token that are not evidence
  themselves: where an explanation's mass goes when it misses (a BiLSTM can carry a marker
  into its neighbours' states). NaN also where every real score is 0.

All three are NaN where the mask is all 0 or all 1 over the real tokens (undefined).
"""

import jax
import jax.numpy as jnp
import numpy as np

from attn_audit.faithfulness.ranking import token_ranks
from attn_audit.models import real_token_mask


def plausibility(scores: jax.Array, evidence: jax.Array, length) -> dict[str, jax.Array]:
    """AUPRC, top-k F1 and exact top-k of one instance's scores against its evidence.

    Args:
      scores: ``[T]`` float, one explainer's scores laid out on positions.
      evidence: ``[T]`` 0/1 (bool or int) on positions; only real tokens are read.
      length: scalar int, non-PAD positions (SOS and EOS included).

    Returns:
      ``{"auprc", "top_k_f1", "exact_top_k", "top_1_evidence", "evidence_mass",
      "neighbour_mass"}``: float32 scalars, NaN when undefined.
    """
    num_positions = scores.shape[-1]
    real = real_token_mask(length, num_positions)
    magnitude = jnp.where(real, jnp.abs(scores), -jnp.inf)
    positive = real & (evidence > 0)
    num_evidence = jnp.sum(positive)
    num_real = jnp.sum(real)
    defined = (num_evidence > 0) & (num_evidence < num_real)

    # Average precision: tokens in decreasing |score|; a group of tied scores is one
    # threshold, so every token of a group takes the precision at the group's end.
    order = jnp.argsort(-magnitude, stable=True)
    sorted_scores, sorted_positive = magnitude[order], positive[order]
    true_positives = jnp.cumsum(sorted_positive)
    index = jnp.arange(num_positions)
    group_end = jnp.append(sorted_scores[1:] != sorted_scores[:-1], True)
    end_of_group = jax.lax.cummin(jnp.where(group_end, index, num_positions), reverse=True)
    precision_at_end = true_positives[end_of_group] / (end_of_group + 1)
    auprc = jnp.sum(jnp.where(sorted_positive, precision_at_end, 0.0)) / jnp.maximum(
        num_evidence, 1
    )

    ranks = token_ranks(jnp.where(real, jnp.abs(scores), 0.0), length)
    top = ranks < num_evidence
    hits = jnp.sum(top & positive)
    top_k_f1 = hits / jnp.maximum(num_evidence, 1)
    exact = (hits == num_evidence).astype(jnp.float32)
    first = jnp.sum((ranks == 0) & positive)
    mass = jnp.where(real, jnp.abs(scores), 0.0)
    total = jnp.sum(mass)
    beside = jnp.zeros_like(positive).at[1:].set(positive[:-1]) | jnp.append(positive[1:], False)
    neighbour = beside & real & ~positive
    has_mass = defined & (total > 0)
    denominator = jnp.where(has_mass, total, 1.0)
    undefined = jnp.float32(jnp.nan)
    return {
        "auprc": jnp.where(defined, auprc, undefined).astype(jnp.float32),
        "top_k_f1": jnp.where(defined, top_k_f1, undefined).astype(jnp.float32),
        "exact_top_k": jnp.where(defined, exact, undefined),
        "top_1_evidence": jnp.where(defined, first.astype(jnp.float32), undefined),
        "evidence_mass": jnp.where(
            has_mass, jnp.sum(jnp.where(positive, mass, 0.0)) / denominator, undefined
        ).astype(jnp.float32),
        "neighbour_mass": jnp.where(
            has_mass, jnp.sum(jnp.where(neighbour, mass, 0.0)) / denominator, undefined
        ).astype(jnp.float32),
    }


batch_plausibility = jax.jit(jax.vmap(plausibility))
"""``plausibility`` over a batch: ``scores [B, T]``, ``evidence [B, T]``, ``lengths [B]``."""


PLAUSIBILITY_MEASURES = (
    "auprc", "top_k_f1", "exact_top_k", "top_1_evidence", "evidence_mass", "neighbour_mass",
)  # fmt: skip


def score_records(records, evidence, names) -> list[dict]:
    """Plausibility of every named score list of every record against its evidence.

    Args:
      records: per-instance records (``index``, ``tokens`` and a score list per name),
        e.g. ``experiments.explain``'s joined with the audit's.
      evidence: per record, its 0/1 evidence over the same tokens.
      names: the score fields to judge (a record without one gets null for it).

    Returns:
      Per record ``{"id", "index", "num_tokens", "num_evidence", "plausibility": {name:
      {measure: float | None} | None}}``; None where undefined (evidence all 0 or all 1).
    """
    if len(records) != len(evidence):
        raise ValueError(f"{len(records)} records but {len(evidence)} evidence masks.")
    width = max((len(r["tokens"]) for r in records), default=0) + 2
    lengths = np.array([len(r["tokens"]) + 2 for r in records], np.int32)
    laid_out = np.zeros((len(records), width), np.float32)
    for row, (record, mask) in enumerate(zip(records, evidence, strict=True)):
        if len(mask) != len(record["tokens"]):
            raise ValueError(
                f"Record {record.get('id')} (index {record['index']}) has "
                f"{len(record['tokens'])} tokens but {len(mask)} evidence marks: the records "
                "were made from other data or another tokenisation."
            )
        laid_out[row, 1 : 1 + len(mask)] = mask
    found = {}
    for name in names:
        present = np.array([isinstance(r.get(name), list) for r in records])
        scores = np.zeros((len(records), width), np.float32)
        for row, record in enumerate(records):
            if present[row]:
                values = [np.nan if v is None else v for v in record[name]]
                scores[row, 1 : 1 + len(values)] = np.nan_to_num(np.array(values, np.float64))
        values = jax.device_get(batch_plausibility(scores, laid_out, lengths))
        found[name] = (present, values)
    out = []
    for row, (record, mask) in enumerate(zip(records, evidence, strict=True)):
        entry = {}
        for name, (present, values) in found.items():
            if not present[row]:
                entry[name] = None
                continue
            entry[name] = {
                measure: None if np.isnan(values[measure][row]) else float(values[measure][row])
                for measure in PLAUSIBILITY_MEASURES
            }
        out.append({"id": record.get("id"), "index": record["index"],
                    "num_tokens": len(record["tokens"]), "num_evidence": int(sum(mask)),
                    "plausibility": entry})  # fmt: skip
    return out
