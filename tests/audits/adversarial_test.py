"""attn_audit.audits.adversarial: adversaries keep the output; the objective by its formula."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attn_audit import audits, batch_engine, models, stats
from tests._fixtures import CASES, forward_probabilities, instance_of, tiny_batch, tiny_model


@pytest.mark.parametrize("encoder, attention, task, num_classes", CASES[:3])
def test_adversaries_keep_the_output_and_match_a_loop(encoder, attention, task, num_classes):
    model, params = tiny_model(encoder, attention, task, num_classes)
    batch = tiny_batch()
    settings = audits.AdversarySettings(steps=60)
    keys = jax.random.split(jax.random.key(5), 3)
    instances = batch_engine.instances_from_batch({k: jnp.asarray(v) for k, v in batch.items()})
    found = audits.engine.adversarial_batch(model, params, instances, keys, settings)
    for row, length in enumerate(batch["lengths"]):
        single = audits.adversarial_search(
            model, params, instance_of(batch, row), keys[row], settings
        )
        np.testing.assert_allclose(found["max_jsd"][row], single["max_jsd"], atol=1e-6)
        original, alpha = forward_probabilities(model, params, batch["token_ids"][row], length)
        adversary = np.asarray(found["selected_attention"][row])
        assert adversary.sum() == pytest.approx(1.0, abs=1e-5)
        assert np.all(adversary[0] == 0) and np.all(adversary[length - 1 :] == 0)
        # Re-score the selected adversary through the ordinary forward pass.
        logits, _ = models.forward(
            params, model.config, jnp.asarray(batch["token_ids"][row]), length,
            attention_override=jnp.asarray(adversary),
        )  # fmt: skip
        rescored = np.asarray(models.probabilities(logits, model.config))
        assert 0.5 * np.abs(rescored - original).sum() <= settings.epsilon + 1e-6
        jsd = float(stats.jsd(jnp.asarray(adversary), jnp.asarray(alpha)))
        assert jsd == pytest.approx(float(found["max_jsd"][row]), abs=1e-5)
        if int(found["selected"][row]) >= 0:
            assert float(found["max_jsd"][row]) > 0


def test_adversarial_objective_equals_its_formula_with_stats_jsd():
    settings = audits.AdversarySettings(num_candidates=4)
    mask = jnp.asarray([False, True, True, True, True, False, False])
    logits = 3.0 * jax.random.normal(jax.random.key(5), (4, 7))
    alpha = models.masked_softmax(jax.random.normal(jax.random.key(6), (7,)), mask)
    weights = jax.random.normal(jax.random.key(7), (7, 3))

    def decode_fn(candidate):
        return jax.nn.softmax(candidate @ weights)

    probabilities = decode_fn(alpha)
    got = audits.adversarial.adversarial_objective(
        logits, decode_fn, alpha, probabilities, mask, settings
    )
    candidates = models.masked_softmax(logits, mask)
    expected = 0.0
    for k in range(4):
        change = float(stats.tvd(decode_fn(candidates[k]), probabilities))
        expected += 500.0 * max(change - 0.01, 0.0) - float(stats.jsd(candidates[k], alpha))
    pairs = [float(stats.jsd(candidates[a], candidates[b]))
             for a in range(4) for b in range(a + 1, 4)]  # fmt: skip
    expected -= sum(pairs) / len(pairs)
    # float32 (its spacing near 390 is 3e-5) against a float64 sum: a relative tolerance.
    assert float(got) == pytest.approx(expected, rel=1e-6)
