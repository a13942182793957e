"""An exponential moving average of a model's weights, for validation, ``best.pt`` and inference.

With ``train.ema`` set, every optimizer step moves a shadow copy of the model towards the trained
weights: ``shadow <- shadow + (1 - d_t) * (weights - shadow)`` for every floating-point parameter
and buffer (BatchNorm's running statistics too; integer buffers such as ``num_batches_tracked``
are copied). The decay warms up, ``d_t = min(decay, (1 + t) / (10 + t))`` after ``t`` updates,
so the first epochs of a short run are not dominated by the random initial weights.

The average is what a run validates and ships (``best.pt``'s and ``last.pt``'s ``model``); the
raw weights the optimizer works on are kept beside it (``train_model``) so that a resumed run
continues the very same trajectory.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn


class ModelEma:
    """The moving average of ``model``'s weights (a deep copy, in eval mode, without gradients).

    Args:
        model: the model being trained; its current weights start the average.
        decay: the long-run decay in (0, 1); the horizon is about ``1 / (1 - decay)`` steps.
    """

    def __init__(self, model: nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = float(decay)
        self.updates = 0
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    def current_decay(self) -> float:
        """The decay the next update applies (warm-up included)."""
        return min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average one step towards ``model``'s current weights."""
        decay = self.current_decay()
        self.updates += 1
        shadow, source = self._tensors(model)
        floats = [(s, m) for s, m in zip(shadow, source, strict=True) if s.is_floating_point()]
        if floats:
            ema_t, model_t = zip(*floats, strict=True)
            torch._foreach_lerp_(list(ema_t), list(model_t), 1.0 - decay)
        for s, m in zip(shadow, source, strict=True):
            if not s.is_floating_point():
                s.copy_(m)

    def _tensors(self, model: nn.Module) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        ours = [*self.module.parameters(), *self.module.buffers()]
        theirs = [*model.parameters(), *model.buffers()]
        if len(ours) != len(theirs):
            raise ValueError("the EMA was made for another model (a different number of tensors)")
        return ours, theirs

    def state_dict(self) -> dict[str, Any]:
        """The averaged weights (as ``model.state_dict()``)."""
        return self.module.state_dict()

    def load_state_dict(self, weights: Mapping[str, Any], updates: int) -> None:
        """Restore averaged weights and the number of updates they took (the warm-up's place)."""
        self.module.load_state_dict(weights)
        self.updates = int(updates)
