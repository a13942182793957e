"""SimccCodec: exact frame, label values, weights, round trips (argmax and refined), exact flip,
real COCO crops, untouched inputs, torch input, records and bad input.

Tolerances, at the 192 x 256 input (W x H) with split 2 (Wx = 384, Wy = 512 bins, k = 2 bins per
input pixel):

- argmax only: the labels are Gaussians sampled at the bin centers, so their maximum is the bin
  center nearest the keypoint: at most half a bin, 1 / (2 k) = 0.25 input px, off (plus float32
  rounding of a near tie, 1e-6);
- refined: the log of a Gaussian is a parabola, so the log-parabola fit is exact up to float32
  rounding of the labels (relative 6e-8 on log values, divided by the curvature 1 / sigma^2 with
  sigma = 5.66 bins: ~2e-6 bins = 1e-6 px); we bound the max by 1e-3 px (the brief's bound on the
  mean is 0.01 px);
- flip: the mirror is the exact reversal of the x bins, so the flipped-and-unflipped decode equals
  the direct one up to float rounding: bound 0.01 px, signed mean (bias) < 0.01 px.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from posekit import ConfigError, KeypointSchema, SchemaError
from posekit.codecs.simcc import SimccCodec, SimccDecodeConfig, SimccTargets
from posekit.codecs.topdown import TopDownCodec
from posekit.geometry import (
    box_to_center_size,
    compose_affine,
    crop_matrix,
    invert_affine,
    transform_points,
)

COCO = KeypointSchema.named("coco_person")
SIZE = (192, 256)
K_BINS = 2.0  # bins per input pixel at split 2
ARGMAX_BOUND = 1 / (2 * K_BINS) + 1e-6  # half a bin, input px
REFINED_BOUND = 1e-3  # input px (float32 labels: ~1e-6 expected)
FLIP_BOUND = 0.01  # input px


def _random_keypoints(n: int, seed: int, size=SIZE) -> np.ndarray:
    """(n, 17, 3) sub-pixel keypoints anywhere inside the crop's pixel area, all labelled."""
    rng = np.random.default_rng(seed)
    w, h = size
    kpts = np.full((n, COCO.num_keypoints, 3), 2.0)
    kpts[..., 0] = rng.uniform(-0.5, w - 0.5, (n, COCO.num_keypoints))
    kpts[..., 1] = rng.uniform(-0.5, h - 0.5, (n, COCO.num_keypoints))
    return kpts


def _to_input(codec: SimccCodec, kpts_out: np.ndarray) -> np.ndarray:
    return transform_points(kpts_out, codec.output_to_input_matrix())


def test_protocol_layout_and_sizes():
    codec = SimccCodec(COCO)
    assert isinstance(codec, TopDownCodec)
    assert codec.name == "simcc" and codec.family == "topdown" and codec.stride == 1
    assert codec.input_size == SIZE and codec.supports_flip
    assert codec.output_size(SIZE) == (384, 512)
    assert codec.layout.names == ("simcc_x", "simcc_y")
    assert codec.layout.channels == (17, 17)
    assert codec.layout["simcc_x"].shape == (384,) and codec.layout["simcc_y"].shape == (512,)
    assert SimccCodec(COCO, sigma=3.0).sigma == (3.0, 3.0)


@pytest.mark.parametrize("size,ratio", [((192, 256), 2.0), ((190, 250), 1.5), ((7, 5), 2.5)])
def test_frame_is_exact_and_mirror_is_bin_reversal(size, ratio):
    codec = SimccCodec(COCO, input_size=size, split_ratio=ratio)
    wx, wy = codec.output_size(size)
    fwd, back = codec.input_to_output_matrix(), codec.output_to_input_matrix()
    np.testing.assert_allclose(compose_affine(back, fwd), [[1, 0, 0], [0, 1, 0]], atol=1e-12)
    # the crop's edges are the outer edges of the first and last bins
    edges = transform_points(np.array([[-0.5, -0.5], [size[0] - 0.5, size[1] - 0.5]]), fwd)
    np.testing.assert_allclose(edges, [[-0.5, -0.5], [wx - 0.5, wy - 0.5]], atol=1e-12)
    # bin b is centered at (b + 0.5) / k - 0.5 input px
    b = np.array([[0.0, 0.0], [3.0, 2.0]])
    kx, ky = wx / size[0], wy / size[1]
    np.testing.assert_allclose(
        transform_points(b, back), (b + 0.5) / np.array([kx, ky]) - 0.5, atol=1e-12
    )
    # x_in -> W - 1 - x_in is x_bin -> Wx - 1 - x_bin
    x_in = np.random.default_rng(0).uniform(-0.5, size[0] - 0.5, (50, 2))
    mirrored = transform_points(np.stack([size[0] - 1 - x_in[:, 0], x_in[:, 1]], 1), fwd)
    direct = transform_points(x_in, fwd)
    np.testing.assert_allclose(mirrored[:, 0], wx - 1 - direct[:, 0], atol=1e-9)


