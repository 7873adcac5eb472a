"""Runs compiled programs over a split, batch by batch, into per-instance records, resumably.

Shared by every job (``audits.runner``, ``audits.views``, ``explainers.runner``,
``faithfulness.runner``). An engine is a ``batch_engine.BatchEngine``, or any object with

- ``programs``: the names of its compiled programs, in the order they run;
- ``compile(batch, program)``: compiles (or loads) ``program`` at ``batch``'s shape;
- ``__call__(batch)``: runs every program on the batch, returns host arrays.

Each finished batch is written at once to ``<out>/parts/<batch>.jsonl`` (a
temporary file, then a rename), so an interrupted run loses at most the batch in
flight; running the same command again skips the batches that have a part. At the
end the parts are merged, in data order, into ``<out>/records.jsonl``. Randomness
is keyed per instance, so a resumed run writes the same records.

Compilation is reported apart: two threads compile every (shape, program) in the
order the run meets the shapes, while the main thread runs the batches whose
programs are ready (XLA compiles with the interpreter lock released).
"""

import concurrent.futures
import dataclasses
import json
import logging
import os
import pathlib
import shutil
import time
from collections.abc import Callable

import numpy as np

from attn_audit import data
from attn_audit._progress import format_duration
from attn_audit.batch_engine import program_name
from attn_audit.folder_lock import folder_lock
from attn_audit.report.records import read_records, write_records

# Threads that compile programs: two cores' worth (the main thread runs batches).
COMPILE_THREADS = 2


class NonFiniteError(ValueError):
    """A prediction or score of an instance is NaN or infinite; the message names it."""


def require_finite(instance: dict, values: dict) -> None:
    """Raises ``NonFiniteError`` if a value (a number, or nested lists of them) is NaN or ±inf.

    ``None`` means undefined and passes (e.g. a τ of one token). Called on each record before
    its batch is written, so the run stops at the batch where the problem appears.

    Args:
      instance: the record, for its ``id`` and ``index``.
      values: field name → value to check.
    """
    for field, value in values.items():
        if value is None:
            continue
        numbers = np.asarray(value, dtype=float)
        if not np.isfinite(numbers).all():
            shown = np.array2string(numbers.ravel()[:8], precision=4, separator=", ")
            raise NonFiniteError(
                f"Instance {instance['id']!r} (index {instance['index']}) has a non-finite "
                f"{field}: {shown}{' …' if numbers.size > 8 else ''}. Its batch was not "
                "written. The model's parameters or this input hold NaN or inf: check the run "
                "folder's checkpoint (training.load_run verifies it), or retrain the model."
            )


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """What every batch run over a split has: the job's options extend it (``AuditOptions``,
    ``ExplainOptions``); saved in the output folder and checked on resume (``check_options``).

    Attributes:
      split: the split's name; seed: the run's seed (its random roles split from it).
      batch_size: rows per batch (rounded up to the devices); limit: the first N instances.
      num_buckets: padded widths fitted to the split (one compiled program each).
    """

    split: str = "test"
    seed: int = 0
    batch_size: int = 32
    limit: int | None = None
    num_buckets: int = 2


def record_header(split: data.EncodedSplit, row: int, probabilities: np.ndarray) -> dict:
    """The fields every per-instance record starts with: ``id``, ``index`` (the instance's
    number, ``split.index[row]``), ``tokens``, ``label``, ``prediction`` (the class
    probabilities ``[C]``), ``predicted_class``, ``question`` for QA/NLI instances and
    ``evidence`` where the data set marks it (SST). ``row``: the position in ``split``."""
    example = split.examples[row]
    record = {
        "id": example.id,
        "index": int(split.index[row]),
        "tokens": list(example.tokens),
        "label": int(split.labels[row]),
        "prediction": probabilities.tolist(),
        "predicted_class": int(np.argmax(probabilities)),
    }
    if example.question is not None:
        record["question"] = list(example.question)
    if example.evidence is not None:
        record["evidence"] = list(example.evidence)
    return record


