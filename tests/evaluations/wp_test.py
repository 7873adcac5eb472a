"""attn_audit.evaluations.wp: seed variance by hand; the numpy JSD / TVD it uses."""

import numpy as np
import pytest
from scipy.spatial import distance

from attn_audit import stats, training
from attn_audit.evaluations import wp


def test_jsd_and_tvd_match_references():
    rng = np.random.default_rng(0)
    p, q = rng.dirichlet(np.ones(7)), rng.dirichlet(np.ones(7))
    assert stats.jsd_np(p, q) == pytest.approx(distance.jensenshannon(p, q) ** 2, abs=1e-8)
    assert stats.tvd_np([1, 0], [0.25, 0.75]) == pytest.approx(0.75)


def test_seed_variance_by_hand():
    base = training.Predictions(
        probabilities=np.asarray([[0.2, 0.8], [0.6, 0.4]]),
        attention=[np.asarray([1.0, 0.0]), np.asarray([0.3, 0.3, 0.4])],
    )
    same = training.Predictions(base.probabilities.copy(), [a.copy() for a in base.attention])
    moved = training.Predictions(
        np.asarray([[0.5, 0.5], [0.6, 0.4]]), [np.asarray([0.0, 1.0]), base.attention[1]]
    )
    variance = wp.seed_variance(base, [same, moved, moved])
    # Instance 0: JSDs (0, ln 2, ln 2) → median ln 2; TVDs (0, .3, .3) → .3. Instance 1: all 0.
    np.testing.assert_allclose(variance["median_jsd"], [np.log(2), 0.0], atol=1e-6)
    np.testing.assert_allclose(variance["median_tvd"], [0.3, 0.0], atol=1e-12)
    assert [b["n"] for b in variance["bins"]] == [0, 1, 0, 1]  # max α 1.0 and 0.4
