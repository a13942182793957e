"""Predictor: BGR images -> list[Pose] in image pixels, for bottom-up (PAF) models.

Per scale the image is resized to ``input_height * scale`` rows keeping its aspect ratio and padded
right/bottom to a multiple of the stride; the image -> input affine is recorded (cv2's half-pixel
resize convention). The maps of every scale (and of the mirrored input when ``flip``) are brought
into the output frame of the first scale and averaged there; decoding maps poses straight to image
pixels through one composed affine, so the maps are never upsampled to image size.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from posekit.codecs.paf import PafCodec, PafDecodeConfig
from posekit.data.transforms import compose_affine, invert_affine, normalize_image
from posekit.errors import ConfigError
from posekit.schema import KeypointSchema
from posekit.structures import Pose

logger = logging.getLogger(__name__)

_CV_MAX_CHANNELS = 512  # cv2.warpAffine handles at most this many channels per call


@dataclass(frozen=True, eq=False)
class _Prepared:
    """One resized + padded input: (3, Hp, Wp) float32 and its image -> input affine."""

    tensor: np.ndarray
    matrix: np.ndarray


class Predictor:
    """Run a bottom-up model on images.

    Args:
        model: returns a list of per-stage ``(heatmaps (B, K+1, h, w), pafs (B, 2L, h, w))``.
        schema: the model's keypoint schema.
        codec: the ``PafCodec`` (stride, decoding parameters); default ``PafCodec(schema)`` with
            the model's ``stride`` attribute (8 when absent).
        input_height: rows of the network input at scale 1 (Lightweight OpenPose demo: 256).
        scales: input scales whose maps are averaged (first one = reference frame).
        flip: also run the mirrored input and average (needs a left/right symmetric skeleton).
        device: torch device.
        decode_config: overrides ``codec.decode_config``.
        channels_last: run in channels-last memory format on CPU (faster; converts the model's
            parameters in place, so a model still being trained should pass False).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        schema: KeypointSchema,
        *,
        codec: PafCodec | None = None,
        input_height: int = 256,
        scales: Sequence[float] = (1.0,),
        flip: bool = False,
        device: str | torch.device = "cpu",
        decode_config: PafDecodeConfig | None = None,
        channels_last: bool = True,
    ) -> None:
        if codec is None:
            codec = PafCodec(schema, stride=int(getattr(model, "stride", 8)))
        elif codec.schema != schema:
            raise ConfigError(f"codec schema '{codec.schema.name}' is not '{schema.name}'")
        if input_height < codec.stride:
            raise ConfigError(f"input_height must be >= the stride {codec.stride}")
        if not scales or any(s <= 0 for s in scales):
            raise ConfigError(f"scales must be positive numbers, got {list(scales)}")
        if flip:
            codec.schema.require_paf_flip()
        self.codec = codec
        self.schema = codec.schema
        self.input_height = int(input_height)
        self.scales = tuple(float(s) for s in scales)
        self.flip = flip
        self.device = torch.device(device)
        self.decode_config = decode_config
        self.channels_last = channels_last and self.device.type == "cpu"
        self.model = model.to(self.device).eval()
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)

    # ------------------------------------------------------------------ preprocessing
    def _prepare(self, image_bgr: np.ndarray, scale: float) -> _Prepared:
        h, w = image_bgr.shape[:2]
        s = self.codec.stride
        new_h = max(round(self.input_height * scale), s)
        new_w = max(round(w * new_h / h), 1)
        interp = cv2.INTER_AREA if new_h < h else cv2.INTER_LINEAR
        resized = cv2.resize(image_bgr, (new_w, new_h), interpolation=interp)
        fx, fy = new_w / w, new_h / h
        # cv2.resize maps pixel centers x -> (x + 0.5) * f - 0.5
        matrix = np.array([[fx, 0.0, 0.5 * fx - 0.5], [0.0, fy, 0.5 * fy - 0.5]])
        pad_h, pad_w = -new_h % s, -new_w % s
        tensor = normalize_image(resized)
        if pad_h or pad_w:  # 0 after normalisation = gray, as in Lightweight OpenPose
            tensor = np.pad(tensor, ((0, 0), (0, pad_h), (0, pad_w)))
        return _Prepared(tensor, matrix)

    @torch.inference_mode()
    def _forward(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B, 3, H, W) -> last stage maps as float32 NumPy (B, K+1, h, w), (B, 2L, h, w)."""
        x = torch.from_numpy(batch).to(self.device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        heatmaps, pafs = self.model(x)[-1]
        return heatmaps.float().cpu().numpy(), pafs.float().cpu().numpy()

    # ------------------------------------------------------------------ maps
    def maps(self, image_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Averaged maps of one image and the (2, 3) affine from their frame to image pixels.

        Returns:
            heatmaps (K+1, h, w), pafs (2L, h, w) in the output frame of the first scale, and the
            output -> image matrix.
        """
        if image_bgr is None or image_bgr.ndim != 3 or image_bgr.shape[2] != 3:
            raise ConfigError(
                f"expected an (H, W, 3) BGR image, got shape {getattr(image_bgr, 'shape', None)}"
            )
        out_to_in = self.codec.output_to_input_matrix()
        ref_to_image = None
        ref_size = None
        acc_h = acc_p = None
        count = 0
        for scale in self.scales:
            prep = self._prepare(image_bgr, scale)
            batch = prep.tensor[None]
            if self.flip:
                batch = np.concatenate([batch, batch[..., ::-1]])
            heatmaps, pafs = self._forward(np.ascontiguousarray(batch))
            hm, pf = heatmaps[0], pafs[0]
            if self.flip:
                fh, fp = self.codec.unflip(heatmaps[1], pafs[1])
                hm, pf = (hm + fh) / 2, (pf + fp) / 2
            out_to_image = compose_affine(invert_affine(prep.matrix), out_to_in)
            if ref_to_image is None:
                ref_to_image, ref_size = out_to_image, (hm.shape[2], hm.shape[1])
                acc_h, acc_p = hm.astype(np.float32), pf.astype(np.float32)
            else:  # bring this scale's maps into the reference output frame
                this_to_ref = compose_affine(invert_affine(ref_to_image), out_to_image)
                acc_h += _warp_maps(hm, this_to_ref, ref_size)
                acc_p += _warp_maps(pf, this_to_ref, ref_size)
            count += 1
        return acc_h / count, acc_p / count, ref_to_image

    def predict(self, image_bgr: np.ndarray) -> list[Pose]:
        """Poses of one (H, W, 3) uint8 BGR image, keypoints in image pixels, best first."""
        heatmaps, pafs, to_image = self.maps(image_bgr)
        return self.codec.decode(heatmaps, pafs, affine=to_image, config=self.decode_config)

    def predict_batch(self, images: Sequence[np.ndarray]) -> list[list[Pose]]:
        """Poses of several images. Same-size images at a single scale share one forward pass."""
        if len(self.scales) != 1 or len({im.shape for im in images}) != 1:
            return [self.predict(im) for im in images]
        preps = [self._prepare(im, self.scales[0]) for im in images]
        batch = np.stack([p.tensor for p in preps])
        if self.flip:
            batch = np.concatenate([batch, batch[..., ::-1]])
        heatmaps, pafs = self._forward(np.ascontiguousarray(batch))
        out_to_in = self.codec.output_to_input_matrix()
        results = []
        for i, prep in enumerate(preps):
            hm, pf = heatmaps[i], pafs[i]
            if self.flip:
                fh, fp = self.codec.unflip(heatmaps[len(preps) + i], pafs[len(preps) + i])
                hm, pf = (hm + fh) / 2, (pf + fp) / 2
            to_image = compose_affine(invert_affine(prep.matrix), out_to_in)
            results.append(self.codec.decode(hm, pf, affine=to_image, config=self.decode_config))
        return results


def _warp_maps(maps: np.ndarray, matrix: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Warp (C, h, w) maps by a (2, 3) matrix into (C, size[1], size[0]), bilinear, zero border."""
    out = np.empty((maps.shape[0], size[1], size[0]), dtype=np.float32)
    for start in range(0, maps.shape[0], _CV_MAX_CHANNELS):
        chunk = np.ascontiguousarray(maps[start : start + _CV_MAX_CHANNELS].transpose(1, 2, 0))
        warped = cv2.warpAffine(
            chunk,
            matrix,
            size,
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0,
        )
        out[start : start + _CV_MAX_CHANNELS] = warped.reshape(size[1], size[0], -1).transpose(
            2, 0, 1
        )
    return out
