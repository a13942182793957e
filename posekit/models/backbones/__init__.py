"""Backbones: feature trunks at output stride 8 for the bottom-up models."""

from posekit.models.backbones.mobilenet import MobileNetV1Trunk, conv_block, depthwise_separable
from posekit.models.backbones.residual import BasicBlock, ResidualTrunk
from posekit.models.backbones.vgg import VGG19Trunk, vgg19_trunk_state_from_torchvision

__all__ = [
    "BasicBlock",
    "MobileNetV1Trunk",
    "ResidualTrunk",
    "VGG19Trunk",
    "conv_block",
    "depthwise_separable",
    "vgg19_trunk_state_from_torchvision",
]
