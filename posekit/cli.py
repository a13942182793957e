"""The ``posekit`` command line: ``train``, ``eval``, ``predict``, ``export``, ``check-data``,
``synth``, ``schema``.

The CLI only parses arguments, calls the library and prints results; errors for bad input are
``posekit.errors.PosekitError`` s, printed as one line with exit code 2 (``check-data``: 1 when the
dataset has problems).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from posekit import __version__
from posekit.cli_export import add_export_parser
from posekit.cli_infer import add_eval_parser, add_predict_parser
from posekit.errors import PosekitError
from posekit.schema import KeypointSchema

if TYPE_CHECKING:
    pass

logger = logging.getLogger("posekit")
T = TypeVar("T")


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
    if args.video:
        return _synth_clips(args, schema, out)
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


def _synth_clips(args: argparse.Namespace, schema: KeypointSchema, out: Path) -> int:
    """``posekit synth --video``: clips of walking, crossing figures with their track ids."""
    from posekit.data.synth_video import ClipConfig, write_clips

    config = ClipConfig(num_clips=args.clips, frames=args.frames, fps=args.fps,
                        image_size=tuple(args.clip_size), seed=args.seed,
                        part_colors=args.part_colors)  # fmt: skip
    path = write_clips(out, schema, config)
    print(f"{args.clips} clips of {args.frames} frames ({config.image_size[0]}x"
          f"{config.image_size[1]}, {args.fps:g} fps) -> {out / 'videos'}, frames in "
          f"{out / 'images'}, annotations with track ids -> {path}")  # fmt: skip
    schema.to_yaml(out / "schema.yaml")
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
        if args.learn_skeleton:
            from posekit.data.coco import CocoKeypointDataset

            data = CocoKeypointDataset(args.from_coco, ".", schema=schema, check_images="none",
                                       category_id=cats[0].get("id"), strict=False)  # fmt: skip
            schema = data.with_learned_skeleton()
    elif args.learn_skeleton:
        print("error: --learn-skeleton needs --from-coco (the instances to learn from)",
              file=sys.stderr)  # fmt: skip
        return 2
    else:
        schema = KeypointSchema.load(args.name)
    print(schema.describe())
    if args.out:
        schema.to_yaml(args.out)
        print(f"written to {args.out}")
    elif args.json:
        print(json.dumps(schema.to_dict(), indent=1))
    return 0


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
    clips = p.add_argument_group("video clips (--video)")
    clips.add_argument(
        "--video",
        action="store_true",
        help="write clips of figures that walk, cross and occlude each other, with track ids "
        "(PoseTrack-style JSON: video_id, frame_id, track_id)",
    )
    clips.add_argument("--clips", type=int, default=4, help="number of clips (default 4)")
    clips.add_argument("--frames", type=int, default=60, help="frames per clip (default 60)")
    clips.add_argument("--fps", type=float, default=15.0, help="frame rate (default 15)")
    clips.add_argument("--clip-size", type=int, nargs=2, default=[320, 240], metavar=("W", "H"),
                       help="frame size (default 320 240)")  # fmt: skip
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
    p.add_argument(
        "--learn-skeleton",
        action="store_true",
        help="with --from-coco: limbs learned from the file's labelled instances instead of its "
        "skeleton (what `posekit train` does for a bottom-up model when the schema has none)",
    )
    p.add_argument("--out", help="write the schema as YAML")
    p.add_argument("--json", action="store_true", help="print the schema as JSON")
    p.set_defaults(func=_cmd_schema)

    add_predict_parser(sub)
    add_eval_parser(sub)
    add_export_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # argparse takes positionals in one run: `train --data F epochs=5` leaves the overrides after
    # the options over; they are overrides all the same
    if extra and getattr(args, "overrides", None) is not None:
        if not all("=" in e and not e.startswith("-") for e in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = [*args.overrides, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
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
