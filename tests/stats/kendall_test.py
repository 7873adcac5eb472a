"""attn_audit.stats.kendall: Kendall's τ-b against scipy.

Tolerance for τ and p is 1e-6 absolute, the bar SPEC §6 sets. The implementation does scipy's
float64 arithmetic on the same integer counts, so the real gap is at rounding level.
"""

import math
import warnings

import numpy as np
import pytest
from scipy import stats as scipy_stats

from attn_audit import stats

TOLERANCE = 1e-6


def scipy_kendall(x, y, mask, **kwargs):
    """The reference: one scipy call per row on the valid positions. ``[B]`` τ and p."""
    taus, p_values = [], []
    for row_x, row_y, row_mask in zip(x, y, mask, strict=True):
        with warnings.catch_warnings():
            # scipy warns about samples of size < 2; the NaN it returns is what we compare.
            warnings.simplefilter("ignore")
            result = scipy_stats.kendalltau(row_x[row_mask], row_y[row_mask], **kwargs)
        taus.append(result.statistic)
        p_values.append(result.pvalue)
    return np.array(taus, np.float64), np.array(p_values, np.float64)


def assert_matches_scipy(x, y, mask):
    tau, p_value = stats.kendall_tau_b(x, y, mask)
    expected_tau, expected_p = scipy_kendall(x, y, mask)
    assert tau.dtype == np.float64 and p_value.dtype == np.float64
    assert tau.shape == p_value.shape == (x.shape[0],)
    np.testing.assert_allclose(tau, expected_tau, rtol=0, atol=TOLERANCE, equal_nan=True)
    np.testing.assert_allclose(p_value, expected_p, rtol=0, atol=TOLERANCE, equal_nan=True)


def scattered_mask(rng, lengths, num_positions):
    """``[B, T]`` bool with ``lengths[b]`` True entries at random positions of row b."""
    mask = np.zeros((len(lengths), num_positions), bool)
    for row, length in enumerate(lengths):
        mask[row, rng.choice(num_positions, size=length, replace=False)] = True
    return mask


def draw(kind, rng, shape):
    """Correlated x, y with the tie pattern ``kind``."""
    x = rng.normal(size=shape)
    y = 0.4 * x + rng.normal(size=shape)
    if kind == "rounded":
        return np.round(x, 1), np.round(y, 1)
    if kind == "integer":
        return rng.integers(0, 4, shape).astype(np.float64), rng.integers(0, 6, shape).astype(
            np.float64
        )
    if kind == "ties_in_x_only":
        return np.round(x), y
    if kind == "ties_in_y_only":
        return x, np.round(y)
    return x, y


@pytest.mark.parametrize(
    "kind", ["no_ties", "rounded", "integer", "ties_in_x_only", "ties_in_y_only"]
)
def test_tau_and_p_match_scipy_on_rows_of_different_lengths(kind):
    rng = np.random.default_rng(list(kind.encode()))
    num_positions = 64
    # Every length 2..60 plus the exact/asymptotic boundary twice more, mask at scattered spots.
    lengths = np.concatenate([np.arange(2, 61), [33, 34, 33, 34]])
    x, y = draw(kind, rng, (len(lengths), num_positions))
    assert_matches_scipy(x, y, scattered_mask(rng, lengths, num_positions))


@pytest.mark.parametrize("kind", ["no_ties", "rounded"])
def test_long_rows_match_scipy(kind):
    rng = np.random.default_rng(7)
    lengths = [100, 250, 400, 3, 2]
    x, y = draw(kind, rng, (len(lengths), 400))
    assert_matches_scipy(x, y, scattered_mask(rng, lengths, 400))


@pytest.mark.parametrize(("size", "method"), [(33, "exact"), (34, "asymptotic")])
def test_auto_rule_switches_at_33_samples_without_ties(size, method):
    rng = np.random.default_rng(size)
    x = rng.normal(size=(4, size))
    y = 0.3 * x + rng.normal(size=(4, size))
    mask = np.ones((4, size), bool)
    _, p_value = stats.kendall_tau_b(x, y, mask)
    _, expected_p = scipy_kendall(x, y, mask, method=method)
    np.testing.assert_allclose(p_value, expected_p, rtol=0, atol=TOLERANCE)


