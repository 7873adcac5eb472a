"""Ground truth for explanations, reported (SPEC §9): per model and explainer, how often the
top-k tokens are exactly the evidence, AUPRC, and where the mass goes when it misses; the CSV
rows and the ``ground_truth`` section of RESULTS.md (``experiments.ground_truth``)."""

import numpy as np
from scipy import stats as scipy_stats

from attn_audit.faithfulness.plausibility import PLAUSIBILITY_MEASURES
from attn_audit.report.faithfulness import interval_cell

ENCODER_TITLES = {"lstm": "BiLSTM", "cnn": "CNN", "average": "Average",
                  "transformer": "Transformer", "minilm": "MiniLM"}  # fmt: skip
# Where an explanation's mass goes on the instances whose top-k misses the evidence.
MISS_FIELDS = ("misses", "miss_evidence_mass", "miss_neighbour_mass", "miss_other_mass")
CSV_COLUMNS = (
    "task", "encoder", "test_accuracy", "explainer", "instances", "defined",
    *(f"{m}_{part}" for m in PLAUSIBILITY_MEASURES for part in ("mean", "low", "high")),
    *MISS_FIELDS, "exact_top_k_by_class",
)  # fmt: skip


def miss_masses(scored: list[dict], name: str) -> dict:
    """Over the instances where ``name``'s top-k is not exactly the evidence: their count and
    the mean share of the scores' mass on the evidence, beside it, and elsewhere."""
    rows = [
        (entry["evidence_mass"], entry["neighbour_mass"])
        for record in scored
        if (entry := record["plausibility"].get(name))
        and entry.get("exact_top_k") == 0.0
        and entry.get("evidence_mass") is not None
    ]
    if not rows:
        return dict.fromkeys(MISS_FIELDS[1:], None) | {"misses": 0}
    on, beside = np.asarray(rows, np.float64).T
    return {"misses": len(rows), "miss_evidence_mass": float(on.mean()),
            "miss_neighbour_mass": float(beside.mean()),
            "miss_other_mass": float((1.0 - on - beside).mean())}  # fmt: skip


# ERASER's metrics, each with the sign that makes larger better (SPEC §8).
ERASER_DIRECTIONS = {"aopc_comprehensiveness": 1.0, "aopc_sufficiency": -1.0}


def _per_instance(records: list[dict], names, value) -> np.ndarray:
    """``[X, N]`` float64: ``value(record, name)`` (None → NaN), records ordered by index."""
    ordered = sorted(records, key=lambda r: r["index"])
    table = np.full((len(names), len(ordered)), np.nan)
    for x, name in enumerate(names):
        for n, record in enumerate(ordered):
            found = value(record, name)
            table[x, n] = np.nan if found is None else found
    return table


def _eraser_value(record: dict, name: str, metric: str, removal: str):
    return ((record["metrics"].get(name) or {}).get(metric) or {}).get(removal)


def _tau(ground: np.ndarray, eraser: np.ndarray, columns: np.ndarray) -> float:
    """Kendall's τ-b between the rows' means over ``columns``; NaN with < 3 rows or none."""
    if ground.shape[0] < 3 or ground.shape[1] == 0:
        return np.nan
    return scipy_stats.kendalltau(ground[:, columns].mean(1), eraser[:, columns].mean(1)).statistic


def ranking_agreement(
    scored: list[dict], metric_records: list[dict], names, measure: str = "auprc",
    removal: str = "delete", seed: int = 0, resamples: int = 1000,
) -> dict:  # fmt: skip
    """Do ERASER's metrics rank the explainers as the ground truth does?

    Kendall's τ-b (``scipy.stats.kendalltau``) between the explainers' mean ``measure``
    (plausibility) and their mean ERASER metric (AOPC comprehensiveness, and sufficiency
    negated: both larger-better), with a 95% percentile bootstrap CI: the same resample of
    instances for both sides, ``resamples`` times (seeded).

    Returns:
      ``{metric: {"tau", "low", "high", "explainers"}}``; τ None with fewer than 3 explainers.
    """
    names = [n for n in names if n != "loo"]  # LOO is the audit's, not an ERASER subject
    if {r["index"] for r in scored} != {r["index"] for r in metric_records}:
        raise ValueError("The plausibility and ERASER records cover different instances.")
    ground = _per_instance(
        scored, names, lambda r, n: (r["plausibility"].get(n) or {}).get(measure)
    )
    found = {}
    for number, (metric, sign) in enumerate(ERASER_DIRECTIONS.items()):
        eraser = sign * _per_instance(
            metric_records, names, lambda r, n, m=metric: _eraser_value(r, n, m, removal)
        )
        usable = ~np.isnan(ground).any(axis=0) & ~np.isnan(eraser).any(axis=0)
        ground_used, eraser_used = ground[:, usable], eraser[:, usable]
        count = ground_used.shape[1]
        point = _tau(ground_used, eraser_used, np.arange(count))
        rng = np.random.default_rng([seed, number])
        draws = rng.integers(0, count, (resamples, count)) if count else np.zeros((0, 0), int)
        boot = np.asarray([_tau(ground_used, eraser_used, columns) for columns in draws])
        boot = boot[~np.isnan(boot)]
        low, high = np.percentile(boot, [2.5, 97.5]) if boot.size else (np.nan, np.nan)
        found[metric] = {
            "tau": None if np.isnan(point) else float(point),
            "low": None if np.isnan(low) else float(low),
            "high": None if np.isnan(high) else float(high),
            "explainers": names, "instances": int(usable.sum()),
        }  # fmt: skip
    return found


