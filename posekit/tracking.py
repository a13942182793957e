"""Video: identities across frames (``PoseTracker``) and One-Euro smoothing of tracked poses (``PoseSmoother``).

Both are plain objects that the video loop calls once per frame, in this order::

    tracker, smoother = PoseTracker(schema), PoseSmoother()
    for frame, timestamp in video:
        poses = smoother.update(tracker.update(predict(frame), timestamp), timestamp)

Dimensions: N poses of the current frame, T live tracks, K keypoints (the schema's, virtual ones
included). Coordinates are pixels of whatever frame the poses are in; timestamps are seconds and
must increase from call to call.

Tracking. ``TrackerConfig.mode`` picks the matcher from ``_MATCHERS``:

- ``"oks"``: the similarity of a (pose, track) pair is COCO OKS (``posekit.oks.oks`` with the
  schema, so its sigmas and without its virtual keypoints) of the pose against the track's last
  pose as the ground truth, with the track's box area (floor 1 px^2) as the area. With
  ``velocity`` the track's keypoints and box are first moved by its velocity times the time since
  its last match. Where the pose or the track has fewer than ``min_keypoints`` found keypoints the
  boxes' IoU replaces OKS (useful with detector boxes; the keypoint box of a one-keypoint pose has
  no area and overlaps nothing). Pairs are assigned to maximise the summed similarity of the pairs
  at or above ``match_threshold`` (``scipy.optimize.linear_sum_assignment``); the others stay
  unmatched. An unmatched pose starts a track; a track unmatched in more than ``max_age``
  consecutive frames dies. A track shows its id from the frame of its ``min_hits``-th match on (its
  first frame counts), before that its poses get ``track_id=None``; once shown, the id stays.
- ``"greedy"``: Lightweight OpenPose demo's ``track_poses`` (``modules/pose.py``): by descending
  score, each pose takes the not yet taken pose of the previous frame with the most similar
  keypoints, when at least ``GREEDY_MIN_SIMILAR`` are similar, else it gets a new id. A keypoint is
  similar when found in both poses and ``exp(-d^2 / (2 A (2 sigma)^2)) > GREEDY_KEYPOINT_SIMILARITY``,
  A the larger of the two box areas, sigma the schema's. Only the previous frame counts: there is
  no ageing, no velocity, every pose shows its id at once (``max_age``, ``min_hits``, ``velocity``,
  ``match_threshold`` and ``min_keypoints`` do not apply).

Ids are ints counted from 1 in the order tracks show them (a track that dies unconfirmed uses none),
never reused; ``reset`` starts again from 1.

Smoothing. ``PoseSmoother`` keeps one ``OneEuroFilter`` per track id over the (K, 2) keypoints
and the two box corners.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy.optimize import linear_sum_assignment

from posekit.errors import ConfigError, SchemaError
from posekit.oks import oks
from posekit.schema import KeypointSchema
from posekit.structures import Pose

__all__ = [
    "DEMO_SMOOTHER",
    "GREEDY_KEYPOINT_SIMILARITY",
    "GREEDY_MIN_SIMILAR",
    "TRACKER_MODES",
    "OneEuroFilter",
    "PoseSmoother",
    "PoseTracker",
    "SMOOTHERS",
    "SmootherConfig",
    "TrackerConfig",
]

TRACKER_MODES = ("oks", "greedy")
"""``TrackerConfig.mode`` values, the keys of ``_MATCHERS``."""

GREEDY_MIN_SIMILAR = 3
"""Similar keypoints a greedy match needs (Lightweight OpenPose ``track_poses(threshold=3)``)."""

GREEDY_KEYPOINT_SIMILARITY = 0.5
"""Per-keypoint similarity above which a keypoint is similar (their ``get_similarity(threshold=0.5)``)."""

_EPS = np.spacing(1)  # added to box areas, as pycocotools and Lightweight OpenPose do


def _check_timestamp(where: str, timestamp: float, previous: float | None) -> float:
    """``timestamp`` as a float, or ConfigError unless it is finite and after ``previous``."""
    value = float(timestamp)
    if not math.isfinite(value):
        raise ConfigError(f"{where}: timestamp must be a finite number of seconds, got {timestamp}")
    if previous is not None and value <= previous:
        raise ConfigError(
            f"{where}: timestamp {value} s is not after the previous one, {previous} s; "
            "timestamps must increase (call reset() to start a new video)"
        )
    return value


def _integer_problem(name: str, value: object, minimum: int) -> list[str]:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        return [f"{name} must be an integer >= {minimum}, got {value!r}"]
    return []


def _number_problem(name: str, value: object, *, zero: bool = False) -> list[str]:
    """[] when ``value`` is a finite number > 0 (>= 0 with ``zero``), else what is wrong."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not (number and math.isfinite(value) and (value > 0 or (zero and value == 0))):
        return [f"{name} must be a number {'>=' if zero else '>'} 0, got {value!r}"]
    return []


