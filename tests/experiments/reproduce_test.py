"""experiments.reproduce on toy data: table2.csv rows and the RESULTS.md section."""

import csv

from attn_audit import data
from tests._fixtures import command_runner, tiny_paper_recipe, write_toy_sst


def test_reproduce_writes_table2_and_results(tmp_path, monkeypatch, capsys):
    tiny_paper_recipe(monkeypatch)  # the command's outputs, at a size that compiles in seconds
    data_dir = write_toy_sst(tmp_path / "data", n=60)
    _, run = command_runner("reproduce")
    run(
        "--datasets=sst,babi1", f"--data_dir={data_dir}", f"--runs_dir={tmp_path / 'runs'}",
        f"--results_dir={tmp_path / 'results'}", "--epochs=1", "--encoders=lstm",
        "--attentions=tanh",
    )  # fmt: skip
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
