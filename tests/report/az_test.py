"""attn_audit.report.az: CSV rows, AZ's trend and the JW row by hand."""

import pathlib

import numpy as np

from attn_audit.evaluations import az
from attn_audit.report import az as az_report


def constant_rho(means, num_instances=4):
    """``{relevance: {importance: [N, L]}}`` with every instance at ``means[relevance]``."""
    return {
        kind: {
            i: np.tile(np.asarray(means[kind], float), (num_instances, 1)) for i in az.IMPORTANCES
        }
        for kind in az.RELEVANCES
    }


def test_table_rows_by_hand():
    rho = constant_rho({"raw": [0.1] * 7, "rollout": [0.2] * 7, "flow": [0.3] * 7})
    rows = az_report.table_rows(rho, "sst", "tiny")
    assert len(rows) == 2 * 3 * 7
    first = rows[0]
    assert first == {
        "dataset": "sst", "run": "tiny", "importance": "blank_out", "relevance": "raw",
        "layer": 1, "mean": 0.1, "std": 0.0, "n": 4, "az_mean": 0.69,
    }  # fmt: skip
    assert rows[6]["layer"] == 7 and rows[6]["az_mean"] == ""  # AZ has six layers
    assert rows[7]["relevance"] == "rollout" and rows[21]["importance"] == "gradient"


def test_trend_holds_only_when_rollout_and_flow_both_beat_raw_in_the_upper_layers():
    # Layers 3-4 are the upper half of four; layer 1-2 values must not count.
    rho = constant_rho({"raw": [0.9, 0.9, 0.1, 0.1], "rollout": [0, 0, 0.3, 0.3],
                        "flow": [0, 0, 0.2, 0.2]})  # fmt: skip
    holds, text = az_report.trend(rho)
    assert holds == {"blank_out": True, "gradient": True}
    assert text.startswith("mean ρ over layers 3–4: with blank-out it holds (raw 0.10")
    rho["flow"]["gradient"][:] = 0.05
    holds, text = az_report.trend(rho)
    assert holds == {"blank_out": True, "gradient": False}
    assert "with input gradients it does not hold" in text
    holds, text = az_report.trend(constant_rho({"raw": [0.0], "rollout": [1], "flow": [1]}))
    assert text.startswith("mean ρ over layer 1:")


def test_jw_row_shows_missing_audits_as_dashes():
    lines = az_report.jw_row({"n_instances": 7, "permutation": {"median": 0.01234}})
    assert len(lines) == 3 and lines[0].startswith("| n | τ_g")
    cells = lines[2].strip("| ").split(" | ")
    assert cells[0] == "7" and cells[4] == "0.012" and cells[5:] == ["—", "—"]


def test_default_name_drops_the_dataset_prefix():
    assert az_report.default_name(pathlib.Path("runs/sst_transformer"), "sst") == "transformer"
    assert az_report.default_name(pathlib.Path("runs/sst_"), "sst") == "sst_"
    assert az_report.default_name(pathlib.Path("runs/imdb_minilm"), "sst") == "imdb_minilm"
