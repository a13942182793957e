"""What the top-down codecs share: their protocol, keypoint weights, flip of per-keypoint outputs,
and decoded keypoints -> poses.

A top-down codec encodes the keypoints of person crops: a crop is the network input of fixed size
``input_size`` (W, H), made from an image by one affine matrix (``geometry.crop_matrix``), so every
top-down codec works in the crop's **input pixels** (pixel centers at integer coordinates, the
crop covering ``[-0.5, W - 0.5] x [-0.5, H - 0.5]``) and in its own **output frame** (heatmap
cells, SimCC bins, normalized coordinates), related by ``output_to_input_matrix()``. Everything is
batched over crops: N instances (one per crop), K keypoints.

Exact flip: a mirrored crop (``x -> W - 1 - x``) is, in every codec's own output frame, a reversal
of the x axis (heatmap columns, x bins; ``1 - x`` for normalized coordinates) plus the schema's
left/right permutation of the keypoints, so ``unflip`` maps a perfect network's outputs of the
mirrored crop back without bias (MMPose's recipes shift heatmaps by one cell instead).

Reach: a labelled keypoint a little outside its crop (an ankle below a tight box, a hand beyond
its edge) is still encoded, and can be decoded, when it lies within ``reach`` times the crop's
width (for x) and height (for y) beyond the crop's edges (every top-down codec's ``reach``,
default ``DEFAULT_REACH``). Heatmaps and SimCC labels then hold the tail of its Gaussian (their
Gaussians cover the whole output, so the tail's log is still an exact parabola) and their
decoders extrapolate a maximum on the border outward, up to the reach (DARK and SimCC; MSRA's
quarter step keeps it on the border cell); regression targets are the coordinates as they are.
``reach=0`` keeps only keypoints inside the crop (MMPose's codecs; what posekit did before it had
``reach``, so checkpoints written then keep it: ``models.record``). A keypoint whose target peaks
below ``MIN_TARGET`` (far beyond a small Gaussian) gets weight 0.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from posekit.codecs.base import ArrayLike, Codec
from posekit.errors import ConfigError, SchemaError
from posekit.geometry import compose_affine, invert_affine, transform_points
from posekit.schema import KeypointSchema
from posekit.structures import Pose

__all__ = [
    "DEFAULT_REACH",
    "MIN_TARGET",
    "TopDownCodec",
    "check_reach",
    "encoder_inputs",
    "perfect_keypoints",
    "check_input_size",
    "check_keypoints",
    "flip_outputs",
    "keypoint_weights",
    "poses_from_keypoints",
    "reach_in_output",
    "to_numpy",
]

DEFAULT_REACH = 0.2
"""How far beyond its crop a labelled keypoint is still encoded and decoded, in crop widths (x) and
heights (y) (module docstring, "Reach"). On COCO-MINI val a perfect network with ground-truth boxes
padded 1.25x scores AP 0.983 with reach 0 (5 of 652 labelled keypoints lie outside their crops) and
1.000 with this one (UDP and DARK heatmaps, RLE; SimCC 0.987: its labels of the farthest ones
fall below ``MIN_TARGET``; MSRA 0.977 -> 0.986, decoded on the border)."""

MIN_TARGET = 1e-20
"""A heatmap or SimCC target whose maximum is below this (the far tail of a Gaussian centred
beyond the crop) is not encoded: weight 0, all zeros. The decoders' log floor
(``refine.TAIL_LOG_FLOOR``, 1e-30) stays below the cells they read beside such a maximum."""


@runtime_checkable
class TopDownCodec(Codec, Protocol):
    """A ``Codec`` of person crops (``family == "topdown"``).

    Attributes:
        input_size: (W, H) of the crop, input pixels.
        reach: how far beyond the crop keypoints are still encoded and decoded, in crop widths
            and heights (module docstring, "Reach").

    ``encode(keypoints (N, K, 3))`` takes each instance in its own crop's input pixels and returns
    targets with a leading N (and ``keypoint_weights (N, K)``); ``decode(*outputs, affine=...)``
    takes outputs with a leading N and returns N poses.
    """

    input_size: tuple[int, int]
    reach: float

    def decode_keypoints(
        self, *outputs: ArrayLike, config: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(keypoints (N, K, 2) float64 in the output frame, scores (N, K) float32)."""
        ...


def to_numpy(array: ArrayLike, name: str, *, copy: bool = True) -> np.ndarray:
    """A C-contiguous float32 NumPy copy of an array or tensor (never a view of the caller's
    data; a channels-last network output is made row-major once, here, for the decoders). With
    ``copy=False`` an array that already is one is returned as it is (for readers only)."""
    if hasattr(array, "detach"):  # torch.Tensor, without importing torch here
        array = array.detach().cpu().float().numpy()
    out = np.array(array, dtype=np.float32, order="C", copy=True if copy else None)
    if not np.isfinite(out).all():
        raise ConfigError(f"{name}: non-finite values in the network outputs")
    return out


