"""The faithfulness summary: every mean with a 95% bootstrap CI, paired comparisons.

Each family of statistics (ERASER, flips, agreement, randomisation) is bootstrapped in
one call of ``stats.bootstrap_mean_ci`` with its own role key: the explainers of a family
share their resamples of instances, so the CI of a difference between two explainers is
a paired comparison, and a difference is significant when its CI excludes 0.
"""

import itertools

import jax
import numpy as np

from attn_audit import stats
from attn_audit.faithfulness.randomisation import randomisation_variants

RESAMPLES = 1000
# Each family of statistics draws its resamples from its own key.
ROLES = ("eraser", "flip", "agreement", "randomisation")


def interval_entry(found: dict, index) -> dict:
    """``{mean, low, high, count}`` of ``stats.bootstrap_mean_ci``'s output at ``index``."""
    entry = {name: float(found[name][index]) for name in ("mean", "low", "high")}
    entry = {name: (None if np.isnan(value) else value) for name, value in entry.items()}
    return {**entry, "count": int(found["count"][index])}


def _with_difference(entry: dict) -> dict:
    low, high = entry["low"], entry["high"]
    significant = low is not None and high is not None and (low > 0 or high < 0)
    return {**entry, "significant": bool(significant)}


def _metric(records, explainer, *path) -> float:
    value = records["metrics"].get(explainer)
    for step in path:
        if value is None:
            return np.nan
        value = value[step]
    return np.nan if value is None else float(value)


def _table(records, explainers, *path) -> np.ndarray:
    """``[X, N]``: each explainer's value at ``path`` per record (NaN where missing)."""
    return np.array([[_metric(record, name, *path) for record in records] for name in explainers])


def _bootstrap(rows: np.ndarray, key) -> dict:
    return stats.bootstrap_mean_ci(rows, key, RESAMPLES)


def paired_differences(values: np.ndarray, explainers, key) -> dict:
    """``"a|b"`` → the paired CI of ``mean(a − b)`` over instances, with ``significant``."""
    pairs = list(itertools.combinations(range(len(explainers)), 2))
    if not pairs:
        return {}
    differences = np.stack([values[i] - values[j] for i, j in pairs])
    found = _bootstrap(differences, key)
    return {f"{explainers[i]}|{explainers[j]}": _with_difference(interval_entry(found, p))
            for p, (i, j) in enumerate(pairs)}  # fmt: skip


