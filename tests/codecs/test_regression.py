"""RegressionCodec and RleCodec: exact normalized frame, targets, weights, round trips, exact flip,
real COCO crops, scores, untouched inputs, torch input, records and bad input.

Tolerances, at the 192 x 256 input (W x H): the targets are u = (x + 0.5) / W in float32, so the
round trip loses only float32 rounding of u in [0, 1): half an ulp, at most 2^-25, times W (or H)
px: <= 256 * 2^-25 = 7.6e-6 px; we bound by max(W, H) * 2^-24 = 1.5e-5 px. The flip ``u -> 1 - u``
is exact up to the same rounding, so flipped and direct decodes agree to that bound (the brief's
0.01 px), with no bias.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from posekit import ConfigError, KeypointSchema, SchemaError
from posekit.codecs.regression import RegressionCodec, RegressionTargets, RleCodec
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
BOUND = max(SIZE) * 2.0**-24  # input px: float32 rounding of normalized coordinates
CODECS = (RegressionCodec, RleCodec)


def _random_keypoints(n: int, seed: int) -> np.ndarray:
    """(n, 17, 3) sub-pixel keypoints anywhere inside the crop's pixel area, all labelled."""
    rng = np.random.default_rng(seed)
    kpts = np.full((n, COCO.num_keypoints, 3), 2.0)
    kpts[..., 0] = rng.uniform(-0.5, SIZE[0] - 0.5, (n, COCO.num_keypoints))
    kpts[..., 1] = rng.uniform(-0.5, SIZE[1] - 0.5, (n, COCO.num_keypoints))
    return kpts


def _outputs(codec, coords: np.ndarray, sigma: float = 0.1) -> tuple[np.ndarray, ...]:
    """What a perfect network returns: the targets (and, for RLE, a constant scale)."""
    if isinstance(codec, RleCodec):
        return coords, np.full_like(coords, sigma)
    return (coords,)


@pytest.mark.parametrize("cls", CODECS)
def test_protocol_and_layout(cls):
    codec = cls(COCO)
    assert isinstance(codec, TopDownCodec)
    assert codec.family == "topdown" and codec.stride == 1 and codec.supports_flip
    assert codec.input_size == SIZE and codec.output_size(SIZE) == (1, 1)
    names = ("coords",) if cls is RegressionCodec else ("coords", "sigmas")
    assert codec.name == ("regression" if cls is RegressionCodec else "rle")
    assert codec.layout.names == names
    assert all(spec.channels == 17 and spec.shape == (2,) for spec in codec.layout)


@pytest.mark.parametrize("cls", CODECS)
def test_frame_is_exact_and_mirror_is_one_minus_u(cls):
    codec = cls(COCO, input_size=(7, 5))
    fwd, back = codec.input_to_output_matrix(), codec.output_to_input_matrix()
    np.testing.assert_allclose(compose_affine(back, fwd), [[1, 0, 0], [0, 1, 0]], atol=1e-12)
    corners = transform_points(np.array([[-0.5, -0.5], [6.5, 4.5], [3.0, 2.0]]), fwd)
    np.testing.assert_allclose(corners, [[0, 0], [1, 1], [0.5, 0.5]], atol=1e-12)
    x_in = np.random.default_rng(0).uniform(-0.5, 6.5, (50, 2))
    mirrored = transform_points(np.stack([6 - x_in[:, 0], x_in[:, 1]], 1), fwd)
    np.testing.assert_allclose(mirrored[:, 0], 1 - transform_points(x_in, fwd)[:, 0], atol=1e-12)


@pytest.mark.parametrize("cls", CODECS)
def test_targets_and_weights(cls):
    schema = KeypointSchema(
        name="t", keypoints=("a", "left_b", "right_b"), joint_weights=(1.0, 2.0, 0.5)
    )
    codec = cls(schema, input_size=(20, 10), reach=0.0)
    kpts = np.array(
        [
            [[9.5, 4.5, 2], [-0.5, -0.5, 1], [19.4, 9.4, 2]],  # inside: the joint weights
            [[-0.6, 5, 2], [20 - 0.5, 4, 2], [7, 10 - 0.5, 2]],  # just outside
            [[5, 5, 0], [np.nan, np.nan, 0], [0, 0, 2]],  # unlabelled (NaN allowed there)
            [[-4.4, 5, 2], [23.4, 4, 2], [7, 10 + 2.6, 2]],  # within 0.2 crops, the last beyond
        ]
    )
    t = codec.encode(kpts)
    assert isinstance(t, RegressionTargets) and t.coords.dtype == np.float32
    assert t.arrays().keys() == {"coords", "keypoint_weights"}
    np.testing.assert_array_equal(
        t.keypoint_weights, [[1, 2, 0.5], [0, 0, 0], [0, 0, 0.5], [0, 0, 0]]
    )
    np.testing.assert_allclose(t.coords[0], [[0.5, 0.5], [0, 0], [0.995, 0.99]], atol=1e-7)
    np.testing.assert_array_equal(t.coords[1:2], 0)  # weight 0: zero targets
    np.testing.assert_array_equal(t.coords[2, :2], 0)
    np.testing.assert_allclose(t.coords[2, 2], [0.5 / 20, 0.5 / 10], atol=1e-7)
    t = cls(schema, input_size=(20, 10)).encode(kpts)  # default reach 0.2: 4 px in x, 2 in y
    np.testing.assert_array_equal(
        t.keypoint_weights, [[1, 2, 0.5], [1, 2, 0.5], [0, 0, 0.5], [1, 2, 0]]
    )
    np.testing.assert_allclose(t.coords[3, :2], [[-3.9 / 20, 0.55], [23.9 / 20, 0.45]], atol=1e-6)