def check_input_size(input_size: Any, where: str) -> tuple[int, int]:
    """(W, H) as two positive ints, or a ConfigError naming ``where``."""
    try:
        w, h = (int(v) for v in input_size)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: input_size must be (W, H), got {input_size!r}") from None
    if w <= 0 or h <= 0 or (w, h) != tuple(input_size):
        raise ConfigError(f"{where}: input_size must be two positive integers, got {input_size!r}")
    return w, h


def check_reach(reach: Any, where: str) -> float:
    """``reach`` as a float in [0, 1], or a ConfigError naming ``where``."""
    ok = isinstance(reach, (int, float)) and not isinstance(reach, bool)
    if not ok or not np.isfinite(reach) or not 0.0 <= reach <= 1.0:
        raise ConfigError(
            f"{where}: reach must be a number in [0, 1] (crop widths / heights beyond the crop's "
            f"edges within which keypoints are still encoded; 0 = only inside), got {reach!r}"
        )
    return float(reach)


def reach_in_output(codec: TopDownCodec) -> tuple[float, float]:
    """(x, y): how far past its first and last cell centres a decoder may place a keypoint, in
    the codec's output units (cells, bins): half a cell (the crop's edge lies within it in every
    frame) plus the codec's ``reach`` there."""
    matrix = codec.input_to_output_matrix()
    w, h = codec.input_size
    return (0.5 + codec.reach * w * abs(float(matrix[0, 0])),
            0.5 + codec.reach * h * abs(float(matrix[1, 1])))  # fmt: skip


def check_keypoints(keypoints: np.ndarray, schema: KeypointSchema) -> np.ndarray:
    """(N, K, 3) float64 copy of crop keypoints ((K, 3) is one instance); SchemaError when K is
    not the schema's, ConfigError when a labelled keypoint is not finite."""
    kpts = np.array(keypoints, dtype=np.float64, copy=True)
    if kpts.ndim == 2:
        kpts = kpts[None]
    k = schema.num_keypoints
    if kpts.ndim != 3 or kpts.shape[1:] != (k, 3):
        raise SchemaError(
            f"keypoints: expected (N, {k}, 3) for schema '{schema.name}', got {np.shape(keypoints)}"
        )
    if not np.isfinite(kpts[..., :2][kpts[..., 2] > 0]).all():
        raise ConfigError("keypoints: labeled keypoints have non-finite coordinates")
    return kpts


def keypoint_weights(
    keypoints: np.ndarray,
    schema: KeypointSchema,
    input_size: tuple[int, int],
    reach: float = 0.0,
) -> np.ndarray:
    """(N, K) float32 loss weight of each keypoint of (N, K, 3) crop keypoints: the schema's
    ``joint_weights`` where the keypoint is labelled (v > 0) and inside the crop's pixel area
    grown by ``reach`` times its width and height on every side, 0 elsewhere (an unlabelled or
    cropped-away keypoint teaches nothing)."""
    w, h = input_size
    x, y, v = keypoints[..., 0], keypoints[..., 1], keypoints[..., 2]
    mx, my = reach * w, reach * h
    inside = (x >= -0.5 - mx) & (x < w - 0.5 + mx) & (y >= -0.5 - my) & (y < h - 0.5 + my)
    weights = np.asarray(schema.joint_weights, dtype=np.float32)
    return np.where((v > 0) & inside, weights, np.float32(0.0)).astype(np.float32)


