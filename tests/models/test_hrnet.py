"""HRNet backbone and the published HRNet files (official, MMPose 1.x and 0.x layouts).

The published files are not on this machine; the tests write files of their layouts with every key,
shape and dtype of ../shared/weights/hrnet_w{32,48}_256x192_keys.tsv and random values (MMPose's
keys are the official ones under ``backbone.`` / ``head.`` / ``keypoint_head.``, README).
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from posekit.codecs import codec_from_dict
from posekit.codecs.heatmap import HeatmapCodec
from posekit.codecs.topdown import DEFAULT_REACH
from posekit.errors import CheckpointError, WeightsDownloadError
from posekit.models.backbones.hrnet import HRNet
from posekit.models.cost import multiply_adds
from posekit.models.published_hrnet import (
    HRNET_W32_COCO,
    HRNET_W48_COCO,
    HRNET_WEIGHTS,
    MMPOSE_HRNET_W32_COCO,
    hrnet_file_layout,
    hrnet_state,
    hrnet_topdown,
    hrnet_width,
    is_hrnet_file,
    load_hrnet_into,
)
from posekit.models.record import load_checkpoint
from posekit.models.weights import download_weights, load_checkpoint_into
from posekit.schema import KeypointSchema
from tests.published_layouts import keys_tsv

KEYS_TSV = "../shared/weights/hrnet_w{}_256x192_keys.tsv"  # relative to the repo root
PARAMETERS = {32: 28_536_113, 48: 63_595_745}  # README (28.5M, 63.6M)
# The authors' GFLOPs (README / paper: 7.1 and 14.6) are multiply-adds of convolutions and linear
# layers divided by 1024**3 (``get_model_summary`` in their lib/utils/utils.py), not by 1e9.
GFLOPS = {32: 7.1, 48: 14.6}
FLOPS_TOLERANCE = 0.05
COUNTERS = 292  # num_batches_tracked int64 scalars of each file (README)
COCO = KeypointSchema.named("coco_person")


def _tsv_rows(width: int) -> list[tuple[str, tuple[int, ...], torch.dtype]]:
    return keys_tsv(Path(KEYS_TSV.format(width)).name)


def _official_state(width: int = 32, seed: int = 0) -> dict[str, torch.Tensor]:
    """Every official key, shape and dtype; random values that keep activations finite: conv
    weights of std 0.5 / sqrt(fan_in), BN scale in [0.5, 1], running_var in [0.5, 1.5]."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape, dtype in _tsv_rows(width):
        if not dtype.is_floating_point:
            state[key] = torch.randint(0, 100_000, shape, generator=gen, dtype=dtype)
        elif len(shape) == 4:
            std = 0.5 / math.sqrt(math.prod(shape[1:]))
            state[key] = torch.randn(shape, generator=gen) * std
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=gen) + 0.5
        elif key.endswith("weight"):
            state[key] = torch.rand(shape, generator=gen) * 0.5 + 0.5
        else:  # BN bias, running_mean, final_layer bias
            state[key] = torch.randn(shape, generator=gen) * 0.1
    return state


def _zeros_state(width: int) -> dict[str, torch.Tensor]:
    """Every official key, shape and dtype, zero values (cheap, for shape errors)."""
    return {key: torch.zeros(shape, dtype=dtype) for key, shape, dtype in _tsv_rows(width)}


def _mmpose(official: dict[str, torch.Tensor], head: str) -> dict[str, torch.Tensor]:
    """MMPose's keys: ``backbone.<key>``, ``<head>.final_layer.*``."""
    return {
        (f"{head}.{k}" if k.startswith("final_layer.") else f"backbone.{k}"): v
        for k, v in official.items()
    }


def _dataset_meta() -> dict:
    """MMPose 1.x's ``meta["dataset_meta"]`` of COCO, with its NumPy arrays."""
    return {
        "dataset_name": "coco",
        "num_keypoints": 17,
        "keypoint_id2name": dict(enumerate(COCO.keypoints)),
        "flip_indices": list(COCO.flip_index),
        "sigmas": np.asarray(COCO.sigmas, dtype=np.float32),
        "joint_weights": np.ones(17, dtype=np.float32),
        "keypoint_colors": np.zeros((17, 3), dtype=np.int64),
        "num_skeleton_links": np.int64(19),
    }


