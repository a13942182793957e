"""Maxima of maps and their sub-pixel refinement, written once for the heatmap codecs, SimCC and
the PAF peaks.

Dimension glossary: ``...`` any leading dimensions (N instances, K keypoints); h x w map rows x
columns; L the length of 1-D distributions (SimCC bins). Coordinates are cells of the maps given,
pixel centers at integer coordinates (``posekit.geometry``). Nothing here modifies its inputs.

- ``log_parabola``: the vertex of a parabola through the log values around a maximum, per axis;
  exact for a Gaussian (whose log is a parabola). Used by the PAF peaks, SimCC and at map borders.
- ``refine_dark``: DARK's Taylor step, ``-H^-1 g`` of the log map at the argmax (Zhang et al., 2020,
  "Distribution-Aware Coordinate Representation"), with the Hessian's cross term: exact for any
  Gaussian, also an anisotropic one; one-sided per-axis fits at the border.
- ``refine_quarter``: the classic quarter-cell step towards the higher neighbour (Xiao et al.,
  2018, "Simple Baselines"), which MSRA decoding uses.
- ``modulate``: DARK's modulation of a noisy network map (a Gaussian blur rescaled to the map's
  maximum), so that the log is smooth before the Taylor step.
"""

from __future__ import annotations

import cv2
import numpy as np

from posekit.geometry import cv2_on_maps

__all__ = [
    "LOG_FLOOR",
    "TAIL_LOG_FLOOR",
    "argmax_1d",
    "argmax_2d",
    "log_parabola",
    "modulate",
    "refine_1d",
    "refine_dark",
    "refine_dark_window",
    "refine_quarter",
    "safe_log",
]

LOG_FLOOR = 1e-10
"""Map values are floored here before the log (log(0) is undefined; any tiny value works for
peaks of network maps: the PAF peaks use it)."""

TAIL_LOG_FLOOR = 1e-30
"""The floor of the top-down refinements (``refine_dark_window``, ``refine_1d``): below the far
tails that the top-down codecs still encode beyond their crops (``codecs.topdown.MIN_TARGET``),
above float32's smallest normal."""

_LOG_OF_TAIL_FLOOR = float(np.log(TAIL_LOG_FLOOR))

_MAX_STEP = 2.0
"""A Taylor step further than this (cells) from the argmax is not a refinement of it: noise. (A
strongly elongated, rotated Gaussian can have its grid maximum more than a cell from its center.)"""


def safe_log(values: np.ndarray, floor: float = LOG_FLOOR) -> np.ndarray:
    """``log(max(values, floor))``; -inf stays -inf (a missing neighbour)."""
    return np.log(np.maximum(values, floor))


def log_parabola(
    left2: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    right2: np.ndarray,
    log_c: np.ndarray,
    beyond: float = 0.5,
    floor: float = LOG_FLOOR,
) -> tuple[np.ndarray, np.ndarray]:
    """Vertex offset (clipped to +-0.5 cell) and log-value gain of a parabola fit to log values.

    ``left2, left, right, right2``: map values (not logs) at -2, -1, +1, +2 cells from the maximum,
    -inf where outside the map; ``log_c``: the log value at the maximum. Uses the maximum and its
    two neighbours (centered differences). At a map border it uses the maximum and the two inner
    cells instead (one-sided differences), so a blob centred beyond the last cell center is still
    located: up to ``beyond`` cells past it (half a cell by default; the tail of a Gaussian
    centred outside the map is an exact parabola too, so a codec that encodes such keypoints
    passes its reach). Non-concave fits give offset 0 and gain 0. Values are floored at ``floor``
    before the log. float32 results.
    """
    logs = (safe_log(v, floor) for v in (left2, left, right, right2))
    has = (np.isfinite(v) for v in (left, right, left2, right2))
    return _parabola(*logs, log_c, *has, beyond=beyond)


