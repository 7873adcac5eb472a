"""attn_audit.faithfulness.runner and .summary: a run over a split writes one metric record per
instance in data order (reusing the explanations), randomisation records for the first
instances, resumes to the same records, refuses other options; the summary's means and
CIs are the bootstrap's of the records."""

import dataclasses
import json
import shutil

import jax
import numpy as np
import pytest

from attn_audit import explainers, report, stats
from attn_audit.faithfulness import FaithfulnessOptions, FaithfulnessSettings, run_faithfulness
from attn_audit.report.faithfulness import faithfulness_markdown
from attn_audit.report.faithfulness_summary import ROLES, summarize_faithfulness
from tests._fixtures import tiny_model
from tests.audits.runner_test import toy_split

EXPLAIN = explainers.ExplainOptions(
    explainers=("attention", "occlusion", "shapley_exact", "random"), batch_size=2, limit=6,
    num_buckets=2,
)  # fmt: skip
OPTIONS = FaithfulnessOptions(explain=EXPLAIN, randomisation_limit=3)


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    model, params = tiny_model("average", "tanh", num_classes=3)
    out_dir = tmp_path_factory.mktemp("faithfulness") / "faithfulness"
    found = run_faithfulness(model, params, toy_split(), out_dir, OPTIONS)
    return model, params, out_dir, found


def test_records_per_instance_in_data_order(measured):
    _, _, out_dir, (metric_records, randomised, timings) = measured
    assert [r["index"] for r in metric_records] == list(range(6))
    assert report.read_records(out_dir / "metrics" / "records.jsonl") == metric_records
    assert report.read_records(out_dir / "explain" / "records.jsonl")  # explained first
    assert json.loads((out_dir / "faithfulness_config.json").read_text()) == OPTIONS.to_dict()
    explained = {r["index"]: r for r in report.read_records(out_dir / "explain" / "records.jsonl")}
    for record in metric_records:
        assert record["num_tokens"] == len(explained[record["index"]]["tokens"])
        for name in EXPLAIN.explainers:
            entry = record["metrics"][name]
            if name == "shapley_exact" and explained[record["index"]][name] is None:
                assert entry is None
                continue
            for curve in ("comprehensiveness", "sufficiency"):
                for removal in ("delete", "mask"):
                    assert len(entry[curve][removal]) == 5
                    assert entry[f"aopc_{curve}"][removal] == pytest.approx(
                        np.mean(entry[curve][removal]), abs=1e-6)  # fmt: skip
            assert 0 < entry["flip_fraction"] <= 1
            assert entry["flip_fraction"] < 1 or not entry["flipped"] or record["num_tokens"] >= 1
        assert set(record["agreement"]) == {"attention|occlusion", "attention|shapley_exact",
                                            "attention|random", "occlusion|shapley_exact",
                                            "occlusion|random", "shapley_exact|random"}  # fmt: skip
    assert [r["index"] for r in randomised] == [0, 1, 2]
    assert set(randomised[0]["rho"]) == {f"{k}/{b}" for k in ("cascade", "independent")
                                         for b in ("decoder", "attention", "encoder",
                                                   "embeddings")}  # fmt: skip
    assert set(timings) == {"explain", "metrics", "randomisation"}
    assert set(timings["metrics"]["program_compile_seconds"]) == {"eraser", "flip"}


def test_resumes_to_the_same_records_and_refuses_other_options(measured):
    model, params, out_dir, (metric_records, randomised, _) = measured
    (out_dir / "metrics" / "parts" / "00001.jsonl").unlink()
    (out_dir / "randomisation" / "parts" / "00000.jsonl").unlink()
    again, randomised_again, timings = run_faithfulness(
        model, params, toy_split(), out_dir, OPTIONS
    )
    assert again == metric_records and randomised_again == randomised
    # The timings of a resumed run still cover the whole: each process that worked on a stage.
    assert [run["batches"] for run in timings["metrics"]["runs"]][-1] == 1
    assert len(timings["metrics"]["runs"]) == len(timings["randomisation"]["runs"]) == 2
    assert timings["explain"]["batches"] == 0 and len(timings["explain"]["runs"]) == 1
    provenance = {"timings": timings, "blocks_without_parameters": ["attention"]}
    summary = summarize_faithfulness(again, randomised_again, EXPLAIN.explainers,
                                     FaithfulnessSettings(), provenance)  # fmt: skip
    markdown = faithfulness_markdown(summary)
    assert "| metrics | 2 | " in markdown
    assert "no parameters in attention: re-initialising it alone changes nothing" in markdown
    other = FaithfulnessOptions(explain=EXPLAIN, randomisation_limit=4)
    with pytest.raises(ValueError, match="holds a run with other options"):
        run_faithfulness(model, params, toy_split(), out_dir, other)


