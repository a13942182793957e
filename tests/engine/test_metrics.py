"""PCK, AUC, EPE, NME: hand-computed values, a perfect model, normalisers found by name in human
and animal schemas (or a clear error), and the OKS matching of multi-person predictions."""

from __future__ import annotations

import json

import numpy as np
import pytest

from posekit import ConfigError, KeypointSchema, SchemaError
from posekit.data.coco import CocoKeypointDataset
from posekit.engine.matching import match_by_oks, match_instances
from posekit.engine.metrics import (
    KeypointAccuracy,
    KeypointScore,
    auc,
    bbox_size,
    epe,
    format_keypoint_metrics,
    nme,
    normalizer,
    normalizing_pair,
    pair_distance,
    pck,
)
from posekit.structures import Pose

TRI = KeypointSchema("tri", ("a", "b", "c"), skeleton=(("a", "b"), ("b", "c")),
                     sigmas=(0.05, 0.1, 0.2))  # fmt: skip


def _custom_schema(shared_data, name: str) -> KeypointSchema:
    data = json.loads(next((shared_data / "custom" / name).glob("*.json")).read_text())
    return KeypointSchema.from_coco(data["categories"][0], drop_invalid_limbs=True)


def _names(schema: KeypointSchema, pair: tuple[int, int]) -> tuple[str, str]:
    return schema.keypoints[pair[0]], schema.keypoints[pair[1]]


def _case():
    """Two instances of 3 keypoints; errors are axis-aligned or 3-4-5, so distances are exact.

    Instance 0: box 100 x 50 (norm 100); errors 3 (3/100 = 0.03), 5 (0.05, on the threshold),
    8 (0.08). Instance 1: box 40 x 60 (norm 60); keypoint a off by 6 (0.1), b not labelled
    (its huge error never counts), c labelled but not predicted (score 0).
    """
    gt = np.array([[[10, 10, 2], [20, 20, 2], [30, 30, 1]],
                   [[50, 50, 2], [60, 60, 0], [70, 70, 2]]], np.float64)  # fmt: skip
    pred = np.array([[[13, 10, 0.9], [23, 24, 0.8], [30, 38, 0.7]],
                     [[50, 56, 0.9], [600, 600, 0.9], [0, 0, 0.0]]], np.float64)  # fmt: skip
    boxes = np.array([[0, 0, 100, 50], [40, 40, 80, 100]], np.float64)
    return pred, gt, boxes


def test_pck_hand_computed():
    pred, gt, boxes = _case()
    norm = bbox_size(boxes)
    np.testing.assert_array_equal(norm, [100, 60])
    # correct at 0.05: 0.03 and 0.05 (d / norm <= a); wrong: 0.08, 0.1 and the missed keypoint
    assert pck(pred, gt, norm, 0.05) == KeypointScore(2 / 5, 5, 1, 0)
    assert pck(pred, gt, norm, 0.1).value == pytest.approx(4 / 5)  # 0.08, 0.1 too
    assert pck(pred, gt, norm, 0.02).value == 0.0
    assert pck(pred[..., :2], gt, norm, 0.05).num_missing == 0  # no scores: all predicted


def test_epe_and_nme_hand_computed():
    pred, gt, boxes = _case()
    # EPE over the 4 labelled, predicted keypoints: (3 + 5 + 8 + 6) / 4; the missed one counted
    assert epe(pred, gt) == KeypointScore(5.5, 4, 1, 0)
    # NME by the box: (0.03 + 0.05 + 0.08 + 0.1) / 4
    assert nme(pred, gt, bbox_size(boxes)).value == pytest.approx(0.065)
    # NME by the a-c distance: instance 0 sqrt(800), instance 1 sqrt(800) as well
    norm = pair_distance(gt, (0, 2))
    np.testing.assert_allclose(norm, [np.sqrt(800)] * 2)
    assert nme(pred, gt, norm).value == pytest.approx(22 / 4 / np.sqrt(800))


