"""Synthetic video clips with ground-truth identities (MP4 + JPEG frames + PoseTrack-style COCO
JSON), so that tracking (identity switches, smoothing error) can be scored.

A clip is a still background (``data.synth.background``) with a few figures of the schema
(``data.synth_figures``) that keep their identity (``track_id`` 1..N), size, proportions, colors
and texture for the whole clip. Each figure walks at constant velocity (or stands still with
probability ``rest_prob``: then it does not move at all, so any motion of a prediction is jitter);
while it walks, mirrored limb chains swing in antiphase, a cycle per 0.8 figure sizes travelled
(a walking-like gait) and every link's angle wanders smoothly by at most ``limb_jitter`` radians.
With ``crossing`` the figures start on opposite sides of the image center, at about one height,
and walk towards and past each other near mid-clip, so they cross and occlude each other.

Each figure has a fixed depth: figures are drawn back to front every frame and visibility follows
``data.synth`` (v=1 under a front figure, v=0 with x = y = 0 outside the image). A figure without
a visible pixel in a frame is not annotated in that frame. ``ClipInstance.position`` holds the
true x, y of every keypoint, also occluded or outside.

Files (``write_clips``): ``videos/clip_001.mp4`` (mp4v at ``fps``), the same frames as
``images/clip_001/000001.jpg`` ... (exact frames for evaluation) and ``annotations/clips.json``.
"""

from __future__ import annotations

import dataclasses
import logging
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from posekit.data.synth import (
    FigureStyle,
    SynthInstance,
    annotate,
    background,
    coco_annotation,
    figure_keypoints,
    figure_widths,
    paint_figure,
    pixel_noise,
    validate_fields,
    write_jpeg,
    write_json,
)
from posekit.data.synth_figures import (
    HIDDEN_JITTER,
    Drawn,
    Template,
    figure_colors,
    part_palette,
    template,
)
from posekit.media import VideoSink
from posekit.schema import KeypointSchema

logger = logging.getLogger(__name__)

# A walking figure's limbs swing through one cycle per this many figure sizes travelled (a human
# gait cycle, two steps, is about 0.8 body heights long).
_STRIDE = 0.8
# Angular frequencies (radians per frame) of the two sinusoids that make a link's angle wander.
_WOBBLE_RATE = (0.05, 0.3)
# Crossing walkers start this fraction of their half-clip path away from the image center, so they
# pass each other between 0.8 and 1.0 times mid-clip and end about mirrored.
_CROSS_REACH = (0.8, 1.0)
_CLIP_KEY = zlib.crc32(b"clips")  # other seeds than write_dataset's images
_BOUNDS = {
    "num_clips": (1, 10**6),
    "frames": (2, 10**6),
    "fps": (0.1, 1000.0),
    "image_size": (32, 16384),
    "figures": (1, 100),
    "speed": (0.0, 1000.0),
    "rest_prob": (0.0, 1.0),
    "seed": (0, 2**63 - 1),
    "jpeg_quality": (1, 100),
    "scale_range": (0.01, 4.0),
    "thickness_range": (0.01, 2.0),
    "angle_jitter": (0.0, np.pi),
    "length_jitter": (0.0, 1.0),
    "max_rotation": (0.0, 180.0),
    "swing": (0.0, np.pi / 2),
    "limb_jitter": (0.0, np.pi / 2),
    "clutter": (0, 1000),
    "noise_std": (0.0, 100.0),
}
_BOOL_KEYS = ("crossing", "part_colors")
_INTEGER_KEYS = ("num_clips", "frames", "image_size", "figures", "seed", "jpeg_quality", "clutter")
_PAIR_KEYS = ("image_size", "figures", "speed", "scale_range", "thickness_range")


