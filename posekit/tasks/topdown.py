"""The top-down task: one training item per labelled person, its augmented crop and the codec's
targets; the loss of the codec's kind; validation with the ground-truth boxes.

Items: every instance of the dataset with at least one labelled keypoint and a box of at least
one pixel each way (``CocoKeypointDataset`` already turns crowds and people without keypoints
into ignore regions, which top-down has no use for); the others are skipped and counted. An item
draws its augmentation (``data.crops.RandomCrop``) from ``(seed, epoch, item index)``, so a
resumed run sees the same crops. An image that cannot be read gives ``None`` (``tasks.base.
collate`` drops and counts it).

Losses by the codec's outputs (``models.losses``): heatmaps -> keypoint-weighted MSE, SimCC ->
KL divergence, coordinates -> weighted L1, coordinates + scales (RLE) -> Laplace likelihood.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from posekit.codecs.topdown import TopDownCodec
from posekit.data.coco import CocoKeypointDataset, ImageRecord
from posekit.data.crops import CropConfig, RandomCrop
from posekit.errors import ConfigError, DatasetError
from posekit.models import zoo
from posekit.models.losses import (
    KeypointL1Loss,
    KeypointMSELoss,
    LossParts,
    RleLoss,
    SimccKLLoss,
)
from posekit.structures import InputSpec, Pose
from posekit.tasks.base import Batch, TrainItem, validation_predictor

logger = logging.getLogger(__name__)

__all__ = ["TopDownItems", "TopDownTask"]

MIN_BOX = 1.0
"""Boxes narrower or lower than this (image pixels) are degenerate: no crop is made of them."""

_Loss = Callable[[Sequence[torch.Tensor], dict[str, torch.Tensor]], torch.Tensor]

_LOSSES: dict[tuple[str, ...], tuple[str, Callable[[float], nn.Module], Callable[..., Any]]] = {
    ("heatmaps",): ("heatmaps", KeypointMSELoss,
                    lambda f, o, t: f(o[0], t["heatmaps"], t["keypoint_weights"])),
    ("simcc_x", "simcc_y"): ("simcc", lambda fg: SimccKLLoss(),
                             lambda f, o, t: f(o[0], o[1], t["simcc_x"], t["simcc_y"],
                                               t["keypoint_weights"])),
    ("coords",): ("coords", lambda fg: KeypointL1Loss(),
                  lambda f, o, t: f(o[0], t["coords"], t["keypoint_weights"])),
    ("coords", "sigmas"): ("rle", lambda fg: RleLoss(),
                           lambda f, o, t: f(o[0], o[1], t["coords"], t["keypoint_weights"])),
}  # fmt: skip
"""Codec outputs -> (loss part name, the loss module of a foreground weight (heatmaps only), how
it takes outputs and targets)."""


class TopDownItems(Dataset):
    """Map-style dataset of one ``TrainItem`` per labelled instance crop (or ``None`` for an
    unreadable image).

    Args:
        dataset: the COCO dataset (its ``seed`` and ``epoch`` seed the augmentation).
        codec: encodes each crop's keypoints.
        crop: the crop transform (``RandomCrop`` for training, ``FixedCrop`` for a fixed one).
        input_spec: normalisation of the crops.
    """

    def __init__(
        self,
        dataset: CocoKeypointDataset,
        codec: TopDownCodec,
        crop: Callable[..., Any],
        input_spec: InputSpec,
    ) -> None:
        self.dataset, self.codec, self.crop, self.input_spec = dataset, codec, crop, input_spec
        self.index: list[tuple[int, int]] = []
        self.skipped = 0
        for i, rec in enumerate(dataset.records):
            for n in range(rec.num_instances):
                x1, y1, x2, y2 = rec.boxes[n]
                if x2 - x1 >= MIN_BOX and y2 - y1 >= MIN_BOX and (rec.keypoints[n, :, 2] > 0).any():
                    self.index.append((i, n))
                else:
                    self.skipped += 1
        if self.skipped:
            logger.info("%d instance(s) with a degenerate box left out of the crops", self.skipped)
        if not self.index:
            raise DatasetError(f"{dataset.ann_file}: no instance with labelled keypoints to crop")

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item: int) -> TrainItem | None:
        i, n = self.index[item]
        rec = self.dataset.records[i]
        try:
            image = self.dataset.load_image(i)
        except DatasetError as exc:
            logger.warning("skipping a training crop: %s", exc)
            return None
        rng = np.random.default_rng([self.dataset.seed, self.dataset.epoch, item])
        crop = self.crop(image, rec.keypoints[n], rec.boxes[n], rng)
        targets = self.codec.encode(crop.keypoints[None]).arrays()
        return TrainItem(
            torch.from_numpy(self.input_spec.normalize(crop.image)),
            {k: torch.from_numpy(np.ascontiguousarray(v[0])) for k, v in targets.items()},
        )


class TopDownTask:
    """Training recipe of top-down models (``tasks.base.Task``).

    Args:
        codec: the top-down codec (crop size, targets, decoding, flip).
        crop: the augmentation; its ``input_size`` must be the codec's (left at its default, it
            takes the codec's).
        input_spec: preprocessing of the crops (default posekit's: BGR, (pixel - 128) / 256).
        fg_weight: heatmap codecs: ``KeypointMSELoss``'s foreground weight (default 0, MMPose's
            loss; ``posekit train`` passes ``train.fg_weights[0]``, 10 by default).
    """

    family: ClassVar[str] = "topdown"

    def __init__(
        self,
        codec: TopDownCodec,
        crop: CropConfig | None = None,
        *,
        input_spec: InputSpec | None = None,
        fg_weight: float = 0.0,
    ) -> None:
        crop = crop or CropConfig()
        if crop.input_size != codec.input_size:
            if crop.input_size != CropConfig().input_size:
                raise ConfigError(
                    f"data.crop.input_size {crop.input_size} differs from the codec's input_size "
                    f"{codec.input_size}: set one (codec.input_size) or make them equal"
                )
            crop = dataclasses.replace(crop, input_size=codec.input_size)
        if codec.layout.names not in _LOSSES:
            raise ConfigError(f"no top-down loss for the outputs {codec.layout.names}")
        self.codec, self.crop = codec, crop
        w, h = codec.input_size
        self.input_spec = input_spec or InputSpec(
            size_divisor=1, height=h, width=w, box_padding=crop.padding
        )
        name, loss, self._apply = _LOSSES[codec.layout.names]
        self.loss_names = (name,)
        self.criterion = loss(fg_weight)

    @classmethod
    def from_config(cls, codec: TopDownCodec, config: Any) -> TopDownTask:
        """The task of a run's config: ``data.crop``, ``train.fg_weights[0]`` (heatmaps), and
        the normalisation of the zoo model's input spec (ImageNet RGB for HRNet, whose published
        weights expect it)."""
        w, h = codec.input_size
        spec = dataclasses.replace(zoo.MODELS[config.model.name].input, width=w, height=h,
                                   box_padding=config.data.crop.padding)  # fmt: skip
        return cls(codec, config.data.crop, input_spec=spec, fg_weight=config.train.fg_weights[0])

    def train_dataset(self, dataset: CocoKeypointDataset) -> Dataset:
        """One augmented crop per labelled instance of ``dataset``, with the codec's targets."""
        return TopDownItems(dataset, self.codec, RandomCrop(self.codec.schema, self.crop),
                            self.input_spec)  # fmt: skip

    def loss(self, outputs: Sequence[Sequence[torch.Tensor]], batch: Batch) -> LossParts:
        """The codec's loss of every stage's outputs (one stage for these networks)."""
        parts = []
        total = batch.images.new_zeros(())
        for stage in outputs:
            value = self._apply(self.criterion, [o.float() for o in stage], batch.targets)
            total = total + value
            parts.append(float(value.detach()))
        return LossParts(total, {self.loss_names[0]: tuple(parts)})

    def predictor(self, model: nn.Module, *, flip: bool, device: Any, channels_last: bool) -> Any:
        """A ``TopDownPredictor`` of ``model`` (flip test when asked and the codec supports it)."""
        return validation_predictor(self, model, flip=flip, device=device,
                                    channels_last=channels_last)  # fmt: skip

    def predict(self, predictor: Any, image: np.ndarray, record: ImageRecord) -> list[Pose]:
        """Poses of the record's ground-truth boxes (people with labelled keypoints)."""
        if not record.num_instances:
            return []
        poses: list[Pose] = predictor.predict(image, record.boxes)
        return poses

    def describe(self) -> str:
        """One line for the run's log."""
        w, h = self.codec.input_size
        return f"person crops at {w}x{h}, {self.codec.name} targets"
