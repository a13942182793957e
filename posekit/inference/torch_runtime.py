"""TorchRuntime: a torch module as an ``inference.runtime.Runtime``.

Speed (CPU): it runs a copy of the model with every BatchNorm folded into the conv before it
(exact in eval mode) in channels-last memory format; the NHWC batch *is* that layout, so it goes in
without a transpose or copy; forward passes run under ``torch.inference_mode`` and, with
``precision="bfloat16"``, bfloat16 autocast. ``torch.set_num_threads`` is the caller's.
"""

from __future__ import annotations

import copy
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from posekit.devices import forward_dtype
from posekit.errors import ConfigError
from posekit.inference.runtime import PRECISIONS

logger = logging.getLogger(__name__)

__all__ = ["ScriptRuntime", "TorchRuntime", "fold_conv_batchnorm"]


class TorchRuntime:
    """A torch module as a ``Runtime``.

    Args:
        model: returns a list of per-stage output tuples (the model contract above).
        device: torch device.
        channels_last: run in channels-last memory format on CPU (faster for these networks).
        fold_batchnorm: fold each BatchNorm into the conv before it (fewer passes over memory).
        precision: ``"float32"`` (default) or ``"bfloat16"``: the forward pass under bfloat16
            autocast (about 1.7x faster on CPUs with native bfloat16, AVX512-BF16 / AMX; on
            others, where it would be many times slower, float32 with a warning;
            ``"bfloat16-forced"`` autocasts there too); outputs are float32 either way.

    With ``channels_last`` or ``fold_batchnorm`` the runtime runs a copy of ``model`` (in eval
    mode, on ``device``) and never modifies the model given; otherwise it runs ``model`` itself,
    switched to eval mode and moved to ``device``.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        device: str | torch.device = "cpu",
        channels_last: bool = True,
        fold_batchnorm: bool = True,
        precision: str = "float32",
    ) -> None:
        if precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.device = torch.device(device)
        self.channels_last = channels_last and self.device.type == "cpu"
        self.autocast = forward_dtype(precision, self.device)
        if self.channels_last or fold_batchnorm:
            model = copy.deepcopy(model)
        self.model = model.to(self.device).eval()
        if fold_batchnorm:
            fold_conv_batchnorm(self.model)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)

    def tensor(self, batch: np.ndarray) -> torch.Tensor:
        """The (B, 3, H, W) input tensor of an NHWC batch, on the device (a view on CPU)."""
        x = torch.from_numpy(batch).permute(0, 3, 1, 2)
        if not self.channels_last:
            x = x.contiguous()
        return x.to(self.device)

    @torch.inference_mode()
    def run(self, batch: np.ndarray) -> tuple[np.ndarray, ...]:
        """(B, H, W, 3) float32 -> the last stage's outputs as float32 NumPy (B, C, h, w)."""
        with torch.autocast(
            self.device.type, dtype=self.autocast, enabled=self.autocast is not None
        ):
            outputs = self.model(self.tensor(batch))[-1]
        # row-major here, by torch's threads (a channels-last output would be one slow numpy copy)
        return tuple(o.float().contiguous().cpu().numpy() for o in outputs)


class ScriptRuntime:
    """A TorchScript file written by ``posekit export --format torchscript`` as a ``Runtime``.

    Args:
        path: the file; it returns the flat tuple of ``info.outputs``.
        info: its metadata (``models.exported.ExportInfo``): which outputs the predictor reads.
        device: torch device.
    """

    def __init__(self, path: str | Path, info: Any, *, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        with warnings.catch_warnings():  # TorchScript's deprecation: docs/deploy.md says it
            warnings.simplefilter("ignore", DeprecationWarning)
            self.module = torch.jit.load(str(path), map_location=self.device).eval()
        names = [o.name for o in info.outputs]
        self.indices = [names.index(n) for n in info.used_outputs]

    @torch.inference_mode()
    def run(self, batch: np.ndarray) -> tuple[np.ndarray, ...]:
        """(B, H, W, 3) float32 -> the outputs the predictor reads, float32 (B, C, ...)."""
        x = torch.from_numpy(batch).permute(0, 3, 1, 2).contiguous().to(self.device)
        outputs = self.module(x)
        return tuple(outputs[i].float().cpu().numpy() for i in self.indices)


def fold_conv_batchnorm(model: nn.Module) -> None:
    """Fold, in place, every ``BatchNorm2d`` that follows a ``Conv2d`` in an ``nn.Sequential``
    into that conv (``torch.nn.utils.fusion``; exact for an eval-mode model); the BatchNorm
    becomes an ``Identity``."""
    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        for i in range(len(seq) - 1):
            conv, bn = seq[i], seq[i + 1]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                seq[i] = fuse_conv_bn_eval(conv, bn)
                seq[i + 1] = nn.Identity()
