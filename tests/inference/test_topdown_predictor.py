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
from posekit.inference import TopDownPredictor, create_predictor
from posekit.inference.topdown import perfect_crop_outputs
from posekit.models.zoo import build_model
from posekit.oks import oks, rescore
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
        flip = len(batch) == 2 * len(self.matrices)  # the flip test's mirrored crops follow
        return perfect_crop_outputs(self.codec, self.kpts_img, self.matrices, flip=flip)


@pytest.fixture(scope="module")
def coco_val():
    return CocoKeypointDataset(DATA / "coco_mini/annotations/person_keypoints_val2017.json",
                               DATA / "coco_mini/images/val2017")  # fmt: skip


@pytest.mark.parametrize(
    ("name", "flip", "reach", "ap"),
    [("udp", True, 0.2, 0.999), ("rle", True, 0.2, 0.999), ("simcc", False, 0.2, 0.985),
     ("udp", False, 0.0, 0.98)],
)  # fmt: skip
def test_a_perfect_network_scores_the_codec_on_real_photos_with_gt_boxes(
    coco_val, name, flip, reach, ap
):
    """Every labelled keypoint inside its padded ground-truth box comes back to < 0.01 px. The 5
    labelled outside it (ankles below an upper-body box) come back too within the codecs'
    default reach (SimCC's labels of the farthest ones are below MIN_TARGET); with reach 0 they
    cannot, and cost ~1.7 % AP."""
    codec = build_codec(name, SCHEMA, reach=reach)
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
            if reach and name != "simcc":  # every labelled one lies within the reach
                inside = kpts[:, 2] > 0
            dist = np.linalg.norm(
                np.stack([p.keypoints[:, :2] for p in found]) - kpts[:, :2], axis=-1
            )
            best = np.argmin(np.where(inside, dist, 0).sum(1))  # the pose of this instance
            errors.append(dist[best][inside])
    # one forward per image, every crop in it (and the mirrored ones)
    assert all(shape[0] in (n, 2 * n) for shape, n in zip(runtime.batches, [
        r.num_instances for r in coco_val.records if r.num_instances], strict=True))  # fmt: skip
    assert np.concatenate(errors).max() < 0.01 and outside == 5
    metrics = evaluate_coco(coco_val.ann_file, poses, SCHEMA)
    assert metrics["AP"] >= ap, metrics
    if not reach:
        assert metrics["AP"] < 0.99  # what the reach brings back


def test_what_the_perfect_network_misses_lies_outside_the_padded_boxes(coco_val):
    """With boxes padded 2x instead of 1.25x, every labelled keypoint is inside its crop and the
    perfect network's AP is 1 also with reach 0: the 1.7 % of the test above is the padding, not
    the pipeline."""
    codec = build_codec("udp", SCHEMA, reach=0.0)
    runtime = PerfectRuntime(codec)
    predictor = TopDownPredictor(runtime, codec, flip=False, padding=2.0)
    poses = {}
    for i, rec in enumerate(coco_val.records):
        runtime.kpts_img, runtime.matrices = rec.keypoints, predictor.matrices(rec.boxes)
        found = predictor.predict(coco_val.load_image(i), rec.boxes) if rec.num_instances else []
        poses[rec.image_id] = found
    assert evaluate_coco(coco_val.ann_file, poses, SCHEMA)["AP"] >= 0.999


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
    codec = build_codec("udp", SCHEMA, input_size=(96, 128), heatmap_size=(24, 32))
    model = build_model("topdown_tiny", SCHEMA, codec=codec)
    predictor = create_predictor(model, codec, flip=True)
    assert isinstance(predictor, TopDownPredictor)
    boxes = np.array([[10.0, 20.0, 60.0, 120.0], [80.0, 10.0, 150.0, 140.0], [0, 0, 30, 30]])
    poses = predictor.predict(np.full((160, 160, 3), 100, np.uint8), boxes)
    assert len(poses) == 3 and all(p.keypoints.shape == (17, 3) for p in poses)


