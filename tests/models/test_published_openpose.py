"""Published OpenPose-family files: CMU's pose_model.pth and the ImageNet MobileNetV1 that
Lightweight OpenPose training starts from, mapped onto posekit's networks.

Neither file is on this machine. The tests write files of their layouts with random weights:
pose_model.pth with every key, shape and dtype of ../shared/weights/openpose_vgg19_keys.tsv (a
plain state_dict), the MobileNet with the layers of marvis/pytorch-mobilenet's ImageNet model in
the PyTorch ImageNet example's checkpoint dict; both in torch's zip and pre-1.6 (legacy) formats.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from posekit.codecs import codec_from_dict
from posekit.errors import CheckpointError
from posekit.models.bottomup import LightweightOpenPose, OpenPoseVGG19
from posekit.models.published_openpose import (
    MOBILENET_IMAGENET,
    RTPOSE_COCO,
    is_mobilenet_imagenet_file,
    is_rtpose_file,
    mobilenet_imagenet_state,
    rtpose_state,
)
from posekit.models.record import load_checkpoint
from posekit.models.weights import download_weights, load_checkpoint_into
from posekit.schema import KeypointSchema
from tests.published_layouts import keys_tsv

KEYS_TSV = Path("../shared/weights/openpose_vgg19_keys.tsv")  # relative to the repo root
OPENPOSE18 = KeypointSchema.named("openpose18")

# CMU's COCO channel layout (../shared/weights/README.md), written out here independently of
# posekit/schemas/openpose18.yaml: heatmap channel i is CMU_PARTS[i] (18: the background), PAF
# channels 2j, 2j+1 are x, y of the unit vector from CMU_LIMBS[j][0] to CMU_LIMBS[j][1].
CMU_PARTS = ("nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder",
             "left_elbow", "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip",
             "left_knee", "left_ankle", "right_eye", "left_eye", "right_ear", "left_ear")  # fmt: skip
CMU_LIMBS = ((1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13), (1, 2), (2, 3), (3, 4), (2, 16),
             (1, 5), (5, 6), (6, 7), (5, 17), (1, 0), (0, 14), (0, 15), (14, 16), (15, 17))  # fmt: skip
# The converter's evaluation (evaluate/coco_eval.py): COCO keypoint k is heatmap ORDER_COCO[k];
# its flip test swaps heatmaps by SWAP_HEAT and PAF channels by SWAP_PAF.
ORDER_COCO = (0, 15, 14, 17, 16, 5, 2, 6, 3, 7, 4, 11, 8, 12, 9, 13, 10)
SWAP_HEAT = (0, 1, 5, 6, 7, 2, 3, 4, 11, 12, 13, 8, 9, 10, 15, 14, 17, 16, 18)
SWAP_PAF = (6, 7, 8, 9, 10, 11, 0, 1, 2, 3, 4, 5, 20, 21, 22, 23, 24, 25, 26, 27, 12, 13, 14, 15,
            16, 17, 18, 19, 28, 29, 32, 33, 30, 31, 36, 37, 34, 35)  # fmt: skip
POOL_BEFORE = (5, 10, 19)  # model0: 2x2 stride-2 max pools at indices 4, 9, 18


def _tsv_layout() -> dict[str, tuple[int, ...]]:
    rows = keys_tsv(KEYS_TSV.name)
    assert {dtype for *_, dtype in rows} == {torch.float32}
    return {key: shape for key, shape, _ in rows}


def _he_scaled(key: str, value: torch.Tensor) -> torch.Tensor:
    """N(0, 1) -> He-scaled conv weights (fan-in) and small biases: finite maps with peaks."""
    return value * (2.0 / value[0].numel()) ** 0.5 if value.dim() == 4 else 0.1 * value


@pytest.fixture(scope="module")
def cmu_state() -> dict[str, torch.Tensor]:
    """pose_model.pth's state_dict: the tsv's keys in its order, random He-scaled values."""
    gen = torch.Generator().manual_seed(0)
    return {
        key: _he_scaled(key, torch.randn(shape, generator=gen))
        for key, shape in _tsv_layout().items()
    }


@pytest.fixture(scope="module", params=["zip", "legacy"])
def rtpose_file(request, tmp_path_factory, cmu_state) -> Path:
    path = tmp_path_factory.mktemp(request.param) / "pose_model.pth"
    torch.save(cmu_state, path, _use_new_zipfile_serialization=request.param == "zip")
    return path


@pytest.fixture(scope="module")
def openpose() -> OpenPoseVGG19:
    """The one OpenPoseVGG19 of this module (52M parameters: built once)."""
    return OpenPoseVGG19(OPENPOSE18, num_refinement_stages=5).eval()


@pytest.fixture(scope="module")
def loaded_openpose(openpose, cmu_state) -> OpenPoseVGG19:
    load_checkpoint_into(openpose, rtpose_state(cmu_state, "<test>"), strict=True)
    return openpose


# ---------------------------------------------------------------- pose_model.pth: keys


def test_the_key_map_covers_openpose_vgg19_exactly(openpose):
    layout = _tsv_layout()
    assert len(layout) == 184 and sum(map(math.prod, layout.values())) == RTPOSE_COCO.num_values
    meta = {k: torch.empty(shape, device="meta") for k, shape in layout.items()}
    assert is_rtpose_file(meta)
    mapped = rtpose_state(meta, "<tsv>")
    model = openpose.state_dict()
    assert len(mapped) == len(layout)  # one model key per file key
    assert {k: tuple(v.shape) for k, v in mapped.items()} == {
        k: tuple(v.shape) for k, v in model.items()
    }
    # known values: VGG conv indices kept, the CPM convs, stage 1 vs refinement stages
    assert mapped["backbone.21.weight"] is meta["model0.21.weight"]
    assert mapped["cpm.0.weight"] is meta["model0.23.weight"]
    assert mapped["cpm.2.bias"] is meta["model0.25.bias"]
    assert mapped["initial_stage.pafs.8.weight"] is meta["model1_1.8.weight"]
    assert mapped["initial_stage.heatmaps.0.weight"] is meta["model1_2.0.weight"]
    assert mapped["refinement_stages.0.pafs.12.bias"] is meta["model2_1.12.bias"]
    assert mapped["refinement_stages.4.heatmaps.0.weight"] is meta["model6_2.0.weight"]


def test_pose_model_file_loads_strictly(rtpose_file, cmu_state, openpose, caplog):
    obj = load_checkpoint(rtpose_file)  # torch.load(weights_only=True)
    assert is_rtpose_file(obj) and not is_mobilenet_imagenet_file(obj)
    with caplog.at_level(logging.INFO, logger="posekit.models.published_openpose"):
        state = rtpose_state(obj, str(rtpose_file))
    assert f"{rtpose_file}: 184 OpenPose (CMU) tensors mapped" in caplog.text
    result = load_checkpoint_into(openpose, state, strict=True)
    assert set(result.loaded) == set(openpose.state_dict()) and len(result.loaded) == 184
    assert result.missing == result.unexpected == result.mismatched == ()
    loaded = openpose.state_dict()
    for key, value in state.items():
        assert torch.equal(loaded[key], value), key
    assert sorted(map(id, state.values())) == sorted(map(id, obj.values()))  # every tensor used
    assert all(torch.equal(obj[k], v) for k, v in cmu_state.items())


def _cmu_block(raw: dict[str, torch.Tensor], block: str, x: torch.Tensor) -> torch.Tensor:
    """One block of CMU's rtpose_model by hand: its convs in index order, "same" padding, ReLU
    after each (a stage branch: not after its last), model0's pools before convs 5, 10, 19."""
    indices = sorted({int(k.split(".")[1]) for k in raw if k.startswith(block + ".")})
    for n, i in enumerate(indices):
        if block == "model0" and i in POOL_BEFORE:
            x = F.max_pool2d(x, 2, 2)
        weight = raw[f"{block}.{i}.weight"]
        x = F.conv2d(x, weight, raw[f"{block}.{i}.bias"], padding=weight.shape[-1] // 2)
        if block == "model0" or n < len(indices) - 1:
            x = F.relu(x)
    return x


def _cmu_forward(raw: dict[str, torch.Tensor], x: torch.Tensor) -> list[tuple[torch.Tensor, ...]]:
    """rtpose_model.forward: (PAFs, heatmaps) of stages 1-6; stages 2-6 read concat(PAFs,
    heatmaps, features) of the stage before."""
    features = _cmu_block(raw, "model0", x)
    outputs, stage_input = [], features
    for stage in range(1, 7):
        pafs, heatmaps = (_cmu_block(raw, f"model{stage}_{b}", stage_input) for b in (1, 2))
        outputs.append((pafs, heatmaps))
        stage_input = torch.cat([pafs, heatmaps, features], dim=1)
    return outputs


def test_outputs_equal_a_forward_of_the_cmu_layout(loaded_openpose, cmu_state):
    x = torch.randn(1, 3, 40, 48, generator=torch.Generator().manual_seed(1)) * 0.3
    with torch.no_grad():
        ours = loaded_openpose(x)
        reference = _cmu_forward(cmu_state, x)
    assert len(ours) == len(reference) == 6
    for stage, ((heatmaps, pafs), (ref_pafs, ref_heatmaps)) in enumerate(
        zip(ours, reference, strict=True)
    ):
        assert heatmaps.shape == (1, 19, 5, 6) and pafs.shape == (1, 38, 5, 6)
        assert ref_heatmaps.abs().max() > 0.1 and ref_pafs.abs().max() > 0.1, stage  # not dead
        # the same convolutions in the same order: equal up to float32 rounding
        torch.testing.assert_close(heatmaps, ref_heatmaps, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(pafs, ref_pafs, rtol=1e-5, atol=1e-5)


def test_refinement_stages_read_pafs_heatmaps_features(loaded_openpose):
    """The input channels of modelN_x.0 are (PAFs 0-37, heatmaps 38-56, features 57-184)."""
    seen: list[torch.Tensor] = []
    hooks = [
        stage.register_forward_pre_hook(lambda _, args: seen.append(args[0]))
        for stage in loaded_openpose.refinement_stages
    ]
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    try:
        with torch.no_grad():
            outputs = loaded_openpose(x)
            features = loaded_openpose.features(x)
    finally:
        for hook in hooks:
            hook.remove()
    assert len(seen) == 5
    for stage_input, (heatmaps, pafs) in zip(seen, outputs[:-1], strict=True):
        assert stage_input.shape[1] == 185
        assert torch.equal(stage_input[:, :38], pafs)
        assert torch.equal(stage_input[:, 38:57], heatmaps)
        assert torch.equal(stage_input[:, 57:], features)


# ---------------------------------------------------------------- the record and the schema


def test_rtpose_record_matches_the_model(openpose):
    info = RTPOSE_COCO
    assert (info.model, info.schema_name, dict(info.model_options)) == (
        "openpose_vgg19",
        "openpose18",
        {"num_refinement_stages": 5},
    )
    state = openpose.state_dict()
    assert sum(v.numel() for v in state.values() if v.is_floating_point()) == info.num_values
    assert len(state) == 184  # parameters only: no buffers
    assert codec_from_dict(info.schema, info.codec).layout == openpose.layout
    spec = info.input
    assert (spec.color_order, spec.mean, spec.std, spec.pad_value) == (
        "BGR",
        (128.0,) * 3,
        (256.0,) * 3,
        -0.5,
    )
    assert (spec.size_divisor, spec.height) == (openpose.stride, 368)
    # value / 256 - 0.5, and a padded 0 pixel becomes pad_value
    image = np.array([[[0, 128, 255]]], np.uint8)
    np.testing.assert_allclose(spec.normalize(image)[:, 0, 0], [-0.5, 0.0, 255 / 256 - 0.5])
    assert spec.normalize(np.zeros((1, 1, 3), np.uint8))[0, 0, 0] == spec.pad_value
    assert info.sha256 is None and info.url.startswith("https://www.dropbox.com/")
    assert info.url.endswith(f"/{info.file_name}?dl=1") and info.file_name == "pose_model.pth"
    assert info.reported_ap == pytest.approx(0.577)


def test_openpose18_is_cmus_channel_layout():
    assert RTPOSE_COCO.schema == OPENPOSE18
    assert OPENPOSE18.keypoints == CMU_PARTS
    assert tuple((limb.src, limb.dst) for limb in OPENPOSE18.limbs) == CMU_LIMBS
    coco = KeypointSchema.named("coco_person")
    assert [OPENPOSE18.keypoints[i] for i in ORDER_COCO] == list(coco.keypoints)
    # the converter's flip test and posekit's flip of the same maps agree
    assert OPENPOSE18.flip_index + (18,) == SWAP_HEAT
    assert OPENPOSE18.paf_flip is not None and OPENPOSE18.paf_flip.channels == SWAP_PAF


def test_encoded_channels_mean_what_cmu_trained_and_decode_back():
    codec = codec_from_dict(OPENPOSE18, RTPOSE_COCO.codec)
    s = codec.stride
    # one person facing the camera, each keypoint at an output cell (x, y), in CMU_PARTS order
    cells = np.array([(12, 4), (12, 8), (8, 8), (6, 13), (5, 18), (16, 8), (18, 13), (19, 18),
                      (10, 17), (10, 23), (10, 29), (14, 17), (14, 23), (14, 29), (11, 3),
                      (13, 3), (10, 4), (14, 4)], np.float64)  # fmt: skip
    kpts = np.zeros((1, 18, 3))
    kpts[0, :, :2] = s * cells + (s - 1) / 2  # input pixel of each cell's centre
    kpts[0, :, 2] = 2
    targets = codec.encode(kpts, (192, 256))
    heatmaps, pafs = targets.heatmaps, targets.pafs
    assert heatmaps.shape == (19, 32, 24) and pafs.shape == (38, 32, 24)
    for i in range(18):  # heatmap i peaks (1.0) at CMU part i
        y, x = np.unravel_index(heatmaps[i].argmax(), heatmaps[i].shape)
        assert (x, y) == tuple(cells[i]) and heatmaps[i, y, x] == pytest.approx(1.0), CMU_PARTS[i]
    for j, (a, b) in enumerate(CMU_LIMBS):  # PAF pair j: unit vector of CMU limb j, a -> b
        unit = (cells[b] - cells[a]) / np.linalg.norm(cells[b] - cells[a])
        field = pafs[2 * j : 2 * j + 2]
        on = np.abs(field).sum(axis=0) > 0
        mid = np.round((cells[a] + cells[b]) / 2).astype(int)
        assert on[mid[1], mid[0]], j
        np.testing.assert_allclose(field[:, on].T, np.broadcast_to(unit, (on.sum(), 2)), atol=1e-6)
    poses = codec.decode(heatmaps, pafs, affine=codec.output_to_input_matrix())
    assert len(poses) == 1 and poses[0].num_found == 18
    # keypoints at cell centres, Gaussian peaks, log-parabola refinement: exact up to float32
    # rounding, far below the stride (s / 100)
    np.testing.assert_allclose(poses[0].keypoints[:, :2], kpts[0, :, :2], atol=s / 100)


# ---------------------------------------------------------------- the ImageNet MobileNetV1


def _imagenet_mobilenet() -> nn.Sequential:
    """``Net.model`` of marvis/pytorch-mobilenet: conv_bn, 13 depthwise-separable blocks (convs
    without bias, BatchNorm, ReLU), average pool; its classifier ``fc`` is Linear(1024, 1000)."""

    def conv_dw(inp: int, out: int, stride: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(inp, inp, 3, stride, 1, groups=inp, bias=False),
            nn.BatchNorm2d(inp),
            nn.ReLU(inplace=True),
            nn.Conv2d(inp, out, 1, 1, 0, bias=False),
            nn.BatchNorm2d(out),
            nn.ReLU(inplace=True),
        )

    blocks = [(32, 64, 1), (64, 128, 2), (128, 128, 1), (128, 256, 2), (256, 256, 1),
              (256, 512, 2), *[(512, 512, 1)] * 5, (512, 1024, 2), (1024, 1024, 1)]  # fmt: skip
    first = nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU())
    return nn.Sequential(first, *(conv_dw(*b) for b in blocks), nn.AvgPool2d(7))


def _imagenet_checkpoint(*, counters: bool = False) -> dict:
    """The file's layout: the PyTorch ImageNet example's dict around a DataParallel state_dict
    (``module.`` keys), saved before PyTorch 0.4 (no num_batches_tracked) unless ``counters``."""
    gen = torch.Generator().manual_seed(3)
    state: dict[str, torch.Tensor] = collections.OrderedDict()
    for key, value in _imagenet_mobilenet().state_dict().items():
        if key.endswith("num_batches_tracked"):
            if counters:
                state[f"module.model.{key}"] = torch.tensor(7)
            continue
        noise = torch.randn(value.shape, generator=gen)
        state[f"module.model.{key}"] = noise.abs() + 0.5 if key.endswith("running_var") else noise
    state["module.fc.weight"] = torch.randn(1000, 1024, generator=gen)
    state["module.fc.bias"] = torch.randn(1000, generator=gen)
    momentum = {0: {"momentum_buffer": torch.zeros(32, 3, 3, 3)}}
    sgd = {"lr": 1e-4, "momentum": 0.9, "dampening": 0, "weight_decay": 1e-4, "nesterov": False}
    return {
        "epoch": 150,
        "arch": "mobilenet",
        "state_dict": state,
        "best_prec1": 68.848,
        "optimizer": {"state": momentum, "param_groups": [{**sgd, "params": [0]}]},
    }


@pytest.fixture(scope="module", params=["legacy", "zip"])
def mobilenet_file(request, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp(request.param) / "mobilenet_sgd_68.848.pth.tar"
    torch.save(_imagenet_checkpoint(), path, _use_new_zipfile_serialization=request.param == "zip")
    return path


def test_imagenet_mobilenet_loads_the_trunk_and_leaves_the_rest(mobilenet_file, caplog):
    obj = load_checkpoint(mobilenet_file)  # torch.load(weights_only=True)
    assert is_mobilenet_imagenet_file(obj) and not is_rtpose_file(obj)
    model = LightweightOpenPose(KeypointSchema.named("coco_person"))
    fresh = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("model.")}
    with caplog.at_level(logging.INFO, logger="posekit"):
        state = mobilenet_imagenet_state(obj, str(mobilenet_file))
        result = load_checkpoint_into(model, state, strict=False)
    trunk = [k for k in model.state_dict() if k.startswith("model.")]
    assert set(result.loaded) == set(trunk) and len(trunk) == 138
    assert set(result.missing) == set(fresh) and result.unexpected == result.mismatched == ()
    loaded = model.state_dict()
    file_state = obj["state_dict"]
    for key in trunk:
        if key.endswith("num_batches_tracked"):
            assert loaded[key] == 0, key  # not in a pre-0.4 file: start at 0, as torch does
        else:
            assert torch.equal(loaded[key], file_state[f"module.{key}"]), key
    for key, value in fresh.items():
        assert torch.equal(loaded[key], value), key  # CPM and stages keep their initialisation
    floats = sum(loaded[k].numel() for k in trunk if loaded[k].is_floating_point())
    assert floats == MOBILENET_IMAGENET.num_values
    assert (
        f"{mobilenet_file}: ImageNet MobileNetV1, 115 trunk tensors model.0-11 for Lightweight "
        "OpenPose (23 BatchNorm counters not in the file start at 0); left out fc, model.12, "
        "model.13"
    ) in caplog.text
    assert "partial load of <in memory>" in caplog.text and "missing key(s): cpm.align" in (
        caplog.text
    )


def test_imagenet_mobilenet_counters_and_other_widths():
    obj = _imagenet_checkpoint(counters=True)
    state = mobilenet_imagenet_state(obj, "<saved with counters>")
    assert int(state["model.7.4.num_batches_tracked"]) == 7
    assert state["model.11.3.weight"] is obj["state_dict"]["module.model.11.3.weight"]
    narrow = obj["state_dict"]
    narrow["module.model.3.3.weight"] = torch.zeros(64, 128, 1, 1)
    with pytest.raises(
        CheckpointError,
        match=re.escape(
            "checkpoint narrow.pth: model.3.3.weight has shape (64, 128, 1, 1), Lightweight "
            "OpenPose's MobileNetV1 trunk needs (128, 128, 1, 1)"
        ),
    ):
        mobilenet_imagenet_state(obj, "narrow.pth")
    del narrow["module.model.3.3.weight"]
    with pytest.raises(CheckpointError, match="trunk tensor model.3.3.weight is missing"):
        mobilenet_imagenet_state(obj, "narrow.pth")


def test_mobilenet_record_downloads_like_weights(mobilenet_file, tmp_path):
    info = MOBILENET_IMAGENET
    assert (info.model, info.file_name, info.sha256) == (
        "lwop_mobilenet",
        "mobilenet_sgd_68.848.pth.tar",
        None,
    )
    assert info.url.startswith("https://") and 0 < info.reported_top1 < 1
    local = dataclasses.replace(info, url=mobilenet_file.resolve().as_uri())
    path = download_weights(local, cache_dir=tmp_path, progress=False)  # type: ignore[arg-type]
    assert path == tmp_path / "weights" / info.file_name
    assert is_mobilenet_imagenet_file(load_checkpoint(path))


# ---------------------------------------------------------------- errors


def test_truncated_files_are_reported_with_their_name(rtpose_file, mobilenet_file, tmp_path):
    for source in (rtpose_file, mobilenet_file):
        broken = tmp_path / f"cut_{source.name}"
        with source.open("rb") as f:
            broken.write_bytes(f.read(source.stat().st_size // 2))
        with pytest.raises(CheckpointError, match=rf"checkpoint {re.escape(str(broken))}"):
            load_checkpoint(broken)


def test_files_of_neither_layout():
    lwop = {
        "state_dict": {"model.0.0.weight": torch.zeros(1), "cpm.align.0.weight": torch.zeros(1)}
    }
    rtpose_like = {"model0.0.weight": torch.zeros(1), "model1_1.0.weight": torch.zeros(1)}
    for obj in (lwop, {"weights": torch.zeros(1)}, {"net": {"a": 1}}):
        assert not is_rtpose_file(obj) and not is_mobilenet_imagenet_file(obj)
    assert is_rtpose_file(rtpose_like) and not is_mobilenet_imagenet_file(rtpose_like)
    rtpose = r"checkpoint lwop.pth is not the OpenPose \(CMU\) pose_model.pth layout \(expected "
    with pytest.raises(CheckpointError, match=rtpose + r".*found the top-level entries \['state"):
        rtpose_state(lwop, "lwop.pth")
    with pytest.raises(CheckpointError, match=r"found keys such as \['weights'\]"):
        rtpose_state({"weights": torch.zeros(1)}, "w.pth")
    mobilenet = r"checkpoint lwop.pth is not the ImageNet MobileNetV1 \(mobilenet_sgd_68.848"
    with pytest.raises(CheckpointError, match=mobilenet + r".*keys such as \['cpm.align.0.weight"):
        mobilenet_imagenet_state(lwop, "lwop.pth")
    with pytest.raises(CheckpointError, match=r"found the top-level entries \['model0.0.weight'"):
        mobilenet_imagenet_state(rtpose_like, "pose_model.pth")
    with pytest.raises(CheckpointError, match=r"checkpoint l.pth: expected a dict, got list"):
        rtpose_state([torch.zeros(1)], "l.pth")  # type: ignore[arg-type]


def test_dataparallel_prefix_is_removed_with_a_warning(caplog):
    layout = _tsv_layout()
    meta = {f"module.{k}": torch.empty(shape, device="meta") for k, shape in layout.items()}
    assert is_rtpose_file(meta)
    with caplog.at_level(logging.WARNING, logger="posekit.models.published_openpose"):
        state = rtpose_state(meta, "pose_model_scratch.pth")
    assert "backbone.0.weight" in state and len(state) == 184
    assert "pose_model_scratch.pth: keys carry a 'module.' prefix" in caplog.text
    assert "RGB input with ImageNet mean / std" in caplog.text
