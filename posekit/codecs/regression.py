"""RegressionCodec and RleCodec: top-down targets as keypoint coordinates regressed directly, and
their decoding (RLE adds a per-coordinate scale that gives the keypoint score).

Dimension glossary: N instances (one per crop), K keypoints (schema), (W, H) crop input size in
pixels.

Frame. Pixel centers are at integer coordinates and the crop covers [-0.5, W - 0.5] x
[-0.5, H - 0.5] (``posekit.geometry``). The output frame is the crop normalized to [0, 1]^2
(``input_to_output_matrix``)::

    u = (x_in + 0.5) / W,     v = (y_in + 0.5) / H

A mirrored crop (``x_in -> W - 1 - x_in``) is ``u -> 1 - u``, exactly, so ``unflip`` has no bias.
There is no spatial output grid: ``stride`` is 1 and ``output_size`` is (1, 1).

Encoded (``encode``, both codecs):

- coords (N, K, 2) float32: (u, v) of each keypoint, 0 where its weight is 0;
- keypoint_weights (N, K) float32: ``topdown.keypoint_weights`` (0 for unlabelled keypoints and
  those beyond the crop's ``reach``: ``codecs.topdown``, "Reach"; within it, (u, v) may lie
  outside [0, 1]).

``RegressionCodec`` (name ``"regression"``, DeepPose-style): the head returns ``coords`` (N, K, 2);
decoding takes them as they are, with score 1 for every keypoint (plain regression has no
confidence).

``RleCodec`` (name ``"rle"``; Li et al., 2021, "Human Pose Regression with Residual Log-likelihood
Estimation", in its flow-free Laplace form): the head returns ``coords`` (N, K, 2), the mean mu,
and ``sigmas`` (N, K, 2), the positive Laplace scale of each coordinate in normalized units, trained
with ``models.losses.RleLoss``; the keypoint score is ``1 - mean(sigma_u, sigma_v)`` clipped to
[0, 1] (MMPose's convention).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import numpy as np

from posekit.codecs.base import ArrayLike, OutputLayout, OutputSpec, Targets, check_params
from posekit.codecs.topdown import (
    DEFAULT_REACH,
    check_input_size,
    check_reach,
    encoder_inputs,
    flip_outputs,
    poses_from_keypoints,
    to_numpy,
)
from posekit.errors import ConfigError, SchemaError
from posekit.schema import KeypointSchema
from posekit.structures import Pose

__all__ = ["RegressionCodec", "RegressionTargets", "RleCodec"]


@dataclass(frozen=True)
class RegressionTargets(Targets):
    """Training targets of N crops (see the "Encoded" section of the module docstring).

    Attributes:
        coords: (N, K, 2) float32 normalized (u, v) in [0, 1]; 0 where the weight is 0.
        keypoint_weights: (N, K) float32 loss weights (0 = ignore).
    """

    coords: np.ndarray
    keypoint_weights: np.ndarray


_C = TypeVar("_C", bound="_CoordinateCodec")


@dataclass(frozen=True)
class _CoordinateCodec:
    """What both coordinate codecs share: fields, frames, encoding, records, output checks.

    Args:
        schema: the keypoint schema (K keypoints, ``flip_index`` for ``unflip``).
        input_size: (W, H) of the crops, input pixels.
        reach: how far beyond the crop keypoints are still encoded, in crop widths and heights
            (``codecs.topdown``, "Reach"); 0 = only inside the crop.
    """

    schema: KeypointSchema
    input_size: tuple[int, int] = (192, 256)
    reach: float = DEFAULT_REACH

    name: ClassVar[str]
    family: ClassVar[str] = "topdown"
    stride: ClassVar[int] = 1
    """No spatial output grid: one (u, v) per keypoint."""

    def __post_init__(self) -> None:
        size = check_input_size(self.input_size, type(self).__name__)
        object.__setattr__(self, "input_size", size)
        object.__setattr__(self, "reach", check_reach(self.reach, type(self).__name__))

    # ------------------------------------------------------------------ frames
    def input_to_output_matrix(self) -> np.ndarray:
        """(2, 3) float64 affine: crop input pixels -> normalized (u, v) (module docstring)."""
        w, h = self.input_size
        return np.array([[1.0 / w, 0.0, 0.5 / w], [0.0, 1.0 / h, 0.5 / h]])

    def output_to_input_matrix(self) -> np.ndarray:
        """(2, 3) float64 affine: normalized (u, v) -> crop input pixels (the exact inverse)."""
        w, h = self.input_size
        return np.array([[float(w), 0.0, -0.5], [0.0, float(h), -0.5]])

    def output_size(self, input_size: tuple[int, int]) -> tuple[int, int]:
        """(1, 1) for any valid (W, H): the outputs have no spatial grid (``layout`` gives their
        shape, (2,) per keypoint)."""
        check_input_size(input_size, f"{type(self).__name__}.output_size")
        return 1, 1

    @property
    def supports_flip(self) -> bool:
        """True: a mirrored crop is ``u -> 1 - u`` (and ``schema.flip_index``)."""
        return True

    def _spec(self, name: str, label: str) -> OutputSpec:
        return OutputSpec(name, self.schema.num_keypoints, label, "K", shape=(2,))

    def to_dict(self) -> dict[str, Any]:
        """Codec parameters for a checkpoint record (the schema is stored separately)."""
        return {"name": self.name, "input_size": list(self.input_size), "reach": self.reach}

    @classmethod
    def from_dict(cls: type[_C], schema: KeypointSchema, spec: Mapping[str, Any]) -> _C:
        """Inverse of :meth:`to_dict`; missing parameters take their defaults."""
        params = dict(spec)
        if params.pop("name", None) != cls.name:
            raise ConfigError(f"codec record is not a {cls.__name__}: {dict(spec)!r}")
        check_params(cls.name, cls, params, fixed=("schema",))
        return cls(schema, **params)

    # ------------------------------------------------------------------ encode
    def encode(
        self,
        keypoints: np.ndarray,
        input_size: tuple[int, int] | None = None,
        ignore_mask: np.ndarray | None = None,
    ) -> RegressionTargets:
        """Normalized coordinate targets of N crops.

        Args:
            keypoints: (N, K, 3) (or (K, 3) for one crop) — x, y in each crop's input pixels,
                visibility 0/1/2.
            input_size: (W, H) of the crops; must be the codec's ``input_size`` (default), which
                fixes the normalization.
            ignore_mask: must be None: a crop's targets are those of its own instance, whose
                unlabelled keypoints already get weight 0, so there are no regions to ignore.

        Returns:
            :class:`RegressionTargets` (the "Encoded" section of the module docstring).
        """
        uv, weights = encoder_inputs(self, keypoints, input_size, ignore_mask)
        return RegressionTargets(coords=uv.astype(np.float32), keypoint_weights=weights)

    # ------------------------------------------------------------------ decode helpers
    def _check(self, array: ArrayLike, name: str, n: int | None = None) -> np.ndarray:
        """Float32 copy of an (N, K, 2) output; SchemaError for another K, ConfigError for
        another shape or N, or non-finite values."""
        a = to_numpy(array, name)
        k = self.schema.num_keypoints
        if a.ndim != 3 or a.shape[2] != 2:
            raise ConfigError(f"{name}: expected (N, {k}, 2) (u, v per keypoint), got {a.shape}")
        if a.shape[1] != k:
            raise SchemaError(
                f"{name}: expected (N, {k}, 2) for schema '{self.schema.name}', got {a.shape}"
            )
        if n is not None and len(a) != n:
            raise ConfigError(f"{name}: expected the same N = {n} crops as coords, got {len(a)}")
        return a

    def _unflip_coords(self, coords: np.ndarray) -> np.ndarray:
        out = flip_outputs(coords, self.schema.flip_index, reverse_axis=None)
        out[..., 0] = 1.0 - out[..., 0]
        return out

    def _poses(self, kpts: np.ndarray, scores: np.ndarray, affine: Any, config: Any) -> list[Pose]:
        if config is not None:
            raise ConfigError(
                f"{type(self).__name__}.decode: config must be None (no decoding parameters), "
                f"got {config!r}"
            )
        return poses_from_keypoints(
            kpts, scores, self.output_to_input_matrix() if affine is None else affine
        )


@dataclass(frozen=True)
class RegressionCodec(_CoordinateCodec):
    """Encode crop keypoints as normalized coordinates; decode regressed coordinates.

    A top-down codec (``codecs.topdown.TopDownCodec``, name ``"regression"``): the network returns
    ``(coords (N, K, 2),)`` (``layout``). See the module docstring for the frame.

    Args:
        schema: the keypoint schema.
        input_size: (W, H) of the crops, input pixels.
        reach: see ``_CoordinateCodec``.
    """

    name: ClassVar[str] = "regression"

    @property
    def layout(self) -> OutputLayout:
        """``coords``: K keypoints of shape (2,), normalized (u, v)."""
        return OutputLayout((self._spec("coords", "coordinate"),))

    def decode_keypoints(
        self, coords: ArrayLike, config: None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Keypoints (N, K, 2) float64, the ``coords`` (N, K, 2) as given (normalized (u, v), the
        output frame), and scores (N, K) float32, 1 for every keypoint: plain regression gives no
        confidence. The input is not modified; ``config`` is unused (no parameters)."""
        kpts = self._check(coords, "coords").astype(np.float64)
        return kpts, np.ones(kpts.shape[:2], np.float32)

    def decode(
        self, coords: ArrayLike, *, affine: np.ndarray | None = None, config: None = None
    ) -> list[Pose]:
        """N poses from the ``coords`` (N, K, 2) of N crops (not modified); ``affine``: (2, 3) or
        (N, 2, 3) from (u, v) to the frame wanted, default ``output_to_input_matrix()`` (crop
        input pixels); ``config`` must be None. Keypoint scores are 1."""
        kpts, scores = self.decode_keypoints(coords)
        return self._poses(kpts, scores, affine, config)

    def perfect_outputs(self, targets: RegressionTargets) -> tuple[np.ndarray]:
        """What a perfect network outputs for ``targets``: ``(coords,)``."""
        return (targets.coords,)

    def unflip(self, coords: ArrayLike) -> tuple[np.ndarray]:
        """``(coords,)`` of mirrored crops -> of the crops themselves: keypoints permuted by
        ``schema.flip_index`` and ``u -> 1 - u`` (exact). A 1-tuple (layout order), new array."""
        return (self._unflip_coords(self._check(coords, "coords")),)