def summarize_faithfulness(
    metric_records: list[dict], randomisation_records: list[dict], explainers, settings,
    provenance: dict, seed: int = 0,
) -> dict:  # fmt: skip
    """Means with 95% bootstrap CIs (1,000 resamples of instances, seeded) of every metric.

    Args:
      metric_records: ``runner.metric_records``' records.
      randomisation_records: ``runner.randomisation_records``' records (may be empty).
      explainers: the explainers, in order.
      settings: the ``FaithfulnessSettings`` the records were measured with.
      provenance: run, data, options, machine and timings, stored as given.
      seed: the bootstrap's seed.

    Returns:
      A JSON-ready dict: ``explainers`` (name → ERASER curves and AOPCs per removal, flip
      fraction, top-1 flip rate and never-flipped share, each ``{mean, low, high, count}``),
      ``ranking`` (explainers by AOPC comprehensiveness under the first removal, best first),
      ``comparisons`` (metric → pair → paired difference with ``significant``),
      ``agreement`` (``tau`` / ``jaccard`` → pair → CI), ``randomisation`` (variant →
      explainer → CI of Spearman ρ), ``instances``, ``percents``, ``removals``, ``provenance``.
    """
    keys = dict(zip(ROLES, jax.random.split(jax.random.key(seed), len(ROLES)), strict=True))
    removals, percents = tuple(settings.removals), tuple(settings.percents)
    entries = {name: {} for name in explainers}
    comparisons = {}
    has_eraser = any(
        "aopc_comprehensiveness" in (r["metrics"].get(e) or {})
        for r in metric_records for e in explainers
    )  # fmt: skip
    if metric_records and has_eraser:
        # Per (removal, curve): the AOPCs, the curve's points, the pairwise AOPC differences.
        eraser_keys = jax.random.split(keys["eraser"], (len(removals), 2, 3))
        for i, removal in enumerate(removals):
            for j, curve in enumerate(("comprehensiveness", "sufficiency")):
                aopc_key, points_key, pairs_key = eraser_keys[i, j]
                aopc = _table(metric_records, explainers, f"aopc_{curve}", removal)
                points = np.stack(
                    [
                        _table(metric_records, explainers, curve, removal, k)
                        for k in range(len(percents))
                    ],
                    axis=1,
                )  # [X, K, N]
                found_aopc = _bootstrap(aopc, aopc_key)
                found_points = _bootstrap(points, points_key)
                for x, name in enumerate(explainers):
                    entry = entries[name]
                    entry.setdefault(f"aopc_{curve}", {})[removal] = interval_entry(found_aopc, x)
                    entry.setdefault(f"{curve}_curve", {})[removal] = [
                        interval_entry(found_points, (x, k)) for k in range(len(percents))
                    ]
                comparisons[f"aopc_{curve}/{removal}"] = paired_differences(
                    aopc, explainers, pairs_key
                )
    has_flip = any("flip_fraction" in (r["metrics"].get(e) or {})
                   for r in metric_records for e in explainers)  # fmt: skip
    if metric_records and has_flip:
        flip_key, top1_key, never_key, pair_key = jax.random.split(keys["flip"], 4)
        fraction = _table(metric_records, explainers, "flip_fraction")
        top1 = _table(metric_records, explainers, "top1_flip")
        never = 1.0 - _table(metric_records, explainers, "flipped")
        for statistic, values, key in (("flip_fraction", fraction, flip_key),
                                       ("top1_flip_rate", top1, top1_key),
                                       ("never_flipped", never, never_key)):  # fmt: skip
            found = _bootstrap(values, key)
            for x, name in enumerate(explainers):
                entries[name][statistic] = interval_entry(found, x)
        comparisons["flip_fraction"] = paired_differences(fraction, explainers, pair_key)
    agreement = {}
    pairs = list(metric_records[0].get("agreement", {})) if metric_records else []
    if pairs:
        for measure, key in zip(("tau", "jaccard"), jax.random.split(keys["agreement"]),
                                strict=True):  # fmt: skip
            values = np.array([[np.nan if r["agreement"][p][measure] is None
                                else r["agreement"][p][measure] for r in metric_records]
                               for p in pairs])  # fmt: skip
            found = _bootstrap(values, key)
            agreement[measure] = {pair: interval_entry(found, i) for i, pair in enumerate(pairs)}
    randomisation = {}
    if randomisation_records:
        variants = list(randomisation_variants())
        values = np.array([[[np.nan if r["rho"][v][e] is None else r["rho"][v][e]
                             for r in randomisation_records] for e in explainers]
                           for v in variants])  # fmt: skip
        found = _bootstrap(values, keys["randomisation"])
        randomisation = {
            variant: {name: interval_entry(found, (v, x)) for x, name in enumerate(explainers)}
            for v, variant in enumerate(variants)
        }
    ranking = list(explainers)
    if has_eraser:  # best first; an explainer without scores last

        def aopc_mean(name):
            mean = entries[name]["aopc_comprehensiveness"][removals[0]]["mean"]
            return -np.inf if mean is None else mean

        ranking.sort(key=aopc_mean, reverse=True)
    return {
        "instances": len(metric_records), "percents": list(percents), "removals": list(removals),
        "explainers": entries, "ranking": ranking, "comparisons": comparisons,
        "agreement": agreement, "randomisation": randomisation,
        "randomisation_instances": len(randomisation_records), "provenance": provenance,
    }  # fmt: skip
