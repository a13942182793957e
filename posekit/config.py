"""Configuration: frozen dataclasses filled from YAML and ``section.key=value`` overrides.

No registry, no inheritance chain: a config file is a plain YAML mapping whose sections mirror
``Config``. Unknown keys and wrongly typed values raise ``ConfigError`` naming the key path (with a
suggestion for misspellings). ``config_to_dict`` gives the resolved config as plain data (saved into
the run directory and the checkpoints).
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from posekit.data.crops import CropConfig
from posekit.data.synth import SynthConfig
from posekit.data.transforms import AugmentConfig
from posekit.errors import ConfigError

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "step", "cosine", "plateau")


DEMO_SYNTH = SynthConfig(
    num_images=2000,
    image_size=(192, 192),
    min_instances=1,
    max_instances=2,
    scale_range=(0.45, 0.8),
    partial_prob=0.1,
    thickness_range=(0.3, 0.5),
    clutter=4,
    part_colors=True,
)
"""Synthetic data of the default training run (``posekit train`` with no data)."""

DEMO_AUGMENT = AugmentConfig(
    input_size=(192, 192),
    train_window=0.667,
    instance_center_prob=0.5,
    scale_range=(0.85, 1.15),
    max_rotation=15.0,
    max_translate=0.1,
)
"""Default augmentation: the synthetic default's size, mild geometric changes, and training on
windows of 2/3 of the input's sides (128 x 128 of 192 x 192; half of them centered on a figure):
as much learned per epoch as from whole inputs at 2.3x the images/s (README, Training). Photos
at 368 x 368 with ``AugmentConfig``'s own (stronger) defaults, whole inputs:
``configs/lwop_mobilenet.yaml``."""


def _check(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"{key}: {message}")


@dataclass(frozen=True)
class ModelConfig:
    """Network: a name from ``posekit.models.zoo`` and its options.

    The default, ``paf_tiny``, trains from scratch in minutes on a CPU; for photos,
    ``lwop_mobilenet`` started from ``pretrained: lwop_mobilenet_coco`` learns far more
    (``configs/lwop_mobilenet.yaml``). The model's family (bottom-up, top-down) follows from it.

    ``options``: the model's own keyword arguments (PAF models: ``num_refinement_stages``, and
    ``width`` for ``paf_tiny``); unset ones take the model's defaults.
    ``pretrained``: a checkpoint path or a published weights name to start from (heads that do not
    fit the schema are rebuilt).
    """

    name: str = "paf_tiny"
    options: dict[str, Any] = field(default_factory=dict)
    pretrained: str | None = None


@dataclass(frozen=True)
class DataConfig:
    """Datasets and targets. Without ``train_ann``, synthetic data of ``schema`` is generated.

    ``schema``: a built-in name or YAML path; default: the training file's category (synthetic
    data: ``coco_person``).
    ``synth``: the synthetic training set (``synth.num_images`` images; its ``seed`` makes the
    files); the validation set is ``synth_val_images`` more images of the same kind (another
    split of the same seed, so none repeats a training image). The default is small images of
    one or two large figures with part-colored limbs, which ``paf_tiny`` learns in minutes on a
    CPU; ``posekit synth``'s own defaults are harder (up to 6 figures at 368 x 368).
    ``augment``: the whole-image augmentation of bottom-up models; ``crop``: the person crops of
    top-down models (``data.crops.CropConfig``: MMPose's COCO recipe; the crop size is the codec's
    ``input_size``).
    """

    schema: str | None = None
    train_ann: str | None = None
    train_images: str | None = None
    val_ann: str | None = None
    val_images: str | None = None
    category_id: int | None = None
    synth: SynthConfig = field(default_factory=lambda: DEMO_SYNTH)
    synth_val_images: int = 100
    workers: int = 2
    augment: AugmentConfig = field(default_factory=lambda: DEMO_AUGMENT)
    crop: CropConfig = field(default_factory=CropConfig)

    def __post_init__(self) -> None:
        _check(
            (self.train_ann is None) == (self.train_images is None),
            "train_ann",
            "train_ann and train_images go together",
        )
        _check(
            (self.val_ann is None) == (self.val_images is None),
            "val_ann",
            "val_ann and val_images go together",
        )
        _check(self.workers >= 0, "workers", "must be >= 0")
        _check(self.synth_val_images > 0, "synth_val_images", "must be > 0")


@dataclass(frozen=True)
class OptimConfig:
    """Optimizer: ``sgd`` (with ``nesterov``), ``adam`` or ``adamw``."""

    name: str = "adam"
    lr: float = 3e-3
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        _check(self.name in OPTIMIZERS, "name", f"must be one of {OPTIMIZERS}, got {self.name!r}")
        _check(self.lr > 0, "lr", "must be > 0")
        _check(self.weight_decay >= 0, "weight_decay", "must be >= 0")


@dataclass(frozen=True)
class ScheduleConfig:
    """Learning-rate schedule: ``constant``, ``step`` (``milestones`` in epochs, ``gamma``),
    ``cosine`` (to ``min_lr``) or ``plateau`` (ReduceLROnPlateau on val AP, ``patience``,
    ``gamma``); linear warmup over ``warmup_iters``."""

    kind: str = "cosine"
    warmup_iters: int = 50
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    patience: int = 3
    min_lr: float = 1e-5

    def __post_init__(self) -> None:
        _check(self.kind in SCHEDULES, "kind", f"must be one of {SCHEDULES}, got {self.kind!r}")
        _check(self.warmup_iters >= 0, "warmup_iters", "must be >= 0")
        _check(0 < self.gamma <= 1, "gamma", "must be in (0, 1]")
        _check(list(self.milestones) == sorted(self.milestones), "milestones", "must increase")


@dataclass(frozen=True)
class TrainConfig:
    """The training loop.

    ``amp``: mixed precision: float16 autocast with loss scaling on CUDA, bfloat16 autocast on
    CPUs with native bfloat16 (AVX512-BF16 / AMX: about twice as fast), float32 elsewhere.
    ``val_flip``: validate with flip test (maps of the image and of its mirror averaged, as
    ``posekit eval --flip``), the usual protocol, when the skeleton is left/right symmetric;
    false halves the validation time.
    ``fg_weights``: the loss weight of foreground errors, (heatmaps, PAFs): a keypoint heatmap
    cell's squared error weighs ``1 + a * target``, a PAF cell's on a limb ``1 + b``
    (``models.losses.BottomUpLoss``; top-down heatmap codecs use ``a``: ``KeypointMSELoss``);
    ``[0, 0]`` is Lightweight OpenPose's (and MMPose's) plain loss.
    ``ema``: the decay of an exponential moving average of the weights (``engine.ema``), e.g.
    0.999; the average is validated, chosen as ``best.pt`` and shipped; null trains without one.
    """

    epochs: int = 25
    batch_size: int = 8
    frozen_backbone_epochs: int = 0
    stage_loss_weights: tuple[float, ...] | None = None
    fg_weights: tuple[float, float] = (10.0, 4.0)
    amp: bool = True
    channels_last: bool = True
    grad_clip: float | None = None
    seed: int = 0
    device: str = "auto"
    checkpoint_every: int = 200
    val_every: int = 1
    val_flip: bool = True
    max_bad_steps: int = 5
    log_images: int = 4
    ema: float | None = None

    def __post_init__(self) -> None:
        _check(self.epochs > 0, "epochs", "must be > 0")
        _check(self.ema is None or 0 < self.ema < 1, "ema", "must be in (0, 1) or null")
        _check(self.batch_size > 0, "batch_size", "must be > 0")
        _check(self.frozen_backbone_epochs >= 0, "frozen_backbone_epochs", "must be >= 0")
        _check(self.grad_clip is None or self.grad_clip > 0, "grad_clip", "must be > 0 or null")
        _check(self.checkpoint_every > 0, "checkpoint_every", "must be > 0 (iterations)")
        _check(self.val_every > 0, "val_every", "must be > 0 (epochs)")
        _check(self.max_bad_steps > 0, "max_bad_steps", "must be > 0")
        weights = self.stage_loss_weights
        _check(
            weights is None or all(w >= 0 for w in weights), "stage_loss_weights", "must be >= 0"
        )
        fg = self.fg_weights
        _check(
            len(fg) == 2 and all(w >= 0 for w in fg),
            "fg_weights",
            f"must be two numbers >= 0 (heatmaps, PAFs), got {list(fg)}",
        )


@dataclass(frozen=True)
class Config:
    """A whole training run.

    ``codec``: the target encoding, ``name`` (a ``posekit.codecs.CODECS`` key; default the model's
    codec) and its parameters (PAF: ``stride``, ``sigma``, ``paf_width``); unset ones take the
    codec's defaults. Checked when the run starts.
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    codec: dict[str, Any] = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    out: str = "runs/train"


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> Config:
    """Defaults, updated by the YAML file at ``path``, then by ``section.key=value`` overrides.

    Override values are parsed as YAML (``train.epochs=5``, ``schedule.milestones=[10,15]``,
    ``model.pretrained=null``).
    """
    spec: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        try:
            loaded = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: invalid YAML: {exc}") from None
        if loaded is not None and not isinstance(loaded, Mapping):
            raise ConfigError(
                f"{path}: expected a mapping of sections, got {type(loaded).__name__}"
            )
        spec = dict(loaded or {})
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r}: expected section.key=value")
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {item!r}: value is not valid YAML: {exc}") from None
        node = spec
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = node.get(part)
            node[part] = dict(child) if isinstance(child, Mapping) else {}
            node = node[part]
        node[parts[-1]] = parsed
    _rename_old_keys(spec)
    return _build(Config, spec, "")


