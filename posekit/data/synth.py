"""Synthetic multi-instance keypoint data for any KeypointSchema, written as COCO JSON + JPEG files.

Figures come from the schema alone (``data.synth_figures``: the per-schema template and drawing).
An instance jitters every link's angle and length, rotates and scales the whole figure, and sets
virtual keypoints to the mean of their sources before drawing, so drawn limbs meet where
``schema.add_virtual`` later puts them.

Pixel convention (cv2's): pixel centers at integer coordinates; keypoint ``(x, y)`` lies in pixel
``(row, col) = (floor(y + 0.5), floor(x + 0.5))`` and is inside the image when ``0 <= x <= W - 1``
and ``0 <= y <= H - 1``. Visibility is honest: figures are drawn back to front, and a keypoint
inside the image is v=1 when a later (front) figure's silhouette covers its pixel, else v=2; outside
the image it is v=0 with x = y = 0. Only real keypoints (``schema.real_indices``) are written.
Figures without any visible pixel are not annotated; figures with visible pixels are kept even with
``num_keypoints == 0`` (loaders turn those into ignore regions), so no drawn figure goes unlabeled.

The steps of one figure (``figure_keypoints``, ``figure_widths``, ``paint_figure``, ``annotate``),
the background, the config checks and the file writers are shared with ``data.synth_video``.
"""

from __future__ import annotations

import json
import logging
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from posekit.data.synth_figures import (
    HIDDEN_JITTER,
    ONE,
    Drawn,
    Template,
    draw_figure,
    figure_colors,
    part_palette,
    pose,
    ramp,
    smooth_noise,
    template,
)
from posekit.errors import ConfigError
from posekit.schema import KeypointSchema

logger = logging.getLogger(__name__)

# A figure placed freely goes to the best of this many uniform candidate centers (the farthest from
# the figures already placed: Mitchell's best-candidate sampling). With one candidate, large figures
# pile up by chance and tangle so much that even perfect maps group them badly (perfect-map AP
# 0.79 -> 0.91 for 2-3 figures of 0.4-0.8 x 160 px); occlusion comes from ``overlap_prob``.
_PLACE_CANDIDATES = 3
# Inclusive bounds of every config value; integer-valued keys; keys holding a pair (a, b).
_BOUNDS = {
    "num_images": (1, 10**9),
    "min_instances": (0, 1000),
    "max_instances": (1, 1000),
    "seed": (0, 2**63 - 1),
    "jpeg_quality": (1, 100),
    "clutter": (0, 1000),
    "image_size": (32, 16384),
    "scale_range": (0.01, 4.0),
    "thickness_range": (0.01, 2.0),
    "partial_prob": (0.0, 1.0),
    "overlap_prob": (0.0, 1.0),
    "angle_jitter": (0.0, np.pi),
    "max_rotation": (0.0, 180.0),
    "length_jitter": (0.0, 1.0),
    "noise_std": (0.0, 100.0),
}
_BOOL_KEYS = ("part_colors",)
_INTEGER_KEYS = (
    "num_images",
    "min_instances",
    "max_instances",
    "seed",
    "jpeg_quality",
    "clutter",
    "image_size",
)
_PAIR_KEYS = ("image_size", "scale_range", "thickness_range")


