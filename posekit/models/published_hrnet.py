"""Published HRNet top-down heatmap weights: their records, file layouts and loading.

Builds ``TopDownNet(schema, HRNet(W), HeatmapHead(W, layout), layout, stride=4)``
(``hrnet_topdown``), whose keys are ``backbone.<official key>`` and ``head.final_layer.weight``
/ ``.bias``, and reads the authors' and MMPose's files into it. Facts: ../shared/weights/README.md,
section "HRNet top-down heatmap models".

File layouts (``hrnet_file_layout``), each mapped by ``hrnet_state`` to posekit keys:

- ``"official"`` (leoxiaobin/deep-high-resolution-net.pytorch, ``pose_hrnet_w32_256x192.pth``):
  a plain state_dict ``conv1.*`` ... ``stage4.*``, ``final_layer.*``; ``<key>`` ->
  ``backbone.<key>``, ``final_layer.*`` -> ``head.final_layer.*``. The files may lack the
  ``num_batches_tracked`` entries (the official loader is non-strict); they are added as 0, which
  is what PyTorch's BatchNorm does for a state_dict without version metadata (the counter only
  matters for training with ``momentum=None``).
- ``"mmpose-1.x"``: ``{"meta": ..., "state_dict": {"backbone.*", "head.final_layer.*"}}``: keys
  kept as they are (``TopDownNet`` uses this layout); ``data_preprocessor.mean`` / ``.std`` are
  dropped (MMPose drops them too; ``InputSpec`` holds the normalisation).
- ``"mmpose-0.x"``: as 1.x with ``keypoint_head.final_layer.*`` -> ``head.final_layer.*``.

A ``module.`` prefix (DataParallel) is removed first, and a training checkpoint's ``state_dict``
entry is used. Every other key is an error: the file is not one of these networks.

MMPose 1.x files may hold NumPy arrays in ``meta``; ``record.load_checkpoint`` reads them, still
weights-only.

Weights records (URLs, digests): only the MMPose records are downloadable: their ``url`` is the
file itself. The authors publish theirs in Google Drive / OneDrive folders (README "model zoo"),
which no plain HTTP client can fetch, so ``HRNET_W32_COCO`` / ``HRNET_W48_COCO`` name the Google
Drive folder as ``url`` (where a person downloads the file) with ``manual_download``:
``download_weights`` refuses to fetch them; put ``file_name`` into ``<cache>/weights/`` or pass
the file's path. No record pins a sha256 (no file was opened here); MMPose's file names carry the
first 8 hex digits of the sha256, noted beside each record, for checking the digest that the first
download logs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from posekit.codecs.base import OutputLayout
from posekit.errors import CheckpointError
from posekit.models.backbones.hrnet import HRNet
from posekit.models.heads.topdown import HeatmapHead
from posekit.models.record import load_checkpoint
from posekit.models.topdown import TopDownNet
from posekit.models.weights import (
    LoadResult,
    WeightsInfo,
    load_checkpoint_into,
)
from posekit.schema import KeypointSchema
from posekit.structures import InputSpec

logger = logging.getLogger(__name__)

__all__ = [
    "HRNET_INPUT",
    "HRNET_LAYOUTS",
    "HRNET_W32_COCO",
    "HRNET_W48_COCO",
    "HRNET_WEIGHTS",
    "MMPOSE_HRNET_W32_COCO",
    "MMPOSE_HRNET_W48_COCO",
    "check_hrnet_width",
    "hrnet_file_layout",
    "hrnet_state",
    "hrnet_topdown",
    "hrnet_width",
    "is_hrnet_file",
    "load_hrnet_into",
]

HRNET_LAYOUTS = ("official", "mmpose-1.x", "mmpose-0.x")
"""The file layouts ``hrnet_state`` reads (module docstring)."""

_OFFICIAL_PREFIXES = tuple(
    f"{name}." for name in ("conv1", "bn1", "conv2", "bn2", "layer1", "transition1", "transition2",
                            "transition3", "stage2", "stage3", "stage4")
)  # fmt: skip
"""Top-level modules of the official backbone (``PoseHighResolutionNet`` minus final_layer)."""

_MARKERS = (
    "conv1.weight",
    "layer1.0.downsample.0.weight",
    "transition1.1.0.0.weight",
    "stage4.0.fuse_layers.0.3.0.weight",
)
"""Backbone keys that only HRNet has (stem, Bottleneck layer1, transitions, 4-branch fuse)."""

_MMPOSE_HEADS = {"mmpose-1.x": "head.", "mmpose-0.x": "keypoint_head."}  # + final_layer.*
_DROPPED = ("data_preprocessor.mean", "data_preprocessor.std")
_WIDTH_KEY = "backbone.transition1.0.0.weight"  # (W, 256, 3, 3): the width of branch 0
_IN_MEMORY = "<in memory>"  # the name ``weights.load_checkpoint_into`` gives a mapping


# ---------------------------------------------------------------- builder


def hrnet_topdown(schema: KeypointSchema, layout: OutputLayout, width: int = 32) -> TopDownNet:
    """HRNet-W``width`` with a 1x1 heatmap head: crops ``(B, 3, H, W)`` -> ``[(heatmaps (B, K,
    H / 4, W / 4),)]``, K from the heatmap codec's ``layout``; no options (the zoo names the
    width: ``hrnet_w<width>``)."""
    backbone = HRNet(width)
    return TopDownNet(
        schema,
        backbone,
        HeatmapHead(backbone.out_channels, layout),
        layout,
        stride=backbone.stride,
        options={},
    )


# ---------------------------------------------------------------- layouts


def _tensor_dict(obj: Any) -> dict[str, torch.Tensor] | None:
    """The state_dict of a loaded file (its ``state_dict`` entry or itself), ``module.`` removed;
    None when there is no non-empty dict of tensors."""
    if not isinstance(obj, Mapping):
        return None
    inner = obj.get("state_dict", obj)
    if not isinstance(inner, Mapping) or not inner:
        return None
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in inner.items()):
        return None
    state = dict(inner)
    if all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def _layout_of(state: Mapping[str, torch.Tensor]) -> str | None:
    if all(m in state for m in _MARKERS):
        return "official"
    if not all(f"backbone.{m}" in state for m in _MARKERS):
        return None
    return "mmpose-0.x" if any(k.startswith("keypoint_head.") for k in state) else "mmpose-1.x"


def hrnet_file_layout(obj: Any) -> str | None:
    """Which of ``HRNET_LAYOUTS`` a loaded file (``torch.load``'s result) has, None if none.

    Recognised by HRNet's own backbone keys (stem, ``layer1`` downsample, ``transition1``, the
    four-branch fuse layers) without or with the ``backbone.`` prefix; ``keypoint_head.*`` keys
    mark MMPose 0.x. A posekit checkpoint (weights under ``model``) is none of them: it describes
    itself.
    """
    state = _tensor_dict(obj)
    return None if state is None else _layout_of(state)


def is_hrnet_file(obj: Any) -> bool:
    """True when a loaded file is an HRNet heatmap model in one of ``HRNET_LAYOUTS``."""
    return hrnet_file_layout(obj) is not None


def _found(obj: Any) -> str:
    """What a loaded file holds, for messages."""
    if not isinstance(obj, Mapping):
        return f"a {type(obj).__name__}"
    state = _tensor_dict(obj)
    if state is None:
        return f"a dict without a state_dict, top-level keys {sorted(map(str, obj))[:10]}"
    return f"a state_dict of {len(state)} tensors, first keys {list(state)[:5]}"


def _posekit_key(key: str, layout: str) -> str | None:
    """The posekit key of a file key, None for a key that is not part of the network."""
    if layout == "official":
        if key.startswith("final_layer."):
            return "head." + key
        return "backbone." + key if key.startswith(_OFFICIAL_PREFIXES) else None
    head = _MMPOSE_HEADS[layout]
    if key.startswith(head + "final_layer."):
        return "head." + key[len(head) :]
    inner = key.removeprefix("backbone.")
    return key if inner != key and inner.startswith(_OFFICIAL_PREFIXES) else None


def _with_batch_counters(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], int]:
    """``state`` with a ``num_batches_tracked`` 0 after every BN that lacks one, and their count."""
    out: dict[str, torch.Tensor] = {}
    added = 0
    for key, value in state.items():
        out[key] = value
        if key.endswith(".running_var"):
            counter = key[: -len("running_var")] + "num_batches_tracked"
            if counter not in state:
                out[counter] = torch.zeros((), dtype=torch.int64)
                added += 1
    return out, added


def hrnet_state(obj: Any, where: str) -> dict[str, torch.Tensor]:
    """The posekit-keyed state_dict (``backbone.*``, ``head.final_layer.*``) of a loaded HRNet file.

    Args:
        obj: the loaded file (``record.load_checkpoint``), in any of ``HRNET_LAYOUTS``.
        where: the file, for messages.

    Raises:
        CheckpointError: not one of the layouts, or keys that are not part of the network (the
            message names the file, what it holds and the keys).
    """
    state = _tensor_dict(obj)
    layout = None if state is None else _layout_of(state)
    if state is None or layout is None:
        raise CheckpointError(
            f"checkpoint {where} is not an HRNet heatmap model: expected one of {HRNET_LAYOUTS} "
            f"(official keys conv1.*, stage4.*, final_layer.*; MMPose backbone.*, "
            f"head.final_layer.* or keypoint_head.final_layer.*), found {_found(obj)}"
        )
    mapped: dict[str, torch.Tensor] = {}
    foreign = []
    for key, value in state.items():
        if key in _DROPPED:
            continue
        new = _posekit_key(key, layout)
        if new is None:
            foreign.append(key)
        else:
            mapped[new] = value
    if foreign:
        raise CheckpointError(
            f"checkpoint {where} ({layout} HRNet layout) has {len(foreign)} key(s) that are not "
            f"part of an HRNet with a 1x1 heatmap head: {', '.join(foreign[:5])}"
        )
    mapped, added = _with_batch_counters(mapped)
    if added:
        logger.info(
            "%s: added %d num_batches_tracked entries (0) missing in the file", where, added
        )
    return mapped


def hrnet_width(state: Mapping[str, torch.Tensor], where: str = _IN_MEMORY) -> int:
    """W of a posekit-keyed HRNet state_dict (``hrnet_state``): channels of branch 0."""
    weight = state.get(_WIDTH_KEY)
    if weight is None or weight.dim() != 4:
        raise CheckpointError(f"checkpoint {where} has no HRNet branch-0 weight {_WIDTH_KEY}")
    return int(weight.shape[0])


# ---------------------------------------------------------------- loading


def check_hrnet_width(model: Any, state: Mapping[str, torch.Tensor], where: str) -> None:
    """CheckpointError when a posekit-keyed HRNet state is of another width than ``model``'s."""
    backbone = getattr(model, "backbone", None)
    if not isinstance(model, TopDownNet) or not isinstance(backbone, HRNet):
        raise TypeError(
            f"expected a TopDownNet with an HRNet backbone, got {type(model).__name__}"
            + (f" with {type(backbone).__name__}" if backbone is not None else "")
        )
    found = hrnet_width(state, where)
    if found != backbone.width:
        shape = tuple(state[_WIDTH_KEY].shape)
        raise CheckpointError(
            f"checkpoint {where} holds HRNet-W{found} weights ({_WIDTH_KEY} {shape}); the model is "
            f"HRNet-W{backbone.width}: build it with width={found}"
        )


