"""The video pipeline: threaded poses equal the sequential ones (and ``predict_batch``'s) float for
float, in frame order; a failure in any stage reaches the caller and ends the threads; a closed
window stops the run early."""

from __future__ import annotations

import itertools
import threading

import numpy as np
import pytest

from posekit.data.synth_video import ClipConfig, generate_clip
from posekit.errors import ConfigError
from posekit.media import Frame, VideoSink, open_source
from posekit.models.loading import load_model
from posekit.structures import Pose
from posekit.tracking import PoseTracker
from posekit.video import run_pipeline
from tests.conftest import REPO

CHECKPOINT = REPO / "tests/fixtures/posekit_0.1_paf_tiny.pt"  # trained on synthetic figures
FRAMES = 10
BATCH = 3  # 10 frames: three full batches and a last one of one frame


@pytest.fixture(scope="module")
def predictor():
    return load_model(CHECKPOINT).predictor(input_height=192)


@pytest.fixture(scope="module")
def video(predictor, tmp_path_factory):
    """An .mp4 of a synthetic clip (walking figures of the model's schema), 320x240."""
    config = ClipConfig(num_clips=1, frames=FRAMES, image_size=(320, 240), figures=2,
                        part_colors=True, seed=5)  # fmt: skip
    images, _ = generate_clip(predictor.schema, np.random.default_rng(5), config)
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    with VideoSink(path, fps=15.0) as sink:
        for image in images:
            sink.write(image)
    return path


class _Recorder:
    """A ``write`` callable that keeps what it was given; False from frame ``stop_at`` on,
    ``error`` raised at frame ``fail_at``."""

    def __init__(self, stop_at: int | None = None, fail_at: int | None = None,
                 error: BaseException | None = None) -> None:  # fmt: skip
        self.stop_at, self.fail_at, self.error = stop_at, fail_at, error
        self.frames: list[Frame] = []
        self.poses: list[list[Pose]] = []

    def __call__(self, frame: Frame, poses: list[Pose]) -> bool:
        if frame.index == self.fail_at:
            raise self.error
        self.frames.append(frame)
        self.poses.append(poses)
        return frame.index != self.stop_at


def _assert_same(a: list[list[Pose]], b: list[list[Pose]]) -> None:
    assert len(a) == len(b)
    for pa, pb in zip(a, b, strict=True):
        assert len(pa) == len(pb)
        for x, y in zip(pa, pb, strict=True):
            assert np.array_equal(x.keypoints, y.keypoints) and np.array_equal(x.bbox, y.bbox)
            assert (x.score, x.track_id) == (y.score, y.track_id)


def test_flip_and_scales_are_split_too_and_match_predict_batch(video):
    """A flip-test, two-scale predictor runs split (its averaging in stage 3) and gives
    ``predict_batch``'s poses; ``maps`` of one image is the same averaging."""
    predictor = load_model(CHECKPOINT).predictor(input_height=192, flip=True, scales=(1.0, 0.75))
    write = _Recorder()
    stats = run_pipeline(open_source(video), predictor, write=write, batch_size=BATCH)
    assert stats.split and stats.threaded and stats.frames == FRAMES
    images = [f.image for f in write.frames]
    batched = [p for i in range(0, FRAMES, BATCH)
               for p in predictor.predict_batch(images[i : i + BATCH])]  # fmt: skip
    _assert_same(write.poses, batched)
    assert sum(map(len, batched)) >= FRAMES
    _assert_same([predictor.decode(predictor.maps(images[0]))], [batched[0]])


def _frames_until(video, fail_at: int):
    """The video's frames, raising OSError where frame ``fail_at`` would come."""
    for frame in open_source(video):
        if frame.index == fail_at:
            raise OSError(f"frame {fail_at} is unreadable")
        yield frame


