"""attn_audit.faithfulness.agreement: τ-b per pair equals scipy's, the top-20% Jaccard equals
a Python set computation, and explainers without scores give NaN."""

import math

import numpy as np
from scipy import stats as scipy_stats

from attn_audit.faithfulness import agreement


def test_pairs_equal_scipy_and_python_sets():
    rng = np.random.default_rng(0)
    lengths = np.asarray([7, 12, 3, 16, 9])
    names = ("a", "b", "c")
    scores = np.zeros((5, 3, 16), np.float32)
    for row, length in enumerate(lengths):
        scores[row, :, 1 : length - 1] = rng.integers(0, 4, size=(3, length - 2))  # ties
    scores[4, 2] = 0.0  # a constant explainer: τ undefined
    available = np.ones((5, 3), bool)
    available[3, 1] = False
    pairs = agreement.pairwise_agreement(scores, available, lengths, names)
    assert list(pairs) == ["a|b", "a|c", "b|c"]
    for pair, found in pairs.items():
        i, j = (names.index(p) for p in pair.split("|"))
        for row, length in enumerate(lengths):
            x, y = scores[row, i, 1 : length - 1], scores[row, j, 1 : length - 1]
            if not available[row, i] or not available[row, j]:
                assert np.isnan(found["tau"][row]) and np.isnan(found["jaccard"][row])
                continue
            tau = scipy_stats.kendalltau(x, y).statistic if len(x) > 1 else np.nan
            np.testing.assert_allclose(found["tau"][row], tau, atol=1e-12, equal_nan=True)
            count = max(1, math.ceil(0.2 * len(x)))
            top = [set(sorted(range(len(v)), key=lambda t, v=v: (-v[t], t))[:count])
                   for v in (x, y)]  # fmt: skip
            expected = len(top[0] & top[1]) / len(top[0] | top[1])
            assert found["jaccard"][row] == np.float32(expected)
    assert np.isnan(pairs["a|c"]["tau"][4])
