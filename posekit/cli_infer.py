"""``posekit predict`` and ``posekit eval``: a model (checkpoint or published weights), its
predictor, and for top-down models where the person boxes come from.

Top-down models need boxes: ``--boxes detections.json`` (a detector's COCO results), ``--proposals
CHECKPOINT`` (posekit's bottom-up model finds the people, the top-down model refines them), or
``--whole-image`` (one instance per picture); ``eval`` also takes ``--gt-boxes`` (the annotation
boxes of the people with labelled keypoints). The predictor follows from the checkpoint's family.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from posekit.errors import ConfigError

if TYPE_CHECKING:
    from posekit.data.coco import ImageRecord
    from posekit.media import Frame, FrameSource, PredictionWriter
    from posekit.models.exported import ExportedModel
    from posekit.models.loading import LoadedModel
    from posekit.structures import Pose


VIDEO_BATCH = 4
"""Frames of a video file per forward pass by default (5-20% more frames/s on CPU, measured in
benchmarks/predict_speed.py); images and webcams go one at a time."""

SMOOTHER_PRESETS = ("pose", "demo")
"""``--smoother`` values: the keys of ``posekit.tracking.SMOOTHERS`` (not imported here: tracking
loads scipy.optimize, which ``posekit predict`` without ``--track`` must not wait for)."""


def _passive_openmp() -> None:
    """Let idle OpenMP threads sleep instead of spinning (``OMP_WAIT_POLICY=PASSIVE``) unless
    the user chose a policy. Read once when torch loads its OpenMP runtime, so this must run
    before ``import torch``. On a machine whose cores are busy with other work, spinning threads
    wait at every layer for a thread that lost its core: a forward pass of lwop_mobilenet took
    1.4 s instead of 70 ms in ``benchmarks/predict_speed.py``."""
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _load_model(args: argparse.Namespace) -> LoadedModel | ExportedModel:
    """The model of ``--checkpoint`` (a checkpoint or an exported file) or ``--model``
    (``--random-weights``, ``--schema``)."""
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


def _device(args: argparse.Namespace) -> str:
    """``--device`` (auto: CUDA when available) after ``--threads``."""
    import torch

    if args.threads is not None:
        if args.threads < 1:
            raise ConfigError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    if args.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return str(args.device)


def _box_flags(args: argparse.Namespace) -> list[str]:
    """The box options the user gave."""
    given = [
        ("--boxes", args.boxes),
        ("--proposals", args.proposals),
        ("--whole-image", args.whole_image),
        ("--gt-boxes", getattr(args, "gt_boxes", False)),
    ]
    return [flag for flag, value in given if value]  # fmt: skip


def _runtime_options(args: argparse.Namespace, loaded: Any) -> dict[str, Any]:
    """Where the network runs: ``--backend`` (default: torch for checkpoints, ONNX Runtime for
    ``.onnx`` files) with its settings; torch is imported only for the torch backend."""
    from posekit.models.exported import ExportedModel

    exported = isinstance(loaded, ExportedModel)
    backend = args.backend or (loaded.default_backend if exported else "torch")
    if backend == "torch" and not (exported and loaded.is_torchscript):
        if args.spinning is not None or args.optimization is not None:
            raise ConfigError("--spinning / --optimization are ONNX Runtime settings "
                              "(--backend onnxruntime)")  # fmt: skip
        if exported:
            raise ConfigError(f"{loaded.source} is an ONNX file: use --backend onnxruntime "
                              f"or openvino")  # fmt: skip
        precision = "bfloat16" if args.bf16 else "float32"
        return {"device": _device(args), "precision": precision}
    if args.bf16:
        raise ConfigError(f"--bf16 is a torch setting; --backend {backend} runs float32 (or an "
                          f"int8 export)")  # fmt: skip
    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {args.threads}")
    settings: dict[str, Any] = {}
    if backend == "torch":  # a TorchScript file
        settings["device"] = _device(args)
    else:
        settings["threads"] = args.threads
        if backend == "onnxruntime":
            settings["spinning"] = {None: None, "on": True, "off": False}[args.spinning]
            settings["optimization"] = args.optimization or "all"
        elif args.spinning is not None or args.optimization is not None:
            raise ConfigError("--spinning / --optimization are ONNX Runtime settings")
    return {"backend": backend, "runtime_settings": settings}


def _predictor(args: argparse.Namespace, loaded: Any) -> Any:
    """The loaded model's predictor: bottom-up with ``--height --scales --flip``; top-down with
    ``--flip --padding --nms``, wrapped with its box source unless the boxes are the ground
    truth's (``eval --gt-boxes``: the bare ``TopDownPredictor``)."""
    runtime = _runtime_options(args, loaded)
    boxes = _box_flags(args)
    if loaded.family != "topdown":
        if boxes:
            raise ConfigError(f"{' '.join(boxes)}: only for top-down models; {loaded.source} is "
                              f"{loaded.family} and finds the people itself")  # fmt: skip
        return loaded.predictor(
            input_height=args.height or loaded.input_height,
            scales=args.scales or (1.0,),
            flip=args.flip,
            **runtime,
        )
    if args.height is not None or args.scales is not None:
        raise ConfigError(
            f"--height / --scales are for bottom-up models; {loaded.source} is top-down: its "
            f"crops are {loaded.input_spec.width}x{loaded.input_spec.height}"
        )
    if len(boxes) != 1:
        choices = "--boxes DETECTIONS.json, --proposals CHECKPOINT, --whole-image" + (
            ", --gt-boxes" if hasattr(args, "gt_boxes") else ""
        )
        raise ConfigError(
            f"{loaded.source} is a top-down model: give one source of person boxes ("
            f"{choices}); got {' '.join(boxes) or 'none'}"
        )
    topdown = loaded.predictor(
        flip=args.flip,
        padding=args.padding,
        nms_threshold=args.nms if args.nms > 0 else None,
        **runtime,
    )
    if boxes == ["--gt-boxes"]:
        return topdown
    from posekit.inference.boxes import BoxedPredictor

    return BoxedPredictor(topdown, _box_source(args))


