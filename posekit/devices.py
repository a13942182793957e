"""What the compute device does well: mixed precision per device, CPU memory reuse.

- ``native_bfloat16()``: whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX); where it
  does not, bfloat16 is emulated and slower than float32.
- ``amp_dtype(device)``: the autocast type of ``train.amp`` on a device (float32, with one warning,
  on a CPU without native bfloat16).
- ``forward_dtype(precision, device)``: the autocast type of an inference precision
  (``"bfloat16"`` falls back to float32 with one warning where it is emulated;
  ``"bfloat16-forced"`` does not).
- ``keep_freed_memory()``: let glibc reuse freed blocks instead of unmapping them (CPU training).
"""

from __future__ import annotations

import ctypes
import logging
import platform

import torch

logger = logging.getLogger(__name__)

__all__ = ["amp_dtype", "forward_dtype", "keep_freed_memory", "native_bfloat16"]


def native_bfloat16() -> bool:
    """True when this CPU computes bfloat16 natively (AVX512-BF16 or AMX tiles)."""
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")  # torch.cpu, private
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc malloc.h mallopt() parameters
_KEEP_BYTES = 1 << 30


_NOT_NATIVE = (
    "this CPU has no native bfloat16 (AVX512-BF16 or AMX; or ATEN_CPU_CAPABILITY / "
    "ONEDNN_MAX_CPU_ISA cap it): %s in float32, as emulated bfloat16 is several times slower"
)


def amp_dtype(device: torch.device) -> torch.dtype | None:
    """The autocast type of ``train.amp`` on ``device``: float16 (with loss scaling) on CUDA,
    bfloat16 on a CPU that computes it natively (AVX512-BF16 or AMX, where it trains about twice
    as fast), else None: float32 (emulated bfloat16 would be slower), said in one warning."""
    if device.type == "cuda":
        return torch.float16
    if device.type == "cpu" and native_bfloat16():
        return torch.bfloat16
    if device.type == "cpu":
        logger.warning(_NOT_NATIVE + " (train.amp=false says so and silences this)", "training")
    return None


def forward_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast type of an inference ``precision`` on ``device``: None for ``"float32"``;
    bfloat16 for ``"bfloat16"`` where it is native (or not a CPU), else None with one warning
    (on an AVX2 CPU it made a forward pass 13x slower); bfloat16 for ``"bfloat16-forced"``
    anywhere (to measure emulation)."""
    if precision == "float32":
        return None
    if precision == "bfloat16" and device.type == "cpu" and not native_bfloat16():
        logger.warning(_NOT_NATIVE, "running")
        return None
    return torch.bfloat16


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
