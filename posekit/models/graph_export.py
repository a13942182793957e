"""A posekit model as an ONNX graph or a traced TorchScript module (torch.onnx / torch.jit): the
network part of ``posekit.export`` (metadata, checks and the parity gate live there), also what
``LoadedModel.predictor(backend="onnxruntime")`` runs (``write_dynamic_onnx``).

The graph takes ``input`` (B, 3, H, W) float32 NCHW, batch always dynamic, height and width
dynamic multiples of the stride for a dynamic bottom-up input; it returns the last stage's
outputs (codec layout order) or every stage's. BatchNorm is folded into the convolutions first.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from posekit.errors import ConfigError, ExportError
from posekit.inference.torch_runtime import fold_conv_batchnorm
from posekit.models.exported import ExportedOutput, ExportInfo, InputShape, output_names

if TYPE_CHECKING:
    from posekit.models.loading import LoadedModel

__all__ = [
    "DEFAULT_OPSET",
    "EXPORTERS",
    "FlatOutputs",
    "example_input",
    "export_copy",
    "exporter_name",
    "input_shape",
    "write_dynamic_onnx",
    "write_onnx",
    "write_torchscript",
]

EXPORTERS = ("dynamo", "legacy")
DEFAULT_OPSET = 18


class FlatOutputs(nn.Module):
    """A posekit model (a list of per-stage output tuples) as a flat tuple of outputs: the last
    stage's, or every stage's in order."""

    def __init__(self, model: nn.Module, all_stages: bool) -> None:
        super().__init__()
        self.model, self.all_stages = model, all_stages

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        stages = self.model(x)
        if self.all_stages:
            return tuple(o for stage in stages for o in stage)
        return tuple(stages[-1])


def write_dynamic_onnx(loaded: LoadedModel, path: Path) -> ExportInfo:
    """Write the model's ONNX graph (dynamic input, last stage) to ``path`` and return its
    metadata, without the parity gate: what ``--backend onnxruntime`` / ``openvino`` runs for a
    torch checkpoint (``posekit export`` writes and checks a file once instead)."""
    shape = input_shape(loaded, None, None, None)
    outputs = output_names(loaded.codec.layout.names, 1, False)
    flat = FlatOutputs(export_copy(loaded.model), False).eval()
    write_onnx(flat, example_input(loaded, shape), shape, outputs, "dynamo", DEFAULT_OPSET, path)
    return ExportInfo(loaded.record, shape, tuple(outputs), exporter_name("dynamo"),
                      DEFAULT_OPSET, source=loaded.source)  # fmt: skip


def input_shape(
    loaded: LoadedModel, height: int | None, width: int | None, dynamic: bool | None
) -> InputShape:
    """The file's input: a top-down model's crop size; for bottom-up, dynamic unless a size is
    given (both sides, multiples of the stride)."""
    spec = loaded.input_spec
    if loaded.family == "topdown":
        crop = (spec.width, spec.height)
        if dynamic or (height, width) not in ((None, None), (spec.height, spec.width)):
            raise ConfigError(
                f"{loaded.source} is a top-down model: its input is its crop size "
                f"{spec.width}x{spec.height} (only the batch is dynamic); drop --dynamic / "
                f"--height / --width"
            )
        return InputShape(height=crop[1], width=crop[0], size_divisor=spec.size_divisor)
    divisor = spec.size_divisor
    if height is None and width is None:
        return InputShape(size_divisor=divisor)
    if dynamic:
        raise ConfigError("give either --dynamic or a fixed --height and --width, not both")
    if height is None or width is None:
        raise ConfigError("a fixed input size needs both --height and --width")
    if height < divisor or width < divisor or height % divisor or width % divisor:
        raise ConfigError(
            f"--height {height} --width {width}: both must be positive multiples of the "
            f"model's stride {divisor}"
        )
    return InputShape(height=int(height), width=int(width), size_divisor=divisor)


def export_copy(model: nn.Module) -> nn.Module:
    """An eval-mode CPU float32 copy with BatchNorm folded (the exported graph)."""
    model = copy.deepcopy(model).float().cpu().eval()
    fold_conv_batchnorm(model)
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def example_input(loaded: LoadedModel, shape: InputShape) -> torch.Tensor:
    spec = loaded.input_spec
    h = shape.height or spec.height
    w = shape.width or -(-int(h * 4 / 3) // shape.size_divisor) * shape.size_divisor
    return torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(0))


def exporter_name(exporter: str) -> str:
    return f"torch.onnx.export(dynamo={exporter == 'dynamo'})"


def write_onnx(
    flat: nn.Module,
    example: torch.Tensor,
    shape: InputShape,
    outputs: Sequence[ExportedOutput],
    exporter: str,
    opset: int,
    path: Path,
) -> None:
    names = [o.name for o in outputs]
    kwargs: dict[str, Any] = {"input_names": [shape.name], "output_names": names,
                              "opset_version": opset}  # fmt: skip
    if exporter == "dynamo":
        from torch.export import Dim

        dims: dict[int, Any] = {0: Dim("batch", min=1, max=1024)}
        if shape.dynamic:
            d = shape.size_divisor
            dims[2] = d * Dim("height_cells", min=1, max=8192 // d)
            dims[3] = d * Dim("width_cells", min=1, max=8192 // d)
        kwargs.update(dynamo=True, dynamic_shapes={"x": dims}, verbose=False,
                      external_data=False)  # fmt: skip
    else:
        axes = {0: "batch"} | ({2: "height", 3: "width"} if shape.dynamic else {})
        kwargs.update(dynamo=False, dynamic_axes={shape.name: axes, **dict.fromkeys(names, axes)})
    try:
        _quiet_export(flat, example, path, kwargs)
    except Exception as exc:  # the exporters raise many types; the message is what helps
        raise ExportError(f"torch.onnx.export ({exporter}) failed: {exc}") from exc


def _quiet_export(flat: nn.Module, example: torch.Tensor, path: Path, kwargs: dict) -> None:
    """``torch.onnx.export`` with its progress lines and known-harmless warnings muted."""

    noisy = [logging.getLogger(n) for n in ("torch.onnx", "onnxscript", "onnx_ir")]
    levels = [log.level for log in noisy]
    try:
        for log in noisy:  # "torchvision is not installed", every optimisation pass at INFO
            log.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore", (FutureWarning, DeprecationWarning, UserWarning))
            torch.onnx.export(flat, (example,), str(path), **kwargs)
    finally:
        for log, level in zip(noisy, levels, strict=True):
            log.setLevel(level)


def write_torchscript(flat: nn.Module, example: torch.Tensor, path: Path) -> None:
    """Trace ``flat`` on ``example`` and save it (TorchScript, for libtorch users)."""

    with warnings.catch_warnings():  # TorchScript's deprecation is stated in the docs
        warnings.simplefilter("ignore", (torch.jit.TracerWarning, DeprecationWarning))
        traced = torch.jit.trace(flat, example, check_trace=False)
        traced.save(str(path))
