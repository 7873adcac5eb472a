r"""attn_audit against eager PyTorch on the default SST model: agreement first, then speed.

  python -m benchmarks.audit_vs_torch [--workdir=runs/sst_lstm_tanh --limit=320 --no-scaling]

1. Loads the run's best weights into JAX and into the PyTorch twin and asserts that the
   engine and both eager styles (``benchmarks/torch_audits.py``) agree on the first batch:
   prediction and attention to 1e-5, gradient and LOO importance to 1e-5.
2. Times each audit on the first ``--limit`` test instances (batches of 32, the same
   buckets): JAX compile (first pass minus steady pass) apart from its steady state,
   PyTorch in JW's original style (a) and in the best batched eager style (b).
3. End to end, as a user runs it: the whole ``experiments.audit`` process on the full
   SST test set (start-up and compilation included; cold and warm compilation cache),
   against the eager processes (``benchmarks/torch_audit_process.py``) on the same full
   test set (``--eager_limit`` to cut it short; then compared per instance), and the
   start-up floor: a process that only imports, loads the run and encodes the split.
4. The LOO sweep's achieved GFLOP/s beside a float32 matmul peak measured here, and
   scaling curves of the LOO sweep over sequence length and batch size (table and PNG).

Writes ``benchmarks/RESULTS.md`` and ``benchmarks/scaling.png``, and prints both.
"""

import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

import jax
import numpy as np
import torch
from absl import app, flags

from attn_audit import audits, data
from attn_audit.interop import to_torch_state_dict
from attn_audit.training.run_folder import load_run
from benchmarks import _machine
from benchmarks._results import write_results
from benchmarks.torch_audits import BatchedStyle, OriginalStyle
from tests.reference.torch_model import load_torch_model

_WORKDIR = flags.DEFINE_string("workdir", "runs/sst_lstm_tanh", "A trained run (make audit).")
_LIMIT = flags.DEFINE_integer("limit", 320, "Test instances for the per-audit timings.")
_EAGER_LIMIT = flags.DEFINE_integer(
    "eager_limit", None, "End to end: test instances for the eager processes (default all)."
)
_SCALING = flags.DEFINE_bool("scaling", True, "Measure the scaling curves.")
_OUT = flags.DEFINE_string("out", "benchmarks", "Where RESULTS.md and scaling.png go.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Data folder (default $ATTN_AUDIT_DATA).")
REPO = pathlib.Path(__file__).resolve().parents[1]
AUDITS = ("gradient", "loo", "permutation", "adversarial")


def machine() -> str:
    return _machine.describe(
        f"jax {jax.__version__} ({jax.default_backend()})",
        f"torch {torch.__version__}",
        f"numpy {np.__version__}",
    )


def torch_batch(batch):
    real = batch["index"] >= 0
    return (torch.from_numpy(batch["token_ids"][real].astype(np.int64)),
            torch.from_numpy(batch["lengths"][real].astype(np.int64)), real)  # fmt: skip


def check_agreement(auditor, styles, batch):
    results = auditor(batch)
    token_ids, lengths, real = torch_batch(batch)
    for name, style in styles.items():
        probabilities, attention, _ = style.predict(token_ids, lengths)
        checks = {
            "prediction": (probabilities.numpy(), results["probabilities"][real]),
            "attention": (attention.numpy(), results["attention"][real]),
            "gradient": (style.gradient(token_ids, lengths), results["gradient"][real]),
            "loo": (style.loo(token_ids, lengths), results["loo"][real]),
        }
        for what, (theirs, ours) in checks.items():
            np.testing.assert_allclose(theirs, ours, atol=1e-5, err_msg=f"{name} {what}")
    return sorted(checks)


def time_jax(auditor, batches, audit):
    """(first pass seconds, steady pass seconds) of one audit over ``batches``."""
    single = audits.BatchAuditor(auditor.model, auditor.params, (audit,))
    jax.clear_caches()
    times = []
    for _ in range(2):
        start = time.perf_counter()
        for batch in batches:
            single(batch)
        times.append(time.perf_counter() - start)
    return times


