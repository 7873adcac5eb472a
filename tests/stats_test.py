"""Tests of attn_audit.stats: Kendall's τ-b against scipy, TVD/JSD/KL by hand and scipy,
Spearman's ρ against scipy, the bootstrap interval of means against scipy's bootstrap.

Tolerance for τ and p is 1e-6 absolute, the bar SPEC §6 sets. The implementation does scipy's
float64 arithmetic on the same integer counts, so the real gap is at rounding level.

The bootstrap draws other random numbers than scipy, so the two intervals differ by Monte-Carlo
error; the tolerance is ``BOOTSTRAP_SE_MULTIPLE`` standard errors of the difference of two
independent estimates of the quantile (see ``quantile_standard_error``).
"""

import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import spatial
from scipy import stats as scipy_stats

from attn_audit import stats

TOLERANCE = 1e-6
# Resamples on both sides of the scipy comparisons, and the tolerance in standard errors.
BOOTSTRAP_RESAMPLES = 20_000
BOOTSTRAP_SE_MULTIPLE = 4.0


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
    monkeypatch.setattr(stats, "_PAIR_ELEMENTS_PER_CHUNK", 1)
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


def test_tvd_by_hand():
    np.testing.assert_allclose(stats.tvd(jnp.array([1.0, 0.0]), jnp.array([0.0, 1.0])), 1.0)
    np.testing.assert_allclose(
        stats.tvd(jnp.array([0.5, 0.3, 0.2]), jnp.array([0.2, 0.3, 0.5])), 0.3, atol=1e-7
    )
    # One sigmoid output as (σ, 1−σ): TVD = |σ_p − σ_q| (SPEC §6).
    np.testing.assert_allclose(stats.tvd(jnp.array([0.9, 0.1]), jnp.array([0.6, 0.4])), 0.3)


def test_jsd_and_kl_by_hand():
    p = jnp.array([0.7, 0.2, 0.1])
    np.testing.assert_allclose(stats.jsd(p, p), 0.0, atol=1e-7)
    np.testing.assert_allclose(stats.kl(p, p), 0.0, atol=1e-7)
    one_hot_a, one_hot_b = jnp.array([1.0, 0.0]), jnp.array([0.0, 1.0])
    np.testing.assert_allclose(stats.jsd(one_hot_a, one_hot_b), math.log(2), atol=1e-6)
    np.testing.assert_allclose(
        stats.kl(jnp.array([0.5, 0.5]), jnp.array([0.25, 0.75])),
        0.5 * math.log(2) + 0.5 * math.log(2 / 3),
        atol=1e-6,
    )


def test_jsd_and_kl_match_scipy():
    rng = np.random.default_rng(11)
    p = rng.dirichlet(np.ones(10), size=16)
    q = rng.dirichlet(np.full(10, 0.3), size=16)
    # jensenshannon is the square root of JSD, in nats when base is e (its default).
    expected_jsd = spatial.distance.jensenshannon(p, q, axis=-1) ** 2
    # KL(q ‖ p): q has near-zero entries, where the eps in the log of p would show.
    expected_kl = scipy_stats.entropy(q, p, axis=-1)
    # float32 logs of ten terms: ~1e-7 each; eps = 1e-10 moves the value by ~1e-9.
    np.testing.assert_allclose(stats.jsd(jnp.array(p), jnp.array(q)), expected_jsd, atol=2e-6)
    np.testing.assert_allclose(stats.kl(jnp.array(q), jnp.array(p)), expected_kl, atol=1e-5)
    np.testing.assert_allclose(
        stats.tvd(jnp.array(p), jnp.array(q)), 0.5 * np.abs(p - q).sum(-1), atol=1e-6
    )


