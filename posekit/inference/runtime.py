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

from posekit.errors import ConfigError

__all__ = ["PRECISIONS", "FixedSizeRuntime", "Runtime"]

PRECISIONS = ("float32", "bfloat16", "bfloat16-forced")
"""Forward-pass precisions a runtime may offer (``"bfloat16"``: float32 where bfloat16 is not
native, ``devices.forward_dtype``; ``"bfloat16-forced"``: bfloat16 even there)."""


class Runtime(Protocol):
    """Runs a network on preprocessed batches."""

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, ...]:
        """(B, H, W, 3) float32 NHWC input -> the last stage's outputs, float32 (B, C, h, w)."""
        ...


class FixedSizeRuntime:
    """A runtime of a fixed-size network (an export with one input size) fed smaller inputs:
    each batch is padded right and bottom to (width, height) with ``pad_value`` (what the
    bottom-up predictor pads with anyway), and every map output (B, C, h, w) is cut back to the
    input's extent at ``stride``. A larger input is an error saying how to export instead.

    Args:
        inner: the network's runtime.
        size: (W, H) the network takes.
        pad_value: padding, normalized units (``InputSpec.pad_value``).
        stride: input pixels per output cell of the map outputs.
    """

    def __init__(self, inner: Runtime, size: tuple[int, int], pad_value: float,
                 stride: int) -> None:  # fmt: skip
        self.inner, self.size, self.pad_value, self.stride = inner, size, pad_value, stride

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, ...]:
        """(B, h, w, 3) float32 with h, w within the size -> the outputs at (h, w)'s extent."""
        b, h, w, _ = batch.shape
        fw, fh = self.size
        if (h, w) == (fh, fw):
            return tuple(self.inner.run(batch))
        if h > fh or w > fw:
            raise ConfigError(
                f"this exported model takes {fw}x{fh} inputs (W x H); the input is {w}x{h}: use "
                f"a smaller input height, or export with --dynamic (or a larger --width/--height)"
            )
        padded = np.full((b, fh, fw, 3), self.pad_value, np.float32)
        padded[:, :h, :w] = batch
        oh, ow = -(-h // self.stride), -(-w // self.stride)
        return tuple(o[:, :, :oh, :ow] if o.ndim == 4 else o for o in self.inner.run(padded))
