"""Person crops: one matrix per crop, keypoints on the warped marks, augmentation ranges,
half-body and flip keeping left and right consistent, on COCO and a non-human schema."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from posekit.data.coco import CocoKeypointDataset
from posekit.data.crops import CropConfig, FixedCrop, RandomCrop
from posekit.errors import ConfigError
from posekit.geometry import invert_affine, transform_points
from posekit.schema import KeypointSchema

DATA = Path("../shared/data")
STILL = {"shift_prob": 0.0, "scale_prob": 0.0, "rotation_prob": 0.0, "flip_prob": 0.0,
         "half_body_prob": 0.0}  # fmt: skip


@pytest.fixture(scope="module")
def coco_people():
    ds = CocoKeypointDataset(DATA / "coco_mini/annotations/person_keypoints_val2017.json",
                             DATA / "coco_mini/images/val2017")  # fmt: skip
    return ds, [(i, n) for i, r in enumerate(ds.records) for n in range(r.num_instances)]


def _marked(shape, kpts: np.ndarray) -> np.ndarray:
    """A black image with a disc of value 50 + i at each labelled keypoint i."""
    image = np.zeros(shape, np.uint8)
    for i, (x, y, v) in enumerate(kpts):
        if v > 0:
            cv2.circle(image, (round(x), round(y)), 3, (50 + i,) * 3, -1)
    return image


def test_fixed_crop_of_a_real_person_is_the_matrix_applied(coco_people):
    ds, people = coco_people
    schema = ds.schema
    crop = FixedCrop(schema, CropConfig())
    for index, n in people[:10]:
        rec = ds.records[index]
        image = ds.load_image(index)
        out = crop(image, rec.keypoints[n], rec.boxes[n])
        assert out.image.shape == (256, 192, 3)
        lab = rec.keypoints[n, :, 2] > 0
        np.testing.assert_allclose(out.keypoints[lab, :2],
                                   transform_points(rec.keypoints[n, lab, :2], out.matrix),
                                   atol=1e-4)  # fmt: skip
        # the padded box spans the crop: its corners land on the crop's pixel-area corners
        x1, y1, x2, y2 = rec.boxes[n]
        inside = transform_points(np.array([[x1, y1], [x2, y2]]), out.matrix)
        assert (inside >= -0.5 - 1e-6).all() and (inside <= [191.5 + 1e-6, 255.5 + 1e-6]).all()


@pytest.mark.parametrize("seed", range(6))
def test_random_crop_keypoints_land_on_the_warped_marks(coco_people, seed):
    ds, people = coco_people
    schema = ds.schema
    index, n = people[seed * 7 % len(people)]
    rec = ds.records[index]
    kpts = rec.keypoints[n]
    image = _marked((rec.height, rec.width, 3), kpts)
    config = CropConfig(rotation_prob=1.0, flip_prob=0.5, half_body_prob=0.0, fill=0)
    out = RandomCrop(schema, config)(image, kpts, rec.boxes[n], np.random.default_rng(seed))
    for i, (x, y, v) in enumerate(out.keypoints):
        src = schema.flip_index[i] if out.flipped else i
        if v == 0 or not (2 <= x < 190 and 2 <= y < 254):
            continue
        assert out.image[int(round(y)), int(round(x)), 0] == 50 + src  # the mark of keypoint src
    back = transform_points(out.keypoints[:, :2], invert_affine(out.matrix))
    lab = out.keypoints[:, 2] > 0
    src = np.array(schema.flip_index) if out.flipped else np.arange(schema.num_keypoints)
    np.testing.assert_allclose(back[lab], kpts[src][lab, :2], atol=1e-3)


def test_augmentation_draws_stay_in_their_ranges():
    schema = KeypointSchema.named("coco_person")
    kpts = np.zeros((17, 3), np.float32)
    box = np.array([100.0, 100.0, 148.0, 228.0])  # 48 x 128: padded x1.25 and widened to 120 x 160
    crop = RandomCrop(schema, CropConfig(half_body_prob=0.0, flip_prob=0.0))
    rng = np.random.default_rng(0)
    scales, angles = [], []
    for _ in range(400):
        m = crop(np.zeros((400, 400, 3), np.uint8), kpts, box, rng).matrix
        scales.append(192 / np.hypot(m[0, 0], m[0, 1]) / 120)  # crop box width / 120
        angles.append(np.degrees(np.arctan2(m[0, 1], m[0, 0])))
    scales, angles = np.array(scales), np.array(angles)
    assert 0.5 <= scales.min() and scales.max() <= 1.5 and abs(np.median(scales) - 1) < 0.1
    assert np.abs(angles).max() <= 80.0 + 1e-6
    assert 0.5 < np.mean(np.abs(angles) > 1e-9) < 0.7  # rotation_prob 0.6


def test_half_body_and_flip_keep_left_and_right_on_an_animal_schema():
    ann = DATA / "custom/ap10k/test_ap10k.json"
    category = json.loads(ann.read_text())["categories"][0]
    schema = KeypointSchema.from_coco(category, sigmas=[0.05] * 17)
    ds = CocoKeypointDataset(ann, ann.parent, schema=schema)
    rec = ds.records[0]
    kpts, box = rec.keypoints[0], rec.boxes[0]
    config = CropConfig(
        **{**STILL, "half_body_prob": 1.0, "flip_prob": 1.0},
        half_body_min_keypoints=4,
        half_body_min_upper=2,
        half_body_min_lower=2,
    )
    crop = RandomCrop(schema, config)
    seen = set()
    for seed in range(20):
        out = crop(ds.load_image(0), kpts, box, np.random.default_rng(seed))
        assert out.flipped and out.half_body in ("upper", "lower")
        seen.add(out.half_body)
        half = schema.halves[0 if out.half_body == "upper" else 1]
        # the chosen half, mirrored, is the same half (mirror-closed): all of it in the crop
        expected = transform_points(kpts[:, :2], out.matrix)[list(schema.flip_index)]
        lab = out.keypoints[:, 2] > 0
        np.testing.assert_allclose(out.keypoints[lab, :2], expected[lab], atol=1e-3)
        for i in half:
            if out.keypoints[i, 2] > 0:
                x, y = out.keypoints[i, :2]
                assert -0.5 <= x < 191.5 and -0.5 <= y < 255.5, schema.keypoints[i]
        left = schema.index("left_front_paw")
        assert out.keypoints[left, 0] == pytest.approx(expected[left, 0])
    assert seen == {"upper", "lower"}


def test_no_halves_warns_once_and_crops_whole(caplog):
    hand = KeypointSchema("hand", tuple(f"h{i}" for i in range(6)),
                          skeleton=[(0, i) for i in range(1, 6)], sigmas=(0.05,) * 6)  # fmt: skip
    with caplog.at_level(logging.WARNING):
        crop = RandomCrop(hand, CropConfig(half_body_prob=1.0))
    assert "no body halves" in caplog.text
    kpts = np.column_stack([np.arange(6) * 10.0 + 50, np.full(6, 80.0), np.full(6, 2.0)])
    out = crop(np.zeros((200, 200, 3), np.uint8), kpts.astype(np.float32), [40, 60, 110, 100],
               np.random.default_rng(0))  # fmt: skip
    assert out.half_body == ""


@pytest.mark.parametrize(
    ("field", "value"),
    [("input_size", (0, 256)), ("scale_range", (1.5, 0.5)), ("flip_prob", 1.5),
     ("padding", 0.0), ("max_rotation", 200.0), ("fill", 300)],
)  # fmt: skip
def test_bad_config_names_the_field(field, value):
    with pytest.raises(ConfigError, match=field):
        CropConfig(**{field: value})
