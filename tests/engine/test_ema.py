"""The weight moving average: its arithmetic, and a training run that validates, ships and
resumes with it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from posekit.config import load_config
from posekit.engine.ema import ModelEma
from posekit.engine.trainer import Trainer
from posekit.errors import ConfigError
from posekit.models.record import load_checkpoint
from tests.tiny_run import TINY_RUN, assert_same_weights, interrupt_at_iteration


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3))


def test_average_follows_the_warm_up_formula():
    net = _net()
    ema = ModelEma(net, 0.9)
    start = net[0].weight.detach().clone()
    assert ema.current_decay() == pytest.approx(0.1)  # (1 + 0) / (10 + 0)
    with torch.no_grad():
        net[0].weight.add_(1.0)
    ema.update(net)
    # shadow = start + (1 - 0.1) * (start + 1 - start)
    assert torch.allclose(ema.module[0].weight, start + 0.9)
    for _ in range(200):
        ema.update(net)
    assert ema.current_decay() == 0.9  # the warm-up is over
    assert torch.allclose(ema.module[0].weight, start + 1.0, atol=1e-6)
    assert not any(p.requires_grad for p in ema.module.parameters())
    assert net[0].weight.requires_grad  # the trained model is untouched


def test_buffers_are_averaged_and_counters_copied():
    net = _net().train()
    ema = ModelEma(net, 0.5)
    net(torch.randn(4, 2, 6, 6) * 3 + 2)  # moves BatchNorm's running statistics
    ema.updates = 100  # past the warm-up: decay 0.5
    ema.update(net)
    bn, avg = net[1], ema.module[1]
    assert torch.allclose(avg.running_mean, 0.5 * bn.running_mean)  # from zeros
    assert torch.allclose(avg.running_var, 0.5 * (1 + bn.running_var))  # from ones
    assert int(avg.num_batches_tracked) == int(bn.num_batches_tracked) == 1


def test_bad_decay_and_mismatched_model_are_refused():
    with pytest.raises(ValueError, match="decay"):
        ModelEma(_net(), 1.0)
    ema = ModelEma(_net(), 0.9)
    with pytest.raises(ValueError, match="another model"):
        ema.update(nn.Linear(2, 2))
    with pytest.raises(ConfigError, match="ema"):
        load_config(None, ["train.ema=1.5"])


def _config(out, *extra):
    return load_config(
        None, [*TINY_RUN, "train.checkpoint_every=3", "train.ema=0.9", f"out={out}", *extra]
    )


def test_run_validates_and_ships_the_average(tmp_path):
    trainer = Trainer(_config(tmp_path / "run", "train.epochs=1"), progress=False)
    seen = []
    validator = trainer.validator

    def spy(task, model, **kwargs):
        seen.append(model)
        return validator(task, model, **kwargs)

    trainer.validator = spy
    trainer.fit()
    assert seen == [trainer.ema.module]
    state = load_checkpoint(tmp_path / "run/last.pt")
    assert state["ema_updates"] == trainer.iteration == 2
    averaged, trained = state["model"], state["train_model"]
    assert any(not torch.equal(averaged[k], trained[k]) for k in averaged)
    for name, value in trainer.ema.state_dict().items():
        assert torch.equal(averaged[name], value), name
    best = load_checkpoint(tmp_path / "run/best.pt")
    assert best["model"].keys() == averaged.keys()


def test_resume_with_an_average_is_exact(tmp_path, monkeypatch):
    straight = Trainer(_config(tmp_path / "a", "train.epochs=2"), progress=False)
    straight.fit()
    interrupted = Trainer(_config(tmp_path / "b", "train.epochs=2"), progress=False)
    interrupt_at_iteration(interrupted, 3, monkeypatch)  # mid-way through epoch 2
    again = Trainer(_config(tmp_path / "b", "train.epochs=2"), resume="auto", progress=False)
    assert again.ema.updates == 3
    again.fit()
    assert_same_weights(straight.model, again.model)
    assert_same_weights(straight.ema.module, again.ema.module)


def test_a_run_without_average_resumed_with_one_starts_it_there(tmp_path):
    Trainer(_config(tmp_path / "r", "train.epochs=1", "train.ema=null"), progress=False).fit()
    again = Trainer(_config(tmp_path / "r", "train.epochs=2"), resume="auto", progress=False)
    assert again.ema.updates == 0
    for name, value in again.model.state_dict().items():
        assert torch.equal(again.ema.state_dict()[name], value), name