def test_distances_are_vmappable_jittable_and_broadcast_within_a_rank():
    rng = np.random.default_rng(13)
    p = jnp.array(rng.dirichlet(np.ones(6), size=5), jnp.float32)
    q = jnp.array(rng.dirichlet(np.ones(6), size=5), jnp.float32)
    for distance in (stats.tvd, stats.jsd, stats.kl):
        batched = distance(p, q)
        assert batched.shape == (5,)
        np.testing.assert_allclose(jax.vmap(distance)(p, q), batched, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(jax.jit(distance)(p, q), batched, rtol=1e-6, atol=1e-7)
    # The adversarial audit's pairwise form: [K, 1, T] against [1, K, T] gives [K, K].
    pairwise = stats.jsd(p[:, None, :], p[None, :, :])
    assert pairwise.shape == (5, 5)
    np.testing.assert_allclose(jnp.diagonal(pairwise), 0.0, atol=1e-7)
    np.testing.assert_allclose(pairwise, pairwise.T, atol=1e-7)


@pytest.mark.parametrize("distance", [stats.tvd, stats.jsd, stats.kl])
def test_gradients_are_finite_at_one_hot_inputs(distance):
    one_hot_a, one_hot_b = jnp.array([1.0, 0.0, 0.0]), jnp.array([0.0, 1.0, 0.0])
    for q in (one_hot_a, one_hot_b):
        grad_p, grad_q = jax.grad(distance, argnums=(0, 1))(one_hot_a, q)
        assert jnp.all(jnp.isfinite(grad_p)) and jnp.all(jnp.isfinite(grad_q))


# ---------------------------------------------------------------- Spearman's ρ


def scipy_rho(a, b):
    if np.all(a == a[0]) or np.all(b == b[0]):
        return 0.0  # scipy gives NaN (with a warning); AZ count it as 0
    return scipy_stats.spearmanr(a, b).statistic


@pytest.mark.parametrize("seed", range(6))
def test_spearman_equals_scipy_with_ties_and_masks(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 15))
    a = rng.integers(0, 4, n).astype(np.float32)  # many ties
    b = rng.normal(size=n).astype(np.float32)
    b[: n // 3] = b[0]  # ties in b too
    mask = rng.random(n) < 0.8
    mask[:2] = True
    rho = stats.spearman_rho(jnp.asarray(a), jnp.asarray(b), jnp.asarray(mask))
    # Ranks are exact small integers or halves; float32 sums of n ≤ 15 terms: 1e-6.
    np.testing.assert_allclose(rho, scipy_rho(a[mask], b[mask]), atol=1e-6)


def test_spearman_of_a_constant_vector_is_zero_where_scipy_gives_nan():
    a = np.array([1.0, 2.0, 3.0, 4.0], np.float32)
    constant = np.full(4, 0.5, np.float32)
    with pytest.warns(scipy_stats.ConstantInputWarning):
        assert np.isnan(scipy_stats.spearmanr(a, constant).statistic)
    mask = jnp.ones(4, bool)
    assert float(stats.spearman_rho(jnp.asarray(a), jnp.asarray(constant), mask)) == 0.0
    one = jnp.array([True, False, False, False])
    assert float(stats.spearman_rho(jnp.asarray(a), jnp.asarray(a[::-1]), one)) == 0.0


def test_spearman_vmapped_equals_each_pair_and_rejects_shapes():
    rng = np.random.default_rng(9)
    a, b = rng.normal(size=(2, 5, 7)).astype(np.float32)
    mask = rng.random((5, 7)) < 0.7
    batched = jax.jit(jax.vmap(stats.spearman_rho))(a, b, mask)
    for row in range(5):
        np.testing.assert_allclose(
            batched[row], stats.spearman_rho(a[row], b[row], mask[row]), atol=1e-7
        )
    with pytest.raises(ValueError, match="one shape"):
        stats.spearman_rho(a, b[0], mask[0])


# ---------------------------------------------------------------- bootstrap of means


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
    compiled = stats._bootstrap_offsets._cache_size()
    stats.bootstrap_mean_ci(values + 1.0, jax.random.fold_in(key, 1), resamples=SMALL_RESAMPLES)
    assert stats._bootstrap_offsets._cache_size() == compiled


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
