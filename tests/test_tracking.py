"""Tracking and One-Euro smoothing on synthetic video: ids through a crossing, ageing, confirmation,
the box-IoU fallback, greedy mode, the filter's jitter reduction and lag against its formulas."""

from __future__ import annotations

import numpy as np
import pytest

from posekit import KeypointSchema
from posekit.errors import ConfigError, SchemaError
from posekit.structures import Pose
from posekit.tracking import (
    DEMO_SMOOTHER,
    SMOOTHERS,
    OneEuroFilter,
    PoseSmoother,
    PoseTracker,
    SmootherConfig,
    TrackerConfig,
)

COCO = KeypointSchema.load("coco_person")
FPS = 30.0

FIGURE = np.array(
    [[0, -70], [-5, -75], [5, -75], [-12, -72], [12, -72], [-20, -45], [20, -45], [-28, -15],
     [28, -15], [-30, 10], [30, 10], [-12, 15], [12, 15], [-14, 50], [14, 50], [-15, 85], [15, 85]],
    dtype=np.float64,
)  # fmt: skip
"""A standing person about 60 x 160 px in COCO keypoint order, offsets from its center."""


def _pose(center, rng=None, noise=0.0, found=None, box=None, score=0.9) -> Pose:
    """The figure at ``center`` with Gaussian pixel noise; ``found``: indices with score > 0."""
    xy = FIGURE + np.asarray(center, np.float64)
    if rng is not None:
        xy = xy + rng.normal(0.0, noise, xy.shape)
    scores = np.ones(len(xy))
    if found is not None:
        scores = np.zeros(len(xy))
        scores[list(found)] = 1.0
    kpts = np.concatenate([xy, scores[:, None]], axis=1).astype(np.float32)
    if box is None:
        on = xy[scores > 0]
        box = np.concatenate([on.min(axis=0), on.max(axis=0)])
    return Pose(kpts, score, np.asarray(box, np.float32))


def _with_id(pose: Pose, track_id: int = 7) -> Pose:
    return Pose(pose.keypoints, pose.score, pose.bbox, track_id)


def _ids(tracker: PoseTracker, frames: list[list[Pose]]) -> list[list[int | None]]:
    return [[p.track_id for p in tracker.update(poses, n / FPS)] for n, poses in enumerate(frames)]


# ---------------------------------------------------------------------------------- tracking
def _crossing_ids(seed: int, velocity: bool) -> list[tuple[int | None, int | None]]:
    """Ids of figures A and B that walk 6 px/frame towards each other, boxes overlapping for ten
    frames, B 3 px lower, 2 px noise; given in a random order each frame."""
    rng = np.random.default_rng(seed)
    tracker = PoseTracker(COCO, TrackerConfig(velocity=velocity))
    out = []
    for f in range(20):
        a = _pose((200 + 6 * (f - 9.5), 200), rng, 2.0)  # crossing half-way between frames 9, 10
        b = _pose((200 - 6 * (f - 9.5), 203), rng, 2.0)
        swap = rng.random() < 0.5
        got = tracker.update([b, a] if swap else [a, b], f / FPS)
        out.append((got[1 if swap else 0].track_id, got[0 if swap else 1].track_id))
    return out


@pytest.mark.parametrize("seed", range(5))
def test_oks_ids_stay_with_their_figure_through_a_crossing(seed):
    ids = _crossing_ids(seed, velocity=True)
    assert ids[:2] == [(None, None)] * 2  # min_hits 3
    assert sorted(ids[2]) == [1, 2]
    assert ids[2:] == [ids[2]] * 18  # no swap, no new id


def test_crossing_swaps_ids_without_velocity():
    # The control: at frame 10 each figure stands where the other was at frame 9 (3 px apart in
    # y, 6 px along x from its own last place), so matching last poses swaps the ids; the test
    # above would see it.
    ids = _crossing_ids(0, velocity=False)
    assert ids[9] == ids[2] and ids[10] == ids[2][::-1]


