"""The ``posekit`` command line: ``train``, ``eval``, ``predict``, ``check-data``, ``synth``, ``schema``.

The CLI only parses arguments, calls the library and prints results; errors for bad input are
``posekit.errors.PosekitError`` s, printed as one line with exit code 2 (``check-data``: 1 when the
dataset has problems).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from posekit import __version__
from posekit.errors import ConfigError, PosekitError
from posekit.schema import KeypointSchema

if TYPE_CHECKING:
    from posekit.media import FrameSource, PredictionWriter
    from posekit.models.loading import LoadedModel

logger = logging.getLogger("posekit")
T = TypeVar("T")

VIDEO_BATCH = 4
"""Frames of a video file per forward pass by default (5-20% more frames/s on CPU, measured in
benchmarks/predict_speed.py); images and webcams go one at a time."""


def _schema_arg(value: str | None) -> KeypointSchema | None:
    return None if value is None else KeypointSchema.load(value)


def _cmd_check_data(args: argparse.Namespace) -> int:
    from posekit.data.coco import CocoKeypointDataset
    from posekit.data.report import DatasetReport

    try:
        dataset = CocoKeypointDataset(
            args.ann,
            args.images,
            schema=_schema_arg(args.schema),
            category_id=args.category_id,
            strict=False,
            check_images="exists" if args.no_decode else "decode",
        )
    except PosekitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    report = DatasetReport.build(dataset)
    print(report.text())
    if args.plot:
        print(f"plot written to {report.plot(args.plot)}")
    if not report.ok:
        print(f"\n{len(report.problems)} problem(s) found", file=sys.stderr)
        return 1
    return 0


def _cmd_synth(args: argparse.Namespace) -> int:
    from posekit.data.synth import SynthConfig, write_dataset

    schema = KeypointSchema.load(args.schema)
    out = Path(args.out)
    size = (args.size, args.size)
    for split, count, seed in (
        ("train", args.images, args.seed),
        ("val", args.val_images, args.seed + 1),
    ):
        if count <= 0:
            continue
        config = SynthConfig(
            num_images=count, image_size=size, seed=seed, part_colors=args.part_colors
        )
        path = write_dataset(out, schema, config, split=split)
        print(f"{split}: {count} images -> {path}")
    schema.to_yaml(out / "schema.yaml")
    print(f"schema -> {out / 'schema.yaml'}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from posekit.config import load_config
    from posekit.engine.distributed import shutdown_distributed
    from posekit.engine.trainer import Trainer

    overrides = list(args.overrides)
    if args.config is not None and "=" in args.config:  # `posekit train train.epochs=5`
        overrides.insert(0, args.config)
        args.config = None
    if args.data or args.images:
        if not (args.data and args.images):
            print("error: --data and --images go together", file=sys.stderr)
            return 2
        overrides += [f"data.train_ann={args.data}", f"data.train_images={args.images}"]
    if args.val_data or args.val_images:
        if not (args.val_data and args.val_images):
            print("error: --val-data and --val-images go together", file=sys.stderr)
            return 2
        overrides += [f"data.val_ann={args.val_data}", f"data.val_images={args.val_images}"]
    for flag, key in (
        (args.schema, "data.schema"),
        (args.out, "out"),
        (args.device, "train.device"),
        (args.model, "model.name"),
        (args.pretrained, "model.pretrained"),
    ):
        if flag is not None:
            overrides.append(f"{key}={flag}")
    config = load_config(args.config, overrides)
    try:
        result = Trainer(config, resume=args.resume).fit()
    except KeyboardInterrupt:
        shutdown_distributed(wait=False)
        print(
            f"interrupted; continue with: posekit train ... --out {config.out} --resume auto",
            file=sys.stderr,
        )
        return 130
    except BaseException:
        shutdown_distributed(wait=False)
        raise
    shutdown_distributed()
    print(f"trained {result.epochs} epochs ({result.iterations} iterations) in {result.run_dir}")
    if result.best_ap >= 0:
        best = result.run_dir / "best.pt"
        print(f"best val AP {result.best_ap:.3f}: {best}")
        print(f"next: posekit predict IMAGES --checkpoint {best} --out DIR")
    return 0


def _cmd_schema(args: argparse.Namespace) -> int:
    if args.from_coco:
        from posekit.data.coco import load_coco_json

        data = load_coco_json(args.from_coco)
        cats = [c for c in data["categories"] if c.get("keypoints")]
        if args.category_id is not None:
            cats = [c for c in cats if c.get("id") == args.category_id]
        if not cats:
            print(f"error: {args.from_coco}: no keypoint category found", file=sys.stderr)
            return 2
        schema = KeypointSchema.from_coco(cats[0], drop_invalid_limbs=args.drop_invalid_limbs)
    else:
        schema = KeypointSchema.load(args.name)
    print(schema.describe())
    if args.out:
        schema.to_yaml(args.out)
        print(f"written to {args.out}")
    elif args.json:
        print(json.dumps(schema.to_dict(), indent=1))
    return 0


# ---------------------------------------------------------------------- predict and eval
def _passive_openmp() -> None:
    """Let idle OpenMP threads sleep instead of spinning (``OMP_WAIT_POLICY=PASSIVE``) unless
    the user chose a policy. Read once when torch loads its OpenMP runtime, so this must run
    before ``import torch``. On a machine whose cores are busy with other work, spinning threads
    wait at every layer for a thread that lost its core: a forward pass of lwop_mobilenet took
    1.4 s instead of 70 ms in ``benchmarks/predict_speed.py``."""
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _load_model(args: argparse.Namespace) -> LoadedModel:
    """``LoadedModel`` of ``--checkpoint`` or ``--model`` (``--random-weights``, ``--schema``)."""
    from posekit.models.loading import load_model

    random_weights = getattr(args, "random_weights", False)
    if random_weights and args.checkpoint:
        raise ConfigError("--random-weights goes with --model NAME, not with --checkpoint")
    if getattr(args, "schema", None) and not random_weights:
        raise ConfigError("--schema only applies with --random-weights (checkpoints name theirs)")
    return load_model(
        args.checkpoint,
        weights=args.model,
        random_weights=random_weights,
        schema=getattr(args, "schema", None),
        cache_dir=args.cache_dir,
    )


def _predictor(args: argparse.Namespace, loaded: LoadedModel) -> Any:
    """The loaded model's predictor with ``--height --scales --flip --device --bf16``."""
    import torch

    if args.threads is not None:
        if args.threads < 1:
            raise ConfigError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return loaded.predictor(
        input_height=args.height or loaded.input_height,
        scales=args.scales,
        flip=args.flip,
        device=device,
        precision="bfloat16" if args.bf16 else "float32",
    )


