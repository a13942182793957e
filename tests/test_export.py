"""posekit.export: ONNX / TorchScript files with metadata, checked by the parity gate, and the
exported files run by posekit's predictors (ONNX Runtime) with the torch model's poses."""

from __future__ import annotations

import json

import cv2
import numpy as np
import onnx
import pytest

from posekit.errors import CheckpointError, ConfigError
from posekit.export import export_model
from posekit.export_parity import OUTPUT_TOLERANCE, POSE_TOLERANCE, parity_images
from posekit.models.exported import EXPORT_FORMAT, ExportedModel, _onnx_metadata
from posekit.models.loading import load_model
from tests.cli_inputs import IMAGES
from tests.conftest import REPO

FIXTURE = REPO / "tests/fixtures/posekit_0.1_paf_tiny.pt"  # a trained paf_tiny (val AP 0.31)
FIXTURE_IMAGES = sorted((REPO / "tests/fixtures").glob("*.png"))


@pytest.fixture(scope="module")
def photos(coco_val):
    """Real COCO-MINI val photos (one portrait), for the parity gate."""
    return [cv2.imread(str(coco_val[1] / name)) for name in IMAGES]


@pytest.fixture(scope="module")
def paf_tiny(paf_tiny_export):
    """The trained paf_tiny fixture exported to dynamic ONNX (dynamo), with its result."""
    return paf_tiny_export


def _same_poses(a, b, tol_px):
    assert len(a) == len(b)
    for p, q in zip(a, b, strict=True):
        found = (p.keypoints[:, 2] > 0) & (q.keypoints[:, 2] > 0)
        assert np.array_equal(p.keypoints[:, 2] > 0, q.keypoints[:, 2] > 0)
        assert np.abs(p.keypoints[found, :2] - q.keypoints[found, :2]).max(initial=0) <= tol_px
        assert abs(p.score - q.score) < 1e-3


def test_dynamic_onnx_passes_the_gate_on_real_photos(paf_tiny):
    _, result = paf_tiny
    report = result.parity
    assert report.inputs >= 20 and len(report.sizes) == 3
    assert any(w != h for w, h in report.sizes)  # a non-square size
    assert max(report.max_abs.values()) <= OUTPUT_TOLERANCE
    assert report.images == 3 + 4 and report.poses > 0  # photos + synthetic images
    assert report.pose_count_mismatches == 0 and report.max_pose_px <= POSE_TOLERANCE
    assert report.oks_agreement > 0.999


def test_metadata_describes_the_model_and_reads_without_onnx(paf_tiny):
    loaded, result = paf_tiny
    proto = onnx.load(str(result.path))
    props = {p.key: p.value for p in proto.metadata_props}
    assert _onnx_metadata(result.path) == props  # the protobuf reader agrees with onnx
    assert props["posekit_format"] == EXPORT_FORMAT and props["family"] == "bottomup"
    assert json.loads(props["schema"]) == loaded.schema.to_dict()
    assert json.loads(props["codec"]) == loaded.codec.to_dict()
    assert json.loads(props["input_spec"]) == loaded.input_spec.to_dict()
    assert props["exporter"] == "torch.onnx.export(dynamo=True)" and int(props["opset"]) >= 18
    assert len(props["source_sha256"]) == 64 and props["precision"] == "float32"
    assert proto.opset_import[0].version >= 18
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[1].dim_value == 3 and all(d.dim_param for d in (dims[0], dims[2], dims[3]))
    assert [o.name for o in proto.graph.output] == ["heatmaps", "pafs"]


def test_exported_file_gives_the_torch_models_poses(paf_tiny):
    loaded, result = paf_tiny
    exported = load_model(result.path)
    assert isinstance(exported, ExportedModel)
    assert exported.schema == loaded.schema and exported.codec == loaded.codec
    reference = loaded.predictor(input_height=192, flip=True)
    candidate = exported.predictor(input_height=192, flip=True, runtime_settings={"threads": 1})
    for path in FIXTURE_IMAGES:
        image = cv2.imread(str(path))
        _same_poses(reference.predict(image), candidate.predict(image), 1e-2)


def test_in_memory_onnxruntime_backend_of_a_checkpoint(paf_tiny):
    loaded, _ = paf_tiny
    reference = loaded.predictor(input_height=192)
    candidate = loaded.predictor(input_height=192, backend="onnxruntime")
    image = cv2.imread(str(FIXTURE_IMAGES[0]))
    _same_poses(reference.predict(image), candidate.predict(image), 1e-2)


