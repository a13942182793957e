"""posekit.geometry: affine algebra, whole-image placements, box crops, map warping."""

import cv2
import numpy as np
import pytest

from posekit.errors import ConfigError
from posekit.geometry import (
    affine_matrix,
    box_to_center_size,
    center_size_to_box,
    compose_affine,
    crop_matrix,
    fit_matrix,
    invert_affine,
    mirror_matrix,
    place_at_height,
    place_scaled,
    scale_matrix,
    transform_points,
    warp_maps,
)


# ---------------------------------------------------------------------- matrices
def test_affine_matrix_matches_cv2_rotation_and_maps_center():
    center, scale, angle = (63.5, 47.5), 1.7, 33.0  # input center of (128, 96) is (63.5, 47.5)
    m = affine_matrix(center, scale, angle, (128, 96), False)
    np.testing.assert_allclose(m, cv2.getRotationMatrix2D(center, angle, scale), atol=1e-12)
    m = affine_matrix((10.0, 20.0), 0.5, -70.0, (368, 200), False, shift_xy=(4.0, -3.0))
    np.testing.assert_allclose(transform_points(np.array([10.0, 20.0]), m), [183.5 + 4, 99.5 - 3])


def test_flip_is_mirror_composed_after_the_rest():
    size = (200, 120)
    plain = affine_matrix((31.0, 77.0), 1.3, 25.0, size, False, shift_xy=(5.0, 2.0))
    flipped = affine_matrix((31.0, 77.0), 1.3, 25.0, size, True, shift_xy=(5.0, 2.0))
    mirror = np.array([[-1.0, 0.0, size[0] - 1.0], [0.0, 1.0, 0.0]])
    np.testing.assert_allclose(flipped, compose_affine(mirror, plain))
    pts = np.random.default_rng(0).uniform(-50, 300, (4, 5, 2))
    a, b = transform_points(pts, flipped), transform_points(pts, plain)
    np.testing.assert_allclose(a[..., 0], size[0] - 1 - b[..., 0])
    np.testing.assert_allclose(a[..., 1], b[..., 1])


def test_composition_and_inverse_round_trip():
    rng = np.random.default_rng(1)
    first = affine_matrix((40.0, 60.0), 0.8, 15.0, (160, 128), True)
    second = affine_matrix((12.0, 3.0), 0.125, -30.0, (20, 16), False)  # e.g. input -> output
    pts = rng.uniform(-100, 400, (3, 7, 2))
    np.testing.assert_allclose(
        transform_points(pts, compose_affine(second, first)),
        transform_points(transform_points(pts, first), second),
        atol=1e-9,
    )
    inv = invert_affine(first)
    np.testing.assert_allclose(inv, cv2.invertAffineTransform(first), atol=1e-12)
    np.testing.assert_allclose(transform_points(transform_points(pts, first), inv), pts, atol=1e-9)
    np.testing.assert_allclose(compose_affine(inv, first), np.eye(3)[:2], atol=1e-12)


def test_mirror_matrix_is_its_own_inverse():
    m = mirror_matrix(37)
    np.testing.assert_allclose(
        transform_points(np.array([[0.0, 5.0], [36.0, 1.0]]), m)[:, 0], [36, 0]
    )
    np.testing.assert_allclose(compose_affine(m, m), np.eye(3)[:2])


# ---------------------------------------------------------------------- placements
def test_scale_matrix_matches_cv2_resize_on_a_single_bright_pixel():
    """A pixel-sized mark moved by cv2.resize lands where the matrix sends its center."""
    image = np.zeros((40, 60), np.float32)
    image[13, 22] = 1.0
    fx, fy = 5.0, 3.0  # integer factors: INTER_NEAREST copies the pixel into an fx x fy block
    big = cv2.resize(image, None, fx=fx, fy=fy, interpolation=cv2.INTER_NEAREST)
    ys, xs = np.nonzero(big)
    x, y = transform_points(np.array([22.0, 13.0]), scale_matrix(fx, fy))
    assert (xs.mean(), ys.mean()) == pytest.approx((x, y))


def test_place_at_height_keeps_aspect_and_pads_to_the_divisor():
    place = place_at_height((301, 203), 128, 8)
    assert place.resized == (round(301 * 128 / 203), 128)
    assert place.padded == (192, 128) and all(v % 8 == 0 for v in place.padded)
    # the image's corners go to the resized area's corners
    corners = transform_points(np.array([[-0.5, -0.5], [300.5, 202.5]]), place.matrix)
    np.testing.assert_allclose(corners, [[-0.5, -0.5], [place.resized[0] - 0.5, 127.5]])
    assert place_at_height((30, 20), 3, 8).resized[1] == 8  # never below the divisor


def test_place_scaled_holds_the_scaled_image():
    place = place_scaled((640, 427), 368 / 640, 368 / 640, 8)
    assert place.resized == (368, 246) and place.padded == (368, 248)
    with pytest.raises(ConfigError, match="divisor"):
        place_scaled((10, 10), 1.0, 1.0, 0)


