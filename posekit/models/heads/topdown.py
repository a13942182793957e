"""Heads of top-down networks: features of one crop -> the outputs of a top-down codec.

Each head takes the trunk's features ``(B, C, h, w)`` and returns a tuple of outputs in the order
of the codec's layout, their sizes from the layout (never typed twice):

- ``HeatmapHead`` (heatmap codecs): optional deconvolutions (SimpleBaseline), then ``final_layer``,
  a 1x1 conv to K maps: ``(heatmaps (B, K, h', w'),)``. With no deconvolution its keys are
  HRNet's (``final_layer.weight``, ``final_layer.bias``).
- ``SimccHead`` (SimCC): ``final_layer`` 1x1 conv to K channels, flattened, then one linear layer
  per axis to the bins: ``(simcc_x (B, K, Wx), simcc_y (B, K, Wy))`` (logits).
- ``RegressionHead`` / ``RleHead`` (regression, RLE): global average pooling and one linear layer:
  ``(coords (B, K, 2),)`` normalized, or ``(coords, sigmas)`` with positive scales (sigmoid).
"""

from __future__ import annotations

import torch
from torch import nn

from posekit.codecs.base import OutputLayout
from posekit.models.heads.paf import OutputConv

__all__ = ["HeatmapHead", "RegressionHead", "RleHead", "SimccHead", "SkipHeatmapHead"]


def _deconvs(in_channels: int, widths: tuple[int, ...]) -> tuple[nn.Sequential, int]:
    """4x4 stride-2 transposed convs + BN + ReLU (SimpleBaseline's), and the output width."""
    layers: list[nn.Module] = []
    for width in widths:
        layers += [
            nn.ConvTranspose2d(in_channels, width, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        ]
        in_channels = width
    return nn.Sequential(*layers), in_channels


class SkipHeatmapHead(nn.Module):
    """``((B, C, h, w), (B, C4, 2h, 2w)[, (B, C2, 4h, 4w)])`` -> ``(heatmaps (B, K, 2^L h, 2^L w),)``:
    a feature-pyramid decoder (the finer features carry where a keypoint is, the coarse ones
    which keypoint it is). Each level upsamples by one deconvolution, adds the next finer
    features through a lateral 1x1 conv + BN and mixes them with a 3x3 conv; ``final_layer``
    makes the K maps from the last level. Level 1 is ``deconv`` / ``lateral`` / ``fuse``,
    level 2 ``deconv2`` / ``lateral2`` / ``fuse2``.

    Args:
        in_channels: C, of the coarse features.
        skip_channels: C4, of the features at twice their resolution, or one width per level
            (``(C4, C2)``: two levels).
        layout: the heatmap codec's layout.
        fuse_channels: width of each level's ``fuse`` (one int, or one per level).
    """

    def __init__(
        self,
        in_channels: int,
        skip_channels: int | tuple[int, ...],
        layout: OutputLayout,
        *,
        fuse_channels: int | tuple[int, ...],
    ) -> None:
        super().__init__()
        if layout.names != ("heatmaps",):
            raise ValueError(f"a heatmap head makes (heatmaps,), not the layout {layout.names}")
        skips = (skip_channels,) if isinstance(skip_channels, int) else tuple(skip_channels)
        fuses = (fuse_channels,) * len(skips) if isinstance(fuse_channels, int) else fuse_channels
        if not 1 <= len(skips) <= 2 or len(fuses) != len(skips):
            raise ValueError(
                f"SkipHeatmapHead: one or two levels, a fuse width each; got skip_channels "
                f"{skip_channels}, fuse_channels {fuse_channels}"
            )
        self.upsample = 2 ** len(skips)
        channels = in_channels
        for level, (skip, fuse) in enumerate(zip(skips, fuses, strict=True), start=1):
            suffix = "" if level == 1 else str(level)
            deconv, width = _deconvs(channels, (channels if level == 1 else fuse,))
            setattr(self, f"deconv{suffix}", deconv)
            setattr(self, f"lateral{suffix}",
                    nn.Sequential(nn.Conv2d(skip, width, 1, bias=False), nn.BatchNorm2d(width)))  # fmt: skip
            setattr(self, f"fuse{suffix}", nn.Sequential(
                nn.Conv2d(width, fuse, 3, padding=1, bias=False),
                nn.BatchNorm2d(fuse),
                nn.ReLU(inplace=True),
            ))  # fmt: skip
            channels = fuse
        self.levels = len(skips)
        self.final_layer = OutputConv(channels, layout["heatmaps"].channels, kind="heatmaps")

    def forward(self, features: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor]:
        if len(features) != self.levels + 1:
            raise ValueError(
                f"SkipHeatmapHead with {self.levels} level(s) takes {self.levels + 1} feature "
                f"maps, got {len(features)}"
            )
        x = features[0]
        for level, fine in enumerate(features[1:], start=1):
            suffix = "" if level == 1 else str(level)
            up = getattr(self, f"deconv{suffix}")(x)
            x = getattr(self, f"fuse{suffix}")(up + getattr(self, f"lateral{suffix}")(fine))
        return (self.final_layer(x),)


class HeatmapHead(nn.Module):
    """``(B, C, h, w)`` -> ``(heatmaps (B, K, h * 2^D, w * 2^D),)``, D = ``len(deconv_widths)``.

    Args:
        in_channels: C.
        layout: the heatmap codec's layout (one output, ``heatmaps``, K channels).
        deconv_widths: widths of the transposed convs (each doubles the resolution).
    """

    def __init__(
        self, in_channels: int, layout: OutputLayout, *, deconv_widths: tuple[int, ...] = ()
    ) -> None:
        super().__init__()
        if layout.names != ("heatmaps",):
            raise ValueError(f"a heatmap head makes (heatmaps,), not the layout {layout.names}")
        self.upsample = 2 ** len(deconv_widths)
        self.deconv, width = _deconvs(in_channels, tuple(deconv_widths))
        self.final_layer = OutputConv(width, layout["heatmaps"].channels, kind="heatmaps")

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor]:
        return (self.final_layer(self.deconv(features)),)


