"""PAF limb scoring against a pairwise reference; greedy and optimal per-limb matching."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import map_coordinates

from posekit import KeypointSchema
from posekit.codecs import paf_limbs
from posekit.codecs.paf import PafCodec
from posekit.codecs.paf_limbs import LimbPairs, LimbScoring
from posekit.codecs.peaks import find_peaks
from tests.codecs.conftest import make_peaks


def _reference_scores(pafs, peaks, limb_src, limb_dst, params):
    """OpenPose's test written pair by pair with scipy's bilinear sampling (no pruning)."""
    h = pafs.shape[1]
    out = {}
    t = np.linspace(0, 1, params.samples)
    for j, (ts, td) in enumerate(zip(limb_src, limb_dst, strict=True)):
        for a in range(peaks.starts[ts], peaks.starts[ts + 1]):
            for b in range(peaks.starts[td], peaks.starts[td + 1]):
                d = peaks.xy[b].astype(np.float64) - peaks.xy[a]
                length = np.hypot(*d)
                pts = peaks.xy[a] + t[:, None] * d
                coords = [np.clip(pts[:, 1], 0, h - 1), np.clip(pts[:, 0], 0, pafs.shape[2] - 1)]
                vx = map_coordinates(pafs[2 * j], coords, order=1)
                vy = map_coordinates(pafs[2 * j + 1], coords, order=1)
                align = (vx * d[0] + vy * d[1]) / max(length, 1e-6)
                score = align.mean() + min(0.5 * h / max(length, 1e-6) - 1, 0)
                if (align > params.min_score).mean() >= params.min_fraction and score > 0:
                    out[(j, a, b)] = score
    return out


def test_limb_scores_match_the_pairwise_reference(synth_scene):
    schema = KeypointSchema.named("coco_person")
    codec = PafCodec(schema)
    keypoints = synth_scene(schema, num_instances=6, seed=3)
    targets = codec.encode(keypoints, (368, 368))
    rng = np.random.default_rng(0)
    pafs = targets.pafs + rng.normal(0, 0.05, targets.pafs.shape).astype(np.float32)  # imperfect
    peaks = find_peaks(targets.heatmaps[:-1], 0.1)
    src = np.array([limb.src for limb in schema.limbs])
    dst = np.array([limb.dst for limb in schema.limbs])
    params = LimbScoring()
    got = paf_limbs.score_limbs(pafs, peaks, src, dst, params)
    ref = _reference_scores(pafs, peaks, src, dst, params)
    keys = list(zip(got.limb.tolist(), got.src.tolist(), got.dst.tolist(), strict=True))
    assert sorted(keys) == sorted(ref)  # the cheap support pre-test rejects nothing valid
    np.testing.assert_allclose(got.score, [ref[k] for k in keys], atol=1e-5)
    assert len(ref) > 5 * len(schema.limbs)  # the test compares something


def _sequential_greedy(pairs: LimbPairs) -> set[tuple[int, int, int]]:
    taken = set()
    used_src, used_dst = set(), set()
    for e in np.argsort(-pairs.score, kind="stable"):
        j, a, b = int(pairs.limb[e]), int(pairs.src[e]), int(pairs.dst[e])
        if (j, a) not in used_src and (j, b) not in used_dst:
            taken.add((j, a, b))
            used_src.add((j, a))
            used_dst.add((j, b))
    return taken


def _random_candidates(seed: int, per_type: int = 7, density: float = 0.6):
    rng = np.random.default_rng(seed)
    num_types = 4
    kind = np.repeat(np.arange(num_types), per_type)
    peaks = make_peaks([(0.0, 0.0)] * len(kind), kind.tolist(), num_types)
    limb_src, limb_dst = np.array([0, 1, 2]), np.array([1, 2, 3])
    limb = np.repeat(np.arange(3), per_type * per_type)
    a = np.tile(np.repeat(np.arange(per_type), per_type), 3)
    b = np.tile(np.tile(np.arange(per_type), per_type), 3)
    keep = rng.random(len(limb)) < density
    candidates = LimbPairs(
        limb[keep],
        peaks.starts[limb_src[limb[keep]]] + a[keep],
        peaks.starts[limb_dst[limb[keep]]] + b[keep],
        rng.random(int(keep.sum())).astype(np.float32) + 0.01,
    )
    return candidates, peaks, limb_src, limb_dst


def _keys(pairs: LimbPairs) -> set[tuple[int, int, int]]:
    return set(zip(pairs.limb.tolist(), pairs.src.tolist(), pairs.dst.tolist(), strict=True))


@pytest.mark.parametrize("seed", range(5))
def test_greedy_matching_equals_sequential_greedy(seed):
    candidates, peaks, limb_src, limb_dst = _random_candidates(seed)
    got = paf_limbs.match_limbs(candidates, peaks, limb_src, limb_dst, method="greedy")
    assert _keys(got) == _sequential_greedy(candidates)
    assert len(got.limb) >= 3 * 5


def _best_total(pairs: list[tuple[int, int, float]]) -> float:
    """Maximum total score of a one-to-one subset, by exhaustive search (small inputs)."""
    if not pairs:
        return 0.0
    (a, b, w), rest = pairs[0], pairs[1:]
    skip = _best_total(rest)
    take = w + _best_total([p for p in rest if p[0] != a and p[1] != b])
    return max(skip, take)


@pytest.mark.parametrize("seed", range(6))
def test_optimal_matching_has_the_maximum_total_score(seed):
    candidates, peaks, limb_src, limb_dst = _random_candidates(seed, per_type=4, density=0.5)
    got = paf_limbs.match_limbs(candidates, peaks, limb_src, limb_dst)  # default: optimal
    greedy = paf_limbs.match_limbs(candidates, peaks, limb_src, limb_dst, method="greedy")
    assert _keys(got) <= _keys(candidates)
    for j in range(3):
        mine = got.limb == j
        # one-to-one
        assert len(set(got.src[mine].tolist())) == len(set(got.dst[mine].tolist())) == mine.sum()
        pairs = [(int(a), int(b), float(w)) for a, b, w, lj in zip(
            candidates.src, candidates.dst, candidates.score, candidates.limb, strict=True
        ) if lj == j]  # fmt: skip
        assert got.score[mine].sum() == pytest.approx(_best_total(pairs), rel=1e-5)
        assert got.score[mine].sum() >= greedy.score[greedy.limb == j].sum() - 1e-5


def test_optimal_matching_resolves_collinear_overlapping_limbs():
    # Two people's shoulders on one line, overlapping: A1 -- B1 and A2 -- B2 with A2 between A1
    # and B1. Their fields form one band, so the long A1-B2 and the short A2-B1 pairs score
    # almost as well as the right ones, and the short wrong pair scores highest by a hair.
    peaks = make_peaks([(27.0, 3.0), (19.1, 3.0), (18.7, 3.0), (16.4, 3.0)], [0, 0, 1, 1], 2)
    a1, a2, b1, b2 = 0, 1, 2, 3
    candidates = LimbPairs(
        limb=np.zeros(4, dtype=np.int64),
        src=np.array([a1, a2, a1, a2]),
        dst=np.array([b1, b2, b2, b1]),
        score=np.array([0.99722, 0.99450, 0.93552, 0.99723], dtype=np.float32),
    )
    limb_src, limb_dst = np.array([0]), np.array([1])
    greedy = paf_limbs.match_limbs(candidates, peaks, limb_src, limb_dst, method="greedy")
    assert _keys(greedy) == {(0, a2, b1), (0, a1, b2)}  # the trap
    got = paf_limbs.match_limbs(candidates, peaks, limb_src, limb_dst)
    assert _keys(got) == {(0, a1, b1), (0, a2, b2)}


def test_matching_method_is_checked():
    candidates, peaks, limb_src, limb_dst = _random_candidates(0)
    with pytest.raises(ValueError, match="greedy"):
        paf_limbs.match_limbs(candidates, peaks, limb_src, limb_dst, method="hungarian")


@pytest.mark.parametrize("seed", range(60))
def test_max_assignment_reaches_the_solvers_total(seed):
    """The conflict-free shortcut, the enumeration of small tables and the solver (tables too
    large to enumerate) give matchings of the same total score as SciPy's solver."""
    from scipy.optimize import linear_sum_assignment

    from posekit.codecs.paf_limbs import _max_assignment

    rng = np.random.default_rng(seed)
    a, b = rng.integers(1, 7, 2) if seed < 40 else rng.integers(6, 12, 2)
    density = 0.4 if seed % 2 else 0.9  # dense tables conflict: the shortcut cannot take them
    weights = np.where(rng.random((a, b)) < density, rng.random((a, b)), 0.0)
    r, c = _max_assignment(weights)
    assert len(set(r.tolist())) == len(r) and len(set(c.tolist())) == len(c)  # a matching
    er, ec = linear_sum_assignment(weights, maximize=True)
    assert weights[r, c].sum() == pytest.approx(weights[er, ec].sum(), abs=1e-12)


def test_small_conflicts_are_solved_without_loading_scipy():
    """The first contested limb of ``posekit predict`` must not pay for importing scipy.optimize
    (about 0.6 s): a 3 x 3 conflict is solved in a fresh interpreter with scipy unimportable."""
    import subprocess
    import sys

    code = """
import sys
class NoScipy:
    def find_spec(self, name, path=None, target=None):
        if name == "scipy" or name.startswith("scipy."):
            raise ImportError("scipy blocked by the test")
sys.meta_path.insert(0, NoScipy())
import numpy as np
from posekit.codecs.paf_limbs import _max_assignment
w = np.array([[0.9, 0.8, 0.0], [0.85, 0.1, 0.0], [0.0, 0.7, 0.6]])
r, c = _max_assignment(w)
print(sorted(zip(r.tolist(), c.tolist())))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # 0.8 + 0.85 + 0.6 beats the row-greedy 0.9 + 0.1 + 0.6 and 0.9 + 0.7 (+ 0)
    assert out.stdout.strip() == "[(0, 1), (1, 0), (2, 2)]"
