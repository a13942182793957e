"""The arithmetic cost of a network: multiply-adds of its convolutions and linear layers."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["multiply_adds"]


def multiply_adds(model: nn.Module, x: torch.Tensor) -> int:
    """Multiply-adds of every ``Conv2d`` and ``Linear`` call of ``model(x)``, per image of the
    batch ``x`` (forward hooks, one pass without autograd). Papers' "GFLOPs" are usually this
    over 2^30 (HRNet's 7.1 for W32 at 256 x 192); floating-point operations are twice it."""
    total = 0

    def count(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        linear = isinstance(module, nn.Linear)
        per_output = module.in_features if linear else module.weight[0].numel()
        total += output[0].numel() * per_output

    hooks = [
        m.register_forward_hook(count)
        for m in model.modules()
        if isinstance(m, nn.Conv2d | nn.Linear)
    ]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for hook in hooks:
            hook.remove()
    return total
