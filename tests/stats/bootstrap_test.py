"""attn_audit.stats.bootstrap: the bootstrap interval of means against scipy's bootstrap.

The bootstrap draws other random numbers than scipy, so the two intervals differ by Monte-Carlo
error; the tolerance is ``BOOTSTRAP_SE_MULTIPLE`` standard errors of the difference of two
independent estimates of the quantile (see ``quantile_standard_error``).
"""

import math

import jax
import numpy as np
import pytest
from scipy import stats as scipy_stats

from attn_audit import stats

# Resamples on both sides of the scipy comparisons, and the tolerance in standard errors.
BOOTSTRAP_RESAMPLES = 20_000
BOOTSTRAP_SE_MULTIPLE = 4.0


def quantile_standard_error(distribution, probability, resamples):
    """Standard error of the ``probability`` quantile estimated from ``resamples`` draws.

    ``sqrt(p (1 − p) / R) / f(q_p)`` (a sample quantile's asymptotic standard error), with
    ``1 / f(q_p)`` read off ``distribution`` as a central difference of its quantiles.
    """
    step = 0.01
    inverse_density = (
        np.quantile(distribution, probability + step)
        - np.quantile(distribution, probability - step)
    ) / (2 * step)
    return math.sqrt(probability * (1 - probability) / resamples) * inverse_density


def scipy_percentile_bootstrap(sample, seed):
    """scipy's interval and the tolerance for comparing an independent estimate with it."""
    reference = scipy_stats.bootstrap(
        (sample,),
        np.mean,
        method="percentile",
        n_resamples=BOOTSTRAP_RESAMPLES,
        confidence_level=0.95,
        rng=np.random.default_rng(seed),
    )
    distribution = reference.bootstrap_distribution
    # Two independent estimates: the standard error of their difference is √2 times one's.
    tolerance = [
        BOOTSTRAP_SE_MULTIPLE
        * math.sqrt(2)
        * quantile_standard_error(distribution, probability, BOOTSTRAP_RESAMPLES)
        for probability in (0.025, 0.975)
    ]
    interval = np.array([reference.confidence_interval.low, reference.confidence_interval.high])
    return interval, np.array(tolerance)


BOOTSTRAP_ROWS = ("normal", "exponential", "lognormal", "lognormal_with_nan")


def bootstrap_rows():
    """``[4, 60]``: three samples and the last with every fifth entry missing (one shape, so
    one compilation for every comparison with scipy)."""
    rng = np.random.default_rng(11)
    lognormal = rng.lognormal(0.0, 1.0, 60)
    with_nan = lognormal.copy()
    with_nan[::5] = np.nan
    return np.stack([rng.normal(1.0, 2.0, 60), rng.exponential(1.0, 60), lognormal, with_nan])


@pytest.mark.parametrize("row", range(3))
def test_bootstrap_interval_matches_scipy_within_monte_carlo_error(row, key):
    values = bootstrap_rows()
    ours = stats.bootstrap_mean_ci(values, key, resamples=BOOTSTRAP_RESAMPLES)
    expected, tolerance = scipy_percentile_bootstrap(values[row], seed=3)
    interval = np.array([ours["low"][row], ours["high"][row]])
    assert np.all(np.abs(interval - expected) <= tolerance), BOOTSTRAP_ROWS[row]
    np.testing.assert_allclose(ours["mean"][row], np.mean(values[row]), rtol=1e-15)
    assert ours["count"][row] == values.shape[-1]
    for field in ("mean", "low", "high"):
        assert ours[field].dtype == np.float64 and ours[field].shape == (4,)
    assert ours["count"].dtype == np.int64


def test_wrong_bootstrap_variants_fail_the_scipy_tolerance(key):
    """The tolerance is tight enough to catch a wrong level, the basic (reverse percentile)
    interval on a skewed sample, and resampling without replacement."""
    values = bootstrap_rows()
    ours = stats.bootstrap_mean_ci(values, key, resamples=BOOTSTRAP_RESAMPLES, return_means=True)
    rng = np.random.default_rng(5)
    for row in range(3):
        name, sample, means = BOOTSTRAP_ROWS[row], values[row], ours["resample_means"][row]
        expected, tolerance = scipy_percentile_bootstrap(sample, seed=3)

        def fails(interval, expected=expected, tolerance=tolerance):
            return np.any(np.abs(np.asarray(interval) - expected) > tolerance)

        assert not fails(np.quantile(means, [0.025, 0.975])), name  # the right one passes
        assert fails(np.quantile(means, [0.05, 0.95])), name  # level 0.90
        permuted = rng.permuted(np.tile(sample, (BOOTSTRAP_RESAMPLES, 1)), axis=-1)
        assert fails(np.quantile(permuted.mean(-1), [0.025, 0.975])), name
        basic = 2 * ours["mean"][row] - np.quantile(means, [0.975, 0.025])
        # Basic and percentile intervals differ by the skew of the bootstrap distribution:
        # nothing to see on the normal sample.
        assert fails(basic) == (name != "normal"), name


def test_bootstrap_ignores_nan_like_removing_the_entries(key):
    values = bootstrap_rows()
    finite = values[3][~np.isnan(values[3])]
    ours = stats.bootstrap_mean_ci(values, key, resamples=BOOTSTRAP_RESAMPLES)
    # nanmean and mean add in different orders: equal to float64 rounding, not bit for bit.
    np.testing.assert_allclose(ours["mean"][3], np.mean(finite), rtol=1e-14)
    assert ours["count"][3] == len(finite) == 48
    # The interval is not scipy's on the finite values (the number of values in a resample
    # varies), but within Monte-Carlo error of it.
    expected, tolerance = scipy_percentile_bootstrap(finite, seed=4)
    assert np.all(np.abs(np.array([ours["low"][3], ours["high"][3]]) - expected) <= tolerance)


