"""What a checkpoint says about its model (``ModelRecord``), and reading checkpoint files.

A posekit checkpoint is a plain dict (never a pickled module), so ``torch.load(weights_only=True)``
reads it and it describes itself:

- ``format``: ``"posekit-checkpoint"``; ``version``: the posekit version that wrote it;
- the model record: ``family`` (``"bottomup"`` / ``"topdown"``), ``model_name`` (a ``zoo.MODELS``
  key), ``model_options`` (its builder's keyword arguments), ``schema``
  (``KeypointSchema.to_dict()``), ``codec`` (``Codec.to_dict()``: name + parameters), ``input``
  (``InputSpec.to_dict()``: color order, mean / std, pad value, size divisor, input height);
- ``model`` (the state_dict) and ``config`` (the resolved training config as plain data);
- for resuming (``engine.checkpoint``): ``optimizer``, ``schedule``, ``scaler``, ``epoch``,
  ``step_in_epoch``, ``iteration``, ``best_ap``, ``history``, ``rng``.

Checkpoints of posekit 0.1 lack ``family``, ``model_options`` and ``input`` and name their codec
``{"codec": "paf", ...}``; they are read as bottom-up PAF models with posekit's PAF preprocessing
at their training input height (``input_size``). Top-down codec records written before codecs had
``reach`` are read with ``reach = 0``, the behaviour they were trained with (``_codec_record``).
"""

from __future__ import annotations

import logging
import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from posekit import __version__
from posekit.codecs import CODECS, codec_from_dict
from posekit.codecs.base import FAMILIES, Codec
from posekit.errors import CheckpointError, ConfigError, PosekitError
from posekit.schema import KeypointSchema
from posekit.structures import InputSpec

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

__all__ = ["FORMAT", "ModelRecord", "RecordView", "load_checkpoint"]

FORMAT = "posekit-checkpoint"
"""The ``format`` entry of every posekit checkpoint."""

_RECORD_KEYS = ("model_name", "schema", "codec")


@dataclass(frozen=True)
class ModelRecord:
    """Everything needed to rebuild a model and run it, but its weights.

    Attributes:
        family: ``"bottomup"`` or ``"topdown"``: which task trains it, which predictor runs it.
        model_name: key of ``zoo.MODELS``.
        model_options: keyword arguments of the model's builder (``num_refinement_stages``, ...).
        schema: the keypoint schema.
        codec: the codec it was trained with (output layout, frames, decoding).
        input_spec: preprocessing of its input; ``input_spec.height`` is its default input height.
        version: posekit version that wrote the record.
    """

    family: str
    model_name: str
    schema: KeypointSchema
    codec: Codec
    input_spec: InputSpec
    model_options: Mapping[str, Any] = field(default_factory=dict)
    version: str = __version__

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ConfigError(f"unknown model family {self.family!r}; known: {FAMILIES}")
        if self.codec.family != self.family:
            raise ConfigError(
                f"codec {self.codec.name!r} is a {self.codec.family} codec, not {self.family}"
            )
        object.__setattr__(self, "model_options", dict(self.model_options))

    def to_dict(self) -> dict[str, Any]:
        """The record's checkpoint entries (``format`` and ``version`` included)."""
        return {
            "format": FORMAT,
            "version": self.version,
            "family": self.family,
            "model_name": self.model_name,
            "model_options": dict(self.model_options),
            "schema": self.schema.to_dict(),
            "codec": self.codec.to_dict(),
            "input": self.input_spec.to_dict(),
        }

    @classmethod
    def from_checkpoint(cls, obj: Mapping[str, Any], where: str) -> ModelRecord:
        """The record of a posekit checkpoint (also posekit 0.1's); ``where`` names it in errors.

        Raises:
            CheckpointError: an entry is missing or invalid (the message names it).
        """
        _check_entries(obj, (*_RECORD_KEYS, "model"), f"posekit checkpoint {where}")
        return cls.from_dict(obj, where)

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any], where: str) -> ModelRecord:
        """A record from the entries ``to_dict`` writes (a checkpoint's, an exported file's
        metadata; no weights needed); ``where`` names the source in errors.

        Raises:
            CheckpointError: an entry is missing or invalid (the message names it).
        """
        _check_entries(obj, _RECORD_KEYS, where)
        try:
            schema = KeypointSchema.from_dict(obj["schema"], where=f"checkpoint {where}")
            codec = codec_from_dict(schema, _codec_record(obj["codec"]))
            if "input" in obj:
                spec = InputSpec.from_dict(obj["input"])
            else:  # posekit 0.1: PAF preprocessing at the training input height
                height = int(obj["input_size"][1]) if obj.get("input_size") else 256
                spec = InputSpec(size_divisor=codec.stride, height=height)
            options = obj.get("model_options")
            if options is None:  # posekit 0.1
                stages = obj.get("num_refinement_stages")
                options = {} if stages is None else {"num_refinement_stages": int(stages)}
            return cls(
                family=str(obj.get("family", "bottomup")),
                model_name=str(obj["model_name"]),
                schema=schema,
                codec=codec,
                input_spec=spec,
                model_options=dict(options),
                version=str(obj.get("version", "unknown")),
            )
        except CheckpointError:
            raise
        except (PosekitError, KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"checkpoint {where}: invalid model record: {exc}") from None


