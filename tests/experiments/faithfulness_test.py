"""experiments.faithfulness end to end on a tiny trained run: it reuses the explanations of
experiments.explain, writes records, a summary with CIs and figures, resumes, and gives clear
errors for bad options."""

import json
import logging
import pathlib
import re

import pytest

from attn_audit import data, training
from tests._fixtures import TINY, _command_flags, assert_png, command_runner, write_toy_sst

FAST = ("--shapley_permutations=4", "--kernel_samples=16", "--lime_samples=12")
CHOSEN = "--explainers=attention,gradient,occlusion,random"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("faithfulness")
    data_dir = write_toy_sst(folder / "data", n=120)
    dataset = data.load_dataset("sst", data_dir)
    training.run_training(
        training.TrainConfig(epochs=1, learning_rate=0.02, **TINY), folder / "run", dataset=dataset
    )
    return data_dir, folder / "run"


def test_faithfulness_reuses_explanations_writes_a_summary_and_resumes(trained, caplog):
    data_dir, workdir = trained
    flags = (f"--workdir={workdir}", f"--data_dir={data_dir}", "--limit=8", "--batch_size=4",
             CHOSEN, *FAST)  # fmt: skip
    _, explain = command_runner("explain")
    explain(*flags)
    _, faithfulness = command_runner("faithfulness")
    faithfulness(*flags, "--randomisation_limit=4")
    out = workdir / "faithfulness" / "test"
    assert not (out / "explain").exists()  # experiments.explain's records were reused
    metric_records = (out / "metrics" / "records.jsonl").read_text().splitlines()
    assert [json.loads(line)["index"] for line in metric_records] == list(range(8))
    assert len((out / "randomisation" / "records.jsonl").read_text().splitlines()) == 4
    summary = json.loads((out / "summary.json").read_text())
    assert summary["instances"] == 8 and summary["randomisation_instances"] == 4
    assert summary["provenance"]["explanations"] == str(workdir / "explain" / "test")
    assert set(summary["ranking"]) == {"attention", "gradient", "occlusion", "random"}
    for name in summary["ranking"]:
        entry = summary["explainers"][name]["aopc_comprehensiveness"]["delete"]
        assert entry["low"] <= entry["mean"] <= entry["high"] and entry["count"] == 8
    markdown = (out / "summary.md").read_text()
    assert "## Ranking by ERASER comprehensiveness" in markdown and "| 1 | " in markdown
    for name in ("aopc_curves", "agreement_heatmap", "randomisation_cascade"):
        assert_png(out / "figures" / f"{name}.png")
    before = (out / "metrics" / "records.jsonl").read_text()
    (out / "metrics" / "parts" / "00001.jsonl").unlink()
    with caplog.at_level(logging.INFO):
        faithfulness(*flags, "--randomisation_limit=4")
    assert "Resuming: 1 of 2 batches" in caplog.text
    assert (out / "metrics" / "records.jsonl").read_text() == before


def test_bad_options_are_clear_errors(trained):
    data_dir, workdir = trained
    _, faithfulness = command_runner("faithfulness")
    cases = {
        "--metrics=eraser,aopc": "Unknown or no metrics ['aopc']",
        "--explainers=lime,saliency": "Unknown explainers ['saliency']",
        "--randomisation_limit=0": "randomisation_limit must be at least 1",
        "--batch_size=0": "--batch_size must be at least 1",
    }
    for flag, message in cases.items():
        with pytest.raises(SystemExit) as error:
            faithfulness(f"--workdir={workdir}", f"--data_dir={data_dir}", flag)
        assert str(error.value.code).startswith("error: ") and message in str(error.value.code)


def test_the_readmes_faithfulness_flags_exist():
    _, flags = _command_flags("faithfulness")
    readme = (pathlib.Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = readme[readme.index("python -m experiments.faithfulness") :].split("```")[0]
    used = set(re.findall(r"--(\w+)", block))
    assert used and used <= set(flags), used - set(flags)
