r"""Abnar & Zuidema's evaluation of a trained transformer, and JW's audits of its CLS attention.

  python -m experiments.az_eval --workdir=runs/sst_transformer \
      [--split=test --limit=N --audit_limit=M --batch_size=32 --flow_workers=1 --seed=0 \
       --audits=gradient,loo,permutation,adversarial --name=NAME --results_dir=results \
       --data_dir=DIR]

For every instance of the split and every layer l: the CLS row's raw attention, rollout and
attention flow over the real tokens, correlated (Spearman ρ, NaN → 0) with blank-out and
with input-gradient importance for the correct class (AZ §2, Tables 1–2; SPEC §5;
``attn_audit/evaluations/az.py``, swept over the split by ``az_sweep``, reported by
``az_report``). Word-piece runs (MiniLM) blank out with ``[MASK]`` and correlate per word
(piece scores summed). Then JW's four audits on the last layer's CLS attention through the
engine (``run_audit`` with ``auditable_model``; SPEC §3).

Writes ``<results_dir>/az_<dataset>_<name>.csv`` (mean ± std of ρ per layer, relevance and
importance, with AZ's published means), ``<results_dir>/figures/az_<dataset>_<name>.png``,
the section ``az_<name>`` of ``<results_dir>/RESULTS.md``, and in the run folder
``az/<split>/`` the per-instance ρ (``rho.npz``), ``summary.json`` and the JW audit
(``audit/``, resumable). ``NAME`` defaults to the run folder's name without a leading
``<dataset>_``.

Expected on this 2-core CPU (shared with other jobs): for the 6-layer, width-128 SST
transformer, about 4 min for the 1,725 test instances with a warm compilation cache
(AZ's part 1.5 min, of which the exact CLS flow 10 s; JW's audits 2.5 min). The result
(results/RESULTS.md): every ρ with blank-out is low (≤ 0.12), flow and rollout only a few
hundredths above raw attention in the upper layers; with input gradients ρ ≈ 0.6 at
every layer, rollout highest and flow lowest from layer 3 up.
"""

import concurrent.futures
import multiprocessing
import pathlib
import sys
import time

import numpy as np
from absl import app, flags, logging

from attn_audit import data, report
from attn_audit.audits import AUDITS, AuditOptions, auditable_model, run_audit
from attn_audit.audits.runner import first_instances
from attn_audit.evaluations import az_sweep
from attn_audit.report import az as az_report
from attn_audit.report import summarize
from attn_audit.report.tables import replace_section, write_csv
from attn_audit.training.run_folder import load_run
from experiments._setup import USER_ERRORS, setup

_WORKDIR = flags.DEFINE_string("workdir", None, "Run folder of a trained transformer (required).")
_SPLIT = flags.DEFINE_enum("split", "test", ["train", "dev", "test"], "Split to evaluate.")
_LIMIT = flags.DEFINE_integer("limit", None, "Evaluate only the first N instances of the split.")
_AUDIT_LIMIT = flags.DEFINE_integer(
    "audit_limit", None, "JW's audits on only the first N instances (default: --limit)."
)
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 32, "Instances per batch.")
_WORKERS = flags.DEFINE_integer(
    "flow_workers", 1, "Processes for the attention flow (1: this one)."
)
_AUDITS = flags.DEFINE_list(
    "audits", list(AUDITS), f"JW audits to run, from {list(AUDITS)}; empty for none."
)
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the JW audits' permutations and adversary.")
_NAME = flags.DEFINE_string("name", None, "Name in the results files (default: from --workdir).")
_RESULTS_DIR = flags.DEFINE_string("results_dir", "results", "Where tables and figures go.")
_DATA_DIR = flags.DEFINE_string(
    "data_dir", None, "Folder with the original data files (default: $ATTN_AUDIT_DATA)."
)