class SimccHead(nn.Module):
    """``(B, C, h, w)`` -> ``(simcc_x (B, K, Wx), simcc_y (B, K, Wy))``, 1-D logits per keypoint.

    Args:
        in_channels: C.
        feature_size: (w, h) of the features (fixed by the crop size and the trunk's stride).
        layout: the SimCC codec's layout (``simcc_x``, ``simcc_y`` with their bins in ``shape``).
    """

    def __init__(
        self, in_channels: int, feature_size: tuple[int, int], layout: OutputLayout
    ) -> None:
        super().__init__()
        if layout.names != ("simcc_x", "simcc_y"):
            raise ValueError(
                f"a SimCC head makes (simcc_x, simcc_y), not the layout {layout.names}"
            )
        k = layout["simcc_x"].channels
        cells = int(feature_size[0]) * int(feature_size[1])
        self.final_layer = nn.Conv2d(in_channels, k, 1)
        self.mlp_head_x = nn.Linear(cells, layout["simcc_x"].shape[0])
        self.mlp_head_y = nn.Linear(cells, layout["simcc_y"].shape[0])

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        flat = self.final_layer(features).flatten(2)  # (B, K, h * w)
        return self.mlp_head_x(flat), self.mlp_head_y(flat)


class RegressionHead(nn.Module):
    """``(B, C, h, w)`` -> ``(coords (B, K, 2),)`` normalized (u, v), by average pooling + linear."""

    def __init__(self, in_channels: int, layout: OutputLayout) -> None:
        super().__init__()
        if layout.names != ("coords",):
            raise ValueError(f"a regression head makes (coords,), not the layout {layout.names}")
        self.num_keypoints = layout["coords"].channels
        self.fc = nn.Linear(in_channels, 2 * self.num_keypoints)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor]:
        pooled = features.mean(dim=(2, 3))
        return (self.fc(pooled).view(-1, self.num_keypoints, 2),)


class RleHead(nn.Module):
    """``(B, C, h, w)`` -> ``(coords (B, K, 2), sigmas (B, K, 2))``: the Laplace means and their
    positive scales (a sigmoid, so in (0, 1) of the crop), by average pooling + linear."""

    def __init__(self, in_channels: int, layout: OutputLayout) -> None:
        super().__init__()
        if layout.names != ("coords", "sigmas"):
            raise ValueError(f"an RLE head makes (coords, sigmas), not the layout {layout.names}")
        self.num_keypoints = layout["coords"].channels
        self.fc = nn.Linear(in_channels, 4 * self.num_keypoints)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.fc(features.mean(dim=(2, 3))).view(-1, self.num_keypoints, 4)
        return out[..., :2], torch.sigmoid(out[..., 2:])
