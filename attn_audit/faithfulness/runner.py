"""A faithfulness run over a split: explanations → metrics → per-instance records, resumable.

Three stages, each through ``attn_audit.batch_runner`` (parts written as batches finish,
the same command resumes, a finished run gains a stage it lacks, compile seconds reported
apart per program):

1. the explanations (``explainers.run_explain``; reused when already there);
2. ``metrics/``: ERASER's curves and the decision flips of every explainer, and the
   agreement of every pair of explainers, per instance;
3. ``randomisation/``: the explainers on re-initialised models, for the first
   ``randomisation_limit`` instances (each costs every explainer once per variant).
"""

import dataclasses
import json
import pathlib

import numpy as np

from attn_audit import data
from attn_audit.batch_engine import rounded_batch_size
from attn_audit.batch_runner import (
    check_options,
    first_instances,
    require_finite,
    run_batches,
    split_boundaries,
    write_text_atomically,
)
from attn_audit.explainers.runner import ExplainOptions, run_explain
from attn_audit.faithfulness.agreement import pairwise_agreement
from attn_audit.faithfulness.engine import (
    METRIC_PROGRAMS,
    BatchFaithfulness,
    BatchRandomisation,
    FaithfulnessSettings,
)

METRICS = ("eraser", "flip", "agreement", "randomisation")
# Measured on SST's BiLSTM: 20 instances in one batch of 32 at width 48 took 520 s.
RANDOMISATION_BATCH_SIZE = 8


def checked_metrics(names) -> tuple[str, ...]:
    """The metrics ``names`` asks for, in ``METRICS`` order; unknown ones are an error."""
    unknown = sorted(set(names) - set(METRICS))
    if unknown or not names:
        raise ValueError(f"Unknown or no metrics {unknown}; choose from {list(METRICS)}.")
    return tuple(name for name in METRICS if name in names)


@dataclasses.dataclass(frozen=True)
class FaithfulnessOptions:
    """What to measure; each stage's part is saved in its folder and checked on resume
    (``check_stage_options``).

    ``explain`` says which explanations (split, explainers, seed, limit, settings);
    ``randomisation_limit`` bounds the instances of the randomisation check.
    """

    explain: ExplainOptions = ExplainOptions()
    metrics: tuple[str, ...] = METRICS
    settings: FaithfulnessSettings = FaithfulnessSettings()
    randomisation_limit: int = 50

    def __post_init__(self):
        checked_metrics(self.metrics)
        if self.randomisation_limit < 1:
            raise ValueError(
                f"randomisation_limit must be at least 1, got {self.randomisation_limit}."
            )

    def to_dict(self) -> dict:
        return {
            "explain": self.explain.to_dict(), "metrics": list(self.metrics),
            "settings": self.settings.to_dict(), "randomisation_limit": self.randomisation_limit,
        }  # fmt: skip


def stage_options(saved: dict) -> dict[str, dict]:
    """The options each stage's records depend on, from ``FaithfulnessOptions.to_dict()``:
    ``{"metrics": ..., "randomisation": ...}``, a stage only where ``saved`` asks for it."""
    metrics = [name for name in saved["metrics"] if name != "randomisation"]
    stages = {}
    if metrics:
        stages["metrics"] = {"explain": saved["explain"], "metrics": metrics,
                             "settings": saved["settings"]}  # fmt: skip
    if "randomisation" in saved["metrics"]:
        stages["randomisation"] = {"explain": saved["explain"],
                                   "randomisation_limit": saved["randomisation_limit"]}  # fmt: skip
    return stages


def check_stage_options(out_dir: pathlib.Path, options: FaithfulnessOptions) -> None:
    """Saves or checks each requested stage's options in its own folder.

    A stage's records depend only on its own options, so a finished run can gain a stage
    (``randomisation`` added to ``eraser,flip,agreement``) without redoing the others, while
    a stage asked for with other options than its records were made with is refused. Run
    folders from before per-stage options hold one ``faithfulness_config.json``: their stage
    folders are taken to have been made with it. That file is rewritten with the latest
    request, for reading.
    """
    requested = options.to_dict()
    whole_path = out_dir / "faithfulness_config.json"
    earlier = json.loads(whole_path.read_text()) if whole_path.exists() else None
    made_with = stage_options(earlier) if earlier else {}
    for stage, stage_request in stage_options(requested).items():
        stage_dir, file_name = out_dir / stage, f"{stage}_config.json"
        if stage in made_with and stage_dir.exists() and not (stage_dir / file_name).exists():
            write_text_atomically(
                stage_dir / file_name, json.dumps(made_with[stage], indent=2, allow_nan=False)
            )
        check_options(stage_dir, stage_request, file_name)
    write_text_atomically(whole_path, json.dumps(requested, indent=2, allow_nan=False))


def _listed(values: np.ndarray, available: bool):
    return values.tolist() if available else None


