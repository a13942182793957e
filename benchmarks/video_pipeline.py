"""Frames/s of the video pipeline (``posekit.video.run_pipeline``), threaded against sequential,
without and with tracking, on one synthetic clip; the poses of both must be identical.

Usage: python benchmarks/video_pipeline.py [--checkpoint runs/demo/best.pt | --random-weights]
       [--frames 120] [--size 320 240] [--height H] [--batch-size 4] [--rounds 2] [--threads N]
       [--queue 4]

Model: ``--checkpoint``, by default ``runs/demo/best.pt`` (in the repo or beside it) when it
exists, else (or with ``--random-weights``) ``lwop_mobilenet`` with random weights: an untrained
network finds no peaks, so there is little decoding to overlap and the run is bound by the
network. Clip: ``data.synth_video.generate_clip`` with the model's schema (walking, crossing
figures), written as an .mp4 once; every run reads it back (``media.open_source``: video decoding
is part of stage 1) and writes a drawn .mp4 through ``media.PredictionWriter`` (drawing and
encoding are part of stage 3), tracked by a ``tracking.PoseTracker`` in the ``--track`` rows.

The script runs under ``OMP_WAIT_POLICY=PASSIVE`` as ``posekit predict`` does (it restarts itself
with it unless the variable is set). Runs are interleaved (sequential, threaded, sequential,
threaded, ... for each setting) so that load changes hit both alike; the median frames/s are
compared (goal: threaded >= 1.3x sequential on 2 cores), with the busy ms per frame of each stage
and the cores the process kept busy (its CPU seconds / wall seconds). Every run's poses must equal
the first sequential run's, float for float. Other work on the machine stretches every time: the
load average is printed before and after.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from topdown_speed import machine  # noqa: E402 - the CPU line of benchmarks/

from posekit.data.synth_video import ClipConfig, generate_clip  # noqa: E402
from posekit.media import DEFAULT_FPS, PredictionWriter, VideoSink, open_source  # noqa: E402
from posekit.models.loading import load_model  # noqa: E402
from posekit.structures import Pose  # noqa: E402
from posekit.tracking import PoseTracker  # noqa: E402
from posekit.video import PipelineStats, run_pipeline  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CHECKPOINTS = (REPO / "runs/demo/best.pt", REPO.parent / "runs/demo/best.pt")
GOAL = 1.3
"""Threaded frames/s over sequential frames/s to reach on 2 cores."""


def _load_text() -> str:
    return "/".join(f"{v:.2f}" for v in os.getloadavg()) + " (1/5/15 min)"


def write_clip(path: Path, schema, frames: int, size: tuple[int, int]) -> Path:
    """An .mp4 of a synthetic clip of ``frames`` frames of (W, H) ``size``, 15 fps."""
    config = ClipConfig(num_clips=1, frames=frames, image_size=size, figures=(2, 3), seed=7)
    images, _ = generate_clip(schema, np.random.default_rng(7), config)
    with VideoSink(path, fps=config.fps) as sink:
        for image in images:
            sink.write(image)
    return path


@dataclass(frozen=True)
class Run:
    """One timed run: the pipeline's stats, the cores this process kept busy (CPU seconds of
    all its threads / wall seconds) and the poses written, in frame order."""

    stats: PipelineStats
    cores: float
    poses: list[list[Pose]]


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed_run(video: Path, predictor, *, threaded: bool, tracked: bool, batch_size: int,
              queue_size: int, out: Path) -> Run:  # fmt: skip
    """One pipeline run over the clip."""
    source = open_source(video)
    writer = PredictionWriter(source, predictor.schema, out=out)
    tracker = PoseTracker(predictor.schema)
    fps = source.fps or DEFAULT_FPS
    written: list[list[Pose]] = []

    def write(frame, poses) -> bool:
        written.append(poses)
        return writer.write(frame, poses)

    cpu, wall = _cpu_seconds(), time.perf_counter()
    with writer:
        stats = run_pipeline(
            source,
            predictor,
            write=write,
            track=(lambda f, p: tracker.update(p, f.index / fps)) if tracked else None,
            batch_size=batch_size,
            threaded=threaded,
            queue_size=queue_size,
        )
    return Run(stats, (_cpu_seconds() - cpu) / (time.perf_counter() - wall), written)


def same_poses(a: list[list[Pose]], b: list[list[Pose]]) -> bool:
    """Whether two runs wrote the same poses, float for float (ids included)."""
    return len(a) == len(b) and all(
        len(pa) == len(pb)
        and all(
            np.array_equal(x.keypoints, y.keypoints)
            and np.array_equal(x.bbox, y.bbox)
            and (x.score, x.track_id) == (y.score, y.track_id)
            for x, y in zip(pa, pb, strict=True)
        )
        for pa, pb in zip(a, b, strict=True)
    )


def _row(runs: list[Run]) -> str:
    """Median frames/s, busy ms per frame of each stage and cores busy of ``runs``."""
    fps = statistics.median(r.stats.fps for r in runs)
    stages = [
        statistics.median(1e3 * getattr(r.stats, key) / r.stats.frames for r in runs)
        for key in ("read_s", "network_s", "write_s")
    ]
    cores = statistics.median(r.cores for r in runs)
    return " ".join(f"{v:>9.1f}" for v in (fps, *stages)) + f" {cores:>6.2f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, help="default: runs/demo/best.pt if it exists")
    parser.add_argument("--random-weights", action="store_true",
                        help="lwop_mobilenet with random weights even when a checkpoint exists")  # fmt: skip
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--size", type=int, nargs=2, default=(320, 240), metavar=("W", "H"))
    parser.add_argument("--height", type=int, help="network input height (the model's default)")
    parser.add_argument("--batch-size", type=int, default=4, help="frames per forward (4)")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each mode per setting")
    parser.add_argument("--queue", type=int, default=4, help="batches between two stages")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own)")
    args = parser.parse_args()
    if "OMP_WAIT_POLICY" not in os.environ:  # as posekit predict sets it; read when torch loads
        env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
        os.execve(sys.executable, [sys.executable, __file__, *sys.argv[1:]], env)
    if args.threads:
        torch.set_num_threads(args.threads)
    checkpoint = (
        None
        if args.random_weights
        else (args.checkpoint or next((p for p in CHECKPOINTS if p.is_file()), None))
    )
    if checkpoint is not None:
        loaded = load_model(checkpoint)
    else:
        loaded = load_model(weights="lwop_mobilenet", random_weights=True)
    predictor = loaded.predictor(input_height=args.height or loaded.input_height)
    print(machine())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
          f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}, load average {_load_text()}")  # fmt: skip
    print(f"model {loaded.source} ({loaded.record.model_name}, schema {loaded.schema.name}"
          f"{', random weights' if checkpoint is None else ''}), input height "
          f"{predictor.input_height}; clip {args.frames} frames {args.size[0]}x{args.size[1]}, "
          f"batch {args.batch_size}, queue {args.queue}, {args.rounds} rounds")  # fmt: skip
    ok = True
    with tempfile.TemporaryDirectory(prefix="posekit-video-bench-") as tmp:
        video = write_clip(Path(tmp) / "clip.mp4", loaded.schema, args.frames, tuple(args.size))
        timed_run(video, predictor, threaded=False, tracked=False, batch_size=args.batch_size,
                  queue_size=args.queue, out=Path(tmp) / "warmup")  # fmt: skip
        print(f"\n{'setting':<10} {'mode':<11} {'frames/s':>9} {'read+prep':>9} {'network':>9} "
              f"{'decode+wr':>9} {'cores':>6}  (medians; stages: busy ms/frame)")  # fmt: skip
        for tracked in (False, True):
            runs: dict[bool, list[Run]] = {False: [], True: []}
            for _ in range(args.rounds):
                for threaded in (False, True):
                    runs[threaded].append(timed_run(
                        video, predictor, threaded=threaded, tracked=tracked,
                        batch_size=args.batch_size, queue_size=args.queue,
                        out=Path(tmp) / f"out-{threaded}",
                    ))  # fmt: skip
            setting = "--track" if tracked else "plain"
            for mode, name in ((False, "sequential"), (True, "threaded")):
                print(f"{setting:<10} {name:<11} {_row(runs[mode])}")
            reference = runs[False][0].poses  # every run against the first sequential one
            same = all(same_poses(reference, r.poses) for r in runs[False] + runs[True])
            fps = {mode: statistics.median(r.stats.fps for r in runs[mode]) for mode in runs}
            ratio = fps[True] / fps[False]
            print(f"{setting:<10} ratio threaded/sequential {ratio:.2f}x (goal >= {GOAL:g}x: "
                  f"{'met' if ratio >= GOAL else 'not met'}); poses identical: "
                  f"{'yes' if same else 'NO'} ({sum(map(len, reference))} poses in {len(reference)} "
                  f"frames, every run)")  # fmt: skip
            ok = ok and same
    print(f"\nload average at the end {_load_text()}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
