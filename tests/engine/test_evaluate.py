"""COCO OKS evaluation: known values, any schema and keypoint order, results JSON, edge cases."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from posekit import DatasetError, KeypointSchema
from posekit.data.coco import CocoKeypointDataset
from posekit.data.results import poses_to_coco_results, read_coco_results, write_coco_results
from posekit.engine.evaluate import METRICS, evaluate_coco, format_metrics, pool_ground_truth
from posekit.structures import Pose


def _gt_poses(records, shift: float = 0.0) -> dict[int, list[Pose]]:
    """The ground truth as detections (score 1), optionally shifted in x by ``shift`` pixels."""
    out = {}
    for rec in records:
        poses = []
        for kpts in rec.keypoints:
            k = kpts.copy()
            k[:, 0] += np.where(k[:, 2] > 0, shift, 0.0)
            k[:, 2] = (k[:, 2] > 0).astype(np.float32)
            poses.append(Pose(k, 1.0, np.zeros(4, np.float32)))
        out[rec.image_id] = poses
    return out


@pytest.fixture(scope="module")
def coco_val_set(coco_val):
    ann, root = coco_val
    return ann, CocoKeypointDataset(ann, root, check_images="none")


def test_ground_truth_scores_one_and_stays_quiet(coco_val_set, capsys):
    ann, ds = coco_val_set
    metrics = evaluate_coco(ann, _gt_poses(ds.records), ds.schema)
    assert set(metrics) == set(METRICS)
    for key in METRICS:
        assert metrics[key] == pytest.approx(1.0)
    assert capsys.readouterr().out == ""


def test_virtual_keypoints_and_another_keypoint_order_give_the_same_result(coco_val_set, coco_val):
    ann, ds = coco_val_set
    neck = CocoKeypointDataset(ann, coco_val[1], schema="coco_person_neck", check_images="none")
    plain = evaluate_coco(ann, _gt_poses(ds.records, shift=3.0), ds.schema)
    reordered = evaluate_coco(ann, _gt_poses(neck.records, shift=3.0), neck.schema)
    assert 0.2 < plain["AP"] < 0.99  # the shift costs something
    for key in METRICS:
        assert reordered[key] == pytest.approx(plain[key]) or math.isnan(plain[key])


def test_oks_matches_the_formula_with_the_schema_sigmas(tmp_path):
    """One instance, one detection shifted by d: OKS = mean exp(-d^2 / (2 area (2 sigma)^2))."""
    schema = KeypointSchema("tri", ("a", "b", "c"), skeleton=(("a", "b"), ("b", "c")),
                            sigmas=(0.05, 0.1, 0.2))  # fmt: skip
    area, d = 10000.0, 12.0
    gt = {
        "images": [{"id": 1, "width": 200, "height": 200, "file_name": "x.jpg"}],
        "categories": [schema.coco_category(7)],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 7, "iscrowd": 0, "area": area,
                         "bbox": [50, 50, 100, 100], "num_keypoints": 3,
                         "keypoints": [60, 60, 2, 100, 100, 2, 140, 140, 2]}],
    }  # fmt: skip
    kpts = np.array([[60 + d, 60, 1], [100 + d, 100, 1], [140 + d, 140, 1]], np.float32)
    poses = {1: [Pose(kpts, 0.9, np.zeros(4, np.float32))]}
    oks = np.mean(np.exp(-(d**2) / (2 * area * (2 * np.array(schema.sigmas)) ** 2)))
    metrics = evaluate_coco(gt, poses, schema)
    thresholds = np.arange(0.5, 0.951, 0.05)
    assert metrics["AP"] == pytest.approx(np.mean(oks >= thresholds - 1e-9))
    assert 0.0 < metrics["AP"] < 1.0  # the example sits between the thresholds
    wider = KeypointSchema("tri", schema.keypoints, skeleton=schema.skeleton, sigmas=(0.3,) * 3)
    assert evaluate_coco(gt, poses, wider)["AP"] == pytest.approx(1.0)


def test_no_detections_scores_zero_without_crashing(coco_val_set):
    ann, ds = coco_val_set
    metrics = evaluate_coco(ann, {}, ds.schema)
    assert metrics["AP"] == 0.0 and metrics["AR"] == 0.0


def test_results_json_round_trip(coco_val_set, tmp_path):
    ann, ds = coco_val_set
    poses = _gt_poses(ds.records, shift=2.0)
    path = write_coco_results(tmp_path / "out" / "res.json", poses, ds.schema)
    entries = json.loads(path.read_text())
    assert len(entries) == sum(len(p) for p in poses.values())
    assert all(len(e["keypoints"]) == 3 * 17 for e in entries)
    back = read_coco_results(path, ds.schema)
    for image_id, originals in poses.items():
        if not originals:
            continue
        for a, b in zip(originals, back[image_id], strict=True):
            np.testing.assert_allclose(a.keypoints, b.keypoints, atol=1e-3)
    direct = evaluate_coco(ann, poses, ds.schema, results_path=tmp_path / "written.json")
    from_file = evaluate_coco(ann, tmp_path / "written.json", ds.schema)
    assert from_file == pytest.approx(direct, nan_ok=True)


def test_neck_schema_results_hold_the_files_17_keypoints(coco_val, tmp_path):
    neck = KeypointSchema.named("coco_person_neck")
    kpts = np.zeros((18, 3), np.float32)
    kpts[neck.index("nose")] = [10, 20, 0.9]
    kpts[neck.index("neck")] = [15, 25, 0.8]  # virtual: not written
    (entry,) = poses_to_coco_results(
        {1: [Pose(kpts, 0.5, np.zeros(4, np.float32))]}, neck,
        keypoint_names=json.loads(coco_val[0].read_text())["categories"][0]["keypoints"],
    )  # fmt: skip
    assert entry["keypoints"][:3] == [10, 20, 0.9] and sum(entry["keypoints"][3:]) == 0
    assert len(entry["keypoints"]) == 51


def test_several_categories_with_the_same_keypoints_are_pooled(shared_data):
    ann = shared_data / "custom/ap10k/test_ap10k.json"  # 2 species: 2 category ids
    ds = CocoKeypointDataset(ann, ann.parent, check_images="none")
    assert len({a["category_id"] for a in json.loads(ann.read_text())["annotations"]}) == 2
    assert evaluate_coco(ann, _gt_poses(ds.records), ds.schema)["AP"] == pytest.approx(1.0)


def test_bad_input_errors(coco_val_set, tmp_path):
    ann, ds = coco_val_set
    other = KeypointSchema("dog", ("nose", "tail"), skeleton=(("nose", "tail"),))
    with pytest.raises(DatasetError, match="no category has the real keypoints of schema 'dog'"):
        evaluate_coco(ann, {}, other)
    with pytest.raises(DatasetError, match="no keypoint category with id 5"):
        evaluate_coco(ann, {}, ds.schema, category_id=5)
    pose = Pose(np.ones((17, 3), np.float32), 1.0, np.zeros(4, np.float32))
    with pytest.raises(DatasetError, match="image ids not in the file: \\[-3\\]"):
        evaluate_coco(ann, {-3: [pose]}, ds.schema)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"image_id": 1, "keypoints": [0, 0, 1], "score": 1}]))
    with pytest.raises(DatasetError, match="entry 0 .* 3 keypoint values, expected 51"):
        read_coco_results(bad, ds.schema)
    bad.write_text("{not json")
    with pytest.raises(DatasetError, match="cannot read COCO results"):
        read_coco_results(bad, ds.schema)
    with pytest.raises(DatasetError, match="ground truth not found"):
        evaluate_coco(tmp_path / "missing.json", {}, ds.schema)


def test_pooled_files_score_as_one_set(coco_val_set, shared_data):
    ann, ds = coco_val_set
    other_ann = shared_data / "mmpose_coco/test_coco.json"
    other = CocoKeypointDataset(other_ann, other_ann.parent, check_images="none")
    first = json.loads(ann.read_text())
    pooled, (ids_a, ids_b) = pool_ground_truth([ann, other_ann])
    assert len(pooled["images"]) == len(first["images"]) + len(other.records)
    assert len({im["id"] for im in pooled["images"]}) == len(pooled["images"])
    assert len({a["id"] for a in pooled["annotations"]}) == len(pooled["annotations"])
    assert first["images"][0]["id"] in ids_a  # the source is not modified
    shifted = {ids_a[i]: p for i, p in _gt_poses(ds.records, shift=3.0).items()}
    exact = {ids_b[i]: p for i, p in _gt_poses(other.records).items()}
    alone = evaluate_coco(ann, _gt_poses(ds.records, shift=3.0), ds.schema)["AP"]
    both = evaluate_coco(pooled, {**shifted, **exact}, ds.schema)["AP"]
    assert alone < both < 1.0  # the exact file's people count, the shifted ones still cost


def test_pooling_refuses_other_schemas_and_dangling_annotations(coco_val, shared_data, tmp_path):
    with pytest.raises(DatasetError, match="categories"):
        pool_ground_truth([coco_val[0], shared_data / "custom/ap10k/test_ap10k.json"])
    data = json.loads(coco_val[0].read_text())
    data["annotations"][0]["image_id"] = -5
    with pytest.raises(DatasetError, match="image -5"):
        pool_ground_truth([data])


def test_format_metrics_lists_every_value():
    text = format_metrics({k: 0.5 for k in METRICS})
    assert text.splitlines()[0].split() == list(METRICS)
    assert text.splitlines()[1].split() == ["0.500"] * len(METRICS)