@dataclass(frozen=True)
class ClipConfig:
    """Parameters of synthetic clips, validated at construction (ConfigError names the key).

    Args:
        num_clips: number of clips to write.
        frames: frames per clip (>= 2).
        fps: frame rate of the written videos.
        image_size: (W, H) in pixels, each in [32, 16384].
        figures: figures per clip, an inclusive range (a, b) drawn uniformly; an int n is
            stored as (n, n).
        speed: walking speed range (a, b) in pixels per frame.
        crossing: walkers start on opposite sides of the image center and walk across each other
            near mid-clip (else: anywhere inside the image, in any direction).
        rest_prob: probability that a figure stands perfectly still for the whole clip.
        seed: base seed (>= 0); clip ``n`` depends only on (seed, n).
        jpeg_quality: cv2 JPEG quality of the frame files, 1..100.
        scale_range: figure size (larger side of its template box) as a fraction of min(W, H).
        thickness_range: limb thickness as a fraction of the figure's unit limb length.
        angle_jitter: standard deviation (radians) of each limb's angle around the template (one
            pose per figure, kept for the clip).
        length_jitter: relative standard deviation of each limb's length (kept for the clip).
        max_rotation: each figure leans by a fixed angle uniform in [-max, max] degrees.
        swing: amplitude (radians) of the walking swing of the first link of a mirrored limb chain
            (half of it for the links below).
        limb_jitter: largest smooth wander (radians) of a link's angle while walking.
        clutter: maximum number of distractor shapes in the background.
        noise_std: standard deviation of the pixel noise, drawn anew every frame (0: none).
        part_colors: one fixed color per limb type, as ``SynthConfig.part_colors``.
    """

    num_clips: int = 4
    frames: int = 60
    fps: float = 15.0
    image_size: tuple[int, int] = (320, 240)
    figures: int | tuple[int, int] = (2, 3)
    speed: tuple[float, float] = (1.0, 4.0)
    crossing: bool = True
    rest_prob: float = 0.2
    seed: int = 0
    jpeg_quality: int = 95
    scale_range: tuple[float, float] = (0.35, 0.6)
    thickness_range: tuple[float, float] = (0.15, 0.35)
    angle_jitter: float = 0.15
    length_jitter: float = 0.1
    max_rotation: float = 8.0
    swing: float = 0.35
    limb_jitter: float = 0.04
    clutter: int = 8
    noise_std: float = 2.0
    part_colors: bool = False

    def __post_init__(self) -> None:
        figures = self.figures
        if isinstance(figures, int | np.integer) and not isinstance(figures, bool):
            object.__setattr__(self, "figures", (figures, figures))
        validate_fields(self, _BOUNDS, integer=_INTEGER_KEYS, pairs=_PAIR_KEYS, bools=_BOOL_KEYS)

    @property
    def angle_step(self) -> float:
        """Largest change (radians) of a link's angle from one frame to the next: the swing's
        (amplitude x cycle rate of the fastest, smallest figure) plus the wander's."""
        smallest = _STRIDE * self.scale_range[0] * min(self.image_size)
        return self.swing * 2.0 * np.pi * self.speed[1] / smallest + (
            self.limb_jitter * _WOBBLE_RATE[1]
        )


@dataclass(frozen=True, eq=False)
class ClipInstance(SynthInstance):
    """One annotated figure in one frame: a ``SynthInstance`` (keypoints (K_real, 3) x, y, v and
    position (K_real, 2) true x, y in image pixels, bbox xywh, area) and its identity.

    Attributes:
        track_id: the figure's identity, >= 1, the same in every frame of the clip.
    """

    track_id: int


@dataclass(frozen=True, eq=False)
class _Walker:
    """One figure of a clip. ``pos`` (T, K, 2) keypoints in image px per frame; ``corner`` (T, 2)
    int top-left of its canvas of ``canvas_size`` (W, H) per frame."""

    track_id: int
    pos: np.ndarray
    corner: np.ndarray
    canvas_size: tuple[int, int]
    style: FigureStyle
    draw_seed: int


