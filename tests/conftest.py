"""Shared test fixtures: paths to the real datasets in ../shared/data (relative to the repo root)."""

from __future__ import annotations

from pathlib import Path

import pytest

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
