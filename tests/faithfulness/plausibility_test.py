"""Plausibility against evidence: AUPRC equals scikit-learn's average precision (ties
included), top-k F1 and exact top-k equal a plain Python count, the vmapped batch equals a
loop over instances, and masks that are all one value are undefined."""

import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from attn_audit.faithfulness.plausibility import batch_plausibility, plausibility


def _laid_out(values, width):
    """Real-token values on positions 1..n of a width-``width`` row (SOS at 0, then EOS)."""
    row = np.zeros(width, np.float32)
    row[1 : 1 + len(values)] = values
    return row


def _reference(scores, evidence):
    order = sorted(range(len(scores)), key=lambda t: (-abs(scores[t]), t))
    k = int(sum(evidence))
    top = set(order[:k])
    hits = sum(1 for t in top if evidence[t])
    total = sum(abs(s) for s in scores)
    n = len(scores)
    beside = [
        not evidence[t] and ((t > 0 and evidence[t - 1]) or (t + 1 < n and evidence[t + 1]))
        for t in range(n)
    ]
    return {
        "auprc": average_precision_score(evidence, np.abs(scores)),
        "top_k_f1": hits / k,
        "exact_top_k": float(hits == k),
        "top_1_evidence": float(bool(evidence[order[0]])),
        "evidence_mass": sum(abs(s) for s, e in zip(scores, evidence, strict=True) if e) / total,
        "neighbour_mass": sum(abs(s) for s, b in zip(scores, beside, strict=True) if b) / total,
    }


def test_matches_scikit_learn_and_a_plain_count_with_ties_and_signs():
    rng = np.random.default_rng(0)
    width = 24
    batch = {"scores": [], "evidence": [], "lengths": []}
    expected = []
    for number in range(40):
        n = int(rng.integers(2, width - 2))
        evidence = (rng.random(n) < 0.3).astype(np.int32)
        evidence[number % n] = 1
        evidence[(number + 1) % n] = 0
        scores = rng.normal(size=n).astype(np.float32)
        if number % 3 == 0:
            scores = np.round(scores, 0)  # many ties, signs kept: ranked by |score|
        expected.append(_reference(scores, evidence))
        got = plausibility(jnp.asarray(_laid_out(scores, width)),
                           jnp.asarray(_laid_out(evidence, width)), n + 2)  # fmt: skip
        for name, value in expected[-1].items():
            assert float(got[name]) == pytest.approx(value, abs=1e-6), (number, name)
        batch["scores"].append(_laid_out(scores, width))
        batch["evidence"].append(_laid_out(evidence, width))
        batch["lengths"].append(n + 2)
    found = batch_plausibility(*(jnp.asarray(np.array(v)) for v in batch.values()))
    for name in ("auprc", "top_k_f1", "exact_top_k"):
        np.testing.assert_allclose(found[name], [e[name] for e in expected], atol=1e-6)


def test_hand_cases_and_undefined_masks():
    width = 8
    cases = [  # (scores, evidence, auprc, top-k F1, exact)
        ([0.9, 0.1, 0.5, -0.7], [1, 0, 0, 1], 1.0, 1.0, 1.0),
        ([0.1, 0.9, 0.5, 0.2], [1, 0, 0, 0], 0.25, 0.0, 0.0),
        ([0.5, 0.5, 0.5, 0.5], [1, 0, 0, 0], 0.25, 1.0, 1.0),  # a tie: ranked by position
    ]
    for scores, evidence, auprc, f1, exact in cases:
        got = plausibility(jnp.asarray(_laid_out(scores, width)),
                           jnp.asarray(_laid_out(evidence, width)), len(scores) + 2)  # fmt: skip
        assert float(got["auprc"]) == pytest.approx(auprc)
        assert float(got["top_k_f1"]) == pytest.approx(f1)
        assert float(got["exact_top_k"]) == exact
    for evidence in ([0, 0, 0], [1, 1, 1]):
        got = plausibility(jnp.asarray(_laid_out([0.3, 0.2, 0.1], width)),
                           jnp.asarray(_laid_out(evidence, width)), 5)  # fmt: skip
        assert all(np.isnan(float(value)) for value in got.values())
    # evidence marked on SOS, EOS or PAD is not read
    got = plausibility(jnp.asarray(_laid_out([0.3, 0.2], width)),
                       jnp.asarray(np.array([1, 1, 0, 1, 1, 1, 1, 1], np.float32)), 4)  # fmt: skip
    assert float(got["auprc"]) == pytest.approx(1.0)
