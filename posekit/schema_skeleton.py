"""Skeleton derivations of a schema: limbs in grouping order, roots, the PAF flip map, colors.

Pure functions of keypoint indices, used by ``KeypointSchema`` at construction:

- ``grouping_order``: the limbs breadth-first from each connected part's root over a spanning tree,
  each limb pointing away from the root; limbs that close a loop come once both of their ends are
  reached and are marked ``extra`` (``limb_order: given`` keeps the user's order, validated);
- ``paf_flip``: how the 2L PAF channels of a mirrored image map to the original ones;
- ``colors``: BGR drawing colors, mirror limbs in neighbouring hues;
- ``half_body_split``: the two halves of a body for half-body crops (top-down augmentation).
"""

from __future__ import annotations

import colorsys
import itertools
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from posekit.errors import SchemaError

logger = logging.getLogger(__name__)

__all__ = [
    "Limb",
    "PafFlip",
    "colors",
    "given_halves",
    "grouping_order",
    "half_body_split",
    "paf_flip",
    "skeleton_from_data",
]


@dataclass(frozen=True)
class Limb:
    """One skeleton connection: PAF vectors point from ``src`` to ``dst`` (keypoint indices).

    ``extra`` is True for a limb that closes a loop of the skeleton: both ends are reached by the
    spanning tree before it, so it adds evidence for grouping but does not grow an instance.
    """

    src: int
    dst: int
    extra: bool = False


@dataclass(frozen=True)
class PafFlip:
    """Remapping of PAF channels for a horizontally flipped image.

    ``paf_orig_frame[c] = signs[c] * mirror_x(paf_flipped_frame[channels[c]])`` for each of the 2L
    channels, and the same formula maps the original to the flipped frame (it is an involution).
    """

    channels: tuple[int, ...]
    signs: tuple[float, ...]

    def apply(self, pafs: np.ndarray) -> np.ndarray:
        """Map PAFs ``(2L, H, W)`` of a flipped image (already mirrored back in x) to the original."""
        return pafs[list(self.channels)] * np.asarray(self.signs, dtype=pafs.dtype)[:, None, None]


def grouping_order(
    name: str,
    keypoints: Sequence[str],
    skeleton: Sequence[tuple[int, int]],
    root: str | None,
    limb_order: str,
) -> tuple[tuple[Limb, ...], tuple[int, ...]]:
    """(limbs in grouping order, one root per connected part) of a validated skeleton.

    ``root``: the user's root name (its part comes first), else each part's most connected
    keypoint (ties: the lower index). ``limb_order``: ``"bfs"`` or ``"given"``.
    """
    k = len(keypoints)
    adjacency: list[list[int]] = [[] for _ in range(k)]
    for a, b in skeleton:
        adjacency[a].append(b)
        adjacency[b].append(a)
    components = _components(adjacency)
    root_idx = list(keypoints).index(root) if root is not None else None
    roots = []
    for comp in components:
        if root_idx is not None and root_idx in comp:
            roots.append(root_idx)
        else:  # most connected keypoint; ties go to the lower index
            roots.append(max(sorted(comp), key=lambda i: len(adjacency[i])))
    if root_idx is not None:  # the user's root component first
        first = next(i for i, c in enumerate(components) if root_idx in c)
        roots.insert(0, roots.pop(first))
    if not skeleton:
        logger.warning("schema %r has no skeleton: drawing and bottom-up grouping need limbs", name)
    elif len(components) > 1:
        logger.warning(
            "schema %r: skeleton is not connected (%d parts); each part gets its own root: %s%s",
            name,
            len(components),
            ", ".join(keypoints[r] for r in roots[:12]),
            f", ... ({len(roots) - 12} more)" if len(roots) > 12 else "",
        )
    if limb_order == "given":
        return _given_order(keypoints, skeleton, root), tuple(roots)
    limbs: list[Limb] = []
    used: set[frozenset[int]] = set()
    for start in roots:
        reached = {start}
        queue = deque([start])
        while queue:
            u = queue.popleft()
            for v in adjacency[u]:
                edge = frozenset((u, v))
                if edge in used:
                    continue
                used.add(edge)
                limbs.append(Limb(u, v, extra=v in reached))
                if v not in reached:
                    reached.add(v)
                    queue.append(v)
    return tuple(limbs), tuple(roots)


