"""Inference: preprocessing from the model's input spec, a runtime that runs the network, and one
predictor per method family on top of them.

``PREDICTORS`` is the one table of predictors by family (a new family adds its predictor file and
one entry here); ``create_predictor`` picks the predictor of a codec's family for a torch model.
``models.loading.LoadedModel.predictor`` does the same for a loaded checkpoint. Only
``inference.torch_runtime`` imports torch: preprocessing, predictors and decoding are NumPy /
OpenCV, so another runtime (an exported file) can run without PyTorch.

Speed settings (OpenMP): with other jobs on the cores, OpenMP's default spin-waiting can make a
forward pass many times slower; ``posekit predict``/``eval`` set ``OMP_WAIT_POLICY=PASSIVE``, set it
yourself before ``import torch`` when using the library.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from posekit.codecs.base import Codec
from posekit.codecs.paf import PafCodec, PafDecodeConfig
from posekit.errors import ConfigError
from posekit.inference.bottomup import BottomUpPredictor, Maps
from posekit.inference.runtime import PRECISIONS, Runtime
from posekit.inference.topdown import TopDownPredictor
from posekit.schema import KeypointSchema
from posekit.structures import InputSpec

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = [
    "PRECISIONS",
    "PREDICTORS",
    "BottomUpPredictor",
    "Maps",
    "Predictor",
    "Runtime",
    "TopDownPredictor",
    "create_predictor",
]

PREDICTORS: Mapping[str, Any] = MappingProxyType(
    {BottomUpPredictor.family: BottomUpPredictor, TopDownPredictor.family: TopDownPredictor}
)
"""Predictor classes by family; each takes ``(runtime, codec, input_spec, **options)``."""


def create_predictor(
    model: nn.Module,
    codec: Codec,
    input_spec: InputSpec | None = None,
    *,
    device: str | torch.device = "cpu",
    precision: str = "float32",
    channels_last: bool = True,
    fold_batchnorm: bool = True,
    **options: Any,
) -> Any:
    """The predictor of ``codec.family`` running ``model`` in a ``TorchRuntime``.

    Args:
        model, codec, input_spec: the network, its codec and its preprocessing.
        device, precision, channels_last, fold_batchnorm: see ``TorchRuntime``.
        options: the family's predictor options (bottom-up: ``input_height``, ``scales``,
            ``flip``, ``decode_config``; top-down: ``flip``, ``padding``, ``max_batch``,
            ``nms_threshold``, ...).
    """
    from posekit.inference.torch_runtime import TorchRuntime  # torch only to run a torch module

    if codec.family not in PREDICTORS:
        raise ConfigError(f"no predictor for family {codec.family!r}; known: {sorted(PREDICTORS)}")
    runtime = TorchRuntime(
        model,
        device=device,
        channels_last=channels_last,
        fold_batchnorm=fold_batchnorm,
        precision=precision,
    )
    return PREDICTORS[codec.family](runtime, codec, input_spec, **options)


def Predictor(  # noqa: N802 - the class name of posekit 0.1, kept as its constructor
    model: nn.Module,
    schema: KeypointSchema,
    *,
    codec: PafCodec | None = None,
    input_height: int = 256,
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
    device: str | torch.device = "cpu",
    decode_config: PafDecodeConfig | None = None,
    channels_last: bool = True,
    fold_batchnorm: bool = True,
    precision: str = "float32",
) -> BottomUpPredictor:
    """A ``BottomUpPredictor`` of a torch PAF model, with posekit 0.1's signature.

    ``codec`` defaults to ``PafCodec(schema)`` with the model's ``stride`` (8 when absent); the
    input spec is posekit's PAF preprocessing (BGR, ``(pixel - 128) / 256``, zero padding).
    """
    if codec is None:
        codec = PafCodec(schema, stride=int(getattr(model, "stride", 8)))
    elif codec.schema != schema:
        raise ConfigError(f"codec schema '{codec.schema.name}' is not '{schema.name}'")
    predictor: BottomUpPredictor = create_predictor(
        model,
        codec,
        InputSpec(size_divisor=codec.stride),
        device=device,
        precision=precision,
        channels_last=channels_last,
        fold_batchnorm=fold_batchnorm,
        input_height=input_height,
        scales=scales,
        flip=flip,
        decode_config=decode_config,
    )
    return predictor