def time_torch(style, batches, audit):
    start = time.perf_counter()
    for batch in batches:
        token_ids, lengths, _ = torch_batch(batch)
        getattr(style, audit)(token_ids, lengths)
    return time.perf_counter() - start


def loo_flops(config, lengths) -> float:
    """Multiply-adds ×2 of the BiLSTM LOO sweep: every variant re-runs both directions."""
    hidden, embed = config.hidden_size, config.embed_dim
    per_step = 2 * 2 * 4 * hidden * (embed + hidden)  # two directions, four gates
    return float(sum((n - 2) * (n - 1) * per_step for n in lengths))


STARTUP_ONLY = """
from experiments._setup import setup
setup()
import sys
from attn_audit import audits, data
from attn_audit.training.run_folder import load_run
run = load_run(sys.argv[1])
split = data.encode_split(data.load_dataset(run.config["data"]["name"], sys.argv[2] or None),
                          "test", run.vocab)
audits.BatchAuditor(audits.JWModel(run.model_config), run.params)
"""


def run_process(command, environment=None) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=REPO, check=True, capture_output=True, env=environment)
    return time.perf_counter() - start


def scaling(model, params, twin):
    rng = np.random.default_rng(0)
    rows = []
    for batch_size, width in [(8, 16), (8, 64), (8, 256), (8, 512), (32, 64), (128, 64),
                              (256, 64)]:  # fmt: skip
        token_ids = rng.integers(4, model.config.vocab_size, (batch_size, width)).astype(np.int32)
        token_ids[:, 0], token_ids[:, -1] = 2, 3
        lengths = np.full(batch_size, width, np.int32)
        batch = {"token_ids": token_ids, "lengths": lengths,
                 "index": np.arange(batch_size, dtype=np.int32)}  # fmt: skip
        auditor = audits.BatchAuditor(model, params, ("loo",))
        auditor(batch)  # compile
        start = time.perf_counter()
        auditor(batch)
        jax_seconds = time.perf_counter() - start
        start = time.perf_counter()
        BatchedStyle(twin).loo(torch.from_numpy(token_ids.astype(np.int64)),
                               torch.from_numpy(lengths.astype(np.int64)))  # fmt: skip
        torch_seconds = time.perf_counter() - start
        rows.append({"batch": batch_size, "length": width, "jax_s": jax_seconds,
                     "torch_batched_s": torch_seconds})  # fmt: skip
        print(rows[-1], flush=True)
    return rows


def scaling_figure(rows, path):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 3.5), dpi=100)
    for i, (key, fixed) in enumerate((("length", "batch"), ("batch", "length"))):
        axes = figure.add_subplot(1, 2, i + 1)
        chosen = [r for r in rows if r[fixed] == (8 if fixed == "batch" else 64)]
        chosen.sort(key=lambda r: r[key])
        xs = [r[key] for r in chosen]
        for name, label in (("jax_s", "attn_audit (JAX)"), ("torch_batched_s", "PyTorch (b)")):
            axes.plot(xs, [r[name] for r in chosen], "o-", label=label)
        axes.set_xscale("log", base=2)
        axes.set_yscale("log")
        axes.set_xlabel(key)
        axes.set_ylabel("LOO sweep seconds")
        axes.set_title(f"{fixed} = {8 if fixed == 'batch' else 64}", fontsize=10)
        axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)


