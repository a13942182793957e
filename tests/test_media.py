"""Frame sources (images, folders, videos), image ids, video sink, background reading, drawing."""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from posekit import DatasetError, KeypointSchema
from posekit.media import VideoSink, _image_ids, open_source, prefetch, write_image
from posekit.structures import Pose
from posekit.visualize import draw_poses


def test_image_ids_keep_numeric_stems_and_never_collide():
    names = ["000000000139.jpg", "0139.png", "000000000802.jpg", "bad.jpg", "cat.png"]
    assert _image_ids([Path(n) for n in names]) == [139, 803, 802, 804, 805]
    assert _image_ids([Path("b.jpg"), Path("a.jpg")]) == [0, 1]


def test_folder_skips_unreadable_files_and_keeps_ids(coco_val, tmp_path):
    for name in ("000000000139.jpg", "000000000802.jpg"):
        (tmp_path / name).symlink_to((coco_val[1] / name).resolve())
    (tmp_path / "000000000500.jpg").write_text("not an image")
    (tmp_path / "notes.txt").write_text("ignored: not an image suffix")
    source = open_source(tmp_path)
    assert source.kind == "folder" and source.total == 3 and not source.is_video
    frames = list(source)
    assert [(f.name, f.image_id, f.index) for f in frames] == [
        ("000000000139.jpg", 139, 0),
        ("000000000802.jpg", 802, 2),
    ]
    assert frames[0].image.shape == (426, 640, 3) and frames[0].image.dtype == np.uint8
    assert [name for name, _ in source.skipped] == ["000000000500.jpg"]


def test_single_image_errors_are_raised(tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG broken")
    with pytest.raises(DatasetError, match="broken.png"):
        list(open_source(broken))
    with pytest.raises(DatasetError, match=r"source not found: .*nope\.jpg \(expected an image"):
        open_source(tmp_path / "nope.jpg")
    text = tmp_path / "clip.xyz"
    text.write_text("neither")
    with pytest.raises(DatasetError, match=r"cannot open .*clip.xyz as a video"):
        open_source(text)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no images in folder .*empty"):
        open_source(tmp_path / "empty")


def test_video_round_trip(tmp_path):
    frames = [np.full((48, 64, 3), 40 * i, np.uint8) for i in range(5)]
    with VideoSink(tmp_path / "in.mp4", fps=8.0) as sink:
        for frame in frames:
            sink.write(frame)
        with pytest.raises(DatasetError, match=r"frame 5 has size \(32, 32\), not \(64, 48\)"):
            sink.write(np.zeros((32, 32, 3), np.uint8))
    source = open_source(tmp_path / "in.mp4")
    assert (source.kind, source.total, source.fps, source.stem) == ("video", 5, 8.0, "in")
    read = list(source)
    assert [(f.index, f.image_id, f.name) for f in read] == [(i, i, "in.mp4") for i in range(5)]
    means = [float(f.image.mean()) for f in read]
    assert np.allclose(means, [40 * i for i in range(5)], atol=3)  # lossy codec


def test_prefetch_keeps_order_reraises_and_stops_its_thread():
    assert list(prefetch(iter(range(50)), depth=3)) == list(range(50))

    def failing():
        yield 1
        raise DatasetError("disk gone")

    with pytest.raises(DatasetError, match="disk gone"):
        list(prefetch(failing()))
    before = threading.active_count()
    for item in prefetch(iter(range(10**6)), depth=2):
        if item == 3:
            break
    assert threading.active_count() == before


def test_write_image_keeps_the_format_and_non_ascii_paths(tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    path = write_image(tmp_path / "dossier é" / "photo.png", image)
    assert np.array_equal(cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_COLOR), image)


def test_draw_poses_takes_poses_or_arrays():
    schema = KeypointSchema.named("coco_person")
    kpts = np.zeros((schema.num_keypoints, 3), np.float32)
    kpts[5:7] = [[10, 20, 0.9], [50, 20, 0.9]]  # the shoulders, a limb of coco_person
    pose = Pose(kpts, 0.5, np.array([10, 20, 50, 20], np.float32))
    image = np.zeros((40, 60, 3), np.uint8)
    drawn = draw_poses(image, [pose], schema)
    assert np.array_equal(drawn, draw_poses(image, kpts[None], schema))
    assert drawn[20, 30].any() and not image.any()  # the limb is drawn on a copy
    assert not draw_poses(image, [pose], schema, threshold=0.95).any()
    assert np.array_equal(draw_poses(image, [], schema), image)
