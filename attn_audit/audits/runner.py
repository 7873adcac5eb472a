"""An audit run over a split: batches → audits → per-instance records, resumable.

Each finished batch is written at once to ``<out>/parts/<batch>.jsonl`` (a
temporary file, then a rename), so an interrupted run loses at most the batch
in flight; running the same audit again skips the batches that have a part.
At the end the parts are merged, in data order, into ``<out>/records.jsonl``.
Keys are per instance (``fold_in``), so a resumed run writes the same records
as an uninterrupted one.

Compilation is a cost of its own and is reported apart. The audit pads to a few
widths fitted to the split's lengths (``AuditOptions.num_buckets``, default 2;
``data.fewest_padded_boundaries``), not to the training's buckets: each width is
compiled, and for SST's test set 2 widths audit as fast as the training's 4. Two
threads compile the programs (``BatchAuditor.programs``, two per width) in the order
the audit needs them, while the main thread audits the batches whose programs are
ready: XLA compiles with the interpreter lock released, so both cores work.
"""

import concurrent.futures
import dataclasses
import json
import logging
import os
import pathlib
import time

import numpy as np

from attn_audit import data, stats
from attn_audit._progress import format_duration
from attn_audit.audits.adversarial import AdversarySettings
from attn_audit.audits.engine import AUDITS, BatchAuditor
from attn_audit.models import is_real_token
from attn_audit.report.records import read_records, write_records

# Threads that compile the audit's programs: two cores' worth (the main thread runs batches).
COMPILE_THREADS = 2

TAU_PAIRS = {
    "gradient": ("attention", "gradient"),
    "loo": ("attention", "loo"),
    "gradient_loo": ("gradient", "loo"),
}


@dataclasses.dataclass(frozen=True)
class AuditOptions:
    """What to audit; saved as ``audit_config.json`` and checked on resume."""

    split: str = "test"
    audits: tuple[str, ...] = AUDITS
    seed: int = 0
    batch_size: int = 32
    limit: int | None = None
    num_permutations: int = 100
    adversary: AdversarySettings = AdversarySettings()
    num_buckets: int = 2

    def to_dict(self) -> dict:
        content = dataclasses.asdict(self)
        content["audits"] = list(self.audits)
        return content


def first_instances(split: data.EncodedSplit, limit: int | None) -> data.EncodedSplit:
    """The first ``limit`` instances of ``split`` (all if ``limit`` is None)."""
    if limit is None:
        return split
    if limit < 1:
        raise ValueError(f"--limit must be at least 1, got {limit}.")
    questions = None if split.question_ids is None else split.question_ids[:limit]
    return data.EncodedSplit(
        split.examples[:limit], split.token_ids[:limit], split.labels[:limit], questions
    )


def _tau_fields(results: dict, real_mask: np.ndarray) -> dict[str, np.ndarray]:
    fields = {}
    for name, (a, b) in TAU_PAIRS.items():
        if a in results and b in results:
            tau, p = stats.kendall_tau_b(
                np.asarray(results[a], np.float64), np.asarray(results[b], np.float64), real_mask
            )
            fields[f"tau_{name}"], fields[f"p_{name}"] = tau, p
    return fields