def test_labels_have_the_documented_values():
    codec = SimccCodec(COCO, sigma=(2.0, 3.0))
    kpts = np.zeros((1, 17, 3))
    kpts[0, 0] = [9.75, 20.75, 2]  # bin centers 20 (x) and 42 (y): (b + 0.5) / 2 - 0.5
    t = codec.encode(kpts)
    assert isinstance(t, SimccTargets)
    assert t.simcc_x.shape == (1, 17, 384) and t.simcc_y.shape == (1, 17, 512)
    assert t.simcc_x.dtype == np.float32 and t.keypoint_weights.dtype == np.float32
    x, y = t.simcc_x[0, 0], t.simcc_y[0, 0]
    assert x.argmax() == 20 and x[20] == pytest.approx(1.0)
    assert x[23] == pytest.approx(np.exp(-9 / (2 * 2.0**2)), rel=1e-6)
    assert y.argmax() == 42 and y[40] == pytest.approx(np.exp(-4 / (2 * 3.0**2)), rel=1e-6)
    assert t.simcc_x[0, 1:].max() == 0 and t.simcc_y[0, 1:].max() == 0  # unlabelled: zero
    np.testing.assert_array_equal(t.keypoint_weights[0], [1.0] + [0.0] * 16)
    assert t.arrays().keys() == {"simcc_x", "simcc_y", "keypoint_weights"}

    norm = SimccCodec(COCO, sigma=(2.0, 3.0), normalize=True).encode(kpts)
    assert norm.simcc_x[0, 0].sum() == pytest.approx(1.0, rel=1e-5)
    assert norm.simcc_y[0, 0].sum() == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_allclose(norm.simcc_x[0, 0] / norm.simcc_x[0, 0].max(), x, rtol=1e-5)
    assert norm.simcc_x[0, 1:].max() == 0
    _, scores = codec.decode_keypoints(t.simcc_x, t.simcc_y)
    assert scores[0, 0] == pytest.approx(1.0) and (scores[0, 1:] == 0).all()
    _, norm_scores = codec.decode_keypoints(norm.simcc_x, norm.simcc_y)
    peak = 0.5 * (1 / (2.0 * np.sqrt(2 * np.pi)) + 1 / (3.0 * np.sqrt(2 * np.pi)))
    assert norm_scores[0, 0] == pytest.approx(peak, rel=1e-3)


def test_weights_zero_outside_the_crop_and_unlabelled_and_use_joint_weights():
    schema = KeypointSchema(
        name="t",
        keypoints=("a", "left_b", "right_b"),
        joint_weights=(1.0, 2.0, 0.5),
    )
    kpts = np.array(
        [
            [[5, 5, 2], [3, 4, 1], [7, 2, 2]],  # all inside: the joint weights
            [[-0.6, 5, 2], [19.5, 4, 2], [7, 9.5, 2]],  # just outside: left, right, bottom
            [[5, 5, 0], [np.nan, np.nan, 0], [-0.5, -0.5, 2]],  # unlabelled; top-left corner in
            [[-4.4, 5, 2], [5, 11.4, 2], [5, 11.6, 2]],  # within the reach 0.2, the last beyond
        ],
        dtype=np.float64,
    )
    for reach, expected in ((0.0, [[1, 2, 0.5], [0, 0, 0], [0, 0, 0.5], [0, 0, 0]]),
                            (0.2, [[1, 2, 0.5], [1, 2, 0.5], [0, 0, 0.5], [1, 2, 0]])):  # fmt: skip
        t = SimccCodec(schema, input_size=(20, 10), sigma=2.0, reach=reach).encode(kpts)
        np.testing.assert_array_equal(t.keypoint_weights, expected)
        zero = t.keypoint_weights == 0
        assert t.simcc_x[zero].max() == 0 and t.simcc_y[zero].max() == 0
        inside = np.zeros(zero.shape, bool)
        inside[0], inside[2, 2] = True, True
        assert (t.simcc_x[inside].max(axis=-1) > 0.9).all()
        assert np.isfinite(t.simcc_x).all() and np.isfinite(t.simcc_y).all()
    assert 0 < t.simcc_x[3, 0].max() < 1e-3 and 0 < t.simcc_y[3, 1].max() < 0.2  # tails only
    # a far tail (below MIN_TARGET) is not encoded even within the reach: a narrow Gaussian
    t = SimccCodec(schema, input_size=(20, 10), sigma=0.5, reach=0.2).encode(kpts)
    assert t.keypoint_weights[3, 0] == 0 and t.keypoint_weights[1, 0] == 1


