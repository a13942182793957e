"""Model table, published-weights records, download cache, and the official checkpoint format.

The published Lightweight OpenPose file is not on this machine; the tests write files of its exact
layout (every key, shape and dtype of ../shared/weights/lwop_checkpoint_keys.tsv, random values,
wrapped in its training-checkpoint dict). Downloads only ever use local ``file://`` URLs.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import logging
import math
import re
from pathlib import Path

import pytest
import torch

from posekit.codecs import codec_from_dict
from posekit.codecs.paf import PafCodec
from posekit.errors import ConfigError
from posekit.models import zoo
from posekit.models.bottomup import LightweightOpenPose, OpenPoseVGG19
from posekit.models.weights import (
    CACHE_ENV,
    CheckpointError,
    WeightsDownloadError,
    download_weights,
    read_state_dict,
    resolve_cache_dir,
)
from posekit.schema import KeypointSchema
from tests.published_layouts import keys_tsv

KEYS_TSV = Path("../shared/weights/lwop_checkpoint_keys.tsv")  # relative to the repo root
PUBLISHED_VALUES = 4_108_978  # floating-point values of the published state_dict (README)


def _tsv_rows() -> list[tuple[str, tuple[int, ...], torch.dtype]]:
    return keys_tsv(KEYS_TSV.name)


def _official_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A state_dict with every published key, shape and dtype, random values."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape, dtype in _tsv_rows():
        if dtype.is_floating_point:
            state[key] = torch.randn(shape, generator=gen, dtype=dtype)
        else:
            state[key] = torch.randint(0, 370_000, shape, generator=gen, dtype=dtype)
    return state


def _training_checkpoint(state: dict[str, torch.Tensor]) -> dict:
    """The published file's top-level layout: weights plus Adam / MultiStepLR training state."""
    return {
        "state_dict": state,
        "optimizer": {
            "state": {0: {"step": 370_000, "exp_avg": torch.zeros(3), "exp_avg_sq": torch.ones(3)}},
            "param_groups": [
                {
                    "lr": 4e-5,
                    "betas": (0.9, 0.999),
                    "eps": 1e-8,
                    "weight_decay": 5e-4,
                    "amsgrad": False,
                    "params": [0],
                }
            ],
        },
        "scheduler": {
            "milestones": collections.Counter({100: 1, 200: 1, 260: 1}),
            "gamma": 0.333,
            "base_lrs": [4e-5],
            "last_epoch": 280,
        },
        "iter": 370_000,
        "current_epoch": 0,
    }


@pytest.fixture(scope="module")
def official_state() -> dict[str, torch.Tensor]:
    return _official_state()


@pytest.fixture(scope="module", params=["zip", "legacy"])
def official_file(request, tmp_path_factory, official_state) -> Path:
    """``checkpoint_iter_370000.pth`` layout, in torch's current and pre-1.6 (legacy) formats."""
    path = tmp_path_factory.mktemp(request.param) / "checkpoint_iter_370000.pth"
    torch.save(
        _training_checkpoint(official_state),
        path,
        _use_new_zipfile_serialization=request.param == "zip",
    )
    return path


def _openpose18_model(num_refinement_stages: int = 1) -> LightweightOpenPose:
    return LightweightOpenPose(
        KeypointSchema.named("openpose18"), num_refinement_stages=num_refinement_stages
    )


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------- the table


def test_table_names_unique_and_each_builds():
    default_stages = {"lwop_mobilenet": 1, "openpose_vgg19": 5, "paf_tiny": 0}
    assert {n for n, e in zoo.MODELS.items() if e.family == "bottomup"} == set(default_stages)
    schema = KeypointSchema.named("coco_person")
    for name, entry in zoo.MODELS.items():
        assert entry.name == name and entry.builder.__name__ == name
        for info in entry.weights:
            assert zoo.WEIGHTS[info.name] is info and info.model == name
        if entry.family != "bottomup":
            continue
        model = zoo.build_model(name, schema, num_refinement_stages=1)
        assert model.schema is schema and model.num_refinement_stages == 1
        default = entry.builder(schema="coco_person")  # a built-in schema name works too
        assert default.num_refinement_stages == default_stages[name]


