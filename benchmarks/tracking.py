"""Tracking, measured on synthetic crossing clips with a real MOT metrics library (motmetrics).

Usage: python benchmarks/tracking.py [--clips 6] [--frames 60] [--seed 0]
       [--checkpoint runs/demo/best.pt] [--quiet]

Needs motmetrics (``pip install -e .[bench]``).

Clips: ``write_clips`` of ``ClipConfig(crossing=True)`` with ``--clips``, ``--frames``, ``--seed``
and the image size and part colors of the checkpoint's training data (``data.synth`` of the
``config.yaml`` beside it, else ``posekit train``'s default synthetic data, ``DEMO_SYNTH``: 192x192,
part colors); everything else at ClipConfig's defaults (2-3 figures walking 1-4 px/frame towards
and past each other at 15 fps, each standing perfectly still with probability 0.2). The true
positions (``ClipInstance.position``) come from ``generate_clip`` seeded as ``write_clips``
documents; the JSON is checked against them.

Poses:

- oracle: every annotated figure's labelled keypoints (v > 0) plus N(0, 2 px) on x and on y; each
  keypoint is dropped (score 0, x = y = 0) with probability 0.1, both drawn anew every frame;
  found keypoints score 1, the pose scores the share of found keypoints, its box is the found
  keypoints' box. Full occlusion / missed detections: in every second clip (the 2nd, 4th, ...)
  one walking figure, drawn at random, gives no pose in 10 consecutive frames, the window's start
  drawn uniformly from [0.8 mid - 5, mid - 5] (mid = frames / 2): the walkers cross between 0.8 and
  1.0 times mid-clip, so the window covers the crossing. The figures stay in the ground truth
  there (misses). Noise, drops and windows come from ``default_rng([seed, 1])``.
- model: the checkpoint's predictor (no flip) on every JPEG frame of the clips.

MOT scores (``motmetrics``, one accumulator per clip, the OVERALL row of ``compute_many``): the
objects of a frame are its annotated figures with a labelled keypoint (their clip track ids), the
hypotheses the tracker's poses that show an id (``track_id`` None, a track not confirmed yet, is no
hypothesis); distance = 1 - OKS (``posekit.oks``, the schema's sigmas, its labelled keypoints,
the figure's **box** area as the scale: see below), pairs with OKS <= 0.5 never match. MOTP is the mean 1 - OKS of the
matches. Trackers: ``PoseTracker`` with ``TrackerConfig()`` (mode "oks", velocity on) and
``TrackerConfig(mode="greedy")``, timestamps frame / fps. The oracle's row "true ids" scores its
poses with their figures' own ids, every pose shown: a tracker without a single error, the
ceiling that the OKS gate, the dropped keypoints and the dropouts leave. Goal: IDF1 of "oks" >=
0.95 and above greedy's.

Smoothing: the "oks" tracker's poses, raw and through ``PoseSmoother``. Each frame's figures are
paired with the raw poses (``match_by_oks``, OKS > 0.5); the smoothed poses are the same poses in
the same order. A sample is a keypoint of a paired pose that shows a track id, found (score > 0)
and labelled in the truth (v > 0). Jitter: for each keypoint of each figure that never moves (its
true positions are the same in every frame) with at least ``MIN_REST_SAMPLES`` samples, the RMS
distance of its samples to their mean, px, averaged. Motion error: the mean distance of the
samples of walking figures to the true position, px. Also printed: the jitter over the frames in
which the resting figure has no occluded keypoint (walkers pass in front of it). AP:
``evaluate_coco`` of all poses (tracked or not) against the clips' JSON. Goals: jitter >= 3x
lower, motion error no higher, AP no lower than raw. Filters: ``SmootherConfig()``'s defaults
(the cutoff follows the figure's shared speed) and Lightweight OpenPose demo's (``DEMO_SMOOTHER``,
a speed per keypoint).

Reading the numbers: the figures' COCO areas are those of their thin limbs (median 13 % of their
box at 192x192, where a photographed person's segmentation fills about half of its box), so OKS
with them is strict: 2 px of noise alone left the oracle's median OKS near 0.65 and about 5 % of
its poses at OKS <= 0.5, unmatched before any tracking error ("true ids" 0.928). The MOT match
therefore takes the figure's box area as the OKS scale (``MOT_AREA``); the smoothing pairs and the
AP keep the COCO area (the AP is pycocotools' own).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import motmetrics as mm
import numpy as np
import yaml
from tqdm import tqdm

from posekit.config import DEMO_SYNTH
from posekit.data.synth_video import ClipConfig, ClipInstance, generate_clip, write_clips
from posekit.engine.evaluate import evaluate_coco
from posekit.engine.matching import match_by_oks
from posekit.models.loading import LoadedModel, load_model
from posekit.oks import oks
from posekit.schema import KeypointSchema
from posekit.structures import Pose
from posekit.tracking import (
    DEMO_SMOOTHER,
    PoseSmoother,
    PoseTracker,
    SmootherConfig,
    TrackerConfig,
)

NOISE_PX = 2.0
DROP_PROB = 0.1
DROPOUT_FRAMES = 10
MIN_OKS = 0.5
"""A figure and a pose pair (MOT match, smoothing samples) only with OKS above it."""
MIN_REST_SAMPLES = 10
MODES = ("oks", "greedy")
TRACKERS = {mode: TrackerConfig(mode=mode) for mode in MODES}
CEILING = "true ids"
"""The oracle poses scored with their figures' ids: a tracker without a single error."""
IDF1_GOAL, JITTER_GOAL = 0.95, 3.0
DEFAULT = SmootherConfig()
DEFAULT_NAME = (
    f"figure speed ({DEFAULT.min_cutoff:g} Hz, beta {DEFAULT.beta:g}, d {DEFAULT.d_cutoff:g} Hz)"
)
DEMO_NAME = "demo (1 Hz, beta 0.05, per keypoint)"
METRICS = {
    "idf1": "IDF1",
    "mota": "MOTA",
    "motp": "MOTP",
    "num_switches": "ID sw",
    "num_fragmentations": "frag",
    "num_false_positives": "FP",
    "num_misses": "miss",
    "num_objects": "GT",
}
# write_clips' seeds: clip n is generate_clip(default_rng([seed, _CLIP_KEY, n]))
_CLIP_KEY = zlib.crc32(b"clips")