def _batches(frames: Iterable[T], size: int) -> Iterator[list[T]]:
    """Lists of up to ``size`` consecutive frames."""
    batch: list[T] = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _predict_frames(
    source: FrameSource, predictor: Any, writer: PredictionWriter, batch_size: int | None
) -> None:
    """Predict, write and show every frame of ``source``; Ctrl-C ends a webcam run normally."""
    from tqdm import tqdm

    from posekit.media import prefetch

    size = batch_size or (VIDEO_BATCH if source.kind == "video" else 1)
    unit = "frame" if source.is_video else "image"
    try:
        with writer, tqdm(total=source.total, unit=unit, disable=source.kind == "image") as bar:
            for batch in _batches(prefetch(source), size):
                poses = predictor.predict_batch([frame.image for frame in batch])
                bar.update(len(batch))
                if not all([writer.write(f, p) for f, p in zip(batch, poses, strict=True)]):
                    return  # the window was closed
    except KeyboardInterrupt:  # the usual way to end a webcam run; the outputs are complete
        if source.kind != "webcam":
            raise


def _cmd_predict(args: argparse.Namespace) -> int:
    _passive_openmp()
    import time

    from posekit.media import Display, PredictionWriter, open_source

    if not (args.out or args.json or args.show):
        raise ConfigError("nothing to write: give --out DIR, --json FILE and/or --show")
    if args.batch_size is not None and args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")
    source = open_source(args.source)
    try:
        display = Display() if args.show else None
        loaded = _load_model(args)
        predictor = _predictor(args, loaded)
        writer = PredictionWriter(
            source,
            loaded.schema,
            out=args.out,
            json_path=args.json,
            display=display,
            threshold=args.threshold,
        )
        start = time.perf_counter()  # frames/s without the model loading
        _predict_frames(source, predictor, writer, args.batch_size)
    finally:
        source.close()
    unit = "frame" if source.is_video else "image"
    seconds = time.perf_counter() - start
    for name, reason in source.skipped:
        print(f"skipped {name}: {reason}", file=sys.stderr)
    if writer.frames == 0:
        print(f"error: no {unit} of {args.source} could be read", file=sys.stderr)
        return 2
    print(
        f"{writer.frames} {unit}(s), {writer.poses} pose(s) in {seconds:.1f} s "
        f"({writer.frames / max(seconds, 1e-9):.1f} {unit}s/s; model {loaded.source})"
    )
    if writer.video is not None:
        print(
            f"video -> {writer.video.path} ({writer.video.frames} frames at {writer.video.fps:g} fps)"
        )
    elif args.out:
        print(f"drawn images -> {args.out}")
    if args.json:
        print(f"COCO results ({len(writer.results)} poses) -> {args.json}")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    _passive_openmp()
    from posekit.data.coco import CocoKeypointDataset
    from posekit.data.results import write_coco_results
    from posekit.engine.evaluate import evaluate_coco, format_metrics, predict_dataset
    from posekit.engine.matching import match_instances
    from posekit.engine.metrics import KEYPOINT_METRICS, KeypointAccuracy, format_keypoint_metrics

    allowed = ("ap", *KEYPOINT_METRICS)
    names = list(dict.fromkeys(m.lower() for m in args.metric))
    unknown = [m for m in names if m not in allowed]
    if unknown:
        raise ConfigError(
            f"--metric: unknown metric(s) {unknown}; choose from {', '.join(allowed)}"
        )
    loaded = _load_model(args)
    accuracy = None
    if set(names) - {"ap"}:  # checked before predicting: the schema must have the keypoint pairs
        accuracy = KeypointAccuracy(
            loaded.schema,
            tuple(m for m in names if m != "ap"),
            norm=args.pck_norm,
            threshold=args.pck_threshold,
            auc_max_threshold=args.auc_max_threshold,
            norm_keypoints=args.norm_keypoints,
        )
    dataset = CocoKeypointDataset(
        args.ann, args.images, schema=loaded.schema, category_id=args.category_id, strict=False
    )
    predictor = _predictor(args, loaded)
    result = predict_dataset(lambda image, _: predictor.predict(image), dataset, desc="eval")
    metrics = None
    if "ap" in names:
        metrics = evaluate_coco(
            args.ann,
            result.poses,
            loaded.schema,
            category_id=args.category_id,
            results_path=args.json,
            image_ids=result.poses.keys(),
        )
    elif args.json:
        write_coco_results(
            args.json,
            result.poses,
            loaded.schema,
            keypoint_names=dataset.source_keypoints,
            category_id=int(dataset.categories[0]["id"]),
        )
    n = len(result.poses)
    print(
        f"{loaded.source} on {args.ann}: {n} images, "
        f"{sum(map(len, result.poses.values()))} poses, {1e3 * result.seconds / max(n, 1):.0f} "
        f"ms/image"
    )
    for image_id, reason in result.skipped:
        print(f"skipped image {image_id} (left out of the score): {reason}", file=sys.stderr)
    if metrics is not None:
        print(format_metrics(metrics))
    if accuracy is not None:
        matched = match_instances(dataset.records, result.poses, loaded.schema)
        scores = accuracy.compute(matched)
        print(
            f"{matched.num_instances} instances ({matched.num_unmatched} without a pose), "
            f"each matched to the pose of highest OKS; {accuracy.describe()}"
        )
        print(format_keypoint_metrics(scores))
        for name, score in scores.items():
            if score.num_skipped:
                print(f"{name}: left out {score.num_skipped} instance(s) without a normaliser")
    if args.json:
        print(f"COCO results -> {args.json}")
    return 0


