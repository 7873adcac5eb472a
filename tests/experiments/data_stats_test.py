"""experiments.data_stats end to end: JSON statistics, and errors without a traceback."""

import json
import subprocess
import sys

from tests._fixtures import write_sst


def test_data_stats_prints_json(tmp_path):
    write_sst(tmp_path, ["(3 (2 a) (3 b) (3 c) (3 d) (3 e) (3 f) (3 g))"] * 3)
    result = subprocess.run(
        [sys.executable, "-m", "experiments.data_stats", "--dataset=sst", f"--data_dir={tmp_path}"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    report = json.loads(result.stdout)
    assert report["splits"]["test"]["size_before_length_filter"] == 3
    assert report["vocabulary_words"] == 7


def test_data_stats_reports_errors_without_a_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "experiments.data_stats", "--dataset=sst", f"--data_dir={tmp_path}"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode != 0
    assert "error: Missing file" in result.stderr and "Traceback" not in result.stderr


def test_data_stats_gives_babi_its_order_free_ceiling(tmp_path):
    from tests.data.babi_test import write_babi

    write_babi(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "experiments.data_stats", "--dataset=babi1",
         f"--data_dir={tmp_path}", "--babi_orders=50"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    ceiling = json.loads(result.stdout)["order_free_ceiling"]
    # Stories of one or two moves of different people: every order gives the same answer.
    assert ceiling == {"orders": 50, "test_accuracy": 1.0, "rules_agreement": 1.0}
