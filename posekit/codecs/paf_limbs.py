"""PAF limb scores and per-limb matching: which peaks each limb connects.

Dimension glossary: K keypoint types, L limbs, P peaks (all types), M candidate pairs, T samples per
limb. All geometry is in **output-map pixels** (pixel centers at integer coordinates).

The first two steps of ``PafCodec.decode`` (``paf_grouping`` assembles their result):

1. ``score_limbs``: every (src peak, dst peak) pair of every limb, scored in one vectorized pass.
   The PAF is sampled bilinearly at T points of the segment; the score is the mean alignment of the
   samples with the segment direction plus OpenPose's distance prior, and a pair is a candidate only
   if a fraction ``min_fraction`` of its samples are aligned above ``min_score`` (OpenPose's test).
   An exact cheap test on a boolean "support" map rejects most pairs before the bilinear sampling.
2. ``match_limbs``: per limb, a one-to-one matching of its candidates: by default the matching of
   maximum total score (exact: enumerated for small contested tables, else
   ``scipy.optimize.linear_sum_assignment``), or OpenPose's greedy matching
   by descending score (``method="greedy"``, all limbs at once by rounds of mutual-best
   selection, which picks exactly what the sequential greedy picks). They differ when two people's
   same limbs lie on one line and overlap (shoulders side by side): the fields of both are then
   one band, the wrong long + short pairing scores almost as well per pair as the right one, and
   a difference in the 5th decimal decides the greedy; the total score does not tie.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass

import numpy as np

from posekit.codecs.peaks import Peaks

__all__ = [
    "MATCHING_METHODS",
    "LimbPairs",
    "LimbScoring",
    "match_limbs",
    "mean_alignment",
    "score_limbs",
]


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


EXHAUSTIVE_MAX = 5040
"""Largest number of one-to-one matchings (``7!``: a 7 x 7 table) that ``_max_assignment``
enumerates instead of loading the solver: well under a millisecond, where importing
``scipy.optimize`` takes about 0.6 s (measured, SciPy 1.17) and would be most of the time to the
first image of ``posekit predict`` with an exported model."""


def _max_assignment(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of a maximum-total matching of an (A, B) table of scores >= 0.

    When the rows that score anything all prefer different columns (or the columns different
    rows), taking those preferences is optimal: it reaches the sum of the row (column) maxima,
    an upper bound of every matching. A real conflict among the scoring rows and columns is
    solved exactly: by enumerating every matching when there are at most ``EXHAUSTIVE_MAX`` of
    them (contested limbs of a few people), else by ``scipy.optimize.linear_sum_assignment``
    (imported only then)."""
    scoring = []  # the rows, then the columns, that score anything
    for axis in (1, 0):
        best = weights.argmax(axis=axis)
        live = np.flatnonzero(weights.max(axis=axis) > 0)
        if len(np.unique(best[live])) == len(live):
            return (live, best[live]) if axis == 1 else (best[live], live)
        scoring.append(live)
    rows, cols = scoring
    small, large = sorted((len(rows), len(cols)))
    if math.perm(large, small) <= EXHAUSTIVE_MAX:
        sub = weights[np.ix_(rows, cols)]
        if len(rows) <= len(cols):
            r, c = _exhaustive_assignment(sub)
        else:
            c, r = _exhaustive_assignment(sub.T)
        return rows[r], cols[c]
    from scipy.optimize import linear_sum_assignment

    return linear_sum_assignment(weights, maximize=True)


def _exhaustive_assignment(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The best of all matchings of every row of an (A, B) table with A <= B: rows 0..A-1 and
    their columns (each matching scored in one vectorised sum)."""
    a, b = weights.shape
    choices = _injections(a, b)  # (P, A) column of each row
    totals = weights[np.arange(a), choices].sum(axis=1)
    return np.arange(a), choices[int(np.argmax(totals))]


@functools.lru_cache(maxsize=64)
def _injections(a: int, b: int) -> np.ndarray:
    """(b! / (b - a)!, a) int64: every one-to-one map of a rows into b columns."""
    return np.array(list(itertools.permutations(range(b), a)), dtype=np.int64).reshape(-1, a)


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
        r, c = _max_assignment(np.where(np.isfinite(weights), weights, 0.0))
        ok = np.isfinite(weights[r, c])  # a zero-weight pair is no pair
        out.append((np.full(int(ok.sum()), j), r[ok], c[ok]))
    li, ai, bi = (np.concatenate(v) for v in zip(*out, strict=True))
    return li, ai, bi
