"""HeatmapCodec: top-down Gaussian heatmap targets of person crops and their decoding (MSRA,
DARK, UDP), in exact frames.

Dimension glossary: N instances (one per crop), K keypoint types (``schema.num_keypoints``), (W, H)
crop input size in pixels, (w, h) heatmap size in cells, s stride (input pixels per cell).

Frames. Pixel centers are at integer coordinates in every frame (``posekit.geometry``): the crop
covers ``[-0.5, W - 0.5] x [-0.5, H - 0.5]``, cell (i, j) of a heatmap is the point ``x=j, y=i``.
One (2, 3) affine maps input pixels to heatmap cells (``input_to_output_matrix``), and its exact
inverse maps decoded cells back (``output_to_input_matrix``):

- ``frame="stride"``: W = s w and H = s h with one integer s; cell j covers input pixels
  ``s*j .. s*j+s-1``, so ``x_out = (x_in - (s - 1) / 2) / s`` (as ``PafCodec``). MMPose's MSRA and
  DARK codecs use ``x_out = x_in / s`` instead, half a cell minus half a pixel off.
- ``frame="udp"`` (Huang et al., 2020, "The Devil is in the Details"): the first and last pixel
  centers align, ``x_out = x_in (w - 1) / (W - 1)``, ``y_out = y_in (h - 1) / (H - 1)``; any sizes.
- ``frame="scale"``: ``x_out = x_in / s``, the frame the published MSRA / HRNet models and
  MMPose's MSRA and DARK codecs were trained in: use it to decode those weights as trained.

In the stride and udp frames a mirrored crop (``x_in -> W - 1 - x_in``) is exactly a reversal of
the heatmap columns (``x_out -> w - 1 - x_out``), so ``unflip`` reverses them and permutes the
keypoints, without the one-cell shift of MMPose's flip-test recipes. In the scale frame the mirror
is ``x_out -> w - 1/s - x_out``: ``unflip`` reverses the columns and resamples them ``1 - 1/s``
cells back (linear interpolation, where MMPose shifts by one whole cell).

Encoded (``encode``):

- heatmaps (N, K, h, w) float32 in [0, 1]: per keypoint ``exp(-d^2 / (2 sigma^2))``, d the distance
  in cells from the keypoint's centre: the exact ``x_out`` (``centre="float"``: DARK, UDP; the
  continuous peak is 1) or the cell ``floor(x_out + 0.5)`` (``centre="integer"``: MSRA as published;
  that cell is exactly 1). The Gaussian covers the whole map (MMPose's MSRA and UDP cut it to a
  square of 3 sigma, where it is at most exp(-4.5) = 0.011), so its log is an exact parabola
  everywhere. A keypoint with weight 0 has an all-zero map.
- keypoint_weights (N, K) float32: ``topdown.keypoint_weights`` (the schema's ``joint_weights``
  where the keypoint is labelled and inside the crop or within ``reach`` of it, else 0). A
  keypoint beyond the crop has the tail of its Gaussian in the map (``codecs.topdown``, "Reach").

With ``oks_targets`` the targets follow the metric: OKS forgives an error in proportion to a
keypoint's sigma (a nose 0.026, a hip 0.107 in COCO), so each keypoint's Gaussian is ``sigma``
times ``sqrt(its OKS sigma / the schema's median)`` clipped to 0.67-1.2 (sharper peaks for the
face), and its loss weight is multiplied by ``median / its OKS sigma`` over the mean of that
ratio (the face weighs about 3x a hip). Off by default. A prototype (widths relative to 0.072
instead of the median, 0.079 for COCO) trained ``topdown_tiny`` on synthetic ``coco_person`` to
val AP 0.787 in 28 epochs against 0.762 without; in 12 epochs 0.694 against 0.673, the weights
alone 0.680, the sharper Gaussians alone 0.649 (``README.md``, "Top-down models").

Decoding (``decode_keypoints``): the argmax of each map plus a sub-cell refinement
(``HeatmapDecodeConfig.refine``, from ``codecs.refine``); the score is the maximum of the map.
DARK's modulation is skipped for maps whose maximum is near the border, where the blur's zero
padding would shift it (``_refine_dark``). With ``"dark"`` a maximum on the border is extrapolated
outward by the one-sided fit, up to ``reach`` beyond the map (a keypoint outside the crop comes
back where it is); ``"quarter"`` keeps it on the border cell. Exact targets decode back exactly
with ``"dark"`` and ``centre="float"`` (a Gaussian's log is a parabola; the modulation adds 1e-4
input px at stride 4); the integer centre loses up to half a cell per axis
(``tests/codecs/test_heatmap.py`` derives and checks the bounds).

Presets (``name`` in checkpoints and configs): ``MsraHeatmap`` ("msra": integer centre, stride
frame, quarter step; Xiao et al., 2018), ``DarkHeatmap`` ("dark": float centre, stride frame, DARK;
Zhang et al., 2020), ``UdpHeatmap`` ("udp": float centre, udp frame, DARK).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import cv2
import numpy as np

from posekit.codecs.base import ArrayLike, OutputLayout, OutputSpec, Targets, check_params
from posekit.codecs.refine import (
    TAIL_LOG_FLOOR,
    argmax_2d,
    refine_dark_window,
    refine_quarter,
    safe_log,
)
from posekit.codecs.topdown import (
    DEFAULT_REACH,
    MIN_TARGET,
    check_input_size,
    check_reach,
    encoder_inputs,
    flip_outputs,
    poses_from_keypoints,
    reach_in_output,
    to_numpy,
)
from posekit.errors import ConfigError, SchemaError
from posekit.schema import KeypointSchema
from posekit.structures import Pose

__all__ = [
    "CENTRES",
    "FRAMES",
    "REFINE_METHODS",
    "DarkHeatmap",
    "HeatmapCodec",
    "HeatmapDecodeConfig",
    "HeatmapTargets",
    "MsraHeatmap",
    "UdpHeatmap",
]

CENTRES = ("integer", "float")
"""Where a target Gaussian is centred: on the nearest cell (MSRA) or at the exact keypoint."""

FRAMES = ("stride", "udp", "scale")
"""Input -> heatmap frames (see the module docstring)."""

OKS_SIGMA_RANGE = (0.67, 1.2)
"""With ``oks_targets``: the bounds of a keypoint's Gaussian width, in multiples of ``sigma``."""