def main(argv):
    del argv
    out = pathlib.Path(_OUT.value)
    run = load_run(_WORKDIR.value)
    model = audits.JWModel(run.model_config)
    twin = load_torch_model(to_torch_state_dict(run.params, run.model_config), run.model_config)
    torch.manual_seed(0)
    styles = {"original (a)": OriginalStyle(twin), "batched (b)": BatchedStyle(twin)}
    dataset = data.load_dataset(run.config["data"]["name"], _DATA_DIR.value)
    full = data.encode_split(dataset, "test", run.vocab)
    split = data.EncodedSplit(full.examples[: _LIMIT.value], full.token_ids[: _LIMIT.value],
                              full.labels[: _LIMIT.value])  # fmt: skip
    boundaries = tuple(run.config["data"]["bucket_boundaries"])
    batches = list(data.batches(split, 32, boundaries))
    auditor = audits.BatchAuditor(model, run.params)
    checked = check_agreement(auditor, styles, batches[0])
    print("agreement:", checked, flush=True)

    per_audit = {}
    for audit in AUDITS:
        first, steady = time_jax(auditor, batches, audit)
        per_audit[audit] = {"jax_compile_s": max(first - steady, 0.0), "jax_steady_s": steady}
        for name, style in styles.items():
            per_audit[audit][name] = time_torch(style, batches, audit)
        print(audit, per_audit[audit], flush=True)

    lengths = [len(ids) for ids in split.token_ids]
    gflops = loo_flops(run.model_config, lengths) / per_audit["loo"]["jax_steady_s"] / 1e9
    peak = _machine.matmul_peak()

    end_to_end = {}
    with tempfile.TemporaryDirectory() as scratch:
        copy = pathlib.Path(scratch) / "run"
        shutil.copytree(run.workdir, copy, ignore=shutil.ignore_patterns("audit"))
        command = [sys.executable, "-m", "experiments.audit", f"--workdir={copy}"]
        if _DATA_DIR.value:
            command.append(f"--data_dir={_DATA_DIR.value}")
        cache = pathlib.Path(scratch) / "cache"
        # cold: no cache at all, as on a user's first run; warm: the second of two runs that
        # share a cache (the first fills it).
        for label, folder in (("cold", ""), ("warm", str(cache)), ("warm", str(cache))):
            shutil.rmtree(copy / "audit", ignore_errors=True)
            environment = dict(os.environ, ATTN_AUDIT_JAX_CACHE=folder)
            end_to_end[f"jax_{label}"] = run_process(command, environment)
            summary = json.loads((copy / "audit" / "test" / "summary.json").read_text())
            end_to_end[f"jax_{label}_timings"] = summary["provenance"]["timings"]
        end_to_end["jax_startup_floor"] = run_process(
            [sys.executable, "-c", STARTUP_ONLY, str(copy), _DATA_DIR.value or ""]
        )
        eager_limit = [f"--limit={_EAGER_LIMIT.value}"] if _EAGER_LIMIT.value else []
        for style in ("original", "batched"):
            result = subprocess.run(
                [sys.executable, "-m", "benchmarks.torch_audit_process", f"--workdir={copy}",
                 f"--style={style}", *eager_limit]
                + ([f"--data_dir={_DATA_DIR.value}"] if _DATA_DIR.value else []),
                cwd=REPO, check=True, capture_output=True, text=True,
            )  # fmt: skip
            end_to_end[f"torch_{style}"] = json.loads(result.stdout.strip().splitlines()[-1])

    rows = scaling(model, run.params, twin) if _SCALING.value else []
    if rows:
        scaling_figure(rows, out / "scaling.png")
    report = render(per_audit, end_to_end, len(split), len(full), gflops, peak, rows, checked)
    write_results(out / "RESULTS.md", report)
    print(report)


