"""attn_audit.evaluations.az_sweep: the batched, jitted sweep against a loop over instances."""

import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attn_audit import data
from attn_audit.evaluations import az, az_sweep
from tests.evaluations.az_test import EOS, SOS, params_of, tiny_config

# One compiled program each for the reference loop: every instance is padded to one width.
instance_scores = jax.jit(az.instance_scores, static_argnums=(1, 5))
correlations = jax.jit(az.correlations)


def test_padded_word_index_by_hand():
    word_indices = [np.array([-1, 0, 0, 1, -1]), np.array([-1, 0, -1])]
    padded = az_sweep.padded_word_index(word_indices, np.array([1, -1, 0]), 6)
    np.testing.assert_array_equal(
        padded, [[-1, 0, -1, -1, -1, -1], [-1] * 6, [-1, 0, 0, 1, -1, -1]]
    )
    assert padded.dtype == np.int32


def toy_split(real_lengths, seed=0):
    rng = np.random.default_rng(seed)
    token_ids = [np.array([SOS, *rng.integers(4, 20, n), EOS], np.int32) for n in real_lengths]
    labels = rng.integers(0, 2, len(real_lengths)).astype(np.int32)
    return data.EncodedSplit([None] * len(real_lengths), token_ids, labels)


def words_of(ids):
    """Two pieces per word: ``[-1, 0, 0, 1, 1, …, -1]``."""
    return np.array([-1, *(np.arange(len(ids) - 2) // 2), -1])


def loop_rho(run, split, word_indices, width=16):
    """Every instance on its own, padded to one width: ``{relevance: {importance: [N, L]}}``."""
    rho = {r: {i: [] for i in az.IMPORTANCES} for r in az.RELEVANCES}
    for n, ids in enumerate(split.token_ids):
        length = jnp.int32(len(ids))
        token_ids = jnp.zeros(width, jnp.int32).at[: len(ids)].set(ids)  # PAD = 0
        scores = instance_scores(
            run.params, run.model_config, token_ids, length, int(split.labels[n]), az.UNK_ID
        )
        flow = az.flow_relevance(np.asarray(scores["attention_maps"]), len(ids))
        relevances = {"raw": scores["raw"], "rollout": scores["rollout"],
                      "flow": jnp.asarray(flow, jnp.float32)}  # fmt: skip
        importances = {name: scores[name] for name in az.IMPORTANCES}
        mask = az.real_token_mask(length, width)
        if word_indices is None:
            one = correlations(relevances, importances, mask)
        else:
            word_index = np.full(width, -1, np.int32)
            word_index[: len(ids)] = word_indices[n]
            one = correlations(relevances, importances, mask, jnp.asarray(word_index))
        for r in az.RELEVANCES:
            for i in az.IMPORTANCES:
                rho[r][i].append(np.asarray(one[r][i]))
    return {r: {i: np.stack(v) for i, v in by_i.items()} for r, by_i in rho.items()}


@pytest.mark.parametrize("word_pieces", [False, True])
def test_evaluate_equals_a_loop_over_instances_and_compiles_once_per_width(word_pieces):
    config = tiny_config()
    run = types.SimpleNamespace(params=params_of(config), model_config=config)
    # Two buckets, batches of 2 with a padding row in each bucket.
    split = toy_split([3, 9, 5, 11, 2, 6, 10])
    word_indices = [words_of(ids) for ids in split.token_ids] if word_pieces else None
    boundaries = (8, 16)
    rho, timings = az_sweep.evaluate(run, split, boundaries, az.UNK_ID, word_indices, 2)
    expected = loop_rho(run, split, word_indices)
    for r in az.RELEVANCES:
        for i in az.IMPORTANCES:
            assert rho[r][i].shape == (7, 3)
            # float32 forward passes at another padded width: rounding only, which may swap
            # the ranks of nearly tied scores, hence 1e-5 as in the command's test.
            np.testing.assert_allclose(rho[r][i], expected[r][i], atol=1e-5)
    assert np.abs(rho["flow"]["blank_out"]).max() > 0.1  # the test has teeth
    assert set(timings) == {"scores_seconds", "flow_seconds", "correlation_seconds"}
    compiled = az_sweep.scores_batch._cache_size()
    az_sweep.evaluate(run, split, boundaries, az.UNK_ID, word_indices, 2)
    assert az_sweep.scores_batch._cache_size() == compiled
