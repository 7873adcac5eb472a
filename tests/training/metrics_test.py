import math

import numpy as np
import pytest
from scipy import stats

from attn_audit.training import metrics


def reference_auc(labels, scores):
    """AUC as the Mann–Whitney U statistic over positives × negatives (scipy)."""
    positives, negatives = scores[labels == 1], scores[labels == 0]
    u = stats.mannwhitneyu(positives, negatives, alternative="two-sided").statistic
    return u / (len(positives) * len(negatives))


@pytest.mark.parametrize("with_ties", [False, True])
def test_binary_auc_matches_mann_whitney(with_ties):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    scores = rng.random(200)
    if with_ties:
        scores = np.round(scores, 1)
    probabilities = np.stack([1 - scores, scores], axis=1)
    assert metrics.roc_auc(labels, probabilities) == pytest.approx(reference_auc(labels, scores))


def test_perfect_and_single_class_auc():
    labels = np.array([0, 0, 1, 1])
    scores = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.1, 0.9]])
    assert metrics.roc_auc(labels, scores) == 1.0
    assert np.isnan(metrics.roc_auc(np.zeros(4, int), scores))


def test_macro_f1_and_accuracy_by_hand():
    labels = np.array([0, 0, 1, 1, 2])
    predicted = np.array([0, 1, 1, 1, 0])
    probabilities = np.eye(3)[predicted]
    assert metrics.accuracy(labels, probabilities) == pytest.approx(3 / 5)
    # class 0: TP1 FP1 FN1 → 0.5; class 1: TP2 FP1 FN0 → 0.8; class 2: TP0 FP0 FN1 → 0.
    assert metrics.macro_f1(labels, probabilities) == pytest.approx((0.5 + 0.8 + 0.0) / 3)


def binomial_upper_tail(correct, n, p):
    """P(X ≥ correct) for X ~ Binomial(n, p), summed term by term."""
    return sum(math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(correct, n + 1))


@pytest.mark.parametrize("correct", [0, 50, 55, 60, 62, 63, 64, 70, 100])
def test_beats_majority_is_a_one_sided_binomial_test_against_the_majority_share(correct):
    labels = np.array([0] * 50 + [1] * 30 + [2] * 20)  # the constant answer 0 scores 0.5
    expected = binomial_upper_tail(correct, 100, 0.5) < metrics.LEARNT_SIGNIFICANCE
    assert metrics.beats_majority(correct / 100, labels) == expected
    assert metrics.beats_majority(0.5, labels) is False and metrics.beats_majority(0.7, labels)


def test_beats_majority_needs_labels():
    with pytest.raises(ValueError, match="at least one label"):
        metrics.beats_majority(0.5, np.array([], dtype=int))
