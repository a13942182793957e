"""Top-down networks: one person crop -> the outputs of a top-down codec.

``TopDownNet`` is a trunk (``backbone``: ``(B, 3, H, W) -> (B, C, H/s, W/s)``, attribute
``out_channels``) and a head (``models.heads.topdown``) sized from the codec's layout. It keeps the
model contract of every posekit network: ``forward(x)`` returns a list of stages (here one),
each a tuple of outputs in the codec's layout order, so training, the runtime and export treat
it like the bottom-up networks. Its state_dict keys are ``backbone.*`` and ``head.*`` (MMPose
1.x's layout for its top-down heatmap models).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from posekit.codecs.base import OutputLayout
from posekit.codecs.topdown import TopDownCodec
from posekit.errors import ConfigError
from posekit.models.backbones.residual import ResidualTrunk
from posekit.models.heads.topdown import (
    HeatmapHead,
    RegressionHead,
    RleHead,
    SimccHead,
    SkipHeatmapHead,
)
from posekit.schema import KeypointSchema

__all__ = ["SkipTrunk", "TopDownNet", "residual_topdown", "topdown_head"]


class TopDownNet(nn.Module):
    """A trunk and a head for crops of ``input_size``.

    Args:
        schema: the keypoint schema (kept as ``self.schema``).
        backbone: the trunk; ``backbone.out_channels`` features at ``trunk_stride``.
        head: maps the features to the codec's outputs (a tuple in layout order).
        layout: the codec's layout (kept as ``self.layout``).
        stride: input pixels per output cell of map outputs (heatmaps); 1 for SimCC / regression.
        options: the builder options that rebuild the network (``zoo.build_model``).
    """

    def __init__(
        self,
        schema: KeypointSchema,
        backbone: nn.Module,
        head: nn.Module,
        layout: OutputLayout,
        *,
        stride: int,
        options: Mapping[str, Any],
    ) -> None:
        super().__init__()
        self.schema = schema
        self.layout = layout
        self.stride = int(stride)
        self._options = dict(options)
        self.backbone = backbone
        self.head = head

    @property
    def options(self) -> dict[str, Any]:
        """The builder options that rebuild this network (``zoo.build_model(name, **options)``)."""
        return dict(self._options)

    def forward(self, x: torch.Tensor) -> list[tuple[torch.Tensor, ...]]:
        """``x (B, 3, H, W)`` crops -> ``[outputs]``: one stage, the head's tuple."""
        if not torch.jit.is_tracing() and (x.dim() != 4 or x.shape[1] != 3):
            raise ValueError(f"expected input (B, 3, H, W), got {tuple(x.shape)}")
        return [tuple(self.head(self.backbone(x)))]


def topdown_head(
    codec: TopDownCodec, in_channels: int, trunk_stride: int, *, deconvs: int = 0
) -> tuple[nn.Module, int]:
    """The head the codec's outputs ask for on features of ``in_channels`` at ``trunk_stride``,
    and the stride of its outputs: heatmaps (``deconvs`` transposed convs first, each halving the
    stride; the first keeps ``in_channels``, each next one half as many, at least 16), SimCC,
    coordinates or RLE coordinates + scales."""
    layout = codec.layout
    if layout.names == ("heatmaps",):
        widths = tuple(max(in_channels >> i, 16) for i in range(deconvs))
        head = HeatmapHead(in_channels, layout, deconv_widths=widths)
        return head, trunk_stride // head.upsample
    w, h = codec.input_size
    if layout.names == ("simcc_x", "simcc_y"):
        return SimccHead(in_channels, (w // trunk_stride, h // trunk_stride), layout), 1
    if layout.names == ("coords",):
        return RegressionHead(in_channels, layout), 1
    if layout.names == ("coords", "sigmas"):
        return RleHead(in_channels, layout), 1
    raise ValueError(f"no top-down head makes the outputs {layout.names}")


class SkipTrunk(ResidualTrunk):
    """``ResidualTrunk`` (same layers and keys) that also returns finer features, coarse to fine:
    ``x -> (stride-8 output, stride-4 features)`` with ``levels=1``, plus the stride-2 features
    (``width / 2`` channels, after the first conv) with ``levels=2``."""

    def __init__(self, width: int = 64, levels: int = 1) -> None:
        super().__init__(width)
        if levels not in (1, 2):
            raise ValueError(f"SkipTrunk: levels must be 1 or 2, got {levels!r}")
        self.levels = levels
        self.skip_channels = (self.stride4_channels, width // 2)[:levels]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:  # type: ignore[override]
        if self.levels == 1:
            return self.features(x)
        half = self.layers[:1](x)
        fine = self.layers[1 : self.STRIDE_4](half)
        return self.layers[self.STRIDE_4 :](fine), fine, half


def residual_topdown(
    schema: KeypointSchema,
    codec: TopDownCodec,
    *,
    width: int = 32,
    deconvs: int = 1,
    skip: bool | int | None = None,
) -> TopDownNet:
    """A small top-down network for CPU training: ``ResidualTrunk(width)`` (stride 8) and the head
    of the codec's kind (``topdown_head``; heatmaps at stride 8 / 2^deconvs). ``skip`` (heatmaps,
    one deconvolution): the trunk's stride-4 features join the upsampled ones
    (``SkipHeatmapHead``), maps at stride 4; ``skip=2`` adds a second level with the stride-2
    features, maps at stride 2 (the codec's ``heatmap_size`` half its ``input_size``). None (the
    default) follows the codec: 2 for heatmaps at stride 2 (the only head that makes them), else
    false. The options kept (``TopDownNet.options``) hold the resolved value."""
    if skip is None:
        heatmaps = codec.layout.names == ("heatmaps",) and deconvs == 1
        skip = 2 if heatmaps and int(codec.stride) == 2 else False
    options = {"width": width, "deconvs": deconvs, "skip": skip}
    if isinstance(skip, str) or skip not in (0, 1, 2):  # False / True are 0 / 1
        raise ConfigError(f"skip: false, true (= 1: stride-4 maps) or 2 (stride 2), got {skip!r}")
    levels = int(skip)
    if levels:
        if codec.layout.names != ("heatmaps",) or deconvs != 1:
            raise ConfigError(
                f"skip: needs a heatmap codec and deconvs=1, got {codec.name} with deconvs={deconvs}"
            )
        trunk: ResidualTrunk = SkipTrunk(width, levels)
        fuse = (width, width // 2)[:levels]
        head: nn.Module = SkipHeatmapHead(trunk.out_channels, trunk.skip_channels,
                                          codec.layout, fuse_channels=fuse)  # fmt: skip
        stride = 8 // head.upsample
    else:
        trunk = ResidualTrunk(width)
        head, stride = topdown_head(codec, trunk.out_channels, 8, deconvs=deconvs)
    return TopDownNet(schema, trunk, head, codec.layout, stride=stride, options=options)