@dataclass(frozen=True)
class SynthConfig:
    """Parameters of a synthetic data set, validated at construction (ConfigError names the key).

    Args:
        num_images: number of images to write.
        image_size: (W, H) in pixels, each in [32, 16384].
        min_instances, max_instances: figures drawn per image (uniform), 0 <= min <= max.
        seed: base seed (>= 0); image ``n`` of split ``s`` depends only on (seed, s, n).
        jpeg_quality: cv2 JPEG quality, 1..100.
        scale_range: figure size (larger side of its template box) as a fraction of min(W, H).
        partial_prob: probability that a figure is centered near the border (partly outside).
        overlap_prob: probability that a figure is placed over an earlier one (occlusion).
        max_rotation: figures are rotated uniformly in [-max, max] degrees from the upright
            template (the first keypoint of each flip pair on the image's right, as for a person
            facing the camera). 180 gives any orientation, which makes left and right unlearnable
            for a mirror-symmetric schema: a mirrored figure is then a rotated one.
        angle_jitter: standard deviation (radians) of each limb's angle around the template.
        length_jitter: relative standard deviation of each limb's length.
        thickness_range: limb thickness as a fraction of the figure's unit limb length.
        clutter: maximum number of distractor shapes (lines, ellipses, boxes) per background.
        noise_std: standard deviation of the pixel noise added last (0: none).
        part_colors: draw each limb in a fixed color of its limb type (mirror limbs share one), as
            OpenPose draws skeletons, instead of one random color per figure. Keypoint types then
            look different locally, as body parts do in photos, and a network learns them in
            minutes instead of hours (the ``posekit train`` demo data); joints keep their figure's
            joint color.
    """

    num_images: int = 100
    image_size: tuple[int, int] = (368, 368)
    min_instances: int = 1
    max_instances: int = 6
    seed: int = 0
    jpeg_quality: int = 90
    scale_range: tuple[float, float] = (0.25, 0.65)
    partial_prob: float = 0.2
    overlap_prob: float = 0.25
    max_rotation: float = 30.0
    angle_jitter: float = 0.3
    length_jitter: float = 0.15
    thickness_range: tuple[float, float] = (0.15, 0.35)
    clutter: int = 12
    noise_std: float = 3.0
    part_colors: bool = False

    def __post_init__(self) -> None:
        validate_fields(self, _BOUNDS, integer=_INTEGER_KEYS, pairs=_PAIR_KEYS, bools=_BOOL_KEYS)
        if self.min_instances > self.max_instances:
            raise ConfigError(
                f"min_instances ({self.min_instances}) > max_instances ({self.max_instances})"
            )


def validate_fields(
    config: Any,
    bounds: dict[str, tuple[float, float]],
    *,
    integer: Sequence[str] = (),
    pairs: Sequence[str] = (),
    bools: Sequence[str] = (),
) -> None:
    """Check the fields of a frozen config in place (ConfigError names the key).

    ``bools`` must be true or false; every key of ``bounds`` is a number in its inclusive
    ``(low, high)`` (an integer when in ``integer``), or for ``pairs`` a pair of them, stored back
    as a tuple; pairs other than ``image_size`` must be ordered (a <= b).
    """
    for key in bools:
        if not isinstance(getattr(config, key), bool):
            raise ConfigError(f"{key}: expected true or false, got {getattr(config, key)!r}")
    for key, (low, high) in bounds.items():
        value, whole = getattr(config, key), key in integer
        if key not in pairs:
            _checked(key, value, low, high, whole)
            continue
        if isinstance(value, str) or not isinstance(value, Sequence) or len(value) != 2:
            raise ConfigError(f"{key}: expected a pair (a, b), got {value!r}")
        pair = tuple(_checked(key, v, low, high, whole) for v in value)
        if key != "image_size" and pair[0] > pair[1]:
            raise ConfigError(f"{key}: expected a <= b, got {value!r}")
        object.__setattr__(config, key, pair)


def _checked(key: str, value: Any, low: float, high: float, integer: bool) -> float:
    kinds = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    if isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= high:
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"{key}: expected {kind} in [{low}, {high}], got {value!r}")
    return int(value) if integer else float(value)


@dataclass(frozen=True, eq=False)
class SynthInstance:
    """One annotated figure of a synthetic image (coordinates in image pixels).

    Attributes:
        keypoints: (K_real, 3) float32 x, y, v of ``schema.real_indices``; v=0 rows are (0, 0, 0).
        position: (K_real, 2) float32 true x, y of every real keypoint, also outside the image.
        bbox: (4,) float64 x, y, w, h of the figure's pixels inside the image, occluded ones
            included (first column/row and pixel counts), so it holds every labeled keypoint.
        area: visible silhouette area in pixels (what COCO's ``area`` holds).
        segmentation: polygons (flat x0, y0, x1, y1, ...) around the visible silhouette.
        joint_color: BGR of the figure's joint discs: the pixel at a v=2 keypoint has this color
            before pixel noise and JPEG coding.
    """

    keypoints: np.ndarray
    position: np.ndarray
    bbox: np.ndarray
    area: float
    segmentation: tuple[tuple[float, ...], ...]
    joint_color: tuple[int, int, int]

    @property
    def num_keypoints(self) -> int:
        """Number of labeled keypoints (v > 0)."""
        return int(np.count_nonzero(self.keypoints[:, 2] > 0))