def test_a_finished_run_gains_a_stage_without_redoing_the_others(measured, tmp_path):
    model, params, out_dir, (metric_records, randomised, _) = measured
    # A run folder from before per-stage options, made without the randomisation check.
    old = tmp_path / "faithfulness"
    for stage in ("explain", "metrics"):
        shutil.copytree(out_dir / stage, old / stage)
    (old / "metrics" / "metrics_config.json").unlink()
    without = dataclasses.replace(OPTIONS, metrics=("eraser", "flip", "agreement"))
    (old / "faithfulness_config.json").write_text(json.dumps(without.to_dict()))
    again, randomised_again, timings = run_faithfulness(model, params, toy_split(), old, OPTIONS)
    assert again == metric_records and randomised_again == randomised
    assert timings["explain"]["batches"] == timings["metrics"]["batches"] == 0
    assert timings["randomisation"]["batches"] > 0
    assert json.loads((old / "metrics" / "metrics_config.json").read_text())["metrics"] == [
        "eraser", "flip", "agreement"]  # fmt: skip
    assert json.loads((old / "faithfulness_config.json").read_text()) == OPTIONS.to_dict()
    # A stage asked for again with other options than its records were made with is refused.
    for other in (
        dataclasses.replace(OPTIONS, randomisation_limit=4),
        dataclasses.replace(OPTIONS, metrics=("eraser", "randomisation")),
        dataclasses.replace(OPTIONS, settings=FaithfulnessSettings(removals=("mask",))),
    ):
        with pytest.raises(ValueError, match="randomisation holds|metrics holds"):
            run_faithfulness(model, params, toy_split(), old, other)
    # Stages not asked for are not checked: the metrics alone resume as they were.
    alone, _, _ = run_faithfulness(model, params, toy_split(), old, without)
    assert alone == metric_records


def test_summary_means_and_cis_are_the_bootstraps(measured):
    _, _, _, (metric_records, randomised, _) = measured
    names = EXPLAIN.explainers
    summary = summarize_faithfulness(metric_records, randomised, names, FaithfulnessSettings(),
                                     {"run": "r"}, seed=3)  # fmt: skip
    json.dumps(summary, allow_nan=False)
    fractions = np.array([[r["metrics"][n]["flip_fraction"] if r["metrics"][n] else np.nan
                           for r in metric_records] for n in names])  # fmt: skip
    flip_key = jax.random.split(jax.random.split(jax.random.key(3), len(ROLES))[1], 4)[0]
    expected = stats.bootstrap_mean_ci(fractions, flip_key, 1000)
    for x, name in enumerate(names):
        entry = summary["explainers"][name]["flip_fraction"]
        assert entry["mean"] == pytest.approx(np.nanmean(fractions[x]))
        assert (entry["low"], entry["high"]) == (expected["low"][x], expected["high"][x])
        assert entry["low"] <= entry["mean"] <= entry["high"]
    aopc = [summary["explainers"][n]["aopc_comprehensiveness"]["delete"]["mean"] for n in
            summary["ranking"]]  # fmt: skip
    assert aopc == sorted(aopc, reverse=True)
    pair = summary["comparisons"]["flip_fraction"]["attention|random"]
    difference = fractions[0] - fractions[3]
    assert pair["mean"] == pytest.approx(np.mean(difference))
    assert pair["significant"] == (pair["low"] > 0 or pair["high"] < 0)
    rho = summary["randomisation"]["cascade/embeddings"]["random"]
    assert rho["mean"] == pytest.approx(1.0) and rho["count"] == 3  # random ignores the model
    markdown = faithfulness_markdown(summary)
    assert "| 1 | " in markdown and "## Model parameter randomisation (3 instances)" in markdown
