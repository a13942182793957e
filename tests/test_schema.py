"""KeypointSchema: construction, derivations (flip, limb order, PAF flip, roots) and errors."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from posekit import KeypointSchema, SchemaError
from posekit.schema_names import COCO_PERSON_KEYPOINTS
from tests.shared_sets import SHARED_SETS


def _tree_order_ok(schema: KeypointSchema) -> None:
    """Every tree limb reaches a new keypoint from a reached one; extras join two reached ones."""
    reached = set(schema.roots)
    for limb in schema.limbs:
        assert limb.src in reached
        assert (limb.dst in reached) == limb.extra
        reached.add(limb.dst)


@pytest.mark.parametrize("name", KeypointSchema.available())
def test_builtin_schemas_are_valid_and_round_trip(name, tmp_path):
    schema = KeypointSchema.named(name)
    _tree_order_ok(schema)
    flip = np.asarray(schema.flip_index)
    assert (flip[flip] == np.arange(schema.num_keypoints)).all()
    assert schema.paf_flip is not None
    assert KeypointSchema.from_dict(schema.to_dict()) == schema
    schema.to_yaml(tmp_path / "s.yaml")
    assert KeypointSchema.from_yaml(tmp_path / "s.yaml") == schema


def test_coco_person_matches_the_coco_category(coco_val):
    category = json.loads(coco_val[0].read_text())["categories"][0]
    from_file = KeypointSchema.from_coco(category)
    builtin = KeypointSchema.named("coco_person")
    assert from_file.keypoints == builtin.keypoints == COCO_PERSON_KEYPOINTS
    assert {frozenset(p) for p in from_file.skeleton} == {frozenset(p) for p in builtin.skeleton}
    assert from_file.sigmas == builtin.sigmas
    assert builtin.coco_category()["skeleton"] == category["skeleton"]


def test_neck_schema_layout():
    schema = KeypointSchema.named("coco_person_neck")
    assert schema.num_keypoints == 18 and schema.num_limbs == 19
    neck = schema.index("neck")
    assert schema.roots == (neck,)
    assert schema.virtual_sources == (
        (neck, (schema.index("left_shoulder"), schema.index("right_shoulder"))),
    )
    assert sum(limb.extra for limb in schema.limbs) == 2  # the two eye-ear loops
    assert len(schema.real_indices) == 17


def test_openpose18_keeps_the_published_channel_order():
    schema = KeypointSchema.named("openpose18")
    n = schema.keypoints
    pairs = [(n[limb.src], n[limb.dst]) for limb in schema.limbs]
    assert pairs[0] == ("neck", "right_hip")
    assert pairs[9] == ("right_shoulder", "right_ear")
    assert pairs[14] == ("neck", "nose")
    assert pairs[17] == ("right_eye", "right_ear") and schema.limbs[17].extra
    assert n[:3] == ("nose", "neck", "right_shoulder")


def test_add_virtual_needs_both_sources():
    schema = KeypointSchema.named("coco_person_neck")
    kpts = np.zeros((2, 18, 3), np.float32)
    ls, rs, neck = (
        schema.index("left_shoulder"),
        schema.index("right_shoulder"),
        schema.index("neck"),
    )
    kpts[:, ls] = [10, 20, 2]
    kpts[:, rs] = [30, 40, 1]
    kpts[1, rs] = 0
    schema.add_virtual(kpts)
    np.testing.assert_allclose(kpts[0, neck], [20, 30, 1])
    np.testing.assert_allclose(kpts[1, neck], [0, 0, 0])


def test_default_root_is_most_connected_and_bfs_order():
    schema = KeypointSchema(
        name="star",
        keypoints=["a", "hub", "c", "d", "e"],
        skeleton=[["a", "hub"], ["hub", "c"], ["c", "d"], ["hub", "e"], ["d", "e"]],
    )
    assert schema.roots == (1,)
    _tree_order_ok(schema)
    # breadth-first: the three limbs at the hub come before the deeper ones
    assert [lb.src for lb in schema.limbs[:3]] == [1, 1, 1]
    assert sum(lb.extra for lb in schema.limbs) == 1  # the c-d-e loop closes once


def test_disconnected_skeleton_warns_and_gets_a_root_per_part(caplog, shared_data):
    category = json.loads((shared_data / "custom/fly/test_fly.json").read_text())["categories"][0]
    with caplog.at_level(logging.WARNING):
        schema = KeypointSchema.from_coco(category, sigmas=[0.05] * 32)
    assert "not connected" in caplog.text
    assert len(schema.roots) == 7  # body + six legs
    _tree_order_ok(schema)
    assert len(schema.limbs) == len(category["skeleton"])


@pytest.mark.parametrize(
    ("file", "pairs", "center"),
    [
        (
            "custom/animalpose/test_animalpose.json",
            [("L_Eye", "R_Eye"), ("L_F_Paw", "R_F_Paw")],
            ["Nose", "Throat"],
        ),
        ("custom/ap10k/test_ap10k.json", [("left_front_paw", "right_front_paw")], ["neck"]),
        ("custom/fly/test_fly.json", [("eyeL", "eyeR"), ("forelegL1", "forelegR1")], ["head"]),
        (
            "custom/locust/test_locust.json",
            [("anttipL", "anttipR"), ("hindlegL4", "hindlegR4")],
            ["thorax"],
        ),
        ("custom/zebra/test_zebra.json", [("hindlegL1", "hindlegR1")], ["tailtip"]),
        ("custom/horse10/test_horse10.json", [("Nearknee", "Offknee")], ["Nose", "Eye"]),
        ("custom/atrw/test_atrw.json", [("left_ear", "right_ear")], ["center", "tail"]),
    ],
)
def test_auto_flip_pairs_of_custom_schemas(shared_data, file, pairs, center):
    category = json.loads((shared_data / file).read_text())["categories"][0]
    schema = KeypointSchema.from_coco(category)
    for a, b in pairs:
        assert schema.flip_index[schema.index(a)] == schema.index(b)
        assert schema.flip_index[schema.index(b)] == schema.index(a)
    for c in center:
        assert schema.flip_index[schema.index(c)] == schema.index(c)


@pytest.mark.parametrize("shared", SHARED_SETS, ids=lambda s: s.ann.split("/")[-1])
def test_every_shared_category_builds(shared_data, shared):
    category = json.loads((shared_data / shared.ann).read_text())["categories"][0]
    schema = KeypointSchema.from_coco(category)
    assert schema.num_keypoints == len(category["keypoints"])
    assert len(schema.limbs) == len(category.get("skeleton") or [])
    _tree_order_ok(schema)


def test_zero_based_skeleton_is_detected(shared_data):
    category = json.loads((shared_data / "custom/atrw/test_atrw.json").read_text())["categories"][0]
    schema = KeypointSchema.from_coco(category)
    names = schema.keypoints
    assert {frozenset((names[a], names[b])) for a, b in schema.skeleton} == {
        frozenset((names[a], names[b])) for a, b in category["skeleton"]
    }


def test_paf_flip_is_an_involution():
    schema = KeypointSchema.named("coco_person")
    pf = schema.paf_flip
    pafs = np.random.default_rng(0).normal(size=(2 * schema.num_limbs, 4, 5)).astype(np.float32)
    np.testing.assert_allclose(pf.apply(pf.apply(pafs)), pafs)


def test_paf_flip_sign_of_a_reversed_limb():
    # a->b mirrored is b'->a' which the skeleton stores as a'->b': direction reverses
    schema = KeypointSchema(
        name="t",
        keypoints=["left_a", "right_a", "mid"],
        skeleton=[["left_a", "mid"], ["mid", "right_a"]],
        limb_order="given",
        sigmas=[0.05] * 3,
    )
    pf = schema.paf_flip
    assert pf.channels == (2, 3, 0, 1)
    assert pf.signs == (1.0, -1.0, 1.0, -1.0)


def test_bfs_orients_limbs_away_from_the_root():
    schema = KeypointSchema(
        name="t",
        keypoints=["left_a", "right_a", "mid"],
        skeleton=[["left_a", "mid"], ["mid", "right_a"]],
        sigmas=[0.05] * 3,
    )
    assert [(lb.src, lb.dst) for lb in schema.limbs] == [(2, 0), (2, 1)]
    assert schema.paf_flip.signs == (-1.0, 1.0, -1.0, 1.0)


def test_asymmetric_skeleton_has_no_paf_flip():
    schema = KeypointSchema(
        name="t",
        keypoints=["left_a", "right_a", "mid"],
        skeleton=[["left_a", "mid"]],
        flip_pairs="auto",
    )
    assert schema.paf_flip is None
    with pytest.raises(SchemaError, match="not left/right symmetric"):
        schema.require_paf_flip()


def test_explicit_flip_pairs():
    schema = KeypointSchema(
        name="t",
        keypoints=["a", "b", "c"],
        skeleton=[["a", "c"], ["b", "c"]],
        flip_pairs=[["a", "b"]],
    )
    assert schema.flip_index == (1, 0, 2)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"keypoints": ["a", "a"]}, "duplicate names"),
        ({"keypoints": ["a", "b"], "skeleton": [["a", "x"]]}, r"skeleton\[0\].*unknown.*'x'"),
        ({"keypoints": ["a", "b"], "skeleton": [["a", 5]]}, r"skeleton\[0\].*out of range"),
        ({"keypoints": ["a", "b"], "skeleton": [["a", "a"]]}, "to itself"),
        ({"keypoints": ["a", "b"], "skeleton": [["a", "b"], ["b", "a"]]}, "repeats"),
        ({"keypoints": ["a", "b"], "sigmas": [0.1]}, r"sigmas: expected 2 values"),
        ({"keypoints": ["a", "b"], "sigmas": [0.1, 0.0]}, r"sigmas: .* > 0"),
        ({"keypoints": ["a", "b"], "joint_weights": [1, 2, 3]}, "joint_weights: expected 2"),
        ({"keypoints": ["a", "b", "c"], "flip_pairs": [["a", "b"], ["b", "c"]]}, "already paired"),
        ({"keypoints": ["a", "b"], "flip_pairs": [["a", "a"]]}, "with itself"),
        ({"keypoints": ["a", "b"], "root": "z"}, "root: unknown"),
        ({"keypoints": ["a", "b"], "virtual": {"a": ["a"]}}, "its own source"),
        ({"keypoints": ["a", "b"], "limb_order": "dfs"}, "limb_order"),
        (
            {
                "keypoints": ["a", "b", "c"],
                "skeleton": [["a", "b"], ["c", "b"]],
                "limb_order": "given",
            },
            r"skeleton\[1\].*reverse",
        ),
        ({"keypoints": ["l_left", "r_left", "l_right"]}, "cannot tell the mirror"),
    ],
)
def test_schema_errors_name_the_field(kwargs, match):
    with pytest.raises(SchemaError, match=match):
        KeypointSchema(name="bad", **kwargs)


def test_missing_sigmas_warn(caplog):
    with caplog.at_level(logging.WARNING):
        schema = KeypointSchema(name="t", keypoints=["a", "b"], skeleton=[["a", "b"]])
    assert schema.sigmas == (0.05, 0.05)
    assert "no sigmas" in caplog.text


def test_yaml_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nkeypoints: [a, b]\nlimbs: [[a, b]]\n")
    with pytest.raises(SchemaError, match=r"unknown keys \['limbs'\]"):
        KeypointSchema.from_yaml(bad)
    bad.write_text("name: x\nkeypoints: [a, b\n")
    with pytest.raises(SchemaError, match="invalid YAML"):
        KeypointSchema.from_yaml(bad)
    with pytest.raises(SchemaError, match="not found"):
        KeypointSchema.from_yaml(tmp_path / "none.yaml")
    with pytest.raises(SchemaError, match="unknown built-in"):
        KeypointSchema.named("nope")


def test_from_coco_errors():
    with pytest.raises(SchemaError, match="no 'keypoints'"):
        KeypointSchema.from_coco({"id": 3, "name": "x"})
    with pytest.raises(SchemaError, match="out of range"):
        KeypointSchema.from_coco(
            {"id": 1, "name": "x", "keypoints": ["a", "b"], "skeleton": [[1, 3]]}
        )


def test_from_coco_can_leave_out_invalid_limbs(caplog):
    category = {"id": 1, "name": "x", "keypoints": ["a", "b", "c"],
                "skeleton": [[1, 2], [2, 5], [2, 1], [3, 3], [2, 3]]}  # fmt: skip
    with caplog.at_level(logging.WARNING):
        schema = KeypointSchema.from_coco(category, drop_invalid_limbs=True, sigmas=[0.05] * 3)
    assert schema.skeleton == ((0, 1), (1, 2))
    assert "left out the skeleton pairs [(2, 5), (2, 1), (3, 3)]" in caplog.text


def test_source_index_maps_by_name():
    schema = KeypointSchema.named("coco_person_neck")
    idx = schema.source_index(COCO_PERSON_KEYPOINTS)
    assert [COCO_PERSON_KEYPOINTS[i] for i in idx] == [
        schema.keypoints[i] for i in schema.real_indices
    ]
    with pytest.raises(SchemaError, match="not in the file"):
        schema.source_index(COCO_PERSON_KEYPOINTS[:-1])


def test_ambiguous_skeleton_base_warns(caplog):
    category = {"id": 1, "name": "x", "keypoints": ["a", "b", "c"], "skeleton": [[1, 2]]}
    with caplog.at_level(logging.WARNING):
        one = KeypointSchema.from_coco(category, sigmas=[0.05] * 3)
    assert "read as 1-based" in caplog.text
    assert one.skeleton == ((0, 1),)
    zero = KeypointSchema.from_coco(category, skeleton_base=0, sigmas=[0.05] * 3)
    assert zero.skeleton == ((1, 2),)


# ---------------------------------------------------------------------- half-body halves
def test_coco_halves_are_derived_from_the_skeleton():
    schema = KeypointSchema.named("coco_person")
    assert schema.halves == (tuple(range(11)), tuple(range(11, 17)))  # MMPose's COCO split


@pytest.mark.parametrize("file", ["ap10k/test_ap10k.json", "animalpose/test_animalpose.json",
                                  "atrw/test_atrw.json", "zebra/test_zebra.json"])  # fmt: skip
def test_animal_halves_keep_every_left_right_pair_together(shared_data, file):
    category = json.loads((shared_data / "custom" / file).read_text())["categories"][0]
    schema = KeypointSchema.from_coco(category, sigmas=[0.05] * len(category["keypoints"]))
    upper, lower = schema.halves
    assert not set(upper) & set(lower) and min(len(upper), len(lower)) >= len(upper + lower) / 4
    for half in (upper, lower):
        assert {schema.flip_index[i] for i in half} == set(half)
    assert 0 in upper  # the head's half is the upper one


def test_no_halves_without_a_body_to_split(shared_data):
    face = KeypointSchema("face", tuple(f"p{i}" for i in range(10)), sigmas=(0.05,) * 10)
    fingers = [(0, 4 * f + j + 1) if j == 0 else (4 * f + j, 4 * f + j + 1)
               for f in range(5) for j in range(4)]  # fmt: skip
    hand = KeypointSchema("hand", tuple(f"h{i}" for i in range(21)), skeleton=fingers,
                          sigmas=(0.05,) * 21)  # fmt: skip
    locust = json.loads((shared_data / "custom/locust/test_locust.json").read_text())
    parts = KeypointSchema.from_coco(locust["categories"][0], sigmas=[0.05] * 35)
    assert face.halves is None and hand.halves is None and parts.halves is None
    assert "half-body halves: none" in hand.describe()


def test_given_halves_are_checked_and_round_trip(tmp_path):
    base = KeypointSchema.named("coco_person").to_dict()
    upper = ["nose", "left_shoulder", "right_shoulder"]
    lower = ["left_hip", "right_hip", "left_knee", "right_knee"]
    schema = KeypointSchema.from_dict({**base, "upper": upper, "lower": lower})
    assert [schema.keypoints[i] for i in schema.halves[0]] == upper
    schema.to_yaml(tmp_path / "s.yaml")
    assert KeypointSchema.from_yaml(tmp_path / "s.yaml").halves == schema.halves
    for spec, message in (
        ({"upper": upper}, "upper and lower go together"),
        (
            {"upper": ["nose", "left_shoulder"], "lower": lower},
            r"\['left_shoulder'\] without their mirror",
        ),
        ({"upper": upper, "lower": ["nose", "left_hip", "right_hip"]}, r"share \['nose'\]"),
        ({"upper": ["neck"], "lower": lower}, r"unknown keypoint names \['neck'\]"),
    ):
        with pytest.raises(SchemaError, match=message):
            KeypointSchema.from_dict({**base, **spec})


def test_a_learned_skeleton_links_the_coco_bones_and_is_mirror_symmetric(shared_data):
    from posekit.data.coco import CocoKeypointDataset

    ds = CocoKeypointDataset(
        shared_data / "coco_mini/annotations/person_keypoints_train2017.json",
        shared_data / "coco_mini/images/train2017",
        check_images="none",
    )
    learned = ds.with_learned_skeleton()
    assert learned.keypoints == ds.schema.keypoints and learned.num_limbs >= 16
    assert len(learned.roots) == 1 and learned.paf_flip is not None  # connected, flip test works
    pairs = {frozenset(learned.keypoints[i] for i in p) for p in learned.skeleton}
    for side in ("left", "right"):  # the steady bones of the arms and legs
        for a, b in (("shoulder", "elbow"), ("elbow", "wrist"), ("hip", "knee"), ("knee", "ankle")):
            assert frozenset((f"{side}_{a}", f"{side}_{b}")) in pairs
    assert ds.schema.num_limbs == 19  # the dataset keeps its own


def test_skeleton_from_data_leaves_unlabelled_keypoints_out_and_checks_shapes():
    from posekit.errors import SchemaError
    from posekit.schema_skeleton import skeleton_from_data

    rng = np.random.default_rng(0)
    # a chain of 4 points 10 px apart (+ noise), a 5th point never labelled
    base = np.array([[0, 0], [10, 0], [20, 0], [30, 0], [0, 0]], float)
    kpts = np.zeros((30, 5, 3))
    kpts[:, :, :2] = base + rng.normal(0, 1, (30, 5, 2))
    kpts[:, :4, 2] = 2
    pairs = skeleton_from_data(kpts, np.full(30, 30.0), tuple(range(5)))
    assert sorted(pairs) == [(0, 1), (1, 2), (2, 3)]
    kpts[:, 3, 2] = np.arange(30) < 3  # type 3 labelled in 3 instances only: still linked
    assert (2, 3) in skeleton_from_data(kpts, np.full(30, 30.0), tuple(range(5)))
    with pytest.raises(SchemaError, match="scales"):
        skeleton_from_data(kpts, np.ones(3), tuple(range(5)))
    with pytest.raises(SchemaError, match="flip index"):
        skeleton_from_data(kpts, np.ones(30), (0, 1))
