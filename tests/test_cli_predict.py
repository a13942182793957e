"""``posekit predict`` and ``posekit eval`` end to end on real COCO-MINI photos, videos made here,
checkpoints written here (random weights); bad input gives one clear line and exit code 2."""

from __future__ import annotations

import json
import math
import re

import cv2
import numpy as np
import pytest

from posekit.cli import main
from posekit.engine.evaluate import METRICS, evaluate_coco
from posekit.schema import KeypointSchema
from posekit.schema_names import COCO_PERSON_KEYPOINTS
from tests.checkpoint_files import write_official_checkpoint
from tests.cli_inputs import FAST, IMAGES


@pytest.fixture
def folder(coco_val, tmp_path):
    """Three COCO-MINI val images (symlinks) and an unreadable file."""
    out = tmp_path / "images"
    out.mkdir()
    for name in IMAGES:
        (out / name).symlink_to((coco_val[1] / name).resolve())
    (out / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return out


def _posekit(*args) -> int:
    """``posekit ARGS`` (paths and numbers as they are); the exit code."""
    return main([str(a) for a in args])


def _subset_gt(coco_val, image_ids) -> dict:
    data = json.loads(coco_val[0].read_text())
    data["images"] = [im for im in data["images"] if im["id"] in image_ids]
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] in image_ids]
    return data


def test_predict_folder_writes_drawn_images_and_coco_results(
    checkpoint, folder, coco_val, tmp_path, capsys
):
    out, results = tmp_path / "drawn", tmp_path / "results.json"
    rc = _posekit(
        "predict", folder, "--checkpoint", checkpoint, "--out", out, "--json", results, *FAST
    )
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "skipped broken.jpg: image file does not decode" in captured.err
    assert "3 image(s)" in captured.out
    assert sorted(p.name for p in out.iterdir()) == sorted(IMAGES)
    for name in IMAGES:
        original, drawn = cv2.imread(str(folder / name)), cv2.imread(str(out / name))
        assert drawn.shape == original.shape and not np.array_equal(drawn, original)

    entries = json.loads(results.read_text())
    ids = {int(name[:-4]): name for name in IMAGES}  # numeric stems, as COCO names its files
    assert entries and {e["image_id"] for e in entries} == set(ids)
    assert all(e["file_name"] == ids[e["image_id"]] for e in entries)
    assert all(len(e["keypoints"]) == 3 * 17 and 0 <= e["score"] <= 1 for e in entries)
    schema = KeypointSchema.named("coco_person")
    metrics = evaluate_coco(_subset_gt(coco_val, set(ids)), results, schema)
    assert set(metrics) == set(METRICS) and 0.0 <= metrics["AP"] <= 1.0


def test_predict_video_keeps_frame_count_rate_and_size(checkpoint, coco_val, tmp_path, capsys):
    source = tmp_path / "clip.mp4"
    photo = cv2.resize(cv2.imread(str(coco_val[1] / IMAGES[1])), (160, 120))
    writer = cv2.VideoWriter(str(source), cv2.VideoWriter_fourcc(*"mp4v"), 12.0, (160, 120))
    for shift in range(7):
        writer.write(np.roll(photo, 4 * shift, axis=1))
    writer.release()
    out, results = tmp_path / "out", tmp_path / "video.json"
    outputs = ["--out", out, "--json", results, "--batch-size", 3]
    rc = _posekit("predict", source, "--checkpoint", checkpoint, *outputs, *FAST)
    assert rc == 0, capsys.readouterr().err
    assert "7 frame(s)" in capsys.readouterr().out
    video = cv2.VideoCapture(str(out / "clip.mp4"))
    assert video.get(cv2.CAP_PROP_FPS) == pytest.approx(12.0)
    frames = []
    while (read := video.read())[0]:
        frames.append(read[1])
    assert len(frames) == 7 and frames[0].shape == (120, 160, 3)
    entries = json.loads(results.read_text())
    assert {e["image_id"] for e in entries} <= set(range(7))
    assert all(e["file_name"] == "clip.mp4" and e["frame"] == e["image_id"] for e in entries)


def test_official_checkpoint_predicts_in_coco_keypoint_order(coco_val, tmp_path, capsys):
    official = write_official_checkpoint(tmp_path / "checkpoint_iter_370000.pth")
    image = coco_val[1] / IMAGES[0]
    results = tmp_path / "r.json"
    rc = _posekit(
        "predict", image, "--checkpoint", official, "--out", tmp_path, "--json", results, *FAST
    )
    assert rc == 0, capsys.readouterr().err
    assert (tmp_path / IMAGES[0]).is_file()
    entries = json.loads(results.read_text())
    assert entries and all(len(e["keypoints"]) == 3 * len(COCO_PERSON_KEYPOINTS) for e in entries)
    # openpose18 holds the COCO keypoints in another order (+ a virtual neck); the file uses COCO's
    metrics = evaluate_coco(
        _subset_gt(coco_val, {139}), results, KeypointSchema.named("openpose18")
    )
    assert not math.isnan(metrics["AP"])


