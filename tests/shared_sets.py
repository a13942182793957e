"""The real datasets of ../shared/data with the counts its README states (an independent source)."""

from __future__ import annotations

from typing import NamedTuple


class SharedSet(NamedTuple):
    ann: str  # relative to shared/data
    images: str  # image root, relative to shared/data
    num_images: int
    with_keypoints: int  # annotations with >= 1 labeled keypoint
    ignored: int  # crowd + people without keypoints


SHARED_SETS = (
    SharedSet(
        "coco_mini/annotations/person_keypoints_train2017.json",
        "coco_mini/images/train2017",
        80,
        86,
        86,
    ),
    SharedSet(
        "coco_mini/annotations/person_keypoints_val2017.json",
        "coco_mini/images/val2017",
        79,
        68,
        50,
    ),
    SharedSet("mmpose_coco/test_coco.json", "mmpose_coco", 4, 12, 2),
    SharedSet("mmpose_coco/test_coco_wholebody.json", "mmpose_coco", 4, 12, 2),
    SharedSet("custom/ap10k/test_ap10k.json", "custom/ap10k", 2, 2, 0),
    SharedSet("custom/animalpose/test_animalpose.json", "custom/animalpose", 2, 2, 0),
    SharedSet("custom/macaque/test_macaque.json", "custom/macaque", 2, 2, 0),
    SharedSet("custom/horse10/test_horse10.json", "custom/horse10", 3, 3, 0),
    SharedSet("custom/locust/test_locust.json", "custom/locust", 2, 2, 0),
    SharedSet("custom/fly/test_fly.json", "custom/fly", 2, 2, 0),
    SharedSet("custom/zebra/test_zebra.json", "custom/zebra", 2, 2, 0),
    SharedSet("custom/atrw/test_atrw.json", "custom/atrw", 2, 2, 0),
    SharedSet("custom/deepfasion2/deepfasion2.json", "custom/deepfasion2", 2, 2, 0),
)
