"""PafCodec: bottom-up targets (keypoint heatmaps + part affinity fields) and their decoding into poses.

Dimension glossary: N instances, K keypoint types (schema, virtual ones included), L limbs
(``schema.limbs``, grouping order), s stride, (W, H) input size in pixels, (Wo, Ho) = (W/s, H/s)
output size.

Frames. Pixel centers are at integer coordinates in every frame (the cv2 convention of
``data.transforms``). Output cell (i, j) covers the s x s input pixels of rows ``s*i .. s*i+s-1`` and
columns ``s*j .. s*j+s-1``, whose center is input pixel ``(s*j + (s-1)/2, s*i + (s-1)/2)``. So the
one input -> output map is the 2x3 affine (``PafCodec.input_to_output_matrix``)::

    x_out = (x_in - (s - 1) / 2) / s,     y_out = (y_in - (s - 1) / 2) / s

Encoding uses it to place targets and decoding reports poses in output pixels, which
``output_to_input_matrix`` (its inverse) takes back. A horizontal flip of the input (``x -> W-1-x``)
is exactly a flip of the output arrays (``x_out -> Wo-1-x_out``) when W is a multiple of s.

Targets (``encode``):

- heatmaps (K+1, Ho, Wo): per labeled keypoint a Gaussian of std ``sigma`` input pixels evaluated at
  the cell centers, the max over instances; the last channel is the background, 1 - max over types.
- pafs (2L, Ho, Wo): channels 2j, 2j+1 hold the unit vector (x, y) from ``limbs[j].src`` to
  ``limbs[j].dst`` at the cells within ``paf_width`` output pixels of the segment (a capsule),
  averaged over the instances that overlap there; zero elsewhere.
- mask (Ho, Wo): loss weight = 1 - the fraction of the cell's input pixels that are ignored (crowd
  regions, people without keypoint labels).

Decoding (``decode``): peaks (``codecs.peaks``), then limb scores, matching and grouping
(``codecs.paf_grouping``); see :class:`PafDecodeConfig` for the knobs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from posekit.codecs import paf_grouping, paf_limbs
from posekit.codecs.base import ArrayLike, OutputLayout, OutputSpec, Targets, check_params
from posekit.codecs.peaks import add_close_peaks, find_peaks
from posekit.errors import ConfigError, SchemaError
from posekit.geometry import transform_points
from posekit.schema import KeypointSchema
from posekit.structures import Pose

logger = logging.getLogger(__name__)


def paf_layout(schema: KeypointSchema) -> OutputLayout:
    """The outputs of a PAF network for ``schema``: K+1 heatmaps (the last is the background) and
    2L PAF channels (x, y of each limb in ``schema.limbs`` order)."""
    return OutputLayout(
        (
            OutputSpec("heatmaps", schema.num_keypoints + 1, "heatmap", "K+1"),
            OutputSpec("pafs", 2 * schema.num_limbs, "PAF", "2L"),
        )
    )


@dataclass(frozen=True)
class PafTargets(Targets):
    """Training targets of one sample, in output space.

    Attributes:
        heatmaps: (K+1, Ho, Wo) float32 in [0, 1]; channel K is the background.
        pafs: (2L, Ho, Wo) float32; channels 2j, 2j+1 = x, y of limb j.
        mask: (Ho, Wo) float32 loss weight in [0, 1] (0 = ignore).
    """

    heatmaps: np.ndarray
    pafs: np.ndarray
    mask: np.ndarray


@dataclass(frozen=True)
class PafDecodeConfig:
    """Decoding parameters. Defaults: OpenPose / Lightweight OpenPose values where they exist.

    Attributes:
        peak_threshold: minimum heatmap value of a keypoint peak (OpenPose: 0.1).
        upsample: integer factor of bicubic heatmap upsampling before the peak search. 1 searches at
            output resolution with sub-pixel refinement (exact on Gaussian blobs) plus the
            ``close_peaks`` search around each peak: several times faster than 8, the classic
            choice, whose ringing adds spurious peaks and shifts them at map borders
            (benchmarks/paf_decode.py). PAFs are always sampled bilinearly at output resolution.
        refine: sub-pixel refinement of peaks by a log-parabola fit.
        close_peaks: with ``upsample`` 1, each peak's neighbourhood is also searched upsampled by
            this factor for keypoints of its type that the coarse grid merged into it (two people's
            wrists a cell apart); 1 disables (``peaks.add_close_peaks``).
        paf_samples: points sampled along each candidate limb (OpenPose: 10).
        paf_min_score: a sample counts as aligned above this dot product (OpenPose: 0.05).
        paf_min_fraction: fraction of aligned samples a candidate limb needs (OpenPose: 0.8).
        matching: how each limb's candidates are paired one-to-one: ``"optimal"`` (maximum total
            PAF score per limb) or ``"greedy"`` (OpenPose's, by descending score; it can pair
            two people's overlapping collinear limbs wrongly on a near tie).
        fragment_reach: merge two instances with no keypoint type in common when every pair of
            their keypoints is within ``reach`` times the skeleton path between them, its limbs
            measured in the union, or by their mirror limbs, or as the longest limb found (parts
            of one person with no limb between them; see ``paf_grouping``); 0 disables.
        max_peaks: keep at most this many highest peaks per keypoint type; bounds time and memory
            on noisy maps (an untrained network gives hundreds; limb pairs grow with the square).
        min_keypoints: drop instances with fewer found keypoints.
        min_score: drop instances with a lower score (mean keypoint score over all K types).
    """

    peak_threshold: float = 0.1
    upsample: int = 1
    refine: bool = True
    close_peaks: int = 4
    paf_samples: int = 10
    paf_min_score: float = 0.05
    paf_min_fraction: float = 0.8
    matching: str = "optimal"
    fragment_reach: float = 1.0
    max_peaks: int = 100
    min_keypoints: int = 1
    min_score: float = 0.0

    def __post_init__(self) -> None:
        checks = {
            "peak_threshold": 0.0 <= self.peak_threshold < 1.0,
            "upsample": isinstance(self.upsample, int) and 1 <= self.upsample <= 16,
            "close_peaks": isinstance(self.close_peaks, int) and 1 <= self.close_peaks <= 16,
            "paf_samples": isinstance(self.paf_samples, int) and self.paf_samples >= 2,
            "paf_min_score": -1.0 <= self.paf_min_score < 1.0,
            "paf_min_fraction": 0.0 <= self.paf_min_fraction <= 1.0,
            "matching": self.matching in paf_limbs.MATCHING_METHODS,
            "fragment_reach": self.fragment_reach >= 0.0,
            "max_peaks": isinstance(self.max_peaks, int) and self.max_peaks >= 1,
            "min_keypoints": isinstance(self.min_keypoints, int) and self.min_keypoints >= 1,
            "min_score": 0.0 <= self.min_score <= 1.0,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            values = {k: getattr(self, k) for k in bad}
            raise ConfigError(f"PafDecodeConfig: invalid values {values} (see the docstring)")


@dataclass(frozen=True)
class PafCodec:
    """Encode keypoints into heatmap + PAF targets and decode network maps into poses.

    The bottom-up codec (``codecs.base.Codec``, name ``"paf"``): the network returns
    ``(heatmaps, pafs)`` (``paf_layout``).

    Args:
        schema: the keypoint schema (K types, L limbs); it needs a skeleton.
        stride: output stride s (input pixels per output cell).
        sigma: Gaussian std of the heatmap targets, in input pixels (OpenPose: 7 at stride 8).
        paf_width: half-width of a limb's PAF band, in output pixels (Lightweight OpenPose: 1).
        decode_config: default decoding parameters (``decode(config=...)`` overrides them).
    """

    schema: KeypointSchema
    stride: int = 8
    sigma: float = 7.0
    paf_width: float = 1.0
    decode_config: PafDecodeConfig = field(default_factory=PafDecodeConfig)

    name: ClassVar[str] = "paf"
    family: ClassVar[str] = "bottomup"

    _limb_src: np.ndarray = field(init=False, repr=False, compare=False)
    _limb_dst: np.ndarray = field(init=False, repr=False, compare=False)
    _hops: np.ndarray = field(init=False, repr=False, compare=False)
    _limb_mirror: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.stride, int) or self.stride < 1:
            raise ConfigError(f"PafCodec: stride must be a positive integer, got {self.stride!r}")
        if not self.sigma > 0 or not self.paf_width > 0:
            raise ConfigError(
                f"PafCodec: sigma and paf_width must be > 0, got {self.sigma}, {self.paf_width}"
            )
        if self.schema.num_limbs == 0:
            raise SchemaError(
                f"schema '{self.schema.name}' has no skeleton: PAF grouping needs limbs. Give "
                f"them in a schema YAML ('skeleton: [[a, b], ...]') or learn them from labelled "
                f"data: `posekit schema --from-coco FILE.json --learn-skeleton --out FILE.yaml` "
                f"(`posekit train` does that itself for a schema without limbs)"
            )
        set_ = object.__setattr__
        set_(self, "_limb_src", np.array([limb.src for limb in self.schema.limbs], dtype=np.int64))
        set_(self, "_limb_dst", np.array([limb.dst for limb in self.schema.limbs], dtype=np.int64))
        set_(
            self,
            "_hops",
            paf_grouping.skeleton_hops(self.schema.num_keypoints, self._limb_src, self._limb_dst),
        )
        set_(
            self,
            "_limb_mirror",
            paf_grouping.limb_mirrors(self._limb_src, self._limb_dst, self.schema.flip_index),
        )

    # ------------------------------------------------------------------ frames
    def input_to_output_matrix(self) -> np.ndarray:
        """(2, 3) float64 affine: input pixels -> output pixels (see the module docstring)."""
        s = float(self.stride)
        shift = -(s - 1.0) / (2.0 * s)
        return np.array([[1.0 / s, 0.0, shift], [0.0, 1.0 / s, shift]])

    def output_to_input_matrix(self) -> np.ndarray:
        """(2, 3) float64 affine: output pixels -> input pixels (inverse of the above)."""
        s = float(self.stride)
        return np.array([[s, 0.0, (s - 1.0) / 2.0], [0.0, s, (s - 1.0) / 2.0]])

    def output_size(self, input_size: tuple[int, int]) -> tuple[int, int]:
        """(Wo, Ho) for an input size (W, H); both must be multiples of the stride."""
        w, h = (int(v) for v in input_size)
        if w <= 0 or h <= 0 or w % self.stride or h % self.stride:
            raise ConfigError(
                f"input size (W, H) = {input_size} must be positive multiples of the stride "
                f"{self.stride} (pad the input, as inference.Predictor does)"
            )
        return w // self.stride, h // self.stride

    @property
    def layout(self) -> OutputLayout:
        """``paf_layout(schema)``: heatmaps (K+1), pafs (2L)."""
        return paf_layout(self.schema)

    @property
    def num_heatmaps(self) -> int:
        """K + 1 heatmap channels (last = background)."""
        return self.layout["heatmaps"].channels

    @property
    def num_pafs(self) -> int:
        """2L PAF channels."""
        return self.layout["pafs"].channels

    @property
    def supports_flip(self) -> bool:
        """True when the skeleton is left/right symmetric (``schema.paf_flip``)."""
        return self.schema.paf_flip is not None

    def to_dict(self) -> dict[str, Any]:
        """Codec parameters for a checkpoint record (the schema is stored separately)."""
        return {
            "name": self.name,
            "stride": self.stride,
            "sigma": self.sigma,
            "paf_width": self.paf_width,
        }

    @classmethod
    def from_dict(cls, schema: KeypointSchema, spec: Mapping[str, Any]) -> PafCodec:
        """Inverse of :meth:`to_dict`; missing parameters take their defaults. Also reads the
        records of posekit 0.1 (``{"codec": "paf", ...}``)."""
        params = dict(spec)
        name = params.pop("name", None) or params.pop("codec", None)
        if name != cls.name:
            raise ConfigError(f"codec record is not a PAF codec: {dict(spec)!r}")
        check_params(cls.name, cls, params, fixed=("schema", "decode_config"))
        try:
            return cls(schema, **params)
        except TypeError as exc:
            raise ConfigError(f"codec {cls.name!r}: {exc}") from None

    # ------------------------------------------------------------------ encode
    def encode(
        self,
        keypoints: np.ndarray,
        input_size: tuple[int, int],
        ignore_mask: np.ndarray | None = None,
    ) -> PafTargets:
        """Targets for one sample.

        Args:
            keypoints: (N, K, 3) — x, y in input pixels, visibility 0/1/2 (0 = unlabeled; labeled
                keypoints outside the input still contribute their in-range tails).
            input_size: (W, H) of the network input, multiples of the stride.
            ignore_mask: optional (H, W) bool in input pixels, True where the loss is ignored.

        Returns:
            :class:`PafTargets` at (Ho, Wo) = (H/s, W/s).
        """
        wo, ho = self.output_size(input_size)
        kpts = np.asarray(keypoints, dtype=np.float64).reshape(-1, *np.shape(keypoints)[-2:])
        k = self.schema.num_keypoints
        if kpts.shape[1:] != (k, 3):
            raise SchemaError(
                f"keypoints: expected (N, {k}, 3) for schema '{self.schema.name}', got "
                f"{np.shape(keypoints)}"
            )
        labeled = kpts[..., 2] > 0
        if not np.isfinite(kpts[..., :2][labeled]).all():
            raise ConfigError("keypoints: labeled keypoints have non-finite coordinates")
        kpts_out = transform_points(kpts[..., :2], self.input_to_output_matrix())
        xs = np.arange(wo, dtype=np.float64)
        ys = np.arange(ho, dtype=np.float64)

        heatmaps = np.zeros((k + 1, ho, wo), dtype=np.float32)
        inst, kind = np.nonzero(labeled)
        if len(kind):
            order = np.argsort(kind, kind="stable")
            inst, kind = inst[order], kind[order]
            centers = kpts_out[inst, kind]
            sigma_out = self.sigma / self.stride
            gx = np.exp(-((xs[None] - centers[:, :1]) ** 2) / (2 * sigma_out**2))
            gy = np.exp(-((ys[None] - centers[:, 1:]) ** 2) / (2 * sigma_out**2))
            blobs = (gy[:, :, None] * gx[:, None, :]).astype(np.float32)  # (M, Ho, Wo)
            types, first = np.unique(kind, return_index=True)
            heatmaps[types] = np.maximum.reduceat(blobs, first, axis=0)
        heatmaps[k] = 1.0 - heatmaps[:k].max(axis=0, initial=0.0)

        pafs = np.zeros((self.num_pafs, ho, wo), dtype=np.float32)
        both = labeled[:, self._limb_src] & labeled[:, self._limb_dst]  # (N, L)
        inst, limb = np.nonzero(both)
        if len(limb):
            a = kpts_out[inst, self._limb_src[limb]]
            d = kpts_out[inst, self._limb_dst[limb]] - a
            length = np.sqrt((d**2).sum(axis=1))
            keep = length > 1e-6  # a zero-length limb has no direction
            a, d, length, limb = a[keep], d[keep], length[keep], limb[keep]
        if len(limb):
            pafs = self._paf_field(limb, a, d, length, (wo, ho))

        mask = np.ones((ho, wo), dtype=np.float32)
        if ignore_mask is not None:
            w, h = input_size
            if np.shape(ignore_mask) != (h, w):
                raise ConfigError(
                    f"ignore_mask: expected shape (H, W) = {(h, w)}, got {np.shape(ignore_mask)}"
                )
            s = self.stride
            blocks = np.asarray(ignore_mask, dtype=np.float32).reshape(ho, s, wo, s)
            mask -= blocks.mean(axis=(1, 3))
        return PafTargets(heatmaps=heatmaps, pafs=pafs, mask=mask)

    def _paf_field(
        self,
        limb: np.ndarray,
        a: np.ndarray,
        d: np.ndarray,
        length: np.ndarray,
        size: tuple[int, int],
    ) -> np.ndarray:
        """(2L, Ho, Wo) PAFs of M segments (limb index, start ``a``, vector ``d``; output px).

        Each segment is rasterized in the window of cells around it (capsule of half-width
        ``paf_width``); vectors and counts are summed per cell with ``bincount`` and averaged.
        """
        wo, ho = size
        lo = np.clip(np.floor(np.minimum(a, a + d) - self.paf_width), 0, [wo - 1, ho - 1])
        hi = np.clip(np.ceil(np.maximum(a, a + d) + self.paf_width), 0, [wo - 1, ho - 1])
        lo, hi = lo.astype(np.int64), hi.astype(np.int64)
        span = (hi - lo).max(axis=0) + 1  # common window (W, H) of all segments
        gx = lo[:, 0, None] + np.arange(span[0])  # (M, Wb)
        gy = lo[:, 1, None] + np.arange(span[1])  # (M, Hb)
        px = (gx - a[:, 0, None])[:, None, :]
        py = (gy - a[:, 1, None])[:, :, None]
        dx, dy = d[:, 0, None, None], d[:, 1, None, None]
        t = np.clip((px * dx + py * dy) / (length**2)[:, None, None], 0.0, 1.0)
        inside = (px - t * dx) ** 2 + (py - t * dy) ** 2 <= self.paf_width**2  # (M, Hb, Wb)
        inside &= (gx <= hi[:, 0, None])[:, None, :] & (gy <= hi[:, 1, None])[:, :, None]
        m, iy, ix = np.nonzero(inside)
        cell = limb[m] * (ho * wo) + gy[m, iy] * wo + gx[m, ix]
        n = self.schema.num_limbs * ho * wo
        count = np.maximum(np.bincount(cell, minlength=n), 1)
        unit = d / length[:, None]
        field = np.stack(
            [np.bincount(cell, unit[m, c], minlength=n) / count for c in (0, 1)], axis=1
        )  # (L*Ho*Wo, 2)
        return (
            field.reshape(self.schema.num_limbs, ho, wo, 2)
            .transpose(0, 3, 1, 2)
            .reshape(-1, ho, wo)
            .astype(np.float32)
        )

    def perfect_outputs(self, targets: PafTargets) -> tuple[np.ndarray, np.ndarray]:
        """What a perfect network outputs for ``targets``: ``(heatmaps, pafs)``."""
        return targets.heatmaps, targets.pafs

    # ------------------------------------------------------------------ flip
    def unflip(self, heatmaps: ArrayLike, pafs: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """Maps of a horizontally flipped input -> maps of the original input.

        Mirrors the arrays in x, permutes keypoint channels by ``schema.flip_index`` (the
        background stays last) and remaps PAF channels with ``schema.paf_flip``. Used for flip
        test-time augmentation: average ``maps`` with ``unflip(maps of the flipped input)``.
        """
        heatmaps, pafs = self._check_maps(heatmaps, pafs)
        paf_flip = self.schema.require_paf_flip()
        order = list(self.schema.flip_index) + list(range(self.schema.num_keypoints, len(heatmaps)))
        return (
            np.ascontiguousarray(heatmaps[order, :, ::-1]),
            np.ascontiguousarray(paf_flip.apply(pafs[:, :, ::-1])),
        )

    # ------------------------------------------------------------------ decode
    def decode(
        self,
        heatmaps: ArrayLike,
        pafs: ArrayLike,
        *,
        affine: np.ndarray | None = None,
        config: PafDecodeConfig | None = None,
    ) -> list[Pose]:
        """Poses from the network maps of one image (not modified).

        Args:
            heatmaps: (K+1, Ho, Wo) or (K, Ho, Wo) keypoint heatmaps (a background channel is
                ignored). NumPy array or torch tensor; non-finite values are treated as 0 with a
                warning.
            pafs: (2L, Ho, Wo) part affinity fields.
            affine: optional (2, 3) matrix from output pixels to the frame wanted, e.g.
                ``output_to_input_matrix()`` or image <- input <- output for image pixels.
            config: decoding parameters; default ``self.decode_config``.

        Returns:
            Poses sorted by descending score: keypoints (K, 3) x, y (output pixels, or the
            ``affine`` frame) and score; keypoints not found are (0, 0, 0).
        """
        cfg = config or self.decode_config
        heatmaps, pafs = self._check_maps(heatmaps, pafs)
        if affine is not None and np.shape(affine) != (2, 3):
            raise ConfigError(f"affine: expected a (2, 3) matrix, got shape {np.shape(affine)}")
        k = self.schema.num_keypoints
        peaks = find_peaks(
            heatmaps[:k],
            cfg.peak_threshold,
            upsample=cfg.upsample,
            refine=cfg.refine,
            max_per_channel=cfg.max_peaks,
        )
        if cfg.upsample == 1 and cfg.close_peaks > 1:
            peaks = add_close_peaks(
                heatmaps[:k],
                peaks,
                cfg.peak_threshold,
                cfg.close_peaks,
                max_per_channel=cfg.max_peaks,
                refine=cfg.refine,
            )
        scoring = paf_limbs.LimbScoring(cfg.paf_samples, cfg.paf_min_score, cfg.paf_min_fraction)
        candidates = paf_limbs.score_limbs(pafs, peaks, self._limb_src, self._limb_dst, scoring)
        connections = paf_limbs.match_limbs(
            candidates, peaks, self._limb_src, self._limb_dst, method=cfg.matching
        )
        slots = paf_grouping.assemble(connections, peaks, k)
        slots = paf_grouping.merge_fragments(
            slots,
            peaks.xy,
            self._hops,
            self._limb_src,
            self._limb_dst,
            cfg.fragment_reach,
            self._limb_mirror,
            lambda limb, src, dst: (
                paf_limbs.mean_alignment(pafs, peaks.xy, limb, src, dst, cfg.paf_samples)
                > cfg.paf_min_score
            ),
            lone_scale=0.5 * pafs.shape[1],
        )
        return paf_grouping.to_poses(slots, peaks, affine, cfg.min_keypoints, cfg.min_score)

    def _check_maps(self, heatmaps: ArrayLike, pafs: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """Float32 NumPy maps with the schema's channel counts; non-finite values -> 0."""
        heatmaps, pafs = _to_numpy(heatmaps), _to_numpy(pafs)
        k, n = self.schema.num_keypoints, self.schema.name
        if heatmaps.ndim != 3 or heatmaps.shape[0] not in (k, k + 1):
            raise SchemaError(
                f"heatmaps: expected shape (K+1, H, W) = ({k + 1}, H, W) for schema '{n}' "
                f"({k} keypoints + background), got {heatmaps.shape}"
            )
        if pafs.ndim != 3 or pafs.shape[0] != self.num_pafs:
            raise SchemaError(
                f"pafs: expected shape (2L, H, W) = ({self.num_pafs}, H, W) for schema '{n}' "
                f"({self.schema.num_limbs} limbs), got {pafs.shape}"
            )
        if heatmaps.shape[1:] != pafs.shape[1:]:
            raise SchemaError(
                f"heatmaps {heatmaps.shape} and pafs {pafs.shape} must have the same (H, W)"
            )
        return _finite(heatmaps, "heatmaps"), _finite(pafs, "pafs")


def _to_numpy(maps: ArrayLike) -> np.ndarray:
    if hasattr(maps, "detach"):  # torch.Tensor, without importing torch here
        maps = maps.detach().cpu().float().numpy()
    return np.ascontiguousarray(maps, dtype=np.float32)


def _finite(maps: np.ndarray, name: str) -> np.ndarray:
    bad = ~np.isfinite(maps)
    if bad.any():
        logger.warning("%s: %d non-finite values (NaN/inf) treated as 0", name, int(bad.sum()))
        maps = np.where(bad, np.float32(0.0), maps)
    return maps
