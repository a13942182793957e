"""The video / webcam loop: frames -> poses -> (tracked,) written, in stage threads, in frame order.

``run_pipeline`` takes frames in batches of ``batch_size`` consecutive frames through three stages:

1. read + preprocess: the next frames from the iterable; for a ``BottomUpPredictor`` also their
   network inputs (``prepare_batch``: same-size frames grouped, an input per scale, mirrored
   inputs with flip);
2. network: ``run_batch``, the forward passes of each prepared group (torch and NumPy release the
   GIL in their heavy operations, so this overlaps the other stages);
3. decode + track + write: ``finish_batch`` (flip and scale averaging, decoding), then
   ``track(frame, poses)`` and ``write(frame, poses)``, frame by frame in input order.

Threaded (default), stages 1 and 2 run in their own threads and stage 3 in the caller's (where a
window's ``imshow`` belongs and where Ctrl-C arrives), joined by bounded queues of ``queue_size``
batches. Each stage runs in one thread and the queues are FIFO, so frames come out in input
order. Sequential, the same three calls follow each other in the caller's thread: the reference
that the threaded run matches float for float, since ``BottomUpPredictor.predict_batch`` is
those three calls too.

Predictors that are not split (the network stage runs the predictor's whole call, preprocessing
and decoding included; stage 1 only reads):

- a top-down predictor (``family == "topdown"``: boxes, then crops): ``predict(image,
  image_id)`` per frame;
- anything else: ``predict_batch`` of the batch's images.

Stopping: ``write`` returning False (a closed window) ends the run after that frame; an exception
in any stage ends every stage and is re-raised in the caller after the frames before it were
written, as in the sequential run; Ctrl-C (``KeyboardInterrupt``, raised in the caller's thread)
ends every stage at once and propagates. The worker threads are joined before ``run_pipeline``
returns or raises, and the frame iterator is closed in the thread that reads it (a
``FrameSource`` then releases its capture).

Speed (``benchmarks/video_pipeline.py``; 2 shared cores, a 320x240 clip, batch 4): with a
trained paf_tiny finding about 6 poses a frame, threaded runs made 1.3-1.5x the sequential
frames/s with and without tracking (the other work on the machine moves it by +-0.1); a
network-bound model gains little, as only stages 1 and 3 can hide behind the network. The
network stage uses torch's intra-op threads as the caller set them.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from typing import Any, Protocol

from posekit.errors import ConfigError
from posekit.inference.bottomup import BottomUpPredictor, PreparedGroup
from posekit.media import Frame
from posekit.structures import Pose

logger = logging.getLogger(__name__)

__all__ = ["PipelineStats", "run_pipeline"]

Track = Callable[[Frame, list[Pose]], list[Pose]]
Write = Callable[[Frame, list[Pose]], bool]

_POLL_S = 0.05
"""Seconds a blocked queue operation waits before it checks again whether to stop."""
_JOIN_S = 10.0
"""Seconds to wait for a stage thread to end (a webcam read returns within a frame)."""


@dataclass(frozen=True)
class PipelineStats:
    """What one ``run_pipeline`` call did.

    Attributes:
        frames: frames written (``write`` calls, the one that returned False included).
        seconds: wall time of the run, seconds.
        read_s: busy seconds of stage 1 (reading frames, preprocessing).
        network_s: busy seconds of stage 2 (forward passes; unsplit predictors: their whole call).
        write_s: busy seconds of stage 3 (decoding, tracking, ``write``).
        threaded: whether the stages ran in their own threads.
        split: whether preprocessing and decoding ran outside the network stage.
    """

    frames: int
    seconds: float
    read_s: float
    network_s: float
    write_s: float
    threaded: bool
    split: bool

    @property
    def fps(self) -> float:
        """Frames per second of wall time."""
        return self.frames / max(self.seconds, 1e-9)

    def summary(self) -> str:
        """One line: frames, frames/s and the busy ms per frame of each stage."""
        ms = [1e3 * s / max(self.frames, 1) for s in (self.read_s, self.network_s, self.write_s)]
        if self.split:
            stage1, stage2 = "read+preprocess", "network"
        else:
            stage1, stage2 = "read", "network (with preprocess and decode)"
        return (
            f"{self.frames} frames in {self.seconds:.2f} s ({self.fps:.1f} frames/s, "
            f"{'threaded' if self.threaded else 'sequential'}): {stage1} {ms[0]:.1f} ms/frame, "
            f"{stage2} {ms[1]:.1f}, decode+write {ms[2]:.1f}"
        )


# ---------------------------------------------------------------------- the stages of a predictor
class _Stages(Protocol):
    split: bool

    def prepare(self, frames: list[Frame]) -> Any: ...

    def run(self, prepared: Any) -> Any: ...

    def finish(self, frames: list[Frame], computed: Any) -> list[list[Pose]]: ...


class _BottomUpStages:
    """A ``BottomUpPredictor`` split at its forward passes (``prepare_batch`` / ``run_batch`` /
    ``finish_batch``, which ``predict_batch`` runs in a row): any scales, flip or not."""

    split = True

    def __init__(self, predictor: BottomUpPredictor) -> None:
        self.predictor = predictor

    def prepare(self, frames: list[Frame]) -> list[PreparedGroup]:
        return self.predictor.prepare_batch([f.image for f in frames])

    def run(self, groups: list[PreparedGroup]) -> list[PreparedGroup]:
        return self.predictor.run_batch(groups)

    def finish(self, frames: list[Frame], groups: list[PreparedGroup]) -> list[list[Pose]]:
        return self.predictor.finish_batch(len(frames), groups)


class _WholeStages:
    """A predictor that is not split: its whole call is the network stage."""

    split = False

    def __init__(self, predict: Callable[[list[Frame]], list[list[Pose]]]) -> None:
        self.predict = predict

    def prepare(self, frames: list[Frame]) -> list[Frame]:
        return frames

    def run(self, frames: list[Frame]) -> list[list[Pose]]:
        return self.predict(frames)

    def finish(self, frames: list[Frame], poses: list[list[Pose]]) -> list[list[Pose]]:
        return poses


def _stages(predictor: Any) -> _Stages:
    """How ``predictor`` splits into stages (module docstring)."""
    if isinstance(predictor, BottomUpPredictor):
        return _BottomUpStages(predictor)
    if getattr(predictor, "family", None) == "topdown":
        return _WholeStages(lambda frames: [predictor.predict(f.image, f.image_id) for f in frames])
    return _WholeStages(lambda frames: predictor.predict_batch([f.image for f in frames]))


# ---------------------------------------------------------------------- running them
@dataclass(frozen=True, eq=False)
class _Batch:
    frames: list[Frame]
    data: Any


@dataclass(frozen=True)
class _Failure:
    error: BaseException


_END = object()


class _Link:
    """A bounded queue from one stage to the next; the consumer ``close``s it when it stops, and
    the producer's ``put`` then gives up."""

    def __init__(self, size: int) -> None:
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=size)
        self.closed = threading.Event()

    def put(self, item: Any) -> bool:
        """Hand ``item`` on; False when the consumer has stopped."""
        while not self.closed.is_set():
            try:
                self.queue.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def get(self, give_up: Callable[[], bool]) -> Any:
        """The next item, or None once ``give_up()`` is true while the queue is empty."""
        while True:
            try:
                return self.queue.get(timeout=_POLL_S)
            except queue.Empty:
                if give_up():
                    return None


