"""MobileNetV1 trunk of Lightweight OpenPose (output stride 8) and the conv blocks it is made of.

The layer layout (module indices inside each ``nn.Sequential``) is the one of the published
Lightweight OpenPose checkpoint, so ``state_dict()`` keys such as ``0.0.weight`` (first conv) or
``7.3.weight`` (pointwise conv of block 7) are the published ones under the model's ``model.``
prefix. Changing the order of layers here breaks loading the official weights.
"""

from __future__ import annotations

from torch import nn

__all__ = ["MobileNetV1Trunk", "conv_block", "depthwise_separable"]


def conv_block(
    in_channels: int,
    out_channels: int,
    kernel_size: int = 3,
    *,
    stride: int = 1,
    dilation: int = 1,
    bias: bool = True,
    bn: bool = True,
    relu: bool = True,
) -> nn.Sequential:
    """``Sequential(conv[, BatchNorm][, ReLU])`` with "same" padding ``dilation * (kernel_size - 1) / 2``.

    Shapes: ``(B, in_channels, H, W) -> (B, out_channels, ceil(H / stride), ceil(W / stride))``.
    """
    padding = dilation * (kernel_size - 1) // 2
    layers: list[nn.Module] = [
        nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            bias=bias,
        )
    ]
    if bn:
        layers.append(nn.BatchNorm2d(out_channels))
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def depthwise_separable(
    in_channels: int,
    out_channels: int,
    *,
    stride: int = 1,
    dilation: int = 1,
    bn: bool = True,
    activation: type[nn.Module] = nn.ReLU,
) -> nn.Sequential:
    """3x3 depthwise conv then 1x1 pointwise conv, both without bias, each followed by
    ``[BatchNorm +] activation``.

    Layout with ``bn``: ``[dw, bn, act, pw, bn, act]``; without: ``[dw, act, pw, act]`` (the CPM of
    Lightweight OpenPose, with ELU). Shapes: ``(B, in_channels, H, W) ->
    (B, out_channels, ceil(H / stride), ceil(W / stride))``.
    """
    layers: list[nn.Module] = [
        nn.Conv2d(
            in_channels,
            in_channels,
            3,
            stride=stride,
            padding=dilation,
            dilation=dilation,
            groups=in_channels,
            bias=False,
        )
    ]
    if bn:
        layers.append(nn.BatchNorm2d(in_channels))
    layers += [activation(inplace=True), nn.Conv2d(in_channels, out_channels, 1, bias=False)]
    if bn:
        layers.append(nn.BatchNorm2d(out_channels))
    layers.append(activation(inplace=True))
    return nn.Sequential(*layers)


# (out_channels, stride, dilation) of the depthwise-separable blocks 1..11 (conv2_1 ... conv5_5 of
# MobileNetV1, truncated after the 512-channel stage; block 7 dilated instead of strided so the
# output stride stays 8) -- the published Lightweight OpenPose trunk.
_BLOCKS = (
    (64, 1, 1),
    (128, 2, 1),
    (128, 1, 1),
    (256, 2, 1),
    (256, 1, 1),
    (512, 1, 1),
    (512, 1, 2),
    (512, 1, 1),
    (512, 1, 1),
    (512, 1, 1),
    (512, 1, 1),
)


class MobileNetV1Trunk(nn.Sequential):
    """MobileNetV1 up to conv5_5 with a dilated block 7: output stride 8, 512 channels.

    Layer 0 is a 3x3 stride-2 conv (no bias) + BN + ReLU; layers 1-11 are depthwise-separable
    blocks (``depthwise_separable``) with strides 2 at blocks 2 and 4 and dilation 2 at block 7.

    Shapes: ``x (B, 3, H, W) float32 -> (B, 512, H / 8, W / 8)`` for H, W multiples of 8
    (``ceil(H / 8)`` otherwise).
    """

    def __init__(self) -> None:
        layers: list[nn.Module] = [conv_block(3, 32, stride=2, bias=False)]
        in_channels = 32
        for out_channels, stride, dilation in _BLOCKS:
            layers.append(
                depthwise_separable(in_channels, out_channels, stride=stride, dilation=dilation)
            )
            in_channels = out_channels
        super().__init__(*layers)
        self.out_channels = in_channels
        self.stride = 8