def _add_inference_args(p: argparse.ArgumentParser) -> None:
    """Model choice and Predictor options shared by predict and eval."""
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", help="published model / weights name, e.g. lwop_mobilenet")
    which.add_argument("--checkpoint", help="posekit or official Lightweight OpenPose checkpoint")
    p.add_argument("--height", type=int, help="network input height (default: the model's)")
    p.add_argument("--scales", type=float, nargs="+", default=[1.0], help="e.g. 1.0 0.75")
    p.add_argument("--flip", action="store_true", help="average with the mirrored image")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--threads", type=int, help="CPU threads of torch (default: all cores)")
    p.add_argument(
        "--bf16",
        action="store_true",
        help="bfloat16 forward pass (~1.7x faster on CPUs with native bfloat16)",
    )
    p.add_argument("--cache-dir", help="cache of published weights (default ~/.cache/posekit)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="posekit", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"posekit {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("check-data", help="report on a COCO keypoint dataset before training")
    p.add_argument("--ann", required=True, help="COCO keypoint JSON")
    p.add_argument("--images", required=True, help="image root (file_name is relative to it)")
    p.add_argument("--schema", help="built-in schema name or YAML (default: from the JSON)")
    p.add_argument("--category-id", type=int, help="read only this category")
    p.add_argument("--plot", help="write histograms and an example image to this PNG")
    p.add_argument("--no-decode", action="store_true", help="only check that images exist")
    p.set_defaults(func=_cmd_check_data)

    p = sub.add_parser("synth", help="write a synthetic COCO keypoint dataset for any schema")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--images", type=int, default=200, help="training images (default 200)")
    p.add_argument("--val-images", type=int, default=50, help="validation images (default 50)")
    p.add_argument("--schema", default="coco_person", help="built-in name or YAML")
    p.add_argument("--size", type=int, default=368, help="square image size (default 368)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--part-colors",
        action="store_true",
        help="one color per limb type (as posekit train's default synthetic data)",
    )
    p.set_defaults(func=_cmd_synth)

    p = sub.add_parser("train", help="train a model (synthetic data by default)")
    p.add_argument("config", nargs="?", help="config YAML (sections model, data, optim, ...)")
    p.add_argument("overrides", nargs="*", help="section.key=value, e.g. train.epochs=5")
    p.add_argument("--data", help="training COCO keypoint JSON (default: synthetic data)")
    p.add_argument("--images", help="image root of --data")
    p.add_argument("--val-data", help="validation COCO keypoint JSON")
    p.add_argument("--val-images", help="image root of --val-data")
    p.add_argument("--schema", help="built-in schema name or YAML (default: from the data)")
    p.add_argument("--model", help="model name from the zoo (default paf_tiny)")
    p.add_argument("--pretrained", help="weights to start from (checkpoint path or weights name)")
    p.add_argument("--out", help="run directory (default runs/train)")
    p.add_argument("--resume", help="'auto' (continue the run in --out) or a checkpoint path")
    p.add_argument("--device", help="auto, cpu, cuda, cuda:N")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("schema", help="show a schema: flip pairs, roots, limb order")
    p.add_argument("name", nargs="?", default="coco_person", help="built-in name or YAML")
    p.add_argument("--from-coco", help="derive the schema from this COCO JSON's category")
    p.add_argument("--category-id", type=int)
    p.add_argument(
        "--drop-invalid-limbs",
        action="store_true",
        help="with --from-coco: leave out skeleton pairs out of range (warned) instead of failing",
    )
    p.add_argument("--out", help="write the schema as YAML")
    p.add_argument("--json", action="store_true", help="print the schema as JSON")
    p.set_defaults(func=_cmd_schema)

    p = sub.add_parser("predict", help="poses of images, a folder, a video or a webcam")
    p.add_argument("source", help="image file, folder of images, video file or webcam index")
    _add_inference_args(p)
    p.add_argument("--out", help="write drawn images (same names) or <video stem>.mp4 here")
    p.add_argument("--json", help="write COCO keypoint results here")
    p.add_argument("--show", action="store_true", help="show drawn frames (Esc or q stops)")
    p.add_argument("--threshold", type=float, default=0.1, help="keypoint score to draw (0.1)")
    p.add_argument(
        "--batch-size", type=int, help=f"frames per forward pass (video: {VIDEO_BATCH}, else 1)"
    )
    p.add_argument("--random-weights", action="store_true", help="with --model: untrained")
    p.add_argument("--schema", help="with --random-weights: built-in schema name or YAML")
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser(
        "eval", help="COCO OKS AP (or PCK, AUC, EPE, NME) of a model on a COCO keypoint dataset"
    )
    _add_inference_args(p)
    p.add_argument("--ann", required=True, help="COCO keypoint JSON")
    p.add_argument("--images", required=True, help="image root (file_name is relative to it)")
    p.add_argument("--category-id", type=int, help="evaluate only this category")
    p.add_argument("--json", help="write the COCO results JSON here")
    p.add_argument(
        "--metric",
        nargs="+",
        default=["ap"],
        metavar="NAME",
        help="one or more of: ap (COCO OKS AP/AR), pck, auc, epe (pixels), nme; default ap. "
        "pck/auc/epe/nme match each ground-truth instance to the pose of highest OKS",
    )
    p.add_argument(
        "--pck-norm",
        default="bbox",
        help="normaliser of pck and auc: bbox (box's longer side, default), torso (a shoulder "
        "to the opposite hip) or head (the ears, else the eyes)",
    )
    p.add_argument(
        "--pck-threshold",
        type=float,
        help="PCK threshold, times the normaliser (default: bbox 0.05, torso 0.2, head 0.5)",
    )
    p.add_argument(
        "--auc-max-threshold",
        type=float,
        help="AUC over 20 thresholds in (0, this] (default: --pck-threshold)",
    )
    p.add_argument(
        "--norm-keypoints",
        nargs=2,
        metavar="NAME",
        help="the two keypoints of the torso/head normaliser and of NME (default: found by "
        "name; NME: the eyes)",
    )
    p.set_defaults(func=_cmd_eval)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args))
    except PosekitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` etc.
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
