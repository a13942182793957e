"""VGG19 trunk of OpenPose (CMU): conv1_1 ... conv4_2, output stride 8, 512 channels.

The module indices are those of torchvision's ``vgg19().features[:23]``, so ImageNet weights
(the usual initialisation of OpenPose) load through ``vgg19_trunk_state_from_torchvision``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch
from torch import nn

__all__ = ["VGG19Trunk", "vgg19_trunk_state_from_torchvision"]

# VGG19 configuration "E" up to conv4_2: channels of each 3x3 conv, "M" = 2x2 max-pool stride 2.
_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512)
_NUM_LAYERS = sum(1 if item == "M" else 2 for item in _CFG)  # conv + ReLU, or pool: 23


class VGG19Trunk(nn.Sequential):
    """The first 10 conv layers of VGG19 (3x3, ReLU after each) with 3 max-pools: stride 8.

    Shapes: ``x (B, 3, H, W) float32 -> (B, 512, H / 8, W / 8)`` for H, W multiples of 8
    (``floor(H / 8)`` otherwise).
    """

    def __init__(self) -> None:
        layers: list[nn.Module] = []
        in_channels = 3
        for item in _CFG:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(in_channels, int(item), 3, padding=1), nn.ReLU(inplace=True)]
                in_channels = int(item)
        super().__init__(*layers)
        self.out_channels = in_channels
        self.stride = 8


def vgg19_trunk_state_from_torchvision(
    state_dict: Mapping[str, torch.Tensor],
) -> dict[str, torch.Tensor]:
    """The ``VGG19Trunk`` part of a torchvision ``vgg19`` state_dict (``features.0`` ... ``features.21``).

    Use as ``model.backbone.load_state_dict(vgg19_trunk_state_from_torchvision(sd))``; the
    classifier and the layers after conv4_2 are dropped.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        match = re.fullmatch(r"features\.(\d+)\.(weight|bias)", key)
        if match and int(match.group(1)) < _NUM_LAYERS:
            out[f"{match.group(1)}.{match.group(2)}"] = value
    return out
