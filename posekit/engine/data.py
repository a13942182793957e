"""The order of training items: ``EpochSampler``.

A seeded permutation per epoch that can start mid-epoch and is sharded over distributed ranks, so a
resumed run sees exactly the batches an uninterrupted run would have seen. What the items are is
the task's (``tasks``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler

logger = logging.getLogger(__name__)


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
