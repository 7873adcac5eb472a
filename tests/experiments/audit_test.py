"""experiments.audit end to end on a tiny trained run: outputs, errors, and resume after a kill."""

import json
import logging
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import pytest

from attn_audit import data, training
from tests._fixtures import TINY, command_runner, write_toy_sst

REPO = pathlib.Path(__file__).resolve().parents[2]
FIELDS = {
    "id", "index", "tokens", "label", "prediction", "predicted_class", "attention", "gradient",
    "loo", "tau_gradient", "p_gradient", "tau_loo", "p_loo", "tau_gradient_loo", "p_gradient_loo",
    "max_attention", "permutation_median_tvd", "adversarial_attention", "adversarial_max_jsd",
    "adversarial_tvd",
}  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("audit")
    data_dir = write_toy_sst(folder / "data", n=120)
    dataset = data.load_dataset("sst", data_dir)
    training.run_training(
        training.TrainConfig(epochs=2, learning_rate=0.02, **TINY), folder / "run", dataset=dataset
    )
    return data_dir, folder / "run"


def audit_command(workdir, data_dir, *extra):
    return [sys.executable, "-m", "experiments.audit", f"--workdir={workdir}",
            f"--data_dir={data_dir}", *extra]  # fmt: skip


def test_audit_writes_records_summary_and_figures(trained, caplog):
    data_dir, workdir = trained
    _, run_audit = command_runner("audit")  # in this process: no start-up, programs shared
    with caplog.at_level(logging.INFO):
        run_audit(f"--workdir={workdir}", f"--data_dir={data_dir}", "--limit=20", "--batch_size=8")
    out = workdir / "audit" / "test"
    assert "process_seconds" in (out / "summary.json").read_text()  # main ran to its end
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    assert len(records) == 20 and [r["index"] for r in records] == list(range(20))
    for record in records:
        assert FIELDS <= set(record), FIELDS - set(record)
        for name in ("attention", "gradient", "loo", "evidence"):  # SST: the leaves' evidence
            assert len(record[name]) == len(record["tokens"])
        assert sum(record["attention"]) == pytest.approx(1.0, abs=1e-5)
        assert record["adversarial_max_jsd"] <= 0.6932
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_instances"] == 20
    assert "Table 2" in (out / "summary.md").read_text() or "τ" in (out / "summary.md").read_text()
    assert len(list(out.glob("*.png"))) >= 4
    assert "instances/s" in caplog.text


def test_bad_options_are_clear_errors(trained, tmp_path):
    data_dir, workdir = trained
    _, run_audit = command_runner("audit")
    # A clear error is a SystemExit with a message: no other exception, so no traceback.
    with pytest.raises(SystemExit) as error:
        run_audit(f"--workdir={workdir}", f"--data_dir={data_dir}", "--audits=gradient,saliency")
    assert error.value.code != 0 and "Unknown audits ['saliency']" in str(error.value.code)
    with pytest.raises(SystemExit) as error:
        run_audit(f"--workdir={workdir}", f"--data_dir={data_dir}", "--buckets=0")
    assert "error: --buckets must be at least 1" in str(error.value.code)
    with pytest.raises(SystemExit) as error:
        run_audit(f"--workdir={tmp_path / 'missing'}", f"--data_dir={data_dir}")
    assert error.value.code != 0 and "does not exist" in str(error.value.code)
    assert str(error.value.code).startswith("error: ")  # a message, not a traceback


def test_killed_audit_resumes_to_identical_records(trained, tmp_path):
    data_dir, workdir = trained
    copies = {name: tmp_path / name for name in ("killed", "straight")}
    for copy in copies.values():
        shutil.copytree(workdir, copy, ignore=shutil.ignore_patterns("audit"))
    options = ("--limit=24", "--batch_size=2")
    process = subprocess.Popen(
        audit_command(copies["killed"], data_dir, *options), cwd=REPO,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    parts = copies["killed"] / "audit" / "test" / "parts"
    deadline = time.monotonic() + 180
    while len(list(parts.glob("*.jsonl"))) < 3:
        assert process.poll() is None, "the audit ended before it could be killed"
        assert time.monotonic() < deadline, "no audited batch after 180 s"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (copies["killed"] / "audit" / "test" / "records.jsonl").exists()
    resumed = subprocess.run(
        audit_command(copies["killed"], data_dir, *options), cwd=REPO, capture_output=True,
        text=True,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Resuming" in resumed.stderr
    # The audit that is never killed needs no process of its own.
    command_runner("audit")[1](
        f"--workdir={copies['straight']}", f"--data_dir={data_dir}", *options
    )
    killed = (copies["killed"] / "audit" / "test" / "records.jsonl").read_text()
    straight = (copies["straight"] / "audit" / "test" / "records.jsonl").read_text()
    assert killed == straight
