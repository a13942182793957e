"""Deployment, measured: what int8 costs and how fast an exported file starts.

1. A trained checkpoint exported to ONNX float32 and int8: val AP of torch, ONNX Runtime float32
   and int8 on the run's synthetic val set (flip test, as training validates), OKS agreement of
   int8 with float32 poses on real COCO-MINI photos, and the network time of each on this CPU
   (int8 is fast with VNNI, possibly slower without).
2. Start-up: wall time of a fresh ``posekit predict`` process on one photo, from process start
   to the results written (the first image out), for the ONNX file (ONNX Runtime, torch never
   imported) and for the checkpoint (torch), median of ``--starts`` runs.

Usage: python benchmarks/deploy.py [--run runs/demo] [--checkpoint FILE] [--threads 2]
       [--calibration 64] [--float-heads] [--photos 32] [--starts 5]

``--run`` is a ``posekit train`` run directory (default ``runs/demo``, the README's main job): its
``best.pt`` and its synthetic data (``synth/``: calibration on its train images, AP on its val
set). The numbers printed go to the README's deployment section.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from topdown_speed import machine  # noqa: E402

from posekit.data.coco import CocoKeypointDataset  # noqa: E402
from posekit.data.images import list_images  # noqa: E402
from posekit.engine.evaluate import evaluate_coco, predict_dataset  # noqa: E402
from posekit.export import export_model  # noqa: E402
from posekit.export_parity import check_parity  # noqa: E402
from posekit.models.loading import load_model  # noqa: E402

COCO_VAL = Path(__file__).resolve().parents[1].parent / "shared/data/coco_mini/images/val2017"


def _ap(predictor, ann: Path, images: Path, schema) -> tuple[float, float]:
    """COCO OKS AP and seconds of ``predictor`` on a dataset."""
    dataset = CocoKeypointDataset(ann, images, schema=schema, strict=False)
    result = predict_dataset(lambda im, _: predictor.predict(im), dataset, progress=False)
    metrics = evaluate_coco(ann, result.poses, schema, image_ids=result.poses.keys())
    return metrics["AP"], result.seconds


def _network_ms(predictor, x: np.ndarray, repeats: int = 30) -> float:
    predictor.runtime.run(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        predictor.runtime.run(x)
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path("runs/demo"))
    parser.add_argument("--checkpoint", type=Path, help="default: RUN/best.pt")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--calibration", type=int, default=64, help="calibration images")
    parser.add_argument("--float-heads", action="store_true")
    parser.add_argument("--photos", type=int, default=32, help="COCO-MINI val photos")
    parser.add_argument("--starts", type=int, default=5, help="processes timed for start-up")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    ckpt = args.checkpoint or args.run / "best.pt"
    synth = args.run / "synth"
    print(f"{machine()}; {args.threads} threads")
    loaded = load_model(ckpt)
    schema = loaded.schema
    train_images = list_images(synth / "images" / "train")[: args.calibration]
    calibration = [cv2.imread(str(p)) for p in train_images]
    photos = [cv2.imread(str(p)) for p in list_images(COCO_VAL)[: args.photos]]
    folder = Path(tempfile.mkdtemp(prefix="posekit_int8_"))
    fp32 = export_model(loaded, folder / "fp32.onnx", photos=photos[:4])
    int8 = export_model(loaded, folder / "int8.onnx", photos=photos[:4], int8=True,
                        calibration=calibration, float_heads=args.float_heads)  # fmt: skip
    print(
        f"checkpoint {ckpt}; export fp32 {fp32.seconds:.1f} s, int8 {int8.seconds:.1f} s "
        f"({len(calibration)} calibration images of the run's training set)"
    )
    settings = {"threads": args.threads}
    predictors = {
        "torch": loaded.predictor(flip=True),
        "ONNX Runtime fp32": load_model(fp32.path).predictor(flip=True, runtime_settings=settings),
        "ONNX Runtime int8": load_model(int8.path).predictor(flip=True, runtime_settings=settings),
    }
    ann, images = synth / "annotations" / "val.json", synth / "images" / "val"
    h = loaded.input_height
    x = np.random.default_rng(0).standard_normal((1, h, h, 3)).astype(np.float32)
    rows = {}
    print(f"\nval AP on {ann} (flip test), network ms at {h}x{h}, batch 1")
    print(f"  {'runtime':<20} {'val AP':>7} {'s':>6} {'network ms':>11}")
    for name, predictor in predictors.items():
        ap, seconds = _ap(predictor, ann, images, schema)
        ms = _network_ms(predictor, x)
        rows[name] = {"AP": ap, "network_ms": ms}
        print(f"  {name:<20} {ap:7.4f} {seconds:6.1f} {ms:11.2f}")
    delta = rows["ONNX Runtime fp32"]["AP"] - rows["ONNX Runtime int8"]["AP"]
    print(
        f"  int8 cost: delta AP {delta:+.4f} (goal <= 0.01), network "
        f"x{rows['ONNX Runtime fp32']['network_ms'] / rows['ONNX Runtime int8']['network_ms']:.2f}"
        " the speed of fp32"
    )
    fp32_p = load_model(fp32.path).predictor(runtime_settings=settings)
    int8_p = load_model(int8.path).predictor(runtime_settings=settings)
    report = check_parity(fp32_p, int8_p, photos, fp32.info.input, loaded.input_spec)
    print(
        f"\nint8 vs fp32 poses on {report.images} COCO-MINI val photos: OKS agreement "
        f"{report.oks_agreement:.4f}, {report.poses} fp32 poses, "
        f"{report.pose_count_mismatches} photos with another pose count"
    )
    rows["oks_agreement_photos"] = report.oks_agreement
    images = {"the run's val image 1": list_images(synth / "images" / "val")[0],
              "a COCO-MINI photo": list_images(COCO_VAL)[0]}  # fmt: skip
    rows["startup_s"] = startup(fp32.path, ckpt, images, runs=args.starts, threads=args.threads)
    print(json.dumps(rows))


def startup(onnx_file: Path, checkpoint: Path, images: dict[str, Path], *, runs: int,
            threads: int) -> dict[str, float]:  # fmt: skip
    """Median seconds from process start to the first image's results, per model and image.

    The PAF decoder loads ``scipy.optimize`` (~0.6 s) only for a contested limb with more
    matchings than it enumerates (``paf_limbs.EXHAUSTIVE_MAX``); the line says whether the image
    needed it."""
    out = {}
    print(f"\nstart-up: `posekit predict IMAGE --json OUT` in a new process, median of {runs}")
    models = (("ONNX Runtime (.onnx)", onnx_file), ("torch (checkpoint)", checkpoint))
    for (name, model), (what, image) in itertools.product(models, images.items()):
        times, solver = [], False
        for _ in range(runs):
            with tempfile.TemporaryDirectory() as folder:
                code = ("import sys; from posekit.cli import main; rc = main(sys.argv[1:]); "
                        "print('scipy.optimize' in sys.modules); sys.exit(rc)")  # fmt: skip
                argv = [sys.executable, "-c", code, "predict", str(image), "--checkpoint",
                        str(model), "--json", f"{folder}/r.json", "--threads", str(threads)]  # fmt: skip
                start = time.perf_counter()
                done = subprocess.run(argv, check=True, capture_output=True, text=True)
                times.append(time.perf_counter() - start)
                solver = done.stdout.strip().endswith("True")
        out[f"{name}, {what}"] = statistics.median(times)
        print(f"  {name:<22} {what:<24} {statistics.median(times):5.2f} s "
              f"({'scipy.optimize loaded' if solver else 'no solver needed'})")  # fmt: skip
    print("  goal for .onnx: < 1 s")
    return out


if __name__ == "__main__":
    main()