@dataclass(frozen=True, eq=False)
class FrameTruth:
    """The annotated figures of one frame that have a labelled keypoint (M of them).

    Attributes:
        track_ids: (M,) int, the figures' clip track ids.
        keypoints: (M, K_real, 3) float64 x, y, v in image pixels (the JSON's).
        position: (M, K_real, 2) float64 true x, y of every keypoint, also occluded ones.
        areas: (M,) COCO areas, pixels^2.
        box_areas: (M,) areas of the figures' boxes, pixels^2 (the MOT match's OKS scale).
    """

    track_ids: np.ndarray
    keypoints: np.ndarray
    position: np.ndarray
    areas: np.ndarray
    box_areas: np.ndarray

    @classmethod
    def of(cls, instances: Sequence[ClipInstance], k: int) -> FrameTruth:
        """The instances with a labelled keypoint; ``k``: K_real."""
        kept = [inst for inst in instances if (inst.keypoints[:, 2] > 0).any()]
        return cls(
            np.asarray([inst.track_id for inst in kept], dtype=np.int64),
            np.asarray([inst.keypoints for inst in kept], dtype=np.float64).reshape(-1, k, 3),
            np.asarray([inst.position for inst in kept], dtype=np.float64).reshape(-1, k, 2),
            np.asarray([inst.area for inst in kept], dtype=np.float64),
            np.asarray([inst.bbox[2] * inst.bbox[3] for inst in kept], dtype=np.float64),
        )


@dataclass(frozen=True, eq=False)
class Clip:
    """One clip: per frame its JSON image id, file and truth; the ids of figures that never move."""

    image_ids: tuple[int, ...]
    files: tuple[Path, ...]
    truth: tuple[FrameTruth, ...]
    resting: frozenset[int]


# ------------------------------------------------------------------------------------ helpers
def mot_accumulator(
    truth: Sequence[FrameTruth], tracked: Sequence[Sequence[Pose]], schema: KeypointSchema
) -> mm.MOTAccumulator:
    """One clip's MOT events: per frame the figures (their track ids) against the poses that show
    a ``track_id``, distance 1 - OKS with the figures' box areas, no pair at OKS <= ``MIN_OKS``."""
    acc = mm.MOTAccumulator(auto_id=True)
    for frame, poses in zip(truth, tracked, strict=True):
        shown = [p for p in poses if p.track_id is not None]
        dist = np.full((len(frame.track_ids), len(shown)), np.nan)
        if len(shown) and len(frame.track_ids):
            pred = schema.to_real(np.stack([p.keypoints for p in shown]))
            sim = np.asarray(oks(pred, frame.keypoints, frame.box_areas, schema.real_sigmas))
            sim = sim.reshape(len(shown), len(frame.track_ids)).T
            dist = np.where(sim > MIN_OKS, 1.0 - sim, np.nan)
        acc.update(frame.track_ids.tolist(), [p.track_id for p in shown], dist)
    return acc