def _given_order(
    keypoints: Sequence[str], skeleton: Sequence[tuple[int, int]], root: str | None
) -> tuple[Limb, ...]:
    reached = set()
    limbs = []
    user_root = list(keypoints).index(root) if root is not None else None
    for i, (a, b) in enumerate(skeleton):
        if not reached and user_root is not None and a != user_root:
            raise SchemaError(
                f"limb_order 'given': skeleton[0] must start at the root '{root}', "
                f"got '{keypoints[a]}'"
            )
        if a not in reached and b in reached:
            raise SchemaError(
                f"limb_order 'given': skeleton[{i}] ({keypoints[a]}, {keypoints[b]}) "
                f"points towards the part already grouped; reverse it"
            )
        if a not in reached:
            reached.add(a)
        limbs.append(Limb(a, b, extra=b in reached))
        reached.add(b)
    return tuple(limbs)


def _components(adjacency: list[list[int]]) -> list[list[int]]:
    seen: set[int] = set()
    comps = []
    for start in range(len(adjacency)):
        if start in seen:
            continue
        comp, stack = [], [start]
        seen.add(start)
        while stack:
            u = stack.pop()
            comp.append(u)
            for v in adjacency[u]:
                if v not in seen:
                    seen.add(v)
                    stack.append(v)
        comps.append(sorted(comp))
    return comps


def paf_flip(limbs: tuple[Limb, ...], flip: tuple[int, ...]) -> PafFlip | None:
    """The PAF channel map of a mirrored image, or None when the skeleton is not symmetric."""
    position = {(limb.src, limb.dst): j for j, limb in enumerate(limbs)}
    channels: list[int] = []
    signs: list[float] = []
    for limb in limbs:
        a, b = flip[limb.src], flip[limb.dst]
        if (a, b) in position:  # same direction: mirroring negates x only
            k, sx, sy = position[(a, b)], -1.0, 1.0
        elif (b, a) in position:  # reversed direction: negate y (x is negated twice)
            k, sx, sy = position[(b, a)], 1.0, -1.0
        else:
            return None
        channels += [2 * k, 2 * k + 1]
        signs += [sx, sy]
    return PafFlip(tuple(channels), tuple(signs))


def colors(
    names: tuple[str, ...], limbs: tuple[Limb, ...], flip: tuple[int, ...]
) -> tuple[tuple[tuple[int, int, int], ...], tuple[tuple[int, int, int], ...]]:
    """BGR colors: limbs spread over the hue circle, mirrored limbs in neighbouring hues."""

    def bgr(h: float, s: float = 0.85, v: float = 1.0) -> tuple[int, int, int]:
        r, g, b = colorsys.hsv_to_rgb(h % 1.0, s, v)
        return int(b * 255), int(g * 255), int(r * 255)

    n = max(len(limbs), 1)
    limb_colors = tuple(bgr(j / n) for j in range(len(limbs)))
    kpt_colors = []
    for i in range(len(names)):
        touching = [j for j, limb in enumerate(limbs) if limb.dst == i] or [
            j for j, limb in enumerate(limbs) if limb.src == i
        ]
        if touching:
            kpt_colors.append(limb_colors[touching[0]])
        else:
            side = 0.0 if flip[i] == i else (0.33 if i < flip[i] else 0.66)
            kpt_colors.append(bgr(side + i / (7.0 * len(names))))
    return tuple(kpt_colors), limb_colors


_MIN_HALF = 0.25
"""The smaller half of a half-body split holds at least this fraction of the skeleton's keypoints
(a cut that takes off a hand or a head is not a half)."""