def test_auc_hand_computed_and_mmpose_difference():
    gt = np.array([[[0, 0, 2], [50, 50, 2]]], np.float64)
    pred = np.array([[[0, 0, 1], [62, 50, 1]]], np.float64)  # errors 0 and 12: 0 and 0.12
    # 4 steps up to 0.2: thresholds 0.05, 0.1, 0.15, 0.2 -> PCK 0.5, 0.5, 1, 1 -> AUC 0.75.
    # (MMPose's thresholds 0, 0.05, 0.1, 0.15 with d < t would give 0, 0.5, 0.5, 0.5 -> 0.375.)
    assert auc(pred, gt, 100.0, 0.2, steps=4) == KeypointScore(0.75, 2, 0, 0)
    # one pixel normaliser for all (as MMPose's norm_factor): thresholds 10, 20 px -> PCK 0.5, 1
    assert auc(pred, gt, 20.0, 1.0, steps=2).value == pytest.approx(0.75)
    with pytest.raises(ConfigError, match="steps >= 1 and max_threshold > 0"):
        auc(pred, gt, 100.0, 0.0)


def test_a_perfect_model_scores_one_and_zero_error(shared_data):
    ann = shared_data / "mmpose_coco/test_coco.json"
    ds = CocoKeypointDataset(ann, ann.parent, check_images="none")
    gt = np.concatenate([r.keypoints for r in ds.records])
    boxes = np.concatenate([r.boxes for r in ds.records])
    pred = gt.copy()
    pred[..., 2] = 1.0
    norm = bbox_size(boxes)
    assert pck(pred, gt, norm, 0.05).value == 1.0
    assert auc(pred, gt, norm, 0.05).value == 1.0  # 20 steps; MMPose's definition gives 0.95
    assert epe(pred, gt).value == 0.0 and nme(pred, gt, norm).value == 0.0
    assert pck(pred, gt, norm, 0.05).num_keypoints == int((gt[..., 2] > 0).sum())


def test_instances_without_a_normaliser_are_skipped_and_counted():
    pred, gt, _ = _case()
    norm = pair_distance(gt, (0, 1))  # b is not labelled in instance 1: NaN
    assert np.isnan(norm[1]) and norm[0] == pytest.approx(np.sqrt(200))
    score = pck(pred, gt, norm, 0.5)  # instance 0 only: 3/14.1, 5/14.1 correct, 8/14.1 wrong
    assert score == KeypointScore(pytest.approx(2 / 3), 3, 0, 1)
    assert nme(pred, gt, np.array([0.0, 60.0])).num_skipped == 1  # a zero normaliser
    nothing = pck(pred, gt, np.array([np.nan, 0.0]), 0.5)
    assert np.isnan(nothing.value) and nothing.num_skipped == 2


def test_normalising_pairs_by_name_in_human_and_animal_schemas(shared_data):
    coco = KeypointSchema.named("coco_person")
    assert _names(coco, normalizing_pair(coco, "torso")) == ("left_shoulder", "right_hip")
    assert _names(coco, normalizing_pair(coco, "head")) == ("left_ear", "right_ear")
    assert _names(coco, normalizing_pair(coco, "eyes")) == ("left_eye", "right_eye")
    ap10k = _custom_schema(shared_data, "ap10k")  # no ears: the head falls back to the eyes
    assert _names(ap10k, normalizing_pair(ap10k, "torso")) == ("left_shoulder", "right_hip")
    assert _names(ap10k, normalizing_pair(ap10k, "head")) == ("left_eye", "right_eye")
    cat = _custom_schema(shared_data, "animalpose")  # L_Eye, R_Eye
    assert _names(cat, normalizing_pair(cat, "head")) == ("L_Eye", "R_Eye")
    fly = _custom_schema(shared_data, "fly")  # eyeL, eyeR
    assert _names(fly, normalizing_pair(fly, "eyes")) == ("eyeL", "eyeR")
    zebra = _custom_schema(shared_data, "zebra")  # snout, head, neck, legs, tail
    with pytest.raises(SchemaError, match="schema 'zebra' has no torso keypoints: looked for a "
                       "shoulder and the opposite hip.*--norm-keypoints NAME NAME"):  # fmt: skip
        normalizing_pair(zebra, "torso")
    assert normalizing_pair(zebra, "head", ["snout", "neck"]) == (0, 2)
    assert normalizing_pair(zebra, "head", [1, 2]) == (1, 2)
    with pytest.raises(SchemaError, match="normalising keypoints: .*unknown keypoint name 'ear'"):
        normalizing_pair(zebra, "head", ["ear", "snout"])
    with pytest.raises(SchemaError, match="'snout' is given twice"):
        normalizing_pair(zebra, "head", ["snout", "snout"])
    with pytest.raises(SchemaError, match="expected two names"):
        normalizing_pair(zebra, "head", ["snout"])


