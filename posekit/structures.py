"""Small records that cross module borders: one detected pose, how an image becomes network input."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from posekit.errors import ConfigError


@dataclass(frozen=True, eq=False)
class Pose:
    """One detected instance.

    Attributes:
        keypoints: (K, 3) float32 — x, y in the frame the producer states (output, input or image
            pixels), and a score in [0, 1]; keypoints that were not found have score 0.
        score: instance confidence in [0, 1].
        bbox: (4,) float32 xyxy box around the found keypoints, same frame as ``keypoints``.
        track_id: identity across video frames, set by ``posekit.tracking``; None outside tracking.
    """

    keypoints: np.ndarray
    score: float
    bbox: np.ndarray
    track_id: int | None = None

    @property
    def num_found(self) -> int:
        """Number of keypoints with a score > 0."""
        return int((self.keypoints[:, 2] > 0).sum())


COLOR_ORDERS = ("BGR", "RGB")


@dataclass(frozen=True)
class InputSpec:
    """How an image becomes network input, as the weights expect it.

    ``input = (pixel - mean) / std`` per channel, channels in ``color_order`` (images are read as
    BGR); the resized image is padded to multiples of ``size_divisor`` with ``pad_value`` in
    *normalized* units (0.0 = the mean color).

    Attributes:
        color_order: ``"BGR"`` (OpenPose, Lightweight OpenPose, posekit's PAF models) or ``"RGB"``
            (ImageNet-trained trunks such as HRNet).
        mean, std: per channel, in ``color_order``, pixel units 0-255.
        pad_value: value of padded input pixels, normalized units.
        size_divisor: input width and height are multiples of it (the output stride).
        height: input height: whole images are resized to it (aspect kept, bottom-up); crops are
            warped to (``width``, ``height``) (top-down).
        width: input width of a fixed-size input (top-down crops); None: from the image's aspect.
        eval_height: the height of the authors' reported evaluation, when it differs.
        box_padding: top-down: person boxes grow by this factor before the crop's aspect ratio
            is fixed (the training crops' ``data.crop.padding``; MMPose: 1.25).
    """

    color_order: str = "BGR"
    mean: tuple[float, float, float] = (128.0, 128.0, 128.0)
    std: tuple[float, float, float] = (256.0, 256.0, 256.0)
    pad_value: float = 0.0
    size_divisor: int = 8
    height: int = 256
    width: int | None = None
    eval_height: int | None = None
    box_padding: float = 1.25

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "mean", tuple(float(v) for v in self.mean))
        set_(self, "std", tuple(float(v) for v in self.std))
        problems = []
        if self.color_order not in COLOR_ORDERS:
            problems.append(f"color_order must be one of {COLOR_ORDERS}, got {self.color_order!r}")
        if len(self.mean) != 3 or len(self.std) != 3 or not all(v > 0 for v in self.std):
            problems.append(f"mean and std need 3 values, std > 0; got {self.mean}, {self.std}")
        if not isinstance(self.size_divisor, int) or self.size_divisor < 1:
            problems.append(f"size_divisor must be a positive integer, got {self.size_divisor!r}")
        elif int(self.height) < self.size_divisor:
            problems.append(f"height must be >= the size divisor {self.size_divisor}")
        if self.width is not None and int(self.width) < 1:
            problems.append(f"width must be positive or None, got {self.width}")
        if not float(self.box_padding) > 0:
            problems.append(f"box_padding must be > 0, got {self.box_padding}")
        if problems:
            raise ConfigError("InputSpec: " + "; ".join(problems))

    @property
    def channel_order(self) -> list[int]:
        """Indices of the BGR image channels in input order."""
        return [0, 1, 2] if self.color_order == "BGR" else [2, 1, 0]

    def normalize(self, image_bgr: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 BGR -> (3, H, W) float32 network input of one image (no padding)."""
        h, w = image_bgr.shape[:2]
        src = image_bgr if self.color_order == "BGR" else image_bgr[..., self.channel_order]
        out = src.reshape(h, w * 3).astype(np.float32)  # rows: one long inner loop per op
        out -= np.tile(np.asarray(self.mean, np.float32), w)
        out *= np.tile(np.float32(1.0) / np.asarray(self.std, np.float32), w)
        return np.ascontiguousarray(out.reshape(h, w, 3).transpose(2, 0, 1))

    def to_dict(self) -> dict[str, Any]:
        """Plain data for checkpoint records and exported files."""
        out = asdict(self)
        out["mean"], out["std"] = list(self.mean), list(self.std)
        return out

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> InputSpec:
        """Inverse of ``to_dict`` (ConfigError naming unknown keys)."""
        unknown = sorted(set(spec) - set(cls.__dataclass_fields__))
        if unknown:
            raise ConfigError(f"InputSpec: unknown keys {unknown}")
        return cls(**dict(spec))
