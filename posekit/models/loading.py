"""Ready-to-run models: a checkpoint file or a published weights name -> (model, schema, codec).

``load_model`` accepts

- a **posekit checkpoint** (``format: "posekit-checkpoint"``, written by ``engine.trainer``): the
  model is rebuilt from its record (``model_name``, ``schema``, ``num_refinement_stages``) and the
  codec from its ``codec`` entry;
- the **official Lightweight OpenPose training checkpoint** (``{"state_dict": {"model.*", "cpm.*",
  "initial_stage.*", "refinement_stages.N.*"}, "optimizer": ...}``, or that bare state_dict): read
  as ``lwop_mobilenet`` with schema ``openpose18`` and as many refinement stages as its keys hold;
- a **published name** (``load_model(weights="lwop_mobilenet")``, a ``zoo.MODELS`` or
  ``zoo.WEIGHTS`` name): the zoo's published weights, downloaded once into the cache
  (``models.weights.download_weights``), or random weights with ``random_weights=True``.

Every file is read with ``torch.load(weights_only=True)``; a missing, empty, truncated or foreign
file, or one made for another schema, is a ``CheckpointError`` naming the file and the reason.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from posekit.codecs.paf import PafCodec
from posekit.engine.checkpoint import FORMAT, load_checkpoint
from posekit.errors import CheckpointError, ConfigError, PosekitError
from posekit.models import zoo
from posekit.models.bottomup import STRIDE, LightweightOpenPose
from posekit.schema import KeypointSchema

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_HEIGHT", "LoadedModel", "load_model"]

_LWOP_PREFIXES = ("model.", "cpm.", "initial_stage.")
_LWOP_WEIGHTS = "lwop_mobilenet_coco"  # the published weights whose layout the official file has
_POSEKIT_KEYS = ("model_name", "schema", "codec", "model")
DEFAULT_HEIGHT = 256
"""Input height when nothing better is known (the Lightweight OpenPose demo's)."""


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A model ready for ``inference.Predictor``.

    Attributes:
        model: the network in eval mode, on the CPU.
        schema: its keypoint schema (output channel layout).
        codec: the ``PafCodec`` it was trained with (stride, target parameters).
        input_height: the input height its authors / training used (a good default for
            ``Predictor(input_height=...)``).
        source: where it came from (file path or weights name), for messages.
    """

    model: nn.Module
    schema: KeypointSchema
    codec: PafCodec
    input_height: int
    source: str


def load_model(
    checkpoint: str | Path | None = None,
    *,
    weights: str | None = None,
    random_weights: bool = False,
    schema: KeypointSchema | str | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> LoadedModel:
    """Load a model from a checkpoint file or by published name (exactly one of the two).

    Args:
        checkpoint: a posekit checkpoint or an official Lightweight OpenPose checkpoint file.
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
        return _from_file(Path(checkpoint))
    return _from_name(str(weights), random_weights, schema, cache_dir, progress)


# ---------------------------------------------------------------------- files
def _from_file(path: Path) -> LoadedModel:
    obj = load_checkpoint(path)
    if obj.get("format") == FORMAT:
        return _from_posekit(path, obj)
    state = obj.get("state_dict", obj)
    if isinstance(state, Mapping) and any(str(k).startswith(_LWOP_PREFIXES) for k in state):
        return _from_official(path, state)
    raise CheckpointError(
        f"checkpoint {path} is neither a posekit checkpoint (format {FORMAT!r}) nor a "
        f"Lightweight OpenPose training checkpoint (a 'state_dict' with model.*, cpm.*, "
        f"initial_stage.* keys); top-level keys: {sorted(map(str, obj))[:10]}"
    )


def _from_posekit(path: Path, obj: Mapping[str, Any]) -> LoadedModel:
    missing = [k for k in _POSEKIT_KEYS if k not in obj]
    if missing:
        raise CheckpointError(f"posekit checkpoint {path} lacks the entries {missing}")
    try:
        schema = KeypointSchema.from_dict(obj["schema"], where=f"checkpoint {path}")
        codec = PafCodec.from_dict(schema, obj["codec"])
        model = zoo.build_model(
            str(obj["model_name"]),
            schema,
            num_refinement_stages=obj.get("num_refinement_stages"),
        )
    except CheckpointError:
        raise
    except (PosekitError, KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {path}: invalid model record: {exc}") from None
    zoo.load_weights(model, path)  # checks the schema record, every key and shape
    height = int(obj["input_size"][1]) if obj.get("input_size") else DEFAULT_HEIGHT
    return LoadedModel(model.eval(), schema, codec, height, str(path))


def _from_official(path: Path, state: Mapping[str, Any]) -> LoadedModel:
    info = zoo.WEIGHTS[_LWOP_WEIGHTS]
    stages = {int(m.group(1)) for k in state if (m := re.match(r"refinement_stages\.(\d+)\.", k))}
    model = LightweightOpenPose(info.schema, num_refinement_stages=max(stages, default=-1) + 1)
    zoo.load_lwop_checkpoint(path, model)
    codec = PafCodec(info.schema, stride=info.input.stride)
    return LoadedModel(model.eval(), info.schema, codec, info.input.height, str(path))


# ---------------------------------------------------------------------- published names
def _from_name(
    name: str,
    random_weights: bool,
    schema: KeypointSchema | str | None,
    cache_dir: str | Path | None,
    progress: bool,
) -> LoadedModel:
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
        codec = PafCodec(model.schema, stride=info.input.stride)
        return LoadedModel(model.eval(), model.schema, codec, info.input.height, info.name)
    model_name = info.model if info is not None else name
    if schema is None:
        schema = info.schema if info is not None else "coco_person"
    stages = info.num_refinement_stages if info is not None else None
    model = zoo.build_model(model_name, schema, num_refinement_stages=stages)
    height = info.input.height if info is not None else DEFAULT_HEIGHT
    codec = PafCodec(model.schema, stride=int(getattr(model, "stride", STRIDE)))
    logger.info("built %s with random weights (schema %s)", model_name, model.schema.name)
    return LoadedModel(model.eval(), model.schema, codec, height, f"{model_name} (random weights)")
