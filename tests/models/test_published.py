"""Published files in their authors' layouts through the zoo and ``load_model``: each layout is
recognised, becomes the model it is (or, for a trunk's ImageNet weights, a start for training),
and runs with its family's predictor. Files generated with the published key layouts (nothing is
downloaded)."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest
import torch

from posekit.errors import CheckpointError, WeightsDownloadError
from posekit.inference import BottomUpPredictor, TopDownPredictor
from posekit.models import zoo
from posekit.models.bottomup import LightweightOpenPose
from posekit.models.loading import load_model
from posekit.models.published import read_published
from posekit.schema import KeypointSchema
from tests.models.test_hrnet import _dataset_meta, _mmpose, _official_state
from tests.models.test_published_openpose import _he_scaled, _imagenet_checkpoint, _tsv_layout

COCO = KeypointSchema.named("coco_person")


@pytest.fixture(scope="module")
def hrnet_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("hrnet")
    state = _official_state(32)
    official, mmpose = root / "pose_hrnet_w32_256x192.pth", root / "td-hm_hrnet-w32.pth"
    torch.save(state, official)
    torch.save({"meta": {"dataset_meta": _dataset_meta()}, "state_dict": _mmpose(state, "head")},
               mmpose)  # fmt: skip
    return official, mmpose


def test_hrnet_files_load_as_hrnet_w32_with_their_record(hrnet_files):
    official, mmpose = hrnet_files
    image = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    poses = []
    for path, record in ((official, "hrnet_w32_coco"), (mmpose, "mmpose_hrnet_w32_coco")):
        loaded = load_model(path)
        assert loaded.family == "topdown" and loaded.record.model_name == "hrnet_w32"
        assert loaded.schema == COCO and loaded.input_spec == zoo.WEIGHTS[record].input
        assert read_published(torch.load(path, weights_only=False), str(path)).info.name == record
        predictor = loaded.predictor()
        assert isinstance(predictor, TopDownPredictor)
        poses.append(predictor.predict(image, np.array([[20.0, 10.0, 200.0, 230.0]])))
    # the same weights in both layouts: the same poses
    assert len(poses[0]) == len(poses[1]) == 1
    np.testing.assert_allclose(poses[0][0].keypoints, poses[1][0].keypoints, atol=1e-4)


def test_hrnet_file_starts_a_model_of_another_schema(hrnet_files, caplog):
    """model.pretrained=<published file> for a 6-keypoint schema: backbone loaded, head new."""
    official, _ = hrnet_files
    schema = KeypointSchema.from_dict({"name": "arm", "keypoints": ["a", "b", "c", "d", "e", "f"],
                                       "skeleton": [[0, 1], [1, 2], [3, 4], [4, 5]]})  # fmt: skip
    model = zoo.build_model("hrnet_w32", schema)
    head = model.state_dict()["head.final_layer.weight"].clone()
    with caplog.at_level(logging.INFO):
        result = zoo.load_weights(model, official, strict=False)
    assert len(result.loaded) == 1752 and all(k.startswith("backbone.") for k in result.loaded)
    assert set(result.mismatched) == {"head.final_layer.weight", "head.final_layer.bias"}
    assert torch.equal(model.state_dict()["head.final_layer.weight"], head)
    assert str(official) in caplog.text and "partial load" in caplog.text
    with pytest.raises(CheckpointError, match="holds HRNet-W32 weights .* the model is HRNet-W18"):
        zoo.load_weights(zoo.build_model("hrnet_w18", schema), official, strict=False)


def test_cmu_pose_model_loads_as_openpose_vgg19(tmp_path):
    gen = torch.Generator().manual_seed(0)
    state = {k: _he_scaled(k, torch.randn(s, generator=gen)) for k, s in _tsv_layout().items()}
    path = tmp_path / "pose_model.pth"
    torch.save(state, path)
    loaded = load_model(path)
    assert loaded.record.model_name == "openpose_vgg19" and loaded.schema.name == "openpose18"
    assert loaded.model.num_refinement_stages == 5 and loaded.input_height == 368
    assert isinstance(loaded.predictor(), BottomUpPredictor)
    conv = loaded.model.state_dict()["refinement_stages.4.heatmaps.0.weight"]
    assert torch.equal(conv, state["model6_2.0.weight"])


def test_imagenet_mobilenet_is_a_trunk_start(tmp_path, caplog):
    path = tmp_path / "mobilenet_sgd_68.848.pth.tar"
    torch.save(_imagenet_checkpoint(), path)
    with pytest.raises(CheckpointError, match=r"ImageNet weights of a trunk .*model.pretrained="):
        load_model(path)
    model = LightweightOpenPose(COCO, num_refinement_stages=1)
    cpm = model.state_dict()["cpm.align.0.weight"].clone()
    with caplog.at_level(logging.INFO):
        result = zoo.load_weights(model, path)  # a trunk never loads strictly
    assert len([k for k in result.loaded if k.startswith("model.")]) == 138
    assert not any(k.startswith(("cpm.", "initial_stage.")) for k in result.loaded)
    assert torch.equal(model.state_dict()["cpm.align.0.weight"], cpm)
    assert "trunk only" in caplog.text
    # by name: a trunk record in the cache, never fetched here
    cache = tmp_path / "cache"
    (cache / "weights").mkdir(parents=True)
    (cache / "weights" / zoo.TRUNKS["mobilenet_v1_imagenet"].file_name).write_bytes(
        path.read_bytes()
    )
    built = zoo.build_model("lwop_mobilenet", COCO, pretrained="mobilenet_v1_imagenet",
                            cache_dir=cache)  # fmt: skip
    assert torch.equal(
        built.state_dict()["model.0.0.weight"], model.state_dict()["model.0.0.weight"]
    )


def test_official_hrnet_records_are_never_fetched(tmp_path):
    info = zoo.WEIGHTS["hrnet_w32_coco"]
    with pytest.raises(WeightsDownloadError, match="cannot be downloaded automatically"):
        zoo.download_weights(info, cache_dir=tmp_path)
    assert zoo.WEIGHTS["mmpose_hrnet_w32_coco"].url.endswith(".pth")
    assert dataclasses.replace(info, manual_download=False).manual_download is False
