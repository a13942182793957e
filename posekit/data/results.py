"""COCO results JSON: poses in image pixels <-> ``[x1, y1, s1, ...]`` result entries; detection boxes.

A COCO results file is a JSON list of entries ``{"image_id", "category_id", "keypoints", "score"}``
whose ``keypoints`` hold the **real** keypoints (virtual ones dropped) in the **ground-truth
file's** keypoint order (matched by name), s being the keypoint score; keypoints not found are
written as (0, 0, 0), as COCO submissions do. ``posekit predict --json`` and ``posekit eval --json``
write it; ``engine.evaluate`` scores it.

A COCO **detection** results file (``read_coco_detections``) is the same kind of list with an xywh
``bbox`` instead of ``keypoints``: the person boxes a top-down model is evaluated on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from posekit.errors import DatasetError
from posekit.schema import KeypointSchema
from posekit.structures import Pose

__all__ = [
    "PosesPerImage",
    "poses_to_coco_results",
    "read_coco_detections",
    "read_coco_results",
    "write_coco_results",
]

PosesPerImage = Mapping[int, Sequence[Pose]]
"""Image id -> poses (keypoints (K, 3) in image pixels, schema order)."""


def poses_to_coco_results(
    poses_per_image: PosesPerImage,
    schema: KeypointSchema,
    *,
    keypoint_names: Sequence[str] | None = None,
    category_id: int = 1,
) -> list[dict[str, Any]]:
    """COCO results entries (one per pose) from poses in image pixels.

    Args:
        poses_per_image: image id -> poses, keypoints (K, 3) in schema order.
        schema: the poses' schema; virtual keypoints are dropped.
        keypoint_names: keypoint order of the ground-truth file; default the schema's real order.
        category_id: written into every entry.

    A pose with a ``track_id`` (video tracking) carries it as the entry's ``track_id``.
    """
    index = file_index(schema, keypoint_names)
    real = list(schema.real_indices)
    out = []
    for image_id, poses in poses_per_image.items():
        for pose in poses:
            kpts = np.zeros((len(index), 3), dtype=np.float64)
            kpts[index] = np.asarray(pose.keypoints, dtype=np.float64)[real]
            entry = {
                "image_id": int(image_id),
                "category_id": int(category_id),
                "keypoints": [round(float(v), 3) for v in kpts.ravel()],
                "score": round(float(pose.score), 6),
            }
            if pose.track_id is not None:
                entry["track_id"] = int(pose.track_id)
            out.append(entry)
    return out


def write_coco_results(
    path: str | Path,
    poses_per_image: PosesPerImage,
    schema: KeypointSchema,
    *,
    keypoint_names: Sequence[str] | None = None,
    category_id: int = 1,
) -> Path:
    """Write a COCO results JSON (see :func:`poses_to_coco_results`); returns the path."""
    path = Path(path)
    results = poses_to_coco_results(
        poses_per_image, schema, keypoint_names=keypoint_names, category_id=category_id
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results))
    return path


def read_coco_results(
    path: str | Path, schema: KeypointSchema, *, keypoint_names: Sequence[str] | None = None
) -> dict[int, list[Pose]]:
    """Read a COCO results JSON back into poses (schema order, virtual keypoints recomputed).

    Raises:
        DatasetError: the file is not a list of keypoint results of the schema's length.
    """
    path = Path(path)
    try:
        entries = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read COCO results: {exc}") from None
    if not isinstance(entries, list):
        raise DatasetError(
            f"{path}: COCO results must be a JSON list, got {type(entries).__name__}"
        )
    index = file_index(schema, keypoint_names)
    real = list(schema.real_indices)
    out: dict[int, list[Pose]] = {}
    for n, entry in enumerate(entries):
        try:
            flat = np.asarray(entry["keypoints"], dtype=np.float32)
            image_id, score = int(entry["image_id"]), float(entry["score"])
        except (KeyError, TypeError, ValueError) as exc:
            raise DatasetError(f"{path}: entry {n} is not a keypoint result ({exc!r})") from None
        if flat.size != 3 * len(index):
            raise DatasetError(
                f"{path}: entry {n} (image id {image_id}) has {flat.size} keypoint values, "
                f"expected {3 * len(index)} for schema '{schema.name}'"
            )
        kpts = np.zeros((1, schema.num_keypoints, 3), dtype=np.float32)
        kpts[0, real] = flat.reshape(-1, 3)[index]
        schema.add_virtual(kpts)
        found = kpts[0, :, 2] > 0
        xy = kpts[0, found, :2]
        bbox = np.concatenate([xy.min(0), xy.max(0)]) if found.any() else np.zeros(4)
        out.setdefault(image_id, []).append(Pose(kpts[0], score, bbox.astype(np.float32)))
    return out


def read_coco_detections(
    path: str | Path, *, category_id: int | None = None, min_score: float = 0.0
) -> dict[int, np.ndarray]:
    """Read a COCO detection results JSON into boxes per image (e.g. for top-down prediction).

    The file is a JSON list of ``{"image_id", "category_id", "bbox": [x, y, w, h], "score"}``
    (x, y the top-left corner in image pixels, w, h >= 0), as detectors write for COCO.

    Args:
        path: the JSON file.
        category_id: keep only the detections of this category (default: every category).
        min_score: keep only the detections with ``score >= min_score``.

    Returns:
        image id -> (M, 5) float32 boxes ``x1, y1, x2, y2, score`` (image pixels), in the file's
        order; images without a kept detection have no entry.

    Raises:
        DatasetError: the file cannot be read or is not such a list; names the file, the entry
            index and what is wrong with it.
    """
    path = Path(path)
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read COCO detections: {exc}") from None
    if not isinstance(entries, list):
        raise DatasetError(
            f"{path}: COCO detections must be a JSON list, got {type(entries).__name__}"
        )
    rows: dict[int, list[list[float]]] = {}
    for n, entry in enumerate(entries):
        image_id, cat, box, score = _detection(entry, f"{path}: detection {n}")
        if (category_id is None or cat == category_id) and score >= min_score:
            x, y, w, h = box
            rows.setdefault(image_id, []).append([x, y, x + w, y + h, score])
    return {i: np.asarray(r, dtype=np.float32).reshape(-1, 5) for i, r in rows.items()}


def _detection(entry: Any, where: str) -> tuple[int, int, list[float], float]:
    """(image id, category id, xywh box, score) of one detection entry, checked."""
    if not isinstance(entry, Mapping):
        raise DatasetError(f"{where} is not an object: {entry!r:.80}")
    missing = [k for k in ("image_id", "category_id", "bbox", "score") if k not in entry]
    if missing:
        raise DatasetError(f"{where} lacks field(s) {missing}")
    ids = []
    for key in ("image_id", "category_id"):
        value = entry[key]
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not np.isfinite(value)
            or value != int(value)
        ):
            raise DatasetError(f"{where}: {key} must be an integer, got {value!r}")
        ids.append(int(value))
    box, score = entry["bbox"], entry["score"]
    numbers = (int, float)
    if (
        not isinstance(box, list)
        or len(box) != 4
        or not all(isinstance(v, numbers) and not isinstance(v, bool) for v in box)
        or not np.isfinite(box).all()
        or box[2] < 0
        or box[3] < 0
    ):
        raise DatasetError(
            f"{where} (image id {ids[0]}): bbox must be 4 finite numbers x, y, w >= 0, h >= 0; "
            f"got {box!r}"
        )
    if isinstance(score, bool) or not isinstance(score, numbers) or not np.isfinite(score):
        raise DatasetError(
            f"{where} (image id {ids[0]}): score must be a finite number, got {score!r}"
        )
    return ids[0], ids[1], [float(v) for v in box], float(score)


def file_index(schema: KeypointSchema, names: Sequence[str] | None) -> np.ndarray:
    """Position in a file's keypoint list ``names`` of each real schema keypoint (a permutation;
    ``None``: the schema's own real order). DatasetError when the file has other keypoints."""
    if names is None:
        return np.arange(len(schema.real_indices))
    index = schema.source_index(list(names), where="evaluation")
    if len(names) != len(index):
        extra = sorted(set(names) - {schema.keypoints[i] for i in schema.real_indices})
        raise DatasetError(
            f"evaluation: the file has keypoints {extra} that schema '{schema.name}' lacks"
        )
    return index