@pytest.mark.parametrize("normalize", [False, True])
def test_keypoints_beyond_the_crop_within_the_reach_come_back_from_the_tails(normalize):
    """Labels of a keypoint outside the crop hold the tail of its Gaussian (maximum in the first
    or last bin); the one-sided log-parabola extrapolates it exactly, no further than the reach.
    (Up to ~8 sigmas: farther, the labels fall below MIN_TARGET and are not encoded.)"""
    codec = SimccCodec(COCO, normalize=normalize)
    kpts = _random_keypoints(2, seed=5)
    kpts[0, :, 0] = np.linspace(-20.0, -0.6, COCO.num_keypoints)  # left of the crop
    kpts[1, :, 1] = np.linspace(SIZE[1] - 0.4, SIZE[1] + 20.0, COCO.num_keypoints)  # below it
    t = codec.encode(kpts)
    assert (t.keypoint_weights > 0).all()
    xy, _ = codec.decode_keypoints(t.simcc_x, t.simcc_y)
    back = xy @ codec.output_to_input_matrix()[:, :2].T + codec.output_to_input_matrix()[:, 2]
    assert np.abs(back - kpts[..., :2]).max() < REFINED_BOUND
    noise = np.random.default_rng(1).random((3, COCO.num_keypoints, 384)).astype(np.float32)
    noise[..., -1] += 1.0  # maxima in the last x bin
    xy, _ = codec.decode_keypoints(noise, t.simcc_y[:1].repeat(3, 0))
    assert xy[..., 0].max() <= 383 + 0.5 + 0.2 * 384 + 1e-4 and xy[..., 0].min() >= 383 - 0.5


@pytest.mark.parametrize("normalize", [False, True])
def test_round_trip_argmax_and_refined(normalize):
    codec = SimccCodec(COCO, normalize=normalize)
    kpts = _random_keypoints(64, seed=1)
    t = codec.encode(kpts)
    for refine, bound in ((False, ARGMAX_BOUND), (True, REFINED_BOUND)):
        out, scores = codec.decode_keypoints(t.simcc_x, t.simcc_y, SimccDecodeConfig(refine=refine))
        assert out.shape == (64, 17, 2) and out.dtype == np.float64
        assert scores.shape == (64, 17) and scores.dtype == np.float32
        err = np.abs(_to_input(codec, out) - kpts[..., :2])
        assert err.max() <= bound, (refine, err.max(axis=(0, 1)))
        if refine:
            assert err.mean() < 0.01
        else:  # uniform sub-bin positions: the mean error is a quarter bin, 0.125 px
            assert err.mean() == pytest.approx(0.125, abs=0.01)


def test_blurred_refinement_stays_sub_pixel():
    """``blur_kernel`` (DARK's modulation) widens the Gaussians; away from the ends, where the
    zero border cuts the blur, the refinement stays exact to 0.01 px."""
    codec = SimccCodec(COCO, decode_config=SimccDecodeConfig(blur_kernel=7))
    kpts = _random_keypoints(32, seed=2)
    kpts[..., :2] = 20 + kpts[..., :2] * (np.array(SIZE) - 40) / np.array(SIZE)
    t = codec.encode(kpts)
    out, _ = codec.decode_keypoints(t.simcc_x, t.simcc_y)
    assert np.abs(_to_input(codec, out) - kpts[..., :2]).max() < 0.01


