"""Bottom-up (part affinity field) networks: Lightweight OpenPose, OpenPose (CMU, VGG19) and a
small residual network for CPU training from scratch (``PafTiny``).

All networks share one output contract. For an input ``x (B, 3, H, W)`` float32 with H, W
multiples of the stride 8, ``forward(x)`` returns a list with one ``(heatmaps, pafs)`` pair per
stage (initial stage first, last refinement stage last):

- ``heatmaps (B, K + 1, H / 8, W / 8)``: one map per keypoint of ``model.schema`` in schema order,
  the last channel is the background;
- ``pafs (B, 2L, H / 8, W / 8)``: channels ``2j, 2j + 1`` are the x, y components of the field of
  ``schema.limbs[j]`` (pointing from its ``src`` to its ``dst`` keypoint).

The channel counts come from the PAF codec's layout (``codecs.paf.paf_layout(schema)``, kept as
``model.layout``), never typed twice. Training uses every stage (intermediate supervision);
inference uses the last pair. Input normalisation is the caller's business (the model's
``structures.InputSpec``).

The attribute names of ``LightweightOpenPose`` are those of the published Lightweight OpenPose code,
so its ``state_dict()`` keys are exactly the published checkpoint's (``model.0.0.weight`` ...
``refinement_stages.0.pafs.1.0.bias``); see ``zoo.load_lwop_checkpoint``.
"""

from __future__ import annotations

import torch
from torch import nn

from posekit.codecs.base import OutputLayout
from posekit.codecs.paf import paf_layout
from posekit.models.backbones.mobilenet import MobileNetV1Trunk
from posekit.models.backbones.residual import ResidualTrunk
from posekit.models.backbones.vgg import VGG19Trunk
from posekit.models.heads.paf import (
    Cpm,
    InitialStage,
    OpenPoseStage,
    OutputConv,
    RefinementStage,
    TinyPafStage,
)
from posekit.schema import KeypointSchema

__all__ = [
    "STRIDE",
    "PafNetwork",
    "LightweightOpenPose",
    "OpenPoseVGG19",
    "PafTiny",
    "StageOutputs",
    "init_weights",
]

STRIDE = 8
"""Output stride of both networks: output maps are (H / 8, W / 8)."""

StageOutputs = list[tuple[torch.Tensor, torch.Tensor]]
"""One ``(heatmaps (B, K+1, h, w), pafs (B, 2L, h, w))`` pair per stage, first stage first."""


def init_weights(module: nn.Module) -> None:
    """Initialisation for training from scratch, applied to every submodule of ``module``.

    Convs: Kaiming normal (fan-out, ReLU gain), bias 0; ``OutputConv``: normal std 0.01 (as in
    OpenPose), bias 0, so untrained maps start near 0; BatchNorm: weight 1, bias 0.
    """
    for m in module.modules():
        if isinstance(m, OutputConv):
            nn.init.normal_(m.weight, std=0.01)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def _check_input(x: torch.Tensor) -> None:
    if torch.jit.is_tracing():  # shapes are tensors while tracing; the exporter fixes the size
        return
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"expected input (B, 3, H, W), got {tuple(x.shape)}")
    if x.shape[2] % STRIDE or x.shape[3] % STRIDE:
        raise ValueError(
            f"input height and width must be multiples of {STRIDE} (pad the image), "
            f"got (H, W) = {tuple(x.shape[2:])}"
        )


def _checked_layout(schema: KeypointSchema, layout: OutputLayout | None) -> OutputLayout:
    """The layout given (checked to be a PAF network's), or the PAF codec's for ``schema``."""
    layout = paf_layout(schema) if layout is None else layout
    if layout.names != ("heatmaps", "pafs"):
        raise ValueError(f"a PAF network makes (heatmaps, pafs), not the layout {layout.names}")
    return layout


def _num_stages(num_refinement_stages: int) -> int:
    if not isinstance(num_refinement_stages, int) or num_refinement_stages < 0:
        raise ValueError(
            f"num_refinement_stages must be an int >= 0, got {num_refinement_stages!r}"
        )
    return num_refinement_stages


