"""Trainer smoke tests on tiny synthetic data: outputs, checkpoint record, exact resumption."""

from __future__ import annotations

import json

import pytest
import torch

from posekit.config import load_config
from posekit.engine.trainer import Trainer
from posekit.errors import ConfigError
from posekit.models.record import load_checkpoint
from posekit.schema import KeypointSchema
from tests.tiny_run import TINY_RUN, assert_same_weights, interrupt_at_iteration

TINY = [*TINY_RUN, "train.checkpoint_every=3"]


def _config(out, *extra):
    return load_config(None, [*TINY, f"out={out}", *extra])


def test_run_directory_and_checkpoint_record(tmp_path):
    result = Trainer(_config(tmp_path / "run", "train.epochs=1"), progress=False).fit()
    run = tmp_path / "run"
    assert result.epochs == 1 and result.iterations == 2
    for name in ("config.yaml", "last.pt", "best.pt", "metrics.jsonl"):
        assert (run / name).is_file()
    line = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    assert line["epoch"] == 1 and "val_AP" in line and line["loss"] > 0
    state = load_checkpoint(run / "last.pt")
    assert state["format"] == "posekit-checkpoint" and state["model_name"] == "paf_tiny"
    assert KeypointSchema.from_dict(state["schema"]) == KeypointSchema.named("coco_person")
    assert state["codec"]["stride"] == 8 and state["epoch"] == 1


def test_interrupt_writes_a_checkpoint_and_resume_is_exact(tmp_path, monkeypatch):
    straight = Trainer(_config(tmp_path / "a", "train.epochs=2"), progress=False)
    straight.fit()
    interrupted = Trainer(_config(tmp_path / "b", "train.epochs=2"), progress=False)
    interrupt_at_iteration(interrupted, 3, monkeypatch)  # mid-way through epoch 2
    again = Trainer(_config(tmp_path / "b", "train.epochs=2"), resume="auto", progress=False)
    assert (again.epoch, again.step_in_epoch, again.iteration) == (1, 1, 3)
    again.fit()
    assert_same_weights(straight.model, again.model)


def test_refuses_to_overwrite_a_run(tmp_path):
    Trainer(_config(tmp_path / "run", "train.epochs=1"), progress=False).fit()
    with pytest.raises(ConfigError, match="already holds a run"):
        Trainer(_config(tmp_path / "run", "train.epochs=1"), progress=False)


def test_stride_must_match_the_model(tmp_path):
    with pytest.raises(
        ConfigError, match=r"codec\.stride=16 but model 'paf_tiny' has output stride 8"
    ):
        Trainer(_config(tmp_path / "run", "codec.stride=16"), progress=False)
    with pytest.raises(ConfigError, match=r"codec: codec 'paf': unknown parameter\(s\) \['sigm'\]"):
        Trainer(_config(tmp_path / "run", "codec.sigm=3"), progress=False)


def test_amp_picks_the_precision_the_device_computes_fast(monkeypatch, caplog):
    from posekit.devices import amp_dtype

    assert amp_dtype(torch.device("cuda")) is torch.float16
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    with caplog.at_level("WARNING", logger="posekit.devices"):
        assert amp_dtype(torch.device("cpu")) is None  # emulated bfloat16: stay float32
    assert "training in float32" in caplog.text and "train.amp=false" in caplog.text
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    assert amp_dtype(torch.device("cpu")) is torch.bfloat16


def test_amp_off_trains_in_float32(tmp_path):
    run = Trainer(_config(tmp_path / "run", "train.epochs=1", "train.amp=false"), progress=False)
    assert run.amp_dtype is None and not run.scaler.is_enabled()
    run.fit()
    assert all(p.dtype == torch.float32 for p in run.model.parameters())


def test_asymmetric_schema_validates_without_flip_test(tmp_path):
    # a skeleton that is not left/right symmetric cannot be flip-tested: validation still runs
    schema = tmp_path / "lopsided.yaml"
    schema.write_text(
        "name: lopsided\n"
        "keypoints: [left_a, right_a, b, c]\n"
        "skeleton: [[left_a, b], [b, c], [right_a, c]]\n"
        "sigmas: [0.05, 0.05, 0.05, 0.05]\n"
    )
    assert KeypointSchema.from_yaml(schema).paf_flip is None
    run = Trainer(
        _config(tmp_path / "run", "train.epochs=1", f"data.schema={schema}"), progress=False
    )
    result = run.fit()
    assert 0.0 <= result.best_ap <= 1.0 and run.config.train.val_flip


def test_a_corrupt_validation_image_is_skipped_and_reported(tmp_path, caplog):
    first = Trainer(_config(tmp_path / "make", "train.epochs=1"), progress=False)
    synth = first.run_dir / "synth"  # the tiny run's synthetic files, reused as real data
    val_images = sorted((synth / "images/val").iterdir())
    val_images[0].write_bytes(b"\xff\xd8 a truncated JPEG")
    config = _config(
        tmp_path / "run",
        "train.epochs=1",
        f"data.train_ann={synth / 'annotations/train.json'}",
        f"data.train_images={synth / 'images/train'}",
        f"data.val_ann={synth / 'annotations/val.json'}",
        f"data.val_images={synth / 'images/val'}",
    )
    with caplog.at_level("WARNING"):
        result = Trainer(config, progress=False).fit()
    assert result.epochs == 1 and 0.0 <= result.best_ap <= 1.0
    assert result.history[-1]["val_skipped_images"] == 1
    line = json.loads((tmp_path / "run/metrics.jsonl").read_text().splitlines()[-1])
    assert line["val_skipped_images"] == 1
    assert "validation: 1 image(s) could not be read and were left out of the score" in caplog.text
    assert val_images[0].name in caplog.text  # the warning names the file