def test_each_model_takes_its_heads_from_its_codec_and_rebuilds_from_its_options():
    schema = KeypointSchema.named("coco_person_neck")
    for name, entry in zoo.MODELS.items():
        codec = zoo.default_codec(name, schema)
        assert codec.family == entry.family and codec.name == entry.codec["name"]
        model = zoo.build_model(name, codec=codec)
        assert model.layout == codec.layout and model.stride == codec.stride
        again = zoo.build_model(name, codec=codec, **model.options)
        shapes = {k: v.shape for k, v in model.state_dict().items()}
        assert {k: v.shape for k, v in again.state_dict().items()} == shapes
    with pytest.raises(
        ConfigError, match=r"codec.stride=4 but model 'paf_tiny' has output stride 8"
    ):
        zoo.build_model("paf_tiny", codec=PafCodec(schema, stride=4))
    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['stages'\]; its options are"):
        zoo.build_model("paf_tiny", schema, stages=2)


def test_table_refuses_duplicate_names():
    entry = zoo.MODELS["lwop_mobilenet"]
    with pytest.raises(ValueError, match="duplicate model name 'lwop_mobilenet'"):
        zoo._unique_table((entry, entry), "model")


def test_build_model_errors():
    with pytest.raises(ConfigError, match=r"unknown model 'resnet'; available: \['hrnet_w18'"):
        zoo.build_model("resnet", "coco_person")
    with pytest.raises(ConfigError, match="a schema is needed"):
        zoo.build_model("lwop_mobilenet")
    with pytest.raises(ConfigError, match="neither published weights"):
        zoo.build_model("lwop_mobilenet", "coco_person", pretrained="no/such/file.pth")
    with pytest.raises(ConfigError, match="unknown weights 'nope'"):
        zoo.from_pretrained("nope")


# ---------------------------------------------------------------- the published checkpoint


def test_lwop_state_dict_is_the_published_one():
    """Keys in order, shapes and dtypes of the model equal the published checkpoint's."""
    rows = _tsv_rows()
    state = _openpose18_model().state_dict()
    assert [(k, tuple(v.shape), v.dtype) for k, v in state.items()] == rows
    assert len(rows) == 250
    assert sum(v.numel() for v in state.values() if v.is_floating_point()) == PUBLISHED_VALUES
    # the only other entries: one int64 num_batches_tracked scalar per BatchNorm
    others = [k for k, v in state.items() if not v.is_floating_point()]
    assert len(others) == 33 and all(k.endswith("num_batches_tracked") for k in others)
    assert sum(math.prod(shape) for _, shape, dtype in rows if dtype.is_floating_point) == (
        PUBLISHED_VALUES
    )


def test_load_official_checkpoint(official_file, official_state):
    model = _openpose18_model()
    result = zoo.load_lwop_checkpoint(official_file, model)
    assert set(result.loaded) == set(official_state) and len(result.loaded) == 250
    assert result.missing == result.unexpected == result.mismatched == ()
    loaded = model.state_dict()
    for key, value in official_state.items():
        assert torch.equal(loaded[key], value), key
    assert sum(v.numel() for v in loaded.values() if v.is_floating_point()) == PUBLISHED_VALUES
    # the loaded network runs and gives the openpose18 channels
    with torch.no_grad():
        heatmaps, pafs = model.eval()(torch.zeros(1, 3, 32, 48))[-1]
    assert heatmaps.shape == (1, 19, 4, 6) and pafs.shape == (1, 38, 4, 6)


def test_load_in_memory_and_prefixed_state(official_state):
    model = _openpose18_model()
    prefixed = {f"module.{k}": v for k, v in official_state.items()}  # a DataParallel save
    zoo.load_lwop_checkpoint({"state_dict": prefixed}, model)
    assert torch.equal(model.state_dict()["cpm.conv.0.weight"], official_state["cpm.conv.0.weight"])
    assert read_state_dict(official_state).keys() == official_state.keys()


