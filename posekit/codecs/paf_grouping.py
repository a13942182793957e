"""Bottom-up grouping: assembly of matched limbs into instances, and fragment merging.

Dimension glossary: K keypoint types, L limbs, P peaks (all types), M candidate pairs, C instances.
All geometry is in **output-map pixels** (pixel centers at integer coordinates); the caller maps
results to another frame.

The steps (called in this order by ``PafCodec.decode``, after ``paf_limbs.score_limbs`` and
``paf_limbs.match_limbs``); none depends on a root keypoint:

3. ``assemble``: each matched connection joins its two peaks and instances are the connected
   components, so a person whose root (e.g. the neck) is missing is still one instance when its
   parts are linked by any limbs. A component that holds two peaks of one type (a wrong
   connection; possible with loop-closing limbs and imperfect maps) is rebuilt limb by limb in
   grouping order, refusing every merge that would repeat a keypoint type.
4. ``merge_fragments``: parts of one person with no limb between them (a wrist whose elbow is
   hidden, the legs of a person without a neck) are separate components. Two instances that share
   no keypoint type merge when their union is anatomically possible: every keypoint pair (a, b) is
   at most ``reach`` times the length of the shortest skeleton path between the two types apart,
   each limb on it counted with its length in the union if found there, else at most twice the
   length of its mirror limb (``schema.flip_index``) if that is found (a limb seen foreshortened
   to half of its mirror is still allowed), else the longest limb found in either. Partners are
   chosen by rounds of mutual best on the distance of their skeleton-closest keypoint pair,
   relative to ``hops * longest limb`` (``hops``: limbs between the two types). Two fragments
   without any limb (lone keypoints, e.g. the two hips of a person whose neck is hidden, in a
   schema that joins hips only through the neck) take as longest limb the longest limb of the
   image's other instances (such a person is often one cut by the image border or seen up close,
   not a typical one), or, when no instance has a limb, the longest limb the limb scoring accepts
   without penalty (half the map height, OpenPose's distance prior).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from posekit.codecs.graph import connected_labels, hop_distances
from posekit.codecs.paf_limbs import LimbPairs
from posekit.codecs.peaks import Peaks
from posekit.geometry import transform_points
from posekit.structures import Pose

_MIRROR_SLACK = 2.0
"""A limb missing from an instance is bounded by this many times its mirror limb's length (the
same bone of the other side, foreshortened differently in the image)."""

_MAX_MERGE_PAIRS = 2_000
"""Fragment merging examines at most this many instance pairs per round (the closest ones): a
bound on time and memory, (pairs, K, K) arrays, that only noisy maps with hundreds of fragments
reach (perfect maps of 50 people leave at most 66 pairs after the cheap distance test; maps of
uniform noise decode in 0.5 s instead of 2 s with a bound of 20,000)."""

_MERGE_ELEMENTS = 1_000_000
"""...and at most this many (pair, type, type) cells: the types are those found in the pairs
examined, so schemas of many keypoints (whole-body 133, DeepFashion2's 294) examine fewer pairs
per round instead of building arrays of gigabytes (COCO's 17 types keep the 2,000)."""


def assemble(connections: LimbPairs, peaks: Peaks, num_types: int) -> np.ndarray:
    """Instances from matched connections: ``(C, K)`` int64 peak index per type, -1 when absent."""
    n = len(peaks.kind)
    if n == 0:
        return np.zeros((0, num_types), dtype=np.int64)
    label = connected_labels(n, connections.src, connections.dst)
    # A component holding two peaks of one type was joined by an inconsistent connection.
    per_type = np.bincount(label * num_types + peaks.kind, minlength=(label.max() + 1) * num_types)
    bad = np.unique(label[per_type[label * num_types + peaks.kind] > 1])
    if len(bad):
        label = _rebuild(connections, peaks, label, bad, num_types)
    _, label = np.unique(label, return_inverse=True)
    slots = np.full((label.max() + 1, num_types), -1, dtype=np.int64)
    slots[label, peaks.kind] = np.arange(n)
    return slots


def _rebuild(
    connections: LimbPairs, peaks: Peaks, label: np.ndarray, bad: np.ndarray, num_types: int
) -> np.ndarray:
    """Re-join the peaks of conflicting components limb by limb, refusing type-repeating merges.

    Within one limb the accepted merges are disjoint pairs of groups (a group holds at most one
    peak of the limb's src type, used by at most one connection), so each limb is one vectorized step.
    """
    label = label.copy()
    in_bad = np.isin(label, bad)
    members = np.nonzero(in_bad)[0]
    label[members] = members + label.max() + 1  # every affected peak alone, fresh ids
    occupied = np.zeros((label.max() + 1, num_types), dtype=bool)
    occupied[label, peaks.kind] = True
    keep = in_bad[connections.src]
    for j in np.unique(connections.limb[keep]):
        sel = keep & (connections.limb == j)
        ga, gb = label[connections.src[sel]], label[connections.dst[sel]]
        ok = (ga != gb) & ~(occupied[ga] & occupied[gb]).any(axis=1)
        ga, gb = ga[ok], gb[ok]
        occupied[ga] |= occupied[gb]
        remap = np.arange(len(occupied))
        remap[gb] = ga
        label = remap[label]
    return label


def merge_fragments(
    slots: np.ndarray,
    xy: np.ndarray,
    hops: np.ndarray,
    limb_src: np.ndarray,
    limb_dst: np.ndarray,
    reach: float,
    limb_mirror: np.ndarray | None = None,
    limb_support: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None = None,
    lone_scale: float = 0.0,
) -> np.ndarray:
    """Merge instances that share no keypoint type and lie within reach of each other.

    Args:
        slots: (C, K) peak index per type (-1 absent), from :func:`assemble`.
        xy: (P, 2) peak positions.
        hops: (K, K) float skeleton distance in limbs (``inf`` on the diagonal).
        limb_src, limb_dst: (L,) limb ends, to measure each instance's longest limb.
        reach: merge only when every keypoint pair is within ``reach`` times its skeleton path
            length (see the module docstring); 0 disables merging.
        limb_mirror: (L,) index of each limb's mirror limb, -1 for none (:func:`limb_mirrors`);
            None: no limb has one.
        limb_support: optional ``(limb, src_peak, dst_peak) -> (M,) bool``: whether the maps
            show that limb between the two peaks (``PafCodec.decode`` passes "mean PAF alignment
            above ``paf_min_score``"). Two instances joined by a limb whose two ends they hold
            (one each) merge only if the limb has support: with both ends found, a limb the
            field does not show is a gap between two people, not a hidden joint.
        lone_scale: the longest limb assumed for two instances without any limb when no
            instance has one (``PafCodec.decode``: half the map height); 0: they stay apart.

    Returns:
        (C', K) slots after merging.
    """
    if reach <= 0:
        return slots
    k_on_limbs = len(np.unique(np.concatenate([limb_src, limb_dst])))  # _path_bounds' size
    while len(slots) > 1:
        found = slots >= 0
        pos = np.where(found[..., None], xy[np.maximum(slots, 0)], np.float32(np.nan))  # (C,K,2)
        limbs = np.sqrt(((pos[:, limb_src] - pos[:, limb_dst]) ** 2).sum(axis=2))  # (C, L)
        scale = np.where(np.isnan(limbs), -1.0, limbs).max(axis=1, initial=-1.0)
        overlap = found.astype(np.int32) @ found.T.astype(np.int32)
        ci, cj = np.nonzero(np.triu(overlap == 0, k=1))
        pair_scale = np.maximum(scale[ci], scale[cj])
        # two fragments without a limb: as large as the image's largest, else the largest allowed
        largest = scale.max() if (scale > 0).any() else lone_scale
        pair_scale = np.where(pair_scale > 0, pair_scale, largest)
        # Necessary for feasibility, cheap: one keypoint pair (each one's first) within reach.
        first = found.argmax(axis=1)
        rep = pos[np.arange(len(slots)), first]
        gap = np.sqrt(((rep[ci] - rep[cj]) ** 2).sum(axis=1)) / hops[first[ci], first[cj]]
        ok = (pair_scale > 0) & (gap <= reach * pair_scale)
        ci, cj, pair_scale, gap = ci[ok], cj[ok], pair_scale[ok], gap[ok]
        if limb_support is not None and len(ci):
            ok = _supported(slots, ci, cj, limb_src, limb_dst, limb_support)
            ci, cj, pair_scale, gap = ci[ok], cj[ok], pair_scale[ok], gap[ok]
        if len(ci) == 0:
            break
        # the exact test in batches of the pairs closest by the cheap one, until one passes:
        # (M, T, T) arrays, T the types found in the batch's pairs, of a bounded size
        order = np.argsort(gap / pair_scale, kind="stable")
        width = max(len(_types_of(found, ci, cj)), k_on_limbs)
        cap = min(_MAX_MERGE_PAIRS, max(1, _MERGE_ELEMENTS // width**2))
        for first in range(0, len(order), cap):
            batch = order[first : first + cap]
            ok, ratio = _feasible(pos, found, limbs, ci[batch], cj[batch], pair_scale[batch],
                                  hops, reach, limb_mirror, limb_src, limb_dst)  # fmt: skip
            if ok.any():
                break
        else:
            break
        ci, cj, ratio = ci[batch][ok], cj[batch][ok], ratio[ok]
        # Mutual best on unique ranks (ties broken by pair order): each instance's best partner
        # must choose it back; the best pair overall always does, so every round merges.
        rank = np.empty(len(ci), dtype=np.int64)
        rank[np.lexsort((cj, ci, ratio))] = np.arange(len(ci))
        best = np.full(len(slots), len(ci))
        np.minimum.at(best, ci, rank)
        np.minimum.at(best, cj, rank)
        take = (rank == best[ci]) & (rank == best[cj])
        ci, cj = ci[take], cj[take]
        slots[ci] = np.maximum(slots[ci], slots[cj])
        slots = np.delete(slots, cj, axis=0)
    return slots


def _supported(
    slots: np.ndarray,
    ci: np.ndarray,
    cj: np.ndarray,
    limb_src: np.ndarray,
    limb_dst: np.ndarray,
    limb_support: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray],
) -> np.ndarray:
    """(M,) bool: every limb with one end in instance ``ci`` and the other in ``cj`` (M pairs) has
    support in the maps (True when no limb joins them directly)."""
    ok = np.ones(len(ci), dtype=bool)
    for first, second in ((ci, cj), (cj, ci)):
        a, b = slots[first][:, limb_src], slots[second][:, limb_dst]  # (M, L) peak indices
        pair, limb = np.nonzero((a >= 0) & (b >= 0))
        if len(pair):
            seen = limb_support(limb, a[pair, limb], b[pair, limb])
            ok[pair[~seen]] = False
    return ok


def _feasible(
    pos: np.ndarray,
    found: np.ndarray,
    limbs: np.ndarray,
    ci: np.ndarray,
    cj: np.ndarray,
    pair_scale: np.ndarray,
    hops: np.ndarray,
    reach: float,
    limb_mirror: np.ndarray | None,
    limb_src: np.ndarray,
    limb_dst: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(M,) bool: instance pairs (``ci``, ``cj``) that may be one person (every keypoint pair of
    the union within ``reach`` of its path bound), and (M,) the preference of each (distance
    over hops of its pair of types closest in the skeleton, per ``pair_scale``; lower first).
    ``pos`` (C, K, 2) NaN where not found, ``found`` (C, K), ``limbs`` (C, L) limb lengths."""
    types = _types_of(found, ci, cj)
    sub_hops = hops[np.ix_(types, types)]
    pos_i, pos_j = pos[ci][:, types], pos[cj][:, types]
    dist = np.sqrt(((pos_i[:, :, None] - pos_j[:, None, :]) ** 2).sum(axis=3))  # (M, T, T)
    valid = ~np.isnan(dist)
    # first the loose bound (every limb as long as the longest found), then the exact one on
    # the survivors
    spread = np.where(valid, dist / sub_hops, -np.inf).max(axis=(1, 2)) / pair_scale
    ok = spread <= reach
    sel = np.nonzero(ok)[0]
    bound = _path_bounds(
        limbs[ci[sel]], limbs[cj[sel]], pair_scale[sel], limb_mirror, limb_src, limb_dst, hops,
        types,
    )  # fmt: skip
    excess = np.where(valid[sel], dist[sel] - reach * bound, -np.inf).max(axis=(1, 2))
    ok[sel] = excess <= 1e-6 * pair_scale[sel]
    near_hops = np.where(valid, sub_hops, np.inf).min(axis=(1, 2))
    nearest = valid & (sub_hops == near_hops[:, None, None])
    ratio = np.where(nearest, dist, np.inf).min(axis=(1, 2)) / near_hops / pair_scale
    return ok, ratio


def _types_of(found: np.ndarray, ci: np.ndarray, cj: np.ndarray) -> np.ndarray:
    """Sorted keypoint types found in any instance of the pairs (``ci``, ``cj``)."""
    return np.nonzero(found[ci].any(axis=0) | found[cj].any(axis=0))[0]


def _path_bounds(
    limbs_a: np.ndarray,
    limbs_b: np.ndarray,
    pair_scale: np.ndarray,
    limb_mirror: np.ndarray | None,
    limb_src: np.ndarray,
    limb_dst: np.ndarray,
    hops: np.ndarray,
    types: np.ndarray,
) -> np.ndarray:
    """(M, T, T) longest possible distance between the keypoint ``types`` (T) of the union of M
    instance pairs.

    Args:
        limbs_a, limbs_b: (M, L) limb lengths found in each instance of a pair (NaN: not found).
        pair_scale: (M,) longest limb found in either: the length of a limb nothing bounds.
        limb_mirror, limb_src, limb_dst, hops: as in :func:`merge_fragments`.
        types: the keypoint types wanted (the paths run over every type on a limb).

    Returns:
        Shortest skeleton paths (Floyd-Warshall, vectorized over the pairs) with each limb weighted
        by its length in the union, else ``_MIRROR_SLACK`` times its mirror's (at most
        ``pair_scale``), else ``pair_scale``; ``hops * pair_scale`` between skeleton components.
    """
    found = np.fmax(limbs_a, limbs_b)  # a limb is in at most one of the two (no shared type)
    scale = pair_scale[:, None]
    weight = np.where(np.isnan(found), scale, found)
    if limb_mirror is not None:
        mirrored = np.where(limb_mirror >= 0, found[:, np.maximum(limb_mirror, 0)], np.nan)
        weight = np.where(np.isnan(found), np.fmin(_MIRROR_SLACK * mirrored, scale), weight)
    # only types on a limb have paths, and only those on two or more lie inside one (a leaf is
    # an end): a schema of many keypoints with few limbs (DeepFashion2's 294) stays cheap
    nodes, degree = np.unique(np.concatenate([limb_src, limb_dst]), return_counts=True)
    at = np.searchsorted(nodes, [limb_src, limb_dst])
    n = len(nodes)
    paths = np.full((len(found), n, n), np.inf, dtype=np.float32)
    paths[:, at[0], at[1]] = weight
    paths[:, at[1], at[0]] = weight
    for via in np.nonzero(degree >= 2)[0]:
        np.minimum(paths, paths[:, :, via, None] + paths[:, None, via, :], out=paths)
    out = hops[np.ix_(types, types)] * pair_scale[:, None, None]
    # the wanted types that lie on a limb: their rows / columns in ``paths`` and in ``out``
    on_limb = np.isin(types, nodes)
    rows, there = np.searchsorted(nodes, types[on_limb]), np.nonzero(on_limb)[0]
    block = paths[:, rows][:, :, rows]
    cells = np.ix_(np.arange(len(found)), there, there)
    out[cells] = np.where(np.isfinite(block), block, out[cells])
    return out


def limb_mirrors(limb_src: np.ndarray, limb_dst: np.ndarray, flip_index: np.ndarray) -> np.ndarray:
    """(L,) index of the limb joining the flipped ends of each limb (itself for a limb across the
    middle, like the shoulders), -1 when the skeleton has none."""
    index = {(int(a), int(b)): j for j, (a, b) in enumerate(zip(limb_src, limb_dst, strict=True))}
    index.update({(b, a): j for (a, b), j in list(index.items())})
    flip = np.asarray(flip_index)
    return np.array(
        [
            index.get((int(flip[a]), int(flip[b])), -1)
            for a, b in zip(limb_src, limb_dst, strict=True)
        ],
        dtype=np.int64,
    )


def to_poses(
    slots: np.ndarray,
    peaks: Peaks,
    affine: np.ndarray | None,
    min_keypoints: int,
    min_score: float,
) -> list[Pose]:
    """Poses of the instances, by descending score, dropping the small and the unsure ones.

    Args:
        slots: (C, K) peak index per type (-1 absent).
        peaks: the peaks (output-map pixels).
        affine: optional (2, 3) matrix from output-map pixels to the frame of the poses.
        min_keypoints, min_score: drop instances with fewer keypoints or a lower score.

    Returns:
        Poses with keypoints (K, 3): x, y and the peak score (clipped to [0, 1]), (0, 0, 0) when
        absent; score = the mean keypoint score over all K types; bbox of the found keypoints.
    """
    found = slots >= 0
    kpts = np.zeros((*slots.shape, 3), dtype=np.float32)
    if len(peaks.xy):
        pts = peaks.xy[np.maximum(slots, 0)].astype(np.float64)
        kpts[..., :2] = pts if affine is None else transform_points(pts, affine)
        kpts[..., 2] = np.clip(peaks.score[np.maximum(slots, 0)], 0.0, 1.0)
    kpts[~found] = 0.0
    score = kpts[..., 2].mean(axis=1)
    keep = np.nonzero((found.sum(axis=1) >= min_keypoints) & (score >= min_score))[0]
    keep = keep[np.argsort(-score[keep], kind="stable")]
    lo = np.where(found[..., None], kpts[..., :2], np.inf).min(axis=1)
    hi = np.where(found[..., None], kpts[..., :2], -np.inf).max(axis=1)
    boxes = np.concatenate([lo, hi], axis=1).astype(np.float32)
    return [Pose(keypoints=kpts[i], score=float(score[i]), bbox=boxes[i]) for i in keep]


def skeleton_hops(num_types: int, limb_src: np.ndarray, limb_dst: np.ndarray) -> np.ndarray:
    """(K, K) number of limbs between keypoint types; ``inf`` on the diagonal.

    Types in different skeleton components get one more than the longest finite distance, so
    the fragment merge can still join the parts of a disconnected skeleton.
    """
    hops = hop_distances(num_types, limb_src, limb_dst)
    finite = hops[np.isfinite(hops)]
    hops[~np.isfinite(hops)] = finite.max() + 1.0
    np.fill_diagonal(hops, np.inf)
    return hops
