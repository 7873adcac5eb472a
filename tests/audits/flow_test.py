"""attn_audit.audits.flow: exact attention flow against AZ's networkx code, closed forms,
batches, process pools and input checks. (Rollout: tests/audits/rollout_test.py.)"""

import concurrent.futures
import multiprocessing

import numpy as np
import pytest

from attn_audit.audits import flow as flow_lib
from attn_audit.audits import rollout
from tests._fixtures import numpy_residual, peaked_attention, random_attention
from tests.reference import networkx_flow


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
