"""No detector needed: bottom-up proposals refined by a top-down model against the bottom-up model
alone, on one synthetic val set.

Usage: python benchmarks/proposals.py [--bottomup CKPT] [--topdown CKPT] [--out DIR]
       [--ann VAL.json --images VAL_DIR] [--no-flip] [--nms 0.9] [--padding P]
       [--threads N] [--quiet]

Models: posekit checkpoints of one schema. A model not given is trained first, into ``--out``
(default a new temporary directory), with its benchmark's recipe (``benchmarks/_common.py``'s
timed run, its report printed): the bottom-up one with ``train_synthetic.py``'s (``paf_tiny``,
``posekit train``'s defaults), the top-down one with ``train_topdown.py``'s (``topdown_tiny``)
plus ``REFINER`` (width 64, bfloat16 where native, 30 epochs);
both recipes use the default synthetic ``coco_person`` data (``data.synth``, same seed), so they
train on the same images.

Val set: the bottom-up model's synthetic val split, the one its training validated on (its run's
``synth/`` files, or written again from the settings in its checkpoint), unless ``--ann`` /
``--images`` name another. The script says whether the top-down model was trained on the same
synthetic settings or on others.

Printed, on that one val set (COCO OKS AP / AR with pycocotools; flip test unless ``--no-flip``):

- (a) the bottom-up model alone (``BottomUpPredictor`` at its training input height);
- (b) bottom-up proposals -> top-down: ``BoxedPredictor(top-down, ProposalBoxes(bottom-up))``:
  each bottom-up pose's keypoint box is a person box of the top-down model, each keypoint the
  better-scoring of the two models' estimates, rescored by the pose's score, duplicates removed
  by OKS-NMS at ``--nms`` (``posekit eval --proposals``' defaults);
- (b') the same with the top-down model's keypoints only (``--no-merge``);
- (c) the top-down model on the ground-truth boxes: the ceiling of (b) (no NMS, as its training
  validation runs);

each with poses/image and ms/image (median of the predictor's calls, image decoding excluded, after one
warm-up image; (b) includes the bottom-up pass). Then the proposals against the ground-truth
boxes: boxes per image, the share of people with a proposal of IoU >= 0.5 / 0.7, and the median
side ratio proposal / ground truth (below 1: proposals tighter than the boxes the top-down model
was trained on). The header names the CPU, ISA caps and load (``_common.machine_lines``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import train_synthetic
import train_topdown
from _common import (
    add_val_args,
    machine_lines,
    print_report,
    start_val_run,
    synth_settings,
    synth_val_set,
    timed_run,
)

from posekit.data.coco import CocoKeypointDataset, ImageRecord
from posekit.engine.evaluate import evaluate_coco, predict_dataset
from posekit.errors import ConfigError
from posekit.inference.boxes import BoxedPredictor, ProposalBoxes, pose_boxes
from posekit.models.loading import load_model
from posekit.structures import Pose

Predict = Callable[[np.ndarray, ImageRecord], list[Pose]]


@dataclass(frozen=True)
class _Scored:
    """One way of predicting, scored on the val set."""

    name: str
    metrics: dict[str, float]
    poses: dict[int, list[Pose]]
    ms_per_image: float


REFINER: tuple[str, ...] = (
    "model.options.width=64",
    "train.amp=true",
    "train.epochs=30",
)
"""Added to ``train_topdown.py``'s recipe for the top-down model trained here: the refiner must be
more precise than the bottom-up model it refines, and ``topdown_tiny`` at width 32 in 15 minutes
once was not (val AP 0.762 with ground-truth boxes against the bottom-up model's 0.826; at width
64 with the one-level skip head and 24 x 32 maps, 30 epochs, it reached 0.819). Now width 64 on
that recipe's 48 x 64 maps and two-level skip head, bfloat16 where native."""


