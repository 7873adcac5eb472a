"""An explainer run over a split: batches → explainers → per-instance records, resumable.

Like the audits (``audits.runner``), through ``attn_audit.batch_runner``: parts are
written as batches finish, the same command resumes, compilation runs on two threads
and is reported apart, per program.
"""

import dataclasses
import pathlib

import numpy as np

from attn_audit import data
from attn_audit.batch_engine import rounded_batch_size
from attn_audit.batch_runner import (
    RunOptions,
    check_options,
    first_instances,
    record_header,
    require_finite,
    run_batches,
    split_boundaries,
)
from attn_audit.data import wordpiece
from attn_audit.explainers.engine import DEFAULT_EXPLAINERS, BatchExplainer, ExplainerSettings


@dataclasses.dataclass(frozen=True)
class ExplainOptions(RunOptions):
    """What to explain; saved as ``explain_config.json`` and checked on resume."""

    explainers: tuple[str, ...] = DEFAULT_EXPLAINERS
    # Perturbations cost about T² per instance: on SST's test set 4 widths do 35% less work
    # than 2 (padding included), for twice the programs to compile.
    num_buckets: int = 4
    settings: ExplainerSettings = ExplainerSettings()

    def to_dict(self) -> dict:
        content = dataclasses.asdict(self)
        content["explainers"] = list(self.explainers)
        return content


# Per-instance diagnostics of the explainers, checked finite with the scores.
_DIAGNOSTICS = ("integrated_gradients_completeness_gap", "shapley_sampling_standard_error")


def explanation_records(
    batch: dict, results: dict, split: data.EncodedSplit, explainers: tuple[str, ...]
) -> list[dict]:
    """One record per real row of ``batch``.

    Fields: ``id``, ``index``, ``tokens``, ``label``, ``prediction`` (probabilities),
    ``predicted_class``, ``question`` (QA/NLI), one score list per explainer over the real
    tokens (``shapley_exact``: null for an instance over ``shapley_max_tokens``),
    ``integrated_gradients_completeness_gap`` and ``shapley_sampling_standard_error``.
    """
    records = []
    for row in np.flatnonzero(batch["index"] >= 0):
        position = int(batch["row"][row])
        example = split.examples[position]
        real = slice(1, int(batch["lengths"][row]) - 1)
        record = record_header(split, position, results["probabilities"][row])
        for name in explainers:
            record[name] = results[name][row][real].tolist()
        if "shapley_exact" in explainers and not results["shapley_exact_done"][row]:
            record["shapley_exact"] = None
        if "integrated_gradients" in explainers:
            gap = results["integrated_gradients_completeness_gap"][row]
            record["integrated_gradients_completeness_gap"] = float(gap)
        if "shapley_sampling" in explainers:
            error = results["shapley_sampling_standard_error"][row][real]
            record["shapley_sampling_standard_error"] = error.tolist()
        require_finite(record, {field: record.get(field) for field in
                                ("prediction", *explainers, *_DIAGNOSTICS)})  # fmt: skip
        if example.word_index is not None:  # word-piece models: each score per word too
            record.update(_word_scores(record, example, explainers))
        records.append(record)
    return records


def _word_scores(record: dict, example, explainers) -> dict:
    """``words``, ``word_index`` and ``word_<explainer>``: each word's pieces summed (SPEC §10)."""
    word_index = np.asarray(example.word_index, np.int64)
    fields = {"words": list(example.words), "word_index": word_index.tolist()}
    for name in explainers:
        if record.get(name) is not None:
            scores = np.asarray(record[name], np.float64)
            fields[f"word_{name}"] = wordpiece.word_scores(
                scores, word_index, len(example.words)
            ).tolist()
    return fields


def run_explain(
    model, params, split: data.EncodedSplit, boundaries, out_dir, options: ExplainOptions
) -> tuple[list[dict], dict]:
    """Explains every instance of ``split`` (after ``options.limit``), resuming if possible.

    Args:
      model: an ``AuditableModel``; params: its parameters.
      split: the encoded split.
      boundaries: padded widths, or None for widths fitted to the split
        (``options.num_buckets`` of them).
      out_dir: where ``explain_config.json``, ``parts/`` and ``records.jsonl`` go.
      options: what to run.

    Returns:
      ``(records in data order, timings)``: ``batch_runner.run_batches``' timings plus
      ``program_seconds``, each program's run time summed over the batches.
    """
    import jax  # only here: keeps `import attn_audit.explainers.runner` light

    out_dir = pathlib.Path(out_dir)
    check_options(out_dir, options.to_dict(), "explain_config.json")
    split = first_instances(split, options.limit)
    if boundaries is None:
        boundaries = split_boundaries(split, options.num_buckets)
    explainer = BatchExplainer(
        model, params, options.explainers, jax.random.key(options.seed), options.settings
    )
    batch_size = rounded_batch_size(options.batch_size, explainer.num_devices)
    records, timings = run_batches(
        explainer, split, boundaries, batch_size, out_dir,
        lambda batch, results: explanation_records(batch, results, split, explainer.explainers),
    )  # fmt: skip
    timings["program_seconds"] = dict(explainer.seconds)
    return records, timings
