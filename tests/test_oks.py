"""OKS, OKS NMS and top-down rescoring: hand-computed values, parity with pycocotools' OKS, and
the AP of poses that pass through NMS and rescoring unchanged."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from posekit import KeypointSchema, SchemaError
from posekit.data.coco import CocoKeypointDataset
from posekit.engine.evaluate import evaluate_coco
from posekit.oks import oks, oks_nms, pose_overlaps, rescore
from posekit.structures import Pose

TRI = KeypointSchema("tri", ("a", "b", "c"), skeleton=(("a", "b"), ("b", "c")),
                     sigmas=(0.05, 0.1, 0.2))  # fmt: skip


def _pose(kpts, score, box=(0, 0, 10, 10)) -> Pose:
    return Pose(np.asarray(kpts, np.float32), score, np.asarray(box, np.float32))


def test_oks_hand_computed():
    # area 400, sigmas (0.05, 0.1, 0.2): the variances 2 * area * (2 sigma)^2 are 8, 32, 128.
    # a is off by 2 px (d^2 = 4: e = 4/8), b by 4 px (d^2 = 16: e = 16/32), c is not labelled.
    gt = np.array([[10, 10, 2], [20, 20, 1], [30, 30, 0]], np.float64)
    pred = np.array([[12, 10, 0.9], [20, 24, 0.1], [99, 99, 0.0]], np.float64)
    assert oks(pred, gt, 400.0, TRI) == pytest.approx(np.exp(-0.5))
    assert oks(pred, gt, 400.0, [0.05, 0.1, 0.2]) == pytest.approx(np.exp(-0.5))
    assert oks(gt, gt, 400.0, TRI) == pytest.approx(1.0)
    unlabelled = gt.copy()
    unlabelled[:, 2] = 0
    assert oks(pred, unlabelled, 400.0, TRI) == 0.0  # no labelled keypoint


def test_oks_shapes_are_every_pair():
    gt = np.array([[[10, 10, 2], [20, 20, 2], [30, 30, 2]]] * 2, np.float64)
    gt[1, :, 0] += 50
    pred = np.stack([gt[1], gt[0], gt[0] + [3, 0, 0]])  # (3, K, 3)
    table = oks(pred, gt, np.array([400.0, 900.0]), TRI)
    assert table.shape == (3, 2)
    assert table[0, 1] == pytest.approx(1.0) and table[1, 0] == pytest.approx(1.0)
    assert table[2, 0] == pytest.approx(oks(pred[2], gt[0], 400.0, TRI))
    assert oks(pred, gt[0], 400.0, TRI).shape == (3,)
    assert oks(pred[0], gt, [400.0, 900.0], TRI).shape == (2,)


def test_virtual_keypoints_are_left_out():
    neck = KeypointSchema.named("coco_person_neck")
    rng = np.random.default_rng(0)
    gt = np.concatenate([rng.uniform(50, 150, (18, 2)), np.full((18, 1), 2.0)], axis=1)
    pred = gt + np.concatenate([rng.normal(0, 3, (18, 2)), np.zeros((18, 1))], axis=1)
    moved = pred.copy()
    moved[neck.index("neck"), :2] += 500  # virtual: not in COCO files, not scored
    assert oks(moved, gt, 5000.0, neck) == pytest.approx(oks(pred, gt, 5000.0, neck))
    assert oks(moved, gt, 5000.0, neck.sigmas) < oks(pred, gt, 5000.0, neck.sigmas)


def test_oks_equals_pycocotools_compute_oks():
    schema = KeypointSchema.named("coco_person")
    rng = np.random.default_rng(3)
    gts = []
    for x0, y0 in [(40, 30), (140, 60)]:
        kpts = np.concatenate(
            [rng.uniform([x0, y0], [x0 + 60, y0 + 120], (17, 2)), np.full((17, 1), 2.0)], axis=1
        )
        kpts[rng.choice(17, 4, replace=False)] = 0  # unlabelled keypoints
        gts.append(kpts)
    areas = [5200.0, 6100.0]
    dets = [gts[0] + rng.normal(0, 4, gts[0].shape), gts[1] + rng.normal(0, 8, gts[1].shape),
            gts[0] + rng.normal(0, 15, gts[0].shape)]  # fmt: skip
    scores = [0.9, 0.8, 0.7]
    for d in dets:
        d[:, 2] = 1.0
    data = {
        "images": [{"id": 1, "width": 300, "height": 300, "file_name": "x.jpg"}],
        "categories": [schema.coco_category(1)],
        "annotations": [
            {"id": i + 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": a,
             "bbox": [0, 0, 200, 200], "num_keypoints": int((g[:, 2] > 0).sum()),
             "keypoints": g.ravel().tolist()}
            for i, (g, a) in enumerate(zip(gts, areas, strict=True))
        ],
    }  # fmt: skip
    results = [{"image_id": 1, "category_id": 1, "keypoints": d.ravel().tolist(), "score": s}
               for d, s in zip(dets, scores, strict=True)]  # fmt: skip
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = data
        coco_gt.createIndex()
        ev = COCOeval(coco_gt, coco_gt.loadRes(results), iouType="keypoints")
        ev.params.kpt_oks_sigmas = schema.real_sigmas
        ev._prepare()
        expected = ev.computeOks(1, 1)  # (detections by descending score, ground truths)
    np.testing.assert_allclose(oks(np.stack(dets), np.stack(gts), areas, schema), expected,
                               rtol=1e-9)  # fmt: skip


def test_pose_overlaps_hand_computed():
    # sigmas 0.1: (2 sigma)^2 = 0.04; areas 100 and 300 average to 200: 2 * 200 * 0.04 = 16.
    # Keypoint 0 is 1 px apart (e = 1/16), keypoint 1 is 2 px apart (e = 4/16).
    a = np.array([[10, 10, 0.9], [30, 30, 0.8]])
    b = np.array([[11, 10, 0.9], [30, 32, 0.1]])
    table = pose_overlaps(np.stack([a, b]), np.array([100.0, 300.0]), [0.1, 0.1])
    both = (np.exp(-1 / 16) + np.exp(-4 / 16)) / 2  # 0.8589
    np.testing.assert_allclose(table, [[1, both], [both, 1]])
    # keypoint 1 of b scores 0.1: with a score threshold 0.2 only keypoint 0 counts
    found = pose_overlaps(np.stack([a, b]), [100.0, 300.0], [0.1, 0.1], score_threshold=0.2)
    assert found[0, 1] == pytest.approx(np.exp(-1 / 16))
    none = pose_overlaps(np.stack([a, b]), [100.0, 300.0], [0.1, 0.1], score_threshold=0.95)
    assert none[0, 1] == 0.0


def test_oks_nms_keeps_what_mmpose_keeps():
    a = [[10, 10, 0.9], [30, 30, 0.8]]
    b = [[11, 10, 0.9], [30, 32, 0.1]]  # OKS 0.8589 with a (above)
    far = [[200, 200, 0.9], [230, 230, 0.9]]
    box_a, box_b = (0, 0, 10, 10), (0, 0, 10, 30)  # areas 100 and 300
    poses = [_pose(b, 0.8, box_b), _pose(far, 0.7), _pose(a, 0.9, box_a)]
    sig = [0.1, 0.1]
    assert oks_nms(poses, sig, threshold=0.85).tolist() == [2, 1]  # b suppressed by a
    assert oks_nms(poses, sig, threshold=0.9).tolist() == [2, 0, 1]  # kept, by score
    assert oks_nms(poses, sig, threshold=0.85, score_threshold=0.2).tolist() == [2, 1]
    # explicit areas instead of the boxes: a larger area makes the poses more alike
    assert oks_nms(poses, sig, 0.9, areas=np.array([1e4, 1e4, 1e4])).tolist() == [2, 1]
    tied = [_pose(far, 0.5), _pose(a, 0.5)]
    assert oks_nms(tied, sig).tolist() == [0, 1]  # equal scores: the earlier pose first
    assert oks_nms([], sig).tolist() == []


def test_rescore_hand_computed():
    # above 0.2: 0.9 and 0.5 (0.2 itself is not above): mean 0.7, times the box score 0.8
    assert rescore(np.array([0.9, 0.1, 0.5, 0.2]), 0.8) == pytest.approx(0.56)
    assert rescore(np.array([0.1, 0.2, 0.0]), 0.8) == 0.0  # none above: score 0 (MMPose)
    batch = rescore(np.array([[0.9, 0.1, 0.5, 0.2], [1.0, 1.0, 1.0, 1.0]]), np.array([0.8, 0.3]))
    np.testing.assert_allclose(batch, [0.56, 0.3])
    assert rescore(np.array([0.9, 0.5]), 1.0, threshold=0.6) == pytest.approx(0.9)


def test_bad_shapes_name_the_schema():
    with pytest.raises(SchemaError, match="expected keypoints .*3, 2 or 3.* schema 'tri'"):
        oks(np.zeros((4, 3)), np.zeros((3, 3)), 1.0, TRI)
    with pytest.raises(SchemaError, match="for 2 sigmas, got shape \\(3, 3\\)"):
        oks(np.zeros((3, 3)), np.zeros((3, 3)), 1.0, [0.1, 0.1])
    with pytest.raises(ValueError, match="ground truth needs x, y, v per keypoint"):
        oks(np.zeros((3, 3)), np.zeros((3, 2)), 1.0, TRI)
    with pytest.raises(ValueError, match="score_threshold needs keypoint scores"):
        pose_overlaps(np.zeros((2, 3, 2)), [1.0, 1.0], TRI, score_threshold=0.2)


def test_ap_is_unchanged_through_rescoring_and_nms(shared_data):
    """Poses that NMS keeps and whose rescored score is their own give the bottom-up AP."""
    ann = shared_data / "mmpose_coco/test_coco.json"
    ds = CocoKeypointDataset(ann, ann.parent, check_images="none")
    rng = np.random.default_rng(1)
    direct, through = {}, {}
    for rec in ds.records:
        poses = []
        for kpts, box in zip(rec.keypoints, rec.boxes, strict=True):
            k = kpts.copy()
            k[:, :2] += np.where(k[:, 2:] > 0, rng.normal(0, 4, (len(k), 2)), 0)
            k[:, 2] = 1.0  # every keypoint score 1: rescoring gives the box score back
            poses.append(Pose(k, float(rng.uniform(0.3, 1.0)), box))
        direct[rec.image_id] = poses
        scores = rescore(np.stack([p.keypoints[:, 2] for p in poses]), [p.score for p in poses])
        rescored = [Pose(p.keypoints, float(s), p.bbox) for p, s in zip(poses, scores, strict=True)]
        keep = oks_nms(rescored, ds.schema)
        assert sorted(keep.tolist()) == list(range(len(poses)))  # different people: all kept
        assert [p.score for p in rescored] == pytest.approx([p.score for p in poses])
        through[rec.image_id] = [rescored[i] for i in keep]
    expected = evaluate_coco(ann, direct, ds.schema)
    assert 0.3 < expected["AP"] < 1.0  # the noise costs something
    assert evaluate_coco(ann, through, ds.schema) == pytest.approx(expected, nan_ok=True)