def test_a_track_survives_max_age_missed_frames_then_dies():
    config = TrackerConfig(max_age=3, min_hits=1)
    rng = np.random.default_rng(1)
    here = [_pose((100, 200), rng, 1.0)]
    away = [_pose((400, 200), rng, 1.0)]  # a second figure seen in every frame
    frames = [here + away] * 2 + [away] * 3 + [here + away] + [away] * 4 + [here + away]
    ids = _ids(PoseTracker(COCO, config), frames)
    assert ids[:2] == [[1, 2]] * 2
    assert ids[5] == [1, 2]  # missed 3 = max_age frames: still alive
    assert ids[10] == [3, 2]  # missed 4: died; a new id, 1 is not reused


def test_min_hits_delays_the_id_and_unconfirmed_tracks_use_no_id():
    rng = np.random.default_rng(2)
    fig = [_pose((100, 200), rng, 1.0) for _ in range(9)]
    spurious = _pose((400, 200))  # seen once: dies unconfirmed
    other = [_pose((300, 200), rng, 1.0) for _ in range(3)]
    frames = [[fig[0], spurious], [fig[1]], [fig[2]], [], [fig[4]], [fig[5]] + other[:1]]
    frames += [[fig[6], other[1]], [fig[7], other[2]]]
    ids = _ids(PoseTracker(COCO, TrackerConfig(min_hits=3)), frames)
    assert ids[:3] == [[None, None], [None], [1]]
    assert ids[4] == [1]  # after a missed frame the confirmed id stays, no new delay
    assert ids[5:] == [[1, None], [1, None], [1, 2]]  # the spurious track took no id


@pytest.mark.parametrize(
    ("config", "same"),
    [
        (TrackerConfig(min_hits=1), True),  # 2 keypoints < min_keypoints 3: box IoU 1/3 >= 0.3
        (TrackerConfig(min_hits=1, match_threshold=0.34), False),  # 1/3 < 0.34
        (TrackerConfig(min_hits=1, min_keypoints=0), False),  # OKS: keypoints moved 30 px
    ],
)
def test_box_iou_replaces_oks_for_poses_with_few_keypoints(config, same):
    # Detector boxes of 100 x 100 px shifted by half a width overlap 5000 of 15000 px^2. The two
    # keypoints (nose, left eye; sigma 0.026, 0.025) move 30 px: OKS exp(-900 / 54) ~ 1e-7.
    first = _pose((50, 80), found=(0, 1), box=(0, 0, 100, 100))
    second = _pose((80, 80), found=(0, 1), box=(50, 0, 150, 100))
    ids = _ids(PoseTracker(COCO, config), [[first], [second]])
    assert ids == ([[1], [1]] if same else [[1], [2]])


def test_greedy_mode_gives_ids_at_once_and_needs_three_similar_keypoints():
    rng = np.random.default_rng(3)
    tracker = PoseTracker(COCO, TrackerConfig(mode="greedy"))
    left = [_pose((100, 200), rng, 2.0) for _ in range(4)]
    right = [_pose((300, 200), rng, 2.0, score=0.5) for _ in range(4)]
    frames = [[left[0], right[0]], [right[1], left[1]], [left[2]], [left[3], right[3]]]
    frames += [[_pose((100, 200), found=(5, 6, 7))], [_pose((100, 200), found=(5, 6))]]
    ids = _ids(tracker, frames)
    assert ids[:3] == [[1, 2], [2, 1], [1]]  # no min_hits: ids from the first frame
    assert ids[3] == [1, 3]  # right missed one frame: no ageing in greedy mode, a new id
    assert ids[4] == [1]  # 3 keypoints found, all within the similarity: the same figure
    assert ids[5] == [4]  # 2 similar keypoints are too few (Lightweight OpenPose's threshold 3)


def test_reset_restarts_ids_and_time():
    tracker = PoseTracker(COCO, TrackerConfig(min_hits=1))
    assert _ids(tracker, [[_pose((100, 200)), _pose((300, 200))]]) == [[1, 2]]
    tracker.reset()
    assert _ids(tracker, [[_pose((300, 200))]]) == [[1]]  # timestamp 0 again is fine after reset


def test_tracked_poses_are_copies_in_input_order():
    poses = [_pose((100 * n, 200), score=s) for n, s in enumerate((0.2, 0.9, 0.5), start=1)]
    got = PoseTracker(COCO, TrackerConfig(min_hits=1)).update(poses, 0.0)
    assert [p.track_id for p in got] == [1, 2, 3] and [p.score for p in got] == [0.2, 0.9, 0.5]
    assert all(p.track_id is None for p in poses)  # inputs untouched
    assert all(g.keypoints is p.keypoints for g, p in zip(got, poses, strict=True))