@pytest.mark.parametrize(
    ("schema_name", "expected"),
    [
        (
            "coco_person",
            "heatmap head has 19 channels in the checkpoint, the schema 'coco_person' needs K+1=18",
        ),
        (
            "ap10k",
            "heatmap head has 19 channels in the checkpoint, the schema 'antelope' needs K+1=18; "
            "PAF head has 38 channels in the checkpoint, the schema 'antelope' needs 2L=34",
        ),
    ],
)
def test_checkpoint_of_another_schema(official_file, schema_name, expected):
    if schema_name == "ap10k":
        with open("../shared/data/custom/ap10k/test_ap10k.json") as f:
            schema = KeypointSchema.from_coco(json.load(f)["categories"][0])
    else:
        schema = KeypointSchema.named(schema_name)
    model = LightweightOpenPose(schema)
    with pytest.raises(CheckpointError) as info:
        zoo.load_lwop_checkpoint(official_file, model)
    message = str(info.value)
    assert str(official_file) in message and expected in message
    assert "refinement inputs follow from the head sizes" in message


def test_checkpoint_with_other_stage_count(official_file):
    with pytest.raises(
        CheckpointError, match=r"checkpoint has 1 refinement stage\(s\), the model 2"
    ):
        zoo.load_lwop_checkpoint(official_file, _openpose18_model(num_refinement_stages=2))


def test_partial_load_for_a_new_schema(official_file, official_state, caplog):
    """strict=False: everything but the heads loads, to fine-tune the published weights."""
    model = LightweightOpenPose(KeypointSchema.named("coco_person"))
    with caplog.at_level(logging.WARNING, logger="posekit.models.weights"):
        result = zoo.load_weights(model, official_file, strict=False)
    assert "partial load" in caplog.text and "heatmap head has 19 channels" in caplog.text
    assert set(result.mismatched) == {
        "initial_stage.heatmaps.1.0.weight",
        "initial_stage.heatmaps.1.0.bias",
        "refinement_stages.0.heatmaps.1.0.weight",
        "refinement_stages.0.heatmaps.1.0.bias",
        "refinement_stages.0.trunk.0.initial.0.weight",
    }
    assert len(result.loaded) == 245 and not result.missing and not result.unexpected
    assert torch.equal(model.state_dict()["model.5.3.weight"], official_state["model.5.3.weight"])


def test_truncated_file(official_file, tmp_path):
    data = official_file.read_bytes()
    broken = tmp_path / "checkpoint_broken.pth"
    model = _openpose18_model()
    # many cut points: a damaged file fails inside torch.load in many ways, always reported so
    for cut in [1, 100, 1000, *range(len(data) // 7, len(data), len(data) // 7)]:
        broken.write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match=rf"checkpoint {re.escape(str(broken))} "):
            zoo.load_lwop_checkpoint(broken, model)
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cannot read checkpoint .*\(truncated, corrupt"):
        zoo.load_lwop_checkpoint(broken, model)
    broken.write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"checkpoint_broken.pth is empty \(0 bytes\)"):
        zoo.load_lwop_checkpoint(broken, model)


def test_unreadable_or_foreign_files(tmp_path):
    model = _openpose18_model()
    with pytest.raises(CheckpointError, match="checkpoint not found: .*missing.pth"):
        zoo.load_lwop_checkpoint(tmp_path / "missing.pth", model)
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read checkpoint .*notes.pth"):
        zoo.load_lwop_checkpoint(text, model)
    pickled = tmp_path / "module.pth"
    torch.save({"net": torch.nn.Linear(2, 2)}, pickled)  # a pickled module: refused, not run
    with pytest.raises(
        CheckpointError,
        match=r"module.pth holds a pickled object \(torch.nn.modules.linear.Linear\) that",
    ):
        zoo.load_lwop_checkpoint(pickled, model)
    no_state = tmp_path / "no_state.pth"
    torch.save({"iter": 3, "optimizer": {}}, no_state)
    with pytest.raises(CheckpointError, match=r"no_state.pth: no state_dict found .*'iter'"):
        zoo.load_lwop_checkpoint(no_state, model)
    with pytest.raises(TypeError, match="expected a LightweightOpenPose"):
        zoo.load_lwop_checkpoint(no_state, OpenPoseVGG19(model.schema, num_refinement_stages=0))


def test_keys_and_shapes_that_do_not_fit(official_state, tmp_path):
    state = dict(official_state)
    del state["cpm.conv.0.bias"]
    state["extra.weight"] = torch.zeros(2)
    state["model.0.0.weight"] = torch.zeros(32, 3, 5, 5)
    with pytest.raises(CheckpointError) as err:
        zoo.load_lwop_checkpoint({"state_dict": state}, _openpose18_model())
    assert str(err.value) == (
        "checkpoint <in memory> does not fit LightweightOpenPose(schema 'openpose18', "
        "1 refinement stage(s)): 1 missing key(s): cpm.conv.0.bias; 1 unexpected key(s): "
        "extra.weight; 1 shape mismatch(es), checkpoint vs model: model.0.0.weight "
        "(32, 3, 5, 5) vs (32, 3, 3, 3)"
    )
    not_a_dict = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], not_a_dict)
    with pytest.raises(CheckpointError, match=r"list.pth: expected a dict, got list"):
        zoo.load_lwop_checkpoint(not_a_dict, _openpose18_model())


