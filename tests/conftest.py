"""Shared test fixtures: paths to the real datasets in ../shared/data (relative to the repo root)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.checkpoint_files import noisy_lwop, write_posekit_checkpoint
from tests.cli_inputs import IMAGES

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.fail(f"shared test data missing: {path} (expected ../shared/data beside the repo)")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of the real datasets."""
    return _require(SHARED_DATA)


@pytest.fixture(scope="session")
def coco_val(shared_data: Path) -> tuple[Path, Path]:
    """(annotation file, image root) of the COCO-MINI val split."""
    return (
        _require(shared_data / "coco_mini/annotations/person_keypoints_val2017.json"),
        _require(shared_data / "coco_mini/images/val2017"),
    )


@pytest.fixture(autouse=True)
def keep_torch_threads():
    """``--threads`` sets torch's global thread count; restore it for the other tests."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A posekit checkpoint (coco_person) whose maps have peaks, so poses are found."""
    path = tmp_path_factory.mktemp("ckpt") / "best.pt"
    return write_posekit_checkpoint(path, noisy_lwop("coco_person"), input_height=128)


@pytest.fixture(scope="session")
def subset(coco_val, tmp_path_factory):
    """(annotation file, image folder) of three COCO-MINI val images."""
    out = tmp_path_factory.mktemp("subset")
    (out / "images").mkdir()
    ids = set()
    for name in IMAGES:
        (out / "images" / name).symlink_to((coco_val[1] / name).resolve())
        ids.add(int(name[:-4]))
    data = json.loads(coco_val[0].read_text())
    data["images"] = [im for im in data["images"] if im["id"] in ids]
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] in ids]
    (out / "subset.json").write_text(json.dumps(data))
    return out / "subset.json", out / "images"


@pytest.fixture(scope="session")
def paf_tiny_export(coco_val, tmp_path_factory):
    """(loaded model, ExportResult): the trained paf_tiny fixture of tests/fixtures exported to
    dynamic ONNX with three COCO-MINI photos in its parity gate (export takes ~8 s: shared)."""
    import cv2

    from posekit.export import export_model
    from posekit.models.loading import load_model

    loaded = load_model(REPO / "tests/fixtures/posekit_0.1_paf_tiny.pt")
    photos = [cv2.imread(str(coco_val[1] / name)) for name in IMAGES]
    out = tmp_path_factory.mktemp("paf_tiny_export") / "paf_tiny.onnx"
    return loaded, export_model(loaded, out, photos=photos)