def half_body_split(
    num_keypoints: int, skeleton: Sequence[tuple[int, int]], flip: tuple[int, ...]
) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """(upper, lower) keypoint indices of the most balanced cut of the skeleton into two halves,
    or None when no cut makes halves.

    A cut removes one or two classes of limbs (a limb together with its mirror under ``flip``)
    and must leave exactly two connected parts, each closed under mirroring (a left/right pair is
    never split), the smaller with at least a quarter of the skeleton's keypoints. The most
    balanced cut wins (then the one removing fewer limbs, then the first in skeleton order).
    ``upper`` is the half holding the lowest keypoint index (keypoint lists start at the head in
    the datasets posekit knows). Keypoints on no limb are in neither half.
    For COCO's person skeleton this is the hips and legs against the rest (MMPose's COCO split:
    keypoints 0-10 upper, 11-16 lower); for AP-10K's animals the back (tail root, hips, hind legs)
    against the front; a face without a skeleton, a hand (fingers on a wrist) or a skeleton in
    several parts has none.
    """
    edges = [tuple(sorted(e)) for e in skeleton]
    on_limb = sorted({i for e in edges for i in e})
    if len(edges) < 2 or not on_limb:
        return None
    classes: list[set[tuple[int, int]]] = []
    for e in edges:
        mirror = tuple(sorted((flip[e[0]], flip[e[1]])))
        if not any(e in c for c in classes):
            classes.append({e, mirror} & set(edges) | {e})
    best: tuple[float, int, tuple[int, ...], tuple[int, ...]] | None = None
    for size in (1, 2):
        for cut in itertools.combinations(range(len(classes)), size):
            removed = set().union(*(classes[c] for c in cut))
            adjacency: list[list[int]] = [[] for _ in range(num_keypoints)]
            for a, b in edges:
                if (a, b) not in removed:
                    adjacency[a].append(b)
                    adjacency[b].append(a)
            parts = [p for p in _components(adjacency) if len(p) > 1 or p[0] in on_limb]
            if len(parts) != 2 or any({flip[i] for i in p} != set(p) for p in parts):
                continue
            small, large = sorted(len(p) for p in parts)
            if small < _MIN_HALF * len(on_limb):
                continue
            upper, lower = parts if parts[0][0] < parts[1][0] else parts[::-1]
            key = (small / large, -len(removed), tuple(upper), tuple(lower))
            if best is None or key[:2] > best[:2]:
                best = key
    return None if best is None else (best[2], best[3])