def _coco_model(width: int = 32) -> nn.Module:
    return hrnet_topdown(COCO, HeatmapCodec(COCO).layout, width)


@pytest.fixture(scope="module")
def official_state() -> dict[str, torch.Tensor]:
    return _official_state()


@pytest.fixture(scope="module")
def files(tmp_path_factory, official_state) -> dict[str, Path]:
    """The same random weights in every layout (the MMPose 1.x one with NumPy arrays in meta)."""
    root = tmp_path_factory.mktemp("hrnet")
    without_counters = {
        k: v for k, v in official_state.items() if not k.endswith("num_batches_tracked")
    }
    mmpose1 = _mmpose(official_state, "head")
    mmpose1["data_preprocessor.mean"] = torch.tensor([123.675, 116.28, 103.53]).view(3, 1, 1)
    mmpose1["data_preprocessor.std"] = torch.tensor([58.395, 57.12, 57.375]).view(3, 1, 1)
    contents = {
        "official": official_state,
        "official_without_counters": without_counters,
        "mmpose1": {"meta": {"dataset_meta": _dataset_meta()}, "state_dict": mmpose1},
        "mmpose0": {
            "meta": {"mmpose_version": "0.6.0", "epoch": 210},
            "state_dict": _mmpose(official_state, "keypoint_head"),
        },
    }
    paths = {}
    for name, obj in contents.items():
        paths[name] = root / f"{name}.pth"
        torch.save(obj, paths[name])
    return paths


# ---------------------------------------------------------------- the network


@pytest.mark.parametrize("width", [32, 48])
def test_state_dict_is_the_official_one(width):
    """Keys in order, shapes, dtypes and parameter count of HRNet + final_layer equal the tsv's."""
    model = _coco_model(width)
    state = model.state_dict()
    rows = _tsv_rows(width)
    ours = [(k, tuple(v.shape), v.dtype) for k, v in state.items()]
    official = [
        (f"head.{k}" if k.startswith("final_layer.") else f"backbone.{k}", shape, dtype)
        for k, shape, dtype in rows
    ]
    assert ours == official and len(ours) == 1754
    backbone = [(k, tuple(v.shape), v.dtype) for k, v in model.backbone.state_dict().items()]
    assert backbone == [row for row in rows if not row[0].startswith("final_layer.")]
    assert isinstance(model.backbone, HRNet)
    parameters = sum(p.numel() for p in model.parameters())
    print(f"HRNet-W{width} + final_layer: {parameters:,} parameters")
    assert parameters == PARAMETERS[width]
    counters = [k for k, v in state.items() if not v.is_floating_point()]
    assert len(counters) == COUNTERS and all(k.endswith("num_batches_tracked") for k in counters)
    assert model.backbone.out_channels == width and model.stride == model.backbone.stride == 4
    assert model.options == {}


@pytest.mark.parametrize("width", [32, 48])
def test_output_shape_and_multiply_adds(width):
    model = _coco_model(width).eval()
    x = torch.zeros(1, 3, 256, 192)
    with torch.no_grad():
        (outputs,) = model(x)
    assert len(outputs) == 1 and outputs[0].shape == (1, 17, 64, 48)
    assert model.backbone(x).shape == (1, width, 64, 48)
    macs = multiply_adds(model, x)
    gflops = macs / 1024**3
    print(f"HRNet-W{width} 256x192: {macs / 1e9:.3f}e9 multiply-adds = {gflops:.2f} GFLOPs (2^30)")
    assert abs(gflops - GFLOPS[width]) <= FLOPS_TOLERANCE * GFLOPS[width]


def test_input_size_and_width_errors():
    backbone = HRNet(18)
    assert backbone.out_channels == 18
    with pytest.raises(ValueError, match=r"multiples of 32, got \(48, 64\) \(H, W\)"):
        backbone(torch.zeros(1, 3, 48, 64))
    for bad in (0, 32.0, True):
        with pytest.raises(ValueError, match="HRNet width must be a positive integer"):
            HRNet(bad)


# ---------------------------------------------------------------- the published layouts


