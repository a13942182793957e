"""HeatmapCodec and its presets (MSRA, DARK, UDP): frames, target values, round trips with derived
tolerances, exact flip, weights, records, real crops and bad input.

Tolerances. At 256 x 192 input and 64 x 48 maps the stride is s = 4 input px per cell. A keypoint's
offset from its nearest cell centre is uniform in [-1/2, 1/2] cell per axis, so:

- integer centre (MSRA) or no refinement: the decoded point is that cell centre, per-axis error
  <= 1/2 cell = s/2 = 2 px, Euclidean <= 2 sqrt(2) = 2.83 px, mean = s * 0.3826 = 1.53 px (0.3826:
  mean distance of a uniform point of the unit square from its centre). MSRA's quarter step moves
  nothing on its own targets: an integer-centred Gaussian has equal neighbours (sign 0).
- float centre + quarter step: the step takes the offset d to |d| - 1/4, <= 1/4 cell = 1 px per axis
  inside the map (mean 0.765 px = half the above); at a border cell the step is 0 (a neighbour is
  missing), so <= 2 px there.
- float centre + DARK: exact for a Gaussian (its log is a parabola) up to float32 rounding of the
  maps (relative 6e-8 -> ~1e-6 px); DARK's modulation (blur 11) adds 1e-4 px because a sampled blur
  of a sampled Gaussian is not exactly Gaussian. Asserted: mean < 0.01 px, max < 0.002 px.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from posekit import ConfigError, KeypointSchema, SchemaError
from posekit.codecs.base import Codec
from posekit.codecs.heatmap import (
    DarkHeatmap,
    HeatmapCodec,
    HeatmapDecodeConfig,
    HeatmapTargets,
    MsraHeatmap,
    UdpHeatmap,
)
from posekit.codecs.refine import argmax_2d, modulate, refine_dark, refine_quarter, safe_log
from posekit.codecs.topdown import TopDownCodec, reach_in_output
from posekit.data.coco import CocoKeypointDataset
from posekit.geometry import box_to_center_size, crop_matrix, transform_points

COCO = KeypointSchema.named("coco_person")
K = COCO.num_keypoints
W, H = 192, 256  # crop input (W, H)
S = 4  # stride of 48 x 64 maps
PRESETS = (MsraHeatmap, DarkHeatmap, UdpHeatmap)
SQUARE_MEAN = 0.3826  # mean distance of a uniform point of the unit square from its centre
SQUARE_MEAN_SE = 0.15  # 7 standard errors of a mean of 64 x 17 such distances (std 0.6 px at s=4)


def _random_keypoints(n: int, seed: int) -> np.ndarray:
    """(n, K, 3) labelled sub-pixel keypoints anywhere in the crop's pixel area."""
    rng = np.random.default_rng(seed)
    kpts = np.full((n, K, 3), 2.0)
    kpts[..., 0] = rng.uniform(-0.5, W - 0.5, (n, K))
    kpts[..., 1] = rng.uniform(-0.5, H - 0.5, (n, K))
    return kpts


def _errors(codec: HeatmapCodec, kpts: np.ndarray, config=None) -> np.ndarray:
    """(N, K, 2) decoded - true keypoint, input px, of the codec's own targets."""
    xy, _ = codec.decode_keypoints(codec.encode(kpts).heatmaps, config)
    return transform_points(xy, codec.output_to_input_matrix()) - kpts[..., :2]


def _dist(err: np.ndarray) -> np.ndarray:
    return np.hypot(err[..., 0], err[..., 1])


# ---------------------------------------------------------------------- frames
def test_stride_frame_maps_cell_centres_and_inverts_exactly():
    codec = DarkHeatmap(COCO)
    cells = np.array([[0.0, 0.0], [3.0, 5.0], [47.0, 63.0]])
    centres = S * cells + (S - 1) / 2  # input pixel centre of each cell (PafCodec's frame)
    np.testing.assert_allclose(transform_points(centres, codec.input_to_output_matrix()), cells)
    np.testing.assert_allclose(transform_points(cells, codec.output_to_input_matrix()), centres)
    assert codec.stride == 4 and codec.input_to_output_matrix().dtype == np.float64