def metric_records(batch, results, split, explainers, settings, agreement: bool) -> list[dict]:
    """One record per real row of ``batch``.

    Fields: ``id``, ``index``, ``num_tokens``, ``metrics`` (explainer → ``{"comprehensiveness"
    | "sufficiency": {removal: [K]}, "aopc_comprehensiveness" | "aopc_sufficiency":
    {removal: float}, "flip_fraction", "flipped", "top1_flip"}``, or null where the explainer
    gave no scores) and ``agreement`` (``"a|b"`` → ``{"tau", "jaccard"}``, null where undefined).
    """
    pairs = {}
    if agreement:
        pairs = pairwise_agreement(
            results["scores"], results["available"], batch["lengths"], explainers
        )
    records = []
    for row in np.flatnonzero(batch["index"] >= 0):
        index = int(batch["index"][row])
        record = {"id": split.examples[batch["row"][row]].id, "index": index,
                  "num_tokens": int(batch["lengths"][row]) - 2, "metrics": {}}  # fmt: skip
        for column, name in enumerate(explainers):
            if not results["available"][row, column]:
                record["metrics"][name] = None
                continue
            entry = {}
            for curve in ("comprehensiveness", "sufficiency"):
                if curve not in results:
                    continue
                values = results[curve][row][:, column]  # [R, K]
                entry[curve] = dict(zip(settings.removals, values.tolist(), strict=True))
                entry[f"aopc_{curve}"] = dict(
                    zip(settings.removals, values.mean(axis=-1).tolist(), strict=True)
                )
            if "flip_fraction" in results:
                entry["flip_fraction"] = float(results["flip_fraction"][row, column])
                entry["flipped"] = bool(results["flipped"][row, column])
                entry["top1_flip"] = bool(results["top1_flip"][row, column])
            checked = {
                f"{name} {curve}": list(entry[curve].values())
                for curve in ("comprehensiveness", "sufficiency")
                if curve in entry
            }
            checked[f"{name} flip_fraction"] = entry.get("flip_fraction")
            require_finite(record, checked)  # fmt: skip
            record["metrics"][name] = entry
        if agreement:
            record["agreement"] = {
                pair: {name: (None if np.isnan(v[row]) else float(v[row])) for name, v in d.items()}
                for pair, d in pairs.items()
            }
        records.append(record)
    return records


def randomisation_records(batch, results, split, explainers, variants) -> list[dict]:
    """One record per real row: ``id``, ``index``, ``num_tokens`` and ``rho`` (variant →
    explainer → Spearman ρ of absolute scores; null for instances of fewer than 2 tokens)."""
    records = []
    for row in np.flatnonzero(batch["index"] >= 0):
        index, num_tokens = int(batch["index"][row]), int(results["num_tokens"][row])
        rho = {
            variant: {
                name: (float(results["rho"][row, v, x]) if num_tokens >= 2 else None)
                for x, name in enumerate(explainers)
            }
            for v, variant in enumerate(variants)
        }
        records.append({"id": split.examples[batch["row"][row]].id, "index": index,
                        "num_tokens": num_tokens, "rho": rho})  # fmt: skip
    return records


def run_faithfulness(
    model, params, split: data.EncodedSplit, out_dir, options: FaithfulnessOptions,
    explain_dir=None,
) -> tuple[list[dict], list[dict], dict]:  # fmt: skip
    """Measures every faithfulness metric of ``options`` on ``split``, resuming if possible.

    Args:
      model: an ``AuditableModel``; params: its parameters.
      split: the encoded split.
      out_dir: where ``faithfulness_config.json``, ``metrics/`` and ``randomisation/`` go.
      options: what to run.
      explain_dir: the explanations' folder (default ``out_dir/explain``); explained
        there first when not done yet.

    Returns:
      ``(metric records, randomisation records, timings)``, records in data order; timings
      per stage (``explain``, ``metrics``, ``randomisation``), each ``run_batches``' with
      ``program_seconds``.
    """
    import jax  # only here: keeps `import attn_audit.faithfulness.runner` light

    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    check_stage_options(out_dir, options)
    explain_dir = out_dir / "explain" if explain_dir is None else pathlib.Path(explain_dir)
    explain = options.explain
    explanations, explain_timings = run_explain(model, params, split, None, explain_dir, explain)
    timings = {"explain": explain_timings}
    split = first_instances(split, explain.limit)
    boundaries = split_boundaries(split, explain.num_buckets)
    explainers = explain.explainers
    metric_rows = []
    metric_programs = [m for m in METRIC_PROGRAMS if m in options.metrics]
    if metric_programs or "agreement" in options.metrics:
        engine = BatchFaithfulness(
            model, params, explainers, {r["index"]: r for r in explanations}, options.settings,
            metric_programs,
        )  # fmt: skip
        batch_size = rounded_batch_size(explain.batch_size, engine.num_devices)
        metric_rows, timings["metrics"] = run_batches(
            engine, split, boundaries, batch_size, out_dir / "metrics",
            lambda batch, results: metric_records(
                batch, results, split, explainers, options.settings,
                "agreement" in options.metrics,
            ),
        )  # fmt: skip
        timings["metrics"]["program_seconds"] = dict(engine.seconds)
    randomised_rows = []
    if "randomisation" in options.metrics:
        from attn_audit.explainers.engine import BatchExplainer

        # Trained and randomised models are explained with the same keys.
        explainer_key, init_key = jax.random.split(jax.random.key(explain.seed))
        explainer = BatchExplainer(model, params, explainers, explainer_key, explain.settings)
        engine = BatchRandomisation(model, params, explainer, init_key)
        subset = first_instances(split, options.randomisation_limit)
        # Few instances, each explained 8 times: small batches waste little on padding rows,
        # and there are no more widths (programs to compile) than batches.
        batch_size = min(explain.batch_size, RANDOMISATION_BATCH_SIZE)
        batch_size = rounded_batch_size(batch_size, explainer.num_devices)
        randomised_rows, timings["randomisation"] = run_batches(
            engine, subset, split_boundaries(subset, explain.num_buckets, batch_size),
            batch_size,
            out_dir / "randomisation",
            lambda batch, results: randomisation_records(
                batch, results, subset, explainer.explainers, tuple(engine.variants)
            ),
        )  # fmt: skip
        timings["randomisation"]["program_seconds"] = dict(engine.seconds)
    return metric_rows, randomised_rows, timings
