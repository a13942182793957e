"""Robust image reading: a missing or undecodable file is a DatasetError naming the file."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from posekit.errors import DatasetError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def read_image(path: str | Path, *, where: str = "") -> np.ndarray:
    """Read an image as BGR uint8 ``(H, W, 3)``; grayscale and alpha images are converted.

    Args:
        path: image file (non-ASCII paths work: the bytes are read with NumPy, decoded by OpenCV).
        where: context added to the error message (e.g. ``"image id 42"``).

    Raises:
        DatasetError: the file is missing, empty, or not a decodable image.
    """
    path = Path(path)
    ctx = f" ({where})" if where else ""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except FileNotFoundError:
        raise DatasetError(f"image file not found: {path}{ctx}") from None
    except (IsADirectoryError, PermissionError) as exc:
        raise DatasetError(f"cannot read image {path}{ctx}: {exc.strerror}") from None
    if data.size == 0:
        raise DatasetError(f"image file is empty: {path}{ctx}")
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetError(f"image file does not decode (corrupt or not an image): {path}{ctx}")
    return image


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly inside ``folder`` (by suffix, case-insensitive), sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"not a folder: {folder}")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
