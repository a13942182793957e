"""Affine augmentation: matrices, flip, keypoints landing on warped marks, masks, config errors."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from posekit.data.transforms import (
    AugmentConfig,
    ColorJitter,
    FitToInput,
    RandomAffine,
    warp_sample,
)
from posekit.errors import ConfigError
from posekit.geometry import affine_matrix, transform_points
from posekit.schema import KeypointSchema

DATA = Path("../shared/data")
NO_COLOR = {"brightness": 0.0, "contrast": 0.0, "saturation": 0.0, "hue": 0.0}

MARK_SCHEMA = KeypointSchema(
    name="marks",
    keypoints=("head", "left_hand", "right_hand", "left_foot", "right_foot", "tail"),
    sigmas=(0.05,) * 6,
    skeleton=(
        ("head", "left_hand"),
        ("head", "right_hand"),
        ("head", "tail"),
        ("tail", "left_foot"),
        ("tail", "right_foot"),
    ),
)


def _pure_geometry(**kwargs) -> AugmentConfig:
    return AugmentConfig(**{**NO_COLOR, **kwargs})


def _flip_only(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    return affine_matrix(((w - 1) / 2, (h - 1) / 2), 1.0, 0.0, (w, h), True)


# ---------------------------------------------------------------------- flip
@pytest.mark.parametrize("width", [37, 64])
def test_flip_twice_is_identity_on_image_and_keypoints(width):
    rng = np.random.default_rng(width)
    image = rng.integers(0, 256, (29, width, 3), dtype=np.uint8)
    kpts = rng.uniform(0, 28, (3, MARK_SCHEMA.num_keypoints, 3)).astype(np.float32)
    kpts[..., 2] = rng.integers(0, 3, kpts.shape[:2])
    kpts[kpts[..., 2] == 0] = 0.0
    matrix = _flip_only(image)
    config = _pure_geometry(input_size=(width, 29))
    once = warp_sample(image, kpts, None, matrix, config, MARK_SCHEMA.flip_index)
    np.testing.assert_array_equal(once.image, image[:, ::-1])
    np.testing.assert_allclose(once.keypoints, MARK_SCHEMA.flip_keypoints(kpts, width - 1))
    twice = warp_sample(once.image, once.keypoints, None, matrix, config, MARK_SCHEMA.flip_index)
    np.testing.assert_array_equal(twice.image, image)
    np.testing.assert_allclose(twice.keypoints, kpts, atol=1e-5)
    assert once.flipped and twice.flipped


def _sample_with(ann: str, images: str, left: str, right: str, builtin: str | None):
    """Schema, image and the first instance (1, K, 3) with both ``left`` and ``right`` labeled."""
    coco = json.loads((DATA / ann).read_text())
    category = coco["categories"][0]
    schema = KeypointSchema.named(builtin) if builtin else KeypointSchema.from_coco(category)
    li, ri = schema.index(left), schema.index(right)
    for record in coco["annotations"]:
        kpts = np.asarray(record["keypoints"], np.float32).reshape(1, -1, 3)
        if kpts[0, li, 2] > 0 and kpts[0, ri, 2] > 0:
            info = next(im for im in coco["images"] if im["id"] == record["image_id"])
            return schema, cv2.imread(str(DATA / images / info["file_name"])), kpts
    raise AssertionError(f"no annotation with both {left} and {right} in {ann}")


@pytest.mark.parametrize(
    ("ann", "images", "left", "right", "builtin"),
    [
        (
            "coco_mini/annotations/person_keypoints_val2017.json",
            "coco_mini/images/val2017",
            "left_wrist",
            "right_wrist",
            "coco_person",
        ),
        ("custom/locust/test_locust.json", "custom/locust", "eyeL", "eyeR", None),
    ],
)
def test_flip_real_sample_swaps_left_and_right(ann, images, left, right, builtin):
    schema, image, kpts = _sample_with(ann, images, left, right, builtin)
    h, w = image.shape[:2]
    config = _pure_geometry(
        input_size=(w, h),
        scale_range=(1.0, 1.0),
        max_rotation=0.0,
        max_translate=0.0,
        flip_prob=1.0,
    )
    out = RandomAffine(schema, config)(image, kpts, None, np.random.default_rng(0))
    assert out.flipped
    np.testing.assert_array_equal(out.image, cv2.flip(image, 1))
    li, ri = schema.index(left), schema.index(right)
    assert out.keypoints[0, li, 0] == pytest.approx(w - 1 - kpts[0, ri, 0], abs=1e-3)
    assert out.keypoints[0, li, 1] == pytest.approx(kpts[0, ri, 1], abs=1e-3)
    assert out.keypoints[0, ri, 0] == pytest.approx(w - 1 - kpts[0, li, 0], abs=1e-3)
    assert out.keypoints[0, li, 2] == kpts[0, ri, 2]
    np.testing.assert_allclose(out.keypoints, schema.flip_keypoints(kpts, w - 1), atol=1e-3)


# ---------------------------------------------------------------------- keypoints land on marks
MARK_RADIUS = 4
MARK_GRID_X, MARK_GRID_Y = (40, 80, 120, 160), (45, 85, 125)


def _mark_image() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Black (160, 200) image with 12 disks of distinct saturated hues at 2 x 6 keypoints.

    Returns the image, keypoints (2, 6, 3) and the OpenCV hue (0-179) of each keypoint's disk.
    """
    xs, ys = np.meshgrid(MARK_GRID_X, MARK_GRID_Y)
    n, k = 2, MARK_SCHEMA.num_keypoints
    kpts = np.zeros((n, k, 3), np.float32)
    kpts[..., 0], kpts[..., 1], kpts[..., 2] = xs.reshape(n, k), ys.reshape(n, k), 2.0
    hues = (np.arange(n * k) * 15).reshape(n, k)  # 15 OpenCV hue units = 30 degrees apart
    image = np.zeros((160, 200, 3), np.uint8)
    for (x, y), hue in zip(kpts[..., :2].reshape(-1, 2), hues.ravel(), strict=True):
        bgr = cv2.cvtColor(np.uint8([[[hue, 255, 255]]]), cv2.COLOR_HSV2BGR)[0, 0]
        cv2.circle(image, (int(x), int(y)), MARK_RADIUS, tuple(int(c) for c in bgr), -1)
    return image, kpts, hues