def _one_euro_problems(min_cutoff: object, beta: object, d_cutoff: object) -> list[str]:
    return (
        _number_problem("min_cutoff", min_cutoff)
        + _number_problem("beta", beta, zero=True)
        + _number_problem("d_cutoff", d_cutoff)
    )


def _raise_problems(where: str, problems: list[str]) -> None:
    if problems:
        raise ConfigError(f"{where}: " + "; ".join(problems))


# ---------------------------------------------------------------------------------- tracking
@dataclass(frozen=True)
class TrackerConfig:
    """How ``PoseTracker`` matches poses to tracks (see the module docstring).

    Attributes:
        mode: ``"oks"`` (optimal assignment on OKS) or ``"greedy"`` (Lightweight OpenPose's demo).
        match_threshold: in (0, 1], the lowest OKS (or box IoU) of a match.
        max_age: frames a track survives without a match (>= 0).
        min_hits: matched frames before a track shows its id (>= 1; 1: at once).
        min_keypoints: a pose or track with fewer found keypoints is matched by box IoU (>= 0).
        velocity: predict a track's keypoints and box at constant velocity before matching.
    """

    mode: str = "oks"
    match_threshold: float = 0.3
    max_age: int = 10
    min_hits: int = 3
    min_keypoints: int = 3
    velocity: bool = True

    def __post_init__(self) -> None:
        problems = []
        if self.mode not in TRACKER_MODES:
            problems.append(f"mode must be one of {TRACKER_MODES}, got {self.mode!r}")
        if not (isinstance(self.match_threshold, int | float) and 0 < self.match_threshold <= 1):
            problems.append(f"match_threshold must be in (0, 1], got {self.match_threshold!r}")
        problems += _integer_problem("max_age", self.max_age, 0)
        problems += _integer_problem("min_hits", self.min_hits, 1)
        problems += _integer_problem("min_keypoints", self.min_keypoints, 0)
        if not isinstance(self.velocity, bool):
            problems.append(f"velocity must be True or False, got {self.velocity!r}")
        _raise_problems("TrackerConfig", problems)


@dataclass(frozen=True)
class _Frame:
    """Poses or tracks as arrays: keypoints (n, K, 3) float64, boxes (n, 4) xyxy, scores (n,)."""

    keypoints: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray

    @classmethod
    def empty(cls, num_keypoints: int) -> _Frame:
        return cls(np.zeros((0, num_keypoints, 3)), np.zeros((0, 4)), np.zeros(0))


@dataclass(eq=False)
class _Track:
    """One figure: its last matched pose, velocity (2,) px/s of its keypoints, match counts."""

    keypoints: np.ndarray
    bbox: np.ndarray
    time: float
    velocity: np.ndarray
    hits: int = 1
    misses: int = 0
    track_id: int | None = None


def _box_area(boxes: np.ndarray) -> np.ndarray:
    """(n, 4) xyxy -> (n,) areas (0 for an empty box)."""
    return np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)


