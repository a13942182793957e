"""Maxima refinement: exact on Gaussians (rotated, anisotropic, at borders), MSRA's quarter step,
1-D distributions, DARK's modulation; inputs are never modified."""

from __future__ import annotations

import numpy as np
import pytest

from posekit.codecs.refine import (
    argmax_1d,
    argmax_2d,
    modulate,
    refine_1d,
    refine_dark,
    refine_quarter,
    safe_log,
)


def _gaussians(centers: np.ndarray, size=(48, 64), cov=((4.0, 0.0), (0.0, 4.0))) -> np.ndarray:
    """(N, h, w) Gaussians of covariance ``cov`` (cells^2) at float ``centers`` (N, 2)."""
    w, h = size
    xs, ys = np.meshgrid(np.arange(w), np.arange(h))
    inv = np.linalg.inv(np.asarray(cov))
    d = np.stack([xs[None] - centers[:, 0, None, None], ys[None] - centers[:, 1, None, None]], -1)
    q = np.einsum("nhwi,ij,nhwj->nhw", d, inv, d)
    return np.exp(-0.5 * q).astype(np.float32)


@pytest.mark.parametrize(
    "cov", [((4.0, 0.0), (0.0, 4.0)), ((9.0, 2.5), (2.5, 2.0))], ids=["round", "rotated"]
)
def test_dark_step_is_exact_on_gaussians(cov):
    rng = np.random.default_rng(0)
    centers = rng.uniform((3, 3), (45, 61), (200, 2))
    maps = _gaussians(centers, cov=cov)
    before = maps.copy()
    x, y, value = argmax_2d(maps)
    dx, dy = refine_dark(safe_log(maps), x, y)
    got = np.stack([x + dx, y + dy], axis=1)
    # float32 maps: the log's rounding limits the step to ~1e-5 cells
    assert np.abs(got - centers).max() < 1e-3
    np.testing.assert_array_equal(maps, before)
    assert np.allclose(value, maps.reshape(200, -1).max(axis=1))


def test_dark_at_the_border_falls_back_to_one_sided_fits():
    centers = np.array([[-0.3, 20.2], [47.4, 0.1], [10.6, 63.2]])  # beyond the last cell center
    maps = _gaussians(centers)
    x, y, _ = argmax_2d(maps)
    dx, dy = refine_dark(safe_log(maps), x, y)
    np.testing.assert_allclose(np.stack([x + dx, y + dy], 1), centers, atol=1e-3)


def test_quarter_step_moves_towards_the_higher_neighbour():
    maps = _gaussians(np.array([[10.3, 20.0], [10.0, 20.0], [0.4, 5.8]]))
    x, y, _ = argmax_2d(maps)
    dx, dy = refine_quarter(maps, x, y)
    np.testing.assert_allclose(dx, [0.25, 0.0, 0.0])  # a tie; the border gives no step
    np.testing.assert_allclose(dy, [0.0, 0.0, -0.25])


def test_1d_refinement_is_exact_on_gaussian_labels():
    rng = np.random.default_rng(1)
    mu = rng.uniform(-0.4, 383.4, 500)
    bins = np.arange(384)
    labels = np.exp(-0.5 * ((bins[None] - mu[:, None]) / 6.0) ** 2).reshape(20, 25, 384)
    index, value = argmax_1d(labels)
    got = index + refine_1d(labels, index)
    np.testing.assert_allclose(got, mu.reshape(20, 25), atol=1e-3)
    assert value.shape == (20, 25)


def test_modulation_keeps_the_maximum_and_location():
    maps = _gaussians(np.array([[20.2, 30.7]]))[None] + np.float32(0.0)
    noisy = maps + np.random.default_rng(2).normal(0, 0.02, maps.shape).astype(np.float32)
    smooth = modulate(noisy, 11)
    assert smooth.shape == noisy.shape and smooth.dtype == np.float32
    assert smooth.max() == pytest.approx(noisy.max(), rel=1e-5)
    x, y, _ = argmax_2d(smooth)
    dx, dy = refine_dark(safe_log(smooth), x, y)
    assert abs(x[0, 0] + dx[0, 0] - 20.2) < 0.1 and abs(y[0, 0] + dy[0, 0] - 30.7) < 0.1
    labels = np.exp(-0.5 * ((np.arange(100) - 40.3) / 4.0) ** 2) * np.ones((3, 5, 1))
    smooth_labels = modulate(labels, 7, dims=1)  # along L only: the 15 vectors stay equal
    assert smooth_labels.shape == (3, 5, 100) and np.allclose(smooth_labels, smooth_labels[0, 0])
    assert np.argmax(smooth_labels[0, 0]) == 40
    with pytest.raises(ValueError, match="odd positive"):
        modulate(maps, 4)
