"""load_model: posekit checkpoints, the official Lightweight OpenPose file, published names; errors."""

from __future__ import annotations

import json
import logging
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from posekit import CheckpointError, ConfigError, KeypointSchema
from posekit.codecs.paf import PafCodec
from posekit.engine.checkpoint import save_checkpoint
from posekit.inference import Predictor
from posekit.models.bottomup import LightweightOpenPose, OpenPoseVGG19
from posekit.models.loading import DEFAULT_HEIGHT, load_model
from posekit.models.weights import WeightsDownloadError
from tests.checkpoint_files import noisy_lwop, write_official_checkpoint, write_posekit_checkpoint


@pytest.fixture(scope="module")
def official_file(tmp_path_factory):
    return write_official_checkpoint(tmp_path_factory.mktemp("official") / "checkpoint.pth")


def _same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_posekit_checkpoint(tmp_path):
    model = noisy_lwop("coco_person_neck")
    path = write_posekit_checkpoint(tmp_path / "best.pt", model, input_height=320)
    loaded = load_model(path)
    assert isinstance(loaded.model, LightweightOpenPose) and not loaded.model.training
    assert loaded.schema == model.schema and loaded.codec == PafCodec(model.schema)
    assert loaded.input_height == 320 and loaded.source == str(path)
    assert _same_state(loaded.model.state_dict(), model.state_dict())


def test_official_checkpoint(official_file):
    loaded = load_model(official_file)
    assert loaded.schema == KeypointSchema.named("openpose18")
    assert loaded.model.num_refinement_stages == 1 and loaded.input_height == 256
    state = torch.load(official_file, weights_only=True)["state_dict"]
    assert _same_state(loaded.model.state_dict(), state)  # every key consumed, none missing


def test_published_name_uses_the_cache_and_never_downloads(
    official_file, tmp_path, caplog, monkeypatch
):
    cached = tmp_path / "weights" / "checkpoint_iter_370000.pth"
    cached.parent.mkdir()
    cached.write_bytes(official_file.read_bytes())
    with caplog.at_level(logging.WARNING):
        loaded = load_model(weights="lwop_mobilenet", cache_dir=tmp_path, progress=False)
    assert loaded.source == "lwop_mobilenet_coco" and loaded.schema.name == "openpose18"
    assert "no pinned sha256" in caplog.text  # the published record is not pinned yet

    def refuse(*args, **kwargs):  # a test never reaches the network
        raise OSError("network disabled in tests")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    with pytest.raises(WeightsDownloadError, match=r"cannot download weights .* put it at"):
        load_model(weights="lwop_mobilenet_coco", cache_dir=tmp_path / "empty", progress=False)


def test_random_weights():
    loaded = load_model(weights="lwop_mobilenet", random_weights=True)
    assert loaded.schema.name == "openpose18" and loaded.model.num_refinement_stages == 1
    assert loaded.input_height == 256 and "random weights" in loaded.source
    vgg = load_model(weights="openpose_vgg19", random_weights=True, schema="coco_person")
    assert isinstance(vgg.model, OpenPoseVGG19) and vgg.schema.name == "coco_person"
    assert vgg.input_height == 368  # its published weights' (CMU's box size)
    tiny = load_model(weights="paf_tiny", random_weights=True)
    assert tiny.schema.name == "coco_person" and tiny.input_height == DEFAULT_HEIGHT
    hrnet = load_model(weights="hrnet_w18", random_weights=True)
    assert hrnet.family == "topdown" and hrnet.input_spec.color_order == "RGB"


def test_argument_errors(official_file):
    with pytest.raises(ConfigError, match="either a checkpoint file or a published model name"):
        load_model()
    with pytest.raises(ConfigError, match="either a checkpoint file or a published model name"):
        load_model(official_file, weights="lwop_mobilenet")
    with pytest.raises(ConfigError, match="go with a published model name, not a checkpoint"):
        load_model(official_file, random_weights=True)
    with pytest.raises(ConfigError, match=r"unknown model 'resnet'; models: \['hrnet_w18'"):
        load_model(weights="resnet")
    with pytest.raises(ConfigError, match="'hrnet_w18' has no published weights"):
        load_model(weights="hrnet_w18")
    with pytest.raises(ConfigError, match="a schema can only be chosen for random weights"):
        load_model(weights="lwop_mobilenet", schema="coco_person")