def mot_summary(accumulators: Sequence[mm.MOTAccumulator]) -> dict[str, float]:
    """The OVERALL row of ``METRICS`` over the clips."""
    names = [f"clip {n + 1}" for n in range(len(accumulators))]
    table = mm.metrics.create().compute_many(
        list(accumulators), metrics=list(METRICS), names=names, generate_overall=True
    )
    return {key: float(table.loc["OVERALL", key]) for key in METRICS}


def rest_and_motion(
    truth: Sequence[FrameTruth],
    paired: Sequence[np.ndarray],
    poses: Sequence[Sequence[Pose]],
    resting: frozenset[int],
    *,
    unoccluded: bool = False,
) -> tuple[list[float], list[float]]:
    """One clip's jitter series and motion errors (module docstring).

    Args:
        truth: per frame, the figures.
        paired: per frame, (M,) the index of each figure's pose, -1 for none.
        poses: per frame, the poses the indices point to.
        resting: track ids of the figures that never move.
        unoccluded: only frames in which the figure has no occluded keypoint (v = 1) count.

    Returns:
        The RMS distance to its mean of each (resting figure, keypoint) series of at least
        ``MIN_REST_SAMPLES`` samples, px; the distance of every walking figure's sample to the true
        position, px.
    """
    rest: dict[tuple[int, int], list[np.ndarray]] = {}
    errors: list[float] = []
    for frame, pairs, frame_poses in zip(truth, paired, poses, strict=True):
        for m, i in enumerate(pairs):
            if i < 0 or frame_poses[i].track_id is None:
                continue
            kpts, v = frame_poses[i].keypoints, frame.keypoints[m, :, 2]
            if unoccluded and (v == 1).any():
                continue
            use = (kpts[:, 2] > 0) & (v > 0)
            track_id = int(frame.track_ids[m])
            if track_id in resting:
                for k in np.flatnonzero(use):
                    rest.setdefault((track_id, int(k)), []).append(kpts[k, :2])
            else:
                d = np.linalg.norm(kpts[use, :2] - frame.position[m, use], axis=-1)
                errors += d.tolist()
    jitter = [
        float(np.sqrt(((np.asarray(xy) - np.mean(xy, axis=0)) ** 2).sum(-1).mean()))
        for xy in rest.values()
        if len(xy) >= MIN_REST_SAMPLES
    ]
    return jitter, errors


def oracle_poses(
    frame: FrameTruth, schema: KeypointSchema, rng: np.random.Generator, hidden: set[int]
) -> list[Pose]:
    """The frame's figures but ``hidden`` as poses: labelled keypoints + N(0, ``NOISE_PX``), each
    dropped with probability ``DROP_PROB`` (module docstring); ``track_id`` the figure's (the
    trackers replace it)."""
    poses = []
    for track_id, gt in zip(frame.track_ids, frame.keypoints, strict=True):
        found = (gt[:, 2] > 0) & (rng.random(len(gt)) >= DROP_PROB)
        xy = gt[:, :2] + rng.normal(0.0, NOISE_PX, (len(gt), 2))
        if track_id in hidden or not found.any():
            continue
        kpts = np.zeros((1, schema.num_keypoints, 3))
        kpts[0, list(schema.real_indices)] = np.where(
            found[:, None], np.c_[xy, np.ones(len(gt))], 0
        )
        kpts = schema.add_virtual(kpts)[0].astype(np.float32)
        box = np.r_[xy[found].min(0), xy[found].max(0)].astype(np.float32)
        poses.append(Pose(kpts, float(found.mean()), box, track_id=int(track_id)))
    return poses


# -------------------------------------------------------------------------------- the clips
def training_synth(checkpoint: Path) -> tuple[tuple[int, int], bool]:
    """(W, H) and part colors of the checkpoint's synthetic training data."""
    config = checkpoint.parent / "config.yaml"
    run = yaml.safe_load(config.read_text()) if config.is_file() else None
    synth = (run or {}).get("data", {}).get("synth") or {}
    return (
        tuple(synth.get("image_size", DEMO_SYNTH.image_size)),
        bool(synth.get("part_colors", DEMO_SYNTH.part_colors)),
    )


