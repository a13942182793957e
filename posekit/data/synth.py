"""Synthetic multi-instance keypoint data for any KeypointSchema, written as COCO JSON + JPEG files.

Figures come from the schema alone. A per-schema template is derived once: walking ``schema.limbs``
(tree limbs) from the first root, children are spread around their parent's direction (left/right
partners mirrored through ``flip_index``); roots of other skeleton parts and limbless keypoints hang
from the first root by hidden links (placed, never drawn); each part is then relaxed towards its
graph distances so that loops (``extra`` limbs) close. An instance jitters every link's angle and
length, rotates and scales the whole figure, and sets virtual keypoints to the mean of their
sources before drawing, so drawn limbs meet where ``schema.add_virtual`` later puts them.

Pixel convention (cv2's): pixel centers at integer coordinates; keypoint ``(x, y)`` lies in pixel
``(row, col) = (floor(y + 0.5), floor(x + 0.5))`` and is inside the image when ``0 <= x <= W - 1``
and ``0 <= y <= H - 1``. Visibility is honest: figures are drawn back to front, and a keypoint
inside the image is v=1 when a later (front) figure's silhouette covers its pixel, else v=2; outside
the image it is v=0 with x = y = 0. Only real keypoints (``schema.real_indices``) are written.
Figures without any visible pixel are not annotated; figures with visible pixels are kept even with
``num_keypoints == 0`` (loaders turn those into ignore regions), so no drawn figure goes unlabeled.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from posekit.errors import ConfigError
from posekit.schema import KeypointSchema, Limb

logger = logging.getLogger(__name__)

_SHIFT = 4  # cv2 fixed-point bits: shapes are drawn at 1/16 pixel precision
_ONE = 1 << _SHIFT
_MIN_COLOR = 16  # figure pixels have a channel >= 16 (x0.5 texture), so 0 means "not drawn"
_HIDDEN_JITTER = 0.3  # hidden links (other parts, limbless keypoints) vary less than limbs
# A figure placed freely goes to the best of this many uniform candidate centers (the farthest from
# the figures already placed: Mitchell's best-candidate sampling). With one candidate, large figures
# pile up by chance and tangle so much that even perfect maps group them badly (perfect-map AP
# 0.79 -> 0.91 for 2-3 figures of 0.4-0.8 x 160 px); occlusion comes from ``overlap_prob``.
_PLACE_CANDIDATES = 3
# Inclusive bounds of every config value; integer-valued keys; keys holding a pair (a, b).
_BOUNDS = {
    "num_images": (1, 10**9),
    "min_instances": (0, 1000),
    "max_instances": (1, 1000),
    "seed": (0, 2**63 - 1),
    "jpeg_quality": (1, 100),
    "clutter": (0, 1000),
    "image_size": (32, 16384),
    "scale_range": (0.01, 4.0),
    "thickness_range": (0.01, 2.0),
    "partial_prob": (0.0, 1.0),
    "overlap_prob": (0.0, 1.0),
    "angle_jitter": (0.0, np.pi),
    "max_rotation": (0.0, 180.0),
    "length_jitter": (0.0, 1.0),
    "noise_std": (0.0, 100.0),
}
_BOOL_KEYS = ("part_colors",)
_INTEGER_KEYS = (
    "num_images",
    "min_instances",
    "max_instances",
    "seed",
    "jpeg_quality",
    "clutter",
    "image_size",
)
_PAIR_KEYS = ("image_size", "scale_range", "thickness_range")


@dataclass(frozen=True)
class SynthConfig:
    """Parameters of a synthetic data set, validated at construction (ConfigError names the key).

    Args:
        num_images: number of images to write.
        image_size: (W, H) in pixels, each in [32, 16384].
        min_instances, max_instances: figures drawn per image (uniform), 0 <= min <= max.
        seed: base seed (>= 0); image ``n`` of split ``s`` depends only on (seed, s, n).
        jpeg_quality: cv2 JPEG quality, 1..100.
        scale_range: figure size (larger side of its template box) as a fraction of min(W, H).
        partial_prob: probability that a figure is centered near the border (partly outside).
        overlap_prob: probability that a figure is placed over an earlier one (occlusion).
        max_rotation: figures are rotated uniformly in [-max, max] degrees from the upright
            template (the first keypoint of each flip pair on the image's right, as for a person
            facing the camera). 180 gives any orientation, which makes left and right unlearnable
            for a mirror-symmetric schema: a mirrored figure is then a rotated one.
        angle_jitter: standard deviation (radians) of each limb's angle around the template.
        length_jitter: relative standard deviation of each limb's length.
        thickness_range: limb thickness as a fraction of the figure's unit limb length.
        clutter: maximum number of distractor shapes (lines, ellipses, boxes) per background.
        noise_std: standard deviation of the pixel noise added last (0: none).
        part_colors: draw each limb in a fixed color of its limb type (mirror limbs share one), as
            OpenPose draws skeletons, instead of one random color per figure. Keypoint types then
            look different locally, as body parts do in photos, and a network learns them in
            minutes instead of hours (the ``posekit train`` demo data); joints keep their figure's
            joint color.
    """

    num_images: int = 100
    image_size: tuple[int, int] = (368, 368)
    min_instances: int = 1
    max_instances: int = 6
    seed: int = 0
    jpeg_quality: int = 90
    scale_range: tuple[float, float] = (0.25, 0.65)
    partial_prob: float = 0.2
    overlap_prob: float = 0.25
    max_rotation: float = 30.0
    angle_jitter: float = 0.3
    length_jitter: float = 0.15
    thickness_range: tuple[float, float] = (0.15, 0.35)
    clutter: int = 12
    noise_std: float = 3.0
    part_colors: bool = False

    def __post_init__(self) -> None:
        for key in _BOOL_KEYS:
            if not isinstance(getattr(self, key), bool):
                raise ConfigError(f"{key}: expected true or false, got {getattr(self, key)!r}")
        for key, (low, high) in _BOUNDS.items():
            value, integer = getattr(self, key), key in _INTEGER_KEYS
            if key not in _PAIR_KEYS:
                _checked(key, value, low, high, integer)
                continue
            if isinstance(value, str) or not isinstance(value, Sequence) or len(value) != 2:
                raise ConfigError(f"{key}: expected a pair (a, b), got {value!r}")
            pair = tuple(_checked(key, v, low, high, integer) for v in value)
            if key != "image_size" and pair[0] > pair[1]:
                raise ConfigError(f"{key}: expected a <= b, got {value!r}")
            object.__setattr__(self, key, pair)
        if self.min_instances > self.max_instances:
            raise ConfigError(
                f"min_instances ({self.min_instances}) > max_instances ({self.max_instances})"
            )


def _checked(key: str, value: Any, low: float, high: float, integer: bool) -> float:
    kinds = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    if isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= high:
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"{key}: expected {kind} in [{low}, {high}], got {value!r}")
    return int(value) if integer else float(value)


@dataclass(frozen=True, eq=False)
class SynthInstance:
    """One annotated figure of a synthetic image (coordinates in image pixels).

    Attributes:
        keypoints: (K_real, 3) float32 x, y, v of ``schema.real_indices``; v=0 rows are (0, 0, 0).
        position: (K_real, 2) float32 true x, y of every real keypoint, also outside the image.
        bbox: (4,) float64 x, y, w, h of the figure's pixels inside the image, occluded ones
            included (first column/row and pixel counts), so it holds every labeled keypoint.
        area: visible silhouette area in pixels (what COCO's ``area`` holds).
        segmentation: polygons (flat x0, y0, x1, y1, ...) around the visible silhouette.
        joint_color: BGR of the figure's joint discs: the pixel at a v=2 keypoint has this color
            before pixel noise and JPEG coding.
    """

    keypoints: np.ndarray
    position: np.ndarray
    bbox: np.ndarray
    area: float
    segmentation: tuple[tuple[float, ...], ...]
    joint_color: tuple[int, int, int]

    @property
    def num_keypoints(self) -> int:
        """Number of labeled keypoints (v > 0)."""
        return int(np.count_nonzero(self.keypoints[:, 2] > 0))


@dataclass(frozen=True, eq=False)
class _Template:
    """Undisturbed figure of a schema; link ``k`` goes from the parent of ``k`` to keypoint ``k``.

    ``angle`` (K,) radians relative to the parent link's direction, ``length`` (K,) in figure units,
    ``hidden`` (K,) links from the first root to other parts' roots (placed, not drawn),
    ``ancestors`` (K, K): ``[k, j] = 1`` when link ``j`` is on the path from the first root to ``k``,
    ``limbless`` indices of keypoints without a limb, ``extent`` the larger side of the figure's box,
    ``upright`` the rotation (radians) that turns the summed vector from the second to the first
    keypoint of each flip pair to +x (0 without pairs).
    """

    angle: np.ndarray
    length: np.ndarray
    hidden: np.ndarray
    ancestors: np.ndarray
    limbless: np.ndarray
    extent: float
    upright: float


@dataclass(frozen=True, eq=False)
class _Drawn:
    """A figure as drawn: real keypoints (K_real, 2), silhouette ``mask`` (h, w) at ``corner``."""

    pos: np.ndarray
    mask: np.ndarray
    corner: np.ndarray
    joint: tuple[int, int, int]


def _spread(children: list[int], flip: tuple[int, ...], full: bool) -> dict[int, float]:
    """Angles of a keypoint's children: self-mirrored ones on the axis, mirror pairs at +-angle."""
    n = len(children)
    if full:  # around a root: the whole circle
        theta = (2.0 * np.pi * np.arange(n) / n + np.pi) % (2.0 * np.pi) - np.pi
    else:  # a cone around the parent's direction
        span = min(0.6 * (n - 1), 2.4)
        theta = np.linspace(-span / 2.0, span / 2.0, n)
    axis = [float(t) for t in theta if abs(np.sin(t)) < 1e-9]
    side = sorted(float(t) for t in theta if np.sin(t) > 1e-9)
    out: dict[int, float] = {}
    for c in children:
        if flip[c] == c and axis:
            out[c] = axis.pop(0)
        elif flip[c] > c and flip[c] in children and side:
            t = side.pop(0)
            out[c], out[flip[c]] = t, -t
    rest = sorted(axis + side + [-t for t in side], key=abs)
    out.update(zip([c for c in children if c not in out], rest, strict=True))
    return out


def _pose(
    ancestors: np.ndarray, angle: np.ndarray, length: np.ndarray, rotation: float = 0.0
) -> np.ndarray:
    """Keypoints (K, 2) in figure units, first root at the origin, from per-link angles, lengths."""
    direction = rotation + ancestors @ angle
    return ancestors @ (length[:, None] * np.stack([np.cos(direction), np.sin(direction)], axis=1))


def _stress(pos: np.ndarray, dist: np.ndarray, iterations: int = 150) -> np.ndarray:
    """Stress majorization (SMACOF, weights 1/d^2) of positions (n, 2) towards distances (n, n)."""
    with np.errstate(divide="ignore"):
        weight = np.where(dist > 0, dist**-2.0, 0.0)
    lap_inv = np.linalg.pinv(np.diag(weight.sum(axis=1)) - weight)
    for _ in range(iterations):
        gap = np.linalg.norm(pos[:, None] - pos[None], axis=2)
        ratio = np.divide(weight * dist, gap, out=np.zeros_like(gap), where=gap > 1e-9)
        pos = lap_inv @ ((np.diag(ratio.sum(axis=1)) - ratio) @ pos)
    return pos


def _align(points: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Rotate and translate points (n, 2) onto target (n, 2) in the least-squares sense (Kabsch)."""
    p, t = points - points.mean(axis=0), target - target.mean(axis=0)
    u, _, vt = np.linalg.svd(p.T @ t)
    rot = vt.T @ np.diag([1.0, np.sign(np.linalg.det(vt.T @ u.T))]) @ u.T
    return p @ rot.T + target.mean(axis=0)


@functools.lru_cache(maxsize=32)
def _template(
    limbs: tuple[Limb, ...],
    roots: tuple[int, ...],
    flip: tuple[int, ...],
    virtual: tuple[tuple[int, tuple[int, ...]], ...],
) -> _Template:
    """Template of a schema, cached on the fields it depends on (schemas are not hashable)."""
    k, first = len(flip), roots[0]
    children: list[list[int]] = [[] for _ in range(k)]
    dist = np.full((k, k), np.inf)
    np.fill_diagonal(dist, 0.0)
    for limb in limbs:
        dist[limb.src, limb.dst] = dist[limb.dst, limb.src] = 1.0
        if not limb.extra:
            children[limb.src].append(limb.dst)
    children[first] += list(roots[1:])
    hidden = np.zeros(k, dtype=bool)
    hidden[list(roots[1:])] = True
    parent, part = np.full(k, -1), np.full(k, first)
    angle, length, order = np.zeros(k), np.ones(k), [first]
    for u in order:  # breadth-first: ``order`` grows while it is walked
        slots = _spread(children[u], flip, full=u == first)
        step = 2.0 * np.pi / max(len(children[u]), 1)
        for c in children[u]:
            mirrored = flip[c] != c and flip[u] != u and parent[flip[c]] == flip[u]
            parent[c], angle[c] = u, -angle[flip[c]] if mirrored else slots[c]
            part[c] = c if hidden[c] else part[u]
            if hidden[c]:  # three rings keep many parts around the first root apart
                length[c] = 0.7 + 0.35 * (round(abs(slots[c]) / step) % 3)
            order.append(c)
    ancestors = np.zeros((k, k))
    for c in order[1:]:
        node = c
        while node != first:
            ancestors[c, node], node = 1.0, parent[node]
    for m in range(k):  # Floyd-Warshall: graph distances over the limbs
        dist = np.minimum(dist, dist[:, m : m + 1] + dist[m : m + 1, :])
    pos = _pose(ancestors, angle, length)
    jitter = 1e-3 * np.random.default_rng(0).standard_normal(pos.shape)  # breaks exact ties
    for root in roots:  # relax each part, then put it back where the spread placed it
        idx = np.flatnonzero(part == root)
        if len(idx) >= 3:
            relaxed = _stress(pos[idx] + jitter[idx], dist[np.ix_(idx, idx)])
            pos[idx] = _align(relaxed, pos[idx])
    for idx, sources in virtual:
        pos[idx] = pos[list(sources)].mean(axis=0)
    up = np.maximum(parent, 0)
    link = pos - pos[up]
    direction = np.where(parent >= 0, np.arctan2(link[:, 1], link[:, 0]), 0.0)
    angle = np.angle(np.exp(1j * (direction - direction[up])))  # wrapped to (-pi, pi]
    touched = {i for limb in limbs for i in (limb.src, limb.dst)}
    limbless = np.asarray([i for i in range(k) if i not in touched], dtype=np.int64)
    extent = max(float(np.ptp(pos, axis=0).max()), 1.0)
    across = sum((pos[i] - pos[j] for i, j in enumerate(flip) if i < j), np.zeros(2))
    upright = -float(np.arctan2(across[1], across[0])) if np.hypot(*across) > 1e-9 else 0.0
    return _Template(
        angle, np.linalg.norm(link, axis=1), hidden, ancestors, limbless, extent, upright
    )


def _hsv_bgr(hue: float, sat: float, val: float) -> np.ndarray:
    """BGR (3,) float64 of an OpenCV HSV color (hue in [0, 180))."""
    hsv = np.array([[[hue % 180, sat, val]]], dtype=np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float64)


def _ramp(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """(h, w) float32 coordinate along a random direction, in pixels."""
    phi = rng.uniform(0, 2.0 * np.pi)
    return (np.arange(w)[None, :] * np.cos(phi) + np.arange(h)[:, None] * np.sin(phi)).astype(
        np.float32
    )


def _smooth_noise(rng: np.random.Generator, h: int, w: int, channels: int) -> np.ndarray:
    """(h, w, channels) float32 smooth noise, about unit variance (upsampled random cells)."""
    cells = rng.standard_normal((int(rng.integers(2, 10)),) * 2 + (channels,)).astype(np.float32)
    return cv2.resize(cells, (w, h), interpolation=cv2.INTER_CUBIC).reshape(h, w, channels)


def _background(rng: np.random.Generator, config: SynthConfig) -> np.ndarray:
    """(H, W, 3) uint8: a color gradient, smooth noise blobs and distractor shapes."""
    w, h = config.image_size
    c0, c1 = rng.uniform(0, 255, (2, 3)).astype(np.float32)
    ramp = _ramp(rng, h, w)
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1.0)
    blobs = _smooth_noise(rng, h, w, 3) * rng.uniform(10, 45)
    image = np.clip(c0 + ramp[..., None] * (c1 - c0) + blobs, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(0, config.clutter + 1))):
        color = rng.integers(0, 256, 3).tolist()
        (x0, y0), (x1, y1) = (rng.uniform(-0.1, 1.1, (2, 2)) * (w, h)).astype(int).tolist()
        kind, thick = int(rng.integers(3)), int(rng.integers(1, 7))
        if kind == 0:  # limb-like strokes without joints
            cv2.line(image, (x0, y0), (x1, y1), color, thick, cv2.LINE_AA)
        elif kind == 1:
            axes = (2 + rng.uniform(0, (0.15 * w, 0.05 * h))).astype(int).tolist()
            cv2.ellipse(image, (x0, y0), axes, rng.uniform(0, 180), 0, 360, color, -1)
        else:
            cv2.rectangle(image, (x0, y0), (x1, y1), color, thick)
    return image


def _place(
    rng: np.random.Generator, config: SynthConfig, size: float, centers: list[np.ndarray]
) -> np.ndarray:
    """Center (2,) of a new figure: over an earlier one, across the border, or inside (the best of
    ``_PLACE_CANDIDATES`` candidates)."""
    wh = np.asarray(config.image_size, dtype=np.float64) - 1.0
    if centers and rng.random() < config.overlap_prob:
        phi = rng.uniform(0, 2.0 * np.pi)
        step = rng.uniform(0.25, 0.6) * size * np.array([np.cos(phi), np.sin(phi)])
        return centers[int(rng.integers(len(centers)))] + step
    margin = np.minimum(size / 2.0, wh / 2.0)  # the whole figure inside when it fits
    candidates = margin + rng.uniform(0, 1, (_PLACE_CANDIDATES, 2)) * (wh - 2.0 * margin)
    gaps = [np.linalg.norm(candidates - c, axis=1) for c in centers] or [np.zeros(len(candidates))]
    center = candidates[int(np.argmax(np.min(gaps, axis=0)))]
    if rng.random() < config.partial_prob:
        axis, side = int(rng.integers(2)), int(rng.integers(2))
        offset = rng.uniform(-0.35, 0.15) * size  # < 0: the center itself is outside
        center[axis] = wh[axis] - offset if side else offset
    return center


def _texture(rng: np.random.Generator, h: int, w: int, unit: float) -> np.ndarray:
    """(h, w, 1) float32 multiplicative texture in [0.5, 1.5]: flat, stripes or smooth noise."""
    kind = int(rng.integers(3))
    if kind == 0:
        return np.ones((h, w, 1), dtype=np.float32)
    if kind == 1:
        period = rng.uniform(0.15, 0.5) * unit + 2.0
        return 1.0 + 0.25 * np.sin(_ramp(rng, h, w) * (2.0 * np.pi / period))[..., None]
    return np.clip(1.0 + 0.2 * _smooth_noise(rng, h, w, 1), 0.5, 1.5)


def _colors(rng: np.random.Generator, region: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A figure color (3,) that stands out from ``region`` and a contrasting joint color (3,)."""
    mean = np.asarray(cv2.mean(region)[:3])
    candidates = [_hsv_bgr(*rng.uniform((0, 90, 110), (180, 255, 255))) for _ in range(3)]
    color = max(candidates, key=lambda c: float(np.abs(c - mean).sum()))
    hue = cv2.cvtColor(color.astype(np.uint8)[None, None], cv2.COLOR_BGR2HSV)[0, 0, 0]
    joint = _hsv_bgr(float(hue) + 90, rng.uniform(90, 255), 290 - color.max())
    return color, np.round(np.clip(joint, _MIN_COLOR, 255))


def _part_palette(schema: KeypointSchema) -> np.ndarray:
    """(L, 3) BGR: saturated hues spread over the circle, one per limb type; a limb and its mirror
    (``schema.paf_flip``) share a hue, so a flipped image shows the same colors where the labels
    are."""
    n = len(schema.limbs)
    if n == 0:
        return np.zeros((0, 3))
    flip = schema.paf_flip
    mirror = list(range(n)) if flip is None else [c // 2 for c in flip.channels[::2]]
    group = [min(j, mirror[j]) for j in range(n)]
    hues = {g: 180.0 * i / len(set(group)) for i, g in enumerate(sorted(set(group)))}
    return np.stack([_hsv_bgr(hues[g], 230, 230) for g in group])


def _draw_figure(
    canvas: np.ndarray,
    local: np.ndarray,
    limbs: tuple[Limb, ...],
    tpl: _Template,
    thickness: np.ndarray,
    radius: np.ndarray,
    colors: np.ndarray,
    joint: np.ndarray,
    rng: np.random.Generator,
    unit: float,
) -> np.ndarray:
    """One figure on an empty canvas (h, w, 3) uint8; ``local`` (K, 2) in 1/16 canvas pixels.

    Limbs (L,) are filled ellipses of ``thickness`` (L,) px in textured shades of ``colors``
    (L + 1, 3) BGR (per limb, then the body), limbless keypoints share a convex body, joints are
    discs of ``radius`` (K,) px in ``joint``.
    """
    if len(tpl.limbless) >= 3:
        hull = cv2.convexHull(np.round(local[tpl.limbless]).astype(np.int32))
        body = np.clip(0.7 * colors[-1], _MIN_COLOR, 255).tolist()
        cv2.fillConvexPoly(canvas, hull, body, cv2.LINE_8, _SHIFT)
    shades = np.clip(colors[:-1] * rng.uniform(0.8, 1.15, (len(limbs), 1)), _MIN_COLOR, 255)
    for limb, t, shade in zip(limbs, thickness, shades, strict=True):
        d = local[limb.dst] - local[limb.src]
        center = np.round((local[limb.src] + local[limb.dst]) / 2.0).astype(int).tolist()
        axes = (int(max(np.hypot(*d) / 2 + t * _ONE / 4, _ONE)), int(max(t * _ONE / 2, _ONE)))
        tilt = float(np.degrees(np.arctan2(d[1], d[0])))
        cv2.ellipse(canvas, center, axes, tilt, 0, 360, shade.tolist(), -1, cv2.LINE_8, _SHIFT)
    texture = _texture(rng, canvas.shape[0], canvas.shape[1], unit)
    canvas = np.clip(canvas * texture, 0, 255).astype(np.uint8)
    for (px, py), r in zip(np.round(local).astype(int).tolist(), radius, strict=True):
        cv2.circle(canvas, (px, py), int(r * _ONE), joint.tolist(), -1, cv2.LINE_8, _SHIFT)
    return canvas


def generate_image(
    schema: KeypointSchema, rng: np.random.Generator, config: SynthConfig
) -> tuple[np.ndarray, list[SynthInstance]]:
    """One synthetic image and its annotated figures, back to front.

    Returns:
        image: (H, W, 3) BGR uint8, (W, H) = ``config.image_size``.
        instances: a record per figure with visible pixels; keypoints (K_real, 3) in image pixels.
    """
    w, h = config.image_size
    tpl = _template(schema.limbs, schema.roots, schema.flip_index, schema.virtual_sources)
    k = schema.num_keypoints
    jitter = np.where(tpl.hidden, _HIDDEN_JITTER, 1.0)
    n_limbs = len(schema.limbs)
    palette = _part_palette(schema) if config.part_colors else None
    image = _background(rng, config)
    id_map = np.full((h, w), -1, dtype=np.int16)  # index of the front-most figure at each pixel
    figures: list[_Drawn] = []
    centers: list[np.ndarray] = []
    for _ in range(int(rng.integers(config.min_instances, config.max_instances + 1))):
        size = rng.uniform(*config.scale_range) * min(w, h)
        unit = size / tpl.extent  # pixels per figure unit (about one limb)
        angle = tpl.angle + rng.normal(0, config.angle_jitter, k) * jitter
        length = tpl.length * np.clip(1 + rng.normal(0, config.length_jitter, k) * jitter, 0.4, 2)
        turn = tpl.upright + np.deg2rad(rng.uniform(-config.max_rotation, config.max_rotation))
        pos = unit * _pose(tpl.ancestors, angle, length, turn)
        for idx, sources in schema.virtual_sources:
            pos[idx] = pos[list(sources)].mean(axis=0)
        centers.append(_place(rng, config, size, centers))
        pos += centers[-1] - (pos.min(axis=0) + pos.max(axis=0)) / 2.0
        t0 = unit * rng.uniform(*config.thickness_range)
        thickness = np.maximum(t0 * rng.uniform(0.6, 1.3, len(schema.limbs)), 2.0)
        radius = np.full(k, max(0.45 * t0, 2.0))  # >= 2 px: covers the keypoint's own pixel
        radius[tpl.limbless] = max(0.6 * t0, 2.5)
        margin = max(float(thickness.max(initial=0.0)), float(radius.max())) + 2.0
        lo = np.clip(np.floor(pos.min(axis=0) - margin), 0, [w, h]).astype(int)
        hi = np.clip(np.ceil(pos.max(axis=0) + margin) + 1, 0, [w, h]).astype(int)
        if np.any(hi <= lo):
            continue  # entirely outside the image
        region = image[lo[1] : hi[1], lo[0] : hi[0]]
        color, joint = _colors(rng, region)
        colors = np.vstack([color[None].repeat(n_limbs, 0) if palette is None else palette, color])
        local = (pos - lo) * _ONE
        canvas = np.zeros(region.shape, dtype=np.uint8)
        canvas = _draw_figure(
            canvas, local, schema.limbs, tpl, thickness, radius, colors, joint, rng, unit
        )
        mask = (canvas[..., 0] | canvas[..., 1] | canvas[..., 2]) > 0  # faster than any(axis=2)
        region[mask] = canvas[mask]
        id_map[lo[1] : hi[1], lo[0] : hi[0]][mask] = len(figures)
        joint_color = (int(joint[0]), int(joint[1]), int(joint[2]))
        figures.append(_Drawn(pos[list(schema.real_indices)], mask, lo, joint_color))
    if config.noise_std > 0:
        noise = rng.standard_normal(image.shape, dtype=np.float32) * config.noise_std
        image = np.clip(image + noise, 0, 255).astype(np.uint8)
    visible_px = np.bincount(id_map[id_map >= 0], minlength=len(figures))
    instances = [
        _annotate(i, figure, id_map, float(visible_px[i]))
        for i, figure in enumerate(figures)
        if visible_px[i] > 0
    ]
    return image, instances


def _annotate(ident: int, figure: _Drawn, id_map: np.ndarray, area: float) -> SynthInstance:
    """Record of the ``ident``-th drawn figure; ``id_map`` (H, W) holds the front figure per pixel."""
    h, w = id_map.shape
    pos, mask = np.round(figure.pos, 2).astype(np.float32), figure.mask
    inside = (pos[:, 0] >= 0) & (pos[:, 0] <= w - 1) & (pos[:, 1] >= 0) & (pos[:, 1] <= h - 1)
    col = np.clip(np.floor(pos[:, 0] + 0.5), 0, w - 1).astype(int)
    row = np.clip(np.floor(pos[:, 1] + 0.5), 0, h - 1).astype(int)
    keypoints = np.zeros((len(pos), 3), dtype=np.float32)
    keypoints[:, :2] = np.where(inside[:, None], pos, 0.0)
    keypoints[:, 2] = np.where(inside, np.where(id_map[row, col] > ident, 1, 2), 0)
    rows, cols = np.nonzero(mask)
    x0, y0 = int(figure.corner[0]), int(figure.corner[1])
    bbox = np.array([cols.min() + x0, rows.min() + y0, np.ptp(cols) + 1, np.ptp(rows) + 1], float)
    visible = id_map[y0 : y0 + mask.shape[0], x0 : x0 + mask.shape[1]] == ident
    contours, _ = cv2.findContours(
        visible.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE, offset=(x0, y0)
    )
    polygons = tuple(tuple(float(v) for v in c.reshape(-1)) for c in contours if len(c) >= 3)
    if not polygons:  # slivers: the box
        bx, by, bw, bh = bbox.tolist()
        polygons = ((bx, by, bx + bw - 1, by, bx + bw - 1, by + bh - 1, bx, by + bh - 1),)
    return SynthInstance(keypoints, pos, bbox, area, polygons, figure.joint)


def write_dataset(
    out_dir: str | Path,
    schema: KeypointSchema,
    config: SynthConfig,
    *,
    split: str = "train",
    progress: bool = True,
) -> Path:
    """Write ``out_dir/annotations/{split}.json`` and ``out_dir/images/{split}/000000000001.jpg``...

    The JSON is COCO keypoint format with one category, ``schema.coco_category(1)``; image
    ``file_name`` s are relative to ``out_dir/images/{split}``. The files are byte-for-byte the same
    for the same (config, schema, split); another split gets other images. Returns the JSON path.
    """
    if not isinstance(split, str) or split in ("", ".", "..") or any(c in split for c in "/\\"):
        raise ConfigError(f"split: expected a plain folder name, got {split!r}")
    image_dir = Path(out_dir) / "images" / split
    ann_path = Path(out_dir) / "annotations" / f"{split}.json"
    image_dir.mkdir(parents=True, exist_ok=True)
    ann_path.parent.mkdir(parents=True, exist_ok=True)
    split_key = zlib.crc32(split.encode())  # stable across runs, unlike hash()
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    ids = range(1, config.num_images + 1)
    for image_id in tqdm(ids, desc=f"synth {split}", unit="img", disable=not progress):
        image, instances = generate_image(
            schema, np.random.default_rng([config.seed, split_key, image_id]), config
        )
        ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, config.jpeg_quality])
        if not ok:
            raise OSError(f"cv2 could not encode synthetic image {image_id} as JPEG")
        file_name = f"{image_id:012d}.jpg"
        (image_dir / file_name).write_bytes(jpeg.tobytes())
        w, h = config.image_size
        images.append({"id": image_id, "file_name": file_name, "width": w, "height": h})
        for inst in instances:
            flat = inst.keypoints.astype(np.float64).round(2).tolist()
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": 1,
                    "keypoints": [v for x, y, vis in flat for v in (x, y, int(vis))],
                    "num_keypoints": inst.num_keypoints,
                    "bbox": inst.bbox.tolist(),
                    "area": inst.area,
                    "iscrowd": 0,
                    "segmentation": [list(p) for p in inst.segmentation],
                }
            )
    info = {
        "description": f"posekit synthetic keypoints ({schema.name})",
        "seed": config.seed,
        # the full schema (virtual keypoints, sigmas, root): ``categories`` holds real ones only
        "posekit_schema": schema.to_dict(),
    }
    coco = {
        "info": info,
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [schema.coco_category(1)],
    }
    tmp = ann_path.with_name(ann_path.name + ".tmp")
    tmp.write_text(json.dumps(coco))
    os.replace(tmp, ann_path)  # a reader never sees a half-written file
    logger.info("wrote %d images, %d instances: %s", len(images), len(annotations), ann_path)
    return ann_path
