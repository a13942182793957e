"""Grouping steps: assembly of matched limbs, fragment merging, decoding of touching people."""

from __future__ import annotations

import numpy as np

from posekit import KeypointSchema
from posekit.codecs import paf_grouping
from posekit.codecs.paf import PafCodec
from posekit.codecs.paf_limbs import LimbPairs
from tests.codecs.conftest import make_peaks


def test_assemble_refuses_a_connection_that_repeats_a_type():
    # types 0-1-2 form a loop (limbs 0->1, 1->2, 0->2 extra); two instances A (peaks 0, 2, 4)
    # and B (1, 3, 5); a wrong 0->2 connection links A's type 0 to B's type 2.
    peaks = make_peaks([(0, 0), (9, 0), (0, 1), (9, 1), (0, 2), (9, 2)], [0, 0, 1, 1, 2, 2], 3)
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
    peaks = make_peaks([(0, 1), (0, 2), (0, 3)], [1, 2, 3], 4)
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


def test_path_bounds_of_some_types_are_those_of_all_types():
    # a tree 0-1-2, 1-3, 3-4 plus types 5 and 6 on no limb; random found limb lengths
    rng = np.random.default_rng(0)
    src, dst = np.array([0, 1, 1, 3]), np.array([1, 2, 3, 4])
    hops = paf_grouping.skeleton_hops(7, src, dst)
    mirror = np.array([-1, 2, 1, -1])
    limbs_a = np.where(rng.random((5, 4)) < 0.5, rng.uniform(5, 20, (5, 4)), np.nan)
    limbs_b = np.where(np.isnan(limbs_a) & (rng.random((5, 4)) < 0.5), 9.0, np.nan)
    scale = np.fmax(np.nanmax(np.fmax(limbs_a, limbs_b), axis=1, initial=0), 1.0)
    every = np.arange(7)
    full = paf_grouping._path_bounds(limbs_a, limbs_b, scale, mirror, src, dst, hops, every)
    assert np.isfinite(full[:, 0, 4]).all() and (full[:, 0, 4] <= 3 * scale + 1e-6).all()
    np.testing.assert_allclose(full[:, 5, 6], hops[5, 6] * scale)  # no limb: hops x scale
    for types in ([0, 4], [2, 5, 6], [1, 2, 3, 4], [6]):
        part = paf_grouping._path_bounds(
            limbs_a, limbs_b, scale, mirror, src, dst, hops, np.array(types)
        )
        np.testing.assert_allclose(part, full[:, types][:, :, types])


def test_many_types_examine_fewer_pairs_per_round_and_still_merge(monkeypatch):
    # 40 single-keypoint fragments of a 60-type chain: an element budget of 4 pairs per batch
    # (batches until one holds a feasible pair) merges about as far as all pairs at once
    k = 60
    src, dst = np.arange(k - 1), np.arange(1, k)
    hops = paf_grouping.skeleton_hops(k, src, dst)
    rng = np.random.default_rng(1)
    types = rng.permutation(k)[:40]
    xy = rng.uniform(0, 400, (40, 2)).astype(np.float32)
    slots = np.full((40, k), -1)
    slots[np.arange(40), types] = np.arange(40)
    wide = paf_grouping.merge_fragments(slots.copy(), xy, hops, src, dst, 1.0, lone_scale=30.0)
    monkeypatch.setattr(paf_grouping, "_MERGE_ELEMENTS", 4 * k * k)
    narrow = paf_grouping.merge_fragments(slots.copy(), xy, hops, src, dst, 1.0, lone_scale=30.0)
    assert abs(len(narrow) - len(wide)) <= 2
    for out in (wide, narrow):
        assert 1 < len(out) < 40  # some, not all, merged
        peaks = np.sort(out[out >= 0])
        np.testing.assert_array_equal(peaks, np.arange(40))  # every peak in exactly one
        assert ((out >= 0).sum(axis=1) >= 1).all()
