"""experiments.wp_tests end to end on toy data: the CSV, RESULTS.md and the figures."""

from tests._fixtures import command_runner, tiny_paper_recipe, write_toy_sst


def test_wp_tests_command_on_toy_data(tmp_path, monkeypatch):
    # In this process, at the toy runs' sizes: the training steps are the session's, compiled once.
    tiny_paper_recipe(monkeypatch)
    _, run = command_runner("wp_tests")
    data_dir = write_toy_sst(tmp_path / "data", n=60)
    run(
        "--dataset=sst", f"--data_dir={data_dir}", f"--runs_dir={tmp_path / 'runs'}",
        f"--results_dir={tmp_path / 'results'}", "--epochs=1", "--seeds=2", "--lambdas=1",
    )  # fmt: skip
    results = tmp_path / "results"
    csv_text = (results / "wp_sst.csv").read_text()
    for test in ("base", "uniform", "seeds", "diagnostic", "adversarial"):
        assert f"\n{test}," in csv_text
    assert "Seed variance" in (results / "RESULTS.md").read_text()
    assert (results / "figures" / "wp_sst_seeds.png").stat().st_size > 0
    assert (results / "figures" / "wp_sst_adversarial.png").stat().st_size > 0
    for name in ("base", "uniform", "seed_1", "seed_2"):
        assert (tmp_path / "runs" / "sst" / name / "config.json").is_file(), name
