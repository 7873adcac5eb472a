r"""Audits a trained run: gradient, leave-one-out, permutation and adversarial (JW §3).

  python -m experiments.audit --workdir=runs/sst_lstm_tanh \
      [--split=test --limit=N --audits=gradient,loo,permutation,adversarial --seed=0 \
       --batch_size=32 --buckets=2 --data_dir=DIR --attention_views=all]

Writes ``WORKDIR/audit/<split>/``: ``records.jsonl`` (one JSON object per instance;
fields documented in ``attn_audit/report/records.py``), ``summary.json`` and
``summary.md`` (JW's Table 2 row per predicted class, permutation medians per
max-attention bin, adversarial max-JSD quantiles, provenance) and PNG figures.
An interrupted audit resumes: the same command skips the batches already done.

``--dataset=jsonl:PATH`` (or ``csv:PATH``, ``dir:PATH``, ``tfds:NAME:SPLIT``; ``--text_field``,
``--label_field``)
audits a corpus of your own instead, read ``--chunk_size`` texts at a time, into
``WORKDIR/audit/<kind>-<name>/``. ``--coordinator_address --num_processes --process_id``
run the audit as one job of several processes (``experiments/_processes.py``).

For a transformer, ``--attention_views`` then audits every chosen attention view (each head's
CLS row per layer, each layer's head mean, rollout, flow; ``attn_audit/audits/views.py``) with
the same options, into ``WORKDIR/audit/<split>/views/``: ``records.jsonl``, ``views.json`` and
``views.md`` (layer × head tables, Wilcoxon per head, Benjamini–Hochberg across heads).

Expected on a 2-core CPU for the default SST BiLSTM run (benchmarks/RESULTS.md,
2026-12-06): 19–27 s for the 1,725 test instances with cold caches (4–6 s of it waiting
for compilation, reported apart in summary.json's timings), 11–15 s with warm ones
(compiled and exported programs kept in $ATTN_AUDIT_JAX_CACHE).
"""

import itertools
import json
import sys
import time

import numpy as np
from absl import app, flags, logging

from attn_audit import data, report
from attn_audit.audits import (
    AUDITS,
    AuditOptions,
    auditable_model,
    checked_audits,
    run_audit,
    run_audit_corpus,
)
from attn_audit.audits.exported import ProgramCache
from attn_audit.audits.views import audit_views
from attn_audit.report import figures, paper_row, summarize, summary_markdown
from attn_audit.report.views import views_markdown
from attn_audit.training.run_folder import load_run
from experiments._processes import (
    command_settings,
    exit_with_error,
    join_job,
    share,
    writes_results,
)
from experiments._setup import USER_ERRORS, machine_provenance, setup, write_report_page

# A corpus's summary and figures read its first records only (memory), as they say.
SUMMARY_RECORDS = 50_000

