r"""Exact attention flow (Abnar & Zuidema 2020, §3; SPEC §5).

Both read a transformer's attention as a layered graph: one node per (layer, position),
layer 0 the input tokens, and an edge from node (l−1, j) to node (l, i) weighted by the
head-averaged attention with the residual added, ``A'_l = rownorm(0.5·A_l + 0.5·I)``.

- ``rollout``: ``R_1 = A'_1``, ``R_l = A'_l · R_{l−1}``, the sum over paths of the products
  of their weights (JAX, jit- and vmap-able).
- ``attention_flow``: the edges are capacities and ``flow_l[i, j]`` is the max-flow value from
  input node (0, j) to node (l, i), each row normalised to sum 1 (numpy and scipy's Dinic).
- ``attention_flow_row``: one output row of it (the CLS row a classifier reads), n times fewer
  max-flow problems.

**How the flow is exact and fast.** Layer 1 has one path per pair, so its flow is ``A'_1``;
layer 2 has one path per middle node k, disjoint from the others, so its flow is
``Σ_k min(A'_1[k, j], A'_2[i, k])``. Both are computed in float64 with no approximation.
From layer 3 on, every (output i, input j) pair is one max-flow problem on the nodes that
can carry its flow: (0, j), layers 1..l−1 and (l, i) — nodes of layer 0 other than j and
layers above l cannot. Many pairs are solved by one call of
``scipy.sparse.csgraph.maximum_flow``: their graphs are joined as disjoint copies under one
super source and one super sink. The union's max flow is the sum of the copies' max flows,
so any maximum flow of the union carries a maximum flow of each copy, whose value is read on
the copy's edge from the super source. The index structure of the union depends only on
(n, l, copies) and is built once; each call fills in its capacities.

**Error bound.** scipy's max flow needs integer capacities (int32: an int64 graph is cut to
32 bits without a warning), so capacities are rounded to multiples of ``2^-30``, an error of
at most ``2^-31`` per edge. A flow value then moves by at most ``2^-31`` times the number of
edges of a minimum cut, at most ``m = 2n + (l−2)·n²``: ``≤ 1.9e-6`` for n = 32, l = 6 (about
``n·2^-31 = 1.5e-8`` when the minimum cut is the sink's or the source's n edges, the usual
case). Every row sum is at least 1 (the rollout is a feasible flow for every pair and its row
sums to 1), so a normalised value moves by at most ``(n + 1)·m·2^-31`` (``≤ 6.4e-5`` for
n = 32, l = 6). Float32 attention has no more resolution than ``6e-8``. Measured against
networkx's float max flow, the differences are below ``1e-7`` (tests/audits/flow_test.py,
benchmarks/FLOW_RESULTS.md).

**Padding.** An optional ``length`` keeps positions ``[0, length)``: the attention is cut to
them before the residual and the renormalisation, and the padded rows and columns of every
output are zero.
"""

import concurrent.futures
import functools

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph

# Capacities are integers in units of 2^-30; a capacity is at most 1, a copy's flow at most
# 1 + n·2^-31, both far from the int32 limit.
CAPACITY_SCALE = 2**30
_INT32_MAX = np.iinfo(np.int32).max
# Copies per max-flow call hold about this many edges: one call per pair pays scipy's fixed
# cost (~0.1 ms); very large unions pay for Dinic phases that only a few copies need.
_EDGES_PER_CALL = 1 << 15


def _checked_shape(attention, function: str, rank: int = 4) -> np.ndarray:
    """The attention as a numpy array of the right rank, or a ValueError saying what to do."""
    values = np.asarray(attention)
    shape = "[layers, heads, n, n]" if rank == 4 else "[batch, layers, heads, n, n]"
    if values.ndim != rank or values.shape[-1] != values.shape[-2]:
        if rank == 4 and values.ndim == 5:
            fix = "Use attention_flow_batch for a batch."
        elif rank == 5 and values.ndim == 4:
            fix = "Add a batch axis (attention[None]) or use attention_flow."
        else:
            fix = "Add missing axes (attention[:, None] for one head)."
        raise ValueError(
            f"{function} expects attention of shape {shape} (square maps, rows queries); got "
            f"{values.shape}. {fix}"
        )
    if min(values.shape) == 0:
        raise ValueError(f"{function} got an empty attention array of shape {values.shape}.")
    if values.dtype.kind not in "biuf":
        raise ValueError(f"{function} expects real attention weights, got dtype {values.dtype}.")
    return values