def load_clips(root: Path, ann: Path, schema: KeypointSchema, config: ClipConfig) -> list[Clip]:
    """The written clips with their true positions (``generate_clip`` as ``write_clips`` seeds it)."""
    coco = json.loads(ann.read_text())
    k = len(schema.real_indices)
    counts: dict[int, int] = {}
    for a in coco["annotations"]:
        counts[a["image_id"]] = counts.get(a["image_id"], 0) + 1
    clips = []
    for video in coco["videos"]:
        images = sorted(
            (i for i in coco["images"] if i["video_id"] == video["id"]), key=lambda i: i["frame_id"]
        )
        rng = np.random.default_rng([config.seed, _CLIP_KEY, video["id"]])
        per_frame = generate_clip(schema, rng, config)[1]
        if [len(f) for f in per_frame] != [counts.get(i["id"], 0) for i in images]:
            raise RuntimeError(f"{ann}: {video['name']} is not generate_clip's clip")
        positions: dict[int, list[np.ndarray]] = {}
        for inst in (inst for frame in per_frame for inst in frame):
            positions.setdefault(inst.track_id, []).append(inst.position)
        resting = frozenset(t for t, pos in positions.items() if np.ptp(pos, axis=0).max() == 0)
        clips.append(
            Clip(
                tuple(i["id"] for i in images),
                tuple(root / "images" / i["file_name"] for i in images),
                tuple(FrameTruth.of(f, k) for f in per_frame),
                resting,
            )
        )
    return clips


def dropout_windows(clips: Sequence[Clip], rng: np.random.Generator) -> list[dict[int, int]]:
    """Per clip {track id: first frame} of the figure hidden for ``DROPOUT_FRAMES`` frames."""
    out = []
    for n, clip in enumerate(clips):
        walking = sorted({int(t) for f in clip.truth for t in f.track_ids} - clip.resting)
        if n % 2 == 0 or not walking:
            out.append({})
            continue
        mid = len(clip.truth) / 2
        start = int(round(rng.uniform(0.8 * mid, mid))) - DROPOUT_FRAMES // 2
        start = min(max(start, 0), len(clip.truth) - DROPOUT_FRAMES)
        out.append({int(rng.choice(walking)): start})
    return out


def oracle_clip(
    clip: Clip, window: dict[int, int], schema: KeypointSchema, rng: np.random.Generator
) -> list[list[Pose]]:
    """The clip's oracle poses per frame, ``window``'s figure hidden in its frames."""
    return [
        oracle_poses(
            frame, schema, rng, {t for t, s in window.items() if s <= f < s + DROPOUT_FRAMES}
        )
        for f, frame in enumerate(clip.truth)
    ]


# ------------------------------------------------------------------------------------ running
def run_tracker(
    poses: Sequence[Sequence[Pose]], schema: KeypointSchema, config: TrackerConfig, fps: float
) -> list[list[Pose]]:
    """``PoseTracker`` over one clip's poses per frame, timestamps frame / fps."""
    tracker = PoseTracker(schema, config)
    return [tracker.update(p, f / fps) for f, p in enumerate(poses)]


def run_smoother(
    tracked: Sequence[Sequence[Pose]], config: SmootherConfig, fps: float
) -> list[list[Pose]]:
    """``PoseSmoother`` over one clip's tracked poses per frame, timestamps frame / fps."""
    smoother = PoseSmoother(config)
    return [smoother.update(p, f / fps) for f, p in enumerate(tracked)]


def mot_table(
    title: str,
    clips: Sequence[Clip],
    poses: Sequence[Sequence[Sequence[Pose]]],
    schema: KeypointSchema,
    fps: float,
    *,
    ceiling: bool = False,
) -> dict[str, dict[str, float]]:
    """Track ``poses`` (per clip, per frame) in both modes; print and return the MOT scores.
    ``ceiling``: also score the poses with the ``track_id`` they come with (the true ids)."""
    streams = {
        mode: [run_tracker(p, schema, config, fps) for p in poses]
        for mode, config in TRACKERS.items()
    }
    if ceiling:
        streams[CEILING] = list(poses)
    rows = {
        name: mot_summary(
            [mot_accumulator(c.truth, t, schema) for c, t in zip(clips, stream, strict=True)]
        )
        for name, stream in streams.items()
    }
    print(f"\n{title}")
    print(f"  {'tracker':<10}" + "".join(f"{name:>8}" for name in METRICS.values()))
    for name, row in rows.items():
        cells = [
            f"{row[k]:8.3f}" if k in ("idf1", "mota", "motp") else f"{row[k]:8.0f}" for k in METRICS
        ]
        print(f"  {name:<10}" + "".join(cells))
    return rows