class PafNetwork(nn.Module):
    """What the PAF networks share: schema, codec layout, stride 8, and a chain of stages.

    A subclass builds ``initial_stage`` and ``refinement_stages`` after ``super().__init__`` and
    implements ``features``; each refinement stage sees the previous stage's maps concatenated
    with the features: ``(features, heatmaps, pafs)``, or ``(pafs, heatmaps, features)`` when
    ``cmu_order`` (OpenPose's order).
    """

    cmu_order = False
    initial_stage: nn.Module
    refinement_stages: nn.ModuleList

    def __init__(self, schema: KeypointSchema, layout: OutputLayout | None) -> None:
        super().__init__()
        self.schema = schema
        self.stride = STRIDE
        self.layout = _checked_layout(schema, layout)
        self.num_heatmaps, self.num_pafs = self.layout.channels

    @property
    def num_refinement_stages(self) -> int:
        """Number of refinement stages (``len(forward(x)) - 1``)."""
        return len(self.refinement_stages)

    @property
    def options(self) -> dict[str, int]:
        """The builder options that rebuild this network (``zoo.build_model(name, **options)``)."""
        return {"num_refinement_stages": self.num_refinement_stages}

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``x (B, 3, H, W)`` -> the features every stage sees, ``(B, C, H/8, W/8)``."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> StageOutputs:
        """``x (B, 3, H, W)`` -> list of ``(heatmaps (B, K+1, H/8, W/8), pafs (B, 2L, H/8, W/8))``."""
        _check_input(x)
        features = self.features(x)
        outputs = [self.initial_stage(features)]
        for stage in self.refinement_stages:
            heatmaps, pafs = outputs[-1]
            parts = [pafs, heatmaps, features] if self.cmu_order else [features, heatmaps, pafs]
            outputs.append(stage(torch.cat(parts, dim=1)))
        return outputs


# ---------------------------------------------------------------- Lightweight OpenPose


class LightweightOpenPose(PafNetwork):
    """Lightweight OpenPose (Osokin, 2018): MobileNetV1 trunk -> CPM -> initial stage -> refinement.

    Each refinement stage sees ``concat(features (128), heatmaps (K+1), pafs (2L))`` of the
    previous stage. With ``KeypointSchema.named("openpose18")`` and one refinement stage this is
    the published network, and ``state_dict()`` has exactly the published checkpoint's keys.

    Args:
        schema: keypoint schema (kept as ``self.schema``); with ``layout`` it gives the K + 1
            heatmap and 2L PAF channels.
        num_refinement_stages: refinement stages after the initial stage (published: 1).
        layout: the PAF codec's output layout (default ``paf_layout(schema)``).

    Shapes: ``forward(x (B, 3, H, W) float32)`` with H, W multiples of 8 returns ``1 +
    num_refinement_stages`` pairs ``(heatmaps (B, K+1, H/8, W/8), pafs (B, 2L, H/8, W/8))``.
    """

    def __init__(
        self,
        schema: KeypointSchema,
        *,
        num_refinement_stages: int = 1,
        layout: OutputLayout | None = None,
    ) -> None:
        super().__init__(schema, layout)
        channels = 128
        self.model = MobileNetV1Trunk()
        self.cpm = Cpm(self.model.out_channels, channels)
        self.initial_stage = InitialStage(channels, self.num_heatmaps, self.num_pafs)
        self.refinement_stages = nn.ModuleList(
            RefinementStage(
                channels + self.num_heatmaps + self.num_pafs,
                channels,
                self.num_heatmaps,
                self.num_pafs,
            )
            for _ in range(_num_stages(num_refinement_stages))
        )
        init_weights(self)

    @property
    def backbone(self) -> nn.Module:
        """The MobileNetV1 trunk (``self.model``, named so to match the published keys)."""
        return self.model

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """MobileNet trunk, then the CPM: ``(B, 128, H/8, W/8)``."""
        return self.cpm(self.model(x))


# ---------------------------------------------------------------- OpenPose (CMU, VGG19)


