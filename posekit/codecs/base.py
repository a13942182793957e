"""The codec protocol: what every target encoding and its decoding give the rest of posekit.

A codec turns keypoints into training targets at the network's output resolution (``encode``) and
network outputs back into poses (``decode``). Everything else reads what it needs from the codec:

- model heads and losses take their channel counts from ``codec.layout`` (never a second
  ``out_channels=17``); a network returns its outputs in the layout's order;
- inference maps outputs back with ``output_to_input_matrix`` and, for flip test, ``unflip``;
- checkpoints store ``to_dict()`` (which carries the codec's ``name``) and rebuild it with
  ``codecs.codec_from_dict``; ``family`` says which task trains it and which predictor runs it.

Frames: input pixels -> output pixels is one (2, 3) affine per codec, pixel centers at integer
coordinates (``posekit.geometry``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from posekit.errors import ConfigError
from posekit.schema import KeypointSchema
from posekit.structures import Pose

__all__ = [
    "FAMILIES",
    "ArrayLike",
    "Codec",
    "OutputLayout",
    "OutputSpec",
    "Targets",
    "check_params",
]

FAMILIES = ("bottomup", "topdown")
"""Method families: ``bottomup`` (one pass over the whole image, then grouping) and ``topdown``
(one pass per person crop)."""

ArrayLike = Any
"""np.ndarray or torch.Tensor (codecs convert with ``.detach().cpu()``, never importing torch)."""


@dataclass(frozen=True)
class OutputSpec:
    """One network output as a codec reads it.

    Attributes:
        name: key of the output (``"heatmaps"``), also the ``kind`` of the head that makes it.
        channels: number of channels.
        label: short name for messages (``"heatmap"`` -> "heatmap head has ...").
        formula: how ``channels`` follows from the schema, for messages (``"K+1"``).
        shape: sizes a head must give each channel beyond what the input size sets: ``()`` for
            maps at the output stride, ``(bins,)`` for 1-D distributions (SimCC), ``(2,)`` for
            coordinates (regression).
    """

    name: str
    channels: int
    label: str
    formula: str
    shape: tuple[int, ...] = ()


@dataclass(frozen=True)
class OutputLayout:
    """The outputs of a network, in the order it returns them (see ``OutputSpec``)."""

    outputs: tuple[OutputSpec, ...]

    @property
    def names(self) -> tuple[str, ...]:
        """Output names, in order."""
        return tuple(o.name for o in self.outputs)

    @property
    def channels(self) -> tuple[int, ...]:
        """Channel counts, in order."""
        return tuple(o.channels for o in self.outputs)

    def __getitem__(self, name: str) -> OutputSpec:
        for spec in self.outputs:
            if spec.name == name:
                return spec
        raise KeyError(f"no output {name!r} in the layout {self.names}")

    def __iter__(self) -> Iterator[OutputSpec]:
        return iter(self.outputs)

    def __len__(self) -> int:
        return len(self.outputs)


@dataclass(frozen=True)
class Targets:
    """Base of a codec's training targets: named float32 arrays at the output resolution.

    A codec subclasses it with its own fields (``PafTargets``: heatmaps, pafs, mask); ``arrays``
    hands them to the training batch by name.
    """

    def arrays(self) -> dict[str, np.ndarray]:
        """The targets by field name."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


@runtime_checkable
class Codec(Protocol):
    """What posekit needs of a codec (``PafCodec`` and the top-down codecs satisfy it).

    Attributes:
        name: key in ``codecs.CODECS``, written into checkpoints.
        family: ``"bottomup"`` or ``"topdown"``.
        schema: the keypoint schema it encodes.
        stride: input pixels per output cell.
    """

    name: ClassVar[str]
    family: ClassVar[str]
    schema: KeypointSchema
    stride: int

    @property
    def layout(self) -> OutputLayout:
        """The network outputs this codec reads, in order."""
        ...

    @property
    def supports_flip(self) -> bool:
        """Whether ``unflip`` can map outputs of a mirrored input back (flip test)."""
        ...

    def input_to_output_matrix(self) -> np.ndarray:
        """(2, 3) float64 affine: input pixels -> output pixels."""
        ...

    def output_to_input_matrix(self) -> np.ndarray:
        """(2, 3) float64 affine: output pixels -> input pixels (the inverse)."""
        ...

    def output_size(self, input_size: tuple[int, int]) -> tuple[int, int]:
        """(W, H) of the outputs for an input of size (W, H); ConfigError if it does not fit."""
        ...

    def encode(
        self,
        keypoints: np.ndarray,
        input_size: tuple[int, int],
        ignore_mask: np.ndarray | None = None,
    ) -> Targets:
        """Targets of one input: keypoints (N, K, 3) in input pixels, visibility 0/1/2."""
        ...

    def decode(
        self, *outputs: ArrayLike, affine: np.ndarray | None = None, config: Any = None
    ) -> list[Pose]:
        """Poses of one input's outputs (in layout order, not modified); keypoints in output
        pixels, or in the frame of ``affine`` (output pixels -> that frame)."""
        ...

    def perfect_outputs(self, targets: Any) -> tuple[np.ndarray, ...]:
        """The outputs (layout order) a perfect network gives for ``targets`` (ceilings, tests)."""
        ...

    def unflip(self, *outputs: ArrayLike) -> tuple[np.ndarray, ...]:
        """Outputs of a horizontally mirrored input -> outputs of the input itself."""
        ...

    def to_dict(self) -> dict[str, Any]:
        """Parameters for a checkpoint record, with ``"name"`` (the schema is stored apart)."""
        ...


def check_params(name: str, cls: type, params: dict[str, Any], *, fixed: tuple[str, ...]) -> None:
    """ConfigError naming every key of ``params`` that is not a parameter of dataclass ``cls``
    (its init fields but ``fixed``)."""
    known = [f.name for f in dataclasses.fields(cls) if f.init and f.name not in fixed]
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ConfigError(
            f"codec {name!r}: unknown parameter(s) {unknown}; its parameters are {known}"
        )
