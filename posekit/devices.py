"""What the compute device does well: mixed precision per device, CPU memory reuse.

- ``native_bfloat16()``: whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX); where it
  does not, bfloat16 is emulated and slower than float32.
- ``amp_dtype(device)``: the autocast type of ``train.amp`` on a device.
- ``keep_freed_memory()``: let glibc reuse freed blocks instead of unmapping them (CPU training).
"""

from __future__ import annotations

import ctypes
import logging
import platform

import torch

logger = logging.getLogger(__name__)

__all__ = ["amp_dtype", "keep_freed_memory", "native_bfloat16"]


def native_bfloat16() -> bool:
    """True when this CPU computes bfloat16 natively (AVX512-BF16 or AMX tiles)."""
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")  # torch.cpu, private
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc malloc.h mallopt() parameters
_KEEP_BYTES = 1 << 30


def amp_dtype(device: torch.device) -> torch.dtype | None:
    """The autocast type of ``train.amp`` on ``device``: float16 (with loss scaling) on CUDA,
    bfloat16 on a CPU that computes it natively (AVX512-BF16 or AMX, where it trains about twice
    as fast), else None: float32 (emulated bfloat16 would be slower)."""
    if device.type == "cuda":
        return torch.float16
    if device.type == "cpu" and native_bfloat16():
        return torch.bfloat16
    return None


def keep_freed_memory() -> None:
    """Let glibc's malloc keep freed memory for reuse instead of handing it back to the OS.

    By default glibc serves blocks above a dynamic threshold (at most 32 MiB) with fresh ``mmap``
    pages and unmaps them when freed, so each CPU training step touches every activation page
    anew: about 50,000 page faults per step and a fifth of the step time for lwop_mobilenet at
    192 x 192, batch 8, on 2 cores (PyTorch's CPU tuning guide swaps the allocator for the same
    reason). Raising the mmap and trim thresholds to 1 GiB makes freed blocks get reused. It is a
    process-wide setting; other C libraries are left alone.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    ok = libc.mallopt(_M_MMAP_THRESHOLD, _KEEP_BYTES) and libc.mallopt(
        _M_TRIM_THRESHOLD, _KEEP_BYTES
    )
    logger.debug("glibc malloc keeps freed memory: %s", bool(ok))
