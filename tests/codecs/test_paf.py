"""PafCodec: frames, target values, round trips, flip, crowds, and bad input."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from posekit import ConfigError, KeypointSchema, SchemaError
from posekit.codecs.paf import PafCodec, PafDecodeConfig, PafTargets
from tests.codecs.conftest import make_grid_scene, make_scene

COCO = KeypointSchema.named("coco_person")
NECK = KeypointSchema.named("coco_person_neck")


def _apply(m: np.ndarray, xy: np.ndarray) -> np.ndarray:
    return xy @ m[:, :2].T + m[:, 2]


def _match(poses, keypoints: np.ndarray) -> np.ndarray:
    """(N,) max keypoint error (input px) of each ground-truth instance's best pose; inf if none
    holds all its labeled keypoints."""
    err = np.full(len(keypoints), np.inf)
    for n, gt in enumerate(keypoints):
        lab = gt[:, 2] > 0
        for pose in poses:
            if (pose.keypoints[lab, 2] > 0).all():
                d = np.hypot(*(pose.keypoints[lab, :2] - gt[lab, :2]).T).max()
                err[n] = min(err[n], d)
    return err


@pytest.mark.parametrize("stride", [1, 4, 8])
def test_frame_matrices_are_inverse_and_map_cell_centers(stride):
    codec = PafCodec(COCO, stride=stride)
    fwd, back = codec.input_to_output_matrix(), codec.output_to_input_matrix()
    cells = np.array([[0.0, 0.0], [3.0, 5.0], [45.0, 45.0]])
    centers = stride * cells + (stride - 1) / 2  # input pixel center of each output cell
    np.testing.assert_allclose(_apply(fwd, centers), cells)
    np.testing.assert_allclose(_apply(back, cells), centers)


def test_heatmap_and_paf_targets_have_the_documented_values():
    codec = PafCodec(COCO, stride=8, sigma=7.0, paf_width=1.0)
    kpts = np.zeros((1, 17, 3), np.float32)
    ls, le = COCO.index("left_shoulder"), COCO.index("left_elbow")
    kpts[0, ls] = [83.5, 43.5, 2]  # output (10, 5)
    kpts[0, le] = [163.5, 43.5, 2]  # output (20, 5): a horizontal limb
    t = codec.encode(kpts, (368, 368))
    assert isinstance(t, PafTargets)
    assert t.heatmaps.shape == (18, 46, 46) and t.pafs.shape == (2 * COCO.num_limbs, 46, 46)
    assert t.heatmaps[ls, 5, 10] == pytest.approx(1.0)
    assert t.heatmaps[ls, 5, 11] == pytest.approx(np.exp(-(8.0**2) / (2 * 7.0**2)), rel=1e-5)
    np.testing.assert_allclose(t.heatmaps[-1], 1 - t.heatmaps[:-1].max(axis=0))
    j = next(i for i, limb in enumerate(COCO.limbs) if {limb.src, limb.dst} == {ls, le})
    sign = 1.0 if COCO.limbs[j].src == ls else -1.0
    np.testing.assert_allclose(t.pafs[2 * j, 4:7, 10:21], sign)  # width 1 cell around y = 5
    assert np.abs(t.pafs[2 * j + 1]).max() == 0
    assert t.pafs[2 * j, 3].max() == 0 and t.pafs[2 * j, 5, 22] == 0  # outside the capsule
    others = [c for c in range(t.pafs.shape[0]) if c not in (2 * j, 2 * j + 1)]
    assert np.abs(t.pafs[others]).max() == 0
    assert (t.mask == 1).all()


def test_overlapping_limbs_are_averaged_not_summed():
    codec = PafCodec(COCO)
    ls, le = COCO.index("left_shoulder"), COCO.index("left_elbow")
    kpts = np.zeros((2, 17, 3), np.float32)
    kpts[0, ls], kpts[0, le] = [83.5, 83.5, 2], [243.5, 83.5, 2]  # along +x through (20, 10)
    kpts[1, ls], kpts[1, le] = [163.5, 3.5, 2], [163.5, 163.5, 2]  # along +y through (20, 10)
    t = codec.encode(kpts, (368, 368))
    j = next(i for i, limb in enumerate(COCO.limbs) if {limb.src, limb.dst} == {ls, le})
    sign = 1.0 if COCO.limbs[j].src == ls else -1.0
    np.testing.assert_allclose(t.pafs[2 * j : 2 * j + 2, 10, 20], [0.5 * sign, 0.5 * sign])


def test_loss_mask_is_one_minus_the_ignored_fraction_of_each_cell():
    codec = PafCodec(COCO, stride=8)
    ignore = np.zeros((64, 64), dtype=bool)
    ignore[:8, :8] = True  # cell (0, 0) entirely
    ignore[8:12, 16:24] = True  # half of cell (1, 2)
    mask = codec.encode(np.zeros((0, 17, 3)), (64, 64), ignore_mask=ignore).mask
    assert mask.shape == (8, 8)
    assert mask[0, 0] == 0 and mask[1, 2] == 0.5 and mask.sum() == 64 - 1.5


def test_encode_rejects_bad_input():
    codec = PafCodec(COCO)
    with pytest.raises(SchemaError, match=r"\(N, 17, 3\)"):
        codec.encode(np.zeros((1, 18, 3)), (368, 368))
    with pytest.raises(ConfigError, match="multiples of the stride 8"):
        codec.encode(np.zeros((1, 17, 3)), (370, 368))
    with pytest.raises(ConfigError, match="ignore_mask"):
        codec.encode(np.zeros((1, 17, 3)), (368, 368), ignore_mask=np.zeros((10, 10), bool))
    bad = np.zeros((1, 17, 3))
    bad[0, 0] = [np.nan, 1.0, 2.0]
    with pytest.raises(ConfigError, match="non-finite"):
        codec.encode(bad, (368, 368))


@pytest.mark.parametrize("schema", [COCO, NECK], ids=lambda s: s.name)
def test_round_trip_recovers_every_instance_exactly(schema):
    codec = PafCodec(schema)
    for seed in range(3):
        kpts = make_grid_scene(schema, 2, 2, seed)
        t = codec.encode(kpts, (368, 368))
        poses = codec.decode(t.heatmaps, t.pafs, affine=codec.output_to_input_matrix())
        assert len(poses) == len(kpts)
        # Gaussian targets + log-parabola refinement: exact up to float32 rounding (stride / 100)
        assert _match(poses, kpts).max() < 0.08
        assert all(0 < p.score <= 1 for p in poses)
        assert [p.score for p in poses] == sorted((p.score for p in poses), reverse=True)


def test_upsampled_decoding_is_within_a_fraction_of_the_stride():
    codec = PafCodec(COCO)
    kpts = make_grid_scene(COCO, 2, 2, 1)
    t = codec.encode(kpts, (368, 368))
    config = PafDecodeConfig(upsample=8)
    poses = codec.decode(t.heatmaps, t.pafs, affine=codec.output_to_input_matrix(), config=config)
    assert _match(poses, kpts).max() < 8 / 4


def test_poses_are_in_output_pixels_without_an_affine():
    codec = PafCodec(COCO)
    kpts = make_scene(COCO, 1, 2)
    t = codec.encode(kpts, (368, 368))
    (pose,) = codec.decode(t.heatmaps, t.pafs)
    lab = kpts[0, :, 2] > 0
    expected = _apply(codec.input_to_output_matrix(), kpts[0, lab, :2])
    np.testing.assert_allclose(pose.keypoints[lab, :2], expected, atol=0.01)
    found = pose.keypoints[:, 2] > 0
    np.testing.assert_allclose(pose.bbox[:2], pose.keypoints[found, :2].min(axis=0))
    np.testing.assert_allclose(pose.bbox[2:], pose.keypoints[found, :2].max(axis=0))


def test_decode_leaves_inputs_alone_and_accepts_torch():
    codec = PafCodec(NECK)
    t = codec.encode(make_scene(NECK, 3, 4), (368, 368))
    heatmaps, pafs = t.heatmaps.copy(), t.pafs.copy()
    poses = codec.decode(t.heatmaps, t.pafs)
    np.testing.assert_array_equal(heatmaps, t.heatmaps)
    np.testing.assert_array_equal(pafs, t.pafs)
    from_torch = codec.decode(torch.from_numpy(t.heatmaps), torch.from_numpy(t.pafs))
    assert len(from_torch) == len(poses) > 0
    for a, b in zip(poses, from_torch, strict=True):
        np.testing.assert_array_equal(a.keypoints, b.keypoints)


def test_heatmaps_without_background_channel_decode_the_same():
    codec = PafCodec(COCO)
    t = codec.encode(make_scene(COCO, 2, 5), (368, 368))
    with_bg = codec.decode(t.heatmaps, t.pafs)
    without = codec.decode(t.heatmaps[:-1], t.pafs)
    assert len(with_bg) == len(without) == 2


def test_wrong_channel_counts_raise_clear_errors():
    codec = PafCodec(NECK)  # 18 keypoints, 19 limbs
    hm, paf = np.zeros((19, 46, 46), np.float32), np.zeros((38, 46, 46), np.float32)
    with pytest.raises(SchemaError, match=r"\(19, H, W\) for schema 'coco_person_neck'.*got \(17,"):
        codec.decode(hm[:17], paf)
    with pytest.raises(SchemaError, match=r"\(38, H, W\).*19 limbs.*got \(36,"):
        codec.decode(hm, paf[:36])
    with pytest.raises(SchemaError, match="same"):
        codec.decode(hm, paf[:, :40])
    with pytest.raises(SchemaError, match="heatmaps"):
        codec.decode(hm[None], paf)
    with pytest.raises(ConfigError, match=r"affine: expected a \(2, 3\) matrix"):
        codec.decode(hm, paf, affine=np.eye(3))


def test_non_finite_maps_are_zeroed_with_a_warning(caplog):
    codec = PafCodec(COCO)
    t = codec.encode(make_scene(COCO, 3, 6), (368, 368))
    hm, paf = t.heatmaps.copy(), t.pafs.copy()
    hm[:, :10, :10] = np.nan
    paf[:, 30:, :] = np.inf
    with caplog.at_level(logging.WARNING, logger="posekit.codecs.paf"):
        poses = codec.decode(hm, paf)
    assert "heatmaps" in caplog.text and "pafs" in caplog.text and "non-finite" in caplog.text
    zeroed = codec.decode(np.nan_to_num(hm, nan=0.0), np.where(np.isinf(paf), 0, paf))
    assert len(poses) == len(zeroed)
    for a, b in zip(poses, zeroed, strict=True):
        np.testing.assert_array_equal(a.keypoints, b.keypoints)
    assert codec.decode(np.full_like(hm, np.nan), np.full_like(paf, np.nan)) == []


@pytest.mark.parametrize("schema", [COCO, NECK], ids=lambda s: s.name)
def test_flip_targets_and_decoding_are_consistent(schema):
    codec = PafCodec(schema)
    size = (368, 256)
    kpts = make_scene(schema, 3, 7, size=size)
    flipped = schema.flip_keypoints(kpts, size[0] - 1)
    t, tf = codec.encode(kpts, size), codec.encode(flipped, size)
    # encoding commutes with flipping: unflip(maps of the flipped image) == maps of the image
    hm, paf = codec.unflip(tf.heatmaps, tf.pafs)
    np.testing.assert_allclose(hm, t.heatmaps, atol=1e-5)
    np.testing.assert_allclose(paf, t.pafs, atol=1e-5)
    # decoding the flipped maps gives the mirrored poses
    to_input = codec.output_to_input_matrix()
    direct = codec.decode(t.heatmaps, t.pafs, affine=to_input)
    mirrored = codec.decode(tf.heatmaps, tf.pafs, affine=to_input)
    assert len(direct) == len(mirrored) == len(kpts)
    back = [schema.flip_keypoints(p.keypoints[None], size[0] - 1)[0] for p in mirrored]
    for pose in direct:
        err = [np.abs(b[:, :2] - pose.keypoints[:, :2]).max() for b in back]
        assert min(err) < 0.05


def test_unflip_needs_a_symmetric_skeleton():
    lopsided = KeypointSchema(
        "lopsided", ("left_a", "right_a", "b"), skeleton=(("left_a", "b"),), flip_pairs="auto"
    )
    codec = PafCodec(lopsided)
    with pytest.raises(SchemaError, match="not left/right symmetric"):
        codec.unflip(np.zeros((4, 8, 8)), np.zeros((2, 8, 8)))


def test_crowded_scene_decodes_the_right_count():
    """Ten figures drawn over each other (>= 8 with overlapping boxes) at 512x512."""
    codec = PafCodec(COCO)
    exact = 0
    for seed in range(6):
        kpts = make_scene(COCO, 10, seed, size=(512, 512), scale_range=(0.25, 0.35))
        lab = kpts[..., 2] > 0
        lo = np.where(lab[..., None], kpts[..., :2], np.inf).min(axis=1)
        hi = np.where(lab[..., None], kpts[..., :2], -np.inf).max(axis=1)
        overlaps = (np.minimum(hi[:, None], hi[None]) > np.maximum(lo[:, None], lo[None])).all(2)
        assert (overlaps.sum(axis=1) > 1).sum() >= 8  # a crowd, not a grid
        t = codec.encode(kpts, (512, 512))
        poses = codec.decode(t.heatmaps, t.pafs, config=PafDecodeConfig(min_keypoints=3))
        exact += len(poses) == len(kpts)
    assert exact >= 5


def test_grouping_does_not_need_the_root():
    """A person with one shoulder hidden has no neck (the root): still one instance."""
    codec = PafCodec(NECK)
    kpts = make_grid_scene(NECK, 1, 1, 8, tile=368)
    kpts[0, NECK.index("left_shoulder")] = 0
    NECK.add_virtual(kpts)
    assert kpts[0, NECK.index("neck"), 2] == 0
    t = codec.encode(kpts, (368, 368))
    (pose,) = codec.decode(t.heatmaps, t.pafs, affine=codec.output_to_input_matrix())
    lab = kpts[0, :, 2] > 0
    np.testing.assert_allclose(pose.keypoints[lab, :2], kpts[0, lab, :2], atol=0.08)
    # without fragment merging the parts linked only through the neck and the left shoulder
    # (the legs, the left arm) come apart: the connected components of the labeled limbs
    edges = [(a.src, a.dst) for a in NECK.limbs if lab[a.src] and lab[a.dst]]
    graph = coo_matrix((np.ones(len(edges)), tuple(zip(*edges, strict=True))), shape=(18, 18))
    _, comp = connected_components(graph, directed=False)
    parts = len(set(comp[lab]))
    assert parts >= 3
    split = codec.decode(t.heatmaps, t.pafs, config=PafDecodeConfig(fragment_reach=0))
    assert len(split) == parts


def test_filters_and_config_validation():
    codec = PafCodec(COCO)
    kpts = make_grid_scene(COCO, 1, 2, 9)
    kpts[1, 2:] = 0  # second figure: two keypoints left (nose and left eye)
    t = codec.encode(kpts, (368, 368))
    assert len(codec.decode(t.heatmaps, t.pafs)) == 2
    assert len(codec.decode(t.heatmaps, t.pafs, config=PafDecodeConfig(min_keypoints=3))) == 1
    assert len(codec.decode(t.heatmaps, t.pafs, config=PafDecodeConfig(min_score=0.5))) == 1
    with pytest.raises(ConfigError, match="upsample"):
        PafDecodeConfig(upsample=0)
    with pytest.raises(ConfigError, match="paf_min_fraction"):
        PafDecodeConfig(paf_min_fraction=1.5)
    with pytest.raises(ConfigError, match="matching"):
        PafDecodeConfig(matching="hungarian")
    with pytest.raises(ConfigError, match="close_peaks"):
        PafDecodeConfig(close_peaks=0)
    with pytest.raises(ConfigError, match="stride"):
        PafCodec(COCO, stride=0)
    with pytest.raises(ConfigError, match="sigma"):
        PafCodec(COCO, sigma=0.0)
    with pytest.raises(SchemaError, match="no skeleton"):
        PafCodec(KeypointSchema("dots", ("a", "b")))


def test_codec_record_round_trips():
    codec = PafCodec(NECK, stride=4, sigma=5.0, paf_width=1.5)
    assert PafCodec.from_dict(NECK, codec.to_dict()) == codec
    with pytest.raises(ConfigError, match="not a PAF codec"):
        PafCodec.from_dict(NECK, {"codec": "simcc"})


def test_noise_maps_decode_within_the_peak_budget():
    """An untrained network's maps: many peaks; the per-type cap bounds the work."""
    codec = PafCodec(NECK)
    rng = np.random.default_rng(0)
    hm = rng.random((19, 46, 46), dtype=np.float32)
    paf = rng.uniform(-1, 1, (38, 46, 46)).astype(np.float32)
    poses = codec.decode(hm, paf, config=PafDecodeConfig(max_peaks=20))
    found = sum(p.num_found for p in poses)
    assert 0 < found <= 20 * 18
    assert all(len(np.unique(p.keypoints[p.keypoints[:, 2] > 0, :2], axis=0)) == p.num_found
               for p in poses)  # fmt: skip
