"""Reference attention flow as Abnar & Zuidema's code computes it: networkx max flow per pair.

A test reference (networkx is a test dependency): ``attn_audit.audits.flow`` is checked
against it, and ``benchmarks/flow_vs_networkx.py`` times it.
"""

import networkx as nx
import numpy as np

from attn_audit.audits.flow import _checked_shape, _checked_values, _residual_numpy


def networkx_flow_graph(residual: np.ndarray):
    """AZ's flow graph as a networkx ``DiGraph``: node ``l·n + i`` for (l, i), edges l → l−1.

    Built as AZ's ``get_adjmat`` and ``draw_attention_graph`` do: an adjacency matrix with
    ``adj[l·n + i, (l−1)·n + j] = A'_l[i, j]`` read by ``from_numpy_array`` as capacities.
    """
    layers, n, _ = residual.shape
    adjacency = np.zeros(((layers + 1) * n, (layers + 1) * n))
    for layer in range(1, layers + 1):
        adjacency[layer * n : (layer + 1) * n, (layer - 1) * n : layer * n] = residual[layer - 1]
    return nx.from_numpy_array(adjacency, create_using=nx.DiGraph, edge_attr="capacity")


def attention_flow_networkx(attention, rows=None) -> np.ndarray:
    """Reference attention flow as AZ's code computes it: networkx max flow per pair.

    For each output node (l, i) and each input token j, ``nx.maximum_flow_value`` with
    Edmonds–Karp from (l, i) down to (0, j) on the whole graph (AZ's ``compute_flows``), then
    the row is normalised. Slow (seconds per row at n = 32); for tests and benchmarks.

    Args:
      attention: ``[layers, heads, n, n]`` nonnegative attention weights.
      rows: optional ``(layer_index, position)`` pairs (layer_index 0-based, for output layer
        layer_index + 1) to compute; the other rows are NaN. None computes every row.

    Returns:
      ``[layers, n, n]`` float64.
    """
    values = _checked_shape(attention, "attention_flow_networkx")
    residual = _residual_numpy(_checked_values(values, "attention_flow_networkx"))
    layers, n, _ = residual.shape
    graph = networkx_flow_graph(residual)
    if rows is None:
        rows = [(layer, i) for layer in range(layers) for i in range(n)]
    flow = np.full((layers, n, n), np.nan)
    for layer, i in rows:
        output_node = (layer + 1) * n + i
        row = [
            nx.maximum_flow_value(graph, output_node, j, flow_func=nx.flow.edmonds_karp)
            for j in range(n)
        ]
        flow[layer, i] = np.asarray(row) / np.sum(row)
    return flow