def smoothing_rows(
    clips: Sequence[Clip],
    poses: Sequence[Sequence[Sequence[Pose]]],
    schema: KeypointSchema,
    fps: float,
    ann: Path,
    smoothers: dict[str, SmootherConfig],
) -> dict[str, dict[str, float]]:
    """Jitter, motion error and AP of the "oks" tracker's poses, raw and through each smoother."""
    tracked = [run_tracker(p, schema, TRACKERS["oks"], fps) for p in poses]
    empty = np.zeros((0, schema.num_keypoints, 3))
    paired = [
        [
            match_by_oks(
                schema.to_real(np.stack([p.keypoints for p in fp]) if fp else empty),
                f.keypoints,
                f.areas,
                schema.real_sigmas,
                min_oks=MIN_OKS,
            )
            for f, fp in zip(c.truth, t, strict=True)
        ]
        for c, t in zip(clips, tracked, strict=True)
    ]
    streams = {"raw": tracked} | {
        name: [run_smoother(t, config, fps) for t in tracked] for name, config in smoothers.items()
    }
    rows = {}
    for name, stream in streams.items():
        jitter: list[float] = []
        errors: list[float] = []
        visible: list[float] = []
        for c, pairs, s in zip(clips, paired, stream, strict=True):
            j, e = rest_and_motion(c.truth, pairs, s, c.resting)
            jitter, errors = jitter + j, errors + e
            visible += rest_and_motion(c.truth, pairs, s, c.resting, unoccluded=True)[0]
        per_image = {
            i: p
            for c, s in zip(clips, stream, strict=True)
            for i, p in zip(c.image_ids, s, strict=True)
        }
        rows[name] = {
            "jitter_px": float(np.mean(jitter)) if jitter else float("nan"),
            "rest_series": len(jitter),
            "jitter_unoccluded_px": float(np.mean(visible)) if visible else float("nan"),
            "unoccluded_series": len(visible),
            "motion_error_px": float(np.mean(errors)) if errors else float("nan"),
            "motion_samples": len(errors),
            "AP": evaluate_coco(ann, per_image, schema)["AP"],
        }
    for row in rows.values():
        row["jitter_lower"] = rows["raw"]["jitter_px"] / row["jitter_px"]
        row["unoccluded_lower"] = rows["raw"]["jitter_unoccluded_px"] / row["jitter_unoccluded_px"]
        row["goals_met"] = (
            row["jitter_lower"] >= JITTER_GOAL
            and row["motion_error_px"] <= rows["raw"]["motion_error_px"]
            and row["AP"] >= rows["raw"]["AP"]
        )
    return rows


def print_smoothing_row(
    source: str, name: str, row: dict[str, float], raw: dict[str, float]
) -> None:
    """One row of the smoothing table, the goals against ``raw`` (none for the raw row)."""
    goals = ""
    if row is not raw:
        met = [
            row["jitter_lower"] >= JITTER_GOAL,
            row["motion_error_px"] <= raw["motion_error_px"],
            row["AP"] >= raw["AP"],
        ]
        goals = "  " + " / ".join("met" if m else "MISSED" for m in met)
    print(
        f"  {source:<7} {name:<44} {row['jitter_px']:6.3f} {row['jitter_lower']:5.2f}x "
        f"{row['rest_series']:4d} {row['jitter_unoccluded_px']:6.3f} "
        f"{row['unoccluded_lower']:5.2f}x {row['unoccluded_series']:4d} "
        f"{row['motion_error_px']:6.3f} {row['motion_samples']:6d} {row['AP']:7.4f}{goals}"
    )


