"""Bottom-up grouping: PAF limb scores, per-limb matching, and assembly of peaks into instances.

Dimension glossary: K keypoint types, L limbs, P peaks (all types), M candidate pairs, T samples per
limb, C instances. All geometry is in **output-map pixels** (pixel centers at integer coordinates);
the caller maps results to another frame.

The steps (called in this order by ``PafCodec.decode``); none depends on a root keypoint:

1. ``score_limbs``: every (src peak, dst peak) pair of every limb, scored in one vectorized pass.
   The PAF is sampled bilinearly at T points of the segment; the score is the mean alignment of the
   samples with the segment direction plus OpenPose's distance prior, and a pair is a candidate only
   if a fraction ``min_fraction`` of its samples are aligned above ``min_score`` (OpenPose's test).
   An exact cheap test on a boolean "support" map rejects most pairs before the bilinear sampling.
2. ``match_limbs``: per limb, a one-to-one matching of its candidates: by default the matching of
   maximum total score (``scipy.optimize.linear_sum_assignment``), or OpenPose's greedy matching
   by descending score (``method="greedy"``, all limbs at once by rounds of mutual-best
   selection, which picks exactly what the sequential greedy picks). They differ when two people's
   same limbs lie on one line and overlap (shoulders side by side): the fields of both are then
   one band, the wrong long + short pairing scores almost as well per pair as the right one, and
   a difference in the 5th decimal decides the greedy; the total score does not tie.
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
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components, shortest_path

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


@dataclass(frozen=True)
class LimbPairs:
    """Scored (src peak, dst peak) pairs of limbs: candidates, or matched connections.

    Attributes:
        limb: (E,) int64 limb index.
        src, dst: (E,) int64 peak indices (into ``Peaks``) of the limb's src / dst keypoint.
        score: (E,) float32 mean PAF alignment + distance prior.
    """

    limb: np.ndarray
    src: np.ndarray
    dst: np.ndarray
    score: np.ndarray

    @staticmethod
    def empty() -> LimbPairs:
        """No pairs."""
        none = np.zeros(0, dtype=np.int64)
        return LimbPairs(none, none, none, np.zeros(0, dtype=np.float32))


@dataclass(frozen=True)
class LimbScoring:
    """Parameters of the PAF line integral (defaults of OpenPose / Lightweight OpenPose)."""

    samples: int = 10
    min_score: float = 0.05
    min_fraction: float = 0.8


def score_limbs(
    pafs: np.ndarray,
    peaks: Peaks,
    limb_src: np.ndarray,
    limb_dst: np.ndarray,
    params: LimbScoring,
) -> LimbPairs:
    """Candidate pairs of every limb with their PAF scores.

    Args:
        pafs: (2L, H, W) float32 part affinity fields (x, y per limb).
        peaks: the keypoint peaks (output-map pixels).
        limb_src, limb_dst: (L,) keypoint type of each limb's ends.
        params: sampling parameters.

    Returns:
        The pairs that pass both criteria.
    """
    _, h, w = pafs.shape
    counts = peaks.counts
    n_src, n_dst = counts[limb_src], counts[limb_dst]
    n_pairs = n_src * n_dst
    total = int(n_pairs.sum())
    if total == 0:
        return LimbPairs.empty()
    limb = np.repeat(np.arange(len(limb_src)), n_pairs)
    local = np.arange(total) - np.repeat(np.cumsum(n_pairs) - n_pairs, n_pairs)
    src = peaks.starts[limb_src[limb]] + local // n_dst[limb]
    dst = peaks.starts[limb_dst[limb]] + local % n_dst[limb]

    a = peaks.xy[src]
    delta = peaks.xy[dst] - a
    length = np.sqrt((delta**2).sum(axis=1))
    unit = delta / np.maximum(length, 1e-6)[:, None]  # coincident peaks: alignment 0, rejected
    t_all = np.linspace(0.0, 1.0, params.samples, dtype=np.float32)
    allowed_misses = int(np.floor(params.samples * (1.0 - params.min_fraction) + 1e-6))

    # Cheap exact rejection before the full integral: a sample can only be aligned above
    # min_score if a corner of its bilinear cell has a PAF norm above min_score (the "support"),
    # so a pair with more than allowed_misses samples off the support cannot pass.
    if params.min_score >= 0:
        support = _support(pafs, params.min_score).reshape(-1)
        cells = _cells(limb, a, delta, t_all, h, w)
        on = support[cells].sum(axis=1)
        alive = np.nonzero(on >= params.samples - allowed_misses)[0]
        limb, src, dst, a, delta, unit, length = (
            v[alive] for v in (limb, src, dst, a, delta, unit, length)
        )

    align = _alignment(pafs, limb, a, delta, unit, t_all)
    fraction = (align > params.min_score).mean(axis=1)
    # OpenPose's distance prior: limbs longer than half the map height are penalised.
    prior = np.minimum(0.5 * h / np.maximum(length, 1e-6) - 1.0, 0.0)
    score = align.mean(axis=1) + prior
    ok = (fraction >= params.min_fraction - 1e-6) & (score > 0)
    return LimbPairs(limb[ok], src[ok], dst[ok], score[ok].astype(np.float32))


def mean_alignment(
    pafs: np.ndarray,
    xy: np.ndarray,
    limb: np.ndarray,
    src: np.ndarray,
    dst: np.ndarray,
    samples: int,
) -> np.ndarray:
    """(M,) mean dot product of limb ``limb`` 's field with the direction from peak ``src`` to
    peak ``dst`` over ``samples`` points of the segment (``xy`` (P, 2) peak positions)."""
    if len(limb) == 0:
        return np.zeros(0, dtype=np.float32)
    a = xy[src]
    delta = xy[dst] - a
    unit = delta / np.maximum(np.sqrt((delta**2).sum(axis=1)), 1e-6)[:, None]
    t = np.linspace(0.0, 1.0, samples, dtype=np.float32)
    return _alignment(pafs, limb, a, delta, unit, t).mean(axis=1)


def _support(pafs: np.ndarray, min_score: float) -> np.ndarray:
    """(L, H, W) bool: some corner of the bilinear cell starting here has |PAF| > min_score."""
    norm2 = pafs[0::2] ** 2 + pafs[1::2] ** 2
    big = norm2 > max(min_score, 0.0) ** 2
    out = big.copy()
    out[:, :, :-1] |= big[:, :, 1:]
    out[:, :-1, :] |= out[:, 1:, :]
    return out


def _cells(
    limb: np.ndarray, a: np.ndarray, delta: np.ndarray, t: np.ndarray, h: int, w: int
) -> np.ndarray:
    """(M, T) int32 flat index (limb, y, x) of the cell whose corner starts each sample's bilinear
    neighbourhood, i.e. floor of the sample point clipped into the map."""
    xs = np.clip(a[:, 0:1] + t * delta[:, 0:1], 0, w - 1).astype(np.int32)
    ys = np.clip(a[:, 1:2] + t * delta[:, 1:2], 0, h - 1).astype(np.int32)
    cells = ys * w + xs
    cells += (limb * (h * w)).astype(np.int32)[:, None]
    return cells


def _alignment(
    pafs: np.ndarray,
    limb: np.ndarray,
    a: np.ndarray,
    delta: np.ndarray,
    unit: np.ndarray,
    t: np.ndarray,
) -> np.ndarray:
    """(M, T) dot product of the bilinearly sampled PAF with each pair's direction."""
    n, h, w = pafs.shape
    # Per limb an (H+1, W+1, 2) copy: x, y interleaved (one gather reads both) and one extra
    # zero row and column, so the +1 corners of a sample on the last row/column (weight 0) exist.
    padded = np.zeros((n // 2, h + 1, w + 1, 2), dtype=np.float32)
    padded[:, :h, :w, 0] = pafs[0::2]
    padded[:, :h, :w, 1] = pafs[1::2]
    flat = padded.reshape(-1, 2)
    x = np.clip(a[:, 0:1] + t * delta[:, 0:1], 0, w - 1)
    y = np.clip(a[:, 1:2] + t * delta[:, 1:2], 0, h - 1)
    x0, y0 = x.astype(np.int32), y.astype(np.int32)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    base = y0 * (w + 1) + x0
    base += (limb * ((h + 1) * (w + 1))).astype(np.int32)[:, None]
    top = flat[base] * (1 - fx) + flat[base + 1] * fx
    bottom = flat[base + (w + 1)] * (1 - fx) + flat[base + (w + 2)] * fx
    v = top * (1 - fy) + bottom * fy  # (M, T, 2)
    return v[..., 0] * unit[:, 0:1] + v[..., 1] * unit[:, 1:2]


MATCHING_METHODS = ("optimal", "greedy")


def match_limbs(
    candidates: LimbPairs,
    peaks: Peaks,
    limb_src: np.ndarray,
    limb_dst: np.ndarray,
    method: str = "optimal",
) -> LimbPairs:
    """One-to-one matching of each limb's candidate pairs (a peak joins at most one pair per limb).

    Args:
        candidates: scored pairs from :func:`score_limbs`.
        peaks, limb_src, limb_dst: as in :func:`score_limbs`.
        method: ``"optimal"``: per limb the matching of maximum total score (Hungarian
            algorithm); ``"greedy"``: OpenPose's, pairs taken by descending score.

    Returns:
        The matched pairs (connections).
    """
    if method not in MATCHING_METHODS:
        raise ValueError(f"matching method must be one of {MATCHING_METHODS}, got {method!r}")
    if len(candidates.limb) == 0:
        return LimbPairs.empty()
    limb = candidates.limb
    i = candidates.src - peaks.starts[limb_src[limb]]
    k = candidates.dst - peaks.starts[limb_dst[limb]]
    table = np.full((len(limb_src), int(i.max()) + 1, int(k.max()) + 1), -np.inf, np.float32)
    table[limb, i, k] = candidates.score
    if method == "greedy":
        li, ai, bi = _greedy(table)
    else:
        li, ai, bi = _optimal(table, limb, i, k)
    return LimbPairs(
        limb=li,
        src=peaks.starts[limb_src[li]] + ai,
        dst=peaks.starts[limb_dst[li]] + bi,
        score=table[li, ai, bi],
    )


def _greedy(table: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Greedy matching of every limb of an (L, A, B) score table (-inf: no candidate).

    Rounds of mutual-best selection: a pair that is the best remaining one of both its peaks is a
    pair the sequential greedy takes, and every round takes at least the best remaining pair
    (``argmax`` breaks ties by the first index on both axes). Returns (limb, row, column).
    """
    table = table.copy()
    chosen = []
    while True:
        row_best = table.argmax(axis=2)  # (L, A)
        col_best = table.argmax(axis=1)  # (L, B)
        row_max = np.take_along_axis(table, row_best[..., None], axis=2)[..., 0]
        li, ai = np.nonzero(np.isfinite(row_max))
        bi = row_best[li, ai]
        mutual = col_best[li, bi] == ai
        li, ai, bi = li[mutual], ai[mutual], bi[mutual]
        if len(li) == 0:
            break
        chosen.append((li, ai, bi))
        table[li, ai, :] = -np.inf
        table[li, :, bi] = -np.inf
    li, ai, bi = (np.concatenate(v) for v in zip(*chosen, strict=True))
    return li, ai, bi


def _optimal(
    table: np.ndarray, limb: np.ndarray, row: np.ndarray, col: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Maximum-total-score matching per limb of an (L, A, B) table (candidates: ``limb``, ``row``,
    ``col``; scores > 0). A limb whose candidates share no peak needs no solver."""
    key_a = limb * table.shape[1] + row
    key_b = limb * table.shape[2] + col
    shared_a = np.bincount(key_a, minlength=table.shape[0] * table.shape[1])[key_a] > 1
    shared_b = np.bincount(key_b, minlength=table.shape[0] * table.shape[2])[key_b] > 1
    contested = np.unique(limb[shared_a | shared_b])
    free = ~np.isin(limb, contested)
    out = [(limb[free], row[free], col[free])]
    for j in contested:
        weights = table[j]
        r, c = linear_sum_assignment(np.where(np.isfinite(weights), weights, 0.0), maximize=True)
        ok = np.isfinite(weights[r, c])  # a zero-weight pair is no pair
        out.append((np.full(int(ok.sum()), j), r[ok], c[ok]))
    li, ai, bi = (np.concatenate(v) for v in zip(*out, strict=True))
    return li, ai, bi


def assemble(connections: LimbPairs, peaks: Peaks, num_types: int) -> np.ndarray:
    """Instances from matched connections: ``(C, K)`` int64 peak index per type, -1 when absent."""
    n = len(peaks.kind)
    if n == 0:
        return np.zeros((0, num_types), dtype=np.int64)
    graph = coo_matrix(
        (np.ones(len(connections.src)), (connections.src, connections.dst)), shape=(n, n)
    )
    _, label = connected_components(graph, directed=False)
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
        if len(ci) > _MAX_MERGE_PAIRS:  # noise: keep the pairs closest by the cheap test
            closest = np.argpartition(gap / pair_scale, _MAX_MERGE_PAIRS)[:_MAX_MERGE_PAIRS]
            ci, cj, pair_scale = ci[closest], cj[closest], pair_scale[closest]
        dist = np.sqrt(((pos[ci][:, :, None] - pos[cj][:, None, :]) ** 2).sum(axis=3))  # (M,K,K)
        valid = ~np.isnan(dist)
        # feasible: every keypoint pair is within reach of its path bound; first the loose
        # bound (every limb as long as the longest found), then the exact one on the survivors
        spread = np.where(valid, dist / hops, -np.inf).max(axis=(1, 2)) / pair_scale
        ok = spread <= reach
        sel = np.nonzero(ok)[0]
        bound = _path_bounds(
            limbs[ci[sel]], limbs[cj[sel]], pair_scale[sel], limb_mirror, limb_src, limb_dst, hops
        )
        excess = np.where(valid[sel], dist[sel] - reach * bound, -np.inf).max(axis=(1, 2))
        ok[sel] = excess <= 1e-6 * pair_scale[sel]
        # preference: distance over hops of the pair closest in the skeleton (most constraining)
        near_hops = np.where(valid, hops, np.inf).min(axis=(1, 2))
        nearest = valid & (hops == near_hops[:, None, None])
        ratio = np.where(nearest, dist, np.inf).min(axis=(1, 2)) / near_hops / pair_scale
        ci, cj, ratio = ci[ok], cj[ok], ratio[ok]
        if len(ci) == 0:
            break
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


def _path_bounds(
    limbs_a: np.ndarray,
    limbs_b: np.ndarray,
    pair_scale: np.ndarray,
    limb_mirror: np.ndarray | None,
    limb_src: np.ndarray,
    limb_dst: np.ndarray,
    hops: np.ndarray,
) -> np.ndarray:
    """(M, K, K) longest possible distance between keypoint types of the union of M instance pairs.

    Args:
        limbs_a, limbs_b: (M, L) limb lengths found in each instance of a pair (NaN: not found).
        pair_scale: (M,) longest limb found in either: the length of a limb nothing bounds.
        limb_mirror, limb_src, limb_dst, hops: as in :func:`merge_fragments`.

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
    k = len(hops)
    paths = np.full((len(found), k, k), np.inf, dtype=np.float32)
    paths[:, limb_src, limb_dst] = weight
    paths[:, limb_dst, limb_src] = weight
    for via in range(k):
        np.minimum(paths, paths[:, :, via, None] + paths[:, None, via, :], out=paths)
    return np.where(np.isfinite(paths), paths, hops * pair_scale[:, None, None])


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
    adjacency = np.zeros((num_types, num_types))
    adjacency[limb_src, limb_dst] = 1.0
    hops = shortest_path(adjacency, unweighted=True, directed=False)
    finite = hops[np.isfinite(hops)]
    hops[~np.isfinite(hops)] = finite.max() + 1.0
    np.fill_diagonal(hops, np.inf)
    return hops
