"""Checkpoints: atomic write, weights-only read, clear errors, exact RNG restore."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from posekit.engine.checkpoint import rng_state, save_checkpoint, set_rng_state
from posekit.errors import CheckpointError
from posekit.models.record import load_checkpoint
from posekit.schema import KeypointSchema


def _state() -> dict:
    model = torch.nn.Conv2d(3, 4, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.ones(1, 3, 5, 5)).sum().backward()
    opt.step()
    return {
        "format": "posekit-checkpoint",
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "schema": KeypointSchema.named("coco_person_neck").to_dict(),
        "epoch": 3,
        "rng": rng_state(),
    }


def test_round_trip_with_weights_only(tmp_path):
    state = _state()
    path = save_checkpoint(state, tmp_path / "run" / "last.pt")
    loaded = load_checkpoint(path)
    assert loaded["epoch"] == 3
    torch.testing.assert_close(loaded["model"]["weight"], state["model"]["weight"])
    assert KeypointSchema.from_dict(loaded["schema"]) == KeypointSchema.named("coco_person_neck")
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]  # no temp file left


def test_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = save_checkpoint({"epoch": 1}, tmp_path / "last.pt")

    def broken_save(obj, f):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint({"epoch": 2}, path)
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_truncated_empty_and_missing_files(tmp_path):
    path = save_checkpoint(_state(), tmp_path / "c.pt")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cannot read checkpoint .*c\.pt"):
        load_checkpoint(path)
    path.write_bytes(b"")
    with pytest.raises(CheckpointError, match="is empty"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "none.pt")


def test_pickled_module_is_refused(tmp_path):
    path = tmp_path / "module.pt"
    torch.save(torch.nn.Linear(2, 2), path)
    with pytest.raises(CheckpointError, match="holds a pickled object"):
        load_checkpoint(path)


def test_rng_state_restores_every_generator(tmp_path):
    random.seed(1)
    np.random.seed(2)  # noqa: NPY002 - the legacy global generator is what is saved
    torch.manual_seed(3)
    save_checkpoint({"rng": rng_state()}, tmp_path / "r.pt")
    expected = (random.random(), np.random.rand(3), torch.rand(3))  # noqa: NPY002
    set_rng_state(load_checkpoint(tmp_path / "r.pt")["rng"])
    got = (random.random(), np.random.rand(3), torch.rand(3))  # noqa: NPY002
    assert got[0] == expected[0]
    np.testing.assert_array_equal(got[1], expected[1])
    torch.testing.assert_close(got[2], expected[2])
