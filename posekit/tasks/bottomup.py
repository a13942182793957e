"""The bottom-up (PAF) task: whole images, heatmap + PAF targets, masked MSE, the PAF predictor.

One training item is one image: color jitter and one random scale / rotate / shift / flip warp
(``data.transforms.RandomAffine``) to the input size, then ``PafCodec.encode`` of every labelled
person with the crowd / unlabelled regions as the loss mask. An image that cannot be read gives
``None`` (``tasks.base.collate`` drops and counts it).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from posekit.codecs.paf import PafCodec
from posekit.data.coco import CocoKeypointDataset, ImageRecord
from posekit.data.transforms import AugmentConfig, RandomAffine
from posekit.errors import ConfigError, DatasetError
from posekit.models.losses import BottomUpLoss, LossParts
from posekit.structures import InputSpec, Pose
from posekit.tasks.base import Batch, TrainItem, validation_predictor

logger = logging.getLogger(__name__)

__all__ = ["BottomUpItems", "BottomUpTask"]


class BottomUpItems(Dataset):
    """Map-style dataset of ``TrainItem`` (or ``None`` for an unreadable image).

    Args:
        dataset: a COCO dataset whose ``transform`` yields ``input_size`` images.
        codec: encodes keypoints and the ignore mask into targets.
        input_size: (W, H) network input, multiples of the codec stride.
        input_spec: normalisation of the input.
    """

    def __init__(
        self,
        dataset: CocoKeypointDataset,
        codec: PafCodec,
        input_size: tuple[int, int],
        input_spec: InputSpec | None = None,
    ) -> None:
        if dataset.transform is None:
            raise ValueError("BottomUpItems needs a dataset with a transform to the input size")
        self.dataset = dataset
        self.codec = codec
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.input_spec = input_spec or InputSpec(size_divisor=codec.stride)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> TrainItem | None:
        try:
            sample = self.dataset[index]
        except DatasetError as exc:
            logger.warning("skipping a training sample: %s", exc)
            return None
        targets = self.codec.encode(sample.keypoints, self.input_size, sample.ignore_mask)
        return TrainItem(
            torch.from_numpy(self.input_spec.normalize(sample.image)),
            {k: torch.from_numpy(v) for k, v in targets.arrays().items()},
        )


class BottomUpTask:
    """Training recipe of bottom-up PAF models (``tasks.base.Task``).

    Args:
        codec: the PAF codec (targets, decoding, flip).
        augment: the whole-image augmentation; its ``input_size`` is the validation input, its
            ``train_window`` of it, rounded to the stride, the training input (``train_size``).
        stage_weights: loss weight per network stage (default 1 each).
        fg_weights: foreground weights of the loss, (heatmaps, PAFs) (``BottomUpLoss``; default
            (0, 0), the plain loss; ``posekit train``'s config has (10, 4)).
    """

    family: ClassVar[str] = "bottomup"
    loss_names = ("heatmaps", "pafs")

    def __init__(
        self,
        codec: PafCodec,
        augment: AugmentConfig,
        *,
        stage_weights: Sequence[float] | None = None,
        fg_weights: Sequence[float] = (0.0, 0.0),
    ) -> None:
        try:
            codec.output_size(augment.input_size)  # the input size must fit the stride
        except ConfigError as exc:
            raise ConfigError(f"data.augment.input_size: {exc}") from None
        stride = codec.stride
        w, h = (max(stride, stride * round(side * augment.train_window / stride))
                for side in augment.input_size)  # fmt: skip
        self.train_size = (w, h)
        """(W, H) of the training inputs: ``train_window`` of the input, multiples of the stride."""
        self.codec = codec
        self.augment = augment
        self.input_spec = InputSpec(size_divisor=codec.stride, height=augment.input_size[1])
        self.criterion = BottomUpLoss(codec, stage_weights, fg_weights)

    @classmethod
    def from_config(cls, codec: PafCodec, config: Any) -> BottomUpTask:
        """The task of a run's config: ``data.augment``, ``train.stage_loss_weights``,
        ``train.fg_weights``."""
        train = config.train
        return cls(codec, config.data.augment, stage_weights=train.stage_loss_weights,
                   fg_weights=train.fg_weights)  # fmt: skip

    def train_dataset(self, dataset: CocoKeypointDataset) -> Dataset:
        """Augmented whole images of ``dataset`` with their PAF targets."""
        dataset.transform = RandomAffine(self.codec.schema, self.augment, size=self.train_size)
        return BottomUpItems(dataset, self.codec, self.train_size, self.input_spec)

    def loss(self, outputs: Sequence[Sequence[torch.Tensor]], batch: Batch) -> LossParts:
        """Masked MSE of every stage's (heatmaps, pafs) (``models.losses.BottomUpLoss``)."""
        t = batch.targets
        criterion = self.criterion.to(batch.images.device)
        stages = [(h.float(), p.float()) for h, p in outputs]
        return criterion(stages, t["heatmaps"], t["pafs"], t["mask"])

    def predictor(self, model: nn.Module, *, flip: bool, device: Any, channels_last: bool) -> Any:
        """A ``BottomUpPredictor`` at the training input height (flip test when the skeleton is
        left/right symmetric)."""
        return validation_predictor(self, model, flip=flip, device=device,
                                    channels_last=channels_last)  # fmt: skip

    def predict(self, predictor: Any, image: np.ndarray, record: ImageRecord) -> list[Pose]:
        """Poses of the whole image (bottom-up needs no boxes)."""
        poses: list[Pose] = predictor.predict(image)
        return poses

    def describe(self) -> str:
        """One line for the run's log."""
        w, h = self.augment.input_size
        what = f"whole images at {w}x{h}"
        if self.train_size != self.augment.input_size:
            what = "{}x{} windows of {}".format(*self.train_size, what)
        return f"{what}, PAF targets at stride {self.codec.stride}"
