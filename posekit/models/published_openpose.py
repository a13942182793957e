"""Published OpenPose-family files in their authors' layouts: key maps onto posekit's networks.

- ``pose_model.pth``: CMU's COCO OpenPose model (``pose_iter_440000.caffemodel``) converted to
  PyTorch by tensorboy/pytorch_Realtime_Multi-Person_Pose_Estimation. A plain state_dict of 184
  tensors (``model0.*`` VGG19 + CPM convs, ``modelN_1.*`` PAF branch and ``modelN_2.*`` heatmap
  branch of stage N = 1..6); ``rtpose_state`` renames them to ``OpenPoseVGG19``'s keys and
  ``RTPOSE_COCO`` describes the file (schema, input, codec).
- ``mobilenet_sgd_68.848.pth.tar``: the ImageNet MobileNetV1 of marvis/pytorch-mobilenet that
  Lightweight OpenPose training starts from (``{"state_dict": {"module.model.*", "module.fc.*"},
  "epoch", "arch", "best_prec1", "optimizer"}``, written by the PyTorch ImageNet example around a
  DataParallel model); ``mobilenet_imagenet_state`` keeps the ``model.*`` trunk tensors that
  ``LightweightOpenPose`` shares and ``MOBILENET_IMAGENET`` names the file.

Channel layout of ``pose_model.pth``: heatmap i is keypoint i of the built-in schema
``openpose18`` (nose, neck, right shoulder ... left ear; channel 18 the background) and PAF channels
2j, 2j+1 are the x, y of ``openpose18.limbs[j]``, CMU's limb j in CMU's direction. The published
Lightweight OpenPose checkpoint kept this layout, so ``openpose18`` (``limb_order: given``)
describes both pose models and ``PafCodec(KeypointSchema.named("openpose18"))`` decodes them as
trained.

Use: ``state = rtpose_state(torch_loaded_obj, str(path))``, then
``weights.load_checkpoint_into(model, state, strict=True)`` for ``OpenPoseVGG19(openpose18,
num_refinement_stages=5)``; ``mobilenet_imagenet_state`` gives the trunk only, so load it with
``strict=False`` (the CPM and the stages stay fresh and the partial load is logged).
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

import torch

from posekit.errors import CheckpointError
from posekit.models.backbones.mobilenet import MobileNetV1Trunk
from posekit.models.weights import WeightsInfo
from posekit.structures import InputSpec

logger = logging.getLogger(__name__)

__all__ = [
    "LWOP_COCO",
    "MOBILENET_IMAGENET",
    "RTPOSE_COCO",
    "TrunkWeights",
    "is_lwop_file",
    "is_mobilenet_imagenet_file",
    "is_rtpose_file",
    "lwop_state",
    "mobilenet_imagenet_state",
    "rtpose_state",
]

_PREFIX = "module."  # DataParallel


def _state_of(obj: Any, where: str, entry: str | None) -> tuple[dict[str, torch.Tensor], bool]:
    """(tensors without a ``module.`` prefix, whether it had one) of a loaded file.

    ``entry``: the top-level key holding the state_dict (None: ``obj`` is the state_dict); a
    file without it, or with non-tensor values, is not a file of the layout looked for.
    """
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"checkpoint {where}: expected a dict, got {type(obj).__name__}")
    state = obj.get(entry) if entry is not None else obj
    if not isinstance(state, Mapping) or not state:
        return {}, False
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        return {}, False
    prefixed = all(k.startswith(_PREFIX) for k in state)
    return {(k[len(_PREFIX) :] if prefixed else k): v for k, v in state.items()}, prefixed


def _not_the_layout(obj: Any, where: str, what: str, expected: str, found: list[str]) -> NoReturn:
    top = sorted(map(str, obj))[:8] if isinstance(obj, Mapping) else []
    shown = f"keys such as {found[:5]}" if found else f"the top-level entries {top}"
    raise CheckpointError(f"checkpoint {where} is not {what} (expected {expected}); found {shown}")


# ---------------------------------------------------------------- OpenPose (CMU), pose_model.pth

_RTPOSE_KEY = re.compile(r"model(?:0|([1-9])_([12]))\.(\d+)\.(weight|bias)")
"""``model0.<i>`` (VGG19 + CPM) or ``model<stage>_<branch>.<i>``, branch 1 = PAFs, 2 = heatmaps."""

_RTPOSE_EXPECTED = "a plain state_dict with keys model0.*, model1_1.* ... model6_2.*"

_VGG_LAYERS = 23
"""Layers of ``VGG19Trunk`` (conv1_1 ... conv4_2 with their ReLUs and 3 pools) = torchvision's
``vgg19.features`` indices 0-22, which ``model0`` uses too; ``model0.23`` and ``model0.25`` are
conv4_3_CPM and conv4_4_CPM, ``OpenPoseVGG19.cpm.0`` and ``cpm.2``."""


def _rtpose_key(match: re.Match[str]) -> str:
    stage, branch, index, param = match.groups()
    if stage is None:
        i = int(index)
        return f"backbone.{i}.{param}" if i < _VGG_LAYERS else f"cpm.{i - _VGG_LAYERS}.{param}"
    owner = "initial_stage" if stage == "1" else f"refinement_stages.{int(stage) - 2}"
    return f"{owner}.{'pafs' if branch == '1' else 'heatmaps'}.{index}.{param}"


def is_rtpose_file(obj: Any) -> bool:
    """True when ``obj`` (a loaded file) has the key layout of ``pose_model.pth``: a plain
    state_dict of ``model0.*`` / ``modelN_1.*`` / ``modelN_2.*`` tensors (a ``module.`` prefix
    allowed)."""
    state = _state_of(obj, "<object>", None)[0] if isinstance(obj, Mapping) else {}
    return "model0.0.weight" in state and all(_RTPOSE_KEY.fullmatch(k) for k in state)


def rtpose_state(obj: Mapping[str, Any], where: str) -> dict[str, torch.Tensor]:
    """``OpenPoseVGG19`` state_dict of a loaded ``pose_model.pth`` (tensors shared, not copied).

    Key map (``i``, ``j``: module indices, kept; stages N = 2..6):

    - ``model0.{0,2,5,7,10,12,14,16,19,21}`` (conv1_1 ... conv4_2) -> ``backbone.<i>``;
      ``model0.23``, ``model0.25`` (conv4_3_CPM, conv4_4_CPM) -> ``cpm.0``, ``cpm.2``;
    - ``model1_1.<j>`` / ``model1_2.<j>`` (stage 1, 3x3 convs) -> ``initial_stage.pafs.<j>`` /
      ``initial_stage.heatmaps.<j>``;
    - ``modelN_1.<j>`` / ``modelN_2.<j>`` (7x7 convs) -> ``refinement_stages.<N-2>.pafs.<j>`` /
      ``.heatmaps.<j>``; their input channels are (PAFs 0-37, heatmaps 38-56, features 57-184),
      ``OpenPoseVGG19``'s ``cmu_order``, so the weights are used unchanged.

    Shapes are checked when loading (``load_checkpoint_into`` explains head channels of another
    schema and other stage counts). A ``module.`` prefix (a DataParallel save) is removed with a
    warning: the published file has none; such files come from training in that repository,
    whose input is RGB with ImageNet mean / std and whose limbs 9 and 13 join shoulder and eye,
    which ``RTPOSE_COCO`` and ``openpose18`` do not describe.

    Args:
        obj: the loaded file (``torch.load(path, weights_only=True)``).
        where: the file, for messages.

    Raises:
        CheckpointError: ``obj`` is not of this layout (the message shows what was found).
    """
    state, prefixed = _state_of(obj, where, None)
    matches = {k: _RTPOSE_KEY.fullmatch(k) for k in state}
    foreign = [k for k, match in matches.items() if match is None]
    if not state or foreign or "model0.0.weight" not in state:
        what = "the OpenPose (CMU) pose_model.pth layout"
        _not_the_layout(obj, where, what, _RTPOSE_EXPECTED, foreign or sorted(state))
    if prefixed:
        logger.warning(
            "%s: keys carry a 'module.' prefix (a DataParallel save of a model trained in "
            "pytorch_Realtime_Multi-Person_Pose_Estimation?); CMU's converted pose_model.pth has "
            "none. Models trained there expect RGB input with ImageNet mean / std and join "
            "shoulder and eye in limbs 9 and 13, unlike RTPOSE_COCO's input and openpose18",
            where,
        )
    out = {_rtpose_key(match): state[k] for k, match in matches.items() if match is not None}
    logger.info("%s: %d OpenPose (CMU) tensors mapped onto OpenPoseVGG19 keys", where, len(out))
    return out


# ---------------------------------------------------------------- Lightweight OpenPose

_LWOP_PREFIXES = ("model.", "cpm.", "initial_stage.")


def is_lwop_file(obj: Any) -> bool:
    """True when ``obj`` (a loaded file) is a Lightweight OpenPose training checkpoint (a
    ``state_dict`` entry, or a bare state_dict, with ``model.*``, ``cpm.*``, ``initial_stage.*``
    keys; a ``module.`` prefix allowed). The ImageNet MobileNet file (``model.*`` and ``fc.*``
    only) is not one."""
    if not isinstance(obj, Mapping) or is_mobilenet_imagenet_file(obj):
        return False
    state = _state_of(obj, "<object>", "state_dict" if "state_dict" in obj else None)[0]
    return any(k.startswith(("cpm.", "initial_stage.")) for k in state) and all(
        k.startswith((*_LWOP_PREFIXES, "refinement_stages.")) for k in state
    )


def lwop_state(obj: Mapping[str, Any], where: str) -> tuple[dict[str, torch.Tensor], int]:
    """(``LightweightOpenPose`` state_dict, number of refinement stages) of a loaded Lightweight
    OpenPose checkpoint: its keys are posekit's already (``module.`` removed)."""
    if not is_lwop_file(obj):
        what = "a Lightweight OpenPose checkpoint"
        _not_the_layout(obj, where, what, "a 'state_dict' with model.*, cpm.*, initial_stage.*",
                        [])  # fmt: skip
    state = _state_of(obj, where, "state_dict" if "state_dict" in obj else None)[0]
    stages = {int(m.group(1)) for k in state if (m := re.match(r"refinement_stages\.(\d+)\.", k))}
    return state, max(stages, default=-1) + 1


