"""``posekit synth --video`` and ``posekit predict VIDEO --track --smooth``: clips with track ids,
poses with ids kept across frames in the results JSON and drawn video; bad input is one error."""

from __future__ import annotations

import json
from collections import Counter

import cv2
import pytest

from posekit.cli import main
from tests.conftest import REPO

CHECKPOINT = REPO / "tests/fixtures/posekit_0.1_paf_tiny.pt"  # trained on synthetic figures


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    out = tmp_path_factory.mktemp("clips")
    argv = ["synth", "--video", "--out", str(out), "--clips", "1", "--frames", "12",
            "--clip-size", "192", "192", "--part-colors", "--seed", "3"]  # fmt: skip
    assert main(argv) == 0
    return out


def test_synth_video_writes_clips_with_track_ids(clips):
    data = json.loads((clips / "annotations/clips.json").read_text())
    assert [v["num_frames"] for v in data["videos"]] == [12]
    assert {im["frame_id"] for im in data["images"]} == set(range(12))
    tracks = Counter(a["track_id"] for a in data["annotations"])
    assert len(tracks) >= 2 and max(tracks.values()) >= 10  # figures stay through the clip
    capture = cv2.VideoCapture(str(clips / "videos/clip_001.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 12


@pytest.mark.parametrize(("tracker", "smoother"), [("oks", "pose"), ("greedy", "demo")])
def test_predict_tracks_people_through_a_video(clips, tracker, smoother, tmp_path, capsys):
    video = clips / "videos/clip_001.mp4"
    out = tmp_path / "out"
    argv = ["predict", str(video), "--checkpoint", str(CHECKPOINT), "--track", "--smooth",
            "--smoother", smoother, "--tracker", tracker, "--json", str(tmp_path / "r.json"), "--out", str(out),
            "--height", "192"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    results = json.loads((tmp_path / "r.json").read_text())
    assert {r["frame"] for r in results} <= set(range(12)) and len(results) > 0
    ids = Counter(r["track_id"] for r in results if "track_id" in r)
    assert ids and all(isinstance(i, int) and i >= 1 for i in ids)
    assert max(ids.values()) >= 6  # an identity kept over many frames
    for frame in {r["frame"] for r in results}:  # one id per person and frame
        frame_ids = [r["track_id"] for r in results if r["frame"] == frame and "track_id" in r]
        assert len(frame_ids) == len(set(frame_ids))
    assert (out / "clip_001.mp4").is_file()


def test_track_needs_a_video(tmp_path, capsys):
    image = REPO / "tests/fixtures/000000000001.png"
    argv = ["predict", str(image), "--checkpoint", str(CHECKPOINT), "--track",
            "--json", str(tmp_path / "r.json")]  # fmt: skip
    assert main(argv) == 2
    assert "--track / --smooth follow people through a video" in capsys.readouterr().err


def test_an_unknown_smoother_is_refused(clips, tmp_path, capsys):
    argv = ["predict", str(clips / "videos/clip_001.mp4"), "--checkpoint", str(CHECKPOINT),
            "--smooth", "--smoother", "kalman", "--json", str(tmp_path / "r.json")]  # fmt: skip
    with pytest.raises(SystemExit):
        main(argv)
    assert "invalid choice: 'kalman'" in capsys.readouterr().err
