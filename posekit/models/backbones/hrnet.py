"""HRNet (Sun et al., 2019, "Deep High-Resolution Representation Learning for Human Pose
Estimation"): the trunk of the top-down heatmap models, at output stride 4.

The layout is the official ``PoseHighResolutionNet`` (leoxiaobin/deep-high-resolution-net.pytorch,
``lib/models/pose_hrnet.py``, COCO configs ``w32_256x192`` / ``w48_256x192``) without its
``final_layer``, so ``HRNet(32).state_dict()`` has the official keys, shapes, dtypes and order
(``../shared/weights/hrnet_w32_256x192_keys.tsv`` minus ``final_layer.*``; MMPose's ``HRNet``
backbone has the same keys). Attribute names and the order of registration are the format: a
renamed or reordered module breaks loading the published weights.

- stem: ``conv1``, ``conv2``: 3x3 stride-2 convs 3 -> 64 -> 64, each + BN (``bn1``, ``bn2``) +
  ReLU: stride 4. ``layer1``: 4 ``Bottleneck`` blocks 64 -> 256 (block 0 with ``downsample``).
- ``transition1``: 3x3 conv 256 -> W (stride 1) and 3x3 stride-2 conv 256 -> 2W, each + BN + ReLU;
  ``transition2`` / ``transition3`` add a branch (3x3 stride-2 conv + BN + ReLU from the
  lowest-resolution branch, 4W / 8W); their other entries are identities without keys.
- ``stage2`` / ``stage3`` / ``stage4``: 1 / 4 / 3 ``HighResolutionModule`` s of 2 / 3 / 4
  branches (widths W, 2W, 4W, 8W at strides 4, 8, 16, 32), 4 ``BasicBlock`` s per branch, then the
  fuse layers (``HighResolutionModule``). The last module keeps only the stride-4 output.

Shapes: ``(B, 3, H, W) -> (B, width, H / 4, W / 4)``, H and W multiples of 32 (the lowest branch
is at stride 32 and the fuse layers add maps of equal size). BN eps 1e-5, momentum 0.1 (the
official ``BN_MOMENTUM``).
"""

from __future__ import annotations

import torch
from torch import nn

from posekit.models.backbones.mobilenet import conv_block

__all__ = ["BasicBlock", "Bottleneck", "HRNet", "HighResolutionModule"]

_STEM_WIDTH = 64  # stem width and layer1 Bottleneck width (official STAGE1 NUM_CHANNELS)
_EXPANSION = 4  # Bottleneck output = 4 x its width (ResNet's)
_BLOCKS = 4  # blocks per branch in every stage (official NUM_BLOCKS)
_MODULES = (1, 4, 3)  # HighResolutionModules of stage2, stage3, stage4 (official NUM_MODULES)
_MULTIPLE = 32  # input sizes: the stride of the lowest-resolution branch


def _conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


def _conv1x1(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 1, bias=False)


