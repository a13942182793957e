"""The optimizer (``build_optimizer``) and the learning-rate schedule: a pure function of
(iteration, epoch) plus the plateau state.

Being a function of the position (not a chain of in-place updates) makes a resumed run use exactly
the learning rates of an uninterrupted one. Kinds: ``constant``; ``step`` (times ``gamma`` at each
milestone epoch); ``cosine`` (from the base rate to ``min_lr`` over all epochs, per iteration);
``plateau`` (times ``gamma`` after ``patience`` validations without a better AP). A linear warmup
over the first ``warmup_iters`` iterations multiplies every kind.
"""

from __future__ import annotations

import bisect
import math
from typing import Any

import torch

from posekit.config import OptimConfig, ScheduleConfig


def build_optimizer(model: torch.nn.Module, config: OptimConfig) -> torch.optim.Optimizer:
    """``sgd`` (momentum, Nesterov), ``adam`` or ``adamw`` over the trainable parameters."""
    params = [p for p in model.parameters() if p.requires_grad]
    if config.name == "sgd":
        return torch.optim.SGD(
            params,
            lr=config.lr,
            momentum=config.momentum,
            nesterov=config.nesterov,
            weight_decay=config.weight_decay,
        )
    if config.name == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)


class LrSchedule:
    """Learning rate at each step of a run.

    Args:
        config: the schedule section of the config.
        base_lr: the optimizer's learning rate.
        epochs: total epochs.
        iters_per_epoch: optimizer steps per epoch (for cosine).
    """

    def __init__(
        self, config: ScheduleConfig, base_lr: float, epochs: int, iters_per_epoch: int
    ) -> None:
        self.config = config
        self.base_lr = base_lr
        self.total_iters = max(epochs * iters_per_epoch, 1)
        self.plateau_factor = 1.0
        self.best_metric = -math.inf
        self.bad_epochs = 0

    def lr(self, iteration: int, epoch: int) -> float:
        """Learning rate of the optimizer step number ``iteration`` (0-based) in ``epoch``."""
        cfg = self.config
        if cfg.kind == "step":
            factor = cfg.gamma ** bisect.bisect_right(cfg.milestones, epoch)
            lr = self.base_lr * factor
        elif cfg.kind == "cosine":
            progress = min(iteration / self.total_iters, 1.0)
            lr = cfg.min_lr + (self.base_lr - cfg.min_lr) * 0.5 * (1 + math.cos(math.pi * progress))
        elif cfg.kind == "plateau":
            lr = max(self.base_lr * self.plateau_factor, cfg.min_lr)
        else:
            lr = self.base_lr
        if cfg.warmup_iters and iteration < cfg.warmup_iters:
            lr *= (iteration + 1) / cfg.warmup_iters
        return lr

    def step_metric(self, metric: float) -> None:
        """Report a validation AP (only the ``plateau`` kind uses it)."""
        if self.config.kind != "plateau" or math.isnan(metric):
            return
        if metric > self.best_metric:
            self.best_metric, self.bad_epochs = metric, 0
            return
        self.bad_epochs += 1
        if self.bad_epochs > self.config.patience:
            self.plateau_factor *= self.config.gamma
            self.bad_epochs = 0

    def state_dict(self) -> dict[str, Any]:
        """The plateau state (the rest is a function of the position)."""
        return {
            "plateau_factor": self.plateau_factor,
            "best_metric": self.best_metric,
            "bad_epochs": self.bad_epochs,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""
        self.plateau_factor = float(state["plateau_factor"])
        self.best_metric = float(state["best_metric"])
        self.bad_epochs = int(state["bad_epochs"])