def _parabola(
    log_l2: np.ndarray,
    log_l: np.ndarray,
    log_r: np.ndarray,
    log_r2: np.ndarray,
    log_c: np.ndarray,
    has_l: np.ndarray,
    has_r: np.ndarray,
    has_l2: np.ndarray,
    has_r2: np.ndarray,
    beyond: float | np.ndarray = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """``log_parabola`` of finite (floored) log values and masks of the cells inside the map;
    ``beyond`` may also be an array (one bound per fit)."""
    # f(t) around the maximum: first and second derivatives at t = 0
    slope = np.where(
        has_l & has_r,
        0.5 * (log_r - log_l),
        np.where(
            has_l,
            0.5 * (log_l2 - 4.0 * log_l + 3.0 * log_c),
            -0.5 * (log_r2 - 4.0 * log_r + 3.0 * log_c),
        ),
    )
    curvature = np.where(
        has_l & has_r,
        log_l + log_r - 2.0 * log_c,
        np.where(has_l, log_l2 - 2.0 * log_l + log_c, log_r2 - 2.0 * log_r + log_c),
    )
    one_sided_ok = np.where(has_l, has_l2, has_r2)
    ok = (curvature < 0) & (has_l | has_r) & ((has_l & has_r) | one_sided_ok)
    safe = np.where(ok, curvature, -1.0)
    # inward (or with both neighbours) the vertex stays within half a cell of the maximum,
    # else the neighbour would be the maximum; outward past a border up to ``beyond``
    low = np.where(has_l, -0.5, -np.maximum(beyond, 0.5))
    high = np.where(has_r, 0.5, np.maximum(beyond, 0.5))
    offset = np.where(ok, np.clip(-slope / safe, low, high), 0.0)
    gain = np.where(ok, slope * offset + 0.5 * safe * offset**2, 0.0)
    return offset.astype(np.float32), gain.astype(np.float32)


def argmax_2d(maps: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integer x (...), y (...) and value (...) of the maximum of each (h, w) map of (..., h, w)."""
    h, w = maps.shape[-2:]
    flat = maps.reshape(*maps.shape[:-2], h * w)
    index = flat.argmax(axis=-1)
    value = np.take_along_axis(flat, index[..., None], axis=-1)[..., 0]
    return index % w, index // w, value


def argmax_1d(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index (...) and value (...) of the maximum of each length-L vector of (..., L)."""
    index = vectors.argmax(axis=-1)
    return index, np.take_along_axis(vectors, index[..., None], axis=-1)[..., 0]


def _padded(maps: np.ndarray, pad: int) -> np.ndarray:
    """(..., h + 2 pad, w + 2 pad) float64 copy with -inf around (missing neighbours)."""
    out = np.full((*maps.shape[:-2], maps.shape[-2] + 2 * pad, maps.shape[-1] + 2 * pad), -np.inf)
    out[..., pad:-pad, pad:-pad] = maps
    return out


def _at(padded: np.ndarray, x: np.ndarray, y: np.ndarray, dx: int, dy: int, pad: int) -> np.ndarray:
    """Values of (..., H, W) ``padded`` at (x + dx, y + dy) for every leading index."""
    lead = np.indices(x.shape, sparse=True)
    return padded[(*lead, y + dy + pad, x + dx + pad)]


def refine_dark(
    log_maps: np.ndarray, x: np.ndarray, y: np.ndarray, beyond: tuple[float, float] = (0.5, 0.5)
) -> tuple[np.ndarray, np.ndarray]:
    """Sub-cell offsets (dx, dy) (...) of the maxima at integer (x, y) (...) of (..., h, w) log maps.

    Inside, the Taylor step ``-H^-1 g`` from central differences of the 3 x 3 neighbourhood (the
    cross term included); where the neighbourhood leaves the map, or the Hessian is not negative
    definite, the per-axis ``log_parabola`` fits (one-sided at a border, reaching up to ``beyond``
    = (x, y) cells past it). Taylor steps are bounded by ``_MAX_STEP``. float64 results.
    (``refine_dark_window`` on the 5 x 5 windows around the maxima.)
    """
    pad = 2
    p = _padded(log_maps.astype(np.float64), pad)
    views = np.lib.stride_tricks.sliding_window_view(p, (5, 5), axis=(-2, -1))
    lead = np.indices(x.shape, sparse=True)
    return refine_dark_window(views[(*lead, y, x)], beyond)


def refine_dark_window(
    log_windows: np.ndarray, beyond: tuple[float, float] = (0.5, 0.5)
) -> tuple[np.ndarray, np.ndarray]:
    """``refine_dark`` of (..., 5, 5) windows of log maps centred on their maxima (-inf: cells
    beyond the map): sub-cell offsets (dx, dy) (...) from the centre cell, float64."""
    win = np.asarray(log_windows, np.float64)

    def v(dx: int, dy: int) -> np.ndarray:  # the log value dx, dy cells from the centre
        return win[..., 2 + dy, 2 + dx]

    c = v(0, 0)
    inside = np.isfinite(win[..., 1:4, 1:4]).all(axis=(-2, -1))
    with np.errstate(invalid="ignore"):  # -inf terms outside the map; masked by ``inside``
        gx = 0.5 * (v(1, 0) - v(-1, 0))
        gy = 0.5 * (v(0, 1) - v(0, -1))
        hxx = v(1, 0) - 2.0 * c + v(-1, 0)
        hyy = v(0, 1) - 2.0 * c + v(0, -1)
        hxy = 0.25 * (v(1, 1) - v(1, -1) - v(-1, 1) + v(-1, -1))
        det = hxx * hyy - hxy**2
        ok = inside & (hxx < 0) & (det > 0)
        safe_det = np.where(ok, det, 1.0)
        dx = np.clip(np.where(ok, -(hyy * gx - hxy * gy) / safe_det, 0.0), -_MAX_STEP, _MAX_STEP)
        dy = np.clip(np.where(ok, -(hxx * gy - hxy * gx) / safe_det, 0.0), -_MAX_STEP, _MAX_STEP)
    fallback = ~ok
    if fallback.any():  # per-axis fits there only: the row and the column through the centre
        rest = win[fallback]
        lines = np.concatenate([rest[:, 2, :], rest[:, :, 2]])  # (2M, 5) logs, -inf: missing
        has = np.isfinite(lines)
        logs = np.maximum(lines, _LOG_OF_TAIL_FLOOR)  # a floor as log_parabola's (logs given)
        c = logs[:, 2]
        bounds = np.repeat(np.asarray(beyond, np.float64), len(rest))  # rows: x, columns: y
        offset, _ = _parabola(*(logs[:, i] for i in (0, 1, 3, 4)), c,
                              has[:, 1], has[:, 3], has[:, 0], has[:, 4], beyond=bounds)  # fmt: skip
        dx[fallback], dy[fallback] = np.split(offset, 2)
    return dx, dy


def refine_quarter(maps: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MSRA's step: a quarter cell towards the higher neighbour along x and along y (0 at the
    border or on a tie), offsets (...) for the maxima at integer (x, y) of (..., h, w) maps."""
    p = _padded(maps.astype(np.float64), 1)
    steps = []
    for a, b in (((1, 0), (-1, 0)), ((0, 1), (0, -1))):
        after, before = _at(p, x, y, *a, 1), _at(p, x, y, *b, 1)
        both = np.isfinite(after) & np.isfinite(before)
        steps.append(np.where(both, 0.25 * np.sign(after - before), 0.0))
    return steps[0], steps[1]


def refine_1d(vectors: np.ndarray, index: np.ndarray, beyond: float = 0.5) -> np.ndarray:
    """Sub-bin offsets (...) of the maxima at ``index`` (...) of (..., L) distributions, by
    ``log_parabola`` (exact for Gaussian labels; one-sided at the ends, reaching up to ``beyond``
    bins past them), values floored at ``TAIL_LOG_FLOOR``. float32."""
    p = np.full((*vectors.shape[:-1], vectors.shape[-1] + 4), -np.inf)
    p[..., 2:-2] = vectors
    taken = [
        np.take_along_axis(p, (index + 2 + o)[..., None], axis=-1)[..., 0] for o in (-2, -1, 1, 2)
    ]
    center = np.take_along_axis(vectors, index[..., None], axis=-1)[..., 0]
    offset, _ = log_parabola(*taken, safe_log(center, TAIL_LOG_FLOOR), beyond, TAIL_LOG_FLOOR)
    return offset


def modulate(maps: np.ndarray, kernel_size: int, *, dims: int = 2) -> np.ndarray:
    """DARK's modulation: each (h, w) map of (..., h, w) blurred by a ``kernel_size`` Gaussian
    (OpenCV's sigma for that size; 11 -> 2.0, as DARK's paper) and rescaled to its own maximum;
    with ``dims=1`` each length-L vector of (..., L) is blurred along L (SimCC). Cells beyond the
    border count as 0, which pulls a maximum within ``kernel_size // 2`` cells of it inward.
    float32, a new array."""
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be an odd positive integer, got {kernel_size}")
    if dims not in (1, 2):
        raise ValueError(f"dims must be 1 (vectors) or 2 (maps), got {dims}")
    shape = maps.shape
    tail = shape[-2:] if dims == 2 else (1, shape[-1])
    stack = np.asarray(maps, np.float32).reshape(-1, *tail)
    ksize = (kernel_size, kernel_size) if dims == 2 else (kernel_size, 1)
    h, w = stack.shape[-2:]
    blurred = cv2_on_maps(
        stack,
        (w, h),
        lambda chunk: cv2.GaussianBlur(chunk, ksize, 0, borderType=cv2.BORDER_CONSTANT),
    )
    peak = stack.reshape(len(stack), -1).max(axis=1)
    now = blurred.reshape(len(stack), -1).max(axis=1)
    scale = np.where(now > 0, peak / np.where(now > 0, now, 1.0), 1.0).astype(np.float32)
    return (blurred * scale[:, None, None]).reshape(shape)