class OpenPoseVGG19(PafNetwork):
    """OpenPose (Cao et al., CVPR 2017): VGG19 conv1_1-conv4_2, two CPM convs, multi-stage branches.

    ``backbone`` (``VGG19Trunk``, stride 8) -> ``cpm`` (conv4_3_CPM 3x3 512->256 + ReLU,
    conv4_4_CPM 3x3 256->128 + ReLU) -> ``initial_stage`` -> ``refinement_stages``; each refinement
    stage sees ``concat(pafs (2L), heatmaps (K+1), features (128))`` of the previous stage (the CMU
    order). Layer names differ from the CMU Caffe model.

    Args:
        schema: keypoint schema (kept as ``self.schema``); with ``layout`` it gives the K + 1
            heatmap and 2L PAF channels.
        num_refinement_stages: refinement stages after stage 1 (CMU: 5).
        layout: the PAF codec's output layout (default ``paf_layout(schema)``).

    Shapes: ``forward(x (B, 3, H, W) float32)`` with H, W multiples of 8 returns ``1 +
    num_refinement_stages`` pairs ``(heatmaps (B, K+1, H/8, W/8), pafs (B, 2L, H/8, W/8))``.
    """

    cmu_order = True

    def __init__(
        self,
        schema: KeypointSchema,
        *,
        num_refinement_stages: int = 5,
        layout: OutputLayout | None = None,
    ) -> None:
        super().__init__(schema, layout)
        channels = 128
        self.backbone = VGG19Trunk()
        self.cpm = nn.Sequential(
            nn.Conv2d(self.backbone.out_channels, 256, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, channels, 3, padding=1),
            nn.ReLU(inplace=True),
        )
        self.initial_stage = OpenPoseStage(
            channels, self.num_heatmaps, self.num_pafs, refinement=False
        )
        self.refinement_stages = nn.ModuleList(
            OpenPoseStage(
                channels + self.num_heatmaps + self.num_pafs,
                self.num_heatmaps,
                self.num_pafs,
                refinement=True,
            )
            for _ in range(_num_stages(num_refinement_stages))
        )
        init_weights(self)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """VGG19 trunk, then the two CPM convs: ``(B, 128, H/8, W/8)``."""
        return self.cpm(self.backbone(x))


# ---------------------------------------------------------------- small residual PAF network


class PafTiny(PafNetwork):
    """A small residual PAF network for training from scratch on a CPU (~1.7M parameters).

    ``ResidualTrunk`` (stride 8, ``2 * width`` channels) -> initial stage (a 3x3 head per output)
    -> optional refinement stages on ``concat(features, heatmaps, pafs)``. No published weights:
    it is the default network of ``posekit train`` on synthetic data, and a quick baseline on
    small data sets; for photos, ``lwop_mobilenet`` started from the published weights learns more.

    Args:
        schema: keypoint schema (kept as ``self.schema``); with ``layout`` it gives the K + 1
            heatmap and 2L PAF channels.
        num_refinement_stages: refinement stages after the initial stage (default 0).
        width: trunk width (features have ``2 * width`` channels).
        layout: the PAF codec's output layout (default ``paf_layout(schema)``).

    Shapes: ``forward(x (B, 3, H, W) float32)`` with H, W multiples of 8 returns ``1 +
    num_refinement_stages`` pairs ``(heatmaps (B, K+1, H/8, W/8), pafs (B, 2L, H/8, W/8))``.
    Initialisation: PyTorch's defaults (Kaiming uniform convs), which train from scratch at the
    default learning rate.
    """

    def __init__(
        self,
        schema: KeypointSchema,
        *,
        num_refinement_stages: int = 0,
        width: int = 64,
        layout: OutputLayout | None = None,
    ) -> None:
        super().__init__(schema, layout)
        self.width = width
        self.backbone = ResidualTrunk(width)
        channels = self.backbone.out_channels
        self.initial_stage = TinyPafStage(channels, channels, self.num_heatmaps, self.num_pafs)
        self.refinement_stages = nn.ModuleList(
            TinyPafStage(
                channels + self.num_heatmaps + self.num_pafs,
                channels,
                self.num_heatmaps,
                self.num_pafs,
            )
            for _ in range(_num_stages(num_refinement_stages))
        )

    @property
    def options(self) -> dict[str, int]:
        """The builder options that rebuild this network (``zoo.build_model(name, **options)``)."""
        return {**super().options, "width": self.width}

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The residual trunk: ``(B, 2 * width, H/8, W/8)``."""
        return self.backbone(x)
