"""Training batches for bottom-up models: dataset sample -> augmentation -> PAF targets -> tensors.

``TargetDataset`` wraps a ``CocoKeypointDataset`` whose transform produces fixed-size inputs and
encodes each sample with the ``PafCodec``. An image that cannot be read is skipped: the item is
``None``, ``collate`` drops it and counts it in ``Batch.skipped`` (the trainer reports the total).
``EpochSampler`` gives a seeded permutation per epoch that can start mid-epoch, so a resumed run
sees exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from posekit.codecs.paf import PafCodec
from posekit.data.coco import CocoKeypointDataset
from posekit.errors import DatasetError
from posekit.structures import InputSpec

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainItem:
    """One encoded sample: image (3, H, W) float32 normalised, targets at the output stride."""

    image: torch.Tensor
    heatmaps: torch.Tensor  # (K+1, h, w)
    pafs: torch.Tensor  # (2L, h, w)
    mask: torch.Tensor  # (h, w)


@dataclass(frozen=True)
class Batch:
    """Stacked ``TrainItem`` s (leading batch dimension B) and the count of skipped samples."""

    images: torch.Tensor
    heatmaps: torch.Tensor
    pafs: torch.Tensor
    mask: torch.Tensor
    skipped: int = 0

    def to(self, device: torch.device) -> Batch:
        """The same batch on ``device`` (non-blocking copies)."""
        return Batch(
            self.images.to(device, non_blocking=True),
            self.heatmaps.to(device, non_blocking=True),
            self.pafs.to(device, non_blocking=True),
            self.mask.to(device, non_blocking=True),
            self.skipped,
        )

    def __len__(self) -> int:
        return int(self.images.shape[0])


class TargetDataset(Dataset):
    """Map-style dataset of ``TrainItem`` (or ``None`` for an unreadable image).

    Args:
        dataset: a COCO dataset whose ``transform`` yields ``input_size`` images.
        codec: encodes keypoints and the ignore mask into targets.
        input_size: (W, H) network input, multiples of the codec stride.
    """

    def __init__(
        self, dataset: CocoKeypointDataset, codec: PafCodec, input_size: tuple[int, int]
    ) -> None:
        if dataset.transform is None:
            raise ValueError("TargetDataset needs a dataset with a transform to the input size")
        codec.output_size(input_size)  # validates the size against the stride
        self.dataset = dataset
        self.codec = codec
        self.input_size = (int(input_size[0]), int(input_size[1]))

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
            torch.from_numpy(InputSpec().normalize(sample.image)),
            torch.from_numpy(targets.heatmaps),
            torch.from_numpy(targets.pafs),
            torch.from_numpy(targets.mask),
        )


def collate(items: Sequence[TrainItem | None]) -> Batch | None:
    """Stack items, dropping ``None`` (counted in ``skipped``); ``None`` if nothing is left."""
    good = [it for it in items if it is not None]
    skipped = len(items) - len(good)
    if not good:
        return None if not skipped else Batch(*(torch.empty(0),) * 4, skipped=skipped)
    return Batch(
        torch.stack([it.image for it in good]),
        torch.stack([it.heatmaps for it in good]),
        torch.stack([it.pafs for it in good]),
        torch.stack([it.mask for it in good]),
        skipped,
    )


class EpochSampler(Sampler[int]):
    """Seeded per-epoch permutation, sharded over ranks, resumable from any batch.

    Args:
        size: dataset length.
        seed: base seed; epoch ``e`` uses the permutation of ``(seed, e)``.
        rank, world_size: distributed shard (every rank gets ``ceil(size / world)`` indices, as
            ``DistributedSampler`` does, padding with the first ones).
    """

    def __init__(self, size: int, *, seed: int = 0, rank: int = 0, world_size: int = 1) -> None:
        if size <= 0:
            raise ValueError("the training dataset is empty")
        self.size = size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.start = 0
        self.per_rank = math.ceil(size / world_size)

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Use the permutation of ``epoch``, skipping its first ``start`` indices of this rank."""
        self.epoch = int(epoch)
        self.start = int(start)

    def indices(self) -> np.ndarray:
        """This rank's indices of the current epoch, from ``start`` on."""
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.size)
        total = self.per_rank * self.world_size
        order = np.concatenate([order, order[: total - self.size]])
        return order[self.rank : total : self.world_size][self.start :]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        return self.per_rank - self.start
