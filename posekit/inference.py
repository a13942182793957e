"""Predictor: BGR images -> list[Pose] in image pixels, for bottom-up (PAF) models.

Frames (see ``codecs.paf``): image pixels -> input pixels -> output pixels, pixel centers at
integer coordinates everywhere. Per scale the image is resized to ``round(input_height * scale)``
rows keeping its aspect ratio (cv2's half-pixel convention: ``x_in = (x_img + 0.5) * f - 0.5``) and
zero-padded right and bottom to a multiple of the stride (0 after normalisation = gray, as in
Lightweight OpenPose). The image -> input affine of each scale is kept; nothing is ever cropped.

Multi-scale and flip: the maps of every scale (and of the mirrored input, brought back with
``PafCodec.unflip``) are warped into the output frame of the **largest** scale and averaged there.
Decoding maps poses straight to image pixels through one composed affine, so the maps are never
upsampled to image size.

Speed (CPU): the Predictor runs a copy of the model with every BatchNorm folded into the conv
before it (exact in eval mode) in channels-last memory format; inputs are written straight into an
NHWC float32 buffer, which *is* that layout (no transposes or copies); forward passes run under
``torch.inference_mode``; decoding works at output resolution (``PafDecodeConfig.upsample=1``).
``torch.set_num_threads`` is the caller's (see ``benchmarks/predict_speed.py``).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from posekit.codecs.paf import PafCodec, PafDecodeConfig
from posekit.data.transforms import PIXEL_MEAN, PIXEL_SCALE
from posekit.errors import ConfigError
from posekit.geometry import Placement, compose_affine, invert_affine, place_at_height, warp_maps
from posekit.schema import KeypointSchema
from posekit.structures import Pose

logger = logging.getLogger(__name__)


PRECISIONS = ("float32", "bfloat16")
"""Forward-pass precisions of ``Predictor``."""


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


class Predictor:
    """Run a bottom-up model on images.

    Args:
        model: returns a list of per-stage ``(heatmaps (B, K+1, h, w), pafs (B, 2L, h, w))``.
        schema: the model's keypoint schema.
        codec: the ``PafCodec`` (stride, decoding parameters); default ``PafCodec(schema)`` with
            the model's ``stride`` attribute (8 when absent).
        input_height: rows of the network input at scale 1 (Lightweight OpenPose demo: 256).
        scales: input scales whose maps are averaged.
        flip: also run the mirrored input and average (needs a left/right symmetric skeleton).
        device: torch device.
        decode_config: overrides ``codec.decode_config``.
        channels_last: run in channels-last memory format on CPU (faster for these networks).
        fold_batchnorm: fold each BatchNorm into the conv before it (fewer passes over memory).
        precision: ``"float32"`` (default) or ``"bfloat16"``: the forward pass under bfloat16
            autocast (about 1.7x faster on CPUs with native bfloat16, AVX512-BF16 / AMX; slower
            elsewhere); maps are returned as float32 either way.

    With ``channels_last`` or ``fold_batchnorm`` the Predictor runs a copy of ``model`` (in eval
    mode, on ``device``) and never modifies the model given; otherwise it runs ``model`` itself,
    switched to eval mode and moved to ``device``.
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
        fold_batchnorm: bool = True,
        precision: str = "float32",
    ) -> None:
        if precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if codec is None:
            codec = PafCodec(schema, stride=int(getattr(model, "stride", 8)))
        elif codec.schema != schema:
            raise ConfigError(f"codec schema '{codec.schema.name}' is not '{schema.name}'")
        if int(input_height) < codec.stride:
            raise ConfigError(f"input_height must be >= the stride {codec.stride}")
        if not scales or any(not s > 0 for s in scales):
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
        self.autocast = torch.bfloat16 if precision == "bfloat16" else None
        if self.channels_last or fold_batchnorm:
            model = copy.deepcopy(model)
        self.model = model.to(self.device).eval()
        if fold_batchnorm:
            _fold_batchnorm(self.model)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)

    # ------------------------------------------------------------------ preprocessing
    def geometry(self, image_size: tuple[int, int], scale: float = 1.0) -> Placement:
        """Resized and padded input size of an image of size (W, H) at ``scale``."""
        return place_at_height(image_size, round(self.input_height * scale), self.codec.stride)

    def output_to_image(self, geo: Placement) -> np.ndarray:
        """(2, 3) affine from the output pixels of an input of geometry ``geo`` to image pixels."""
        return compose_affine(invert_affine(geo.matrix), self.codec.output_to_input_matrix())

    def prepare(self, images: Sequence[np.ndarray], geo: Placement) -> torch.Tensor:
        """(B, 3, H, W) float32 network input of same-size BGR images placed as ``geo`` says;
        with ``flip`` the B mirrored inputs follow (2B in all). On ``self.device``.

        The batch is built in an NHWC buffer: its NCHW view is channels-last without a copy.
        """
        (w, h), (pw, ph) = geo.resized, geo.padded
        n = len(images)
        buf = np.zeros((n * (2 if self.flip else 1), ph, pw, 3), dtype=np.float32)
        for i, image in enumerate(images):
            src_h = image.shape[0]
            interp = cv2.INTER_AREA if h < src_h else cv2.INTER_LINEAR
            resized = cv2.resize(image, (w, h), interpolation=interp)
            np.subtract(resized, np.float32(PIXEL_MEAN), out=buf[i, :h, :w], dtype=np.float32)
        buf[:n] *= np.float32(PIXEL_SCALE)
        if self.flip:
            buf[n:] = buf[:n, :, ::-1]
        x = torch.from_numpy(buf).permute(0, 3, 1, 2)
        if not self.channels_last:
            x = x.contiguous()
        return x.to(self.device)

    @torch.inference_mode()
    def forward(self, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """(B, 3, H, W) input -> last stage maps as float32 NumPy (B, K+1, h, w), (B, 2L, h, w)."""
        with torch.autocast(
            self.device.type, dtype=self.autocast, enabled=self.autocast is not None
        ):
            heatmaps, pafs = self.model(x)[-1]
        return heatmaps.float().cpu().numpy(), pafs.float().cpu().numpy()

    def _batch_maps(self, images: Sequence[np.ndarray], scale: float) -> list[Maps]:
        """Maps of same-size images at one scale (flip averaged), each in its own output frame."""
        h, w = images[0].shape[:2]
        geo = self.geometry((w, h), scale)
        heatmaps, pafs = self.forward(self.prepare(images, geo))
        to_image = self.output_to_image(geo)
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
        return self._maps_batch([_check_image(image_bgr)])[0]

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
        images = [_check_image(im) for im in images]
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, image in enumerate(images):
            groups.setdefault(image.shape, []).append(i)
        out: list[list[Pose]] = [[] for _ in images]
        for indices in groups.values():
            maps = self._maps_batch([images[i] for i in indices])
            for i, m in zip(indices, maps, strict=True):
                out[i] = self.decode(m)
        return out


def _fold_batchnorm(model: nn.Module) -> None:
    """Fold, in place, every ``BatchNorm2d`` that follows a ``Conv2d`` in an ``nn.Sequential``
    into that conv (``torch.nn.utils.fusion``; exact for an eval-mode model); the BatchNorm
    becomes an ``Identity``."""
    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        for i in range(len(seq) - 1):
            conv, bn = seq[i], seq[i + 1]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                seq[i] = fuse_conv_bn_eval(conv, bn)
                seq[i + 1] = nn.Identity()


def _check_image(image: np.ndarray) -> np.ndarray:
    shape = getattr(image, "shape", None)
    if shape is None or len(shape) != 3 or shape[2] != 3 or min(shape[:2]) < 1:
        raise ConfigError(f"expected an (H, W, 3) BGR image, got shape {shape}")
    if image.dtype != np.uint8:
        raise ConfigError(f"expected a uint8 BGR image, got dtype {image.dtype}")
    return image
