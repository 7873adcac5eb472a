"""attn_audit.relevance: rollout against a numpy loop, exact flow against AZ's networkx code."""

import concurrent.futures
import multiprocessing

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attn_audit.audits import flow as flow_lib
from attn_audit.audits import rollout
from tests.reference import networkx_flow


def random_attention(seed, layers, n, heads=3, concentration=0.3):
    """``[layers, heads, n, n]`` float32 rows drawn from a Dirichlet: peaked for small alpha."""
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.full(n, concentration), size=(layers, heads, n)).astype(np.float32)


def peaked_attention(seed, layers, n, heads=4):
    """Attention as trained transformers show it: heads on [CLS], [SEP], the previous token and
    the token itself, softmax of sharp scores plus noise."""
    rng = np.random.default_rng(seed)
    targets = [np.zeros(n, int), np.full(n, n - 1), np.maximum(np.arange(n) - 1, 0), np.arange(n)]
    scores = rng.normal(scale=1.0, size=(layers, heads, n, n))
    for head in range(heads):
        scores[:, head, np.arange(n), targets[head % 4]] += 6.0
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    return (weights / weights.sum(-1, keepdims=True)).astype(np.float32)


def numpy_residual(attention):
    averaged = np.asarray(attention, np.float64).mean(axis=1)
    augmented = 0.5 * averaged + 0.5 * np.eye(averaged.shape[-1])
    return augmented / augmented.sum(-1, keepdims=True)


def numpy_rollout(attention):
    residual = numpy_residual(attention)
    rolled, current = [], np.eye(residual.shape[-1])
    for layer in residual:
        current = layer @ current
        rolled.append(current)
    return np.stack(rolled)


# --- raw, residual, rollout (JAX) ---------------------------------------------------------------


def test_raw_attention_is_the_head_average():
    attention = random_attention(0, layers=2, n=4)
    np.testing.assert_allclose(rollout.raw_attention(attention), attention.mean(1), atol=1e-7)


def test_residual_attention_of_two_tokens_by_hand():
    # One layer, one head, attention [1, e]/(1+e) in both rows.
    e = np.e
    attention = np.array([[[[1 / (1 + e), e / (1 + e)], [1 / (1 + e), e / (1 + e)]]]], np.float32)
    expected = np.array(
        [[0.5 / (1 + e) + 0.5, 0.5 * e / (1 + e)], [0.5 / (1 + e), 0.5 * e / (1 + e) + 0.5]]
    )
    np.testing.assert_allclose(rollout.residual_attention(attention)[0], expected, atol=1e-6)


def test_residual_attention_renormalises_rows():
    attention = 3.0 * random_attention(1, layers=3, n=5)  # rows sum to 3
    residual = rollout.residual_attention(attention)
    np.testing.assert_allclose(residual.sum(-1), 1.0, atol=1e-6)
    np.testing.assert_allclose(residual, numpy_residual(attention), atol=1e-6)


@pytest.mark.parametrize("layers, n", [(1, 3), (3, 5), (6, 8)])
def test_rollout_matches_a_numpy_loop(layers, n):
    attention = random_attention(layers, layers, n)
    rolled = jax.jit(rollout.rollout)(attention)
    assert rolled.shape == (layers, n, n)
    # float32 products of up to 6 row-stochastic 8x8 matrices: 1e-5 absorbs rounding.
    np.testing.assert_allclose(rolled, numpy_rollout(attention), atol=1e-5)
    np.testing.assert_allclose(rolled.sum(-1), 1.0, atol=1e-5)


def test_rollout_vmapped_with_lengths_equals_each_instance_cut_to_its_length():
    n, lengths = 6, np.array([6, 3, 1, 5])
    attention = np.stack([random_attention(seed, layers=3, n=n) for seed in range(len(lengths))])
    batched = jax.jit(jax.vmap(rollout.rollout))(attention, lengths)
    for instance, length, rolled in zip(attention, lengths, batched, strict=True):
        expected = np.zeros((3, n, n))
        expected[:, :length, :length] = numpy_rollout(instance[..., :length, :length])
        np.testing.assert_allclose(rolled, expected, atol=1e-5)