class _Clock:
    """Busy seconds of the three stages (each entry written by one thread only)."""

    def __init__(self) -> None:
        self.busy = [0.0, 0.0, 0.0]

    def timed(self, stage: int, fn: Callable[..., Any], *args: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args)
        finally:
            self.busy[stage] += time.perf_counter() - start


def _read_batches(frames: Iterator[Frame], size: int, stages: _Stages,
                  clock: _Clock) -> Iterator[_Batch]:  # fmt: skip
    """Stage 1: batches of up to ``size`` consecutive frames, prepared."""
    while True:
        batch = clock.timed(0, lambda: list(islice(frames, size)))
        if not batch:
            return
        yield _Batch(batch, clock.timed(0, stages.prepare, batch))


@contextmanager
def _iterating(frames: Iterable[Frame]) -> Iterator[Iterator[Frame]]:
    """An iterator of ``frames``, closed on exit when it is a generator (a ``FrameSource``
    releases its capture), in the thread that iterated it."""
    iterator = iter(frames)
    try:
        yield iterator
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()


def _reader(frames: Iterable[Frame], size: int, stages: _Stages, clock: _Clock,
            out: _Link) -> None:  # fmt: skip
    """Stage 1's thread: prepared batches, then ``_END`` or the ``_Failure``."""
    try:
        with _iterating(frames) as iterator:
            for batch in _read_batches(iterator, size, stages, clock):
                if not out.put(batch):
                    return
        out.put(_END)
    except BaseException as exc:  # handed on, re-raised in the caller
        out.put(_Failure(exc))


def _network(stages: _Stages, clock: _Clock, inp: _Link, out: _Link) -> None:
    """Stage 2's thread: computed batches, then what ended stage 1 (or this stage's failure)."""
    try:
        while not out.closed.is_set():
            item = inp.get(out.closed.is_set)
            if item is None:  # the caller stopped
                return
            if not isinstance(item, _Batch):  # _END or stage 1's _Failure
                out.put(item)
                return
            if not out.put(_Batch(item.frames, clock.timed(1, stages.run, item.data))):
                return
    except BaseException as exc:  # handed on, re-raised in the caller
        out.put(_Failure(exc))
    finally:
        inp.closed.set()


