"""Flip pairs of real custom schemas are derived from the names alone (no hand-written index)."""

import json
from pathlib import Path

import pytest

from posekit.schema import KeypointSchema

CUSTOM = Path("../shared/data/custom")

# (annotation file, pairs that must be mirrored, keypoints that must map to themselves, pair count)
CASES = [
    (
        "animalpose/test_animalpose.json",
        [("L_Eye", "R_Eye"), ("L_EarBase", "R_EarBase"), ("L_F_Paw", "R_F_Paw")],
        ["Nose", "Throat", "TailBase", "Withers"],
        8,
    ),
    (
        "ap10k/test_ap10k.json",
        [("left_eye", "right_eye"), ("left_back_paw", "right_back_paw")],
        ["nose", "neck", "root_of_tail"],
        7,
    ),
    (
        "fly/test_fly.json",
        [
            ("eyeL", "eyeR"),
            ("forelegL1", "forelegR1"),
            ("hindlegL4", "hindlegR4"),
            ("wingL", "wingR"),
        ],
        ["head", "neck", "thorax", "abdomen"],
        14,
    ),
    (
        "locust/test_locust.json",
        [("eyeL", "eyeR"), ("anttipL", "anttipR"), ("forelegL1", "forelegR1")],
        ["head", "neck", "thorax", "abdomen1", "abdomen2"],
        15,
    ),
    (
        "horse10/test_horse10.json",
        [("Nearknee", "Offknee"), ("Nearhindfoot", "Offhindfoot")],
        ["Nose", "Eye", "Wither", "Ischium", "Girth"],
        6,
    ),
]


def _schema(path: str) -> KeypointSchema:
    category = json.loads((CUSTOM / path).read_text())["categories"][0]
    return KeypointSchema.from_coco(category)


@pytest.mark.parametrize(("path", "pairs", "centers", "num_pairs"), CASES, ids=lambda c: str(c))
def test_custom_schema_flip_pairs_from_names(path, pairs, centers, num_pairs):
    schema = _schema(path)
    flip = schema.flip_index
    for left, right in pairs:
        assert flip[schema.index(left)] == schema.index(right)
        assert flip[schema.index(right)] == schema.index(left)
    for name in centers:
        assert flip[schema.index(name)] == schema.index(name)
    assert len(schema.flip_pairs) == num_pairs
    assert all(flip[flip[i]] == i for i in range(schema.num_keypoints))
