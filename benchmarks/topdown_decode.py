"""The heatmap decode sweep of one trained top-down checkpoint: DARK's blur, the quarter step and
the bare argmax, scored on the same network outputs of the val set's ground-truth boxes.

Usage: python benchmarks/topdown_decode.py --checkpoint CKPT [--ann VAL.json --images VAL_DIR]
       [--threads N] [--no-flip] [--out DIR]

Model: a posekit top-down checkpoint with a heatmap codec (``codecs.heatmap``: heatmap, msra,
dark, udp); another checkpoint, or a missing or unreadable file, is an error (exit status 2).

Val set: the checkpoint's synthetic val split, the one its training validated on (its run's
``synth/`` files, or written again from the settings in the checkpoint into ``--out``, default a
new temporary directory; ``_common.synth_val_set``), unless ``--ann`` / ``--images`` name another.

Boxes: the ground-truth boxes of the people with labelled keypoints, as the training validation
runs (``tasks.topdown.TopDownTask.predict``): the checkpoint's ``TopDownPredictor`` (its input
spec's box padding, flip test unless ``--no-flip``). The network runs once per image: the
predictor's ``outputs`` (crops, forward, flip averaged) are kept, about 0.2 MB per crop at 48 x 64
maps, and every decode config decodes them as ``TopDownPredictor.predict`` does
(``codec.decode`` with the crop -> image affines), so the rows differ only in the decoding.

Rows (``SWEEP``, ``HeatmapDecodeConfig``): ``refine="dark"`` with ``blur_kernel`` 1 (no
modulation), 3, 5, 7, 11 (DARK's); ``refine="quarter"`` (MSRA's quarter cell); ``refine="none"``
(the bare argmax). The checkpoint's own decode config is marked ``*`` (a row of its own when it is
none of these).

Printed: the CPU, ISA caps, torch threads and load (``_common.machine_lines``); the checkpoint
(model, codec, its decode config), the val set (images, people), the crops and whether the flip
test is on, the network time per crop (median over the images of crop warping, forward and flip
average, after one warm-up image); then per row COCO OKS AP, AP50, AP75, AR (pycocotools, the
schema's sigmas: ``engine.evaluate.evaluate_coco``) and the decode time per crop (median over the
images of one ``codec.decode`` call of the image's crops, after one warm-up call); last the best
row against the checkpoint's own and the load average after the run.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from _common import add_val_args, machine_lines, start_val_run, synth_val_set

from posekit.codecs import CODECS
from posekit.codecs.heatmap import HeatmapCodec, HeatmapDecodeConfig
from posekit.data.coco import CocoKeypointDataset, ImageRecord
from posekit.engine.evaluate import evaluate_coco, predict_dataset
from posekit.errors import CheckpointError, PosekitError
from posekit.geometry import compose_affine, invert_affine
from posekit.inference import TopDownPredictor
from posekit.models.loading import LoadedModel, load_model
from posekit.structures import Pose

SWEEP: tuple[HeatmapDecodeConfig, ...] = (
    *(HeatmapDecodeConfig(refine="dark", blur_kernel=k) for k in (1, 3, 5, 7, 11)),
    HeatmapDecodeConfig(refine="quarter"),
    HeatmapDecodeConfig(refine="none"),
)
"""The decode configs of the table, in its order."""

METRICS = ("AP", "AP50", "AP75", "AR")
"""Columns of ``evaluate_coco``'s result in the table."""


@dataclass(frozen=True)
class CropOutputs:
    """The network outputs of one image's ground-truth boxes.

    Attributes:
        outputs: the codec's outputs, ``(heatmaps (M, K, h, w) float32,)``, flip averaged.
        to_image: (M, 2, 3) heatmap cells -> image pixels, one affine per crop.
    """

    outputs: tuple[np.ndarray, ...]
    to_image: np.ndarray


