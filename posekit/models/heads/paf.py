"""Stages of the PAF networks: the heads that turn features into (heatmaps, pafs).

Each stage maps ``(B, C_in, h, w)`` features to ``(heatmaps (B, K+1, h, w), pafs (B, 2L, h, w))``,
its channel counts given by the network from the PAF codec's layout; the last layer of every head
is an ``OutputConv`` that names the output it makes. Attribute names follow the published code
(Lightweight OpenPose), so state_dict keys match the published checkpoints.
"""

from __future__ import annotations

import torch
from torch import nn

from posekit.models.backbones.mobilenet import conv_block, depthwise_separable
from posekit.models.backbones.residual import BasicBlock

__all__ = [
    "Cpm",
    "InitialStage",
    "OpenPoseStage",
    "OutputConv",
    "RefinementBlock",
    "RefinementStage",
    "TinyPafStage",
]


class OutputConv(nn.Conv2d):
    """Final 1x1 conv (with bias, no activation) of a head.

    ``kind`` is the name of the output it makes in the codec's layout (``"heatmaps"``, ``"pafs"``);
    checkpoint loading uses it to explain a checkpoint made for another schema.
    """

    def __init__(self, in_channels: int, out_channels: int, *, kind: str) -> None:
        if not kind:
            raise ValueError("kind must name an output of the codec layout")
        super().__init__(in_channels, out_channels, 1)
        self.kind = kind


# ---------------------------------------------------------------- Lightweight OpenPose
def _lwop_head(in_channels: int, mid_channels: int, out_channels: int, kind: str) -> nn.Sequential:
    """1x1 conv + ReLU, then the 1x1 ``OutputConv`` (keys ``0.0.*`` and ``1.0.*``)."""
    return nn.Sequential(
        conv_block(in_channels, mid_channels, 1, bn=False),
        nn.Sequential(OutputConv(mid_channels, out_channels, kind=kind)),
    )