def main(argv):
    del argv
    setup()
    process_start = time.perf_counter()
    try:
        unknown = sorted(set(_AUDITS.value) - set(AUDITS))
        if unknown:
            raise ValueError(f"Unknown audits {unknown} in --audits; choose from {list(AUDITS)}.")
        if _WORKERS.value < 1:
            raise ValueError(f"--flow_workers must be at least 1, got {_WORKERS.value}.")
        if not _WORKDIR.value:
            raise ValueError("--workdir is required: a trained transformer's run folder.")
        run = load_run(_WORKDIR.value)
        if not run.model_config.is_transformer:
            raise ValueError(
                f"{run.workdir} holds a {run.model_config.encoder} model; AZ's evaluation needs "
                "a transformer's attention maps (train with --encoder=transformer or minilm)."
            )
        dataset = data.load_dataset(run.config["data"]["name"], _DATA_DIR.value)
        full_split, blank_id, word_indices = az_sweep.encode(run, dataset, _SPLIT.value)
        split = first_instances(full_split, _LIMIT.value)
        boundaries = tuple(run.config["data"]["bucket_boundaries"])
        out_dir = run.workdir / "az" / _SPLIT.value
        out_dir.mkdir(parents=True, exist_ok=True)

        start = time.perf_counter()
        if _WORKERS.value > 1:
            context = multiprocessing.get_context("spawn")  # forking a JAX process can deadlock
            with concurrent.futures.ProcessPoolExecutor(_WORKERS.value, mp_context=context) as ex:
                rho, timings = az_sweep.evaluate(
                    run, split, boundaries, blank_id, word_indices, _BATCH_SIZE.value, ex
                )
        else:
            rho, timings = az_sweep.evaluate(
                run, split, boundaries, blank_id, word_indices, _BATCH_SIZE.value
            )
        az_seconds = time.perf_counter() - start

        jw_summary, jw_seconds = None, 0.0
        if _AUDITS.value:
            start = time.perf_counter()
            options = AuditOptions(
                split=_SPLIT.value, audits=tuple(a for a in AUDITS if a in _AUDITS.value),
                seed=_SEED.value, batch_size=_BATCH_SIZE.value,
                limit=_LIMIT.value if _AUDIT_LIMIT.value is None else _AUDIT_LIMIT.value,
            )  # fmt: skip
            records, _ = run_audit(
                auditable_model(run.model_config), run.params, full_split, None,
                out_dir / "audit", options,
            )  # fmt: skip
            jw_summary = summarize(records, run.config["data"]["label_names"])
            jw_seconds = time.perf_counter() - start
    except USER_ERRORS as error:
        sys.exit(f"error: {error}")

    dataset_name = dataset.name
    name = _NAME.value or az_report.default_name(run.workdir, dataset_name)
    results = pathlib.Path(_RESULTS_DIR.value)
    (results / "figures").mkdir(parents=True, exist_ok=True)
    stem = f"az_{dataset_name}_{name}"
    np.savez(out_dir / "rho.npz", **{f"{r}_{i}": rho[r][i] for r in rho for i in rho[r]})
    csv_path = write_csv(results / f"{stem}.csv", az_report.table_rows(rho, dataset_name, name))
    title = f"{dataset_name} {name}: CLS relevance vs importance"
    az_report.write_figure(rho, results / "figures" / f"{stem}.png", title)
    holds, trend_text = az_report.trend(rho)
    info = {
        "workdir": _WORKDIR.value, "limit": _LIMIT.value, "audit_limit": _AUDIT_LIMIT.value,
        "split": _SPLIT.value, "name": name, "training": az_report.training_text(run),
        "n": len(split.labels), "split_size": len(full_split.labels),
        "az_seconds": az_seconds, "flow_seconds": timings["flow_seconds"],
        "jw_seconds": jw_seconds, "process_seconds": time.perf_counter() - process_start,
        "blank": "[MASK]" if word_indices is not None else "UNK",
        "word_pieces": word_indices is not None, "figure": f"{stem}.png",
    }  # fmt: skip
    markdown = az_report.section_markdown(
        run, dataset_name, name, rho, holds, trend_text, jw_summary, info
    )
    replace_section(results / "RESULTS.md", f"az_{name}", markdown)
    summary = {
        "info": info, "timings": timings, "trend_holds": holds, "trend": trend_text,
        "rows": az_report.table_rows(rho, dataset_name, name), "jw": jw_summary,
    }  # fmt: skip
    (out_dir / "summary.json").write_text(report.summary_json(summary))
    logging.info("Wrote %s, the az_%s section of %s and %s.", csv_path, name,
                 results / "RESULTS.md", out_dir)  # fmt: skip
    print(markdown)


if __name__ == "__main__":
    app.run(main)