def _swing_weights(schema: KeypointSchema, tpl: Template) -> np.ndarray:
    """(K,) signed swing amplitude per link (relative to ``swing``).

    A link is mirrored when its flip partner is the mirrored link (a left limb and its right one);
    mirrored links in a chain of at least two (upper arm and forearm, thigh and shin) whose links
    below are all in the chain (limbs, not a loop back to the axis as ear-eye-nose) swing, the
    first at 1 and the links below at 0.5, the one of lower index positive, its partner
    negative: in antiphase.
    """
    flip = np.asarray(schema.flip_index)
    depth = tpl.ancestors.sum(axis=1)
    closest = np.where(tpl.ancestors > 0, depth[None, :], -1.0)
    np.fill_diagonal(closest, -1.0)
    parent = np.where(closest.max(axis=1) >= 0, closest.argmax(axis=1), schema.roots[0])
    parent[schema.roots[0]] = -1
    k = np.arange(len(flip))
    has_parent = parent >= 0
    safe = np.maximum(parent, 0)
    mirrored = (
        has_parent
        & ~tpl.hidden
        & (flip != k)
        & (flip[safe] != safe)
        & (flip != safe)
        & (parent[flip] == flip[safe])
    )
    after_mirrored = has_parent & mirrored[safe]
    before_mirrored = np.zeros(len(flip), dtype=bool)
    before_mirrored[safe[mirrored & after_mirrored]] = True
    chain = mirrored & (after_mirrored | before_mirrored)
    chain &= ~np.any((tpl.ancestors.T > 0) & ~chain[None, :], axis=1)  # a limb, not a face loop
    chain &= chain[flip]
    return np.where(chain, np.where(after_mirrored, 0.5, 1.0) * np.where(k < flip, 1, -1), 0.0)


