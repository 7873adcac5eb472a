"""attn_audit.explainers.engine: every explainer of a batch equals the same explainer run on
each instance alone (keys per instance, coalitions in chunks), a second batch of a shape
compiles nothing, an instance's explanations do not depend on its padded width, and bad
settings are clear errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attn_audit import batch_engine, explainers
from attn_audit.audits import engine as audit_engine
from attn_audit.explainers import engine
from tests._fixtures import instance_of, padded_batch, tiny_model

SETTINGS = engine.ExplainerSettings(
    ig_points=6, shapley_max_tokens=6, shapley_permutations=4, kernel_samples=12,
    lime_samples=10, max_sequence_positions=200,  # chunks of 200 // (4 · 12) = 4 coalitions
)  # fmt: skip
ALL = tuple(e for e in engine.EXPLAINERS if e not in engine.MAP_EXPLAINERS)  # JW models
one_instance = jax.jit(engine.explain_instance, static_argnums=(0, 4, 5, 6))


@pytest.fixture(scope="module")
def explained():
    # The order-free Average encoder compiles fastest; tests/explainers/*_test.py cover the
    # BiLSTM and the CNN explainer by explainer.
    model, params = tiny_model("average", "tanh", num_classes=3)
    explainer = engine.BatchExplainer(model, params, ALL, jax.random.key(3), SETTINGS)
    batch = padded_batch((5, 7, 4, 9), 12)
    return model, params, explainer, batch, explainer(batch)


def test_each_explainer_of_a_batch_equals_a_loop_over_its_instances(explained):
    model, params, explainer, batch, results = explained
    assert engine.coalitions_per_step(200, 4, 12) == 4
    for row in range(4):
        instance = instance_of(batch, row)
        for name in ALL[1:]:
            key = jax.random.fold_in(explainer.role_keys.get(name, explainer.role_keys["random"]),
                                     int(batch["index"][row]))  # fmt: skip
            alone = one_instance(model, params, instance, key, name, SETTINGS, None)  # no chunks
            np.testing.assert_allclose(results[name][row], alone["scores"], atol=1e-6, err_msg=name)
            for field, value in alone.items():
                if field != "scores":
                    np.testing.assert_allclose(results[f"{name}_{field}"][row], value, atol=1e-6)
    predicted = audit_engine.predict_batch(model, params, batch_engine.instances_from_batch(batch))
    np.testing.assert_allclose(results["attention"], predicted["attention"], atol=1e-7)
    np.testing.assert_array_equal(results["shapley_exact_done"], [True, True, True, False])
    assert np.isnan(results["shapley_exact"][3]).all()  # 7 tokens > shapley_max_tokens


def test_second_batch_of_a_shape_compiles_nothing(explained):
    _, _, explainer, _, _ = explained
    compiled = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda event, _seconds, **_: compiled.append(event) if "compile" in event else None
    )
    before = len(explainer._executables)
    explainer(padded_batch((6, 3, 8, 10), 12, first_index=4))  # same shape, other values
    assert len(explainer._executables) == before == len(explainer.programs)
    assert not [e for e in compiled if "backend_compile" in e]
    assert set(explainer.seconds) == set(explainer.programs) and min(explainer.seconds.values()) > 0


def test_an_instances_explanations_do_not_depend_on_its_padded_width(explained):
    model, params, explainer, batch, results = explained
    wide = {name: np.pad(value, ((0, 0), (0, 4))) if name == "token_ids" else value
            for name, value in batch.items()}  # fmt: skip
    wider = explainer(wide)
    for name in ALL:
        np.testing.assert_allclose(wider[name][:, :12], results[name], atol=2e-6, err_msg=name)
        assert not np.nan_to_num(wider[name][:, 12:]).any()


def test_bad_settings_and_names_are_clear_errors():
    with pytest.raises(ValueError, match=r"Unknown explainers \['shap'\]"):
        engine.checked_explainers(["lime", "shap"])
    with pytest.raises(ValueError, match="No explainer"):
        engine.checked_explainers([])
    bad = {"removal": "drop", "ig_rule": "simpson", "ig_points": 1, "shapley_permutations": 5,
           "kernel_samples": 0, "lime_samples": 1, "shapley_max_tokens": 24}  # fmt: skip
    for name, value in bad.items():
        with pytest.raises(ValueError, match=name if name != "removal" else "Unknown removal"):
            engine.ExplainerSettings(**{name: value})
    assert explainers.checked_explainers(["random", "attention"]) == ("attention", "random")


def test_padding_rows_and_devices():
    model, params = tiny_model("cnn", "dot")
    explainer = engine.BatchExplainer(model, params, ("attention", "occlusion"), None, SETTINGS)
    batch = padded_batch((5, 7, 4), 10)
    batch["index"][2] = -1  # a data-layer padding row
    results = explainer(batch)
    assert results["occlusion"].shape == (3, 10) and np.isfinite(results["occlusion"]).all()
    assert jnp.asarray(results["probabilities"]).shape == (3, 2)