def test_udp_frame_aligns_corner_pixels_for_any_sizes():
    codec = UdpHeatmap(COCO, input_size=(200, 260), heatmap_size=(48, 64))
    corners = np.array([[0.0, 0.0], [199.0, 259.0]])
    out = transform_points(corners, codec.input_to_output_matrix())
    np.testing.assert_allclose(out, [[0.0, 0.0], [47.0, 63.0]])
    back = transform_points(out, codec.output_to_input_matrix())
    np.testing.assert_allclose(back, corners, atol=1e-12)
    assert codec.stride == round(200 / 48)  # nominal


@pytest.mark.parametrize("cls", PRESETS)
def test_mirrored_crop_is_reversed_columns_in_both_frames(cls):
    codec = cls(COCO)
    xy = np.array([[-0.5, 3.0], [10.3, 7.0], [191.5, 0.0]])
    mirrored = np.stack([W - 1 - xy[:, 0], xy[:, 1]], axis=1)
    out, out_m = (transform_points(p, codec.input_to_output_matrix()) for p in (xy, mirrored))
    np.testing.assert_allclose(out_m[:, 0], 48 - 1 - out[:, 0], atol=1e-12)
    np.testing.assert_allclose(out_m[:, 1], out[:, 1])


# ---------------------------------------------------------------------- targets
def test_targets_have_the_documented_values():
    kpts = np.zeros((1, K, 3))
    kpts[0, 0] = [10.0 * S + 1.5 + 1.2, 5.0 * S + 1.5, 2]  # cell (10.3, 5): 1.2 px right of 10
    t = MsraHeatmap(COCO, sigma=2.0).encode(kpts)
    assert isinstance(t, HeatmapTargets)
    assert t.heatmaps.shape == (1, K, 64, 48) and t.heatmaps.dtype == np.float32
    assert t.keypoint_weights.shape == (1, K) and t.keypoint_weights.dtype == np.float32
    assert t.heatmaps[0, 0, 5, 10] == 1.0  # integer centre: exactly 1 at the nearest cell
    assert t.heatmaps[0, 0, 5, 11] == pytest.approx(math.exp(-1 / 8), rel=1e-6)
    assert t.heatmaps[0, 0, 5, 9] == t.heatmaps[0, 0, 5, 11]
    f = DarkHeatmap(COCO, sigma=2.0).encode(kpts).heatmaps[0, 0]
    assert f[5, 10] == pytest.approx(math.exp(-(0.3**2) / 8), rel=1e-6)
    assert f[5, 11] == pytest.approx(math.exp(-(0.7**2) / 8), rel=1e-6)
    assert f.min() >= 0 and f.max() < 1
    assert not t.heatmaps[0, 1:].any()  # v = 0: all-zero maps
    np.testing.assert_array_equal(t.keypoint_weights[0], [1.0] + [0.0] * (K - 1))
    assert set(t.arrays()) == {"heatmaps", "keypoint_weights"}


def test_outside_or_unlabelled_keypoints_get_weight_zero_and_a_zero_map():
    """With ``reach=0`` (posekit before ``reach``; MMPose) a keypoint just outside the crop's
    pixel area is not encoded; by default it is until ``reach`` beyond the crop."""
    kpts = _random_keypoints(2, seed=1)
    kpts[0, 0, 0] = -0.6  # just left of the crop's pixel area
    kpts[0, 1, 1] = H - 0.5  # the bottom edge is outside (half-open area)
    kpts[0, 4, 0] = -0.51 - 0.2 * W  # just beyond the default reach
    kpts[1, 2, 2] = 0  # unlabelled
    kpts[1, 3, :2] = np.nan  # unlabelled, no coordinates
    kpts[1, 3, 2] = 0
    for cls in PRESETS:
        for reach, zero in ((0.0, [(0, 0), (0, 1), (0, 4), (1, 2), (1, 3)]),
                            (0.2, [(0, 4), (1, 2), (1, 3)])):  # fmt: skip
            t = cls(COCO, reach=reach).encode(kpts)
            for n, k in zero:
                assert t.keypoint_weights[n, k] == 0 and not t.heatmaps[n, k].any()
            assert (t.keypoint_weights == 0).sum() == len(zero)
            assert np.isfinite(t.heatmaps).all()
    assert DarkHeatmap(COCO).reach == UdpHeatmap(COCO).reach == MsraHeatmap(COCO).reach == 0.2