def exact_by_class(scored: list[dict], predicted: dict[int, int], name: str) -> dict:
    """Mean exact top-k of ``name`` per predicted class (``predicted``: index → class), over
    the instances where it is defined: ``{class: {"mean", "count"}}``. A model may use one
    marker's absence rather than the other marker (under ``single``, "not narwhal" is
    "walrus"), so where it misses can depend on the class."""
    found = {}
    for record in scored:
        value = (record["plausibility"].get(name) or {}).get("exact_top_k")
        if value is not None:
            found.setdefault(predicted[record["index"]], []).append(value)
    return {str(c): {"mean": float(np.mean(v)), "count": len(v)} for c, v in sorted(found.items())}


def model_entry(
    task, encoder, test_metrics, scored, summary, minutes, agreement=None, predicted=None,
    label_names=None,
) -> dict:  # fmt: skip
    """One model's results file: its accuracy and, per explainer, the summary's means with
    CIs, where the mass goes on misses and (``predicted``: index → predicted class) exact
    top-k per predicted class; ``agreement``: ``ranking_agreement``'s."""
    return {
        "task": task,
        "encoder": encoder,
        "label_names": list(label_names or []),
        "test_accuracy": test_metrics["accuracy"],
        "test_roc_auc": test_metrics.get("roc_auc"),
        "instances": summary["instances"],
        "defined": summary["defined"],
        "evidence": summary["provenance"].get("evidence"),
        "minutes": minutes,
        "explainers": {
            name: {
                **entry,
                **miss_masses(scored, name),
                "exact_top_k_by_class": exact_by_class(scored, predicted, name)
                if predicted is not None
                else None,
            }
            for name, entry in summary["explanations"].items()
        },
        "ranking": summary["ranking"],
        "eraser_agreement": agreement,
    }


def csv_rows(entries: list[dict]) -> list[dict]:
    rows = []
    for entry in entries:
        for name, measures in entry["explainers"].items():
            row = {"task": entry["task"], "encoder": entry["encoder"],
                   "test_accuracy": entry["test_accuracy"], "explainer": name,
                   "instances": entry["instances"], "defined": entry["defined"]}  # fmt: skip
            for measure in PLAUSIBILITY_MEASURES:
                for part in ("mean", "low", "high"):
                    row[f"{measure}_{part}"] = (measures.get(measure) or {}).get(part)
            row.update({field: measures.get(field) for field in MISS_FIELDS})
            by_class = measures.get("exact_top_k_by_class") or {}
            row["exact_top_k_by_class"] = ";".join(
                f"{c}:{v['mean']:.4f}" for c, v in sorted(by_class.items())
            )
            rows.append(row)
    return rows


def _percent(entry: dict | None) -> str:
    if not entry or entry.get("mean") is None:
        return "–"
    return f"{100 * entry['mean']:.0f}% [{100 * entry['low']:.0f}, {100 * entry['high']:.0f}]"


def _by_class(found: dict | None) -> str:
    if not found:
        return "–"
    return " / ".join(f"{100 * found[c]['mean']:.0f}%" for c in sorted(found, key=int))


