"""codecs.graph against SciPy's csgraph (the reference) on random graphs and on every schema."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components, shortest_path

from posekit.codecs.graph import connected_labels, hop_distances
from posekit.schema import KeypointSchema


@pytest.mark.parametrize("seed", range(20))
def test_components_match_scipy(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 300))
    e = int(rng.integers(0, 2 * n))
    src, dst = rng.integers(0, n, (2, e))
    graph = coo_matrix((np.ones(e), (src, dst)), shape=(n, n))
    _, expected = connected_components(graph, directed=False)
    assert np.array_equal(connected_labels(n, src, dst), expected)


def test_a_long_chain_is_one_component():
    n = 500
    order = np.random.default_rng(0).permutation(n)
    labels = connected_labels(n, order[:-1], order[1:])
    assert (labels == 0).all()


@pytest.mark.parametrize("seed", range(10))
def test_hops_match_scipy(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 40))
    e = int(rng.integers(0, 2 * n))
    src, dst = rng.integers(0, n, (2, e))
    adjacency = np.zeros((n, n))
    adjacency[src, dst] = 1.0
    expected = shortest_path(adjacency, unweighted=True, directed=False)
    assert np.array_equal(hop_distances(n, src, dst), expected)


@pytest.mark.parametrize("name", ["coco_person", "coco_person_neck", "openpose18"])
def test_schema_hops_match_scipy(name):
    schema = KeypointSchema.load(name)
    src = np.array([limb.src for limb in schema.limbs])
    dst = np.array([limb.dst for limb in schema.limbs])
    k = schema.num_keypoints
    adjacency = np.zeros((k, k))
    adjacency[src, dst] = 1.0
    expected = shortest_path(adjacency, unweighted=True, directed=False)
    assert np.array_equal(hop_distances(k, src, dst), expected)
