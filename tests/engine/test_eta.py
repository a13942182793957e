"""RunClock: the remaining-time estimate of a training run, and its text."""

from __future__ import annotations

import logging

import pytest

from posekit.engine import eta
from posekit.engine.eta import RunClock, format_duration


class FakeTime:
    """A perf_counter that moves only when told."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock_time(monkeypatch):
    fake = FakeTime()
    monkeypatch.setattr(eta.time, "perf_counter", fake)
    return fake


def _epoch(clock, fake, step_seconds):
    clock.start_epoch()
    for seconds in step_seconds:
        fake.now += seconds
        clock.iteration_done()


def test_estimate_is_iterations_left_times_the_mean_step_plus_validations(clock_time):
    clock = RunClock(total_iters=20, total_vals=2, warmup=2)
    assert clock.remaining() is None and clock.text() == "?"
    # the two warm-up steps (slow: workers starting) are left out of the mean
    _epoch(clock, clock_time, [5.0, 5.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    assert clock.seconds_per_iter == pytest.approx(1.0)
    # 10 iterations left; no validation timed yet: each guessed as val_guess_iters steps
    assert clock.remaining() == pytest.approx(10 * 1.0 + 2 * clock.val_guess_iters * 1.0)
    clock.validation_done(4.0)
    assert clock.remaining() == pytest.approx(10 * 1.0 + 1 * 4.0)
    clock_time.now += 50.0  # the validation's wall time must not count as a step
    _epoch(clock, clock_time, [3.0, 3.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0])
    assert clock.seconds_per_iter == pytest.approx(1.5)
    assert clock.remaining() == pytest.approx(4.0)  # only the last validation is left
    clock.validation_done(6.0)
    assert clock.remaining() == 0.0 and clock.text() == "0:00"


def test_a_resumed_run_counts_only_what_is_left(clock_time):
    clock = RunClock(total_iters=100, total_vals=10, done_iters=90, done_vals=9, warmup=0)
    _epoch(clock, clock_time, [2.0] * 5)
    assert clock.remaining() == pytest.approx(5 * 2.0 + 1 * clock.val_guess_iters * 2.0)


def test_bad_totals_are_refused():
    with pytest.raises(ValueError, match="must be >= 0"):
        RunClock(total_iters=-1)


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0:00"), (6.2, "0:07"), (723, "12:03"), (3723, "1:02:03")]
)
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_the_epoch_log_line_says_how_long_the_rest_of_the_run_takes(tmp_path, caplog):
    from posekit.config import load_config
    from posekit.engine.trainer import Trainer
    from tests.tiny_run import TINY_RUN

    config = load_config(None, [*TINY_RUN, "train.epochs=2", f"out={tmp_path / 'run'}"])
    trainer = Trainer(config, progress=False)
    assert trainer.clock.total_iters == 2 * trainer.iters_per_epoch
    assert trainer.clock.total_vals == 2
    with caplog.at_level(logging.INFO, logger="posekit.engine.trainer"):
        trainer.fit()
    epoch_lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch ")]
    assert len(epoch_lines) == 2
    assert "rest of the run ~" in epoch_lines[0]  # the last epoch has no rest
    assert "rest of the run" not in epoch_lines[1]
    assert trainer.clock.remaining() == 0.0


def test_epochs_shorter_than_the_warmup_still_get_an_estimate(clock_time):
    clock = RunClock(total_iters=6, warmup=2)
    _epoch(clock, clock_time, [3.0])
    assert clock.remaining() == pytest.approx(5 * 3.0)
