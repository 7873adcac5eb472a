"""attn_audit.audits.loo: leave-one-out against a loop of deletions, in chunks and at once."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attn_audit import audits, batch_engine, models
from attn_audit.audits.loo import leave_one_out_of_batch, leave_one_out_of_pairs
from tests._fixtures import (
    CASES,
    forward_probabilities,
    tiny_batch,
    tiny_model,
    tiny_transformer_config,
)


@pytest.mark.parametrize("encoder, attention, task, num_classes", CASES)
def test_loo_equals_a_python_loop_of_deletions(encoder, attention, task, num_classes):
    model, params = tiny_model(encoder, attention, task, num_classes)
    batch = tiny_batch(questions=task == "qa")
    vmapped = np.asarray(audits.engine.loo_batch(model, params, batch_engine.instances_from_batch(
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
    instances = batch_engine.instances_from_batch(
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
    instances = batch_engine.instances_from_batch(
        {k: jnp.asarray(v) for k, v in tiny_batch(questions=task == "qa").items()}
    )
    assert model.deletion_states is not None
    shortcut = audits.engine.loo_batch(model, params, instances)
    re_encoded = audits.engine.loo_batch(ReEncoding(model.config), params, instances)
    np.testing.assert_allclose(shortcut, re_encoded, atol=1e-6)


@pytest.mark.parametrize("variants_per_step", [1, 7, 64, 1000])
def test_only_the_real_deletions_of_a_batch_equal_every_rows_own(variants_per_step):
    """``leave_one_out_of_batch`` (the real (row, position) pairs gathered, run in steps of
    any size) equals ``leave_one_out`` vmapped over rows, padding row included."""
    config = tiny_transformer_config(num_heads=3, num_layers=2)
    model, params = audits.TransformerModel(config), models.init(jax.random.key(5), config)
    batch = tiny_batch((7, 4, 9, 3), width=12, seed=2)
    batch["token_ids"][3], batch["lengths"][3] = 0, 0  # a data-layer padding row
    instances = batch_engine.instances_from_batch({k: jnp.asarray(v) for k, v in batch.items()})
    per_row = jax.jit(jax.vmap(lambda i: audits.leave_one_out(model, params, i)))(instances)
    packed = jax.jit(leave_one_out_of_batch, static_argnums=(0, 3))(
        model, params, instances, variants_per_step
    )
    assert np.any(np.asarray(per_row) > 0)
    np.testing.assert_allclose(np.asarray(packed), np.asarray(per_row), atol=1e-7)
    # The engine takes this path for a model without a deletion shortcut.
    np.testing.assert_allclose(
        audits.engine.loo_batch(model, params, instances), np.asarray(per_row), atol=1e-7
    )
    assert audits.engine.loo_variants_per_step(32, 64) == 124  # 32 · 62 / 16
    assert audits.engine.loo_variants_per_step(32, 4096) == 64  # the memory budget, 2^18 / T


@pytest.mark.parametrize("encoder, attention, task, num_classes", CASES)
@pytest.mark.parametrize("pairs_per_step", [1, 5, None])
def test_only_the_real_pairs_of_a_batch_equal_every_rows_own(
    encoder, attention, task, num_classes, pairs_per_step
):
    """``leave_one_out_of_pairs`` (each row's real pairs of deletions gathered over the batch,
    the row's context read in place, steps of any size) equals ``leave_one_out`` of each row,
    a data-layer padding row and a row of one real token included."""
    model, params = tiny_model(encoder, attention, task, num_classes)
    batch = tiny_batch((7, 3, 10, 4), width=12, seed=2, questions=task == "qa")
    batch["token_ids"][3], batch["lengths"][3] = 0, 0  # a data-layer padding row
    instances = batch_engine.instances_from_batch({k: jnp.asarray(v) for k, v in batch.items()})
    per_row = jax.jit(jax.vmap(lambda i: audits.leave_one_out(model, params, i)))(instances)
    packed = jax.jit(leave_one_out_of_pairs, static_argnums=(0, 3))(
        model, params, instances, pairs_per_step
    )
    assert np.all(np.asarray(per_row)[[0, 2]].sum(axis=1) > 0)
    np.testing.assert_allclose(np.asarray(packed), np.asarray(per_row), atol=1e-6)
    assert audits.engine.loo_pairs_per_step(32, 48) == 368  # 32 · 23 / 2
    assert audits.engine.loo_pairs_per_step(32, 4096) == 32  # the memory budget, 2^18 / 2T