def _box_source(args: argparse.Namespace) -> Any:
    """The box source of ``--boxes`` / ``--proposals`` / ``--whole-image``."""
    from posekit.inference import boxes

    if args.boxes:
        return boxes.DetectionBoxes(args.boxes, category_id=args.box_category,
                                    min_score=args.box_threshold)  # fmt: skip
    if args.whole_image:
        return boxes.WholeImageBox()
    from posekit.models.loading import load_model

    proposer = load_model(args.proposals, cache_dir=args.cache_dir)
    if proposer.family != "bottomup":
        raise ConfigError(
            f"--proposals {args.proposals}: a {proposer.family} model; proposals come from a "
            "bottom-up model (it finds the people)"
        )
    bottomup = proposer.predictor(**_runtime_options(args, proposer))
    return boxes.ProposalBoxes(bottomup, min_score=args.box_threshold, merge=not args.no_merge)


def _tracking(args: argparse.Namespace, source: FrameSource, schema: Any) -> Any:
    """``(frame, poses) -> poses`` with ids (``--track`` / ``--tracker``) and One-Euro smoothing
    (``--smooth``), timestamps from the frame index and the source's frame rate; None without
    ``--track``."""
    if not (args.track or args.smooth):
        return None
    if not source.is_video:
        raise ConfigError(f"--track / --smooth follow people through a video or a webcam; "
                          f"{source.path} is {source.kind}")  # fmt: skip
    from posekit.media import DEFAULT_FPS
    from posekit.tracking import SMOOTHERS, PoseSmoother, PoseTracker, TrackerConfig

    tracker = PoseTracker(schema, TrackerConfig(mode=args.tracker))
    smoother = PoseSmoother(SMOOTHERS[args.smoother]) if args.smooth else None
    fps = source.fps or DEFAULT_FPS

    def track(frame: Frame, poses: list[Pose]) -> list[Pose]:
        timestamp = frame.index / fps
        tracked = tracker.update(poses, timestamp)
        return smoother.update(tracked, timestamp) if smoother is not None else tracked

    return track


def _predict_frames(
    source: FrameSource,
    predictor: Any,
    writer: PredictionWriter,
    batch_size: int | None,
    track: Callable[[Frame, list[Pose]], list[Pose]] | None = None,
) -> None:
    """Predict, (track,) write and show every frame of ``source`` in order, in the threaded
    pipeline of ``posekit.video`` (reading and preprocessing, the network, and decoding +
    writing overlap); Ctrl-C ends a webcam run normally."""
    from tqdm import tqdm

    from posekit.video import run_pipeline

    size = batch_size or (VIDEO_BATCH if source.kind == "video" else 1)
    unit = "frame" if source.is_video else "image"
    try:
        with writer, tqdm(total=source.total, unit=unit, disable=source.kind == "image") as bar:

            def write(frame: Frame, poses: list[Pose]) -> bool:
                bar.update()
                return writer.write(frame, poses)

            run_pipeline(source, predictor, write=write, track=track, batch_size=size)
    except KeyboardInterrupt:  # the usual way to end a webcam run; the outputs are complete
        if source.kind != "webcam":
            raise


def _check_boxes(predictor: Any) -> None:
    """A detections file that matched no image is an error (wrong file or image ids)."""
    check = getattr(getattr(predictor, "boxes", None), "check_coverage", None)
    if check is not None:
        check()


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
        track = _tracking(args, source, loaded.schema)
        start = time.perf_counter()  # frames/s without the model loading
        _predict_frames(source, predictor, writer, args.batch_size, track)
    finally:
        source.close()
    _check_boxes(predictor)
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


