"""Tasks: one training recipe per method family (items, targets, loss parts, validation predictor).

``TASKS`` is the one table of tasks by family (a new family adds its task file and one entry
here); ``build_task`` makes the task of a codec's family from a run's config.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from posekit.codecs.base import Codec
from posekit.errors import ConfigError
from posekit.tasks.base import Batch, Task, TrainItem, collate
from posekit.tasks.bottomup import BottomUpTask
from posekit.tasks.topdown import TopDownTask

__all__ = [
    "TASKS",
    "Batch",
    "BottomUpTask",
    "Task",
    "TopDownTask",
    "TrainItem",
    "build_task",
    "collate",
]

TASKS: Mapping[str, Any] = MappingProxyType(
    {BottomUpTask.family: BottomUpTask, TopDownTask.family: TopDownTask}
)
"""Task classes by family; each has ``from_config(codec, config)``."""


def build_task(codec: Codec, config: Any) -> Task:
    """The task of ``codec.family`` for a run's ``config`` (``posekit.config.Config``)."""
    if codec.family not in TASKS:
        raise ConfigError(f"no training task for family {codec.family!r}; known: {sorted(TASKS)}")
    task: Task = TASKS[codec.family].from_config(codec, config)
    return task
