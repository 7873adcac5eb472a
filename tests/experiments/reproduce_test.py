"""experiments.reproduce on toy data: table2.csv rows and the RESULTS.md section; a run of one
model keeps the others' entries."""

import csv
import json

import pytest
from absl import app

from attn_audit import data, report
from tests._fixtures import command_runner, tiny_paper_recipe, write_toy_sst


def test_reproduce_writes_table2_and_results(tmp_path, monkeypatch, capsys):
    tiny_paper_recipe(monkeypatch)  # the command's outputs, at a size that compiles in seconds
    data_dir = write_toy_sst(tmp_path / "data", n=60)
    _, run = command_runner("reproduce")
    _toy_run(run, tmp_path, data_dir, "sst,babi1", "lstm")
    assert "*JW*" in capsys.readouterr().out  # ran to its end: the section it prints
    with open(tmp_path / "results" / "table2.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows and {r["dataset"] for r in rows} == {"sst"}
    assert set(rows[0]) >= {"tau_g_mean", "tau_loo_sig_frac", "adv_share_jsd_ge_0_6"}
    dataset = data.load_dataset("sst", data_dir)
    test = data.encode_split(dataset, "test", data.vocabulary_for(dataset))
    assert sum(int(r["n"]) for r in rows) == len(test)  # every test instance, once
    text = (tmp_path / "results" / "RESULTS.md").read_text()
    assert "*JW*" in text and "babi1: skipped" in text
    assert (tmp_path / "results" / "figures" / "sst_lstm_tanh_attention_heatmaps.png").exists()
    entry = json.loads((tmp_path / "results" / "table2" / "sst_lstm_tanh.json").read_text())
    assert entry["rows"] == [{**r, "n": int(r["n"])} for r in _numbers(rows)]
    assert entry["budget"] == {"epochs": 1, "train_limit": None, "audit_limit": None}
    # One epoch on the toy set may learn nothing; then the next seed was tried, and said.
    tried = entry["seeds_that_learnt_nothing"]
    assert tried in ([], [0], [0, 1]) and entry["seed"] == min(len(tried), 1)
    note = f"sst lstm+tanh: seed(s) {', '.join(map(str, tried))} learnt nothing"
    assert (note in text) == bool(tried)
    # Another model of the same set: the first one's entry and rows stay.
    _toy_run(run, tmp_path, data_dir, "sst", "average")
    with open(tmp_path / "results" / "table2.csv") as f:
        both = list(csv.DictReader(f))
    assert [r for r in both if r["encoder"] == "lstm"] == rows
    assert {r["encoder"] for r in both} == {"lstm", "average"}
    text = (tmp_path / "results" / "RESULTS.md").read_text()
    for encoder in ("lstm", "average"):
        entry = json.loads(
            (tmp_path / "results" / "table2" / f"sst_{encoder}_tanh.json").read_text()
        )
        ours = report.mean_tau_g("sst", entry["rows"])
        jw = report.JW_MEAN_TAU_G["sst"][encoder]
        assert f"| sst | {encoder}+tanh | epochs 1 | " in text
        assert f"| {ours:.3f} | {jw:.3f} | " in text
        code = report.JW_CODE_MEAN_TAU_G["sst"][encoder]
        assert f" | {code:.3f} | {ours - code:+.3f} | " in text.replace("**", "")
        assert entry["training_minutes"] > 0 and entry["audit_minutes"] > 0
    # Run again: nothing is redone, and the audit's minutes are still the first process's.
    first = json.loads((tmp_path / "results" / "table2" / "sst_average_tanh.json").read_text())
    _toy_run(run, tmp_path, data_dir, "sst", "average")
    again = json.loads((tmp_path / "results" / "table2" / "sst_average_tanh.json").read_text())
    assert again["rows"] == first["rows"]
    assert again["audit_minutes"] >= first["audit_minutes"]


def test_nomeasure_without_entries_names_the_fix(tmp_path):
    _, run = command_runner("reproduce")
    with pytest.raises(app.UsageError, match="run without --nomeasure first"):
        run("--nomeasure", f"--results_dir={tmp_path / 'results'}")


def _numbers(rows):
    return [{k: (v if k in ("dataset", "encoder", "attention", "class") else
                 float(v) if v else None) for k, v in r.items()} for r in rows]  # fmt: skip


def test_mean_tau_g_averages_as_jw_did():
    rows = [{"n": 3, "tau_g_mean": 0.2}, {"n": 1, "tau_g_mean": 0.6}, {"n": 0, "tau_g_mean": None}]
    assert report.mean_tau_g("sst", rows) == pytest.approx(0.4)  # over classes
    assert report.mean_tau_g("babi2", rows) == pytest.approx(0.3)  # over instances
    assert report.JW_MEAN_TAU_G["agnews"]["lstm"] == pytest.approx((0.42 + 0.35) / 2)


def test_a_smaller_budget_keeps_an_entry_measured_at_the_papers(tmp_path, monkeypatch):
    tiny_paper_recipe(monkeypatch)
    data_dir = write_toy_sst(tmp_path / "data", n=60)
    entries = tmp_path / "results" / "table2"
    entries.mkdir(parents=True)
    kept = {"dataset": "sst", "encoder": "lstm", "attention": "tanh", "run": "sst/lstm_tanh",
            "label_names": ["negative", "positive"], "data_notes": [], "test_accuracy": 0.9,
            "budget": {"train_limit": None, "audit_limit": None}, "rows": []}  # fmt: skip
    (entries / "sst_lstm_tanh.json").write_text(json.dumps(kept))
    _, run = command_runner("reproduce")
    _toy_run(run, tmp_path, data_dir, "sst", "lstm")
    assert json.loads((entries / "sst_lstm_tanh.json").read_text()) == kept
    assert not (tmp_path / "runs" / "sst" / "lstm_tanh").exists()  # nothing trained


def _toy_run(run, tmp_path, data_dir, datasets: str, encoder: str):
    """``experiments.reproduce`` for one encoder with tanh attention, 1 epoch, under tmp_path."""
    run(
        f"--datasets={datasets}", f"--data_dir={data_dir}", f"--runs_dir={tmp_path / 'runs'}",
        f"--results_dir={tmp_path / 'results'}", "--epochs=1", f"--encoders={encoder}",
        "--attentions=tanh", "--max_seeds=2",
    )  # fmt: skip