def test_exact_p_when_at_most_one_pair_is_discordant_beyond_33_samples():
    concordant = np.arange(50.0)
    one_swap = concordant.copy()
    one_swap[[20, 21]] = one_swap[[21, 20]]
    x = np.stack([concordant, concordant, concordant, concordant])
    y = np.stack([concordant, concordant[::-1], one_swap, one_swap[::-1]])
    mask = np.ones(x.shape, bool)
    tau, p_value = stats.kendall_tau_b(x, y, mask)
    _, expected_exact = scipy_kendall(x, y, mask, method="exact")
    np.testing.assert_allclose(p_value, expected_exact, rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(tau[:2], [1.0, -1.0])
    # min(C, Q) = 0 gives 2/n!, min(C, Q) = 1 gives 2/(n−1)!.
    np.testing.assert_allclose(p_value[0], 2 / math.factorial(50), rtol=1e-12)
    np.testing.assert_allclose(p_value[2], 2 / math.factorial(49), rtol=1e-12)
    assert_matches_scipy(x, y, mask)


def test_exact_p_underflows_to_zero_like_scipy_past_170_samples():
    x = np.arange(200.0)[None, :]
    assert_matches_scipy(x, x, np.ones(x.shape, bool))
    assert stats.kendall_tau_b(x, x, np.ones(x.shape, bool))[1][0] == 0.0


def test_undefined_rows_are_nan_like_scipy():
    x = np.array(
        [
            [1.0, 1.0, 1.0, 1.0],  # constant x
            [1.0, 2.0, 3.0, 4.0],  # constant y
            [1.0, 2.0, 3.0, 4.0],  # one valid position
            [1.0, 2.0, 3.0, 4.0],  # no valid position
            [1.0, np.nan, 3.0, 4.0],  # NaN at a valid position propagates
            [1.0, np.nan, 3.0, 4.0],  # NaN off the mask does not count
            [5.0, 2.0, 3.0, 2.0],  # constant over the valid positions only
        ]
    )
    y = np.array(
        [
            [1.0, 2.0, 3.0, 4.0],
            [7.0, 7.0, 7.0, 7.0],
            [1.0, 2.0, 3.0, 4.0],
            [1.0, 2.0, 3.0, 4.0],
            [1.0, 2.0, 3.0, 4.0],
            [1.0, 2.0, 4.0, 3.0],
            [1.0, 2.0, 3.0, 4.0],
        ]
    )
    mask = np.ones(x.shape, bool)
    mask[2, 1:] = False
    mask[3] = False
    mask[5, 1] = False
    mask[6] = [False, True, False, True]
    tau, p_value = stats.kendall_tau_b(x, y, mask)
    expected_nan = [True, True, True, True, True, False, True]
    np.testing.assert_array_equal(np.isnan(tau), expected_nan)
    np.testing.assert_array_equal(np.isnan(p_value), expected_nan)
    assert_matches_scipy(x, y, mask)


def test_two_samples_give_p_one():
    tau, p_value = stats.kendall_tau_b(
        np.array([[1.0, 2.0]]), np.array([[4.0, 3.0]]), np.ones((1, 2), bool)
    )
    np.testing.assert_allclose(tau, [-1.0])
    np.testing.assert_allclose(p_value, [1.0])


def test_integer_and_float32_inputs_match_scipy():
    rng = np.random.default_rng(3)
    mask = scattered_mask(rng, [5, 20, 40], 40)
    assert_matches_scipy(rng.integers(0, 5, (3, 40)), rng.integers(0, 5, (3, 40)), mask)
    assert_matches_scipy(
        rng.normal(size=(3, 40)).astype(np.float32), rng.random((3, 40)).astype(np.float32), mask
    )


def test_chunking_over_the_batch_gives_the_same_numbers(monkeypatch):
    rng = np.random.default_rng(5)
    x, y = draw("rounded", rng, (9, 30))
    mask = scattered_mask(rng, rng.integers(0, 31, 9), 30)
    whole = stats.kendall_tau_b(x, y, mask)
    # One row per chunk.
    monkeypatch.setattr(stats.kendall, "_PAIR_ELEMENTS_PER_CHUNK", 1)
    chunked = stats.kendall_tau_b(x, y, mask)
    np.testing.assert_array_equal(whole[0], chunked[0])
    np.testing.assert_array_equal(whole[1], chunked[1])


def test_shape_and_mask_errors_say_what_to_do():
    with pytest.raises(ValueError, match=r"x\[None\]"):
        stats.kendall_tau_b(np.zeros(3), np.zeros(3), np.ones(3, bool))
    with pytest.raises(ValueError, match="one shape"):
        stats.kendall_tau_b(np.zeros((2, 3)), np.zeros((2, 4)), np.ones((2, 3), bool))
    with pytest.raises(ValueError, match="astype"):
        stats.kendall_tau_b(np.zeros((2, 3)), np.zeros((2, 3)), np.ones((2, 3)))


def test_significant_fraction_excludes_nan():
    summary = stats.significant_fraction(np.array([0.01, 0.05, 0.2, np.nan, 0.5, np.nan]))
    assert summary == {"significant_fraction": 0.5, "num_defined": 4, "num_undefined": 2}
    empty = stats.significant_fraction(np.array([np.nan]))
    assert math.isnan(empty["significant_fraction"]) and empty["num_undefined"] == 1
