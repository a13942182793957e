"""Skeleton drawing from the schema (limb and keypoint colors come from ``KeypointSchema``)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from posekit.schema import KeypointSchema
from posekit.structures import Pose


def draw_poses(
    image_bgr: np.ndarray,
    keypoints: np.ndarray | Sequence[Pose],
    schema: KeypointSchema,
    *,
    threshold: float = 0.0,
    ids: Sequence[int | None] | None = None,
    thickness: int | None = None,
) -> np.ndarray:
    """Draw instances on a copy of an image.

    Args:
        image_bgr: (H, W, 3) uint8.
        keypoints: (N, K, 3) — x, y image pixels and a visibility flag or a score — or a
            sequence of N ``Pose`` s; a keypoint is drawn when its third value is > ``threshold``,
            a limb when both ends are.
        schema: gives the limbs and colors.
        threshold: minimum score / visibility to draw.
        ids: optional instance ids written next to each instance (None: no label); default the
            poses' ``track_id`` when any pose has one.
        thickness: line width in pixels; default scales with the image size.

    Returns:
        (H, W, 3) uint8, the drawn copy.
    """
    out = np.ascontiguousarray(image_bgr).copy()
    if ids is None and not isinstance(keypoints, np.ndarray):
        tracked = [getattr(p, "track_id", None) for p in keypoints]
        ids = tracked if any(t is not None for t in tracked) else None
    if not isinstance(keypoints, np.ndarray):
        keypoints = [p.keypoints if isinstance(p, Pose) else p for p in keypoints]
    kpts = np.asarray(keypoints, dtype=np.float32).reshape(-1, schema.num_keypoints, 3)
    if thickness is None:
        thickness = max(1, round(max(out.shape[:2]) / 320))
    radius = thickness + 1
    shown = kpts[..., 2] > threshold
    pts = np.round(kpts[..., :2]).astype(np.int32)
    for n in range(len(kpts)):
        for limb, color in zip(schema.limbs, schema.limb_colors, strict=True):
            if shown[n, limb.src] and shown[n, limb.dst]:
                cv2.line(
                    out,
                    tuple(map(int, pts[n, limb.src])),
                    tuple(map(int, pts[n, limb.dst])),
                    color,
                    thickness,
                    cv2.LINE_AA,
                )
        for k in np.flatnonzero(shown[n]):
            cv2.circle(
                out, tuple(map(int, pts[n, k])), radius, schema.keypoint_colors[k], -1, cv2.LINE_AA
            )
        if ids is not None and ids[n] is not None and shown[n].any():
            x, y = pts[n][shown[n]].min(axis=0)
            cv2.putText(
                out,
                str(ids[n]),
                (int(x), max(int(y) - 4, 10)),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.4 * thickness,
                (255, 255, 255),
                thickness,
                cv2.LINE_AA,
            )
    return out