def _checked_values(values: np.ndarray, function: str) -> np.ndarray:
    """float64 attention with no NaN, inf or negative entry, or a ValueError saying what to do."""
    values = values.astype(np.float64)
    if not np.all(np.isfinite(values)):
        where = tuple(int(i) for i in np.argwhere(~np.isfinite(values))[0])
        raise ValueError(
            f"{function}: attention has NaN or inf (first at index {where}). Fill masked scores "
            "with a large negative number, not -inf, before the softmax; for padding, pass "
            "`length` so that padded positions are not read."
        )
    if np.any(values < 0):
        where = tuple(int(i) for i in np.argwhere(values < 0)[0])
        raise ValueError(
            f"{function}: attention has negative entries (first {values[where]:.3g} at index "
            f"{where}). Pass attention weights after the softmax, not scores."
        )
    return values


def _checked_length(length, n: int, function: str) -> int:
    if length is None:
        return n
    if isinstance(length, bool) or int(length) != length or not 1 <= length <= n:
        raise ValueError(
            f"{function}: length must be an integer in [1, {n}] (the number of real positions of "
            f"maps of size {n}); got {length!r}."
        )
    return int(length)


def _residual_numpy(attention: np.ndarray) -> np.ndarray:
    """``rownorm(0.5·Ā + 0.5·I)`` in float64, as ``residual_attention`` without padding."""
    averaged = attention.mean(axis=1)  # [layers, n, n]
    augmented = 0.5 * averaged + 0.5 * np.eye(averaged.shape[-1])
    return augmented / augmented.sum(axis=-1, keepdims=True)


@functools.lru_cache(maxsize=64)
def _union_structure(n: int, layer: int, copies: int) -> tuple[np.ndarray, np.ndarray, int]:
    """CSR ``(indices, indptr, nodes)`` of ``copies`` disjoint pair graphs for output layer l.

    Node 0 is the super source, node 1 the super sink. A copy's nodes are numbered top down:
    its output node (l, i), layers l−1 down to 1 (n each), its input node (0, j). So in each
    row of the CSR graph (sorted by target) the edges up towards the sink come before the
    reverse edges scipy adds, and Dinic's depth-first search tries them first (measured
    faster than bottom-up numbering). Its edges, row by row: (l, i) → sink; (l−1, k) → (l, i);
    (m, k) → (m+1, k') for m = l−2..1; (0, j) → (1, k). The super source's row holds one edge
    to each copy's (0, j). Layer ≥ 3 only.
    """
    per_copy_nodes = (layer - 1) * n + 2
    first = 2 + per_copy_nodes * np.arange(copies)  # [copies] each copy's (l, i) node
    input_node = per_copy_nodes - 1
    positions = np.arange(n)
    targets = [np.array([-1]), np.zeros(n, np.int64)]  # -1 marks the super sink
    for m in range(layer - 2, 0, -1):
        layer_above = 1 + (layer - 2 - m) * n  # local number of node (m+1, 0)
        targets.append(np.tile(layer_above + positions, n))
    targets.append(1 + (layer - 2) * n + positions)  # (0, j) -> layer 1
    local = np.concatenate(targets)  # [edges per copy]
    global_targets = np.where(local < 0, 1, first[:, None] + local)  # [copies, edges per copy]
    indices = np.concatenate([first + input_node, global_targets.ravel()])
    row_lengths = np.concatenate([[1], np.ones(n, np.int64), np.full((layer - 2) * n, n), [n]])
    row_lengths = np.concatenate([[copies, 0], np.tile(row_lengths, copies)])
    indptr = np.concatenate([[0], np.cumsum(row_lengths)])
    return indices.astype(np.int32), indptr.astype(np.int32), 2 + copies * per_copy_nodes


