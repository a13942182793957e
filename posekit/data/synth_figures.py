"""Figures of synthetic data for any schema: the per-schema template, its poses, and drawing.

A per-schema template is derived once (``template``): walking ``schema.limbs`` (tree limbs) from
the first root, children are spread around their parent's direction (left/right partners mirrored
through ``flip_index``); roots of other skeleton parts and limbless keypoints hang from the first
root by hidden links (placed, never drawn); each part is then relaxed towards its graph distances
so that loops (``extra`` limbs) close. ``pose`` turns per-link angles and lengths into keypoints,
``draw_figure`` paints one figure (limb ellipses, a body for limbless keypoints, joint discs) in
textured shades. ``data.synth`` places and annotates them.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from posekit.schema import KeypointSchema, Limb

SHIFT = 4  # cv2 fixed-point bits: shapes are drawn at 1/16 pixel precision
ONE = 1 << SHIFT
MIN_COLOR = 16  # figure pixels have a channel >= 16 (x0.5 texture), so 0 means "not drawn"
HIDDEN_JITTER = 0.3  # hidden links (other parts, limbless keypoints) vary less than limbs


@dataclass(frozen=True, eq=False)
class Template:
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
class Drawn:
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


def pose(
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
def template(
    limbs: tuple[Limb, ...],
    roots: tuple[int, ...],
    flip: tuple[int, ...],
    virtual: tuple[tuple[int, tuple[int, ...]], ...],
) -> Template:
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
    pos = pose(ancestors, angle, length)
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
    return Template(
        angle, np.linalg.norm(link, axis=1), hidden, ancestors, limbless, extent, upright
    )


def hsv_bgr(hue: float, sat: float, val: float) -> np.ndarray:
    """BGR (3,) float64 of an OpenCV HSV color (hue in [0, 180))."""
    hsv = np.array([[[hue % 180, sat, val]]], dtype=np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float64)


def ramp(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """(h, w) float32 coordinate along a random direction, in pixels."""
    phi = rng.uniform(0, 2.0 * np.pi)
    return (np.arange(w)[None, :] * np.cos(phi) + np.arange(h)[:, None] * np.sin(phi)).astype(
        np.float32
    )


def smooth_noise(rng: np.random.Generator, h: int, w: int, channels: int) -> np.ndarray:
    """(h, w, channels) float32 smooth noise, about unit variance (upsampled random cells)."""
    cells = rng.standard_normal((int(rng.integers(2, 10)),) * 2 + (channels,)).astype(np.float32)
    return cv2.resize(cells, (w, h), interpolation=cv2.INTER_CUBIC).reshape(h, w, channels)


def _texture(rng: np.random.Generator, h: int, w: int, unit: float) -> np.ndarray:
    """(h, w, 1) float32 multiplicative texture in [0.5, 1.5]: flat, stripes or smooth noise."""
    kind = int(rng.integers(3))
    if kind == 0:
        return np.ones((h, w, 1), dtype=np.float32)
    if kind == 1:
        period = rng.uniform(0.15, 0.5) * unit + 2.0
        return 1.0 + 0.25 * np.sin(ramp(rng, h, w) * (2.0 * np.pi / period))[..., None]
    return np.clip(1.0 + 0.2 * smooth_noise(rng, h, w, 1), 0.5, 1.5)


def figure_colors(rng: np.random.Generator, region: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A figure color (3,) that stands out from ``region`` and a contrasting joint color (3,)."""
    mean = np.asarray(cv2.mean(region)[:3])
    candidates = [hsv_bgr(*rng.uniform((0, 90, 110), (180, 255, 255))) for _ in range(3)]
    color = max(candidates, key=lambda c: float(np.abs(c - mean).sum()))
    hue = cv2.cvtColor(color.astype(np.uint8)[None, None], cv2.COLOR_BGR2HSV)[0, 0, 0]
    joint = hsv_bgr(float(hue) + 90, rng.uniform(90, 255), 290 - color.max())
    return color, np.round(np.clip(joint, MIN_COLOR, 255))


def part_palette(schema: KeypointSchema) -> np.ndarray:
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
    return np.stack([hsv_bgr(hues[g], 230, 230) for g in group])


def draw_figure(
    canvas: np.ndarray,
    local: np.ndarray,
    limbs: tuple[Limb, ...],
    tpl: Template,
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
        body = np.clip(0.7 * colors[-1], MIN_COLOR, 255).tolist()
        cv2.fillConvexPoly(canvas, hull, body, cv2.LINE_8, SHIFT)
    shades = np.clip(colors[:-1] * rng.uniform(0.8, 1.15, (len(limbs), 1)), MIN_COLOR, 255)
    for limb, t, shade in zip(limbs, thickness, shades, strict=True):
        d = local[limb.dst] - local[limb.src]
        center = np.round((local[limb.src] + local[limb.dst]) / 2.0).astype(int).tolist()
        axes = (int(max(np.hypot(*d) / 2 + t * ONE / 4, ONE)), int(max(t * ONE / 2, ONE)))
        tilt = float(np.degrees(np.arctan2(d[1], d[0])))
        cv2.ellipse(canvas, center, axes, tilt, 0, 360, shade.tolist(), -1, cv2.LINE_8, SHIFT)
    texture = _texture(rng, canvas.shape[0], canvas.shape[1], unit)
    canvas = np.clip(canvas * texture, 0, 255).astype(np.uint8)
    for (px, py), r in zip(np.round(local).astype(int).tolist(), radius, strict=True):
        cv2.circle(canvas, (px, py), int(r * ONE), joint.tolist(), -1, cv2.LINE_8, SHIFT)
    return canvas