def test_topdown_model_exports_its_crop_size(tmp_path, photos):
    loaded = load_model(weights="topdown_tiny", random_weights=True)
    result = export_model(loaded, tmp_path / "td.onnx", photos=photos)
    spec = loaded.input_spec
    assert (result.info.input.width, result.info.input.height) == (spec.width, spec.height)
    assert result.parity.sizes == ((spec.width, spec.height),)
    assert result.parity.poses == 2 * result.parity.images  # two boxes per image
    exported = load_model(result.path)
    boxes = np.array([[50, 30, 300, 400], [10, 10, 200, 200]], np.float64)
    a = loaded.predictor(flip=True).predict(photos[1], boxes)
    b = exported.predictor(flip=True).predict(photos[1], boxes)
    _same_poses(a, b, 0.1)  # random weights: flat maps, so sub-pixel refinement is sensitive


def test_fixed_size_legacy_export_pads_smaller_inputs(tmp_path):
    loaded = load_model(FIXTURE)
    result = export_model(loaded, tmp_path / "fixed.onnx", height=192, width=256,
                          exporter="legacy", opset=17)  # fmt: skip
    assert result.info.input.height == 192 and result.parity.sizes == ((256, 192),)
    assert result.info.exporter == "torch.onnx.export(dynamo=False)"
    exported = load_model(result.path)
    predictor = exported.predictor()
    assert predictor.input_height == 192
    image = cv2.imread(str(FIXTURE_IMAGES[0]))
    assert len(exported.predictor(input_height=160).predict(image)) > 0  # padded to 256x192
    wide = np.zeros((100, 400, 3), np.uint8)
    with pytest.raises(ConfigError, match=r"takes 256x192 inputs.*--dynamic"):
        predictor.predict(wide)


def test_torchscript_export_carries_metadata(tmp_path):
    loaded = load_model(FIXTURE)
    result = export_model(loaded, tmp_path / "m.torchscript", format="torchscript", stages="all")
    exported = load_model(result.path)
    assert isinstance(exported, ExportedModel) and exported.is_torchscript
    assert exported.info.exporter == "torch.jit.trace" and exported.schema == loaded.schema
    image = cv2.imread(str(FIXTURE_IMAGES[1]))
    _same_poses(loaded.predictor().predict(image), exported.predictor().predict(image), 1e-3)
    with pytest.raises(ConfigError, match="TorchScript: it runs with --backend torch"):
        exported.predictor(backend="onnxruntime")


def test_int8_export_is_quantized_and_measured(tmp_path):
    loaded = load_model(FIXTURE)
    calibration = parity_images(loaded.schema, synthetic=8, seed=3)
    result = export_model(loaded, tmp_path / "q.onnx", int8=True, calibration=calibration,
                          float_heads=True)  # fmt: skip
    proto = onnx.load(str(result.path))
    ops = {n.op_type for n in proto.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert result.path.stat().st_size < 0.5 * FIXTURE.stat().st_size  # int8 weights
    info = load_model(result.path).info
    assert info.precision == "int8" and set(info.parity) == {"float32", "int8"}
    assert 0.0 < result.int8.oks_agreement <= 1.0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"format": "tflite"}, "unknown export format 'tflite'"),
        ({"exporter": "dynamo", "opset": 13}, "opset >= 18"),
        ({"height": 100, "width": 128}, "multiples of the model's stride 8"),
        ({"height": 128}, "needs both --height and --width"),
        ({"int8": True}, "calibration images"),
        ({"stages": "first"}, "stages must be 'last' or 'all'"),
    ],
)
def test_bad_export_options(options, message, tmp_path):
    loaded = load_model(FIXTURE)
    with pytest.raises(ConfigError, match=message):
        export_model(loaded, tmp_path / "x.onnx", **options)
    assert not list(tmp_path.iterdir())  # nothing written


def test_onnx_name_and_topdown_size_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"named \*\.onnx"):
        export_model(load_model(FIXTURE), tmp_path / "x.bin")
    topdown = load_model(weights="topdown_tiny", random_weights=True)
    with pytest.raises(ConfigError, match="top-down model: its input is its crop size"):
        export_model(topdown, tmp_path / "x.onnx", height=256, width=256)


def test_missing_and_foreign_files(tmp_path):
    with pytest.raises(CheckpointError, match="exported model not found"):
        load_model(tmp_path / "none.onnx")
    plain = tmp_path / "plain.onnx"  # an ONNX file that posekit did not write
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["x"], ["y"])], "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])],
    )  # fmt: skip
    onnx.save(onnx.helper.make_model(graph), str(plain))
    with pytest.raises(CheckpointError, match="has no posekit metadata.*posekit export"):
        load_model(plain)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\xff" * 64)
    with pytest.raises(CheckpointError, match="not a readable ONNX file"):
        load_model(junk)
