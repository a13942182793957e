"""The export parity gate: an exported network against the torch model it came from.

Two checks, both on the same runtimes the predictors use:

- **outputs**: at least 20 network inputs (random normal, photos from a folder, synthetic
  images of the schema), at every size the file takes (three sizes, one non-square, for a
  dynamic input; the fixed size otherwise), batch 1 and 2: the maximum absolute difference of
  every output the predictor reads (float32 goal: <= ``OUTPUT_TOLERANCE``);
- **poses**: the predictor of each runtime on the images (person boxes for top-down models: the
  whole image and a few sub-boxes): the same number of poses, matched one to one, keypoints
  within ``POSE_TOLERANCE`` input pixels.

``check_parity`` returns a ``ParityReport``; ``posekit.export`` fails the export when it is off.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from posekit.data.synth import SynthConfig, generate_image
from posekit.models.exported import InputShape
from posekit.oks import oks
from posekit.schema import KeypointSchema
from posekit.structures import InputSpec, Pose

logger = logging.getLogger(__name__)

__all__ = ["OUTPUT_TOLERANCE", "POSE_TOLERANCE", "ParityReport", "check_parity", "parity_images"]

OUTPUT_TOLERANCE = 1e-4
"""Largest output difference a float32 export may show: absolute for outputs within [-1, 1]
(trained heatmaps, PAFs, SimCC distributions), relative to the output's largest magnitude beyond
(float32 rounding alone is ~1e-7 of the magnitude, summed over thousands of products)."""

POSE_TOLERANCE = 0.5
"""Largest keypoint distance, in network input pixels, between the two runtimes' poses."""

MIN_INPUTS = 20