LWOP_COCO = WeightsInfo(
    name="lwop_mobilenet_coco",
    model="lwop_mobilenet",
    url=(
        "https://download.01.org/opencv/openvino_training_extensions/models/"
        "human_pose_estimation/checkpoint_iter_370000.pth"
    ),
    # Not pinned yet: the file was not reachable when this table was written. Pin it with the
    # digest that the first download logs, after checking the file (``reported_ap`` on val2017).
    sha256=None,
    file_name="checkpoint_iter_370000.pth",
    schema_name="openpose18",
    model_options={"num_refinement_stages": 1},
    num_values=4_108_978,  # ../shared/weights/lwop_checkpoint_keys.tsv
    input=InputSpec(
        color_order="BGR",
        mean=(128.0, 128.0, 128.0),
        std=(256.0, 256.0, 256.0),
        pad_value=0.0,
        size_divisor=8,
        height=256,  # demo.py
        eval_height=368,  # val.py
    ),
    codec={"name": "paf", "stride": 8, "sigma": 7.0, "paf_width": 1.0},  # train.py defaults
    reported_ap=0.40,
    reported_on="COCO val2017, single scale, no flip",
    source="https://github.com/Daniil-Osokin/lightweight-human-pose-estimation.pytorch",
    license="Apache-2.0",
)
"""The published Lightweight OpenPose (MobileNetV1 trunk, one refinement stage) COCO training
checkpoint ``checkpoint_iter_370000.pth``: ``{"state_dict": {"model.*", "cpm.*", "initial_stage.*",
"refinement_stages.0.*"}, "optimizer", "iter", ...}``, keys exactly ``LightweightOpenPose``'s."""


