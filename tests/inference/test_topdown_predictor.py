"""TopDownPredictor: boxes -> crops in one batch -> the codec's outputs -> poses in image pixels,
with a runtime that returns a perfect network's outputs for the crops it is given; real photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from posekit.codecs import build_codec
from posekit.data.coco import CocoKeypointDataset
from posekit.engine.evaluate import evaluate_coco
from posekit.errors import ConfigError
from posekit.geometry import compose_affine, mirror_matrix
from posekit.inference import TopDownPredictor, create_predictor
from posekit.models.zoo import build_model
from posekit.oks import rescore
from posekit.schema import KeypointSchema

DATA = Path("../shared/data")
SCHEMA = KeypointSchema.named("coco_person")


class PerfectRuntime:
    """Returns the codec's own targets of ``kpts_img`` in the crops the predictor makes (the
    mirrored ones of a flip batch: the mirrored crops' targets)."""

    def __init__(self, codec) -> None:
        self.codec, self.kpts_img, self.matrices, self.batches = codec, None, None, []

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, ...]:
        self.batches.append(batch.shape)
        m = len(self.matrices)
        mats = list(self.matrices)
        if len(batch) == 2 * m:  # the flip test's mirrored crops follow
            mirror = mirror_matrix(self.codec.input_size[0])
            mats += [compose_affine(mirror, x) for x in self.matrices]
        kpts = []
        for i, mat in enumerate(mats):
            k = self.kpts_img[i % m].copy()
            k[:, :2] = k[:, :2] @ mat[:, :2].T + mat[:, 2]
            kpts.append(k[list(SCHEMA.flip_index)] if i >= m else k)
        return self.codec.perfect_outputs(self.codec.encode(np.stack(kpts)))


@pytest.fixture(scope="module")
def coco_val():
    return CocoKeypointDataset(DATA / "coco_mini/annotations/person_keypoints_val2017.json",
                               DATA / "coco_mini/images/val2017")  # fmt: skip


@pytest.mark.parametrize(("name", "flip"), [("udp", True), ("simcc", False), ("rle", True)])
def test_a_perfect_network_scores_the_codec_on_real_photos_with_gt_boxes(coco_val, name, flip):
    """Every labelled keypoint inside its padded ground-truth box comes back to < 0.01 px; the
    few labelled outside it (ankles below an upper-body box) cannot, and cost ~1.7 % AP."""
    codec = build_codec(name, SCHEMA)
    runtime = PerfectRuntime(codec)
    predictor = TopDownPredictor(runtime, codec, flip=flip)
    poses, errors, outside = {}, [], 0
    for i, rec in enumerate(coco_val.records):
        if not rec.num_instances:
            poses[rec.image_id] = []
            continue
        runtime.kpts_img, runtime.matrices = rec.keypoints, predictor.matrices(rec.boxes)
        found = predictor.predict(coco_val.load_image(i), rec.boxes)
        assert len(found) == rec.num_instances
        poses[rec.image_id] = found
        for kpts, mat in zip(rec.keypoints, runtime.matrices, strict=True):
            in_crop = kpts[:, :2] @ mat[:, :2].T + mat[:, 2]
            inside = (kpts[:, 2] > 0) & ((in_crop >= 0) & (in_crop <= codec.input_size)).all(1)
            outside += int(((kpts[:, 2] > 0) & ~inside).sum())
            dist = np.linalg.norm(
                np.stack([p.keypoints[:, :2] for p in found]) - kpts[:, :2], axis=-1
            )
            best = np.argmin(np.where(inside, dist, 0).sum(1))  # the pose of this instance
            errors.append(dist[best][inside])
    # one forward per image, every crop in it (and the mirrored ones)
    assert all(shape[0] in (n, 2 * n) for shape, n in zip(runtime.batches, [
        r.num_instances for r in coco_val.records if r.num_instances], strict=True))  # fmt: skip
    assert np.concatenate(errors).max() < 0.01 and 0 < outside < 10
    metrics = evaluate_coco(coco_val.ann_file, poses, SCHEMA)
    assert metrics["AP"] >= 0.98, metrics


def test_rescoring_nms_and_bad_boxes():
    codec = build_codec("udp", SCHEMA)
    runtime = PerfectRuntime(codec)
    predictor = TopDownPredictor(runtime, codec, nms_threshold=0.9)
    kpts = np.zeros((2, 17, 3))
    kpts[..., :2] = np.random.default_rng(0).uniform(60, 140, (17, 2))
    kpts[..., 2] = 2
    boxes = np.array([[50.0, 50.0, 150.0, 150.0], [51.0, 50.0, 151.0, 150.0]])  # one person twice
    runtime.kpts_img, runtime.matrices = kpts, predictor.matrices(boxes)
    image = np.zeros((200, 200, 3), np.uint8)
    poses = predictor.predict(image, boxes, box_scores=[0.5, 0.9])
    assert len(poses) == 1 and poses[0].keypoints[:, 2].mean() > 0.9  # the 0.9 box's pose, kept
    assert poses[0].score == pytest.approx(rescore(poses[0].keypoints[:, 2], 0.9))
    with pytest.raises(ConfigError, match="x2 > x1"):
        predictor.predict(image, np.array([[10.0, 10.0, 5.0, 20.0]]))
    with pytest.raises(ConfigError, match="2 box scores for 1 boxes"):
        runtime.matrices = predictor.matrices(boxes[:1])
        predictor.predict(image, boxes[:1], box_scores=[1.0, 1.0])
    assert predictor.predict(image, np.zeros((0, 4))) == []


def test_a_real_network_runs_every_crop_in_one_forward():
    model = build_model("topdown_tiny", SCHEMA)
    predictor = create_predictor(model, build_codec("udp", SCHEMA, input_size=(96, 128),
                                                    heatmap_size=(24, 32)), flip=True)  # fmt: skip
    assert isinstance(predictor, TopDownPredictor)
    boxes = np.array([[10.0, 20.0, 60.0, 120.0], [80.0, 10.0, 150.0, 140.0], [0, 0, 30, 30]])
    poses = predictor.predict(np.full((160, 160, 3), 100, np.uint8), boxes)
    assert len(poses) == 3 and all(p.keypoints.shape == (17, 3) for p in poses)