def compile_lines(end_to_end) -> list[str]:
    """Where the JAX processes' audit time went (their ``summary.json`` timings)."""
    lines = [
        "Inside the audit (its `summary.json` timings): compile wait is the part of the wall "
        "time the audit waited for a program (on the critical path); compile is the "
        "compilation work summed over the two compiling threads (it overlaps the run); run "
        "is executing batches and writing their records.", "",
        "| process | wall s | audit s | compile wait s | compile wait ÷ wall | compile s (threads)"
        " | run s | widths |", "|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for label in ("cold", "warm"):
        t, wall = end_to_end[f"jax_{label}_timings"], end_to_end[f"jax_{label}"]
        lines.append(
            f"| {label} | {wall:.1f} | {t['wall_seconds']:.1f} | {t['compile_wait_seconds']:.1f}"
            f" | {t['compile_wait_seconds'] / wall:.0%} | {t['compile_seconds']:.1f} | "
            f"{t['run_seconds']:.1f} | {t['boundaries']} |"
        )
    return lines + [""]


def render(per_audit, end_to_end, n, n_full, gflops, peak, rows, checked) -> str:
    lines = [
        "# attn_audit against eager PyTorch", "",
        f"Machine: {machine()}.", "",
        "Command: `python -m benchmarks.audit_vs_torch` (default SST BiLSTM+tanh run, "
        f"`make audit`). Agreement checked first on one batch: {', '.join(checked)} "
        "equal to 1e-5 in JAX and both eager styles.", "",
        f"## Per audit, first {n} SST test instances (batches of 32)", "",
        "Instances per second; JAX compile time (first pass minus steady pass) apart.", "",
        "| audit | JAX compile s | JAX steady inst/s | PyTorch (a) inst/s | PyTorch (b) inst/s "
        "| JAX ÷ (a) | JAX ÷ (b) |", "|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for audit, t in per_audit.items():
        jax_rate, a_rate, b_rate = (n / t["jax_steady_s"], n / t["original (a)"],
                                    n / t["batched (b)"])  # fmt: skip
        lines.append(
            f"| {audit} | {t['jax_compile_s']:.1f} | {jax_rate:.0f} | {a_rate:.1f} | "
            f"{b_rate:.1f} | {jax_rate / a_rate:.0f}× | {jax_rate / b_rate:.1f}× |"
        )
    a, b = end_to_end["torch_original"], end_to_end["torch_batched"]
    rate = {
        "jax_cold": n_full / end_to_end["jax_cold"], "jax_warm": n_full / end_to_end["jax_warm"],
        "a": a["instances"] / a["seconds"]["total"], "b": b["instances"] / b["seconds"]["total"],
    }  # fmt: skip
    lines += [
        "", "## End to end, as a user runs it", "",
        f"`experiments.audit` on the full SST test set ({n_full} instances, all four audits, "
        "process start to finish: imports, data, compilation, records, summary, figures), "
        f"against the eager processes on {a['instances']} instances (same batches "
        "and buckets, a whole process each, start-up included); compared per instance.", "",
        "| process | instances | wall s | instances/s |", "|---|---|---|---|",
        f"| attn_audit, cold compilation cache | {n_full} | {end_to_end['jax_cold']:.1f} | "
        f"{rate['jax_cold']:.1f} |",
        f"| attn_audit, warm compilation cache | {n_full} | {end_to_end['jax_warm']:.1f} | "
        f"{rate['jax_warm']:.1f} |",
        f"| attn_audit start-up only (imports, run, data; no audit) | 0 | "
        f"{end_to_end['jax_startup_floor']:.1f} | – |",
        f"| PyTorch (a), JW's loops | {a['instances']} | {a['seconds']['total']:.1f} | "
        f"{rate['a']:.2f} |",
        f"| PyTorch (b), batched eager (the permutation test over whole buckets) | "
        f"{b['instances']} | {b['seconds']['total']:.1f} | "
        f"{rate['b']:.2f} |", "",
        f"Ratios (cold cache): {rate['jax_cold'] / rate['a']:.0f}× style (a), "
        f"{rate['jax_cold'] / rate['b']:.1f}× style (b); warm: "
        f"{rate['jax_warm'] / rate['a']:.0f}× and {rate['jax_warm'] / rate['b']:.1f}×. "
        f"Stage seconds of the eager processes: (a) {json.dumps(a['seconds'])}; "
        f"(b) {json.dumps(b['seconds'])}.", "",
        *compile_lines(end_to_end),
        "## LOO arithmetic", "",
        f"The JAX LOO sweep achieves {gflops:.1f} GFLOP/s counted as naive re-encoding "
        "(both directions of every deletion variant, the arithmetic eager PyTorch performs; "
        "our shortcut skips about half of it, so this is an effective rate); a float32 "
        f"2048² matmul reaches {peak:.1f} GFLOP/s here.", "",
    ]  # fmt: skip
    if rows:
        lines += [
            "## Scaling of the LOO sweep",
            "",
            "![scaling](scaling.png)",
            "",
            "| batch | length | JAX s | PyTorch (b) s | ratio |",
            "|---|---|---|---|---|",
        ]
        lines += [f"| {r['batch']} | {r['length']} | {r['jax_s']:.3f} | "
                  f"{r['torch_batched_s']:.3f} | {r['torch_batched_s'] / r['jax_s']:.1f}× |"
                  for r in rows]  # fmt: skip
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    app.run(main)
