r"""A corpus of a million texts, streamed: resident memory, throughput, and a kill on the way.

  python -m benchmarks.streaming [--texts=1000000 --audits=gradient --chunk_size=16384 \
      --workdir=runs/sst_lstm_tanh --kill_at=0.4]

Generates a JSON-lines corpus of ``--texts`` texts (words drawn from the run's vocabulary,
3 to 50 of them, as SST's sentences), then audits it with ``experiments.audit
--dataset=jsonl:...`` in a fresh copy of the run folder, sampling the command's resident
memory (RSS) every second. When ``--kill_at`` of the texts are done the command is killed
(SIGKILL) and started again: it resumes from its finished chunks. Reported: RSS against the
texts done (the curve), texts/s per tenth of the corpus, the kill and the resume, and the
records written (every text once, in order: checked).

Writes ``benchmarks/STREAMING.md`` (generated part; hand-written remarks below its marker kept).
"""

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import psutil
from absl import app, flags

from benchmarks._machine import describe
from benchmarks._results import REPO, command_line, write_results

_TEXTS = flags.DEFINE_integer("texts", 1_000_000, "Texts in the generated corpus.")
_AUDITS = flags.DEFINE_string("audits", "gradient", "Audits of the streamed run.")
_CHUNK_SIZE = flags.DEFINE_integer("chunk_size", 16384, "Texts per chunk.")
_WORKDIR = flags.DEFINE_string("workdir", str(REPO / "runs" / "sst_lstm_tanh"), "A trained run.")
_KILL_AT = flags.DEFINE_float("kill_at", 0.4, "Kill (SIGKILL) once this share is done; 0: never.")
_OUT = flags.DEFINE_string("out", str(REPO / "benchmarks" / "STREAMING.md"), "Results file.")
FLAGS = (_TEXTS, _AUDITS, _CHUNK_SIZE, _WORKDIR, _KILL_AT)


def write_corpus(path: pathlib.Path, count: int, vocabulary: list[str]) -> None:
    rng = np.random.default_rng(0)
    labels = ("negative", "positive")
    with open(path, "w") as corpus:
        for start in range(0, count, 100_000):
            size = min(100_000, count - start)
            lengths = rng.integers(3, 51, size)
            words = rng.integers(0, len(vocabulary), int(lengths.sum()))
            ends = np.cumsum(lengths)
            lines = []
            for row in range(size):
                text = " ".join(vocabulary[w] for w in words[ends[row] - lengths[row] : ends[row]])
                lines.append(json.dumps({"text": text, "label": labels[row % 2]}) + "\n")
            corpus.writelines(lines)


def texts_done(chunks: pathlib.Path) -> int:
    """Texts in finished chunks (a chunk's folder is named by its first text)."""
    if not chunks.exists():
        return 0
    return sum(1 for c in chunks.iterdir() if (c / "records.jsonl").exists()) * _CHUNK_SIZE.value


def run_streamed(workdir: pathlib.Path, corpus: pathlib.Path) -> dict:
    command = [sys.executable, "-m", "experiments.audit", f"--workdir={workdir}",
               f"--dataset=jsonl:{corpus}", f"--audits={_AUDITS.value}",
               f"--chunk_size={_CHUNK_SIZE.value}"]  # fmt: skip
    chunks = workdir / "audit" / f"jsonl-{corpus.stem}" / "chunks"
    samples, events, start = [], [], time.perf_counter()
    killed = _KILL_AT.value <= 0
    log = workdir.parent / "audit.log"  # not a pipe: a full pipe would stop the command
    while True:
        with open(log, "w") as stderr:
            process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL,
                                       stderr=stderr)  # fmt: skip
        events.append((time.perf_counter() - start, "started", texts_done(chunks)))
        watched = psutil.Process(process.pid)
        while process.poll() is None:
            try:
                rss = watched.memory_info().rss
            except psutil.NoSuchProcess:
                break
            done = texts_done(chunks)
            samples.append((time.perf_counter() - start, done, rss))
            if not killed and done >= _KILL_AT.value * _TEXTS.value:
                process.send_signal(signal.SIGKILL)
                process.wait()
                killed = True
                events.append((time.perf_counter() - start, "killed", done))
                break
            time.sleep(1.0)
        else:
            if process.returncode:
                raise RuntimeError(f"The streamed audit failed:\n{log.read_text()[-3000:]}")
            events.append((time.perf_counter() - start, "finished", _TEXTS.value))
            return {"samples": samples, "events": events}


