"""RunClock: how long the rest of a training run will take, from what it has measured so far.

A run is training iterations and validations. The clock times both as they happen and estimates
what is left as ``remaining iterations x seconds per iteration + remaining validations x seconds
per validation``. Seconds per iteration is the mean over the iterations timed so far after the
first ``warmup`` of each epoch (starting the data workers and the first steps' memory allocation
make those slower than the rest; epochs too short for that use every step); a validation not yet
timed is guessed as ``val_guess_iters`` iterations (a validation pass over a hundred images costs
about as much as ten to twenty steps).

Shown to the user as the epoch bar's ``run ETA`` and in the log line of each epoch.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

__all__ = ["RunClock", "format_duration"]


@dataclass
class RunClock:
    """Remaining-time estimate of a run of ``total_iters`` iterations and ``total_vals``
    validations.

    Args:
        total_iters: iterations of the whole run (``epochs x iterations per epoch``).
        total_vals: validations of the whole run.
        done_iters: iterations already done (a resumed run).
        done_vals: validations already done.
        warmup: iterations at the start of each epoch left out of the per-iteration mean.
        val_guess_iters: a validation's cost in iterations until one is timed.
    """

    total_iters: int
    total_vals: int = 0
    done_iters: int = 0
    done_vals: int = 0
    warmup: int = 2
    val_guess_iters: float = 15.0

    def __post_init__(self) -> None:
        if self.total_iters < 0 or self.total_vals < 0:
            raise ValueError("total_iters and total_vals must be >= 0")
        self._iter_seconds = self._all_seconds = 0.0
        self._iters_timed = self._all_timed = 0
        self._val_seconds = 0.0
        self._vals_timed = 0
        self._last: float | None = None
        self._in_epoch = 0

    def start_epoch(self) -> None:
        """Call before an epoch's first iteration: its first ``warmup`` steps are not timed."""
        self._last = time.perf_counter()
        self._in_epoch = 0

    def iteration_done(self) -> None:
        """Call after each training iteration."""
        now = time.perf_counter()
        if self._last is not None:
            self._all_seconds += now - self._last
            self._all_timed += 1
            if self._in_epoch >= self.warmup:
                self._iter_seconds += now - self._last
                self._iters_timed += 1
        self._last = now
        self._in_epoch += 1
        self.done_iters += 1

    def validation_done(self, seconds: float) -> None:
        """Call after each validation with its wall time."""
        self._val_seconds += seconds
        self._vals_timed += 1
        self.done_vals += 1
        self._last = None  # the validation's time is not an iteration's

    @property
    def seconds_per_iter(self) -> float | None:
        """Mean seconds of an iteration after the warm-up (of any iteration while none is past
        it), or None before one is timed."""
        if self._iters_timed:
            return self._iter_seconds / self._iters_timed
        return self._all_seconds / self._all_timed if self._all_timed else None

    def remaining(self) -> float | None:
        """Estimated seconds to the end of the run, or None before an iteration is timed."""
        per_iter = self.seconds_per_iter
        if per_iter is None:
            return None
        per_val = (
            self._val_seconds / self._vals_timed
            if self._vals_timed
            else self.val_guess_iters * per_iter
        )
        iters_left = max(self.total_iters - self.done_iters, 0)
        vals_left = max(self.total_vals - self.done_vals, 0)
        return iters_left * per_iter + vals_left * per_val

    def text(self) -> str:
        """``"7:41"`` (minutes:seconds, or hours:minutes:seconds), ``"?"`` before any estimate."""
        left = self.remaining()
        return "?" if left is None else format_duration(left)


def format_duration(seconds: float) -> str:
    """``"0:07"``, ``"12:03"``, ``"1:02:03"``: a duration rounded up to the second."""
    total = max(math.ceil(seconds), 0)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