def _emit(batch: _Batch, stages: _Stages, track: Track | None, write: Write,
          clock: _Clock) -> tuple[int, bool]:  # fmt: skip
    """Stage 3 of one computed batch: (frames written, whether to go on)."""
    start = time.perf_counter()
    try:
        poses = stages.finish(batch.frames, batch.data)
        for n, (frame, found) in enumerate(zip(batch.frames, poses, strict=True), 1):
            if not write(frame, track(frame, found) if track is not None else found):
                return n, False
        return len(batch.frames), True
    finally:
        clock.busy[2] += time.perf_counter() - start


def run_pipeline(
    frames: Iterable[Frame],
    predictor: Any,
    *,
    write: Write,
    track: Track | None = None,
    batch_size: int = 1,
    threaded: bool = True,
    queue_size: int = 4,
) -> PipelineStats:
    """Predict, (track,) and write every frame of ``frames`` in order (module docstring).

    Args:
        frames: ``Frame`` s, e.g. a ``media.FrameSource`` (iterated in stage 1's thread and
            closed there when the run stops early).
        predictor: a ``BottomUpPredictor`` (split at its forward pass), a top-down predictor
            (``predict(image, image_id)``) or any object with ``predict_batch(images)``.
        write: ``(frame, poses) -> go on``, called in the caller's thread in frame order; False
            ends the run after this frame (e.g. ``media.PredictionWriter.write``).
        track: ``(frame, poses) -> poses`` (ids, smoothing), called in frame order before
            ``write``; None: poses as predicted.
        batch_size: consecutive frames per forward pass (>= 1).
        threaded: run stages 1 and 2 in their own threads (False: all in the caller's thread,
            the same calls on the same batches: the same poses, float for float).
        queue_size: batches that may wait between two stages (>= 1).

    Returns:
        The frame count, wall time and busy time of each stage (also logged at INFO).

    Raises:
        ConfigError: ``batch_size`` or ``queue_size`` is below 1.
        Whatever a stage raised (reading, preprocessing, the network, decoding, ``track``,
        ``write``), after the frames before it were written; ``KeyboardInterrupt`` likewise.
    """
    if batch_size < 1 or queue_size < 1:
        raise ConfigError(f"batch_size and queue_size must be >= 1, got {batch_size}, "
                          f"{queue_size}")  # fmt: skip
    stages, clock = _stages(predictor), _Clock()
    start = time.perf_counter()
    run = _run_threaded if threaded else _run_sequential
    written = run(frames, stages, track, write, clock, batch_size, queue_size)
    stats = PipelineStats(written, time.perf_counter() - start, *clock.busy, threaded=threaded,
                          split=stages.split)  # fmt: skip
    logger.info("video pipeline: %s", stats.summary())
    return stats


def _run_sequential(frames: Iterable[Frame], stages: _Stages, track: Track | None, write: Write,
                    clock: _Clock, batch_size: int, queue_size: int) -> int:  # fmt: skip
    """The three stages one after the other in this thread; frames written."""
    written = 0
    with _iterating(frames) as iterator:
        for batch in _read_batches(iterator, batch_size, stages, clock):
            computed = _Batch(batch.frames, clock.timed(1, stages.run, batch.data))
            n, go_on = _emit(computed, stages, track, write, clock)
            written += n
            if not go_on:
                break
    return written


def _run_threaded(frames: Iterable[Frame], stages: _Stages, track: Track | None, write: Write,
                  clock: _Clock, batch_size: int, queue_size: int) -> int:  # fmt: skip
    """Stages 1 and 2 in their threads, stage 3 here; frames written."""
    prepared, computed = _Link(queue_size), _Link(queue_size)
    threads = [
        threading.Thread(target=_reader, args=(frames, batch_size, stages, clock, prepared),
                         name="posekit-read", daemon=True),
        threading.Thread(target=_network, args=(stages, clock, prepared, computed),
                         name="posekit-network", daemon=True),
    ]  # fmt: skip
    for thread in threads:
        thread.start()
    written = 0
    try:
        while True:
            item = computed.get(lambda: not threads[1].is_alive() and computed.queue.empty())
            if item is None:
                raise RuntimeError("video pipeline: the network thread ended without a result")
            if isinstance(item, _Failure):
                raise item.error
            if item is _END:
                return written
            n, go_on = _emit(item, stages, track, write, clock)
            written += n
            if not go_on:
                return written
    finally:
        computed.closed.set()
        prepared.closed.set()
        _join(threads)


def _join(threads: Sequence[threading.Thread]) -> None:
    for thread in threads:
        thread.join(timeout=_JOIN_S)
        if thread.is_alive():
            logger.warning("video pipeline: thread %s still running after %.0f s (left as a "
                           "daemon)", thread.name, _JOIN_S)  # fmt: skip
