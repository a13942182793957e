"""multiply_adds: hand-counted multiply-adds of convolutions and linear layers, per image."""

from __future__ import annotations

import torch
from torch import nn

from posekit.models.cost import multiply_adds


def test_multiply_adds_of_a_conv_and_a_linear_layer_per_image():
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, stride=2, padding=1),  # 4 x 8 x 8 outputs, 3 * 3 * 3 each
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, padding=1, groups=2),  # 4 x 8 x 8 outputs, 2 * 3 * 3 each
        nn.Flatten(),
        nn.Linear(256, 10),  # 10 outputs, 256 each
    )
    want = 256 * 27 + 256 * 18 + 10 * 256
    assert multiply_adds(model, torch.zeros(1, 3, 16, 16)) == want
    assert multiply_adds(model, torch.zeros(3, 3, 16, 16)) == want  # per image of the batch
    assert not any(m._forward_hooks for m in model.modules())  # hooks removed
