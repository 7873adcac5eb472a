r"""How an audit job scales over devices and processes (``attn_audit.distributed``).

  python -m benchmarks.scaling --data_dir=../shared/data \
      [--workdir=runs/sst_lstm_tanh --audits=gradient,loo,permutation,adversarial --limit=N]

For each layout, 1 process × 1 device, 1 process × 2 host devices
(``--xla_force_host_platform_device_count=2``) and 2 processes × 1 device (a loopback
coordinator), the whole ``experiments.audit`` command runs on a fresh copy of the run
folder twice: cold (an empty compilation cache) and warm (the cold run's cache). Reported
per layout: the job's wall seconds (start of the first process to the end of the last), the
batch phase's seconds (the slowest process's first batch to last batch) and instances/s,
and the speed-up and efficiency (speed-up over devices) against 1 × 1. The records of
2 × 1 must equal 1 × 1's byte for byte (checked); 1 × 2 shards each batch's rows over two
devices, which changes per-device shapes and so rounding (not compared).

Writes ``benchmarks/SCALING.md`` (the generated part; hand-written remarks below its marker
are kept).
"""

import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time

from absl import app, flags

from benchmarks._machine import describe
from benchmarks._results import REPO, command_line, write_results

_DATA_DIR = flags.DEFINE_string("data_dir", None, "Folder of the real data sets.")
_WORKDIR = flags.DEFINE_string(
    "workdir", str(REPO / "runs" / "sst_lstm_tanh"), "A trained run (make audit trains it)."
)
_AUDITS = flags.DEFINE_string(
    "audits", "gradient,loo,permutation,adversarial", "Audits the job runs."
)
_LIMIT = flags.DEFINE_integer("limit", None, "Audit only the first N test instances.")
_OUT = flags.DEFINE_string("out", str(REPO / "benchmarks" / "SCALING.md"), "Results file.")

LAYOUTS = (("1 process × 1 device", 1, 1), ("1 process × 2 host devices", 1, 2),
           ("2 processes × 1 device", 2, 1))  # fmt: skip


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_job(workdir: pathlib.Path, cache: pathlib.Path, processes: int, devices: int) -> dict:
    """Runs the audit job once; returns its wall seconds and process 0's summary timings."""
    environment = dict(os.environ, ATTN_AUDIT_JAX_CACHE=str(cache))
    if devices > 1:
        environment["XLA_FLAGS"] = (
            f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}"
        ).strip()
    command = [sys.executable, "-m", "experiments.audit", f"--workdir={workdir}",
               f"--audits={_AUDITS.value}"]  # fmt: skip
    if _DATA_DIR.value:
        command.append(f"--data_dir={_DATA_DIR.value}")
    if _LIMIT.value:
        command.append(f"--limit={_LIMIT.value}")
    port = free_port()
    start = time.perf_counter()
    running = []
    for process_id in range(processes):
        job = [] if processes == 1 else [
            f"--coordinator_address=127.0.0.1:{port}", f"--num_processes={processes}",
            f"--process_id={process_id}",
        ]  # fmt: skip
        running.append(subprocess.Popen(
            command + job, cwd=REPO, env=environment, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True,
        ))  # fmt: skip
    for process in running:
        _, stderr = process.communicate()
        if process.returncode:
            raise RuntimeError(f"The audit failed:\n{stderr[-3000:]}")
    wall = time.perf_counter() - start
    summary = json.loads((workdir / "audit" / "test" / "summary.json").read_text())
    timings = summary["provenance"]["timings"]
    per_process = [runs[-1] for runs in timings.get("processes", [timings["runs"]])]
    return {
        "wall": wall, "instances": summary["n_instances"],
        "batches": max(t["wall_seconds"] for t in per_process),
        "compile_wait": max(t["compile_wait_seconds"] for t in per_process),
        "compile": sum(t["compile_seconds"] for t in per_process),
        "records": (workdir / "audit" / "test" / "records.jsonl").read_bytes(),
    }  # fmt: skip


def measure(scratch: pathlib.Path) -> dict:
    source = pathlib.Path(_WORKDIR.value)
    found = {}
    for name, processes, devices in LAYOUTS:
        cache = scratch / f"cache-{processes}x{devices}"
        cache.mkdir(mode=0o700)
        for state in ("cold", "warm"):
            workdir = scratch / f"run-{processes}x{devices}-{state}"
            shutil.copytree(source, workdir, ignore=shutil.ignore_patterns(
                "audit", "explain", "faithfulness", "report.html"))  # fmt: skip
            found[name, state] = run_job(workdir, cache, processes, devices)
            shutil.rmtree(workdir)
            print(f"{name}, {state}: {found[name, state]['wall']:.1f} s", flush=True)
    one = found[LAYOUTS[0][0], "cold"]["records"]
    for state in ("cold", "warm"):
        if found[LAYOUTS[2][0], state]["records"] != one:
            raise RuntimeError(f"The two-process records ({state}) differ from one process's.")
        if found[LAYOUTS[0][0], state]["records"] != one:
            raise RuntimeError("One process's records differ between its cold and warm runs.")
    return found


def report(found: dict) -> str:
    lines = [
        "# Scaling an audit job over devices and processes",
        "",
        f"Command: `{command_line('benchmarks.scaling', [_DATA_DIR, _WORKDIR, _AUDITS, _LIMIT])}`"
        f" (generated {time.strftime('%Y-%m-%d')}).",
        "",
        f"Machine: {describe()}.",
        "",
        f"Job: `experiments.audit --audits={_AUDITS.value}` over the SST test set of "
        f"`{os.path.relpath(_WORKDIR.value, REPO)}`, "
        f"{found[LAYOUTS[0][0], 'cold']['instances']:,} instances, each layout on a fresh copy "
        "of the run folder; cold: an empty compilation cache, warm: the cold run's. Two "
        "processes write records byte-identical to one process's (checked in this run).",
        "",
        "| layout | cache | job wall s | batch phase s | instances/s (batches) | "
        "speed-up | efficiency | compile wait s | compile s (summed) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for state in ("cold", "warm"):
        base = found[LAYOUTS[0][0], state]
        for name, processes, devices in LAYOUTS:
            row = found[name, state]
            speedup = base["batches"] / row["batches"]
            lines.append(
                f"| {name} | {state} | {row['wall']:.1f} | {row['batches']:.1f} | "
                f"{row['instances'] / row['batches']:.0f} | {speedup:.2f}× | "
                f"{speedup / (processes * devices):.0%} | {row['compile_wait']:.1f} | "
                f"{row['compile']:.1f} |"
            )
    lines += [
        "",
        "Batch phase: the slowest process's first batch to last batch (the job's records "
        "wait for it); speed-up: 1 × 1's batch phase over this layout's; efficiency: the "
        "speed-up over the devices used. Job wall: the whole command(s), start-up, "
        "compilation, merge, summary and figures included.",
    ]
    return "\n".join(lines) + "\n"


def main(argv):
    del argv
    with tempfile.TemporaryDirectory(prefix="attn_audit_scaling_") as scratch:
        found = measure(pathlib.Path(scratch))
    text = report(found)
    print(text)
    write_results(pathlib.Path(_OUT.value), text)


if __name__ == "__main__":
    app.run(main)