def _max_flows(capacities: np.ndarray, layer: int, outputs: np.ndarray, inputs: np.ndarray):
    """Max-flow values from (0, inputs[c]) to (layer, outputs[c]), in capacity units.

    Args:
      capacities: ``[layers, n, n]`` int32, ``capacities[l-1][i, j]`` on edge (l−1, j) → (l, i).
      layer: output layer l ≥ 3 (1-based).
      outputs, inputs: ``[copies]`` positions i and j of the pairs.

    Returns:
      ``[copies]`` int64 max-flow values.
    """
    n = capacities.shape[-1]
    copies = len(outputs)
    indices, indptr, nodes = _union_structure(n, layer, copies)
    # The layers every copy shares, in the structure's row order: (m, k) -> (m+1, k') holds
    # capacities[m][k', k], row k of the transpose.
    shared = np.concatenate([capacities[m].T.ravel() for m in range(layer - 2, 0, -1)])
    edges_per_copy = 1 + n + shared.size + n
    per_copy = np.empty((copies, edges_per_copy), np.int32)
    per_copy[:, 0] = _INT32_MAX
    per_copy[:, 1 : 1 + n] = capacities[layer - 1][outputs]
    per_copy[:, 1 + n : 1 + n + shared.size] = shared
    per_copy[:, 1 + n + shared.size :] = capacities[0][:, inputs].T
    data = np.concatenate([np.full(copies, _INT32_MAX, np.int32), per_copy.ravel()])
    graph = sparse.csr_array((data, indices, indptr), shape=(nodes, nodes))
    graph.has_sorted_indices = True
    flow = csgraph.maximum_flow(graph, 0, 1).flow
    return flow.data[flow.indptr[0] : flow.indptr[1]].astype(np.int64)