@pytest.mark.parametrize("refine", [False, True])
def test_flip_is_exact_and_unbiased(refine):
    codec = SimccCodec(COCO)
    cfg = SimccDecodeConfig(refine=refine)
    kpts = _random_keypoints(64, seed=3)
    t = codec.encode(kpts)
    mirrored = codec.encode(COCO.flip_keypoints(kpts, SIZE[0] - 1))
    back_x, back_y = codec.unflip(mirrored.simcc_x, mirrored.simcc_y)
    np.testing.assert_allclose(back_x, t.simcc_x, atol=1e-6)
    np.testing.assert_allclose(back_y, t.simcc_y, atol=1e-6)
    direct, _ = codec.decode_keypoints(t.simcc_x, t.simcc_y, cfg)
    flipped, _ = codec.decode_keypoints(back_x, back_y, cfg)
    diff = _to_input(codec, flipped) - _to_input(codec, direct)
    assert np.abs(diff).max() < FLIP_BOUND
    assert abs(diff[..., 0].mean()) < 0.01


def test_real_coco_crops_round_trip_to_image_pixels(coco_val):
    """Instances of COCO-MINI val cropped as a top-down pipeline does; decode maps the bins back
    to image pixels through each crop's own matrix."""
    ann_file, _ = coco_val
    anns = [a for a in json.loads(ann_file.read_text())["annotations"] if a["num_keypoints"] > 0]
    kpts_img = np.array([a["keypoints"] for a in anns], np.float64).reshape(len(anns), 17, 3)
    boxes = np.array([a["bbox"] for a in anns], np.float64)
    boxes[:, 2:] += boxes[:, :2]
    centers, sizes = box_to_center_size(boxes, SIZE[0] / SIZE[1])
    to_crop = np.stack([crop_matrix(c, s, SIZE) for c, s in zip(centers, sizes, strict=True)])
    kpts_crop = kpts_img.copy()
    kpts_crop[..., :2] = np.einsum("nij,nkj->nki", to_crop[:, :, :2], kpts_img[..., :2])
    kpts_crop[..., :2] += to_crop[:, None, :, 2]
    codec = SimccCodec(COCO, reach=0.0)  # the 5 outside their padded boxes: see the next test
    t = codec.encode(kpts_crop)
    x, y = kpts_crop[..., 0], kpts_crop[..., 1]
    inside = (x >= -0.5) & (x < SIZE[0] - 0.5) & (y >= -0.5) & (y < SIZE[1] - 0.5)
    labelled = (kpts_img[..., 2] > 0) & inside
    assert (~inside & (kpts_img[..., 2] > 0)).sum() == 5  # COCO points outside the padded box
    np.testing.assert_array_equal(t.keypoint_weights, labelled.astype(np.float32))
    to_image = np.stack(
        [compose_affine(invert_affine(m), codec.output_to_input_matrix()) for m in to_crop]
    )
    poses = codec.decode(t.simcc_x, t.simcc_y, affine=to_image)
    assert len(poses) == len(anns)
    got_img = np.stack([p.keypoints[:, :2] for p in poses]).astype(np.float64)
    got_crop = np.einsum("nij,nkj->nki", to_crop[:, :, :2], got_img) + to_crop[:, None, :, 2]
    err = np.abs(got_crop - kpts_crop[..., :2])[labelled]
    assert err.max() < REFINED_BOUND  # input px (image px / crop scale)
    scores = np.stack([p.keypoints[:, 2] for p in poses])
    assert (scores[labelled] > 0.99).all() and (scores[~labelled] == 0).all()


def test_decode_gives_poses_in_input_pixels_by_default():
    codec = SimccCodec(COCO)
    kpts = _random_keypoints(3, seed=4)
    t = codec.encode(kpts)
    poses = codec.decode(t.simcc_x, t.simcc_y)
    assert len(poses) == 3
    got = np.stack([p.keypoints[:, :2] for p in poses])
    assert np.abs(got - kpts[..., :2]).max() < REFINED_BOUND
    assert poses[0].score == pytest.approx(1.0, abs=0.01)


def test_decoders_never_mutate_and_accept_torch():
    codec = SimccCodec(COCO, decode_config=SimccDecodeConfig(blur_kernel=5))
    t = codec.encode(_random_keypoints(4, seed=5))
    rng = np.random.default_rng(6)
    x = (t.simcc_x + rng.normal(0, 0.05, t.simcc_x.shape)).astype(np.float32)
    y = (t.simcc_y + rng.normal(0, 0.05, t.simcc_y.shape)).astype(np.float32)
    x0, y0 = x.copy(), y.copy()
    kp, sc = codec.decode_keypoints(x, y)
    codec.decode(x, y)
    fx, fy = codec.unflip(x, y)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(y, y0)
    assert not np.shares_memory(fx, x) and not np.shares_memory(fy, y)
    tx, ty = torch.from_numpy(x0.copy()), torch.from_numpy(y0.copy())
    kp_t, sc_t = codec.decode_keypoints(tx, ty)
    np.testing.assert_array_equal(kp_t, kp)
    np.testing.assert_array_equal(sc_t, sc)
    np.testing.assert_array_equal(codec.unflip(tx, ty)[0], fx)
    np.testing.assert_array_equal(tx.numpy(), x0)
    kpts = _random_keypoints(4, seed=5)
    from_torch = codec.encode(torch.from_numpy(kpts))
    np.testing.assert_array_equal(from_torch.simcc_x, codec.encode(kpts).simcc_x)


