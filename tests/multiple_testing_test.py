"""attn_audit.multiple_testing against scipy: Benjamini–Hochberg
(``scipy.stats.false_discovery_control``) and the one-sided Wilcoxon signed-rank test
(``scipy.stats.wilcoxon(x, alternative="greater")``, its defaults: ``zero_method="wilcox"``,
zeros dropped; no continuity correction; ``method="auto"``), with ties and zeros."""

import warnings

import numpy as np
import pytest
from scipy import stats

from attn_audit.multiple_testing import benjamini_hochberg, wilcoxon_greater


def scipy_wilcoxon_greater(values):
    with warnings.catch_warnings():  # scipy warns where every value is 0 (σ = 0)
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.wilcoxon(values, alternative="greater")
    return float(result.statistic), float(result.pvalue)


# ---------------------------------------------------------------- Benjamini–Hochberg


@pytest.mark.parametrize("size", [1, 2, 7, 40])
def test_benjamini_hochberg_equals_scipy(size):
    rng = np.random.default_rng(size)
    for round_to in (None, 2):  # rounded: tied p-values
        p_values = rng.uniform(0, 1, size) ** 3
        if round_to:
            p_values = np.round(p_values, round_to)
        adjusted, reject = benjamini_hochberg(p_values, 0.05)
        expected = stats.false_discovery_control(p_values, method="bh")
        np.testing.assert_allclose(adjusted, expected, rtol=1e-14, atol=0)
        # Rejected: BH's step-up rule, the largest k with p_(k) <= k q / m and all below it.
        ordered = np.sort(p_values)
        passing = np.flatnonzero(ordered <= np.arange(1, size + 1) * 0.05 / size)
        k = passing[-1] + 1 if passing.size else 0
        assert reject.sum() == k and np.all(p_values[reject] <= (ordered[k - 1] if k else -1))


def test_benjamini_hochberg_hand_computed_and_nan():
    """m = 4 defined p-values (the NaN is not a hypothesis): adjusted min_{j>=i} m p_(j) / j."""
    p_values = np.array([0.01, np.nan, 0.04, 0.03, 0.2])
    adjusted, reject = benjamini_hochberg(p_values, 0.05)
    np.testing.assert_allclose(adjusted, [0.04, np.nan, 0.16 / 3, 0.16 / 3, 0.2], rtol=1e-15)
    assert reject.tolist() == [True, False, False, False, False]
    defined = ~np.isnan(p_values)
    np.testing.assert_allclose(
        adjusted[defined], stats.false_discovery_control(p_values[defined]), rtol=1e-15
    )
    assert benjamini_hochberg(np.array([]))[0].shape == (0,)


def test_benjamini_hochberg_errors_say_what_to_do():
    with pytest.raises(ValueError, match="0 < q < 1"):
        benjamini_hochberg([0.1], q=5)
    with pytest.raises(ValueError, match=r"p-values in \[0, 1\]"):
        benjamini_hochberg([0.1, 1.5])
    with pytest.raises(ValueError, match="one family"):
        benjamini_hochberg(np.zeros((2, 2)))


# ---------------------------------------------------------------- Wilcoxon


def samples(kind, size, rng):
    """Continuous (no ties, no zeros: exact or normal), rounded (ties and zeros), small
    integers (many ties and zeros), and with an exact zero only."""
    if kind == "continuous":
        return rng.normal(0.2, 1.0, size)
    if kind == "rounded":
        return np.round(rng.normal(0.1, 0.3, size), 1)
    if kind == "integers":
        return rng.integers(-2, 4, size).astype(float)
    values = rng.normal(0.3, 1.0, size)
    values[0] = 0.0
    return values


@pytest.mark.parametrize("kind", ["continuous", "rounded", "integers", "one_zero"])
@pytest.mark.parametrize(
    "size",
    [2, 5, 9, 13, 14, 30, 50, 51, 80],  # exact / sign flips up to 13 / normal beyond 50
)
def test_wilcoxon_greater_equals_scipy(kind, size):
    rng = np.random.default_rng(size)
    # scipy's sign flips run its permutation test: seconds for 2^13 flips, so one sample there.
    for _ in range(1 if size == 13 else 4):
        values = samples(kind, size, rng)
        statistic, p_value = wilcoxon_greater(values)
        expected_statistic, expected_p = scipy_wilcoxon_greater(values)
        assert statistic == expected_statistic
        np.testing.assert_allclose(p_value, expected_p, rtol=1e-12, atol=1e-15)


def test_wilcoxon_greater_by_hand_nan_and_degenerate_samples():
    # Exact: R+ = 1 + 2 + 3 = 6 is the largest of 2^3 sign patterns: p = 1/8.
    assert wilcoxon_greater([0.1, 0.2, 0.3]) == (6.0, 0.125)
    # Undefined τ (NaN) are left out: the same as the defined values alone.
    values = np.array([0.3, np.nan, -0.1, 0.25, 0.0, 0.3])
    assert wilcoxon_greater(values) == scipy_wilcoxon_greater(values[~np.isnan(values)])
    assert np.isnan(wilcoxon_greater([np.nan, np.nan])).all()
    assert np.isnan(wilcoxon_greater([])).all()
    # Every value 0: the sign flips give p = 1 (n <= 13), the normal approximation NaN.
    assert wilcoxon_greater(np.zeros(5)) == scipy_wilcoxon_greater(np.zeros(5)) == (0.0, 1.0)
    assert np.isnan(wilcoxon_greater(np.zeros(60))[1])
    assert np.isnan(scipy_wilcoxon_greater(np.zeros(60))[1])
    with pytest.raises(ValueError, match=r"values \[n\]"):
        wilcoxon_greater(np.zeros((2, 3)))
