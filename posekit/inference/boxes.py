"""Where a top-down model's person boxes come from, and the predictor of whole images they make.

A box source is a callable ``(image (H, W, 3) uint8 BGR, image id) -> Boxes``: xyxy boxes in image
pixels and their scores (None: no scores, the poses keep the keypoint-mean score). Three kinds:

- ``DetectionBoxes``: a detector's COCO results JSON (``[{"image_id", "category_id", "bbox":
  [x, y, w, h], "score"}]``), looked up by image id (``media`` gives COCO file names their
  numeric id and video frames their index);
- ``ProposalBoxes``: posekit's own bottom-up model; each pose's box around its found keypoints
  is a proposal scored by the pose's score, so no external detector is needed (a pose of one
  keypoint makes no crop and is kept as it is);
- ``WholeImageBox``: the whole image, for pictures of one instance each (crops, hands, faces).

The ground-truth boxes (``posekit eval --gt-boxes``) come from the dataset's records instead
(``TopDownPredictor.predict(image, record.boxes)``).

``BoxedPredictor`` joins a ``TopDownPredictor`` and a box source into a predictor of whole
images: ``predict(image, image_id)``, as ``posekit predict`` and ``eval`` run it.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from posekit.data.results import read_coco_detections
from posekit.errors import ConfigError
from posekit.inference.topdown import TopDownPredictor
from posekit.structures import Pose

logger = logging.getLogger(__name__)

__all__ = ["BoxSource", "BoxedPredictor", "Boxes", "DetectionBoxes", "ProposalBoxes",
           "WholeImageBox", "pose_boxes"]  # fmt: skip


@dataclass(frozen=True)
class Boxes:
    """Person boxes of one image.

    Attributes:
        xyxy: (M, 4) float64 boxes, image pixels.
        scores: (M,) float64 confidences, or None when the source has none.
        kept: poses that come as they are, not refined: proposals too small to make a crop of
            (one found keypoint), so that refining never loses a person the proposer found.
        priors: one earlier pose per box (a proposal's own pose), or empty; the top-down
            predictor then keeps, per keypoint, whichever of the two estimates scores higher.
    """

    xyxy: np.ndarray
    scores: np.ndarray | None = None
    kept: tuple[Pose, ...] = ()
    priors: tuple[Pose, ...] = ()

    def __len__(self) -> int:
        return len(self.xyxy)


BoxSource = Callable[[np.ndarray, int], Boxes]
"""``(image, image id) -> Boxes``."""


class DetectionBoxes:
    """Boxes of a COCO detection results JSON, by image id.

    Args:
        path: the JSON file (``data.results.read_coco_detections``).
        category_id: keep only this category's detections (default every category: a person
            detector's file has one).
        min_score: keep only detections scoring at least this.
    """

    def __init__(
        self, path: str | Path, *, category_id: int | None = None, min_score: float = 0.0
    ) -> None:
        self.path = Path(path)
        self.by_image = read_coco_detections(path, category_id=category_id, min_score=min_score)
        self.looked_up: set[int] = set()
        self.missing: set[int] = set()
        logger.info("%s: %d detections on %d images (score >= %g)", self.path,
                    sum(map(len, self.by_image.values())), len(self.by_image), min_score)  # fmt: skip

    def __call__(self, image: np.ndarray, image_id: int) -> Boxes:
        rows = self.by_image.get(int(image_id))
        self.looked_up.add(int(image_id))
        if rows is None:
            self.missing.add(int(image_id))
            return Boxes(np.zeros((0, 4)), np.zeros(0))
        return Boxes(rows[:, :4].astype(np.float64), rows[:, 4].astype(np.float64))

    def check_coverage(self) -> None:
        """Raise when no looked-up image had a detection (wrong file or ids), warn when some
        had none."""
        if self.looked_up and self.missing == self.looked_up:
            some = sorted(self.by_image)[:5]
            raise ConfigError(
                f"{self.path}: none of the {len(self.looked_up)} images has a detection; the "
                f"file's image ids (e.g. {some}) must be the images' ids (COCO file names: their "
                "numeric stem, video frames: their index)"
            )
        if self.missing:
            logger.warning("%s: %d of %d images have no detection (no poses there)", self.path,
                           len(self.missing), len(self.looked_up))  # fmt: skip


def pose_boxes(poses: Sequence[Pose], min_keypoints: int = 2) -> Boxes:
    """Boxes around the found keypoints (score > 0) of poses, scored by the pose scores. A box
    that is a line (keypoints in one row or column) gets the other side's length, so it still
    makes a crop; poses with fewer than ``min_keypoints`` found keypoints, or all at one point,
    make no box and are ``kept`` as they are. ``priors``: the poses of the boxes."""
    rows, scores, kept, priors = [], [], [], []
    for pose in poses:
        found = pose.keypoints[pose.keypoints[:, 2] > 0, :2].astype(np.float64)
        size = found.max(0) - found.min(0) if len(found) else np.zeros(2)
        if len(found) < max(min_keypoints, 1) or size.max() <= 0:
            kept.append(pose)
            continue
        size = np.where(size > 0, size, size.max())
        center = (found.min(0) + found.max(0)) / 2
        rows.append(np.concatenate([center - size / 2, center + size / 2]))
        scores.append(pose.score)
        priors.append(pose)
    return Boxes(np.asarray(rows, np.float64).reshape(-1, 4), np.asarray(scores, np.float64),
                 tuple(kept), tuple(priors))  # fmt: skip


class ProposalBoxes:
    """Boxes of a bottom-up predictor's poses (``pose_boxes``): proposals for a top-down model.

    Args:
        predictor: a ``BottomUpPredictor`` (any object with ``predict(image) -> poses``).
        min_keypoints: poses with fewer found keypoints propose no box.
        min_score: poses scoring less propose no box.
        merge: keep each proposal's pose as the prior of its box, so that every keypoint of the
            result is the better-scoring of the bottom-up and the top-down estimate (default);
            False: the top-down model's keypoints only. On the synthetic benchmark
            (``benchmarks/proposals.py``) merging gave 0.838 against the bottom-up model's 0.826
            and the top-down keypoints' 0.813 (the top-down model is the more precise, AP75, and
            the bottom-up one finds more, AP50).
    """

    def __init__(
        self, predictor: Any, *, min_keypoints: int = 2, min_score: float = 0.0, merge: bool = True
    ) -> None:
        self.predictor, self.min_keypoints, self.min_score = predictor, min_keypoints, min_score
        self.merge = merge

    def __call__(self, image: np.ndarray, image_id: int) -> Boxes:
        poses = [p for p in self.predictor.predict(image) if p.score >= self.min_score]
        boxes = pose_boxes(poses, self.min_keypoints)
        return boxes if self.merge else dataclasses.replace(boxes, priors=())


class WholeImageBox:
    """One box: the whole image (no score)."""

    def __call__(self, image: np.ndarray, image_id: int) -> Boxes:
        h, w = image.shape[:2]
        return Boxes(np.array([[0.0, 0.0, w, h]]))


class BoxedPredictor:
    """A top-down predictor of whole images: ``boxes(image, image_id)`` -> ``TopDownPredictor``.

    Args:
        topdown: the top-down predictor (its ``nms_threshold`` removes duplicate poses).
        boxes: the box source.
    """

    family = "topdown"

    def __init__(self, topdown: TopDownPredictor, boxes: BoxSource) -> None:
        self.topdown, self.boxes = topdown, boxes
        self.schema = topdown.schema

    def predict(self, image_bgr: np.ndarray, image_id: int = 0) -> list[Pose]:
        """Poses of one image, keypoints in image pixels, by descending score."""
        found = self.boxes(image_bgr, image_id)
        priors = found.priors or None
        refined = (self.topdown.predict(image_bgr, found.xyxy, found.scores, priors=priors)
                   if len(found) else [])  # fmt: skip
        if not found.kept:
            return refined
        return sorted([*refined, *found.kept], key=lambda p: -p.score)
