"""Network input from images, as an ``InputSpec`` says: resized, normalized, padded, batched.

Batches are float32 NHWC arrays ``(B, H, W, 3)``: the layout images already have, and exactly the
memory of a channels-last NCHW tensor, so a runtime hands them to the network without a copy.
Numpy and OpenCV only (no torch), so an exported model runs without PyTorch installed.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from posekit.errors import ConfigError
from posekit.geometry import Placement
from posekit.structures import InputSpec

__all__ = ["check_image", "image_batch"]


def check_image(image: np.ndarray) -> np.ndarray:
    """``image`` if it is an (H, W, 3) uint8 BGR array, else a ConfigError saying what it is."""
    shape = getattr(image, "shape", None)
    if shape is None or len(shape) != 3 or shape[2] != 3 or min(shape[:2]) < 1:
        raise ConfigError(f"expected an (H, W, 3) BGR image, got shape {shape}")
    if image.dtype != np.uint8:
        raise ConfigError(f"expected a uint8 BGR image, got dtype {image.dtype}")
    return image


def image_batch(
    images: Sequence[np.ndarray], place: Placement, spec: InputSpec, *, flip: bool = False
) -> np.ndarray:
    """(B, H, W, 3) float32 input of same-size BGR images placed as ``place`` says (resized to
    ``place.resized`` at the top left, area interpolation when shrinking, the rest
    ``spec.pad_value``); with ``flip`` the B mirrored inputs follow (2B in all)."""
    (w, h), (pw, ph) = place.resized, place.padded
    n = len(images)
    buf = np.full((n * (2 if flip else 1), ph, pw, 3), spec.pad_value, dtype=np.float32)
    # per-channel constants tiled along a row: one long inner loop instead of one of length 3
    # (broadcasting a (3,) vector into the strided region is ~20x slower)
    mean_row = np.tile(np.asarray(spec.mean, np.float32), w)
    scale_row = np.tile(np.float32(1.0) / np.asarray(spec.std, np.float32), w)
    order = spec.channel_order
    for i, image in enumerate(images):
        interp = cv2.INTER_AREA if h < image.shape[0] else cv2.INTER_LINEAR
        resized = cv2.resize(image, (w, h), interpolation=interp)
        if order != [0, 1, 2]:
            resized = resized[..., order]
        region = buf[i].reshape(ph, pw * 3)[:h, : w * 3]  # a view of the image's rows
        np.subtract(resized.reshape(h, w * 3), mean_row, out=region, dtype=np.float32)
        np.multiply(region, scale_row, out=region)
    if flip:
        buf[n:] = buf[:n, :, ::-1]
    return buf
