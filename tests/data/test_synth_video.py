"""Tests of posekit.data.synth_video: stable identities, bounded motion, crossing and occlusion,
the PoseTrack-style JSON, the videos, determinism and config errors."""

from __future__ import annotations

import json
import zlib
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from posekit.data.coco import CocoKeypointDataset
from posekit.data.synth_figures import template
from posekit.data.synth_video import ClipConfig, ClipInstance, generate_clip, write_clips
from posekit.errors import ConfigError
from posekit.schema import KeypointSchema

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
SMALL = ClipConfig(num_clips=2, frames=12, image_size=(160, 120), seed=3, rest_prob=0.0)
ROUNDING = 0.01  # positions are written rounded to 0.01 px


def _tracks(per_frame: list[list[ClipInstance]]) -> dict[int, dict[int, ClipInstance]]:
    """track_id -> {frame index: instance}."""
    tracks: dict[int, dict[int, ClipInstance]] = {}
    for t, instances in enumerate(per_frame):
        for inst in instances:
            assert t not in tracks.get(inst.track_id, {})  # one instance per track and frame
            tracks.setdefault(inst.track_id, {})[t] = inst
    return tracks


def _clips(schema: KeypointSchema, config: ClipConfig, seeds: range) -> list:
    return [generate_clip(schema, np.random.default_rng(seed), config) for seed in seeds]


def test_identities_are_stable_and_move_by_a_bounded_step() -> None:
    schema = KeypointSchema.named("coco_person")
    real = list(schema.real_indices)
    root = real.index(schema.roots[0])  # the first root moves with the figure's center exactly
    tpl = template(schema.limbs, schema.roots, schema.flip_index, schema.virtual_sources)
    # A keypoint is a sum of link vectors; link j turns by at most depth_j * angle_step per frame
    # (its own and its ancestors' angle changes) and is at most 2 x its template length (length
    # jitter is clipped at 2) in units of at most scale_range[1] * min(W, H) / extent pixels.
    depth = tpl.ancestors.sum(axis=1)
    reach = tpl.ancestors @ (2.0 * tpl.length * depth)
    unit = SMALL.scale_range[1] * min(SMALL.image_size) / tpl.extent
    bound = SMALL.speed[1] + unit * reach[real] * SMALL.angle_step + 2 * ROUNDING
    steps = []
    for frames, per_frame in _clips(schema, SMALL, range(4)):
        assert len(frames) == len(per_frame) == SMALL.frames
        tracks = _tracks(per_frame)
        assert sorted(tracks) == list(range(1, len(tracks) + 1))
        assert SMALL.figures[0] <= len(tracks) <= SMALL.figures[1]
        for instances in tracks.values():
            seen = sorted(instances)
            assert seen == list(range(seen[0], seen[-1] + 1))  # no gap
            pos = np.stack([instances[t].position for t in seen]).astype(np.float64)
            step = np.diff(pos, axis=0)  # (T - 1, K_real, 2)
            drift = step[:, root] - step[0, root]  # constant velocity: 0 up to the rounding
            np.testing.assert_allclose(drift, 0.0, atol=2 * ROUNDING + 1e-4)
            assert np.linalg.norm(step[0, root]) <= SMALL.speed[1] + 2 * ROUNDING
            assert np.all(np.linalg.norm(step, axis=2) <= bound)
            steps.append(np.linalg.norm(step, axis=2).max())
    assert max(steps) > SMALL.speed[1]  # limbs move on top of the walk


def test_resting_figures_stand_still() -> None:
    schema = KeypointSchema.named("coco_person")
    config = replace(SMALL, rest_prob=1.0, noise_std=0.0)
    ((frames, per_frame),) = _clips(schema, config, range(1))
    for instances in _tracks(per_frame).values():
        pos = np.stack([inst.position for inst in instances.values()])
        assert len(pos) == SMALL.frames and np.all(pos == pos[0])
    assert all(np.array_equal(frame, frames[0]) for frame in frames)  # same shades and texture


def test_crossing_figures_swap_sides_and_occlude() -> None:
    schema = KeypointSchema.named("coco_person")
    config = replace(SMALL, figures=2, speed=(3.0, 4.0), crossing=True, noise_std=0.0)
    root = list(schema.real_indices).index(schema.roots[0])
    w, h = config.image_size
    for frames, per_frame in _clips(schema, config, range(3)):
        tracks = _tracks(per_frame)
        assert len(tracks) == 2
        both = sorted(set(tracks[1]) & set(tracks[2]))
        order = [
            np.sign(tracks[1][t].position[root, 0] - tracks[2][t].position[root, 0]) for t in both
        ]
        assert order[0] == -order[-1] != 0  # the x-order swapped: they walked across each other
        assert any(np.any(inst.keypoints[:, 2] == 1) for f in per_frame for inst in f)
        colors = {
            track: {inst.joint_color for inst in seen.values()} for track, seen in tracks.items()
        }
        assert all(len(c) == 1 for c in colors.values())  # a figure keeps its colors
        for image, instances in zip(frames, per_frame, strict=True):
            for inst in instances:
                x, y, v = inst.position[:, 0], inst.position[:, 1], inst.keypoints[:, 2]
                outside = (x < 0) | (x > w - 1) | (y < 0) | (y > h - 1)
                np.testing.assert_array_equal(v == 0, outside)
                col, row = np.floor(inst.keypoints[v == 2, :2] + 0.5).astype(int).T
                assert np.all(image[row, col] == inst.joint_color)  # its own joint disc is seen


