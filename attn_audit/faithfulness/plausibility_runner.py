"""Plausibility of a run's explanations (SPEC §9): read what ``experiments.explain`` (and the
audit's leave-one-out) wrote for a split, score it against the examples' evidence, and write
``WORKDIR/plausibility/<split>/`` (records, summary JSON and Markdown)."""

import pathlib

from attn_audit.data import Example
from attn_audit.faithfulness.plausibility import score_records
from attn_audit.report.fields import explanation_fields
from attn_audit.report.plausibility_summary import plausibility_markdown, summarize_plausibility
from attn_audit.report.records import read_records, summary_json, write_records


def explanation_records(workdir: pathlib.Path, split: str) -> tuple[list[dict], list[str]]:
    """The run's explanations of ``split``, one record per instance, and their names:
    every explainer's scores, and the audit's leave-one-out as ``loo`` when audited."""
    folder = workdir / "explain" / split
    if not (folder / "records.jsonl").exists():
        raise FileNotFoundError(
            f"{folder / 'records.jsonl'} does not exist: explain the split first, "
            f"python -m experiments.explain --workdir={workdir} --split={split}"
        )
    records = read_records(folder / "records.jsonl")
    names = explanation_fields(records)
    audit = workdir / "audit" / split / "records.jsonl"
    if audit.exists():
        loo = {r["index"]: r.get("loo") for r in read_records(audit)}
        if any(value is not None for value in loo.values()):
            records = [{**r, "loo": loo.get(r["index"])} for r in records]
            names.append("loo")
    return records, names


def evidence_of(records: list[dict], examples: list[Example]) -> list[tuple[int, ...]]:
    """Each record's evidence, from the example it was made from (``record["index"]``).

    Raises:
      ValueError: the split carries no evidence, or a record's tokens are not its example's
        (the explanations were made from other data).
    """
    if all(example.evidence is None for example in examples):
        raise ValueError(
            "The split carries no evidence to judge against (SST's word labels and the "
            "planted tasks, planted:<task>, have it)."
        )
    evidence = []
    for record in records:
        example = examples[record["index"]]
        if list(example.tokens) != record["tokens"]:
            raise ValueError(
                f"Record {record['id']} (index {record['index']}) holds other tokens than "
                f"the data set's instance {example.id}: the explanations were made from "
                "other data; explain the split again."
            )
        evidence.append(example.evidence)
    return evidence


def run_plausibility(
    workdir: pathlib.Path, split: str, examples: list[Example], provenance: dict, seed: int = 0
) -> tuple[list[dict], dict]:
    """Scores the run's explanations of ``split`` against ``examples``' evidence and writes
    ``workdir/plausibility/<split>/{records.jsonl, summary.json, summary.md}``.

    Returns:
      ``(per-instance records, summary)`` (``score_records``, ``summarize_plausibility``).
    """
    records, names = explanation_records(workdir, split)
    scored = score_records(records, evidence_of(records, examples), names)
    out_dir = workdir / "plausibility" / split
    data = {**provenance.get("data", {}), "instances": len(scored)}
    provenance = {**provenance, "data": data}
    write_records(out_dir / "records.jsonl", scored)
    summary = summarize_plausibility(scored, names, provenance, seed)
    (out_dir / "summary.json").write_text(summary_json(summary))
    (out_dir / "summary.md").write_text(plausibility_markdown(summary))
    return scored, summary