def first_instances(split: data.EncodedSplit, limit: int | None) -> data.EncodedSplit:
    """The instances of ``split`` numbered below ``limit`` (all if ``limit`` is None): the
    first ``limit`` of a whole split, or of a process's share those among the first."""
    if limit is None:
        return split
    if limit < 1:
        raise ValueError(f"--limit must be at least 1, got {limit}.")
    if split.index.size == 0 or split.index.max() < limit:
        return split
    return data.subset_split(split, np.flatnonzero(split.index < limit))


def split_boundaries(
    split: data.EncodedSplit, num_buckets: int, batch_size: int | None = None,
    multiple: int = 8,
) -> tuple[int, ...]:  # fmt: skip
    """Padded widths fitted to ``split`` (text and question lengths alike), one program each;
    with ``batch_size``, no more widths than the split fills batches of that size; every
    width a multiple of ``multiple``.

    In a job of several processes (``attn_audit.distributed``), ``split`` is this process's
    share and the widths are fitted to every process's lengths, so each process pads as a
    single process running the whole split would (and writes the same records).
    """
    from attn_audit import distributed  # only here: keeps this module free of JAX

    lengths = [len(ids) for ids in split.token_ids]
    if split.question_ids is not None:
        lengths += [len(ids) for ids in split.question_ids]
    every = distributed.all_gather("split lengths", np.asarray(lengths, np.int64))
    if batch_size is not None:
        instances = sum(len(found) for found in every) // (1 + (split.question_ids is not None))
        num_buckets = min(num_buckets, -(-instances // batch_size))
    return data.fewest_padded_boundaries(np.concatenate(every), num_buckets, multiple)


def check_options(out_dir: pathlib.Path, options: dict, file_name: str) -> None:
    """Saves ``options`` as ``out_dir/file_name``, or checks them against the saved ones."""
    saved_path = out_dir / file_name
    if saved_path.exists():
        saved = json.loads(saved_path.read_text())
        if saved != options:
            raise ValueError(
                f"{out_dir} holds a run with other options:\n  saved:     {saved}\n  "
                f"requested: {options}\nDelete {out_dir} to start over, or repeat the saved "
                "options to resume."
            )
    else:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomically(saved_path, json.dumps(options, indent=2, allow_nan=False))


def write_text_atomically(path: pathlib.Path, text: str) -> None:
    """Writes ``path`` through a temporary file and a rename: a reader (another process of
    the same job) sees the old file or the new one, never a part."""
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def _batch_shape(batch: dict) -> tuple:
    return (batch["token_ids"].shape, batch.get("question_ids", np.zeros(0)).shape)


def _timed_compile(engine, batch: dict, program) -> float:
    start = time.perf_counter()
    engine.compile(batch, program)
    return time.perf_counter() - start


def run_batches(
    engine, split: data.EncodedSplit, boundaries, batch_size: int, out_dir: pathlib.Path,
    make_records: Callable[[dict, dict], list[dict]], balanced: bool = True,
) -> tuple[list[dict], dict]:  # fmt: skip
    """Runs ``engine`` on every batch of ``split`` padded to ``boundaries``; resumes.

    Args:
      engine: see the module docstring.
      split: the encoded split (already limited).
      boundaries: the padded widths.
      batch_size: rows per batch at most (a multiple of the engine's devices); each
        bucket's batches are balanced (``data.batching.balanced_rows``).
      out_dir: where ``parts/`` and ``records.jsonl`` go.
      make_records: ``(batch, results) -> records`` of the batch's real rows.
      balanced: False: every batch has ``batch_size`` rows (a stream of chunks then meets
        fewer shapes) instead of ``data.batching.balanced_rows``.

    Returns:
      ``(records in data order, timings)``; timings has ``wall_seconds`` (first batch to
      last), ``compile_seconds`` (compiling or loading programs, summed over shapes and
      threads; ``program_compile_seconds``: per program), ``compile_wait_seconds`` (the
      part of the wall time spent waiting for a program), ``run_seconds`` (running the
      batches and writing their records), ``boundaries``, ``shapes`` and ``batches``, all of
      this process; ``runs``: every process's timings that worked on ``out_dir`` (oldest
      first, this one last; saved in ``out_dir/timings.jsonl``), so a resumed run still
      says what the whole took.

    In a job of several processes (``attn_audit.distributed``), ``split`` is this process's
    share; its parts go to ``parts/process-<id>-of-<n>/`` (with its own plan and timings),
    and once every process is done, process 0 merges every process's parts into
    ``records.jsonl`` and returns all records (with ``timings["processes"]``: each
    process's runs); the others return their own.

    Raises:
      FolderBusyError: another process is writing ``out_dir`` (``folder_lock``; in a job of
        several processes, this process's parts folder).
    """
    from attn_audit import distributed  # only here: keeps this module free of JAX

    out_dir = pathlib.Path(out_dir)
    parts = process_parts(out_dir, distributed.process_index(), distributed.process_count())
    alone = distributed.process_count() == 1
    with folder_lock(out_dir if alone else parts):
        records, timings = _run_batches(engine, split, boundaries, batch_size, parts,
                                        make_records, balanced)  # fmt: skip
        if alone:
            write_records(out_dir / "records.jsonl", records)
    if alone:
        return records, timings
    distributed.barrier(f"{out_dir} batches done")
    if distributed.process_index() != 0:
        return records, timings
    records, timings["processes"] = [], []
    for process in range(distributed.process_count()):
        folder = process_parts(out_dir, process, distributed.process_count())
        records += _merged_parts(folder)
        timings["processes"].append(_logged_timings(folder / "timings.jsonl", None))
    records.sort(key=lambda r: r["index"])
    write_records(out_dir / "records.jsonl", records)
    return records, timings


# A streamed corpus pads each chunk to widths that are multiples of this: the chunks then
# meet a few widths (programs) between them, not a new one each.
CHUNK_WIDTH_MULTIPLE = 16


def run_chunks(
    engine, chunks, num_buckets: int, batch_size: int, out_dir: pathlib.Path,
    make_records: Callable[[data.EncodedSplit], Callable[[dict, dict], list[dict]]],
) -> dict:  # fmt: skip
    """Runs ``engine`` over a corpus read in chunks; only a chunk's records are ever in memory.

    Each chunk runs through ``run_batches`` into ``out_dir/chunks/<first text>/`` (so it
    resumes batch by batch, and a finished chunk is skipped without being encoded), at
    widths fitted to the chunk (multiples of ``CHUNK_WIDTH_MULTIPLE``) and in batches of
    ``batch_size`` rows; its parts are deleted once its ``records.jsonl`` is written. Then
    the chunks' records are copied, in order, into ``out_dir/records.jsonl``. In a job of
    several processes each process runs its share of every chunk (``encode`` gives it).

    Args:
      engine: as for ``run_batches``.
      chunks: ``(first text number, encode)`` pairs in corpus order; ``encode()`` gives the
        chunk's ``EncodedSplit`` (this process's share), numbered from the first text.
      num_buckets, batch_size: per chunk.
      out_dir: the run's folder.
      make_records: ``split -> (batch, results) -> records``.

    Returns:
      ``{"instances", "chunks", "runs"}``: texts and chunks done, and each chunk's timings
      from this process (those it ran now).
    """
    from attn_audit import distributed

    out_dir = pathlib.Path(out_dir)
    instances, folders, runs = 0, [], []
    for first, encode in chunks:
        folder = out_dir / "chunks" / f"{first:012d}"
        folders.append(folder)
        done = folder / "records.jsonl"
        if done.exists():
            with open(done, "rb") as f:
                instances += sum(1 for _ in f)
            continue
        split = encode()
        boundaries = split_boundaries(split, num_buckets, multiple=CHUNK_WIDTH_MULTIPLE)
        records, timings = run_batches(engine, split, boundaries, batch_size, folder,
                                       make_records(split), balanced=False)  # fmt: skip
        runs.append({name: timings[name] for name in
                     ("wall_seconds", "compile_seconds", "compile_wait_seconds", "run_seconds",
                      "boundaries", "batches")})  # fmt: skip
        instances += len(records) if distributed.process_index() == 0 else 0
        if distributed.process_index() == 0:
            shutil.rmtree(folder / "parts", ignore_errors=True)
    distributed.barrier(f"{out_dir} chunks done")
    if distributed.process_index() == 0:
        temporary = out_dir / "records.jsonl.tmp"
        with open(temporary, "wb") as merged:
            for folder in folders:
                with open(folder / "records.jsonl", "rb") as part:
                    shutil.copyfileobj(part, merged)
        os.replace(temporary, out_dir / "records.jsonl")
    return {"instances": instances, "chunks": len(folders), "runs": runs}


def process_parts(out_dir: pathlib.Path, process: int, num_processes: int) -> pathlib.Path:
    """Where a process of a job writes its finished batches: ``out_dir/parts`` in a job of
    one process, else ``out_dir/parts/process-<id>-of-<n>``."""
    if num_processes == 1:
        return out_dir / "parts"
    return out_dir / "parts" / f"process-{process:05d}-of-{num_processes:05d}"


def _merged_parts(parts: pathlib.Path) -> list[dict]:
    """The records of every batch of ``parts``' plan, in data order; a RuntimeError if a
    batch is missing or holds other instances."""
    plan = parts / "plan.json"
    if not plan.exists():
        raise RuntimeError(f"{parts} has no plan.json: its process did not start its batches.")
    batches = json.loads(plan.read_text())["batches"]
    records = []
    for number in range(len(batches)):
        part = parts / f"{number:05d}.jsonl"
        if not part.exists():
            raise RuntimeError(f"{part} is missing: its process did not finish; run again.")
        records += read_records(part)
    records.sort(key=lambda r: r["index"])
    expected = sorted(i for batch in batches for i in batch)
    if [r["index"] for r in records] != expected:
        raise RuntimeError(
            f"The parts in {parts} hold {len(records)} records for the {len(expected)} "
            f"instances of its plan; delete the folder and run again ({parts.parent})."
        )
    return records


def check_split(split: data.EncodedSplit) -> None:
    """Raises ValueError, naming the instance, if ``split`` cannot be run: lists of different
    lengths, or an instance without a token between its first and last id (SOS/EOS, or a
    transformer's CLS/SEP)."""
    counts = {"examples": len(split.examples), "token_ids": len(split.token_ids),
              "labels": len(split.labels)}  # fmt: skip
    if split.question_ids is not None:
        counts["question_ids"] = len(split.question_ids)
    if len(set(counts.values())) > 1:
        raise ValueError(f"The split's lists differ in length ({counts}); build it with "
                         "data.encode_split or data.wordpiece.split_encoder.")  # fmt: skip
    for index, ids in enumerate(split.token_ids):
        if len(ids) < 3:
            raise ValueError(
                f"Instance {split.examples[index].id!r} (index {index}) has no token between "
                "its start and end ids: there is nothing to attend to or explain. Drop it from "
                "the split (the data loaders drop empty texts)."
            )


def _run_batches(engine, split, boundaries, batch_size, parts, make_records, balanced):
    check_split(split)
    parts.mkdir(parents=True, exist_ok=True)
    # Balanced: a bucket's batches share its instances evenly (one shape per bucket still),
    # so its last batch is not mostly padding rows, which cost as much as real ones.
    devices = getattr(engine, "num_devices", 1) if balanced else None
    counts = _whole_bucket_counts(split, boundaries) if balanced else None
    plan = list(data.batches(split, batch_size, tuple(boundaries), balanced_multiple=devices,
                             bucket_counts=counts))  # fmt: skip
    _check_plan(parts, plan, boundaries, batch_size)
    todo = [b for b in range(len(plan)) if not (parts / f"{b:05d}.jsonl").exists()]
    if len(todo) < len(plan):
        logging.info("Resuming: %d of %d batches already done.", len(plan) - len(todo), len(plan))
    start = time.perf_counter()
    first_of_shape = {}
    for number in todo:
        first_of_shape.setdefault(_batch_shape(plan[number]), plan[number])
    compiler = concurrent.futures.ThreadPoolExecutor(COMPILE_THREADS, "compile")
    compiling = {
        shape: [compiler.submit(_timed_compile, engine, batch, p) for p in engine.programs]
        for shape, batch in first_of_shape.items()
    }  # fmt: skip
    compiler.shutdown(wait=False)
    timings = {"compile_wait_seconds": 0.0, "run_seconds": 0.0}
    total = sum(int((plan[b]["index"] >= 0).sum()) for b in todo)
    try:
        done = 0
        for number in todo:
            batch = plan[number]
            waiting = time.perf_counter()
            concurrent.futures.wait(compiling[_batch_shape(batch)])
            timings["compile_wait_seconds"] += time.perf_counter() - waiting
            batch_start = time.perf_counter()
            records = make_records(batch, engine(batch))
            temporary = parts / f"{number:05d}.jsonl.tmp"
            write_records(temporary, records)
            os.replace(temporary, parts / f"{number:05d}.jsonl")
            timings["run_seconds"] += time.perf_counter() - batch_start
            done += int((batch["index"] >= 0).sum())
            rate = done / (time.perf_counter() - start)
            logging.info(
                "batch %d/%d (length %d): %d instances, %.1f instances/s, ETA %s",
                number + 1, len(plan), batch["token_ids"].shape[1], done, rate,
                format_duration((total - done) / rate if rate else 0.0),
            )  # fmt: skip
    except BaseException:  # an error or an interrupt: compile nothing more for this run
        for futures in compiling.values():
            for future in futures:
                future.cancel()
        raise
    timings["wall_seconds"] = time.perf_counter() - start
    # A compilation that failed is raised again by its batch's run; none is left here.
    by_program = dict.fromkeys(map(program_name, engine.programs), 0.0)
    for futures in compiling.values():
        for program, future in zip(engine.programs, futures, strict=True):
            by_program[program_name(program)] += future.result()
    timings.update(
        compile_seconds=sum(by_program.values()), program_compile_seconds=by_program,
        boundaries=list(boundaries), shapes=len(first_of_shape), batches=len(todo),
    )  # fmt: skip
    records = _merged_parts(parts)
    log = parts.parent / "timings.jsonl" if parts.name == "parts" else parts / "timings.jsonl"
    timings["runs"] = _logged_timings(log, timings)
    return records, timings


def _whole_bucket_counts(split: data.EncodedSplit, boundaries) -> dict:
    """Instances per bucket in the whole split: summed over every process of the job
    (``attn_audit.distributed``), so each one's batches have a single process's rows."""
    from attn_audit import distributed
    from attn_audit.data.batching import bucket_keys, bucket_members

    keys = bucket_keys(tuple(boundaries), split.question_ids is not None)
    members = bucket_members(split, tuple(boundaries))
    counts = np.asarray([len(members.get(key, ())) for key in keys], np.int64)
    total = np.sum(distributed.all_gather("bucket counts", counts), axis=0)
    return {key: int(count) for key, count in zip(keys, total, strict=True)}


def _logged_timings(log: pathlib.Path, timings: dict | None) -> list[dict]:
    """Appends this process's ``timings`` to ``log`` (if it ran a batch); returns every run's."""
    if timings is not None and timings["batches"]:
        with open(log, "a") as f:
            f.write(json.dumps(timings, allow_nan=False) + "\n")
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def _check_plan(parts: pathlib.Path, plan: list[dict], boundaries, batch_size: int) -> None:
    """Saves which instances each batch holds, or checks that the saved parts were made by
    the same plan: a part is named by its batch number, so parts of another batching (other
    widths or batch size, from another version of the code) must not be resumed."""
    content = {
        "boundaries": [int(b) for b in boundaries], "batch_size": int(batch_size),
        "batches": [[int(i) for i in batch["index"] if i >= 0] for batch in plan],
    }  # fmt: skip
    saved = parts / "plan.json"
    if saved.exists():
        if json.loads(saved.read_text()) != content:
            raise ValueError(
                f"{parts} holds batches of another plan (other widths or batch size, or "
                f"another version of attn_audit); delete {parts.parent} to start over."
            )
        return
    for number, indices in enumerate(content["batches"]):  # parts written before plan.json
        part = parts / f"{number:05d}.jsonl"
        if part.exists() and [r["index"] for r in read_records(part)] != indices:
            raise ValueError(
                f"{part} holds other instances than batch {number} of this run (parts of "
                f"another plan); delete {parts.parent} to start over."
            )
    saved.write_text(json.dumps(content, allow_nan=False))
