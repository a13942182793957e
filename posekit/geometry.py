"""Frames and the affine matrices between them: the one place where posekit computes geometry.

Pixel convention (every posekit module): pixel centers sit at integer coordinates, as in
``cv2.warpAffine``. Pixel ``(i, j)`` of an image of size (W, H) is the point ``x=j, y=i``; the image
covers ``[-0.5, W - 0.5] x [-0.5, H - 0.5]`` and its center is ``((W - 1) / 2, (H - 1) / 2)``. A
horizontal flip maps ``x -> W - 1 - x``. COCO keypoint coordinates are read in this convention as
they are; COCO boxes ``[x, y, w, h]`` cover ``[x, x + w] x [y, y + h]`` of that plane.

A matrix ``M`` (2, 3) float64 maps a point ``p`` as ``M[:, :2] @ p + M[:, 2]``. Three frames occur:
**image** pixels, network **input** pixels, network **output** (map) pixels. Each move between two
of them is one such matrix, kept with the sample or the prediction and inverted exactly on the way
back (rotation included); no loose scale and offset factors. Sizes are (W, H), arrays (H, W, C) or
(C, H, W).

- whole-image placements: ``scale_matrix`` (cv2.resize), ``place_scaled`` / ``place_at_height``
  (resize, then pad right and bottom to a divisor), ``fit_matrix`` (centered fit, padded around);
- box crops: ``box_to_center_size`` / ``center_size_to_box`` (padding and the input's aspect
  ratio), ``crop_matrix``;
- ``warp_maps``: (C, H, W) maps moved by a matrix (OpenCV, any channel count).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from posekit.errors import ConfigError

__all__ = [
    "CV_MAX_CHANNELS",
    "Placement",
    "affine_matrix",
    "box_to_center_size",
    "center_size_to_box",
    "compose_affine",
    "crop_matrix",
    "cv2_on_maps",
    "fit_matrix",
    "fit_scale",
    "invert_affine",
    "mirror_matrix",
    "place_at_height",
    "place_scaled",
    "scale_matrix",
    "transform_points",
    "warp_maps",
]


# ---------------------------------------------------------------------- affine algebra
def compose_affine(second: np.ndarray, first: np.ndarray) -> np.ndarray:
    """The (2, 3) matrix that applies ``first`` and then ``second``; (..., 2, 3) stacks of
    matrices broadcast (one per crop, say)."""
    second, first = np.asarray(second, np.float64), np.asarray(first, np.float64)
    linear = second[..., :2] @ first[..., :2]
    shift = second[..., :2] @ first[..., 2:] + second[..., 2:]
    return np.concatenate([linear, shift], axis=-1)


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """Inverse (2, 3) matrix (e.g. input -> image), or the inverses of a (..., 2, 3) stack;
    ``numpy.linalg.LinAlgError`` if singular."""
    matrix = np.asarray(matrix, np.float64)
    a, b, c, d = (matrix[..., i, j] for i, j in ((0, 0), (0, 1), (1, 0), (1, 1)))  # no LAPACK
    det = a * d - b * c
    if not np.all(det != 0):
        raise np.linalg.LinAlgError(f"singular affine matrix (determinant 0) in {matrix.shape}")
    linear_inv = np.stack([np.stack([d, -b], -1), np.stack([-c, a], -1)], -2) / det[..., None, None]
    return np.concatenate([linear_inv, -linear_inv @ matrix[..., 2:]], axis=-1)


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) matrix to points ``(..., 2)``; returns ``(..., 2)`` float64."""
    matrix = np.asarray(matrix, np.float64)
    return np.asarray(points, np.float64) @ matrix[:, :2].T + matrix[:, 2]


def mirror_matrix(width: int) -> np.ndarray:
    """(2, 3) horizontal flip of a frame ``width`` pixels wide: ``x -> width - 1 - x``."""
    return np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0]])