def test_rollout_does_not_recompile_for_new_lengths():
    rollout_batch = jax.jit(jax.vmap(rollout.rollout))
    attention = np.stack([random_attention(seed, layers=2, n=4) for seed in range(3)])
    rollout_batch(attention, jnp.array([4, 2, 3]))
    rollout_batch(attention, jnp.array([1, 4, 4]))
    assert rollout_batch._cache_size() == 1


@pytest.mark.parametrize("function", [rollout.raw_attention, rollout.rollout])
def test_jax_functions_reject_a_wrong_rank(function):
    with pytest.raises(ValueError, match=r"\[layers, heads, n, n\].*jax.vmap"):
        function(np.ones((2, 4, 4), np.float32))
    with pytest.raises(ValueError, match="square"):
        function(np.ones((2, 1, 4, 3), np.float32))


# --- attention flow -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "seed, layers, n",
    [(0, 2, 3), (1, 3, 3), (2, 4, 3), (3, 2, 5), (4, 3, 5), (5, 4, 5), (6, 3, 8), (7, 4, 8)],
)
def test_flow_equals_networkx_on_random_attention(seed, layers, n):
    attention = random_attention(seed, layers, n)
    # Both are max flows of the same graph; ours rounds capacities to 2^-30 (error bound in
    # the module docstring), networkx works in float64. 1e-5 is the task's tolerance.
    np.testing.assert_allclose(
        flow_lib.attention_flow(attention),
        networkx_flow.attention_flow_networkx(attention),
        atol=1e-5,
    )


@pytest.mark.parametrize("seed", [0, 1])
def test_flow_equals_networkx_on_peaked_attention(seed):
    attention = peaked_attention(seed, layers=4, n=8)
    flow = flow_lib.attention_flow(attention)
    np.testing.assert_allclose(flow, networkx_flow.attention_flow_networkx(attention), atol=1e-5)
    np.testing.assert_allclose(flow.sum(-1), 1.0, atol=1e-12)


def test_flow_of_the_first_layer_is_the_residual_attention():
    attention = random_attention(2, layers=3, n=6)
    flow = flow_lib.attention_flow(attention)
    residual = np.asarray(rollout.residual_attention(attention))
    # float32 residual against float64 flow.
    np.testing.assert_allclose(flow[0], residual[0] / residual[0].sum(-1, keepdims=True), atol=1e-6)


def test_flow_of_the_second_layer_is_its_closed_form():
    residual = numpy_residual(random_attention(3, layers=2, n=5))
    flow = flow_lib.attention_flow(random_attention(3, layers=2, n=5))
    expected = np.array(
        [[sum(min(residual[0][k, j], residual[1][i, k]) for k in range(5)) for j in range(5)]
         for i in range(5)]
    )  # fmt: skip
    np.testing.assert_allclose(flow[1], expected / expected.sum(-1, keepdims=True), atol=1e-12)


def test_flow_when_every_token_attends_to_itself_is_the_identity():
    attention = np.broadcast_to(np.eye(4, dtype=np.float32), (5, 2, 4, 4))
    np.testing.assert_array_equal(
        flow_lib.attention_flow(attention), np.broadcast_to(np.eye(4), (5, 4, 4))
    )


def test_flow_does_not_depend_on_how_pairs_are_grouped_into_max_flow_calls(monkeypatch):
    attention = peaked_attention(4, layers=5, n=7)
    grouped = flow_lib.attention_flow(attention)
    monkeypatch.setattr(flow_lib, "_EDGES_PER_CALL", 1)  # one pair per scipy call
    np.testing.assert_array_equal(flow_lib.attention_flow(attention), grouped)