def background(rng: np.random.Generator, image_size: tuple[int, int], clutter: int) -> np.ndarray:
    """(H, W, 3) uint8: a color gradient, smooth noise blobs and up to ``clutter`` distractor
    shapes (lines, ellipses, boxes); (W, H) = ``image_size``."""
    w, h = image_size
    c0, c1 = rng.uniform(0, 255, (2, 3)).astype(np.float32)
    grad = ramp(rng, h, w)
    grad = (grad - grad.min()) / max(float(np.ptp(grad)), 1.0)
    blobs = smooth_noise(rng, h, w, 3) * rng.uniform(10, 45)
    image = np.clip(c0 + grad[..., None] * (c1 - c0) + blobs, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(0, clutter + 1))):
        color = rng.integers(0, 256, 3).tolist()
        (x0, y0), (x1, y1) = (rng.uniform(-0.1, 1.1, (2, 2)) * (w, h)).astype(int).tolist()
        kind, thick = int(rng.integers(3)), int(rng.integers(1, 7))
        if kind == 0:  # limb-like strokes without joints
            cv2.line(image, (x0, y0), (x1, y1), color, thick, cv2.LINE_AA)
        elif kind == 1:
            axes = (2 + rng.uniform(0, (0.15 * w, 0.05 * h))).astype(int).tolist()
            cv2.ellipse(image, (x0, y0), axes, rng.uniform(0, 180), 0, 360, color, -1)
        else:
            cv2.rectangle(image, (x0, y0), (x1, y1), color, thick)
    return image


def _place(
    rng: np.random.Generator, config: SynthConfig, size: float, centers: list[np.ndarray]
) -> np.ndarray:
    """Center (2,) of a new figure: over an earlier one, across the border, or inside (the best of
    ``_PLACE_CANDIDATES`` candidates)."""
    wh = np.asarray(config.image_size, dtype=np.float64) - 1.0
    if centers and rng.random() < config.overlap_prob:
        phi = rng.uniform(0, 2.0 * np.pi)
        step = rng.uniform(0.25, 0.6) * size * np.array([np.cos(phi), np.sin(phi)])
        return centers[int(rng.integers(len(centers)))] + step
    margin = np.minimum(size / 2.0, wh / 2.0)  # the whole figure inside when it fits
    candidates = margin + rng.uniform(0, 1, (_PLACE_CANDIDATES, 2)) * (wh - 2.0 * margin)
    gaps = [np.linalg.norm(candidates - c, axis=1) for c in centers] or [np.zeros(len(candidates))]
    center = candidates[int(np.argmax(np.min(gaps, axis=0)))]
    if rng.random() < config.partial_prob:
        axis, side = int(rng.integers(2)), int(rng.integers(2))
        offset = rng.uniform(-0.35, 0.15) * size  # < 0: the center itself is outside
        center[axis] = wh[axis] - offset if side else offset
    return center


@dataclass(frozen=True, eq=False)
class FigureStyle:
    """How one figure is drawn (``draw_figure``'s arguments besides its keypoints).

    Attributes:
        unit: pixels per figure unit (about one limb).
        thickness: (L,) limb thickness in pixels.
        radius: (K,) joint disc radius in pixels.
        colors: (L + 1, 3) BGR per limb, then the body of limbless keypoints.
        joint: (3,) BGR of the joint discs.
    """

    unit: float
    thickness: np.ndarray
    radius: np.ndarray
    colors: np.ndarray
    joint: np.ndarray