def test_torso_pck_on_an_animal_dataset(shared_data):
    ann = shared_data / "custom/ap10k/test_ap10k.json"  # 2 animals, 16 labelled keypoints each
    ds = CocoKeypointDataset(ann, ann.parent, check_images="none")
    gt = np.concatenate([r.keypoints for r in ds.records])
    boxes = np.concatenate([r.boxes for r in ds.records])
    pair = normalizing_pair(ds.schema, "torso")  # left_shoulder, right_hip
    torso = normalizer("torso", gt, boxes, pair)
    assert np.isfinite(torso).all() and (torso > 50).all()
    pred = gt.copy()
    pred[..., 0] += 0.1 * torso[:, None]  # every keypoint off by 0.1 torso
    assert pck(pred, gt, torso, 0.11) == KeypointScore(1.0, 32, 0, 0)
    assert pck(pred, gt, torso, 0.09).value == 0.0
    no_hip = gt.copy()
    no_hip[1, pair[1]] = 0  # the second animal's right hip not labelled: no torso size
    torso = normalizer("torso", no_hip, boxes, pair)
    assert pck(pred, no_hip, torso, 0.11) == KeypointScore(1.0, 16, 0, 1)


def test_match_by_oks_takes_the_highest_oks_first():
    gt = np.array([[[10, 10, 2], [20, 20, 2], [30, 30, 2]],
                   [[14, 10, 2], [24, 20, 2], [34, 30, 2]]], np.float64)  # fmt: skip
    areas = np.array([400.0, 400.0])
    p0 = gt[0] + [1, 0, 0]  # closest to instance 0, also near instance 1 (3 px)
    p1 = gt[1] + [0, 2, 0]  # 2 px from instance 1
    far = gt[0] + [3000, 0, 0]
    pred = np.stack([far, p1, p0])
    assert match_by_oks(pred, gt, areas, TRI).tolist() == [2, 1]
    assert match_by_oks(pred[:1], gt, areas, TRI).tolist() == [-1, -1]  # OKS underflows to 0
    assert match_by_oks(pred[1:2], gt, areas, TRI).tolist() == [-1, 0]
    assert match_by_oks(np.zeros((0, 3, 3)), gt, areas, TRI).tolist() == [-1, -1]
    assert match_by_oks(pred, gt, areas, TRI, min_oks=0.9).tolist() == [2, -1]  # OKS 0.95, 0.82


def test_match_instances_pairs_shuffled_multi_person_poses(shared_data):
    ann = shared_data / "mmpose_coco/test_coco.json"
    ds = CocoKeypointDataset(ann, ann.parent, check_images="none")
    rng = np.random.default_rng(0)
    poses = {}
    for rec in ds.records[1:]:  # the first image has no entry: left out
        found = [Pose(k.copy(), 0.9, b) for k, b in zip(rec.keypoints, rec.boxes, strict=True)]
        noise = Pose(np.full_like(rec.keypoints[0], 1.0), 0.99, rec.boxes[0])
        poses[rec.image_id] = [found[i] for i in rng.permutation(len(found))] + [noise]
    poses[ds.records[-1].image_id] = []  # an image without a pose: unmatched instances
    matched = match_instances(ds.records, poses, ds.schema)
    used = ds.records[1:]
    assert matched.num_instances == sum(r.num_instances for r in used)
    assert matched.num_unmatched == ds.records[-1].num_instances
    n = matched.num_instances - matched.num_unmatched
    np.testing.assert_array_equal(matched.pred[:n, :, :2], matched.gt[:n, :, :2])
    spec = KeypointAccuracy(ds.schema, ("pck", "epe"))
    scores = spec.compute(matched)
    assert scores["EPE"].value == 0.0 and scores["EPE"].num_missing > 0
    labelled = (matched.gt[:n, :, 2] > 0).sum()
    assert scores["PCK@0.05"].value == pytest.approx(labelled / (matched.gt[..., 2] > 0).sum())