def load_hrnet_into(
    model: TopDownNet,
    source: str | Path | Mapping[str, Any],
    *,
    strict: bool = True,
    where: str | None = None,
) -> LoadResult:
    """Load an HRNet file (any of ``HRNET_LAYOUTS``) into ``model`` in place.

    Args:
        model: ``hrnet_topdown(...)`` (a TopDownNet with an HRNet backbone).
        source: the file (``record.load_checkpoint``), or the loaded object.
        strict: every key must fit (default); ``False`` loads what fits and logs the rest, e.g.
            the backbone of a COCO file into a model for another schema (its head stays new).
        where: the name of ``source`` in messages when it is a loaded object.

    Raises:
        CheckpointError: unreadable file, another layout, another width (checked first, also when
            not strict), or (strict) keys / head channels that do not fit.
        TypeError: ``model`` is not a TopDownNet with an HRNet backbone.
    """
    if isinstance(source, Mapping):
        obj, where = source, where or _IN_MEMORY
    else:
        obj, where = load_checkpoint(source), str(source)
    state = hrnet_state(obj, where)
    check_hrnet_width(model, state, where)
    return load_checkpoint_into(model, state, strict=strict, where=where)


# ---------------------------------------------------------------- records

HRNET_INPUT = InputSpec(
    color_order="RGB",
    mean=(123.675, 116.28, 103.53),  # ImageNet (0.485, 0.456, 0.406) x 255
    std=(58.395, 57.12, 57.375),  # ImageNet (0.229, 0.224, 0.225) x 255
    pad_value=0.0,
    size_divisor=32,
    height=256,
    width=192,
)
"""ImageNet-normalised RGB crops of 192 x 256 (the sides multiples of HRNet's 32)."""
# MSRA targets (integer centre, sigma 2 at 64 x 48) in the frame the models were trained in
# (x_out = x_in / 4); decoding: argmax + quarter-cell step (blur_kernel is unused by "quarter").
_CODEC = {
    "name": "heatmap",
    "centre": "integer",
    "frame": "scale",
    "sigma": 2.0,
    "input_size": [192, 256],
    "heatmap_size": [48, 64],
    "decode_config": {"refine": "quarter", "blur_kernel": 11},
}
_OFFICIAL_FOLDER = "https://drive.google.com/drive/folders/1hOTihvbyIxsm5ygDpbUuJ7O_tzv4oXjC"
# also on OneDrive: https://1drv.ms/f/s!AhIXJn_J-blW231MH2krnmLq5kkQ (models/pytorch/pose_coco/)
_OFFICIAL_SOURCE = "https://github.com/leoxiaobin/deep-high-resolution-net.pytorch"
_OFFICIAL_REPORT = "COCO val2017, person detector AP 56.4, flip test (authors' README)"
_MMPOSE_URL = "https://download.openmmlab.com/mmpose/v1/body_2d_keypoint/topdown_heatmap/coco/"
_MMPOSE_SOURCE = (
    "https://github.com/open-mmlab/mmpose (configs/body_2d_keypoint/topdown_heatmap/coco/"
    "hrnet_coco.yml)"
)
_MMPOSE_REPORT = (
    "COCO val2017, person detections AP 56.4 (COCO_val2017_detections_AP_H_56_person.json), "
    "flip test (MMPose hrnet_coco.yml)"
)

