"""``posekit export``: a checkpoint (or a published model) as a self-describing ONNX or
TorchScript file, checked against the torch model before it is written (``posekit.export``)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from posekit.errors import ConfigError

logger = logging.getLogger("posekit")

PARITY_PHOTOS = 8
"""Photos of ``--parity-images`` used by the gate (beside synthetic images of the schema)."""

SYNTHETIC_CALIBRATION = 64
"""Synthetic calibration images when ``--int8`` is given without ``--calibration``."""


def _images(folder: str | None, limit: int) -> list[Any]:
    """Up to ``limit`` BGR images of ``folder`` (none without a folder)."""
    if folder is None:
        return []
    from posekit.data.images import list_images, read_image

    paths = list_images(folder)
    if not paths:
        raise ConfigError(f"{folder}: no images (.jpg, .png, ...) in this folder")
    return [read_image(p) for p in paths[:limit]]


def _cmd_export(args: argparse.Namespace) -> int:
    from posekit.export import export_model
    from posekit.export_parity import parity_images
    from posekit.models.exported import ExportedModel
    from posekit.models.loading import load_model
    from posekit.quantize import MAX_CALIBRATION

    if args.random_weights and args.checkpoint:
        raise ConfigError("--random-weights goes with --model NAME, not with --checkpoint")
    if args.calibration and not args.int8:
        raise ConfigError("--calibration goes with --int8")
    loaded = load_model(args.checkpoint, weights=args.model, random_weights=args.random_weights,
                        schema=args.schema, cache_dir=args.cache_dir)  # fmt: skip
    if isinstance(loaded, ExportedModel):
        raise ConfigError(f"{loaded.source} is already an exported file; export its checkpoint "
                          f"({loaded.info.source or 'the .pt file'})")  # fmt: skip
    photos = _images(args.parity_images, PARITY_PHOTOS)
    calibration = _images(args.calibration, MAX_CALIBRATION) if args.int8 else []
    if args.int8 and not calibration:
        logger.warning("--int8 without --calibration: calibrating on %d synthetic images of "
                       "schema %s; real images of your data calibrate better",
                       SYNTHETIC_CALIBRATION, loaded.schema.name)  # fmt: skip
        calibration = parity_images(loaded.schema, synthetic=SYNTHETIC_CALIBRATION, seed=1)
    result = export_model(
        loaded,
        args.out,
        format=args.format,
        height=args.height,
        width=args.width,
        dynamic=args.dynamic or None,
        stages=args.stages,
        exporter=args.exporter,
        opset=args.opset,
        photos=photos,
        int8=args.int8,
        calibration=calibration,
        float_heads=args.float_heads,
    )
    info, parity = result.info, result.parity
    shape = info.input
    size = "dynamic height and width" if shape.dynamic else f"{shape.width}x{shape.height}"
    mb = Path(result.path).stat().st_size / 2**20
    print(f"{loaded.source} -> {result.path} ({mb:.1f} MB, {info.exporter}"
          f"{f', opset {info.opset}' if info.opset else ''}, {info.precision})")  # fmt: skip
    print(
        f"input {shape.name}: (batch, 3, H, W) {shape.layout}, {size}; outputs "
        f"{', '.join(o.name for o in info.outputs)} (used: {', '.join(info.used_outputs)})"
    )
    diffs = ", ".join(f"{k} {v:.2g}" for k, v in parity.max_abs.items())
    print(
        f"parity float32: {parity.inputs} inputs at {len(parity.sizes)} size(s), max abs diff "
        f"{diffs}; {parity.poses} poses on {parity.images} images, keypoints within "
        f"{parity.max_pose_px:.4f} input px, OKS agreement {parity.oks_agreement:.4f}"
    )
    if result.int8 is not None:
        q = result.int8
        print(
            f"int8: OKS agreement with float32 {q.oks_agreement:.4f} on {q.images} images, "
            f"{q.pose_count_mismatches} image(s) with another number of poses (measure its AP "
            f"with posekit eval --checkpoint {result.path})"
        )
    print(f"exported in {result.seconds:.1f} s")
    return 0


def add_export_parser(sub: Any) -> None:
    """The ``export`` subcommand."""
    p = sub.add_parser(
        "export", help="write a model as ONNX / TorchScript with its metadata, parity-checked"
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--checkpoint", help="posekit or official Lightweight OpenPose checkpoint")
    which.add_argument("--model", help="published model / weights name, e.g. lwop_mobilenet")
    p.add_argument("--random-weights", action="store_true", help="with --model: untrained")
    p.add_argument("--schema", help="with --random-weights: built-in schema name or YAML")
    p.add_argument("--out", required=True, help="file to write (*.onnx for ONNX)")
    p.add_argument("--format", default="onnx", help="onnx (default) or torchscript")
    p.add_argument("--height", type=int, help="bottom-up: fixed input height (with --width)")
    p.add_argument("--width", type=int, help="bottom-up: fixed input width (with --height)")
    p.add_argument(
        "--dynamic",
        action="store_true",
        help="bottom-up: any height and width, multiples of the stride (the default)",
    )
    p.add_argument(
        "--stages", default="last", help="last (default: the outputs the predictor uses) or all"
    )
    p.add_argument(
        "--exporter",
        default="dynamo",
        help="dynamo (default: torch.onnx.export(dynamo=True)) or legacy (TorchScript-based)",
    )
    p.add_argument("--opset", type=int, default=18, help="ONNX opset (default 18)")
    p.add_argument(
        "--parity-images",
        metavar="DIR",
        help=f"photos for the parity gate (up to {PARITY_PHOTOS}; synthetic ones are added)",
    )
    p.add_argument("--int8", action="store_true", help="static int8 quantisation (QDQ)")
    p.add_argument(
        "--calibration",
        metavar="DIR",
        help="--int8: calibration images, e.g. training images (default: synthetic images)",
    )
    p.add_argument(
        "--float-heads", action="store_true", help="--int8: keep the output convolutions float"
    )
    p.add_argument("--cache-dir", help="cache of published weights (default ~/.cache/posekit)")
    p.set_defaults(func=_cmd_export)
