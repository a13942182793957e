"""``posekit predict`` / ``eval`` with a top-down checkpoint: the boxes come from a detections
file, the ground truth, a bottom-up checkpoint's poses or the whole image; wrong combinations
give one clear line and exit code 2. Real COCO-MINI photos, checkpoints written here."""

from __future__ import annotations

import json

import pytest

from posekit.cli import main
from tests.checkpoint_files import write_topdown_checkpoint
from tests.cli_inputs import IMAGES


@pytest.fixture(scope="module")
def topdown(tmp_path_factory):
    return write_topdown_checkpoint(tmp_path_factory.mktemp("td") / "topdown.pt")


def _detections(ann, path, shift=0):
    """The annotation boxes of the labelled people as a detector's COCO results."""
    data = json.loads(ann.read_text())
    dets = [{"image_id": a["image_id"] + shift, "category_id": 1, "bbox": a["bbox"],
             "score": 0.9} for a in data["annotations"] if a.get("num_keypoints", 0) > 0]  # fmt: skip
    path.write_text(json.dumps(dets))
    return path, len(dets)


def _run(*argv) -> int:
    return main([str(a) for a in [*argv, "--threads", "1"]])


def _results(path):
    return json.loads(path.read_text())


def test_eval_with_ground_truth_boxes_and_detections(topdown, subset, tmp_path, capsys):
    ann, images = subset
    base = ["eval", "--checkpoint", topdown, "--ann", ann, "--images", images, "--nms", "0"]
    assert _run(*base, "--gt-boxes", "--json", tmp_path / "gt.json") == 0
    out = capsys.readouterr().out
    assert "AP" in out and "5 poses" in out  # one pose per labelled person
    dets, n = _detections(ann, tmp_path / "dets.json")
    assert _run(*base, "--boxes", dets, "--json", tmp_path / "det.json") == 0
    assert f"{n} poses" in capsys.readouterr().out
    # the same boxes give the same keypoints, scores rescored by the box score 0.9
    gt, det = _results(tmp_path / "gt.json"), _results(tmp_path / "det.json")
    key = lambda r: (r["image_id"], r["keypoints"][:6])  # noqa: E731
    assert sorted(map(key, gt)) == sorted(map(key, det))
    # a file whose image ids match no image: an error that says why
    wrong, _ = _detections(ann, tmp_path / "wrong.json", shift=10**9)
    assert _run(*base, "--boxes", wrong) == 2
    err = capsys.readouterr().err
    assert "none of the 3 images has a detection" in err and "numeric stem" in err


def test_predict_with_proposals_of_a_bottom_up_model(topdown, checkpoint, coco_val, tmp_path,
                                                     capsys):  # fmt: skip
    image = coco_val[1] / IMAGES[1]
    out = tmp_path / "proposals.json"
    assert _run("predict", image, "--checkpoint", topdown, "--proposals", checkpoint,
                "--json", out, "--nms", "0") == 0  # fmt: skip
    proposals = _results(out)
    # the bottom-up model's own poses: one refined pose per proposal box of >= 2 keypoints
    bottom_up = tmp_path / "bottomup.json"
    assert _run("predict", image, "--checkpoint", checkpoint, "--height", "128",
                "--json", bottom_up) == 0  # fmt: skip
    found = [r for r in _results(bottom_up) if sum(v > 0 for v in r["keypoints"][2::3]) >= 2]
    assert len(proposals) == len(found) > 0
    # --no-merge: the top-down keypoints only; merged, each keypoint scores at least as high
    alone = tmp_path / "alone.json"
    assert _run("predict", image, "--checkpoint", topdown, "--proposals", checkpoint,
                "--json", alone, "--nms", "0", "--no-merge") == 0  # fmt: skip
    alone = _results(alone)
    assert len(alone) == len(proposals)
    assert sum(sum(r["keypoints"][2::3]) for r in proposals) >= sum(
        sum(r["keypoints"][2::3]) for r in alone
    )
    assert _run("predict", image, "--checkpoint", topdown, "--whole-image", "--json", out) == 0
    assert len(_results(out)) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "is a top-down model: give one source of person boxes"),
        (["--whole-image", "--gt-boxes"], "got --whole-image --gt-boxes"),
        (["--whole-image", "--height", "128"], "--height / --scales are for bottom-up models"),
    ],
)
def test_top_down_argument_errors(topdown, subset, args, message, capsys):
    ann, images = subset
    assert _run("eval", "--checkpoint", topdown, "--ann", ann, "--images", images, *args) == 2
    assert message in capsys.readouterr().err


def test_box_options_of_a_bottom_up_model_and_proposals_of_a_top_down_one(
    checkpoint, topdown, subset, capsys
):
    ann, images = subset
    base = ["eval", "--ann", ann, "--images", images]
    assert _run(*base, "--checkpoint", checkpoint, "--gt-boxes") == 2
    assert "--gt-boxes: only for top-down models" in capsys.readouterr().err
    assert _run(*base, "--checkpoint", topdown, "--proposals", topdown) == 2
    assert "proposals come from a bottom-up model" in capsys.readouterr().err
