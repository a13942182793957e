"""The published files' key layouts in ../shared/weights (``*_keys.tsv``: key, shape, dtype per
line, in the file's order), for tests that write files of those layouts."""

from __future__ import annotations

import ast
from pathlib import Path

import torch

WEIGHTS = Path("../shared/weights")  # relative to the repo root


def keys_tsv(name: str) -> list[tuple[str, tuple[int, ...], torch.dtype]]:
    """``(key, shape, dtype)`` of every line of ``../shared/weights/<name>``."""
    lines = (WEIGHTS / name).read_text().splitlines()
    assert lines[0].split("\t") == ["key", "shape", "dtype"]
    rows = []
    for line in lines[1:]:
        key, shape, dtype = line.split("\t")
        rows.append((key, tuple(ast.literal_eval(shape)), getattr(torch, dtype)))
    return rows