def figure_keypoints(
    schema: KeypointSchema,
    tpl: Template,
    unit: float,
    angle: np.ndarray,
    length: np.ndarray,
    turn: float,
) -> np.ndarray:
    """(K, 2) float64 keypoints in pixels, first root at the origin, virtual ones at the mean of
    their sources; ``angle`` (K,) radians and ``length`` (K,) figure units per link, ``turn`` the
    rotation of the whole figure (radians)."""
    pos = unit * pose(tpl.ancestors, angle, length, turn)
    for idx, sources in schema.virtual_sources:
        pos[idx] = pos[list(sources)].mean(axis=0)
    return pos


def figure_widths(
    rng: np.random.Generator, tpl: Template, num_limbs: int, unit: float, thickness_range: Any
) -> tuple[np.ndarray, np.ndarray, float]:
    """Limb thickness (L,) and joint radius (K,) in pixels of a figure of ``unit`` px, and the
    margin: how many pixels the drawing reaches beyond its keypoints."""
    t0 = unit * rng.uniform(*thickness_range)
    thickness = np.maximum(t0 * rng.uniform(0.6, 1.3, num_limbs), 2.0)
    radius = np.full(len(tpl.angle), max(0.45 * t0, 2.0))  # >= 2 px: covers the keypoint's pixel
    radius[tpl.limbless] = max(0.6 * t0, 2.5)
    margin = max(float(thickness.max(initial=0.0)), float(radius.max())) + 2.0
    return thickness, radius, margin


def paint_figure(
    image: np.ndarray,
    id_map: np.ndarray,
    ident: int,
    pos: np.ndarray,
    corner: np.ndarray,
    canvas_size: tuple[int, int],
    schema: KeypointSchema,
    tpl: Template,
    style: FigureStyle,
    rng: np.random.Generator,
) -> Drawn:
    """Draw a figure over ``image`` (H, W, 3) and mark its pixels in ``id_map`` (H, W) as ``ident``.

    The figure is drawn on its own canvas of ``canvas_size`` (W, H) px whose top-left pixel is
    ``corner`` (2,) int image px (the canvas may reach outside the image; its texture follows the
    canvas). ``pos`` (K, 2) are its keypoints in image px. Returns the figure as drawn inside the
    image (its mask is empty when the canvas lies outside).
    """
    h, w = id_map.shape
    lo = np.clip(corner, 0, [w, h])
    hi = np.clip(corner + np.asarray(canvas_size), 0, [w, h])
    canvas = np.zeros((canvas_size[1], canvas_size[0], 3), dtype=np.uint8)
    canvas = draw_figure(
        canvas,
        (pos - corner) * ONE,
        schema.limbs,
        tpl,
        style.thickness,
        style.radius,
        style.colors,
        style.joint,
        rng,
        style.unit,
    )
    (x0, y0), (x1, y1) = lo - corner, hi - corner
    canvas = canvas[y0:y1, x0:x1]
    mask = (canvas[..., 0] | canvas[..., 1] | canvas[..., 2]) > 0  # faster than any(axis=2)
    image[lo[1] : hi[1], lo[0] : hi[0]][mask] = canvas[mask]
    id_map[lo[1] : hi[1], lo[0] : hi[0]][mask] = ident
    joint = (int(style.joint[0]), int(style.joint[1]), int(style.joint[2]))
    return Drawn(pos[list(schema.real_indices)], mask, lo, joint)


def pixel_noise(rng: np.random.Generator, image: np.ndarray, std: float) -> np.ndarray:
    """``image`` (H, W, 3) uint8 plus Gaussian noise of ``std`` (the image itself when 0)."""
    if std <= 0:
        return image
    noise = rng.standard_normal(image.shape, dtype=np.float32) * std
    return np.clip(image + noise, 0, 255).astype(np.uint8)