def _box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, 4) and (T, 4) xyxy -> (N, T) IoU; 0 where the union has no area."""
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=-1)
    union = _box_area(a)[:, None] + _box_area(b)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, _EPS), 0.0)


def _match_oks(
    poses: _Frame, tracks: _Frame, schema: KeypointSchema, config: TrackerConfig
) -> list[tuple[int, int]]:
    """(pose, track) index pairs of the assignment with the highest summed similarity."""
    n, t = len(poses.keypoints), len(tracks.keypoints)
    if n == 0 or t == 0:
        return []
    area = np.maximum(_box_area(tracks.boxes), 1.0)
    sim = np.asarray(oks(poses.keypoints, tracks.keypoints, area, schema)).reshape(n, t)
    pose_found = (schema.to_real(poses.keypoints)[..., 2] > 0).sum(-1)
    track_found = (schema.to_real(tracks.keypoints)[..., 2] > 0).sum(-1)
    few = (pose_found < config.min_keypoints)[:, None] | (track_found < config.min_keypoints)
    sim = np.where(few, _box_iou(poses.boxes, tracks.boxes), sim)
    allowed = sim >= config.match_threshold
    rows, cols = linear_sum_assignment(np.where(allowed, sim, 0.0), maximize=True)
    keep = allowed[rows, cols]
    return list(zip(rows[keep].tolist(), cols[keep].tolist(), strict=True))


def _similar_keypoints(poses: _Frame, tracks: _Frame, sigmas: np.ndarray) -> np.ndarray:
    """(N, T) counts of similar keypoints, Lightweight OpenPose's ``get_similarity``."""
    d2 = ((poses.keypoints[:, None, :, :2] - tracks.keypoints[None, :, :, :2]) ** 2).sum(-1)
    area = np.maximum(_box_area(poses.boxes)[:, None], _box_area(tracks.boxes)[None, :])
    sim = np.exp(-d2 / (2 * (area[..., None] + _EPS) * (2 * sigmas) ** 2))  # (N, T, K)
    both = (poses.keypoints[:, None, :, 2] > 0) & (tracks.keypoints[None, :, :, 2] > 0)
    return ((sim > GREEDY_KEYPOINT_SIMILARITY) & both).sum(-1)


def _match_greedy(
    poses: _Frame, tracks: _Frame, schema: KeypointSchema, config: TrackerConfig
) -> list[tuple[int, int]]:
    """(pose, track) index pairs, poses by descending score taking their most similar track."""
    if len(poses.keypoints) == 0 or len(tracks.keypoints) == 0:
        return []
    counts = _similar_keypoints(poses, tracks, np.asarray(schema.sigmas, dtype=np.float64))
    taken = np.zeros(len(tracks.keypoints), dtype=bool)
    pairs = []
    for i in np.argsort(-poses.scores, kind="stable"):  # sequential by design, one vector op each
        free = np.where(taken, -1, counts[i])
        j = int(np.argmax(free))  # ties: the older track, as their loop keeps the first maximum
        if free[j] >= GREEDY_MIN_SIMILAR:
            taken[j] = True
            pairs.append((int(i), j))
    return pairs


_MATCHERS: dict[
    str, Callable[[_Frame, _Frame, KeypointSchema, TrackerConfig], list[tuple[int, int]]]
] = {
    "oks": _match_oks,
    "greedy": _match_greedy,
}


