"""COCO keypoint evaluation (OKS AP/AR with pycocotools) for any schema.

Poses (``structures.Pose``) are in **image pixels** and in **schema order**, virtual keypoints
included; ``data.results`` writes and reads them as a COCO results JSON.

OKS uses the schema's sigmas of the real keypoints (reordered to the file's order), so custom
datasets are scored with their own sigmas, not COCO's 17.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from tqdm import tqdm

from posekit.codecs.base import Codec
from posekit.data.coco import CocoKeypointDataset, ImageRecord, load_coco_json
from posekit.data.results import (
    PosesPerImage,
    file_index,
    poses_to_coco_results,
    read_coco_results,
)
from posekit.errors import ConfigError, DatasetError
from posekit.geometry import compose_affine, invert_affine, place_scaled, transform_points
from posekit.media import prefetch
from posekit.schema import KeypointSchema
from posekit.structures import Pose

logger = logging.getLogger(__name__)

METRICS = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")
"""Keys of ``evaluate_coco``'s result, in the order of ``COCOeval.stats`` for keypoints."""


def evaluate_coco(
    gt: str | Path | Mapping[str, Any],
    poses_per_image: PosesPerImage | str | Path,
    schema: KeypointSchema,
    *,
    category_id: int | None = None,
    results_path: str | Path | None = None,
    image_ids: Iterable[int] | None = None,
    verbose: bool = False,
) -> dict[str, float]:
    """COCO keypoint AP/AR (OKS with the schema's sigmas) of poses against a ground-truth file.

    Args:
        gt: COCO keypoint JSON path, or its loaded dict (not modified).
        poses_per_image: image id -> poses in image pixels (images without an entry have no
            detection), or the path of a COCO results JSON.
        schema: the poses' schema; its real keypoints must be the file's keypoints (any order).
        category_id: evaluate this category only. Default: every category whose keypoints match
            the schema; several (AP-10K species) are evaluated class-agnostically.
        results_path: also write the poses there as a COCO results JSON.
        image_ids: score these images only (default: every image of the file), e.g. to leave out
            images that could not be read (``predict_dataset``'s ``skipped``).
        verbose: let pycocotools print its progress and table (silenced otherwise).

    Returns:
        ``{"AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl"}`` in [0, 1];
        NaN where COCO leaves a metric undefined (no ground truth in that area range). No
        detections at all gives 0 where ground truth exists.
    """
    data = gt if isinstance(gt, Mapping) else load_coco_json(Path(gt), what="ground truth")
    where = str(gt) if not isinstance(gt, Mapping) else "ground truth"
    cats = _matching_categories(data, schema, category_id, where)
    names = list(cats[0]["keypoints"])
    if isinstance(poses_per_image, (str, Path)):
        poses_per_image = read_coco_results(poses_per_image, schema, keypoint_names=names)
    results = poses_to_coco_results(
        poses_per_image, schema, keypoint_names=names, category_id=int(cats[0]["id"])
    )
    if results_path is not None:
        Path(results_path).parent.mkdir(parents=True, exist_ok=True)
        Path(results_path).write_text(json.dumps(results))

    quiet = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
    with quiet:
        coco_gt = COCO()
        coco_gt.dataset = _prepared_gt(data, cats)
        coco_gt.createIndex()
        known = set(coco_gt.getImgIds())
        unknown = sorted({r["image_id"] for r in results} - known)
        if unknown:
            raise DatasetError(f"{where}: results for image ids not in the file: {unknown[:10]}")
        if results:
            coco_dt = coco_gt.loadRes(copy.deepcopy(results))
        else:  # pycocotools' loadRes cannot take an empty list
            coco_dt = COCO()
            coco_dt.dataset = {
                "images": coco_gt.dataset["images"],
                "annotations": [],
                "categories": coco_gt.dataset["categories"],
            }
            coco_dt.createIndex()
        ev = COCOeval(coco_gt, coco_dt, iouType="keypoints")
        sigmas = np.zeros(len(names))
        sigmas[file_index(schema, names)] = schema.real_sigmas
        ev.params.kpt_oks_sigmas = sigmas
        ev.params.imgIds = sorted(known if image_ids is None else known & set(image_ids))
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {k: (float(v) if v >= 0 else math.nan) for k, v in zip(METRICS, ev.stats, strict=True)}


