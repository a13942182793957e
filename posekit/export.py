"""``posekit export``: a model as one self-describing ONNX or TorchScript file, checked at export.

ONNX goes through the exporter PyTorch recommends (``torch.onnx.export(..., dynamo=True)``, opset
18 by default; the TorchScript-based one with ``exporter="legacy"``). The input is NCHW float32
``input`` with a dynamic batch; bottom-up models also take any height and width that are
multiples of their stride (``dynamic``, their default) or one fixed size; top-down models take
their crop size. The graph outputs are the last stage's (what the predictor reads), or every
stage's with ``stages="all"``. BatchNorm is folded into the convolutions before export.

The file carries its metadata (``models.exported``: schema, codec, input spec, outputs,
exporter, opset, source sha256) and is checked before it is written: ``onnx.checker``, a load in
ONNX Runtime and the parity gate (``export_parity``; float32: every output within 1e-4 of torch,
poses within 0.5 input px); an export that fails leaves no file. ``int8=True`` adds static
quantisation (``posekit.quantize``) after the float32 file passed the gate.

TorchScript (``format="torchscript"``, traced) is kept for libtorch users; PyTorch deprecates
TorchScript in favour of ``torch.export``, so prefer ONNX for new deployments.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from posekit import __version__
from posekit.errors import ConfigError, ExportError
from posekit.export_parity import OUTPUT_TOLERANCE, ParityReport, check_parity, parity_images
from posekit.inference.runtime import FixedSizeRuntime
from posekit.models.exported import (
    TORCHSCRIPT_EXTRA,
    ExportedModel,
    ExportInfo,
    output_names,
)
from posekit.models.graph_export import (
    DEFAULT_OPSET,
    EXPORTERS,
    FlatOutputs,
    example_input,
    export_copy,
    exporter_name,
    input_shape,
    write_onnx,
    write_torchscript,
)
from posekit.models.loading import LoadedModel
from posekit.models.weights import file_sha256

logger = logging.getLogger(__name__)

__all__ = ["EXPORTERS", "FORMATS", "ExportError", "ExportResult", "export_model"]

FORMATS = ("onnx", "torchscript")


@dataclass(frozen=True)
class ExportResult:
    """What ``export_model`` wrote.

    Attributes:
        path: the exported file.
        info: its metadata (as ``load_model`` reads it back).
        parity: the float32 gate's report; ``int8``: the quantized file's (poses only).
        seconds: export time, checks included.
    """

    path: Path
    info: ExportInfo
    parity: ParityReport
    int8: ParityReport | None
    seconds: float


def export_model(
    loaded: LoadedModel,
    out: str | Path,
    *,
    format: str = "onnx",  # noqa: A002 - the CLI's --format
    height: int | None = None,
    width: int | None = None,
    dynamic: bool | None = None,
    stages: str = "last",
    exporter: str = "dynamo",
    opset: int = DEFAULT_OPSET,
    photos: Sequence[np.ndarray] = (),
    int8: bool = False,
    calibration: Sequence[np.ndarray] = (),
    float_heads: bool = False,
) -> ExportResult:
    """Export ``loaded`` to ``out``, check it and write its metadata.

    Args:
        loaded: a model from ``models.loading.load_model``.
        out: the file to write (``.onnx``; TorchScript: any name, ``.torchscript`` is usual).
        format: ``"onnx"`` or ``"torchscript"``.
        height, width: a fixed input size (bottom-up; multiples of the stride); top-down models
            always take their crop size.
        dynamic: any multiple-of-stride height and width (bottom-up default); the batch is
            always dynamic.
        stages: ``"last"`` (the outputs the predictor uses) or ``"all"``.
        exporter, opset: ONNX exporter (``"dynamo"``, ``"legacy"``) and opset (>= 18 for dynamo).
        photos: real BGR images for the parity gate (synthetic images of the schema are added).
        int8: also quantize (static QDQ, per-channel) with ``calibration`` images; ``out`` then
            holds the int8 model.
        float_heads: with ``int8``: keep the heads' final convolutions in float32.

    Raises:
        ConfigError: a bad option (unknown format, size not a multiple of the stride, ...).
        ExportError: the exported file failed a check (nothing is written).
    """
    start = time.perf_counter()
    out = Path(out)
    shape = input_shape(loaded, height, width, dynamic)
    _check_options(format, stages, exporter, opset, int8, calibration, out)
    model = export_copy(loaded.model)
    example = example_input(loaded, shape)
    with torch.no_grad():
        num_stages = len(model(example))
    outputs = output_names(loaded.codec.layout.names, num_stages, stages == "all")
    info = ExportInfo(
        record=loaded.record,
        input=shape,
        outputs=tuple(outputs),
        exporter="torch.jit.trace" if format == "torchscript" else exporter_name(exporter),
        opset=0 if format == "torchscript" else opset,
        source=loaded.source,
        source_sha256=file_sha256(Path(loaded.source)) if Path(loaded.source).is_file() else "",
        torch_version=torch.__version__,
    )
    flat = FlatOutputs(model, stages == "all").eval()
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=out.suffix)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        if format == "onnx":
            write_onnx(flat, example, shape, outputs, exporter, opset, tmp)
            _check_onnx(tmp)
        else:
            write_torchscript(flat, example, tmp)
        parity = _gate(loaded, tmp, info, photos, strict=True)
        info = replace(info, parity={"float32": parity.to_dict()})
        int8_report = None
        if int8:
            from posekit.quantize import quantize_static

            quantize_static(tmp, tmp, loaded, shape, calibration, float_heads=float_heads)
            int8_report = _gate(loaded, tmp, replace(info, precision="int8"), photos,
                                strict=False)  # fmt: skip
            info = replace(info, precision="int8",
                           parity={**info.parity, "int8": int8_report.to_dict()})  # fmt: skip
        _write_metadata(tmp, info)
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o666 & ~umask)  # mkstemp's file is private; the export is an ordinary file
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    seconds = time.perf_counter() - start
    logger.info("exported %s -> %s (%s, %.1f s)", loaded.source, out, info.exporter, seconds)
    return ExportResult(out, info, parity, int8_report, seconds)


# ---------------------------------------------------------------------- options
def _check_options(
    format: str,  # noqa: A002
    stages: str,
    exporter: str,
    opset: int,
    int8: bool,
    calibration: Sequence[np.ndarray],
    out: Path,
) -> None:
    if format not in FORMATS:
        raise ConfigError(f"unknown export format {format!r}; known: {FORMATS}")
    if stages not in ("last", "all"):
        raise ConfigError(f"stages must be 'last' or 'all', got {stages!r}")
    if exporter not in EXPORTERS:
        raise ConfigError(f"unknown ONNX exporter {exporter!r}; known: {EXPORTERS}")
    if exporter == "dynamo" and opset < DEFAULT_OPSET:
        raise ConfigError(f"the dynamo exporter writes opset >= {DEFAULT_OPSET}, got {opset} "
                          f"(use --exporter legacy for older opsets)")  # fmt: skip
    if format == "onnx" and out.suffix.lower() != ".onnx":
        raise ConfigError(f"an ONNX file is named *.onnx (posekit recognises it so), got {out}")
    if int8 and format != "onnx":
        raise ConfigError("int8 quantisation is for ONNX files (--format onnx)")
    if int8 and not calibration:
        raise ConfigError("int8 needs calibration images (--calibration DIR)")
    if out.is_dir():
        raise ConfigError(f"--out {out} is a folder; give a file name")


# ---------------------------------------------------------------------- writing
def _check_onnx(path: Path) -> None:
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:
        raise ExportError(f"onnx.checker refused the exported graph: {exc}") from exc


def _write_metadata(path: Path, info: ExportInfo) -> None:
    """Write ``info`` into the file: ONNX ``metadata_props`` / TorchScript extra file."""
    import json
    import warnings

    props = info.to_metadata()
    if info.opset == 0:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(str(path))
            extra = {TORCHSCRIPT_EXTRA: json.dumps(props)}
            torch.jit.save(module, str(path), _extra_files=extra)
        return
    import onnx

    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    for key, value in props.items():
        proto.metadata_props.add(key=key, value=value)
    proto.producer_name, proto.producer_version = "posekit", __version__
    onnx.save(proto, str(path))


# ---------------------------------------------------------------------- checks
def _gate(
    loaded: LoadedModel,
    path: Path,
    info: ExportInfo,
    photos: Sequence[np.ndarray],
    *,
    strict: bool,
) -> ParityReport:
    """Parity of the file at ``path`` (metadata ``info``) against the torch model; with
    ``strict`` (float32) an ExportError when it is off, else (int8) only measured and logged.
    The metadata is written once, after the gate (the runtime reads only the graph)."""
    exported = ExportedModel(path, info)
    images = parity_images(loaded.schema, photos)
    options: dict[str, Any] = {"max_batch": 2} if loaded.family == "topdown" else {}
    fixed = info.input
    fixed_bottomup = loaded.family == "bottomup" and not fixed.dynamic
    if fixed_bottomup:  # every image fits the fixed size
        aspect = max(im.shape[1] / im.shape[0] for im in images)
        options["input_height"] = min(int(fixed.height), int(fixed.width / aspect))
    reference = loaded.predictor(**options)
    if fixed_bottomup:  # padded to the file's size as well
        size = (int(fixed.width or 0), int(fixed.height))
        reference.runtime = FixedSizeRuntime(reference.runtime, size, loaded.input_spec.pad_value,
                                             loaded.codec.stride)  # fmt: skip
    try:
        candidate = exported.predictor(**options)
    except ConfigError as exc:
        raise ExportError(f"the exported file does not load: {exc}") from exc
    report = check_parity(reference, candidate, images, info.input, loaded.input_spec)
    what = "float32" if strict else "int8"
    logger.info(
        "parity (%s): %d inputs at %s, max abs diff %s, %d poses on %d images, max %.4f input px",
        what, report.inputs, report.sizes,
        {k: f"{v:.2g}" for k, v in report.max_abs.items()},
        report.poses, report.images, report.max_pose_px,
    )  # fmt: skip
    failures = report.failures(OUTPUT_TOLERANCE)
    if failures and strict:
        raise ExportError(
            f"the exported model of {loaded.source} does not match the torch model: "
            + "; ".join(failures)
            + " (try --exporter legacy, or report it with the model name)"
        )
    return report
