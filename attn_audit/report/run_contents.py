"""What a run folder holds for one split, read for the report page without recomputing.

A run folder (``experiments.train``'s ``--workdir``) gathers, per split, the outputs of
``experiments.audit`` (``audit/<split>/``, with ``views/`` for transformers),
``experiments.explain`` (``explain/<split>/``) and ``experiments.faithfulness``
(``faithfulness/<split>/{metrics,randomisation}/``). Any of them may be missing, still
running (only ``parts/`` written) or damaged (a line that is not a JSON object); the reader
keeps every record it can and says, in ``problems``, what is missing and why, so the page
states it instead of going blank.
"""

import dataclasses
import json
import pathlib

from attn_audit.report.records import read_records


@dataclasses.dataclass
class RecordSet:
    """The records of one job (audit, explain, faithfulness metrics, ...) of a split.

    Attributes:
      folder: where the job writes (``records.jsonl``, ``parts/``, ``summary.json``).
      records: the records that could be read, in data order (by ``index``).
      summary: the job's ``summary.json``, or None when it is absent or unreadable.
      complete: whether ``records.jsonl`` was read whole (the job finished).
      expected: how many instances the job planned, when its plan says (None otherwise).
    """

    folder: pathlib.Path
    records: list[dict]
    summary: dict | None
    complete: bool
    expected: int | None = None


@dataclasses.dataclass
class RunContents:
    """Everything the report page shows of ``workdir`` for ``split``.

    Attributes:
      workdir, split: the run folder and split.
      config: the run's ``config.json`` (model, data, training), or {} when unreadable.
      metrics: the run's ``metrics.json`` (per-epoch and test metrics), or {}.
      audit, explain, faithfulness, randomisation, views: each a ``RecordSet`` or None when
        the job never wrote to this split.
      plausibility: ``experiments.plausibility``'s summary, or None.
      problems: sentences naming what is missing, partial or damaged, and what to run.
    """

    workdir: pathlib.Path
    split: str
    config: dict
    metrics: dict
    audit: RecordSet | None
    explain: RecordSet | None
    faithfulness: RecordSet | None
    randomisation: RecordSet | None
    views: RecordSet | None
    problems: list[str]
    plausibility: dict | None = None

    @property
    def label_names(self) -> list[str]:
        names = self.config.get("data", {}).get("label_names")
        if names:
            return list(names)
        labels = [r.get("label", 0) for s in self.jobs() for r in s.records]
        return [str(c) for c in range(max(labels, default=0) + 1)]

    def jobs(self) -> list[RecordSet]:
        return [s for s in (self.audit, self.explain, self.faithfulness) if s is not None]


def _read_json(path: pathlib.Path, problems: list[str], what: str) -> dict | None:
    if not path.exists():
        return None
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        problems.append(f"{what} {path} is not valid JSON ({error}); it is left out.")
        return None
    if not isinstance(value, dict):
        problems.append(f"{what} {path} holds a JSON {type(value).__name__}, not an object.")
        return None
    return value


def read_records_tolerant(path: pathlib.Path) -> tuple[list[dict], list[str]]:
    """Every record of ``path``, and a sentence per line that is not one (left out), so a
    page of a damaged run still shows the rest."""
    problems: list[str] = []
    records = []
    for record in read_records(path, skipped=problems):
        if isinstance(record.get("index"), int):
            records.append(record)
        else:
            problems.append(f"{path}: a record without an integer 'index' is left out.")
    return records, problems


