"""Small records that cross module borders: one detected pose."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class Pose:
    """One detected instance.

    Attributes:
        keypoints: (K, 3) float32 — x, y in the frame the producer states (output, input or image
            pixels), and a score in [0, 1]; keypoints that were not found have score 0.
        score: instance confidence in [0, 1].
        bbox: (4,) float32 xyxy box around the found keypoints, same frame as ``keypoints``.
    """

    keypoints: np.ndarray
    score: float
    bbox: np.ndarray

    @property
    def num_found(self) -> int:
        """Number of keypoints with a score > 0."""
        return int((self.keypoints[:, 2] > 0).sum())