def given_halves(
    keypoints: Sequence[str], upper: Any, lower: Any, flip: tuple[int, ...]
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(upper, lower) indices of the halves a schema names (its ``upper`` / ``lower`` lists),
    validated: both given, known names, disjoint, every left/right pair in one half."""
    if upper is None or lower is None:
        raise SchemaError("upper and lower go together (the two halves for half-body crops)")
    halves = []
    for key, names in (("upper", upper), ("lower", lower)):
        if isinstance(names, str) or not isinstance(names, Sequence) or not names:
            raise SchemaError(f"{key}: expected a non-empty list of keypoint names")
        unknown = [n for n in names if n not in keypoints]
        if unknown:
            raise SchemaError(f"{key}: unknown keypoint names {unknown}")
        idx = tuple(sorted({list(keypoints).index(n) for n in names}))
        split = [keypoints[i] for i in idx if flip[i] not in idx]
        if split:
            raise SchemaError(
                f"{key}: {split} without their mirror keypoints; a left/right pair belongs to "
                f"one half"
            )
        halves.append(idx)
    both = sorted(set(halves[0]) & set(halves[1]))
    if both:
        raise SchemaError(f"upper and lower share {[keypoints[i] for i in both]}")
    return halves[0], halves[1]


SKELETON_QUANTILE = 0.8
"""``skeleton_from_data`` scores a pair of keypoints by this quantile of their distance (relative
to the instance's size): short *and* steady (a forearm, not two knees that are near only while
the legs are together)."""

MAX_DERIVE_INSTANCES = 5000
"""``skeleton_from_data`` reads at most this many instances (evenly spaced)."""


def skeleton_from_data(
    keypoints: np.ndarray,
    scales: np.ndarray,
    flip: Sequence[int],
    *,
    min_shared: float = 0.5,
) -> tuple[tuple[int, int], ...]:
    """A skeleton learned from labelled instances, for schemas that come without one.

    Kruskal's minimum spanning forest over keypoint pairs, a pair's cost being the
    ``SKELETON_QUANTILE`` quantile of its distance divided by the instance's scale, over the
    instances that label both. Left/right mirror pairs (``flip``) are taken together, pooled,
    so the skeleton is mirror-symmetric (the flip test of PAF models needs that); a mirror pair
    is added when either of its limbs joins two parts, so it may close a loop (an ``extra``
    limb). A pair labelled together in fewer than ``min_shared`` of the instances of its rarer
    keypoint is not a limb; keypoints never labelled stay unconnected.

    Args:
        keypoints: (N, K, 3) x, y, v (v > 0: labelled), any pixels.
        scales: (N,) instance sizes in the same pixels (e.g. the square root of the box area);
            instances with a scale <= 0 are left out.
        flip: the schema's ``flip_index``.

    Returns:
        Limbs as 0-based (a, b) pairs with a < b, in the order added (cheapest first).
    """
    kpts = np.asarray(keypoints, np.float64)
    scales = np.asarray(scales, np.float64).reshape(-1)
    if kpts.ndim != 3 or kpts.shape[2] != 3 or len(scales) != len(kpts):
        raise SchemaError(
            f"skeleton_from_data: expected (N, K, 3) keypoints and (N,) scales, got "
            f"{kpts.shape} and {scales.shape}"
        )
    k = kpts.shape[1]
    flip = tuple(int(f) for f in flip)
    if len(flip) != k:
        raise SchemaError(f"skeleton_from_data: flip index of {len(flip)} for {k} keypoints")
    keep = np.isfinite(scales) & (scales > 0)
    kpts, scales = kpts[keep], scales[keep]
    if len(kpts) > MAX_DERIVE_INSTANCES:
        pick = np.linspace(0, len(kpts) - 1, MAX_DERIVE_INSTANCES).round().astype(int)
        kpts, scales = kpts[pick], scales[pick]
    labelled = kpts[..., 2] > 0
    counts = labelled.sum(axis=0)
    shared = labelled.T.astype(np.int64) @ labelled.astype(np.int64)  # (K, K) both labelled

    def gaps(a: int, b: int) -> np.ndarray:  # relative distances where both are labelled
        both = labelled[:, a] & labelled[:, b]
        return np.linalg.norm(kpts[both, a, :2] - kpts[both, b, :2], axis=-1) / scales[both]

    # one vector per pair labelled together somewhere, not an (N, K^2) table: schemas of
    # hundreds of keypoints (DeepFashion2's 294) stay small
    orbits: dict[tuple[tuple[int, int], ...], float] = {}
    for a, b in zip(*np.nonzero(np.triu(shared, 1)), strict=True):
        a, b = int(a), int(b)
        orbit = tuple(sorted({(a, b), tuple(sorted((flip[a], flip[b])))}))
        if orbit in orbits:
            continue
        together = np.mean([shared[edge] for edge in orbit])
        rarer = min(counts[i] for edge in orbit for i in edge)
        if together < 1 or together < min_shared * rarer:
            continue
        pooled = np.concatenate([gaps(*edge) for edge in orbit])
        orbits[orbit] = float(np.quantile(pooled, SKELETON_QUANTILE))
    parent = list(range(k))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    limbs: list[tuple[int, int]] = []
    for orbit in sorted(orbits, key=lambda o: (orbits[o], o)):
        if all(find(a) == find(b) for a, b in orbit):
            continue
        for a, b in orbit:
            parent[find(a)] = find(b)
            limbs.append((a, b))
    return tuple(limbs)
