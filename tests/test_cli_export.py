"""``posekit export`` and ``--backend`` end to end: export a checkpoint, predict and evaluate the
file with ONNX Runtime (also in a process where torch cannot be imported), same poses and AP as
torch; bad input gives one clear line and exit code 2."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from posekit.cli import main
from tests.cli_inputs import FAST, IMAGES
from tests.conftest import REPO

FAST_ORT = ["--height", "128", "--threads", "1"]


def _posekit(*args) -> int:
    return main([str(a) for a in args])


@pytest.fixture(scope="module")
def exported(checkpoint, coco_val, tmp_path_factory):
    """The peaky Lightweight OpenPose checkpoint exported with ``posekit export``."""
    out = tmp_path_factory.mktemp("cli_export") / "model.onnx"
    photos = tmp_path_factory.mktemp("photos")
    for name in IMAGES:
        (photos / name).symlink_to((coco_val[1] / name).resolve())
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert _posekit("export", "--checkpoint", checkpoint, "--out", out,
                        "--parity-images", photos) == 0  # fmt: skip
    out.with_suffix(".txt").write_text(printed.getvalue())  # what export printed
    return out


def _poses(path):
    return sorted((r["image_id"], r["score"], r["keypoints"]) for r in json.loads(path.read_text()))


def _assert_same_poses(got, want):
    """Same poses up to float32 noise between the backends: the export's parity bound (0.5
    input px; here image px at about 1.7 image px per input px, height 128) and scores within
    1e-3; exact equality of rounded values flips with the CPU's kernels."""
    assert len(got) == len(want)
    for (gi, gs, gk), (wi, ws, wk) in zip(got, want, strict=True):
        g, w = np.array(gk).reshape(-1, 3), np.array(wk).reshape(-1, 3)
        assert gi == wi and abs(gs - ws) < 1e-3
        np.testing.assert_array_equal(g[:, 2] > 0, w[:, 2] > 0)
        assert np.abs(g[:, :2] - w[:, :2]).max() <= 1.0


def test_export_prints_the_file_and_its_parity(exported):
    out = exported.with_suffix(".txt").read_text()
    assert exported.is_file()
    assert "opset 18, float32" in out and "dynamic height and width" in out
    assert "parity float32: 21 inputs at 3 size(s)" in out and "OKS agreement 1.0000" in out
    poses = int(re.search(r"; (\d+) poses on 7 images", out).group(1))
    assert poses > 20  # the peaky maps give many poses on the photos and synthetic images


def test_predict_with_onnxruntime_matches_torch(exported, checkpoint, coco_val, tmp_path):
    image = coco_val[1] / IMAGES[1]
    assert _posekit("predict", image, "--checkpoint", checkpoint, "--json",
                    tmp_path / "torch.json", *FAST) == 0  # fmt: skip
    assert _posekit("predict", image, "--checkpoint", exported, "--json",
                    tmp_path / "ort.json", *FAST_ORT, "--spinning", "off") == 0  # fmt: skip
    assert _posekit("predict", image, "--checkpoint", checkpoint, "--backend", "onnxruntime",
                    "--json", tmp_path / "mem.json", *FAST_ORT) == 0  # fmt: skip
    torch_poses = _poses(tmp_path / "torch.json")
    assert len(torch_poses) > 0
    _assert_same_poses(_poses(tmp_path / "ort.json"), torch_poses)
    _assert_same_poses(_poses(tmp_path / "mem.json"), torch_poses)


