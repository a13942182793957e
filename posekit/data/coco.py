"""COCO keypoint datasets: validated per-image records and a map-style dataset.

A COCO keypoint file holds ``images``, ``annotations`` and ``categories``. Reading it produces one
``ImageRecord`` per image: the instances with at least one labeled keypoint as an ``(N, K, 3)``
float32 array in **image pixels** and in **schema order** (virtual keypoints filled from the
schema), their xyxy boxes, and the regions to ignore in the loss: crowd annotations and people
without any keypoint label (their segmentation, polygon or RLE, or else their box).

Every problem is reported with the file, image id and annotation id. ``strict=True`` raises a
``DatasetError`` at the first one; ``strict=False`` skips the bad record with a warning and keeps a
``Problem`` for it in ``dataset.problems``. A skipped annotation whose box is valid still becomes
an ignore region, so a person with a broken label is never trained as background; a skipped
image drops its annotations, and both counts are reported. Images with no instance are kept (real
negatives).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from posekit.data.images import read_image
from posekit.errors import DatasetError, SchemaError
from posekit.schema import KeypointSchema
from posekit.schema_skeleton import skeleton_from_data

logger = logging.getLogger(__name__)

_IMAGE_FIELDS = ("id", "file_name", "width", "height")
_ANN_FIELDS = ("id", "image_id", "category_id")
CHECK_IMAGES = ("none", "exists", "decode")


@dataclass(frozen=True)
class Problem:
    """One bad record: where it is and what is wrong."""

    file: str
    image_id: int | None
    annotation_id: int | None
    message: str

    def __str__(self) -> str:
        where = [self.file]
        if self.image_id is not None:
            where.append(f"image id {self.image_id}")
        if self.annotation_id is not None:
            where.append(f"annotation id {self.annotation_id}")
        return f"{', '.join(where)}: {self.message}"


@dataclass(frozen=True, eq=False)
class ImageRecord:
    """One image and its labels, in image pixels.

    Attributes:
        image_id: COCO image id.
        file: image path (image root / ``file_name``).
        width, height: image size from the JSON, pixels.
        keypoints: (N, K, 3) float32 — x, y image pixels, v in {0, 1, 2}; schema order, virtual
            keypoints filled; unlabeled keypoints are (0, 0, 0).
        boxes: (N, 4) float32 xyxy image pixels.
        areas: (N,) float32 COCO ``area`` (segment area; box area when absent).
        annotation_ids: (N,) int64.
        ignore_regions: COCO segmentations (polygon lists or RLE dicts) or xywh boxes of crowds,
            people without keypoint labels and skipped annotations.
    """

    image_id: int
    file: Path
    width: int
    height: int
    keypoints: np.ndarray
    boxes: np.ndarray
    areas: np.ndarray
    annotation_ids: np.ndarray
    ignore_regions: tuple[Any, ...] = ()
    num_crowd: int = 0

    @property
    def num_instances(self) -> int:
        """N, the instances with at least one labeled keypoint."""
        return int(self.keypoints.shape[0])

    def ignore_mask(self) -> np.ndarray:
        """(H, W) bool, True inside every ignore region (crowds, unlabeled people)."""
        mask = np.zeros((self.height, self.width), dtype=bool)
        for region in self.ignore_regions:
            mask |= _region_mask(region, self.height, self.width)
        return mask


@dataclass(frozen=True, eq=False)
class Sample:
    """A loaded (and possibly augmented) training sample.

    ``image`` (H, W, 3) uint8 BGR and ``keypoints`` (N, K, 3) float32 are in the space that
    ``matrix`` (2, 3) maps image pixels to (identity without a transform); ``ignore_mask`` (H, W) bool.
    """

    image_id: int
    image: np.ndarray
    keypoints: np.ndarray
    ignore_mask: np.ndarray
    matrix: np.ndarray
    flipped: bool = False


class CocoKeypointDataset:
    """A COCO keypoint file read into validated ``ImageRecord`` s (map-style dataset).

    Args:
        ann_file: COCO keypoint JSON.
        image_root: folder that every ``images[].file_name`` is relative to.
        schema: a ``KeypointSchema``, a built-in name or a YAML path; default: built from the file's
            category (``KeypointSchema.from_coco``). Keypoints are matched by name, so a schema may
            order them differently or add virtual keypoints.
        category_id: read only this category. Default: every category with keypoints, which must all
            share one keypoint list (as the species of AP-10K do).
        strict: raise at the first problem (True) or skip bad records with a warning (False).
        check_images: ``"exists"`` (default, cheap), ``"decode"`` (read every image once) or
            ``"none"``.
        transform: optional callable ``(image, keypoints, ignore_mask, rng) -> augmented`` with
            attributes ``image``, ``keypoints``, ``ignore_mask``, ``matrix``, ``flipped``
            (``posekit.data.transforms.RandomAffine``).
        seed: base seed of the per-sample random generator (``seed``, ``epoch``, index).
    """

    def __init__(
        self,
        ann_file: str | Path,
        image_root: str | Path,
        *,
        schema: KeypointSchema | str | Path | None = None,
        category_id: int | None = None,
        strict: bool = True,
        check_images: str = "exists",
        transform: Callable[..., Any] | None = None,
        seed: int = 0,
    ) -> None:
        if check_images not in CHECK_IMAGES:
            raise ValueError(f"check_images must be one of {CHECK_IMAGES}, got {check_images!r}")
        self.ann_file = Path(ann_file)
        self.image_root = Path(image_root)
        self.strict = strict
        self.transform = transform
        self.seed = seed
        self.epoch = 0
        self.problems: list[Problem] = []
        self.skipped_images = 0
        self.skipped_annotations = 0
        data = load_coco_json(self.ann_file)
        self.categories = self._select_categories(data, category_id)
        first = self.categories[0]
        self.source_keypoints: tuple[str, ...] = tuple(first["keypoints"])
        if schema is None:
            try:
                self.schema = KeypointSchema.from_coco(first)
            except SchemaError as exc:
                raise DatasetError(
                    f"{self.ann_file}: {exc}. The keypoint schema cannot be read from this file: "
                    f"give it yourself with --schema FILE.yaml (schema= in Python). `posekit "
                    f"schema --from-coco {self.ann_file} --drop-invalid-limbs --out FILE.yaml` "
                    f"writes this category's schema without the skeleton pairs it cannot use, to "
                    f"check and complete"
                ) from None
        else:
            self.schema = KeypointSchema.load(schema)
        try:
            self._source_index = self.schema.source_index(
                self.source_keypoints, where=f"{self.ann_file} category {first.get('id')}"
            )
        except SchemaError as exc:
            raise DatasetError(str(exc)) from None
        self.records: list[ImageRecord] = self._read_records(data, check_images)
        if self.problems:
            logger.warning(
                "%s: %d problem(s); skipped %d image(s) and %d annotation(s) (see .problems)",
                self.ann_file,
                len(self.problems),
                self.skipped_images,
                self.skipped_annotations,
            )

    # ------------------------------------------------------------------ reading
    def _problem(self, message: str, image_id: Any = None, ann_id: Any = None) -> None:
        problem = Problem(str(self.ann_file), _as_id(image_id), _as_id(ann_id), message)
        if self.strict:
            raise DatasetError(str(problem))
        logger.warning("skipped: %s", problem)
        self.problems.append(problem)

    def _select_categories(self, data: Mapping[str, Any], category_id: int | None) -> list[dict]:
        cats = [c for c in data["categories"] if isinstance(c, Mapping) and c.get("keypoints")]
        if category_id is not None:
            cats = [c for c in cats if c.get("id") == category_id]
            if not cats:
                ids = [c.get("id") for c in data["categories"]]
                raise DatasetError(
                    f"{self.ann_file}: no keypoint category with id {category_id} (ids: {ids})"
                )
        if not cats:
            raise DatasetError(f"{self.ann_file}: no category has a 'keypoints' list")
        first = list(cats[0]["keypoints"])
        other = [c.get("id") for c in cats if list(c["keypoints"]) != first]
        if other:
            raise DatasetError(
                f"{self.ann_file}: categories {other} have other keypoints than category "
                f"{cats[0].get('id')}; choose one with category_id"
            )
        return [dict(c) for c in cats]

    def _read_records(self, data: Mapping[str, Any], check_images: str) -> list[ImageRecord]:
        images: dict[int, Mapping[str, Any]] = {}
        for n, img in enumerate(data["images"]):
            missing = [f for f in _IMAGE_FIELDS if not isinstance(img, Mapping) or f not in img]
            img_id = img.get("id") if isinstance(img, Mapping) else None
            if missing:
                self._problem(f"images[{n}] lacks field(s) {missing}", img_id)
                self.skipped_images += 1
            elif not _positive_int(img["width"]) or not _positive_int(img["height"]):
                self._problem(f"bad size {img['width']}x{img['height']}", img_id)
                self.skipped_images += 1
            elif img_id in images:
                self._problem("duplicate image id", img_id)
                self.skipped_images += 1
            elif check_images != "none" and not self._image_ok(img, check_images):
                self.skipped_images += 1
            else:
                images[img_id] = img
        cat_ids = {c["id"] for c in self.categories}
        per_image: dict[int, list[Mapping[str, Any]]] = {i: [] for i in images}
        all_image_ids = {img.get("id") for img in data["images"] if isinstance(img, Mapping)}
        for n, ann in enumerate(data["annotations"]):
            if not isinstance(ann, Mapping):
                self._problem(f"annotations[{n}] is not an object")
                self.skipped_annotations += 1
                continue
            if ann.get("category_id") not in cat_ids:
                continue  # another category: not ours, not a problem
            missing = [f for f in _ANN_FIELDS if f not in ann]
            if missing:
                self._problem(
                    f"annotations[{n}] lacks field(s) {missing}", ann.get("image_id"), ann.get("id")
                )
                self.skipped_annotations += 1
            elif ann["image_id"] in per_image:
                per_image[ann["image_id"]].append(ann)
            elif ann["image_id"] in all_image_ids:
                self.skipped_annotations += 1  # its image was skipped (already reported)
            else:
                self._problem("image_id not in 'images'", ann["image_id"], ann["id"])
                self.skipped_annotations += 1
        return [self._record(images[i], per_image[i]) for i in images]

    def _image_ok(self, img: Mapping[str, Any], check: str) -> bool:
        path = self.image_root / str(img["file_name"])
        if check == "exists":
            if path.is_file():
                return True
            self._problem(f"image file not found: {path}", img["id"])
            return False
        try:
            image = read_image(path)
        except DatasetError as exc:
            self._problem(str(exc), img["id"])
            return False
        if image.shape[:2] != (int(img["height"]), int(img["width"])):
            self._problem(
                f"{path} is {image.shape[1]}x{image.shape[0]} but the JSON says "
                f"{img['width']}x{img['height']}",
                img["id"],
            )
            return False
        return True

    def _record(self, img: Mapping[str, Any], anns: Sequence[Mapping[str, Any]]) -> ImageRecord:
        width, height = int(img["width"]), int(img["height"])
        k_src = len(self.source_keypoints)
        kpts, boxes, areas, ids, ignore = [], [], [], [], []
        num_crowd = 0
        for ann in anns:
            try:
                box = _parse_box(ann.get("bbox"), width, height)
                if ann.get("iscrowd", 0):
                    num_crowd += 1
                    ignore.append(ann.get("segmentation") or box)
                    continue
                points = _parse_keypoints(ann.get("keypoints"), k_src, width, height)
            except DatasetError as exc:
                self._problem(str(exc), img["id"], ann["id"])
                self.skipped_annotations += 1
                if isinstance(ann.get("bbox"), Sequence) and _box_ok(ann["bbox"]):
                    ignore.append(list(ann["bbox"]))
                continue
            if not (points[:, 2] > 0).any():
                ignore.append(ann.get("segmentation") or box)
                continue
            kpts.append(points)
            boxes.append([box[0], box[1], box[0] + box[2], box[1] + box[3]])
            areas.append(float(ann.get("area") or box[2] * box[3]))
            ids.append(int(ann["id"]))
        k = self.schema.num_keypoints
        out = np.zeros((len(kpts), k, 3), dtype=np.float32)
        if kpts:
            src = np.stack(kpts)
            out[:, list(self.schema.real_indices)] = src[:, self._source_index]
            self.schema.add_virtual(out)
        return ImageRecord(
            image_id=img["id"],
            file=self.image_root / str(img["file_name"]),
            width=width,
            height=height,
            keypoints=out,
            boxes=np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
            areas=np.asarray(areas, dtype=np.float32),
            annotation_ids=np.asarray(ids, dtype=np.int64),
            ignore_regions=tuple(ignore),
            num_crowd=num_crowd,
        )

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return len(self.records)

    @property
    def num_instances(self) -> int:
        """Instances with at least one labeled keypoint, over all images."""
        return sum(r.num_instances for r in self.records)

    def with_learned_skeleton(self) -> KeypointSchema:
        """The schema with a skeleton learned from this file's labelled instances
        (``schema_skeleton.skeleton_from_data``, instance size: the square root of the box area),
        for a schema that has none (a bottom-up model needs limbs). Logs the limbs; the dataset
        keeps its own schema. DatasetError when no instance has two labelled keypoints."""
        kpts = [r.keypoints for r in self.records if len(r.keypoints)]
        if not kpts:
            raise DatasetError(f"{self.ann_file}: no labelled instance to learn a skeleton from")
        keypoints = np.concatenate(kpts)
        boxes = np.concatenate([r.boxes for r in self.records if len(r.keypoints)])
        scales = np.sqrt(np.prod(np.clip(boxes[:, 2:] - boxes[:, :2], 0, None), axis=1))
        pairs = skeleton_from_data(keypoints, scales, self.schema.flip_index)
        if not pairs:
            raise DatasetError(
                f"{self.ann_file}: no two keypoints of schema '{self.schema.name}' are labelled "
                f"together in its instances, so no skeleton can be learned; give one in a schema "
                f"YAML (--schema FILE.yaml, 'skeleton: [[a, b], ...]')"
            )
        names = self.schema.keypoints
        reached = {i for pair in pairs for i in pair}
        logger.info(
            "schema '%s' has no skeleton: learned %d limbs from the %d instances of %s (pairs of "
            "keypoints whose distance is short and steady, mirror-symmetric): %s%s",
            self.schema.name,
            len(pairs),
            len(keypoints),
            self.ann_file,
            ", ".join(f"{names[a]}-{names[b]}" for a, b in pairs[:40]),
            f", ... ({len(pairs) - 40} more)" if len(pairs) > 40 else "",
        )
        if len(reached) < len(names):
            logger.warning(
                "schema '%s': %d keypoint(s) never labelled together with another one stay out "
                "of the learned skeleton (no limb): %s",
                self.schema.name,
                len(names) - len(reached),
                ", ".join(n for i, n in enumerate(names) if i not in reached)[:300],
            )
        return dataclasses.replace(self.schema, skeleton=pairs)

    def set_epoch(self, epoch: int) -> None:
        """Change the augmentation randomness (call once per epoch, as with DistributedSampler)."""
        self.epoch = int(epoch)

    def load_image(self, index: int) -> np.ndarray:
        """BGR uint8 image of record ``index`` (DatasetError names the file and image id)."""
        rec = self.records[index]
        return read_image(rec.file, where=f"{self.ann_file}, image id {rec.image_id}")

    def __getitem__(self, index: int) -> Sample:
        rec = self.records[index]
        image = self.load_image(index)
        mask = rec.ignore_mask()
        if self.transform is None:
            return Sample(rec.image_id, image, rec.keypoints.copy(), mask, np.eye(2, 3))
        rng = np.random.default_rng([self.seed, self.epoch, index])
        out = self.transform(image, rec.keypoints, mask, rng)
        return Sample(
            rec.image_id, out.image, out.keypoints, out.ignore_mask, out.matrix, out.flipped
        )


# ---------------------------------------------------------------------- parsing helpers
def load_coco_json(path: str | Path, *, what: str = "annotation file") -> dict[str, Any]:
    """A COCO keypoint file as a dict whose ``images``, ``annotations`` and ``categories`` are
    lists (nothing else is checked). ``what`` names the file in errors.

    Raises:
        DatasetError: the file is missing, not UTF-8, malformed JSON, or not a COCO object.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DatasetError(f"{what} not found: {path}") from None
    except OSError as exc:
        raise DatasetError(f"cannot read {what} {path}: {exc}") from None
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DatasetError(
            f"{path}: malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    if not isinstance(data, dict):
        raise DatasetError(
            f"{path}: expected a COCO object, got a JSON {type(data).__name__} "
            "(a results/detections file is not ground truth)"
        )
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise DatasetError(f"{path}: missing or non-list field '{key}'")
    return data


def _as_id(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _positive_int(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def _box_ok(box: Any) -> bool:
    try:
        vals = [float(v) for v in box]
    except (TypeError, ValueError):
        return False
    return len(vals) == 4 and all(np.isfinite(vals)) and vals[2] >= 0 and vals[3] >= 0


def _parse_box(box: Any, width: int, height: int) -> list[float]:
    if box is None:
        raise DatasetError("missing field 'bbox'")
    if not _box_ok(box):
        raise DatasetError(f"bbox must be 4 finite numbers x, y, w >= 0, h >= 0; got {box!r}")
    return [float(v) for v in box]


def _parse_keypoints(values: Any, k: int, width: int, height: int) -> np.ndarray:
    """(K, 3) float32 from a flat COCO list; v=0 points are zeroed."""
    if values is None:
        raise DatasetError("missing field 'keypoints'")
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise DatasetError("keypoints must be a flat list of numbers") from None
    if arr.ndim != 1 or arr.size != 3 * k:
        raise DatasetError(
            f"keypoints has {arr.size} values, expected {3 * k} (x, y, v for {k} keypoints)"
        )
    arr = arr.reshape(k, 3)
    if not np.isfinite(arr).all():
        raise DatasetError("keypoints contain NaN or infinity")
    v = arr[:, 2]
    bad_v = ~np.isin(v, (0.0, 1.0, 2.0))
    if bad_v.any():
        raise DatasetError(
            f"visibility must be 0, 1 or 2; got {v[bad_v][:3].tolist()} at keypoint(s) "
            f"{np.flatnonzero(bad_v)[:3].tolist()}"
        )
    labeled = v > 0
    # COCO coordinates are continuous pixels; a point on the far border (x == width) is allowed.
    outside = labeled & (
        (arr[:, 0] < 0) | (arr[:, 0] > width) | (arr[:, 1] < 0) | (arr[:, 1] > height)
    )
    if outside.any():
        i = int(np.flatnonzero(outside)[0])
        raise DatasetError(
            f"keypoint {i} at ({arr[i, 0]:g}, {arr[i, 1]:g}) is outside the {width}x{height} image"
        )
    arr[~labeled] = 0.0
    return arr.astype(np.float32)


def _region_mask(region: Any, height: int, width: int) -> np.ndarray:
    """(H, W) bool mask of a COCO segmentation (polygons / RLE) or an xywh box."""
    if isinstance(region, Mapping):  # RLE, compressed or not
        rle = region
        if isinstance(rle.get("counts"), list):
            rle = mask_utils.frPyObjects(dict(rle), height, width)
        return mask_utils.decode(rle).astype(bool)
    if isinstance(region, Sequence) and region and isinstance(region[0], Sequence):
        polys = [p for p in region if len(p) >= 6]
        if not polys:
            return np.zeros((height, width), dtype=bool)
        rles = mask_utils.frPyObjects([list(map(float, p)) for p in polys], height, width)
        return mask_utils.decode(mask_utils.merge(rles)).astype(bool)
    x, y, w, h = (float(v) for v in region)  # box
    mask = np.zeros((height, width), dtype=bool)
    x0, y0 = max(int(np.floor(x)), 0), max(int(np.floor(y)), 0)
    mask[y0 : int(np.ceil(y + h)), x0 : int(np.ceil(x + w))] = True
    return mask


__all__ = ["CocoKeypointDataset", "ImageRecord", "Problem", "Sample"]
