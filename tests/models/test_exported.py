"""models.exported: the metadata record of exported files and its errors (no export needed)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from posekit.codecs.paf import PafCodec
from posekit.errors import CheckpointError, ConfigError
from posekit.inference.runtime import FixedSizeRuntime
from posekit.models.exported import (
    EXPORT_FORMAT,
    ExportedModel,
    ExportInfo,
    InputShape,
    is_exported_file,
    output_names,
)
from posekit.models.record import ModelRecord
from posekit.schema import KeypointSchema
from posekit.structures import InputSpec


def _info() -> ExportInfo:
    schema = KeypointSchema.load("coco_person")
    codec = PafCodec(schema)
    record = ModelRecord("bottomup", "paf_tiny", schema, codec, InputSpec(height=192))
    outputs = output_names(codec.layout.names, 2, all_stages=True)
    return ExportInfo(record, InputShape(size_divisor=8), tuple(outputs), "x", 18)


def test_metadata_round_trip_and_used_outputs():
    info = _info()
    props = info.to_metadata()
    assert all(isinstance(v, str) for v in props.values())
    back = ExportInfo.from_metadata(props, "f.onnx")
    assert back == info
    assert back.used_outputs == ("stage2_heatmaps", "stage2_pafs")
    assert [o.name for o in output_names(("a", "b"), 3, all_stages=False)] == ["a", "b"]


def test_other_format_version_and_broken_entries():
    props = _info().to_metadata()
    with pytest.raises(CheckpointError, match="format 'posekit-export/0' is not"):
        ExportInfo.from_metadata({**props, "posekit_format": "posekit-export/0"}, "f.onnx")
    with pytest.raises(CheckpointError, match="f.onnx: invalid posekit metadata"):
        ExportInfo.from_metadata({**props, "outputs": "[{"}, "f.onnx")
    del props["codec"]
    with pytest.raises(CheckpointError, match="invalid posekit metadata.*codec"):
        ExportInfo.from_metadata(props, "f.onnx")
    assert EXPORT_FORMAT.startswith("posekit-export/")


def test_fixed_size_runtime_pads_and_crops():
    seen = []

    class Echo:
        def run(self, batch):
            seen.append(batch.shape)
            return (batch.transpose(0, 3, 1, 2)[:, :, ::8, ::8].copy(),)

    runtime = FixedSizeRuntime(Echo(), (64, 32), pad_value=-1.0, stride=8)
    (out,) = runtime.run(np.ones((2, 24, 40, 3), np.float32))
    assert seen == [(2, 32, 64, 3)] and out.shape == (2, 3, 3, 5)
    assert (out == 1).all()  # the image part, padding cut away
    with pytest.raises(ConfigError, match="takes 64x32 inputs"):
        runtime.run(np.ones((1, 40, 40, 3), np.float32))


def test_backends_and_missing_packages(tmp_path, monkeypatch):
    model = ExportedModel(tmp_path / "m.onnx", _info())
    with pytest.raises(ConfigError, match="unknown backend 'tflite'"):
        model.runtime("tflite")
    with pytest.raises(ConfigError, match="--backend onnxruntime or openvino"):
        model.runtime("torch")
    monkeypatch.setitem(sys.modules, "openvino", None)  # as if not installed
    with pytest.raises(ConfigError, match=r"pip install 'posekit\[openvino\]'"):
        model.runtime("openvino")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ConfigError, match=r"pip install 'posekit\[onnx\]'"):
        model.runtime("onnxruntime")


def test_is_exported_file(tmp_path):
    assert is_exported_file(tmp_path / "a.onnx")  # by name: errors come from reading it
    zipped = tmp_path / "ckpt.pt"
    zipped.write_bytes(b"not a zip")
    assert not is_exported_file(zipped)
    assert json.loads(_info().to_metadata()["input"])["layout"] == "NCHW"
