"""attn_audit.audits.loo: leave-one-out against a loop of deletions, in chunks and at once."""

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest

from attn_audit import audits
from tests._fixtures import CASES, forward_probabilities, tiny_batch, tiny_model


@pytest.mark.parametrize("encoder, attention, task, num_classes", CASES)
def test_loo_equals_a_python_loop_of_deletions(encoder, attention, task, num_classes):
    model, params = tiny_model(encoder, attention, task, num_classes)
    batch = tiny_batch(questions=task == "qa")
    vmapped = np.asarray(audits.engine.loo_batch(model, params, audits.engine.instances_from_batch(
        {k: jnp.asarray(v) for k, v in batch.items()})))  # fmt: skip
    for row, length in enumerate(batch["lengths"]):
        question = None
        if task == "qa":
            question = (batch["question_ids"][row], batch["question_lengths"][row])
        ids = list(batch["token_ids"][row][:length])
        original, _ = forward_probabilities(
            model, params, batch["token_ids"][row], length, question
        )
        expected = np.zeros(batch["token_ids"].shape[1])
        for t in range(1, length - 1):
            shorter = ids[:t] + ids[t + 1 :]
            padded = np.zeros(batch["token_ids"].shape[1], np.int32)
            padded[: len(shorter)] = shorter
            deleted, _ = forward_probabilities(model, params, padded, length - 1, question)
            expected[t] = 0.5 * np.abs(deleted - original).sum()
        np.testing.assert_allclose(vmapped[row], expected, atol=1e-6)


def test_loo_in_chunks_equals_loo_at_once():
    model, params = tiny_model("lstm", "tanh")
    instances = audits.engine.instances_from_batch(
        {k: jnp.asarray(v) for k, v in tiny_batch().items()}
    )
    at_once = audits.engine.loo_batch(model, params, instances)
    for chunk in (1, 5, 11):
        chunked = audits.engine.loo_batch(model, params, instances, chunk)
        np.testing.assert_allclose(chunked, at_once, atol=1e-6)
    assert audits.engine.loo_positions_per_chunk(32, 64) is None
    assert audits.engine.loo_positions_per_chunk(32, 512) == 16


@dataclasses.dataclass(frozen=True)
class ReEncoding(audits.JWModel):
    """A JW model without the deletion shortcut: leave-one-out re-encodes every variant."""

    def deletion_states(self, params, instance, embedded, states):
        return None


@pytest.mark.parametrize("encoder, attention, task, num_classes", CASES)
def test_the_deletion_shortcut_equals_re_encoding_every_variant(
    encoder, attention, task, num_classes
):
    model, params = tiny_model(encoder, attention, task, num_classes)
    instances = audits.engine.instances_from_batch(
        {k: jnp.asarray(v) for k, v in tiny_batch(questions=task == "qa").items()}
    )
    assert model.deletion_states is not None
    shortcut = audits.engine.loo_batch(model, params, instances)
    re_encoded = audits.engine.loo_batch(ReEncoding(model.config), params, instances)
    np.testing.assert_allclose(shortcut, re_encoded, atol=1e-6)