@dataclass(frozen=True)
class DatasetPoses:
    """A predictor's poses on every readable image of a dataset.

    Attributes:
        poses: image id -> poses in image pixels (every image that could be read).
        skipped: ``(image id, reason)`` of every image that could not be read.
        seconds: wall time of the loop (reading, network, decoding).
    """

    poses: dict[int, list[Pose]]
    skipped: tuple[tuple[int, str], ...]
    seconds: float


def predict_dataset(
    predict: Callable[[np.ndarray, ImageRecord], list[Pose]],
    dataset: CocoKeypointDataset,
    *,
    progress: bool = True,
    desc: str = "predict",
    on_image: Callable[[np.ndarray, list[Pose]], None] | None = None,
) -> DatasetPoses:
    """Poses of every image of ``dataset`` (images read ahead in a thread).

    Args:
        predict: ``(image (H, W, 3) uint8 BGR, its record) -> poses in image pixels``, e.g.
            ``lambda image, rec: predictor.predict(image)``; the record lets a predictor use the
            ground-truth boxes.
        dataset: the images and their records.
        progress, desc: progress bar.
        on_image: sees each image and its poses (e.g. to draw the first few).

    An image that cannot be read (missing, corrupt) is skipped with a warning and listed in
    ``skipped``, as an unreadable training image is; score the rest with ``evaluate_coco(...,
    image_ids=result.poses.keys())``.
    """

    def images() -> Iterator[tuple[ImageRecord, np.ndarray | str]]:
        for i, rec in enumerate(dataset.records):
            try:
                yield rec, dataset.load_image(i)
            except DatasetError as exc:
                yield rec, str(exc)

    poses: dict[int, list[Pose]] = {}
    skipped: list[tuple[int, str]] = []
    start = time.perf_counter()
    items = tqdm(prefetch(images()), total=len(dataset), desc=desc, unit="image",
                 disable=not progress, leave=False)  # fmt: skip
    for rec, image in items:
        if isinstance(image, str):
            logger.warning("%s: skipped an unreadable image: %s", desc, image)
            skipped.append((rec.image_id, image))
            continue
        poses[rec.image_id] = predict(image, rec)
        if on_image is not None:
            on_image(image, poses[rec.image_id])
    return DatasetPoses(poses, tuple(skipped), time.perf_counter() - start)


def perfect_map_poses(
    records: Iterable[Any],
    codec: Codec,
    *,
    max_side: int | None = None,
    config: Any = None,
) -> dict[int, list[Pose]]:
    """Decode the codec's own targets of the ground truth: the AP ceiling of a perfect network.

    Each image's labeled instances are encoded as a network trained to perfection would output
    them (``codec.perfect_outputs``), decoded, and mapped back to image pixels, ready
    for :func:`evaluate_coco`. For codecs of whole images (bottom-up).

    Args:
        records: ``data.coco.ImageRecord`` s (``image_id``, ``width``, ``height``, ``keypoints``).
        codec: the codec of the network (e.g. ``PafCodec``: stride, sigma, paf_width).
        max_side: None encodes at image resolution; else the image is resized so that its longer
            side is ``max_side`` input pixels (as the bottom-up predictor does). The input is then
            padded to a multiple of the stride at the right and bottom.
        config: decoding parameters (default: the codec's).

    Returns:
        image id -> poses in image pixels.
    """
    if max_side is not None and max_side < codec.stride:
        raise ConfigError(f"max_side must be >= the stride {codec.stride}, got {max_side}")
    out = {}
    for rec in records:
        scale = 1.0 if max_side is None else max_side / max(rec.width, rec.height)
        place = place_scaled((rec.width, rec.height), scale, scale, codec.stride)
        kpts = np.array(rec.keypoints, dtype=np.float64, copy=True)
        kpts[..., :2] = transform_points(kpts[..., :2], place.matrix)
        outputs = codec.perfect_outputs(codec.encode(kpts, place.padded))
        out_to_img = compose_affine(invert_affine(place.matrix), codec.output_to_input_matrix())
        out[int(rec.image_id)] = codec.decode(*outputs, affine=out_to_img, config=config)
    return out


