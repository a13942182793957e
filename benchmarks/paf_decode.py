"""PAF decoding: speed for 1-50 people at 368x368, and the round-trip AP ceiling on real data.

Usage: python benchmarks/paf_decode.py [--part all|speed|ap] [--repeats 20] [--scenes 8]
       [--skip-classic] [--quick]

Three decoders on the same maps, all in this one run (timings differ up to 3x between machines):

- ``low-res``: posekit's default: peaks at output resolution (stride 8) with log-parabola
  sub-pixel refinement, vectorized limb scoring, per-limb matching of maximum total score,
  component grouping + fragment merging ("greedy": OpenPose's greedy matching instead);
- ``x8``: the same grouping, peaks searched on heatmaps upsampled x8 (bicubic, as the classic one);
- ``classic``: a reference of the usual Python implementation (Lightweight OpenPose's
  ``extract_keypoints`` / ``group_keypoints``): heatmaps *and* PAFs upsampled x8, per-channel peak
  search, per-limb Python loops, instances grown from the first limb and never merged.

Speed: median decode time per image, synthetic figures (``data.synth``) of schema
coco_person_neck at 368x368 input, stride 8, sigma 7 (output 46x46), perfect maps.

Round trip: each image's ground truth is encoded at image resolution (padded to a multiple of
the stride), decoded and scored with ``evaluate_coco`` against the same file ("native"), or after
resizing the image to 368 pixels on its longer side ("368"). "all N images" scores every people
image (COCO-MINI val + train, mmpose_coco) as one set.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from posekit import KeypointSchema
from posekit.codecs.paf import PafCodec, PafDecodeConfig
from posekit.data.coco import CocoKeypointDataset
from posekit.data.synth import SynthConfig, generate_image, write_dataset
from posekit.engine.evaluate import evaluate_coco, perfect_map_poses, pool_ground_truth
from posekit.structures import Pose

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PEOPLE = [
    ("coco_mini val", "coco_mini/annotations/person_keypoints_val2017.json", "coco_mini/images/val2017"),
    ("coco_mini train", "coco_mini/annotations/person_keypoints_train2017.json", "coco_mini/images/train2017"),
    ("mmpose_coco", "mmpose_coco/test_coco.json", "mmpose_coco"),
]  # fmt: skip
CUSTOM = ["ap10k/test_ap10k.json", "animalpose/test_animalpose.json", "macaque/test_macaque.json",
          "atrw/test_atrw.json", "zebra/test_zebra.json", "locust/test_locust.json",
          "fly/test_fly.json"]  # fmt: skip
# figure size (fraction of 368) per people count, so that 50 figures still fit
SCALES = {1: (0.6, 0.8), 5: (0.3, 0.45), 20: (0.15, 0.25), 50: (0.1, 0.16)}


# ---------------------------------------------------------------------- classic reference
class ClassicDecoder:
    """Lightweight OpenPose's decoding, generalized to any schema's limb order (reference only)."""

    def __init__(self, codec: PafCodec, upsample: int = 8) -> None:
        self.codec, self.up = codec, upsample
        self.limbs = codec.schema.limbs

    def __call__(self, heatmaps: np.ndarray, pafs: np.ndarray) -> list[Pose]:
        k = self.codec.schema.num_keypoints
        hm = cv2.resize(heatmaps.transpose(1, 2, 0), None, fx=self.up, fy=self.up,
                        interpolation=cv2.INTER_CUBIC)  # fmt: skip
        pf = cv2.resize(pafs.transpose(1, 2, 0), None, fx=self.up, fy=self.up,
                        interpolation=cv2.INTER_CUBIC)  # fmt: skip
        peaks, total = [], 0
        for c in range(k):  # extract_keypoints
            found = self._extract(hm[:, :, c], total)
            peaks.append(found)
            total += len(found)
        all_peaks = np.array([p for per in peaks for p in per]).reshape(-1, 4)
        entries = self._group(peaks, all_peaks, pf)
        out = []
        for e in entries:
            kpts = np.zeros((k, 3), np.float32)
            for c in range(k):
                if e[c] >= 0:
                    x, y, s, _ = all_peaks[int(e[c])]
                    kpts[c] = [
                        (x - (self.up - 1) / 2) / self.up,
                        (y - (self.up - 1) / 2) / self.up,
                        s,
                    ]
            found = kpts[:, 2] > 0
            box = np.concatenate([kpts[found, :2].min(0), kpts[found, :2].max(0)])
            out.append(Pose(kpts, float(e[-2] * max(0, e[-1] - 1)), box.astype(np.float32)))
        return out

    @staticmethod
    def _extract(heatmap: np.ndarray, total: int) -> list[tuple[float, float, float, int]]:
        heatmap = np.where(heatmap < 0.1, 0, heatmap)
        b = np.pad(heatmap, 2, mode="constant")
        c = b[1:-1, 1:-1]
        is_max = (c > b[1:-1, :-2]) & (c > b[1:-1, 2:]) & (c > b[:-2, 1:-1]) & (c > b[2:, 1:-1])
        is_max = is_max[1:-1, 1:-1]
        ys, xs = np.nonzero(is_max)
        cand = sorted(zip(xs, ys, strict=True), key=lambda p: p[0])
        suppressed = np.zeros(len(cand), dtype=bool)
        out = []
        for i in range(len(cand)):
            if suppressed[i]:
                continue
            for j in range(i + 1, len(cand)):
                if np.hypot(cand[i][0] - cand[j][0], cand[i][1] - cand[j][1]) < 6:
                    suppressed[j] = True
            x, y = cand[i]
            out.append((float(x), float(y), float(heatmap[y, x]), total + len(out)))
        return out

    def _group(self, peaks, all_peaks, pafs):
        k = self.codec.schema.num_keypoints
        entries: list[np.ndarray] = []
        grid = np.arange(10, dtype=np.float32).reshape(1, -1, 1)
        for j, limb in enumerate(self.limbs):
            a_list, b_list = peaks[limb.src], peaks[limb.dst]
            if not a_list or not b_list:
                continue
            a = np.array([p[:2] for p in a_list], np.float32)
            b = np.array([p[:2] for p in b_list], np.float32)
            vec = (b[None] - a[:, None]).reshape(-1, 1, 2)
            pts = (
                (vec / 9 * grid + np.repeat(a, len(b), axis=0).reshape(-1, 1, 2))
                .round()
                .astype(int)
            )
            x = np.clip(pts[..., 0], 0, pafs.shape[1] - 1).ravel()
            y = np.clip(pts[..., 1], 0, pafs.shape[0] - 1).ravel()
            field = pafs[y, x, 2 * j : 2 * j + 2].reshape(-1, 10, 2)
            norm = np.linalg.norm(vec, axis=-1, keepdims=True)
            aff = (field * (vec / (norm + 1e-6))).sum(-1)
            valid = aff > 0.05
            score = (aff * valid).sum(1) / (valid.sum(1) + 1e-6)
            ok = np.nonzero((score > 0) & (valid.sum(1) / 10 > 0.8))[0]
            ai, bi = np.divmod(ok, len(b))
            order = np.argsort(-score[ok])
            used_a, used_b, conns = set(), set(), []
            for o in order:  # connections_nms
                if ai[o] not in used_a and bi[o] not in used_b:
                    used_a.add(ai[o])
                    used_b.add(bi[o])
                    conns.append((a_list[ai[o]][3], b_list[bi[o]][3], score[ok][o]))
            if not entries and not limb.extra:
                for pa, pb, s in conns:
                    e = -np.ones(k + 2)
                    e[limb.src], e[limb.dst] = pa, pb
                    e[-1], e[-2] = 2, all_peaks[[pa, pb], 2].sum() + s
                    entries.append(e)
            elif limb.extra:
                for pa, pb, s in conns:
                    for e in entries:
                        if e[limb.src] == pa and e[limb.dst] == -1:
                            e[limb.dst], e[-1], e[-2] = pb, e[-1] + 1, e[-2] + all_peaks[pb, 2] + s
                        elif e[limb.dst] == pb and e[limb.src] == -1:
                            e[limb.src], e[-1], e[-2] = pa, e[-1] + 1, e[-2] + all_peaks[pa, 2] + s
            else:
                for pa, pb, s in conns:
                    hit = False
                    for e in entries:
                        if e[limb.src] == pa:
                            e[limb.dst], e[-1], e[-2] = pb, e[-1] + 1, e[-2] + all_peaks[pb, 2] + s
                            hit = True
                    if not hit:
                        e = -np.ones(k + 2)
                        e[limb.src], e[limb.dst] = pa, pb
                        e[-1], e[-2] = 2, all_peaks[[pa, pb], 2].sum() + s
                        entries.append(e)
        return [e for e in entries if e[-1] >= 3 and e[-2] / e[-1] >= 0.2]


# ---------------------------------------------------------------------- speed
def _scenes(schema: KeypointSchema, codec: PafCodec, count: int, n: int) -> list:
    config = SynthConfig(num_images=1, image_size=(368, 368), min_instances=n, max_instances=n,
                         partial_prob=0.0, overlap_prob=0.3, scale_range=SCALES[n], clutter=0,
                         noise_std=0.0)  # fmt: skip
    out = []
    for seed in range(count):
        _, instances = generate_image(schema, np.random.default_rng(seed), config)
        kpts = np.zeros((len(instances), schema.num_keypoints, 3), np.float32)
        kpts[:, list(schema.real_indices)] = np.stack([i.keypoints for i in instances])
        out.append(codec.encode(schema.add_virtual(kpts), (368, 368)))
    return out


def _median_ms(decode, scenes, repeats: int) -> tuple[float, float]:
    times, found = [], []
    for t in scenes:
        decode(t.heatmaps, t.pafs)  # warm-up
        for _ in range(repeats):
            start = time.perf_counter()
            poses = decode(t.heatmaps, t.pafs)
            times.append(time.perf_counter() - start)
        found.append(len(poses))
    return 1e3 * statistics.median(times), float(np.mean(found))


def speed_table(args: argparse.Namespace) -> None:
    schema = KeypointSchema.named("coco_person_neck")
    codec = PafCodec(schema)
    decoders = {
        "low-res": lambda h, p: codec.decode(h, p),
        "x8": lambda h, p: codec.decode(h, p, config=PafDecodeConfig(upsample=8)),
    }
    if not args.skip_classic:
        decoders["classic"] = ClassicDecoder(codec)
    print("\nDecode time per image, 368x368 input (46x46 maps), median ms (mean instances found)")
    print(f"{'people':>6} " + " ".join(f"{name:>18}" for name in decoders))
    for n in SCALES:
        scenes = _scenes(schema, codec, args.scenes, n)
        cells = []
        for name, decode in decoders.items():
            reps = max(1, args.repeats // (10 if name == "classic" and n >= 20 else 1))
            ms, found = _median_ms(decode, scenes, reps)
            cells.append(f"{ms:9.2f} ({found:5.1f})")
        print(f"{n:>6} " + " ".join(f"{c:>18}" for c in cells))


# ---------------------------------------------------------------------- round trip
def _classic_poses(records, codec: PafCodec) -> dict[int, list[Pose]]:
    decode = ClassicDecoder(codec)
    to_input = codec.output_to_input_matrix()
    out = {}
    for rec in records:
        size = [int(np.ceil(v / codec.stride)) * codec.stride for v in (rec.width, rec.height)]
        t = codec.encode(rec.keypoints, (size[0], size[1]))
        poses = []
        for p in decode(t.heatmaps, t.pafs):
            k = p.keypoints.copy()
            k[:, :2] = k[:, :2] @ to_input[:, :2].T + to_input[:, 2]
            k[k[:, 2] == 0] = 0
            poses.append(Pose(k, min(1.0, p.score / 100.0), p.bbox))
        out[rec.image_id] = poses
    return out


def _row(label: str, ann, parts: list[tuple[CocoKeypointDataset, dict | None]],
         args: argparse.Namespace) -> None:  # fmt: skip
    """One table row: ``parts`` are (dataset, its image id -> ``ann``'s image id or None)."""
    schema = parts[0][0].schema
    codec = PafCodec(schema)
    cells = []
    variants = [(None, PafDecodeConfig()), (None, PafDecodeConfig(matching="greedy")),
                (None, PafDecodeConfig(upsample=8)), (368, PafDecodeConfig()),
                (368, PafDecodeConfig(upsample=8))]  # fmt: skip
    for side, config in variants:
        start, poses, count = time.perf_counter(), {}, 0
        for ds, ids in parts:
            found = perfect_map_poses(ds.records, codec, max_side=side, config=config)
            poses.update({(ids or {}).get(i, i): p for i, p in found.items()})
            count += len(ds.records)
        ms = 1e3 * (time.perf_counter() - start) / max(count, 1)
        ap = evaluate_coco(ann, poses, schema)["AP"]
        cells.append(f"{ap:.3f} {ms:6.1f}ms")
    if not args.skip_classic:
        poses = {}
        for ds, ids in parts:
            found = _classic_poses(ds.records, codec)
            poses.update({(ids or {}).get(i, i): p for i, p in found.items()})
        cells.append(f"{evaluate_coco(ann, poses, schema)['AP']:.3f}")
    print(f"{label:<34} " + " ".join(f"{c:>15}" for c in cells))


def round_trip_table(args: argparse.Namespace) -> None:
    print("\nRound-trip AP (perfect maps, stride 8, sigma 7) and mean encode+decode ms per image")
    head = ["native", "native greedy", "native x8", "368", "368 x8"]
    head += [] if args.skip_classic else ["native classic"]
    print(f"{'dataset / schema':<34} " + " ".join(f"{h:>15}" for h in head))
    pooled, id_maps = pool_ground_truth([DATA / ann for _, ann, _ in PEOPLE])
    for schema in ("coco_person", "coco_person_neck"):
        parts = []
        for (label, ann, images), ids in zip(PEOPLE, id_maps, strict=True):
            ds = CocoKeypointDataset(DATA / ann, DATA / images, schema=schema, check_images="none")
            _row(f"{label} / {schema}", DATA / ann, [(ds, None)], args)
            parts.append((ds, ids))
        _row(f"all {len(pooled['images'])} images / {schema}", pooled, parts, args)
    for ann in CUSTOM:
        path = DATA / "custom" / ann
        ds = CocoKeypointDataset(path, path.parent, check_images="none")
        _row(f"{ann.split('/')[0]} ({ds.schema.num_keypoints} kpts)", path, [(ds, None)], args)
    tmp = Path(tempfile.mkdtemp(prefix="posekit_bench_"))
    crowd = SynthConfig(num_images=args.crowd_images, image_size=(368, 368), min_instances=6,
                        max_instances=8, partial_prob=0.0, overlap_prob=0.4, clutter=0,
                        noise_std=0.0, scale_range=(0.3, 0.45), seed=1)  # fmt: skip
    schemas = {"coco_person": KeypointSchema.named("coco_person")}
    for ann in ("ap10k/test_ap10k.json", "atrw/test_atrw.json"):
        category = json.loads((DATA / "custom" / ann).read_text())["categories"][0]
        schemas[ann.split("/")[0]] = KeypointSchema.from_coco(category)
    for name, schema in schemas.items():
        gt = write_dataset(tmp / name, schema, crowd, progress=False)
        ds = CocoKeypointDataset(gt, tmp / name / "images" / "train", schema=schema)
        _row(f"synthetic crowd 6-8 / {name}", gt, [(ds, None)], args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20, help="timed decodes per scene")
    parser.add_argument("--scenes", type=int, default=8, help="synthetic scenes per people count")
    parser.add_argument("--crowd-images", type=int, default=20, help="images per synthetic crowd")
    parser.add_argument("--skip-classic", action="store_true", help="omit the reference decoder")
    parser.add_argument("--quick", action="store_true", help="fewer scenes and repeats")
    parser.add_argument("--part", choices=("all", "speed", "ap"), default="all")
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.scenes, args.crowd_images = 3, 2, 4
    logging.basicConfig(level=logging.ERROR)  # schemas without sigmas warn; not news here
    cv2.setNumThreads(1)  # the decoders are single-threaded; keep cv2.resize comparable
    if args.part in ("all", "speed"):
        speed_table(args)
    if args.part in ("all", "ap"):
        round_trip_table(args)


if __name__ == "__main__":
    main()