def _record_predict(predictor: Any) -> Callable[[Any, ImageRecord], list[Pose]]:
    """``(image, record) -> poses`` for ``predict_dataset``: a bare top-down predictor takes
    the record's ground-truth boxes; a boxed one its boxes of the record's image id."""
    from posekit.inference import TopDownPredictor
    from posekit.inference.boxes import BoxedPredictor

    if isinstance(predictor, TopDownPredictor):
        return lambda image, rec: predictor.predict(image, rec.boxes) if len(rec.boxes) else []
    if isinstance(predictor, BoxedPredictor):
        return lambda image, rec: predictor.predict(image, rec.image_id)
    return lambda image, _: predictor.predict(image)


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
    result = predict_dataset(_record_predict(predictor), dataset, desc="eval")
    _check_boxes(predictor)
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


def _add_inference_args(p: argparse.ArgumentParser, *, gt_boxes: bool = False) -> None:
    """Model choice and Predictor options shared by predict and eval."""
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", help="published model / weights name, e.g. lwop_mobilenet")
    which.add_argument(
        "--checkpoint",
        help="posekit checkpoint, official Lightweight OpenPose checkpoint, or a file written by "
        "posekit export (.onnx / TorchScript)",
    )
    p.add_argument(
        "--backend",
        choices=("torch", "onnxruntime", "openvino"),
        help="where the network runs (default: torch for checkpoints, onnxruntime for .onnx "
        "files; a checkpoint with onnxruntime / openvino is exported to a temporary file first)",
    )
    p.add_argument(
        "--spinning",
        choices=("on", "off"),
        help="onnxruntime: idle threads spin-wait (default ONNX Runtime's: on; off is faster on "
        "cores shared with other work)",
    )
    p.add_argument(
        "--optimization",
        choices=("disable", "basic", "extended", "all"),
        help="onnxruntime: graph optimisation level (default all)",
    )
    p.add_argument("--height", type=int, help="bottom-up: input height (default: the model's)")
    p.add_argument("--scales", type=float, nargs="+", help="bottom-up: e.g. 1.0 0.75 (default 1)")
    p.add_argument("--flip", action="store_true", help="average with the mirrored image")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument(
        "--threads", type=int, help="CPU threads of the backend (default: its own, all cores)"
    )
    p.add_argument(
        "--bf16",
        action="store_true",
        help="bfloat16 forward pass (~1.7x faster on CPUs with native bfloat16; float32 with a "
        "warning on others, where it would be many times slower)",
    )
    p.add_argument("--cache-dir", help="cache of published weights (default ~/.cache/posekit)")
    boxes = p.add_argument_group("person boxes of a top-down model (one of)")
    boxes.add_argument("--boxes", metavar="JSON", help="a detector's COCO results, by image id")
    boxes.add_argument(
        "--proposals",
        metavar="CHECKPOINT",
        help="a posekit bottom-up model (checkpoint or weights name) finds the people",
    )
    boxes.add_argument("--whole-image", action="store_true", help="one instance per image")
    if gt_boxes:
        boxes.add_argument(
            "--gt-boxes", action="store_true", help="the annotation boxes of labelled people"
        )
    p.add_argument(
        "--box-threshold",
        type=float,
        default=0.0,
        help="--boxes / --proposals: keep boxes scoring at least this (default 0)",
    )
    p.add_argument("--box-category", type=int, help="--boxes: only this category id")
    p.add_argument(
        "--no-merge",
        action="store_true",
        help="--proposals: keypoints from the top-down model only (default: each keypoint the "
        "better-scoring of the bottom-up and the top-down estimate)",
    )
    p.add_argument(
        "--padding",
        type=float,
        help="top-down: boxes grow by this (default: the model's training crops')",
    )
    p.add_argument(
        "--nms",
        type=float,
        default=0.9,
        help="top-down: OKS above which a lower-scored duplicate pose is dropped "
        "(default 0.9; 0 keeps all)",
    )


def add_predict_parser(sub: Any) -> None:
    """The ``predict`` subcommand."""
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
    video = p.add_argument_group("video and webcam")
    video.add_argument(
        "--track",
        action="store_true",
        help="give every person an id kept across frames (drawn, and track_id in the JSON)",
    )
    video.add_argument(
        "--tracker",
        choices=("oks", "greedy"),
        default="oks",
        help="oks (default: OKS + optimal assignment, tracks survive missed frames) or greedy "
        "(Lightweight OpenPose demo's previous-frame matching)",
    )
    video.add_argument(
        "--smooth",
        action="store_true",
        help="One-Euro smoothing of each tracked person's keypoints (implies --track)",
    )
    video.add_argument(
        "--smoother",
        choices=SMOOTHER_PRESETS,
        default="pose",
        help="with --smooth: pose (default: the cutoff follows the whole figure's speed) or demo "
        "(Lightweight OpenPose demo's parameters, a speed per keypoint)",
    )
    p.set_defaults(func=_cmd_predict)


def add_eval_parser(sub: Any) -> None:
    """The ``eval`` subcommand."""
    p = sub.add_parser(
        "eval", help="COCO OKS AP (or PCK, AUC, EPE, NME) of a model on a COCO keypoint dataset"
    )
    _add_inference_args(p, gt_boxes=True)
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