def read_record_set(
    folder: pathlib.Path, job: str, command: str, summary_file: pathlib.Path | None
) -> tuple[RecordSet | None, list]:
    """The records of the job writing to ``folder``, finished or not, and its problems.

    ``summary_file`` is where the job's summary is (None: it has none of its own).
    Returns ``(None, [])`` when the folder does not exist (the job was never run).
    """
    if not folder.is_dir():
        return None, []
    problems = []
    summary = summary_file and _read_json(summary_file, problems, f"The {job} summary")
    final = folder / "records.jsonl"
    parts = folder / "parts"
    plan = _read_json(parts / "plan.json", problems, f"The {job} plan")
    expected = sum(len(batch) for batch in plan["batches"]) if plan else None
    if final.exists():
        records, bad = read_records_tolerant(final)
        problems += bad
        complete = not bad
    else:
        records = []
        for part in sorted(parts.glob("[0-9]*.jsonl")) if parts.is_dir() else []:
            found, bad = read_records_tolerant(part)
            records += found
            problems += bad
        complete = False
        if expected is None:
            problems.append(
                f"The {job} in {folder} has no records.jsonl: it has not finished. "
                f"Run {command} again to finish it (it resumes)."
            )
        else:
            problems.append(
                f"The {job} in {folder} has not finished: {len(records)} of {expected} "
                f"instances are written (the page shows those). Run {command} again to finish "
                "it (it resumes)."
            )
    if records and summary_file is not None and summary is None and complete:
        problems.append(
            f"The {job} in {folder} has records but no {summary_file.name}; "
            f"run {command} again to write it."
        )
    records.sort(key=lambda record: record["index"])
    return RecordSet(folder, records, summary, complete, expected), problems


def read_run(workdir, split: str = "test") -> RunContents:
    """Reads what ``workdir`` holds for ``split`` (see the module docstring).

    Raises:
      FileNotFoundError: ``workdir`` does not exist or holds nothing of ``split`` to show.
    """
    workdir = pathlib.Path(workdir)
    if not workdir.is_dir():
        raise FileNotFoundError(
            f"Run folder {workdir} does not exist; pass the --workdir of experiments.train."
        )
    problems: list[str] = []
    config = _read_json(workdir / "config.json", problems, "The run's config") or {}
    metrics = _read_json(workdir / "metrics.json", problems, "The run's metrics") or {}
    where = f"--workdir={workdir} --split={split}"
    audit, faithfulness = workdir / "audit" / split, workdir / "faithfulness" / split
    rerun = {
        job: f"python -m experiments.{job} {where}" for job in ("audit", "explain", "faithfulness")
    }
    jobs = {  # job: (folder, command that writes it, its summary)
        "audit": (audit, rerun["audit"], audit / "summary.json"),
        "explain": (
            workdir / "explain" / split,
            rerun["explain"],
            workdir / "explain" / split / "summary.json",
        ),
        "faithfulness": (
            faithfulness / "metrics",
            rerun["faithfulness"],
            faithfulness / "summary.json",
        ),
        "randomisation": (faithfulness / "randomisation", rerun["faithfulness"], None),
        "views": (
            audit / "views",
            f"{rerun['audit']} --attention_views=...",
            audit / "views" / "views.json",
        ),
    }
    found = {}
    for job, (folder, command, summary_file) in jobs.items():
        found[job], job_problems = read_record_set(folder, job, command, summary_file)
        problems += job_problems
    if found["explain"] is None and (faithfulness / "explain").is_dir():
        # experiments.faithfulness explained the instances itself
        found["explain"], job_problems = read_record_set(
            faithfulness / "explain", "explain", rerun["faithfulness"], None
        )
        problems += job_problems
    if not any(found[job] for job in ("audit", "explain", "faithfulness")):
        raise FileNotFoundError(
            f"{workdir} holds no audit, explanations or faithfulness results for split "
            f"{split!r} (looked for audit/{split}, explain/{split}, faithfulness/{split}); run "
            f"python -m experiments.audit {where} first."
        )
    plausibility = _read_json(
        workdir / "plausibility" / split / "summary.json", problems, "The plausibility summary"
    )
    return RunContents(
        plausibility=plausibility,
        workdir=workdir,
        split=split,
        config=config,
        metrics=metrics,
        problems=problems,
        **found,
    )
