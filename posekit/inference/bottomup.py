"""BottomUpPredictor: BGR images -> list[Pose] in image pixels, for bottom-up (PAF) models.

Frames (``posekit.geometry``): image pixels -> input pixels -> output pixels, pixel centers at
integer coordinates everywhere. Per scale the image is resized to ``round(input_height * scale)``
rows keeping its aspect ratio (cv2's half-pixel convention: ``x_in = (x_img + 0.5) * f - 0.5``) and
padded right and bottom to a multiple of the stride with the input spec's pad value (0 after
normalisation = gray, as in Lightweight OpenPose). The image -> input affine of each scale is kept;
nothing is ever cropped.

Multi-scale and flip: the maps of every scale (and of the mirrored input, brought back with
``PafCodec.unflip``) are warped into the output frame of the **largest** scale and averaged there.
Decoding maps poses straight to image pixels through one composed affine, so the maps are never
upsampled to image size; decoding works at output resolution (``PafDecodeConfig.upsample=1``).
The network runs behind a ``Runtime`` (``inference.runtime``).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from posekit.codecs.paf import PafCodec, PafDecodeConfig
from posekit.errors import ConfigError
from posekit.geometry import Placement, compose_affine, invert_affine, place_at_height, warp_maps
from posekit.inference.preprocess import check_image, image_batch
from posekit.inference.runtime import Runtime
from posekit.structures import InputSpec, Pose

logger = logging.getLogger(__name__)

__all__ = ["BottomUpPredictor", "Maps", "PreparedGroup"]


@dataclass(frozen=True, eq=False)
class PreparedGroup:
    """Same-size images of a batch on their way through ``BottomUpPredictor``'s stages.

    Attributes:
        indices: their positions in the batch.
        data: per scale, largest first: the network input (B or 2B with flip, H, W, 3) after
            ``prepare_batch``, the network's ``(heatmaps, pafs)`` after ``run_batch``.
        to_image: per scale, the (2, 3) affine output pixels -> image pixels.
    """

    indices: tuple[int, ...]
    data: tuple[Any, ...]
    to_image: tuple[np.ndarray, ...]


@dataclass(frozen=True, eq=False)
class Maps:
    """Averaged network maps of one image and the affine that takes them to image pixels.

    Attributes:
        heatmaps: (K+1, h, w) float32, output frame of the largest scale.
        pafs: (2L, h, w) float32, same frame.
        to_image: (2, 3) float64 affine, output pixels -> image pixels.
    """

    heatmaps: np.ndarray
    pafs: np.ndarray
    to_image: np.ndarray


class BottomUpPredictor:
    """Run a bottom-up model on whole images.

    Args:
        runtime: runs the network (``TorchRuntime(model)``), returning ``(heatmaps (B, K+1, h, w),
            pafs (B, 2L, h, w))``.
        codec: the ``PafCodec`` (stride, schema, decoding parameters).
        input_spec: preprocessing (color order, mean / std, pad value); its ``height`` is the
            default ``input_height``.
        input_height: rows of the network input at scale 1 (Lightweight OpenPose demo: 256).
        scales: input scales whose maps are averaged.
        flip: also run the mirrored input and average (needs a left/right symmetric skeleton).
        decode_config: overrides ``codec.decode_config``.
    """

    family = "bottomup"

    def __init__(
        self,
        runtime: Runtime,
        codec: PafCodec,
        input_spec: InputSpec | None = None,
        *,
        input_height: int | None = None,
        scales: Sequence[float] = (1.0,),
        flip: bool = False,
        decode_config: PafDecodeConfig | None = None,
    ) -> None:
        self.input_spec = input_spec or InputSpec(size_divisor=codec.stride)
        height = self.input_spec.height if input_height is None else int(input_height)
        if height < codec.stride:
            raise ConfigError(f"input_height must be >= the stride {codec.stride}")
        if not scales or any(not s > 0 for s in scales):
            raise ConfigError(f"scales must be positive numbers, got {list(scales)}")
        if flip:
            codec.schema.require_paf_flip()
        self.runtime = runtime
        self.codec = codec
        self.schema = codec.schema
        self.input_height = height
        self.scales = tuple(float(s) for s in scales)
        self.flip = flip
        self.decode_config = decode_config

    # ------------------------------------------------------------------ preprocessing
    def placement(self, image_size: tuple[int, int], scale: float = 1.0) -> Placement:
        """Resized and padded input of an image of size (W, H) at ``scale``."""
        return place_at_height(image_size, round(self.input_height * scale), self.codec.stride)

    def output_to_image(self, place: Placement) -> np.ndarray:
        """(2, 3) affine from the output pixels of an input placed as ``place`` to image pixels."""
        return compose_affine(invert_affine(place.matrix), self.codec.output_to_input_matrix())

    def prepare(self, images: Sequence[np.ndarray], place: Placement) -> np.ndarray:
        """(B, H, W, 3) float32 network input of same-size BGR images placed as ``place`` says;
        with ``flip`` the B mirrored inputs follow (2B in all)."""
        return image_batch(images, place, self.input_spec, flip=self.flip)

    def forward(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B, H, W, 3) input -> last stage maps as float32 (B, K+1, h, w), (B, 2L, h, w)."""
        heatmaps, pafs = self.runtime.run(batch)
        return heatmaps, pafs

    # ------------------------------------------------------------------ stages
    def prepare_batch(self, images: Sequence[np.ndarray]) -> list[PreparedGroup]:
        """Stage 1 of ``predict_batch``: images of the same size grouped (first-seen order), each
        group's network input per scale (mirrored inputs after the originals with ``flip``)."""
        images = [check_image(im) for im in images]
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i, image in enumerate(images):
            by_shape.setdefault(image.shape, []).append(i)
        order = sorted(self.scales, reverse=True)  # the largest scale's frame is the reference
        groups = []
        for shape, indices in by_shape.items():
            places = [self.placement((shape[1], shape[0]), scale) for scale in order]
            inputs = tuple(self.prepare([images[i] for i in indices], p) for p in places)
            to_image = tuple(self.output_to_image(p) for p in places)
            groups.append(PreparedGroup(tuple(indices), inputs, to_image))
        return groups

    def run_batch(self, groups: Sequence[PreparedGroup]) -> list[PreparedGroup]:
        """Stage 2: the groups with the network's outputs in place of their inputs."""
        return [dataclasses.replace(g, data=tuple(self.forward(x) for x in g.data)) for g in groups]

    def finish_batch(self, count: int, groups: Sequence[PreparedGroup]) -> list[list[Pose]]:
        """Stage 3: poses of the ``count`` images of the run groups (flip and scales averaged)."""
        out: list[list[Pose]] = [[] for _ in range(count)]
        for group in groups:
            for i, maps in zip(group.indices, self._group_maps(group), strict=True):
                out[i] = self.decode(maps)
        return out

    def _group_maps(self, group: PreparedGroup) -> list[Maps]:
        """Averaged maps of a run group's images, in the largest scale's output frame."""
        n = len(group.indices)
        per_scale = [self._unflipped(outputs, n, to_image)
                     for outputs, to_image in zip(group.data, group.to_image, strict=True)]  # fmt: skip
        ref = per_scale[0]
        if len(per_scale) == 1:
            return ref
        acc_h = [m.heatmaps.copy() for m in ref]
        acc_p = [m.pafs.copy() for m in ref]
        for maps in per_scale[1:]:
            for i, m in enumerate(maps):
                # this scale's output frame -> the reference output frame
                to_ref = compose_affine(invert_affine(ref[i].to_image), m.to_image)
                size = (ref[i].heatmaps.shape[2], ref[i].heatmaps.shape[1])
                acc_h[i] += warp_maps(m.heatmaps, to_ref, size)
                acc_p[i] += warp_maps(m.pafs, to_ref, size)
        k = np.float32(1.0 / len(per_scale))
        return [Maps(h * k, p * k, r.to_image) for h, p, r in zip(acc_h, acc_p, ref, strict=True)]

    def _unflipped(self, outputs: tuple[np.ndarray, np.ndarray], n: int,
                   to_image: np.ndarray) -> list[Maps]:  # fmt: skip
        """Maps of ``n`` images at one scale, each averaged with its mirror's with ``flip``."""
        heatmaps, pafs = outputs
        out = []
        for i in range(n):
            hm, pf = heatmaps[i], pafs[i]
            if self.flip:
                fh, fp = self.codec.unflip(heatmaps[n + i], pafs[n + i])
                hm, pf = (hm + fh) * 0.5, (pf + fp) * 0.5
            out.append(Maps(hm, pf, to_image))
        return out

    # ------------------------------------------------------------------ maps
    def maps(self, image_bgr: np.ndarray) -> Maps:
        """Averaged maps of one (H, W, 3) uint8 BGR image, in the largest scale's output frame."""
        (group,) = self.run_batch(self.prepare_batch([image_bgr]))
        return self._group_maps(group)[0]

    # ------------------------------------------------------------------ poses
    def decode(self, maps: Maps) -> list[Pose]:
        """Poses of ``maps`` in image pixels, best first."""
        return self.codec.decode(
            maps.heatmaps, maps.pafs, affine=maps.to_image, config=self.decode_config
        )

    def predict(self, image_bgr: np.ndarray) -> list[Pose]:
        """Poses of one (H, W, 3) uint8 BGR image, keypoints in image pixels, best first."""
        return self.decode(self.maps(image_bgr))

    def predict_batch(self, images: Sequence[np.ndarray]) -> list[list[Pose]]:
        """Poses of several images, in order. Images of the same size share forward passes
        (the three stages in a row; ``posekit.video`` runs them in threads)."""
        return self.finish_batch(len(images), self.run_batch(self.prepare_batch(images)))
