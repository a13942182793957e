"""What every task gives the training engine: items, batches, the loss, the validation predictor.

A task is one method family's training recipe (``tasks.bottomup``: whole images, PAF targets;
top-down: instance crops). ``engine.trainer.Trainer`` takes a task and stays family-free: it
samples ``task.train_dataset`` items, stacks them with ``collate``, runs the network, asks
``task.loss`` for the loss and its named parts (which it logs under their names), and validates
with ``task.predictor``.

Items and batches carry the network input and the codec's targets by name, so the engine never
knows what the targets are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from posekit.codecs.base import Codec
from posekit.data.coco import CocoKeypointDataset, ImageRecord
from posekit.inference import create_predictor
from posekit.models.losses import LossParts
from posekit.structures import InputSpec, Pose

__all__ = ["Batch", "Task", "TrainItem", "collate"]


@dataclass(frozen=True)
class TrainItem:
    """One encoded training item: image (3, H, W) float32 normalised; targets by name."""

    image: torch.Tensor
    targets: Mapping[str, torch.Tensor]


@dataclass(frozen=True)
class Batch:
    """Stacked ``TrainItem`` s (leading batch dimension B) and the count of skipped items."""

    images: torch.Tensor
    targets: Mapping[str, torch.Tensor] = field(default_factory=dict)
    skipped: int = 0

    def to(self, device: torch.device) -> Batch:
        """The same batch on ``device`` (non-blocking copies)."""
        return Batch(
            self.images.to(device, non_blocking=True),
            {k: v.to(device, non_blocking=True) for k, v in self.targets.items()},
            self.skipped,
        )

    def __len__(self) -> int:
        return int(self.images.shape[0])


def collate(items: Sequence[TrainItem | None]) -> Batch | None:
    """Stack items, dropping ``None`` (an unreadable image, counted in ``skipped``); ``None`` if
    the list is empty."""
    good = [it for it in items if it is not None]
    skipped = len(items) - len(good)
    if not good:
        return None if not skipped else Batch(torch.empty(0), {}, skipped)
    targets = {k: torch.stack([it.targets[k] for it in good]) for k in good[0].targets}
    return Batch(torch.stack([it.image for it in good]), targets, skipped)


class Task(Protocol):
    """A method family's training recipe (``BottomUpTask``).

    Attributes:
        family: ``"bottomup"`` or ``"topdown"`` (the codec's and the model's).
        codec: the codec whose targets the items carry.
        input_spec: preprocessing of the training input (also the validation predictor's).
        loss_names: names of the loss parts, in logging order.
    """

    family: ClassVar[str]
    codec: Codec
    input_spec: InputSpec
    loss_names: tuple[str, ...]

    def train_dataset(self, dataset: CocoKeypointDataset) -> Dataset:
        """Map-style dataset of ``TrainItem`` (``None`` for an item that cannot be read); its
        augmentation draws from the dataset's ``(seed, epoch, index)`` generator."""
        ...

    def loss(self, outputs: Sequence[Sequence[torch.Tensor]], batch: Batch) -> LossParts:
        """Loss of the network's per-stage outputs (layout order) against the batch targets."""
        ...

    def predictor(self, model: nn.Module, *, flip: bool, device: Any, channels_last: bool) -> Any:
        """The family's predictor of ``model`` for validation (flip test when asked and the
        codec supports it)."""
        ...

    def predict(self, predictor: Any, image: np.ndarray, record: ImageRecord) -> list[Pose]:
        """Poses of one validation image (its record gives what the family may use, e.g. the
        ground-truth boxes of a top-down model)."""
        ...

    def describe(self) -> str:
        """One line for the run's log: what a training item is."""
        ...


def validation_predictor(
    task: Task, model: nn.Module, *, flip: bool, device: Any, channels_last: bool
) -> Any:
    """``Task.predictor`` of a task whose predictor takes nothing but its codec and input spec:
    the codec family's predictor (``inference.create_predictor``), flip test when asked and the
    codec supports it."""
    return create_predictor(
        model,
        task.codec,
        task.input_spec,
        device=device,
        channels_last=channels_last,
        flip=flip and task.codec.supports_flip,
    )