def test_layouts_load_strictly_and_agree(files, official_state):
    """Every layout loads strictly into the W32 COCO-17 model and gives identical outputs."""
    x = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(1))
    expected_layouts = {
        "official": "official",
        "official_without_counters": "official",
        "mmpose1": "mmpose-1.x",
        "mmpose0": "mmpose-0.x",
    }
    model = _coco_model().eval()
    outputs = {}
    for name, path in files.items():
        obj = load_checkpoint(path)
        assert hrnet_file_layout(obj) == expected_layouts[name] and is_hrnet_file(obj)
        for value in model.state_dict().values():
            value.zero_()  # nothing left from the previous file
        result = load_hrnet_into(model, obj, where=str(path))
        assert len(result.loaded) == 1754
        assert result.missing == result.unexpected == result.mismatched == ()
        state = model.state_dict()
        assert torch.equal(state["backbone.conv1.weight"], official_state["conv1.weight"])
        assert torch.equal(state["head.final_layer.bias"], official_state["final_layer.bias"])
        with torch.no_grad():
            (outputs[name],) = model(x)[0]
    reference = outputs["official"]
    assert reference.shape == (2, 17, 16, 24) and torch.isfinite(reference).all()
    assert reference.std() > 0
    for name, heatmaps in outputs.items():
        assert torch.equal(heatmaps, reference), name


def test_state_mapping_and_counters(files, official_state):
    """The posekit keys of each layout; a file without counters gets 0 after each BN."""
    expected = _mmpose(official_state, "head")
    for name in files:
        state = hrnet_state(load_checkpoint(files[name]), str(files[name]))
        assert list(state) == list(expected), name  # the model's order, preprocessor dropped
        assert hrnet_width(state) == 32
    plain = hrnet_state(load_checkpoint(files["official_without_counters"]), "x")
    counter = plain["backbone.stage4.2.fuse_layers.0.3.1.num_batches_tracked"]
    assert counter.dtype == torch.int64 and counter.shape == () and counter.item() == 0
    # DataParallel prefix and a training checkpoint's "state_dict" entry
    wrapped = {"epoch": 3, "state_dict": {f"module.{k}": v for k, v in official_state.items()}}
    assert hrnet_file_layout(wrapped) == "official"
    assert list(hrnet_state(wrapped, "checkpoint.pth")) == list(expected)


def test_file_for_another_schema(files, official_state, caplog):
    """The backbone loads; the head (18 channels for coco_person_neck) stays new."""
    schema = KeypointSchema.named("coco_person_neck")
    model = hrnet_topdown(schema, HeatmapCodec(schema).layout, 32)
    head_before = model.state_dict()["head.final_layer.weight"].clone()
    state = hrnet_state(load_checkpoint(files["mmpose0"]), str(files["mmpose0"]))
    with caplog.at_level(logging.WARNING, logger="posekit.models.weights"):
        result = load_checkpoint_into(model, state, strict=False)
    assert set(result.mismatched) == {"head.final_layer.weight", "head.final_layer.bias"}
    assert not result.missing and not result.unexpected
    assert len(result.loaded) == 1752 and all(k.startswith("backbone.") for k in result.loaded)
    assert "partial load" in caplog.text
    assert "heatmap head has 17 channels in the checkpoint, the schema 'coco_person_neck'" in (
        caplog.text
    )
    loaded = model.state_dict()
    assert torch.equal(
        loaded["backbone.stage3.3.branches.2.3.bn2.running_var"],
        official_state["stage3.3.branches.2.3.bn2.running_var"],
    )
    assert torch.equal(loaded["head.final_layer.weight"], head_before)
    # the same through load_hrnet_into, which names the file when strict
    assert load_hrnet_into(model, files["official"], strict=False).loaded == result.loaded
    with pytest.raises(CheckpointError) as err:
        load_hrnet_into(model, files["official"])
    message = str(err.value)
    assert message.startswith(f"checkpoint {files['official']} does not fit TopDownNet(")
    assert "heatmap head has 17 channels in the checkpoint" in message


# ---------------------------------------------------------------- errors