class PoseTracker:
    """Gives poses of consecutive video frames the id of the figure they continue.

    Args:
        schema: the poses' keypoint schema (its sigmas; K must match every pose).
        config: matching, ageing and confirmation (``TrackerConfig``).
    """

    def __init__(self, schema: KeypointSchema, config: TrackerConfig = TrackerConfig()) -> None:
        self.schema = schema
        self.config = config
        greedy = config.mode == "greedy"
        self._max_age = 0 if greedy else config.max_age
        self._min_hits = 1 if greedy else config.min_hits
        self._velocity = config.velocity and not greedy
        self.reset()

    def reset(self) -> None:
        """Forget every track and the last timestamp; ids start again from 1."""
        self._tracks: list[_Track] = []
        self._next_id = 1
        self._time: float | None = None

    def update(self, poses: Sequence[Pose], timestamp: float) -> list[Pose]:
        """Match the poses of one frame to the tracks.

        Args:
            poses: the frame's poses, keypoints (K, 3) in pixels.
            timestamp: the frame's time in seconds, after the previous call's.

        Returns:
            The same poses in the same order, copies with ``track_id`` set (None while the pose's
            track is not confirmed, see ``TrackerConfig.min_hits``).
        """
        timestamp = _check_timestamp("PoseTracker.update", timestamp, self._time)
        frame = self._frame(poses)
        self._time = timestamp
        pairs = _MATCHERS[self.config.mode](
            frame, self._predicted(timestamp), self.schema, self.config
        )
        owners: list[_Track | None] = [None] * len(poses)
        for i, j in pairs:
            owners[i] = self._tracks[j]
            self._observe(self._tracks[j], frame, i, timestamp)
        matched = {j for _, j in pairs}
        for j, track in enumerate(self._tracks):
            track.misses += j not in matched
        self._tracks = [track for track in self._tracks if track.misses <= self._max_age]
        for i, owner in enumerate(owners):
            if owner is None:
                owners[i] = _Track(frame.keypoints[i], frame.boxes[i], timestamp, np.zeros(2))
                self._tracks.append(owners[i])
        for track in self._tracks:  # creation order: older figures get the lower ids
            if track.track_id is None and track.hits >= self._min_hits:
                track.track_id, self._next_id = self._next_id, self._next_id + 1
        return [replace(p, track_id=t.track_id) for p, t in zip(poses, owners, strict=True)]

    def _frame(self, poses: Sequence[Pose]) -> _Frame:
        k = self.schema.num_keypoints
        for n, pose in enumerate(poses):
            shape = np.shape(pose.keypoints)
            if len(shape) != 2 or shape[0] != k or shape[1] != 3:
                raise SchemaError(
                    f"PoseTracker.update: pose {n} has keypoints of shape {shape}; schema "
                    f"'{self.schema.name}' has {k} keypoints, so expected ({k}, 3)"
                )
        if not poses:
            return _Frame.empty(k)
        return _Frame(
            np.stack([np.asarray(p.keypoints, dtype=np.float64) for p in poses]),
            np.stack([np.asarray(p.bbox, dtype=np.float64).reshape(4) for p in poses]),
            np.asarray([p.score for p in poses], dtype=np.float64),
        )

    def _predicted(self, timestamp: float) -> _Frame:
        """The live tracks at ``timestamp``: moved at their velocity, or as last seen."""
        if not self._tracks:
            return _Frame.empty(self.schema.num_keypoints)
        kpts = np.stack([t.keypoints for t in self._tracks])
        boxes = np.stack([t.bbox for t in self._tracks])
        if self._velocity:
            shift = np.stack([t.velocity * (timestamp - t.time) for t in self._tracks])  # (T, 2)
            kpts = kpts.copy()
            kpts[..., :2] += shift[:, None, :]
            boxes = boxes + np.tile(shift, 2)
        return _Frame(kpts, boxes, np.zeros(len(self._tracks)))

    @staticmethod
    def _observe(track: _Track, frame: _Frame, i: int, timestamp: float) -> None:
        """Move ``track`` to pose ``i``; its velocity: the mean displacement per second of the
        keypoints found in both (a figure moves as a whole; one keypoint's displacement between
        two noisy detections is too noisy to extrapolate)."""
        kpts = frame.keypoints[i]
        common = (track.keypoints[:, 2] > 0) & (kpts[:, 2] > 0)
        if common.any():
            step = kpts[common, :2] - track.keypoints[common, :2]
            track.velocity = step.mean(axis=0) / (timestamp - track.time)
        track.keypoints, track.bbox, track.time = kpts, frame.boxes[i], timestamp
        track.hits += 1
        track.misses = 0


# ---------------------------------------------------------------------------------- smoothing
def _alpha(dt: np.ndarray, cutoff: float | np.ndarray) -> np.ndarray:
    """Smoothing factor of an exponential low-pass filter with ``cutoff`` Hz over ``dt`` s."""
    r = 2 * np.pi * cutoff * dt
    return r / (1 + r)