def _none_if_nan(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


def batch_records(batch: dict, results: dict, split: data.EncodedSplit) -> list[dict]:
    """One record per real row of ``batch`` (fields: ``attn_audit.report.records``)."""
    num_positions = batch["token_ids"].shape[1]
    real_mask = is_real_token(np.arange(num_positions)[None, :], batch["lengths"][:, None])
    taus = _tau_fields(results, real_mask)
    records = []
    for row in np.flatnonzero(batch["index"] >= 0):
        index = int(batch["index"][row])
        example = split.examples[index]
        real = slice(1, int(batch["lengths"][row]) - 1)
        probabilities = results["probabilities"][row]
        attention = results["attention"][row]
        record = {
            "id": example.id,
            "index": index,
            "tokens": list(example.tokens),
            "label": int(split.labels[index]),
            "prediction": probabilities.tolist(),
            "predicted_class": int(np.argmax(probabilities)),
            "attention": attention[real].tolist(),
            "max_attention": float(attention[real].max()),
        }
        if example.question is not None:
            record["question"] = list(example.question)
        for name in ("gradient", "loo"):
            if name in results:
                record[name] = results[name][row][real].tolist()
        for name, values in taus.items():
            record[name] = _none_if_nan(values[row])
        if "permutation_median_tvd" in results:
            record["permutation_median_tvd"] = float(results["permutation_median_tvd"][row])
        if "adversarial_max_jsd" in results:
            found = int(results["adversarial_selected"][row]) >= 0
            adversary = results["adversarial_selected_attention"][row][real]
            record["adversarial_attention"] = adversary.tolist() if found else None
            record["adversarial_max_jsd"] = float(results["adversarial_max_jsd"][row])
            record["adversarial_tvd"] = float(results["adversarial_selected_tvd"][row])
        records.append(record)
    return records


def _batch_shape(batch: dict) -> tuple:
    return (batch["token_ids"].shape, batch.get("question_ids", np.zeros(0)).shape)


def _timed_compile(auditor: BatchAuditor, batch: dict, program: tuple[str, ...]) -> float:
    start = time.perf_counter()
    auditor.compile(batch, program)
    return time.perf_counter() - start


def audit_boundaries(split: data.EncodedSplit, num_buckets: int) -> tuple[int, ...]:
    """The audit's bucket widths for ``split`` (text and question lengths alike)."""
    lengths = [len(ids) for ids in split.token_ids]
    if split.question_ids is not None:
        lengths += [len(ids) for ids in split.question_ids]
    return data.fewest_padded_boundaries(lengths, num_buckets)


def _check_options(out_dir: pathlib.Path, options: AuditOptions) -> None:
    saved_path = out_dir / "audit_config.json"
    wanted = options.to_dict()
    if saved_path.exists():
        saved = json.loads(saved_path.read_text())
        if saved != wanted:
            raise ValueError(
                f"{out_dir} holds an audit with other options:\n  saved:     {saved}\n  "
                f"requested: {wanted}\nDelete {out_dir} to start over, or repeat the saved "
                "options to resume."
            )
    else:
        out_dir.mkdir(parents=True, exist_ok=True)
        saved_path.write_text(json.dumps(wanted, indent=2))


def run_audit(
    model, params, split: data.EncodedSplit, boundaries, out_dir, options: AuditOptions,
    program_cache=None,
) -> tuple[list[dict], dict]:  # fmt: skip
    """Audits every instance of ``split`` (after ``options.limit``), resuming if possible.

    Args:
      model: an ``AuditableModel``; params: its parameters.
      split: the encoded split.
      boundaries: bucket widths covering the split, or None for the audit's own
        (``audit_boundaries(split, options.num_buckets)``, the default of the commands).
      out_dir: where ``audit_config.json``, ``parts/`` and ``records.jsonl`` go.
      options: what to run.
      program_cache: optional ``exported.ProgramCache`` (see ``BatchAuditor``).

    Returns:
      ``(records in data order, timings)``; timings has ``wall_seconds`` (the audit from
      its first batch to its last), ``compile_seconds`` (compiling or loading the
      programs, summed over shapes and threads), ``compile_wait_seconds`` (the part of
      the wall time the audit waited for a program), ``run_seconds`` (running the
      batches and writing their records), ``boundaries``, ``shapes`` and ``batches``.
    """
    import jax  # only here: keeps `import attn_audit.audits.runner` light for the report

    out_dir = pathlib.Path(out_dir)
    _check_options(out_dir, options)
    split = first_instances(split, options.limit)
    if boundaries is None:
        boundaries = audit_boundaries(split, options.num_buckets)
    parts = out_dir / "parts"
    parts.mkdir(exist_ok=True)
    auditor = BatchAuditor(
        model, params, options.audits, jax.random.key(options.seed), options.adversary,
        options.num_permutations, program_cache,
    )  # fmt: skip
    batch_size = -(-options.batch_size // auditor.num_devices) * auditor.num_devices
    plan = list(data.batches(split, batch_size, tuple(boundaries)))
    todo = [b for b in range(len(plan)) if not (parts / f"{b:05d}.jsonl").exists()]
    if len(todo) < len(plan):
        logging.info(
            "Resuming: %d of %d batches already audited.", len(plan) - len(todo), len(plan)
        )
    start = time.perf_counter()
    first_of_shape = {}
    for number in todo:
        first_of_shape.setdefault(_batch_shape(plan[number]), plan[number])
    # Every (shape, program) pair compiles once, in the order the audit meets the shapes.
    compiler = concurrent.futures.ThreadPoolExecutor(COMPILE_THREADS, "compile")
    compiling = {
        shape: [compiler.submit(_timed_compile, auditor, batch, p) for p in auditor.programs]
        for shape, batch in first_of_shape.items()
    }  # fmt: skip
    compiler.shutdown(wait=False)
    timings = {"compile_wait_seconds": 0.0, "run_seconds": 0.0}
    try:
        done = 0
        for number in todo:
            batch = plan[number]
            shape = _batch_shape(batch)
            waiting = time.perf_counter()
            concurrent.futures.wait(compiling[shape])
            timings["compile_wait_seconds"] += time.perf_counter() - waiting
            batch_start = time.perf_counter()
            results = auditor(batch)
            records = batch_records(batch, results, split)
            temporary = parts / f"{number:05d}.jsonl.tmp"
            write_records(temporary, records)
            os.replace(temporary, parts / f"{number:05d}.jsonl")
            timings["run_seconds"] += time.perf_counter() - batch_start
            done += int((batch["index"] >= 0).sum())
            rate = done / (time.perf_counter() - start)
            remaining = sum(int((plan[b]["index"] >= 0).sum()) for b in todo) - done
            logging.info(
                "audited batch %d/%d (length %d): %d instances, %.1f instances/s, ETA %s",
                number + 1, len(plan), batch["token_ids"].shape[1], done, rate,
                format_duration(remaining / rate if rate else 0.0),
            )  # fmt: skip
    except BaseException:  # an error or an interrupt: compile nothing more for this audit
        for futures in compiling.values():
            for future in futures:
                future.cancel()
        raise
    timings["wall_seconds"] = time.perf_counter() - start
    # A compilation that failed is raised again by its batch's audit; none is left here.
    compile_seconds = [f.result() for futures in compiling.values() for f in futures]
    timings.update(
        compile_seconds=sum(compile_seconds), boundaries=list(boundaries),
        shapes=len(first_of_shape), batches=len(todo),
    )  # fmt: skip
    records = []
    for number in range(len(plan)):
        records += read_records(parts / f"{number:05d}.jsonl")
    records.sort(key=lambda r: r["index"])
    write_records(out_dir / "records.jsonl", records)
    return records, timings
