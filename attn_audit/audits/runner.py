"""An audit run over a split: batches → audits → per-instance records, resumable.

The batches run through ``attn_audit.batch_runner`` (parts written as they finish,
resumed by the same command, compilation on two threads and reported apart). The
audit pads to a few widths fitted to the split's lengths (``AuditOptions.num_buckets``,
default 2; ``data.fewest_padded_boundaries``), not to the training's buckets: each
width is compiled, and for SST's test set 2 widths audit as fast as the training's 4.
"""

import dataclasses
import pathlib

import numpy as np

from attn_audit import data, stats
from attn_audit.audits.adversarial import AdversarySettings
from attn_audit.audits.engine import AUDITS, BatchAuditor
from attn_audit.batch_engine import rounded_batch_size
from attn_audit.batch_runner import (
    NonFiniteError,  # noqa: F401 (re-exported: the error a run raises)
    RunOptions,
    check_options,
    first_instances,
    record_header,
    require_finite,
    run_batches,
    run_chunks,
    split_boundaries,
)
from attn_audit.data import wordpiece
from attn_audit.models import is_real_token

TAU_PAIRS = {
    "gradient": ("attention", "gradient"),
    "loo": ("attention", "loo"),
    "gradient_loo": ("gradient", "loo"),
}


@dataclasses.dataclass(frozen=True)
class AuditOptions(RunOptions):
    """What to audit; saved as ``audit_config.json`` and checked on resume."""

    audits: tuple[str, ...] = AUDITS
    num_permutations: int = 100
    adversary: AdversarySettings = AdversarySettings()
    # Word-piece models: a word's gradient / LOO score from its pieces' ("sum" or "max");
    # attention is always summed (SPEC §10).
    word_reduction: str = "sum"

    def __post_init__(self):
        if self.word_reduction not in wordpiece.WORD_REDUCTIONS:
            raise ValueError(
                f"word_reduction must be one of {wordpiece.WORD_REDUCTIONS}; "
                f"got {self.word_reduction!r}."
            )

    def to_dict(self) -> dict:
        content = dataclasses.asdict(self)
        content["audits"] = list(self.audits)
        if self.word_reduction == "sum":  # the default: audit folders saved before it resume
            del content["word_reduction"]
        return content


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


# Record fields that must be finite numbers (null only where a field is undefined).
FINITE_FIELDS = ("prediction", "attention", "max_attention", "gradient", "loo",
                 "permutation_median_tvd", "adversarial_attention", "adversarial_max_jsd",
                 "adversarial_tvd")  # fmt: skip


def word_fields(record: dict, example, reduction: str = "sum") -> dict:
    """A word-piece record's per-word view (SPEC §10): ``words``, ``word_index`` (the word of
    each real piece), ``word_<field>`` for attention (summed: still a distribution), the
    adversary's attention (summed), gradient and LOO (``reduction``), and Kendall τ of the
    per-word attention against the per-word gradient / LOO (``word_tau_*``, ``word_p_*``)."""
    word_index = np.asarray(example.word_index, np.int64)
    num_words = len(example.words)
    fields = {"words": list(example.words), "word_index": word_index.tolist()}
    for name in ("attention", "adversarial_attention", "gradient", "loo"):
        if record.get(name) is not None:
            reduce = reduction if name in ("gradient", "loo") else "sum"
            scores = np.asarray(record[name], np.float64)
            fields[f"word_{name}"] = wordpiece.word_scores(
                scores, word_index, num_words, reduce
            ).tolist()
    present = np.zeros(num_words, bool)
    present[word_index[word_index >= 0]] = True
    for name in ("gradient", "loo"):
        if f"word_{name}" in fields:
            tau, p = stats.kendall_tau_b(
                np.asarray([fields["word_attention"]]), np.asarray([fields[f"word_{name}"]]),
                present[None],
            )  # fmt: skip
            fields[f"word_tau_{name}"], fields[f"word_p_{name}"] = (
                _none_if_nan(tau[0]), _none_if_nan(p[0]),
            )  # fmt: skip
    return fields


def batch_records(
    batch: dict, results: dict, split: data.EncodedSplit, word_reduction: str = "sum"
) -> list[dict]:
    """One record per real row of ``batch`` (fields: ``attn_audit.report.records``); records
    of word-piece models carry their per-word view too (``word_fields``)."""
    num_positions = batch["token_ids"].shape[1]
    real_mask = is_real_token(np.arange(num_positions)[None, :], batch["lengths"][:, None])
    taus = _tau_fields(results, real_mask)
    records = []
    for row in np.flatnonzero(batch["index"] >= 0):
        position = int(batch["row"][row])
        example = split.examples[position]
        real = slice(1, int(batch["lengths"][row]) - 1)
        attention = results["attention"][row]
        record = record_header(split, position, results["probabilities"][row])
        record["attention"] = attention[real].tolist()
        record["max_attention"] = float(attention[real].max())
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
        require_finite(record, {field: record.get(field) for field in FINITE_FIELDS})
        if example.word_index is not None:
            record.update(word_fields(record, example, word_reduction))
        records.append(record)
    return records


def audit_boundaries(split: data.EncodedSplit, num_buckets: int) -> tuple[int, ...]:
    """The audit's bucket widths for ``split`` (text and question lengths alike)."""
    return split_boundaries(split, num_buckets)


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
    out_dir = pathlib.Path(out_dir)
    check_options(out_dir, options.to_dict(), "audit_config.json")
    split = first_instances(split, options.limit)
    if boundaries is None:
        boundaries = audit_boundaries(split, options.num_buckets)
    auditor, batch_size = _auditor(model, params, options, program_cache)
    return run_batches(
        auditor, split, boundaries, batch_size, out_dir,
        lambda batch, results: batch_records(batch, results, split, options.word_reduction),
    )  # fmt: skip


def run_audit_corpus(
    model, params, chunks, out_dir, options: AuditOptions, program_cache=None
) -> dict:  # fmt: skip
    """Audits a corpus larger than memory, chunk by chunk (``batch_runner.run_chunks``).

    Args:
      model, params, options, program_cache: as for ``run_audit`` (``options.limit`` is the
        reader's; ``options.split`` names the corpus).
      chunks: ``(first text number, encode)`` pairs (``data.corpus.read_chunks``, encoded
        with the run's vocabulary or tokenizer; this process's share in a job of several).
      out_dir: where ``audit_config.json``, ``chunks/`` and ``records.jsonl`` go.

    Returns:
      ``run_chunks``' ``{"instances", "chunks", "runs"}``.
    """
    out_dir = pathlib.Path(out_dir)
    check_options(out_dir, options.to_dict(), "audit_config.json")
    auditor, batch_size = _auditor(model, params, options, program_cache)
    return run_chunks(
        auditor, chunks, options.num_buckets, batch_size, out_dir,
        lambda split: lambda batch, results: batch_records(
            batch, results, split, options.word_reduction
        ),
    )  # fmt: skip


def _auditor(model, params, options: AuditOptions, program_cache) -> tuple[BatchAuditor, int]:
    """The run's ``BatchAuditor`` and its batch size (rounded up to the devices)."""
    import jax  # only here: keeps `import attn_audit.audits.runner` light for the report

    auditor = BatchAuditor(
        model, params, options.audits, jax.random.key(options.seed), options.adversary,
        options.num_permutations, program_cache,
    )  # fmt: skip
    return auditor, rounded_batch_size(options.batch_size, auditor.num_devices)