def encoder_inputs(
    codec: TopDownCodec,
    keypoints: np.ndarray,
    input_size: tuple[int, int] | None,
    ignore_mask: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """What every top-down ``encode`` starts with: the checked crop keypoints in the codec's
    output frame, (N, K, 2) float64 (0 where the weight is 0: unlabelled ones may be NaN), and
    their weights (N, K) float32 (``keypoint_weights``).

    ConfigError for an ``input_size`` other than the codec's (it fixes the output frame) and for
    an ``ignore_mask``: a crop's targets are those of its own instance, whose unlabelled keypoints
    already weigh 0, so there is nothing to ignore.
    """
    name = type(codec).__name__
    if input_size is not None and check_input_size(input_size, name) != codec.input_size:
        raise ConfigError(
            f"{name}.encode: input_size (W, H) = {tuple(input_size)} differs from the codec's "
            f"{codec.input_size}, which fixes its output frame (build the codec for that size)"
        )
    if ignore_mask is not None:
        raise ConfigError(
            f"{name}.encode: ignore_mask must be None (top-down targets have no ignore regions), "
            f"got an array of shape {np.shape(ignore_mask)}"
        )
    kpts = check_keypoints(keypoints, codec.schema)
    weights = keypoint_weights(kpts, codec.schema, codec.input_size, codec.reach)
    out = transform_points(kpts[..., :2], codec.input_to_output_matrix())
    return np.where(weights[..., None] > 0, out, 0.0), weights


def flip_outputs(
    array: np.ndarray, flip_index: tuple[int, ...], *, reverse_axis: int | None
) -> np.ndarray:
    """Outputs (N, K, ...) of mirrored crops in the original keypoint order: keypoints permuted by
    ``flip_index`` (axis 1) and, when ``reverse_axis`` is given, that axis reversed (the x axis of
    the codec's output frame). A new contiguous array."""
    out = np.asarray(array)[:, list(flip_index)]
    if reverse_axis is not None:
        out = np.flip(out, axis=reverse_axis)
    return np.ascontiguousarray(out)


def poses_from_keypoints(
    keypoints: np.ndarray, scores: np.ndarray, affine: np.ndarray
) -> list[Pose]:
    """N poses from decoded keypoints (N, K, 2) and scores (N, K), mapped by ``affine``: (2, 3)
    for every instance or (N, 2, 3) one per crop (e.g. output frame -> image pixels). Pose score:
    the mean keypoint score; bbox: around the keypoints with a score > 0."""
    affine = np.asarray(affine, np.float64)
    n = len(keypoints)
    if affine.shape == (2, 3):
        affine = np.broadcast_to(affine, (n, 2, 3))
    if affine.shape != (n, 2, 3):
        raise ConfigError(f"affine: expected (2, 3) or ({n}, 2, 3), got {affine.shape}")
    xy = keypoints @ affine[:, :, :2].transpose(0, 2, 1) + affine[:, None, :, 2]
    kpts = np.concatenate([xy, np.asarray(scores)[..., None]], axis=-1).astype(np.float32)
    found = kpts[..., 2] > 0
    use = np.where(found.any(axis=1, keepdims=True), found, True)[..., None]  # none: all of them
    pts = kpts[..., :2]
    bbox = np.concatenate([np.where(use, pts, np.inf).min(axis=1),
                           np.where(use, pts, -np.inf).max(axis=1)], axis=1)  # fmt: skip
    means = np.asarray(scores, np.float64).mean(axis=1)
    return [Pose(kpts[i], float(means[i]), bbox[i]) for i in range(n)]


def perfect_keypoints(
    codec: TopDownCodec, keypoints_img: np.ndarray, matrices: np.ndarray, *, flip: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """What a perfect network gives: the codec's own targets of the keypoints, decoded and mapped
    back to the image through the crops. The top-down ceiling (``engine.evaluate.
    perfect_map_poses`` is the bottom-up one).

    Args:
        codec: a top-down codec.
        keypoints_img: (N, K, 3) image pixels, one instance per crop.
        matrices: (N, 2, 3) image -> crop matrices (``geometry.crop_matrix``).
        flip: encode the mirrored crops (the matrices mirrored, left / right swapped), ``unflip``
            the targets and decode them as the flip test would.

    Returns:
        keypoints (N, K, 2) float64 image pixels, and (N, K) bool: the keypoint had a weight (it
        is labelled and inside its crop or within the codec's ``reach`` of it).
    """
    mats = np.asarray(matrices, np.float64)
    if flip:
        mirror = np.array([[-1.0, 0.0, codec.input_size[0] - 1.0], [0.0, 1.0, 0.0]])
        mats_in = np.stack([compose_affine(mirror, m) for m in mats])
    else:
        mats_in = mats
    kpts = np.array(keypoints_img, dtype=np.float64, copy=True)
    kpts[..., :2] = (
        np.einsum("nij,nkj->nki", mats_in[:, :, :2], kpts[..., :2]) + mats_in[:, None, :, 2]
    )
    order = list(codec.schema.flip_index) if flip else list(range(kpts.shape[1]))
    targets = codec.encode(kpts[:, order])
    outputs = codec.perfect_outputs(targets)
    if flip:
        outputs = codec.unflip(*outputs)
    to_image = np.stack([compose_affine(invert_affine(m), codec.output_to_input_matrix())
                         for m in mats])  # fmt: skip
    decoded, _ = codec.decode_keypoints(*outputs)
    xy = np.einsum("nij,nkj->nki", to_image[:, :, :2], decoded) + to_image[:, None, :, 2]
    inside = targets.arrays()["keypoint_weights"][:, order] > 0
    return xy, inside