@pytest.mark.parametrize("cls", [DarkHeatmap, UdpHeatmap])
def test_keypoints_outside_the_crop_within_its_reach_come_back_from_the_tail(cls):
    """A keypoint beyond the crop leaves the tail of its Gaussian in the map (maximum on the
    border); the one-sided fit extrapolates it back exactly, up to the reach and no further."""
    codec = cls(COCO)
    kpts = _random_keypoints(3, seed=21)
    kpts[0, :, 0] = np.linspace(-0.4 * W * 0.2, W - 1 + 0.9 * W * 0.2, K)  # across both sides
    kpts[1, :, 1] = np.linspace(H - 0.5, H - 0.5 + 0.19 * H, K)  # below the bottom edge
    kpts[2, :8, :2] = [[-10.0, -12.0], [W + 20.0, -30.0], [-25.0, H + 40.0], [W + 5.0, H + 9.0],
                       [-30.0, 100.0], [W + 30.0, 50.0], [90.0, -40.0], [60.0, H + 45.0]]  # fmt: skip
    t = codec.encode(kpts)
    assert (t.keypoint_weights > 0).all()
    err = _dist(_errors(codec, kpts))
    assert err.max() < 0.01, err.max()
    outside = (kpts[..., 0] < -0.5) | (kpts[..., 0] > W - 0.5) | (kpts[..., 1] > H - 0.5)
    assert outside.sum() > 20  # most of what was checked lay beyond the crop
    # with reach 0 the same maps decode on the border: half a cell beyond it at most
    xy, _ = cls(COCO, reach=0.0).decode_keypoints(t.heatmaps)
    w, h = codec.heatmap_size
    assert xy[..., 0].min() >= -0.5 and xy[..., 0].max() <= w - 0.5 and xy[..., 1].max() <= h - 0.5
    # noise on the border extrapolates no further than the reach
    noise = np.random.default_rng(3).random((4, K, h, w)).astype(np.float32)
    noise[..., 0] += 1.0  # every maximum on the left border
    xy, _ = codec.decode_keypoints(noise)
    bx, _ = reach_in_output(codec)
    assert xy[..., 0].min() >= -bx - 1e-5 and xy[..., 0].max() <= 0.5


def test_joint_weights_of_the_schema_are_applied():
    weights = np.linspace(0.0, 2.0, K)  # keypoint 0 gets weight 0
    schema = KeypointSchema.from_dict({**COCO.to_dict(), "joint_weights": weights.tolist()})
    t = DarkHeatmap(schema).encode(_random_keypoints(3, seed=2))
    np.testing.assert_allclose(t.keypoint_weights, np.broadcast_to(weights, (3, K)), rtol=1e-6)
    assert not t.heatmaps[:, 0].any() and t.heatmaps[:, 1:].max(axis=(2, 3)).min() > 0.9


def test_one_instance_may_be_given_as_k_by_3():
    kpts = _random_keypoints(1, seed=3)
    codec = DarkHeatmap(COCO)
    np.testing.assert_array_equal(codec.encode(kpts[0]).heatmaps, codec.encode(kpts).heatmaps)


