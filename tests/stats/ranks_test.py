"""attn_audit.stats.ranks: Spearman's ρ against scipy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats as scipy_stats

from attn_audit import stats


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