_WORKDIR = flags.DEFINE_string("workdir", None, "Run folder of a trained model.", required=True)
_SPLIT = flags.DEFINE_enum("split", "test", ["train", "dev", "test"], "Split to audit.")
_LIMIT = flags.DEFINE_integer("limit", None, "Audit only the first N instances of the split.")
_AUDITS = flags.DEFINE_list("audits", list(AUDITS), f"Audits to run, from {list(AUDITS)}.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the permutations and adversary initialisation.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 32, "Instances per batch.")
_WORD_REDUCTION = flags.DEFINE_enum(
    "word_reduction", "sum", ["sum", "max"],
    "Word-piece models: a word's gradient / LOO score is the sum or the max of its pieces' "
    "(its attention is always the sum).",
)  # fmt: skip
_BUCKETS = flags.DEFINE_integer(
    "buckets", 2, "Padded widths to audit at (one compiled program each), fitted to the split."
)
_DATA_DIR = flags.DEFINE_string(
    "data_dir", None, "Folder with the original data files (default: $ATTN_AUDIT_DATA)."
)
_DATASET = flags.DEFINE_string(
    "dataset", None,
    "Audit a corpus of your own instead of the run's data set: jsonl:PATH, csv:PATH (a header "
    "row), dir:PATH (*.txt files) or tfds:NAME:SPLIT (a tensorflow-datasets split, slices "
    "allowed: tfds:imdb_reviews:test[:10000]), read in chunks (memory flat in its size), into "
    "WORKDIR/audit/<kind>-<name>/.",
)  # fmt: skip
_TEXT_FIELD = flags.DEFINE_string("text_field", "text", "A corpus's field (column) of texts.")
_LABEL_FIELD = flags.DEFINE_string(
    "label_field", None, "A corpus's field of labels (class names or indices); none: -1."
)
_CHUNK_SIZE = flags.DEFINE_integer(
    "chunk_size", 16384, "Texts of a corpus read, encoded and audited at a time."
)
_ATTENTION_VIEWS = flags.DEFINE_list(
    "attention_views", [],
    "Transformers: also audit these attention views, into WORKDIR/audit/<split>/views/: "
    "'all', 'heads', 'layer_means', 'rollout', 'flow' or labels 'layer<l>/head<h>', "
    "'layer<l>/mean' (0-based); empty (default): none.",
)  # fmt: skip


def main(argv):
    del argv
    cache_folder = setup()
    start = time.perf_counter()
    try:
        join_job(command_settings(sys.modules[__name__]))
        audits = checked_audits(_AUDITS.value)
        if _BUCKETS.value < 1:
            raise ValueError(
                f"--buckets must be at least 1 (padded widths to audit at), got {_BUCKETS.value}."
            )
        run = load_run(_WORKDIR.value)
        if _DATASET.value is not None:
            return audit_corpus(run, cache_folder, audits, start)
        dataset = data.load_dataset(run.config["data"]["name"], _DATA_DIR.value)
        split = run.split_encoder()(dataset, _SPLIT.value, share(_LIMIT.value))
        options = AuditOptions(
            split=_SPLIT.value, audits=audits,
            seed=_SEED.value, batch_size=_BATCH_SIZE.value, limit=_LIMIT.value,
            num_buckets=_BUCKETS.value, word_reduction=_WORD_REDUCTION.value,
        )  # fmt: skip
        out_dir = run.workdir / "audit" / _SPLIT.value
        # Traced programs live beside the compiled ones: a warm run skips tracing too.
        program_cache = cache_folder and ProgramCache(cache_folder / "exported")
        records, timings = run_audit(
            auditable_model(run.model_config), run.params, split, None, out_dir, options,
            program_cache,
        )  # fmt: skip
    except USER_ERRORS as error:
        exit_with_error(error)
    main_process = writes_results()
    if main_process:
        write_summary(run, dataset, records, timings, options, start)
    if _ATTENTION_VIEWS.value:
        try:  # after the audit above, with its options (attn_audit.audits.views)
            _, views_summary = audit_views(
                run.model_config, run.params, split, _ATTENTION_VIEWS.value, out_dir / "views",
                options,
            )  # fmt: skip
        except USER_ERRORS as error:
            exit_with_error(error)
        if views_summary is not None:
            logging.info("Wrote %s (views.json, views.md).", out_dir / "views")
            print(views_markdown(views_summary))
    if main_process:
        write_report_page(run.workdir, _SPLIT.value)


def audit_corpus(run, cache_folder, audits, start) -> None:
    """Audits the corpus of ``--dataset`` chunk by chunk (``run_audit_corpus``); the summary
    covers its first ``SUMMARY_RECORDS`` records (``records.jsonl`` holds all)."""
    if _ATTENTION_VIEWS.value:
        raise ValueError("--attention_views audits a split, not a streamed corpus; drop it.")
    if run.model_config.task != "classification":
        raise ValueError(
            f"A corpus of texts has no questions: --dataset takes classification runs, and "
            f"{run.workdir} is a {run.model_config.task} run."
        )
    corpus = data.corpus.Corpus.parse(_DATASET.value, _TEXT_FIELD.value, _LABEL_FIELD.value)
    label_names = run.config["data"]["label_names"]
    punctuation = data.corpus.training_punctuation(run.config["data"]["name"])
    job = share(None)

    def encoded(first, examples):
        def encode():
            chunk = data.TextDataset(
                name=corpus.name, task=run.model_config.task, label_names=tuple(label_names),
                splits={"train": [], "dev": [], "test": examples}, min_df=1,
                length_filter=False, punctuation=punctuation,
            )  # fmt: skip
            if len(examples) <= job.process_id:  # a last chunk shorter than the processes
                split = data.EncodedSplit([], [], np.zeros(0, np.int32))
            else:
                mine = data.Share(job.process_id, job.num_processes)
                split = run.split_encoder()(chunk, "test", mine)
            split.index = split.index + first
            return split

        return first, encode

    chunks = data.corpus.read_chunks(corpus, _CHUNK_SIZE.value, label_names, punctuation,
                                     _LIMIT.value)  # fmt: skip
    options = AuditOptions(
        split=corpus.name, audits=audits, seed=_SEED.value, batch_size=_BATCH_SIZE.value,
        limit=_LIMIT.value, num_buckets=_BUCKETS.value, word_reduction=_WORD_REDUCTION.value,
    )  # fmt: skip
    out_dir = run.workdir / "audit" / corpus.name
    program_cache = cache_folder and ProgramCache(cache_folder / "exported")
    done = run_audit_corpus(
        auditable_model(run.model_config), run.params,
        (encoded(first, examples) for first, examples in chunks), out_dir, options,
        program_cache,
    )  # fmt: skip
    if not writes_results():
        return
    with open(out_dir / "records.jsonl", encoding="utf-8") as lines:
        records = [json.loads(line) for line in itertools.islice(lines, SUMMARY_RECORDS)]
    runs = done["runs"]
    timings = {
        "chunks": done["chunks"], "chunks_run": len(runs), "instances": done["instances"],
        "summary_records": len(records),
        **{name: sum(run[name] for run in runs) for name in
           ("wall_seconds", "compile_seconds", "compile_wait_seconds", "run_seconds")},
        "widths": sorted({width for run in runs for width in run["boundaries"]}),
    }  # fmt: skip
    dataset = data.TextDataset(
        name=_DATASET.value, task=run.model_config.task, label_names=tuple(label_names),
        splits={"train": [], "dev": [], "test": []}, min_df=1,
        notes=[f"A corpus of {done['instances']:,} texts; the summary and figures cover its "
               f"first {len(records):,} records (records.jsonl holds all)."],
    )  # fmt: skip
    write_summary(run, dataset, records, timings, options, start, out_dir)


def write_summary(run, dataset, records, timings, options, start, out_dir=None) -> None:
    """The audit's summary.json, summary.md and figures, beside its records."""
    out_dir = out_dir or run.workdir / "audit" / _SPLIT.value
    timings["process_seconds"] = time.perf_counter() - start
    provenance = {
        "run": str(run.workdir),
        "model": {
            "encoder": run.model_config.encoder, "attention": run.model_config.attention,
            "task": run.model_config.task, "selected_epoch": run.best_epoch,
            "test_metrics": run.metrics.get("test"), "train": run.config["train"],
        },
        "data": {
            "name": dataset.name, "split": options.split, "instances": len(records),
            "notes": dataset.notes,
        },
        "audit": options.to_dict(),
        **machine_provenance(),
        "timings": timings,
    }  # fmt: skip
    label_names = run.config["data"]["label_names"]
    summary = summarize(records, label_names, provenance)
    (out_dir / "summary.json").write_text(report.summary_json(summary))
    markdown = summary_markdown(
        summary, paper_row(dataset.name, run.model_config.encoder, label_names)
    )
    (out_dir / "summary.md").write_text(markdown)
    written = figures.write_all(records, label_names, out_dir)
    logging.info("Wrote %s, summary.json, summary.md and %d figures.", out_dir, len(written))
    print(markdown)


if __name__ == "__main__":
    app.run(main)