@pytest.mark.parametrize("cls", CODECS)
def test_round_trip_is_exact_to_float32(cls):
    codec = cls(COCO)
    kpts = _random_keypoints(64, seed=1)
    t = codec.encode(kpts)
    out, scores = codec.decode_keypoints(*_outputs(codec, t.coords))
    assert out.shape == (64, 17, 2) and out.dtype == np.float64 and scores.dtype == np.float32
    err = np.abs(transform_points(out, codec.output_to_input_matrix()) - kpts[..., :2])
    assert err.max() <= BOUND
    expected = 1.0 if cls is RegressionCodec else 0.9  # RLE: 1 - sigma
    np.testing.assert_allclose(scores, expected, rtol=1e-6)
    poses = codec.decode(*_outputs(codec, t.coords))  # input pixels by default
    got = np.stack([p.keypoints[:, :2] for p in poses])
    assert np.abs(got - kpts[..., :2]).max() <= BOUND + 256 * 2.0**-24  # float32 Pose


@pytest.mark.parametrize("cls", CODECS)
def test_flip_is_exact_and_unbiased(cls):
    codec = cls(COCO)
    kpts = _random_keypoints(64, seed=2)
    t = codec.encode(kpts)
    mirrored = codec.encode(COCO.flip_keypoints(kpts, SIZE[0] - 1))
    outs = _outputs(codec, mirrored.coords)
    if isinstance(codec, RleCodec):  # scales of the mirrored crop: each keypoint's own
        sigmas = np.random.default_rng(3).uniform(0.01, 0.5, t.coords.shape).astype(np.float32)
        outs = (outs[0], sigmas[:, list(COCO.flip_index)])
    back = codec.unflip(*outs)
    assert len(back) == len(codec.layout)
    np.testing.assert_allclose(back[0], t.coords, atol=2**-24)
    if isinstance(codec, RleCodec):
        np.testing.assert_array_equal(back[1], sigmas)  # permuted back, values unchanged
    m = codec.output_to_input_matrix()
    direct, _ = codec.decode_keypoints(*_outputs(codec, t.coords))
    flipped, _ = codec.decode_keypoints(*back)
    diff = transform_points(flipped, m) - transform_points(direct, m)
    assert np.abs(diff).max() <= 2 * BOUND
    assert abs(diff[..., 0].mean()) < 0.01


@pytest.mark.parametrize("cls", CODECS)
def test_real_coco_crops_round_trip_to_image_pixels(cls, coco_val):
    """COCO-MINI val instances cropped as a top-down pipeline does, decoded to image pixels
    through each crop's own matrix."""
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
    codec = cls(COCO)
    t = codec.encode(kpts_crop)
    used = t.keypoint_weights > 0
    assert used.sum() == (kpts_img[..., 2] > 0).sum()  # 5 of them outside, within the reach
    assert cls(COCO, reach=0.0).encode(kpts_crop).keypoint_weights.astype(bool).sum() == (
        used.sum() - 5
    )
    to_image = np.stack(
        [compose_affine(invert_affine(m), codec.output_to_input_matrix()) for m in to_crop]
    )
    poses = codec.decode(*_outputs(codec, t.coords), affine=to_image)
    got = np.stack([p.keypoints[:, :2] for p in poses]).astype(np.float64)
    scale = sizes[:, 0] / SIZE[0]  # image px per input px
    err = np.abs(got - kpts_img[..., :2]) / scale[:, None, None]
    assert err[used].max() <= BOUND + 640 * 2.0**-24 / scale.min()  # + float32 image coords


def test_rle_scores_follow_sigma_and_are_clipped():
    codec = RleCodec(COCO)
    coords = np.full((2, 17, 2), 0.5, np.float32)
    sigmas = np.zeros((2, 17, 2), np.float32)
    sigmas[0, 0], sigmas[0, 1], sigmas[0, 2], sigmas[1, 0] = (0.1, 0.3), (1.5, 2.0), (-0.2, 0), 1
    _, scores = codec.decode_keypoints(coords, sigmas)
    assert scores[0, 0] == pytest.approx(0.8)
    assert scores[0, 1] == 0 and scores[0, 2] == 1 and scores[1, 0] == 0 and scores[1, 1] == 1
    poses = codec.decode(coords, sigmas)
    assert poses[0].keypoints[0, 2] == pytest.approx(0.8)
    assert poses[1].score == pytest.approx(16 / 17)


