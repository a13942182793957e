"""The README's main job: `posekit train` with the default config on fresh synthetic data.

Usage: python benchmarks/train_synthetic.py [--out DIR] [--plot docs/train_curve.png]
       [--target 0.8] [--threads N] [section.key=value ...]

Runs ``Trainer(load_config(None, overrides))`` exactly as ``posekit train --out DIR`` does (the
synthetic train/val images are generated first, inside the timed run) and prints:

- wall time to the first validation with AP >= ``--target`` on the held-out synthetic images
  (from the start: data generation, model building and validations included), or the best AP
  reached and when;
- training images/s (training steps only) and the whole run's time;
- peak RAM: max RSS of this process and of its children (DataLoader workers), from
  ``resource.getrusage``;
- one row per epoch (loss, val AP, times), and with ``--plot`` a PNG of the loss (per iteration,
  from TensorBoard when installed) and val AP against wall time (needs matplotlib).

Timings depend on the machine and on what else runs on it; compare within one run.
"""

from __future__ import annotations

import argparse
import logging
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

from posekit.config import load_config
from posekit.engine.trainer import Trainer


def _loss_curve(run_dir: Path, t0: float) -> tuple[list[float], list[float]] | None:
    """(seconds since ``t0``, loss) per iteration from the run's TensorBoard events, if any."""
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    except ImportError:
        return None
    events = EventAccumulator(str(run_dir / "tb"), size_guidance={"scalars": 0}).Reload()
    if "train/loss" not in events.Tags()["scalars"]:
        return None
    scalars = events.Scalars("train/loss")
    return [e.wall_time - t0 for e in scalars], [e.value for e in scalars]


def _plot(path: Path, history: list[dict], setup_s: float, curve, target: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax_loss = plt.subplots(figsize=(7.5, 4.2), dpi=120)
    minutes = [(setup_s + h["elapsed_s"]) / 60 for h in history]
    if curve is not None:
        ax_loss.plot([t / 60 for t in curve[0]], curve[1], color="tab:blue", alpha=0.25, lw=0.8)
    ax_loss.plot(
        minutes,
        [h["loss"] for h in history],
        "o-",
        color="tab:blue",
        ms=3,
        label="training loss (epoch mean)",
    )
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel(
        "wall time (minutes, 2 CPU cores)"
        if torch.get_num_threads() == 2
        else "wall time (minutes)"
    )
    ax_loss.set_ylabel("loss", color="tab:blue")
    ax_ap = ax_loss.twinx()
    val = [(m, h["val_AP"]) for m, h in zip(minutes, history, strict=True) if "val_AP" in h]
    ax_ap.plot(
        [m for m, _ in val],
        [a for _, a in val],
        "s-",
        color="tab:red",
        ms=4,
        label="val AP (held-out synthetic)",
    )
    ax_ap.axhline(target, color="tab:red", ls=":", lw=1)
    ax_ap.set_ylim(0, 1)
    ax_ap.set_ylabel("val AP (OKS)", color="tab:red")
    lines = ax_loss.get_legend_handles_labels()
    more = ax_ap.get_legend_handles_labels()
    ax_loss.legend(lines[0] + more[0], lines[1] + more[1], loc="center right", fontsize=8)
    ax_loss.set_title("posekit train (default config, synthetic coco_person)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="section.key=value (default: none)")
    parser.add_argument("--out", help="run directory (default: a new temporary directory)")
    parser.add_argument("--plot", type=Path, help="write the loss/AP curve PNG here")
    parser.add_argument("--target", type=float, default=0.8, help="val AP to reach (0.8)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="posekit-train-bench-"))
    config = load_config(None, [*args.overrides, f"out={out}"])

    t0 = time.time()
    start = time.perf_counter()
    trainer = Trainer(config, progress=not args.quiet)
    setup_s = time.perf_counter() - start  # synthetic data generation, model, optimizer
    result = trainer.fit()
    total_s = time.perf_counter() - start
    history = list(result.history)

    reached = next((h for h in history if h.get("val_AP", -1.0) >= args.target), None)
    best = max((h for h in history if "val_AP" in h), key=lambda h: h["val_AP"], default=None)
    train_s = sum(h["train_s"] for h in history)
    samples = sum(h["images_per_s"] * h["train_s"] for h in history)
    rss_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    rss_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024

    print(
        f"\nrun: {out}  ({torch.get_num_threads()} torch threads, "
        f"{config.data.workers} data workers)"
    )
    print(
        f"{'epoch':>5} {'iter':>6} {'loss':>9} {'val AP':>7} {'img/s':>7} {'train s':>8} "
        f"{'val s':>6} {'wall min':>8}"
    )
    for h in history:
        ap = f"{h['val_AP']:.3f}" if "val_AP" in h else "-"
        val_s = f"{h['val_s']:.1f}" if "val_s" in h else "-"
        print(
            f"{h['epoch']:>5} {h['iteration']:>6} {h['loss']:>9.2f} {ap:>7} "
            f"{h['images_per_s']:>7.1f} {h['train_s']:>8.1f} {val_s:>6} "
            f"{(setup_s + h['elapsed_s']) / 60:>8.2f}"
        )
    print()
    rows = [
        ("setup (synthetic data, model)", f"{setup_s:.1f} s"),
        (
            f"wall time to val AP >= {args.target:g}",
            f"{(setup_s + reached['elapsed_s']) / 60:.2f} min (epoch {reached['epoch']}, "
            f"iteration {reached['iteration']}, AP {reached['val_AP']:.3f})"
            if reached
            else "not reached",
        ),
        (
            "best val AP",
            f"{best['val_AP']:.3f} at {(setup_s + best['elapsed_s']) / 60:.2f} min "
            f"(epoch {best['epoch']})"
            if best
            else "no validation",
        ),
        ("training images/s", f"{samples / max(train_s, 1e-9):.1f}"),
        ("whole run", f"{total_s / 60:.2f} min, {result.iterations} iterations"),
        (
            "loss first -> last epoch",
            f"{history[0]['loss']:.1f} -> {history[-1]['loss']:.1f} "
            f"(x{history[0]['loss'] / history[-1]['loss']:.1f} lower)",
        ),
        ("peak RSS, this process", f"{rss_self:.0f} MiB"),
        ("peak RSS, largest child", f"{rss_children:.0f} MiB"),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    if args.plot:
        _plot(args.plot, history, setup_s, _loss_curve(out, t0), args.target)
        print(f"curve: {args.plot}")
    return 0 if reached else 1


if __name__ == "__main__":
    sys.exit(main())
