"""The batch engine: one compilation per shape, and sharding that changes nothing."""

import json
import logging
import os
import pathlib
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attn_audit import audits, batch_engine
from attn_audit.audits import exported
from tests._fixtures import padded_batch, tiny_model

REPO = pathlib.Path(__file__).resolve().parents[2]


def test_second_batch_of_a_bucket_does_not_recompile():
    model, params = tiny_model()
    settings = audits.AdversarySettings(steps=5)
    auditor = audits.BatchAuditor(model, params, adversary=settings, num_permutations=4)
    auditor(padded_batch((5, 7, 4, 6), 12))
    programs = (
        audits.engine.audit_batch, audits.engine.predict_batch, audits.engine.gradient_batch,
        audits.engine.loo_batch, audits.engine.permutation_batch, audits.engine.adversarial_batch,
    )  # fmt: skip
    sizes = [program._cache_size() for program in programs]
    auditor(padded_batch((9, 3, 8, 10), 12, first_index=4))  # same shapes, other values
    assert [program._cache_size() for program in programs] == sizes


def test_the_combined_program_equals_the_audits_run_one_by_one():
    model, params = tiny_model()
    settings = audits.AdversarySettings(steps=7)
    auditor = audits.BatchAuditor(model, params, adversary=settings, num_permutations=4)
    batch = padded_batch((5, 7, 4, 6), 12)
    combined = auditor(batch)
    engine = audits.engine
    instances = batch_engine.instances_from_batch(batch)
    index = np.asarray(batch["index"])

    # Instance i's key of each role is fold_in(role key, i) (padding rows: i = 0).
    def keys(role_key):
        return jnp.stack([jax.random.fold_in(role_key, max(int(i), 0)) for i in index])

    permutation_keys = keys(auditor.permutation_key)
    adversarial_keys = keys(auditor.adversarial_key)
    separate = dict(engine.predict_batch(model, params, instances))
    separate["gradient"] = engine.gradient_batch(model, params, instances)
    separate["loo"] = engine.loo_batch(model, params, instances)
    separate["permutation_median_tvd"] = engine.permutation_batch(
        model, params, instances, permutation_keys, 4
    )
    found = engine.adversarial_batch(model, params, instances, adversarial_keys, settings)
    separate.update({f"adversarial_{name}": value for name, value in found.items()})
    assert set(combined) == set(separate)
    for name, value in separate.items():
        np.testing.assert_allclose(combined[name], value, atol=1e-6, err_msg=name)


def test_results_do_not_depend_on_the_batch_an_instance_is_in():
    model, params = tiny_model()
    settings = audits.AdversarySettings(steps=20)
    auditor = audits.BatchAuditor(model, params, adversary=settings, num_permutations=8)
    batch = padded_batch((5, 7, 4, 6), 12)
    together = auditor(batch)
    # Rows 2 and 3 again, now beside copies of themselves instead of rows 0 and 1.
    alone = auditor({k: np.concatenate([v[2:], v[2:]]) for k, v in batch.items()})
    for name in ("loo", "gradient", "permutation_median_tvd", "adversarial_max_jsd"):
        np.testing.assert_allclose(alone[name][:2], together[name][2:], atol=1e-6)


def test_results_do_not_depend_on_the_padded_width():
    # The audit pads to widths fitted to the split: an instance's results must not change
    # with the width it is padded to (the adversary's random start included).
    model, params = tiny_model()
    settings = audits.AdversarySettings(steps=20)
    auditor = audits.BatchAuditor(model, params, adversary=settings, num_permutations=8)
    narrow, wide = auditor(padded_batch((5, 7, 4, 6), 8)), auditor(padded_batch((5, 7, 4, 6), 16))
    for name in ("loo", "gradient", "attention"):
        np.testing.assert_allclose(wide[name][:, :8], narrow[name], atol=1e-6)
    for name in ("permutation_median_tvd", "adversarial_max_jsd", "adversarial_selected_tvd"):
        np.testing.assert_allclose(wide[name], narrow[name], atol=1e-5)
    np.testing.assert_allclose(
        wide["adversarial_selected_attention"][:, :8], narrow["adversarial_selected_attention"],
        atol=1e-5,
    )  # fmt: skip


