"""Samples/s of load + augment at 368x368 on one worker (real COCO-MINI photos).

Usage: python benchmarks/data_pipeline.py [--samples 300] [--size 368] [--schema coco_person_neck]

Prints the per-stage time (image decode, ignore mask, augmentation) and the end-to-end rate of
``CocoKeypointDataset.__getitem__`` with ``RandomAffine``, run in this one process (= one worker).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from posekit.data.coco import CocoKeypointDataset
from posekit.data.transforms import AugmentConfig, RandomAffine

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "coco_mini"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--size", type=int, default=368)
    parser.add_argument("--schema", default="coco_person_neck")
    parser.add_argument("--threads", type=int, default=1, help="OpenCV threads (1 = one worker)")
    args = parser.parse_args()
    cv2.setNumThreads(args.threads)

    config = AugmentConfig(input_size=(args.size, args.size))
    datasets = [
        CocoKeypointDataset(
            SHARED / f"annotations/person_keypoints_{split}2017.json",
            SHARED / f"images/{split}2017",
            schema=args.schema,
        )
        for split in ("train", "val")
    ]
    for ds in datasets:
        ds.transform = RandomAffine(ds.schema, config)
    items = [(ds, i) for ds in datasets for i in range(len(ds))]

    def run(step) -> float:
        start = time.perf_counter()
        for n in range(args.samples):
            ds, i = items[n % len(items)]
            step(ds, i, n)
        return (time.perf_counter() - start) / args.samples

    run(lambda ds, i, n: ds[i])  # warm-up: page cache, lazy imports
    t_read = run(lambda ds, i, n: ds.load_image(i))
    t_mask = run(lambda ds, i, n: ds.records[i].ignore_mask())
    images = {(id(ds), i): ds.load_image(i) for ds, i in items}
    masks = {(id(ds), i): ds.records[i].ignore_mask() for ds, i in items}

    def augment(ds, i, n):
        ds.transform(
            images[(id(ds), i)],
            ds.records[i].keypoints,
            masks[(id(ds), i)],
            np.random.default_rng(n),
        )

    t_aug = run(augment)
    t_total = run(lambda ds, i, n: ds[i])
    sizes = np.array([r.width * r.height for ds in datasets for r in ds.records])
    print(
        f"data pipeline: {len(items)} COCO-MINI images (mean {sizes.mean() / 1e3:.0f} kpx), "
        f"input {args.size}x{args.size}, schema {args.schema}, {args.samples} samples, "
        f"OpenCV threads {args.threads}"
    )
    print(f"  {'stage':<28}{'ms/sample':>10}")
    for name, t in (
        ("decode JPEG", t_read),
        ("ignore mask (pycocotools)", t_mask),
        ("augment (jitter + warp)", t_aug),
        ("total __getitem__", t_total),
    ):
        print(f"  {name:<28}{t * 1e3:>10.2f}")
    print(f"  samples/s (load + augment, one worker): {1.0 / t_total:.1f}")


if __name__ == "__main__":
    main()