# ---------------------------------------------------------------------- round trips
def test_dark_and_udp_round_trip_is_exact_to_a_thousandth_of_a_pixel():
    kpts = _random_keypoints(64, seed=4)
    for codec in (DarkHeatmap(COCO), UdpHeatmap(COCO), HeatmapCodec(COCO)):
        d = _dist(_errors(codec, kpts))  # measured: mean 9e-5 px, max 2.1e-4 px (blur 11)
        assert d.mean() < 0.01 and d.max() < 0.002, (codec.name, d.mean(), d.max())
        d = _dist(_errors(codec, kpts, HeatmapDecodeConfig(blur_kernel=1)))
        assert d.max() < 1e-4, (codec.name, d.max())  # float32 rounding only (measured 1e-6)


def test_msra_round_trip_is_within_half_a_cell_of_quantisation():
    kpts = _random_keypoints(64, seed=5)
    codec = MsraHeatmap(COCO)
    err = _errors(codec, kpts)  # measured: mean 1.56 px, max 2.79 px, per axis max 1.9985 px
    assert np.abs(err).max() <= S / 2 + 1e-9
    assert _dist(err).max() <= S / 2 * math.sqrt(2) + 1e-9
    assert abs(_dist(err).mean() - S * SQUARE_MEAN) < SQUARE_MEAN_SE
    none = _errors(codec, kpts, HeatmapDecodeConfig(refine="none"))
    np.testing.assert_array_equal(err, none)  # the quarter step is 0 on its own targets


def test_float_centre_without_taylor_step_is_within_its_bounds():
    kpts = _random_keypoints(64, seed=6)
    codec = DarkHeatmap(COCO)
    none = _errors(codec, kpts, HeatmapDecodeConfig(refine="none"))  # measured: mean 1.56 px
    assert np.abs(none).max() <= S / 2 + 1e-9
    assert abs(_dist(none).mean() - S * SQUARE_MEAN) < SQUARE_MEAN_SE
    quarter = _errors(codec, kpts, HeatmapDecodeConfig(refine="quarter"))  # mean 0.81, max 2.10
    kpts_out = transform_points(kpts[..., :2], codec.input_to_output_matrix())
    cell = np.floor(kpts_out + 0.5)
    inner = (cell > 0) & (cell < np.array([47, 63]))  # per axis: both neighbours exist
    assert np.abs(quarter[inner]).max() <= S / 4 + 1e-9
    assert np.abs(quarter).max() <= S / 2 + 1e-9
    assert _dist(quarter).mean() < S * SQUARE_MEAN / 2 + SQUARE_MEAN_SE


def test_modulation_is_skipped_at_the_border_where_it_would_shift_the_peak():
    codec = DarkHeatmap(COCO)
    kpts = np.zeros((1, K, 3))
    kpts[0, :, :2] = [[-0.4 + 0.7 * k, 100.0] for k in range(K)]  # 0 .. 3 cells from the border
    kpts[0, :, 2] = 2
    maps = codec.encode(kpts).heatmaps
    x, y, _ = argmax_2d(maps)
    dx, _ = refine_dark(safe_log(modulate(maps, 11)), x, y)  # DARK's blur on whole maps
    published = transform_points(np.stack([x + dx, y], -1), codec.output_to_input_matrix())
    assert np.abs(published[0, :, 0] - kpts[0, :, 0]).max() > 1.0  # pulled inward by > 1 px
    assert _dist(_errors(codec, kpts)).max() < 0.002


@pytest.mark.parametrize("kernel", [1, 11])
def test_windowed_refinement_equals_the_refinement_of_whole_maps(kernel):
    rng = np.random.default_rng(7)
    codec = DarkHeatmap(COCO)
    maps = codec.encode(_random_keypoints(8, seed=7)).heatmaps
    noisy = (maps + rng.normal(0.0, 0.05, maps.shape)).astype(np.float32)
    x, y, _ = argmax_2d(noisy)
    xy, _ = codec.decode_keypoints(noisy, HeatmapDecodeConfig(blur_kernel=kernel))
    smooth = modulate(noisy, kernel) if kernel > 1 else noisy
    dx, dy = refine_dark(safe_log(smooth), x, y, reach_in_output(codec))
    inner = (x > 6) & (x < 41) & (y > 6) & (y < 57) if kernel > 1 else np.ones(x.shape, bool)
    assert inner.sum() > 20
    # the same up to float32 rounding (the windows' blur sums in another order than OpenCV's)
    np.testing.assert_allclose(xy[inner], np.stack([x + dx, y + dy], -1)[inner], atol=1e-5)
    qx, qy = refine_quarter(noisy, x, y)
    xy, _ = codec.decode_keypoints(noisy, HeatmapDecodeConfig(refine="quarter"))
    np.testing.assert_array_equal(xy, np.stack([x + qx, y + qy], -1))