def generate_image(
    schema: KeypointSchema, rng: np.random.Generator, config: SynthConfig
) -> tuple[np.ndarray, list[SynthInstance]]:
    """One synthetic image and its annotated figures, back to front.

    Returns:
        image: (H, W, 3) BGR uint8, (W, H) = ``config.image_size``.
        instances: a record per figure with visible pixels; keypoints (K_real, 3) in image pixels.
    """
    w, h = config.image_size
    tpl = template(schema.limbs, schema.roots, schema.flip_index, schema.virtual_sources)
    k = schema.num_keypoints
    jitter = np.where(tpl.hidden, HIDDEN_JITTER, 1.0)
    n_limbs = len(schema.limbs)
    palette = part_palette(schema) if config.part_colors else None
    image = background(rng, config.image_size, config.clutter)
    id_map = np.full((h, w), -1, dtype=np.int16)  # index of the front-most figure at each pixel
    figures: list[Drawn] = []
    centers: list[np.ndarray] = []
    for _ in range(int(rng.integers(config.min_instances, config.max_instances + 1))):
        size = rng.uniform(*config.scale_range) * min(w, h)
        unit = size / tpl.extent  # pixels per figure unit (about one limb)
        angle = tpl.angle + rng.normal(0, config.angle_jitter, k) * jitter
        length = tpl.length * np.clip(1 + rng.normal(0, config.length_jitter, k) * jitter, 0.4, 2)
        turn = tpl.upright + np.deg2rad(rng.uniform(-config.max_rotation, config.max_rotation))
        pos = figure_keypoints(schema, tpl, unit, angle, length, turn)
        centers.append(_place(rng, config, size, centers))
        pos += centers[-1] - (pos.min(axis=0) + pos.max(axis=0)) / 2.0
        thickness, radius, margin = figure_widths(rng, tpl, n_limbs, unit, config.thickness_range)
        lo = np.clip(np.floor(pos.min(axis=0) - margin), 0, [w, h]).astype(int)
        hi = np.clip(np.ceil(pos.max(axis=0) + margin) + 1, 0, [w, h]).astype(int)
        if np.any(hi <= lo):
            continue  # entirely outside the image
        color, joint = figure_colors(rng, image[lo[1] : hi[1], lo[0] : hi[0]])
        colors = np.vstack([color[None].repeat(n_limbs, 0) if palette is None else palette, color])
        style = FigureStyle(unit, thickness, radius, colors, joint)
        size_wh = (int(hi[0] - lo[0]), int(hi[1] - lo[1]))
        ident = len(figures)
        figures.append(
            paint_figure(image, id_map, ident, pos, lo, size_wh, schema, tpl, style, rng)
        )
    image = pixel_noise(rng, image, config.noise_std)
    instances = [inst for inst in annotate(figures, id_map) if inst is not None]
    return image, instances


def annotate(figures: Sequence[Drawn], id_map: np.ndarray) -> list[SynthInstance | None]:
    """Records of drawn figures (back to front), None for a figure without a visible pixel;
    ``id_map`` (H, W) holds the index of the front figure per pixel (-1: background)."""
    visible_px = np.bincount(id_map[id_map >= 0], minlength=len(figures))
    return [
        _annotate(i, figure, id_map, float(visible_px[i])) if visible_px[i] > 0 else None
        for i, figure in enumerate(figures)
    ]


def _annotate(ident: int, figure: Drawn, id_map: np.ndarray, area: float) -> SynthInstance:
    """Record of the ``ident``-th drawn figure; ``id_map`` (H, W) holds the front figure per pixel."""
    h, w = id_map.shape
    pos, mask = np.round(figure.pos, 2).astype(np.float32), figure.mask
    inside = (pos[:, 0] >= 0) & (pos[:, 0] <= w - 1) & (pos[:, 1] >= 0) & (pos[:, 1] <= h - 1)
    col = np.clip(np.floor(pos[:, 0] + 0.5), 0, w - 1).astype(int)
    row = np.clip(np.floor(pos[:, 1] + 0.5), 0, h - 1).astype(int)
    keypoints = np.zeros((len(pos), 3), dtype=np.float32)
    keypoints[:, :2] = np.where(inside[:, None], pos, 0.0)
    keypoints[:, 2] = np.where(inside, np.where(id_map[row, col] > ident, 1, 2), 0)
    rows, cols = np.nonzero(mask)
    x0, y0 = int(figure.corner[0]), int(figure.corner[1])
    bbox = np.array([cols.min() + x0, rows.min() + y0, np.ptp(cols) + 1, np.ptp(rows) + 1], float)
    visible = id_map[y0 : y0 + mask.shape[0], x0 : x0 + mask.shape[1]] == ident
    contours, _ = cv2.findContours(
        visible.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE, offset=(x0, y0)
    )
    polygons = tuple(tuple(float(v) for v in c.reshape(-1)) for c in contours if len(c) >= 3)
    if not polygons:  # slivers: the box
        bx, by, bw, bh = bbox.tolist()
        polygons = ((bx, by, bx + bw - 1, by, bx + bw - 1, by + bh - 1, bx, by + bh - 1),)
    return SynthInstance(keypoints, pos, bbox, area, polygons, figure.joint)


