"""Runtimes: what runs the network for a predictor (the protocol; no torch here).

A runtime takes a preprocessed batch, (B, H, W, 3) float32 NHWC (``inference.preprocess``), and
returns the network's final outputs as float32 NumPy arrays (B, C, h, w), in the order of the
codec's layout. Predictors only see that contract: ``inference.torch_runtime.TorchRuntime`` backs
it with a torch module today, an exported file can back it with the same preprocessing and
decoding.

Model contract: ``model(x)`` returns a list of stages, each a tuple of outputs in layout order
(first stage first); inference uses the last stage.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

__all__ = ["PRECISIONS", "Runtime"]

PRECISIONS = ("float32", "bfloat16", "bfloat16-forced")
"""Forward-pass precisions a runtime may offer (``"bfloat16"``: float32 where bfloat16 is not
native, ``devices.forward_dtype``; ``"bfloat16-forced"``: bfloat16 even there)."""


class Runtime(Protocol):
    """Runs a network on preprocessed batches."""

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, ...]:
        """(B, H, W, 3) float32 NHWC input -> the last stage's outputs, float32 (B, C, h, w)."""
        ...
