"""experiments.faithfulness_results on toy data: faithfulness.csv rows and the RESULTS.md
section, reusing the runs that experiments.reproduce trains."""

import csv
import json
import shutil

import pytest

from tests._fixtures import command_runner, tiny_paper_recipe, write_toy_sst

TINY_TRANSFORMER = {"encoder": "transformer", "attention": "self", "num_layers": 1,
                    "num_heads": 2, "hidden_size": 8, "ff_dim": 16}  # fmt: skip


def test_faithfulness_results_writes_the_table_and_the_section(tmp_path, monkeypatch, capsys):
    tiny_paper_recipe(monkeypatch)
    module, run = command_runner("faithfulness_results")
    monkeypatch.setattr(module, "TRANSFORMER_RECIPES", {"tiny_transformer": TINY_TRANSFORMER})
    data_dir = write_toy_sst(tmp_path / "data", n=60)
    run(
        "--datasets=sst,babi1", f"--data_dir={data_dir}", f"--runs_dir={tmp_path / 'runs'}",
        f"--results_dir={tmp_path / 'results'}", "--epochs=1", "--encoders=average",
        "--attentions=tanh", "--explainers=attention,gradient,occlusion,random", "--limit=12",
        "--randomisation_limit=4", "--transformers=tiny_transformer",
        "--model_limits=tiny_transformer:8",
    )  # fmt: skip
    out = capsys.readouterr().out
    assert "### sst, average+tanh" in out and "### sst, tiny_transformer" in out
    saved = sorted(p.name for p in (tmp_path / "results" / "faithfulness").iterdir())
    assert saved == ["sst_average_tanh.json", "sst_tiny_transformer.json"]
    summary = json.loads((tmp_path / "results" / "faithfulness" / saved[0]).read_text())
    minutes = summary["provenance"]["stage_minutes"]
    assert set(minutes) == {"explain", "metrics", "randomisation"}
    assert all(value > 0 for value in minutes.values())
    with open(tmp_path / "results" / "faithfulness.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["model"] for r in rows} == {"average+tanh", "tiny_transformer"}
    assert {r["instances"] for r in rows} == {"12", "8"}
    rows = [r for r in rows if r["model"] == "average+tanh"]
    assert [r["explainer"] for r in rows if r["rank"] == "1"]
    assert {r["explainer"] for r in rows} == {"attention", "gradient", "occlusion", "random"}
    for row in rows:
        assert row["instances"] == "12" and row["dataset"] == "sst"
        low, mean, high = (float(row[f"aopc_comp_delete_{p}"]) for p in ("low", "mean", "high"))
        assert low <= mean <= high
    random_row = next(r for r in rows if r["explainer"] == "random")
    assert float(random_row["rho_randomised_mean"]) == 1.0  # the floor ignores the model
    text = (tmp_path / "results" / "RESULTS.md").read_text()
    assert "<!-- faithfulness start -->" in text and "Training: training budget" in text
    assert (tmp_path / "runs" / "sst" / "average_tanh" / "faithfulness" / "test_sample12").is_dir()

    # --nomeasure rebuilds the section from the committed summaries alone, without the runs,
    # including a summary another invocation saved (here: a copy under another model name).
    saved = tmp_path / "results" / "faithfulness"
    other = json.loads((saved / "sst_average_tanh.json").read_text())
    other["provenance"]["model"] = "average+dot"
    (saved / "sst_average_dot.json").write_text(json.dumps(other))
    shutil.rmtree(tmp_path / "runs")
    (tmp_path / "results" / "RESULTS.md").write_text("")
    run(f"--results_dir={tmp_path / 'results'}", f"--runs_dir={tmp_path / 'runs'}",
        "--nomeasure", "--transformers=")  # fmt: skip
    text = (tmp_path / "results" / "RESULTS.md").read_text()
    for model in ("average+tanh", "average+dot", "tiny_transformer"):
        assert f"### sst, {model}" in text
    assert not (tmp_path / "runs").exists()
    # A model measured without the randomisation check (--metrics) says so.
    other.update(randomisation={}, randomisation_instances=0)
    section = "\n".join(module.model_section("sst", "average+dot", 0.8, other))
    assert "randomisation not measured" in section and "| – | " in section


def test_an_unknown_transformer_is_named(tmp_path):
    _, run = command_runner("faithfulness_results")
    with pytest.raises(SystemExit, match="Unknown transformers \\['gpt9'\\]"):
        run("--transformers=gpt9", f"--results_dir={tmp_path}")
