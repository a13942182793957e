"""The decoder's ceiling on real annotations: encode the ground truth, decode, score with COCO OKS.

Bounds are a little below the values ``benchmarks/paf_decode.py`` prints (stride 8, sigma 7,
decoding at output resolution), so that a regression in peaks, limb scores or grouping fails here.
The classic root-grown grouping reaches about 0.70 on coco_mini (../shared/DESIGN.md).
"""

from __future__ import annotations

import json

import pytest

from posekit import KeypointSchema
from posekit.codecs.paf import PafCodec, PafDecodeConfig
from posekit.data.coco import CocoKeypointDataset
from posekit.data.synth import SynthConfig, write_dataset
from posekit.engine.evaluate import evaluate_coco, perfect_map_poses, pool_ground_truth

PEOPLE = [
    # (annotation file, image root, schema, AP lower bound)
    ("coco_mini/annotations/person_keypoints_val2017.json", "coco_mini/images/val2017",
     "coco_person", 0.95),
    ("coco_mini/annotations/person_keypoints_val2017.json", "coco_mini/images/val2017",
     "coco_person_neck", 0.95),
    ("coco_mini/annotations/person_keypoints_train2017.json", "coco_mini/images/train2017",
     "coco_person", 0.945),
    ("coco_mini/annotations/person_keypoints_train2017.json", "coco_mini/images/train2017",
     "coco_person_neck", 0.94),
    ("mmpose_coco/test_coco.json", "mmpose_coco", "coco_person", 0.99),
    ("mmpose_coco/test_coco.json", "mmpose_coco", "coco_person_neck", 0.99),
]  # fmt: skip

CUSTOM = ["ap10k/test_ap10k.json", "atrw/test_atrw.json", "zebra/test_zebra.json",
          "locust/test_locust.json", "macaque/test_macaque.json"]  # fmt: skip


@pytest.mark.parametrize("ann, images, schema, bound", PEOPLE, ids=lambda v: str(v)[-24:])
def test_people_round_trip_ap(shared_data, ann, images, schema, bound):
    ds = CocoKeypointDataset(shared_data / ann, shared_data / images, schema=schema,
                             check_images="none")  # fmt: skip
    codec = PafCodec(ds.schema)
    poses = perfect_map_poses(ds.records, codec)
    metrics = evaluate_coco(shared_data / ann, poses, ds.schema)
    assert metrics["AP"] >= bound
    # without merging fragments (parts with no limb between them) the ceiling is lower
    split = perfect_map_poses(ds.records, codec, config=PafDecodeConfig(fragment_reach=0))
    assert evaluate_coco(shared_data / ann, split, ds.schema)["AP"] <= metrics["AP"]


@pytest.mark.parametrize("schema", ["coco_person", "coco_person_neck"])
def test_every_people_image_pooled_reaches_the_goal(shared_data, schema):
    # the goal: every image of COCO-MINI val + train and mmpose_coco, scored as one set
    sets = sorted({(ann, images) for ann, images, _, _ in PEOPLE})
    pooled, id_maps = pool_ground_truth([shared_data / ann for ann, _ in sets])
    poses = {}
    for (ann, images), ids in zip(sets, id_maps, strict=True):
        ds = CocoKeypointDataset(shared_data / ann, shared_data / images, schema=schema,
                                 check_images="none")  # fmt: skip
        found = perfect_map_poses(ds.records, PafCodec(ds.schema))
        poses.update({ids[i]: p for i, p in found.items()})
    assert len(pooled["images"]) == 163
    assert evaluate_coco(pooled, poses, ds.schema)["AP"] >= 0.95


@pytest.mark.parametrize("ann", CUSTOM, ids=lambda v: v.split("/")[0])
def test_custom_schema_round_trip_ap(shared_data, ann):
    path = shared_data / "custom" / ann
    ds = CocoKeypointDataset(path, path.parent, check_images="none")
    poses = perfect_map_poses(ds.records, PafCodec(ds.schema), max_side=368)
    assert evaluate_coco(path, poses, ds.schema)["AP"] >= 0.99


@pytest.mark.parametrize("ann, bound", [("ap10k/test_ap10k.json", 0.95), ("atrw/test_atrw.json", 0.95)],
                         ids=["ap10k", "atrw"])  # fmt: skip
def test_custom_schema_crowds(shared_data, tmp_path, ann, bound):
    """Synthetic crowds (6-8 figures, overlapping) of a real dataset's schema, written and read
    back as COCO files. OKS is strict here: thin figures have small areas, and the max of nearby
    Gaussians shifts refined peaks by a pixel or two; AP50 shows the grouping itself."""
    category = json.loads((shared_data / "custom" / ann).read_text())["categories"][0]
    schema = KeypointSchema.from_coco(category)
    config = SynthConfig(num_images=8, image_size=(368, 368), min_instances=6, max_instances=8,
                         partial_prob=0.0, overlap_prob=0.4, clutter=0, noise_std=0.0,
                         scale_range=(0.3, 0.45), seed=1)  # fmt: skip
    gt = write_dataset(tmp_path, schema, config, progress=False)
    ds = CocoKeypointDataset(gt, tmp_path / "images" / "train", schema=schema)
    poses = perfect_map_poses(ds.records, PafCodec(schema))
    metrics = evaluate_coco(gt, poses, schema)
    assert metrics["AP"] >= bound
    assert metrics["AP50"] >= 0.98
