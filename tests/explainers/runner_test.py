"""attn_audit.explainers.runner: an explainer run over a split writes one record per instance,
in data order, with each explainer's scores over the real tokens; it resumes from its parts
to the same records and refuses other options."""

import json

import jax
import numpy as np
import pytest

from attn_audit import explainers, report
from attn_audit.explainers import engine
from tests._fixtures import tiny_model
from tests.audits.runner_test import toy_split

SETTINGS = engine.ExplainerSettings(shapley_permutations=4, kernel_samples=16, lime_samples=12)
OPTIONS = explainers.ExplainOptions(
    explainers=("attention", "integrated_gradients", "shapley_sampling", "random"),
    batch_size=2, limit=6, settings=SETTINGS,
)  # fmt: skip
BOUNDARIES = (8, 16)


@pytest.fixture(scope="module")
def explained(tmp_path_factory):
    model, params = tiny_model("average", "tanh", num_classes=3)
    out_dir = tmp_path_factory.mktemp("explain") / "explain"
    records, timings = explainers.run_explain(
        model, params, toy_split(), BOUNDARIES, out_dir, OPTIONS
    )
    return model, params, out_dir, records, timings


def test_records_hold_each_instances_explanations_in_data_order(explained):
    model, params, out_dir, records, timings = explained
    split = toy_split()
    assert [r["index"] for r in records] == list(range(OPTIONS.limit))
    assert report.read_records(out_dir / "records.jsonl") == records
    assert json.loads((out_dir / "explain_config.json").read_text()) == OPTIONS.to_dict()
    assert set(timings["program_seconds"]) == {
        "prediction", "integrated_gradients", "shapley_sampling", "random"
    }  # fmt: skip
    assert timings["program_compile_seconds"].keys() == timings["program_seconds"].keys()
    explainer = engine.BatchExplainer(model, params, OPTIONS.explainers, jax.random.key(0),
                                      SETTINGS)  # fmt: skip
    for record in records:
        index = record["index"]
        n = len(split.token_ids[index]) - 2
        assert record["tokens"] == list(split.examples[index].tokens) and len(record["tokens"]) == n
        for name in OPTIONS.explainers:
            assert len(record[name]) == n, name
        assert len(record["shapley_sampling_standard_error"]) == n
        assert record["integrated_gradients_completeness_gap"] >= 0
        assert "lime" not in record and "kernel_shap" not in record
        # The instance alone, padded to its own width, gives the same scores (keys per instance).
        width = 8 if n + 2 <= 8 else 16
        ids = np.zeros((2, width), np.int32)
        ids[0, : n + 2] = split.token_ids[index]
        alone = explainer({"token_ids": ids, "lengths": np.asarray([n + 2, 0], np.int32),
                           "index": np.asarray([index, -1], np.int32)})  # fmt: skip
        for name in OPTIONS.explainers:
            np.testing.assert_allclose(record[name], alone[name][0, 1 : n + 1], atol=1e-6)
        assert record["prediction"] == pytest.approx(alone["probabilities"][0].tolist(), abs=1e-6)


def test_a_resumed_run_writes_the_same_records(explained):
    model, params, out_dir, records, _ = explained
    parts = sorted((out_dir / "parts").glob("*.jsonl"))
    parts[1].unlink()
    (out_dir / "records.jsonl").unlink()
    again, timings = explainers.run_explain(
        model, params, toy_split(), BOUNDARIES, out_dir, OPTIONS
    )
    assert timings["batches"] == 1 and again == records


def test_other_options_are_refused(explained):
    model, params, out_dir, _, _ = explained
    other = explainers.ExplainOptions(**{**OPTIONS.__dict__, "seed": 1})
    with pytest.raises(ValueError, match="holds a run with other options"):
        explainers.run_explain(model, params, toy_split(), BOUNDARIES, out_dir, other)


def test_non_finite_scores_stop_the_run_at_their_batch(tmp_path):
    model, params = tiny_model("average", "tanh", num_classes=3)
    broken = jax.tree.map(lambda leaf: leaf * np.float32("inf"), params)
    with pytest.raises(ValueError, match="non-finite prediction"):
        explainers.run_explain(model, broken, toy_split(), BOUNDARIES, tmp_path / "e", OPTIONS)
    assert not list((tmp_path / "e" / "parts").glob("*.jsonl"))
