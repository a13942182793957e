"""torchrun / DistributedDataParallel helpers: who am I, which device, rank-0-only side effects."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistContext:
    """This process's place in a (possibly single-process) run.

    ``torchrun`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; without them the run is one
    process. The backend is NCCL on CUDA devices and gloo on CPU.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """True on the process that writes logs and checkpoints (rank 0)."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        """True when several processes take part."""
        return self.world_size > 1

    def barrier(self) -> None:
        """Wait for every process (no-op in a single process)."""
        if self.enabled:
            dist.barrier()

    def broadcast_float(self, value: float) -> float:
        """Rank 0's ``value`` on every rank."""
        if not self.enabled:
            return value
        t = torch.tensor([value], dtype=torch.float64)
        dist.broadcast(t, src=0)
        return float(t.item())


def init_distributed(device: str = "auto") -> tuple[DistContext, torch.device]:
    """Read torchrun's environment, start the process group if needed, choose the device.

    ``device``: ``"auto"`` (this rank's GPU when CUDA is available, else CPU), ``"cpu"``,
    ``"cuda"`` or ``"cuda:N"``.
    """
    ctx = DistContext(
        rank=int(os.environ.get("RANK", 0)),
        world_size=int(os.environ.get("WORLD_SIZE", 1)),
        local_rank=int(os.environ.get("LOCAL_RANK", 0)),
    )
    if device == "auto":
        device = f"cuda:{ctx.local_rank}" if torch.cuda.is_available() else "cpu"
    elif device == "cuda" and ctx.enabled:
        device = f"cuda:{ctx.local_rank}"
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if ctx.enabled and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
        logger.info("process group: %s, rank %d of %d", backend, ctx.rank, ctx.world_size)
    return ctx, dev


def shutdown_distributed(*, wait: bool = True) -> None:
    """Destroy the process group if one was started.

    ``wait``: first wait until every rank gets here (after a run that ended normally), so no rank
    tears its group down while another still uses it; a process that exits with a live gloo group
    can abort in its threads ("terminate called without an active exception"). Pass False after
    an error, when the other ranks may never arrive.
    """
    if dist.is_available() and dist.is_initialized():
        if wait:
            dist.barrier()
        dist.destroy_process_group()