_RENAMED = {  # old key path -> (new key path, value converter); loaded with a warning
    ("data", "synth_train_images"): (("data", "synth", "num_images"), lambda v: v),
    ("data", "synth_image_size"): (
        ("data", "synth", "image_size"),
        lambda v: [v, v] if isinstance(v, int) else v,
    ),
    ("data", "stride"): (("codec", "stride"), lambda v: v),
    ("data", "sigma"): (("codec", "sigma"), lambda v: v),
    ("data", "paf_width"): (("codec", "paf_width"), lambda v: v),
    ("model", "num_refinement_stages"): (
        ("model", "options", "num_refinement_stages"),
        lambda v: v,
    ),
}


def _rename_old_keys(spec: dict[str, Any]) -> None:
    """Accept the keys of earlier posekit configs under their new names, with a deprecation
    warning: ``data.synth_train_images`` / ``data.synth_image_size`` (now under ``data.synth``),
    ``data.stride`` / ``sigma`` / ``paf_width`` (now ``codec.*``), ``model.num_refinement_stages``
    (now ``model.options.num_refinement_stages``). A value given under the new name wins."""
    for (section, old), (new, convert) in _RENAMED.items():
        old_node = spec.get(section)
        if not isinstance(old_node, Mapping) or old not in old_node:
            continue
        spec[section] = old_node = dict(old_node)
        value = old_node.pop(old)
        warnings.warn(
            f"config key {section}.{old} is now {'.'.join(new)}", DeprecationWarning, stacklevel=3
        )
        node = spec
        for part in new[:-1]:
            child = node.get(part)
            node[part] = dict(child) if isinstance(child, Mapping) else {}
            node = node[part]
        node.setdefault(new[-1], convert(value))


