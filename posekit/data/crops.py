"""Person crops for top-down models: box -> one affine matrix -> the crop and its keypoints.

Dimension glossary: K keypoints (schema order), (W, H) the crop (network input) size, image
pixels ``*_img``, crop pixels ``*_crop``; pixel centers at integer coordinates (``geometry``).

A crop is ONE affine matrix, image -> crop, built from the person's box (``geometry``:
``box_to_center_size`` pads the box by ``padding`` and widens it to the input's aspect ratio,
``crop_matrix`` maps it exactly onto the crop's pixel area, rotation and mirroring included). The
image is warped once by it and the keypoints moved by the same matrix; the matrix stays with the
sample and is inverted exactly on the way back (no separate scale / offset formula).

Augmentation (``CropConfig``; defaults of MMPose's COCO recipe, every draw from the sample's
generator): with probability ``half_body_prob`` the box becomes the box of one body half
(``schema.halves``) grown by ``half_body_padding``; the center shifts by ``shift_factor`` times
the box size (probability ``shift_prob``), the box scales by ``scale_range`` (``scale_prob``), the
crop rotates by up to ``max_rotation`` degrees (``rotation_prob``), each drawn from a normal
distribution truncated to [-1, 1] and mapped onto its range, as MMPose draws them; the crop is
mirrored with ``flip_prob``, left and right keypoints swapped by ``schema.flip_index``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from posekit.data.transforms import ColorJitter
from posekit.errors import ConfigError
from posekit.geometry import box_to_center_size, crop_matrix, transform_points
from posekit.schema import KeypointSchema

logger = logging.getLogger(__name__)

__all__ = ["Crop", "CropConfig", "FixedCrop", "RandomCrop", "crop_image"]


@dataclass(frozen=True)
class CropConfig:
    """The crop and its augmentation (defaults: MMPose's COCO top-down recipe at 256 x 192).

    Attributes:
        input_size: crop (W, H), network input pixels.
        padding: the box grows by this factor before the aspect ratio is fixed (MMPose: 1.25).
        shift_factor, shift_prob: center shift of up to ``shift_factor`` times the box size.
        scale_range, scale_prob: box size times a factor in [low, high].
        max_rotation, rotation_prob: rotation of up to +-``max_rotation`` degrees.
        half_body_prob: probability of cropping one body half (needs ``schema.halves``).
        half_body_min_keypoints: labelled keypoints an instance needs for a half-body crop
            (MMPose: 9), and ``half_body_min_upper`` / ``half_body_min_lower`` in the chosen half
            (2 / 3); ``half_body_upper_prob``: the upper half when both qualify (0.7).
        half_body_padding: a half's keypoint box grows by this factor (MMPose: 1.5).
        flip_prob: probability of a horizontal mirror.
        brightness, contrast, saturation, hue: color jitter (``transforms.ColorJitter``; off).
        fill: gray value of crop pixels outside the image (MMPose: 0).
    """

    input_size: tuple[int, int] = (192, 256)
    padding: float = 1.25
    shift_factor: float = 0.16
    shift_prob: float = 0.3
    scale_range: tuple[float, float] = (0.5, 1.5)
    scale_prob: float = 1.0
    max_rotation: float = 80.0
    rotation_prob: float = 0.6
    half_body_prob: float = 0.3
    half_body_min_keypoints: int = 9
    half_body_min_upper: int = 2
    half_body_min_lower: int = 3
    half_body_upper_prob: float = 0.7
    half_body_padding: float = 1.5
    flip_prob: float = 0.5
    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    hue: float = 0.0
    fill: int = 0

    def __post_init__(self) -> None:
        size = self.input_size
        if len(size) != 2 or not all(isinstance(v, (int, np.integer)) and v > 0 for v in size):
            raise ConfigError(f"input_size: expected two positive integers (W, H), got {size!r}")
        object.__setattr__(self, "input_size", (int(size[0]), int(size[1])))
        low, high = (float(v) for v in self.scale_range)
        if not 0 < low <= high:
            raise ConfigError(f"scale_range: expected 0 < low <= high, got {self.scale_range!r}")
        object.__setattr__(self, "scale_range", (low, high))
        for name in ("shift_prob", "scale_prob", "rotation_prob", "half_body_prob", "flip_prob",
                     "half_body_upper_prob"):  # fmt: skip
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(
                    f"{name}: expected a probability in [0, 1], got {getattr(self, name)!r}"
                )
        for name in ("padding", "half_body_padding"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name}: must be > 0, got {getattr(self, name)!r}")
        if not 0 <= self.max_rotation <= 180 or not 0 <= self.shift_factor <= 1:
            raise ConfigError(
                f"max_rotation must be in [0, 180] and shift_factor in [0, 1], got "
                f"{self.max_rotation}, {self.shift_factor}"
            )
        if not 0 <= self.fill <= 255:
            raise ConfigError(f"fill: expected a gray value 0-255, got {self.fill!r}")

    @property
    def aspect_ratio(self) -> float:
        """W / H of the crop."""
        return self.input_size[0] / self.input_size[1]


@dataclass(frozen=True, eq=False)
class Crop:
    """One person crop.

    Attributes:
        image: (H, W, 3) uint8 BGR crop.
        keypoints: (K, 3) float32, x, y in crop pixels, visibility as labelled (the codecs weigh
            out keypoints outside the crop); left/right already swapped when ``flipped``.
        matrix: (2, 3) float64 affine, image pixels -> crop pixels (rotation and flip included).
        flipped: whether the crop is mirrored.
        half_body: "upper" or "lower" when the crop is a half-body crop, else "".
    """

    image: np.ndarray
    keypoints: np.ndarray
    matrix: np.ndarray
    flipped: bool = False
    half_body: str = ""


def crop_image(image_bgr: np.ndarray, matrix: np.ndarray, config: CropConfig) -> np.ndarray:
    """The crop of ``image_bgr`` (H, W, 3) that ``matrix`` (image -> crop) makes, bilinear."""
    return cv2.warpAffine(
        image_bgr,
        matrix,
        config.input_size,
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(config.fill,) * 3,
    )


def _truncnorm(rng: np.random.Generator, size: int) -> np.ndarray:
    """``size`` draws of a standard normal truncated to [-1, 1] (by rejection)."""
    out = rng.standard_normal(size)
    bad = np.abs(out) > 1.0
    while bad.any():
        out[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(out) > 1.0
    return out


class FixedCrop:
    """Validation / inference crop: the padded, aspect-fixed box, no augmentation."""

    def __init__(self, schema: KeypointSchema, config: CropConfig) -> None:
        self.schema, self.config = schema, config

    def matrix(self, box_xyxy: Sequence[float]) -> np.ndarray:
        """(2, 3) image -> crop matrix of one (4,) xyxy box."""
        center, size = box_to_center_size(np.asarray(box_xyxy), self.config.aspect_ratio,
                                          self.config.padding)  # fmt: skip
        return crop_matrix(center[0], size[0], self.config.input_size)

    def __call__(
        self,
        image_bgr: np.ndarray,
        keypoints: np.ndarray,
        box_xyxy: Sequence[float],
        rng: np.random.Generator | None = None,
    ) -> Crop:
        """The crop of one instance: keypoints (K, 3) and box (4,) in image pixels."""
        matrix = self.matrix(box_xyxy)
        return Crop(crop_image(image_bgr, matrix, self.config), _moved(keypoints, matrix), matrix)


class RandomCrop:
    """Training crop of one instance with the augmentation of ``config`` (module docstring).

    A schema without ``halves`` (no skeleton to split: a face, a hand) gets no half-body crops,
    with one warning when ``half_body_prob`` asks for them.
    """

    def __init__(self, schema: KeypointSchema, config: CropConfig) -> None:
        self.schema, self.config = schema, config
        self.color = ColorJitter(config.brightness, config.contrast, config.saturation, config.hue)
        if config.half_body_prob > 0 and schema.halves is None:
            logger.warning(
                "schema %r has no body halves (no skeleton cut into two mirror-closed parts): "
                "half-body crops are off; give upper / lower in the schema to have them",
                schema.name,
            )

    def _half_body_box(
        self, keypoints: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray | None, str]:
        """The box (4,) of one body half's labelled keypoints, or None; and which half."""
        cfg, halves = self.config, self.schema.halves
        labelled = keypoints[:, 2] > 0
        if halves is None or labelled.sum() < cfg.half_body_min_keypoints:
            return None, ""
        upper = [i for i in halves[0] if labelled[i]]
        lower = [i for i in halves[1] if labelled[i]]
        ok_upper, ok_lower = (
            len(upper) >= cfg.half_body_min_upper,
            len(lower) >= cfg.half_body_min_lower,
        )
        if not (ok_upper or ok_lower):
            return None, ""
        take_upper = ok_upper and (not ok_lower or rng.random() < cfg.half_body_upper_prob)
        chosen = upper if take_upper else lower
        xy = keypoints[chosen, :2]
        box = np.concatenate([xy.min(axis=0), xy.max(axis=0)])
        return box, "upper" if take_upper else "lower"

    def __call__(
        self,
        image_bgr: np.ndarray,
        keypoints: np.ndarray,
        box_xyxy: Sequence[float],
        rng: np.random.Generator,
    ) -> Crop:
        """Augmented crop of one instance: keypoints (K, 3) and box (4,) in image pixels."""
        cfg = self.config
        if keypoints.shape != (self.schema.num_keypoints, 3):
            raise ValueError(
                f"keypoints: expected ({self.schema.num_keypoints}, 3) for schema "
                f"'{self.schema.name}', got {keypoints.shape}"
            )
        padding, half = cfg.padding, ""
        box = np.asarray(box_xyxy, dtype=np.float64)
        if rng.random() < cfg.half_body_prob:
            half_box, half = self._half_body_box(keypoints, rng)
            if half_box is not None:
                box, padding = half_box, cfg.half_body_padding
        center, size = box_to_center_size(box, cfg.aspect_ratio, padding)
        center, size = center[0], size[0]
        draws = _truncnorm(rng, 4)  # shift x, shift y, scale, rotation
        if rng.random() < cfg.shift_prob:
            center = center + draws[:2] * cfg.shift_factor * size
        if rng.random() < cfg.scale_prob:
            low, high = cfg.scale_range
            size = size * ((high + low) / 2.0 + draws[2] * (high - low) / 2.0)
        angle = draws[3] * cfg.max_rotation if rng.random() < cfg.rotation_prob else 0.0
        flip = bool(rng.random() < cfg.flip_prob)
        matrix = crop_matrix(center, size, cfg.input_size, rotation_deg=angle, flip=flip)
        image = crop_image(self.color(image_bgr, rng), matrix, cfg)
        kpts = _moved(keypoints, matrix)
        if flip:
            kpts = kpts[list(self.schema.flip_index)]
        return Crop(image, kpts, matrix, flip, half)


def _moved(keypoints: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """(K, 3) keypoints moved by ``matrix``; unlabelled ones stay (0, 0, 0)."""
    out = np.array(keypoints, dtype=np.float32, copy=True)
    labelled = out[:, 2] > 0
    out[labelled, :2] = transform_points(out[labelled, :2], matrix)
    out[~labelled] = 0.0
    return out