RTPOSE_COCO = WeightsInfo(
    name="openpose_vgg19_coco",
    model="openpose_vgg19",
    url="https://www.dropbox.com/s/ae071mfm2qoyc8v/pose_model.pth?dl=1",  # dl=1: the file itself
    # Not pinned: the file could not be fetched here. Pin it with the digest that the first
    # download logs, after checking the file (184 tensors, rtpose_state loads it strictly).
    sha256=None,
    file_name="pose_model.pth",
    schema_name="openpose18",  # CMU's COCO channel order exactly (module docstring)
    model_options={"num_refinement_stages": 5},
    num_values=52_311_446,  # ../shared/weights/openpose_vgg19_keys.tsv, all parameters, no buffers
    input=InputSpec(
        color_order="BGR",
        mean=(128.0, 128.0, 128.0),
        std=(256.0, 256.0, 256.0),  # value / 256 - 0.5
        pad_value=-0.5,  # the demos pad with 0 before normalising
        size_divisor=8,
        height=368,  # CMU's box size
    ),
    codec={"name": "paf", "stride": 8, "sigma": 7.0, "paf_width": 1.0},
    # The figure the converter's README gives for the original (CMU) model. Not its own 0.653:
    # evaluate/coco_eval.py scores only the val2017 images that show people, and with flip.
    reported_ap=0.577,
    reported_on=(
        "COCO val2014, CMU's 1k-image subset (image_info_val2014_1k.txt), as reported for the "
        "original model; the converter's own evaluation: 0.598 there with flip, 0.653 on the "
        "val2017 images with people, with flip"
    ),
    source=(
        "https://github.com/tensorboy/pytorch_Realtime_Multi-Person_Pose_Estimation (conversion "
        "of CMU's pose_iter_440000.caffemodel, ZheC/Realtime_Multi-Person_Pose_Estimation)"
    ),
    license=(
        "weights: CMU's academic / non-profit, noncommercial research-only license "
        "(ZheC/Realtime_Multi-Person_Pose_Estimation LICENSE), no redistribution; converter "
        "code: MIT"
    ),
)
"""CMU's COCO OpenPose model (VGG19 trunk, 6 stages) as converted to PyTorch (``pose_model.pth``).

Preprocessing: BGR as OpenCV reads it, value / 256 - 0.5 (``InputSpec`` mean 128, std 256); the
demos zero-pad bottom / right to a multiple of 8 before normalising, so padding is -0.5. The demos
scale the image's shorter side to 368, whereas posekit resizes the height to ``input.height``
(368, which is also CMU's own choice: box size relative to the image height). Heads: 19 heatmaps
and 38 PAFs of ``openpose18``; trained with Gaussian sigma 7 at stride 8."""