@pytest.mark.parametrize("tracked", [False, True], ids=["plain", "tracked"])
def test_threaded_poses_equal_sequential_and_predict_batch(predictor, video, tracked):
    runs = {}
    for threaded in (False, True):
        tracker = PoseTracker(predictor.schema)
        track = (lambda f, p, t=tracker: t.update(p, f.index / 15.0)) if tracked else None
        write = _Recorder()
        stats = run_pipeline(open_source(video), predictor, write=write, track=track,
                             batch_size=BATCH, threaded=threaded)  # fmt: skip
        assert (stats.frames, stats.threaded, stats.split) == (FRAMES, threaded, True)
        assert [f.index for f in write.frames] == list(range(FRAMES))  # in order
        assert min(stats.read_s, stats.network_s, stats.write_s) > 0
        runs[threaded] = write
    assert sum(map(len, runs[False].poses)) >= FRAMES  # the figures are found
    _assert_same(runs[True].poses, runs[False].poses)
    if not tracked:  # the CLI's loop today: predict_batch of the same batches
        images = [f.image for f in runs[False].frames]
        batched = [p for i in range(0, FRAMES, BATCH)
                   for p in predictor.predict_batch(images[i : i + BATCH])]  # fmt: skip
        _assert_same(runs[True].poses, batched)
    else:
        assert {p.track_id for poses in runs[True].poses for p in poses} - {None}


@pytest.mark.parametrize("error", [RuntimeError("disk full"), KeyboardInterrupt()],
                         ids=["error", "ctrl-c"])  # fmt: skip
def test_a_failing_write_reaches_the_caller_and_ends_the_threads(predictor, video, error):
    before = threading.active_count()
    write = _Recorder(fail_at=3, error=error)
    with pytest.raises(type(error)) as caught:
        run_pipeline(open_source(video), predictor, write=write, batch_size=2, queue_size=1)
    assert caught.value is error
    assert [f.index for f in write.frames] == [0, 1, 2]
    assert threading.active_count() == before


def test_a_failing_reader_writes_the_frames_before_it_then_raises(predictor, video):
    before = threading.active_count()
    for threaded in (False, True):
        write = _Recorder()
        with pytest.raises(OSError, match="frame 5 is unreadable"):
            run_pipeline(_frames_until(video, 5), predictor, write=write, batch_size=2,
                         threaded=threaded)  # fmt: skip
        assert [f.index for f in write.frames] == [0, 1, 2, 3]  # the batches before frame 5's
    assert threading.active_count() == before


class _FailingPredictor:
    """A predictor without a split (``predict_batch`` only) whose second call fails."""

    def __init__(self) -> None:
        self.calls = 0

    def predict_batch(self, images: list[np.ndarray]) -> list[list[Pose]]:
        self.calls += 1
        if self.calls == 2:
            raise ValueError("network failed")
        return [[] for _ in images]


def test_a_failing_network_reaches_the_caller(video):
    before = threading.active_count()
    write = _Recorder()
    with pytest.raises(ValueError, match="network failed"):
        run_pipeline(open_source(video), _FailingPredictor(), write=write, batch_size=4)
    assert [f.index for f in write.frames] == [0, 1, 2, 3]
    assert threading.active_count() == before


def test_write_returning_false_stops_an_endless_source_and_closes_it(predictor, video):
    before = threading.active_count()
    images = [f.image for f in open_source(video)]
    closed = []

    def webcam():  # never ends by itself
        try:
            for index in itertools.count():
                yield Frame(images[index % len(images)], "webcam0", index, index)
        finally:
            closed.append(threading.current_thread().name)

    write = _Recorder(stop_at=4)
    stats = run_pipeline(webcam(), predictor, write=write, batch_size=2, queue_size=1)
    assert stats.frames == 5 and [f.index for f in write.frames] == [0, 1, 2, 3, 4]
    assert closed == ["posekit-read"]  # closed by the thread that read it
    assert threading.active_count() == before


def test_topdown_predictors_get_each_frame_with_its_image_id(video):
    class TopDown:
        family = "topdown"

        def predict(self, image: np.ndarray, image_id: int) -> list[Pose]:
            box = np.array([0, 0, image.shape[1], image.shape[0]], np.float32)
            return [Pose(np.zeros((1, 3), np.float32), float(image_id), box)]

    write = _Recorder()
    stats = run_pipeline(open_source(video), TopDown(), write=write, batch_size=4)
    assert not stats.split and [p[0].score for p in write.poses] == list(range(FRAMES))


def test_batch_and_queue_sizes_are_checked(predictor):
    with pytest.raises(ConfigError, match="batch_size and queue_size must be >= 1, got 0, 4"):
        run_pipeline([], predictor, write=_Recorder(), batch_size=0)
