"""The data registry, the data folder, and the data_stats command."""

import json
import subprocess
import sys

import pytest

from attn_audit import data

from .sst_test import write_sst


def test_unknown_dataset_lists_the_choices():
    with pytest.raises(data.DataError, match=r"Unknown dataset 'sts'.*'sst'.*tfds:<name>"):
        data.load_dataset("sts")


def test_data_folder_from_argument_then_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(data.DATA_ENV_VAR, str(tmp_path))
    assert data.resolve_data_dir() == tmp_path.resolve()
    assert data.resolve_data_dir(tmp_path / ".") == tmp_path.resolve()
    with pytest.raises(data.DataError, match=r"does not exist\. Pass --data_dir=DIR or set"):
        data.resolve_data_dir(tmp_path / "nowhere")


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
