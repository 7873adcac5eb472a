"""Jobs of several processes (attn_audit.distributed): two local processes over a loopback
coordinator write the records of one process, bit for bit; a killed process stops the other
and a restart resumes; bad flags are one-line errors."""

import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from attn_audit import data, distributed, training
from tests._fixtures import KILLED_AT_PART, TINY, command_runner, write_toy_sst

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("distributed")
    data_dir = write_toy_sst(folder / "data", n=120)
    dataset = data.load_dataset("sst", data_dir)
    training.run_training(
        training.TrainConfig(epochs=1, learning_rate=0.02, **TINY), folder / "run", dataset=dataset
    )
    return data_dir, folder / "run"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def copy_of(workdir, folder):
    shutil.copytree(workdir, folder, ignore=shutil.ignore_patterns("audit", "faithfulness"))
    return folder


def start_job(command, workdir, data_dir, *flags, script=None, per_process=None):
    """Starts the processes of a two-process job on a free loopback port; returns them."""
    port, processes = free_port(), []
    for process_id in (0, 1):
        head = [sys.executable, "-m", f"experiments.{command}"]
        if script is not None and process_id == 1:
            head = [sys.executable, str(script)]
        own = (per_process or {}).get(process_id, ())
        arguments = [
            *head, f"--workdir={workdir}", f"--data_dir={data_dir}", *flags, *own,
            f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2",
            f"--process_id={process_id}",
        ]  # fmt: skip
        processes.append(subprocess.Popen(
            arguments, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        ))  # fmt: skip
    return processes


def finished(processes, timeout=240):
    """``[(return code, stderr)]`` of each process, waited for."""
    results = []
    for process in processes:
        _, stderr = process.communicate(timeout=timeout)
        results.append((process.returncode, stderr))
    return results


def test_a_coordinator_off_this_machine_needs_a_trusted_network():
    assert distributed.is_loopback("127.0.0.1:8476") and distributed.is_loopback("[::1]:80")
    assert distributed.is_loopback("localhost:8476")
    assert not distributed.is_loopback("10.1.2.3:8476")
    assert not distributed.is_loopback("0.0.0.0:8476")  # every interface
    with pytest.raises(ValueError, match="not loopback.*--trusted_network"):
        distributed.connect("10.1.2.3:8476", 2, 0)
    with pytest.raises(ValueError, match=r"Process id 2 is not in \[0, 2\)"):
        distributed.connect("127.0.0.1:8476", 2, 2)
    with pytest.raises(ValueError, match="not host:port"):
        distributed.connect("127.0.0.1", 2, 0)
    with pytest.raises(ValueError, match="--num_processes and --process_id"):
        distributed.connect("127.0.0.1:8476", None, 0)
    with pytest.raises(ValueError, match="--trusted_network"):
        distributed.connect(None, None, None)  # a cluster's coordinator: not loopback


def test_a_taken_port_is_one_line_before_the_job_starts():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        with pytest.raises(ValueError, match=f"Process 0 cannot listen on {address}"):
            distributed.connect(address, 2, 0)
    assert distributed.process_count() == 1  # nothing started


def test_one_process_exchanges_with_itself():
    assert distributed.process_count() == 1
    lengths = [5, 9, 4]
    assert [found.tolist() for found in distributed.all_gather("x", lengths)] == [lengths]
    distributed.barrier("nothing to wait for")
    distributed.check_same_settings({"seed": 0})


def test_the_command_refuses_a_coordinator_off_this_machine(trained):
    data_dir, workdir = trained
    _, run_audit = command_runner("audit")
    with pytest.raises(SystemExit) as error:
        run_audit(
            f"--workdir={workdir}", f"--data_dir={data_dir}",
            "--coordinator_address=192.0.2.7:8476", "--num_processes=2", "--process_id=0",
        )  # fmt: skip
    message = str(error.value.code)
    assert message.startswith("error: ") and "--trusted_network" in message