def test_posekit_checkpoint_schema_record(official_state):
    """A schema record with another layout is refused even when every shape fits."""
    other = KeypointSchema.named("coco_person_neck")  # also 18 keypoints and 19 limbs
    model = _openpose18_model()
    checkpoint = {"model": official_state, "schema": other.to_dict()}
    with pytest.raises(CheckpointError, match="trained for schema 'coco_person_neck'"):
        zoo.load_weights(model, checkpoint)
    zoo.load_weights(model, {**checkpoint, "schema": model.schema.to_dict()})


# ---------------------------------------------------------------- weights records


def test_weights_records_match_the_models():
    header_rows = {k: shape for k, shape, _ in _tsv_rows()}
    for info in zoo.WEIGHTS.values():
        schema = info.schema
        assert schema.name == info.schema_name
        model = zoo.MODELS[info.model].builder(schema=schema, **info.model_options)
        state = model.state_dict()
        assert sum(v.numel() for v in state.values() if v.is_floating_point()) == info.num_values
        if info.input.width is None:  # whole images, padded to multiples of the stride
            assert info.input.size_divisor == model.stride
        else:  # fixed crops; HRNet needs sides that are multiples of 32
            assert info.input.width % info.input.size_divisor == 0
            assert info.input.height % info.input.size_divisor == 0
        assert codec_from_dict(schema, info.codec).layout == model.layout
        assert re.fullmatch(r"[0-9a-f]{64}", info.sha256 or "0" * 64)
        assert info.url.startswith("https://")
        # the file itself (Dropbox: ?dl=1), or a shared folder a person downloads it from
        assert info.manual_download or info.url.split("?")[0].endswith("/" + info.file_name)
        assert 0 < info.reported_ap <= 1
    published = zoo.WEIGHTS["lwop_mobilenet_coco"]
    assert published.schema_name == "openpose18"
    assert published.model_options == {"num_refinement_stages": 1}
    assert published.num_values == PUBLISHED_VALUES
    assert published.file_name == "checkpoint_iter_370000.pth"
    spec = published.input
    assert (spec.color_order, spec.mean, spec.std, spec.pad_value) == (
        "BGR",
        (128,) * 3,
        (256,) * 3,
        0,
    )
    assert published.reported_ap == pytest.approx(0.40)
    # the schema of the weights gives the published head shapes: K+1 = 19 heatmaps, 2L = 38 PAFs
    schema = published.schema
    assert header_rows["initial_stage.heatmaps.1.0.weight"][0] == schema.num_keypoints + 1 == 19
    assert header_rows["refinement_stages.0.pafs.1.0.weight"][0] == 2 * schema.num_limbs == 38


# ---------------------------------------------------------------- download and cache


def _local_weights(source: Path, sha256: str | None) -> zoo.WeightsInfo:
    return dataclasses.replace(
        zoo.WEIGHTS["lwop_mobilenet_coco"], url=source.resolve().as_uri(), sha256=sha256
    )


def test_cache_dir_resolution(monkeypatch, tmp_path):
    monkeypatch.delenv(CACHE_ENV, raising=False)
    assert resolve_cache_dir() == Path.home() / ".cache" / "posekit"
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "env"))
    assert resolve_cache_dir() == tmp_path / "env"
    assert resolve_cache_dir(tmp_path / "arg") == tmp_path / "arg"