def model_poses(model: LoadedModel, clips: Sequence[Clip], quiet: bool) -> list[list[list[Pose]]]:
    """The model's poses (no flip) on every JPEG frame, per clip, per frame."""
    predictor = model.predictor(flip=False)
    total = sum(len(c.files) for c in clips)
    with tqdm(total=total, desc="predict", unit="frame", disable=quiet, leave=False) as bar:
        out = []
        for clip in clips:
            out.append([])
            for file in clip.files:
                out[-1].append(predictor.predict(cv2.imread(str(file))))
                bar.update()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=6, help="clips (6)")
    parser.add_argument("--frames", type=int, default=60, help="frames per clip (60)")
    parser.add_argument("--seed", type=int, default=0, help="clips and oracle noise (0)")
    parser.add_argument("--checkpoint", type=Path, default=Path("runs/demo/best.pt"))
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args()
    from _common import machine_lines  # the benchmarks folder: on sys.path when run as a script

    logging.basicConfig(level=logging.WARNING)
    for line in machine_lines():
        print(line)
    start = time.perf_counter()
    model = load_model(args.checkpoint) if args.checkpoint.is_file() else None
    schema = model.schema if model else KeypointSchema.named("coco_person")
    size, colors = training_synth(args.checkpoint)
    config = ClipConfig(
        num_clips=args.clips,
        frames=args.frames,
        image_size=size,
        part_colors=colors,
        crossing=True,
        seed=args.seed,
    )
    fps = config.fps
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="posekit-track-bench-") as folder:
        root = Path(folder)
        ann = write_clips(root, schema, config, progress=not args.quiet)
        clips = load_clips(root, ann, schema, config)
        rng = np.random.default_rng([args.seed, 1])
        windows = dropout_windows(clips, rng)
        oracle = [oracle_clip(c, w, schema, rng) for c, w in zip(clips, windows, strict=True)]
        figures = sum(len({int(t) for f in c.truth for t in f.track_ids}) for c in clips)
        resting = sum(len(c.resting) for c in clips)
        print(
            f"\nclips: {args.clips} x {args.frames} frames, {size[0]}x{size[1]}, "
            f"part colors {colors}, {fps:g} fps, crossing; {figures} figures "
            f"({resting} at rest), schema {schema.name}"
        )
        hidden = "; ".join(
            f"clip {n + 1}: figure {t}, frames {s}-{s + DROPOUT_FRAMES - 1}"
            for n, w in enumerate(windows)
            for t, s in w.items()
        )
        print(f"oracle full dropouts ({DROPOUT_FRAMES} frames): {hidden or 'none'}")
        results["oracle"] = mot_table(
            f"a) oracle poses (truth + N(0, {NOISE_PX:g} px), {DROP_PROB:.0%} keypoints dropped)",
            clips,
            oracle,
            schema,
            fps,
            ceiling=True,
        )
        a_met = (
            results["oracle"]["oks"]["idf1"] >= IDF1_GOAL
            and results["oracle"]["oks"]["idf1"] > results["oracle"]["greedy"]["idf1"]
        )
        print(f"  goal: oks IDF1 >= {IDF1_GOAL} and above greedy: {'met' if a_met else 'MISSED'}")
        sources = {"oracle": oracle}
        if model:
            sources["model"] = model_poses(model, clips, args.quiet)
            results["model"] = mot_table(
                f"b) the model's poses ({args.checkpoint}, no flip)",
                clips,
                sources["model"],
                schema,
                fps,
            )
        else:
            print(f"\nb) skipped: no checkpoint at {args.checkpoint} (--checkpoint FILE)")
        print(
            "\nc) smoothing of the oks tracker's poses (PoseSmoother); goals: jitter "
            f">= {JITTER_GOAL:g}x lower / motion error no higher / AP no lower"
        )
        print(
            f"  {'':<7} {'':<44} {'jitter at rest, px':^18} {'unoccluded frames':^18} "
            f"{'motion, px':^13}"
        )
        print(
            f"  {'poses':<7} {'filter':<44} {'RMS':>6} {'lower':>6} {'n':>4} {'RMS':>6} "
            f"{'lower':>6} {'n':>4} {'error':>6} {'n':>6} {'AP':>7}  goals"
        )
        smoothers = {DEFAULT_NAME: DEFAULT, DEMO_NAME: DEMO_SMOOTHER}
        smoothing = {
            s: smoothing_rows(clips, p, schema, fps, ann, smoothers) for s, p in sources.items()
        }
        for source, rows in smoothing.items():
            for name, row in rows.items():
                print_smoothing_row(source, name, row, rows["raw"])
        results["smoothing"] = smoothing
    results["goal_a_met"] = a_met
    results["seconds"] = time.perf_counter() - start
    print(f"\nwhole run: {results['seconds']:.0f} s")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