def test_perfect_proposals_refined_by_a_perfect_top_down_network(coco_val):
    """Perfect PAF maps -> bottom-up poses -> proposal boxes -> crops -> a perfect top-down
    network -> poses: the no-detector pipeline on the real photos beats the bottom-up poses it
    starts from (single-keypoint proposals make no crop and are kept). A perfect top-down network
    returns, for a proposal's crop, the targets of the person the proposal found (its pose's
    best-OKS instance)."""
    from posekit.codecs.paf import PafCodec
    from posekit.engine.evaluate import perfect_map_poses
    from posekit.inference.boxes import BoxedPredictor, ProposalBoxes

    proposals = perfect_map_poses(coco_val.records, PafCodec(SCHEMA))
    codec = build_codec("udp", SCHEMA)
    runtime = PerfectRuntime(codec)

    class Recording(TopDownPredictor):  # the runtime sees the crops' matrices
        def matrices(self, boxes_xyxy: np.ndarray) -> np.ndarray:
            runtime.matrices = super().matrices(boxes_xyxy)
            return runtime.matrices

    class BottomUp:  # the perfect bottom-up model's poses of the image being predicted
        poses: list = []

        def predict(self, image: np.ndarray) -> list:
            return self.poses

    bottom_up = BottomUp()
    pipeline = BoxedPredictor(Recording(runtime, codec, flip=True, nms_threshold=0.9),
                              ProposalBoxes(bottom_up))  # fmt: skip
    poses = {}
    for i, rec in enumerate(coco_val.records):
        bottom_up.poses = proposals[rec.image_id]
        boxed = [p for p in bottom_up.poses if (p.keypoints[:, 2] > 0).sum() >= 2]
        if boxed:
            overlap = oks(np.stack([p.keypoints for p in boxed]), rec.keypoints, rec.areas, SCHEMA)
            runtime.kpts_img = rec.keypoints[np.argmax(overlap.reshape(len(boxed), -1), axis=1)]
        poses[rec.image_id] = pipeline.predict(coco_val.load_image(i), rec.image_id)
        assert len(poses[rec.image_id]) <= len(bottom_up.poses)
    bottom_up_ap = evaluate_coco(coco_val.ann_file, proposals, SCHEMA)["AP"]
    metrics = evaluate_coco(coco_val.ann_file, poses, SCHEMA)
    # measured 0.969 vs the perfect bottom-up's 0.962: the refinement fixes keypoints, not the
    # grouping's merged people (the crop of a pose spanning two people refines to one of them)
    assert metrics["AP"] > bottom_up_ap >= 0.95 and metrics["AP"] >= 0.96, (metrics, bottom_up_ap)


def test_priors_give_each_keypoint_the_better_scoring_estimate(coco_val):
    """``predict(..., priors=)``: where the prior (a proposal's bottom-up pose) scores a keypoint
    higher than the crop does, that keypoint is the prior's; the rest are the crop's."""
    codec = build_codec("udp", SCHEMA)
    runtime = PerfectRuntime(codec)
    predictor = TopDownPredictor(runtime, codec, flip=False)
    i = next(i for i, r in enumerate(coco_val.records) if r.num_instances == 1)
    rec = coco_val.records[i]
    runtime.kpts_img, runtime.matrices = rec.keypoints, predictor.matrices(rec.boxes)
    (plain,) = predictor.predict(coco_val.load_image(i), rec.boxes)
    prior_kpts = plain.keypoints.copy()
    prior_kpts[:, :2] += 5.0
    prior_kpts[:, 2] = np.where(np.arange(SCHEMA.num_keypoints) < 5, 2.0, 0.0)  # beats the nose..ears
    prior = type(plain)(prior_kpts, 0.3, plain.bbox)
    (merged,) = predictor.predict(coco_val.load_image(i), rec.boxes, priors=[prior])
    np.testing.assert_array_equal(merged.keypoints[:5], prior_kpts[:5])
    np.testing.assert_array_equal(merged.keypoints[5:], plain.keypoints[5:])
    assert merged.score == pytest.approx(merged.keypoints[:, 2].mean())
    found = merged.keypoints[merged.keypoints[:, 2] > 0, :2]
    np.testing.assert_allclose(merged.bbox, [*found.min(0), *found.max(0)], rtol=1e-6)
    with pytest.raises(ConfigError, match="2 prior poses for 1 boxes"):
        predictor.predict(coco_val.load_image(i), rec.boxes, priors=[prior, prior])