def affine_matrix(
    center_xy: Sequence[float],
    scale: float,
    rotation_deg: float,
    input_size: tuple[int, int],
    flip: bool,
    *,
    shift_xy: Sequence[float] = (0.0, 0.0),
) -> np.ndarray:
    """Image -> input matrix (2, 3) float64 of a scale / rotation / shift / flip warp.

    ``center_xy`` (image pixels) goes to the input center ``((W_in - 1) / 2, (H_in - 1) / 2)`` plus
    ``shift_xy`` (input pixels); around it the image is scaled by ``scale`` (input pixels per image
    pixel) and rotated by ``rotation_deg`` (counter-clockwise on screen, as
    ``cv2.getRotationMatrix2D``). With ``flip`` the result is then mirrored: ``x -> W_in - 1 - x``.
    """
    theta = np.deg2rad(rotation_deg)
    a, b = scale * np.cos(theta), scale * np.sin(theta)
    linear = np.array([[a, b], [-b, a]], dtype=np.float64)
    w_in, h_in = input_size
    target = np.array([(w_in - 1) / 2.0, (h_in - 1) / 2.0]) + np.asarray(shift_xy, np.float64)
    matrix = np.hstack([linear, (target - linear @ np.asarray(center_xy, np.float64))[:, None]])
    return compose_affine(mirror_matrix(w_in), matrix) if flip else matrix


# ---------------------------------------------------------------------- whole-image placements
def scale_matrix(fx: float, fy: float) -> np.ndarray:
    """(2, 3) matrix of ``cv2.resize`` by factors (fx, fy): pixel areas scale, so the center of
    pixel ``x`` goes to ``(x + 0.5) * fx - 0.5``."""
    return np.array([[fx, 0.0, 0.5 * fx - 0.5], [0.0, fy, 0.5 * fy - 0.5]])


@dataclass(frozen=True)
class Placement:
    """Where an image lands in a network input: resized at the top left, padded right and bottom.

    Attributes:
        resized: (W, H) of the resized image, input pixels (the rest of the input is padding).
        padded: (W, H) of the network input, multiples of the divisor.
        matrix: (2, 3) float64 affine, image pixels -> input pixels.
    """

    resized: tuple[int, int]
    padded: tuple[int, int]
    matrix: np.ndarray


def _pad_to(value: int, divisor: int) -> int:
    return value + (-value % divisor)


def _check_divisor(divisor: int) -> None:
    if not isinstance(divisor, int) or divisor < 1:
        raise ConfigError(f"size divisor must be a positive integer, got {divisor!r}")


def place_scaled(image_size: tuple[int, int], fx: float, fy: float, divisor: int) -> Placement:
    """An image of size (W, H) scaled by (fx, fy) (``scale_matrix``) and padded to ``divisor``.

    The resized size is the smallest that holds the scaled image, ``ceil(W * fx)`` x
    ``ceil(H * fy)`` (exact factors of an integer target size give that size back).
    """
    _check_divisor(divisor)
    w, h = image_size
    resized = (max(math.ceil(w * fx - 1e-6), 1), max(math.ceil(h * fy - 1e-6), 1))
    padded = (_pad_to(resized[0], divisor), _pad_to(resized[1], divisor))
    return Placement(resized, padded, scale_matrix(fx, fy))


def place_at_height(image_size: tuple[int, int], height: int, divisor: int) -> Placement:
    """An image of size (W, H) resized to ``height`` rows (at least ``divisor``), its width
    rounded to keep the aspect ratio, padded to multiples of ``divisor`` (the bottom-up inference
    input, as Lightweight OpenPose's demo makes it)."""
    _check_divisor(divisor)
    w, h = image_size
    new_h = max(int(height), divisor)
    new_w = max(round(w * new_h / h), 1)
    return place_scaled(image_size, new_w / w, new_h / h, divisor)


def fit_scale(image_size: tuple[int, int], input_size: tuple[int, int]) -> float:
    """Scale that fits an image of size (W, H) into the input keeping its aspect ratio."""
    return min(input_size[0] / image_size[0], input_size[1] / image_size[1])


def fit_matrix(image_size: tuple[int, int], input_size: tuple[int, int]) -> np.ndarray:
    """Image -> input matrix that fits the whole image in the input, centered (padding around)."""
    w, h = image_size
    center = ((w - 1) / 2.0, (h - 1) / 2.0)
    return affine_matrix(center, fit_scale(image_size, input_size), 0.0, input_size, False)