# Values of the state_dicts without the 292 int64 num_batches_tracked counters (the key lists:
# 28,590,741 and 63,675,621 elements).
_NUM_VALUES = {32: 28_590_449, 48: 63_675_329}


def _record(
    name: str, width: int, url: str, file_name: str, reported_ap: float, *, mmpose: bool
) -> WeightsInfo:
    """A COCO-17 HRNet-W``width`` record at 256x192; ``sha256`` is never pinned (no file was
    opened here)."""
    return WeightsInfo(
        name=name,
        model=f"hrnet_w{width}",
        url=url,
        sha256=None,
        file_name=file_name,
        schema_name="coco_person",
        model_options={},
        num_values=_NUM_VALUES[width],
        input=HRNET_INPUT,
        codec=_CODEC,
        reported_ap=reported_ap,
        reported_on=_MMPOSE_REPORT if mmpose else _OFFICIAL_REPORT,
        source=_MMPOSE_SOURCE if mmpose else _OFFICIAL_SOURCE,
        license="Apache-2.0" if mmpose else "MIT",
        manual_download=not mmpose,
    )


# The authors' files: ``url`` is their shared folder, not the file (not downloadable).
HRNET_W32_COCO = _record(
    "hrnet_w32_coco", 32, _OFFICIAL_FOLDER, "pose_hrnet_w32_256x192.pth", 0.744, mmpose=False
)
HRNET_W48_COCO = _record(
    "hrnet_w48_coco", 48, _OFFICIAL_FOLDER, "pose_hrnet_w48_256x192.pth", 0.751, mmpose=False
)
# MMPose 1.x; the 8 hex digits in the names are the start of the files' sha256: 81c58e40 (W32),
# 0e67c616 (W48). Reported AP: MMPose's hrnet_coco.yml.
_MMPOSE_W32 = "td-hm_hrnet-w32_8xb64-210e_coco-256x192-81c58e40_20220909.pth"
_MMPOSE_W48 = "td-hm_hrnet-w48_8xb32-210e_coco-256x192-0e67c616_20220913.pth"
MMPOSE_HRNET_W32_COCO = _record(
    "mmpose_hrnet_w32_coco", 32, _MMPOSE_URL + _MMPOSE_W32, _MMPOSE_W32, 0.746, mmpose=True
)
MMPOSE_HRNET_W48_COCO = _record(
    "mmpose_hrnet_w48_coco", 48, _MMPOSE_URL + _MMPOSE_W48, _MMPOSE_W48, 0.756, mmpose=True
)

HRNET_WEIGHTS = (HRNET_W32_COCO, HRNET_W48_COCO, MMPOSE_HRNET_W32_COCO, MMPOSE_HRNET_W48_COCO)
"""Every HRNet record, for the zoo table."""
