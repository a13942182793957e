"""SimccCodec: top-down targets as two 1-D classifications per keypoint (SimCC), and their decoding.

SimCC (Li et al., 2022, "SimCC: a Simple Coordinate Classification Perspective for Human Pose
Estimation") splits each coordinate of a keypoint into ``split_ratio`` bins per input pixel and
classifies x and y separately: the head returns, per keypoint, a vector over the x bins and one over
the y bins instead of a 2-D heatmap.

Dimension glossary: N instances (one per crop), K keypoints (schema), (W, H) crop input size in
pixels, Wx = round(W * split_ratio) x bins and Wy = round(H * split_ratio) y bins (Python's
``round``: half to even, as NumPy's ``around`` in MMPose), kx = Wx / W and ky = Wy / H bins per
input pixel (exactly ``split_ratio`` when W * split_ratio is an integer).

Frame. Pixel centers are at integer coordinates and the crop covers [-0.5, W - 0.5] x
[-0.5, H - 0.5] (``posekit.geometry``). Bin b of x covers an input span of width 1 / kx, the
crop's width split evenly, centered at ``x_in = (b + 0.5) / kx - 0.5``; so the output frame (x in x
bins, y in y bins) is the affine (``SimccCodec.input_to_output_matrix``)::

    x_bin = (x_in + 0.5) * kx - 0.5,     y_bin = (y_in + 0.5) * ky - 0.5

A mirrored crop (``x_in -> W - 1 - x_in``) is ``x_bin -> Wx - 1 - x_bin``: exactly the reversal of
the x bins, so ``unflip`` has no bias. (MMPose puts bin b at ``x_in = b / split_ratio``, which is
a quarter pixel off this frame at split 2 and not mirror-symmetric.) There is no spatial output
grid: ``stride`` is 1 and ``output_size`` gives the bin counts (Wx, Wy).

Encoded (``encode``):

- simcc_x (N, K, Wx) float32: ``exp(-(b - x_bin)^2 / (2 sigma_x^2))`` over the x bins b (peak 1
  at a bin center), or divided by its sum over b (a distribution) with ``normalize``;
- simcc_y (N, K, Wy) float32: the same along y with ``sigma_y``;
- keypoint_weights (N, K) float32: ``topdown.keypoint_weights`` (0 for unlabelled keypoints and
  those beyond the crop's ``reach``, whose labels are all zero). A keypoint outside the crop but
  within its reach has the tail of its Gaussian in the bins (``codecs.topdown``, "Reach").

Decoding (``decode_keypoints``): argmax per axis, refined below a bin by a log-parabola through the
maximum and its neighbours (``refine.refine_1d``, exact on Gaussian labels; a maximum in the first
or last bin extrapolated outward up to the reach), optionally on distributions smoothed first
(``refine.modulate``); see :class:`SimccDecodeConfig`.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from posekit.codecs.base import ArrayLike, OutputLayout, OutputSpec, Targets, check_params
from posekit.codecs.refine import argmax_1d, modulate, refine_1d
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

__all__ = ["SimccCodec", "SimccDecodeConfig", "SimccTargets"]


@dataclass(frozen=True)
class SimccTargets(Targets):
    """Training targets of N crops (see the "Encoded" section of the module docstring).

    Attributes:
        simcc_x: (N, K, Wx) float32 labels over the x bins.
        simcc_y: (N, K, Wy) float32 labels over the y bins.
        keypoint_weights: (N, K) float32 loss weights (0 = ignore).
    """

    simcc_x: np.ndarray
    simcc_y: np.ndarray
    keypoint_weights: np.ndarray


@dataclass(frozen=True)
class SimccDecodeConfig:
    """Decoding parameters.

    Attributes:
        refine: sub-bin refinement of each argmax by a log-parabola fit (``refine.refine_1d``),
            exact on Gaussian labels. It needs non-negative, Gaussian-like vectors (labels, or the
            ``softmax(beta * logits)`` that ``SimccKLLoss`` trains); on values <= 0 it falls back
            to the argmax.
        blur_kernel: odd size of the Gaussian blur applied (``refine.modulate``, rescaled to each
            vector's maximum) before the refinement, for noisy network outputs; 1 = none. The
            blur's zero border pulls maxima within about ``blur_kernel / 2`` bins of either end
            inwards, by up to 1 bin (measured: 0.5 px at split 2 within 1-3 px of the crop's
            edge, < 4e-6 px further in, kernels 3-11).
    """

    refine: bool = True
    blur_kernel: int = 1

    def __post_init__(self) -> None:
        bad = {}
        if not isinstance(self.refine, bool):
            bad["refine"] = self.refine
        k = self.blur_kernel
        if isinstance(k, bool) or not isinstance(k, int) or k < 1 or k % 2 == 0:
            bad["blur_kernel"] = k
        if bad:
            raise ConfigError(
                f"SimccDecodeConfig: invalid values {bad}; expected refine a bool and blur_kernel "
                f"an odd positive integer"
            )


@dataclass(frozen=True)
class SimccCodec:
    """Encode crop keypoints into SimCC labels and decode 1-D distributions into keypoints.

    A top-down codec (``codecs.topdown.TopDownCodec``, name ``"simcc"``): the network returns
    ``(simcc_x (N, K, Wx), simcc_y (N, K, Wy))`` (``layout``).

    Args:
        schema: the keypoint schema (K keypoints, ``flip_index`` for ``unflip``).
        input_size: (W, H) of the crops, input pixels.
        split_ratio: bins per input pixel (SimCC: 2.0).
        sigma: Gaussian label std in bins, (x, y); one number means both. Default (4.9, 5.66):
            MMPose's SimCC / RTMPose value for 256 x 192 crops at split 2.
        normalize: labels divided by their sum over the bins (each a distribution, peak about
            ``1 / (sigma * sqrt(2 pi))``) when True; else peak 1 at a bin center.
        decode_config: default decoding parameters (``decode(config=...)`` overrides them).
        reach: how far beyond the crop keypoints are still encoded and decoded, in crop widths
            and heights (``codecs.topdown``, "Reach"); 0 = only inside the crop.
    """

    schema: KeypointSchema
    input_size: tuple[int, int] = (192, 256)
    split_ratio: float = 2.0
    sigma: tuple[float, float] = (4.9, 5.66)
    normalize: bool = False
    decode_config: SimccDecodeConfig = field(default_factory=SimccDecodeConfig)
    reach: float = DEFAULT_REACH

    name: ClassVar[str] = "simcc"
    family: ClassVar[str] = "topdown"
    stride: ClassVar[int] = 1
    """No spatial output grid (outputs are 1-D over bins); ``split_ratio`` sets the resolution."""

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "input_size", check_input_size(self.input_size, "SimccCodec"))
        ratio = self.split_ratio
        if not _is_number(ratio) or not np.isfinite(ratio) or ratio <= 0:
            raise ConfigError(f"SimccCodec: split_ratio must be a number > 0, got {ratio!r}")
        set_(self, "split_ratio", float(ratio))
        w, h = self.input_size
        if round(w * ratio) < 1 or round(h * ratio) < 1:
            raise ConfigError(
                f"SimccCodec: split_ratio {ratio} gives no bin for input_size (W, H) = {(w, h)}"
            )
        sigma = (self.sigma, self.sigma) if _is_number(self.sigma) else self.sigma
        try:
            sx, sy = (float(s) for s in sigma)
        except (TypeError, ValueError):
            raise ConfigError(
                f"SimccCodec: sigma must be a number or (sigma_x, sigma_y), got {self.sigma!r}"
            ) from None
        if not (np.isfinite([sx, sy]).all() and sx > 0 and sy > 0):
            raise ConfigError(f"SimccCodec: sigma must be > 0 (bins), got {self.sigma!r}")
        set_(self, "sigma", (sx, sy))
        set_(self, "reach", check_reach(self.reach, "SimccCodec"))
        if not isinstance(self.normalize, bool):
            raise ConfigError(f"SimccCodec: normalize must be a bool, got {self.normalize!r}")
        if not isinstance(self.decode_config, SimccDecodeConfig):
            raise ConfigError(
                f"SimccCodec: decode_config must be a SimccDecodeConfig, got "
                f"{type(self.decode_config).__name__}"
            )

    # ------------------------------------------------------------------ frames
    def _bins_per_pixel(self) -> tuple[float, float]:
        """(kx, ky) = (Wx / W, Wy / H)."""
        (wx, wy), (w, h) = self.output_size(self.input_size), self.input_size
        return wx / w, wy / h

    def input_to_output_matrix(self) -> np.ndarray:
        """(2, 3) float64 affine: crop input pixels -> bins (see the module docstring)."""
        kx, ky = self._bins_per_pixel()
        return np.array([[kx, 0.0, 0.5 * kx - 0.5], [0.0, ky, 0.5 * ky - 0.5]])

    def output_to_input_matrix(self) -> np.ndarray:
        """(2, 3) float64 affine: bins -> crop input pixels (the exact inverse)."""
        kx, ky = self._bins_per_pixel()
        return np.array([[1.0 / kx, 0.0, 0.5 / kx - 0.5], [0.0, 1.0 / ky, 0.5 / ky - 0.5]])

    def output_size(self, input_size: tuple[int, int]) -> tuple[int, int]:
        """(Wx, Wy) bins for crops of size (W, H): ``round(W * split_ratio), round(H * ...)``."""
        w, h = check_input_size(input_size, "SimccCodec.output_size")
        return round(w * self.split_ratio), round(h * self.split_ratio)

    @property
    def layout(self) -> OutputLayout:
        """``simcc_x`` (K vectors of Wx bins), ``simcc_y`` (K vectors of Wy bins)."""
        k = self.schema.num_keypoints
        wx, wy = self.output_size(self.input_size)
        return OutputLayout(
            (
                OutputSpec("simcc_x", k, "SimCC x", "K", shape=(wx,)),
                OutputSpec("simcc_y", k, "SimCC y", "K", shape=(wy,)),
            )
        )

    @property
    def supports_flip(self) -> bool:
        """True: a mirrored crop is the reversal of the x bins (and ``schema.flip_index``)."""
        return True

    def to_dict(self) -> dict[str, Any]:
        """Codec parameters for a checkpoint record (the schema is stored separately)."""
        return {
            "name": self.name,
            "input_size": list(self.input_size),
            "split_ratio": self.split_ratio,
            "sigma": list(self.sigma),
            "normalize": self.normalize,
            "reach": self.reach,
        }

    @classmethod
    def from_dict(cls, schema: KeypointSchema, spec: Mapping[str, Any]) -> SimccCodec:
        """Inverse of :meth:`to_dict`; missing parameters take their defaults."""
        params = dict(spec)
        if params.pop("name", None) != cls.name:
            raise ConfigError(f"codec record is not a SimCC codec: {dict(spec)!r}")
        check_params(cls.name, cls, params, fixed=("schema", "decode_config"))
        return cls(schema, **params)

    # ------------------------------------------------------------------ encode
    def encode(
        self,
        keypoints: np.ndarray,
        input_size: tuple[int, int] | None = None,
        ignore_mask: np.ndarray | None = None,
    ) -> SimccTargets:
        """SimCC labels of N crops.

        Args:
            keypoints: (N, K, 3) (or (K, 3) for one crop) — x, y in each crop's input pixels,
                visibility 0/1/2. NumPy array or anything ``np.array`` takes.
            input_size: (W, H) of the crops; must be the codec's ``input_size`` (default), which
                fixes the bins.
            ignore_mask: must be None: a crop's targets are those of its own instance, whose
                unlabelled keypoints already get weight 0, so there are no regions to ignore.

        Returns:
            :class:`SimccTargets` (the "Encoded" section of the module docstring).
        """
        xy, weights = encoder_inputs(self, keypoints, input_size, ignore_mask)
        gaussians = []
        for axis, bins in enumerate(self.output_size(self.input_size)):
            d = np.arange(bins, dtype=np.float64) - xy[..., axis, None]  # (N, K, bins)
            gaussians.append(np.exp(-(d**2) / (2.0 * self.sigma[axis] ** 2)).astype(np.float32))
        # a far tail (well outside the crop) has nothing to learn: weight 0
        peaks = np.minimum(gaussians[0].max(-1), gaussians[1].max(-1))
        used = (weights > 0) & (peaks >= MIN_TARGET)
        labels = []
        for g in gaussians:
            g = g * used[..., None]
            if self.normalize:
                total = g.sum(axis=-1, keepdims=True, dtype=np.float64)
                g = (g / np.where(total > 0, total, 1.0)).astype(np.float32)
            labels.append(g)
        weights = np.where(used, weights, np.float32(0.0)).astype(np.float32)
        return SimccTargets(simcc_x=labels[0], simcc_y=labels[1], keypoint_weights=weights)

    # ------------------------------------------------------------------ decode
    def decode_keypoints(
        self, simcc_x: ArrayLike, simcc_y: ArrayLike, config: SimccDecodeConfig | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Keypoints of N crops from their 1-D distributions (not modified).

        Args:
            simcc_x: (N, K, Wx) x distributions (labels, network outputs or their softmax).
                NumPy array or torch tensor.
            simcc_y: (N, K, Wy) y distributions.
            config: decoding parameters; default ``self.decode_config``.

        Returns:
            keypoints (N, K, 2) float64 — x in x bins, y in y bins (the output frame);
            scores (N, K) float32 — the mean of the x and y maxima: 1 for a perfect peak-1 label,
            about ``1 / (sigma * sqrt(2 pi))`` for ``normalize`` labels (~0.076 at the default
            sigma), 0 for the all-zero labels of a weight-0 keypoint.
        """
        cfg = _check_config(config, self.decode_config)
        vectors = self._check_outputs(simcc_x, simcc_y)
        coords, maxima = [], []
        for vec, beyond in zip(vectors, reach_in_output(self), strict=True):
            index, value = argmax_1d(vec)
            coord = index.astype(np.float64)
            if cfg.refine:
                smooth = vec
                if cfg.blur_kernel > 1:
                    smooth = modulate(vec, cfg.blur_kernel, dims=1)
                coord = coord + refine_1d(smooth, index, beyond)
            coords.append(coord)
            maxima.append(value)
        scores = (0.5 * (maxima[0] + maxima[1])).astype(np.float32)
        return np.stack(coords, axis=-1), scores

    def decode(
        self,
        simcc_x: ArrayLike,
        simcc_y: ArrayLike,
        *,
        affine: np.ndarray | None = None,
        config: SimccDecodeConfig | None = None,
    ) -> list[Pose]:
        """N poses from the outputs of N crops (not modified).

        Args:
            simcc_x, simcc_y: as :meth:`decode_keypoints`.
            affine: (2, 3) or (N, 2, 3) matrix from bins to the frame wanted (e.g. bins -> image
                pixels, one per crop); default ``output_to_input_matrix()``: crop input pixels.
            config: decoding parameters; default ``self.decode_config``.

        Returns:
            One pose per crop: keypoints (K, 3) x, y in the ``affine`` frame and score (see
            :meth:`decode_keypoints`).
        """
        kpts, scores = self.decode_keypoints(simcc_x, simcc_y, config)
        return poses_from_keypoints(
            kpts, scores, self.output_to_input_matrix() if affine is None else affine
        )

    def perfect_outputs(self, targets: SimccTargets) -> tuple[np.ndarray, np.ndarray]:
        """What a perfect network outputs for ``targets``: ``(simcc_x, simcc_y)``."""
        return targets.simcc_x, targets.simcc_y

    def unflip(self, simcc_x: ArrayLike, simcc_y: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """Outputs of horizontally mirrored crops -> outputs of the crops themselves: x bins
        reversed and keypoints permuted by ``schema.flip_index``; y keypoints permuted only.
        Exact (no shift): see the module docstring. New arrays."""
        x, y = self._check_outputs(simcc_x, simcc_y)
        flip = self.schema.flip_index
        return flip_outputs(x, flip, reverse_axis=2), flip_outputs(y, flip, reverse_axis=None)

    def _check_outputs(self, simcc_x: ArrayLike, simcc_y: ArrayLike) -> tuple[np.ndarray, ...]:
        """Float32 copies of (N, K, Wx), (N, K, Wy) outputs; SchemaError for another K,
        ConfigError for other bin counts, N or non-finite values."""
        k, n = self.schema.num_keypoints, self.schema.name
        out = []
        for name, array, bins in zip(
            ("simcc_x", "simcc_y"),
            (simcc_x, simcc_y),
            self.output_size(self.input_size),
            strict=True,
        ):
            a = to_numpy(array, name)
            if a.ndim != 3 or a.shape[1] != k:
                raise SchemaError(
                    f"{name}: expected (N, K, {bins}) = (N, {k}, {bins}) for schema '{n}', "
                    f"got {a.shape}"
                )
            if a.shape[2] != bins:
                raise ConfigError(
                    f"{name}: expected {bins} bins (input_size {self.input_size} x split_ratio "
                    f"{self.split_ratio}), got shape {a.shape}"
                )
            out.append(a)
        if out[0].shape[0] != out[1].shape[0]:
            raise ConfigError(
                f"simcc_x and simcc_y must hold the same N crops, got {out[0].shape[0]} and "
                f"{out[1].shape[0]}"
            )
        return tuple(out)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_config(config: Any, default: SimccDecodeConfig) -> SimccDecodeConfig:
    if config is None:
        return default
    if not isinstance(config, SimccDecodeConfig):
        raise ConfigError(f"config: expected a SimccDecodeConfig, got {type(config).__name__}")
    return config
