r"""attn_audit on an imported Hugging Face checkpoint against eager PyTorch on ``transformers``.

  python -m benchmarks.pretrained_vs_transformers [--workdir=runs/sst_minilm_hf --limit=N \
      --parts=check,processes,steady,ig --ig_limit=64 --data_dir=DIR]

The run (``experiments.train --encoder=pretrained``; by default the fine-tuned MiniLM on SST)
is exported with ``experiments.export --format=hf`` (or an export in ``--export_dir`` is
reused) and loaded with ``transformers`` (``BertForSequenceClassification``, eager
attention, eval mode): the same weights. JW's four audits on that model are
``benchmarks/torch_hf_audits.py`` (the eager code an expert would write: the states below
the last layer cached once per batch, the last ``BertLayer``'s submodules called at [CLS]
for any number of replacement attention rows, every LOO variant of a batch in a few passes,
every shuffle of a batch in one call, the adversary batched over candidates × instances).

Parts (``--parts``; each stores its figures in ``--state``, and the report is written from
all figures stored so far, so the parts may run as separate commands):

- ``check``: on the first ``--check_batches`` audit batches (the audit's own padding), both
  sides' prediction, α, gradient and LOO importance; the permutation medians with the SAME
  shuffles (JAX's keys turned into index arrays and fed to the eager code); the adversary
  from the SAME initial logits, followed step by step (candidates after 1, 10 and 100 of
  the 500 steps, asserted) and at the end (reported: a 500-step search with a ×500 hinge is
  chaotic, so float rounding grows; see ``adversary_report``).
- ``processes``: the whole ``experiments.audit`` process, cold (an empty
  ``ATTN_AUDIT_JAX_CACHE`` folder) then warm (the same folder, second run), against the
  eager process ``benchmarks/torch_hf_audit_process.py`` on the same split; then every
  instance compared: gradient and LOO to 1e-5, and the permutation medians and adversarial
  max-JSD (drawn from other random numbers on each side) as distributions.
- ``steady``: in-process steady seconds per audit on both sides, JAX compilation apart
  (ahead of time, per width, caches cleared first); the work each side does (positions
  run, padding included) and a float32 matmul peak on each side, to say what bounds it.
- ``ig``: integrated gradients (50 Gauss–Legendre points, the mask token's embedding at
  every real piece, [CLS]/[SEP] kept) against Captum's ``LayerIntegratedGradients`` on the
  model's ``word_embeddings``: equal to 1e-4 of each instance's largest score; speed.

Writes ``benchmarks/PRETRAINED_RESULTS.md`` (hand-written remarks below its marker line are
kept) and prints it.
"""

import dataclasses
import functools
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import torch
import transformers
from absl import app, flags

from attn_audit import audits, batch_engine, data, explainers, models
from attn_audit.audits import engine
from attn_audit.audits.adversarial import JW_ADVERSARY, AdversarySettings
from attn_audit.audits.permutation import NUM_PERMUTATIONS, permute_real_tokens
from attn_audit.batch_runner import first_instances, split_boundaries
from attn_audit.explainers.gradients import integration_points
from attn_audit.models import real_token_mask, transformer
from attn_audit.training.run_folder import load_run
from benchmarks import _machine
from benchmarks._results import REMARKS_MARKER, command_line, write_results  # noqa: F401
from benchmarks.torch_hf_audits import Adversary, HFAudits, length_sorted_batches

PARTS = ("check", "eager", "cold", "warm", "steady_gradient", "steady_loo",
         "steady_permutation", "steady_adversarial", "ig")  # fmt: skip
PART_GROUPS = {"processes": ("eager", "cold", "warm"), "steady": PARTS[4:8], "all": PARTS}


def define_flags() -> None:
    """Defines the command's flags. Called only when this file runs as a program: the tests
    import its helpers beside other benchmarks whose flags share these names."""
    global _WORKDIR, _LIMIT, _PARTS, _DATA_DIR, _EXPORT_DIR, _STATE, _CHECK_BATCHES
    global _IG_LIMIT, _IG_INTERNAL_BATCH_SIZE, _OUT, _ALLOW_UNFINISHED
    _WORKDIR = flags.DEFINE_string("workdir", "runs/sst_minilm_hf", "A --encoder=pretrained run.")
    _LIMIT = flags.DEFINE_integer("limit", None, "First N test instances (default: all).")
    _PARTS = flags.DEFINE_list(
        "parts", ["all"], f"Parts to run: {', '.join(PARTS)}; groups {', '.join(PART_GROUPS)}; "
        "'report' only rewrites the results file from the stored figures.",
    )  # fmt: skip
    _DATA_DIR = flags.DEFINE_string("data_dir", None, "Data folder (default $ATTN_AUDIT_DATA).")
    _EXPORT_DIR = flags.DEFINE_string(
        "export_dir",
        None,
        "Hugging Face export of the run: reused if it holds one, else written "
        "(default: a folder under the system's temp dir, named after the run).",
    )
    _STATE = flags.DEFINE_string(
        "state", None, "JSON file with the figures of the parts run so far (default: temp dir)."
    )
    _CHECK_BATCHES = flags.DEFINE_integer("check_batches", 1, "Audit batches compared in 'check'.")
    _IG_LIMIT = flags.DEFINE_integer("ig_limit", 64, "Instances for integrated gradients.")
    _IG_INTERNAL_BATCH_SIZE = flags.DEFINE_integer(
        "ig_internal_batch_size", 256, "Captum batched: rows (instances × points) per pass."
    )
    _OUT = flags.DEFINE_string("out", "benchmarks", "Where PRETRAINED_RESULTS.md goes.")
    _ALLOW_UNFINISHED = flags.DEFINE_bool(
        "allow_unfinished", False, "Run although the run's metrics.json has no 'test' entry yet."
    )


REPO = pathlib.Path(__file__).resolve().parents[1]
AUDITS = ("gradient", "loo", "permutation", "adversarial")
BATCH_SIZE = 32
# float32 on both sides, the same operations in other orders: measured 1e-7 … 1e-6 (MiniLM).
TOLERANCE = 1e-5
# The adversary from the same start: candidates after these steps must agree to this much.
ADVERSARY_STEPS_CHECKED = (1, 10, 100)
ADVERSARY_TOLERANCE = 1e-4
IG_RTOL = 1e-4
RESULTS_FILE = "PRETRAINED_RESULTS.md"


def machine() -> str:
    return _machine.describe(
        f"jax {jax.__version__} ({jax.default_backend()})",
        f"torch {torch.__version__} ({torch.get_num_threads()} intra-op threads)",
        f"transformers {transformers.__version__}",
    )


def load_average() -> str:
    return "/".join(f"{load:.2f}" for load in os.getloadavg())


# ------------------------------------------------------------------ batches and conversions


def audit_batches(split: data.EncodedSplit) -> list[dict]:
    """The audit command's batches: 32 rows, the split's two fitted widths (padding rows)."""
    return list(data.batches(split, BATCH_SIZE, split_boundaries(split, 2)))


def torch_rows(batch: dict) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """The real rows of a padded batch: ``(token_ids [b, T] long, lengths [b], which rows)``."""
    real = batch["index"] >= 0
    return (
        torch.from_numpy(batch["token_ids"][real].astype(np.int64)),
        torch.from_numpy(batch["lengths"][real].astype(np.int64)),
        real,
    )


