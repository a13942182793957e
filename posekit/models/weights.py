"""Weights files: published-weights records, the download cache, and checked checkpoint loading.

- ``WeightsInfo`` describes published weights (URL, sha256, schema, preprocessing, metric);
  ``download_weights`` fetches them into the cache directory (argument, else ``$POSEKIT_CACHE``,
  else ``~/.cache/posekit``) and verifies the sha256.
- ``load_checkpoint_into`` reads a checkpoint with ``torch.load(weights_only=True)`` and loads it
  with a key/shape check whose errors say what does not fit (e.g. a checkpoint made for another
  schema: head channels vs the codec layout's; another number of refinement stages).

Accepted checkpoint layouts: the published Lightweight OpenPose training checkpoint
(``{'state_dict': ..., 'optimizer': ..., 'scheduler': ..., 'iter': ..., 'current_epoch': ...}``),
a posekit checkpoint (``{'model': state_dict, 'schema': ..., ...}``, see ``engine.checkpoint``),
or a bare ``state_dict``; a ``module.`` prefix (DataParallel) is removed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from posekit.errors import CheckpointError, WeightsDownloadError
from posekit.models.heads.paf import OutputConv
from posekit.models.record import load_checkpoint
from posekit.schema import KeypointSchema
from posekit.structures import InputSpec

logger = logging.getLogger(__name__)

__all__ = [
    "CACHE_ENV",
    "CheckpointError",
    "LoadResult",
    "WeightsDownloadError",
    "WeightsInfo",
    "download_weights",
    "load_checkpoint_into",
    "read_state_dict",
    "resolve_cache_dir",
    "same_channel_layout",
]


CACHE_ENV = "POSEKIT_CACHE"
"""Environment variable overriding the cache directory (default ``~/.cache/posekit``)."""

_CHUNK = 1 << 20  # bytes read per step when downloading / hashing


# ---------------------------------------------------------------- records


@dataclass(frozen=True)
class WeightsInfo:
    """A published set of weights, described well enough to check it against the model.

    Attributes:
        name: weights name (key of ``WEIGHTS``).
        model: zoo model name these weights are for (key of ``MODELS``).
        url: download address (``https://`` or ``file://``).
        sha256: hex digest of the file; ``None`` while not pinned (the download then logs the
            digest it found instead of verifying it).
        file_name: name of the file in the cache directory.
        schema_name: built-in schema (``KeypointSchema.named``) giving the channel layout.
        model_options: the model builder's keyword arguments of the trained network
            (``{"num_refinement_stages": 1}``).
        num_values: number of floating-point values in the state_dict (parameters and BN
            running statistics; the int64 ``num_batches_tracked`` counters are not counted).
        input: preprocessing the weights expect (``structures.InputSpec``).
        codec: the codec record the weights were trained with (``Codec.to_dict()``).
        reported_ap: COCO keypoint AP reported by the authors, in [0, 1].
        reported_on: where and how ``reported_ap`` was measured.
        source: where the weights come from; license: their license.
        manual_download: ``url`` is a page where a person downloads the file (a shared folder),
            not the file: it is never fetched automatically; put the file into the cache.
    """

    name: str
    model: str
    url: str
    sha256: str | None
    file_name: str
    schema_name: str
    model_options: Mapping[str, Any]
    num_values: int
    input: InputSpec
    codec: Mapping[str, Any]
    reported_ap: float
    reported_on: str
    source: str
    license: str
    manual_download: bool = False

    @property
    def schema(self) -> KeypointSchema:
        """The keypoint schema of the weights' output channels."""
        return KeypointSchema.named(self.schema_name)


@dataclass(frozen=True)
class LoadResult:
    """What a checkpoint load did (all tuples of state_dict keys).

    ``missing``/``unexpected``/``mismatched`` are empty after a strict load; a non-strict load
    skips them and loads the rest (e.g. everything but the heads, to fine-tune on a new schema).
    """

    loaded: tuple[str, ...]
    missing: tuple[str, ...]
    unexpected: tuple[str, ...]
    mismatched: tuple[str, ...]


def same_channel_layout(a: KeypointSchema, b: KeypointSchema) -> bool:
    """True when both schemas give the same meaning to every output channel."""
    return a.keypoints == b.keypoints and a.limbs == b.limbs


# ---------------------------------------------------------------- download and cache


def resolve_cache_dir(cache_dir: str | Path | None = None) -> Path:
    """The cache directory: ``cache_dir`` if given, else ``$POSEKIT_CACHE``, else ``~/.cache/posekit``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path("~/.cache/posekit").expanduser()


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_weights(
    info: WeightsInfo,
    *,
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> Path:
    """Path of the weights file in ``<cache>/weights/<file_name>``, downloading it when missing.

    The download goes to a temporary file in the same folder, is checked against ``sha256`` and
    only then renamed into place, so the cache never holds a partial or wrong file. A cached file
    is checked again before use. To use weights offline, put the file at the returned path.

    Raises:
        WeightsDownloadError: not cached and the URL cannot be read (offline, wrong URL).
        CheckpointError: the downloaded or cached file has another sha256.
    """
    target = resolve_cache_dir(cache_dir) / "weights" / info.file_name
    if target.is_file():
        _verify_sha256(target, info, cached=True)
        return target
    if getattr(info, "manual_download", False):
        raise WeightsDownloadError(
            f"weights {info.name!r} cannot be downloaded automatically: their authors publish "
            f"{info.file_name} in a shared folder ({info.url}); download it there and put it at "
            f"{target}, or pass the file's path"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    logger.info("downloading weights %s from %s to %s", info.name, info.url, target)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{info.file_name}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            _copy_url(info, out, target, progress)
        _verify_sha256(tmp, info, cached=False)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _copy_url(info: WeightsInfo, out: Any, target: Path, progress: bool) -> None:
    try:
        with urllib.request.urlopen(info.url, timeout=60) as response:
            size = response.headers.get("Content-Length")
            with tqdm(
                total=int(size) if size else None,
                unit="B",
                unit_scale=True,
                desc=info.file_name,
                disable=not progress,
            ) as bar:
                for chunk in iter(lambda: response.read(_CHUNK), b""):
                    out.write(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise WeightsDownloadError(
            f"cannot download weights {info.name!r} from {info.url}: {reason}. "
            f"Without network access, fetch {info.file_name} elsewhere and put it at {target}"
        ) from None


def _verify_sha256(path: Path, info: WeightsInfo, *, cached: bool) -> None:
    found = file_sha256(path)
    if info.sha256 is None:
        logger.warning(
            "weights %s have no pinned sha256; %s has sha256 %s (not verified)",
            info.name,
            path,
            found,
        )
        return
    if found != info.sha256.lower():
        what = f"cached file {path}" if cached else f"file downloaded from {info.url}"
        advice = " (delete it to download again)" if cached else "; it was not kept"
        raise CheckpointError(
            f"weights {info.name!r}: {what} has sha256 {found}, expected {info.sha256}{advice}"
        )


# ---------------------------------------------------------------- reading and loading


def _read(source: str | Path | Mapping[str, Any]) -> tuple[Mapping[str, Any], str]:
    """(loaded object, description for messages) of a checkpoint file or an in-memory dict."""
    if isinstance(source, Mapping):
        return source, "<in memory>"
    return load_checkpoint(source), str(source)


def _unwrap(obj: Mapping[str, Any], where: str) -> dict[str, torch.Tensor]:
    """The state_dict inside a training checkpoint / posekit checkpoint / bare state_dict."""
    for key in ("state_dict", "model"):
        if isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    if not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(
            f"checkpoint {where}: no state_dict found (expected a 'state_dict' or 'model' entry, "
            f"or a dict of tensors); top-level keys: {sorted(map(str, obj))[:10]}"
        )
    state = dict(obj)
    if all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def read_state_dict(source: str | Path | Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The state_dict of a checkpoint file (read with ``weights_only=True``) or checkpoint dict."""
    obj, where = _read(source)
    return _unwrap(obj, where)


def _describe(model: nn.Module) -> str:
    schema = getattr(model, "schema", None)
    stages = getattr(model, "num_refinement_stages", None)
    parts = [f"schema {schema.name!r}" if schema is not None else ""]
    if stages is not None:
        parts.append(f"{stages} refinement stage(s)")
    return f"{type(model).__name__}({', '.join(p for p in parts if p)})"


def _stage_index(key: str) -> int | None:
    match = re.match(r"refinement_stages\.(\d+)\.", key)
    return int(match.group(1)) if match else None


def _stage_count(keys: Any) -> int:
    found = [i for i in map(_stage_index, keys) if i is not None]
    return max(found) + 1 if found else 0


def _explain(
    state: Mapping[str, torch.Tensor],
    model: nn.Module,
    missing: list[str],
    unexpected: list[str],
    mismatched: list[str],
) -> list[str]:
    """Why a state_dict does not fit a model: head channels, stage count, then remaining keys."""
    reasons: list[str] = []
    explained: set[str] = set()
    model_state = model.state_dict()
    schema = getattr(model, "schema", None)
    owner = f"the schema {schema.name!r}" if schema is not None else "the model"
    heads = {name: m for name, m in model.named_modules() if isinstance(m, OutputConv)}
    for output in getattr(model, "layout", ()):
        keys = {
            f"{n}.{p}"
            for n, m in heads.items()
            if m.kind == output.name
            for p in ("weight", "bias")
        }
        bad = keys.intersection(mismatched)
        if bad:
            found = sorted({int(state[k].shape[0]) for k in bad if state[k].dim() > 0})
            reasons.append(
                f"{output.label} head has {'/'.join(map(str, found))} channels in the checkpoint, "
                f"{owner} needs {output.formula}={output.channels}"
            )
            explained |= bad
    heads_differ = bool(explained)
    ckpt_stages, model_stages = _stage_count(state), _stage_count(model_state)
    if ckpt_stages != model_stages:
        reasons.append(
            f"the checkpoint has {ckpt_stages} refinement stage(s), the model {model_stages} "
            f"(build it with num_refinement_stages={ckpt_stages})"
        )
        first_extra = min(ckpt_stages, model_stages)
        explained |= {
            k
            for k in missing + unexpected
            if (i := _stage_index(k)) is not None and i >= first_extra
        }
    for label, keys_ in (("missing", missing), ("unexpected", unexpected)):
        rest = [k for k in keys_ if k not in explained]
        if rest:
            reasons.append(f"{len(rest)} {label} key(s): {', '.join(rest[:5])}")
    rest = [k for k in mismatched if k not in explained]
    if rest:
        shown = ", ".join(
            f"{k} {tuple(state[k].shape)} vs {tuple(model_state[k].shape)}" for k in rest[:3]
        )
        hint = " (refinement inputs follow from the head sizes)" if heads_differ else ""
        reasons.append(f"{len(rest)} shape mismatch(es), checkpoint vs model: {shown}{hint}")
    return reasons


def _load_state(
    state: dict[str, torch.Tensor], model: nn.Module, where: str, *, strict: bool
) -> LoadResult:
    model_state = model.state_dict()
    missing = [k for k in model_state if k not in state]
    unexpected = [k for k in state if k not in model_state]
    mismatched = [k for k in model_state if k in state and state[k].shape != model_state[k].shape]
    if strict and (missing or unexpected or mismatched):
        reasons = _explain(state, model, missing, unexpected, mismatched)
        raise CheckpointError(
            f"checkpoint {where} does not fit {_describe(model)}: " + "; ".join(reasons)
        )
    skip = set(missing) | set(mismatched)
    loadable = {k: v for k, v in state.items() if k in model_state and k not in skip}
    if skip or unexpected:
        logger.warning(
            "partial load of %s into %s: %s",
            where,
            _describe(model),
            "; ".join(_explain(state, model, missing, unexpected, mismatched)),
        )
    model.load_state_dict(loadable, strict=not skip)
    return LoadResult(
        loaded=tuple(loadable),
        missing=tuple(missing),
        unexpected=tuple(unexpected),
        mismatched=tuple(mismatched),
    )


def _check_record_schema(obj: Mapping[str, Any], model: nn.Module, where: str) -> None:
    """A posekit checkpoint names its schema: refuse one whose channel layout differs."""
    record = obj.get("schema")
    schema = getattr(model, "schema", None)
    if not isinstance(record, Mapping) or schema is None:
        return
    saved = KeypointSchema.from_dict(record, where=f"checkpoint {where}")
    if not same_channel_layout(saved, schema):
        raise CheckpointError(
            f"checkpoint {where} was trained for schema {saved.name!r} ({saved.num_keypoints} "
            f"keypoints, {saved.num_limbs} limbs); the model has schema {schema.name!r} "
            f"({schema.num_keypoints} keypoints, {schema.num_limbs} limbs) with another layout"
        )


def load_checkpoint_into(
    model: nn.Module,
    source: str | Path | Mapping[str, Any],
    *,
    strict: bool = True,
    where: str | None = None,
) -> LoadResult:
    """Load a checkpoint file, or a checkpoint / state dict in memory, into ``model`` in place.

    Args:
        model: the network (its ``schema`` attribute, if any, is checked against a posekit
            checkpoint's schema record and used in messages).
        source: file (read with ``torch.load(weights_only=True)``) or mapping.
        strict: every key must match in name and shape (default). ``False`` loads what fits and
            logs what does not, e.g. to start training on a new schema from published weights.
        where: the name of an in-memory ``source`` in messages (e.g. the file it was read from).

    Raises:
        CheckpointError: unreadable file, or (strict) a checkpoint that does not fit, with the
            reason (head channels vs the codec layout's, number of refinement stages, keys).
    """
    obj, found = _read(source)
    where = where or found
    if strict:
        _check_record_schema(obj, model, where)
    result = _load_state(_unwrap(obj, where), model, where, strict=strict)
    logger.info("loaded %d tensors from %s into %s", len(result.loaded), where, _describe(model))
    return result