def test_keypoint_accuracy_names_defaults_and_errors(shared_data):
    coco = KeypointSchema.named("coco_person")
    spec = KeypointAccuracy(coco, ("PCK", "auc", "epe", "nme", "pck"), norm="torso")
    assert spec.names() == ["tPCK@0.2", "AUC@0.2", "EPE", "NME"]
    assert spec.pck_pair == (5, 12) and spec.nme_pair == (1, 2)
    assert "torso (left_shoulder-right_hip)" in spec.describe()
    assert KeypointAccuracy(coco, ("pck",), norm="head").names() == ["PCKh@0.5"]
    given = KeypointAccuracy(coco, ("auc", "nme"), norm="head", auc_max_threshold=1.0,
                             norm_keypoints=("nose", "left_hip"))  # fmt: skip
    assert given.names() == ["AUC@1"] + ["NME"] and given.pck_pair == given.nme_pair == (0, 11)
    with pytest.raises(ConfigError, match="unknown metric\\(s\\) \\['map'\\]"):
        KeypointAccuracy(coco, ("pck", "map"))
    with pytest.raises(ConfigError, match="unknown PCK normaliser 'hand'"):
        KeypointAccuracy(coco, ("pck",), norm="hand")
    with pytest.raises(ConfigError, match="thresholds must be > 0"):
        KeypointAccuracy(coco, ("pck",), threshold=0.0)
    zebra = _custom_schema(shared_data, "zebra")
    assert KeypointAccuracy(zebra, ("pck", "epe")).pck_pair is None  # bbox needs no keypoints
    with pytest.raises(SchemaError, match="schema 'zebra' has no eyes keypoints"):
        KeypointAccuracy(zebra, ("nme",))


def test_virtual_keypoints_are_not_scored(coco_val):
    neck = CocoKeypointDataset(*coco_val, schema="coco_person_neck", check_images="none")
    poses = {r.image_id: [Pose(k, 1.0, b) for k, b in zip(r.keypoints, r.boxes, strict=True)]
             for r in neck.records}  # fmt: skip
    matched = match_instances(neck.records, poses, neck.schema)
    scores = KeypointAccuracy(neck.schema, ("pck",)).compute(matched)
    real = list(neck.schema.real_indices)
    assert scores["PCK@0.05"] == KeypointScore(1.0, int((matched.gt[:, real, 2] > 0).sum()), 0, 0)


def test_format_keypoint_metrics():
    text = format_keypoint_metrics({"PCK@0.05": KeypointScore(0.5, 3, 0, 0), "EPE": 12.25})
    assert text.splitlines() == ["PCK@0.05    EPE", "   0.500 12.250"]


def test_bad_arguments_are_named():
    pred, gt, boxes = _case()
    with pytest.raises(ConfigError, match="normalising pair: unknown kind 'knee'"):
        normalizing_pair(TRI, "knee")
    with pytest.raises(ConfigError, match="unknown normaliser 'hand'"):
        normalizer("hand", gt, boxes)
    with pytest.raises(ConfigError, match="the torso normaliser needs its keypoint pair"):
        normalizer("torso", gt, boxes)
    with pytest.raises(ValueError, match="expected pred \\(N, K, 2\\|3\\) and gt \\(N, K, 3\\)"):
        pck(pred[:1], gt, 1.0, 0.1)