@pytest.mark.parametrize("kernel", [1, 7, 11])
@pytest.mark.parametrize("size", [(48, 64), (6, 8)], ids=["maps", "maps smaller than a window"])
def test_windowed_refinement_equals_whole_maps_at_every_maximum_also_at_borders(kernel, size):
    rng = np.random.default_rng(11)
    w, h = size
    codec = DarkHeatmap(COCO, input_size=(4 * w, 4 * h), heatmap_size=size)
    noise = rng.random((6, K, h, w)).astype(np.float32)  # maxima anywhere, many at the border
    x, y, _ = argmax_2d(noise)
    r = kernel // 2
    leave = (x < 2 + r) | (x > w - 3 - r) | (y < 2 + r) | (y > h - 3 - r)  # window leaves map
    assert leave.mean() > 0.1 and (leave.all() if min(size) < 2 * r + 5 else (~leave).any())
    xy, _ = codec.decode_keypoints(noise, HeatmapDecodeConfig(blur_kernel=kernel))
    # whole maps: modulated where the maximum is more than r + 1 cells from the border
    inner = (x > r) & (x < w - 1 - r) & (y > r) & (y < h - 1 - r) if r else np.ones(x.shape, bool)
    smooth = modulate(noise, kernel) if kernel > 1 else noise
    beyond = reach_in_output(codec)  # border maxima extrapolated outward up to the reach
    mx, my = refine_dark(safe_log(smooth), x, y, beyond)
    px, py = refine_dark(safe_log(noise), x, y, beyond)
    expected = np.stack([x + np.where(inner, mx, px), y + np.where(inner, my, py)], -1)
    # float32 rounding of the blur (another summation order than OpenCV's), which the steps of
    # noise maxima (flat, barely concave) magnify to a few 1e-5 cells
    np.testing.assert_allclose(xy, expected, atol=1e-4)


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("refine", ["dark", "quarter", "none"])
def test_decoding_border_maxima_of_symmetric_or_empty_maps_gives_no_warning(refine):
    codec = MsraHeatmap(COCO, decode_config=HeatmapDecodeConfig(refine=refine))
    kpts = _random_keypoints(2, seed=12)
    kpts[0, :, 1] = H - 1.0  # integer centres on the bottom row: zero x gradient there
    xy, scores = codec.decode_keypoints(codec.encode(kpts).heatmaps)
    assert np.abs(xy[0, :, 1] - 63).max() <= 0.25
    xy, scores = codec.decode_keypoints(np.zeros((1, K, 64, 48), np.float32))
    np.testing.assert_array_equal(xy, 0.0)
    np.testing.assert_array_equal(scores, 0.0)


def test_scores_are_the_map_maxima_and_poses_are_in_input_pixels():
    kpts = _random_keypoints(4, seed=8)
    codec = DarkHeatmap(COCO)
    maps = codec.encode(kpts).heatmaps
    _, scores = codec.decode_keypoints(maps)
    np.testing.assert_array_equal(scores, maps.max(axis=(2, 3)))
    poses = codec.decode(maps)
    assert len(poses) == 4
    got = np.stack([p.keypoints for p in poses])
    assert np.abs(got[..., :2] - kpts[..., :2]).max() < 0.002
    shift = np.tile(np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), (4, 1, 1))
    shift[:, 0, 2] = np.arange(4) * 100.0  # one matrix per crop: cells + (100 n, 0)
    moved = np.stack([p.keypoints for p in codec.decode(maps, affine=shift)])
    xy, _ = codec.decode_keypoints(maps)
    np.testing.assert_allclose(moved[..., 0], xy[..., 0] + shift[:, :1, 2], atol=1e-4)


