"""Fixtures for codec tests: synthetic multi-instance keypoints of any schema."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from posekit import KeypointSchema
from posekit.codecs.peaks import Peaks
from posekit.data.synth import SynthConfig, generate_image


def make_scene(
    schema: KeypointSchema,
    num_instances: int,
    seed: int,
    *,
    size: tuple[int, int] = (368, 368),
    scale_range: tuple[float, float] = (0.3, 0.45),
    overlap_prob: float = 0.5,
) -> np.ndarray:
    """(N, K, 3) keypoints (input pixels, schema order, virtual ones filled) of synthetic figures,
    all inside the image; N can be below ``num_instances`` when a figure is fully hidden."""
    config = SynthConfig(
        num_images=1,
        image_size=size,
        min_instances=num_instances,
        max_instances=num_instances,
        partial_prob=0.0,
        overlap_prob=overlap_prob,
        scale_range=scale_range,
        clutter=0,
        noise_std=0.0,
    )
    _, instances = generate_image(schema, np.random.default_rng(seed), config)
    kpts = np.zeros((len(instances), schema.num_keypoints, 3), dtype=np.float32)
    kpts[:, list(schema.real_indices)] = np.stack([inst.keypoints for inst in instances])
    return schema.add_virtual(kpts)


def make_grid_scene(
    schema: KeypointSchema, rows: int, cols: int, seed: int, *, tile: int = 184
) -> np.ndarray:
    """(rows * cols, K, 3) keypoints of one figure per ``tile`` x ``tile`` cell of a grid image
    (``cols * tile`` x ``rows * tile``): figures that never touch each other."""
    parts = []
    for i in range(rows * cols):
        kpts = make_scene(schema, 1, seed * 1000 + i, size=(tile, tile), scale_range=(0.6, 0.8))
        kpts[..., 0] += (i % cols) * tile
        kpts[..., 1] += (i // cols) * tile
        parts.append(np.where(kpts[..., 2:] > 0, kpts, 0.0))
    return np.concatenate(parts).astype(np.float32)


def make_peaks(xy: list[tuple[float, float]], kind: list[int], num_types: int) -> Peaks:
    """``Peaks`` at ``xy`` of types ``kind`` (score 1), sorted by type as ``find_peaks`` gives."""
    order = np.argsort(kind, kind="stable")
    kind_arr = np.asarray(kind)[order]
    return Peaks(
        xy=np.asarray(xy, dtype=np.float32)[order],
        score=np.ones(len(kind), dtype=np.float32),
        kind=kind_arr,
        starts=np.searchsorted(kind_arr, np.arange(num_types + 1)),
    )


@pytest.fixture
def synth_scene() -> Callable[..., np.ndarray]:
    """``make_scene`` as a fixture."""
    return make_scene