# The small tests share shapes ([3, 25] and [2, 3, 25], 300 resamples): each new shape costs
# a compilation of about a second on CPU, mostly the random bits.
SMALL_RESAMPLES = 300


def test_bootstrap_rows_are_paired_by_instance(key):
    rng = np.random.default_rng(12)
    a = rng.normal(size=25)
    b = a + 0.3 * rng.normal(size=25) - 0.1  # strongly correlated with a
    ours = stats.bootstrap_mean_ci(
        np.stack([a, b, a - b]), key, resamples=SMALL_RESAMPLES, return_means=True
    )
    means = ours["resample_means"]
    assert means.shape == (3, SMALL_RESAMPLES)
    # float32 resampling: the relation holds to rounding of sums of 25 values near 1.
    np.testing.assert_allclose(means[2], means[0] - means[1], rtol=0, atol=1e-6)
    np.testing.assert_allclose(
        [ours["low"][2], ours["high"][2]],
        np.quantile(means[0] - means[1], [0.025, 0.975]),
        rtol=0,
        atol=1e-6,
    )
    # Pairing is what makes the difference's interval narrow: a and b move together.
    assert np.corrcoef(means[0], means[1])[0, 1] > 0.9


def test_bootstrap_rows_without_values_or_with_one_value(key):
    values = np.full((3, 25), np.nan)
    values[1, 17] = 2.5  # one value: about a third of the resamples miss it
    values[2, :2] = [1.0, 3.0]
    ours = stats.bootstrap_mean_ci(values, key, resamples=SMALL_RESAMPLES, return_means=True)
    assert np.all(np.isnan([ours["mean"][0], ours["low"][0], ours["high"][0]]))
    assert ours["low"][1] == ours["high"][1] == ours["mean"][1] == 2.5
    np.testing.assert_array_equal(ours["count"], [0, 1, 2])
    assert np.isnan(ours["resample_means"][1]).any()  # the resamples that drew no value
    assert 1.0 <= ours["low"][2] < ours["high"][2] <= 3.0
    single = stats.bootstrap_mean_ci([4.0], key, resamples=3)
    assert single["low"] == single["high"] == single["mean"] == 4.0
    assert single["count"] == 1


def leading_axes_values():
    values = np.random.default_rng(14).exponential(size=(2, 3, 25))
    values[0, 1, :4] = np.nan
    return values


def test_bootstrap_is_seeded(key):
    values = leading_axes_values()
    first = stats.bootstrap_mean_ci(values, key, resamples=SMALL_RESAMPLES)
    again = stats.bootstrap_mean_ci(values, key, resamples=SMALL_RESAMPLES)
    other = stats.bootstrap_mean_ci(values, jax.random.fold_in(key, 1), resamples=SMALL_RESAMPLES)
    for field in ("mean", "low", "high", "count"):
        np.testing.assert_array_equal(first[field], again[field])
    assert np.all(first["low"] != other["low"]) and np.all(first["high"] != other["high"])
    np.testing.assert_array_equal(first["mean"], other["mean"])


def test_bootstrap_over_leading_axes_equals_each_row_alone(key):
    values = leading_axes_values()
    together = stats.bootstrap_mean_ci(values, key, resamples=SMALL_RESAMPLES)
    for field in ("mean", "low", "high", "count"):
        assert together[field].shape == (2, 3)
    for i in range(2):
        for j in range(3):
            alone = stats.bootstrap_mean_ci(values[i, j], key, resamples=SMALL_RESAMPLES)
            for field in ("mean", "low", "high", "count"):
                np.testing.assert_allclose(together[field][i, j], alone[field], rtol=1e-12)


def test_bootstrap_compiles_once_per_shape(key):
    values = leading_axes_values()
    stats.bootstrap_mean_ci(values, key, resamples=SMALL_RESAMPLES)
    compiled = stats.bootstrap._bootstrap_offsets._cache_size()
    stats.bootstrap_mean_ci(values + 1.0, jax.random.fold_in(key, 1), resamples=SMALL_RESAMPLES)
    assert stats.bootstrap._bootstrap_offsets._cache_size() == compiled


def test_bootstrap_accepts_integers(key):
    values = np.arange(25)  # the shape of one row above: no new compilation
    ours = stats.bootstrap_mean_ci(values, key, resamples=SMALL_RESAMPLES)
    assert ours["mean"] == 12.0 and 0.0 <= ours["low"] < 12.0 < ours["high"] <= 24.0


@pytest.mark.parametrize(
    ("values", "kwargs", "message"),
    [
        (np.zeros((3, 0)), {}, r"N ≥ 1 .*\(3, 0\)"),
        (np.float64(1.0), {}, r"\[\.\.\., N\].*shape \(\)"),
        (np.zeros(5), {"resamples": 0}, "resamples ≥ 1, got 0"),
        (np.zeros(5), {"resamples": 2.5}, "integer number of resamples"),
        (np.zeros(5), {"level": 95}, r"between 0 and 1, got 95.*level=0.95"),
        (np.zeros(5), {"level": 0.0}, "between 0 and 1"),
        (np.zeros(5), {"level": 1.0}, "between 0 and 1"),
        (np.array(["a", "b"]), {}, "real numbers"),
        (np.array([1.0, np.inf]), {}, "infinite.*NaN"),
    ],
)
def test_bootstrap_rejects_bad_arguments_and_says_what_to_pass(key, values, kwargs, message):
    with pytest.raises(ValueError, match=message):
        stats.bootstrap_mean_ci(values, key, **kwargs)