# ---------------------------------------------------------------------- box crops
def box_to_center_size(
    boxes_xyxy: np.ndarray, aspect_ratio: float, padding: float = 1.25
) -> tuple[np.ndarray, np.ndarray]:
    """Centers and crop sizes of boxes: the box grown by ``padding``, then widened or heightened
    to ``aspect_ratio`` (W / H of the network input), never shrunk.

    Args:
        boxes_xyxy: (N, 4) or (4,) boxes, image pixels (``[x1, y1, x2, y2]``, continuous edges).
        aspect_ratio: input width / height (192 / 256 for a 256 x 192 crop).
        padding: scale factor of both sides (MMPose's COCO recipe: 1.25).

    Returns:
        centers (N, 2) and sizes (N, 2) float64, (w, h) in image pixels, ``w / h == aspect_ratio``.
    """
    if not aspect_ratio > 0 or not padding > 0:
        raise ConfigError(f"aspect_ratio and padding must be > 0, got {aspect_ratio}, {padding}")
    boxes = np.asarray(boxes_xyxy, np.float64).reshape(-1, 4)
    centers = (boxes[:, :2] + boxes[:, 2:]) / 2.0
    sizes = (boxes[:, 2:] - boxes[:, :2]) * padding
    w = np.maximum(sizes[:, 0], sizes[:, 1] * aspect_ratio)
    return centers, np.stack([w, w / aspect_ratio], axis=1)


def center_size_to_box(centers: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """(N, 4) xyxy boxes of centers (N, 2) and sizes (N, 2) (inverse of the center/size split)."""
    centers = np.asarray(centers, np.float64).reshape(-1, 2)
    half = np.asarray(sizes, np.float64).reshape(-1, 2) / 2.0
    return np.concatenate([centers - half, centers + half], axis=1)


def crop_matrix(
    center_xy: Sequence[float],
    size_wh: Sequence[float],
    input_size: tuple[int, int],
    *,
    rotation_deg: float = 0.0,
    flip: bool = False,
) -> np.ndarray:
    """Image -> input matrix (2, 3) that maps the box of ``size_wh`` around ``center_xy`` (image
    pixels) exactly onto the input's pixel area ``[-0.5, W - 0.5] x [-0.5, H - 0.5]``, rotated
    about the center by ``rotation_deg`` (counter-clockwise on screen) and optionally mirrored.

    The box should have the input's aspect ratio (``box_to_center_size``); otherwise its width
    sets the scale.
    """
    w_box = float(size_wh[0])
    if not w_box > 0:
        raise ConfigError(f"crop size must be > 0, got {tuple(size_wh)}")
    return affine_matrix(center_xy, input_size[0] / w_box, rotation_deg, input_size, flip)


def crop_matrices(
    centers: np.ndarray, sizes: np.ndarray, input_size: tuple[int, int]
) -> np.ndarray:
    """(N, 2, 3) ``crop_matrix`` of N boxes at once (no rotation, no mirror): centers and sizes
    (N, 2) from ``box_to_center_size``."""
    centers = np.asarray(centers, np.float64).reshape(-1, 2)
    widths = np.asarray(sizes, np.float64).reshape(-1, 2)[:, 0]
    if not (widths > 0).all():
        raise ConfigError(f"crop sizes must be > 0, got {widths[~(widths > 0)][:3]}")
    w_in, h_in = input_size
    scale = w_in / widths
    out = np.zeros((len(centers), 2, 3))
    out[:, 0, 0] = out[:, 1, 1] = scale
    out[:, :, 2] = np.array([(w_in - 1) / 2.0, (h_in - 1) / 2.0]) - scale[:, None] * centers
    return out


# ---------------------------------------------------------------------- maps
CV_MAX_CHANNELS = 128
"""OpenCV takes at most CV_CN_MAX interleaved channels per image: 512 in OpenCV 4, 128 in 5."""


def cv2_on_maps(
    maps: np.ndarray, size: tuple[int, int], op: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """Apply a cv2 image operation to (C, H, W) maps: ``op`` takes an (H, W, c) interleaved chunk
    of at most ``CV_MAX_CHANNELS`` channels and returns it at ``size`` (W', H'). Returns
    (C, H', W') float32."""
    out = np.empty((maps.shape[0], size[1], size[0]), dtype=np.float32)
    for start in range(0, maps.shape[0], CV_MAX_CHANNELS):
        chunk = np.ascontiguousarray(maps[start : start + CV_MAX_CHANNELS].transpose(1, 2, 0))
        done = op(chunk).reshape(size[1], size[0], -1)
        out[start : start + CV_MAX_CHANNELS] = done.transpose(2, 0, 1)
    return out


def warp_maps(maps: np.ndarray, matrix: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Warp (C, h, w) maps by a (2, 3) matrix into (C, size[1], size[0]), bilinear.

    The border is replicated: the cells at the edge of a coarser map are still the best estimate
    just outside it (a constant 0 would halve averaged maps along the edges).
    """
    return cv2_on_maps(
        maps,
        size,
        lambda chunk: cv2.warpAffine(
            chunk, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        ),
    )
