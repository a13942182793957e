"""Named models, their codec, input spec and published weights: the one table of models.

- ``MODELS``: model name -> ``ModelEntry`` (keyword-only builder, family, default codec and input
  spec, published weights); ``WEIGHTS``: weights name -> ``WeightsInfo``. Both refuse duplicate
  names; a new model is its module plus one entry here.
- ``build_model(name, schema, codec=..., **options)`` builds by name (heads sized from the codec's
  layout), optionally with weights; ``from_pretrained(weights)`` builds the model a set of
  published weights was trained as.
- ``load_weights`` loads published weights (downloaded once into the cache, sha256 verified) or a
  checkpoint file; ``load_lwop_checkpoint`` loads the published Lightweight OpenPose training
  checkpoint format. Download, cache and checked loading live in ``models.weights``.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from torch import nn

from posekit.codecs import CODECS, codec_from_dict
from posekit.codecs.base import Codec
from posekit.errors import ConfigError
from posekit.models.bottomup import LightweightOpenPose, OpenPoseVGG19, PafTiny
from posekit.models.published import DESCRIPTIONS, PublishedFile, read_published
from posekit.models.published_hrnet import HRNET_INPUT, HRNET_WEIGHTS, hrnet_topdown
from posekit.models.published_openpose import LWOP_COCO, MOBILENET_IMAGENET, RTPOSE_COCO
from posekit.models.record import load_checkpoint
from posekit.models.topdown import TopDownNet, residual_topdown
from posekit.models.weights import (
    CheckpointError,
    LoadResult,
    WeightsDownloadError,
    WeightsInfo,
    download_weights,
    load_checkpoint_into,
    same_channel_layout,
)
from posekit.schema import KeypointSchema
from posekit.structures import InputSpec

logger = logging.getLogger(__name__)

__all__ = [
    "MODELS",
    "TRUNKS",
    "WEIGHTS",
    "CheckpointError",
    "LoadResult",
    "ModelEntry",
    "WeightsDownloadError",
    "WeightsInfo",
    "build_model",
    "default_codec",
    "download_weights",
    "from_pretrained",
    "from_published_file",
    "load_lwop_checkpoint",
    "load_weights",
    "hrnet_w18",
    "hrnet_w32",
    "hrnet_w48",
    "lwop_mobilenet",
    "openpose_vgg19",
    "paf_tiny",
    "topdown_tiny",
]


@dataclass(frozen=True)
class ModelEntry:
    """One named model.

    Attributes:
        name: key of ``MODELS``.
        builder: keyword-only (torchvision style): ``schema``, ``codec`` (its layout sizes the
            heads), ``weights``, ``cache_dir``, ``progress`` and the model's own options.
        weights: published weights of the model.
        description: one line for listings.
        family: ``"bottomup"`` or ``"topdown"``.
        codec: the codec record it is trained with by default (``Codec.to_dict()`` form: a
            ``name`` and the parameters that differ from the codec's defaults).
        input: its default preprocessing.
    """

    name: str
    builder: Callable[..., nn.Module]
    weights: tuple[WeightsInfo, ...]
    description: str
    family: str = "bottomup"
    codec: Mapping[str, Any] = field(default_factory=lambda: {"name": "paf"})
    input: InputSpec = InputSpec()


# ---------------------------------------------------------------- builders


Weights = str | Path | WeightsInfo
"""Published weights (a ``WeightsInfo`` or a ``WEIGHTS`` name) or a local checkpoint file."""

_BUILDER_ARGS = ("schema", "codec", "weights", "cache_dir", "progress")
"""The arguments every builder takes; the rest are the model's own options."""


def lwop_mobilenet(
    *,
    schema: KeypointSchema | str | None = None,
    codec: Codec | None = None,
    weights: Weights | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    num_refinement_stages: int | None = None,
) -> LightweightOpenPose:
    """Lightweight OpenPose with a MobileNetV1 trunk (``bottomup.LightweightOpenPose``).

    ``weights="lwop_mobilenet_coco"`` gives the published network (schema ``openpose18``, one
    refinement stage). See ``build_model`` for the arguments.
    """
    options = {"num_refinement_stages": num_refinement_stages}
    return _build("lwop_mobilenet", _paf(LightweightOpenPose), schema, codec, weights, cache_dir,
                  progress, options)  # fmt: skip


def openpose_vgg19(
    *,
    schema: KeypointSchema | str | None = None,
    codec: Codec | None = None,
    weights: Weights | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    num_refinement_stages: int | None = None,
) -> OpenPoseVGG19:
    """OpenPose (CMU) with a VGG19 trunk (``bottomup.OpenPoseVGG19``, 5 refinement stages by
    default). See ``build_model`` for the arguments.
    """
    options = {"num_refinement_stages": num_refinement_stages}
    return _build("openpose_vgg19", _paf(OpenPoseVGG19), schema, codec, weights, cache_dir,
                  progress, options)  # fmt: skip


def paf_tiny(
    *,
    schema: KeypointSchema | str | None = None,
    codec: Codec | None = None,
    weights: Weights | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    num_refinement_stages: int | None = None,
    width: int | None = None,
) -> PafTiny:
    """A small residual PAF network trained from scratch (``bottomup.PafTiny``, no published
    weights; ``weights`` may be a checkpoint file). See ``build_model`` for the arguments.
    """
    options = {"num_refinement_stages": num_refinement_stages, "width": width}
    return _build("paf_tiny", _paf(PafTiny), schema, codec, weights, cache_dir, progress, options)


def topdown_tiny(
    *,
    schema: KeypointSchema | str | None = None,
    codec: Codec | None = None,
    weights: Weights | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    width: int | None = None,
    deconvs: int | None = None,
    skip: bool | int | None = None,
) -> TopDownNet:
    """A small top-down network for CPU training from scratch (``topdown.residual_topdown``: a
    residual trunk and the head the codec asks for: heatmaps, SimCC, regression or RLE). See
    ``build_model`` for the arguments.
    """
    options = {"width": width, "deconvs": deconvs, "skip": skip}
    return _build("topdown_tiny", residual_topdown, schema, codec, weights, cache_dir, progress,
                  options)  # fmt: skip


def _hrnet_builder(width: int) -> Callable[..., TopDownNet]:
    """The builder of ``hrnet_w<width>`` (``published_hrnet.hrnet_topdown``)."""

    def build(
        *,
        schema: KeypointSchema | str | None = None,
        codec: Codec | None = None,
        weights: Weights | None = None,
        cache_dir: str | Path | None = None,
        progress: bool = True,
    ) -> TopDownNet:
        def make(schema: KeypointSchema, codec: Codec) -> TopDownNet:
            return hrnet_topdown(schema, codec.layout, width)

        return _build(f"hrnet_w{width}", make, schema, codec, weights, cache_dir, progress, {})

    build.__name__ = build.__qualname__ = f"hrnet_w{width}"
    build.__doc__ = (
        f"HRNet-W{width} with a 1x1 heatmap head (``published_hrnet.hrnet_topdown``); "
        "``weights`` may name its published COCO weights. See ``build_model`` for the arguments."
    )
    return build


hrnet_w18, hrnet_w32, hrnet_w48 = (_hrnet_builder(w) for w in (18, 32, 48))


def _paf(cls: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """``make(schema, codec, **options)`` of a PAF network class (heads from ``codec.layout``)."""

    def make(schema: KeypointSchema, codec: Codec | None, **options: Any) -> nn.Module:
        return cls(schema, layout=None if codec is None else codec.layout, **options)

    return make


def _unique_table(items: tuple[Any, ...], what: str) -> Mapping[str, Any]:
    """Read-only ``{item.name: item}``; a repeated name is a programming error."""
    table: dict[str, Any] = {}
    for item in items:
        if item.name in table:
            raise ValueError(f"duplicate {what} name {item.name!r} in posekit.models.zoo")
        table[item.name] = item
    return MappingProxyType(table)


MODELS: Mapping[str, ModelEntry] = _unique_table(
    (
        ModelEntry(
            name="lwop_mobilenet",
            builder=lwop_mobilenet,
            weights=(LWOP_COCO,),
            description="Lightweight OpenPose, MobileNetV1 trunk, ~4.1M parameters",
        ),
        ModelEntry(
            name="openpose_vgg19",
            builder=openpose_vgg19,
            weights=(RTPOSE_COCO,),
            description="OpenPose (CMU), VGG19 trunk, 7x7 refinement stages, ~52M parameters",
        ),
        ModelEntry(
            name="topdown_tiny",
            builder=topdown_tiny,
            weights=(),
            description="small top-down network for CPU training from scratch: a residual trunk "
            "and the head of its codec (heatmaps by default; SimCC, regression, RLE)",
            family="topdown",
            codec={
                "name": "udp",
                "input_size": [96, 128],
                "heatmap_size": [24, 32],
                "sigma": 1.5,
                "oks_targets": True,
                "decode_config": {"blur_kernel": 1},
            },
            input=InputSpec(size_divisor=1, height=128, width=96),
        ),
        *(
            ModelEntry(
                name=f"hrnet_w{width}",
                builder=builder,
                weights=tuple(w for w in HRNET_WEIGHTS if w.model == f"hrnet_w{width}"),
                description=f"HRNet-W{width} top-down heatmaps at 256x192 (Sun et al. 2019), "
                f"{params} parameters",
                family="topdown",
                codec={"name": "udp", "input_size": [192, 256], "heatmap_size": [48, 64]},
                input=HRNET_INPUT,
            )
            for width, builder, params in (
                (18, hrnet_w18, "9.3M"),
                (32, hrnet_w32, "28.5M"),
                (48, hrnet_w48, "63.6M"),
            )
        ),
        ModelEntry(
            name="paf_tiny",
            builder=paf_tiny,
            weights=(),
            description="small residual PAF network for CPU training from scratch, ~1.7M "
            "parameters (the synthetic-data default)",
        ),
    ),
    "model",
)
"""The named models, in one table; tests iterate over it."""

WEIGHTS: Mapping[str, WeightsInfo] = _unique_table(
    tuple(w for entry in MODELS.values() for w in entry.weights), "weights"
)
"""Every published weights record by name."""

TRUNKS: Mapping[str, Any] = _unique_table((MOBILENET_IMAGENET,), "trunk weights")
"""Published ImageNet weights of trunks by name (``published_openpose.TrunkWeights``): a start for
training (``model.pretrained=mobilenet_v1_imagenet``), not pose models."""


def _is_published(weights: object) -> bool:
    return isinstance(weights, WeightsInfo) or (isinstance(weights, str) and weights in WEIGHTS)


def _weights_info(weights: str | WeightsInfo) -> WeightsInfo:
    if isinstance(weights, WeightsInfo):
        return weights
    if weights in WEIGHTS:
        return WEIGHTS[weights]
    if weights in MODELS and MODELS[weights].weights:
        return MODELS[weights].weights[0]
    raise ConfigError(f"unknown weights {weights!r}; available: {sorted(WEIGHTS)}")


def build_model(
    name: str,
    schema: KeypointSchema | str | None = None,
    *,
    codec: Codec | None = None,
    pretrained: Weights | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    **options: Any,
) -> nn.Module:
    """Build a zoo model by name, its heads sized from the codec's layout, optionally with weights.

    Args:
        name: a key of ``MODELS`` (``lwop_mobilenet``, ``openpose_vgg19``, ``paf_tiny``).
        schema: the keypoint schema, or a built-in name / YAML path; may be omitted when
            ``pretrained`` names published weights (their schema is used). With published
            weights it must give the same channel layout as theirs.
        codec: the codec the model is trained with (its family must be the model's, its stride
            the model's output stride); default: the model's codec with default parameters.
        pretrained: published weights (``WeightsInfo`` or a ``WEIGHTS`` name, downloaded to the
            cache), or a local checkpoint file.
        cache_dir, progress: see ``weights.download_weights``.
        options: the model's own keyword arguments (PAF models: ``num_refinement_stages``;
            default: the weights' value, else the model's default).

    Raises:
        ConfigError: unknown name or option, a codec of another family or stride, or a schema /
            option that contradicts the weights.
        CheckpointError: the checkpoint cannot be read or does not fit the model.
        WeightsDownloadError: the weights are not cached and cannot be downloaded.
    """
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; available: {sorted(MODELS)}")
    entry = MODELS[name]
    if codec is not None and codec.family != entry.family:
        raise ConfigError(
            f"model {name!r} is {entry.family}; codec {codec.name!r} is {codec.family}"
        )
    if codec is not None and schema is not None and KeypointSchema.load(schema) != codec.schema:
        raise ConfigError(f"codec schema '{codec.schema.name}' is not the schema given")
    accepted = set(inspect.signature(entry.builder).parameters) - set(_BUILDER_ARGS)
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ConfigError(
            f"model {name!r}: unknown option(s) {unknown}; its options are {sorted(accepted)}"
        )
    model = entry.builder(
        schema=schema if codec is None else codec.schema,
        codec=codec,
        weights=pretrained,
        cache_dir=cache_dir,
        progress=progress,
        **options,
    )
    stride = int(getattr(model, "stride", 0))
    if codec is not None and stride != codec.stride:
        size = getattr(codec, "input_size", None)  # a top-down codec: its stride is crop / map
        fix = (
            f"codec.stride={stride}"
            if size is None
            else f"codec.heatmap_size=[{size[0] // stride},{size[1] // stride}] (and scale "
            f"codec.sigma with it)"
        )
        raise ConfigError(
            f"codec.stride={codec.stride} but model {name!r} has output stride {stride}: set {fix}"
        )
    return model


_CROP_KEYS = ("input_size", "heatmap_size")
"""Codec parameters that belong to the model (its crop and output sizes): kept when a config
names another codec that takes them."""


def default_codec(
    name: str, schema: KeypointSchema | str, overrides: Mapping[str, Any] | None = None
) -> Codec:
    """The codec model ``name`` is trained with by default, for ``schema``; ``overrides`` (a
    config's ``codec:`` section) change its parameters, or name another codec (then only their
    parameters apply, and the model's sizes: a top-down model's ``input_size`` (and
    ``heatmap_size`` for another heatmap codec) is its own, whatever codec decodes it)."""
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; available: {sorted(MODELS)}")
    record = dict(MODELS[name].codec)
    overrides = dict(overrides or {})
    if overrides.get("name", record["name"]) != record["name"]:
        other = CODECS.get(overrides["name"])
        takes = (
            {f.name for f in dataclasses.fields(other)} if dataclasses.is_dataclass(other) else ()
        )
        record = {k: record[k] for k in _CROP_KEYS if k in record and k in takes}
    return codec_from_dict(KeypointSchema.load(schema), {**record, **overrides})


def _build(
    name: str,
    make: Callable[..., Any],
    schema: KeypointSchema | str | None,
    codec: Codec | None,
    weights: Weights | None,
    cache_dir: str | Path | None,
    progress: bool,
    options: dict[str, Any],
) -> Any:
    """The shared body of the builders: check the arguments against the weights, build, load.

    ``make(schema, codec, **options)`` builds the network; ``options`` maps the model's own
    keyword arguments to values, None for "the default". A top-down network always gets a codec
    (its crop size shapes the head): the published weights', else the model's default."""
    info = _weights_info(weights) if _is_published(weights) else None
    trunk = isinstance(weights, str) and weights in TRUNKS
    if weights is not None and info is None and not trunk and not Path(weights).is_file():
        raise ConfigError(
            f"weights {str(weights)!r} are neither published weights ({sorted(WEIGHTS)}), trunk "
            f"weights ({sorted(TRUNKS)}) nor an existing checkpoint file"
        )
    if info is not None:
        if info.model != name:
            raise ConfigError(f"weights {info.name!r} are for model {info.model!r}, not {name!r}")
        for key, value in info.model_options.items():
            if options.get(key) not in (None, value):
                what = f"{value} refinement stage(s)" if key == "num_refinement_stages" else value
                raise ConfigError(f"weights {info.name!r} have {what}; got {key}={options[key]}")
            options[key] = value
        schema = info.schema if schema is None else schema
    if schema is None:
        raise ConfigError(f"{name}: a schema is needed (no published weights given)")
    schema = KeypointSchema.load(schema)
    if info is not None and not same_channel_layout(schema, info.schema):
        raise ConfigError(
            f"weights {info.name!r} were trained for schema {info.schema_name!r} "
            f"({info.schema.num_keypoints} keypoints, {info.schema.num_limbs} limbs in its "
            f"order); schema {schema.name!r} has another channel layout. Omit the schema or pass "
            f"KeypointSchema.named({info.schema_name!r})"
        )
    if codec is None and MODELS[name].family == "topdown":
        codec = (
            codec_from_dict(schema, info.codec) if info is not None else default_codec(name, schema)
        )
    model = make(schema, codec, **{k: v for k, v in options.items() if v is not None})
    if weights is not None:
        load_weights(model, weights, cache_dir=cache_dir, progress=progress)
    return model


def from_pretrained(
    weights: str | WeightsInfo = "lwop_mobilenet_coco",
    *,
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> nn.Module:
    """The model the published ``weights`` (a ``WEIGHTS`` name, a model name, or a record) were
    trained as, with the weights loaded; ``model.schema`` is the weights' schema.

    The file is downloaded once into the cache directory (see ``download_weights``).
    """
    info = _weights_info(weights)
    return build_model(info.model, pretrained=info, cache_dir=cache_dir, progress=progress)


def load_weights(
    model: nn.Module,
    weights: str | Path | WeightsInfo | Mapping[str, Any],
    *,
    strict: bool = True,
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> LoadResult:
    """Load weights into ``model`` in place.

    Args:
        model: a zoo model (its ``schema`` is checked against the weights').
        weights: published weights (``WeightsInfo`` or a ``WEIGHTS`` name; downloaded and cached),
            trunk weights (a ``TRUNKS`` name, always loaded not strictly), a checkpoint file (a
            posekit checkpoint or a published file in its authors' layout: ``published``), or a
            checkpoint / state dict already in memory.
        strict: every key must match in name and shape (default). ``False`` loads what fits and
            logs what does not, e.g. to start training on a new schema from published weights.
        cache_dir, progress: see ``download_weights``.

    Raises:
        CheckpointError: unreadable file, or (strict) a checkpoint that does not fit, with the
            reason (head channels vs the schema's K+1 / 2L, number of refinement stages, keys).
    """
    if isinstance(weights, str) and weights in TRUNKS:
        weights = download_weights(TRUNKS[weights], cache_dir=cache_dir, progress=progress)
    elif _is_published(weights):
        info = _weights_info(weights)
        schema = getattr(model, "schema", None)
        if strict and schema is not None and not same_channel_layout(schema, info.schema):
            raise CheckpointError(
                f"weights {info.name!r} are for schema {info.schema_name!r}; the model has schema "
                f"{schema.name!r} with another channel layout"
            )
        weights = download_weights(info, cache_dir=cache_dir, progress=progress)
    obj, where = (weights, "<in memory>") if isinstance(weights, Mapping) else (
        load_checkpoint(weights), str(weights))  # fmt: skip
    published = read_published(obj, where)
    if published is None:
        return load_checkpoint_into(model, obj, strict=strict, where=where)
    published.check(model)
    if published.is_trunk:  # the rest of the model stays new, whatever ``strict`` says
        logger.info(
            "%s: ImageNet weights of the trunk only; the rest of the model stays new", where
        )
    strict = strict and not published.is_trunk
    return load_checkpoint_into(model, published.state, strict=strict, where=where)


def load_lwop_checkpoint(
    path_or_state: str | Path | Mapping[str, Any],
    model: LightweightOpenPose,
    *,
    strict: bool = True,
) -> LoadResult:
    """Load the published Lightweight OpenPose training checkpoint (or one of its layout).

    ``LightweightOpenPose``'s ``state_dict()`` keys are the published ones (``model.*``, ``cpm.*``,
    ``initial_stage.*``, ``refinement_stages.N.*``), so the conversion is: read the file with
    ``torch.load(weights_only=True)``, take its ``state_dict`` entry, check every key and shape,
    load. The published file fits ``LightweightOpenPose(KeypointSchema.named("openpose18"),
    num_refinement_stages=1)``. See ``load_weights`` for ``strict`` and the errors.
    """
    if not isinstance(model, LightweightOpenPose):
        raise TypeError(f"expected a LightweightOpenPose model, got {type(model).__name__}")
    published = LWOP_COCO.schema
    if not same_channel_layout(model.schema, published):
        logger.warning(
            "the published Lightweight OpenPose checkpoint has the %s channel layout; the model's "
            "schema %r differs, so the checkpoint must have been trained for that schema",
            published.name,
            model.schema.name,
        )
    return load_weights(model, path_or_state, strict=strict)


PUBLISHED_LAYOUTS = "; ".join(DESCRIPTIONS)
"""The authors' file layouts ``from_published_file`` reads, for messages."""


def from_published_file(
    path: str | Path, obj: Mapping[str, Any]
) -> tuple[nn.Module, WeightsInfo] | None:
    """The model of a published weights file in its authors' own layout, with the published
    record it matches, or None when ``obj`` (the loaded file) has no known layout
    (``published.read_published``: Lightweight OpenPose, CMU's OpenPose, HRNet official and
    MMPose).

    Raises:
        CheckpointError: a file of a known layout that is not a whole pose model (a trunk's
            ImageNet weights), or one that no published record describes, or that does not fit.
    """
    found: PublishedFile | None = read_published(obj, str(path))
    if found is None:
        return None
    if found.info is None:
        what = "ImageNet weights of a trunk" if found.is_trunk else "a file no record describes"
        raise CheckpointError(
            f"{path} is {what} ({found.layout}, for {found.model_name}), not a pose model: start "
            f"training from it with `posekit train model.name={found.model_name} "
            f"model.pretrained={path}`"
        )
    info = found.info
    codec = codec_from_dict(info.schema, info.codec)
    model = build_model(found.model_name, codec=codec, **found.model_options)
    found.check(model)
    load_checkpoint_into(model, found.state, strict=True, where=str(path))
    return model, info
