"""Tests of posekit.data.synth: COCO output, determinism, honest visibility, any schema."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO

from posekit.data.synth import SynthConfig, generate_image, write_dataset
from posekit.errors import ConfigError
from posekit.schema import KeypointSchema

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
SMALL = SynthConfig(num_images=4, image_size=(160, 128), seed=3)


def _custom(folder: str, file: str) -> KeypointSchema:
    categories = json.loads((DATA / "custom" / folder / file).read_text())["categories"]
    return KeypointSchema.from_coco(categories[0])


SCHEMAS = {
    "coco_person": lambda: KeypointSchema.named("coco_person"),
    "coco_person_neck": lambda: KeypointSchema.named("coco_person_neck"),
    "fly": lambda: _custom("fly", "test_fly.json"),  # 7 disconnected skeleton parts
    "horse10": lambda: _custom("horse10", "test_horse10.json"),  # no skeleton at all
}


@pytest.fixture(params=sorted(SCHEMAS))
def schema(request: pytest.FixtureRequest) -> KeypointSchema:
    return SCHEMAS[request.param]()


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_same_seed_same_bytes_other_seed_or_split_differs(tmp_path: Path) -> None:
    schema = KeypointSchema.named("coco_person_neck")
    for name, config, split in (
        ("a", SMALL, "train"),
        ("b", SMALL, "train"),
        ("c", replace(SMALL, seed=4), "train"),
        ("d", SMALL, "val"),
    ):
        write_dataset(tmp_path / name, schema, config, split=split, progress=False)
    a, b, c = (_files(tmp_path / n) for n in "abc")
    assert len(a) == SMALL.num_images + 1 and a == b
    assert a.keys() == c.keys()
    assert all(a[k] != c[k] for k in a)  # the JSON and every image
    val = (tmp_path / "d" / "images" / "val" / "000000000001.jpg").read_bytes()
    assert val != a["images/train/000000000001.jpg"]


def test_coco_json_is_valid_for_any_schema(tmp_path: Path, schema: KeypointSchema) -> None:
    ann_path = write_dataset(tmp_path, schema, SMALL, split="val", progress=False)
    assert ann_path == tmp_path / "annotations" / "val.json"
    coco = COCO(str(ann_path))
    k_real = len(schema.real_indices)
    assert coco.loadCats(1) == [schema.coco_category(1)]
    assert KeypointSchema.from_dict(coco.dataset["info"]["posekit_schema"]) == schema
    assert len(coco.getImgIds()) == SMALL.num_images and len(coco.getAnnIds()) > 0
    w, h = SMALL.image_size
    for img in coco.loadImgs(coco.getImgIds()):
        image = cv2.imread(str(tmp_path / "images" / "val" / img["file_name"]))
        assert image.shape == (h, w, 3) and (img["width"], img["height"]) == (w, h)
    for ann in coco.loadAnns(coco.getAnnIds()):
        kpts = np.asarray(ann["keypoints"], dtype=np.float64).reshape(-1, 3)
        assert kpts.shape == (k_real, 3) and set(np.unique(kpts[:, 2])) <= {0, 1, 2}
        labeled = kpts[:, 2] > 0
        assert ann["num_keypoints"] == labeled.sum()
        assert np.all(kpts[~labeled, :2] == 0)
        x, y, bw, bh = ann["bbox"]
        assert 0 <= x and 0 <= y and x + bw <= w and y + bh <= h and ann["area"] > 0
        inside_box = (
            (kpts[:, 0] >= x) & (kpts[:, 0] <= x + bw) & (kpts[:, 1] >= y) & (kpts[:, 1] <= y + bh)
        )
        assert np.all(inside_box[labeled])
        assert ann["iscrowd"] == 0 and ann["category_id"] == 1
        assert coco.annToMask(ann).sum() > 0  # the polygons rasterize


def test_visibility_is_honest_in_a_crowd(schema: KeypointSchema) -> None:
    config = SynthConfig(image_size=(160, 160), min_instances=8, max_instances=8, noise_std=0.0)
    w, h = config.image_size
    counts = np.zeros(3, dtype=int)
    for seed in range(3):
        image, instances = generate_image(schema, np.random.default_rng(seed), config)
        for inst in instances:
            x, y = inst.position[:, 0], inst.position[:, 1]
            outside = (x < 0) | (x > w - 1) | (y < 0) | (y > h - 1)
            v = inst.keypoints[:, 2]
            np.testing.assert_array_equal(v == 0, outside)
            np.testing.assert_array_equal(inst.keypoints[~outside, :2], inst.position[~outside])
            col = np.floor(inst.keypoints[:, 0] + 0.5).astype(int)
            row = np.floor(inst.keypoints[:, 1] + 0.5).astype(int)
            pixel = image[row, col].astype(int)
            # a visible keypoint shows its own joint disc; an occluded one shows the figure in front
            assert np.all(pixel[v == 2] == inst.joint_color)
            if np.any(v == 1):
                hidden_ok = np.any(pixel[v == 1] != inst.joint_color, axis=1)
                assert hidden_ok.mean() > 0.8
            counts += np.bincount(v.astype(int), minlength=3)
    assert counts[1] > 0 and counts[2] > 0  # occlusion happens


def test_virtual_keypoint_is_drawn_at_the_mean_of_its_sources() -> None:
    schema = KeypointSchema.named("coco_person_neck")
    ((neck, sources),) = schema.virtual_sources
    real = list(schema.real_indices)
    config = SynthConfig(min_instances=1, max_instances=1, noise_std=0.0, partial_prob=0.0)
    checked = 0
    for seed in range(10):
        image, (inst,) = generate_image(schema, np.random.default_rng(seed), config)
        mean = inst.position[[real.index(s) for s in sources]].mean(axis=0)
        col, row = np.floor(mean + 0.5).astype(int)
        if 0 <= col < image.shape[1] and 0 <= row < image.shape[0]:
            assert tuple(image[row, col]) == inst.joint_color  # the neck's joint disc
            checked += 1
    assert checked >= 5


def test_figures_cross_the_border_and_images_are_textured() -> None:
    schema = KeypointSchema.named("coco_person")
    config = SynthConfig(image_size=(192, 192))
    w, h = config.image_size
    partial = touching = total = 0
    for seed in range(20):
        image, instances = generate_image(schema, np.random.default_rng(seed), config)
        assert image.dtype == np.uint8 and image.shape == (h, w, 3)
        assert image.std() > 15.0  # not blank
        for inst in instances:
            v = inst.keypoints[:, 2]
            partial += bool(np.any(v == 0) and np.any(v > 0))
            x, y, bw, bh = inst.bbox
            touching += bool(x == 0 or y == 0 or x + bw == w or y + bh == h)
            total += 1
    assert total >= 40 and partial > 0 and touching > 0 and partial < total


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("num_images", 0),
        ("num_images", True),
        ("image_size", (16, 200)),
        ("image_size", 368),
        ("image_size", (100.5, 100)),
        ("min_instances", 7),
        ("partial_prob", 1.5),
        ("scale_range", (0.5, 0.2)),
        ("seed", -1),
        ("jpeg_quality", 101),
        ("noise_std", math.nan),
    ],
)
def test_bad_config_names_the_key(key: str, value: object) -> None:
    with pytest.raises(ConfigError, match=key):
        SynthConfig(**{key: value})  # min_instances 7 > max_instances 6


def test_bad_split_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="split"):
        write_dataset(tmp_path, KeypointSchema.named("coco_person"), SMALL, split="../x")


def _limb_hues(schema: KeypointSchema, config: SynthConfig, seed: int) -> dict[int, float]:
    """Median OpenCV hue (0..180) around the middle of each fully visible limb of one figure."""
    image, (figure,) = generate_image(schema, np.random.default_rng(seed), config)
    hue = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)[..., 0].astype(float)
    xy, v = figure.keypoints[:, :2], figure.keypoints[:, 2]
    hues = {}
    for j, limb in enumerate(schema.limbs):
        if v[limb.src] == 2 and v[limb.dst] == 2:
            t = np.linspace(0.35, 0.65, 7)[:, None]
            pts = np.round(xy[limb.src] * (1 - t) + xy[limb.dst] * t).astype(int)
            hues[j] = float(np.median(hue[pts[:, 1], pts[:, 0]]))
    return hues


def test_part_colors_give_each_limb_type_one_hue_shared_with_its_mirror() -> None:
    schema = KeypointSchema.named("coco_person")
    clean = SynthConfig(
        image_size=(256, 256),
        min_instances=1,
        max_instances=1,
        scale_range=(0.8, 0.9),
        partial_prob=0.0,
        clutter=0,
        noise_std=0.0,
        angle_jitter=0.05,
        part_colors=True,
    )
    names = [(schema.keypoints[limb.src], schema.keypoints[limb.dst]) for limb in schema.limbs]
    shin = names.index(("left_knee", "left_ankle"))
    mirror = names.index(("right_knee", "right_ankle"))
    upper_arm = names.index(("left_shoulder", "left_elbow"))
    seen = [h for h in (_limb_hues(schema, clean, seed) for seed in range(6)) if shin in h]
    assert len(seen) >= 3
    shins = [h[shin] for h in seen]
    assert max(shins) - min(shins) < 6  # the same hue on every figure
    both = [h for h in seen if mirror in h]
    assert both and all(abs(h[shin] - h[mirror]) < 6 for h in both)
    arms = [h for h in seen if upper_arm in h]
    assert arms and all(abs(h[shin] - h[upper_arm]) > 8 for h in arms)
    # without part colors a figure has one random color: the shin's hue changes between figures
    plain = [
        h[shin]
        for h in (_limb_hues(schema, replace(clean, part_colors=False), s) for s in range(6))
        if shin in h
    ]
    assert max(plain) - min(plain) > 10


def test_part_colors_work_for_any_schema(schema: KeypointSchema) -> None:
    config = SynthConfig(image_size=(96, 96), part_colors=True)
    image, instances = generate_image(schema, np.random.default_rng(2), config)
    assert image.shape == (96, 96, 3) and instances  # horse10 has no limb: bodies only


def test_part_colors_must_be_a_bool() -> None:
    with pytest.raises(ConfigError, match="part_colors"):
        SynthConfig(part_colors="yes")  # type: ignore[arg-type]
