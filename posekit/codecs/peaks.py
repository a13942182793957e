"""Peak finding on heatmaps: local maxima above a threshold, with optional upsampling and sub-pixel
refinement.

Dimension glossary: C channels (keypoint types), H x W map rows x columns, P peaks, f upsampling factor.

Coordinates are **map pixels** of the maps given to :func:`find_peaks`, with pixel centers at integer
coordinates (the cv2 convention used everywhere in posekit). When the maps are upsampled by an
integer factor ``f`` (cv2 cubic, half-pixel aligned), a peak at upsampled pixel ``u`` is reported at
``(u - (f - 1) / 2) / f`` in the original map's pixels, so the frame of the result never depends on
``f``.

Refinement fits a parabola to the log heatmap along x and along y through the peak and its two
neighbours (``refine.log_parabola``). That is exact for an isotropic Gaussian blob (the PAF codec's
targets), and it is what the DARK heatmap decoder (``refine.refine_dark``) does without the
Hessian's cross term.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from posekit.codecs.refine import log_parabola, safe_log
from posekit.geometry import cv2_on_maps

_UPSAMPLED_MIN_DISTANCE = 1.0
"""On upsampled maps, a peak closer than this (map pixels, i.e. one cell of the searched maps
before upsampling) to a higher one of its channel is dropped. Cubic upsampling rings, which makes
spurious local maxima next to real ones, mostly at the map border. Lightweight OpenPose uses 6 input
pixels at stride 8 (0.75), which leaves more of them."""

_KERNEL = np.ones((3, 3), dtype=np.uint8)

# 8-neighbourhood offsets (dy, dx); the ones before the center in raster order are compared
# strictly so that a plateau of equal values yields exactly one peak (its first cell).
_NEIGHBOURS = tuple((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0))


@dataclass(frozen=True)
class Peaks:
    """Local maxima of a stack of heatmaps, grouped by channel.

    Attributes:
        xy: (P, 2) float32 — x, y in pixels of the (not upsampled) maps.
        score: (P,) float32 — heatmap value at the peak (the fitted maximum when refined).
        kind: (P,) int64 — channel of each peak; sorted ascending, and by descending score within
            one channel.
        starts: (C + 1,) int64 — peaks of channel c are ``starts[c]:starts[c + 1]``.
    """

    xy: np.ndarray
    score: np.ndarray
    kind: np.ndarray
    starts: np.ndarray

    @property
    def counts(self) -> np.ndarray:
        """(C,) int64 number of peaks per channel."""
        return np.diff(self.starts)


def upsample_maps(maps: np.ndarray, factor: int) -> np.ndarray:
    """Bicubic upsampling ``(C, H, W) -> (C, f*H, f*W)`` float32, half-pixel aligned (cv2)."""
    if factor == 1:
        return maps
    _, h, w = maps.shape
    size = (w * factor, h * factor)
    return cv2_on_maps(
        maps, size, lambda chunk: cv2.resize(chunk, size, interpolation=cv2.INTER_CUBIC)
    )


def find_peaks(
    maps: np.ndarray,
    threshold: float,
    *,
    upsample: int = 1,
    refine: bool = True,
    max_per_channel: int | None = None,
) -> Peaks:
    """Local maxima (8-neighbourhood) above ``threshold`` of each channel of ``maps``.

    Args:
        maps: (C, H, W) float32 heatmaps; not modified.
        threshold: minimum heatmap value of a peak.
        upsample: integer factor; > 1 upsamples the maps (bicubic) before the search.
        refine: sub-pixel refinement by a log-parabola fit (at the searched resolution).
        max_per_channel: keep only this many highest peaks per channel (None: all).

    Returns:
        :class:`Peaks` in pixels of the given (not upsampled) maps.
    """
    search = upsample_maps(maps, upsample)
    c, h, w = search.shape
    pad = 2  # refinement at a border reads two pixels inwards; outside the map is -inf
    padded = np.full((c, h + 2 * pad, w + 2 * pad), -np.inf, dtype=np.float32)
    padded[:, pad:-pad, pad:-pad] = search
    # Candidates: cells above the threshold and not below any neighbour (a 3x3 dilation of the
    # channels stacked as one image; the -inf padding keeps them apart); the exact test below
    # breaks ties.
    grown = cv2.dilate(padded.reshape(c * (h + 2 * pad), w + 2 * pad), _KERNEL)
    grown = grown.reshape(padded.shape)[:, pad:-pad, pad:-pad]
    kind, ys, xs = np.nonzero((search > threshold) & (search >= grown))
    center = search[kind, ys, xs]
    keep = np.ones(center.shape, dtype=bool)
    for dy, dx in _NEIGHBOURS:
        other = padded[kind, ys + pad + dy, xs + pad + dx]
        keep &= center > other if (dy, dx) < (0, 0) else center >= other
    kind, ys, xs, center = kind[keep], ys[keep], xs[keep], center[keep]

    x = xs.astype(np.float32)
    y = ys.astype(np.float32)
    score = center
    if refine and len(center):
        log_c = safe_log(center)
        row = padded[kind, ys + pad]  # (P, W + 4): the peak's row
        col = padded[kind, :, xs + pad]  # (P, H + 4): the peak's column
        dx, gain_x = log_parabola(*(_take(row, xs + pad + o) for o in (-2, -1, 1, 2)), log_c)
        dy, gain_y = log_parabola(*(_take(col, ys + pad + o) for o in (-2, -1, 1, 2)), log_c)
        x += dx
        y += dy
        score = np.exp(log_c + gain_x + gain_y).astype(np.float32)
    if upsample > 1:  # upsampled pixel u -> map pixel (u - (f - 1) / 2) / f
        x = (x - (upsample - 1) / 2.0) / upsample
        y = (y - (upsample - 1) / 2.0) / upsample

    xy = np.stack([x, y], axis=1)
    if upsample > 1:
        found = _sorted_peaks(xy, score, kind, c)
        keep = _suppress_close(found.xy, found.starts, _UPSAMPLED_MIN_DISTANCE)
        xy, score, kind = found.xy[keep], found.score[keep], found.kind[keep]
    return _sorted_peaks(xy, score, kind, c, max_per_channel)


def _sorted_peaks(
    xy: np.ndarray,
    score: np.ndarray,
    kind: np.ndarray,
    num_channels: int,
    max_per_channel: int | None = None,
) -> Peaks:
    """:class:`Peaks` of unordered peaks: sorted by channel, then by descending score (ties keep
    their order), at most ``max_per_channel`` highest per channel (None: all)."""
    order = np.lexsort((-score, kind))
    xy, score, kind = xy[order].astype(np.float32), score[order].astype(np.float32), kind[order]
    starts = np.searchsorted(kind, np.arange(num_channels + 1)).astype(np.int64)
    if max_per_channel is not None and (np.diff(starts) > max_per_channel).any():
        keep = np.arange(len(kind)) - starts[kind] < max_per_channel
        xy, score, kind = xy[keep], score[keep], kind[keep]
        starts = np.searchsorted(kind, np.arange(num_channels + 1)).astype(np.int64)
    return Peaks(xy=xy, score=score, kind=kind, starts=starts)


def add_close_peaks(
    maps: np.ndarray,
    peaks: Peaks,
    threshold: float,
    factor: int,
    *,
    radius: float = 2.0,
    max_per_channel: int | None = None,
    refine: bool = True,
) -> Peaks:
    """``peaks`` (found at map resolution) plus the peaks that the coarse grid merged into them.

    Two keypoints of one type closer than about 1.5 map pixels make one local maximum on the
    grid. Each peak's neighbourhood (``radius`` map pixels) is upsampled by ``factor`` (bicubic, as
    :func:`find_peaks` with ``upsample``) and searched again; a local maximum found there is new if
    it is at least one map pixel from every peak of its channel and half a pixel inside the map
    (cubic ringing makes spurious maxima at the border). Only neighbourhoods are upsampled, so
    the cost grows with the number of peaks, not with the map size.

    Args:
        maps: (C, H, W) heatmaps the peaks were found on.
        peaks: their peaks (map pixels), e.g. ``find_peaks(maps, threshold)``.
        threshold: minimum heatmap value of a peak.
        factor: upsampling factor of the neighbourhoods (>= 2).
        radius: search radius around each peak, map pixels.
        max_per_channel: keep only this many highest peaks per channel (None: all); applied
            when peaks are added (the given ones are taken as found under the same cap).
        refine: sub-pixel refinement of the new peaks (at the upsampled resolution).

    Returns:
        All peaks, sorted as :class:`Peaks` requires; new ones scored like the others.
    """
    if factor < 2 or len(peaks.kind) == 0:
        return peaks
    c, h, w = maps.shape
    reach = int(np.ceil(radius)) + 2  # two more cells of context for the cubic kernel
    cx = np.clip(np.rint(peaks.xy[:, 0]).astype(np.int64), 0, w - 1)
    cy = np.clip(np.rint(peaks.xy[:, 1]).astype(np.int64), 0, h - 1)
    offsets = np.arange(-reach, reach + 1)
    rows = np.clip(cy[:, None] + offsets, 0, h - 1)  # clipped: the border replicated
    cols = np.clip(cx[:, None] + offsets, 0, w - 1)
    windows = maps[peaks.kind[:, None, None], rows[:, :, None], cols[:, None, :]]
    # (P, S, S); window pixel (i, j) is map pixel (cy - reach + i, cx - reach + j)
    # Search only the upsampled pixels within the radius (plus one for the local-max test):
    # upsampled pixel u is window pixel (u - (f - 1) / 2) / f.
    half = (factor - 1) / 2.0
    lo = int(np.floor(factor * (reach - radius) + half)) - 1
    hi = int(np.ceil(factor * (reach + radius) + half)) + 2
    fine = upsample_maps(windows, factor)[:, lo:hi, lo:hi]
    found = find_peaks(fine, threshold, refine=refine)
    wx = (found.xy[:, 0] + lo - half) / factor  # window pixels
    wy = (found.xy[:, 1] + lo - half) / factor
    near = (wx - reach) ** 2 + (wy - reach) ** 2 <= radius**2
    x = wx + (cx - reach)[found.kind]
    y = wy + (cy - reach)[found.kind]
    inside = (x >= 0.5) & (x <= w - 1.5) & (y >= 0.5) & (y <= h - 1.5)
    # drop the window's own peak at once (the common case), then every coarse peak's twin
    owner_d2 = (x - peaks.xy[found.kind, 0]) ** 2 + (y - peaks.xy[found.kind, 1]) ** 2
    sel = np.nonzero(near & inside & (owner_d2 >= 1.0))[0]
    if len(sel) == 0:
        return peaks
    kind = peaks.kind[found.kind[sel]]
    xy = np.stack([x[sel], y[sel]], axis=1)
    new = np.ones(len(sel), dtype=bool)
    for ch in np.unique(kind):
        mine = np.nonzero(kind == ch)[0]
        block = peaks.xy[peaks.starts[ch] : peaks.starts[ch + 1]]
        d2 = ((xy[mine, None] - block[None]) ** 2).sum(axis=2)
        new[mine] = (d2 >= 1.0).all(axis=1)
    if not new.any():
        return peaks
    # a new peak found from two windows is kept once: the higher of new peaks a pixel apart
    added = _sorted_peaks(xy[new], found.score[sel][new], kind[new], c)
    keep = _suppress_close(added.xy, added.starts, 1.0)
    return _sorted_peaks(
        np.concatenate([peaks.xy, added.xy[keep]]),
        np.concatenate([peaks.score, added.score[keep]]),
        np.concatenate([peaks.kind, added.kind[keep]]),
        c,
        max_per_channel,
    )


def _suppress_close(xy: np.ndarray, starts: np.ndarray, radius: float) -> np.ndarray:
    """(P,) bool: False for a peak within ``radius`` of a higher peak of its channel."""
    keep = np.ones(len(xy), dtype=bool)
    for c in np.nonzero(np.diff(starts) > 1)[0]:  # peaks sorted by descending score
        block = xy[starts[c] : starts[c + 1]]
        d2 = ((block[:, None] - block[None]) ** 2).sum(axis=2)
        keep[starts[c] : starts[c + 1]] = ~np.tril(d2 < radius**2, k=-1).any(axis=1)
    return keep


def _take(lines: np.ndarray, index: np.ndarray) -> np.ndarray:
    return lines[np.arange(len(index)), index]