def test_pose_of_another_keypoint_count_is_refused():
    pose = Pose(np.ones((18, 3), np.float32), 0.9, np.zeros(4, np.float32))
    with pytest.raises(SchemaError, match=r"pose 0 has keypoints of shape \(18, 3\).*17 keypoints"):
        PoseTracker(COCO).update([pose, _pose((100, 200))], 0.0)


def test_backwards_timestamps_are_refused():
    tracker, smoother, one_euro = PoseTracker(COCO), PoseSmoother(), OneEuroFilter()
    tracker.update([], 2.0)
    smoother.update([], 2.0)
    one_euro(np.zeros((1, 2)), 2.0)
    message = r"timestamp 1.5 s is not after the previous one, 2.0 s"
    with pytest.raises(ConfigError, match=f"PoseTracker.update: {message}"):
        tracker.update([], 1.5)
    with pytest.raises(ConfigError, match=f"PoseSmoother.update: {message}"):
        smoother.update([], 1.5)
    with pytest.raises(ConfigError, match=f"OneEuroFilter: {message}"):
        one_euro(np.zeros((1, 2)), 1.5)
    with pytest.raises(ConfigError, match="not after the previous one, 2.0 s"):
        tracker.update([], 2.0)  # a repeated timestamp too


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: TrackerConfig(mode="kalman"), r"mode must be one of \('oks', 'greedy'\), got 'kalman'"),
        (lambda: TrackerConfig(match_threshold=0), r"match_threshold must be in \(0, 1\], got 0"),
        (lambda: TrackerConfig(max_age=-1), "max_age must be an integer >= 0, got -1"),
        (lambda: TrackerConfig(min_hits=0), "min_hits must be an integer >= 1, got 0"),
        (lambda: TrackerConfig(min_keypoints=2.5), "min_keypoints must be an integer >= 0, got 2.5"),
        (lambda: TrackerConfig(velocity="yes"), "velocity must be True or False, got 'yes'"),
        (lambda: SmootherConfig(min_cutoff=0), "SmootherConfig: min_cutoff must be a number > 0"),
        (lambda: SmootherConfig(beta=-1), "beta must be a number >= 0, got -1"),
        (lambda: SmootherConfig(max_age=1.5), "max_age must be an integer >= 0, got 1.5"),
        (lambda: OneEuroFilter(d_cutoff=float("nan")), "OneEuroFilter: d_cutoff must be a number > 0"),
    ],
)  # fmt: skip
def test_config_validation_names_the_field(make, message):
    with pytest.raises(ConfigError, match=message):
        make()


def test_config_problems_are_reported_together():
    with pytest.raises(ConfigError, match="TrackerConfig: max_age .*; min_hits "):
        TrackerConfig(max_age=-1, min_hits=0)


# ---------------------------------------------------------------------------------- One-Euro
def _filtered(one_euro: OneEuroFilter, values: np.ndarray) -> np.ndarray:
    """(F, K, 2) values at FPS -> (F, K, 2) filter outputs."""
    return np.stack([one_euro(v, n / FPS) for n, v in enumerate(values)])


def test_one_euro_first_call_returns_the_input():
    values = np.array([[1.5, -2.0], [300.0, 40.0]])
    np.testing.assert_array_equal(OneEuroFilter()(values, 0.0), values)


def test_one_euro_reduces_the_jitter_of_a_static_point():
    # 1 px noise at 30 fps over 10 s, 17 keypoints x 2 coordinates; the first second left out.
    # At rest the filter is a low pass at min_cutoff + beta |dx/dt|: with beta = 0 exactly an
    # exponential filter with alpha = r / (1 + r), r = 2 pi 1 Hz / 30 fps, whose output std is
    # sqrt(alpha / (2 - alpha)) of the input's: 3.25x less, the ceiling for min_cutoff = 1 Hz.
    # beta = 0.05 lets the noise's own speed (~4 px/s after the 1 Hz speed filter) raise the
    # cutoff a little: measured 2.78x (3.06x at 0.5 px, 2.44x at 2 px noise).
    noisy = 100.0 + np.random.default_rng(4).normal(0.0, 1.0, (300, 17, 2))
    r = 2 * np.pi * 1.0 / FPS
    alpha = r / (1 + r)
    ceiling = np.sqrt((2 - alpha) / alpha)
    at_min_cutoff = (
        noisy[30:].std(0).mean() / _filtered(OneEuroFilter(beta=0.0), noisy)[30:].std(0).mean()
    )
    assert at_min_cutoff == pytest.approx(ceiling, rel=0.03)
    reduction = noisy[30:].std(0).mean() / _filtered(OneEuroFilter(), noisy)[30:].std(0).mean()
    assert 2.6 < reduction < ceiling


