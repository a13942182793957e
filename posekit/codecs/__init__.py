"""Codecs: training targets and their decoding into poses, one small file per codec.

``CODECS`` is the one table of codecs by name (a new codec is a new file plus one entry here);
``build_codec`` makes one from a name and parameters (a config's ``codec:`` section),
``codec_from_dict`` from a checkpoint record. The protocol they satisfy is ``codecs.base.Codec``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from posekit.codecs.base import Codec, OutputLayout, OutputSpec, Targets
from posekit.codecs.heatmap import DarkHeatmap, HeatmapCodec, MsraHeatmap, UdpHeatmap
from posekit.codecs.paf import PafCodec
from posekit.codecs.regression import RegressionCodec, RleCodec
from posekit.codecs.simcc import SimccCodec
from posekit.errors import ConfigError
from posekit.schema import KeypointSchema

__all__ = [
    "CODECS",
    "Codec",
    "DarkHeatmap",
    "HeatmapCodec",
    "MsraHeatmap",
    "OutputLayout",
    "OutputSpec",
    "PafCodec",
    "RegressionCodec",
    "RleCodec",
    "SimccCodec",
    "Targets",
    "UdpHeatmap",
    "build_codec",
    "codec_from_dict",
]

CODECS: Mapping[str, Any] = MappingProxyType(
    {
        cls.name: cls
        for cls in (
            PafCodec,
            HeatmapCodec,
            MsraHeatmap,
            DarkHeatmap,
            UdpHeatmap,
            SimccCodec,
            RegressionCodec,
            RleCodec,
        )
    }
)
"""Codec classes by name; each has ``from_dict(schema, record)`` and the ``Codec`` protocol."""


def build_codec(name: str, schema: KeypointSchema, **params: Any) -> Codec:
    """The codec ``name`` for ``schema`` with ``params`` (the rest at their defaults).

    Raises:
        ConfigError: unknown codec name or parameter, or an invalid value.
    """
    return codec_from_dict(schema, {"name": name, **params})


def codec_from_dict(schema: KeypointSchema, record: Mapping[str, Any]) -> Codec:
    """The codec of a checkpoint record (``Codec.to_dict()``; posekit 0.1 wrote the name under
    ``"codec"``).

    Raises:
        ConfigError: the record names no known codec, or holds parameters it does not take.
    """
    if not isinstance(record, Mapping):
        raise ConfigError(f"codec record must be a mapping, got {record!r}")
    name = record.get("name", record.get("codec"))
    if name not in CODECS:
        raise ConfigError(f"unknown codec {name!r}; available: {sorted(CODECS)}")
    codec: Codec = CODECS[name].from_dict(schema, record)
    return codec