def _unnormalised_flow(residual: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """Max-flow values from (0, j) to (l, i) over residual maps ``A'``, for output rows i.

    Args:
      residual: ``[layers, n, n]`` float64 ``A'``.
      rows: output positions i to compute (``[rows]`` ints); None for all n.

    Returns:
      ``[layers, rows, n]``.
    """
    layers, n, _ = residual.shape
    rows = np.arange(n) if rows is None else np.asarray(rows, np.int64)
    flow = np.empty((layers, len(rows), n))
    flow[0] = residual[0][rows]
    if layers >= 2:
        # One path through each middle node k, disjoint from the others.
        # [i, k, j]: min(A'_1[k, j], A'_2[i, k]), summed over k.
        flow[1] = np.minimum(residual[0][None, :, :], residual[1][rows][:, :, None]).sum(axis=1)
    if layers >= 3:
        capacities = np.rint(residual * CAPACITY_SCALE).astype(np.int32)
        outputs, inputs = (grid.ravel() for grid in np.meshgrid(rows, np.arange(n), indexing="ij"))
        for layer in range(3, layers + 1):
            edges_per_copy = 2 + 2 * n + (layer - 2) * n * n
            per_call = max(1, _EDGES_PER_CALL // edges_per_copy)
            values = np.empty(len(outputs), np.int64)
            for start in range(0, len(outputs), per_call):
                pairs = slice(start, start + per_call)
                values[pairs] = _max_flows(capacities, layer, outputs[pairs], inputs[pairs])
            flow[layer - 1] = values.reshape(len(rows), n) / CAPACITY_SCALE
    return flow


def attention_flow(attention, length: int | None = None) -> np.ndarray:
    """Attention flow, the max-flow value from each input token to each node (AZ §3, SPEC §5).

    The graph has nodes (l, i) for l = 0..L, i = 0..n−1 and an edge (l−1, j) → (l, i) of
    capacity ``A'_l[i, j]``, ``A' = rownorm(0.5·Ā + 0.5·I)``. ``flow[l−1][i, j]`` is the value
    of a maximum flow from (0, j) to (l, i), divided by its row sum ``Σ_j``. Layers 1 and 2 are
    closed forms; from layer 3 on the values are exact max flows of capacities rounded to
    multiples of 2^-30 (see the module docstring for the error bound, at most (n+1)·m·2^-31
    with m = 2n + (l−2)n², below 1e-7 when measured).

    Cost: ``(L−2)·n²`` max-flow problems of about ``(l−2)·n²`` edges each; about 0.3 s for
    n = 32, 6 layers on one core, over 1000 times faster than AZ's networkx code
    (benchmarks/FLOW_RESULTS.md). numpy and scipy, not traceable by JAX.

    Args:
      attention: ``[layers, heads, n, n]`` nonnegative attention weights (numpy, JAX or any
        array-like), rows queries.
      length: number of real positions; the rest is cut off first, and its rows and columns
        of the result are 0.

    Returns:
      ``[layers, n, n]`` float64; real rows sum to 1.
    """
    values = _checked_shape(attention, "attention_flow")
    n = values.shape[-1]
    length = _checked_length(length, n, "attention_flow")
    real = _checked_values(values[..., :length, :length], "attention_flow")
    residual = _residual_numpy(real)
    flow = _unnormalised_flow(residual)
    result = np.zeros(values.shape[:1] + (n, n))
    result[:, :length, :length] = flow / flow.sum(axis=-1, keepdims=True)
    return result


def attention_flow_row(attention, length: int | None = None, row: int = 0) -> np.ndarray:
    """One output position's attention flow at every layer, ``attention_flow(...)[:, row]``.

    Solves only the n max-flow problems of that row per layer instead of all n²: for the
    CLS row (``row=0``, what a classifier reads, AZ §2) it is n times cheaper than
    ``attention_flow``, with the same values (same capacities, same exact max flows).

    Args:
      attention: ``[layers, heads, n, n]`` nonnegative attention weights, rows queries.
      length: number of real positions; the rest is cut off first and is 0 in the result.
      row: the output position i, ``0 <= row < length``.

    Returns:
      ``[layers, n]`` float64: ``flow_l[row, j]`` normalised over j; sums to 1 per layer.
    """
    values = _checked_shape(attention, "attention_flow_row")
    n = values.shape[-1]
    length = _checked_length(length, n, "attention_flow_row")
    if isinstance(row, bool) or int(row) != row or not 0 <= row < length:
        raise ValueError(
            f"attention_flow_row: row must be a position in [0, {length}) (the real positions); "
            f"got {row!r}."
        )
    real = _checked_values(values[..., :length, :length], "attention_flow_row")
    flow = _unnormalised_flow(_residual_numpy(real), np.array([int(row)]))[:, 0]  # [layers, n']
    result = np.zeros(values.shape[:1] + (n,))
    result[:, :length] = flow / flow.sum(axis=-1, keepdims=True)
    return result


def _attention_flow_instance(arguments) -> np.ndarray:
    attention, length, row = arguments
    if row is None:
        return attention_flow(attention, length)
    return attention_flow_row(attention, length, row)


def attention_flow_batch(
    attention,
    lengths=None,
    *,
    row: int | None = None,
    executor: concurrent.futures.Executor | None = None,
) -> np.ndarray:
    """``attention_flow`` of every instance of a batch, in this process or in an executor.

    Max flow runs in scipy's C code and holds the GIL, so threads do not help; pass a process
    pool to use several cores, e.g.
    ``ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn"))`` (spawn, since
    forking a process that runs JAX can deadlock). A pool pays its start-up (each worker
    imports this module and JAX, about a second) once; keep it for several batches.

    Args:
      attention: ``[batch, layers, heads, n, n]`` nonnegative attention weights.
      lengths: ``[batch]`` numbers of real positions, or None for all.
      row: None for every output row; an int for that row only (``attention_flow_row``).
      executor: where to run the instances; None runs them here, one after the other.

    Returns:
      ``[batch, layers, n, n]`` float64, equal to ``attention_flow`` of each instance; with
      ``row``, ``[batch, layers, n]``, equal to ``attention_flow_row``.
    """
    values = _checked_shape(attention, "attention_flow_batch", rank=5)
    if lengths is None:
        lengths = [None] * len(values)
    elif np.shape(lengths) != (len(values),):
        raise ValueError(
            f"attention_flow_batch: lengths must have shape [batch] = ({len(values)},); "
            f"got {np.shape(lengths)}."
        )
    arguments = [(instance, length, row) for instance, length in zip(values, lengths, strict=True)]
    if executor is None:
        flows = [_attention_flow_instance(argument) for argument in arguments]
    else:
        flows = list(executor.map(_attention_flow_instance, arguments))
    return np.stack(flows)