def pool_ground_truth(
    sources: Sequence[str | Path | Mapping[str, Any]],
) -> tuple[dict[str, Any], list[dict[int, int]]]:
    """One COCO ground truth from several files, to score them as one set (AP over all images).

    Images and annotations are renumbered (1, 2, ...) so that ids may repeat across sources; the
    keypoint categories must be the same in every source (ids and keypoint names).

    Args:
        sources: COCO keypoint JSON paths or loaded dicts (not modified).

    Returns:
        The pooled ground truth and, per source, its image id -> pooled image id (to renumber the
        poses of that source, e.g. ``{ids[i]: p for i, p in poses.items()}``).
    """
    if not sources:
        raise ConfigError("pool_ground_truth: no ground-truth source given")
    loaded = [
        (source, "ground truth")
        if isinstance(source, Mapping)
        else (load_coco_json(Path(source), what="ground truth"), str(source))
        for source in sources
    ]

    def schema_of(data: Mapping[str, Any]) -> list[tuple[Any, list[str]]]:
        return [(c.get("id"), list(c.get("keypoints") or [])) for c in data["categories"]]

    first, first_where = loaded[0]
    pooled: dict[str, Any] = {
        "images": [],
        "annotations": [],
        "categories": copy.deepcopy(first["categories"]),
    }
    id_maps: list[dict[int, int]] = []
    for data, where in loaded:
        if schema_of(data) != schema_of(first):
            raise DatasetError(
                f"{where}: its categories (id, keypoints) differ from those of {first_where}; "
                "only files of one keypoint schema can be pooled"
            )
        ids = {int(im["id"]): len(pooled["images"]) + n + 1 for n, im in enumerate(data["images"])}
        pooled["images"] += [{**im, "id": ids[int(im["id"])]} for im in data["images"]]
        for ann in data["annotations"]:
            if int(ann["image_id"]) not in ids:
                raise DatasetError(
                    f"{where}: annotation {ann.get('id')} refers to image {ann['image_id']}, "
                    "which the file does not list"
                )
            new_id = len(pooled["annotations"]) + 1
            pooled["annotations"].append(
                {**ann, "id": new_id, "image_id": ids[int(ann["image_id"])]}
            )
        id_maps.append(ids)
    return pooled, id_maps


def format_metrics(metrics: Mapping[str, float]) -> str:
    """A two-line table of the metrics (for the CLI and benchmarks)."""
    keys = [k for k in METRICS if k in metrics]
    head = " ".join(f"{k:>6}" for k in keys)
    row = " ".join(f"{metrics[k]:6.3f}" for k in keys)
    return f"{head}\n{row}"


# ---------------------------------------------------------------------- helpers
def _matching_categories(
    data: Mapping[str, Any], schema: KeypointSchema, category_id: int | None, where: str
) -> list[Mapping[str, Any]]:
    real = {schema.keypoints[i] for i in schema.real_indices}
    cats = [c for c in data["categories"] if c.get("keypoints")]
    if category_id is not None:
        cats = [c for c in cats if c.get("id") == category_id]
        if not cats:
            raise DatasetError(f"{where}: no keypoint category with id {category_id}")
    matching = [c for c in cats if set(c["keypoints"]) == real and len(c["keypoints"]) == len(real)]
    if not matching:
        found = {c.get("id"): len(c["keypoints"]) for c in cats}
        raise DatasetError(
            f"{where}: no category has the real keypoints of schema '{schema.name}' "
            f"({len(real)} names); keypoint categories (id: count): {found}"
        )
    return matching


def _prepared_gt(data: Mapping[str, Any], cats: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Annotations of the chosen categories, with the fields COCOeval needs filled in.

    Several categories (with the same keypoints) are relabeled as the first one: pycocotools'
    keypoint OKS ignores ``useCats = 0``, so class-agnostic evaluation needs one category.
    """
    cat_ids = {c.get("id") for c in cats}
    first = int(cats[0]["id"])
    anns = []
    for ann in data["annotations"]:
        if ann.get("category_id") not in cat_ids:
            continue
        ann = dict(ann, category_id=first)
        vis = np.asarray(ann.get("keypoints") or [0, 0, 0], dtype=np.float64)[2::3]
        ann.setdefault("num_keypoints", int((vis > 0).sum()))
        ann.setdefault("iscrowd", 0)
        if "area" not in ann:
            _, _, w, h = ann["bbox"]
            ann["area"] = float(w) * float(h)
        anns.append(ann)
    return {"images": list(data["images"]), "annotations": anns, "categories": [dict(cats[0])]}
