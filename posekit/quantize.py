"""int8 ONNX: static post-training quantisation with ONNX Runtime's tools.

``quantize_static`` runs ONNX Runtime's model pre-processing (``quant_pre_process``: graph
optimisation and shape inference, what its quantiser expects first), then its static quantiser:
QDQ format, per-channel int8 weights, int8 activations with min-max ranges collected on
calibration images preprocessed exactly as the predictor does (bottom-up: resized to the model's
input height, aspect kept; top-down: the whole image as one person crop). ``float_heads`` keeps
the last convolution before every graph output in float32 (those produce the maps that are
decoded to sub-pixel positions).

Speed is a property of the CPU: int8 convolutions are fast with VNNI (AVX512-VNNI / AVX-VNNI) and
may be slower than float32 without it; ``benchmarks/predict_speed.py`` measures it.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from posekit.errors import ConfigError
from posekit.geometry import box_to_center_size, crop_matrices, place_at_height
from posekit.inference.preprocess import crop_batch, image_batch
from posekit.models.exported import InputShape

logger = logging.getLogger(__name__)

__all__ = ["MAX_CALIBRATION", "calibration_inputs", "quantize_static"]

MAX_CALIBRATION = 200
"""At most this many calibration images are used (min-max ranges settle long before)."""


def calibration_inputs(
    images: Sequence[np.ndarray], loaded: Any, shape: InputShape
) -> Iterator[np.ndarray]:
    """(1, 3, H, W) float32 NCHW network inputs of BGR ``images``, preprocessed as the
    predictor of ``loaded`` (a loaded or exported model) does."""
    spec, codec = loaded.input_spec, loaded.codec
    for image in images[:MAX_CALIBRATION]:
        h, w = image.shape[:2]
        if loaded.family == "topdown":
            cw, ch = codec.input_size  # the whole image as one box, as TopDownPredictor crops it
            centers, sizes = box_to_center_size(np.array([0.0, 0.0, w, h]), cw / ch,
                                                spec.box_padding)  # fmt: skip
            matrix = crop_matrices(centers, sizes, (cw, ch))
            batch = crop_batch(image, matrix, spec)
        else:
            height = shape.height or spec.height
            place = place_at_height((w, h), height, codec.stride)
            if shape.width is not None and place.padded[0] > shape.width:
                place = place_at_height((w, h), int(height * shape.width / place.padded[0]),
                                        codec.stride)  # fmt: skip
            batch = image_batch([image], place, spec)
            if shape.height is not None:  # a fixed-size file: pad as FixedSizeRuntime does
                full = np.full((1, shape.height, int(shape.width or 0), 3), spec.pad_value,
                               np.float32)  # fmt: skip
                full[:, : batch.shape[1], : batch.shape[2]] = batch
                batch = full
        yield np.ascontiguousarray(batch.transpose(0, 3, 1, 2))


def quantize_static(
    source: str | Path,
    out: str | Path,
    loaded: Any,
    shape: InputShape,
    calibration: Sequence[np.ndarray],
    *,
    float_heads: bool = False,
) -> Path:
    """Quantize the float32 ONNX file ``source`` into ``out`` (may be the same path).

    Args:
        source, out: float32 input and int8 output ONNX files.
        loaded: the model (preprocessing and codec of the calibration inputs).
        shape: the file's input.
        calibration: BGR calibration images (at most ``MAX_CALIBRATION`` are used).
        float_heads: keep the final convolution of every output in float32.
    """
    try:
        from onnxruntime import quantization as q
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError:
        raise ConfigError("int8 export needs ONNX Runtime: pip install 'posekit[onnx]'") from None
    import onnx

    if not calibration:
        raise ConfigError("int8 quantisation needs at least one calibration image")
    inputs = list(calibration_inputs(calibration, loaded, shape))
    name = shape.name

    class _Reader(q.CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(inputs)

        def get_next(self) -> dict[str, np.ndarray] | None:
            item = next(self.items, None)
            return None if item is None else {name: item}

    with tempfile.TemporaryDirectory() as folder:
        prepared = Path(folder) / "prepared.onnx"
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=False)
        exclude = _head_convs(onnx.load(str(prepared))) if float_heads else []
        q.quantize_static(
            str(prepared),
            str(out),
            _Reader(),
            quant_format=q.QuantFormat.QDQ,
            per_channel=True,
            activation_type=q.QuantType.QUInt8,
            weight_type=q.QuantType.QInt8,
            nodes_to_exclude=exclude,
            calibrate_method=q.CalibrationMethod.MinMax,
            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
        )
    logger.info("int8: %d calibration images, %d head convolutions kept in float32",
                len(inputs), len(exclude))  # fmt: skip
    return Path(out)


def _head_convs(model: Any) -> list[str]:
    """Names of the last Conv node before each graph output (through element-wise ops)."""
    producer = {o: n for n in model.graph.node for o in n.output}
    names = []
    for output in model.graph.output:
        node = producer.get(output.name)
        while node is not None and node.op_type != "Conv" and node.input:
            node = producer.get(node.input[0])
        if node is not None and node.op_type == "Conv" and node.name not in names:
            names.append(node.name)
    return names
