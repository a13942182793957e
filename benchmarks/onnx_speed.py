"""The exported-model pipelines of ``benchmarks/predict_speed.py``: the same lwop_mobilenet
network exported with ``posekit.export`` (parity gate included) and run by ONNX Runtime in
float32 and int8 (static QDQ, calibrated on COCO-MINI train photos), and by OpenVINO when it is
installed; posekit's preprocessing and decoding around each, as ``posekit predict --backend``.

``exported_predictors`` builds them; ``forward_rows`` times their network alone on one input.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from torch import nn

from posekit.data.images import list_images
from posekit.export import export_model
from posekit.models.loading import load_model

CALIBRATION = Path(__file__).resolve().parents[1].parent / "shared/data/coco_mini/images/train2017"


def _openvino_available() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def exported_predictors(
    model: nn.Module, height: int, threads: int, *, calibration_images: int = 32
) -> tuple[dict[str, object], dict[str, float]]:
    """Predictors of ``model`` (lwop_mobilenet, openpose18) exported to ONNX, by pipeline name,
    and the export seconds of each file."""
    loaded = load_model(weights="lwop_mobilenet", random_weights=True, schema="openpose18")
    loaded.model.load_state_dict(model.state_dict())
    folder = Path(tempfile.mkdtemp(prefix="posekit_bench_"))
    photos = [cv2.imread(str(p)) for p in list_images(CALIBRATION)[:calibration_images]]
    fp32 = export_model(loaded, folder / "lwop.onnx", photos=photos[:4])
    int8 = export_model(loaded, folder / "lwop_int8.onnx", photos=photos[:4], int8=True,
                        calibration=photos)  # fmt: skip
    seconds = {"export fp32": fp32.seconds, "export int8": int8.seconds}
    out: dict[str, object] = {}
    for name, result in (("fp32", fp32), ("int8", int8)):
        exported = load_model(result.path)
        out[f"posekit, ONNX Runtime {name}"] = exported.predictor(
            input_height=height, runtime_settings={"threads": threads}
        )
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA")
    if _openvino_available() and cap:
        print(f"OpenVINO skipped: ONEDNN_MAX_CPU_ISA={cap} caps its own oneDNN too, and its "
              "convolutions then fail on this CPU")  # fmt: skip
    elif _openvino_available():
        exported = load_model(fp32.path)
        out["posekit, OpenVINO fp32"] = exported.predictor(
            backend="openvino", input_height=height, runtime_settings={"threads": threads}
        )
    return out, seconds


def forward_rows(
    predictors: dict[str, object], x_nhwc: np.ndarray, repeats: int
) -> dict[str, float]:
    """Median network ms of each predictor's runtime on one (1, H, W, 3) input (interleaved)."""
    times: dict[str, list[float]] = {name: [] for name in predictors}
    for p in predictors.values():  # warm up (ONNX Runtime plans memory on the first run)
        p.runtime.run(x_nhwc)
    for _ in range(repeats):
        for name, p in predictors.items():
            start = time.perf_counter()
            p.runtime.run(x_nhwc)
            times[name].append(time.perf_counter() - start)
    return {name: 1e3 * statistics.median(v) for name, v in times.items()}
