"""experiments.wp_tests end to end on toy data: the CSV, RESULTS.md and the figures."""

import pathlib
import subprocess
import sys

from tests._fixtures import write_toy_sst

REPO = pathlib.Path(__file__).resolve().parents[2]


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