def test_download_verifies_and_caches(official_file, official_state, tmp_path, monkeypatch):
    source = tmp_path / "server" / "checkpoint_iter_370000.pth"
    source.parent.mkdir()
    source.write_bytes(official_file.read_bytes())
    info = _local_weights(source, _sha256(source))
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    path = download_weights(info, progress=False)
    assert path == tmp_path / "cache" / "weights" / "checkpoint_iter_370000.pth"
    assert path.read_bytes() == source.read_bytes()
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temp file left
    source.unlink()  # a second call must not download again
    model = zoo.from_pretrained(info, progress=False)
    assert isinstance(model, LightweightOpenPose) and model.schema.name == "openpose18"
    assert torch.equal(model.state_dict()["model.0.0.weight"], official_state["model.0.0.weight"])


def test_download_with_wrong_sha256(official_file, tmp_path):
    info = _local_weights(official_file, "0" * 64)
    cache = tmp_path / "cache"
    with pytest.raises(CheckpointError) as err:
        download_weights(info, cache_dir=cache, progress=False)
    message = str(err.value)
    assert f"has sha256 {_sha256(official_file)}, expected {'0' * 64}" in message
    assert "it was not kept" in message
    assert list((cache / "weights").iterdir()) == []


def test_offline_download(tmp_path):
    info = _local_weights(tmp_path / "absent.pth", "0" * 64)
    target = tmp_path / "cache" / "weights" / "checkpoint_iter_370000.pth"
    with pytest.raises(WeightsDownloadError, match=rf"put it at {re.escape(str(target))}"):
        zoo.load_weights(_openpose18_model(), info, cache_dir=tmp_path / "cache", progress=False)
    assert list(target.parent.iterdir()) == []


def test_preplaced_cache_file(official_file, official_state, tmp_path):
    """Offline use: a file put into the cache is used (and verified) without any download."""
    info = _local_weights(tmp_path / "unreachable.pth", _sha256(official_file))
    cached = tmp_path / "cache" / "weights" / info.file_name
    cached.parent.mkdir(parents=True)
    cached.write_bytes(official_file.read_bytes())
    model = zoo.build_model("lwop_mobilenet", pretrained=info, cache_dir=tmp_path / "cache")
    assert torch.equal(model.state_dict()["cpm.align.0.bias"], official_state["cpm.align.0.bias"])
    cached.write_bytes(b"tampered")
    with pytest.raises(CheckpointError, match=r"cached file .* \(delete it to download again\)"):
        zoo.from_pretrained(info, cache_dir=tmp_path / "cache")


def test_unpinned_sha256_logs_the_digest(official_file, tmp_path, caplog):
    info = _local_weights(official_file, None)
    with caplog.at_level(logging.WARNING, logger="posekit.models.weights"):
        path = download_weights(info, cache_dir=tmp_path, progress=False)
    assert f"has sha256 {_sha256(path)} (not verified)" in caplog.text


def test_pretrained_contradicting_the_weights(official_file, tmp_path):
    info = _local_weights(official_file, _sha256(official_file))
    with pytest.raises(ConfigError, match="trained for schema 'openpose18'"):
        zoo.build_model("lwop_mobilenet", "coco_person_neck", pretrained=info, cache_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"have 1 refinement stage\(s\); got .*=2"):
        zoo.build_model("lwop_mobilenet", pretrained=info, num_refinement_stages=2)
    with pytest.raises(ConfigError, match="are for model 'lwop_mobilenet', not 'openpose_vgg19'"):
        zoo.build_model("openpose_vgg19", pretrained=info)
    new_schema = LightweightOpenPose(KeypointSchema.named("coco_person_neck"))
    with pytest.raises(CheckpointError, match="are for schema 'openpose18'"):
        zoo.load_weights(new_schema, info, cache_dir=tmp_path)
    # fine-tuning on a new schema: strict=False loads everything that fits
    result = zoo.load_weights(new_schema, info, cache_dir=tmp_path, strict=False, progress=False)
    assert len(result.loaded) == 250 and not result.mismatched  # same K and L: all shapes fit
    # a local checkpoint file as `pretrained` / `weights`
    model = zoo.build_model("lwop_mobilenet", "openpose18", pretrained=official_file)
    assert model.num_refinement_stages == 1
    with pytest.raises(CheckpointError, match=r"the checkpoint has 1 refinement stage\(s\)"):
        zoo.lwop_mobilenet(schema="openpose18", num_refinement_stages=3, weights=official_file)