class BasicBlock(nn.Module):
    """HRNet's residual block: ``relu(x + bn2(conv2(relu(bn1(conv1(x))))))``, two 3x3 convs.

    Keys ``conv1``, ``bn1``, ``conv2``, ``bn2`` (the official ``BasicBlock`` without downsample;
    ``backbones.residual.BasicBlock`` is another layout). Shapes: ``(B, C, h, w) -> (B, C, h, w)``.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = _conv3x3(channels, channels)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = _conv3x3(channels, channels)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + x)


class Bottleneck(nn.Module):
    """ResNet's bottleneck: 1x1 (``conv1``), 3x3 (``conv2``), 1x1 (``conv3``) convs without bias,
    each with BN (``bn1``..``bn3``), plus the input (through ``downsample``, 1x1 conv + BN, when
    the widths differ), then ReLU.

    Shapes: ``(B, in_channels, h, w) -> (B, 4 * channels, h, w)``.
    """

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        out_channels = _EXPANSION * channels
        self.conv1 = _conv1x1(in_channels, channels)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = _conv3x3(channels, channels)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv3 = _conv1x1(channels, out_channels)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = (
            conv_block(in_channels, out_channels, 1, bias=False, relu=False)
            if in_channels != out_channels
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        residual = x if self.downsample is None else self.downsample(x)
        return self.relu(out + residual)


def _fuse_layer(widths: tuple[int, ...], i: int, j: int) -> nn.Module:
    """Branch j -> the resolution and width of branch i.

    j > i: 1x1 conv + BN, then nearest upsampling by ``2 ** (j - i)``. The official code uses
    ``nn.Upsample(scale_factor=2 ** (j - i), mode="nearest")``, an explicit factor (not the target
    size): each output pixel repeats one low-resolution pixel, exact for input sizes that are
    multiples of 32. j < i: ``i - j`` stride-2 3x3 convs + BN, ReLU after all but the last; the
    intermediate ones keep branch j's width. j == i: identity (no keys, as the official ``None``).
    """
    if j > i:
        return nn.Sequential(
            *conv_block(widths[j], widths[i], 1, bias=False, relu=False),
            nn.Upsample(scale_factor=2 ** (j - i), mode="nearest"),
        )
    if j == i:
        return nn.Identity()
    steps = i - j
    return nn.Sequential(
        *(
            conv_block(
                widths[j],
                widths[i] if k == steps - 1 else widths[j],
                stride=2,
                bias=False,
                relu=k != steps - 1,
            )
            for k in range(steps)
        )
    )


class HighResolutionModule(nn.Module):
    """Parallel branches of ``BasicBlock`` s, then every output branch is the ReLU of the sum of
    all branches brought to its resolution (``fuse_layers.i.j``, see ``_fuse_layer``).

    Args:
        widths: channels of the branches, highest resolution first (each next branch at half the
            resolution).
        multi_scale_output: False keeps only output branch 0 (the last module of HRNet).

    Shapes: a list of ``(B, widths[b], h / 2^b, w / 2^b)`` -> the same list (or its first entry).
    """

    def __init__(self, widths: tuple[int, ...], *, multi_scale_output: bool = True) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Sequential(*(BasicBlock(width) for _ in range(_BLOCKS))) for width in widths
        )
        outputs = len(widths) if multi_scale_output else 1
        self.fuse_layers = nn.ModuleList(
            nn.ModuleList(_fuse_layer(widths, i, j) for j in range(len(widths)))
            for i in range(outputs)
        )
        self.relu = nn.ReLU(inplace=False)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs, strict=True)]
        fused = []
        for layers in self.fuse_layers:
            total = layers[0](xs[0])
            for layer, x in zip(layers[1:], xs[1:], strict=True):
                total = total + layer(x)
            fused.append(self.relu(total))
        return fused


def _transition(in_widths: tuple[int, ...], out_widths: tuple[int, ...]) -> nn.ModuleList:
    """Branches of one stage -> the inputs of the next (one more branch).

    Existing branches: identity when the width is kept (the official ``None``), else a 3x3 conv +
    BN + ReLU (``transition1.0``). The new branch: a stride-2 3x3 conv + BN + ReLU of the lowest
    branch, wrapped in a Sequential as the official keys (``transition1.1.0.*``).
    """
    layers: list[nn.Module] = []
    for b, width in enumerate(out_widths):
        if b < len(in_widths):
            same = in_widths[b] == width
            layers.append(nn.Identity() if same else conv_block(in_widths[b], width, bias=False))
        else:
            layers.append(nn.Sequential(conv_block(in_widths[-1], width, stride=2, bias=False)))
    return nn.ModuleList(layers)


class HRNet(nn.Module):
    """HRNet-W``width``: ``(B, 3, H, W) -> (B, width, H / 4, W / 4)``, H and W multiples of 32.

    Args:
        width: W, the width of the highest-resolution branch (18, 32, 48 are published); the
            branches have W, 2W, 4W, 8W channels.

    Attributes:
        width: W. out_channels: W (the stride-4 branch is the output). stride: 4.
    """

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ValueError(f"HRNet width must be a positive integer, got {width!r}")
        self.width = width
        self.out_channels = width
        self.stride = 4  # input pixels per output cell: the stem's two stride-2 convs
        self.conv1 = _conv3x3(3, _STEM_WIDTH, stride=2)
        self.bn1 = nn.BatchNorm2d(_STEM_WIDTH)
        self.conv2 = _conv3x3(_STEM_WIDTH, _STEM_WIDTH, stride=2)
        self.bn2 = nn.BatchNorm2d(_STEM_WIDTH)
        self.relu = nn.ReLU(inplace=True)
        stem_out = _EXPANSION * _STEM_WIDTH
        self.layer1 = nn.Sequential(
            Bottleneck(_STEM_WIDTH, _STEM_WIDTH),
            *(Bottleneck(stem_out, _STEM_WIDTH) for _ in range(_BLOCKS - 1)),
        )
        widths = tuple(width * 2**b for b in range(4))
        self.transition1 = _transition((stem_out,), widths[:2])
        self.stage2 = self._stage(widths[:2], _MODULES[0])
        self.transition2 = _transition(widths[:2], widths[:3])
        self.stage3 = self._stage(widths[:3], _MODULES[1])
        self.transition3 = _transition(widths[:3], widths)
        self.stage4 = self._stage(widths, _MODULES[2], multi_scale_output=False)
        self._init_weights()

    @staticmethod
    def _stage(
        widths: tuple[int, ...], modules: int, *, multi_scale_output: bool = True
    ) -> nn.Sequential:
        """``modules`` HighResolutionModules; only the last one may drop the low outputs."""
        return nn.Sequential(
            *(
                HighResolutionModule(
                    widths, multi_scale_output=multi_scale_output or m < modules - 1
                )
                for m in range(modules)
            )
        )

    def _init_weights(self) -> None:
        """The official ``init_weights``: conv weights normal(std 0.001), BN weight 1, bias 0."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, std=0.001)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    @staticmethod
    def _apply_transition(transition: nn.ModuleList, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        """Branch b takes input branch b; the new branch takes the lowest one."""
        return [layer(xs[min(b, len(xs) - 1)]) for b, layer in enumerate(transition)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_tracing() and (x.shape[-2] % _MULTIPLE or x.shape[-1] % _MULTIPLE):
            raise ValueError(
                f"HRNet needs an input height and width that are multiples of {_MULTIPLE}, got "
                f"{tuple(x.shape[-2:])} (H, W)"
            )
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        xs = [self.layer1(x)]
        xs = self.stage2(self._apply_transition(self.transition1, xs))
        xs = self.stage3(self._apply_transition(self.transition2, xs))
        xs = self.stage4(self._apply_transition(self.transition3, xs))
        return xs[0]