def jax_permutation_sources(batch: dict, seed: int, num_permutations=NUM_PERMUTATIONS):
    """The shuffles ``BatchAuditor`` draws for ``batch`` (seed ``seed``), as index arrays
    ``[B, P, T]``: position t of shuffle p takes α of position ``sources[b, p, t]``."""
    permutation_key, _ = jax.random.split(jax.random.key(seed))
    keys = batch_engine.instance_keys(permutation_key, jnp.asarray(batch["index"]))
    width = batch["token_ids"].shape[1]

    def one(key, length):
        mask = real_token_mask(length, width)
        positions = jnp.arange(width, dtype=jnp.float32)
        return jax.vmap(lambda k: permute_real_tokens(positions, mask, k))(
            jax.random.split(key, num_permutations)
        )

    sources = jax.vmap(one)(keys, jnp.asarray(batch["lengths"]))
    return np.asarray(sources).round().astype(np.int64)


def jax_adversary_noise(batch: dict, seed: int, settings=JW_ADVERSARY) -> np.ndarray:
    """The N(0, 1) draws of ``adversarial_search``'s initial logits, ``[B, K, T]``."""
    _, adversarial_key = jax.random.split(jax.random.key(seed))
    keys = batch_engine.instance_keys(adversarial_key, jnp.asarray(batch["index"]))
    width = batch["token_ids"].shape[1]
    noise = jax.vmap(lambda key: jax.random.normal(key, (width, settings.num_candidates)).T)
    return np.asarray(noise(keys))


def eager_settings(settings: AdversarySettings) -> Adversary:
    return Adversary(**dataclasses.asdict(settings))


# ------------------------------------------------------------------ agreement


def max_difference(theirs, ours) -> float:
    theirs = theirs.detach().numpy() if isinstance(theirs, torch.Tensor) else np.asarray(theirs)
    return float(
        np.max(np.abs(theirs.astype(np.float64) - np.asarray(ours, np.float64)), initial=0.0)
    )


def jax_results(model, params, batch: dict, seed: int, settings: AdversarySettings) -> dict:
    """The engine's per-audit programs (``engine.predict_batch``, ``gradient_batch``, ...: the
    functions ``BatchAuditor`` combines) on one padded batch, keyed as ``BatchAuditor`` keys
    them; host arrays."""
    instances = batch_engine.instances_from_batch({k: jnp.asarray(v) for k, v in batch.items()})
    permutation_key, adversarial_key = jax.random.split(jax.random.key(seed))
    index = jnp.asarray(batch["index"])
    permutation_keys = batch_engine.instance_keys(permutation_key, index)
    adversarial_keys = batch_engine.instance_keys(adversarial_key, index)
    results = dict(engine.predict_batch(model, params, instances))
    results["gradient"] = engine.gradient_batch(model, params, instances)
    results["loo"] = engine.loo_batch(
        model, params, instances, engine.loo_positions_per_chunk(*batch["token_ids"].shape)
    )
    results["permutation_median_tvd"] = engine.permutation_batch(
        model, params, instances, permutation_keys
    )
    found = engine.adversarial_batch(model, params, instances, adversarial_keys, settings)
    results.update({f"adversarial_{name}": value for name, value in found.items()})
    return jax.tree.map(np.asarray, results)


def jax_adversary_candidates(model, params, batch: dict, seed: int, settings) -> np.ndarray:
    """``adversarial_batch``'s candidates ``[B, K, T]`` (keys as ``BatchAuditor``'s)."""
    instances = batch_engine.instances_from_batch({k: jnp.asarray(v) for k, v in batch.items()})
    _, adversarial_key = jax.random.split(jax.random.key(seed))
    keys = batch_engine.instance_keys(adversarial_key, jnp.asarray(batch["index"]))
    found = engine.adversarial_batch(model, params, instances, keys, settings)
    return np.asarray(found["candidates"])


def check_agreement(
    model,
    params,
    hf_audits: HFAudits,
    batches,
    seed: int = 0,
    settings: AdversarySettings = JW_ADVERSARY,
    adversary_steps=ADVERSARY_STEPS_CHECKED,
) -> dict:
    """Both sides on the same padded ``batches``; raises AssertionError beyond the tolerances.

    Returns:
      ``{"max_abs": {what: largest difference}, "scale": {what: largest value},
      "adversary": adversary_report(...)}``.
    """
    differences, scale, adversary = {}, {}, []
    eager = eager_settings(settings)
    for batch in batches:
        results = jax_results(model, params, batch, seed, settings)
        token_ids, lengths, real = torch_rows(batch)
        probabilities, attention = hf_audits.predict(token_ids, lengths)
        sources = torch.from_numpy(jax_permutation_sources(batch, seed)[real])
        noise = torch.from_numpy(jax_adversary_noise(batch, seed, settings)[real])
        found = {
            "prediction": (probabilities, results["probabilities"][real]),
            "attention": (attention, results["attention"][real]),
            "gradient": (hf_audits.gradient(token_ids, lengths), results["gradient"][real]),
            "loo": (hf_audits.loo(token_ids, lengths), results["loo"][real]),
            "permutation median TVD (same shuffles)": (
                hf_audits.permutation(token_ids, lengths, sources=sources),
                results["permutation_median_tvd"][real],
            ),
        }
        for what, (theirs, ours) in found.items():
            differences[what] = max(differences.get(what, 0.0), max_difference(theirs, ours))
            scale[what] = max(scale.get(what, 0.0), float(np.max(np.abs(ours), initial=0.0)))
        final = hf_audits.adversarial(token_ids, lengths, noise=noise, settings=eager)
        trajectory = {}
        for steps in adversary_steps:  # the same search stopped early, both sides
            short = dataclasses.replace(settings, steps=steps)
            ours = jax_adversary_candidates(model, params, batch, seed, short)
            theirs = hf_audits.adversarial(
                token_ids, lengths, noise=noise, settings=dataclasses.replace(eager, steps=steps)
            )
            trajectory[steps] = max_difference(theirs["candidates"], ours[real])
        adversary.append((final, {k: v[real] for k, v in results.items()}, trajectory))
    report = adversary_report(adversary)
    for what, difference in differences.items():
        assert difference <= TOLERANCE, (what, difference)
    for steps, difference in report["candidates_after_steps"].items():
        assert difference <= ADVERSARY_TOLERANCE, ("adversary candidates", steps, difference)
    return {"max_abs": differences, "scale": scale, "adversary": report}


def adversary_report(found) -> dict:
    """Eager vs JAX adversary from the same initial logits: trajectory and end statistics."""
    trajectory, eager, ours = {}, [], []
    for final, results, steps in found:
        for step, difference in steps.items():
            trajectory[step] = max(trajectory.get(step, 0.0), difference)
        eager.append(final["max_jsd"].numpy())
        ours.append(results["adversarial_max_jsd"])
    eager, ours = np.concatenate(eager), np.concatenate(ours)
    gap = np.abs(eager - ours)
    return {
        "instances": int(eager.size),
        "candidates_after_steps": {str(k): v for k, v in sorted(trajectory.items())},
        "max_jsd_mean": [float(eager.mean()), float(ours.mean())],
        "max_jsd_max_abs_difference": float(gap.max(initial=0.0)),
        "max_jsd_median_abs_difference": float(np.median(gap)) if gap.size else 0.0,
        "share_within_1e-3": float(np.mean(gap <= 1e-3)) if gap.size else 1.0,
    }