@dataclass(frozen=True)
class Outputs:
    """The network's outputs on a val set, run once.

    Attributes:
        crops: image id -> its crops' outputs (images with people).
        image_ids: every image that could be read (those without people have no pose).
        network_ms: median over the images of ms per crop of ``TopDownPredictor.outputs``.
    """

    crops: dict[int, CropOutputs]
    image_ids: tuple[int, ...]
    network_ms: float


@dataclass(frozen=True)
class Row:
    """One decode config scored on the cached outputs.

    Attributes:
        config: the decode config.
        own: whether it is the checkpoint's own.
        metrics: ``evaluate_coco``'s result (AP, AR, ... in [0, 1]).
        decode_ms: median over the images of ms per crop of one ``codec.decode`` call.
    """

    config: HeatmapDecodeConfig
    own: bool
    metrics: dict[str, float]
    decode_ms: float


def heatmap_model(checkpoint: Path) -> LoadedModel:
    """The model of a posekit top-down checkpoint with a heatmap codec; CheckpointError naming
    the file otherwise (``load_model``'s for a missing or unreadable one)."""
    model = load_model(checkpoint)
    if (
        not isinstance(model, LoadedModel)
        or model.family != "topdown"
        or not isinstance(model.codec, HeatmapCodec)
    ):
        what = "a posekit" if isinstance(model, LoadedModel) else "an exported"
        names = sorted(n for n, c in CODECS.items() if issubclass(c, HeatmapCodec))
        raise CheckpointError(
            f"{checkpoint}: {what} {model.family} model with codec {model.codec.name!r}; expected "
            f"a posekit top-down checkpoint with a heatmap codec ({', '.join(names)})"
        )
    return model


def network_outputs(predictor: TopDownPredictor, dataset: CocoKeypointDataset) -> Outputs:
    """The predictor's outputs of every image's ground-truth boxes (``ImageRecord.boxes``, the
    people with labelled keypoints), the network timed per image after one warm-up image."""
    crops: dict[int, CropOutputs] = {}
    seconds: list[float] = []
    to_output = predictor.codec.output_to_input_matrix()

    def run(image: np.ndarray, rec: ImageRecord) -> list[Pose]:
        if not rec.num_instances:
            return []
        matrices = predictor.matrices(rec.boxes)
        if not crops:
            predictor.outputs(image, matrices)  # oneDNN primitives, caches
        start = time.perf_counter()
        outputs = predictor.outputs(image, matrices)
        seconds.append((time.perf_counter() - start) / len(matrices))
        crops[rec.image_id] = CropOutputs(
            outputs, compose_affine(invert_affine(matrices), to_output)
        )
        return []

    result = predict_dataset(run, dataset, progress=False)
    network_ms = 1e3 * float(np.median(seconds)) if seconds else math.nan
    return Outputs(crops, tuple(result.poses), network_ms)


def decode_outputs(
    codec: HeatmapCodec, outputs: Outputs, config: HeatmapDecodeConfig
) -> tuple[dict[int, list[Pose]], float]:
    """Poses of every read image by ``config`` (image pixels) and the median ms per crop of the
    decode calls, after one warm-up call."""
    if outputs.crops:
        first = next(iter(outputs.crops.values()))
        codec.decode(*first.outputs, affine=first.to_image, config=config)
    poses: dict[int, list[Pose]] = {i: [] for i in outputs.image_ids}
    seconds = []
    for image_id, crops in outputs.crops.items():
        start = time.perf_counter()
        poses[image_id] = codec.decode(*crops.outputs, affine=crops.to_image, config=config)
        seconds.append((time.perf_counter() - start) / len(crops.to_image))
    return poses, 1e3 * float(np.median(seconds)) if seconds else math.nan


def _same(a: HeatmapDecodeConfig, b: HeatmapDecodeConfig) -> bool:
    """Whether two configs decode alike (the blur only counts with ``"dark"``)."""
    return a.refine == b.refine and (a.refine != "dark" or a.blur_kernel == b.blur_kernel)


