"""Box sources of top-down prediction: detections by image id, proposals from poses, the whole
image; the boxed predictor keeps proposals too small to crop."""

from __future__ import annotations

import json

import numpy as np
import pytest

from posekit.errors import ConfigError, DatasetError
from posekit.inference.boxes import (
    BoxedPredictor,
    Boxes,
    DetectionBoxes,
    ProposalBoxes,
    WholeImageBox,
    pose_boxes,
)
from posekit.structures import Pose


def _pose(points, score=0.8):
    kpts = np.zeros((4, 3), np.float32)
    for i, (x, y) in enumerate(points):
        kpts[i] = (x, y, 0.9)
    return Pose(kpts, score, np.zeros(4, np.float32))


def test_pose_boxes_cover_the_found_keypoints():
    poses = [_pose([(10, 20), (30, 60), (20, 40)], 0.9), _pose([(5, 5), (5, 25)], 0.5),
             _pose([(7, 7)], 0.4), _pose([(3, 3), (3, 3)], 0.3)]  # fmt: skip
    boxes = pose_boxes(poses)
    np.testing.assert_allclose(boxes.xyxy, [[10, 20, 30, 60], [-5, 5, 15, 25]])
    np.testing.assert_allclose(boxes.scores, [0.9, 0.5])
    assert boxes.kept == (poses[2], poses[3])  # one keypoint, or all at one point: no crop
    assert len(pose_boxes([])) == 0 and pose_boxes([]).xyxy.shape == (0, 4)


def test_detections_by_image_id(tmp_path):
    path = tmp_path / "dets.json"
    path.write_text(json.dumps([
        {"image_id": 7, "category_id": 1, "bbox": [10, 20, 30, 40], "score": 0.9},
        {"image_id": 7, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.1},
        {"image_id": 8, "category_id": 2, "bbox": [1, 2, 3, 4], "score": 0.8},
    ]))  # fmt: skip
    image = np.zeros((50, 60, 3), np.uint8)
    source = DetectionBoxes(path, category_id=1, min_score=0.2)
    found = source(image, 7)
    np.testing.assert_allclose(found.xyxy, [[10, 20, 40, 60]])
    np.testing.assert_allclose(found.scores, [0.9])
    assert len(source(image, 8)) == 0  # another category
    source.check_coverage()  # one of two images had a box: a warning only
    missing = DetectionBoxes(path)
    missing(image, 123)
    with pytest.raises(ConfigError, match="none of the 1 images has a detection"):
        missing.check_coverage()
    path.write_text('{"image_id": 1}')
    with pytest.raises(DatasetError, match="must be a JSON list"):
        DetectionBoxes(path)


def test_boxed_predictor_joins_refined_and_kept_poses():
    single = _pose([(7, 7)], 0.95)

    class Refiner:
        schema = None

        def predict(self, image, boxes, scores, priors=None):
            assert boxes.shape == (1, 4) and scores.tolist() == [0.5]
            self.priors = priors
            return [_pose([(1, 1), (2, 2)], 0.45)]

    class Proposer:
        def predict(self, image):
            return [proposal, single]

    proposal = _pose([(0, 0), (4, 4)], 0.5)
    refiner = Refiner()
    pipeline = BoxedPredictor(refiner, ProposalBoxes(Proposer()))
    poses = pipeline.predict(np.zeros((10, 10, 3), np.uint8), 0)
    assert [p.score for p in poses] == [0.95, 0.45] and poses[0] is single
    assert refiner.priors == (proposal,)  # the proposal's pose goes with its box
    BoxedPredictor(refiner, ProposalBoxes(Proposer(), merge=False)).predict(np.zeros((9, 9, 3)), 0)
    assert refiner.priors is None
    whole = WholeImageBox()(np.zeros((10, 20, 3), np.uint8), 0)
    assert isinstance(whole, Boxes) and whole.xyxy.tolist() == [[0, 0, 20, 10]]
