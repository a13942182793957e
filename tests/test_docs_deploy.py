"""docs/deploy.md's plain ONNX Runtime example runs as written and gives the predictor's poses."""

from __future__ import annotations

import re

import cv2
import numpy as np

from tests.conftest import REPO

DOC = REPO / "docs" / "deploy.md"


def _plain_ort_block() -> str:
    text = DOC.read_text()
    section = text[text.index("### Plain ONNX Runtime") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_plain_onnxruntime_example(paf_tiny_export):
    loaded, result = paf_tiny_export
    onnx_file = result.path
    photo = REPO / "tests/fixtures/000000000002.png"
    code = _plain_ort_block()
    assert '"model.onnx"' in code and '"photo.jpg"' in code
    code = code.replace('"model.onnx"', repr(str(onnx_file))).replace(
        '"photo.jpg"', repr(str(photo))
    )
    scope: dict = {}
    exec(compile(code, str(DOC), "exec"), scope)  # noqa: S102 - the documentation's own code
    expected = loaded.predictor().predict(cv2.imread(str(photo)))
    poses = scope["poses"]
    assert len(poses) == len(expected) > 0
    for p, q in zip(poses, expected, strict=True):
        assert np.allclose(p.keypoints, q.keypoints, atol=1e-2)
