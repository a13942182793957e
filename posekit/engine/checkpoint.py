"""Checkpoints: atomic writes, ``weights_only`` reads, RNG state capture for exact resumption.

A posekit checkpoint is a plain dict (never a pickled module), so ``torch.load(weights_only=True)``
reads it and it describes itself:

- ``format``: ``"posekit-checkpoint"``, ``version``: the posekit version that wrote it;
- ``model_name``, ``schema`` (``KeypointSchema.to_dict()``), ``codec`` (codec parameters), ``config``
  (the resolved config as plain data);
- ``model`` (state_dict) and, for resuming, ``optimizer``, ``scheduler``, ``scaler``, ``epoch``,
  ``iteration``, ``rng`` (Python, NumPy and torch generator states), ``metrics``.
"""

from __future__ import annotations

import os
import pickle
import random
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from posekit.errors import CheckpointError

FORMAT = "posekit-checkpoint"


def save_checkpoint(state: Mapping[str, Any], path: str | Path) -> Path:
    """Write ``state`` atomically: temp file in the same folder, fsync, then ``os.replace``.

    A crash at any moment leaves either the previous file or the new one, never a partial file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(dict(state), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:  # make the rename itself durable
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path


def load_checkpoint(path: str | Path, *, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint with ``torch.load(weights_only=True)``; CheckpointError names the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes)")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # a damaged file fails in many ways (EOFError, struct.error, ...)
        raise _read_error(path, exc) from exc
    if not isinstance(state, Mapping):
        raise CheckpointError(f"checkpoint {path}: expected a dict, got {type(state).__name__}")
    return dict(state)


def _read_error(path: Path, exc: BaseException) -> CheckpointError:
    """A CheckpointError naming the file for an exception of ``torch.load``."""
    refused = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
    if refused:
        return CheckpointError(
            f"checkpoint {path} holds a pickled object ({refused.group(1)}) that "
            f"torch.load(weights_only=True) refuses: a pickled module or class (posekit reads "
            f"only tensors and plain data), or a damaged file"
        )
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, pickle.UnpicklingError):
        first_line = "invalid pickle data"
    return CheckpointError(
        f"cannot read checkpoint {path} (truncated, corrupt or not a torch file): {first_line}"
    )


def rng_state() -> dict[str, Any]:
    """The Python, NumPy (legacy global) and torch generator states, as weights-only-safe data."""
    np_state = np.random.get_state()  # noqa: NPY002 - the global state third-party code uses
    return {
        "python": random.getstate(),
        "numpy": {
            "name": np_state[0],
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what ``rng_state`` captured."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state(  # noqa: NPY002
        (
            n["name"],
            n["keys"].numpy().astype(np.uint32),
            n["pos"],
            n["has_gauss"],
            n["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
