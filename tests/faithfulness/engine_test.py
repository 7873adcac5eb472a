"""attn_audit.faithfulness.engine: a batch's metrics equal a loop of the per-instance metrics
(coalitions in chunks, explainers without scores marked), a second batch of a shape compiles
nothing, and the randomisation engine's ρ equals scipy's on the explanations it re-runs."""

import jax
import numpy as np
import pytest
from scipy import stats as scipy_stats

from attn_audit.data.vocab import UNK
from attn_audit.explainers import engine as explainer_engine
from attn_audit.faithfulness import engine, ranking
from attn_audit.faithfulness.eraser import eraser
from attn_audit.faithfulness.flip import decision_flip
from tests._fixtures import instance_of, padded_batch, tiny_model

EXPLAINERS = ("attention", "occlusion", "shapley_exact", "random")
SETTINGS = engine.FaithfulnessSettings(max_sequence_positions=100)


def explanation_records(batch, seed=0):
    rng = np.random.default_rng(seed)
    records = {}
    for row, index in enumerate(batch["index"]):
        n = int(batch["lengths"][row]) - 2
        records[int(index)] = {"id": f"x{index}", **{
            name: rng.normal(size=n).tolist() for name in EXPLAINERS}}  # fmt: skip
        if n > 5:
            records[int(index)]["shapley_exact"] = None  # over its limit
    return records


@pytest.fixture(scope="module")
def measured():
    model, params = tiny_model("lstm", "tanh", num_classes=3)
    batch = padded_batch((5, 9, 4, 7), 10)
    records = explanation_records(batch)
    metrics = engine.BatchFaithfulness(model, params, EXPLAINERS, records, SETTINGS)
    return model, params, batch, records, metrics, metrics(batch)


def test_each_instance_of_a_batch_equals_the_metrics_alone(measured):
    model, params, batch, records, metrics, results = measured
    assert engine.coalitions_per_step(100, 4, 10) == 2  # 2 coalitions a step: chunks are used
    for row in range(4):
        instance = instance_of(batch, row)
        scores, available = engine.scores_on_positions(records, batch, EXPLAINERS)
        expected_available = [True, True, batch["lengths"][row] - 2 <= 5, True]
        np.testing.assert_array_equal(available[row], expected_available)
        curves = eraser(model, params, instance, scores[row], UNK)
        flips = decision_flip(model, params, instance, scores[row], "delete", UNK)
        np.testing.assert_allclose(results["comprehensiveness"][row],
                                   curves["comprehensiveness"], atol=1e-6)  # fmt: skip
        np.testing.assert_allclose(results["sufficiency"][row], curves["sufficiency"], atol=1e-6)
        for name in ("flip_fraction", "flipped", "top1_flip"):
            np.testing.assert_allclose(results[name][row], flips[name], atol=1e-7)
    assert results["comprehensiveness"].shape == (4, 2, 4, len(ranking.PERCENTS))


def test_second_batch_of_a_shape_compiles_nothing(measured):
    _, _, _, _, metrics, _ = measured
    compiled = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda event, _seconds, **_: compiled.append(event) if "compile" in event else None
    )
    batch = padded_batch((6, 3, 8, 10), 10, first_index=4)
    metrics.records.update(explanation_records(batch, seed=1))
    metrics(batch)
    assert len(metrics._executables) == len(metrics.programs) == 2
    assert not [e for e in compiled if "backend_compile" in e]


def test_scores_of_another_length_are_a_clear_error(measured):
    _, _, batch, records, _, _ = measured
    broken = {**records, 0: {**records[0], "occlusion": [0.1]}}
    with pytest.raises(ValueError, match="occlusion has 1 scores for 3 tokens"):
        engine.scores_on_positions(broken, batch, EXPLAINERS)


def test_bad_settings_are_clear_errors():
    with pytest.raises(ValueError, match="Unknown removal"):
        engine.FaithfulnessSettings(removals=("drop",))
    with pytest.raises(ValueError, match="percents"):
        engine.FaithfulnessSettings(percents=(0, 10))
    with pytest.raises(ValueError, match="Unknown metrics"):
        engine.BatchFaithfulness(*tiny_model("average"), EXPLAINERS, {}, SETTINGS, ("aopc",))


def test_randomisation_rho_is_scipys_on_the_re_run_explanations():
    model, params = tiny_model("cnn", "tanh")
    explainers = ("attention", "gradient", "occlusion", "random")
    explainer = explainer_engine.BatchExplainer(model, params, explainers, jax.random.key(1))
    randomisation = engine.BatchRandomisation(model, params, explainer, jax.random.key(2))
    batch = padded_batch((6, 9, 3, 8), 10)
    results = randomisation(batch)
    variants = list(randomisation.variants)
    assert results["rho"].shape == (4, len(variants), len(explainers))
    original = explainer(batch)
    for v, variant in enumerate(variants):
        blocks = randomisation.variants[variant]
        randomised = explainer(batch, randomisation._params[blocks])
        for row in (0, 1, 3):  # row 2 has one token: ρ undefined
            n = batch["lengths"][row] - 2
            for x, name in enumerate(explainers):
                a = np.abs(original[name][row, 1 : n + 1])
                b = np.abs(randomised[name][row, 1 : n + 1])
                expected = scipy_stats.spearmanr(a, b).statistic
                expected = 0.0 if np.isnan(expected) else expected
                assert results["rho"][row, v, x] == pytest.approx(expected, abs=1e-5)
    random_column = explainers.index("random")
    np.testing.assert_allclose(results["rho"][[0, 1, 3], :, random_column], 1.0)  # model-free
    attention = explainers.index("attention")  # the decoder comes after attention
    np.testing.assert_allclose(results["rho"][[0, 1, 3], variants.index("cascade/decoder"),
                                              attention], 1.0)  # fmt: skip
    assert (results["rho"][[0, 1, 3], variants.index("cascade/embeddings")] < 0.999).any()
