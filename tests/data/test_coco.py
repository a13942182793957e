"""COCO dataset: every real dataset loads; corrupted copies give clear errors and lose nothing else."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from posekit import DatasetError, KeypointSchema
from posekit.data.coco import CocoKeypointDataset
from tests.shared_sets import SHARED_SETS


@pytest.mark.parametrize("shared", SHARED_SETS, ids=lambda s: s.ann.split("/")[-1])
def test_shared_datasets_load_without_problems(shared_data, shared):
    ann = shared_data / shared.ann
    category = json.loads(ann.read_text())["categories"][0]
    schema = KeypointSchema.from_coco(category)
    ds = CocoKeypointDataset(ann, shared_data / shared.images, schema=schema, check_images="decode")
    assert ds.problems == []
    assert len(ds) == shared.num_images
    assert ds.num_instances == shared.with_keypoints
    assert sum(len(r.ignore_regions) for r in ds.records) == shared.ignored
    for rec in ds.records:
        assert rec.keypoints.dtype == np.float32
        assert rec.keypoints.shape == (rec.num_instances, schema.num_keypoints, 3)
        assert (rec.keypoints[..., 2] > 0).any(axis=1).all()
        assert (rec.boxes[:, 2:] >= rec.boxes[:, :2]).all()
        labeled = rec.keypoints[..., 2] > 0
        xy = rec.keypoints[..., :2][labeled]
        assert (xy >= 0).all() and (xy[:, 0] <= rec.width).all() and (xy[:, 1] <= rec.height).all()


def test_keypoints_match_the_json(coco_val):
    ann, root = coco_val
    data = json.loads(ann.read_text())
    ds = CocoKeypointDataset(ann, root)
    by_id = {a["id"]: a for a in data["annotations"]}
    n = 0
    for rec in ds.records:
        for aid, kpts in zip(rec.annotation_ids, rec.keypoints, strict=True):
            expected = np.asarray(by_id[int(aid)]["keypoints"], np.float32).reshape(-1, 3)
            expected[expected[:, 2] == 0] = 0
            np.testing.assert_array_equal(kpts, expected)
            n += 1
    assert n == 68


def test_neck_schema_maps_names_and_adds_the_neck(coco_val):
    ann, root = coco_val
    plain = CocoKeypointDataset(ann, root)
    neck = CocoKeypointDataset(ann, root, schema="coco_person_neck")
    s17, s18 = plain.schema, neck.schema
    for a, b in zip(plain.records, neck.records, strict=True):
        for name in s17.keypoints:
            np.testing.assert_array_equal(
                a.keypoints[:, s17.index(name)], b.keypoints[:, s18.index(name)]
            )
        ls, rs = (
            a.keypoints[:, s17.index("left_shoulder")],
            a.keypoints[:, s17.index("right_shoulder")],
        )
        both = (ls[:, 2] > 0) & (rs[:, 2] > 0)
        nk = b.keypoints[:, s18.index("neck")]
        np.testing.assert_allclose(nk[both, :2], (ls[both, :2] + rs[both, :2]) / 2)
        assert (nk[~both, 2] == 0).all()


def test_crowd_and_unlabeled_people_become_ignore_mask(shared_data):
    ann = shared_data / "coco_mini/annotations/person_keypoints_train2017.json"
    ds = CocoKeypointDataset(ann, shared_data / "coco_mini/images/train2017")
    crowd = [r for r in ds.records if r.num_crowd]
    assert sum(r.num_crowd for r in crowd) == 5
    data = json.loads(ann.read_text())
    for rec in crowd:
        mask = rec.ignore_mask()
        assert mask.shape == (rec.height, rec.width)
        crowd_area = sum(
            a["area"] for a in data["annotations"] if a["image_id"] == rec.image_id and a["iscrowd"]
        )
        assert mask.sum() >= 0.9 * crowd_area  # the RLE decodes to (at least) the crowd's area


def test_pooled_categories_and_category_choice(shared_data):
    ann = shared_data / "custom/ap10k/test_ap10k.json"
    ds = CocoKeypointDataset(ann, shared_data / "custom/ap10k")
    assert ds.num_instances == 2 and len(ds.categories) == 54
    used = {a["category_id"] for a in json.loads(ann.read_text())["annotations"]}
    one = CocoKeypointDataset(ann, shared_data / "custom/ap10k", category_id=min(used))
    assert one.num_instances == 1
    with pytest.raises(DatasetError, match="no keypoint category with id 999"):
        CocoKeypointDataset(ann, shared_data / "custom/ap10k", category_id=999)


def test_schema_that_does_not_fit_the_file(shared_data, coco_val):
    schema = KeypointSchema.from_coco(
        json.loads((shared_data / "custom/zebra/test_zebra.json").read_text())["categories"][0]
    )
    with pytest.raises(DatasetError, match=r"keypoints \['snout'.*not in the file"):
        CocoKeypointDataset(*coco_val, schema=schema)


def test_whole_body_partition_file_is_rejected_with_the_reason(shared_data):
    with pytest.raises(
        DatasetError,
        match=r"image id \d+, annotation id \d+: keypoints has 399 "
        r"values, expected 51",
    ):
        CocoKeypointDataset(
            shared_data / "mmpose_coco/test_keypoint_partition_metric.json",
            shared_data / "mmpose_coco",
        )


def test_detection_results_file_is_not_ground_truth(shared_data):
    with pytest.raises(DatasetError, match="results/detections file is not ground truth"):
        CocoKeypointDataset(
            shared_data / "mmpose_coco/test_coco_det_AP_H_56.json", shared_data / "mmpose_coco"
        )


# ---------------------------------------------------------------------- corrupted copies
@pytest.fixture
def corrupt_copy(coco_val, tmp_path):
    """A writable copy of COCO-MINI val: JSON copied, images symlinked into a fresh root."""
    ann, root = coco_val
    images = tmp_path / "images"
    images.mkdir()
    for p in root.iterdir():
        (images / p.name).symlink_to(p)
    data = json.loads(ann.read_text())
    return tmp_path / "ann.json", images, data


def _with_people(data):
    counts = {}
    for a in data["annotations"]:
        if a["num_keypoints"] > 0:
            counts[a["image_id"]] = counts.get(a["image_id"], 0) + 1
    return counts


def test_truncated_json(corrupt_copy, coco_val):
    path, images, _ = corrupt_copy
    text = coco_val[0].read_text()
    path.write_text(text[: len(text) // 2])
    with pytest.raises(DatasetError, match=r"ann\.json: malformed JSON at line \d+ column \d+"):
        CocoKeypointDataset(path, images)


def test_missing_fields(corrupt_copy):
    path, images, data = corrupt_copy
    del data["annotations"]
    path.write_text(json.dumps(data))
    with pytest.raises(DatasetError, match="missing or non-list field 'annotations'"):
        CocoKeypointDataset(path, images)


def test_wrong_length_keypoints(corrupt_copy, caplog):
    path, images, data = corrupt_copy
    bad = next(a for a in data["annotations"] if a["num_keypoints"] > 0)
    bad["keypoints"] = bad["keypoints"][:-3]
    path.write_text(json.dumps(data))
    with pytest.raises(DatasetError) as err:
        CocoKeypointDataset(path, images)
    msg = str(err.value)
    assert str(path) in msg and f"image id {bad['image_id']}" in msg
    assert f"annotation id {bad['id']}" in msg and "48 values, expected 51" in msg
    with caplog.at_level(logging.WARNING):
        ds = CocoKeypointDataset(path, images, strict=False)
    assert ds.skipped_annotations == 1 and len(ds.problems) == 1
    assert ds.num_instances == 67 and len(ds) == 79
    rec = next(r for r in ds.records if r.image_id == bad["image_id"])
    assert bad["id"] not in rec.annotation_ids
    assert list(bad["bbox"]) in [list(r) for r in rec.ignore_regions]  # still ignored in the loss
    assert "skipped" in caplog.text


def test_coordinates_outside_the_image(corrupt_copy):
    path, images, data = corrupt_copy
    bad = next(a for a in data["annotations"] if a["num_keypoints"] > 0)
    img = next(i for i in data["images"] if i["id"] == bad["image_id"])
    j = next(j for j in range(17) if bad["keypoints"][3 * j + 2] > 0)
    bad["keypoints"][3 * j] = img["width"] + 50
    path.write_text(json.dumps(data))
    with pytest.raises(
        DatasetError,
        match=rf"annotation id {bad['id']}: keypoint {j} at .* "
        rf"outside the {img['width']}x{img['height']} image",
    ):
        CocoKeypointDataset(path, images)


def test_bad_visibility(corrupt_copy):
    path, images, data = corrupt_copy
    bad = next(a for a in data["annotations"] if a["num_keypoints"] > 0)
    bad["keypoints"][2] = 0.29
    path.write_text(json.dumps(data))
    with pytest.raises(DatasetError, match="visibility must be 0, 1 or 2"):
        CocoKeypointDataset(path, images)


def test_missing_image(corrupt_copy):
    path, images, data = corrupt_copy
    counts = _with_people(data)
    victim = max(counts, key=counts.get)
    img = next(i for i in data["images"] if i["id"] == victim)
    (images / img["file_name"]).unlink()
    path.write_text(json.dumps(data))
    with pytest.raises(
        DatasetError,
        match=rf"image id {victim}: image file not found: .*"
        rf"{img['file_name']}",
    ):
        CocoKeypointDataset(path, images)
    ds = CocoKeypointDataset(path, images, strict=False)
    assert ds.skipped_images == 1 and len(ds) == 78
    assert ds.num_instances == 68 - counts[victim]
    assert ds.skipped_annotations == sum(a["image_id"] == victim for a in data["annotations"])


def test_garbage_jpeg(corrupt_copy):
    path, images, data = corrupt_copy
    img = data["images"][0]
    target = images / img["file_name"]
    target.unlink()
    target.write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg" * 10)
    path.write_text(json.dumps(data))
    ds = CocoKeypointDataset(path, images)  # existence check passes ...
    index = next(i for i, r in enumerate(ds.records) if r.image_id == img["id"])
    with pytest.raises(DatasetError, match=rf"does not decode.*image id {img['id']}"):
        ds.load_image(index)  # ... loading names the file and image
    with pytest.raises(DatasetError, match=rf"image id {img['id']}: .*does not decode"):
        CocoKeypointDataset(path, images, check_images="decode")
    ds = CocoKeypointDataset(path, images, check_images="decode", strict=False)
    assert len(ds) == 78 and len(ds.problems) == 1


def test_annotation_for_unknown_image(corrupt_copy):
    path, images, data = corrupt_copy
    data["annotations"][0]["image_id"] = 123456789
    path.write_text(json.dumps(data))
    with pytest.raises(DatasetError, match="image id 123456789.*not in 'images'"):
        CocoKeypointDataset(path, images)


def test_getitem_without_transform(coco_val):
    ds = CocoKeypointDataset(*coco_val)
    i = max(range(len(ds)), key=lambda j: ds.records[j].num_instances)
    sample = ds[i]
    rec = ds.records[i]
    assert sample.image.shape == (rec.height, rec.width, 3)
    np.testing.assert_array_equal(sample.keypoints, rec.keypoints)
    np.testing.assert_array_equal(sample.matrix, np.eye(2, 3))
    assert sample.ignore_mask.shape == (rec.height, rec.width)


def test_missing_annotation_file(tmp_path):
    with pytest.raises(DatasetError, match="annotation file not found"):
        CocoKeypointDataset(tmp_path / "nope.json", tmp_path)


def test_unicode_image_path(tmp_path, coco_val):
    from posekit.data.images import read_image

    src = next(coco_val[1].iterdir())
    dst = tmp_path / "bild_ä.jpg"
    dst.write_bytes(Path(src).read_bytes())
    assert read_image(dst).ndim == 3
