"""Affine augmentation of multi-instance keypoint samples: one 2x3 image -> input matrix each.

Pixel convention and matrices: ``posekit.geometry`` (pixel centers at integer coordinates, a
horizontal flip is ``x -> W - 1 - x``). The training sample keeps ``matrix``: image pixels -> input
pixels; ``geometry.invert_affine`` maps predictions back.

Frames: ``*_img`` image pixels, ``*_in`` network-input pixels. Sizes are (W, H), arrays (H, W, C).
Keypoints are ``(N, K, 3)`` float32: x, y, visibility (0 unlabeled, 1 occluded, 2 visible).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from posekit.errors import ConfigError
from posekit.geometry import affine_matrix, fit_matrix, fit_scale, transform_points
from posekit.schema import KeypointSchema

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AugmentConfig:
    """Parameters of the training augmentation (``RandomAffine``) and of ``FitToInput``.

    Args:
        input_size: network input (W, H) in pixels: what validation and prediction see, and what
            training sees when ``train_window`` is 1.
        train_window: train on windows of this fraction of the input's width and height (the
            bottom-up task rounds them to its codec's stride), 1 for the whole input. A window is
            the input's center (moved by ``max_translate`` and ``instance_center_prob`` as the
            input's is) cut from the same warp (``RandomAffine(size=...)``), so figures keep the
            scales of the whole input; a fully convolutional network trained on windows
            validates and predicts at ``input_size``. 128 x 128 windows of the default 192 x 192
            learn about as much per epoch as whole inputs at 2.3x the images/s (README, Training).
        scale_range: random scale factor, uniform in [low, high], applied on top of the base scale
            (the whole image, or ``scale_ref`` image pixels, fitted into the input).
        max_rotation: rotation uniform in [-max, max] degrees (positive: counter-clockwise as seen).
        max_translate: shift of the center, uniform in [-t, t] times the input (W, H).
        flip_prob: probability of a horizontal flip (left/right keypoints swapped by the schema).
        instance_center_prob: probability to center the crop on a random labeled instance (mean of
            its labeled keypoints) instead of the image center.
        brightness, contrast, saturation: jitter factors drawn uniform in [1 - a, 1 + a].
        hue: hue shift uniform in [-h, h] as a fraction of the hue circle (0.5 = half a turn).
        fill: gray value (0-255) of input pixels that come from outside the source image.
        border_ignore: whether input pixels from outside the source image are marked in the ignore
            mask. Default False: their loss weight stays 1, the targets there are zero (no labeled
            keypoint lies outside the image); crowd and unlabeled people come from the ignore mask.
    """

    input_size: tuple[int, int] = (368, 368)
    train_window: float = 1.0
    scale_range: tuple[float, float] = (0.7, 1.3)
    max_rotation: float = 40.0
    max_translate: float = 0.15
    flip_prob: float = 0.5
    instance_center_prob: float = 0.0
    brightness: float = 0.3
    contrast: float = 0.3
    saturation: float = 0.3
    hue: float = 0.02
    fill: int = 128
    border_ignore: bool = False

    def __post_init__(self) -> None:
        size = self.input_size
        if len(size) != 2 or not all(isinstance(v, (int, np.integer)) and v > 0 for v in size):
            raise ConfigError(f"input_size: expected two positive integers (W, H), got {size!r}")
        object.__setattr__(self, "input_size", (int(size[0]), int(size[1])))
        window = self.train_window
        if (
            isinstance(window, bool)
            or not isinstance(window, (int, float, np.number))
            or not (0.0 < window <= 1.0)
        ):
            raise ConfigError(f"train_window: expected a fraction of the input in (0, 1] "
                              f"(1: whole inputs), got {window!r}")  # fmt: skip
        low, high = _pair(self.scale_range, "scale_range")
        if not 0.0 < low <= high:
            raise ConfigError(f"scale_range: expected 0 < low <= high, got {self.scale_range!r}")
        object.__setattr__(self, "scale_range", (low, high))
        for name, hi in (
            ("max_rotation", 180.0),
            ("max_translate", 1.0),
            ("flip_prob", 1.0),
            ("instance_center_prob", 1.0),
            ("brightness", 1.0),
            ("contrast", 1.0),
            ("saturation", 1.0),
            ("hue", 0.5),
            ("fill", 255),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
                raise ConfigError(f"{name}: expected a number in [0, {hi}], got {value!r}")
            if not 0 <= value <= hi:
                raise ConfigError(f"{name}: expected a value in [0, {hi}], got {value!r}")
        if not isinstance(self.fill, (int, np.integer)):
            raise ConfigError(f"fill: expected an integer gray value 0-255, got {self.fill!r}")


@dataclass(frozen=True)
class AugmentedSample:
    """One transformed sample.

    Attributes:
        image: (H_in, W_in, 3) uint8 BGR network input.
        keypoints: (N, K, 3) float32, x, y in input pixels; (0, 0, 0) when unlabeled or outside.
        ignore_mask: (H_in, W_in) bool, True where the loss is ignored.
        matrix: (2, 3) float64, image pixels -> these pixels (the input or its training
            window; includes the flip).
        flipped: whether the sample was mirrored (keypoint channels already swapped).
    """

    image: np.ndarray
    keypoints: np.ndarray
    ignore_mask: np.ndarray
    matrix: np.ndarray
    flipped: bool = False


def _pair(value: Sequence[float], name: str) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: expected two numbers (low, high), got {value!r}") from None
    return low, high


# ---------------------------------------------------------------------- color
class ColorJitter:
    """Random brightness, contrast, saturation and hue (HSV) of a BGR uint8 image.

    Each factor is uniform in [1 - a, 1 + a] and the hue shift uniform in [-hue, hue] turns. The
    work is two 256-entry lookup tables (BGR, then HSV), so cost does not depend on the parameters.
    The input is never modified.
    """

    def __init__(self, brightness: float, contrast: float, saturation: float, hue: float) -> None:
        self.brightness, self.contrast = brightness, contrast
        self.saturation, self.hue = saturation, hue

    @classmethod
    def from_config(cls, config: AugmentConfig) -> ColorJitter:
        """The jitter described by ``config``'s color fields."""
        return cls(config.brightness, config.contrast, config.saturation, config.hue)

    def __call__(self, image_bgr: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(H, W, 3) uint8 BGR -> new (H, W, 3) uint8 BGR."""
        bright = rng.uniform(1 - self.brightness, 1 + self.brightness)
        contrast = rng.uniform(1 - self.contrast, 1 + self.contrast)
        sat = rng.uniform(1 - self.saturation, 1 + self.saturation)
        hue_shift = int(round(rng.uniform(-self.hue, self.hue) * 180))  # OpenCV 8-bit hue: 0-179
        levels = np.arange(256, dtype=np.float64)
        out = image_bgr
        if bright != 1.0 or contrast != 1.0:
            # Scaling B, G, R by ``bright`` scales HSV value; contrast pulls towards the gray mean.
            mean = float(cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY).mean()) * bright
            lut = np.clip(mean + contrast * (levels * bright - mean), 0, 255)
            out = cv2.LUT(out, np.round(lut).astype(np.uint8))
        if sat != 1.0 or hue_shift != 0:
            hsv = cv2.cvtColor(out, cv2.COLOR_BGR2HSV)
            lut = np.stack([(levels + hue_shift) % 180, np.clip(levels * sat, 0, 255), levels], -1)
            hsv = cv2.LUT(hsv, np.round(lut).astype(np.uint8)[:, None, :])
            out = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
        return out if out is not image_bgr else image_bgr.copy()


# ---------------------------------------------------------------------- transforms
def _check_inputs(image: np.ndarray, keypoints: np.ndarray, ignore_mask: np.ndarray | None) -> None:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image: expected (H, W, 3) uint8, got {image.shape} {image.dtype}")
    if keypoints.ndim != 3 or keypoints.shape[2] != 3:
        raise ValueError(f"keypoints: expected (N, K, 3), got {keypoints.shape}")
    if ignore_mask is not None and ignore_mask.shape != image.shape[:2]:
        raise ValueError(f"ignore_mask: expected {image.shape[:2]}, got {ignore_mask.shape}")


def warp_sample(
    image_bgr: np.ndarray,
    keypoints_img: np.ndarray,
    ignore_mask: np.ndarray | None,
    matrix: np.ndarray,
    config: AugmentConfig,
    flip_index: Sequence[int] | None = None,
    size: tuple[int, int] | None = None,
) -> AugmentedSample:
    """Warp one sample by ``matrix`` (image -> input) into ``size`` (default
    ``config.input_size``).

    The image is warped once (bilinear, constant ``fill`` border) and the ignore mask by the same
    matrix (nearest; outside the source: ``config.border_ignore``). Keypoints move by the matrix;
    those outside the input's pixel area ``[-0.5, W_in - 0.5) x [-0.5, H_in - 0.5)`` and unlabeled ones become (0, 0, 0).
    ``flip_index`` (given when ``matrix`` mirrors) swaps the left/right keypoint channels.
    """
    _check_inputs(image_bgr, keypoints_img, ignore_mask)
    w_in, h_in = size or config.input_size
    image_in = cv2.warpAffine(
        image_bgr,
        matrix,
        (w_in, h_in),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(config.fill,) * 3,
    )
    if ignore_mask is None and not config.border_ignore:
        mask_in = np.zeros((h_in, w_in), dtype=bool)
    else:
        mask_img = np.zeros(image_bgr.shape[:2], bool) if ignore_mask is None else ignore_mask
        mask_in = cv2.warpAffine(
            mask_img.astype(np.uint8),
            matrix,
            (w_in, h_in),
            flags=cv2.INTER_NEAREST,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=int(config.border_ignore),
        ).astype(bool)
    xy = transform_points(keypoints_img[..., :2], matrix)
    # The input covers [-0.5, W_in - 0.5) x [-0.5, H_in - 0.5) (pixel centers at integers).
    inside = (
        (xy[..., 0] >= -0.5)
        & (xy[..., 0] < w_in - 0.5)
        & (xy[..., 1] >= -0.5)
        & (xy[..., 1] < h_in - 0.5)
    )
    keep = inside & (keypoints_img[..., 2] > 0)
    kpts_in = np.concatenate([xy, keypoints_img[..., 2:]], axis=-1)
    kpts_in = np.where(keep[..., None], kpts_in, 0.0).astype(np.float32)
    if flip_index is not None:
        kpts_in = kpts_in[:, list(flip_index)]
    return AugmentedSample(image_in, kpts_in, mask_in, matrix, flipped=flip_index is not None)


class RandomAffine:
    """Training augmentation: color jitter, then one random scale/rotate/shift/flip warp.

    The base scale fits the whole image (or ``scale_ref`` image pixels onto the input's shorter
    side) into the input; the random scale multiplies it. The warp's output is the input, or
    with ``size`` (W, H) the window of that size at the input's center (``train_window``).
    Draws from ``rng`` only.
    """

    def __init__(
        self, schema: KeypointSchema, config: AugmentConfig, size: tuple[int, int] | None = None
    ) -> None:
        self.schema = schema
        self.config = config
        self.size = (int(size[0]), int(size[1])) if size is not None else config.input_size
        self.color = ColorJitter.from_config(config)
        logger.debug("RandomAffine for schema %r: %s", schema.name, config)

    def __call__(
        self,
        image_bgr: np.ndarray,
        keypoints: np.ndarray,
        ignore_mask: np.ndarray | None,
        rng: np.random.Generator,
        *,
        scale_ref: float | None = None,
    ) -> AugmentedSample:
        """Augment one sample.

        Args:
            image_bgr: (H, W, 3) uint8.
            keypoints: (N, K, 3) float32, image pixels, K = ``schema.num_keypoints``.
            ignore_mask: (H, W) bool (True = ignore), or None for none.
            rng: the only source of randomness.
            scale_ref: image length (pixels) mapped to the input's shorter side before the random
                scale; default: the whole image fits the input.
        """
        cfg = self.config
        if keypoints.shape[1:] != (self.schema.num_keypoints, 3):
            raise ValueError(
                f"keypoints: expected (N, {self.schema.num_keypoints}, 3) for schema "
                f"'{self.schema.name}', got {keypoints.shape}"
            )
        flip = bool(rng.random() < cfg.flip_prob)
        scale = rng.uniform(*cfg.scale_range)
        rotation = rng.uniform(-cfg.max_rotation, cfg.max_rotation)
        shift = rng.uniform(-cfg.max_translate, cfg.max_translate, size=2) * cfg.input_size
        h, w = image_bgr.shape[:2]
        center = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
        labeled = keypoints[..., 2] > 0
        candidates = np.flatnonzero(labeled.any(axis=1))
        if candidates.size and rng.random() < cfg.instance_center_prob:
            n = rng.choice(candidates)
            center = keypoints[n, labeled[n], :2].mean(axis=0)
        if scale_ref is None:
            base = fit_scale((w, h), cfg.input_size)
        elif scale_ref > 0:
            base = min(cfg.input_size) / scale_ref
        else:
            raise ValueError(f"scale_ref: expected a positive length in pixels, got {scale_ref}")
        matrix = affine_matrix(center, base * scale, rotation, cfg.input_size, flip, shift_xy=shift)
        # the window at the input's center: input pixels -> window pixels
        matrix[:, 2] -= np.subtract(cfg.input_size, self.size) / 2.0
        return warp_sample(
            self.color(image_bgr, rng),
            keypoints,
            ignore_mask,
            matrix,
            cfg,
            self.schema.flip_index if flip else None,
            size=self.size,
        )


class FitToInput:
    """Deterministic validation transform: fit the whole image in the input, centered, padded."""

    def __init__(self, config: AugmentConfig) -> None:
        self.config = config

    def __call__(
        self,
        image_bgr: np.ndarray,
        keypoints: np.ndarray,
        ignore_mask: np.ndarray | None,
        rng: np.random.Generator | None = None,
    ) -> AugmentedSample:
        """Same arguments and output as ``RandomAffine.__call__``; ``rng`` is not used."""
        h, w = image_bgr.shape[:2]
        matrix = fit_matrix((w, h), self.config.input_size)
        return warp_sample(image_bgr, keypoints, ignore_mask, matrix, self.config)