def test_flow_with_length_equals_the_flow_of_the_cut_maps():
    attention = random_attention(5, layers=4, n=7)
    attention[..., 4:] = 9.0  # padding that must not be read
    flow = flow_lib.attention_flow(attention, length=4)
    np.testing.assert_array_equal(flow[:, 4:], 0)
    np.testing.assert_array_equal(flow[:, :, 4:], 0)
    np.testing.assert_array_equal(flow[:, :4, :4], flow_lib.attention_flow(attention[..., :4, :4]))


def test_flow_of_a_batch_equals_each_instance():
    attention = np.stack([random_attention(seed, layers=3, n=5) for seed in range(3)])
    lengths = np.array([5, 2, 4])
    expected = [
        flow_lib.attention_flow(instance, int(length))
        for instance, length in zip(attention, lengths, strict=True)
    ]
    np.testing.assert_array_equal(flow_lib.attention_flow_batch(attention, lengths), expected)
    with concurrent.futures.ThreadPoolExecutor(2) as executor:
        np.testing.assert_array_equal(
            flow_lib.attention_flow_batch(attention, lengths, executor=executor), expected
        )


def test_flow_of_a_batch_in_a_spawned_process_pool():
    attention = np.stack([random_attention(seed, layers=3, n=3) for seed in range(2)])
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as executor:
        pooled = flow_lib.attention_flow_batch(attention, executor=executor)
    np.testing.assert_array_equal(pooled, flow_lib.attention_flow_batch(attention))


@pytest.mark.parametrize(
    "attention, length, message",
    [
        (np.ones((2, 4, 4)), None, r"\[layers, heads, n, n\].*Add missing axes"),
        (np.ones((1, 2, 2, 4, 4)), None, "attention_flow_batch"),
        (np.ones((2, 1, 4, 3)), None, "square"),
        (np.zeros((2, 1, 0, 0)), None, "empty"),
        (-np.ones((2, 1, 3, 3)), None, "negative.*after the softmax"),
        (np.full((2, 1, 3, 3), np.nan), None, "NaN.*length"),
        (np.ones((2, 1, 3, 3)), 4, r"length must be an integer in \[1, 3\]"),
        (np.ones((2, 1, 3, 3)), 0, "length must be"),
    ],
)
def test_flow_rejects_bad_input_with_a_fix(attention, length, message):
    with pytest.raises(ValueError, match=message):
        flow_lib.attention_flow(attention, length)


def test_flow_reads_only_the_real_positions():
    attention = random_attention(6, layers=2, n=4)
    attention[..., 3, :] = np.nan  # a padded query row, as a softmax over no keys gives
    assert np.isfinite(flow_lib.attention_flow(attention, length=3)).all()


def test_flow_batch_rejects_lengths_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r"lengths must have shape \[batch\] = \(2,\)"):
        flow_lib.attention_flow_batch(np.ones((2, 1, 1, 3, 3)), lengths=np.array([3]))
    with pytest.raises(ValueError, match=r"attention\[None\]"):
        flow_lib.attention_flow_batch(np.ones((1, 1, 3, 3)))


@pytest.mark.parametrize("layers, n, length, row", [(1, 4, None, 0), (2, 5, 4, 3), (5, 7, 6, 0)])
def test_flow_row_equals_that_row_of_the_full_flow(layers, n, length, row):
    attention = random_attention(7, layers=layers, n=n)
    full = flow_lib.attention_flow(attention, length)
    np.testing.assert_array_equal(flow_lib.attention_flow_row(attention, length, row), full[:, row])


def test_flow_row_of_a_batch_equals_each_instance():
    attention = np.stack([peaked_attention(seed, layers=4, n=6) for seed in range(3)])
    lengths = np.array([6, 3, 5])
    expected = [
        flow_lib.attention_flow_row(instance, int(length))
        for instance, length in zip(attention, lengths, strict=True)
    ]
    np.testing.assert_array_equal(
        flow_lib.attention_flow_batch(attention, lengths, row=0), expected
    )


def test_flow_row_rejects_a_row_outside_the_real_positions():
    with pytest.raises(ValueError, match=r"row must be a position in \[0, 3\)"):
        flow_lib.attention_flow_row(random_attention(8, layers=2, n=4), length=3, row=3)
