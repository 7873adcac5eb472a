"""experiments.explain end to end on a tiny trained run: outputs, the summary, resume, and
clear errors for bad options."""

import json
import logging
import pathlib
import re

import pytest

from attn_audit import data, training
from tests._fixtures import TINY, _command_flags, command_runner, write_toy_sst

FAST = ("--shapley_permutations=4", "--kernel_samples=16", "--lime_samples=12", "--ig_points=8")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("explain")
    data_dir = write_toy_sst(folder / "data", n=120)
    dataset = data.load_dataset("sst", data_dir)
    training.run_training(
        training.TrainConfig(epochs=1, learning_rate=0.02, **TINY), folder / "run", dataset=dataset
    )
    return data_dir, folder / "run"


def test_explain_writes_records_and_a_summary_then_resumes(trained, caplog):
    data_dir, workdir = trained
    _, explain = command_runner("explain")
    chosen = "--explainers=attention,occlusion,shapley_exact,kernel_shap,random"
    flags = (f"--workdir={workdir}", f"--data_dir={data_dir}", "--limit=10", "--batch_size=4",
             chosen, *FAST)  # fmt: skip
    explain(*flags)
    out = workdir / "explain" / "test"
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    assert [r["index"] for r in records] == list(range(10))
    for record in records:
        for name in ("attention", "occlusion", "kernel_shap", "random"):
            assert len(record[name]) == len(record["tokens"]), name
        exact = record["shapley_exact"]
        assert (exact is None) == (len(record["tokens"]) > 16)
        if exact is not None:  # efficiency: Σφ = v(N) − v(∅), the same for KernelSHAP
            assert sum(exact) == pytest.approx(sum(record["kernel_shap"]), abs=1e-5)
    assert any(r["shapley_exact"] is not None for r in records)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["instances"] == 10
    assert summary["explainers"]["occlusion"]["compile_seconds"] > 0
    assert -1 <= summary["explainers"]["occlusion"]["mean_tau_with_attention"] <= 1
    assert "| kernel_shap | 10 |" in (out / "summary.md").read_text()
    before = (out / "records.jsonl").read_text()
    (out / "parts" / "00001.jsonl").unlink()
    with caplog.at_level(logging.INFO):
        explain(*flags)
    assert "Resuming: 2 of 3 batches" in caplog.text
    assert (out / "records.jsonl").read_text() == before


def test_bad_options_are_clear_errors(trained, tmp_path):
    data_dir, workdir = trained
    _, explain = command_runner("explain")
    cases = {
        "--explainers=lime,saliency": "Unknown explainers ['saliency']",
        "--shapley_permutations=5": "shapley_permutations must be even",
        "--buckets=0": "--buckets must be at least 1",
        "--lime_samples=1": "lime_samples must be at least 2",
    }
    for flag, message in cases.items():
        with pytest.raises(SystemExit) as error:
            explain(f"--workdir={workdir}", f"--data_dir={data_dir}", flag)
        assert str(error.value.code).startswith("error: ") and message in str(error.value.code)
    with pytest.raises(SystemExit) as error:
        explain(f"--workdir={tmp_path / 'missing'}", f"--data_dir={data_dir}")
    assert "does not exist" in str(error.value.code)


def test_the_readmes_explain_flags_exist():
    module, flags = _command_flags("explain")
    readme = (pathlib.Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = readme[readme.index("python -m experiments.explain") :].split("```")[0]
    named = set(re.findall(r"--(\w+)=", block))
    assert named and named <= set(flags), named - set(flags)
    assert f"--explainers={','.join(module.DEFAULT_EXPLAINERS)}" in block