# ------------------------------------------------------------------ processes


def run_process(command, environment=None) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(
        command, cwd=REPO, check=False, capture_output=True, text=True, env=environment
    )
    seconds = time.perf_counter() - start
    if done.returncode:
        raise RuntimeError(f"{' '.join(map(str, command))} failed:\n{done.stderr[-4000:]}")
    return seconds, done.stdout


def export(workdir: pathlib.Path, export_dir: pathlib.Path) -> tuple[pathlib.Path, str]:
    """The run as a Hugging Face folder: reused when ``export_dir`` holds one, else written."""
    if (export_dir / "model.safetensors").is_file() and (export_dir / "config.json").is_file():
        return export_dir, "reused"
    seconds, _ = run_process(
        [
            sys.executable,
            "-m",
            "experiments.export",
            f"--workdir={workdir}",
            f"--out={export_dir}",
            "--format=hf",
        ]
    )
    return export_dir, f"written by experiments.export in {seconds:.1f} s"


def audit_flags(limit, data_dir) -> list[str]:
    return ([f"--limit={limit}"] if limit else []) + (
        [f"--data_dir={data_dir}"] if data_dir else []
    )


def faster_threads(run) -> tuple[int, dict]:
    """The faster of 1 and 2 ATen threads for ``run()``: ``(threads, {"1": s, "2": s})``."""
    before, probe = torch.get_num_threads(), {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        start = time.perf_counter()
        run()
        probe[str(threads)] = time.perf_counter() - start
    torch.set_num_threads(before)
    return int(min(probe, key=probe.get)), probe


def probe_threads(hf_audits: HFAudits, split, settings=JW_ADVERSARY) -> tuple[dict, dict]:
    """The faster of 1 and 2 torch threads per audit, on one batch of median length.

    On 2 cores shared with other jobs, ATen's two OpenMP threads can be many times slower
    than one (each operation waits for a descheduled thread); an expert picks per audit.
    The adversary is timed over 10 of its steps.

    Returns:
      ``({audit: threads}, {audit: {threads: seconds}})``.
    """
    batches = list(length_sorted_batches(split.token_ids, BATCH_SIZE))
    _, token_ids, lengths = batches[len(batches) // 2]
    short = dataclasses.replace(eager_settings(settings), steps=10)
    best, probe = {}, {}
    for audit in ("predict", *AUDITS):  # predict: the forward pass for ŷ and α
        if audit == "adversarial":
            run = functools.partial(hf_audits.adversarial, token_ids, lengths, settings=short)
        else:
            run = functools.partial(getattr(hf_audits, audit), token_ids, lengths)
        best[audit], probe[audit] = faster_threads(run)
    return best, probe


def run_eager_process(hf_audits, split, export_dir, scratch, limit, data_dir) -> dict:
    threads, probe = probe_threads(hf_audits, split)
    print("torch threads per audit", threads, probe, flush=True)
    seconds, stdout = run_process([
        sys.executable, "-m", "benchmarks.torch_hf_audit_process", f"--model={export_dir}",
        f"--out={scratch / 'eager.npz'}", "--threads=" + ",".join(
            f"{audit}:{count}" for audit, count in threads.items()
        ), *audit_flags(limit, data_dir),
    ])  # fmt: skip
    return {"wall": seconds, "threads": threads, "probe": probe,
            **json.loads(stdout.strip().splitlines()[-1])}  # fmt: skip


TIMING_KEYS = ("wall_seconds", "compile_seconds", "compile_wait_seconds", "run_seconds",
               "boundaries", "batches", "process_seconds")  # fmt: skip


def run_jax_process(label: str, workdir, scratch, limit, data_dir) -> dict:
    """``experiments.audit`` on a copy of the run; ``cold``: with an empty cache folder,
    ``warm``: with the cache a cold run filled (then also the start-up-only process)."""
    copy, cache = scratch / "run", scratch / "cache"
    if not copy.is_dir():
        shutil.copytree(workdir, copy, ignore=shutil.ignore_patterns("audit", "latest"))
    if label == "cold":
        shutil.rmtree(cache, ignore_errors=True)
        cache.mkdir(parents=True)
    elif not cache.is_dir() or not any(cache.iterdir()):
        raise app.UsageError("The warm process needs the cache of a cold one: run part 'cold'.")
    shutil.rmtree(copy / "audit", ignore_errors=True)
    environment = dict(os.environ, ATTN_AUDIT_JAX_CACHE=str(cache))
    seconds, _ = run_process(
        [sys.executable, "-m", "experiments.audit", f"--workdir={copy}",
         *audit_flags(limit, data_dir)], environment,
    )  # fmt: skip
    out = copy / "audit" / "test"
    timings = json.loads((out / "summary.json").read_text())["provenance"]["timings"]
    shutil.copyfile(out / "records.jsonl", scratch / "records.jsonl")
    figures = {"wall": seconds, "timings": {k: timings[k] for k in TIMING_KEYS if k in timings}}
    if label == "warm":
        figures["startup_floor"], _ = run_process(
            [sys.executable, "-c", STARTUP_ONLY, str(copy), data_dir or ""], environment
        )
    return figures


# A process that only imports, loads the run and encodes the split (the audit's fixed cost).
STARTUP_ONLY = """
from experiments._setup import setup
setup()
import sys
from attn_audit import audits, data
from attn_audit.training.run_folder import load_run
run = load_run(sys.argv[1])
split = run.split_encoder()(data.load_dataset(run.config["data"]["name"], sys.argv[2] or None),
                            "test")
audits.BatchAuditor(audits.auditable_model(run.model_config), run.params)
"""


def process_agreement(records: list[dict], eager: dict, split) -> dict:
    """Every instance of the two processes: same pieces; gradient, LOO, prediction, α equal
    (each side batched and padded its own way); permutation medians and adversarial max-JSD
    (other random numbers on each side) compared as distributions."""
    from scipy import stats as scipy_stats

    offsets = np.concatenate([[0], np.cumsum(eager["lengths"])])
    differences = dict.fromkeys(("prediction", "attention", "gradient", "loo"), 0.0)
    same_pieces = len(eager["lengths"]) == len(split) and np.array_equal(
        eager["token_ids"], np.concatenate([np.asarray(ids, np.int64) for ids in split.token_ids])
    )
    permutation = np.zeros((len(records), 2))
    adversary = np.zeros((len(records), 2))
    for record in records:
        index = record["index"]
        pieces = slice(offsets[index] + 1, offsets[index + 1] - 1)  # real pieces only
        theirs = {name: eager[name][pieces] for name in ("attention", "gradient", "loo")}
        theirs["prediction"] = eager["probabilities"][index]
        for name, value in theirs.items():
            differences[name] = max(differences[name], max_difference(value, record[name]))
        permutation[index] = (
            eager["permutation_median_tvd"][index],
            record["permutation_median_tvd"],
        )
        adversary[index] = eager["adversarial_max_jsd"][index], record["adversarial_max_jsd"]

    def distributions(pairs):
        test = scipy_stats.ks_2samp(pairs[:, 0], pairs[:, 1])
        quartiles = np.quantile(pairs, [0.25, 0.5, 0.75], axis=0)
        return {
            "mean": [float(pairs[:, 0].mean()), float(pairs[:, 1].mean())],
            "quartiles": quartiles.T.tolist(),
            "ks_statistic": float(test.statistic),
            "ks_p": float(test.pvalue),
            "pearson_r": float(np.corrcoef(pairs.T)[0, 1]),
            "median_abs_difference": float(np.median(np.abs(pairs[:, 0] - pairs[:, 1]))),
        }

    return {
        "instances": len(records),
        "same_pieces": bool(same_pieces),
        "max_abs": differences,
        "permutation": distributions(permutation),
        "adversarial": distributions(adversary),
    }


# ------------------------------------------------------------------ steady, in process


def time_jax_audit(model, params, batches, audit, seed=0) -> dict:
    """One audit's program: compiled ahead of time per width (caches cleared), then run."""
    jax.clear_caches()
    auditor = audits.BatchAuditor(model, params, (audit,), jax.random.key(seed))
    widths = {}
    for batch in batches:
        widths.setdefault(batch["token_ids"].shape, batch)
    start = time.perf_counter()
    for batch in widths.values():
        auditor.compile(batch)
    compile_seconds = time.perf_counter() - start
    start = time.perf_counter()
    for batch in batches:
        auditor(batch)
    return {"compile_s": compile_seconds, "steady_s": time.perf_counter() - start}


def forward_flops(config, width: int) -> float:
    """Multiply-adds × 2 of one sequence of ``width`` positions through the whole model."""
    d, f, layers = config.hidden_size, config.ff_dim, config.num_layers
    per_position = 4 * d * d + 2 * d * f + 2 * width * d  # projections, FFN, scores and mixing
    return 2.0 * layers * width * per_position


def jax_loo_variants(batch: dict) -> int:
    """Variants ``engine.loo_batch`` runs for a batch: the real deletions, in whole steps."""
    rows, width = batch["token_ids"].shape
    real = int(np.sum(np.maximum(np.asarray(batch["lengths"]) - 2, 0)))
    per_step = engine.loo_variants_per_step(rows, width)
    return -(-real // per_step) * per_step


def work(config, jax_batches, eager_batches) -> dict:
    """Positions (sequence × width) each side runs, padding included, and LOO's FLOPs."""
    jax_loo_per_batch = [(jax_loo_variants(b), b["token_ids"].shape[1]) for b in jax_batches]
    jax_loo = sum(variants for variants, _ in jax_loo_per_batch)  # each at the batch width
    jax_loo_flops = sum(v * forward_flops(config, width) for v, width in jax_loo_per_batch)
    eager_loo = sum(int((lengths - 2).sum()) for _, _, lengths in eager_batches)
    eager_loo_flops = sum(
        (int(n) - 2) * forward_flops(config, int(n) - 1)
        for _, _, lengths in eager_batches
        for n in lengths
    )
    jax_positions = sum(b["token_ids"].size for b in jax_batches)
    eager_positions = sum(t.numel() for _, t, _ in eager_batches)
    real_positions = sum(int(lengths.sum()) for _, _, lengths in eager_batches)
    return {
        "jax_batches": len(jax_batches),
        "eager_batches": len(eager_batches),
        "jax_rows": sum(b["token_ids"].shape[0] for b in jax_batches),
        "instances": sum(len(i) for i, _, _ in eager_batches),
        "jax_positions": jax_positions,
        "eager_positions": eager_positions,
        "real_positions": real_positions,
        "jax_loo_variants": jax_loo,
        "eager_loo_variants": eager_loo,
        "jax_loo_gflop": jax_loo_flops / 1e9,
        "eager_loo_gflop": eager_loo_flops / 1e9,
    }


def matmul_peaks() -> dict:
    """float32 2048² matmul GFLOP/s in JAX and in torch (the arithmetic ceiling here)."""
    size, repeats = 2048, 10
    a = jnp.ones((size, size), jnp.float32)
    product = jax.jit(lambda x: x @ x)
    product(a).block_until_ready()
    start = time.perf_counter()
    for _ in range(repeats):
        product(a).block_until_ready()
    jax_rate = repeats * 2 * size**3 / (time.perf_counter() - start) / 1e9
    b = torch.ones(size, size)
    b @ b
    start = time.perf_counter()
    for _ in range(repeats):
        b @ b
    torch_rate = repeats * 2 * size**3 / (time.perf_counter() - start) / 1e9
    return {"jax_gflops": jax_rate, "torch_gflops": torch_rate}


# ------------------------------------------------------------------ integrated gradients


def ig_forward(hf_model):
    def probabilities(token_ids, attention_mask):
        logits = hf_model(input_ids=token_ids, attention_mask=attention_mask).logits
        return torch.softmax(logits, dim=-1)

    return probabilities


def captum_ig(hf_model, rows, mask_id: int, settings, internal_batch_size=None):
    """Captum's ``LayerIntegratedGradients`` on ``word_embeddings`` for ``rows`` (lists of
    ids, [CLS]/[SEP] included) in one call: ``[n]`` scores of the real pieces per row."""
    from captum.attr import LayerIntegratedGradients

    lengths = torch.as_tensor([len(r) for r in rows])
    token_ids = torch.zeros(len(rows), int(lengths.max()), dtype=torch.long)
    for i, r in enumerate(rows):
        token_ids[i, : len(r)] = torch.as_tensor(np.asarray(r, np.int64))
    attention_mask = (torch.arange(token_ids.shape[1])[None] < lengths[:, None]).long()
    forward = ig_forward(hf_model)
    with torch.no_grad():
        targets = forward(token_ids, attention_mask).argmax(-1)
    real = real_positions(lengths, token_ids.shape[1])
    method = LayerIntegratedGradients(forward, hf_model.bert.embeddings.word_embeddings)
    scores = (
        method.attribute(
            token_ids,
            baselines=torch.where(real, mask_id, token_ids),
            target=targets,
            additional_forward_args=(attention_mask,),
            n_steps=settings.ig_points,
            method=settings.ig_rule,
            internal_batch_size=internal_batch_size,
        )
        .sum(-1)
        .detach()
        .numpy()
    )
    return [scores[i, 1 : len(r) - 1].astype(np.float64) for i, r in enumerate(rows)]


def real_positions(lengths: torch.Tensor, width: int) -> torch.Tensor:
    positions = torch.arange(width)[None, :]
    return (positions >= 1) & (positions <= lengths[:, None] - 2)


def jax_ig(model, params, batches, settings) -> tuple[float, float, dict]:
    """(compile seconds, steady seconds, {index: scores [n]}) of attn_audit's IG program."""
    jax.clear_caches()
    engine_ = explainers.BatchExplainer(model, params, ("integrated_gradients",), settings=settings)
    widths = {}
    for batch in batches:
        widths.setdefault(batch["token_ids"].shape, batch)
    for batch in widths.values():
        engine_.compile(batch, "prediction")
    start = time.perf_counter()
    for batch in widths.values():
        engine_.compile(batch, "integrated_gradients")
    compile_seconds = time.perf_counter() - start
    scores = {}
    start = time.perf_counter()
    for batch in batches:
        results = engine_(batch)
        for row in np.flatnonzero(batch["index"] >= 0):
            n = int(batch["lengths"][row])
            scores[int(batch["index"][row])] = np.asarray(
                results["integrated_gradients"][row, 1 : n - 1], np.float64
            )
    return compile_seconds, time.perf_counter() - start, scores


def relative_difference(ours: dict, theirs: dict) -> tuple[float, float]:
    """(max abs difference, max over instances of it ÷ the instance's largest |score|)."""
    largest, relative = 0.0, 0.0
    for index, reference in theirs.items():
        difference = float(np.max(np.abs(ours[index] - reference), initial=0.0))
        largest = max(largest, difference)
        scale = float(np.max(np.abs(reference), initial=0.0))
        relative = max(relative, difference / scale if scale > 0 else float(difference > 0))
    return largest, relative


@functools.partial(jax.jit, static_argnames=("config", "mask_id", "points", "rule"))
def reference_ig_batch(params, config, token_ids, lengths, mask_id, points, rule):
    """IG of the model's own function in JAX: ``transformer.forward_from_embedded``
    differentiated as it is (every attention map free), the same points, weights and
    baseline as ``explainers.gradients.integrated_gradients``. ``[B, T]``; instances one
    after another (``lax.map``), the points vmapped."""
    alphas, weights = integration_points(rule, points)

    def one(inputs):
        ids, length = inputs
        real = real_token_mask(length, ids.shape[0])
        embedded = transformer.embed(params, config, ids)
        baseline = transformer.embed(params, config, jnp.where(real, mask_id, ids))
        logits, _ = transformer.forward_from_embedded(params, config, embedded, length)
        target = jnp.argmax(logits)

        def probability(x):
            logits, _ = transformer.forward_from_embedded(params, config, x, length)
            return models.probabilities(logits, config)[target]

        difference = embedded - baseline
        gradients = jax.vmap(lambda a: jax.grad(probability)(baseline + a * difference))(
            jnp.asarray(alphas, jnp.float32)
        )
        average = jnp.tensordot(jnp.asarray(weights, jnp.float32), gradients, axes=1)
        return jnp.where(real, jnp.sum(difference * average, axis=-1), 0.0)

    return jax.lax.map(one, (token_ids, lengths))


def reference_ig(params, config, batches, settings) -> tuple[float, float, dict]:
    """(compile s, steady s, {index: scores [n]}) of ``reference_ig_batch``."""
    arguments = {}
    for batch in batches:
        arguments.setdefault(batch["token_ids"].shape, batch)
    static = (config, settings.mask_token_id, settings.ig_points, settings.ig_rule)
    start = time.perf_counter()
    compiled = {
        shape: reference_ig_batch.lower(
            params, config, jnp.asarray(b["token_ids"]), jnp.asarray(b["lengths"]), *static[1:]
        ).compile()
        for shape, b in arguments.items()
    }
    compile_seconds = time.perf_counter() - start
    scores = {}
    start = time.perf_counter()
    for batch in batches:
        found = np.asarray(
            compiled[batch["token_ids"].shape](
                params, jnp.asarray(batch["token_ids"]), jnp.asarray(batch["lengths"])
            )
        )
        for row in np.flatnonzero(batch["index"] >= 0):
            n = int(batch["lengths"][row])
            scores[int(batch["index"][row])] = found[row, 1 : n - 1].astype(np.float64)
    return compile_seconds, time.perf_counter() - start, scores


def compare_ig(
    model,
    params,
    hf_model,
    split,
    mask_id: int,
    internal_batch_size=None,
    settings=None,
    batch_size: int = BATCH_SIZE,
    num_buckets: int = 2,
) -> dict:
    """attn_audit's IG against Captum's (batched, and one instance at a time) on ``split``.

    Also the IG of the model's own function in JAX (``reference_ig_batch``), which shows
    whether a difference lies in attn_audit's IG or in the comparison. Raises
    AssertionError if that reference or Captum batched differ from Captum one at a time by
    more than ``IG_RTOL``; attn_audit's own difference is reported (``ours_vs_one``)."""
    settings = settings or explainers.ExplainerSettings(mask_token_id=mask_id)
    batches = list(data.batches(split, batch_size, split_boundaries(split, num_buckets)))
    compile_seconds, steady, ours = jax_ig(model, params, batches, settings)
    reference_compile, reference_steady, reference = reference_ig(
        jax.tree.map(jnp.asarray, params), model.config, batches, settings
    )
    rows = {i: list(split.token_ids[i]) for i in range(len(split))}
    first = [rows[int(i)] for i in batches[0]["index"] if i >= 0]
    threads, probe = faster_threads(
        lambda: captum_ig(hf_model, first, mask_id, settings, internal_batch_size)
    )
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    start = time.perf_counter()
    batched = {}
    for batch in batches:
        indices = [int(i) for i in batch["index"] if i >= 0]
        found = captum_ig(
            hf_model, [rows[i] for i in indices], mask_id, settings, internal_batch_size
        )
        batched.update(zip(indices, found, strict=True))
    batched_seconds = time.perf_counter() - start
    start = time.perf_counter()
    one = {i: captum_ig(hf_model, [r], mask_id, settings)[0] for i, r in rows.items()}
    one_seconds = time.perf_counter() - start
    torch.set_num_threads(before)
    figures = {
        "instances": len(split),
        "points": settings.ig_points,
        "rule": settings.ig_rule,
        "jax_compile_s": compile_seconds,
        "jax_steady_s": steady,
        "reference_compile_s": reference_compile,
        "reference_steady_s": reference_steady,
        "captum_batched_s": batched_seconds,
        "captum_one_s": one_seconds,
        "internal_batch_size": internal_batch_size,
        "captum_threads": threads,
        "captum_thread_probe": probe,
        "ours_vs_one": relative_difference(ours, one),
        "ours_vs_batched": relative_difference(ours, batched),
        "ours_vs_reference": relative_difference(ours, reference),
        "reference_vs_one": relative_difference(reference, one),
        "batched_vs_one": relative_difference(batched, one),
    }
    for what in ("reference_vs_one", "batched_vs_one"):
        assert figures[what][1] <= IG_RTOL, (what, figures[what])
    return figures


# ------------------------------------------------------------------ the report


def render(state: dict) -> str:
    context = state["context"]
    lines = [
        "# attn_audit on an imported Hugging Face checkpoint against eager `transformers`", "",
        f"Machine: {context['machine']}.", "",
        f"Run: `{context['workdir']}` ({context['model']}); SST test split, "
        f"{context['instances']} instances{context['limit_note']}. Export: {context['export']}.",
        "", "Each part stores its figures, so the parts may run as separate commands:", "",
        "| part | command | started | minutes | load average (1/5/15 min) before → after |",
        "|---|---|---|---|---|",
    ]  # fmt: skip
    commands = []
    for part, info in state.get("commands", {}).items():
        if info["command"] not in commands:
            commands.append(info["command"])
        lines.append(
            f"| {part} | {commands.index(info['command']) + 1} | {info['when']} | "
            f"{info['minutes']:.1f} | {info['load_before']} → {info['load_after']} |"
        )
    lines += [""] + [f"{i + 1}. `{c}`" for i, c in enumerate(commands)] + [""]
    if "check" in state:
        lines += render_check(state["check"])
    if any(part in state for part in ("eager", "cold", "warm")):
        lines += render_processes(state)
    if "steady" in state:
        lines += render_steady(state)
    if "ig" in state:
        lines += render_ig(state["ig"])
    lines += BASELINES
    return "\n".join(lines) + "\n"


def render_check(check: dict) -> list[str]:
    adversary = check["adversary"]
    lines = [
        f"## Agreement (first {check['instances']} instances, the audit's own padded batches)",
        "",
        f"Asserted: every row ≤ {TOLERANCE:g} absolute; the adversary's candidates after "
        f"{', '.join(adversary['candidates_after_steps'])} steps from the same initial logits ≤ "
        f"{ADVERSARY_TOLERANCE:g}.",
        "",
        "| quantity | max abs difference | largest value |",
        "|---|---|---|",
    ]
    for what, difference in check["max_abs"].items():
        lines.append(f"| {what} | {difference:.1e} | {check['scale'][what]:.3g} |")
    for steps, difference in adversary["candidates_after_steps"].items():
        lines.append(
            f"| adversary candidates after {steps} step(s), same start | {difference:.1e} | 1 |"
        )
    eager_mean, ours_mean = adversary["max_jsd_mean"]
    lines += [
        "",
        f"After all 500 steps from the same start, max JSD per instance: mean {eager_mean:.4f}"
        f" (eager) vs {ours_mean:.4f} (attn_audit); median |difference| "
        f"{adversary['max_jsd_median_abs_difference']:.1e}, largest "
        f"{adversary['max_jsd_max_abs_difference']:.1e}; "
        f"{adversary['share_within_1e-3']:.0%} of instances within 1e-3. The objective's "
        "500 × ReLU(TVD − 0.01) hinge and the ε = 0.05 cut make the search sensitive to float "
        "rounding (the two sides sum in other orders), so the ends are compared statistically "
        "and the paths are checked while they still coincide.",
        "",
    ]
    return lines


def render_processes(state: dict) -> list[str]:
    n = state["context"]["instances"]
    eager, cold, warm = state.get("eager"), state.get("cold"), state.get("warm")
    lines = [
        "## End to end: the whole process", "",
        f"`experiments.audit` (all four audits of {n} instances, then records, Kendall τ, "
        "summary, figures) against `benchmarks/torch_hf_audit_process.py` (the four eager "
        "audits of the exported folder, per-instance results to an .npz). Wall seconds, "
        "start-up included.", "",
        "| process | wall s | instances/s | eager ÷ this |", "|---|---|---|---|",
    ]  # fmt: skip
    found = [("attn_audit, cold (empty ATTN_AUDIT_JAX_CACHE folder)", cold),
             ("attn_audit, warm (second run, same cache)", warm),
             ("eager PyTorch + transformers", eager)]  # fmt: skip
    for label, figures in found:
        if figures:
            ratio = f"{eager['wall'] / figures['wall']:.2f}×" if eager else "–"
            lines.append(f"| {label} | {figures['wall']:.1f} | {n / figures['wall']:.2f} | "
                         f"{ratio} |")  # fmt: skip
    if warm:
        lines.append(f"| attn_audit start-up only (imports, run, data; no audit) | "
                     f"{warm['startup_floor']:.1f} | – | – |")  # fmt: skip
    if eager and warm and cold:
        lines += ["", f"Targets: ≥ 3× warm, ≥ 2× cold. Measured: warm "
                  f"**{eager['wall'] / warm['wall']:.2f}×**, cold "
                  f"**{eager['wall'] / cold['wall']:.2f}×**."]  # fmt: skip
    if eager:
        lines += [
            "", "Eager process stages (s, in process; eager code compiles nothing, so these "
            "are its steady times): " + ", ".join(f"{k} {secs(v)}" for k, v in
                                                  eager["seconds"].items()) + ".",
            "Torch threads per audit (the faster of 1 and 2 on a median batch; probe seconds "
            "for 1 / 2 threads): " + ", ".join(
                f"{audit} {count} ({eager['probe'][audit]['1']:.2f} / "
                f"{eager['probe'][audit]['2']:.2f})" for audit, count in eager["threads"].items()
            ) + ".",
        ]  # fmt: skip
    if cold or warm:
        lines += ["", "attn_audit processes (`summary.json` timings):", "",
                  "| process | audit wall s | compile wait s | compile s (threads) | run s | "
                  "widths |", "|---|---|---|---|---|---|"]  # fmt: skip
        for label, figures in (("cold", cold), ("warm", warm)):
            if figures:
                t = figures["timings"]
                lines.append(f"| {label} | {t['wall_seconds']:.1f} | "
                             f"{t['compile_wait_seconds']:.1f} | {t['compile_seconds']:.1f} | "
                             f"{t['run_seconds']:.1f} | {t['boundaries']} |")  # fmt: skip
    agreement = state.get("process_agreement")
    if agreement:
        lines += [
            "", f"Every instance of the two processes ({agreement['instances']}; each side "
            "batched and padded its own way; the same word pieces from both tokenizers: "
            f"{'yes' if agreement['same_pieces'] else 'NO'}): max abs difference "
            + ", ".join(f"{k} {v:.1e}" for k, v in agreement["max_abs"].items()) + ".", "",
            "| statistic (other random numbers on each side) | eager mean | attn_audit mean | "
            "quartiles eager / attn_audit | KS statistic (p) | Pearson r |",
            "|---|---|---|---|---|---|",
        ]  # fmt: skip
        for name, label in (("permutation", "permutation median TVD"),
                            ("adversarial", "adversarial max JSD")):  # fmt: skip
            d = agreement[name]
            quartiles = " / ".join(", ".join(f"{v:.3g}" for v in d["quartiles"][i])
                                   for i in (0, 1))  # fmt: skip
            lines.append(f"| {label} | {d['mean'][0]:.4f} | {d['mean'][1]:.4f} | {quartiles} "
                         f"| {d['ks_statistic']:.3f} ({d['ks_p']:.2g}) | "
                         f"{d['pearson_r']:.3f} |")  # fmt: skip
    return lines + [""]


def secs(value: float) -> str:
    """Seconds with two decimals below 10 s, one above."""
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def render_steady(state: dict) -> list[str]:
    steady, eager = state["steady"], state.get("eager")
    n = state["context"]["instances"]
    lines = [
        f"## Steady, in process, per audit ({n} instances)", "",
        "attn_audit: one audit's program per width, compiled ahead of time (JAX's caches "
        "cleared, no persistent cache) and timed apart, then one pass over the audit "
        "command's batches (32 rows, the split's two widths, padding rows included). Eager: "
        "that audit's seconds inside the eager process above (length-sorted batches of 32, "
        "each padded to its own longest).", "",
        "| audit | JAX compile s | JAX steady s | eager s | eager ÷ JAX (steady) | JAX share "
        "| eager share |", "|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    jax_total = sum(r["steady_s"] for r in steady.values())
    eager_seconds = eager["seconds"] if eager else {}
    eager_total = sum(eager_seconds.get(audit, 0.0) for audit in steady)
    for audit, r in steady.items():
        theirs = eager_seconds.get(audit)
        lines.append(
            f"| {audit} | {r['compile_s']:.1f} | {secs(r['steady_s'])} | "
            + (f"{secs(theirs)} | {theirs / r['steady_s']:.2f}× | " if theirs else "– | – | ")
            + f"{r['steady_s'] / jax_total:.0%} | "
            + (f"{theirs / eager_total:.0%} |" if theirs else "– |")
        )
    compile_total = sum(r["compile_s"] for r in steady.values())
    if len(steady) == len(AUDITS) and eager:
        ratio = eager_total / jax_total
        lines.append(f"| all four | {compile_total:.1f} | {secs(jax_total)} | "
                     f"{secs(eager_total)} | {ratio:.2f}× | 100% | 100% |")  # fmt: skip
    lines += render_bounds(state, compile_total)
    return lines + [""]


def render_bounds(state: dict, compile_total: float) -> list[str]:
    w, peaks, steady = state["work"], state["peaks"], state["steady"]
    eager_seconds = state.get("eager", {}).get("seconds", {})
    lines = [
        "", "### What bounds the ratio", "",
        f"- **Padding.** attn_audit runs {w['jax_rows']} rows for {w['instances']} instances "
        f"at the split's two widths: {w['jax_positions']:,} positions a pass against the eager "
        f"side's {w['eager_positions']:,} (each batch padded to its own longest; "
        f"{w['real_positions']:,} real pieces). Leave-one-out runs the real deletions "
        f"of a batch, in steps of B · (T − 2) / 16, each variant at the batch's width T: "
        f"{w['jax_loo_variants']:,} variants, "
        f"{w['jax_loo_gflop']:,.0f} GFLOP, where the eager code runs only the real deletions, "
        f"each n − 1 wide: {w['eager_loo_variants']:,} variants, {w['eager_loo_gflop']:,.0f} "
        f"GFLOP ({w['jax_loo_gflop'] / w['eager_loo_gflop']:.2f}× the arithmetic).",
    ]  # fmt: skip
    if "loo" in steady and "loo" in eager_seconds:
        rate = w["jax_loo_gflop"] / steady["loo"]["steady_s"]
        eager_rate = w["eager_loo_gflop"] / eager_seconds["loo"]
        lines.append(
            f"- **Arithmetic rate.** LOO runs at {rate:.0f} GFLOP/s in JAX and {eager_rate:.0f} "
            f"GFLOP/s eager; a float32 2048² matmul reaches {peaks['jax_gflops']:.0f} GFLOP/s "
            f"in JAX and {peaks['torch_gflops']:.0f} GFLOP/s in torch here (dense 384 × 384 "
            "and 384 × 1536 products are most of a BERT block's arithmetic)."
        )
    if "adversarial" in steady and "adversarial" in eager_seconds:
        steps = JW_ADVERSARY.steps * w["jax_batches"]
        eager_steps = JW_ADVERSARY.steps * w["eager_batches"]
        lines.append(
            f"- **Adversary.** 500 optimiser steps per batch, each a forward and backward pass "
            "of the last layer's [CLS] position for 5 candidates × 32 instances: "
            f"{1e3 * steady['adversarial']['steady_s'] / steps:.1f} ms a step in JAX "
            f"({w['jax_batches']} batches), {1e3 * eager_seconds['adversarial'] / eager_steps:.1f}"
            f" ms eager ({w['eager_batches']} batches)."
        )
    cold, warm = state.get("cold"), state.get("warm")
    if cold and warm:
        lines.append(
            f"- **Compilation.** The cold process is {cold['wall'] - warm['wall']:.1f} s slower "
            f"than the warm one; it waited {cold['timings']['compile_wait_seconds']:.1f} s for "
            f"programs ({cold['timings']['compile_seconds']:.1f} s of compile work on two "
            f"threads). Per audit, alone: {compile_total:.1f} s in all (table above)."
        )
    return lines


def render_ig(ig: dict) -> list[str]:
    n = ig["instances"]
    rows = (
        ("attn_audit (`explainers`, integrated_gradients) vs Captum one at a time", "ours_vs_one"),
        ("attn_audit vs Captum batched", "ours_vs_batched"),
        ("attn_audit vs the model's own gradient in JAX", "ours_vs_reference"),
        ("the model's own gradient in JAX vs Captum one at a time", "reference_vs_one"),
        ("Captum batched vs Captum one at a time", "batched_vs_one"),
    )
    lines = [
        f"## Integrated gradients against Captum ({n} instances)", "",
        f"{ig['points']} points ({ig['rule']}), f = p(ŷ | x), baseline: the mask token's word "
        "embedding at every real piece, [CLS]/[SEP] kept. Captum: `LayerIntegratedGradients` "
        "on the `transformers` model's `bert.embeddings.word_embeddings`. \"The model's own "
        "gradient in JAX\" is this benchmark's `reference_ig_batch`: the same points, weights "
        "and baseline through `models.transformer.forward_from_embedded`, differentiated as "
        f"it is. Required: ≤ {IG_RTOL:g} of each instance's largest |score|.", "",
        "| comparison | max abs | max relative | ≤ 1e-4? |", "|---|---|---|---|",
    ]  # fmt: skip
    for label, key in rows:
        absolute, relative = ig[key]
        verdict = "yes" if relative <= IG_RTOL else "**no**"
        lines.append(f"| {label} | {absolute:.1e} | {relative:.1e} | {verdict} |")
    if ig["ours_vs_one"][1] > IG_RTOL:
        lines += [
            "", "attn_audit's IG is not the model's gradient: `TransformerModel.decode` stops "
            "the gradient of the last layer's [CLS] rows (`mix_heads(stop_gradient(cls_rows), "
            "α, ...)`), so the explainers' f(e) = decode(states(e), α(e)) has the right value "
            "but reaches those rows only through the head mean α (each head's own row and its "
            "mass on [CLS]/[SEP] are held fixed). The JAX reference above, which differentiates "
            "the same model as it is, equals Captum, so the difference is that stop-gradient "
            "and not the comparison (gradient × input is affected the same way; JW's gradient "
            "audit, which holds those rows fixed on purpose, is not).",
        ]  # fmt: skip
    lines += [
        "", "| side | compile s | seconds | ms / instance | ÷ attn_audit |",
        "|---|---|---|---|---|",
        f"| attn_audit (steady; `BatchExplainer`, batches of 32) | {ig['jax_compile_s']:.1f} | "
        f"{ig['jax_steady_s']:.1f} | {1e3 * ig['jax_steady_s'] / n:.0f} | 1× |",
        f"| JAX reference (steady; one instance at a time, points vmapped) | "
        f"{ig['reference_compile_s']:.1f} | {ig['reference_steady_s']:.1f} | "
        f"{1e3 * ig['reference_steady_s'] / n:.0f} | "
        f"{ig['reference_steady_s'] / ig['jax_steady_s']:.2f}× |",
        f"| Captum batched (32 instances a call, `internal_batch_size="
        f"{ig['internal_batch_size']}`) | – | {ig['captum_batched_s']:.1f} | "
        f"{1e3 * ig['captum_batched_s'] / n:.0f} | "
        f"{ig['captum_batched_s'] / ig['jax_steady_s']:.2f}× |",
        f"| Captum one instance a call (defaults) | – | {ig['captum_one_s']:.1f} | "
        f"{1e3 * ig['captum_one_s'] / n:.0f} | {ig['captum_one_s'] / ig['jax_steady_s']:.2f}× |",
        "", f"Captum ran with {ig['captum_threads']} ATen thread(s), the faster on its first "
        f"batch ({ig['captum_thread_probe']['1']:.1f} s with 1, "
        f"{ig['captum_thread_probe']['2']:.1f} s with 2).", "",
    ]  # fmt: skip
    return lines


BASELINES = [
    "## What each side does",
    "",
    "- **attn_audit**: `experiments.audit` on the run folder: the imported model in JAX "
    "(`attn_audit/audits/transformer_model.py`: α is the last block's [CLS] row, head mean, "
    "over the real pieces; `decode(α)` re-runs the last block at [CLS] with the rows "
    '`mix_heads(…, "reweighted")`), each audit vmapped over a batch and jitted (LOO: only '
    "the real deletions of a batch, gathered and run in steps, "
    "`audits.loo.leave_one_out_of_batch`), two programs per width (gradient + LOO; "
    "permutation + adversarial), widths fitted to the split, the compiled programs kept in "
    "`ATTN_AUDIT_JAX_CACHE`.",
    "- **eager** (`benchmarks/torch_hf_audits.py`, `benchmarks/torch_hf_audit_process.py`): "
    "the exported folder in `transformers` (`BertForSequenceClassification`, eager attention, "
    "eval mode, parameters frozen). Per batch: the states below the last layer once "
    "(`bert.embeddings`, `bert.encoder.layer[:-1]`), the last `BertLayer`'s query at [CLS], "
    "keys and values everywhere, and its `attention.output`, `intermediate`, `output`, the "
    "pooler and the classifier at [CLS] only, for any stack of replacement rows. Gradient: "
    "one backward pass to the word embeddings with the [CLS] rows detached. LOO: only the "
    "real deletion variants, in passes of ≤ 16,384 pieces each padded to its own longest. "
    "Permutation: the batch's 100 shuffles as one `[B, 100, H, T]` stack. Adversary: one "
    "`[B, 5, T]` logit tensor, `torch.optim.Adam(amsgrad=True, fused=True)`, 500 steps on the "
    "cached states. Batches sorted by length (32 each), no padding rows.",
    "",
]


def command() -> str:
    """The command line that ran, with the flags given (not the defaults)."""
    holders = (_WORKDIR, _LIMIT, _PARTS, _DATA_DIR, _EXPORT_DIR, _STATE, _CHECK_BATCHES,
               _IG_LIMIT, _IG_INTERNAL_BATCH_SIZE, _OUT, _ALLOW_UNFINISHED)  # fmt: skip
    return command_line("benchmarks.pretrained_vs_transformers", holders)


def chosen_parts(names) -> list[str]:
    """``--parts`` with the groups expanded, in ``PARTS`` order."""
    chosen = set()
    for name in names:
        if name in PART_GROUPS:
            chosen.update(PART_GROUPS[name])
        elif name in PARTS or name == "report":
            chosen.add(name)
        else:
            raise app.UsageError(
                f"Unknown part {name!r}; choose from {list(PARTS)}, groups {list(PART_GROUPS)} "
                "or 'report' (only rewrite the results file)."
            )
    return [part for part in PARTS if part in chosen]


def main(argv):
    del argv
    parts = chosen_parts(_PARTS.value)
    workdir = pathlib.Path(_WORKDIR.value).resolve()
    run = load_run(workdir)
    if "test" not in run.metrics and not _ALLOW_UNFINISHED.value:
        raise app.UsageError(
            f"{workdir}/metrics.json has no 'test' entry: the run is not finished "
            "(or pass --allow_unfinished)."
        )
    name = workdir.name + (f"_limit{_LIMIT.value}" if _LIMIT.value else "")
    scratch = pathlib.Path(tempfile.gettempdir()) / "pretrained_vs_transformers" / name
    scratch.mkdir(parents=True, exist_ok=True)
    state_path = pathlib.Path(_STATE.value or scratch / "state.json")
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    export_dir, how = export(workdir, pathlib.Path(_EXPORT_DIR.value or scratch / "export"))
    hf_model = transformers.BertForSequenceClassification.from_pretrained(
        export_dir, attn_implementation="eager"
    ).eval()
    hf_audits = HFAudits(hf_model)
    model = audits.auditable_model(run.model_config)
    dataset = data.load_dataset(run.config["data"]["name"], _DATA_DIR.value)
    split = first_instances(run.split_encoder()(dataset, "test"), _LIMIT.value)
    config = run.model_config
    accuracy = run.metrics.get("test", {}).get("accuracy", float("nan"))
    state["context"] = {
        "machine": machine(), "workdir": str(_WORKDIR.value), "instances": len(split),
        "model": f"a BERT of {config.num_layers} layers, {config.num_heads} heads, width "
                 f"{config.hidden_size}; test accuracy {accuracy:.3f}",
        "limit_note": f" (--limit={_LIMIT.value})" if _LIMIT.value else " (all)",
        "export": f"`{str(export_dir).replace(tempfile.gettempdir(), '$TMPDIR')}`, {how}",
    }  # fmt: skip
    for part in parts:
        if part == "report":
            continue
        load_before, start, when = (
            load_average(),
            time.perf_counter(),
            time.strftime("%Y-%m-%d %H:%M"),
        )
        if part == "check":
            batches = audit_batches(split)[: _CHECK_BATCHES.value]
            threads, _ = probe_threads(hf_audits, split)  # the check is not timed: just fast
            torch.set_num_threads(threads["adversarial"])
            figures = check_agreement(model, run.params, hf_audits, batches)
            figures["instances"] = int(sum(np.sum(b["index"] >= 0) for b in batches))
        elif part == "eager":
            figures = run_eager_process(hf_audits, split, export_dir, scratch, _LIMIT.value,
                                        _DATA_DIR.value)  # fmt: skip
        elif part in ("cold", "warm"):
            figures = run_jax_process(part, workdir, scratch, _LIMIT.value, _DATA_DIR.value)
        elif part.startswith("steady_"):
            audit = part.removeprefix("steady_")
            figures = time_jax_audit(model, run.params, audit_batches(split), audit)
            if "work" not in state:
                eager_batches = list(length_sorted_batches(split.token_ids, BATCH_SIZE))
                state["work"] = work(config, audit_batches(split), eager_batches)
                state["peaks"] = matmul_peaks()
        else:
            figures = compare_ig(
                model, run.params, hf_model, first_instances(split, _IG_LIMIT.value),
                run.mask_token_id, _IG_INTERNAL_BATCH_SIZE.value,
            )  # fmt: skip
        print(part, json.dumps(figures, default=float)[:3000], flush=True)
        if part.startswith("steady_"):
            state.setdefault("steady", {})[part.removeprefix("steady_")] = figures
            state["steady"] = {a: state["steady"][a] for a in AUDITS if a in state["steady"]}
        else:
            state[part] = figures
        if part in ("eager", "cold", "warm"):
            if (scratch / "eager.npz").is_file() and (scratch / "records.jsonl").is_file():
                records = [json.loads(line) for line in
                           (scratch / "records.jsonl").read_text().splitlines()]  # fmt: skip
                state["process_agreement"] = process_agreement(
                    records, dict(np.load(scratch / "eager.npz")), split
                )
                print("process agreement", state["process_agreement"], flush=True)
        state.setdefault("commands", {})[part] = {
            "command": command(), "minutes": (time.perf_counter() - start) / 60,
            "load_before": load_before, "load_after": load_average(),
            "when": when,
        }  # fmt: skip
        state["commands"] = {p: state["commands"][p] for p in PARTS if p in state["commands"]}
        state_path.write_text(json.dumps(state, indent=1, default=float))
    report = render(state)
    write_results(pathlib.Path(_OUT.value) / RESULTS_FILE, report)
    print(report)


if __name__ == "__main__":
    define_flags()
    app.run(main)