def test_fit_matrix_centers_the_image():
    m = fit_matrix((100, 50), (64, 64))
    np.testing.assert_allclose(transform_points(np.array([49.5, 24.5]), m), [31.5, 31.5])
    np.testing.assert_allclose(m[0, 0], 0.64)


# ---------------------------------------------------------------------- box crops
def test_box_to_center_size_pads_and_fixes_the_aspect_ratio():
    boxes = np.array([[10.0, 20.0, 50.0, 220.0], [0.0, 0.0, 300.0, 100.0]])
    centers, sizes = box_to_center_size(boxes, 192 / 256, padding=1.25)
    np.testing.assert_allclose(centers, [[30, 120], [150, 50]])
    np.testing.assert_allclose(sizes[0], [250 * 0.75, 250])  # tall box: widened
    np.testing.assert_allclose(sizes[1], [375, 500])  # wide box: heightened
    np.testing.assert_allclose(sizes[:, 0] / sizes[:, 1], 0.75)
    back = center_size_to_box(centers, sizes)
    np.testing.assert_allclose((back[:, :2] + back[:, 2:]) / 2, centers)
    with pytest.raises(ConfigError, match="aspect_ratio"):
        box_to_center_size(boxes, 0.0)


def test_crop_matrix_maps_the_box_onto_the_input_pixel_area():
    center, size, input_size = (100.0, 80.0), (48.0, 64.0), (192, 256)
    m = crop_matrix(center, size, input_size)
    corners = np.array([[76.0, 48.0], [124.0, 112.0]])  # the box's continuous edges
    np.testing.assert_allclose(transform_points(corners, m), [[-0.5, -0.5], [191.5, 255.5]])
    rot = crop_matrix(center, size, input_size, rotation_deg=90.0)
    # counter-clockwise on screen: a point right of the center goes up in the crop
    x, y = transform_points(np.array([110.0, 80.0]), rot)
    assert x == pytest.approx(95.5) and y == pytest.approx(127.5 - 40.0)
    flipped = crop_matrix(center, size, input_size, flip=True)
    np.testing.assert_allclose(flipped, compose_affine(mirror_matrix(192), m))
    with pytest.raises(ConfigError, match="crop size"):
        crop_matrix(center, (0.0, 1.0), input_size)


def test_crop_then_inverse_round_trips_random_rotated_boxes():
    rng = np.random.default_rng(3)
    for _ in range(20):
        centers, sizes = box_to_center_size(
            rng.uniform(0, 400, (1, 2)).repeat(2, 0).ravel()[:4] + np.array([0, 0, 30, 80]), 0.75
        )
        m = crop_matrix(
            centers[0],
            sizes[0],
            (192, 256),
            rotation_deg=rng.uniform(-80, 80),
            flip=bool(rng.random() < 0.5),
        )
        pts = rng.uniform(-50, 450, (17, 2))
        np.testing.assert_allclose(
            transform_points(transform_points(pts, m), invert_affine(m)), pts, atol=1e-9
        )


# ---------------------------------------------------------------------- maps
def test_map_warping_handles_more_channels_than_opencv_takes_at_once():
    rng = np.random.default_rng(0)
    maps = rng.random((300, 6, 5)).astype(np.float32)
    matrix = np.array([[2.0, 0.0, 0.5], [0.0, 2.0, 0.5]])
    out = warp_maps(maps, matrix, (10, 12))
    assert out.shape == (300, 12, 10)
    np.testing.assert_allclose(out[299], warp_maps(maps[299:], matrix, (10, 12))[0], atol=1e-6)


def test_stacks_of_matrices_compose_and_invert_as_one_at_a_time():
    from posekit.geometry import (
        box_to_center_size,
        compose_affine,
        crop_matrices,
        crop_matrix,
        invert_affine,
    )

    rng = np.random.default_rng(3)
    first, second = rng.normal(size=(5, 2, 3)), rng.normal(size=(5, 2, 3))
    stacked = compose_affine(second, invert_affine(first))
    single = [compose_affine(s, invert_affine(f)) for s, f in zip(second, first, strict=True)]
    np.testing.assert_allclose(stacked, np.stack(single), atol=1e-12)
    boxes = np.array([[10.0, 20.0, 60.0, 120.0], [5.0, 5.0, 300.0, 40.0]])
    centers, sizes = box_to_center_size(boxes, 0.75, 1.25)
    expected = [crop_matrix(c, s, (96, 128)) for c, s in zip(centers, sizes, strict=True)]
    np.testing.assert_allclose(crop_matrices(centers, sizes, (96, 128)), expected, atol=1e-12)


def test_inverting_a_singular_affine_matrix_is_an_error_not_inf():
    from posekit.geometry import invert_affine

    stack = np.stack([np.array([[2.0, 0.0, 1.0], [0.0, 3.0, 4.0]]), np.zeros((2, 3))])
    with pytest.raises(np.linalg.LinAlgError, match="singular"):
        invert_affine(stack)
    np.testing.assert_allclose(invert_affine(stack[0]), [[0.5, 0, -0.5], [0, 1 / 3, -4 / 3]])
