"""Grouping steps against reference implementations: limb scores, greedy matching, assembly, merging."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import map_coordinates

from posekit import KeypointSchema
from posekit.codecs import paf_grouping
from posekit.codecs.paf import PafCodec
from posekit.codecs.paf_grouping import LimbPairs, LimbScoring
from posekit.codecs.peaks import Peaks, find_peaks


def _peaks(xy: list[tuple[float, float]], kind: list[int], num_types: int) -> Peaks:
    order = np.argsort(kind, kind="stable")
    kind_arr = np.asarray(kind)[order]
    return Peaks(
        xy=np.asarray(xy, dtype=np.float32)[order],
        score=np.ones(len(kind), dtype=np.float32),
        kind=kind_arr,
        starts=np.searchsorted(kind_arr, np.arange(num_types + 1)),
    )


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
    got = paf_grouping.score_limbs(pafs, peaks, src, dst, params)
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
    peaks = _peaks([(0.0, 0.0)] * len(kind), kind.tolist(), num_types)
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
    got = paf_grouping.match_limbs(candidates, peaks, limb_src, limb_dst, method="greedy")
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
    got = paf_grouping.match_limbs(candidates, peaks, limb_src, limb_dst)  # default: optimal
    greedy = paf_grouping.match_limbs(candidates, peaks, limb_src, limb_dst, method="greedy")
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
    peaks = _peaks([(27.0, 3.0), (19.1, 3.0), (18.7, 3.0), (16.4, 3.0)], [0, 0, 1, 1], 2)
    a1, a2, b1, b2 = 0, 1, 2, 3
    candidates = LimbPairs(
        limb=np.zeros(4, dtype=np.int64),
        src=np.array([a1, a2, a1, a2]),
        dst=np.array([b1, b2, b2, b1]),
        score=np.array([0.99722, 0.99450, 0.93552, 0.99723], dtype=np.float32),
    )
    limb_src, limb_dst = np.array([0]), np.array([1])
    greedy = paf_grouping.match_limbs(candidates, peaks, limb_src, limb_dst, method="greedy")
    assert _keys(greedy) == {(0, a2, b1), (0, a1, b2)}  # the trap
    got = paf_grouping.match_limbs(candidates, peaks, limb_src, limb_dst)
    assert _keys(got) == {(0, a1, b1), (0, a2, b2)}


def test_matching_method_is_checked():
    candidates, peaks, limb_src, limb_dst = _random_candidates(0)
    with pytest.raises(ValueError, match="greedy"):
        paf_grouping.match_limbs(candidates, peaks, limb_src, limb_dst, method="hungarian")


def test_assemble_refuses_a_connection_that_repeats_a_type():
    # types 0-1-2 form a loop (limbs 0->1, 1->2, 0->2 extra); two instances A (peaks 0, 2, 4)
    # and B (1, 3, 5); a wrong 0->2 connection links A's type 0 to B's type 2.
    peaks = _peaks([(0, 0), (9, 0), (0, 1), (9, 1), (0, 2), (9, 2)], [0, 0, 1, 1, 2, 2], 3)
    connections = LimbPairs(
        limb=np.array([0, 0, 1, 1, 2]),
        src=np.array([0, 1, 2, 3, 0]),
        dst=np.array([2, 3, 4, 5, 5]),
        score=np.ones(5, dtype=np.float32),
    )
    slots = paf_grouping.assemble(connections, peaks, 3)
    assert sorted(map(tuple, slots.tolist())) == [(0, 2, 4), (1, 3, 5)]


def test_assemble_joins_parts_whatever_limb_order_reaches_them():
    # a chain 0-1-2-3 whose root (type 0) is missing: still one instance
    peaks = _peaks([(0, 1), (0, 2), (0, 3)], [1, 2, 3], 4)
    connections = LimbPairs(
        np.array([1, 2]), np.array([0, 1]), np.array([1, 2]), np.ones(2, np.float32)
    )
    slots = paf_grouping.assemble(connections, peaks, 4)
    np.testing.assert_array_equal(slots, [[-1, 0, 1, 2]])


def _chain_hops(k: int) -> np.ndarray:
    idx = np.arange(k)
    hops = np.abs(idx[:, None] - idx[None]).astype(float)
    np.fill_diagonal(hops, np.inf)
    return hops


def test_fragments_merge_when_anatomically_possible_and_only_then():
    # chain skeleton 0-1-2-3, limb length 10; instance A has types 0, 1; B has 3 (type 2 hidden)
    src, dst = np.array([0, 1, 2]), np.array([1, 2, 3])
    xy = np.array([[0, 0], [10, 0], [28, 0], [200, 0]], dtype=np.float32)
    slots = np.array([[0, 1, -1, -1], [-1, -1, -1, 2]])
    merged = paf_grouping.merge_fragments(slots.copy(), xy, _chain_hops(4), src, dst, 1.0)
    np.testing.assert_array_equal(merged, [[0, 1, -1, 2]])
    far = np.array([[0, 1, -1, -1], [-1, -1, -1, 3]])  # 190 px from type 1: 2 hops * 10 < 190
    kept = paf_grouping.merge_fragments(far.copy(), xy, _chain_hops(4), src, dst, 1.0)
    np.testing.assert_array_equal(kept, far)
    assert (
        paf_grouping.merge_fragments(slots.copy(), xy, _chain_hops(4), src, dst, 0.0).shape[0] == 2
    )


def test_a_missing_limb_is_bounded_by_its_mirror():
    # types 0, 1 = left / right shoulder, 2, 3 = left / right elbow; limbs 0-1, 0-2, 1-3.
    # The host has both shoulders 30 px apart and its left upper arm 10 px long; a lone right
    # elbow 25 px from the right shoulder is within the longest limb (30) but not within twice
    # the mirror limb (20): it stays apart; at 15 px it joins.
    src, dst = np.array([0, 0, 1]), np.array([1, 2, 3])
    mirror = paf_grouping.limb_mirrors(src, dst, np.array([1, 0, 3, 2]))
    np.testing.assert_array_equal(mirror, [0, 2, 1])
    hops = paf_grouping.skeleton_hops(4, src, dst)
    for elbow_x, merged in ((55.0, False), (45.0, True)):
        xy = np.array([[0, 0], [30, 0], [0, 10], [elbow_x, 0]], dtype=np.float32)
        slots = np.array([[0, 1, 2, -1], [-1, -1, -1, 3]])
        out = paf_grouping.merge_fragments(slots.copy(), xy, hops, src, dst, 1.0, mirror)
        assert (len(out) == 1) is merged
        # without mirror information only the longest limb bounds it: merged either way
        assert len(paf_grouping.merge_fragments(slots.copy(), xy, hops, src, dst, 1.0)) == 1


def test_fragments_joined_by_a_limb_without_field_stay_apart():
    # chain 0-1-2-3; instance A holds types 0, 1, instance B types 2, 3. Limb 1-2 has both ends
    # found (one in each): the merge needs the maps to show that limb between the two peaks.
    src, dst = np.array([0, 1, 2]), np.array([1, 2, 3])
    xy = np.array([[0, 0], [10, 0], [18, 0], [28, 0]], dtype=np.float32)
    slots = np.array([[0, 1, -1, -1], [-1, -1, 2, 3]])
    asked = []

    def support(value):
        def check(limb, a, b):
            asked.append((limb.tolist(), a.tolist(), b.tolist()))
            return np.full(len(limb), value)

        return check

    apart = paf_grouping.merge_fragments(
        slots.copy(), xy, _chain_hops(4), src, dst, 1.0, limb_support=support(False)
    )
    np.testing.assert_array_equal(apart, slots)
    assert asked == [([1], [1], [2])]  # only the limb with one end in each instance
    joined = paf_grouping.merge_fragments(
        slots.copy(), xy, _chain_hops(4), src, dst, 1.0, limb_support=support(True)
    )
    np.testing.assert_array_equal(joined, [[0, 1, 2, 3]])
    # a gap of a missing type (no direct limb) is not asked about: types 0, 1 + type 3
    gap = np.array([[0, 1, -1, -1], [-1, -1, -1, 3]])
    asked.clear()
    out = paf_grouping.merge_fragments(
        gap.copy(), xy, _chain_hops(4), src, dst, 1.0, limb_support=support(False)
    )
    assert asked == [] and len(out) == 1


def test_decode_keeps_two_touching_people_apart_when_no_field_joins_them():
    # Person A: types 0-1, person B: types 2-3 of a chain schema; A's type 1 and B's type 2 are
    # both visible, close, and unconnected (no limb 1-2 field): two instances, not one.
    schema = KeypointSchema.from_dict(
        {"name": "chain4", "keypoints": ["a", "b", "c", "d"],
         "skeleton": [["a", "b"], ["b", "c"], ["c", "d"]]}
    )  # fmt: skip
    codec = PafCodec(schema)
    kpts = np.zeros((2, 4, 3), dtype=np.float32)
    kpts[0, 0], kpts[0, 1] = (40, 100, 2), (80, 100, 2)
    kpts[1, 2], kpts[1, 3] = (110, 100, 2), (150, 100, 2)
    targets = codec.encode(kpts, (200, 200))
    poses = codec.decode(targets.heatmaps, targets.pafs, affine=codec.output_to_input_matrix())
    assert len(poses) == 2
    found = sorted(tuple(np.nonzero(p.keypoints[:, 2] > 0)[0]) for p in poses)
    assert found == [(0, 1), (2, 3)]


def test_lone_keypoints_merge_at_the_size_of_the_largest_other_person():
    # chain 0-1-2-3; far away, a person with limbs 0-1, 1-2 of 10 px and two with 4 px limbs.
    # Two lone keypoints of types 0 and 2 (type 1 hidden) 15 px apart fit one person of the
    # largest size (2 hops * 10 px); 30 px apart they do not; without the other people only
    # ``lone_scale`` tells their size.
    src, dst = np.array([0, 1, 2]), np.array([1, 2, 3])
    hops = _chain_hops(4)
    others = [[500, 0], [510, 0], [520, 0], [600, 0], [604, 0], [700, 0], [704, 0]]
    other_slots = [[0, 1, 2, -1], [3, 4, -1, -1], [5, 6, -1, -1]]
    for gap, merged in ((15.0, True), (30.0, False)):
        xy = np.array(others + [[0, 0], [gap, 0]], dtype=np.float32)
        slots = np.array(other_slots + [[7, -1, -1, -1], [-1, -1, 8, -1]])
        out = paf_grouping.merge_fragments(slots.copy(), xy, hops, src, dst, 1.0)
        assert (len(out) == 4) is merged, gap
        if merged:
            np.testing.assert_array_equal(out[3], [7, -1, 8, -1])
    alone = np.array([[3, -1, -1, -1], [-1, -1, 4, -1]])
    xy = np.array([[500, 0], [510, 0], [520, 0], [0, 0], [15, 0]], dtype=np.float32)
    assert len(paf_grouping.merge_fragments(alone.copy(), xy, hops, src, dst, 1.0)) == 2
    for lone_scale, count in ((7.0, 2), (8.0, 1)):  # 15 px over 2 hops: 7.5 px per limb
        out = paf_grouping.merge_fragments(
            alone.copy(), xy, hops, src, dst, 1.0, lone_scale=lone_scale
        )
        assert len(out) == count, lone_scale


def test_a_person_seen_only_as_two_unlinked_keypoints_is_one_pose():
    # coco_person_neck joins shoulders to hips only through the (virtual) neck, which needs both
    # shoulders: a person showing only the right shoulder and the right hip has no limb at all.
    schema = KeypointSchema.named("coco_person_neck")
    codec = PafCodec(schema)
    kpts = np.zeros((1, schema.num_keypoints, 3))
    kpts[0, schema.index("right_shoulder")] = (100, 60, 2)
    kpts[0, schema.index("right_hip")] = (92, 190, 2)
    targets = codec.encode(schema.add_virtual(kpts), (200, 256))
    poses = codec.decode(targets.heatmaps, targets.pafs, affine=codec.output_to_input_matrix())
    assert len(poses) == 1
    assert (poses[0].keypoints[:, 2] > 0).sum() == 2


def test_fragment_goes_to_the_closer_of_two_hosts():
    # two hosts with types 0, 1 (limb 10 px) at x = 0 and x = 100; a lone type-2 keypoint near
    # the second host's type 1 joins that host, and only it.
    src, dst = np.array([0, 1]), np.array([1, 2])
    xy = np.array([[0, 0], [10, 0], [100, 0], [110, 0], [118, 0]], dtype=np.float32)
    slots = np.array([[0, 1, -1], [2, 3, -1], [-1, -1, 4]])
    merged = paf_grouping.merge_fragments(slots.copy(), xy, _chain_hops(3), src, dst, 1.0)
    np.testing.assert_array_equal(merged, [[0, 1, -1], [2, 3, 4]])
