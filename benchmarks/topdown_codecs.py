"""Top-down codecs: precision in image space, flip-test bias, and encode / decode time.

Usage: python benchmarks/topdown_codecs.py [--instances 64] [--repeats 20]

Every top-down codec of ``posekit.codecs.CODECS`` (and two decode variants) at 256 x 192 input
(64 x 48 heatmaps, 384 x 512 SimCC bins), schema coco_person. What a perfect network outputs
(``codec.perfect_outputs`` of its own targets) goes image -> crop -> encode -> decode -> the
crop matrix inverted -> image (``codecs.topdown.perfect_keypoints``), through random crops
(box padded 1.25, scale 0.7-1.4, rotation +-80 degrees) of:

- random people: uniform sub-pixel keypoints in random boxes;
- COCO-MINI val: the real boxes and keypoints of its 68 people.

Errors are input (crop) pixels: image-pixel errors times the crop's scale, of the keypoints inside
their crops; "beyond" is the mean error of those outside the crop but within the codec's ``reach``
(``codecs.topdown``: encoded as tails and extrapolated back by DARK and SimCC; MSRA's quarter step
and the argmax-only variants leave them on the border). The flip-test bias is
the mean signed x difference between the mirrored crop (encoded, ``unflip``-ped, decoded) and the
crop itself: the shift the flip test adds (MMPose's recipes, measured on its code: MSRA + heatmap
shift +0.23 px, DARK + shift +0.50 px, SimCC with sub-bin decoding +0.22 px, UDP 0).

Time: median over ``--repeats`` of encode and decode (to poses) of 32 instances x 17 keypoints.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import statistics
import time
from pathlib import Path

import numpy as np

from posekit.codecs import CODECS, build_codec
from posekit.codecs.heatmap import HeatmapDecodeConfig
from posekit.codecs.simcc import SimccDecodeConfig
from posekit.codecs.topdown import perfect_keypoints
from posekit.data.coco import CocoKeypointDataset
from posekit.geometry import box_to_center_size, crop_matrix
from posekit.schema import KeypointSchema

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SCHEMA = KeypointSchema.named("coco_person")
INPUT = (192, 256)


def _cpu() -> str:
    """The CPU model and whether it has AVX-512 (the two CPU classes of this project)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown CPU"
    model = next((ln.split(":", 1)[1].strip() for ln in info.splitlines()
                  if ln.startswith("model name")), "unknown CPU")  # fmt: skip
    flags = next((ln for ln in info.splitlines() if ln.startswith("flags")), "")
    return f"{model}, AVX-512 {'yes' if ' avx512f' in flags else 'no'}"


def _variants() -> list[tuple[str, object]]:
    """(label, codec) of every top-down codec, plus decode variants worth a row."""
    rows = [(name, build_codec(name, SCHEMA)) for name, cls in CODECS.items()
            if cls.family == "topdown"]  # fmt: skip
    dark = build_codec("dark", SCHEMA)
    rows.append(
        (
            "float centre, quarter step",
            dataclasses.replace(dark, decode_config=HeatmapDecodeConfig(refine="quarter")),
        )
    )
    rows.append(
        (
            "float centre, argmax only",
            dataclasses.replace(dark, decode_config=HeatmapDecodeConfig(refine="none")),
        )
    )
    simcc = build_codec("simcc", SCHEMA)
    rows.append(
        (
            "simcc, argmax only",
            dataclasses.replace(simcc, decode_config=SimccDecodeConfig(refine=False)),
        )
    )
    return rows  # fmt: skip