@pytest.mark.parametrize("cls", CODECS)
def test_decoders_never_mutate_and_accept_torch(cls):
    codec = cls(COCO)
    rng = np.random.default_rng(3)
    outs = _outputs(codec, rng.uniform(0, 1, (4, 17, 2)).astype(np.float32), sigma=0.2)
    copies = [o.copy() for o in outs]
    kp, sc = codec.decode_keypoints(*outs)
    codec.decode(*outs)
    back = codec.unflip(*outs)
    for o, c, b in zip(outs, copies, back, strict=True):
        np.testing.assert_array_equal(o, c)
        assert not np.shares_memory(o, b)
    tensors = [torch.from_numpy(c.copy()) for c in copies]
    kp_t, sc_t = codec.decode_keypoints(*tensors)
    np.testing.assert_array_equal(kp_t, kp)
    np.testing.assert_array_equal(sc_t, sc)
    for a, b in zip(codec.unflip(*tensors), back, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(tensors[0].numpy(), copies[0])
    kpts = _random_keypoints(4, seed=4)
    np.testing.assert_array_equal(
        codec.encode(torch.from_numpy(kpts)).coords, codec.encode(kpts).coords
    )


@pytest.mark.parametrize("cls", CODECS)
def test_record_round_trip(cls):
    codec = cls(COCO, input_size=(96, 128))
    record = codec.to_dict()
    assert record == {"name": cls.name, "input_size": [96, 128], "reach": 0.2}
    assert json.loads(json.dumps(record)) == record
    assert cls.from_dict(COCO, record) == codec
    assert cls.from_dict(COCO, {"name": cls.name}) == cls(COCO)


@pytest.mark.parametrize("cls", CODECS)
def test_bad_parameters_and_records(cls):
    for bad in (-0.1, 1.5, float("nan"), "0.2", True):
        with pytest.raises(ConfigError, match="reach must be a number in"):
            cls(COCO, reach=bad)
    with pytest.raises(ConfigError, match="input_size must be two positive integers"):
        cls(COCO, input_size=(192, 0))
    with pytest.raises(
        ConfigError, match=rf"codec '{cls.name}': unknown parameter\(s\) \['sigma'\]"
    ):
        cls.from_dict(COCO, {"name": cls.name, "sigma": 2.0})
    other = "rle" if cls is RegressionCodec else "regression"
    with pytest.raises(ConfigError, match=f"codec record is not a {cls.__name__}"):
        cls.from_dict(COCO, {"name": other})


@pytest.mark.parametrize("cls", CODECS)
def test_bad_keypoints_and_outputs(cls):
    codec = cls(COCO)
    with pytest.raises(SchemaError, match=r"expected \(N, 17, 3\) for schema 'coco_person'"):
        codec.encode(np.zeros((2, 16, 3)))
    with pytest.raises(ConfigError, match=r"labeled keypoints have non-finite coordinates"):
        codec.encode(np.where(np.arange(3) < 2, np.nan, 2.0) * np.ones((2, 17, 3)))
    with pytest.raises(ConfigError, match=rf"{cls.__name__}.encode: input_size \(W, H\) = "):
        codec.encode(np.zeros((2, 17, 3)), (256, 192))
    codec.encode(np.zeros((2, 17, 3)), SIZE)  # its own size is fine
    with pytest.raises(ConfigError, match=r"ignore_mask must be None .* shape \(256, 192\)"):
        codec.encode(np.zeros((2, 17, 3)), SIZE, np.zeros((256, 192), bool))
    good = _outputs(codec, np.zeros((2, 17, 2), np.float32))
    with pytest.raises(SchemaError, match=r"coords: expected \(N, 17, 2\) for schema"):
        codec.decode_keypoints(good[0][:, :15], *good[1:])
    with pytest.raises(ConfigError, match=r"coords: expected \(N, 17, 2\) \(u, v per keypoint\)"):
        codec.decode_keypoints(np.zeros((2, 17, 3)), *good[1:])
    with pytest.raises(ConfigError, match="coords: non-finite values"):
        codec.decode(np.full((2, 17, 2), np.inf), *good[1:])
    with pytest.raises(
        ConfigError, match=r"decode: config must be None \(no decoding parameters\)"
    ):
        codec.decode(*good, config={"refine": True})
    if cls is RleCodec:
        with pytest.raises(ConfigError, match="sigmas: expected the same N = 2 crops as coords"):
            codec.unflip(good[0], good[1][:1])
