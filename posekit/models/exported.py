"""Exported models (ONNX, TorchScript): the metadata they carry and loading them for inference
(no torch here).

``posekit export`` (``posekit.export``) writes into the file everything a predictor needs beside
the network: the model record (family, schema, codec, input spec), the input's shape (fixed or
dynamic), the outputs and their roles, how and from what it was exported. ``load_exported`` reads
it back with neither torch nor the ``onnx`` package (ONNX: the ``metadata_props`` of the file's
protobuf, read by ``_onnx_metadata``; TorchScript: the ``posekit.json`` extra file of its zip) and
gives an ``ExportedModel`` whose ``predictor(backend=...)`` runs the network in ONNX Runtime,
OpenVINO or (TorchScript) libtorch, with posekit's own preprocessing and decoding.

Metadata keys (ONNX ``metadata_props``, every value a string; JSON where marked):
``posekit_format`` (``EXPORT_FORMAT``), ``posekit_version``, ``family``, ``model_name``,
``model_options`` (JSON), ``schema`` (JSON, ``KeypointSchema.to_dict``), ``codec`` (JSON,
``Codec.to_dict``), ``input_spec`` (JSON, ``InputSpec.to_dict``), ``input`` (JSON ``InputShape``),
``outputs`` (JSON list of ``ExportedOutput``), ``exporter``, ``opset``, ``torch_version``,
``precision``, ``source``, ``source_sha256``, ``parity`` (JSON: the gate's measurements).
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from posekit import __version__
from posekit.errors import CheckpointError, ConfigError
from posekit.inference.runtime import FixedSizeRuntime
from posekit.models.record import ModelRecord, RecordView

__all__ = [
    "BACKENDS",
    "EXPORT_FORMAT",
    "ExportInfo",
    "ExportedModel",
    "ExportedOutput",
    "InputShape",
    "is_exported_file",
    "load_exported",
]

EXPORT_FORMAT = "posekit-export/1"
"""The ``posekit_format`` entry of every file ``posekit export`` writes."""

BACKENDS = ("torch", "onnxruntime", "openvino")
"""Where a predictor's network can run (the preprocessing and decoding are posekit's in all)."""

TORCHSCRIPT_EXTRA = "posekit.json"
"""Name of the TorchScript extra file holding the metadata (as JSON of the ONNX key/values)."""

_JSON_KEYS = ("model_options", "schema", "codec", "input_spec", "input", "outputs", "parity")


@dataclass(frozen=True)
class InputShape:
    """The network input of an exported file: (batch, 3, height, width) float32, NCHW.

    Attributes:
        name: the graph input's name.
        height, width: fixed sizes, or None where the size is dynamic (any multiple of
            ``size_divisor``).
        size_divisor: dynamic sizes must be multiples of it (the output stride).
        layout: ``"NCHW"`` (channels in the input spec's color order, normalized).
    """

    name: str = "input"
    height: int | None = None
    width: int | None = None
    size_divisor: int = 1
    layout: str = "NCHW"

    @property
    def dynamic(self) -> bool:
        """True when height and width are dynamic."""
        return self.height is None and self.width is None


@dataclass(frozen=True)
class ExportedOutput:
    """One graph output.

    Attributes:
        name: graph output name (``"heatmaps"``; ``"stage1_heatmaps"`` when every stage is kept).
        role: the codec layout output it is (``"heatmaps"``, ``"pafs"``, ``"simcc_x"``, ...).
        stage: 1-based network stage it comes from.
        used: the predictor reads it (the last stage's outputs).
    """

    name: str
    role: str
    stage: int
    used: bool


@dataclass(frozen=True)
class ExportInfo:
    """Everything an exported file says about itself.

    Attributes:
        record: family, model name and options, schema, codec, input spec.
        input: the input's name and shape.
        outputs: the graph outputs, in graph order.
        exporter: what wrote the graph (``"torch.onnx.export(dynamo=True)"``, ...).
        opset: ONNX opset (0 for TorchScript).
        precision: ``"float32"`` or ``"int8"`` (static QDQ quantisation).
        source, source_sha256: the checkpoint it was exported from.
        posekit_version, torch_version: versions that wrote it.
        parity: the export's parity gate measurements (max abs differences, pose distances).
    """

    record: ModelRecord
    input: InputShape
    outputs: tuple[ExportedOutput, ...]
    exporter: str
    opset: int
    precision: str = "float32"
    source: str = ""
    source_sha256: str = ""
    posekit_version: str = __version__
    torch_version: str = ""
    parity: Mapping[str, Any] = field(default_factory=dict)

    @property
    def used_outputs(self) -> tuple[str, ...]:
        """Names of the outputs the predictor reads, in the codec layout's order."""
        used = {o.role: o.name for o in self.outputs if o.used}
        return tuple(used[name] for name in self.record.codec.layout.names)

    def to_metadata(self) -> dict[str, str]:
        """The file's metadata entries (string keys and values)."""
        record = self.record.to_dict()
        values: dict[str, Any] = {
            "posekit_format": EXPORT_FORMAT,
            "posekit_version": self.posekit_version,
            "family": record["family"],
            "model_name": record["model_name"],
            "model_options": record["model_options"],
            "schema": record["schema"],
            "codec": record["codec"],
            "input_spec": record["input"],
            "input": asdict(self.input),
            "outputs": [asdict(o) for o in self.outputs],
            "exporter": self.exporter,
            "opset": str(self.opset),
            "torch_version": self.torch_version,
            "precision": self.precision,
            "source": self.source,
            "source_sha256": self.source_sha256,
            "parity": dict(self.parity),
        }
        return {k: json.dumps(v) if k in _JSON_KEYS else str(v) for k, v in values.items()}

    @classmethod
    def from_metadata(cls, props: Mapping[str, str], where: str) -> ExportInfo:
        """Read ``to_metadata``'s entries; ``where`` names the file in errors.

        Raises:
            CheckpointError: not a posekit export, or an entry is missing or invalid.
        """
        fmt = props.get("posekit_format")
        if fmt is None:
            raise CheckpointError(
                f"{where} has no posekit metadata (no 'posekit_format' entry; its metadata keys: "
                f"{sorted(props)[:10]}): export the model with `posekit export --checkpoint "
                f"CKPT --out FILE` so that the file says its schema, codec and preprocessing"
            )
        if fmt != EXPORT_FORMAT:
            raise CheckpointError(
                f"{where}: posekit export format {fmt!r} is not {EXPORT_FORMAT!r} (written by "
                f"posekit {props.get('posekit_version', '?')}; this is {__version__}): export "
                f"it again from its checkpoint"
            )
        try:
            data = {k: json.loads(v) if k in _JSON_KEYS else v for k, v in props.items()}
            record = ModelRecord.from_dict(
                {
                    "family": data["family"],
                    "model_name": data["model_name"],
                    "model_options": data["model_options"],
                    "schema": data["schema"],
                    "codec": data["codec"],
                    "input": data["input_spec"],
                    "version": data["posekit_version"],
                },
                f"exported file {where}",
            )
            return cls(
                record=record,
                input=InputShape(**data["input"]),
                outputs=tuple(ExportedOutput(**o) for o in data["outputs"]),
                exporter=data["exporter"],
                opset=int(data["opset"]),
                precision=data["precision"],
                source=data["source"],
                source_sha256=data["source_sha256"],
                posekit_version=data["posekit_version"],
                torch_version=data["torch_version"],
                parity=data.get("parity", {}),
            )
        except CheckpointError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{where}: invalid posekit metadata: {exc!r}") from None


# ---------------------------------------------------------------------- files
def is_exported_file(path: str | Path) -> bool:
    """True for an ONNX file (by its ``.onnx`` suffix) or a TorchScript archive with posekit
    metadata; checkpoints and other files are False."""
    path = Path(path)
    return path.suffix.lower() == ".onnx" or _torchscript_metadata(path) is not None


def _torchscript_metadata(path: Path) -> dict[str, str] | None:
    """The metadata of a TorchScript archive written by ``posekit export``; None otherwise."""
    if not path.is_file() or not zipfile.is_zipfile(path):
        return None
    with zipfile.ZipFile(path) as archive:
        names = [n for n in archive.namelist() if n.endswith(f"/extra/{TORCHSCRIPT_EXTRA}")]
        if not names:
            return None
        return dict(json.loads(archive.read(names[0])))


def _onnx_metadata(path: Path) -> dict[str, str]:
    """``metadata_props`` of an ONNX file, read straight from its protobuf encoding (ModelProto
    field 14: repeated StringStringEntryProto {1: key, 2: value}) so that neither ``onnx`` (1 s
    to import) nor a runtime session is needed; the graph is skipped, not parsed."""
    data = memoryview(path.read_bytes())
    props: dict[str, str] = {}
    try:
        for number, wire, value in _fields(data):
            if number == 14 and wire == 2:
                entry = {n: bytes(v).decode("utf-8") for n, w, v in _fields(value) if w == 2}
                props[entry.get(1, "")] = entry.get(2, "")
    except (IndexError, ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is not a readable ONNX file ({exc})") from None
    return props


def _fields(buf: memoryview) -> Any:
    """(field number, wire type, value) of each top-level field of a protobuf message; values
    of length-delimited fields (wire type 2) are memoryviews, others ints."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > end:
                raise ValueError("truncated field")
            value, pos = buf[pos : pos + size], pos + size
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, pos = int.from_bytes(buf[pos : pos + size], "little"), pos + size
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield number, wire, value


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("invalid varint")


def read_export_info(path: str | Path) -> ExportInfo:
    """The ``ExportInfo`` of an exported ONNX or TorchScript file.

    Raises:
        CheckpointError: missing file, not an ONNX / TorchScript file, or no posekit metadata.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"exported model not found: {path}")
    props = _torchscript_metadata(path)
    if props is None:
        if path.suffix.lower() != ".onnx":
            raise CheckpointError(
                f"{path} is neither an ONNX file (.onnx) nor a TorchScript file written by "
                f"`posekit export`"
            )
        props = _onnx_metadata(path)
    return ExportInfo.from_metadata(props, str(path))


# ---------------------------------------------------------------------- the model
@dataclass(frozen=True, eq=False)
class ExportedModel(RecordView):
    """An exported file ready for inference (the exported counterpart of
    ``models.loading.LoadedModel``: same properties, ``predictor`` takes a backend).

    Attributes:
        path: the file.
        info: its metadata.
    """

    path: Path
    info: ExportInfo

    @property
    def record(self) -> ModelRecord:
        """Family, model name, schema, codec, input spec."""
        return self.info.record

    @property
    def source(self) -> str:
        """The file, for messages."""
        return str(self.path)

    @property
    def is_torchscript(self) -> bool:
        """True for a TorchScript file (runs in libtorch), False for ONNX."""
        return self.info.opset == 0

    @property
    def default_backend(self) -> str:
        """``"torch"`` for a TorchScript file, ``"onnxruntime"`` for ONNX."""
        return "torch" if self.is_torchscript else "onnxruntime"

    def runtime(self, backend: str | None = None, **settings: Any) -> Any:
        """A runtime of the file's network (``default_backend`` unless given); ``settings``:
        the backend's (``threads``, ``spinning``, ``optimization`` for ONNX Runtime;
        ``threads`` for OpenVINO; ``device`` for torch)."""
        backend = backend or self.default_backend
        if backend not in BACKENDS:
            raise ConfigError(f"unknown backend {backend!r}; known: {BACKENDS}")
        outputs = self.info.used_outputs
        if self.is_torchscript:
            if backend != "torch":
                raise ConfigError(
                    f"{self.path} is TorchScript: it runs with --backend torch; export ONNX "
                    f"(posekit export --format onnx) for {backend}"
                )
            from posekit.inference.torch_runtime import ScriptRuntime

            runtime: Any = ScriptRuntime(self.path, self.info, **settings)
        elif backend == "onnxruntime":
            from posekit.inference.onnx_runtime import OnnxRuntime

            runtime = OnnxRuntime(self.path, self.info.input.name, outputs, **settings)
        elif backend == "openvino":
            from posekit.inference.onnx_runtime import OpenVinoRuntime

            runtime = OpenVinoRuntime(self.path, outputs, **settings)
        else:
            raise ConfigError(
                f"{self.path} is an ONNX file: run it with --backend onnxruntime or openvino "
                f"(--backend torch runs a checkpoint or a TorchScript file)"
            )
        shape = self.info.input
        if shape.height is not None and self.family == "bottomup":
            size = (int(shape.width or 0), shape.height)
            runtime = FixedSizeRuntime(runtime, size, self.input_spec.pad_value, self.codec.stride)
        return runtime

    def predictor(
        self,
        *,
        backend: str | None = None,
        runtime_settings: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Any:
        """The predictor of its family on a ``runtime(backend, **runtime_settings)``;
        ``options`` as for ``inference.create_predictor`` (``flip=True``, ...)."""
        from posekit.inference import PREDICTORS

        runtime = self.runtime(backend, **dict(runtime_settings or {}))
        shape = self.info.input
        if self.family == "bottomup" and shape.height is not None:
            options.setdefault("input_height", shape.height)
        return PREDICTORS[self.family](runtime, self.codec, self.input_spec, **options)


def load_exported(path: str | Path) -> ExportedModel:
    """An exported ONNX or TorchScript file with its metadata (no torch, no ``onnx`` import).

    Raises:
        CheckpointError: missing file, not an exported model, or no posekit metadata.
    """
    return ExportedModel(Path(path), read_export_info(path))


def output_names(
    layout_names: Sequence[str], stages: int, all_stages: bool
) -> list[ExportedOutput]:
    """The graph outputs of a network with ``stages`` stages: the last stage's under the codec
    layout's names, or every stage's as ``stage{n}_{name}`` (the last ones used)."""
    if not all_stages:
        return [ExportedOutput(n, n, stages, True) for n in layout_names]
    return [
        ExportedOutput(f"stage{s}_{n}", n, s, s == stages)
        for s in range(1, stages + 1)
        for n in layout_names
    ]