class Cpm(nn.Module):
    """Lightweight OpenPose's feature adapter: ``conv(align(x) + trunk(align(x)))``.

    ``align``: 1x1 conv + ReLU; ``trunk``: 3 depthwise-separable blocks without BN, ELU;
    ``conv``: 3x3 conv + ReLU. Shapes: ``(B, in_channels, h, w) -> (B, out_channels, h, w)``.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.align = conv_block(in_channels, out_channels, 1, bn=False)
        self.trunk = nn.Sequential(
            *(
                depthwise_separable(out_channels, out_channels, bn=False, activation=nn.ELU)
                for _ in range(3)
            )
        )
        self.conv = conv_block(out_channels, out_channels, bn=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.align(x)
        return self.conv(x + self.trunk(x))


class InitialStage(nn.Module):
    """Three 3x3 convs + ReLU, then a heatmap head and a PAF head (1x1 to 512, 1x1 to outputs).

    Shapes: ``(B, channels, h, w) -> ((B, num_heatmaps, h, w), (B, num_pafs, h, w))``.
    """

    def __init__(self, channels: int, num_heatmaps: int, num_pafs: int) -> None:
        super().__init__()
        self.trunk = nn.Sequential(*(conv_block(channels, channels, bn=False) for _ in range(3)))
        self.heatmaps = _lwop_head(channels, 512, num_heatmaps, "heatmaps")
        self.pafs = _lwop_head(channels, 512, num_pafs, "pafs")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.trunk(x)
        return self.heatmaps(x), self.pafs(x)


class RefinementBlock(nn.Module):
    """``initial(x) + trunk(initial(x))``: 1x1 conv + ReLU, then 3x3 and dilated 3x3 conv + BN + ReLU.

    Shapes: ``(B, in_channels, h, w) -> (B, out_channels, h, w)``.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.initial = conv_block(in_channels, out_channels, 1, bn=False)
        self.trunk = nn.Sequential(
            conv_block(out_channels, out_channels),
            conv_block(out_channels, out_channels, dilation=2),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.initial(x)
        return x + self.trunk(x)


class RefinementStage(nn.Module):
    """Five ``RefinementBlock``s, then a heatmap head and a PAF head (1x1 128, 1x1 to outputs).

    Shapes: ``(B, in_channels, h, w) -> ((B, num_heatmaps, h, w), (B, num_pafs, h, w))``.
    """

    def __init__(self, in_channels: int, channels: int, num_heatmaps: int, num_pafs: int) -> None:
        super().__init__()
        self.trunk = nn.Sequential(
            RefinementBlock(in_channels, channels),
            *(RefinementBlock(channels, channels) for _ in range(4)),
        )
        self.heatmaps = _lwop_head(channels, channels, num_heatmaps, "heatmaps")
        self.pafs = _lwop_head(channels, channels, num_pafs, "pafs")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.trunk(x)
        return self.heatmaps(x), self.pafs(x)


# ---------------------------------------------------------------- OpenPose (CMU, VGG19)
def _openpose_branch(
    in_channels: int,
    kernel_size: int,
    num_convs: int,
    mid_channels: int,
    out_channels: int,
    kind: str,
) -> nn.Sequential:
    """``num_convs`` kxk convs (128) + ReLU, a 1x1 conv (``mid_channels``) + ReLU, an ``OutputConv``."""
    layers: list[nn.Module] = []
    channels = in_channels
    for _ in range(num_convs):
        layers += [
            nn.Conv2d(channels, 128, kernel_size, padding=kernel_size // 2),
            nn.ReLU(inplace=True),
        ]
        channels = 128
    layers += [nn.Conv2d(channels, mid_channels, 1), nn.ReLU(inplace=True)]
    layers.append(OutputConv(mid_channels, out_channels, kind=kind))
    return nn.Sequential(*layers)


class OpenPoseStage(nn.Module):
    """One OpenPose stage: a PAF branch and a heatmap branch on the same input.

    Stage 1: three 3x3 convs, 1x1 to 512, 1x1 to outputs. Refinement stages: five 7x7 convs,
    1x1 to 128, 1x1 to outputs. Shapes: ``(B, in_channels, h, w) -> ((B, num_heatmaps, h, w),
    (B, num_pafs, h, w))``.
    """

    def __init__(
        self, in_channels: int, num_heatmaps: int, num_pafs: int, *, refinement: bool
    ) -> None:
        super().__init__()
        kernel_size, num_convs, mid = (7, 5, 128) if refinement else (3, 3, 512)
        self.pafs = _openpose_branch(in_channels, kernel_size, num_convs, mid, num_pafs, "pafs")
        self.heatmaps = _openpose_branch(
            in_channels, kernel_size, num_convs, mid, num_heatmaps, "heatmaps"
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.heatmaps(x), self.pafs(x)


# ---------------------------------------------------------------- small residual PAF network
def _tiny_head(channels: int, out_channels: int, kind: str) -> nn.Sequential:
    """3x3 conv + BN + ReLU, then the 1x1 ``OutputConv``."""
    return nn.Sequential(
        conv_block(channels, channels, bias=False), OutputConv(channels, out_channels, kind=kind)
    )


class TinyPafStage(nn.Module):
    """One stage of ``PafTiny``: a heatmap head and a PAF head on shared features.

    A refinement stage (``in_channels`` > ``channels``) first mixes ``concat(features, heatmaps,
    pafs)`` back to ``channels`` with a 1x1 conv and two residual blocks.
    """

    def __init__(self, in_channels: int, channels: int, num_heatmaps: int, num_pafs: int) -> None:
        super().__init__()
        self.trunk: nn.Module = (
            nn.Identity()
            if in_channels == channels
            else nn.Sequential(
                conv_block(in_channels, channels, 1, bias=False),
                BasicBlock(channels),
                BasicBlock(channels, dilation=2),
            )
        )
        self.heatmaps = _tiny_head(channels, num_heatmaps, "heatmaps")
        self.pafs = _tiny_head(channels, num_pafs, "pafs")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.trunk(x)
        return self.heatmaps(x), self.pafs(x)
