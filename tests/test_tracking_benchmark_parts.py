"""The pure parts of ``benchmarks/tracking.py``: MOT events from tracked poses (motmetrics), jitter
and motion error, the oracle poses. Known values on small hand-built frames."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from posekit.schema import KeypointSchema
from posekit.structures import Pose

pytest.importorskip("motmetrics")

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "tracking.py"


@pytest.fixture(scope="module")
def bench():
    """The script as a module (in sys.modules while the tests run: its dataclasses need it)."""
    name = "posekit_benchmark_tracking"
    spec = importlib.util.spec_from_file_location(name, _PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[name]


@pytest.fixture(scope="module")
def schema() -> KeypointSchema:
    return KeypointSchema.named("coco_person")


def _figure(schema: KeypointSchema, x: float) -> np.ndarray:
    """(K_real, 3) keypoints of a 40 px tall figure at x, all visible."""
    k = len(schema.real_indices)
    kpts = np.zeros((k, 3))
    kpts[:, 0] = x + np.linspace(-10, 10, k)
    kpts[:, 1] = np.linspace(20, 60, k)
    kpts[:, 2] = 2
    return kpts


def _truth(bench, schema, xs: dict[int, float]):
    """A frame of figures {track id: x}, area 400 px^2 each (also as box area)."""
    kpts = np.stack([_figure(schema, x) for x in xs.values()])
    areas = np.full(len(xs), 400.0)
    ids = np.asarray(list(xs), dtype=np.int64)
    return bench.FrameTruth(ids, kpts, kpts[..., :2].copy(), areas, areas.copy())


def _pose(kpts_real: np.ndarray, track_id: int | None, shift: float = 0.0) -> Pose:
    kpts = kpts_real.astype(np.float32).copy()
    kpts[:, 0] += shift
    kpts[:, 2] = 1.0
    box = np.r_[kpts[:, :2].min(0), kpts[:, :2].max(0)]
    return Pose(kpts, 1.0, box, track_id=track_id)


def test_mot_perfect_tracking_scores_one(bench, schema):
    truth = [_truth(bench, schema, {1: 50, 2: 150}) for _ in range(4)]
    tracked = [[_pose(f.keypoints[0], 7), _pose(f.keypoints[1], 8)] for f in truth]
    row = bench.mot_summary([bench.mot_accumulator(truth, tracked, schema)])
    assert row["idf1"] == row["mota"] == 1.0
    assert row["num_switches"] == row["num_false_positives"] == row["num_misses"] == 0
    assert row["motp"] == pytest.approx(0.0, abs=1e-9)  # distance 1 - OKS of exact poses


def test_mot_swap_far_pose_and_unconfirmed(bench, schema):
    truth = [_truth(bench, schema, {1: 50, 2: 150}) for _ in range(4)]
    # frames 2, 3: the ids swap (2 switches, one per figure); frame 1: figure 2's pose is 30 px
    # off (OKS ~0 <= 0.5: a false positive and a miss); frame 0: figure 1 not confirmed (a miss)
    tracked = [
        [_pose(truth[0].keypoints[0], None), _pose(truth[0].keypoints[1], 8)],
        [_pose(truth[1].keypoints[0], 7), _pose(truth[1].keypoints[1], 8, shift=30)],
        [_pose(truth[2].keypoints[0], 8), _pose(truth[2].keypoints[1], 7)],
        [_pose(truth[3].keypoints[0], 8), _pose(truth[3].keypoints[1], 7)],
    ]
    row = bench.mot_summary([bench.mot_accumulator(truth, tracked, schema)])
    assert row["num_objects"] == 8
    assert row["num_misses"] == 2
    assert row["num_false_positives"] == 1
    assert row["num_switches"] == 2
    assert row["mota"] == pytest.approx(1 - (2 + 1 + 2) / 8)


def test_rest_and_motion_known_values(bench, schema):
    truth = [_truth(bench, schema, {1: 50, 2: 150}) for _ in range(20)]
    # figure 1 rests, its poses alternate +-1 px in x: RMS distance to the mean exactly 1 px;
    # figure 2 walks, its poses are (3, 4) px off: every error 5 px
    poses = []
    for t, f in enumerate(truth):
        walking = _pose(f.keypoints[1], 2)
        walking.keypoints[:, :2] += np.float32([3, 4])
        poses.append([_pose(f.keypoints[0], 1, shift=1.0 if t % 2 else -1.0), walking])
    paired = [np.array([0, 1])] * len(truth)
    jitter, errors = bench.rest_and_motion(truth, paired, poses, frozenset({1}))
    assert len(jitter) == len(schema.real_indices)
    np.testing.assert_allclose(jitter, 1.0, atol=1e-5)
    np.testing.assert_allclose(errors, 5.0, atol=1e-5)
    assert len(errors) == 20 * len(schema.real_indices)


def test_rest_and_motion_skips_untracked_and_short_series(bench, schema):
    truth = [_truth(bench, schema, {1: 50}) for _ in range(bench.MIN_REST_SAMPLES)]
    poses = [[_pose(f.keypoints[0], None if t == 0 else 1)] for t, f in enumerate(truth)]
    paired = [np.array([0])] * len(truth)
    jitter, errors = bench.rest_and_motion(truth, paired, poses, frozenset({1}))
    assert jitter == [] and errors == []  # one frame short of MIN_REST_SAMPLES


def test_oracle_poses_noise_drops_and_hidden(bench, schema):
    frame = _truth(bench, schema, {1: 50, 2: 150})
    rng = np.random.default_rng(0)
    frames = [bench.oracle_poses(frame, schema, rng, {2}) for _ in range(400)]
    assert all(len(p) == 1 and p[0].track_id == 1 for p in frames)
    kpts = np.stack([p[0].keypoints for p in frames])  # (400, K, 3)
    found = kpts[..., 2] > 0
    assert found.mean() == pytest.approx(1 - bench.DROP_PROB, abs=0.01)
    assert np.all(kpts[~found][:, :2] == 0)
    offset = kpts[..., :2] - frame.keypoints[0, :, :2]
    assert offset[found].std() == pytest.approx(bench.NOISE_PX, rel=0.03)
    box = frames[0][0].bbox
    np.testing.assert_allclose(box[:2], kpts[0][found[0], :2].min(0))


def test_rest_and_motion_unoccluded_leaves_out_occluded_frames(bench, schema):
    truth = [_truth(bench, schema, {1: 50}) for _ in range(2 * bench.MIN_REST_SAMPLES)]
    for f in truth[::2]:
        f.keypoints[0, 0, 2] = 1  # one keypoint under a front figure in every second frame
    # the poses jump by 4 px exactly in the occluded frames: jitter 2 px with them, 0 without
    poses = [
        [_pose(f.keypoints[0], 1, shift=4.0 if t % 2 == 0 else 0.0)] for t, f in enumerate(truth)
    ]
    paired = [np.array([0])] * len(truth)
    everything = bench.rest_and_motion(truth, paired, poses, frozenset({1}))[0]
    visible = bench.rest_and_motion(truth, paired, poses, frozenset({1}), unoccluded=True)[0]
    np.testing.assert_allclose(everything, 2.0, atol=1e-5)
    np.testing.assert_allclose(visible, 0.0, atol=1e-5)
