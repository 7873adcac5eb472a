"""attn_audit.report.wp_figures: WP's seed-variance and adversary figures are PNG files."""

import numpy as np
import pytest

from attn_audit.report import wp_figures
from tests._fixtures import assert_png


def test_seed_figure_is_a_png_also_with_empty_bins(tmp_path):
    variance = {
        "max_attention": np.array([0.1, 0.3, 0.35, 0.9]),  # nothing in [0.5, 0.75)
        "median_jsd": np.array([0.01, 0.2, 0.3, 0.05]),
    }
    path = tmp_path / "seeds.png"
    assert wp_figures.seed_figure(variance, path, "sst: seed variance") == path
    assert_png(path)


@pytest.mark.parametrize("num_points", [1, 3])
def test_adversarial_figure_is_a_png(tmp_path, num_points):
    points = [
        {"lambda": 10.0**k, "jsd": 0.1 * (k + 1), "tvd": 0.01 * (k + 1)} for k in range(num_points)
    ]
    path = tmp_path / f"adversarial_{num_points}.png"
    assert wp_figures.adversarial_figure(points, path, "sst: adversary") == path
    assert_png(path)
