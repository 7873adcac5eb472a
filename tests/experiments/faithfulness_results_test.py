"""experiments.faithfulness_results on toy data: faithfulness.csv rows and the RESULTS.md
section, reusing the runs that experiments.reproduce trains."""

import csv

from tests._fixtures import command_runner, tiny_paper_recipe, write_toy_sst


def test_faithfulness_results_writes_the_table_and_the_section(tmp_path, monkeypatch, capsys):
    tiny_paper_recipe(monkeypatch)
    data_dir = write_toy_sst(tmp_path / "data", n=60)
    _, run = command_runner("faithfulness_results")
    run(
        "--datasets=sst,babi1", f"--data_dir={data_dir}", f"--runs_dir={tmp_path / 'runs'}",
        f"--results_dir={tmp_path / 'results'}", "--epochs=1", "--encoders=average",
        "--attentions=tanh", "--explainers=attention,gradient,occlusion,random", "--limit=12",
        "--randomisation_limit=4",
    )  # fmt: skip
    assert "### sst, average+tanh" in capsys.readouterr().out
    with open(tmp_path / "results" / "faithfulness.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["explainer"] for r in rows if r["rank"] == "1"]
    assert {r["explainer"] for r in rows} == {"attention", "gradient", "occlusion", "random"}
    for row in rows:
        assert row["instances"] == "12" and row["dataset"] == "sst"
        low, mean, high = (float(row[f"aopc_comp_delete_{p}"]) for p in ("low", "mean", "high"))
        assert low <= mean <= high
    random_row = next(r for r in rows if r["explainer"] == "random")
    assert float(random_row["rho_randomised_mean"]) == 1.0  # the floor ignores the model
    text = (tmp_path / "results" / "RESULTS.md").read_text()
    assert "<!-- faithfulness start -->" in text and "babi1: skipped" in text
    assert (tmp_path / "runs" / "sst" / "average_tanh" / "faithfulness" / "test_sample12").is_dir()
