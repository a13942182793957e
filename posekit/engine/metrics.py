"""Keypoint accuracy of matched poses: PCK, AUC, EPE and NME, their normalisers, and the matching.

These metrics compare one predicted pose with one ground-truth instance. Top-down prediction with
the ground-truth boxes gives the pairs in order; for multi-person predictions
``engine.matching.match_by_oks`` (per image) and ``engine.matching.match_instances`` (a dataset, giving the
``MatchedInstances`` that ``KeypointAccuracy.compute`` takes) pair every ground-truth instance
with the prediction of highest OKS.

Dimensions: N instances, K keypoints. Arrays of one call share N and K:

- ``pred`` (N, K, 2|3): predicted x, y in image pixels [, score]. With a score column, a keypoint
  of score <= 0 was **not predicted** (posekit writes unfound keypoints as (0, 0, 0)).
- ``gt`` (N, K, 3): ground-truth x, y in image pixels, visibility v; only **labelled** keypoints
  (v > 0) are scored.
- ``norm`` (N,) or a number: each instance's normaliser in pixels; an instance whose normaliser is
  not finite or <= 0 (e.g. a torso keypoint not labelled) is **skipped** and counted.

Definitions (d = Euclidean distance between predicted and true keypoint, pixels; "scored" = the
labelled keypoints of the instances not skipped):

- PCK@a = #{scored keypoints predicted with d / norm <= a} / #{scored keypoints}; a keypoint not
  predicted counts as wrong. Pooled over all keypoints (MMPose averages per-keypoint accuracies).
- AUC@a (S steps) = (1/S) * sum_{i=1..S} PCK@(a * i / S): the area under the PCK curve over
  (0, a] divided by a (a right Riemann sum), so a perfect model scores exactly 1. (MMPose uses
  the thresholds a * i / S for i = 0..S-1 and d < threshold, so its perfect model scores
  1 - 1/S, 0.95 at S = 20.)
- EPE = mean d over labelled, predicted keypoints (pixels); no instance is skipped.
- NME = mean d / norm over scored, predicted keypoints.

EPE and NME leave keypoints that were not predicted out of the mean and count them in
``KeypointScore.num_missing``.

Normalisers (``normalizer``): ``bbox`` = the ground-truth box's longer side, max(w, h) as in
MMPose; ``torso`` = the distance between a shoulder and the opposite hip; ``head`` = the distance
between the ears, or between the eyes when the schema has no ears; NME's default is the distance
between the eyes (inter-ocular). Keypoints are found by name (``normalizing_pair``) or given.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from posekit.engine.matching import MatchedInstances
from posekit.errors import ConfigError, SchemaError
from posekit.schema import KeypointSchema

__all__ = [
    "AUC_STEPS",
    "DEFAULT_THRESHOLDS",
    "KEYPOINT_METRICS",
    "NORMS",
    "KeypointAccuracy",
    "KeypointScore",
    "auc",
    "bbox_size",
    "epe",
    "format_keypoint_metrics",
    "nme",
    "normalizer",
    "normalizing_pair",
    "pair_distance",
    "pck",
]

KEYPOINT_METRICS = ("pck", "auc", "epe", "nme")
"""Names of the metrics of this module (``KeypointAccuracy.metrics``)."""

NORMS = ("bbox", "torso", "head")
"""Normalisers of PCK and AUC."""

DEFAULT_THRESHOLDS = {"bbox": 0.05, "torso": 0.2, "head": 0.5}
"""PCK threshold by normaliser: 0.05 of the box (MMPose ``PCKAccuracy``'s default), 0.2 of the
torso (JHMDB's PCK@0.2), 0.5 of the head (MPII's PCKh@0.5)."""

AUC_STEPS = 20
"""Thresholds of AUC (MMPose's ``num_thrs``)."""

# Body parts of the name-found normalisers: (part of the first keypoint, part of the second).
# The first is on the left, the second on the right; the other side's pair is tried second.
_PAIR_PARTS = {
    "torso": (("shoulder", "hip"),),
    "head": (("ear", "ear"), ("eye", "eye")),
    "eyes": (("eye", "eye"),),
}
_PAIR_WHAT = {
    "torso": "a shoulder and the opposite hip",
    "head": "the two ears or the two eyes",
    "eyes": "the two eyes",
}


@dataclass(frozen=True)
class KeypointScore:
    """One metric's value and what it was computed over.

    Attributes:
        value: the metric (PCK, AUC, NME in normaliser units; EPE in pixels); NaN when nothing was
            scored.
        num_keypoints: labelled keypoints in the mean (PCK/AUC: every scored keypoint; EPE/NME:
            those predicted).
        num_missing: labelled keypoints of the instances not skipped that were not predicted
            (wrong for PCK/AUC, left out of EPE/NME).
        num_skipped: instances left out because their normaliser is 0 or missing (0 for EPE).
    """

    value: float
    num_keypoints: int
    num_missing: int
    num_skipped: int


# ---------------------------------------------------------------------- normalisers
def bbox_size(boxes: np.ndarray) -> np.ndarray:
    """(N, 4) xyxy boxes (pixels) -> (N,) float64 longer side max(w, h)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])


def pair_distance(gt: np.ndarray, pair: tuple[int, int]) -> np.ndarray:
    """(N,) float64 distance between the ground-truth keypoints ``pair`` of each instance (pixels);
    NaN when either is not labelled."""
    gt = np.asarray(gt, dtype=np.float64)
    a, b = gt[:, pair[0]], gt[:, pair[1]]
    dist = np.linalg.norm(a[:, :2] - b[:, :2], axis=-1)
    return np.where((a[:, 2] > 0) & (b[:, 2] > 0), dist, np.nan)


def _key(name: str) -> str:
    """A name compared without case and separators: ``Left_Shoulder`` -> ``leftshoulder``."""
    return re.sub(r"[\s_\-.]", "", name).lower()


def _sided(part: str, side: str) -> set[str]:
    """Name keys of ``part`` on ``side`` ("left"/"right"): left_eye, l_eye, eye_left, eyeL."""
    return {f"{side}{part}", f"{side[0]}{part}", f"{part}{side}", f"{part}{side[0]}"}


def normalizing_pair(
    schema: KeypointSchema, kind: str, names: Sequence[str | int] | None = None
) -> tuple[int, int]:
    """Indices of the two keypoints whose distance normalises ``kind``: "torso", "head", "eyes".

    Given ``names`` (two names or 0-based indices) are used as they are. Else the schema's names
    are searched, compared without case and separators, with the sides written ``left_``/``l_``
    before or ``_left``/``L`` after the part (``left_shoulder``, ``L_Eye``, ``eyeL``):

    - torso: left shoulder and right hip, else right shoulder and left hip;
    - head: left and right ear, else left and right eye (COCO: the ears);
    - eyes (NME's default): left and right eye.

    Raises:
        SchemaError: the names are not two keypoints of the schema, or the schema has no such
            keypoints (the message says what was looked for and how to give them).
    """
    if names is not None:
        if isinstance(names, str) or len(names) != 2:
            raise SchemaError(f"normalising keypoints: expected two names, got {names!r}")
        try:
            pair = tuple(schema.index(n) for n in names)
        except SchemaError as exc:
            raise SchemaError(f"normalising keypoints: {exc}") from None
        if pair[0] == pair[1]:
            raise SchemaError(f"normalising keypoints: '{names[0]}' is given twice")
        return pair[0], pair[1]
    if kind not in _PAIR_PARTS:
        raise ConfigError(f"normalising pair: unknown kind {kind!r}; expected {list(_PAIR_PARTS)}")
    index = {_key(n): i for i, n in enumerate(schema.keypoints)}
    for first, second in _PAIR_PARTS[kind]:
        for side, other in (("left", "right"), ("right", "left")):
            a = [index[k] for k in _sided(first, side) if k in index]
            b = [index[k] for k in _sided(second, other) if k in index]
            if len(a) == 1 and len(b) == 1:
                return a[0], b[0]
    raise SchemaError(
        f"schema '{schema.name}' has no {kind} keypoints: looked for {_PAIR_WHAT[kind]} by name "
        f"(e.g. left_{_PAIR_PARTS[kind][0][0]}, right_{_PAIR_PARTS[kind][0][1]}); give two "
        f"keypoint names with --norm-keypoints NAME NAME (norm_keypoints= in Python)"
    )


def normalizer(
    kind: str, gt: np.ndarray, boxes: np.ndarray, pair: tuple[int, int] | None = None
) -> np.ndarray:
    """(N,) float64 normaliser of each instance (pixels): "bbox" (``bbox_size(boxes)``), or the
    distance of ``pair`` (``pair_distance``, NaN when not labelled) for "torso"/"head"."""
    if kind == "bbox":
        return bbox_size(boxes)
    if kind not in NORMS:
        raise ConfigError(f"unknown normaliser {kind!r}; expected one of {list(NORMS)}")
    if pair is None:
        raise ConfigError(f"the {kind} normaliser needs its keypoint pair (normalizing_pair)")
    return pair_distance(gt, pair)


# ---------------------------------------------------------------------- metrics
@dataclass(frozen=True)
class _Distances:
    """Scored keypoints of a call: distances (M,) pixels, norms (M,), predicted (M,) bool."""

    dist: np.ndarray
    norm: np.ndarray
    predicted: np.ndarray
    skipped: int


def _distances(pred: np.ndarray, gt: np.ndarray, norm: float | np.ndarray | None) -> _Distances:
    pred, gt = np.asarray(pred, dtype=np.float64), np.asarray(gt, dtype=np.float64)
    if pred.ndim != 3 or gt.ndim != 3 or pred.shape[:2] != gt.shape[:2] or gt.shape[2] < 3:
        raise ValueError(
            f"expected pred (N, K, 2|3) and gt (N, K, 3) of one N and K, got {pred.shape} and "
            f"{gt.shape}"
        )
    n = gt.shape[0]
    labelled = gt[:, :, 2] > 0
    if norm is None:
        norms = np.ones(n)
        valid = np.ones(n, dtype=bool)
    else:
        norms = np.broadcast_to(np.asarray(norm, dtype=np.float64).reshape(-1), (n,))
        valid = np.isfinite(norms) & (norms > 0)
    scored = labelled & valid[:, None]
    predicted = pred[:, :, 2] > 0 if pred.shape[2] > 2 else np.ones(labelled.shape, dtype=bool)
    dist = np.linalg.norm(pred[:, :, :2] - gt[:, :, :2], axis=-1)
    skipped = int((labelled.any(1) & ~valid).sum())
    norm_k = np.broadcast_to(norms[:, None], labelled.shape)
    return _Distances(dist[scored], norm_k[scored], predicted[scored], skipped)


def _pck_curve(d: _Distances, thresholds: np.ndarray) -> np.ndarray:
    """(T,) PCK at each threshold (NaN without a scored keypoint)."""
    if d.dist.size == 0:
        return np.full(thresholds.shape, np.nan)
    correct = d.predicted & (d.dist / d.norm <= thresholds[:, None])
    return correct.mean(axis=1)


def pck(
    pred: np.ndarray, gt: np.ndarray, norm: float | np.ndarray, threshold: float
) -> KeypointScore:
    """PCK@threshold: the share of scored keypoints predicted with ``d / norm <= threshold``
    (see the module docstring; ``norm`` from ``normalizer``)."""
    d = _distances(pred, gt, norm)
    value = _pck_curve(d, np.asarray([float(threshold)]))[0]
    return KeypointScore(float(value), d.dist.size, int((~d.predicted).sum()), d.skipped)


def auc(
    pred: np.ndarray,
    gt: np.ndarray,
    norm: float | np.ndarray,
    max_threshold: float,
    steps: int = AUC_STEPS,
) -> KeypointScore:
    """AUC@max_threshold: the mean of PCK at ``max_threshold * i / steps``, i = 1..steps.

    The right Riemann sum of the PCK curve over (0, max_threshold], divided by its width: in
    [0, 1], exactly 1 for a perfect model. ``norm`` may be one number of pixels for every
    instance (MMPose's AUC normalises by a fixed ``norm_factor``, e.g. 30 px).
    """
    if not steps >= 1 or not max_threshold > 0:
        raise ConfigError(
            f"auc: need steps >= 1 and max_threshold > 0, got {steps}, {max_threshold}"
        )
    d = _distances(pred, gt, norm)
    thresholds = float(max_threshold) * np.arange(1, steps + 1) / steps
    value = float(np.mean(_pck_curve(d, thresholds)))
    return KeypointScore(value, d.dist.size, int((~d.predicted).sum()), d.skipped)


def epe(pred: np.ndarray, gt: np.ndarray) -> KeypointScore:
    """End-point error: mean distance (pixels) over labelled, predicted keypoints."""
    d = _distances(pred, gt, None)
    value = float(d.dist[d.predicted].mean()) if d.predicted.any() else float("nan")
    return KeypointScore(value, int(d.predicted.sum()), int((~d.predicted).sum()), 0)


def nme(pred: np.ndarray, gt: np.ndarray, norm: float | np.ndarray) -> KeypointScore:
    """Normalised mean error: mean of ``d / norm`` over scored, predicted keypoints."""
    d = _distances(pred, gt, norm)
    ratio = d.dist[d.predicted] / d.norm[d.predicted]
    value = float(ratio.mean()) if ratio.size else float("nan")
    return KeypointScore(value, int(ratio.size), int((~d.predicted).sum()), d.skipped)


# ---------------------------------------------------------------------- several metrics at once
@dataclass(frozen=True)
class KeypointAccuracy:
    """Which accuracy metrics to compute for a schema, checked and resolved at construction.

    Args:
        schema: the poses' schema; virtual keypoints are not scored (COCO files lack them) but
            may be normalising keypoints.
        metrics: names from ``KEYPOINT_METRICS``.
        norm: normaliser of PCK and AUC, one of ``NORMS``.
        threshold: PCK threshold; default ``DEFAULT_THRESHOLDS[norm]``.
        auc_max_threshold: AUC over (0, this]; default ``threshold``.
        auc_steps: AUC's number of thresholds.
        norm_keypoints: two keypoint names (or indices) for the torso/head normaliser and NME;
            default found by name (``normalizing_pair``; NME: the eyes).

    Raises:
        ConfigError: an unknown metric or normaliser, or a threshold <= 0.
        SchemaError: a needed keypoint pair is not in the schema.
    """

    schema: KeypointSchema
    metrics: tuple[str, ...] = KEYPOINT_METRICS
    norm: str = "bbox"
    threshold: float | None = None
    auc_max_threshold: float | None = None
    auc_steps: int = AUC_STEPS
    norm_keypoints: tuple[str | int, str | int] | None = None
    pck_pair: tuple[int, int] | None = field(init=False)
    nme_pair: tuple[int, int] | None = field(init=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        metrics = tuple(dict.fromkeys(m.lower() for m in self.metrics))
        unknown = [m for m in metrics if m not in KEYPOINT_METRICS]
        if unknown:
            raise ConfigError(f"unknown metric(s) {unknown}; choose from {list(KEYPOINT_METRICS)}")
        if self.norm not in NORMS:
            raise ConfigError(f"unknown PCK normaliser {self.norm!r}; choose from {list(NORMS)}")
        threshold = DEFAULT_THRESHOLDS[self.norm] if self.threshold is None else self.threshold
        auc_max = threshold if self.auc_max_threshold is None else self.auc_max_threshold
        if not (threshold > 0 and auc_max > 0 and self.auc_steps >= 1):
            raise ConfigError(
                f"PCK and AUC thresholds must be > 0 and AUC steps >= 1, got {threshold}, "
                f"{auc_max}, {self.auc_steps}"
            )
        names = None if self.norm_keypoints is None else tuple(self.norm_keypoints)
        uses_pair = self.norm != "bbox" and {"pck", "auc"} & set(metrics)
        set_(self, "metrics", metrics)
        set_(self, "threshold", float(threshold))
        set_(self, "auc_max_threshold", float(auc_max))
        set_(self, "norm_keypoints", names)
        set_(
            self, "pck_pair", normalizing_pair(self.schema, self.norm, names) if uses_pair else None
        )
        nme_pair = normalizing_pair(self.schema, "eyes", names) if "nme" in metrics else None
        set_(self, "nme_pair", nme_pair)

    def names(self) -> list[str]:
        """Column names of the metrics, in order: e.g. ``PCK@0.05``, ``tPCK@0.2``, ``PCKh@0.5``
        (MMPose's names for the box, torso and head), ``AUC@0.05``, ``EPE``, ``NME``."""
        pck_name = {"bbox": "PCK", "torso": "tPCK", "head": "PCKh"}[self.norm]
        label = {
            "pck": f"{pck_name}@{self.threshold:g}",
            "auc": f"AUC@{self.auc_max_threshold:g}",
            "epe": "EPE",
            "nme": "NME",
        }
        return [label[m] for m in self.metrics]

    def describe(self) -> str:
        """One line naming the normalisers, e.g. ``PCK/AUC: torso (left_shoulder-right_hip)``."""
        k = self.schema.keypoints
        parts = []
        if {"pck", "auc"} & set(self.metrics):
            if self.pck_pair is None:
                parts.append("PCK/AUC normalised by the box's longer side")
            else:
                pair = "-".join(k[i] for i in self.pck_pair)
                parts.append(f"PCK/AUC normalised by the {self.norm} ({pair})")
        if self.nme_pair is not None:
            parts.append(f"NME by the distance {'-'.join(k[i] for i in self.nme_pair)}")
        return "; ".join(parts) or "EPE in pixels"

    def compute(self, matched: MatchedInstances) -> dict[str, KeypointScore]:
        """The metrics of ``matched`` over the schema's real keypoints, by column name."""
        real = list(self.schema.real_indices)
        pred, gt = matched.pred[:, real], matched.gt[:, real]
        norm = normalizer(self.norm, matched.gt, matched.boxes, self.pck_pair)
        out = []
        for metric in self.metrics:
            if metric == "pck":
                out.append(pck(pred, gt, norm, self.threshold))
            elif metric == "auc":
                out.append(auc(pred, gt, norm, self.auc_max_threshold, self.auc_steps))
            elif metric == "epe":
                out.append(epe(pred, gt))
            else:
                out.append(nme(pred, gt, pair_distance(matched.gt, self.nme_pair)))
        return dict(zip(self.names(), out, strict=True))


def format_keypoint_metrics(scores: Mapping[str, KeypointScore | float]) -> str:
    """A two-line table of the metrics, as ``engine.evaluate.format_metrics`` prints AP."""
    values = {k: v.value if isinstance(v, KeypointScore) else float(v) for k, v in scores.items()}
    widths = {k: max(6, len(k)) for k in values}
    head = " ".join(f"{k:>{widths[k]}}" for k in values)
    row = " ".join(f"{v:{widths[k]}.3f}" for k, v in values.items())
    return f"{head}\n{row}"
