"""Classification metrics on the host (numpy): accuracy, ROC-AUC, macro-F1, and whether an
accuracy beats always giving the majority answer."""

import numpy as np
from scipy import special

# A model has learnt something when a one-sided binomial test puts its accuracy above the
# majority answer's at this level.
LEARNT_SIGNIFICANCE = 0.01


def accuracy(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Share of rows whose argmax class equals the label.

    Args:
      labels: int ``[N]``.
      probabilities: ``[N, C]``.
    """
    return float(np.mean(np.argmax(probabilities, axis=-1) == labels))


def _binary_auc(is_positive: np.ndarray, scores: np.ndarray) -> float:
    """Mann–Whitney AUC with mid-ranks for ties; NaN when one class is absent."""
    positives = int(is_positive.sum())
    negatives = len(is_positive) - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(len(scores))
    # Mid-ranks: every member of a run of equal scores gets the run's mean rank.
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    mid_ranks = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(mid_ranks, counts)
    rank_sum = ranks[is_positive].sum()
    return float((rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives))


def roc_auc(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """ROC-AUC; binary on the positive class, else the macro one-vs-rest mean.

    Args:
      labels: int ``[N]``.
      probabilities: ``[N, C]``.
    """
    num_classes = probabilities.shape[-1]
    if num_classes == 2:
        return _binary_auc(labels == 1, probabilities[:, 1])
    aucs = [_binary_auc(labels == c, probabilities[:, c]) for c in range(num_classes)]
    aucs = [a for a in aucs if not np.isnan(a)]
    return float(np.mean(aucs)) if aucs else float("nan")


def macro_f1(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Unweighted mean over classes of F1 = 2·TP / (2·TP + FP + FN).

    Classes that are neither predicted nor present are skipped.
    """
    predictions = np.argmax(probabilities, axis=-1)
    scores = []
    for c in range(probabilities.shape[-1]):
        true_positive = np.sum((predictions == c) & (labels == c))
        false_positive = np.sum((predictions == c) & (labels != c))
        false_negative = np.sum((predictions != c) & (labels == c))
        denominator = 2 * true_positive + false_positive + false_negative
        if denominator:
            scores.append(2 * true_positive / denominator)
    return float(np.mean(scores)) if scores else float("nan")


def classification_report(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """``{"accuracy", "roc_auc", "macro_f1", "n"}``."""
    return {
        "accuracy": accuracy(labels, probabilities),
        "roc_auc": roc_auc(labels, probabilities),
        "macro_f1": macro_f1(labels, probabilities),
        "n": int(len(labels)),
    }


def beats_majority(accuracy_value: float, labels: np.ndarray) -> bool:
    """Whether ``accuracy_value`` on ``labels`` is significantly above always giving one answer.

    The best constant answer, the most frequent label, scores its share ``p0`` of ``labels``;
    a model that gives one answer to (nearly) every instance, as a QA model stuck at the
    answer prior does, scores about ``p0``. One-sided binomial test of ``k = round(acc · N)``
    correct out of ``N`` against ``p0``, at ``LEARNT_SIGNIFICANCE``: the p-value
    ``P(X ≥ k)``, ``X ~ Binomial(N, p0)``, is ``bdtrc(k − 1, N, p0)`` (scipy.special; not
    scipy.stats, whose import costs every command about a second).

    Args:
      accuracy_value: the model's accuracy on ``labels``.
      labels: int ``[N]``, N ≥ 1.
    """
    labels = np.asarray(labels)
    if labels.size == 0:
        raise ValueError("beats_majority needs at least one label.")
    majority_share = np.bincount(labels).max() / labels.size
    correct = int(round(accuracy_value * labels.size))
    p_value = special.bdtrc(correct - 1, labels.size, majority_share) if correct > 0 else 1.0
    return bool(p_value < LEARNT_SIGNIFICANCE)