@pytest.mark.parametrize("precision", [[], ["--bf16"]])
def test_random_weights_smoke_run(precision, coco_val, tmp_path, capsys):
    image = coco_val[1] / IMAGES[2]
    model = ["--model", "lwop_mobilenet", "--random-weights", *precision]
    rc = _posekit("predict", image, *model, "--json", tmp_path / "r.json", *FAST)
    assert rc == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "r.json").read_text()) == []  # untrained maps have no peak


def test_eval_prints_the_table_and_writes_results(checkpoint, folder, coco_val, tmp_path, capsys):
    (folder / "broken.jpg").unlink()
    ids = {int(name[:-4]) for name in IMAGES}
    ann = tmp_path / "subset.json"
    ann.write_text(json.dumps(_subset_gt(coco_val, ids)))
    results = tmp_path / "eval.json"
    rc = _posekit(
        "eval",
        "--checkpoint",
        checkpoint,
        "--ann",
        ann,
        "--images",
        folder,
        "--json",
        results,
        *FAST,
    )
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "3 images" in captured.out and " ".join(f"{k:>6}" for k in METRICS) in captured.out
    assert {e["image_id"] for e in json.loads(results.read_text())} == ids


def test_eval_skips_a_corrupt_image_and_says_so(checkpoint, folder, coco_val, tmp_path, capsys):
    bad = folder / IMAGES[0]
    bad.unlink()
    bad.write_bytes(b"\xff\xd8 truncated")
    ids = {int(name[:-4]) for name in IMAGES}
    ann = tmp_path / "subset.json"
    ann.write_text(json.dumps(_subset_gt(coco_val, ids)))
    rc = _posekit("eval", "--checkpoint", checkpoint, "--ann", ann, "--images", folder, *FAST)
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "2 images" in captured.out
    assert f"skipped image {int(IMAGES[0][:-4])} (left out of the score)" in captured.err


def test_eval_on_a_dataset_of_another_schema(checkpoint, shared_data, capsys):
    ann = shared_data / "custom/ap10k/test_ap10k.json"
    rc = _posekit("eval", "--checkpoint", checkpoint, "--ann", ann, "--images", ann.parent, *FAST)
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "schema 'coco_person' are not in the file's" in err


def _bad_inputs(tmp_path, checkpoint, image):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(checkpoint.read_bytes()[:5000])
    other = write_official_checkpoint(tmp_path / "other.pth", heads=(18, 34))
    json_ = str(tmp_path / "r.json")
    predict = ["predict", str(image), "--json", json_, *FAST]
    return {
        "missing source": (
            ["predict", str(tmp_path / "nope.jpg"), "--model", "lwop_mobilenet", "--json", json_],
            "source not found: ",
        ),
        "corrupt checkpoint": (
            [*predict, "--checkpoint", str(corrupt)],
            "cannot read checkpoint ",
        ),
        "checkpoint of another schema": (
            [*predict, "--checkpoint", str(other)],
            "heatmap head has 18 channels in the checkpoint, the schema 'openpose18' needs K+1=19",
        ),
        "random weights with a checkpoint": (
            [*predict, "--checkpoint", str(checkpoint), "--random-weights"],
            "--random-weights goes with --model NAME, not with --checkpoint",
        ),
        "nothing to write": (
            ["predict", str(image), "--checkpoint", str(checkpoint)],
            "nothing to write: give --out DIR, --json FILE and/or --show",
        ),
        "no readable image": (
            ["predict", str(tmp_path / "empty"), "--checkpoint", str(checkpoint), "--json", json_],
            "no images in folder ",
        ),
    }


BAD_INPUTS = (
    "missing source",
    "corrupt checkpoint",
    "checkpoint of another schema",
    "random weights with a checkpoint",
    "nothing to write",
    "no readable image",
)


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_is_one_clear_error(case, checkpoint, coco_val, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    argv, message = _bad_inputs(tmp_path, checkpoint, coco_val[1] / IMAGES[0])[case]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and message in err[-1]


def test_folder_without_a_readable_image(checkpoint, tmp_path, capsys):
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"")
    argv = ["predict", str(folder), "--checkpoint", str(checkpoint), "--json", str(tmp_path / "r")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "skipped a.png: image file is empty" in err and f"no image of {folder}" in err


@pytest.mark.skipif(
    not re.search(r"GUI:\s+NONE", cv2.getBuildInformation()), reason="needs a headless OpenCV"
)
def test_show_without_gui_support(checkpoint, coco_val, capsys):
    image = coco_val[1] / IMAGES[0]
    assert main(["predict", str(image), "--checkpoint", str(checkpoint), "--show"]) == 2
    assert "--show needs OpenCV with GUI support" in capsys.readouterr().err
