"""Small-graph helpers of PAF grouping in NumPy: connected components of peak links, limb hops
between keypoint types.

SciPy's ``scipy.sparse.csgraph`` computes the same, but importing ``scipy.sparse`` takes about
0.35 s, a third of the start-up budget of ``posekit predict`` on an exported model (the first
image out in under 1 s of process start, ``benchmarks/deploy.py``); these graphs have at most a
few hundred nodes (peaks) or a few dozen (keypoint types). ``tests/codecs/test_graph.py`` checks
both against SciPy on random graphs.
"""

from __future__ import annotations

import numpy as np

__all__ = ["connected_labels", "hop_distances"]


def connected_labels(num_nodes: int, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """(num_nodes,) int64 component label of each node of the undirected graph with edges
    ``src[i] -- dst[i]``: labels 0..C-1, numbered in the order of each component's smallest node
    (as ``scipy.sparse.csgraph.connected_components``).

    Pointer jumping on the minimum label: each round every edge pulls both ends to the smaller
    label and every label jumps to its label's label, so a component of diameter d settles in
    O(log d) to O(d) vectorised rounds.
    """
    label = np.arange(num_nodes, dtype=np.int64)
    src = np.asarray(src, dtype=np.int64)
    dst = np.asarray(dst, dtype=np.int64)
    while True:
        low = np.minimum(label[src], label[dst])
        new = label.copy()
        np.minimum.at(new, src, low)
        np.minimum.at(new, dst, low)
        new = new[new]  # jump: follow the label's own label
        if np.array_equal(new, label):
            break
        label = new
    _, dense = np.unique(label, return_inverse=True)
    return dense.astype(np.int64)


def hop_distances(num_nodes: int, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """(num_nodes, num_nodes) float64 number of edges on the shortest path between two nodes of
    the undirected graph (0 on the diagonal, ``inf`` between components), by breadth-first
    frontiers over the adjacency matrix (``scipy.sparse.csgraph.shortest_path(...,
    unweighted=True, directed=False)``)."""
    adjacency = np.zeros((num_nodes, num_nodes), dtype=bool)
    adjacency[src, dst] = adjacency[dst, src] = True
    hops = np.full((num_nodes, num_nodes), np.inf)
    reached = np.eye(num_nodes, dtype=bool)
    frontier = reached.copy()
    np.fill_diagonal(hops, 0.0)
    for step in range(1, num_nodes):
        frontier = (frontier.astype(np.uint8) @ adjacency.astype(np.uint8) > 0) & ~reached
        if not frontier.any():
            break
        hops[frontier] = step
        reached |= frontier
    return hops
