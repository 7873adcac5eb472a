"""experiments.audit end to end on a tiny trained run: outputs, errors, and resume after a kill."""

import json
import logging
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from attn_audit import data, training
from tests._fixtures import KILLED_AT_PART, TINY, command_runner, write_toy_sst

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


def write_corpus(trained_dir, path, count):
    """The first ``count`` kept test instances of the toy SST run as a JSON-lines corpus."""
    dataset = data.load_dataset("sst", trained_dir)
    examples = data.pipeline.kept_examples(dataset, "test")[:count]
    path.write_text("".join(
        json.dumps({"review": " ".join(e.tokens), "sentiment": ["negative", "positive"][e.label]})
        + "\n" for e in examples
    ))  # fmt: skip
    return path


def test_a_corpus_streamed_in_chunks_audits_as_the_split(trained, tmp_path):
    data_dir, workdir = trained
    corpus = write_corpus(data_dir, tmp_path / "reviews.jsonl", 30)
    copy = tmp_path / "run"
    shutil.copytree(workdir, copy, ignore=shutil.ignore_patterns("audit"))
    _, run_audit = command_runner("audit")
    options = ("--audits=gradient,loo,permutation", "--batch_size=8")
    run_audit(f"--workdir={copy}", f"--data_dir={data_dir}", "--limit=30", *options)
    run_audit(f"--workdir={copy}", f"--dataset=jsonl:{corpus}", "--text_field=review",
              "--label_field=sentiment", "--chunk_size=7", *options)  # fmt: skip
    out = copy / "audit" / "jsonl-reviews"
    streamed = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    split = [json.loads(line) for line in
             (copy / "audit" / "test" / "records.jsonl").read_text().splitlines()]  # fmt: skip
    assert [r["index"] for r in streamed] == list(range(30))
    assert sorted(p.name for p in (out / "chunks").iterdir()) == [
        f"{first:012d}" for first in range(0, 30, 7)
    ]  # five chunks, their parts deleted once merged
    assert not list((out / "chunks").glob("*/parts"))
    for mine, theirs in zip(streamed, split, strict=True):
        assert mine["tokens"] == theirs["tokens"] and mine["label"] == theirs["label"]
        assert mine["id"] == f"jsonl-reviews:{mine['index']}"
        # Other widths (multiples of 16 per chunk): rounding only.
        for field in ("prediction", "attention", "gradient", "loo"):
            assert mine[field] == pytest.approx(theirs[field], abs=1e-5), field
        assert mine["permutation_median_tvd"] == pytest.approx(
            theirs["permutation_median_tvd"], abs=1e-5
        )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_instances"] == 30
    assert summary["provenance"]["timings"]["chunks"] == 5


def test_a_killed_corpus_audit_resumes_to_identical_records(trained, tmp_path):
    data_dir, workdir = trained
    corpus = write_corpus(data_dir, tmp_path / "reviews.jsonl", 24)
    copies = {name: tmp_path / name for name in ("killed", "straight")}
    for copy in copies.values():
        shutil.copytree(workdir, copy, ignore=shutil.ignore_patterns("audit"))
    options = (f"--dataset=jsonl:{corpus}", "--text_field=review", "--chunk_size=8",
               "--batch_size=4", "--audits=gradient,permutation")  # fmt: skip
    script = tmp_path / "killed.py"
    script.write_text(KILLED_AT_PART.format(repo=str(REPO), die_at=4))  # in the second chunk
    killed = subprocess.run([sys.executable, str(script), f"--workdir={copies['killed']}",
                             *options], cwd=REPO, capture_output=True, text=True)  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    chunks = copies["killed"] / "audit" / "jsonl-reviews" / "chunks"
    assert (chunks / f"{0:012d}" / "records.jsonl").exists()
    assert not (chunks / f"{8:012d}" / "records.jsonl").exists()
    resumed = subprocess.run(audit_command(copies["killed"], data_dir, *options), cwd=REPO,
                             capture_output=True, text=True)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Resuming: 1 of 2 batches already done" in resumed.stderr
    command_runner("audit")[1](f"--workdir={copies['straight']}", *options)
    records = "audit/jsonl-reviews/records.jsonl"
    assert (copies["killed"] / records).read_bytes() == (copies["straight"] / records).read_bytes()


def test_a_tfds_split_streams_as_a_corpus(trained, tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets", reason="in the [test] extra; install it")
    data_dir, workdir = trained
    copy = tmp_path / "run"
    shutil.copytree(workdir, copy, ignore=shutil.ignore_patterns("audit"))
    with tfds.testing.mock_data(num_examples=11):  # texts of random letters: [UNK] mostly
        source = tfds.data_source("imdb_reviews", split="test")
        labels = [int(source[i]["label"]) for i in range(len(source))]
        command_runner("audit")[1](
            f"--workdir={copy}", "--dataset=tfds:imdb_reviews:test", "--label_field=label",
            "--chunk_size=4", "--batch_size=4", "--audits=gradient",
        )  # fmt: skip
    out = copy / "audit" / "tfds-imdb_reviews-test"
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    assert [r["index"] for r in records] == list(range(11))
    assert [r["label"] for r in records] == labels
    assert records[5]["id"] == "tfds-imdb_reviews-test:5"
    assert all(len(r["gradient"]) == len(r["tokens"]) for r in records)


def test_a_bad_corpus_is_a_one_line_error(trained, tmp_path):
    data_dir, workdir = trained
    _, run_audit = command_runner("audit")
    empty = tmp_path / "empty.jsonl"
    empty.write_text('{"text": "a fine film"}\n{"text": ""}\n')
    for corpus, message in ((f"jsonl:{tmp_path / 'none.jsonl'}", "does not exist"),
                            (f"jsonl:{empty}", "Text 1 of .*empty.jsonl is empty")):  # fmt: skip
        with pytest.raises(SystemExit) as error:
            run_audit(f"--workdir={workdir}", f"--dataset={corpus}")
        assert str(error.value.code).startswith("error: ")
        assert re.search(message, str(error.value.code)), error.value.code


def test_a_corpus_for_a_question_answering_run_is_a_one_line_error(tmp_path):
    from tests.data.babi_test import write_babi

    write_babi(tmp_path / "data")
    dataset = data.load_dataset("babi1", tmp_path / "data")
    config = training.TrainConfig(dataset="babi1", epochs=1, learning_rate=0.02, **TINY)
    training.run_training(config, tmp_path / "run", dataset=dataset)
    corpus = tmp_path / "texts.jsonl"
    corpus.write_text('{"text": "mary went to the kitchen"}\n')
    with pytest.raises(SystemExit) as error:
        command_runner("audit")[1](f"--workdir={tmp_path / 'run'}", f"--dataset=jsonl:{corpus}")
    message = str(error.value.code)
    assert message.startswith("error: A corpus of texts has no questions") and "qa run" in message