def _mark_centroids(image: np.ndarray, hues: np.ndarray) -> np.ndarray:
    """Intensity-weighted centroid (x, y) of the pixels of each hue, NaN where absent."""
    hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV).astype(np.float64)
    bright = hsv[..., 2] > 60  # dim edge pixels have a rounded, unreliable hue
    diff = np.abs(hsv[..., 0][..., None] - hues.ravel())
    nearest = np.argmin(np.minimum(diff, 180 - diff), axis=-1)
    weight = hsv[..., 2] * bright
    ys, xs = np.mgrid[: image.shape[0], : image.shape[1]]
    onehot = (nearest[..., None] == np.arange(hues.size)) * weight[..., None]
    total = onehot.sum(axis=(0, 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        cx = (onehot * xs[..., None]).sum(axis=(0, 1)) / total
        cy = (onehot * ys[..., None]).sum(axis=(0, 1)) / total
    return np.stack([cx, cy], -1).reshape(*hues.shape, 2)


@pytest.mark.parametrize("instance_center_prob", [0.0, 1.0])
def test_transformed_keypoints_land_on_warped_marks(instance_center_prob):
    image, kpts, hues = _mark_image()
    w_in, h_in = 192, 160
    config = _pure_geometry(
        input_size=(w_in, h_in),
        scale_range=(0.7, 1.3),
        max_rotation=40.0,
        max_translate=0.15,
        flip_prob=0.5,
        instance_center_prob=instance_center_prob,
        fill=0,
    )
    augment = RandomAffine(MARK_SCHEMA, config)
    flip = np.asarray(MARK_SCHEMA.flip_index)
    checked, flips = 0, 0
    for seed in range(40):
        out = augment(image, kpts, None, np.random.default_rng(seed))
        flips += out.flipped
        # The mark drawn for original keypoint j now sits in channel flip[j] when flipped.
        source = flip if out.flipped else np.arange(len(flip))
        expected_xy = transform_points(kpts[:, source, :2], out.matrix)
        centroids = _mark_centroids(out.image, hues[:, source])
        margin = MARK_RADIUS * 1.3 + 2
        inside = (
            (expected_xy[..., 0] >= margin)
            & (expected_xy[..., 0] <= w_in - 1 - margin)
            & (expected_xy[..., 1] >= margin)
            & (expected_xy[..., 1] <= h_in - 1 - margin)
        )
        visible = out.keypoints[..., 2] > 0
        assert np.all(visible[inside]), f"seed {seed}: keypoint inside the input marked v=0"
        np.testing.assert_allclose(out.keypoints[..., :2][inside], expected_xy[inside], atol=1e-3)
        err = np.linalg.norm(centroids[inside] - out.keypoints[..., :2][inside], axis=-1)
        # Measured: at most 0.15 px over 200 seeds; a half-pixel convention slip moves >= 0.32 px.
        assert np.all(err < 0.3), f"seed {seed}: keypoints off their marks by {err.max():.2f} px"
        checked += int(inside.sum())
    assert checked > 200 and 5 < flips < 35


def test_instance_center_goes_to_the_input_center():
    kpts = np.zeros((3, MARK_SCHEMA.num_keypoints, 3), np.float32)
    kpts[1, :3] = [[10.0, 20.0, 2], [30.0, 40.0, 1], [50.0, 0.0, 2]]  # labeled mean (30, 20)
    kpts[1, 3] = [500.0, 500.0, 0]  # unlabeled: not part of the center
    config = _pure_geometry(
        input_size=(64, 48),
        instance_center_prob=1.0,
        max_rotation=0.0,
        max_translate=0.0,
        flip_prob=0.0,
    )
    out = RandomAffine(MARK_SCHEMA, config)(
        np.zeros((100, 120, 3), np.uint8), kpts, None, np.random.default_rng(0)
    )
    np.testing.assert_allclose(transform_points(np.array([30.0, 20.0]), out.matrix), [31.5, 23.5])


# ---------------------------------------------------------------------- visibility and masks
def test_keypoints_leaving_the_input_become_unlabeled():
    kpts = np.array(
        [
            [[-0.5, 0.0, 2], [39.49, 29.0, 1], [39.5, 5.0, 2], [-0.501, 5.0, 2], [7.0, 9.0, 0]],
            [[20.0, 29.5, 2], [20.0, 29.4, 2], [3.0, 4.0, 1], [1e5, 1e5, 2], [0.0, 0.0, 0]],
        ],
        np.float32,
    )
    image = np.zeros((30, 40, 3), np.uint8)
    config = _pure_geometry(input_size=(40, 30))
    out = warp_sample(image, kpts, None, np.eye(3)[:2], config)
    kept = np.array(
        [[1, 1, 0, 0, 0], [0, 1, 1, 0, 0]], bool
    )  # pixel area [-0.5, 39.5) x [-0.5, 29.5)
    np.testing.assert_array_equal(out.keypoints[..., 2] > 0, kept)
    np.testing.assert_array_equal(out.keypoints[~kept], 0.0)
    np.testing.assert_array_equal(out.keypoints[kept], kpts[kept])
    assert out.keypoints.dtype == np.float32
    empty = warp_sample(image, np.zeros((0, 5, 3), np.float32), None, np.eye(3)[:2], config)
    assert empty.keypoints.shape == (0, 5, 3)


def test_random_zoom_drops_keypoints_pushed_out_and_keeps_others():
    h, w = 100, 120
    kpts = np.array(
        [
            [
                [5.0, 5.0, 2],
                [60.0, 50.0, 2],
                [110.0, 90.0, 1],
                [59.5, 49.5, 0],
                [70.0, 40.0, 1],
                [2.0, 95.0, 2],
            ]
        ],
        np.float32,
    )
    config = _pure_geometry(
        input_size=(64, 64),
        scale_range=(2.0, 2.0),
        max_rotation=0.0,
        max_translate=0.0,
        flip_prob=0.0,
    )
    out = RandomAffine(MARK_SCHEMA, config)(
        np.zeros((h, w, 3), np.uint8), kpts, None, np.random.default_rng(0)
    )
    np.testing.assert_array_equal(out.keypoints[0, :, 2], [0, 2, 0, 0, 1, 0])
    np.testing.assert_allclose(
        out.keypoints[0, 1, :2], transform_points(kpts[0, 1, :2], out.matrix)
    )
    np.testing.assert_array_equal(out.keypoints[0, [0, 2, 3, 5]], 0.0)


@pytest.mark.parametrize("border_ignore", [False, True])
def test_ignore_mask_is_warped_with_the_image(border_ignore):
    h, w = 90, 130
    mask = np.zeros((h, w), bool)
    mask[20:61, 30:101] = True
    image = np.repeat(mask[..., None].astype(np.uint8) * 255, 3, axis=2)
    config = _pure_geometry(input_size=(96, 80), fill=0, border_ignore=border_ignore)
    outside = np.zeros((h, w), np.uint8) + 255  # marks the source image in the warped frame
    for seed in range(10):
        rng = np.random.default_rng(seed)
        out = RandomAffine(MARK_SCHEMA, config)(image, np.zeros((0, 6, 3), np.float32), mask, rng)
        gray = out.image[..., 0]
        sure = (gray == 0) | (gray == 255)  # all four bilinear neighbours agree
        src = cv2.warpAffine(outside, out.matrix, (96, 80), flags=cv2.INTER_NEAREST) > 0
        inner = sure & src
        np.testing.assert_array_equal(out.ignore_mask[inner], gray[inner] == 255)
        assert np.all(out.ignore_mask[~src] == border_ignore)
        assert 0.9 < np.mean(out.ignore_mask[src] == (gray[src] > 127))
        assert out.ignore_mask.dtype == bool and out.ignore_mask.shape == (80, 96)
        no_mask = RandomAffine(MARK_SCHEMA, config)(
            image, np.zeros((0, 6, 3), np.float32), None, np.random.default_rng(seed)
        )
        np.testing.assert_array_equal(no_mask.ignore_mask, ~src & border_ignore)


def test_fit_to_input_centers_and_pads_deterministically():
    image = np.full((150, 300, 3), 200, np.uint8)
    kpts = np.array([[[149.5, 74.5, 2], [0.0, 0.0, 2], [299.0, 149.0, 1]]], np.float32)
    config = AugmentConfig(input_size=(200, 200), fill=7)
    out = FitToInput(config)(image, kpts, None)
    np.testing.assert_allclose(out.matrix[:, :2], np.eye(2) * 2 / 3)
    np.testing.assert_allclose(out.keypoints[0, 0], [99.5, 99.5, 2])
    # The image spans [-0.5, 299.5] x [-0.5, 149.5] -> input rows [49.5, 149.5]: pads above, below.
    assert np.all(out.image[:49] == 7) and np.all(out.image[151:] == 7)
    assert np.all(out.image[51:149] == 200)
    assert not out.flipped and not out.ignore_mask.any()
    again = FitToInput(config)(image, kpts, None, np.random.default_rng(3))
    np.testing.assert_array_equal(again.image, out.image)


# ---------------------------------------------------------------------- color
def test_color_jitter_keeps_gray_gray_and_is_deterministic():
    rng = np.random.default_rng(0)
    gray = np.full((8, 8, 3), 128, np.uint8)
    hue_sat = ColorJitter(0.0, 0.0, 0.5, 0.3)
    np.testing.assert_array_equal(hue_sat(gray, rng), gray)  # no hue, no saturation to change
    bright = ColorJitter(0.5, 0.0, 0.0, 0.0)
    values = {int(bright(gray, np.random.default_rng(s))[0, 0, 0]) for s in range(10)}
    assert len(values) > 3 and all(64 <= v <= 192 for v in values)
    image = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    before = image.copy()
    jitter = ColorJitter(0.3, 0.3, 0.3, 0.05)
    a, b = jitter(image, np.random.default_rng(5)), jitter(image, np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(image, before)
    assert not np.array_equal(a, jitter(image, np.random.default_rng(6)))
    none = ColorJitter(0.0, 0.0, 0.0, 0.0)(image, rng)
    np.testing.assert_array_equal(none, image)
    assert none is not image


def test_color_jitter_shifts_hue_only():
    red = np.zeros((4, 4, 3), np.uint8)
    red[..., 2] = 255
    out = ColorJitter(0.0, 0.0, 0.0, 0.1)(red, np.random.default_rng(2))
    hsv = cv2.cvtColor(out, cv2.COLOR_BGR2HSV)
    hue = int(hsv[0, 0, 0])
    assert min(hue, 180 - hue) <= 18 and hue != 0
    assert hsv[0, 0, 1] == 255 and hsv[0, 0, 2] == 255


# ---------------------------------------------------------------------- config errors
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("input_size", (0, 368)),
        ("input_size", (368.5, 368)),
        ("input_size", (368,)),
        ("scale_range", (1.3, 0.7)),
        ("scale_range", (0.0, 1.0)),
        ("scale_range", "big"),
        ("max_rotation", -1.0),
        ("max_rotation", 181.0),
        ("max_translate", 2.0),
        ("flip_prob", 1.5),
        ("instance_center_prob", -0.1),
        ("brightness", float("nan")),
        ("contrast", "0.3"),
        ("saturation", 2.0),
        ("hue", 0.6),
        ("fill", 300),
        ("fill", 12.5),
        ("train_window", 0.0),
        ("train_window", 1.5),
        ("train_window", "half"),
        ("train_window", True),
    ],
)
def test_bad_config_names_the_field(field, value):
    with pytest.raises(ConfigError, match=field):
        AugmentConfig(**{field: value})


def test_keypoints_of_the_wrong_schema_are_rejected():
    augment = RandomAffine(MARK_SCHEMA, AugmentConfig())
    with pytest.raises(ValueError, match=r"\(N, 6, 3\)"):
        augment(
            np.zeros((10, 10, 3), np.uint8),
            np.zeros((1, 17, 3), np.float32),
            None,
            np.random.default_rng(0),
        )


# ---------------------------------------------------------------------- training windows
def test_window_is_the_center_of_the_whole_input_warp():
    """The same draws with and without ``size``: the window is the central part of the whole
    input's warp (pixels within one gray level: OpenCV's fixed-point warp), keypoints shifted by
    the window's offset, those outside the window dropped."""
    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)
    kpts = rng.uniform(0, 90, (4, MARK_SCHEMA.num_keypoints, 3)).astype(np.float32)
    kpts[..., 2] = 2
    geometry = {"scale_range": (0.8, 1.2), "max_rotation": 30.0, "max_translate": 0.1,
                "instance_center_prob": 0.5}  # fmt: skip
    config = _pure_geometry(input_size=(96, 64), **geometry)
    whole, crop = RandomAffine(MARK_SCHEMA, config), RandomAffine(MARK_SCHEMA, config, (48, 32))
    assert whole.size == (96, 64) and crop.size == (48, 32)
    for seed in range(4):
        full = whole(image, kpts, None, np.random.default_rng(seed))
        part = crop(image, kpts, None, np.random.default_rng(seed))
        assert part.image.shape == (32, 48, 3) and part.ignore_mask.shape == (32, 48)
        window = full.image[16:48, 24:72].astype(int)
        assert np.abs(part.image.astype(int) - window).max() <= 1
        inside = (full.keypoints[..., 2] > 0) & np.all(
            (full.keypoints[..., :2] - (24, 16) >= -0.5)
            & (full.keypoints[..., :2] - (24, 16) < np.array([48, 32]) - 0.5), axis=-1
        )  # fmt: skip
        assert inside.any() and not inside.all()
        np.testing.assert_array_equal(part.keypoints[..., 2] > 0, inside)
        np.testing.assert_allclose(part.keypoints[inside][:, :2],
                                   full.keypoints[inside][:, :2] - (24, 16), atol=1e-4)  # fmt: skip
        np.testing.assert_allclose(part.matrix[:, 2], full.matrix[:, 2] - (24, 16))