def decode_sweep(
    codec: HeatmapCodec,
    outputs: Outputs,
    ann: Path,
    configs: tuple[HeatmapDecodeConfig, ...] = SWEEP,
) -> list[Row]:
    """One row per config of ``configs``, plus the codec's own decode config when it is none of
    them, all decoding the same ``outputs``, scored against ``ann``."""
    own = codec.decode_config
    if not any(_same(c, own) for c in configs):
        configs = (*configs, own)
    rows = []
    for config in configs:
        poses, decode_ms = decode_outputs(codec, outputs, config)
        metrics = evaluate_coco(ann, poses, codec.schema, image_ids=outputs.image_ids)
        rows.append(Row(config, _same(config, own), metrics, decode_ms))
    return rows


def label(config: HeatmapDecodeConfig) -> str:
    """A row's name: ``dark, blur 3``, ``quarter``, ``none (argmax)``."""
    if config.refine == "dark":
        return f"dark, blur {config.blur_kernel}"
    return "none (argmax)" if config.refine == "none" else config.refine


def table_lines(rows: list[Row]) -> list[str]:
    """The header and one line per row: name (``*``: the checkpoint's own), metrics, ms/crop."""
    width = max(len(label(r.config)) for r in rows) + 2
    lines = [f"{'decode':<{width}} " + " ".join(f"{k:>6}" for k in METRICS) + "  decode ms/crop"]
    for r in rows:
        name = label(r.config) + (" *" if r.own else "")
        lines.append(f"{name:<{width}} " + " ".join(f"{r.metrics[k]:6.3f}" for k in METRICS)
                     + f"  {r.decode_ms:14.3f}")  # fmt: skip
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True, help="top-down checkpoint")
    add_val_args(parser, "checkpoint's")
    parser.add_argument("--out", type=Path, help="where a val set is written (default: temp dir)")
    args = parser.parse_args()
    start_val_run(parser, args)
    try:
        model = heatmap_model(args.checkpoint)
        out = args.out or Path(tempfile.mkdtemp(prefix="posekit-topdown-decode-"))
        ann, images = (
            (args.ann, args.images)
            if args.ann
            else synth_val_set(args.checkpoint, model.schema, out)
        )
        dataset = CocoKeypointDataset(ann, images, schema=model.schema, strict=False)
    except PosekitError as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    codec = model.codec
    flip = not args.no_flip
    predictor = model.predictor(flip=flip)
    outputs = network_outputs(predictor, dataset)
    rows = decode_sweep(codec, outputs, ann)

    (w, h), (mw, mh) = codec.input_size, codec.heatmap_size
    print(f"\ncheckpoint: {args.checkpoint} ({model.record.model_name} "
          f"{dict(model.record.model_options)}; codec {codec.name}, {w} x {h} crops, {mw} x {mh} "
          f"maps, sigma {codec.sigma:g}; its decode: {label(codec.decode_config)})")  # fmt: skip
    people = sum(r.num_instances for r in dataset.records)
    crops = sum(len(c.to_image) for c in outputs.crops.values())
    print(f"val set: {ann} ({len(outputs.image_ids)} images read of {len(dataset)}, {people} "
          f"people)")  # fmt: skip
    print(f"crops: {crops} (ground-truth boxes, padding {predictor.padding:g}); flip test "
          f"{'on' if flip else 'off'}; network {outputs.network_ms:.2f} ms/crop (median, once "
          f"per crop)\n")  # fmt: skip
    for line in table_lines(rows):
        print(line)
    own = next(r for r in rows if r.own)
    best = max(rows, key=lambda r: r.metrics["AP"])
    print(f"* the checkpoint's own decode config; best AP: {label(best.config)}, "
          f"{best.metrics['AP'] - own.metrics['AP']:+.3f} against it")  # fmt: skip
    print(machine_lines()[-1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