def test_record_round_trip():
    codec = SimccCodec(
        COCO, input_size=(96, 128), split_ratio=3.0, sigma=(2.5, 3.5), normalize=True
    )
    record = codec.to_dict()
    assert record["name"] == "simcc"
    assert json.loads(json.dumps(record)) == record  # plain types only
    assert SimccCodec.from_dict(COCO, record) == codec
    assert SimccCodec.from_dict(COCO, {"name": "simcc"}) == SimccCodec(COCO)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"split_ratio": 0.0}, "split_ratio must be a number > 0"),
        ({"split_ratio": "2"}, "split_ratio must be a number > 0"),
        ({"split_ratio": 0.01, "input_size": (10, 10)}, "gives no bin"),
        ({"sigma": -1.0}, r"sigma must be > 0 \(bins\)"),
        ({"sigma": (1.0, 2.0, 3.0)}, r"sigma must be a number or \(sigma_x, sigma_y\)"),
        ({"normalize": 1}, "normalize must be a bool"),
        ({"input_size": (0, 256)}, "input_size must be two positive integers"),
        ({"input_size": 192}, r"input_size must be \(W, H\)"),
        ({"decode_config": {"refine": True}}, "decode_config must be a SimccDecodeConfig"),
    ],
)
def test_bad_parameters(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        SimccCodec(COCO, **kwargs)


def test_bad_decode_config_and_records():
    with pytest.raises(ConfigError, match="blur_kernel an odd positive integer"):
        SimccDecodeConfig(blur_kernel=4)
    with pytest.raises(ConfigError, match="invalid values {'refine': 'yes'}"):
        SimccDecodeConfig(refine="yes")
    with pytest.raises(ConfigError, match=r"unknown parameter\(s\) \['stride'\]"):
        SimccCodec.from_dict(COCO, {"name": "simcc", "stride": 4})
    with pytest.raises(ConfigError, match="not a SimCC codec"):
        SimccCodec.from_dict(COCO, {"name": "paf"})
    codec = SimccCodec(COCO)
    t = codec.encode(_random_keypoints(1, seed=7))
    with pytest.raises(ConfigError, match="expected a SimccDecodeConfig, got dict"):
        codec.decode_keypoints(t.simcc_x, t.simcc_y, {"refine": False})


def test_bad_keypoints_and_outputs():
    codec = SimccCodec(COCO)
    with pytest.raises(SchemaError, match=r"expected \(N, 17, 3\) for schema 'coco_person'"):
        codec.encode(np.zeros((2, 16, 3)))
    with pytest.raises(ConfigError, match=r"input_size \(W, H\) = \(256, 192\) differs"):
        codec.encode(np.zeros((2, 17, 3)), (256, 192))
    codec.encode(np.zeros((2, 17, 3)), SIZE)  # its own size is fine
    with pytest.raises(ConfigError, match=r"ignore_mask must be None .* shape \(256, 192\)"):
        codec.encode(np.zeros((2, 17, 3)), SIZE, np.zeros((256, 192), bool))
    x, y = np.zeros((2, 17, 384), np.float32), np.zeros((2, 17, 512), np.float32)
    with pytest.raises(SchemaError, match=r"simcc_x: expected \(N, K, 384\) = \(N, 17, 384\)"):
        codec.decode_keypoints(x[:, :16], y)
    with pytest.raises(ConfigError, match=r"simcc_y: expected 512 bins \(input_size"):
        codec.decode_keypoints(x, y[..., :256])
    with pytest.raises(ConfigError, match="the same N crops, got 2 and 1"):
        codec.unflip(x, y[:1])
    with pytest.raises(ConfigError, match="simcc_x: non-finite values"):
        codec.decode(np.full_like(x, np.nan), y)
    with pytest.raises(ConfigError, match=r"affine: expected \(2, 3\) or \(2, 2, 3\)"):
        codec.decode(x, y, affine=np.eye(3))
