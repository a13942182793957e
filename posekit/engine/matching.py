"""Matching ground-truth instances with predicted poses by highest OKS (``posekit.oks``): per
image (``match_by_oks``) and for a dataset (``match_instances``, the input of ``engine.metrics``).

Dimensions: P predictions, G ground-truth instances, K keypoints.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from posekit.data.coco import ImageRecord
from posekit.data.results import PosesPerImage
from posekit.oks import oks
from posekit.schema import KeypointSchema

__all__ = ["MatchedInstances", "match_by_oks", "match_instances"]


def match_by_oks(
    pred: np.ndarray,
    gt: np.ndarray,
    areas: np.ndarray,
    sigmas: np.ndarray | Sequence[float] | KeypointSchema,
    *,
    min_oks: float = 0.0,
) -> np.ndarray:
    """Pair each ground-truth instance of one image with at most one prediction, by OKS.

    Greedy on the highest OKS: the (prediction, instance) pair of highest OKS among those not yet
    matched is matched, then the next, while the OKS is above ``min_oks``. Prediction scores play
    no part. Ties go to the lower instance, then the lower prediction index.

    Args:
        pred: (P, K, 2|3) predicted poses, image pixels.
        gt: (G, K, 3) ground truth, image pixels, v.
        areas: (G,) COCO areas of the instances (pixels^2).
        sigmas: (K,) or the schema (``posekit.oks.oks``).
        min_oks: a pair needs an OKS above it (default 0: any pair whose OKS does not underflow).

    Returns:
        (G,) int64: the index of each instance's prediction, -1 when none is matched.
    """
    gt = np.asarray(gt, dtype=np.float64)
    out = np.full(gt.shape[0], -1, dtype=np.int64)
    pred = np.asarray(pred, dtype=np.float64)
    if pred.shape[0] == 0 or gt.shape[0] == 0:
        return out
    sim = np.array(oks(pred, gt, areas, sigmas), dtype=np.float64).reshape(len(pred), len(gt)).T
    for _ in range(min(sim.shape)):  # one match per round, each round a vector operation
        g, p = np.unravel_index(int(np.argmax(sim)), sim.shape)
        if not sim[g, p] > min_oks:
            break
        out[g] = p
        sim[g, :] = -1.0
        sim[:, p] = -1.0
    return out


@dataclass(frozen=True, eq=False)
class MatchedInstances:
    """Ground-truth instances of a dataset and the prediction matched to each.

    Attributes:
        pred: (N, K, 3) float32 predicted x, y, score in image pixels, schema order; (0, 0, 0)
            for every keypoint of an instance without a matched prediction.
        gt: (N, K, 3) float32 ground truth x, y, v (``ImageRecord.keypoints``).
        boxes: (N, 4) float32 xyxy ground-truth boxes, image pixels.
    """

    pred: np.ndarray
    gt: np.ndarray
    boxes: np.ndarray

    @property
    def num_instances(self) -> int:
        """N."""
        return int(self.gt.shape[0])

    @property
    def num_unmatched(self) -> int:
        """Instances without a matched prediction."""
        return int((self.pred[:, :, 2] <= 0).all(axis=1).sum())


def match_instances(
    records: Iterable[ImageRecord],
    poses_per_image: PosesPerImage,
    schema: KeypointSchema,
    *,
    min_oks: float = 0.0,
) -> MatchedInstances:
    """Every labelled instance of the records with its prediction (``match_by_oks`` per image, the
    schema's sigmas and the instances' COCO areas).

    Records whose image has no entry in ``poses_per_image`` (e.g. unreadable images, see
    ``engine.evaluate.predict_dataset``) are left out; an entry with no pose leaves its
    instances unmatched.
    """
    k = schema.num_keypoints
    preds, gts, boxes = [], [], []
    for rec in records:
        if rec.image_id not in poses_per_image or rec.num_instances == 0:
            continue
        poses = poses_per_image[rec.image_id]
        kpts = np.stack([p.keypoints for p in poses]) if poses else np.zeros((0, k, 3))
        index = match_by_oks(kpts, rec.keypoints, rec.areas, schema, min_oks=min_oks)
        matched = np.zeros((rec.num_instances, k, 3), dtype=np.float32)
        matched[index >= 0] = kpts[index[index >= 0]]
        preds.append(matched)
        gts.append(rec.keypoints)
        boxes.append(rec.boxes)
    if not gts:
        empty = np.zeros((0, k, 3), dtype=np.float32)
        return MatchedInstances(empty, empty.copy(), np.zeros((0, 4), dtype=np.float32))
    return MatchedInstances(
        np.concatenate(preds), np.concatenate(gts).astype(np.float32), np.concatenate(boxes)
    )