def test_one_euro_lag_of_a_fast_linear_motion_is_bounded():
    # 600 px/s (20 px per frame at 30 fps) along x for 2 s, no noise. Once the speed filter has
    # settled (1 Hz: time constant 0.16 s) the cutoff is 1 + 0.05 * 600 = 31 Hz and an exponential
    # filter lags a ramp by v / (2 pi f_c) = 3.08 px, below 1 / (2 pi beta) = 3.18 px at any
    # speed; a fixed 1 Hz low pass would lag 95 px. The start, while the smoothed speed rises from
    # 0, lags more: measured at most 8.98 px (frame 2), 3.49 px on average over the 2 s.
    t = np.arange(60) / FPS
    truth = np.stack([600.0 * t, np.full_like(t, 50.0)], axis=-1)[:, None, :]  # (60, 1, 2)
    error = np.abs(_filtered(OneEuroFilter(), truth) - truth)
    assert error[30:, 0, 0] == pytest.approx(600.0 / (2 * np.pi * 31.0), rel=0.01)
    assert error[30:, 0, 0].max() < 1 / (2 * np.pi * 0.05)
    assert error[:, 0, 0].mean() < 3.6 and error.max() < 9.0
    assert error[:, 0, 1].max() == 0.0  # the still coordinate does not move