def test_real_coco_crops_round_trip_with_dark(coco_val):
    ann_file, image_root = coco_val
    dataset = CocoKeypointDataset(ann_file, image_root, schema=COCO)
    codec = DarkHeatmap(COCO)
    crops = []
    for record in dataset.records:
        centres, sizes = box_to_center_size(record.boxes, W / H)
        for kpts, centre, size in zip(record.keypoints, centres, sizes, strict=True):
            matrix = crop_matrix(centre, size, (W, H))
            crops.append(np.concatenate([transform_points(kpts[:, :2], matrix), kpts[:, 2:]], 1))
    kpts = np.stack(crops)
    assert len(kpts) == 68  # the val instances with keypoints
    t = codec.encode(kpts)
    used = t.keypoint_weights > 0
    assert used.sum() > 500
    xy, _ = codec.decode_keypoints(t.heatmaps)
    err = _dist(transform_points(xy, codec.output_to_input_matrix()) - kpts[..., :2])[used]
    assert err.mean() < 0.01 and err.max() < 0.002


# ---------------------------------------------------------------------- flip
@pytest.mark.parametrize("cls", PRESETS)
def test_unflip_of_the_mirrored_crop_decodes_like_the_crop_without_bias(cls):
    codec = cls(COCO)
    kpts = _random_keypoints(64, seed=9)
    mirrored = COCO.flip_keypoints(kpts, W - 1)
    direct = codec.encode(kpts).heatmaps
    (back,) = codec.unflip(codec.encode(mirrored).heatmaps)
    assert back.shape == direct.shape and back.flags.c_contiguous
    np.testing.assert_allclose(back, direct, atol=1e-6)
    xy, scores = codec.decode_keypoints(direct)
    xy_f, scores_f = codec.decode_keypoints(back)
    to_input = codec.output_to_input_matrix()
    diff = transform_points(xy_f, to_input) - transform_points(xy, to_input)  # input px
    assert np.abs(diff).max() < 0.01 and abs(diff[..., 0].mean()) < 0.01
    np.testing.assert_allclose(scores_f, scores, atol=1e-6)


# ---------------------------------------------------------------------- inputs are not modified
def test_decode_and_unflip_never_modify_their_input_and_take_tensors():
    codec = DarkHeatmap(COCO)
    maps = codec.encode(_random_keypoints(3, seed=10)).heatmaps
    copy = maps.copy()
    xy, scores = codec.decode_keypoints(maps)
    codec.decode(maps)
    codec.unflip(maps)
    np.testing.assert_array_equal(maps, copy)
    tensor = torch.from_numpy(copy.copy())
    xy_t, scores_t = codec.decode_keypoints(tensor)
    np.testing.assert_array_equal(xy_t, xy)
    np.testing.assert_array_equal(scores_t, scores)
    np.testing.assert_array_equal(codec.unflip(tensor)[0], codec.unflip(maps)[0])
    assert torch.equal(tensor, torch.from_numpy(copy))
    one, _ = codec.decode_keypoints(maps[0])  # (K, h, w): N = 1
    np.testing.assert_array_equal(one, xy[:1])
    assert xy.dtype == np.float64 and scores.dtype == np.float32


# ---------------------------------------------------------------------- protocol and records
@pytest.mark.parametrize("cls", (HeatmapCodec, *PRESETS))
def test_protocol_layout_and_record_round_trip(cls):
    codec = cls(COCO, sigma=1.5, decode_config=HeatmapDecodeConfig(blur_kernel=7))
    assert isinstance(codec, TopDownCodec) and isinstance(codec, Codec)
    assert codec.family == "topdown" and codec.supports_flip
    assert codec.layout.names == ("heatmaps",) and codec.layout.channels == (K,)
    assert codec.output_size((W, H)) == (48, 64)
    record = json.loads(json.dumps(codec.to_dict()))
    assert record["name"] == cls.name
    for reader in (cls, HeatmapCodec):
        again = reader.from_dict(COCO, record)
        assert type(again) is cls and again == codec
    assert cls.from_dict(COCO, {"name": cls.name}) == cls(COCO)