def config_to_dict(config: Any) -> dict[str, Any]:
    """A config dataclass as plain YAML/JSON data (tuples become lists)."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    return plain(config)


def save_config(config: Config, path: str | Path) -> Path:
    """Write the resolved config as YAML (loadable with ``load_config``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))
    return path


# ---------------------------------------------------------------------- building
def _build(cls: type, spec: Any, prefix: str, base: Any = None) -> Any:
    """``cls`` from a mapping; keys it does not give keep the values of ``base`` (an instance of
    ``cls``) or the class defaults. A nested section starts from its field's default value, so
    ``data.synth.num_images=8`` changes one key of the default synthetic set."""
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {spec!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    names = list(fields)
    kwargs = {}
    for key, value in spec.items():
        where = f"{prefix}{key}"
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f"; did you mean '{prefix}{close[0]}'?" if close else f"; known: {names}"
            raise ConfigError(f"{where}: unknown key{hint}")
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            default = getattr(base, key) if base is not None else _field_default(fields[key])
            kwargs[key] = _build(tp, value, f"{where}.", default)
        else:
            kwargs[key] = _coerce(tp, value, where)
    try:
        return dataclasses.replace(base, **kwargs) if base is not None else cls(**kwargs)
    except ConfigError as exc:
        raise ConfigError(f"{prefix}{exc}" if prefix else str(exc)) from None


def _field_default(f: dataclasses.Field) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None if f.default is dataclasses.MISSING else f.default


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, f"{where}.")
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {value!r}")
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return {str(k): v for k, v in value.items()}
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        args = typing.get_args(tp)
        item = args[0] if args else Any
        return tuple(_coerce(item, v, f"{where}[{i}]") for i, v in enumerate(value))
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads 3e-3 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    raise ConfigError(f"{where}: unsupported type {tp}")  # pragma: no cover - a config bug
