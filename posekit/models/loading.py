"""Ready-to-run models: a checkpoint file or a published weights name -> model + its record.

``load_model`` accepts

- a **posekit checkpoint** (``format: "posekit-checkpoint"``, written by ``engine.trainer``, also
  posekit 0.1's): the model is rebuilt from its record (``models.record.ModelRecord``: family,
  model name and options, schema, codec, input spec);
- a **published file in its authors' layout** (``zoo.from_published_file``: the official
  Lightweight OpenPose training checkpoint, read as ``lwop_mobilenet`` with schema
  ``openpose18`` and as many refinement stages as its keys hold);
- an **exported file** (``posekit export``: ONNX, or TorchScript with posekit metadata): an
  ``models.exported.ExportedModel``, read without importing torch, whose predictor runs the
  file in ONNX Runtime / OpenVINO (TorchScript: libtorch);
- a **published name** (``load_model(weights="lwop_mobilenet")``, a ``zoo.MODELS`` or
  ``zoo.WEIGHTS`` name): the zoo's published weights, downloaded once into the cache
  (``models.weights.download_weights``), or random weights with ``random_weights=True``.

Every file is read with ``torch.load(weights_only=True)``; a missing, empty, truncated or foreign
file, or one made for another schema, is a ``CheckpointError`` naming the file and the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from posekit.codecs import codec_from_dict
from posekit.errors import CheckpointError, ConfigError
from posekit.inference import create_predictor
from posekit.models.exported import BACKENDS, ExportedModel, is_exported_file, load_exported
from posekit.models.record import FORMAT, ModelRecord, RecordView, load_checkpoint
from posekit.schema import KeypointSchema
from posekit.structures import InputSpec

if TYPE_CHECKING:  # torch and the zoo load when a torch model is built, not for exported files
    from torch import nn

    from posekit.models.weights import WeightsInfo

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_HEIGHT", "LoadedModel", "load_model"]

DEFAULT_HEIGHT = InputSpec().height
"""Input height when nothing better is known (the Lightweight OpenPose demo's)."""


@dataclass(frozen=True, eq=False)
class LoadedModel(RecordView):
    """A model ready for inference.

    Attributes:
        model: the network in eval mode, on the CPU.
        record: what it is (family, model name and options, schema, codec, input spec).
        source: where it came from (file path or weights name), for messages.
    """

    model: nn.Module
    record: ModelRecord
    source: str

    def predictor(
        self,
        *,
        backend: str = "torch",
        runtime_settings: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Any:
        """The predictor of its family (``inference.create_predictor``), e.g. ``flip=True``.

        ``backend="onnxruntime"`` / ``"openvino"`` runs the network exported to a temporary
        file (``models.graph_export.write_dynamic_onnx``, dynamic input) through
        ``ExportedModel.predictor``, with the same preprocessing and decoding;
        ``runtime_settings`` are that backend's (``threads``, ...).
        ``posekit export`` writes the file once and checks it (parity gate).
        """
        if backend not in BACKENDS:
            raise ConfigError(f"unknown backend {backend!r}; known: {BACKENDS}")
        if backend == "torch":
            if runtime_settings:
                raise ConfigError(f"runtime settings {sorted(runtime_settings)} are for the "
                                  f"onnxruntime / openvino backends")  # fmt: skip
            return create_predictor(self.model, self.codec, self.input_spec, **options)
        import tempfile
        import time

        from posekit.models.graph_export import write_dynamic_onnx

        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as folder:  # both backends read the file when built
            path = Path(folder) / "model.onnx"
            info = write_dynamic_onnx(self, path)
            logger.info("%s exported to ONNX for %s (%.1f s; `posekit export` writes it once)",
                        self.source, backend, time.perf_counter() - start)  # fmt: skip
            exported = ExportedModel(path, info)
            return exported.predictor(backend=backend, runtime_settings=runtime_settings,
                                      **options)  # fmt: skip


def load_model(
    checkpoint: str | Path | None = None,
    *,
    weights: str | None = None,
    random_weights: bool = False,
    schema: KeypointSchema | str | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> LoadedModel | ExportedModel:
    """Load a model from a checkpoint file or by published name (exactly one of the two).

    Args:
        checkpoint: a posekit checkpoint, an official Lightweight OpenPose checkpoint file, or
            a file written by ``posekit export`` (then an ``ExportedModel``, torch not imported).
        weights: a zoo model name (``lwop_mobilenet``: its published weights) or a weights name
            (``lwop_mobilenet_coco``).
        random_weights: with ``weights``: build the model without loading weights (smoke tests,
            timing); nothing is downloaded.
        schema: with ``random_weights``: the schema to build for (default: the published
            weights' schema, else ``coco_person``).
        cache_dir, progress: where published weights are cached, download progress bar.

    Raises:
        CheckpointError: the file is missing, unreadable, of an unknown layout, or does not fit
            (another schema, another number of stages).
        ConfigError: unknown name, conflicting arguments, a model without published weights.
        WeightsDownloadError: published weights are not cached and cannot be downloaded.
    """
    if (checkpoint is None) == (weights is None):
        raise ConfigError("give either a checkpoint file or a published model name, not both")
    if checkpoint is not None:
        if random_weights or schema is not None:
            raise ConfigError(
                "random_weights and schema go with a published model name, not a checkpoint"
            )
        if is_exported_file(checkpoint):
            return load_exported(checkpoint)
        return _from_file(Path(checkpoint))
    return _from_name(str(weights), random_weights, schema, cache_dir, progress)


# ---------------------------------------------------------------------- files
def _from_file(path: Path) -> LoadedModel:
    from posekit.models import zoo

    obj = load_checkpoint(path)
    if obj.get("format") == FORMAT:
        return _from_posekit(path, obj)
    published = zoo.from_published_file(path, obj)
    if published is not None:
        model, info = published
        return LoadedModel(model.eval(), _published_record(info, model), str(path))
    raise CheckpointError(
        f"checkpoint {path} is neither a posekit checkpoint (format {FORMAT!r}) nor a published "
        f"file in its authors' layout ({zoo.PUBLISHED_LAYOUTS}); top-level keys: "
        f"{sorted(map(str, obj))[:10]}"
    )


def _from_posekit(path: Path, obj: Mapping[str, Any]) -> LoadedModel:
    from posekit.models import zoo

    record = ModelRecord.from_checkpoint(obj, str(path))
    try:
        model = zoo.build_model(record.model_name, codec=record.codec, **dict(record.model_options))
    except ConfigError as exc:
        raise CheckpointError(f"checkpoint {path}: invalid model record: {exc}") from None
    zoo.load_weights(model, path)  # checks the schema record, every key and shape
    return LoadedModel(model.eval(), record, str(path))


def _published_record(info: WeightsInfo, model: nn.Module) -> ModelRecord:
    from posekit.models import zoo

    entry = zoo.MODELS[info.model]
    return ModelRecord(
        family=entry.family,
        model_name=info.model,
        schema=info.schema,
        codec=codec_from_dict(info.schema, info.codec),
        input_spec=info.input,
        model_options=getattr(model, "options", {}),
    )


# ---------------------------------------------------------------------- published names
def _from_name(
    name: str,
    random_weights: bool,
    schema: KeypointSchema | str | None,
    cache_dir: str | Path | None,
    progress: bool,
) -> LoadedModel:
    from posekit.models import zoo

    if name in zoo.WEIGHTS:
        info = zoo.WEIGHTS[name]
    elif name in zoo.MODELS:
        published = zoo.MODELS[name].weights
        info = published[0] if published else None
    else:
        raise ConfigError(
            f"unknown model {name!r}; models: {sorted(zoo.MODELS)}, weights: {sorted(zoo.WEIGHTS)}"
        )
    if not random_weights:
        if schema is not None:
            raise ConfigError("a schema can only be chosen for random weights")
        if info is None:
            raise ConfigError(
                f"model {name!r} has no published weights; pass a checkpoint file or use "
                f"random weights"
            )
        model = zoo.from_pretrained(info, cache_dir=cache_dir, progress=progress)
        return LoadedModel(model.eval(), _published_record(info, model), info.name)
    model_name = info.model if info is not None else name
    entry = zoo.MODELS[model_name]
    if schema is None:
        schema = info.schema if info is not None else "coco_person"
    codec = zoo.default_codec(model_name, schema)
    options = dict(info.model_options) if info is not None else {}
    model = zoo.build_model(model_name, codec=codec, **options)
    spec = info.input if info is not None else entry.input
    record = ModelRecord(entry.family, model_name, codec.schema, codec, spec, model.options)
    logger.info("built %s with random weights (schema %s)", model_name, codec.schema.name)
    return LoadedModel(model.eval(), record, f"{model_name} (random weights)")