def test_truncated_file(files, tmp_path):
    data = files["official"].read_bytes()
    broken = tmp_path / "pose_hrnet_w32_256x192.pth"
    model = _coco_model()
    for cut in (1, 1000, len(data) // 3, len(data) - 1000):
        broken.write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match=rf"checkpoint {re.escape(str(broken))} "):
            load_hrnet_into(model, broken)
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cannot read checkpoint .*\(truncated, corrupt"):
        load_hrnet_into(model, broken)


def test_files_of_other_layouts(tmp_path, official_state):
    model = _coco_model()
    lwop = tmp_path / "checkpoint_iter_370000.pth"
    torch.save({"state_dict": {"model.0.0.weight": torch.zeros(32, 3, 3, 3)}, "iter": 1}, lwop)
    with pytest.raises(CheckpointError) as err:
        load_hrnet_into(model, lwop)
    assert str(err.value) == (
        f"checkpoint {lwop} is not an HRNet heatmap model: expected one of ('official', "
        "'mmpose-1.x', 'mmpose-0.x') (official keys conv1.*, stage4.*, final_layer.*; MMPose "
        "backbone.*, head.final_layer.* or keypoint_head.final_layer.*), found a state_dict of "
        "1 tensors, first keys ['model.0.0.weight']"
    )
    with pytest.raises(CheckpointError, match=r"found a dict without a state_dict, .*\['epoch'"):
        hrnet_state({"epoch": 3, "optimizer": {}}, "notes.pth")
    with pytest.raises(CheckpointError, match=r"found a list"):
        hrnet_state([torch.zeros(1)], "list.pth")
    # HRNet keys plus layers of another network: an ImageNet classifier, a SimpleBaseline head
    classifier = {**official_state, "incre_modules.0.0.conv1.weight": torch.zeros(1)}
    with pytest.raises(
        CheckpointError,
        match=r"cls.pth \(official HRNet layout\) has 1 key\(s\) that are not part of an HRNet "
        r"with a 1x1 heatmap head: incre_modules.0.0.conv1.weight",
    ):
        hrnet_state(classifier, "cls.pth")
    deconv = {**_mmpose(official_state, "head"), "head.deconv_layers.0.weight": torch.zeros(1)}
    with pytest.raises(CheckpointError, match=r"\(mmpose-1.x HRNet layout\) .*deconv_layers"):
        hrnet_state({"state_dict": deconv}, "simplebaseline.pth")
    # a posekit checkpoint describes itself: not a published layout
    posekit = {"format": "posekit-checkpoint", "model": _mmpose(official_state, "head")}
    assert not is_hrnet_file(posekit) and not is_hrnet_file({"state_dict": {}})
    with pytest.raises(TypeError, match="expected a TopDownNet with an HRNet backbone"):
        load_hrnet_into(nn.Conv2d(1, 1, 1), official_state)


def test_width_mismatch(tmp_path):
    """A W48 file into a W32 model: the message names both widths, also when not strict."""
    path = tmp_path / "hrnet_w48_coco_256x192-b9e0b3ab_20200708.pth"
    torch.save({"meta": {}, "state_dict": _mmpose(_zeros_state(48), "keypoint_head")}, path)
    expected = (
        f"checkpoint {path} holds HRNet-W48 weights (backbone.transition1.0.0.weight "
        "(48, 256, 3, 3)); the model is HRNet-W32: build it with width=48"
    )
    for strict in (True, False):
        with pytest.raises(CheckpointError) as err:
            load_hrnet_into(_coco_model(), path, strict=strict)
        assert str(err.value) == expected


def test_missing_head_names_the_file(tmp_path, official_state):
    path = tmp_path / "backbone_only.pth"
    torch.save({k: v for k, v in official_state.items() if not k.startswith("final_")}, path)
    with pytest.raises(CheckpointError) as err:
        load_hrnet_into(_coco_model(), path)
    assert str(err.value) == (
        f"checkpoint {path} does not fit TopDownNet(schema 'coco_person'): 2 missing key(s): "
        "head.final_layer.weight, head.final_layer.bias"
    )


# ---------------------------------------------------------------- NumPy in MMPose's meta


def test_numpy_meta(files, tmp_path):
    """weights_only refuses NumPy arrays; load_checkpoint reads them, still weights-only."""
    meta = load_checkpoint(files["mmpose1"])["meta"]["dataset_meta"]
    expected = _dataset_meta()
    for key in ("sigmas", "joint_weights", "keypoint_colors"):
        assert isinstance(meta[key], np.ndarray) and meta[key].dtype == expected[key].dtype
        np.testing.assert_array_equal(meta[key], expected[key])
    assert meta["num_skeleton_links"] == 19 and meta["keypoint_id2name"][0] == "nose"
    # a file written with NumPy 1 names the functions numpy.core.multiarray.*
    legacy = tmp_path / "numpy1.pth"
    torch.save({"meta": expected, "state_dict": {}}, legacy, _use_new_zipfile_serialization=False)
    data = legacy.read_bytes()
    assert b"cnumpy._core.multiarray\n" in data
    legacy.write_bytes(data.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n"))
    np.testing.assert_array_equal(load_checkpoint(legacy)["meta"]["sigmas"], expected["sigmas"])
    # anything else stays refused: other classes, object arrays
    other = tmp_path / "other.pth"
    torch.save({"meta": {"sigmas": expected["sigmas"], "time": datetime.date(2022, 9, 9)}}, other)
    with pytest.raises(
        CheckpointError, match=r"other.pth holds a pickled object \(datetime.date\)"
    ):
        load_checkpoint(other)
    objects = tmp_path / "objects.pth"
    torch.save({"meta": {"sigmas": expected["sigmas"], "o": np.array([1, "a"], object)}}, objects)
    with pytest.raises(CheckpointError, match=r"cannot read checkpoint .*objects.pth"):
        load_checkpoint(objects)


# ---------------------------------------------------------------- records


def test_weights_records():
    floats = {
        width: sum(
            math.prod(shape) for _, shape, dtype in _tsv_rows(width) if dtype.is_floating_point
        )
        for width in (32, 48)
    }
    assert floats == {32: 28_590_741 - COUNTERS, 48: 63_675_621 - COUNTERS}
    assert len({info.name for info in HRNET_WEIGHTS}) == 4
    for info in HRNET_WEIGHTS:
        width = int(info.model.removeprefix("hrnet_w"))
        assert info.model in ("hrnet_w32", "hrnet_w48") and info.model_options == {}
        assert info.num_values == floats[width]
        assert info.schema_name == "coco_person" and info.sha256 is None
        codec = codec_from_dict(info.schema, info.codec)
        assert codec.to_dict() == {**info.codec, "reach": DEFAULT_REACH}  # its own default
        assert codec.stride == 4 and codec.layout == HeatmapCodec(COCO).layout
        assert (info.input.width, info.input.height, info.input.color_order) == (192, 256, "RGB")
        assert info.input.size_divisor == 32 and info.url.startswith("https://")
        assert 0.7 < info.reported_ap < 0.8
    assert (HRNET_W32_COCO.reported_ap, HRNET_W48_COCO.reported_ap) == (0.744, 0.751)
    assert HRNET_W32_COCO.license == "MIT" and MMPOSE_HRNET_W32_COCO.license == "Apache-2.0"
    # MMPose's file names carry the start of their sha256; the URL is the file
    assert MMPOSE_HRNET_W32_COCO.url.endswith("/" + MMPOSE_HRNET_W32_COCO.file_name)
    assert "-81c58e40_" in MMPOSE_HRNET_W32_COCO.file_name
    assert not HRNET_W32_COCO.url.endswith(HRNET_W32_COCO.file_name)  # a shared folder
    assert HRNET_W32_COCO.manual_download and not MMPOSE_HRNET_W32_COCO.manual_download


def test_weights_file_from_the_cache(tmp_path, files, caplog):
    """Official records: never downloaded, found in the cache; MMPose records: downloaded."""
    cache = tmp_path / "cache"
    target = cache / "weights" / "pose_hrnet_w32_256x192.pth"
    with pytest.raises(WeightsDownloadError) as err:
        download_weights(HRNET_W32_COCO, cache_dir=cache)
    message = str(err.value)
    assert "cannot be downloaded automatically" in message and f"put it at {target}" in message
    assert HRNET_W32_COCO.url in message and not target.parent.exists()
    target.parent.mkdir(parents=True)
    target.write_bytes(files["official"].read_bytes())
    assert download_weights(HRNET_W32_COCO, cache_dir=cache) == target
    served = tmp_path / "server" / MMPOSE_HRNET_W32_COCO.file_name
    served.parent.mkdir()
    served.write_bytes(b"weights")
    local = dataclasses.replace(MMPOSE_HRNET_W32_COCO, url=served.resolve().as_uri())
    with caplog.at_level(logging.WARNING, logger="posekit.models.weights"):
        path = download_weights(local, cache_dir=cache, progress=False)
    assert path.read_bytes() == b"weights" and "no pinned sha256" in caplog.text