def _task_table(entries: list[dict], measure: str | None, cell) -> list[str]:
    """Explainers × encoders; each cell is ``cell`` of the explainer's ``measure`` (of its
    whole entry when ``measure`` is None)."""
    encoders = [e["encoder"] for e in entries]
    names = list(dict.fromkeys(n for e in entries for n in e["explainers"]))
    lines = [
        "| explainer | " + " | ".join(ENCODER_TITLES.get(e, e) for e in encoders) + " |",
        "|---|" + "---|" * len(encoders),
    ]
    for name in names:
        found = [e["explainers"].get(name) or {} for e in entries]
        cells = [cell(f if measure is None else f.get(measure)) for f in found]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def _miss_cell(found: dict | None) -> str:
    if not found or not found.get("misses"):
        return "no miss"
    return (f"{found['misses']}: {found['miss_evidence_mass']:.2f} / "
            f"{found['miss_neighbour_mass']:.2f} / {found['miss_other_mass']:.2f}")  # fmt: skip


def _agreement_lines(entries: list[dict]) -> list[str]:
    entries = [e for e in entries if e.get("eraser_agreement")]
    if not entries:
        return []

    def cell(found):
        if not found or found.get("tau") is None:
            return "–"
        return f"{found['tau']:.2f} [{found['low']:.2f}, {found['high']:.2f}]"

    lines = [
        "",
        "Do ERASER's metrics (deletion, AOPC) rank the explainers as AUPRC against the evidence "
        "does? Kendall's τ over the explainers' means, 95% bootstrap CI over instances:",
        "",
        "| encoder | τ with comprehensiveness | τ with sufficiency (lower = better) |",
        "|---|---|---|",
    ]
    for entry in entries:
        found = entry["eraser_agreement"]
        lines.append(
            f"| {ENCODER_TITLES.get(entry['encoder'], entry['encoder'])} | "
            f"{cell(found.get('aopc_comprehensiveness'))} | "
            f"{cell(found.get('aopc_sufficiency'))} |"
        )
    return lines


_TASK_ORDER = ("single", "xor", "and", "mixed")


def task_order(task: str) -> tuple:
    """Planted tasks first (single, xor, and, mixed; default markers before variants), SST
    and any other data set after."""
    if not task.startswith("planted:"):
        return (1, 0, task)
    base, _, options = task[len("planted:") :].partition(":")
    return (0, _TASK_ORDER.index(base) if base in _TASK_ORDER else 9, options)


def markdown_section(entries: list[dict], command: str, wall_minutes: float) -> str:
    """The ``ground_truth`` section: per task, exact top-k and AUPRC per explainer × encoder,
    the models' accuracy, and where the mass goes on misses."""
    lines = [
        "## Do explanations find the evidence? Planted markers and SST's word labels (SPEC §9)",
        "",
        f"Last written by `{command}` ({wall_minutes:.0f} min; a model measured before is "
        "reused, and its training, explaining and ERASER minutes are in "
        "`results/ground_truth/*.json`). Per model: the first "
        "N test instances, each explainer's top-k tokens (k = the number of evidence tokens, "
        "by |score|) against the evidence; means with 95% bootstrap CIs (1,000 resamples of "
        "instances). Rows: `results/ground_truth.csv`.",
    ]
    for task in sorted(dict.fromkeys(e["task"] for e in entries), key=task_order):
        group = [e for e in entries if e["task"] == task]
        order = list(ENCODER_TITLES)
        group.sort(key=lambda e: order.index(e["encoder"]) if e["encoder"] in order else 99)
        accuracy = ", ".join(
            f"{ENCODER_TITLES.get(e['encoder'], e['encoder'])} {e['test_accuracy']:.3f}"
            for e in group
        )
        lines += [
            "",
            f"### {task}",
            "",
            f"Evidence: {group[0]['evidence']}. Test accuracy: {accuracy}. "
            f"Instances: {', '.join(str(e['instances']) for e in group)} "
            f"({', '.join(str(e['defined']) for e in group)} with evidence defined).",
            "",
            "Exact top-k (share of instances whose top-k tokens are exactly the evidence):",
            "",
            *_task_table(group, "exact_top_k", _percent),
            "",
            "Exact top-k by predicted class (the label names: "
            + ", ".join(f"{c} = {n}" for c, n in enumerate(group[0].get("label_names") or []))
            + "):",
            "",
            *_task_table(group, "exact_top_k_by_class", _by_class),
            "",
            "Top-1 on evidence (share of instances whose highest-scored token is a marker or "
            "evidence word; with two markers, finding one is not finding both):",
            "",
            *_task_table(group, "top_1_evidence", _percent),
            "",
            "AUPRC:",
            "",
            *_task_table(group, "auprc", interval_cell),
            "",
            "Where the mass goes when top-k misses — misses: mean share of |score| on the "
            "evidence / beside it (the next tokens) / elsewhere:",
            "",
            *_task_table(group, None, _miss_cell),
            *_agreement_lines(group),
        ]
    return "\n".join(lines) + "\n"