def _train(name: str, recipe: Any, out: Path, quiet: bool, extra: tuple[str, ...] = ()) -> Path:
    """Train one model with its benchmark's recipe (``recipe.RECIPE``, ``TARGET``, ``ITEMS``) and
    ``extra`` overrides into ``out/name``; its best checkpoint."""
    overrides = (*recipe.RECIPE, *extra)
    print(f"\n== training the {name} model: {' '.join(overrides) or 'posekit train defaults'}")
    run = timed_run(overrides, out / name, progress=not quiet)
    print_report(run, recipe.TARGET, recipe.ITEMS)
    return run.out / "best.pt"


def _score(name: str, predict: Predict, dataset: CocoKeypointDataset, ann: Path) -> _Scored:
    """Poses of every val image by ``predict`` (timed per call after a warm-up), COCO metrics."""
    predict(dataset.load_image(0), dataset.records[0])  # oneDNN primitives, caches
    seconds: list[float] = []

    def timed(image: np.ndarray, record: ImageRecord) -> list[Pose]:
        start = time.perf_counter()
        poses = predict(image, record)
        seconds.append(time.perf_counter() - start)
        return poses

    result = predict_dataset(timed, dataset, progress=False)
    metrics = evaluate_coco(ann, result.poses, dataset.schema, image_ids=result.poses.keys())
    return _Scored(name, metrics, result.poses, 1e3 * float(np.median(seconds)))


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(M, N) IoU of xyxy boxes (M, 4) and (N, 4)."""
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None] - inter, 1e-9)


def _proposal_lines(bottomup: _Scored, dataset: CocoKeypointDataset) -> list[str]:
    """How the bottom-up poses' boxes (the proposals of (b)) cover the ground-truth boxes."""
    counts, best_iou, ratios = [], [], []
    for rec in dataset.records:
        boxes = pose_boxes(bottomup.poses.get(rec.image_id, [])).xyxy
        counts.append(len(boxes))
        if not rec.num_instances or not len(boxes):
            best_iou.append(np.zeros(rec.num_instances))
            continue
        gt = rec.boxes.astype(np.float64)
        iou = _iou(gt, boxes)
        best_iou.append(iou.max(1))
        hit = iou.max(1) >= 0.5
        match = boxes[iou.argmax(1)][hit]
        ratios.append(np.sqrt(np.prod(match[:, 2:] - match[:, :2], axis=1)
                              / np.prod(gt[hit, 2:] - gt[hit, :2], axis=1)))  # fmt: skip
    best = np.concatenate(best_iou)
    lines = [
        f"proposals: {np.mean(counts):.2f} boxes/image for {len(best) / len(counts):.2f} people/"
        f"image; people with a proposal of IoU >= 0.5: {np.mean(best >= 0.5):.1%}, >= 0.7: "
        f"{np.mean(best >= 0.7):.1%}, median best IoU {np.median(best):.2f}"
    ]
    ratio = np.concatenate(ratios) if ratios else np.zeros(0)
    if len(ratio):
        lines.append(
            f"proposal / ground-truth box side (sqrt of the areas, IoU >= 0.5), median "
            f"{np.median(ratio):.2f} (p10 {np.percentile(ratio, 10):.2f}, p90 "
            f"{np.percentile(ratio, 90):.2f}); the top-down model trained on ground-truth boxes"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bottomup", type=Path, help="bottom-up checkpoint (default: train one)")
    parser.add_argument("--topdown", type=Path, help="top-down checkpoint (default: train one)")
    parser.add_argument("--out", type=Path, help="where models are trained (default: a temp dir)")
    add_val_args(parser, "bottom-up's")
    parser.add_argument("--nms", type=float, default=0.9, help="(b): OKS-NMS threshold, 0: off")
    parser.add_argument("--padding", type=float, help="top-down box padding (default: model's)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args()
    start_val_run(parser, args)
    out = args.out or Path(tempfile.mkdtemp(prefix="posekit-proposals-"))
    bu_path = args.bottomup or _train("bottomup", train_synthetic, out, args.quiet)
    td_path = args.topdown or _train("topdown", train_topdown, out, args.quiet, REFINER)
    bu_model, td_model = load_model(bu_path), load_model(td_path)
    if (bu_model.family, td_model.family) != ("bottomup", "topdown"):
        raise ConfigError(f"--bottomup {bu_path} is {bu_model.family}, --topdown {td_path} is "
                          f"{td_model.family}: expected bottomup and topdown")  # fmt: skip
    if bu_model.schema != td_model.schema:
        raise ConfigError(f"the models' schemas differ: {bu_model.schema.name} (bottom-up), "
                          f"{td_model.schema.name} (top-down)")  # fmt: skip
    ann, images = (
        (args.ann, args.images) if args.ann else synth_val_set(bu_path, bu_model.schema, out)
    )
    dataset = CocoKeypointDataset(ann, images, schema=bu_model.schema, strict=False)

    print(f"\nbottom-up: {bu_path}\ntop-down:  {td_path}")
    bu_synth, td_synth = synth_settings(bu_path), synth_settings(td_path)
    if td_synth is None or bu_synth is None:
        print("one of the models was not trained on synthetic data")
    elif td_synth == bu_synth:
        print(f"both trained on the same synthetic data (data.synth, seed {bu_synth['seed']})")
    else:
        keys = sorted(k for k in bu_synth if bu_synth[k] != td_synth.get(k))
        print("the top-down model was trained on other synthetic settings: "
              + ", ".join(f"{k} {td_synth.get(k)} (bottom-up {bu_synth[k]})" for k in keys))  # fmt: skip
    print(f"val set: {ann} ({len(dataset)} images, "
          f"{sum(r.num_instances for r in dataset.records)} people)")  # fmt: skip

    flip = not args.no_flip
    bottomup = bu_model.predictor(flip=flip)
    nms = args.nms if args.nms > 0 else None
    refiner = td_model.predictor(flip=flip, padding=args.padding, nms_threshold=nms)
    boxed = BoxedPredictor(refiner, ProposalBoxes(bottomup))
    replaced = BoxedPredictor(refiner, ProposalBoxes(bottomup, merge=False))
    topdown = td_model.predictor(flip=flip, padding=args.padding)
    scored = [
        _score("(a) bottom-up alone", lambda image, _: bottomup.predict(image), dataset, ann),
        _score("(b) bottom-up proposals -> top-down",
               lambda image, rec: boxed.predict(image, rec.image_id), dataset, ann),
        _score("(b') the same, top-down keypoints only",
               lambda image, rec: replaced.predict(image, rec.image_id), dataset, ann),
        _score("(c) top-down, ground-truth boxes",
               lambda image, rec: topdown.predict(image, rec.boxes) if len(rec.boxes) else [],
               dataset, ann),
    ]  # fmt: skip

    print(f"\nflip test {'on' if flip else 'off'}; (b): OKS-NMS {nms}, padding "
          f"{boxed.topdown.padding:g}")  # fmt: skip
    keys = ("AP", "AP50", "AP75", "APm", "AR", "AR50", "AR75")
    width = max(len(s.name) for s in scored)
    print(f"{'':<{width}} " + " ".join(f"{k:>6}" for k in keys) + " poses/im ms/image")
    for s in scored:
        n = max(len(s.poses), 1)
        print(f"{s.name:<{width}} " + " ".join(f"{s.metrics[k]:6.3f}" for k in keys)
              + f" {sum(map(len, s.poses.values())) / n:8.2f} {s.ms_per_image:8.1f}")  # fmt: skip
    for line in _proposal_lines(scored[0], dataset):
        print(line)
    gain = scored[1].metrics["AP"] - scored[0].metrics["AP"]
    print(
        f"(b) - (a): AP {gain:+.3f}: proposals + top-down "
        f"{'beat' if gain > 0 else 'do not beat'} the bottom-up model alone"
    )
    print(machine_lines()[-1])
    return 0 if gain > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