def _people(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    corner = rng.uniform(0, 400, (n, 2))
    boxes = np.concatenate([corner, corner + rng.uniform(40, 300, (n, 2))], axis=1)
    kpts = np.full((n, SCHEMA.num_keypoints, 3), 2.0)
    frac = rng.uniform(0, 1, (n, SCHEMA.num_keypoints, 2))
    kpts[..., :2] = boxes[:, None, :2] + frac * (boxes[:, None, 2:] - boxes[:, None, :2])
    return kpts, boxes


def _coco() -> tuple[np.ndarray, np.ndarray]:
    ds = CocoKeypointDataset(DATA / "coco_mini/annotations/person_keypoints_val2017.json",
                             DATA / "coco_mini/images/val2017", check_images="none")  # fmt: skip
    kpts = np.concatenate([r.keypoints for r in ds.records]).astype(np.float64)
    return kpts, np.concatenate([r.boxes for r in ds.records]).astype(np.float64)


def _crops(boxes: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers, sizes = box_to_center_size(boxes, INPUT[0] / INPUT[1])
    scale = rng.uniform(0.7, 1.4, len(boxes))
    angle = rng.uniform(-80, 80, len(boxes))
    mats = np.stack([crop_matrix(c, s * f, INPUT, rotation_deg=a)
                     for c, s, f, a in zip(centers, sizes, scale, angle, strict=True)])  # fmt: skip
    return mats, INPUT[0] / (sizes[:, 0] * scale)


def _precision(codec, kpts: np.ndarray, boxes: np.ndarray) -> tuple[float, ...]:
    """(mean, max error, flip bias, mirrored mean error) of the keypoints inside their crops and
    the mean error of those beyond them within the reach (NaN: none), input px."""
    mats, px = _crops(boxes, seed=7)
    direct, encoded = perfect_keypoints(codec, kpts, mats)
    mirrored, encoded_m = perfect_keypoints(codec, kpts, mats, flip=True)
    crop = np.einsum("nij,nkj->nki", mats[:, :, :2], kpts[..., :2]) + mats[:, None, :, 2]
    in_crop = ((crop >= -0.5) & (crop < np.asarray(codec.input_size) - 0.5)).all(-1)
    d = (direct - kpts[..., :2]) * px[:, None, None]
    m = (mirrored - kpts[..., :2]) * px[:, None, None]
    dist = np.linalg.norm(d, axis=-1)
    err = dist[encoded & in_crop]
    beyond = dist[encoded & ~in_crop]
    both = encoded & encoded_m & in_crop
    bias = float((m - d)[..., 0][both].mean())
    mirrored_mean = float(np.linalg.norm(m, axis=-1)[both].mean())
    beyond_mean = float(beyond.mean()) if len(beyond) else float("nan")
    return float(err.mean()), float(err.max()), bias, mirrored_mean, beyond_mean


def _timing(codec, repeats: int) -> tuple[float, float]:
    """Median ms of encode and of decode (to poses) of 32 instances x 17 keypoints."""
    kpts = np.full((32, SCHEMA.num_keypoints, 3), 2.0)
    kpts[..., :2] = np.random.default_rng(0).uniform(5, 180, (32, SCHEMA.num_keypoints, 2))
    outputs = codec.perfect_outputs(codec.encode(kpts))
    enc, dec = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        codec.encode(kpts)
        enc.append(time.perf_counter() - start)
        start = time.perf_counter()
        codec.decode(*outputs)
        dec.append(time.perf_counter() - start)
    return 1e3 * statistics.median(enc), 1e3 * statistics.median(dec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=64, help="random people")
    parser.add_argument("--repeats", type=int, default=20, help="timed runs per codec")
    args = parser.parse_args()
    people, coco = _people(args.instances, seed=3), _coco()
    print(f"CPU: {_cpu()}; numpy {np.__version__}; input 192 x 256, schema coco_person")
    print(f"random people: {args.instances} x 17 keypoints; COCO-MINI val: {len(coco[0])} people\n")
    head = (f"{'codec':<28}{'random mean/max px':>20}{'COCO mean/max px':>19}"
            f"{'beyond rand/COCO':>18}{'flip bias px':>14}{'mirrored mean':>15}"
            f"{'encode ms':>11}{'decode ms':>11}")  # fmt: skip
    print(head)
    for label, codec in _variants():
        rand = _precision(codec, *people)
        real = _precision(codec, *coco)
        enc, dec = _timing(codec, args.repeats)
        print(f"{label:<28}{rand[0]:>10.4f}/{rand[1]:<9.4f}{real[0]:>9.4f}/{real[1]:<9.4f}"
              f"{rand[4]:>9.3f}/{real[4]:<8.3f}{real[2]:>+14.4f}{real[3]:>15.4f}"
              f"{enc:>11.2f}{dec:>11.2f}")  # fmt: skip
    print("\nencode / decode: per batch of 32 instances x 17 keypoints (divide by 32 per crop)")


if __name__ == "__main__":
    main()