def coco_annotation(inst: SynthInstance, ann_id: int, image_id: int) -> dict[str, Any]:
    """The COCO keypoint annotation (category 1) of one figure; x, y rounded to 0.01 px."""
    flat = inst.keypoints.astype(np.float64).round(2).tolist()
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": 1,
        "keypoints": [v for x, y, vis in flat for v in (x, y, int(vis))],
        "num_keypoints": inst.num_keypoints,
        "bbox": inst.bbox.tolist(),
        "area": inst.area,
        "iscrowd": 0,
        "segmentation": [list(p) for p in inst.segmentation],
    }


def write_jpeg(path: Path, image: np.ndarray, quality: int) -> None:
    """Write (H, W, 3) uint8 BGR ``image`` as a JPEG of cv2 ``quality`` (1..100)."""
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise OSError(f"cv2 could not encode {path.name} as JPEG")
    path.write_bytes(jpeg.tobytes())


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON through a temporary file: a reader never sees a half-written file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def write_dataset(
    out_dir: str | Path,
    schema: KeypointSchema,
    config: SynthConfig,
    *,
    split: str = "train",
    progress: bool = True,
) -> Path:
    """Write ``out_dir/annotations/{split}.json`` and ``out_dir/images/{split}/000000000001.jpg``...

    The JSON is COCO keypoint format with one category, ``schema.coco_category(1)``; image
    ``file_name`` s are relative to ``out_dir/images/{split}``. The files are byte-for-byte the same
    for the same (config, schema, split); another split gets other images. Returns the JSON path.
    """
    if not isinstance(split, str) or split in ("", ".", "..") or any(c in split for c in "/\\"):
        raise ConfigError(f"split: expected a plain folder name, got {split!r}")
    image_dir = Path(out_dir) / "images" / split
    ann_path = Path(out_dir) / "annotations" / f"{split}.json"
    image_dir.mkdir(parents=True, exist_ok=True)
    ann_path.parent.mkdir(parents=True, exist_ok=True)
    split_key = zlib.crc32(split.encode())  # stable across runs, unlike hash()
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    ids = range(1, config.num_images + 1)
    for image_id in tqdm(ids, desc=f"synth {split}", unit="img", disable=not progress):
        image, instances = generate_image(
            schema, np.random.default_rng([config.seed, split_key, image_id]), config
        )
        file_name = f"{image_id:012d}.jpg"
        write_jpeg(image_dir / file_name, image, config.jpeg_quality)
        w, h = config.image_size
        images.append({"id": image_id, "file_name": file_name, "width": w, "height": h})
        annotations += [
            coco_annotation(inst, len(annotations) + i + 1, image_id)
            for i, inst in enumerate(instances)
        ]
    info = {
        "description": f"posekit synthetic keypoints ({schema.name})",
        "seed": config.seed,
        # the full schema (virtual keypoints, sigmas, root): ``categories`` holds real ones only
        "posekit_schema": schema.to_dict(),
    }
    coco = {
        "info": info,
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [schema.coco_category(1)],
    }
    write_json(ann_path, coco)
    logger.info("wrote %d images, %d instances: %s", len(images), len(annotations), ann_path)
    return ann_path
