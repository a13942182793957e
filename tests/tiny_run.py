"""Config overrides of a tiny synthetic training run (seconds on CPU), shared by the engine tests."""

from __future__ import annotations

import pytest
import torch

TINY_RUN = (
    "data.synth.num_images=8",
    "data.synth_val_images=2",
    "data.synth.image_size=[64,64]",
    "data.augment.input_size=[64,64]",
    "data.workers=0",
    "train.batch_size=4",
    "schedule.warmup_iters=2",
)


def interrupt_at_iteration(trainer, iteration: int, monkeypatch) -> None:
    """Run ``trainer.fit()`` until ``iteration`` steps are done, then press Ctrl-C there (the
    trainer writes its interrupt checkpoint and re-raises)."""
    advance = trainer._advance

    def ctrl_c_there():
        advance()
        if trainer.iteration == iteration:
            raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "_advance", ctrl_c_there)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    """Every parameter and buffer of ``a`` equals ``b``'s bit for bit (same keys, same order)."""
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), name