def test_one_euro_missing_values_pass_through_and_keep_their_state():
    rng = np.random.default_rng(5)
    values = np.cumsum(rng.normal(0.0, 3.0, (20, 3, 2)), axis=0)
    valid = np.ones((20, 3), dtype=bool)
    valid[5:10, 0] = False  # row 0 not found in frames 5-9
    valid[:3, 2] = False  # row 2 first found in frame 3
    one_euro = OneEuroFilter()
    out = np.stack(
        [one_euro(v, n / FPS, ok) for n, (v, ok) in enumerate(zip(values, valid, strict=True))]
    )
    np.testing.assert_array_equal(out[~valid], values[~valid])
    np.testing.assert_array_equal(out[3, 2], values[3, 2])  # first found: returned as given
    for row in range(3):  # each row as if filtered alone at its own frames
        alone, frames = OneEuroFilter(), np.flatnonzero(valid[:, row])
        expected = [alone(values[n, row : row + 1], n / FPS)[0] for n in frames]
        np.testing.assert_allclose(out[frames, row], expected, rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------------- smoother
def test_smoother_reduces_jitter_of_tracked_poses_and_passes_the_rest():
    rng = np.random.default_rng(6)
    tracker, smoother = PoseTracker(COCO, TrackerConfig(min_hits=1)), PoseSmoother()
    raw, smooth = [], []
    for n in range(90):
        untracked = Pose(np.zeros((5, 3), np.float32), 0.1, np.zeros(4, np.float32))
        tracked = tracker.update([_pose((100, 200), rng, 1.0)], n / FPS)
        out = smoother.update(tracked + [untracked], n / FPS)
        assert out[1] is untracked and out[0].track_id == 1
        assert out[0].keypoints.dtype == np.float32 and out[0].bbox.dtype == np.float32
        raw.append(tracked[0].keypoints[:, :2])
        smooth.append(out[0].keypoints[:, :2])
    raw_std, smooth_std = np.std(raw[30:], axis=0).mean(), np.std(smooth[30:], axis=0).mean()
    assert raw_std / smooth_std > 2.6  # as the filter on its own (test above)
    np.testing.assert_array_equal(out[0].keypoints[:, 2], tracked[0].keypoints[:, 2])


def test_smoother_keeps_a_track_state_max_age_frames():
    smoother = PoseSmoother(SmootherConfig(max_age=2))
    a, b = _pose((100, 200)), _pose((130, 200))
    tracked = [[a], [b], [], [], [a], [], [], [], [b]]
    outs = [
        smoother.update([_with_id(p) for p in poses], n / FPS) for n, poses in enumerate(tracked)
    ]
    assert 100 < outs[1][0].keypoints[0, 0] < 130  # the nose, smoothed from a towards b
    assert outs[4][0].keypoints[0, 0] != a.keypoints[0, 0]  # absent 2 frames: state kept
    np.testing.assert_array_equal(outs[8][0].keypoints, b.keypoints)  # absent 3: starts afresh


def test_smoother_missing_keypoints_pass_through():
    smoother = PoseSmoother()
    smoother.update([_with_id(_pose((100, 200)))], 0.0)
    partial = _with_id(_pose((120, 200), found=range(5, 17)))
    out = smoother.update([partial], 1 / FPS)[0]
    np.testing.assert_array_equal(out.keypoints[:5], partial.keypoints[:5])
    assert np.all(out.keypoints[5:, 0] < partial.keypoints[5:, 0])  # the others lag behind


def test_smoother_refuses_another_keypoint_count_and_repeated_ids():
    smoother = PoseSmoother()
    smoother.update([_with_id(_pose((100, 200)))], 0.0)
    other = Pose(np.ones((18, 3), np.float32), 0.9, np.zeros(4, np.float32), 7)
    with pytest.raises(
        SchemaError, match="pose 0 \\(track 7\\) has 18 keypoints, the track had 17"
    ):
        smoother.update([other], 1.0)
    with pytest.raises(ConfigError, match="track id 7 given twice"):
        smoother.update([_with_id(_pose((100, 200)))] * 2, 1.0)


def test_pose_track_id_defaults_to_none():
    assert Pose(np.zeros((17, 3), np.float32), 0.5, np.zeros(4, np.float32)).track_id is None


def test_shared_speed_smooths_a_figure_at_rest_without_lagging_a_walking_one():
    # 17 keypoints with 2 px noise at 15 fps (benchmarks/tracking.py's clips): at rest, and
    # walking at 45 px/s. A keypoint's own speed estimate at rest (~18 px/s of noise after the
    # speed filter) is as large as the walk's, so the per-keypoint (demo) filter smooths the rest
    # only 1.8-2.4x (1.9x here); the figure's shared speed (noise / sqrt(17)) lets the default cut
    # it > 3x (4.7x here: a still figure, no occluders) while the walk's error stays below the raw
    # noise's (2.17 vs 2.52 px).
    rng = np.random.default_rng(7)
    fps, frames = 15.0, 150
    base = rng.uniform(50, 150, (17, 2))
    noise = rng.normal(0.0, 2.0, (frames, 17, 2))
    walk = np.arange(frames)[:, None, None] * np.array([45.0 / fps, 0.0])

    def run(config, truth):
        f = OneEuroFilter(config.min_cutoff, config.beta, config.d_cutoff,
                          shared_speed=config.shared_speed)  # fmt: skip
        out = np.stack([f(v, n / fps) for n, v in enumerate(truth + noise)])
        return out[30:] - truth[30:]

    rest = np.broadcast_to(base, (frames, 17, 2))
    raw_jitter = noise[30:].std(0).mean()
    shared = raw_jitter / run(SmootherConfig(), rest).std(0).mean()
    demo = raw_jitter / run(DEMO_SMOOTHER, rest).std(0).mean()
    assert shared > 3.0 and shared > 1.3 * demo
    raw_error = np.linalg.norm(noise[30:], axis=-1).mean()
    walk_error = np.linalg.norm(run(SmootherConfig(), base + walk), axis=-1).mean()
    assert walk_error < raw_error


def test_smoother_presets_are_the_cli_choices():
    from posekit.cli_infer import SMOOTHER_PRESETS

    assert set(SMOOTHER_PRESETS) == set(SMOOTHERS)
    assert SMOOTHERS["demo"] == SmootherConfig(1.0, 0.05, 1.0, shared_speed=False)
    with pytest.raises(ConfigError, match="shared_speed must be true or false"):
        SmootherConfig(shared_speed="yes")