@dataclass(frozen=True)
class ParityReport:
    """What the gate measured.

    Attributes:
        inputs: network inputs compared.
        sizes: (W, H) input sizes compared.
        max_abs: largest absolute difference of each output the predictor reads, by name.
        max_rel: ``max_abs`` over the largest magnitude of that output (scale of the numbers).
        images: images whose poses were compared.
        poses: poses compared (torch side).
        pose_count_mismatches: images where the runtimes found different numbers of poses.
        max_pose_px: largest keypoint distance between matched poses (one to one, as many pairs
            as the shorter list has), input pixels.
        oks_agreement: poses matched one to one by OKS (the torch poses as ground truth, the
            schema's sigmas, area = their keypoints' extent, at least (short side / 8)^2):
            summed OKS over the larger count,
            over all images (1.0: the same poses; the number that says what int8 costs).
    """

    inputs: int
    sizes: tuple[tuple[int, int], ...]
    max_abs: dict[str, float]
    max_rel: dict[str, float]
    images: int
    poses: int
    pose_count_mismatches: int
    max_pose_px: float
    oks_agreement: float

    def failures(self, output_tolerance: float | None = OUTPUT_TOLERANCE) -> list[str]:
        """What is off, as sentences (empty when the gate passes); ``output_tolerance`` None
        skips the output check (int8 files are compared by poses only)."""
        out = []
        if output_tolerance is not None:
            for name, value in self.max_abs.items():
                scale = max(1.0, value / self.max_rel[name]) if self.max_rel[name] else 1.0
                if value > output_tolerance * scale:
                    out.append(f"output {name!r} differs by up to {value:.3g} (> "
                               f"{output_tolerance * scale:.3g}; its magnitude {scale:.3g})")  # fmt: skip
        if self.pose_count_mismatches:
            out.append(f"{self.pose_count_mismatches} of {self.images} images gave a different "
                       f"number of poses")  # fmt: skip
        if self.max_pose_px > POSE_TOLERANCE:
            out.append(f"keypoints differ by up to {self.max_pose_px:.3f} input px "
                       f"(> {POSE_TOLERANCE})")  # fmt: skip
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain data (the export's ``parity`` metadata entry)."""
        return {k: (list(map(list, v)) if k == "sizes" else v) for k, v in asdict(self).items()}


def parity_images(
    schema: KeypointSchema, photos: Sequence[np.ndarray] = (), *, synthetic: int = 4, seed: int = 0
) -> list[np.ndarray]:
    """BGR images for the gate: ``photos`` (real pictures) then ``synthetic`` images of the
    schema's figures (``data.synth``), 320 x 240."""
    rng = np.random.default_rng(seed)
    config = SynthConfig(num_images=synthetic, image_size=(320, 240), min_instances=1,
                         max_instances=3, seed=seed)  # fmt: skip
    return [*photos, *(generate_image(schema, rng, config)[0] for _ in range(synthetic))]


def check_parity(
    reference: Any,
    exported: Any,
    images: Sequence[np.ndarray],
    shape: InputShape,
    spec: InputSpec,
    *,
    seed: int = 0,
) -> ParityReport:
    """Compare two predictors of one family (``reference``: the torch model's, ``exported``:
    the file's) on network inputs and on the poses of ``images``.

    Args:
        reference, exported: predictors; their ``runtime.run`` is compared directly.
        images: BGR images (``parity_images``), at least two.
        shape: the file's input (fixed or dynamic sizes).
        spec: preprocessing (normalisation of the photos that become network inputs).
        seed: random inputs' seed.
    """
    rng = np.random.default_rng(seed)
    sizes = _sizes(shape, spec)
    names = reference.codec.layout.names
    max_abs = dict.fromkeys(names, 0.0)
    peak = dict.fromkeys(names, 0.0)
    count = 0
    per_size = -(-MIN_INPUTS // len(sizes))
    for w, h in sizes:
        for batch in _inputs(images, (w, h), spec, rng, per_size):
            ref = reference.runtime.run(batch)
            out = exported.runtime.run(batch)
            for name, a, b in zip(names, ref, out, strict=True):
                if a.shape != b.shape:
                    raise ValueError(f"output {name!r}: shape {b.shape}, torch {a.shape}")
                max_abs[name] = max(max_abs[name], float(np.abs(a - b).max()))
                peak[name] = max(peak[name], float(np.abs(a).max()))
            count += len(batch)
    counts, poses, worst, agree, total = 0, 0, 0.0, 0.0, 0
    for image in images:
        a, b, to_input = _poses(reference, exported, image, rng)
        poses += len(a)
        counts += len(a) != len(b)
        worst = max(worst, _max_distance(a, b) * to_input)
        agree += _matched_oks(a, b, reference.schema, min(image.shape[:2]))
        total += max(len(a), len(b))
    rel = {n: max_abs[n] / peak[n] if peak[n] > 0 else 0.0 for n in names}
    agreement = agree / total if total else 1.0
    return ParityReport(count, tuple(sizes), max_abs, rel, len(images), poses, counts, worst,
                        agreement)  # fmt: skip


def _sizes(shape: InputShape, spec: InputSpec) -> list[tuple[int, int]]:
    """(W, H) network input sizes: the fixed one, or three (square, wide, short and narrow)
    multiples of the size divisor around the spec's height."""
    if not shape.dynamic:
        return [(int(shape.width or spec.width or 0), int(shape.height or spec.height))]
    d = max(shape.size_divisor, 1)

    def fit(v: float) -> int:
        return max(d, int(round(v / d)) * d)

    h = spec.height
    return [(fit(h), fit(h)), (fit(1.5 * h), fit(h)), (fit(0.625 * h), fit(0.75 * h))]


def _inputs(
    images: Sequence[np.ndarray],
    size: tuple[int, int],
    spec: InputSpec,
    rng: np.random.Generator,
    count: int,
) -> list[np.ndarray]:
    """About ``count`` NHWC inputs of one size in batches of 1 and 2: random normal ones and
    the images resized and normalized."""
    w, h = size
    pictures = [spec.normalize(cv2.resize(im, (w, h))).transpose(1, 2, 0) for im in images]
    singles: list[np.ndarray] = []
    for i in range(count):
        if i % 2 == 0 or not pictures:
            singles.append(rng.standard_normal((h, w, 3)).astype(np.float32))
        else:
            singles.append(pictures[(i // 2) % len(pictures)])
    half = len(singles) // 3
    batches = [s[None] for s in singles[: len(singles) - 2 * half]]
    pairs = singles[len(singles) - 2 * half :]
    batches += [np.stack(pairs[j : j + 2]) for j in range(0, len(pairs), 2)]
    return [np.ascontiguousarray(b, dtype=np.float32) for b in batches]


def _poses(
    reference: Any, exported: Any, image: np.ndarray, rng: np.random.Generator
) -> tuple[list[Pose], list[Pose], float]:
    """Both predictors' poses of one image and the image -> input pixel scale."""
    h, w = image.shape[:2]
    if reference.family == "topdown":
        x0, y0 = rng.uniform(0, 0.3, 2) * (w, h)
        boxes = np.array([[0, 0, w, h], [x0, y0, x0 + 0.6 * w, y0 + 0.6 * h]], np.float64)
        scale = reference.codec.input_size[1] / (0.6 * h * reference.padding)
        return reference.predict(image, boxes), exported.predict(image, boxes), scale
    scale = reference.input_height / h
    return reference.predict(image), exported.predict(image), scale


def _matched_oks(
    a: Sequence[Pose], b: Sequence[Pose], schema: KeypointSchema, short_side: int
) -> float:
    """Summed OKS of ``b``'s poses matched one to one to ``a``'s (``a`` as ground truth; area:
    their keypoints' extent, at least (short side / 8)^2 so that a pose of two close keypoints
    is not judged as a person of a few pixels)."""
    if not a or not b:
        return 0.0
    k = schema.num_keypoints
    gt = np.stack([p.keypoints[:k] for p in a]).astype(np.float64)
    gt[..., 2] = np.where(gt[..., 2] > 0, 2.0, 0.0)
    found = gt[..., 2] > 0
    xs = np.where(found, gt[..., 0], np.nan)
    ys = np.where(found, gt[..., 1], np.nan)
    with np.errstate(all="ignore"):
        extent = (np.nanmax(xs, 1) - np.nanmin(xs, 1)) * (np.nanmax(ys, 1) - np.nanmin(ys, 1))
    areas = np.maximum(np.nan_to_num(extent), (short_side / 8.0) ** 2)
    pred = np.stack([p.keypoints[:k] for p in b])
    overlap = np.asarray(oks(pred, gt, areas, schema)).reshape(len(b), len(a))
    rows, cols = linear_sum_assignment(-overlap)
    return float(overlap[rows, cols].sum())


def _max_distance(a: Sequence[Pose], b: Sequence[Pose]) -> float:
    """Largest keypoint distance (image px) between poses matched one to one by mean distance
    (as many pairs as the shorter list has), over keypoints both found."""
    if not a or not b:
        return 0.0
    ka = np.stack([p.keypoints for p in a])  # (N, K, 3)
    kb = np.stack([p.keypoints for p in b])
    both = (ka[:, None, :, 2] > 0) & (kb[None, :, :, 2] > 0)  # (N, N, K)
    dist = np.linalg.norm(ka[:, None, :, :2] - kb[None, :, :, :2], axis=-1)
    mean = np.where(both, dist, 0).sum(-1) / np.maximum(both.sum(-1), 1)
    rows, cols = linear_sum_assignment(mean)
    matched = np.where(both[rows, cols], dist[rows, cols], 0)
    return float(matched.max()) if matched.size else 0.0
