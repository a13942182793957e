"""Published weights files in their authors' layouts: which layout a loaded file has, its tensors
under posekit's keys, and the published record it is.

``read_published(obj, where)`` tries each layout of ``LAYOUTS`` on a loaded file (``record.
load_checkpoint``) and returns a ``PublishedFile``, or None for a file of none of them (a posekit
checkpoint describes itself and is never one):

- ``lwop``: the Lightweight OpenPose training checkpoint (``checkpoint_iter_370000.pth``), keys
  already posekit's; model ``lwop_mobilenet`` with as many refinement stages as the file holds;
- ``rtpose``: CMU's COCO OpenPose converted to PyTorch (``pose_model.pth``); ``openpose_vgg19``;
- ``hrnet``: the HRNet authors' files and MMPose's (1.x and 0.x); ``hrnet_w<W>`` by the width in
  the keys, the COCO record of that width and source when there is one;
- ``mobilenet_imagenet``: the ImageNet MobileNetV1 that Lightweight OpenPose training starts from
  (``mobilenet_sgd_68.848.pth.tar``): a trunk, not a pose model (``info`` None); its tensors are
  the trunk of ``lwop_mobilenet``, loaded not strictly.

Each layout's own module holds its key map and records (``published_openpose``,
``published_hrnet``); a new layout is one function here and one entry of ``LAYOUTS``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from posekit.models import published_hrnet as hrnet
from posekit.models import published_openpose as openpose
from posekit.models.weights import WeightsInfo

__all__ = ["LAYOUTS", "PublishedFile", "read_published"]


@dataclass(frozen=True)
class PublishedFile:
    """A loaded published file, converted.

    Attributes:
        layout: its ``LAYOUTS`` name.
        model_name: the zoo model its tensors fit.
        state: the tensors under posekit's keys.
        info: the published record of the pose model it is; None for a trunk (ImageNet
            weights) or a file no record describes.
        model_options: the builder options the file's keys imply (refinement stages).
        check: raises ``CheckpointError`` when a model cannot take the file (another HRNet
            width), before any tensor is loaded.
    """

    layout: str
    model_name: str
    state: dict[str, torch.Tensor]
    info: WeightsInfo | None
    model_options: dict[str, Any] = field(default_factory=dict)
    check: Callable[[Any], None] = lambda model: None

    @property
    def is_trunk(self) -> bool:
        """True for a trunk's ImageNet weights: load with ``strict=False``."""
        return self.layout == "mobilenet_imagenet"


def _lwop(obj: Mapping[str, Any], where: str) -> PublishedFile:
    state, stages = openpose.lwop_state(obj, where)
    info = openpose.LWOP_COCO
    return PublishedFile("lwop", info.model, state, info, {"num_refinement_stages": stages})


def _rtpose(obj: Mapping[str, Any], where: str) -> PublishedFile:
    info = openpose.RTPOSE_COCO
    return PublishedFile("rtpose", info.model, openpose.rtpose_state(obj, where), info,
                         dict(info.model_options))  # fmt: skip


def _hrnet(obj: Mapping[str, Any], where: str) -> PublishedFile:
    state = hrnet.hrnet_state(obj, where)
    width = hrnet.hrnet_width(state, where)
    official = hrnet.hrnet_file_layout(obj) == "official"
    records = [
        r for r in hrnet.HRNET_WEIGHTS
        if r.model == f"hrnet_w{width}" and (r.manual_download == official)
    ]  # fmt: skip
    return PublishedFile("hrnet", f"hrnet_w{width}", state, records[0] if records else None,
                         check=lambda model: hrnet.check_hrnet_width(model, state, where))  # fmt: skip


def _mobilenet(obj: Mapping[str, Any], where: str) -> PublishedFile:
    trunk = openpose.MOBILENET_IMAGENET
    state = openpose.mobilenet_imagenet_state(obj, where)
    return PublishedFile("mobilenet_imagenet", trunk.model, state, None)


LAYOUTS: Mapping[str, tuple[Callable[[Any], bool], Callable[..., PublishedFile]]] = {
    "lwop": (openpose.is_lwop_file, _lwop),
    "rtpose": (openpose.is_rtpose_file, _rtpose),
    "hrnet": (hrnet.is_hrnet_file, _hrnet),
    "mobilenet_imagenet": (openpose.is_mobilenet_imagenet_file, _mobilenet),
}
"""Layout name -> (is a loaded file of it, convert it)."""

DESCRIPTIONS = (
    "the Lightweight OpenPose training checkpoint (state_dict of model.*, cpm.*, initial_stage.*)",
    "CMU's OpenPose pose_model.pth (model0.*, model1_1.* ...)",
    "HRNet (the authors' conv1.* ... final_layer.*, or MMPose's backbone.* / head.*)",
    "the ImageNet MobileNetV1 mobilenet_sgd_68.848.pth.tar (module.model.*, module.fc.*)",
)
"""The layouts, for messages."""


def read_published(obj: Any, where: str) -> PublishedFile | None:
    """The published file ``obj`` (a loaded file) is, converted; None when it is of no layout.

    Raises:
        CheckpointError: a file of a layout with keys or shapes that layout does not have.
    """
    if not isinstance(obj, Mapping) or "format" in obj:
        return None
    for recognise, convert in LAYOUTS.values():
        if recognise(obj):
            return convert(obj, where)
    return None