def test_predict_and_eval_an_onnx_file_without_torch(exported, coco_val, subset, tmp_path):
    """A process where ``import torch`` fails runs the exported file (a torch-free install)."""
    blocker = tmp_path / "no_torch"
    (blocker / "torch").mkdir(parents=True)
    (blocker / "torch" / "__init__.py").write_text("raise ImportError('torch is blocked')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocker), str(REPO)])}
    image = coco_val[1] / IMAGES[0]
    code = (
        "import sys; from posekit.cli import main; "
        f"rc = main(['predict', {str(image)!r}, '--checkpoint', {str(exported)!r}, "
        f"'--json', {str(tmp_path / 'r.json')!r}, '--height', '128']); "
        f"rc += main(['eval', '--checkpoint', {str(exported)!r}, '--ann', {str(subset[0])!r}, "
        f"'--images', {str(subset[1])!r}, '--height', '128']); "
        "assert 'torch' not in sys.modules or sys.modules['torch'] is None; sys.exit(rc)"
    )
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "torch is blocked" not in run.stderr
    assert len(json.loads((tmp_path / "r.json").read_text())) > 0
    assert "3 images" in run.stdout and "AP" in run.stdout  # the eval table


def test_eval_with_onnxruntime_gives_the_torch_ap(exported, checkpoint, subset, capsys):
    ann, images = subset
    lines = {}
    for name, model in (("torch", checkpoint), ("ort", exported)):
        assert _posekit("eval", "--checkpoint", model, "--ann", ann, "--images", images,
                        *FAST) == 0  # fmt: skip
        lines[name] = capsys.readouterr().out.splitlines()[-1]  # the AP table's values
    assert lines["ort"] == lines["torch"]


def _bad_cases(tmp_path, checkpoint, exported, image):
    predict = ["predict", str(image), "--json", str(tmp_path / "r.json")]
    return {
        "unknown format": (
            [
                "export",
                "--checkpoint",
                str(checkpoint),
                "--out",
                str(tmp_path / "m.onnx"),
                "--format",
                "tflite",
            ],
            "unknown export format 'tflite'",
        ),  # fmt: skip
        "missing checkpoint": (
            [
                "export",
                "--checkpoint",
                str(tmp_path / "none.pt"),
                "--out",
                str(tmp_path / "m.onnx"),
            ],
            "checkpoint not found",
        ),
        "export an export": (
            ["export", "--checkpoint", str(exported), "--out", str(tmp_path / "m.onnx")],
            "is already an exported file",
        ),
        "onnx with torch": (
            [*predict, "--checkpoint", str(exported), "--backend", "torch"],
            "is an ONNX file: use --backend onnxruntime or openvino",
        ),
        "bf16 with onnxruntime": (
            [*predict, "--checkpoint", str(exported), "--bf16"],
            "--bf16 is a torch setting",
        ),
        "spinning with torch": (
            [*predict, "--checkpoint", str(checkpoint), "--spinning", "on"],
            "--spinning / --optimization are ONNX Runtime settings",
        ),
        "calibration without int8": (
            [
                "export",
                "--checkpoint",
                str(checkpoint),
                "--out",
                str(tmp_path / "m.onnx"),
                "--calibration",
                str(tmp_path),
            ],
            "--calibration goes with --int8",
        ),  # fmt: skip
    }


CASES = ("unknown format", "missing checkpoint", "export an export", "onnx with torch",
         "bf16 with onnxruntime", "spinning with torch", "calibration without int8")  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_clear_error(case, exported, checkpoint, coco_val, tmp_path, capsys):
    argv, message = _bad_cases(tmp_path, checkpoint, exported, coco_val[1] / IMAGES[0])[case]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and message in err[-1]


def test_openvino_backend_when_installed(exported, checkpoint, coco_val, tmp_path):
    pytest.importorskip("openvino")
    image = coco_val[1] / IMAGES[1]
    for name, model, extra in (("torch", checkpoint, []),
                               ("ov", exported, ["--backend", "openvino"])):  # fmt: skip
        assert _posekit("predict", image, "--checkpoint", model, "--json",
                        tmp_path / f"{name}.json", *FAST, *extra) == 0  # fmt: skip
    want = _poses(tmp_path / "torch.json")
    assert len(want) > 0
    _assert_same_poses(_poses(tmp_path / "ov.json"), want)  # float32, also where bf16 is native


def test_openvino_under_a_onednn_cap_runs_or_says_how_to_go_on(exported, coco_val, tmp_path):
    """ONEDNN_MAX_CPU_ISA (the slow-class emulation) also caps OpenVINO's bundled oneDNN; on a
    CPU with more than AVX2 its convolutions then fail to initialise. The run either works (a CPU
    the cap does not limit) or ends in one line that names the variable and the way on."""
    pytest.importorskip("openvino")
    out = tmp_path / "ov.json"
    argv = [sys.executable, "-m", "posekit", "predict", str(coco_val[1] / IMAGES[1]),
            "--checkpoint", str(exported), "--backend", "openvino", "--json", str(out),
            *map(str, FAST)]  # fmt: skip
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2"}
    run = subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    if run.returncode == 0:
        assert len(_poses(out)) > 0
    else:
        last = run.stderr.strip().splitlines()[-1]
        assert run.returncode == 2, run.stderr
        assert "ONEDNN_MAX_CPU_ISA=AVX2" in last and "--backend onnxruntime" in last, last
