"""WP analysis helpers, and the wp_tests command end to end on toy data."""

import pathlib
import subprocess
import sys

import numpy as np
import pytest
from scipy.spatial import distance

from attn_audit import stats, training
from attn_audit.evaluations import wp
from attn_audit.report import tables

from .train_test import write_toy_sst

REPO = pathlib.Path(__file__).resolve().parents[1]


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


def test_replace_section_is_idempotent(tmp_path):
    path = tmp_path / "RESULTS.md"
    tables.replace_section(path, "wp:sst", "first")
    tables.replace_section(path, "wp:agnews", "other")
    tables.replace_section(path, "wp:sst", "second")
    text = path.read_text()
    assert "second" in text and "first" not in text and text.count("wp:sst start") == 1
    assert "other" in text


def test_wp_tests_command_on_toy_data(tmp_path):
    data_dir = write_toy_sst(tmp_path / "data", n=60)
    result = subprocess.run(
        [sys.executable, "-m", "experiments.wp_tests", "--dataset=sst", f"--data_dir={data_dir}",
         f"--runs_dir={tmp_path / 'runs'}", f"--results_dir={tmp_path / 'results'}",
         "--epochs=1", "--seeds=2", "--lambdas=1"],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    results = tmp_path / "results"
    csv_text = (results / "wp_sst.csv").read_text()
    for test in ("base", "uniform", "seeds", "diagnostic", "adversarial"):
        assert f"\n{test}," in csv_text
    assert "Seed variance" in (results / "RESULTS.md").read_text()
    assert (results / "figures" / "wp_sst_seeds.png").stat().st_size > 0
    assert (results / "figures" / "wp_sst_adversarial.png").stat().st_size > 0
