"""TopDownPredictor: a BGR image and person boxes -> one Pose per box, in image pixels.

Each box becomes one crop matrix (``geometry.box_to_center_size``: padded by ``padding`` and
widened to the crop's aspect ratio; ``geometry.crop_matrix``); every crop of an image is warped
straight into one input batch (``preprocess.crop_batch``) and run in ONE forward pass (chunks of
``max_batch``). With ``flip`` the mirrored crops ride in the same batch and their outputs are
mapped back by the codec (``unflip``: exact in the codec's frame) and averaged with the direct
ones. The codec decodes each crop and maps its keypoints to the image through the inverse of its
own matrix (rotation-free here, but the same exact path as training's augmented crops).

Box scores (a detector's) rescore the poses (``posekit.oks.rescore``: box score x mean of the
keypoint scores above ``keypoint_threshold``); ``nms_threshold`` removes duplicate poses by
OKS-NMS with the schema's sigmas.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from posekit.codecs.topdown import TopDownCodec, poses_from_keypoints
from posekit.errors import ConfigError
from posekit.geometry import (
    box_to_center_size,
    compose_affine,
    crop_matrices,
    invert_affine,
    mirror_matrix,
    transform_points,
)
from posekit.inference.preprocess import check_image, crop_batch
from posekit.inference.runtime import Runtime
from posekit.oks import RESCORE_THRESHOLD, oks_nms, rescore
from posekit.structures import InputSpec, Pose

logger = logging.getLogger(__name__)

__all__ = ["TopDownPredictor", "perfect_crop_outputs"]


class TopDownPredictor:
    """Run a top-down model on person boxes.

    Args:
        runtime: runs the network on (B, H, W, 3) crops, returning the codec's outputs.
        codec: the top-down codec (crop size, decoding, flip).
        input_spec: preprocessing of the crops (its width and height must be the codec's
            ``input_size``); default posekit's (BGR, (pixel - 128) / 256).
        flip: average with the mirrored crops (flip test).
        padding: boxes grow by this factor before the aspect ratio is fixed; default the input
            spec's ``box_padding`` (its training crops').
        decode_config: the codec's decoding parameters (default the codec's own).
        max_batch: crops per forward pass.
        keypoint_threshold: keypoint score that counts in the rescoring with box scores.
        nms_threshold: OKS above which a lower-scored pose is dropped; None keeps every pose.
    """

    family = "topdown"

    def __init__(
        self,
        runtime: Runtime,
        codec: TopDownCodec,
        input_spec: InputSpec | None = None,
        *,
        flip: bool = False,
        padding: float | None = None,
        decode_config: Any = None,
        max_batch: int = 64,
        keypoint_threshold: float = RESCORE_THRESHOLD,
        nms_threshold: float | None = None,
    ) -> None:
        w, h = codec.input_size
        spec = input_spec or InputSpec(size_divisor=1, height=h, width=w)
        if (spec.width, spec.height) != (w, h):
            raise ConfigError(
                f"input spec {spec.width} x {spec.height} is not the codec's crop size {w} x {h}"
            )
        padding = spec.box_padding if padding is None else padding
        if not padding > 0 or max_batch < 1:
            raise ConfigError(f"padding must be > 0 and max_batch >= 1, got {padding}, {max_batch}")
        if flip and not codec.supports_flip:
            raise ConfigError(f"codec {codec.name!r} cannot map mirrored crops back (flip test)")
        self.runtime, self.codec, self.input_spec = runtime, codec, spec
        self.schema = codec.schema
        self.flip, self.padding, self.max_batch = flip, float(padding), int(max_batch)
        self.decode_config = decode_config
        self.keypoint_threshold = keypoint_threshold
        self.nms_threshold = nms_threshold

    # ------------------------------------------------------------------ crops
    def matrices(self, boxes_xyxy: np.ndarray) -> np.ndarray:
        """(M, 2, 3) image -> crop matrices of (M, 4) xyxy boxes (image pixels)."""
        w, h = self.codec.input_size
        centers, sizes = box_to_center_size(np.asarray(boxes_xyxy, np.float64), w / h, self.padding)
        return crop_matrices(centers, sizes, (w, h))

    def outputs(self, image_bgr: np.ndarray, matrices: np.ndarray) -> tuple[np.ndarray, ...]:
        """The codec's outputs (M, ...) of the crops ``matrices`` (M, 2, 3) of one image (flip
        averaged), in chunks of ``max_batch`` crops per forward pass."""
        chunks: list[tuple[np.ndarray, ...]] = []
        for start in range(0, len(matrices), self.max_batch):
            part = matrices[start : start + self.max_batch]
            out = self.runtime.run(crop_batch(image_bgr, part, self.input_spec, flip=self.flip))
            if self.flip:
                n = len(part)
                back = self.codec.unflip(*(o[n:] for o in out))
                out = tuple((o[:n] + b) * np.float32(0.5) for o, b in zip(out, back, strict=True))
            chunks.append(tuple(out))
        if len(chunks) == 1:  # one forward pass: its outputs as they are (the codec copies them)
            return chunks[0]
        return tuple(np.concatenate(parts) for parts in zip(*chunks, strict=True))

    # ------------------------------------------------------------------ poses
    def predict(
        self,
        image_bgr: np.ndarray,
        boxes: np.ndarray | None = None,
        box_scores: Sequence[float] | None = None,
        priors: Sequence[Pose] | None = None,
    ) -> list[Pose]:
        """One pose per box of one (H, W, 3) uint8 BGR image, keypoints in image pixels.

        Args:
            image_bgr: the image.
            boxes: (M, 4) xyxy person boxes, image pixels; default the whole image.
            box_scores: (M,) detector confidences; the poses are then rescored with them.
            priors: (M) earlier poses of the boxes' people (image pixels; a bottom-up model's):
                each keypoint is the prior's where the prior scores it higher than the crop's
                estimate (before rescoring).

        Returns:
            Poses sorted by descending score (OKS-NMS applied when ``nms_threshold`` is set).
        """
        image = check_image(image_bgr)
        if boxes is None:
            boxes = np.array([[0.0, 0.0, image.shape[1], image.shape[0]]])
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        if not len(boxes):
            return []
        bad = (
            ~np.isfinite(boxes).all(axis=1)
            | (boxes[:, 2] <= boxes[:, 0])
            | (boxes[:, 3] <= boxes[:, 1])
        )
        if bad.any():
            raise ConfigError(f"boxes must be finite xyxy with x2 > x1, y2 > y1: {boxes[bad][:3]}")
        matrices = self.matrices(boxes)
        outputs = self.outputs(image, matrices)
        to_image = compose_affine(invert_affine(matrices), self.codec.output_to_input_matrix())
        poses = self.codec.decode(*outputs, affine=to_image, config=self.decode_config)
        if priors is not None:
            poses = _merge(poses, priors)
        if box_scores is not None:
            scores = np.asarray(box_scores, np.float64).reshape(-1)
            if len(scores) != len(poses):
                raise ConfigError(f"{len(scores)} box scores for {len(poses)} boxes")
            poses = [Pose(p.keypoints, float(rescore(p.keypoints[:, 2], s, self.keypoint_threshold)),
                          p.bbox) for p, s in zip(poses, scores, strict=True)]  # fmt: skip
        order = sorted(range(len(poses)), key=lambda i: -poses[i].score)
        poses = [poses[i] for i in order]
        if self.nms_threshold is not None and len(poses) > 1:
            areas = np.prod(boxes[order, 2:] - boxes[order, :2], axis=1)  # MMPose: the box's
            keep = oks_nms(poses, self.schema, self.nms_threshold, areas=areas)
            poses = [poses[i] for i in keep]
        return poses


def _merge(poses: Sequence[Pose], priors: Sequence[Pose]) -> list[Pose]:
    """Per keypoint the better-scoring of ``poses[i]`` and ``priors[i]`` (ties: the pose's); the
    score is the mean of the merged keypoint scores, the box around the merged keypoints."""
    if len(priors) != len(poses):
        raise ConfigError(f"{len(priors)} prior poses for {len(poses)} boxes")
    if not len(poses):
        return []
    own = np.stack([p.keypoints for p in poses])
    prior = np.stack([p.keypoints for p in priors]).astype(own.dtype)
    if prior.shape != own.shape:
        raise ConfigError(f"prior poses of {prior.shape[1:]} keypoints for poses of {own.shape[1:]}")
    kpts = np.where((prior[..., 2] > own[..., 2])[..., None], prior, own)
    return poses_from_keypoints(kpts[..., :2], kpts[..., 2], np.eye(2, 3))


def perfect_crop_outputs(
    codec: TopDownCodec, keypoints: np.ndarray, matrices: np.ndarray, *, flip: bool = False
) -> tuple[np.ndarray, ...]:
    """What a perfect network returns for crops: the codec's own targets of ``keypoints`` (M, K,
    3) (image pixels, one person per crop) in the crops of ``matrices`` (M, 2, 3) (image ->
    crop, ``TopDownPredictor.matrices``); with ``flip`` the mirrored crops' targets follow (2M),
    as for the predictor's flip batch. The ceiling of the crop -> decode pipeline, and realistic
    maps for timing the decoding (a network with random weights puts its maxima anywhere)."""
    keypoints = np.asarray(keypoints, np.float64)
    mats = list(np.asarray(matrices, np.float64))
    if flip:
        mirror = mirror_matrix(codec.input_size[0])
        mats += [compose_affine(mirror, m) for m in mats]
    m, flip_index = len(keypoints), list(codec.schema.flip_index)
    crops = []
    for i, mat in enumerate(mats):
        k = keypoints[i % m].copy()
        k[:, :2] = transform_points(k[:, :2], mat)
        crops.append(k[flip_index] if i >= m else k)
    return codec.perfect_outputs(codec.encode(np.stack(crops)))