def check_records(records: pathlib.Path) -> int:
    count = 0
    with open(records) as lines:
        for count, line in enumerate(lines, start=1):
            if json.loads(line)["index"] != count - 1:
                raise RuntimeError(f"Record {count} of {records} is out of order.")
    if count != _TEXTS.value:
        raise RuntimeError(f"{records} holds {count} records for {_TEXTS.value} texts.")
    return count


def report(found: dict, corpus_bytes: int, records_bytes: int) -> str:
    samples, events = found["samples"], found["events"]
    lines = [
        "# A million texts, streamed",
        "",
        f"Command: `{command_line('benchmarks.streaming', FLAGS)}` (generated "
        f"{time.strftime('%Y-%m-%d')}).",
        "",
        f"Machine: {describe()}.",
        "",
        f"`experiments.audit --dataset=jsonl:<corpus> --audits={_AUDITS.value} "
        f"--chunk_size={_CHUNK_SIZE.value}` over a generated corpus of {_TEXTS.value:,} texts "
        f"({corpus_bytes / 1e6:,.0f} MB; 3–50 words each from the run's vocabulary), its RSS "
        f"sampled every second. records.jsonl: {records_bytes / 1e6:,.0f} MB, every text once, "
        "in order (checked).",
        "",
        "| event | at s | texts done |",
        "|---|---|---|",
        *[f"| {what} | {at:.0f} | {done:,} |" for at, what, done in events],
        "",
        "Resident memory against texts done (the largest RSS sampled in each tenth of the "
        "corpus), and throughput (texts of finished chunks per second of that tenth):",
        "",
        "| texts done | RSS MB (max) | texts/s |",
        "|---|---|---|",
    ]
    tenth = _TEXTS.value / 10
    for part in range(10):
        inside = [s for s in samples if part * tenth <= s[1] < (part + 1) * tenth]
        if not inside:
            continue
        rss = max(s[2] for s in inside) / 2**20
        span = inside[-1][0] - inside[0][0]
        rate = (inside[-1][1] - inside[0][1]) / span if span > 0 else float("nan")
        lines.append(
            f"| {part * tenth:,.0f}–{(part + 1) * tenth:,.0f} | {rss:,.0f} | {rate:,.0f} |"
        )
    peak = max(s[2] for s in samples) / 2**20
    total = events[-1][0]
    lines += [
        "",
        f"Peak RSS {peak:,.0f} MB; {_TEXTS.value / total:,.0f} texts/s over the whole "
        f"{total:,.0f} s (start-ups, compilation, the kill and the resume included).",
    ]
    return "\n".join(lines) + "\n"


def main(argv):
    del argv
    vocabulary = json.loads((pathlib.Path(_WORKDIR.value) / "vocab.json").read_text())
    vocabulary = vocabulary["tokens"] if isinstance(vocabulary, dict) else vocabulary
    vocabulary = [w for w in vocabulary if w.isalpha()]
    with tempfile.TemporaryDirectory(prefix="attn_audit_streaming_") as scratch:
        scratch = pathlib.Path(scratch)
        corpus = scratch / "million.jsonl"
        write_corpus(corpus, _TEXTS.value, vocabulary)
        workdir = scratch / "run"
        shutil.copytree(_WORKDIR.value, workdir, ignore=shutil.ignore_patterns(
            "audit", "explain", "faithfulness", "report.html"))  # fmt: skip
        found = run_streamed(workdir, corpus)
        records = workdir / "audit" / f"jsonl-{corpus.stem}" / "records.jsonl"
        check_records(records)
        text = report(found, os.path.getsize(corpus), os.path.getsize(records))
    print(text)
    write_results(pathlib.Path(_OUT.value), text)


if __name__ == "__main__":
    app.run(main)
