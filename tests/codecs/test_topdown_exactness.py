"""Every top-down codec end to end in image space: image -> random box, scale, rotation (the
crop fixed to 192 x 256, the box widened to its aspect) -> crop matrix -> encode -> decode ->
the crop matrix inverted -> image; and the flip test of a perfect network, on random sub-pixel
keypoints and on the real boxes and keypoints of COCO-MINI val.

Errors are measured in input (crop) pixels: an image-pixel error times the crop's scale.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from posekit.codecs import CODECS, build_codec
from posekit.codecs.topdown import perfect_keypoints
from posekit.data.coco import CocoKeypointDataset
from posekit.geometry import (
    box_to_center_size,
    crop_matrix,
)
from posekit.schema import KeypointSchema

DATA = Path("../shared/data")
SCHEMA = KeypointSchema.named("coco_person")
INPUT = (192, 256)
TOPDOWN = sorted(name for name, cls in CODECS.items() if cls.family == "topdown")

# Mean error bound (input px) of a perfect network's outputs per codec, with where it comes from
BOUNDS = {
    "heatmap": 0.01,  # float centre + DARK's Taylor step (exact on Gaussians)
    "dark": 0.01,
    "udp": 0.01,
    "msra": 1.7,  # integer centre: uniform +-half a cell per axis, stride 4 -> mean 1.53
    "simcc": 0.01,  # Gaussian labels + sub-bin log-parabola (exact)
    "regression": 1e-3,  # float32 coordinates
    "rle": 1e-3,
}


def _crops(boxes: np.ndarray, rng: np.random.Generator):
    """Per instance a random scale / rotation crop of its box: (N, 2, 3) image -> crop
    matrices and their scales (input px per image px)."""
    centers, sizes = box_to_center_size(boxes, INPUT[0] / INPUT[1])
    scale = rng.uniform(0.7, 1.4, len(boxes))
    angle = rng.uniform(-80, 80, len(boxes))
    mats = np.stack([crop_matrix(c, s * f, INPUT, rotation_deg=a)
                     for c, s, f, a in zip(centers, sizes, scale, angle, strict=True)])  # fmt: skip
    return mats, INPUT[0] / (sizes[:, 0] * scale)


def _errors(codec, kpts_img, boxes, seed, *, flip=False):
    """(errors (N, K, 2) input px, (N, K) bool: the keypoint was encoded: inside its crop or
    within the codec's reach; except for MSRA, whose quarter step keeps the ones beyond the crop
    on the border: inside the crop only)."""
    mats, px = _crops(boxes, np.random.default_rng(seed))
    got, encoded = perfect_keypoints(codec, kpts_img, mats, flip=flip)
    if codec.name == "msra":
        crop = np.einsum("nij,nkj->nki", mats[:, :, :2], kpts_img[..., :2]) + mats[:, None, :, 2]
        w, h = codec.input_size
        encoded &= ((crop >= -0.5) & (crop < np.array([w, h]) - 0.5)).all(-1)
    return (got - kpts_img[..., :2]) * px[:, None, None], encoded


def _random_people(n: int, seed: int):
    rng = np.random.default_rng(seed)
    boxes = np.concatenate([rng.uniform(0, 400, (n, 2)), np.zeros((n, 2))], axis=1)
    boxes[:, 2:] = boxes[:, :2] + rng.uniform(40, 300, (n, 2))
    kpts = np.zeros((n, SCHEMA.num_keypoints, 3))
    kpts[..., :2] = boxes[:, None, :2] + rng.uniform(0, 1, (n, 17, 2)) * (
        boxes[:, None, 2:] - boxes[:, None, :2]
    )
    kpts[..., 2] = 2
    return kpts, boxes


@pytest.fixture(scope="module")
def real_people():
    ds = CocoKeypointDataset(DATA / "coco_mini/annotations/person_keypoints_val2017.json",
                             DATA / "coco_mini/images/val2017", check_images="none")  # fmt: skip
    kpts = np.concatenate([r.keypoints for r in ds.records]).astype(np.float64)
    boxes = np.concatenate([r.boxes for r in ds.records]).astype(np.float64)
    return kpts, boxes


@pytest.mark.parametrize("name", TOPDOWN)
def test_round_trip_in_image_space(name, real_people):
    codec = build_codec(name, SCHEMA)
    for kpts, boxes in (_random_people(48, 1), real_people):
        diff, inside = _errors(codec, kpts, boxes, seed=2)
        err = np.linalg.norm(diff, axis=-1)[inside]
        assert len(err) > 300
        assert err.mean() < BOUNDS[name], (name, err.mean(), err.max())


@pytest.mark.parametrize("name", TOPDOWN)
def test_flip_test_of_a_perfect_network_has_no_bias(name, real_people):
    """The mirrored crop, decoded and mapped back, against the crop itself: the shift the flip
    test adds (the mean signed x difference) is zero. For an exact codec both also match the
    truth; a quantised one (MSRA) quantises the mirrored crop to the same cells."""
    codec = build_codec(name, SCHEMA)
    for kpts, boxes in (_random_people(48, 3), real_people):
        direct, inside = _errors(codec, kpts, boxes, seed=4)
        mirrored, inside_m = _errors(codec, kpts, boxes, seed=4, flip=True)
        both = inside & inside_m
        bias = (mirrored - direct)[..., 0][both].mean()
        assert abs(bias) < 0.01, (name, bias)
        if BOUNDS[name] <= 0.01:
            assert abs(mirrored[..., 0][both].mean()) < 0.01
            assert np.linalg.norm(mirrored, axis=-1)[both].mean() < 0.01
