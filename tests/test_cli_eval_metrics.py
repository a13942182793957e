"""``posekit eval --metric ap pck auc epe nme`` end to end on COCO-MINI photos with a checkpoint
written here (random weights); bad metric names and schemas without the normalising keypoints give
one clear line and exit code 2 before anything is predicted."""

from __future__ import annotations

import json
import math

from posekit import KeypointSchema
from posekit.cli import main
from posekit.engine.evaluate import METRICS
from tests.checkpoint_files import noisy_lwop, write_posekit_checkpoint
from tests.cli_inputs import FAST, IMAGES


def _eval(checkpoint, ann, images, *args) -> int:
    argv = ["eval", "--checkpoint", checkpoint, "--ann", ann, "--images", images, *FAST, *args]
    return main([str(a) for a in argv])


def _table(out: str, first: str) -> dict[str, float]:
    """The two-line table whose header starts with ``first``: name -> value."""
    lines = out.splitlines()
    i = next(n for n, line in enumerate(lines) if line.split()[:1] == [first])
    return dict(zip(lines[i].split(), map(float, lines[i + 1].split()), strict=True))


def test_every_metric_prints_its_table(checkpoint, subset, capsys):
    rc = _eval(checkpoint, *subset, "--metric", "ap", "pck", "auc", "epe", "nme")
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    ap = _table(captured.out, "AP")
    assert list(ap) == list(METRICS)
    assert all(0.0 <= v <= 1.0 or math.isnan(v) for v in ap.values())
    accuracy = _table(captured.out, "PCK@0.05")
    assert list(accuracy) == ["PCK@0.05", "AUC@0.05", "EPE", "NME"]
    assert 0.0 <= accuracy["PCK@0.05"] <= 1.0 and 0.0 <= accuracy["AUC@0.05"] <= 1.0
    assert accuracy["EPE"] > 1.0  # pixels: random weights are far off
    assert "5 instances (0 without a pose), each matched to the pose of highest OKS" in captured.out
    # none of the 5 labelled people of these images has both eyes labelled: NME is undefined
    assert "NME by the distance left_eye-right_eye" in captured.out
    assert math.isnan(accuracy["NME"])
    assert "NME: left out 5 instance(s) without a normaliser" in captured.out


def test_torso_pck_with_given_keypoints_and_no_ap(checkpoint, subset, tmp_path, capsys):
    results = tmp_path / "r.json"
    rc = _eval(checkpoint, *subset, "--metric", "pck", "auc", "nme", "--pck-norm", "torso",
               "--auc-max-threshold", "0.5", "--norm-keypoints", "left_shoulder", "left_hip",
               "--json", results)  # fmt: skip
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert " AP " not in captured.out  # no COCO AP asked for
    accuracy = _table(captured.out, "tPCK@0.2")
    assert list(accuracy) == ["tPCK@0.2", "AUC@0.5", "NME"]
    assert 0.0 <= accuracy["tPCK@0.2"] <= 1.0 and 0.0 <= accuracy["AUC@0.5"] <= 1.0
    assert accuracy["NME"] > 0.0  # in torso lengths
    assert "torso (left_shoulder-left_hip)" in captured.out
    assert "NME by the distance left_shoulder-left_hip" in captured.out
    entries = json.loads(results.read_text())  # results written without AP as well
    assert {e["image_id"] for e in entries} <= {int(name[:-4]) for name in IMAGES}


def test_bad_metric_name_is_one_clear_error(checkpoint, subset, capsys):
    assert _eval(checkpoint, *subset, "--metric", "ap", "mAP@5") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "error: --metric: unknown metric(s) ['map@5']; choose from ap, pck, auc, epe, nme"
    ]


def test_schema_without_the_normalising_keypoints(shared_data, tmp_path, capsys):
    ann = shared_data / "custom/zebra/test_zebra.json"  # snout, head, neck, legs, tail
    category = json.loads(ann.read_text())["categories"][0]
    zebra = KeypointSchema.from_coco(category)
    checkpoint = write_posekit_checkpoint(tmp_path / "zebra.pt", noisy_lwop(zebra), 128)
    assert _eval(checkpoint, ann, ann.parent, "--metric", "pck", "--pck-norm", "torso") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: schema 'zebra' has no torso keypoints")
    assert "--norm-keypoints NAME NAME" in err[0]
    assert _eval(checkpoint, ann, ann.parent, "--metric", "nme", "--norm-keypoints", "ear",
                 "neck") == 2  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: normalising keypoints: schema zebra: unknown keypoint name 'ear'"]