# ---------------------------------------------------------------- ImageNet MobileNetV1


@dataclass(frozen=True)
class TrunkWeights:
    """Published ImageNet weights of a trunk: a start for training, not a pose model.

    Unlike ``WeightsInfo`` there is no schema, codec or AP; the file, address and checksum
    fields are the same, so ``weights.download_weights`` (it reads ``name``, ``url``, ``sha256``
    and ``file_name``) fetches and caches it.

    Attributes:
        name: weights name. model: the zoo model whose trunk it initialises.
        url, sha256, file_name: as in ``WeightsInfo`` (``sha256`` None while not pinned).
        num_values: floating-point values the trunk takes from the file.
        input: the preprocessing of the ImageNet training (pose training uses its own).
        reported_top1: ImageNet top-1 accuracy in [0, 1]; reported_on: how it was measured.
        source: where the weights come from; license: their license, as far as known.
    """

    name: str
    model: str
    url: str
    sha256: str | None
    file_name: str
    num_values: int
    input: InputSpec
    reported_top1: float
    reported_on: str
    source: str
    license: str


MOBILENET_IMAGENET = TrunkWeights(
    name="mobilenet_v1_imagenet",
    model="lwop_mobilenet",
    # Lightweight OpenPose's README: from marvis/pytorch-mobilenet ("sgd option"), or this
    # Google Drive copy if that fails; uc?export=download serves the file itself.
    url="https://drive.google.com/uc?export=download&id=18Ya27IAhILvBHqV_tDp0QjDFvsNNy-hv",
    sha256=None,  # not pinned: the file could not be fetched here
    file_name="mobilenet_sgd_68.848.pth.tar",
    num_values=1_627_840,  # model.0-11 of MobileNetV1Trunk: convs and BatchNorm (115 tensors)
    input=InputSpec(
        color_order="RGB",
        mean=(123.675, 116.28, 103.53),  # torchvision's ImageNet mean / std x 255
        std=(58.395, 57.12, 57.375),
        height=224,
        width=224,
    ),
    reported_top1=0.68848,  # the file name: best_prec1 of the PyTorch ImageNet example
    reported_on="ImageNet val, 224x224 centre crop of the 256 resize (the file name's top-1)",
    source="https://github.com/marvis/pytorch-mobilenet (linked by Lightweight OpenPose's README)",
    license="unknown: marvis/pytorch-mobilenet could not be read here to check it",
)
"""The ImageNet MobileNetV1 that Lightweight OpenPose training starts from (train.py
``--from-mobilenet``). Lightweight OpenPose itself trains on BGR, (pixel - 128) / 256 from it."""

_MOBILENET_KEY = re.compile(r"(model\.(?:\d|1[0-3]))\.\d+\.\w+|(fc)\.(?:weight|bias)")
"""``model.<i>.*`` for the 14 layers with weights (conv_bn, 13 depthwise-separable blocks; then an
average pool) and the ``fc`` classifier; group 1 or 2 names the layer."""

