"""ONNX Runtime and OpenVINO as ``inference.runtime.Runtime``s of an exported ONNX file (no torch).

Both take the predictors' (B, H, W, 3) float32 NHWC batches, hand the network its (B, 3, H, W)
NCHW input (one transposing copy) and return the outputs the predictor reads, float32, in the
codec layout's order.

Speed settings (ONNX Runtime): ``threads`` (intra-op threads; default ONNX Runtime's: one per
physical core), ``spinning`` (idle threads spin-wait between operators: lower latency, but on
cores shared with other work, many times slower, the same finding as OpenMP's spinning in
``inference``), ``optimization`` (graph optimisation level: ``"disable"``, ``"basic"``,
``"extended"``, ``"all"``). OpenVINO: ``threads`` and a latency performance hint.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from posekit.errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = ["OPTIMIZATION_LEVELS", "OnnxRuntime", "OpenVinoRuntime"]

OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")


def _nchw(batch: np.ndarray) -> np.ndarray:
    """(B, H, W, 3) -> contiguous (B, 3, H, W) float32."""
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2), dtype=np.float32)


class OnnxRuntime:
    """An ONNX model run by ONNX Runtime on the CPU.

    Args:
        model: the ``.onnx`` file.
        input_name: the graph input.
        outputs: the graph outputs to return, in order.
        threads: intra-op threads (None: ONNX Runtime's default).
        spinning: let idle threads spin-wait (None: ONNX Runtime's default, on).
        optimization: graph optimisation level, one of ``OPTIMIZATION_LEVELS``.
        providers: execution providers (default CPU only).
    """

    def __init__(
        self,
        model: str | Path,
        input_name: str,
        outputs: Sequence[str],
        *,
        threads: int | None = None,
        spinning: bool | None = None,
        optimization: str = "all",
        providers: Sequence[str] = ("CPUExecutionProvider",),
    ) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise ConfigError(
                "the onnxruntime backend needs ONNX Runtime: pip install 'posekit[onnx]' "
                "(or pip install onnxruntime)"
            ) from None
        if optimization not in OPTIMIZATION_LEVELS:
            raise ConfigError(f"optimization must be one of {OPTIMIZATION_LEVELS}, got "
                              f"{optimization!r}")  # fmt: skip
        options = ort.SessionOptions()
        options.graph_optimization_level = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[optimization]
        if threads is not None:
            if threads < 1:
                raise ConfigError(f"threads must be >= 1, got {threads}")
            options.intra_op_num_threads = int(threads)
        if spinning is not None:
            options.add_session_config_entry("session.intra_op.allow_spinning", str(int(spinning)))
        options.log_severity_level = 3  # errors only: ORT warns about every unused initializer
        try:
            self.session = ort.InferenceSession(str(model), options, providers=list(providers))
        except Exception as exc:  # ORT raises its own Fail / InvalidGraph / NoSuchFile types
            raise ConfigError(f"ONNX Runtime cannot load {model}: {exc}") from None
        known = {o.name for o in self.session.get_outputs()}
        missing = [o for o in outputs if o not in known]
        if missing:
            raise ConfigError(f"the ONNX graph has no outputs {missing}; it has {sorted(known)}")
        self.input_name, self.outputs = input_name, list(outputs)

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, ...]:
        """(B, H, W, 3) float32 -> the outputs, float32."""
        out = self.session.run(self.outputs, {self.input_name: _nchw(batch)})
        return tuple(np.asarray(o, dtype=np.float32) for o in out)


class OpenVinoRuntime:
    """An ONNX model compiled by OpenVINO for the CPU (optional: ``pip install
    'posekit[openvino]'``).

    Args:
        model: the ``.onnx`` file.
        outputs: the graph outputs to return, in order.
        threads: inference threads (None: OpenVINO's default).
    """

    def __init__(self, model: str | Path, outputs: Sequence[str], *,
                 threads: int | None = None) -> None:  # fmt: skip
        try:
            import openvino as ov
        except ImportError:
            raise ConfigError(
                "the openvino backend needs OpenVINO: pip install 'posekit[openvino]' (or pip "
                "install openvino), or use --backend onnxruntime"
            ) from None
        # float32 as the file says: on CPUs with native bfloat16 (AVX512-BF16, AMX) OpenVINO's
        # CPU plugin otherwise runs float ops in bfloat16 and the poses drift from the export's
        config: dict[str, str] = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
        if threads is not None:
            if threads < 1:
                raise ConfigError(f"threads must be >= 1, got {threads}")
            config["INFERENCE_NUM_THREADS"] = str(int(threads))
        core = ov.Core()
        network = core.read_model(str(model))
        self.compiled = core.compile_model(network, "CPU", config)
        self.request = self.compiled.create_infer_request()
        names = [p.get_any_name() for p in self.compiled.outputs]
        missing = [o for o in outputs if o not in names]
        if missing:
            raise ConfigError(f"the ONNX graph has no outputs {missing}; it has {sorted(names)}")
        self.ports = [self.compiled.outputs[names.index(o)] for o in outputs]

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, ...]:
        """(B, H, W, 3) float32 -> the outputs, float32."""
        try:
            result = self.request.infer([_nchw(batch)])
        except RuntimeError as error:
            raise self._failure(str(error).strip()) from error
        out = tuple(np.array(result[p], dtype=np.float32) for p in self.ports)
        if any(o.shape[:1] != batch.shape[:1] for o in out):
            shapes = ", ".join(str(o.shape) for o in out)
            raise self._failure(f"outputs {shapes} for a batch of {len(batch)}")
        return out

    @staticmethod
    def _failure(what: str) -> Exception:
        """The error of a failed inference: a ConfigError that says how to go on when
        ONEDNN_MAX_CPU_ISA is set (OpenVINO's CPU plugin bundles oneDNN, which reads the cap too;
        on a CPU with more than the cap allows its convolutions then fail to initialise or give
        empty outputs), else a RuntimeError."""
        cap = os.environ.get("ONEDNN_MAX_CPU_ISA")
        if cap is None:
            return RuntimeError(f"OpenVINO inference failed: {what}")
        return ConfigError(
            f"OpenVINO failed with ONEDNN_MAX_CPU_ISA={cap} set (the variable caps OpenVINO's own "
            "oneDNN as well): unset it for the openvino backend, or use --backend onnxruntime or "
            f"torch. OpenVINO: {what}"
        )