class OneEuroFilter:
    """One-Euro filter (Casiez, Roussel & Vogel, CHI 2012) of an array of values, e.g. keypoints.

    Every value is smoothed by an exponential low-pass filter whose cutoff grows with its speed:
    ``alpha = r / (1 + r)`` with ``r = 2 pi f_c dt``, ``f_c = min_cutoff + beta |dx/dt|``, the speed
    ``dx/dt`` itself low-passed at ``d_cutoff`` and ``dt`` the time since the value's previous
    update. Slow changes (jitter) are cut at ``min_cutoff`` Hz; at a constant speed v the lag settles
    at ``v / (2 pi (min_cutoff + beta v))``, below ``1 / (2 pi beta)`` (3.2 px for beta = 0.05
    and speeds in px/s).

    Defaults: Lightweight OpenPose demo's ``modules/one_euro_filter.py``, ``OneEuroFilter(freq=15,
    mincutoff=1, beta=0.05, dcutoff=1)``, with real timestamps instead of the fixed ``freq``. As
    there, the speed is the difference of two raw inputs (the paper differences the previous
    *filtered* value), and a value's first update returns it unchanged.

    Args:
        min_cutoff: cutoff at rest, Hz (> 0).
        beta: cutoff gain per unit of speed, Hz per (unit/s) (>= 0).
        d_cutoff: cutoff of the speed's own low-pass filter, Hz (> 0).
        shared_speed: drive every row's cutoff by one speed, the norm of the mean of the updated
            rows' filtered velocities (for a pose: how fast the whole figure moves), instead of
            each value's own ``|dx/dt|``. Averaging K keypoints divides the speed's noise by
            sqrt(K): at 15 fps with 2 px of noise a keypoint's own speed estimate is as large at
            rest as while walking, so per value the filter cannot smooth one without lagging the
            other; the shared speed separates them (``SmootherConfig``'s default).
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.05, d_cutoff: float = 1.0,
                 *, shared_speed: bool = False) -> None:  # fmt: skip
        _raise_problems("OneEuroFilter", _one_euro_problems(min_cutoff, beta, d_cutoff))
        self.min_cutoff, self.beta, self.d_cutoff = float(min_cutoff), float(beta), float(d_cutoff)
        self.shared_speed = bool(shared_speed)
        self.reset()

    def reset(self) -> None:
        """Forget every value's state and the last timestamp."""
        self._time: float | None = None
        self._x_hat: np.ndarray | None = None  # (K, C) filtered values
        self._x_raw = self._dx_hat = self._t = self._seen = np.zeros(0)

    def __call__(
        self, values: np.ndarray, timestamp: float, valid: np.ndarray | None = None
    ) -> np.ndarray:
        """Smooth one sample.

        Args:
            values: (K, C) float, the same shape at every call.
            timestamp: seconds, after the previous call's.
            valid: (K,) bool, default all; a row that is not valid (a keypoint not found) is
                returned unchanged and leaves its state as it was.

        Returns:
            (K, C) float64 smoothed values.
        """
        x = np.asarray(values, dtype=np.float64)
        if x.ndim != 2 or (self._x_hat is not None and x.shape != self._x_hat.shape):
            expected = "(K, C)" if self._x_hat is None else str(self._x_hat.shape)
            raise ConfigError(f"OneEuroFilter: values must be {expected}, got shape {x.shape}")
        mask = np.ones(len(x), dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
        if mask.shape != (len(x),):
            raise ConfigError(f"OneEuroFilter: valid must be ({len(x)},), got shape {mask.shape}")
        self._time = _check_timestamp("OneEuroFilter", timestamp, self._time)
        if self._x_hat is None:
            self._x_hat, self._x_raw, self._dx_hat = x.copy(), x.copy(), np.zeros_like(x)
            self._t, self._seen = np.zeros(len(x)), np.zeros(len(x), dtype=bool)
        update = (mask & self._seen)[:, None]
        first = (mask & ~self._seen)[:, None]
        dt = np.where(update, self._time - self._t[:, None], 1.0)  # 1.0: unused rows
        dx_hat = _alpha(dt, self.d_cutoff) * ((x - self._x_raw) / dt - self._dx_hat) + self._dx_hat
        speed = np.abs(dx_hat)
        if self.shared_speed and update.any():  # the common motion of the updated rows
            speed = np.full_like(speed, np.linalg.norm(dx_hat[update[:, 0]].mean(axis=0)))
        a = _alpha(dt, self.min_cutoff + self.beta * speed)
        x_hat = a * (x - self._x_hat) + self._x_hat
        self._dx_hat = np.where(update, dx_hat, np.where(first, 0.0, self._dx_hat))
        self._x_hat = np.where(update, x_hat, np.where(first, x, self._x_hat))
        self._x_raw = np.where(mask[:, None], x, self._x_raw)
        self._t = np.where(mask, self._time, self._t)
        self._seen = self._seen | mask
        return np.where(update, x_hat, x)


@dataclass(frozen=True)
class SmootherConfig:
    """``PoseSmoother``'s One-Euro parameters (``OneEuroFilter``) and state lifetime.

    The defaults smooth with the figure's shared speed (``OneEuroFilter(shared_speed=True)``) at
    min cutoff 0.1 Hz, beta 0.2, speed cutoff 0.2 Hz: on ``benchmarks/tracking.py``'s crossing
    clips (15 fps, oracle poses with 2 px noise, seeds 0-2) they cut the jitter of figures at rest
    3.1-3.2x while the error of walking figures stays below the raw poses' (2.24-2.34 vs
    2.47-2.51 px) and OKS AP rises, where Lightweight OpenPose's parameters (``DEMO_SMOOTHER``)
    reach 1.8x and lag. They were picked on a grid (min cutoff 0.1-1, beta 0.05-0.3, speed
    cutoff 0.2-1) as the point that met all three goals on all three seeds.

    Attributes:
        min_cutoff, beta, d_cutoff, shared_speed: see ``OneEuroFilter``.
        max_age: frames a track id may be absent before its filter state is dropped (>= 0).
    """

    min_cutoff: float = 0.1
    beta: float = 0.2
    d_cutoff: float = 0.2
    max_age: int = 10
    shared_speed: bool = True

    def __post_init__(self) -> None:
        problems = _one_euro_problems(self.min_cutoff, self.beta, self.d_cutoff)
        problems += _integer_problem("max_age", self.max_age, 0)
        if not isinstance(self.shared_speed, bool):
            problems.append(f"shared_speed must be true or false, got {self.shared_speed!r}")
        _raise_problems("SmootherConfig", problems)


DEMO_SMOOTHER = SmootherConfig(min_cutoff=1.0, beta=0.05, d_cutoff=1.0, shared_speed=False)
"""Lightweight OpenPose demo's smoothing (``OneEuroFilter``'s defaults, a speed per value):
``posekit predict --smooth --smoother demo``."""

SMOOTHERS = {"pose": SmootherConfig(), "demo": DEMO_SMOOTHER}
"""``posekit predict --smooth --smoother NAME`` presets: ``pose`` (the default) and ``demo``."""


@dataclass(eq=False)
class _Smoothed:
    """One track id's filter, its keypoint count K and the frame it was last seen in."""

    filter: OneEuroFilter
    num_keypoints: int
    last_frame: int


class PoseSmoother:
    """One-Euro smoothing of tracked poses: x, y of the keypoints and the box corners per track id.

    A track id's filter is created when the id first appears and dropped once the id was absent in
    more than ``max_age`` consecutive frames (it then starts afresh). Keypoints with score 0 keep
    their input values and leave the filter state as it was; scores are not changed.
    """

    def __init__(self, config: SmootherConfig = SmootherConfig()) -> None:
        self.config = config
        self.reset()

    def reset(self) -> None:
        """Forget every track's filter and the last timestamp."""
        self._states: dict[int, _Smoothed] = {}
        self._frame = 0
        self._time: float | None = None

    def update(self, tracked_poses: Sequence[Pose], timestamp: float) -> list[Pose]:
        """Smooth the poses of one frame.

        Args:
            tracked_poses: ``PoseTracker.update`` output; poses with ``track_id=None`` are passed
                through as they are.
            timestamp: the frame's time in seconds, after the previous call's.

        Returns:
            The poses in the same order; tracked ones are copies with smoothed keypoints and box.
        """
        timestamp = _check_timestamp("PoseSmoother.update", timestamp, self._time)
        self._check(tracked_poses)
        self._time, self._frame = timestamp, self._frame + 1
        out = []
        for pose in tracked_poses:
            if pose.track_id is None:
                out.append(pose)
                continue
            k = len(pose.keypoints)
            state = self._states.get(pose.track_id)
            if state is None:
                c = self.config
                filt = OneEuroFilter(c.min_cutoff, c.beta, c.d_cutoff, shared_speed=c.shared_speed)
                state = _Smoothed(filt, k, self._frame)
                self._states[pose.track_id] = state
            state.last_frame = self._frame
            values = np.concatenate([pose.keypoints[:, :2], np.reshape(pose.bbox, (2, 2))])
            valid = np.concatenate([pose.keypoints[:, 2] > 0, [True, True]])
            smooth = state.filter(values, timestamp, valid)
            keypoints = np.array(pose.keypoints, copy=True)
            keypoints[:, :2] = smooth[:k]
            bbox = smooth[k:].reshape(4).astype(np.asarray(pose.bbox).dtype)
            out.append(replace(pose, keypoints=keypoints, bbox=bbox))
        self._states = {
            i: s
            for i, s in self._states.items()
            if self._frame - s.last_frame <= self.config.max_age
        }
        return out

    def _check(self, poses: Sequence[Pose]) -> None:
        """SchemaError for a keypoint count that differs from the track's, ConfigError for an id
        given twice; before any state changes."""
        seen: set[int] = set()
        for n, pose in enumerate(poses):
            if pose.track_id is None:
                continue
            if pose.track_id in seen:
                raise ConfigError(f"PoseSmoother.update: track id {pose.track_id} given twice")
            seen.add(pose.track_id)
            state = self._states.get(pose.track_id)
            shape = np.shape(pose.keypoints)
            if len(shape) != 2 or shape[1] != 3:
                raise SchemaError(
                    f"PoseSmoother.update: pose {n}: keypoints must be (K, 3), got {shape}"
                )
            if state is not None and shape[0] != state.num_keypoints:
                raise SchemaError(
                    f"PoseSmoother.update: pose {n} (track {pose.track_id}) has {shape[0]} "
                    f"keypoints, the track had {state.num_keypoints}"
                )