_MOBILENET_EXPECTED = (
    "a 'state_dict' of module.model.0-13.* MobileNetV1 layers and a module.fc classifier"
)


@functools.cache
def _trunk_shapes() -> dict[str, torch.Size]:
    """``model.*`` key -> shape of ``LightweightOpenPose``'s trunk (``MobileNetV1Trunk``)."""
    return {f"model.{k}": v.shape for k, v in MobileNetV1Trunk().state_dict().items()}


def is_mobilenet_imagenet_file(obj: Any) -> bool:
    """True when ``obj`` (a loaded file) has the layout of ``mobilenet_sgd_68.848.pth.tar``: a
    ``state_dict`` entry of ``module.model.*`` and ``module.fc.*`` tensors (prefix optional)."""
    if not isinstance(obj, Mapping):
        return False
    state = _state_of(obj, "<object>", "state_dict")[0]
    return {"model.0.0.weight", "fc.weight"} <= set(state) and all(
        _MOBILENET_KEY.fullmatch(k) for k in state
    )


def mobilenet_imagenet_state(obj: Mapping[str, Any], where: str) -> dict[str, torch.Tensor]:
    """The ``model.*`` trunk tensors of ``LightweightOpenPose`` in a loaded ImageNet MobileNetV1
    file (``mobilenet_sgd_68.848.pth.tar``), tensors shared, not copied.

    Key map, as the authors' ``load_from_mobilenet`` (``modules/load_state.py``) does it:
    ``module.model.<i>.<j>.*`` -> ``model.<i>.<j>.*`` for i = 0..11 (conv_bn and blocks 1-11,
    every shape equal). Lightweight OpenPose keeps the first 12 layers of that MobileNet; block 6
    there has stride 1 instead of 2 and block 7 dilation 2, which changes no weight shape.
    Left out (logged): ``module.model.12``, ``module.model.13`` (the 1024-channel blocks at
    stride 32) and ``module.fc`` (the 1000-class classifier). A file saved before PyTorch 0.4 has
    no BatchNorm ``num_batches_tracked`` counters; as PyTorch's BatchNorm does for such files,
    they start at 0.

    Load the result with ``load_checkpoint_into(model, state, strict=False)``: the trunk loads,
    the CPM and the stages keep their initialisation and the partial load is logged.

    Args:
        obj: the loaded file (``torch.load(path, weights_only=True)``).
        where: the file, for messages.

    Raises:
        CheckpointError: ``obj`` is not of this layout, or a trunk tensor is missing or has
            another shape (the message names the key and both shapes).
    """
    state, _ = _state_of(obj, where, "state_dict")
    foreign = [k for k in state if not _MOBILENET_KEY.fullmatch(k)]
    if foreign or not {"model.0.0.weight", "fc.weight"} <= set(state):
        what = "the ImageNet MobileNetV1 (mobilenet_sgd_68.848.pth.tar) layout"
        _not_the_layout(obj, where, what, _MOBILENET_EXPECTED, foreign or sorted(state))
    out: dict[str, torch.Tensor] = {}
    counters = 0
    for key, shape in _trunk_shapes().items():
        if key not in state and key.endswith(".num_batches_tracked"):
            out[key] = torch.tensor(0, dtype=torch.long)
            counters += 1
        elif key not in state:
            raise CheckpointError(
                f"checkpoint {where}: the MobileNetV1 trunk tensor {key} is missing"
            )
        elif state[key].shape != shape:
            raise CheckpointError(
                f"checkpoint {where}: {key} has shape {tuple(state[key].shape)}, Lightweight "
                f"OpenPose's MobileNetV1 trunk needs {tuple(shape)} (another MobileNet width?)"
            )
        else:
            out[key] = state[key]
    layers = (_MOBILENET_KEY.fullmatch(k) for k in state if k not in out)
    left_out = sorted({m.group(1) or m.group(2) for m in layers if m}, key=lambda s: (len(s), s))
    logger.info(
        "%s: ImageNet MobileNetV1, %d trunk tensors model.0-11 for Lightweight OpenPose (%d "
        "BatchNorm counters not in the file start at 0); left out %s (blocks at stride 32, the "
        "ImageNet classifier)",
        where,
        len(out) - counters,
        counters,
        ", ".join(left_out),
    )
    return out