def test_presets_have_their_published_defaults():
    names = {c.name for c in (HeatmapCodec, *PRESETS)}
    assert names == {"heatmap", "msra", "dark", "udp"}
    msra, dark, udp = (cls(COCO) for cls in PRESETS)
    assert (msra.centre, msra.frame, msra.decode_config.refine) == ("integer", "stride", "quarter")
    assert (dark.centre, dark.frame, dark.decode_config.refine) == ("float", "stride", "dark")
    assert (udp.centre, udp.frame, udp.decode_config.refine) == ("float", "udp", "dark")
    assert dark.decode_config.blur_kernel == 11


# ---------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"sigma": 0.0}, "sigma must be finite and > 0"),
        ({"sigma": "2"}, "sigma must be a number"),
        ({"centre": "middle"}, r"centre must be one of \('integer', 'float'\), got 'middle'"),
        ({"frame": "pixel"}, r"frame must be one of \('stride', 'udp', 'scale'\)"),
        ({"input_size": (190, 256)}, "frame 'stride' needs input_size"),
        ({"input_size": (192, 192)}, r"W / w == H / h"),
        (
            {"heatmap_size": (48,)},
            r"heatmap_size must be two positive integers \(w, h\), got \(48,\)",
        ),
        ({"input_size": (0, 256)}, r"input_size must be two positive integers \(W, H\)"),
        ({"frame": "udp", "heatmap_size": (1, 64)}, "frame 'udp' needs"),
        ({"decode_config": {"refine": "dark"}}, "decode_config must be a HeatmapDecodeConfig"),
    ],
)
def test_bad_codec_parameters_are_named(params, match):
    with pytest.raises(ConfigError, match=match):
        DarkHeatmap(COCO, **params)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"refine": "taylor"}, r"invalid values \{'refine': 'taylor'\}"),
        ({"blur_kernel": 4}, r"invalid values \{'blur_kernel': 4\}.*odd positive"),
        ({"blur_kernel": 0}, "blur_kernel"),
    ],
)
def test_bad_decode_config_is_named(params, match):
    with pytest.raises(ConfigError, match=match):
        HeatmapDecodeConfig(**params)


def test_bad_records_are_rejected():
    with pytest.raises(ConfigError, match=r"unknown parameter\(s\) \['stride'\]"):
        DarkHeatmap.from_dict(COCO, {"name": "dark", "stride": 4})
    with pytest.raises(ConfigError, match=r"'dark.decode_config': unknown parameter\(s\) \['x'\]"):
        DarkHeatmap.from_dict(COCO, {"name": "dark", "decode_config": {"x": 1}})
    with pytest.raises(ConfigError, match=r"not one of the codecs \['msra'\]"):
        MsraHeatmap.from_dict(COCO, UdpHeatmap(COCO).to_dict())
    with pytest.raises(ConfigError, match="not one of the codecs"):
        HeatmapCodec.from_dict(COCO, {"name": "paf"})