REFINE_METHODS = ("dark", "quarter", "none")
"""Sub-cell refinements of the argmax (``refine.refine_dark``, ``refine.refine_quarter``, none)."""


@dataclass(frozen=True)
class HeatmapTargets(Targets):
    """Training targets of N crops, at the heatmap resolution.

    Attributes:
        heatmaps: (N, K, h, w) float32 in [0, 1]; all zero where the keypoint weight is 0.
        keypoint_weights: (N, K) float32 loss weight of each keypoint.
    """

    heatmaps: np.ndarray
    keypoint_weights: np.ndarray


@dataclass(frozen=True)
class HeatmapDecodeConfig:
    """Decoding parameters.

    Attributes:
        refine: sub-cell refinement of each map's argmax: ``"dark"`` (the Taylor step of
            ``refine.refine_dark`` on the log of the map; exact for Gaussians), ``"quarter"``
            (MSRA's quarter cell towards the higher neighbour) or ``"none"``.
        blur_kernel: with ``"dark"``, network maps are first modulated (``refine.modulate``: a
            Gaussian blur of this odd size, rescaled to the map's maximum; DARK's 11) so that their
            log is smooth; 1 = no modulation. Maps whose maximum is within ``blur_kernel // 2
            + 1`` cells of the border are not modulated (the blur would shift it there).
    """

    refine: str = "dark"
    blur_kernel: int = 11

    def __post_init__(self) -> None:
        checks = {
            "refine": self.refine in REFINE_METHODS,
            "blur_kernel": isinstance(self.blur_kernel, int)
            and not isinstance(self.blur_kernel, bool)
            and self.blur_kernel >= 1
            and self.blur_kernel % 2 == 1,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            values = {k: getattr(self, k) for k in bad}
            raise ConfigError(
                f"HeatmapDecodeConfig: invalid values {values}; expected refine in "
                f"{REFINE_METHODS} and blur_kernel an odd positive integer"
            )


@dataclass(frozen=True)
class HeatmapCodec:
    """Encode crop keypoints into Gaussian heatmaps and decode heatmaps into keypoints.

    A top-down codec (``codecs.topdown.TopDownCodec``, name ``"heatmap"``): the network returns
    one output, ``heatmaps`` (N, K, h, w). The presets ``MsraHeatmap``, ``DarkHeatmap`` and
    ``UdpHeatmap`` are this class with other defaults and their own names.

    Args:
        schema: the keypoint schema (K types, flip permutation, joint weights).
        input_size: (W, H) of the crop, input pixels.
        heatmap_size: (w, h) of the heatmaps, cells.
        sigma: Gaussian std of the targets, in heatmap cells (MSRA at 64 x 48: 2).
        centre: ``"float"`` (Gaussian at the exact keypoint) or ``"integer"`` (at the nearest cell,
            MSRA as published).
        frame: ``"stride"`` (W / w == H / h, an integer), ``"udp"`` (any sizes) or ``"scale"``
            (published MSRA / HRNet weights; W / w == H / h, an integer).
        decode_config: default decoding parameters (``decode(config=...)`` overrides them).
        oks_targets: per-keypoint Gaussian widths and loss weights from the schema's OKS sigmas
            (module docstring); decoding is the same.
        reach: how far beyond the crop keypoints are still encoded and decoded, in crop widths
            and heights (``codecs.topdown``, "Reach"); 0 = only inside the crop.

    Attributes:
        stride: input pixels per cell: s of the stride frame; ``round(W / w)`` in the udp frame,
            where it is nominal (the exact scale is ``(W - 1) / (w - 1)``).
    """

    schema: KeypointSchema
    input_size: tuple[int, int] = (192, 256)
    heatmap_size: tuple[int, int] = (48, 64)
    sigma: float = 2.0
    centre: str = "float"
    frame: str = "stride"
    decode_config: HeatmapDecodeConfig = HeatmapDecodeConfig()
    oks_targets: bool = False
    reach: float = DEFAULT_REACH

    name: ClassVar[str] = "heatmap"
    family: ClassVar[str] = "topdown"

    def __post_init__(self) -> None:
        cls = type(self).__name__
        if not isinstance(self.schema, KeypointSchema):
            raise ConfigError(f"{cls}: schema must be a KeypointSchema, got {type(self.schema)}")
        set_ = object.__setattr__
        set_(self, "input_size", self._size("input_size"))
        set_(self, "heatmap_size", self._size("heatmap_size"))
        if isinstance(self.sigma, bool) or not isinstance(self.sigma, (int, float)):
            raise ConfigError(f"{cls}: sigma must be a number (heatmap cells), got {self.sigma!r}")
        if not (math.isfinite(self.sigma) and self.sigma > 0):
            raise ConfigError(f"{cls}: sigma must be finite and > 0 (cells), got {self.sigma}")
        if self.centre not in CENTRES:
            raise ConfigError(f"{cls}: centre must be one of {CENTRES}, got {self.centre!r}")
        if self.frame not in FRAMES:
            raise ConfigError(f"{cls}: frame must be one of {FRAMES}, got {self.frame!r}")
        if not isinstance(self.oks_targets, bool):
            raise ConfigError(f"{cls}: oks_targets must be true or false, got {self.oks_targets!r}")
        set_(self, "reach", check_reach(self.reach, cls))
        if not isinstance(self.decode_config, HeatmapDecodeConfig):
            raise ConfigError(
                f"{cls}: decode_config must be a HeatmapDecodeConfig, got "
                f"{type(self.decode_config).__name__}"
            )
        (big_w, big_h), (w, h) = self.input_size, self.heatmap_size
        if self.frame != "udp" and (big_w % w or big_h % h or big_w // w != big_h // h):
            raise ConfigError(
                f"{cls}: frame {self.frame!r} needs input_size (W, H) = {self.input_size} to be one "
                f"integer stride times heatmap_size (w, h) = {self.heatmap_size} (W / w == H / h); "
                f"use frame 'udp' for other sizes"
            )
        if self.frame == "udp" and min(big_w, big_h, w, h) < 2:
            raise ConfigError(
                f"{cls}: frame 'udp' needs input_size and heatmap_size of at least 2 x 2 (it "
                f"aligns the first and last pixel centers), got {self.input_size}, "
                f"{self.heatmap_size}"
            )

    def _size(self, field: str) -> tuple[int, int]:
        value = getattr(self, field)
        axes = "(W, H)" if field == "input_size" else "(w, h)"
        try:
            return check_input_size(value, field)
        except ConfigError:
            raise ConfigError(
                f"{type(self).__name__}: {field} must be two positive integers {axes}, got {value!r}"
            ) from None

    # ------------------------------------------------------------------ frames
    @property
    def stride(self) -> int:
        """Input pixels per cell (nominal, ``round(W / w)``, in the udp frame)."""
        return round(self.input_size[0] / self.heatmap_size[0])

    def _scale_shift(self) -> tuple[np.ndarray, np.ndarray]:
        """(2,) scale and (2,) shift of ``out = scale * in + shift`` per axis."""
        big = np.asarray(self.input_size, np.float64)
        small = np.asarray(self.heatmap_size, np.float64)
        if self.frame == "udp":
            return (small - 1.0) / (big - 1.0), np.zeros(2)
        s = big / small  # one integer stride on both axes (checked)
        if self.frame == "scale":
            return 1.0 / s, np.zeros(2)
        return 1.0 / s, -(s - 1.0) / (2.0 * s)

    def input_to_output_matrix(self) -> np.ndarray:
        """(2, 3) float64 affine: crop input pixels -> heatmap cells (module docstring)."""
        scale, shift = self._scale_shift()
        return np.array([[scale[0], 0.0, shift[0]], [0.0, scale[1], shift[1]]])

    def output_to_input_matrix(self) -> np.ndarray:
        """(2, 3) float64 affine: heatmap cells -> crop input pixels (the exact inverse)."""
        scale, shift = self._scale_shift()
        inv = 1.0 / scale
        return np.array([[inv[0], 0.0, -shift[0] * inv[0]], [0.0, inv[1], -shift[1] * inv[1]]])

    def output_size(self, input_size: tuple[int, int]) -> tuple[int, int]:
        """``heatmap_size`` (w, h) for the codec's ``input_size``; ConfigError for another size
        (a top-down network sees crops of one size)."""
        size = check_input_size(input_size, f"{type(self).__name__}.output_size")
        if size != self.input_size:
            raise ConfigError(
                f"{type(self).__name__}: input size (W, H) must be the codec's input_size "
                f"{self.input_size}, got {tuple(input_size)} (crop the input to it)"
            )
        return self.heatmap_size

    @property
    def layout(self) -> OutputLayout:
        """One output: ``heatmaps`` with K channels."""
        return OutputLayout((OutputSpec("heatmaps", self.schema.num_keypoints, "heatmap", "K"),))

    @property
    def supports_flip(self) -> bool:
        """True: a mirrored crop's heatmaps are the reversed columns, keypoints permuted."""
        return True

    # ------------------------------------------------------------------ records
    def to_dict(self) -> dict[str, Any]:
        """Codec parameters for a checkpoint record (the schema is stored separately); the decode
        config as a nested dict; ``oks_targets`` only when true."""
        record = {
            "name": self.name,
            "input_size": list(self.input_size),
            "heatmap_size": list(self.heatmap_size),
            "sigma": float(self.sigma),
            "centre": self.centre,
            "frame": self.frame,
            "decode_config": asdict(self.decode_config),
            "reach": self.reach,
        }
        if self.oks_targets:  # only when set: records written before it stay the same
            record["oks_targets"] = True
        return record

    @classmethod
    def from_dict(cls, schema: KeypointSchema, spec: Mapping[str, Any]) -> HeatmapCodec:
        """Inverse of :meth:`to_dict`; missing parameters take the defaults of the class that the
        record names. ``HeatmapCodec.from_dict`` rebuilds any preset; a preset only its own."""
        params = dict(spec)
        name = params.pop("name", None)
        target = _BY_NAME.get(name) if isinstance(name, str) else None
        if target is None or not issubclass(target, cls):
            names = sorted(n for n, c in _BY_NAME.items() if issubclass(c, cls))
            raise ConfigError(f"codec record is not one of the codecs {names}: {dict(spec)!r}")
        check_params(target.name, target, params, fixed=("schema",))
        decode = params.get("decode_config")
        if isinstance(decode, Mapping):
            check_params(
                f"{target.name}.decode_config", HeatmapDecodeConfig, dict(decode), fixed=()
            )
            params["decode_config"] = HeatmapDecodeConfig(**decode)
        return target(schema, **params)

    # ------------------------------------------------------------------ encode
    def encode(
        self,
        keypoints: np.ndarray,
        input_size: tuple[int, int] | None = None,
        ignore_mask: np.ndarray | None = None,
    ) -> HeatmapTargets:
        """Targets of N crops.

        Args:
            keypoints: (N, K, 3) (or (K, 3) for N = 1) — x, y in each crop's input pixels,
                visibility 0/1/2.
            input_size: (W, H) of the crops: None or the codec's ``input_size``.
            ignore_mask: not used: a top-down crop holds one labelled person, whose unlabelled
                keypoints already get weight 0. Must be None.

        Returns:
            :class:`HeatmapTargets` (module docstring, "Encoded").
        """
        kpts_out, weights = encoder_inputs(self, keypoints, input_size, ignore_mask)
        used = weights > 0
        if self.centre == "integer":
            kpts_out = np.floor(kpts_out + 0.5)
        w, h = self.heatmap_size
        sigmas, scale = self._keypoint_sigmas()
        two_var = (2.0 * sigmas**2)[:, None]  # (K, 1)
        gx = np.exp(-((np.arange(w) - kpts_out[..., :1]) ** 2) / two_var).astype(np.float32)
        gy = np.exp(-((np.arange(h) - kpts_out[..., 1:]) ** 2) / two_var).astype(np.float32)
        used &= gx.max(axis=-1) * gy.max(axis=-1) >= MIN_TARGET  # a far tail: nothing to learn
        weights = np.where(used, weights * scale, 0.0).astype(np.float32)
        heatmaps = (gy * used[..., None])[..., :, None] * gx[..., None, :]  # (N, K, h, w)
        return HeatmapTargets(heatmaps=heatmaps, keypoint_weights=weights)

    def _keypoint_sigmas(self) -> tuple[np.ndarray, np.ndarray]:
        """(K,) Gaussian std per keypoint (cells) and (K,) loss weight factors: ``sigma`` and 1
        each, or with ``oks_targets`` those of the module docstring."""
        k = self.schema.num_keypoints
        if not self.oks_targets:
            return np.full(k, float(self.sigma)), np.ones(k, np.float32)
        oks = np.asarray(self.schema.sigmas, np.float64)
        relative = oks / np.median(oks)
        sigmas = float(self.sigma) * np.clip(np.sqrt(relative), *OKS_SIGMA_RANGE)
        scale = (1.0 / relative) / np.mean(1.0 / relative)
        return sigmas, scale.astype(np.float32)

    # ------------------------------------------------------------------ decode
    def decode_keypoints(
        self, heatmaps: ArrayLike, config: HeatmapDecodeConfig | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Keypoints and scores of heatmaps (not modified).

        Args:
            heatmaps: (N, K, h, w) or (K, h, w) (N = 1), NumPy array or torch tensor.
            config: decoding parameters; default ``self.decode_config``.

        Returns:
            keypoints (N, K, 2) float64 x, y in heatmap cells, and scores (N, K) float32 (the
            maximum of each map).
        """
        cfg = self._config(config)
        maps = self._check_maps(heatmaps)
        x, y, scores = argmax_2d(maps)
        if cfg.refine == "dark":
            dx, dy = _refine_dark(maps, x, y, cfg.blur_kernel, reach_in_output(self))
        elif cfg.refine == "quarter":  # on the 3 x 3 windows it reads, cells beyond the map missing
            win, valid = _windows(maps, x, y, 1)
            centre = np.ones(x.shape, np.int64)
            dx, dy = refine_quarter(np.where(valid, win, -np.inf), centre, centre)
        else:
            dx = dy = np.zeros(x.shape)
        keypoints = np.stack([x + dx, y + dy], axis=-1).astype(np.float64)
        return keypoints, scores.astype(np.float32)

    def decode(
        self,
        heatmaps: ArrayLike,
        *,
        affine: np.ndarray | None = None,
        config: HeatmapDecodeConfig | None = None,
    ) -> list[Pose]:
        """N poses of heatmaps (N, K, h, w) or (K, h, w) (not modified).

        Args:
            heatmaps: the network output, NumPy array or torch tensor.
            affine: (2, 3) or (N, 2, 3) heatmap cells -> the frame wanted (e.g. image pixels, one
                matrix per crop); default ``output_to_input_matrix()`` (crop input pixels).
            config: decoding parameters; default ``self.decode_config``.

        Returns:
            One pose per crop: keypoints (K, 3) x, y (``affine`` frame) and score.
        """
        keypoints, scores = self.decode_keypoints(heatmaps, config)
        if affine is None:
            affine = self.output_to_input_matrix()
        return poses_from_keypoints(keypoints, scores, affine)

    def perfect_outputs(self, targets: HeatmapTargets) -> tuple[np.ndarray]:
        """What a perfect network outputs for ``targets``: ``(heatmaps,)``."""
        return (targets.heatmaps,)

    # ------------------------------------------------------------------ flip
    def unflip(self, heatmaps: ArrayLike) -> tuple[np.ndarray]:
        """Heatmaps (N, K, h, w) of mirrored crops -> heatmaps of the crops themselves: columns
        reversed, keypoints permuted by ``schema.flip_index`` (exact in the stride and udp
        frames); in the scale frame the reversed columns are then resampled ``1 - 1/s`` cells
        back (module docstring)."""
        maps = flip_outputs(self._check_maps(heatmaps), self.schema.flip_index, reverse_axis=-1)
        if self.frame == "scale":
            # the reversed maps R peak at x - (1 - 1/s): U(x) = R(x - a), linear in between
            a = 1.0 - 1.0 / self.stride
            before = np.concatenate([maps[..., :1], maps[..., :-1]], axis=-1)
            maps = ((1.0 - a) * maps + a * before).astype(np.float32)
        return (maps,)

    # ------------------------------------------------------------------ checks
    def _config(self, config: HeatmapDecodeConfig | None) -> HeatmapDecodeConfig:
        if config is None:
            return self.decode_config
        if not isinstance(config, HeatmapDecodeConfig):
            raise ConfigError(
                f"{type(self).__name__}: config must be a HeatmapDecodeConfig, got "
                f"{type(config).__name__}"
            )
        return config

    def _check_maps(self, heatmaps: ArrayLike) -> np.ndarray:
        """(N, K, h, w) float32, C-contiguous (the input itself when it is one: decoding and
        ``unflip`` only read it); SchemaError for another K, ConfigError for another size."""
        maps = to_numpy(heatmaps, "heatmaps", copy=False)
        if maps.ndim == 3:
            maps = maps[None]
        k, (w, h) = self.schema.num_keypoints, self.heatmap_size
        if maps.ndim != 4 or maps.shape[1] != k:
            raise SchemaError(
                f"heatmaps: expected (N, K, h, w) with K = {k} for schema '{self.schema.name}', "
                f"got {tuple(np.shape(heatmaps))}"
            )
        if maps.shape[2:] != (h, w):
            raise ConfigError(
                f"heatmaps: expected (h, w) = {(h, w)} (heatmap_size {self.heatmap_size}), got "
                f"{tuple(np.shape(heatmaps))}"
            )
        return maps


_TAYLOR_RADIUS = 2
"""Cells around the argmax that ``refine.refine_dark`` reads: its 3 x 3 Taylor step and, at the
border or where the Hessian is not negative definite, its per-axis fits over +-2 cells."""


def _windows(
    maps: np.ndarray, x: np.ndarray, y: np.ndarray, radius: int
) -> tuple[np.ndarray, np.ndarray]:
    """(N, K, S, S) windows, S = 2 radius + 1, of (N, K, h, w) maps centred on integer (x, y)
    (N, K), and the (N, K, S, S) bool mask of their cells that lie inside the map (zero in the
    windows beyond it). One gather of the cells clipped into the map, by flat index: faster than
    copying the windows from a strided view and redoing those that leave the map, which on
    crop-sized maps are most of them (about 0.25 against 0.33-0.44 ms for 16 x 17 maps of 24 x 32
    cells and 11 x 11 windows)."""
    h, w = maps.shape[-2:]
    flat = np.ascontiguousarray(maps).reshape(-1)
    x, y = x.reshape(-1), y.reshape(-1)
    offsets = np.arange(-radius, radius + 1)
    rows, cols = y[:, None] + offsets, x[:, None] + offsets  # (M, S)
    starts = np.arange(len(x))[:, None] * (h * w) + np.clip(rows, 0, h - 1) * w
    win = np.take(flat, starts[:, :, None] + np.clip(cols, 0, w - 1)[:, None, :])
    inside = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]
    win *= inside  # finite maps: zero beyond the map
    shape = maps.shape[:-2] + (2 * radius + 1,) * 2
    return win.reshape(shape), inside.reshape(shape)


def _refine_dark(
    maps: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    kernel: int,
    beyond: tuple[float, float] = (0.5, 0.5),
) -> tuple[np.ndarray, np.ndarray]:
    """DARK offsets (dx, dy) (N, K) of the maxima at (x, y) of (N, K, h, w) maps: ``refine_dark``
    on the log of the maps, modulated (``refine.modulate``) when ``kernel`` > 1; maxima on the
    border extrapolated up to ``beyond`` = (x, y) cells past it.

    Both run on the window of the cells they read around each maximum (``_TAYLOR_RADIUS`` for
    the Taylor step, plus ``kernel // 2`` for the blur), the cells beyond the map being zero for
    the blur (as its constant border) and missing for the Taylor step: the same numbers as on
    whole maps at a tenth of the cost (the rescaling to the maximum only adds a constant to the
    log). A map whose maximum is within ``kernel // 2 + 1`` cells of the border is refined
    unmodulated: there the blur of the 3 x 3 neighbourhood reaches the zero border, which is not
    the map's continuation and pulls the maximum inward, by up to a cell on exact targets (DARK's
    and MMPose's code modulate these maps too).
    """
    r = kernel // 2
    win, valid = _windows(maps, x, y, _TAYLOR_RADIUS + r)  # zero beyond the map
    core = slice(r, r + 2 * _TAYLOR_RADIUS + 1)
    centre = win[..., core, core]
    if r:
        h, w = maps.shape[-2:]
        inner = (x > r) & (x < w - 1 - r) & (y > r) & (y < h - 1 - r)
        band = _blur_band(kernel)  # the blur's core cells: rows, then columns, of all windows
        s, size = band.shape
        by_rows = (win.reshape(-1, size) @ band.T).reshape(*win.shape[:-1], s).swapaxes(-1, -2)
        blurred = (by_rows.reshape(-1, size) @ band.T).reshape(win.shape[:-2] + (s, s))
        blurred = blurred.swapaxes(-1, -2)  # two matrix products over all windows at once
        centre = blurred if inner.all() else np.where(inner[..., None, None], blurred, centre)
    log_maps = safe_log(centre, TAIL_LOG_FLOOR)
    inside = valid[..., core, core]
    if not inside.all():
        log_maps = np.where(inside, log_maps, -np.inf)
    return refine_dark_window(log_maps, beyond)


@functools.lru_cache(maxsize=8)
def _blur_band(kernel: int) -> np.ndarray:
    """(S, S + kernel - 1) float32, S = 2 ``_TAYLOR_RADIUS`` + 1: row i holds OpenCV's Gaussian
    of ``kernel`` taps (``refine.modulate``'s) at columns i .. i + kernel - 1, so that ``band @
    window @ band.T`` is the blur of a window at its S x S core cells (``modulate`` up to its
    rescaling, a constant factor that the log's derivatives do not see)."""
    taps = cv2.getGaussianKernel(kernel, 0).astype(np.float32)[:, 0]
    size = 2 * _TAYLOR_RADIUS + 1
    band = np.zeros((size, size + kernel - 1), np.float32)
    for i in range(size):
        band[i, i : i + kernel] = taps
    band.setflags(write=False)
    return band


@dataclass(frozen=True)
class MsraHeatmap(HeatmapCodec):
    """MSRA (Xiao et al., 2018, "Simple Baselines"): integer centre, stride frame, quarter step
    (which keeps a keypoint beyond the crop on the border cell: still nearer than the corner that
    an all-zero map of ``reach=0`` decodes to)."""

    centre: str = "integer"
    frame: str = "stride"
    decode_config: HeatmapDecodeConfig = HeatmapDecodeConfig(refine="quarter")

    name: ClassVar[str] = "msra"


@dataclass(frozen=True)
class DarkHeatmap(HeatmapCodec):
    """DARK (Zhang et al., 2020): float centre, stride frame, modulated Taylor refinement."""

    centre: str = "float"
    frame: str = "stride"
    decode_config: HeatmapDecodeConfig = HeatmapDecodeConfig(refine="dark")

    name: ClassVar[str] = "dark"


@dataclass(frozen=True)
class UdpHeatmap(HeatmapCodec):
    """UDP (Huang et al., 2020): float centre, udp frame (corner pixels aligned), DARK refinement."""

    centre: str = "float"
    frame: str = "udp"
    decode_config: HeatmapDecodeConfig = HeatmapDecodeConfig(refine="dark")

    name: ClassVar[str] = "udp"


_BY_NAME: dict[str, type[HeatmapCodec]] = {
    c.name: c for c in (HeatmapCodec, MsraHeatmap, DarkHeatmap, UdpHeatmap)
}
"""The heatmap codecs by record name (``from_dict``); ``codecs.CODECS`` lists them for posekit."""
