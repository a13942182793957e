"""COCO detection results (person boxes for top-down evaluation): the real MMPose file, filters, and
one clear error (file, entry, what is wrong) per kind of malformed input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from posekit import DatasetError
from posekit.data.results import read_coco_detections

DETECTIONS = "mmpose_coco/test_coco_det_AP_H_56.json"


def test_reads_the_mmpose_detections(shared_data):
    path = shared_data / DETECTIONS
    boxes = read_coco_detections(path)
    # 118 person detections of the 4 images (counted from the file)
    assert {i: len(b) for i, b in boxes.items()} == {785: 22, 40083: 26, 196141: 33, 197388: 37}
    assert all(b.dtype == np.float32 and b.shape[1] == 5 for b in boxes.values())
    first = json.loads(path.read_text())[0]  # image 785, the file's first entry
    x, y, w, h = first["bbox"]
    np.testing.assert_allclose(boxes[785][0], [x, y, x + w, y + h, first["score"]], rtol=1e-6)
    every = np.concatenate(list(boxes.values()))
    assert (every[:, 2] >= every[:, 0]).all() and (every[:, 3] >= every[:, 1]).all()
    assert ((every[:, 4] > 0) & (every[:, 4] <= 1)).all()


def test_filters_by_score_and_category(shared_data):
    path = shared_data / DETECTIONS
    confident = read_coco_detections(path, min_score=0.5)
    assert sum(len(b) for b in confident.values()) == 18  # scores >= 0.5 in the file
    assert all((b[:, 4] >= 0.5).all() for b in confident.values())
    assert sum(map(len, read_coco_detections(path, category_id=1).values())) == 118
    assert read_coco_detections(path, category_id=2) == {}  # only people in the file


def _write(tmp_path, entries) -> str:
    path = tmp_path / "det.json"
    path.write_text(entries if isinstance(entries, str) else json.dumps(entries))
    return path


GOOD = {"image_id": 7, "category_id": 1, "bbox": [1, 2, 3, 4], "score": 0.5}
BAD_INPUT = {
    "malformed JSON": ("[{", "cannot read COCO detections: Expecting"),
    "not a list": ({"annotations": []}, "COCO detections must be a JSON list, got dict"),
    "not an object": ([GOOD, 5], "detection 1 is not an object: 5"),
    "missing fields": ([{"image_id": 7, "bbox": [1, 2, 3, 4]}],
                       "detection 0 lacks field(s) ['category_id', 'score']"),
    "image id": ([{**GOOD, "image_id": "7a"}], "detection 0: image_id must be an integer"),
    "float image id": ([{**GOOD, "image_id": 7.5}], "detection 0: image_id must be an integer"),
    "short bbox": ([GOOD, {**GOOD, "bbox": [1, 2, 3]}],
                   "detection 1 (image id 7): bbox must be 4 finite numbers x, y, w >= 0, h >= 0; "
                   "got [1, 2, 3]"),
    "negative width": ([{**GOOD, "bbox": [1, 2, -3, 4]}], "bbox must be 4 finite numbers"),
    "text in bbox": ([{**GOOD, "bbox": [1, 2, "3", 4]}], "bbox must be 4 finite numbers"),
    "NaN score": ('[{"image_id": 7, "category_id": 1, "bbox": [1, 2, 3, 4], "score": NaN}]',
                  "detection 0 (image id 7): score must be a finite number, got nan"),
}  # fmt: skip


@pytest.mark.parametrize("case", BAD_INPUT)
def test_malformed_detections_name_the_file_and_entry(case, tmp_path):
    entries, message = BAD_INPUT[case]
    path = _write(tmp_path, entries)
    with pytest.raises(DatasetError) as info:
        read_coco_detections(path)
    assert str(info.value).startswith(f"{path}: ") and message in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(DatasetError, match="missing.json: cannot read COCO detections"):
        read_coco_detections(tmp_path / "missing.json")


def test_integral_float_ids_and_zero_size_boxes_are_accepted(tmp_path):
    path = _write(tmp_path, [{**GOOD, "image_id": 7.0, "bbox": [1, 2, 0, 0]}])
    np.testing.assert_array_equal(read_coco_detections(path)[7], [[1, 2, 1, 2, 0.5]])