def _walker(
    schema: KeypointSchema,
    tpl: Template,
    rng: np.random.Generator,
    config: ClipConfig,
    track_id: int,
    lane: float,
    side: int,
    backdrop: np.ndarray,
) -> _Walker:
    """Figure ``track_id`` of a clip on ``backdrop`` (H, W, 3). In crossing clips, ``side`` +1
    starts left of the center and walks right, -1 the other way, and the figure walks ``lane``
    steps of 0.04 H below the middle row (front figures lower)."""
    (w, h), frames, k = config.image_size, config.frames, schema.num_keypoints
    n = len(schema.limbs)
    jitter = np.where(tpl.hidden, HIDDEN_JITTER, 1.0)
    size = rng.uniform(*config.scale_range) * min(w, h)
    unit = size / tpl.extent
    angle = tpl.angle + rng.normal(0, config.angle_jitter, k) * jitter
    length = tpl.length * np.clip(1 + rng.normal(0, config.length_jitter, k) * jitter, 0.4, 2)
    turn = tpl.upright + np.deg2rad(rng.uniform(-config.max_rotation, config.max_rotation))
    thickness, radius, margin = figure_widths(rng, tpl, n, unit, config.thickness_range)
    resting = bool(rng.random() < config.rest_prob)
    speed = 0.0 if resting else rng.uniform(*config.speed)
    t = np.arange(frames, dtype=np.float64)[:, None]
    if config.crossing:
        heading = (0.0 if side > 0 else np.pi) + rng.uniform(-0.08, 0.08)
        reach = rng.uniform(*_CROSS_REACH) * speed * (frames - 1) / 2.0
        rest_x = w / 2.0 + rng.uniform(-0.15, 0.15) * w
        start = np.array([rest_x if resting else w / 2.0 - side * reach, (0.5 + 0.04 * lane) * h])
    else:
        heading = rng.uniform(0, 2.0 * np.pi)
        room = np.minimum(size / 2.0, np.array([w, h]) / 2.0)
        start = rng.uniform(room, np.array([w, h]) - room)
    velocity = speed * np.array([np.cos(heading), np.sin(heading)])
    center = start + t * velocity  # (T, 2)
    walking = 0.0 if resting else 1.0
    cycle = 2.0 * np.pi * speed / (_STRIDE * size)  # radians per frame
    swing = (
        config.swing * _swing_weights(schema, tpl) * np.sin(cycle * t + rng.uniform(0, 2.0 * np.pi))
    )
    rates = rng.uniform(*_WOBBLE_RATE, (2, 1, k))
    wander = np.sin(rates * t[None] + rng.uniform(0, 2.0 * np.pi, (2, 1, k))).sum(axis=0)
    angles = angle + walking * (swing + 0.5 * config.limb_jitter * jitter * wander)  # (T, K)
    rest_pose = figure_keypoints(schema, tpl, unit, angle, length, turn)
    mid = (rest_pose.min(axis=0) + rest_pose.max(axis=0)) / 2.0
    local = np.stack([figure_keypoints(schema, tpl, unit, a, length, turn) for a in angles]) - mid
    half = np.ceil(np.abs(local).max(axis=(0, 1)) + margin).astype(int)  # canvas around the center
    inside = np.clip(center[frames // 2], 0, [w - 1, h - 1])
    lo, hi = np.floor(inside - size / 2.0), np.ceil(inside + size / 2.0) + 1
    lo, hi = np.clip(lo, 0, [w, h]).astype(int), np.clip(hi, 0, [w, h]).astype(int)
    color, joint = figure_colors(rng, backdrop[lo[1] : hi[1], lo[0] : hi[0]])
    palette = part_palette(schema) if config.part_colors else color[None].repeat(n, 0)
    style = FigureStyle(unit, thickness, radius, np.vstack([palette, color]), joint)
    return _Walker(
        track_id,
        local + center[:, None],
        np.round(center).astype(int) - half,
        (int(2 * half[0] + 1), int(2 * half[1] + 1)),
        style,
        int(rng.integers(2**63)),
    )


def generate_clip(
    schema: KeypointSchema, rng: np.random.Generator, config: ClipConfig
) -> tuple[list[np.ndarray], list[list[ClipInstance]]]:
    """One synthetic clip and its annotated figures per frame.

    Returns:
        frames: ``config.frames`` images (H, W, 3) BGR uint8, (W, H) = ``config.image_size``.
        annotations: per frame, a ``ClipInstance`` per figure with visible pixels, back to front;
            keypoints (K_real, 3) in image pixels, ``track_id`` in 1..N for the clip's N figures.
    """
    w, h = config.image_size
    tpl = template(schema.limbs, schema.roots, schema.flip_index, schema.virtual_sources)
    backdrop = background(rng, config.image_size, config.clutter)
    count = int(rng.integers(config.figures[0], config.figures[1] + 1))
    depths = rng.permutation(count)  # 0: the back
    sides = rng.permutation(np.resize([1, -1], count))
    lanes = depths - (count - 1) / 2.0
    walkers = [
        _walker(schema, tpl, rng, config, i + 1, float(lanes[i]), int(sides[i]), backdrop)
        for i in range(count)
    ]
    walkers = [walkers[i] for i in np.argsort(depths)]  # back to front
    frames: list[np.ndarray] = []
    annotations: list[list[ClipInstance]] = []
    for t in range(config.frames):
        image = backdrop.copy()
        id_map = np.full((h, w), -1, dtype=np.int16)  # index of the front-most figure per pixel
        drawn: list[Drawn] = []
        for walker in walkers:  # the same drawing rng every frame: the same shades and texture
            drawn.append(
                paint_figure(
                    image,
                    id_map,
                    len(drawn),
                    walker.pos[t],
                    walker.corner[t],
                    walker.canvas_size,
                    schema,
                    tpl,
                    walker.style,
                    np.random.default_rng(walker.draw_seed),
                )
            )
        frames.append(pixel_noise(rng, image, config.noise_std))
        annotations.append(
            [
                _with_track(inst, walker.track_id)
                for walker, inst in zip(walkers, annotate(drawn, id_map), strict=True)
                if inst is not None
            ]
        )
    return frames, annotations


def _with_track(inst: SynthInstance, track_id: int) -> ClipInstance:
    fields = {f.name: getattr(inst, f.name) for f in dataclasses.fields(SynthInstance)}
    return ClipInstance(**fields, track_id=track_id)


def write_clips(
    out_dir: str | Path, schema: KeypointSchema, config: ClipConfig, progress: bool = True
) -> Path:
    """Write ``config.num_clips`` clips under ``out_dir``; returns ``annotations/clips.json``.

    Files: ``videos/clip_001.mp4`` (mp4v at ``config.fps``), its frames as
    ``images/clip_001/000001.jpg``..., and the JSON: COCO keypoint format with one category
    (``schema.coco_category(1)``) plus PoseTrack's video fields:

    - ``videos``: ``{id, name, file_name, fps, num_frames}``, ``file_name`` relative to
      ``out_dir/videos``;
    - ``images``: ``{id, file_name, width, height, video_id, frame_id}``, ``file_name`` relative to
      ``out_dir/images``, ``frame_id`` 0-based (the video's frame index), ids counted over clips;
    - ``annotations``: COCO's fields (``keypoints`` flat x, y, v of the real keypoints, bbox xywh,
      segmentation) plus ``track_id``, unique within a video: (video_id, track_id) is one figure.

    ``CocoKeypointDataset(json, out_dir / "images")`` reads it. Clip ``n`` (its video id, from 1)
    is ``generate_clip`` with ``np.random.default_rng([config.seed, zlib.crc32(b"clips"), n])``, so
    the JSON and frames are the same for the same (config, schema).
    """
    root = Path(out_dir)
    ann_path = root / "annotations" / "clips.json"
    ann_path.parent.mkdir(parents=True, exist_ok=True)
    (w, h), fps = config.image_size, float(config.fps)
    videos: list[dict[str, Any]] = []
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    total = config.num_clips * config.frames
    with tqdm(total=total, desc="synth clips", unit="frame", disable=not progress) as bar:
        for video_id in range(1, config.num_clips + 1):
            name = f"clip_{video_id:03d}"
            rng = np.random.default_rng([config.seed, _CLIP_KEY, video_id])
            frames, per_frame = generate_clip(schema, rng, config)
            frame_dir = root / "images" / name
            frame_dir.mkdir(parents=True, exist_ok=True)
            with VideoSink(root / "videos" / f"{name}.mp4", fps) as sink:
                for frame_id, (image, instances) in enumerate(zip(frames, per_frame, strict=True)):
                    sink.write(image)
                    file_name = f"{frame_id + 1:06d}.jpg"
                    write_jpeg(frame_dir / file_name, image, config.jpeg_quality)
                    image_id = len(images) + 1
                    images.append(
                        {
                            "id": image_id,
                            "file_name": f"{name}/{file_name}",
                            "width": w,
                            "height": h,
                            "video_id": video_id,
                            "frame_id": frame_id,
                        }
                    )
                    annotations += [
                        dict(
                            coco_annotation(inst, len(annotations) + i + 1, image_id),
                            track_id=inst.track_id,
                        )
                        for i, inst in enumerate(instances)
                    ]
                    bar.update()
            videos.append(
                {
                    "id": video_id,
                    "name": name,
                    "file_name": f"{name}.mp4",
                    "fps": fps,
                    "num_frames": config.frames,
                }
            )
    info = {
        "description": f"posekit synthetic clips ({schema.name})",
        "seed": config.seed,
        "posekit_schema": schema.to_dict(),
        "posekit_clip_config": dataclasses.asdict(config),
    }
    coco = {
        "info": info,
        "licenses": [],
        "videos": videos,
        "images": images,
        "annotations": annotations,
        "categories": [schema.coco_category(1)],
    }
    write_json(ann_path, coco)
    logger.info(
        "wrote %d clips, %d frames, %d instances: %s",
        len(videos),
        len(images),
        len(annotations),
        ann_path,
    )
    return ann_path