def test_checkpoint_of_another_schema(tmp_path):
    path = write_official_checkpoint(tmp_path / "other.pth", heads=(18, 34))
    with pytest.raises(CheckpointError) as err:
        load_model(path)
    message = str(err.value)
    assert str(path) in message
    assert (
        "heatmap head has 18 channels in the checkpoint, the schema 'openpose18' needs K+1=19"
        in (message)
    )
    assert "PAF head has 34 channels in the checkpoint, the schema 'openpose18' needs 2L=38" in (
        message
    )


def test_corrupt_truncated_and_foreign_files(official_file, tmp_path):
    data = official_file.read_bytes()
    broken = tmp_path / "truncated.pth"
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(
        CheckpointError, match=r"cannot read checkpoint .*truncated.pth \(truncated"
    ):
        load_model(broken)
    with pytest.raises(CheckpointError, match="checkpoint not found: .*missing.pth"):
        load_model(tmp_path / "missing.pth")
    foreign = save_checkpoint({"weights": {"w": torch.zeros(2)}}, tmp_path / "foreign.pt")
    with pytest.raises(
        CheckpointError,
        match=r"foreign.pt is neither a posekit checkpoint .* top-level keys: \['weights'\]",
    ):
        load_model(foreign)


def test_posekit_checkpoint_records_that_do_not_fit(tmp_path):
    model = noisy_lwop("coco_person")
    good = torch.load(write_posekit_checkpoint(tmp_path / "good.pt", model, 256), weights_only=True)
    lacking = save_checkpoint({k: v for k, v in good.items() if k != "codec"}, tmp_path / "a.pt")
    with pytest.raises(CheckpointError, match=r"a.pt lacks the entries \['codec'\]"):
        load_model(lacking)
    bad_name = save_checkpoint({**good, "model_name": "resnet"}, tmp_path / "b.pt")
    with pytest.raises(
        CheckpointError, match=r"b.pt: invalid model record: unknown model 'resnet'"
    ):
        load_model(bad_name)
    other = KeypointSchema.named("coco_person_neck").to_dict()
    relabeled = save_checkpoint({**good, "schema": other}, tmp_path / "c.pt")
    with pytest.raises(CheckpointError, match=r"c.pt does not fit .*heatmap head has 18 channels"):
        load_model(relabeled)


# ---------------------------------------------------------------------- a posekit 0.1 checkpoint
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
LEGACY = FIXTURES / "posekit_0.1_paf_tiny.pt"


@pytest.mark.parametrize("flip", [False, True], ids=["plain", "flip"])
def test_a_posekit_0_1_checkpoint_loads_and_gives_the_same_poses(flip):
    """The file and the poses were made by posekit 0.1 (tests/fixtures/README.md)."""
    loaded = load_model(LEGACY)
    assert loaded.schema == KeypointSchema.named("coco_person")
    assert loaded.input_height == 192
    expected = json.loads((FIXTURES / "posekit_0.1_paf_tiny_poses.json").read_text())
    predictor = Predictor(
        loaded.model,
        loaded.schema,
        codec=loaded.codec,
        input_height=loaded.input_height,
        flip=flip,
    )
    compared = 0
    # the 0.1 constructor, and the predictor the loaded model picks for its family
    for p in (predictor, loaded.predictor(flip=flip)):
        for name, by_mode in expected.items():
            want = by_mode["flip" if flip else "plain"]
            got = p.predict(cv2.imread(str(FIXTURES / name)))
            assert len(got) == len(want), name
            for pose, ref in zip(got, want, strict=True):
                # float32 network maps; 1e-3 px is far below the decoder's sub-pixel steps
                np.testing.assert_allclose(pose.keypoints, ref["keypoints"], atol=1e-3)
                assert pose.score == pytest.approx(ref["score"], abs=1e-5)
                compared += 1
    assert compared >= 30
    assert loaded.family == "bottomup" and loaded.model.options == {
        "num_refinement_stages": 0,
        "width": 64,
    }