class RecordView:
    """What a ready-to-run model says through its ``record``: schema, codec, family, input spec
    (shared by ``loading.LoadedModel`` and ``exported.ExportedModel``)."""

    record: ModelRecord

    @property
    def schema(self) -> KeypointSchema:
        """Its keypoint schema."""
        return self.record.schema

    @property
    def codec(self) -> Codec:
        """The codec it was trained with (output layout, frames, decoding)."""
        return self.record.codec

    @property
    def family(self) -> str:
        """``"bottomup"`` or ``"topdown"``."""
        return self.record.family

    @property
    def input_spec(self) -> InputSpec:
        """Its preprocessing."""
        return self.record.input_spec

    @property
    def input_height(self) -> int:
        """The input height its authors / training used (bottom-up: the predictor's default;
        top-down: the crop height)."""
        return self.record.input_spec.height


def _check_entries(obj: Mapping[str, Any], keys: tuple[str, ...], where: str) -> None:
    missing = [k for k in keys if k not in obj]
    if missing:
        raise CheckpointError(f"{where} lacks the entries {missing}")


def load_checkpoint(path: str | Path, *, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint with ``torch.load(weights_only=True)``; CheckpointError names the file.

    A file refused only for NumPy arrays or scalars (MMPose 1.x keeps its dataset meta as
    arrays) is read again, still weights-only, allowing exactly what NumPy's arrays and scalars
    are rebuilt from (``_numpy_globals``); any other pickled object is still refused.
    """
    import torch  # here, so that records (exported files' metadata) are read without torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes)")
    try:
        try:
            state = torch.load(path, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError as exc:
            if not re.search(r"Unsupported global: GLOBAL numpy\.", str(exc)):
                raise
            logger.info("%s holds NumPy arrays: read allowing NumPy's array reconstruction", path)
            with torch.serialization.safe_globals(_numpy_globals()):
                state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # a damaged file fails in many ways (EOFError, struct.error, ...)
        raise _read_error(path, exc) from exc
    if not isinstance(state, Mapping):
        raise CheckpointError(f"checkpoint {path}: expected a dict, got {type(state).__name__}")
    return dict(state)


_NUMPY_DTYPES = "?bBhHiIlLqQefdgFDGSU"
"""Type codes of the dtypes an allowed array may have: bool, integers, floats, complex, bytes, str
(not object, structured or datetime arrays)."""


def _numpy_globals() -> list[Any]:
    """What a pickled NumPy array or scalar needs, and nothing else: ``ndarray``, ``dtype``, the
    classes of the allowed dtypes (``dtype.__setstate__`` is checked against them) and the
    ``_reconstruct`` / ``scalar`` functions under their NumPy 2 and NumPy 1 module paths (files
    written with NumPy 1 name ``numpy.core.multiarray``)."""
    reconstruct = np.zeros(0).__reduce__()[0]
    scalar = np.float64(0).__reduce__()[0]
    named = [
        (fn, f"{module}.{name}")
        for module in ("numpy._core.multiarray", "numpy.core.multiarray")
        for fn, name in ((reconstruct, "_reconstruct"), (scalar, "scalar"))
    ]
    dtype_classes = list(dict.fromkeys(type(np.dtype(code)) for code in _NUMPY_DTYPES))
    return [np.ndarray, np.dtype, *dtype_classes, *named]


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


def _codec_record(record: Any) -> Any:
    """A checkpoint's codec record, ``reach = 0`` added to a top-down one written without it
    (``codecs.topdown``, "Reach": such models learned and decode only keypoints inside the crop);
    anything else as it is (``codec_from_dict`` checks it)."""
    if not isinstance(record, Mapping) or "reach" in record:
        return record
    codec = CODECS.get(record.get("name"))
    if codec is None or codec.family != "topdown":
        return record
    return {**record, "reach": 0.0}
