"""A small residual trunk at output stride 8 for training from scratch on a CPU.

Three strided 3x3 conv + BN + ReLU layers bring the input to stride 8; basic residual blocks
(two 3x3 convs, as in ResNet-18) follow, the last ones dilated (2, 4, 2) to widen the receptive
field without losing resolution, as in dilated residual networks (Yu et al., 2017). With
``width=64`` it has about 1.5M parameters and no pretrained weights: it is the network of
``posekit train``'s CPU demo, which learns synthetic figures in minutes.
"""

from __future__ import annotations

import torch
from torch import nn

from posekit.models.backbones.mobilenet import conv_block

__all__ = ["BasicBlock", "ResidualTrunk"]


class BasicBlock(nn.Module):
    """``relu(x + bn(conv(relu(bn(conv(x))))))`` with two 3x3 convs of ``dilation``.

    Shapes: ``(B, channels, h, w) -> (B, channels, h, w)``.
    """

    def __init__(self, channels: int, dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = conv_block(channels, channels, dilation=dilation, bias=False)
        self.conv2 = conv_block(channels, channels, dilation=dilation, bias=False, relu=False)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(x + self.conv2(self.conv1(x)))


class ResidualTrunk(nn.Module):
    """Stride-8 residual trunk: ``(B, 3, H, W) -> (B, 2 * width, H / 8, W / 8)``.

    Layout: conv s2 (width / 2) -> conv s2 (width) -> block -> conv s2 (2 width) -> blocks of
    dilation 1, 2, 4, 2.
    """

    STRIDE_4 = 3
    """``layers[:STRIDE_4]`` end at stride 4 with ``width`` channels (``features``)."""

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        if width < 8 or width % 2:
            raise ValueError(f"width must be an even int >= 8, got {width!r}")
        self.out_channels = 2 * width
        self.stride4_channels = width
        self.layers = nn.Sequential(
            conv_block(3, width // 2, stride=2, bias=False),
            conv_block(width // 2, width, stride=2, bias=False),
            BasicBlock(width),
            conv_block(width, 2 * width, stride=2, bias=False),
            *(BasicBlock(2 * width, dilation) for dilation in (1, 2, 4, 2)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(stride-8 output, stride-4 features (B, width, H/4, W/4))`` of one pass."""
        fine = self.layers[: self.STRIDE_4](x)
        return self.layers[self.STRIDE_4 :](fine), fine
