"""Skeleton derivations of a schema: limbs in grouping order, roots, the PAF flip map, colors.

Pure functions of keypoint indices, used by ``KeypointSchema`` at construction:

- ``grouping_order``: the limbs breadth-first from each connected part's root over a spanning tree,
  each limb pointing away from the root; limbs that close a loop come once both of their ends are
  reached and are marked ``extra`` (``limb_order: given`` keeps the user's order, validated);
- ``paf_flip``: how the 2L PAF channels of a mirrored image map to the original ones;
- ``colors``: BGR drawing colors, mirror limbs in neighbouring hues.
"""

from __future__ import annotations

import colorsys
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from posekit.errors import SchemaError

logger = logging.getLogger(__name__)

__all__ = ["Limb", "PafFlip", "colors", "grouping_order", "paf_flip"]


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
            "schema %r: skeleton is not connected (%d parts); each part gets its own root: %s",
            name,
            len(components),
            [keypoints[r] for r in roots],
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