def test_two_processes_audit_and_measure_faithfulness_as_one(trained, tmp_path):
    data_dir, workdir = trained
    one, two = copy_of(workdir, tmp_path / "one"), copy_of(workdir, tmp_path / "two")
    audit_flags = ("--limit=40", "--batch_size=8")
    faithfulness_flags = (
        "--limit=24", "--batch_size=8", "--explainers=grad_input,occlusion,kernel_shap",
        "--kernel_samples=40", "--randomisation_limit=6",
    )  # fmt: skip
    command_runner("audit")[1](f"--workdir={one}", f"--data_dir={data_dir}", *audit_flags)
    command_runner("faithfulness")[1](
        f"--workdir={one}", f"--data_dir={data_dir}", *faithfulness_flags
    )
    for command, flags in (("audit", audit_flags), ("faithfulness", faithfulness_flags)):
        results = finished(start_job(command, two, data_dir, *flags))
        for process_id, (code, stderr) in enumerate(results):
            assert code == 0, (command, process_id, stderr[-3000:])
        assert "Process 1 of 2: done" in results[1][1]
    # Process 1's programs, which JAX's cache (written by process 0 only) does not serve, are
    # kept beside the exported ones for the next run (ProgramCache.compiled).
    cache = pathlib.Path(os.environ["ATTN_AUDIT_JAX_CACHE"]) / "exported"
    assert list(cache.glob("*.exe"))
    for records in ("audit/test/records.jsonl", "faithfulness/test/explain/records.jsonl",
                    "faithfulness/test/metrics/records.jsonl",
                    "faithfulness/test/randomisation/records.jsonl"):  # fmt: skip
        assert (two / records).read_bytes() == (one / records).read_bytes(), records
    for process_id in (0, 1):  # each process wrote its own share, and only it
        part = two / f"audit/test/parts/process-{process_id:05d}-of-00002"
        indices = sorted(i for batch in json.loads((part / "plan.json").read_text())["batches"]
                         for i in batch)  # fmt: skip
        assert indices == list(range(process_id, 40, 2))
    one_summary = json.loads((one / "audit/test/summary.json").read_text())
    two_summary = json.loads((two / "audit/test/summary.json").read_text())
    assert len(two_summary["provenance"]["timings"]["processes"]) == 2
    for summary in (one_summary, two_summary):
        del summary["provenance"]
    assert two_summary == one_summary


def test_a_killed_process_stops_the_other_and_the_job_resumes(trained, tmp_path):
    data_dir, workdir = trained
    one, two = copy_of(workdir, tmp_path / "one"), copy_of(workdir, tmp_path / "two")
    flags = ("--limit=48", "--batch_size=4", "--audits=gradient,loo,permutation")
    command_runner("audit")[1](f"--workdir={one}", f"--data_dir={data_dir}", *flags)
    script = tmp_path / "killed.py"
    script.write_text(textwrap.dedent(KILLED_AT_PART.format(repo=str(REPO), die_at=3)))
    start = time.monotonic()
    processes = start_job("audit", two, data_dir, *flags, "--heartbeat_timeout=3", script=script)
    (code_0, stderr_0), (code_1, _) = finished(processes)
    assert code_1 == -9  # SIGKILL, after its second batch
    assert code_0 != 0 and "heartbeat" in stderr_0, stderr_0[-3000:]
    assert time.monotonic() - start < 120
    parts = two / "audit/test/parts/process-00001-of-00002"
    assert len(list(parts.glob("0*.jsonl"))) == 2  # its two finished batches
    assert not (two / "audit/test/records.jsonl").exists()
    results = finished(start_job("audit", two, data_dir, *flags))
    for code, stderr in results:
        assert code == 0, stderr[-3000:]
    assert "Resuming: 2 of 6 batches already done" in results[1][1]
    assert (two / "audit/test/records.jsonl").read_bytes() == (
        one / "audit/test/records.jsonl"
    ).read_bytes()


def test_processes_with_other_flags_stop_with_one_line(trained, tmp_path):
    data_dir, workdir = trained
    two = copy_of(workdir, tmp_path / "two")
    processes = start_job("audit", two, data_dir, "--limit=8", "--audits=gradient",
                          per_process={1: ("--seed=1",)})  # fmt: skip
    for code, stderr in finished(processes):
        assert code != 0
        message = stderr.strip().splitlines()[-1]
        assert message.startswith("error: (process ") and "--seed: " in message, stderr[-2000:]


def test_an_unreachable_coordinator_is_one_line(trained):
    data_dir, workdir = trained
    arguments = [
        sys.executable, "-m", "experiments.audit", f"--workdir={workdir}",
        f"--data_dir={data_dir}", f"--coordinator_address=127.0.0.1:{free_port()}",
        "--num_processes=2", "--process_id=1", "--initialization_timeout=2",
    ]  # fmt: skip
    result = subprocess.run(arguments, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("error: No coordinator answered at 127.0.0.1:"), result.stderr[-2000:]


def test_two_processes_stream_a_corpus_as_one(trained, tmp_path):
    data_dir, workdir = trained
    dataset = data.load_dataset("sst", data_dir)
    texts = [" ".join(e.tokens) for e in data.pipeline.kept_examples(dataset, "test")[:29]]
    corpus = tmp_path / "texts.jsonl"
    corpus.write_text("".join(json.dumps({"text": text}) + "\n" for text in texts))
    one, two = copy_of(workdir, tmp_path / "one"), copy_of(workdir, tmp_path / "two")
    flags = (f"--dataset=jsonl:{corpus}", "--chunk_size=10", "--batch_size=4",
             "--audits=gradient,loo,permutation")  # fmt: skip
    command_runner("audit")[1](f"--workdir={one}", *flags)
    results = finished(start_job("audit", two, data_dir, *flags))
    for code, stderr in results:
        assert code == 0, stderr[-3000:]
    records = "audit/jsonl-texts/records.jsonl"
    assert (two / records).read_bytes() == (one / records).read_bytes()
    assert len((two / records).read_text().splitlines()) == 29  # a last chunk of 9
