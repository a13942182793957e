"""Object keypoint similarity (OKS) and what uses it in inference: OKS-NMS and rescoring.

OKS is COCO's keypoint similarity (pycocotools ``COCOeval.computeOks``, Ronchi & Perona 2017). For
a prediction with keypoints ``p_k`` and a ground-truth instance with keypoints ``g_k``,
visibilities ``v_k`` and area ``A`` (COCO's ``area``, pixels^2):

    OKS = mean over {k : v_k > 0} of exp(-|p_k - g_k|^2 / (2 * A * (2 * sigma_k)^2))

Distances are in image pixels; the prediction's keypoint scores play no part. Passing a
``KeypointSchema`` as ``sigmas`` uses its sigmas and leaves out its virtual keypoints (they are not
in COCO files), so the values equal those of ``engine.evaluate.evaluate_coco``.

``oks_nms`` removes duplicate poses, ``rescore`` gives top-down poses their box's confidence;
``engine.matching`` pairs ground-truth instances with predictions by highest OKS.

Dimensions: N predictions, M ground-truth instances, K keypoints.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from posekit.errors import SchemaError
from posekit.schema import KeypointSchema
from posekit.structures import Pose

__all__ = [
    "NMS_THRESHOLD",
    "RESCORE_THRESHOLD",
    "oks",
    "oks_nms",
    "pose_overlaps",
    "rescore",
]

NMS_THRESHOLD = 0.9
"""OKS above which a lower-scored pose is suppressed (MMPose ``CocoMetric.nms_thr``)."""

RESCORE_THRESHOLD = 0.2
"""Keypoint score a keypoint must exceed to count in ``rescore`` (MMPose ``keypoint_score_thr``)."""

_EPS = np.spacing(1)  # pycocotools adds it to the area (a zero area gives a finite exponent)


def _keypoints_and_sigmas(
    arrays: Sequence[np.ndarray], sigmas: np.ndarray | Sequence[float] | KeypointSchema
) -> tuple[list[np.ndarray], np.ndarray]:
    """The arrays (..., K, C) as float64 and the sigmas (K',), virtual keypoints of a schema
    dropped (K' = its real keypoints)."""
    out = [np.asarray(a, dtype=np.float64) for a in arrays]
    schema = sigmas if isinstance(sigmas, KeypointSchema) else None
    sig = schema.real_sigmas if schema else np.asarray(sigmas, dtype=np.float64).reshape(-1)
    k = schema.num_keypoints if schema else sig.size
    for a in out:
        if a.ndim < 2 or a.shape[-2] != k or a.shape[-1] < 2:
            of = f"schema '{schema.name}'" if schema else f"{k} sigmas"
            raise SchemaError(
                f"oks: expected keypoints (..., {k}, 2 or 3) for {of}, got shape {a.shape}"
            )
    if schema:
        out = [a[..., list(schema.real_indices), :] for a in out]
    return out, sig


def oks(
    pred: np.ndarray,
    gt: np.ndarray,
    area: float | np.ndarray,
    sigmas: np.ndarray | Sequence[float] | KeypointSchema,
) -> float | np.ndarray:
    """COCO OKS of predictions against ground-truth instances (every pair).

    Args:
        pred: (K, 2|3) or (N, K, 2|3) float — x, y in image pixels (a score column is ignored).
        gt: (K, 3) or (M, K, 3) float — x, y in image pixels, visibility v; only v > 0 counts.
        area: the ground truth's COCO ``area`` (pixels^2), a number or (M,).
        sigmas: (K,) per-keypoint sigmas, or the poses' schema (its sigmas, virtual keypoints
            left out).

    Returns:
        OKS in [0, 1] of shape ``pred.shape[:-2] + gt.shape[:-2]``: a float for one pose and one
        instance, (N,), (M,) or (N, M). An instance without a labelled keypoint has OKS 0 (COCO
        measures those to an enlarged box instead, but ignores them in AP).
    """
    (p, g), sig = _keypoints_and_sigmas([pred, gt], sigmas)
    k = sig.size
    shape = p.shape[:-2] + g.shape[:-2]
    p, g = p.reshape(-1, k, p.shape[-1]), g.reshape(-1, k, g.shape[-1])
    if g.shape[-1] < 3:
        raise ValueError(f"oks: ground truth needs x, y, v per keypoint, got shape {gt.shape}")
    areas = np.broadcast_to(np.asarray(area, dtype=np.float64).reshape(-1), (g.shape[0],))
    d2 = ((p[:, None, :, :2] - g[None, :, :, :2]) ** 2).sum(-1)  # (N, M, K)
    e = d2 / ((2 * sig) ** 2 * (areas[None, :, None] + _EPS) * 2)
    labelled = g[:, :, 2] > 0  # (M, K)
    count = labelled.sum(-1)
    total = np.where(labelled[None], np.exp(-e), 0.0).sum(-1)
    out = np.where(count > 0, total / np.maximum(count, 1), 0.0).reshape(shape)
    return float(out) if out.ndim == 0 else out


def pose_overlaps(
    keypoints: np.ndarray,
    areas: np.ndarray,
    sigmas: np.ndarray | Sequence[float] | KeypointSchema,
    *,
    score_threshold: float | None = None,
) -> np.ndarray:
    """OKS between every two predicted poses, as MMPose's ``oks_iou`` defines it for NMS.

    Pose i against pose j: ``mean over keypoints of exp(-|p_ik - p_jk|^2 / (2 * a * (2 sigma_k)^2))``
    with ``a = (area_i + area_j) / 2``, over **all** keypoints, or (``score_threshold``) over those
    whose score exceeds it in both poses (0 when there is none). Symmetric, 1 on the diagonal.

    Args:
        keypoints: (N, K, 3) — x, y in image pixels, score.
        areas: (N,) pixels^2, e.g. each pose's box area.
        sigmas: (K,) or the poses' schema (virtual keypoints left out).
        score_threshold: None (MMPose's default ``vis_thr``) or a keypoint score.

    Returns:
        (N, N) float64.
    """
    (kpts,), sig = _keypoints_and_sigmas([keypoints], sigmas)
    kpts = kpts.reshape(-1, sig.size, kpts.shape[-1])
    areas = np.asarray(areas, dtype=np.float64).reshape(-1)
    mean_area = (areas[:, None] + areas[None, :]) / 2  # (N, N)
    d2 = ((kpts[:, None, :, :2] - kpts[None, :, :, :2]) ** 2).sum(-1)  # (N, N, K)
    sim = np.exp(-d2 / ((2 * sig) ** 2 * (mean_area[..., None] + _EPS) * 2))
    if score_threshold is None:
        return sim.mean(-1)
    if kpts.shape[-1] < 3:
        raise ValueError("pose_overlaps: score_threshold needs keypoint scores (N, K, 3)")
    found = kpts[:, :, 2] > score_threshold
    both = found[:, None, :] & found[None, :, :]
    count = both.sum(-1)
    return np.where(count > 0, np.where(both, sim, 0.0).sum(-1) / np.maximum(count, 1), 0.0)


def oks_nms(
    poses: Sequence[Pose],
    sigmas: np.ndarray | Sequence[float] | KeypointSchema,
    threshold: float = NMS_THRESHOLD,
    *,
    areas: np.ndarray | None = None,
    score_threshold: float | None = None,
) -> np.ndarray:
    """Greedy OKS non-maximum suppression of the poses of one image (MMPose's ``oks_nms``).

    Poses are visited by descending ``score`` (ties: the earlier pose first; MMPose's reversed
    ``argsort`` leaves tie order to NumPy). A visited pose is kept unless a kept pose has an OKS
    (``pose_overlaps``) **above** ``threshold`` with it, i.e. MMPose keeps OKS <= threshold.

    Args:
        poses: poses in image pixels.
        sigmas: (K,) or the poses' schema (virtual keypoints left out).
        threshold: OKS above which a pose is suppressed (MMPose's default 0.9).
        areas: (N,) pixels^2; default the area of each pose's ``bbox`` (xyxy), as MMPose takes
            the area of the box each top-down pose was predicted in.
        score_threshold: see ``pose_overlaps`` (None: every keypoint counts, MMPose's default).

    Returns:
        (N_kept,) int64 indices into ``poses``, highest score first.
    """
    if not poses:
        return np.zeros(0, dtype=np.int64)
    keypoints = np.stack([np.asarray(p.keypoints, dtype=np.float64) for p in poses])
    if areas is None:
        boxes = np.stack([np.asarray(p.bbox, dtype=np.float64) for p in poses])
        areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    overlaps = pose_overlaps(keypoints, areas, sigmas, score_threshold=score_threshold)
    order = np.argsort(-np.asarray([p.score for p in poses], dtype=np.float64), kind="stable")
    suppressed = np.zeros(len(poses), dtype=bool)
    keep = []
    for i in order:  # greedy: one pass over the poses, each a vector operation
        if not suppressed[i]:
            keep.append(i)
            suppressed |= overlaps[i] > threshold
    return np.asarray(keep, dtype=np.int64)


def rescore(
    keypoint_scores: np.ndarray,
    box_score: float | np.ndarray,
    threshold: float = RESCORE_THRESHOLD,
) -> float | np.ndarray:
    """Top-down instance score: box score x mean of the keypoint scores above ``threshold``.

    MMPose's ``score_mode='bbox_keypoint'``: only keypoint scores strictly greater than
    ``threshold`` enter the mean; when **none** is above it the mean is taken as 0, so the pose
    scores 0 (it ranks last in AP rather than being dropped).

    Args:
        keypoint_scores: (K,) or (N, K) in [0, 1]; for a schema with virtual keypoints pass the
            real ones (``schema.to_real(keypoints)[..., 2]``) to match COCO's files.
        box_score: the detection box's score, a number or (N,).
        threshold: MMPose's ``keypoint_score_thr`` (0.2).

    Returns:
        A float for one pose, else (N,) float64.
    """
    scores = np.asarray(keypoint_scores, dtype=np.float64)
    above = scores > threshold
    count = above.sum(-1)
    mean = np.where(count > 0, np.where(above, scores, 0.0).sum(-1) / np.maximum(count, 1), 0.0)
    out = np.asarray(box_score, dtype=np.float64) * mean
    return float(out) if out.ndim == 0 else out
