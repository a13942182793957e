"""Exceptions for bad user input: each says what was expected, what was found, and where."""

from __future__ import annotations


class PosekitError(Exception):
    """Base class of every error posekit raises for bad input."""


class SchemaError(PosekitError, ValueError):
    """A keypoint schema is invalid (names the offending field)."""


class DatasetError(PosekitError, ValueError):
    """An annotation file or image is invalid (names the file, image id and annotation id)."""


class ConfigError(PosekitError, ValueError):
    """A configuration value is invalid (names the config key)."""


class CheckpointError(PosekitError, ValueError):
    """A checkpoint or weights file is missing, truncated, of another format or does not fit."""


class WeightsDownloadError(PosekitError, OSError):
    """Published weights could not be downloaded (offline, URL unreachable); names the cache path."""


class TrainingError(PosekitError, RuntimeError):
    """Training cannot go on (e.g. the loss stayed non-finite for several steps)."""


class ExportError(PosekitError, RuntimeError):
    """An export failed (the exporter, ``onnx.checker``, a runtime load, the parity gate)."""
