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

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from posekit.codecs.paf import PafCodec, PafDecodeConfig
from posekit.errors import ConfigError
from posekit.geometry import Placement, compose_affine, invert_affine, place_at_height, warp_maps
from posekit.inference.preprocess import check_image, image_batch
from posekit.inference.runtime import Runtime
from posekit.structures import InputSpec, Pose

logger = logging.getLogger(__name__)

__all__ = ["BottomUpPredictor", "Maps"]


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

    def _batch_maps(self, images: Sequence[np.ndarray], scale: float) -> list[Maps]:
        """Maps of same-size images at one scale (flip averaged), each in its own output frame."""
        h, w = images[0].shape[:2]
        place = self.placement((w, h), scale)
        heatmaps, pafs = self.forward(self.prepare(images, place))
        to_image = self.output_to_image(place)
        out = []
        n = len(images)
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
        return self._maps_batch([check_image(image_bgr)])[0]

    def _maps_batch(self, images: Sequence[np.ndarray]) -> list[Maps]:
        """``maps`` of same-size images, one forward pass per scale."""
        order = sorted(range(len(self.scales)), key=lambda i: -self.scales[i])
        ref = self._batch_maps(images, self.scales[order[0]])
        if len(order) == 1:
            return ref
        acc_h = [m.heatmaps.copy() for m in ref]
        acc_p = [m.pafs.copy() for m in ref]
        for i in order[1:]:
            for n, m in enumerate(self._batch_maps(images, self.scales[i])):
                # this scale's output frame -> the reference output frame
                to_ref = compose_affine(invert_affine(ref[n].to_image), m.to_image)
                size = (ref[n].heatmaps.shape[2], ref[n].heatmaps.shape[1])
                acc_h[n] += warp_maps(m.heatmaps, to_ref, size)
                acc_p[n] += warp_maps(m.pafs, to_ref, size)
        k = np.float32(1.0 / len(order))
        return [Maps(h * k, p * k, r.to_image) for h, p, r in zip(acc_h, acc_p, ref, strict=True)]

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
        """Poses of several images, in order. Images of the same size share forward passes."""
        images = [check_image(im) for im in images]
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, image in enumerate(images):
            groups.setdefault(image.shape, []).append(i)
        out: list[list[Pose]] = [[] for _ in images]
        for indices in groups.values():
            maps = self._maps_batch([images[i] for i in indices])
            for i, m in zip(indices, maps, strict=True):
                out[i] = self.decode(m)
        return out