@pytest.mark.parametrize(
    ("folder", "file"), [("fly", "test_fly.json"), ("horse10", "test_horse10.json")]
)
def test_any_schema(folder: str, file: str) -> None:
    categories = json.loads((DATA / "custom" / folder / file).read_text())["categories"]
    schema = KeypointSchema.from_coco(categories[0])
    ((frames, per_frame),) = _clips(schema, replace(SMALL, frames=4), range(1))
    assert frames[0].shape == (120, 160, 3) and all(per_frame)


def test_written_clips_load_as_coco_and_video(tmp_path: Path) -> None:
    schema = KeypointSchema.named("coco_person")
    ann_path = write_clips(tmp_path, schema, SMALL, progress=False)
    assert ann_path == tmp_path / "annotations" / "clips.json"
    data = json.loads(ann_path.read_text())
    w, h = SMALL.image_size
    assert data["categories"] == [schema.coco_category(1)]
    assert [v["id"] for v in data["videos"]] == [1, 2]
    for video in data["videos"]:
        assert video["num_frames"] == SMALL.frames and video["fps"] == SMALL.fps
        capture = cv2.VideoCapture(str(tmp_path / "videos" / video["file_name"]))
        assert capture.isOpened()
        assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == SMALL.frames
        assert (capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (
            w,
            h,
        )
        count = 0
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            assert frame.shape == (h, w, 3)
            count += 1
        capture.release()
        assert count == SMALL.frames
        frame_ids = [i["frame_id"] for i in data["images"] if i["video_id"] == video["id"]]
        assert frame_ids == list(range(SMALL.frames))
    assert len(data["images"]) == SMALL.num_clips * SMALL.frames
    dataset = CocoKeypointDataset(ann_path, tmp_path / "images", check_images="decode")
    assert dataset.schema == schema and len(dataset.records) == len(data["images"])
    assert sum(r.num_instances for r in dataset.records) == len(data["annotations"])
    # clip 2 as written is generate_clip's (seeded as write_clips documents), track ids included
    rng = np.random.default_rng([SMALL.seed, zlib.crc32(b"clips"), 2])
    frames, per_frame = generate_clip(schema, rng, SMALL)
    images = [i for i in data["images"] if i["video_id"] == 2]
    for image, frame, instances in zip(images, frames, per_frame, strict=True):
        assert image["file_name"] == f"clip_002/{image['frame_id'] + 1:06d}.jpg"
        _, jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, SMALL.jpeg_quality])
        assert (tmp_path / "images" / image["file_name"]).read_bytes() == jpeg.tobytes()
        anns = [a for a in data["annotations"] if a["image_id"] == image["id"]]
        assert [a["track_id"] for a in anns] == [inst.track_id for inst in instances]
        for ann, inst in zip(anns, instances, strict=True):
            kpts = np.asarray(ann["keypoints"]).reshape(-1, 3)
            np.testing.assert_allclose(kpts, inst.keypoints, atol=ROUNDING)
            assert ann["num_keypoints"] == inst.num_keypoints and ann["bbox"] == inst.bbox.tolist()


def test_same_seed_same_files_other_seed_differs(tmp_path: Path) -> None:
    schema = KeypointSchema.named("coco_person")
    config = replace(SMALL, num_clips=1, frames=3)
    for name, cfg in (("a", config), ("b", config), ("c", replace(config, seed=4))):
        write_clips(tmp_path / name, schema, cfg, progress=False)
    files = {
        name: {
            str(p.relative_to(tmp_path / name)): p.read_bytes()
            for p in sorted((tmp_path / name).rglob("*"))
            if p.suffix in (".json", ".jpg")
        }
        for name in "abc"
    }
    assert len(files["a"]) == 1 + 3 and files["a"] == files["b"]
    assert files["a"].keys() == files["c"].keys()
    assert all(files["a"][k] != files["c"][k] for k in files["a"])


def test_figures_may_be_an_int() -> None:
    assert ClipConfig(figures=3).figures == (3, 3)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("num_clips", 0),
        ("frames", 1),
        ("fps", 0.0),
        ("image_size", (16, 100)),
        ("image_size", 320),
        ("figures", 0),
        ("figures", (3, 2)),
        ("figures", True),
        ("speed", (4.0, 1.0)),
        ("rest_prob", 1.5),
        ("crossing", "yes"),
        ("part_colors", 1),
        ("seed", -1),
        ("jpeg_quality", 0),
        ("swing", float("nan")),
        ("limb_jitter", -0.1),
    ],
)
def test_bad_config_names_the_key(key: str, value: object) -> None:
    with pytest.raises(ConfigError, match=key):
        ClipConfig(**{key: value})
