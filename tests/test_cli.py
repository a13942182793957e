"""The command line: check-data reports and exit codes, schema display."""

from __future__ import annotations

import json

import pytest

from posekit import KeypointSchema
from posekit.cli import main
from tests.shared_sets import SHARED_SETS


@pytest.mark.parametrize(
    "shared", SHARED_SETS[:3] + SHARED_SETS[4:], ids=lambda s: s.ann.split("/")[-1]
)
def test_check_data_reports_real_datasets(shared_data, shared, capsys):
    rc = main(
        [
            "check-data",
            "--ann",
            str(shared_data / shared.ann),
            "--images",
            str(shared_data / shared.images),
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0
    assert f"images: {shared.num_images} " in out
    assert f"instances with keypoints: {shared.with_keypoints};" in out
    assert "flip pairs:" in out and "limb order" in out and "problems: 0" in out


def test_check_data_plot(coco_val, tmp_path, capsys):
    png = tmp_path / "report.png"
    rc = main(
        [
            "check-data",
            "--ann",
            str(coco_val[0]),
            "--images",
            str(coco_val[1]),
            "--schema",
            "coco_person_neck",
            "--plot",
            str(png),
        ]
    )
    assert rc == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    out = capsys.readouterr().out
    assert "neck" in out and "(virtual)" in out


def test_check_data_reports_every_problem(coco_val, tmp_path, capsys):
    data = json.loads(coco_val[0].read_text())
    people = [a for a in data["annotations"] if a["num_keypoints"] > 0]
    people[0]["keypoints"] = people[0]["keypoints"][:9]
    people[1]["keypoints"][2] = 7
    data["images"].append({"id": 99999999, "file_name": "missing.jpg", "width": 10, "height": 10})
    ann = tmp_path / "bad.json"
    ann.write_text(json.dumps(data))
    rc = main(["check-data", "--ann", str(ann), "--images", str(coco_val[1])])
    captured = capsys.readouterr()
    assert rc == 1
    assert "problems: 3" in captured.out
    assert f"annotation id {people[0]['id']}: keypoints has 9 values" in captured.out
    assert f"annotation id {people[1]['id']}: visibility must be 0, 1 or 2" in captured.out
    assert "image id 99999999: image file not found" in captured.out
    assert "instances with keypoints: 66;" in captured.out  # the other 66 are kept
    assert "3 problem(s) found" in captured.err


def test_check_data_fatal_error(tmp_path, capsys):
    ann = tmp_path / "a.json"
    ann.write_text("{not json")
    assert main(["check-data", "--ann", str(ann), "--images", str(tmp_path)]) == 1
    assert "malformed JSON" in capsys.readouterr().err


def test_a_skeleton_index_out_of_range_names_the_file_and_the_way_on(coco_val, tmp_path, capsys):
    """A person file whose skeleton has an index past its 17 keypoints (as one public set ships):
    check-data says which file and category and how to go on; the advice works."""
    data = json.loads(coco_val[0].read_text())
    data["categories"][0]["skeleton"].append([16, 18])
    ann = tmp_path / "bad_skeleton.json"
    ann.write_text(json.dumps(data))
    assert main(["check-data", "--ann", str(ann), "--images", str(coco_val[1])]) == 1
    err = capsys.readouterr().err
    assert f"{ann}: category 1 (person): skeleton pairs [(16, 18)] out of range" in err
    assert "--schema FILE.yaml" in err and "--drop-invalid-limbs" in err
    fixed = tmp_path / "person.yaml"
    rc = main(["schema", "--from-coco", str(ann), "--drop-invalid-limbs", "--out", str(fixed)])
    assert rc == 0
    assert main(["check-data", "--ann", str(ann), "--images", str(coco_val[1]),
                 "--schema", str(fixed), "--no-decode"]) == 0  # fmt: skip
    assert "19 limbs" in capsys.readouterr().out  # COCO's 19, the bad pair left out


def test_schema_command(shared_data, tmp_path, capsys):
    out_yaml = tmp_path / "fly.yaml"
    rc = main(
        [
            "schema",
            "--from-coco",
            str(shared_data / "custom/fly/test_fly.json"),
            "--out",
            str(out_yaml),
        ]
    )
    assert rc == 0
    assert "eyeL<->eyeR" in capsys.readouterr().out
    assert main(["schema", str(out_yaml)]) == 0
    assert main(["schema", "no_such_schema"]) == 2
    assert "neither a built-in" in capsys.readouterr().err


def test_schema_command_learns_a_skeleton_for_a_file_without_one(shared_data, tmp_path, capsys):
    ann = shared_data / "custom/horse10/test_horse10.json"  # 22 keypoints, no skeleton
    out_yaml = tmp_path / "horse.yaml"
    assert (
        main(["schema", "--from-coco", str(ann), "--learn-skeleton", "--out", str(out_yaml)]) == 0
    )
    learned = KeypointSchema.load(out_yaml)
    assert learned.num_keypoints == 22 and learned.num_limbs >= 21 and len(learned.roots) == 1
    names = {frozenset(learned.keypoints[i] for i in pair) for pair in learned.skeleton}
    assert {"Nose", "Eye"} in names and {"Nearfrontfetlock", "Nearfrontfoot"} in names
    capsys.readouterr()  # the schema printout; the error below is read on its own
    assert main(["schema", "--learn-skeleton"]) == 2
    assert "--learn-skeleton needs --from-coco" in capsys.readouterr().err


def test_synth_then_check_data(tmp_path, capsys):
    out = tmp_path / "synth"
    rc = main(
        [
            "synth",
            "--out",
            str(out),
            "--images",
            "6",
            "--val-images",
            "2",
            "--schema",
            "coco_person_neck",
            "--size",
            "128",
            "--part-colors",
        ]
    )
    assert rc == 0
    assert (out / "annotations/train.json").is_file() and (out / "annotations/val.json").is_file()
    assert len(list((out / "images/train").glob("*.jpg"))) == 6
    capsys.readouterr()
    rc = main(
        [
            "check-data",
            "--ann",
            str(out / "annotations/train.json"),
            "--images",
            str(out / "images/train"),
            "--schema",
            str(out / "schema.yaml"),
        ]
    )
    text = capsys.readouterr().out
    assert rc == 0
    assert "images: 6 " in text and "problems: 0" in text and "(virtual)" in text


def test_train_on_synthetic_data_and_say_what_next(tmp_path, capsys):
    from tests.tiny_run import TINY_RUN

    rc = main(["train", "--out", str(tmp_path / "run"), *TINY_RUN, "train.epochs=1"])
    out = capsys.readouterr().out
    assert rc == 0
    assert f"trained 1 epochs (2 iterations) in {tmp_path / 'run'}" in out
    assert "best val AP" in out and f"--checkpoint {tmp_path / 'run' / 'best.pt'}" in out
    assert (tmp_path / "run" / "synth" / "annotations" / "train.json").is_file()