def test_bad_inputs_give_clear_errors():
    codec = DarkHeatmap(COCO)
    kpts = _random_keypoints(2, seed=11)
    with pytest.raises(SchemaError, match=r"expected \(N, 17, 3\) for schema 'coco_person'"):
        codec.encode(kpts[:, :16])
    with pytest.raises(
        ConfigError,
        match=r"input_size \(W, H\) = \(256, 192\) differs from the codec's \(192, 256\)",
    ):
        codec.encode(kpts, (256, 192))
    with pytest.raises(ConfigError, match=r"must be the codec's input_size"):
        codec.output_size((384, 512))
    with pytest.raises(ConfigError, match="ignore_mask must be None"):
        codec.encode(kpts, (W, H), np.zeros((H, W), bool))
    maps = codec.encode(kpts, (W, H)).heatmaps
    with pytest.raises(
        SchemaError, match=r"K = 17 for schema 'coco_person', got \(2, 16, 64, 48\)"
    ):
        codec.decode(maps[:, :16])
    with pytest.raises(ConfigError, match=r"expected \(h, w\) = \(64, 48\)"):
        codec.decode_keypoints(maps[..., :32])
    with pytest.raises(ConfigError, match="non-finite values"):
        codec.decode(np.full_like(maps, np.nan))
    with pytest.raises(ConfigError, match="config must be a HeatmapDecodeConfig"):
        codec.decode(maps, config={"refine": "none"})
    with pytest.raises(ConfigError, match=r"affine: expected \(2, 3\) or \(2, 2, 3\)"):
        codec.decode(maps, affine=np.eye(3))


def test_scale_frame_of_published_weights():
    """``frame="scale"`` (x_out = x_in / s, what published MSRA / HRNet models learned): exact
    round trip with float centres and DARK; its flip is a reversal plus a resampling 0.75 cells
    back, exact up to the linear interpolation (measured: 0.03 px mean, 0.05 px max)."""
    codec = HeatmapCodec(COCO, centre="float", frame="scale")
    np.testing.assert_allclose(codec.output_to_input_matrix(), [[4, 0, 0], [0, 4, 0]])
    rng = np.random.default_rng(5)
    kpts = np.full((32, 17, 3), 2.0)
    kpts[..., :2] = rng.uniform(8, (184, 248), (32, 17, 2))
    direct, _ = codec.decode_keypoints(codec.encode(kpts).heatmaps)
    assert np.abs(direct * 4 - kpts[..., :2]).max() < 0.002
    mirrored = kpts[:, list(COCO.flip_index)].copy()
    mirrored[..., 0] = 191 - mirrored[..., 0]
    (back,) = codec.unflip(codec.encode(mirrored).heatmaps)
    got, _ = codec.decode_keypoints(back)
    assert abs(((got - direct)[..., 0] * 4).mean()) < 0.05
    assert np.abs((got - direct) * 4).max() < 0.1
    with pytest.raises(ConfigError, match="frame 'scale' needs input_size"):
        HeatmapCodec(COCO, frame="scale", heatmap_size=(50, 64))


def test_oks_targets_sharpen_the_face_weigh_it_more_and_still_decode_exactly():
    kpts = _random_keypoints(3, seed=5)
    plain, oks = UdpHeatmap(COCO), UdpHeatmap(COCO, oks_targets=True)
    a, b = plain.encode(kpts), oks.encode(kpts)
    nose, hip = COCO.index("nose"), COCO.index("left_hip")
    used = a.keypoint_weights > 0
    assert (b.keypoint_weights[used] > 0).all()
    ratio = b.keypoint_weights / np.where(used, a.keypoint_weights, 1.0)
    assert (ratio[:, nose][used[:, nose]] > 2.5 * ratio[:, hip][used[:, hip]]).all()
    # a sharper Gaussian: less mass in the nose's map
    assert (b.heatmaps[:, nose].sum(axis=(1, 2)) < a.heatmaps[:, nose].sum(axis=(1, 2)))[
        used[:, nose]
    ].all()
    xy_a, _ = plain.decode_keypoints(a.heatmaps)
    xy_b, _ = oks.decode_keypoints(b.heatmaps)
    np.testing.assert_allclose(xy_b[used], xy_a[used], atol=1e-3)
    assert "oks_targets" not in plain.to_dict() and oks.to_dict()["oks_targets"] is True
    assert UdpHeatmap.from_dict(COCO, oks.to_dict()) == oks
    with pytest.raises(ConfigError, match="oks_targets"):
        UdpHeatmap(COCO, oks_targets=1)