SHARDED_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import jax, jax.numpy as jnp, numpy as np
    sys.path.insert(0, "{repo}")
    from attn_audit import audits, batch_engine
    from tests._fixtures import padded_batch, tiny_model
    assert jax.local_device_count() == 8, jax.local_devices()
    model, params = tiny_model()
    settings = audits.AdversarySettings(steps=20)
    batch = padded_batch((5, 7, 4, 6, 9, 3, 8, 10), 12)
    sharded = audits.BatchAuditor(model, params, adversary=settings, num_permutations=8)(batch)
    # The same programs on one device, without sharding.
    one = jax.devices()[0]
    instances = jax.device_put(batch_engine.instances_from_batch(batch), one)
    params_one = jax.device_put(params, one)
    keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.split(jax.random.key(0))[1], i))(
        jnp.asarray(batch["index"]))
    single = {{
        "loo": audits.engine.loo_batch(model, params_one, instances),
        "gradient": audits.engine.gradient_batch(model, params_one, instances),
        "adversarial_max_jsd": audits.engine.adversarial_batch(
            model, params_one, instances, jax.device_put(keys, one), settings)["max_jsd"],
    }}
    # The explainers too: occlusion, and KernelSHAP's per-instance random draws.
    from attn_audit.explainers import engine as explain
    explain_settings = explain.ExplainerSettings(kernel_samples=16)
    explainer = explain.BatchExplainer(
        model, params, ("occlusion", "kernel_shap"), jax.random.key(0), explain_settings)
    explained = explainer(batch)
    chunk = explain.coalitions_per_step(explain_settings.max_sequence_positions, 8, 12)
    for name in ("occlusion", "kernel_shap"):
        keys = jax.vmap(lambda i: jax.random.fold_in(explainer.role_keys[
            name if name == "kernel_shap" else "random"], i))(jnp.asarray(batch["index"]))
        single[name] = explain.explain_batch(
            model, params_one, instances, jax.device_put(keys, one), name, explain_settings,
            chunk)["scores"]
        sharded[name] = explained[name]
    print(json.dumps({{
        "max_difference": {{k: float(np.max(np.abs(np.asarray(v) - sharded[k])))
                           for k, v in single.items()}},
    }}))
    """
)


def test_sharded_over_8_host_devices_equals_one_device(tmp_path):
    script = tmp_path / "sharded.py"
    script.write_text(SHARDED_SCRIPT.format(repo=REPO))
    environment = dict(
        os.environ,
        XLA_FLAGS=f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=8",
    )
    result = subprocess.run(
        [sys.executable, str(script)], cwd=REPO, env=environment, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    for name, difference in report["max_difference"].items():
        # As across bucket widths: 500 AMSGrad steps carry float32 reduction-order noise.
        limit = 1e-5 if name.startswith("adversarial") else 1e-6
        assert difference < limit, (name, difference)


def test_unknown_audit_is_a_clear_error():
    model, params = tiny_model()
    with pytest.raises(ValueError, match=r"Unknown audits \['saliency'\]"):
        audits.BatchAuditor(model, params, audits=("gradient", "saliency"))


def test_compiling_ahead_leaves_nothing_to_compile_for_the_audit(tmp_path, caplog):
    model, params = tiny_model()
    settings = audits.AdversarySettings(steps=3)
    batch = padded_batch((5, 7, 4, 6), 20)  # a width no other test uses
    for program_cache in (None, exported.ProgramCache(tmp_path)):
        auditor = audits.BatchAuditor(
            model, params, adversary=settings, num_permutations=4, program_cache=program_cache
        )
        with jax.log_compiles(), caplog.at_level(logging.WARNING):
            caplog.clear()
            auditor.compile(batch)
            ahead = [m for m in caplog.messages if "XLA compilation" in m]
            caplog.clear()
            auditor(batch)
        assert ahead  # the audit program (or its exported wrapper) was compiled ahead
        # and the audit traces, lowers and compiles nothing of its own.
        work = ("Finished tracing", "Compiling", "XLA compilation")
        assert not [m for m in caplog.messages if any(w in m for w in work)], caplog.messages
