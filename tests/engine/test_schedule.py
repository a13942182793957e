"""LrSchedule: warmup, step, cosine, plateau; a pure function of the position."""

from __future__ import annotations

import pytest

from posekit.config import ScheduleConfig
from posekit.engine.schedule import LrSchedule


def test_warmup_then_cosine_to_min_lr():
    s = LrSchedule(ScheduleConfig(kind="cosine", warmup_iters=10, min_lr=0.0), 1.0, 2, 50)
    assert s.lr(0, 0) == pytest.approx(0.1 * 1.0, rel=0.01)
    assert s.lr(9, 0) == pytest.approx(s.lr(9, 0))  # deterministic
    assert s.lr(50, 1) == pytest.approx(0.5, abs=1e-9)  # half way
    assert s.lr(100, 1) == pytest.approx(0.0, abs=1e-12)
    assert all(s.lr(i, 0) >= s.lr(i + 1, 0) for i in range(10, 99))


def test_step_milestones():
    s = LrSchedule(
        ScheduleConfig(kind="step", warmup_iters=0, milestones=(2, 4), gamma=0.1), 1.0, 6, 10
    )
    assert [round(s.lr(0, e), 6) for e in range(6)] == [1.0, 1.0, 0.1, 0.1, 0.01, 0.01]


def test_plateau_reduces_after_patience_and_round_trips():
    s = LrSchedule(
        ScheduleConfig(kind="plateau", warmup_iters=0, patience=1, gamma=0.5, min_lr=0.0),
        1.0,
        10,
        10,
    )
    for ap in (0.1, 0.2, 0.2, 0.2):
        s.step_metric(ap)
    assert s.lr(0, 0) == 0.5
    t = LrSchedule(s.config, 1.0, 10, 10)
    t.load_state_dict(s.state_dict())
    assert t.lr(0, 0) == 0.5 and t.bad_epochs == s.bad_epochs