@dataclass(frozen=True)
class RleCodec(_CoordinateCodec):
    """Encode crop keypoints as normalized coordinates; decode RLE means and scales.

    A top-down codec (``codecs.topdown.TopDownCodec``, name ``"rle"``): the network returns
    ``(coords (N, K, 2), sigmas (N, K, 2))`` (``layout``): the Laplace mean and the positive scale
    of each normalized coordinate. Targets are the same as ``RegressionCodec``'s.

    Args:
        schema: the keypoint schema.
        input_size: (W, H) of the crops, input pixels.
        reach: see ``_CoordinateCodec``.
    """

    name: ClassVar[str] = "rle"

    @property
    def layout(self) -> OutputLayout:
        """``coords`` and ``sigmas``: K keypoints of shape (2,) each, normalized units."""
        return OutputLayout((self._spec("coords", "coordinate"), self._spec("sigmas", "sigma")))

    def decode_keypoints(
        self, coords: ArrayLike, sigmas: ArrayLike, config: None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Keypoints (N, K, 2) float64: the means ``coords`` (N, K, 2) as given (normalized (u, v),
        the output frame); scores (N, K) float32: ``1 - (sigma_u + sigma_v) / 2`` clipped to
        [0, 1] (MMPose's RLE score; a scale of 1 is the whole crop). Inputs are not modified;
        ``config`` is unused (no parameters)."""
        kpts = self._check(coords, "coords").astype(np.float64)
        sig = self._check(sigmas, "sigmas", len(kpts))
        return kpts, np.clip(1.0 - sig.mean(axis=-1), 0.0, 1.0).astype(np.float32)

    def decode(
        self,
        coords: ArrayLike,
        sigmas: ArrayLike,
        *,
        affine: np.ndarray | None = None,
        config: None = None,
    ) -> list[Pose]:
        """N poses from the ``coords`` and ``sigmas`` (N, K, 2) of N crops (not modified);
        ``affine``: (2, 3) or (N, 2, 3) from (u, v) to the frame wanted, default
        ``output_to_input_matrix()`` (crop input pixels); ``config`` must be None."""
        kpts, scores = self.decode_keypoints(coords, sigmas)
        return self._poses(kpts, scores, affine, config)

    def perfect_outputs(self, targets: RegressionTargets) -> tuple[np.ndarray, np.ndarray]:
        """What a perfect network outputs for ``targets``: the coordinates as means, and scales
        of 0 (certain; scores 1)."""
        return targets.coords, np.zeros_like(targets.coords)

    def unflip(self, coords: ArrayLike, sigmas: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """Outputs of mirrored crops -> of the crops themselves: coords as
        ``RegressionCodec.unflip``; sigmas permuted by ``schema.flip_index`` only (a scale does
        not change sign). New arrays."""
        c = self._check(coords, "coords")
        s = self._check(sigmas, "sigmas", len(c))
        return self._unflip_coords(c), flip_outputs(s, self.schema.flip_index, reverse_axis=None)
