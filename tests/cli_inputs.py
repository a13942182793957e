"""What the CLI tests share: a few COCO-MINI val photos and fast inference flags (their
``checkpoint`` fixture is in ``tests/conftest.py``)."""

from __future__ import annotations

IMAGES = ("000000000139.jpg", "000000034417.jpg", "000000231125.jpg")  # 1, 2 people; one portrait
FAST = ["--height", "128", "--threads", "1"]
