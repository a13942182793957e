"""Peak finding: exact sub-pixel positions on Gaussian blobs, borders, plateaus, upsampling frame."""

from __future__ import annotations

import numpy as np
import pytest

from posekit.codecs.peaks import add_close_peaks, find_peaks, upsample_maps


def _blobs(centers: np.ndarray, size: tuple[int, int], sigma: float) -> np.ndarray:
    """(1, H, W) max of isotropic Gaussians at ``centers`` (N, 2) x, y map pixels."""
    w, h = size
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    d2 = (xs[None] - centers[:, 0, None, None]) ** 2 + (ys[None] - centers[:, 1, None, None]) ** 2
    return np.exp(-d2 / (2 * sigma**2)).max(axis=0, keepdims=True).astype(np.float32)


def test_refinement_is_exact_on_gaussians_inside_and_at_borders():
    rng = np.random.default_rng(0)
    inner = rng.uniform(3, [36, 26], (6, 2))
    # blobs centred on, and up to half a pixel beyond, the first/last pixel centers
    border = np.array([[-0.45, 20.3], [39.4, 7.7], [12.2, -0.3], [30.6, 29.45]])
    for center in np.concatenate([inner, border]):
        peaks = find_peaks(_blobs(center[None], (40, 30), 0.875), 0.1)
        assert len(peaks.xy) == 1
        np.testing.assert_allclose(peaks.xy[0], center, atol=1e-3)
        assert peaks.score[0] == pytest.approx(1.0, abs=1e-3)  # fitted amplitude, not the cell


def test_without_refinement_peaks_are_the_max_cells():
    center = np.array([[10.4, 7.6]])
    peaks = find_peaks(_blobs(center, (20, 20), 0.875), 0.1, refine=False)
    np.testing.assert_array_equal(peaks.xy, [[10.0, 8.0]])


def test_plateau_gives_one_peak_and_threshold_is_respected():
    maps = np.zeros((2, 10, 10), dtype=np.float32)
    maps[0, 4:6, 4:7] = 0.5  # a 2x3 plateau
    maps[1, 2, 2] = 0.09  # below the threshold
    peaks = find_peaks(maps, 0.1, refine=False)
    assert len(peaks.xy) == 1
    np.testing.assert_array_equal(peaks.kind, [0])
    np.testing.assert_array_equal(peaks.starts, [0, 1, 1])


def test_peaks_sorted_by_channel_then_score():
    maps = np.zeros((3, 20, 20), dtype=np.float32)
    maps[2, 3, 3], maps[2, 10, 10], maps[0, 15, 5] = 0.4, 0.9, 0.6
    peaks = find_peaks(maps, 0.1, refine=False)
    np.testing.assert_array_equal(peaks.kind, [0, 2, 2])
    np.testing.assert_array_equal(peaks.score, np.float32([0.6, 0.9, 0.4]))
    np.testing.assert_array_equal(peaks.counts, [1, 0, 2])


def test_upsampling_handles_more_channels_than_opencv_takes_at_once():
    # cv2 resizes at most 128 interleaved channels in OpenCV 5 (512 in OpenCV 4)
    rng = np.random.default_rng(0)
    maps = rng.random((300, 6, 5)).astype(np.float32)
    up = upsample_maps(maps, 2)
    assert up.shape == (300, 12, 10)
    np.testing.assert_allclose(up[299], upsample_maps(maps[299:], 2)[0], atol=1e-6)


@pytest.mark.parametrize("factor", [2, 4, 8])
def test_upsampled_search_reports_in_the_original_frame(factor):
    centers = np.array([[12.3, 9.8], [30.6, 20.2]])
    maps = _blobs(centers, (46, 30), 0.875)
    assert upsample_maps(maps, factor).shape == (1, 30 * factor, 46 * factor)
    peaks = find_peaks(maps, 0.1, upsample=factor)
    assert len(peaks.xy) == 2
    found = peaks.xy[np.argsort(peaks.xy[:, 0])]
    # cubic interpolation of a stride-sampled Gaussian: within a tenth of a cell
    np.testing.assert_allclose(found, centers, atol=0.1)


def test_upsampling_separates_close_peaks_that_the_low_resolution_grid_merges():
    centers = np.array([[20.0, 15.0], [21.4, 15.0]])  # 1.4 cells apart
    maps = _blobs(centers, (40, 30), 0.875)
    assert len(find_peaks(maps, 0.1).xy) == 1
    assert len(find_peaks(maps, 0.1, upsample=8).xy) == 2


def test_close_peaks_are_found_in_the_neighbourhood_of_coarse_ones():
    # pairs of same-type keypoints 1.5-2 cells apart, in any direction; a far blob of the same
    # channel and a second channel must come through unchanged
    rng = np.random.default_rng(0)
    far = np.array([[3.2, 4.1], [35.0, 26.4]])
    coarse_both = close_both = 0
    for _ in range(100):
        base = rng.uniform(12, 24, 2)
        angle, gap = rng.uniform(0, 2 * np.pi), rng.uniform(1.5, 2.0)
        pair = np.array([base, base + gap * np.array([np.cos(angle), np.sin(angle)])])
        maps = np.concatenate(
            [_blobs(np.concatenate([pair, far]), (40, 30), 0.875), _blobs(far, (40, 30), 0.875)]
        )
        coarse = find_peaks(maps, 0.1)
        peaks = add_close_peaks(maps, coarse, 0.1, 4)
        assert peaks.counts[1] == 2 and len(peaks.xy) <= 6
        for xy in coarse.xy:  # the coarse peaks are kept as they were
            assert (np.abs(peaks.xy - xy).sum(axis=1) < 1e-6).any()
        first = peaks.xy[: peaks.counts[0]]
        assert (np.diff(peaks.score[: peaks.counts[0]]) <= 0).all()  # by descending score
        error = [np.sqrt(((first - c) ** 2).sum(axis=1)).min() for c in pair]
        coarse_both += int(coarse.counts[0] == 4)
        close_both += int(peaks.counts[0] == 4 and max(error) < 0.4)
    assert coarse_both <= 65  # measured: 60
    assert close_both >= 72  # measured: 76 (pairs whose refined positions stay within 0.4 px)


def test_close_peak_search_adds_nothing_to_lone_blobs():
    rng = np.random.default_rng(1)
    for _ in range(30):
        centers = np.concatenate(
            [rng.uniform(-0.4, [39.4, 29.4], (4, 2)), [[-0.45, 20.3], [39.4, 7.7]]]
        )
        centers = centers[  # blobs at least 3.5 cells apart: separate on the grid
            [i for i in range(len(centers))
             if all(np.hypot(*(centers[i] - centers[j])) > 3.5 for j in range(i))]
        ]  # fmt: skip
        maps = _blobs(centers, (40, 30), 0.875)
        coarse = find_peaks(maps, 0.1)
        assert len(coarse.xy) == len(centers)
        assert len(add_close_peaks(maps, coarse, 0.1, 4).xy) == len(centers)


def test_max_per_channel_keeps_the_highest_peaks():
    maps = np.zeros((2, 20, 20), dtype=np.float32)
    for i, v in enumerate([0.3, 0.9, 0.5, 0.7]):
        maps[0, 2 + 4 * i, 2] = v
    maps[1, 10, 10] = 0.2
    peaks = find_peaks(maps, 0.1, refine=False, max_per_channel=2)
    np.testing.assert_array_equal(peaks.score, np.float32([0.9, 0.7, 0.2]))
    np.testing.assert_array_equal(peaks.starts, [0, 2, 3])
