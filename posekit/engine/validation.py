"""Validation during training: the task's predictor on the validation images, COCO OKS AP, and
what TensorBoard shows of it.

Images that cannot be read are skipped, counted and left out of the score, as unreadable training
images are skipped; one corrupt file never stops a run.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from posekit.data.coco import CocoKeypointDataset
from posekit.engine.evaluate import evaluate_coco, predict_dataset
from posekit.schema import KeypointSchema
from posekit.structures import Pose
from posekit.tasks.base import Task
from posekit.visualize import draw_poses

logger = logging.getLogger(__name__)

__all__ = ["Validation", "Validator"]


@dataclass(frozen=True)
class Validation:
    """One validation: COCO metrics (``engine.evaluate.METRICS``) and the images skipped."""

    metrics: dict[str, float]
    skipped: int

    @property
    def ap(self) -> float:
        """COCO AP, 0 when undefined (no ground truth)."""
        ap = self.metrics["AP"]
        return 0.0 if math.isnan(ap) else ap


class Validator:
    """Scores a model on a COCO keypoint file with a task's predictor.

    Args:
        ann, images: the validation file and its image folder.
        schema: the model's schema.
        category_id: evaluate this category only (default: every matching one).
        flip: validate with flip test where the codec supports it.
        log_images: how many drawn images go to TensorBoard.
        progress: show a progress bar.
    """

    def __init__(
        self,
        ann: Path,
        images: Path,
        schema: KeypointSchema,
        *,
        category_id: int | None = None,
        flip: bool = True,
        log_images: int = 4,
        progress: bool = True,
    ) -> None:
        self.ann = Path(ann)
        self.schema = schema
        self.category_id = category_id
        self.flip = flip
        self.log_images = log_images
        self.progress = progress
        self.dataset = CocoKeypointDataset(
            ann, images, schema=schema, category_id=category_id, strict=False
        )
        if self.dataset.problems:
            logger.warning(
                "validation data: %d bad record(s) skipped; run `posekit check-data`",
                len(self.dataset.problems),
            )

    def __call__(
        self,
        task: Task,
        model: nn.Module,
        *,
        device: Any,
        channels_last: bool,
        writer: Any = None,
        step: int = 0,
    ) -> Validation:
        """Validate ``model`` (left in eval mode); ``writer``: a TensorBoard writer for the metrics
        and drawn images at ``step``."""
        predictor = task.predictor(
            model, flip=self.flip, device=device, channels_last=channels_last
        )
        drawn: list[np.ndarray] = []

        def draw(image: np.ndarray, poses: list[Pose]) -> None:
            if writer is not None and len(drawn) < self.log_images:
                drawn.append(_draw(image, poses, self.schema))

        result = predict_dataset(
            lambda image, record: task.predict(predictor, image, record),
            self.dataset,
            progress=self.progress,
            desc="validate",
            on_image=draw,
        )
        if result.skipped:
            logger.warning(
                "validation: %d image(s) could not be read and were left out of the score",
                len(result.skipped),
            )
        metrics = evaluate_coco(
            self.ann,
            result.poses,
            self.schema,
            category_id=self.category_id,
            image_ids=result.poses.keys(),
        )
        if writer is not None:
            for key, value in metrics.items():
                if not math.isnan(value):
                    writer.add_scalar(f"val/{key}", value, step)
            for n, image in enumerate(drawn):
                writer.add_image(f"val/image{n}", image[..., ::-1].copy(), step, dataformats="HWC")
        return Validation(metrics, len(result.skipped))


def _draw(image: np.ndarray, poses: list[Pose], schema: KeypointSchema) -> np.ndarray:
    kpts = (
        np.stack([p.keypoints for p in poses]) if poses else np.zeros((0, schema.num_keypoints, 3))
    )
    return draw_poses(image, kpts, schema, threshold=0.1)
