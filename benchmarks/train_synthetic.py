"""The README's main job: `posekit train` with the default config on fresh synthetic data.

Usage: python benchmarks/train_synthetic.py [--out DIR] [--plot docs/train_curve.png]
       [--target 0.8] [--threads N] [section.key=value ...]

Runs ``Trainer(load_config(None, overrides))`` exactly as ``posekit train --out DIR`` does (the
synthetic train/val images are generated first, inside the timed run; ``benchmarks/_common.py``)
and prints:

- the CPU, its hardware ISA, the ISA caps of the environment (``ATEN_CPU_CAPABILITY``,
  ``ONEDNN_MAX_CPU_ISA``) and the load average, before and after the run;
- wall time to the first validation with AP >= ``--target`` on the held-out synthetic images
  (from the start: data generation, model building and validations included), or the best AP
  reached and when;
- training images/s (training steps only), the whole run's time and its CPU time;
- peak RAM: max RSS of this process and of its children (DataLoader workers), from
  ``resource.getrusage``;
- one row per epoch (loss, val AP, times, load), and with ``--plot`` a PNG of the loss (per
  iteration, from TensorBoard when installed) and val AP against wall time (needs matplotlib).

Timings depend on the machine and on what else runs on it; compare within one run.
"""

from __future__ import annotations

import sys

from _common import benchmark_main

RECIPE: tuple[str, ...] = ()
"""Overrides of the benchmarked run: none, ``posekit train``'s defaults (``paf_tiny``)."""
TARGET = 0.8
"""Val AP the run should reach (the README's claim)."""
ITEMS = "images"
"""One training item: a whole image."""


def main() -> int:
    return benchmark_main(
        __doc__,
        RECIPE,
        target=TARGET,
        items=ITEMS,
        title="posekit train (default config, synthetic coco_person)",
        ap_label="val AP (held-out synthetic)",
    )


if __name__ == "__main__":
    sys.exit(main())
