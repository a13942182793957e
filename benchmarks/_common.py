"""What the training benchmarks share: one timed ``posekit train`` run, its report, its curve and
the machine it ran on (``train_synthetic.py``, ``train_topdown.py``, ``proposals.py``); and the
synthetic val split a trained checkpoint validated on (``proposals.py``, ``topdown_decode.py``).

A run is ``Trainer(load_config(None, overrides))``, as ``posekit train --out DIR`` runs it (the
synthetic train/val images are generated inside the timed run). Its report: one row per epoch,
wall time to the first validation at a target AP, the best AP, training items/s, CPU time, peak
RSS; the header names the CPU, its hardware ISA, the caps set by ``ATEN_CPU_CAPABILITY`` /
``ONEDNN_MAX_CPU_ISA`` and the machine load (``os.getloadavg``, sampled through the run), since
other work on the machine stretches every wall time.
"""

from __future__ import annotations

import argparse
import bisect
import logging
import os
import resource
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from topdown_speed import machine

from posekit.config import Config, load_config
from posekit.data.synth import SynthConfig, write_dataset
from posekit.engine.trainer import Trainer
from posekit.errors import ConfigError
from posekit.models.record import load_checkpoint
from posekit.schema import KeypointSchema

ISA_CAPS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA")
"""Environment variables that cap the ISA of torch's kernels (the slow CPU class: ``avx2`` /
``AVX2``)."""

_HARDWARE_FLAGS = {"avx2": "AVX2", "avx512f": "AVX-512", "avx512_bf16": "AVX512-BF16",
                   "amx_bf16": "AMX-BF16"}  # fmt: skip
"""/proc/cpuinfo flags -> names in the machine line."""

LOAD_EVERY_S = 10.0
"""Seconds between two samples of the load average during a run."""


def add_run_args(parser: argparse.ArgumentParser, target: float) -> None:
    """The options of every training benchmark: overrides, --out, --plot, --target, --threads,
    --quiet."""
    parser.add_argument("overrides", nargs="*", help="section.key=value, after the defaults")
    parser.add_argument("--out", help="run directory (default: a new temporary directory)")
    parser.add_argument("--plot", type=Path, help="write the loss/AP curve PNG here")
    parser.add_argument("--target", type=float, default=target, help=f"val AP to reach ({target})")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def setup_logging(threads: int | None) -> None:
    """INFO logging with times; ``threads`` torch threads when given."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    if threads:
        torch.set_num_threads(threads)


def machine_lines() -> list[str]:
    """The CPU (``topdown_speed.machine``: model, ISA in use, native bfloat16), what its
    hardware has, the ISA caps of the environment, torch threads and the load average now."""
    try:
        flags = set()
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        flags = set()
    hardware = ", ".join(f"{name} {'yes' if flag in flags else 'no'}"
                         for flag, name in _HARDWARE_FLAGS.items())  # fmt: skip
    caps = ", ".join(f"{key}={os.environ.get(key, '(unset)')}" for key in ISA_CAPS)
    return [
        machine(),
        f"hardware: {hardware}; caps: {caps}",
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{os.cpu_count()} CPUs, load average {_load_text(os.getloadavg())} (1/5/15 min)",
    ]


def _load_text(loads: Sequence[float]) -> str:
    return "/".join(f"{v:.2f}" for v in loads)


class LoadSampler:
    """The 1-minute load average every ``every`` seconds, in a daemon thread, from ``start()``
    to ``stop()``: ``samples`` is ``[(seconds since start, load)]``."""

    def __init__(self, every: float = LOAD_EVERY_S) -> None:
        self.every = every
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._start = 0.0

    def start(self) -> LoadSampler:
        self._start = time.perf_counter()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            self.samples.append((time.perf_counter() - self._start, os.getloadavg()[0]))
            if self._stop.wait(self.every):
                return


@dataclass(frozen=True)
class TimedRun:
    """One timed training run.

    Attributes:
        out: the run directory.
        config: the resolved config (model options and codec in full).
        history: the trainer's per-epoch metrics (``elapsed_s`` counts from the first epoch).
        iterations: optimizer steps.
        setup_s: synthetic data generation, model and optimizer, before the first epoch.
        total_s: the whole run, setup included.
        t0: ``time.time()`` at the start (TensorBoard's wall times are relative to it).
        cpu_s: user + system CPU seconds of this process and its finished children during the
            run (DataLoader workers); against ``total_s`` it says how many cores the run had.
        loads: ``(seconds since the start, 1-minute load average)`` samples.
    """

    out: Path
    config: Config
    history: tuple[dict[str, float], ...]
    iterations: int
    setup_s: float
    total_s: float
    t0: float
    cpu_s: float
    loads: tuple[tuple[float, float], ...]

    def wall_min(self, h: dict[str, float]) -> float:
        """Minutes from the start of the run to the end of epoch ``h`` (validation included)."""
        return (self.setup_s + h["elapsed_s"]) / 60

    def reached(self, target: float) -> dict[str, float] | None:
        """The first epoch validated at AP >= ``target``."""
        return next((h for h in self.history if h.get("val_AP", -1.0) >= target), None)

    def best(self) -> dict[str, float] | None:
        """The epoch of the best validation AP."""
        validated = [h for h in self.history if "val_AP" in h]
        return max(validated, key=lambda h: h["val_AP"], default=None)

    def load_at(self, seconds: float) -> float:
        """The last load sample at or before ``seconds`` since the start."""
        i = bisect.bisect_right([t for t, _ in self.loads], seconds)
        return self.loads[max(i - 1, 0)][1] if self.loads else float("nan")


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed_run(
    overrides: Sequence[str], out: str | Path | None = None, *, progress: bool = True
) -> TimedRun:
    """Train ``load_config(None, [*overrides, out=...])`` into ``out`` (default a new temporary
    directory) and time it."""
    out = Path(out) if out else Path(tempfile.mkdtemp(prefix="posekit-train-bench-"))
    config = load_config(None, [*overrides, f"out={out}"])
    loads = LoadSampler().start()
    t0, cpu0 = time.time(), _cpu_seconds()
    start = time.perf_counter()
    trainer = Trainer(config, progress=progress)
    setup_s = time.perf_counter() - start
    result = trainer.fit()
    total_s = time.perf_counter() - start
    loads.stop()
    return TimedRun(out, trainer.config, tuple(result.history), result.iterations, setup_s,
                    total_s, t0, _cpu_seconds() - cpu0, tuple(loads.samples))  # fmt: skip


def print_report(run: TimedRun, target: float, items: str = "images") -> bool:
    """Print the per-epoch table and the summary of ``run``; whether it reached ``target``.
    ``items``: what one training item is (images, crops)."""
    history = run.history
    print(f"\nrun: {run.out}  ({torch.get_num_threads()} torch threads, "
          f"{run.config.data.workers} data workers)")  # fmt: skip
    print(f"{'epoch':>5} {'iter':>6} {'loss':>9} {'val AP':>7} {items[:5] + '/s':>7} "
          f"{'train s':>8} {'val s':>6} {'wall min':>8} {'load':>5}")  # fmt: skip
    for h in history:
        ap = f"{h['val_AP']:.3f}" if "val_AP" in h else "-"
        val_s = f"{h['val_s']:.1f}" if "val_s" in h else "-"
        print(
            f"{h['epoch']:>5} {h['iteration']:>6} {h['loss']:>9.4g} {ap:>7} "
            f"{h['images_per_s']:>7.1f} {h['train_s']:>8.1f} {val_s:>6} "
            f"{run.wall_min(h):>8.2f} {run.load_at(run.setup_s + h['elapsed_s']):>5.2f}"
        )
    print()
    reached, best = run.reached(target), run.best()
    train_s = sum(h["train_s"] for h in history)
    samples = sum(h["images_per_s"] * h["train_s"] for h in history)
    loads = [v for _, v in run.loads]
    rows = [
        ("setup (synthetic data, model)", f"{run.setup_s:.1f} s"),
        (
            f"wall time to val AP >= {target:g}",
            f"{run.wall_min(reached):.2f} min (epoch {reached['epoch']}, "
            f"iteration {reached['iteration']}, AP {reached['val_AP']:.3f})"
            if reached
            else "not reached",
        ),
        (
            "best val AP",
            f"{best['val_AP']:.3f} at {run.wall_min(best):.2f} min (epoch {best['epoch']})"
            if best
            else "no validation",
        ),
        (f"training {items}/s", f"{samples / max(train_s, 1e-9):.1f}"),
        ("whole run", f"{run.total_s / 60:.2f} min, {run.iterations} iterations"),
        (
            "CPU time (process + workers)",
            f"{run.cpu_s / 60:.2f} min = {run.cpu_s / max(run.total_s, 1e-9):.2f} cores busy",
        ),
        (
            "load average during the run",
            f"mean {sum(loads) / len(loads):.2f}, max {max(loads):.2f} (1 min, every "
            f"{LOAD_EVERY_S:g} s; this run's own threads included)"
            if loads
            else "not sampled",
        ),
        (
            "loss first -> last epoch",
            f"{history[0]['loss']:.4g} -> {history[-1]['loss']:.4g} "
            f"(x{history[0]['loss'] / history[-1]['loss']:.1f} lower)",
        ),
        (
            "peak RSS, this process",
            f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB",
        ),
        (
            "peak RSS, largest child",
            f"{resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024:.0f} MiB",
        ),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return reached is not None


def _loss_curve(run: TimedRun) -> tuple[list[float], list[float]] | None:
    """(seconds since the start, loss) per iteration from the run's TensorBoard events, if any."""
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    except ImportError:
        return None
    events = EventAccumulator(str(run.out / "tb"), size_guidance={"scalars": 0}).Reload()
    if "train/loss" not in events.Tags()["scalars"]:
        return None
    scalars = events.Scalars("train/loss")
    return [e.wall_time - run.t0 for e in scalars], [e.value for e in scalars]


def plot_curve(path: Path, run: TimedRun, target: float, title: str, ap_label: str) -> None:
    """PNG of the loss (per iteration, from TensorBoard when installed, and per epoch) and the
    val AP against wall minutes (needs matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    history = run.history
    fig, ax_loss = plt.subplots(figsize=(7.5, 4.2), dpi=120)
    minutes = [run.wall_min(h) for h in history]
    curve = _loss_curve(run)
    if curve is not None:
        ax_loss.plot([t / 60 for t in curve[0]], curve[1], color="tab:blue", alpha=0.25, lw=0.8)
    ax_loss.plot(minutes, [h["loss"] for h in history], "o-", color="tab:blue", ms=3,
                 label="training loss (epoch mean)")  # fmt: skip
    ax_loss.set_yscale("log")
    threads = torch.get_num_threads()
    ax_loss.set_xlabel(f"wall time (minutes, {threads} CPU core{'s' * (threads > 1)})")
    ax_loss.set_ylabel("loss", color="tab:blue")
    ax_ap = ax_loss.twinx()
    val = [(m, h["val_AP"]) for m, h in zip(minutes, history, strict=True) if "val_AP" in h]
    ax_ap.plot([m for m, _ in val], [a for _, a in val], "s-", color="tab:red", ms=4,
               label=ap_label)  # fmt: skip
    ax_ap.axhline(target, color="tab:red", ls=":", lw=1)
    ax_ap.set_ylim(0, 1)
    ax_ap.set_ylabel("val AP (OKS)", color="tab:red")
    lines = ax_loss.get_legend_handles_labels()
    more = ax_ap.get_legend_handles_labels()
    ax_loss.legend(lines[0] + more[0], lines[1] + more[1], loc="center right", fontsize=8)
    ax_loss.set_title(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


def run_benchmark(
    args: argparse.Namespace,
    defaults: Sequence[str],
    *,
    items: str,
    title: str,
    ap_label: str,
) -> tuple[TimedRun, bool]:
    """The whole benchmark of ``add_run_args``' options: machine lines, the run of ``defaults``
    then ``args.overrides``, its report and (``--plot``) its curve; the run and whether it
    reached ``args.target``."""
    setup_logging(args.threads)
    for line in machine_lines():
        print(line)
    run = timed_run([*defaults, *args.overrides], args.out, progress=not args.quiet)
    print()
    for line in machine_lines():
        print(line)
    ok = print_report(run, args.target, items)
    if args.plot:
        plot_curve(args.plot, run, args.target, title, ap_label)
        print(f"curve: {args.plot}")
    return run, ok


def benchmark_main(
    doc: str,
    recipe: Sequence[str],
    *,
    target: float,
    items: str,
    title: str,
    ap_label: str,
    goal_min: float | None = None,
) -> int:
    """A training benchmark's command line (``add_run_args``), its run of ``recipe`` then the
    user's overrides, the recipe and goal lines; exit status 0 when the target AP was reached (in
    ``goal_min`` minutes when given)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    add_run_args(parser, target=target)
    args = parser.parse_args()
    run, reached = run_benchmark(args, recipe, items=items, title=title, ap_label=ap_label)
    extra = " + " + " ".join(args.overrides) if args.overrides else ""
    print(f"recipe: {' '.join(recipe) or 'posekit train defaults'}{extra}")
    if goal_min is None:
        return 0 if reached else 1
    first = run.reached(args.target)
    in_time = first is not None and run.wall_min(first) <= goal_min
    print(f"goal (AP >= {args.target:g} within {goal_min:g} min): {'met' if in_time else 'not met'}")
    return 0 if reached and in_time else 1


def synth_settings(checkpoint: Path) -> dict[str, Any] | None:
    """The synthetic train settings (``data.synth`` + ``synth_val_images``) a checkpoint's run
    used, None when it trained on files."""
    data = load_checkpoint(checkpoint).get("config", {}).get("data", {})
    if not data or data.get("train_ann") is not None:
        return None
    return {**data["synth"], "synth_val_images": data["synth_val_images"]}


def synth_val_set(checkpoint: Path, schema: KeypointSchema, out: Path) -> tuple[Path, Path]:
    """(annotation file, image folder) of the synthetic val split a checkpoint's run validated
    on: its files next to the checkpoint (``synth/``), or written again into ``out/val_synth``
    from the checkpoint's settings (the files are a function of them and ``schema``)."""
    root = checkpoint.parent / "synth"
    if not (root / "annotations/val.json").is_file():
        settings = synth_settings(checkpoint)
        if settings is None:
            raise ConfigError(
                f"{checkpoint} was not trained on synthetic data: give the val set (--ann, --images)"
            )
        count = settings.pop("synth_val_images")
        root = out / "val_synth"
        write_dataset(root, schema, SynthConfig(**{**settings, "num_images": count}),
                      split="val")  # fmt: skip
    return root / "annotations/val.json", root / "images/val"


def add_val_args(parser: argparse.ArgumentParser, whose: str) -> None:
    """The val-set and run arguments of the benchmarks that score trained checkpoints:
    ``--ann`` / ``--images`` (default: ``whose`` synthetic val split), ``--no-flip``,
    ``--threads``."""
    parser.add_argument("--ann", type=Path, help=f"val COCO file (default: the {whose})")
    parser.add_argument("--images", type=Path, help="val image folder, with --ann")
    parser.add_argument("--no-flip", action="store_true", help="no flip test")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own)")


def start_val_run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Check ``add_val_args``' arguments, set the threads and logging, print the machine."""
    if (args.ann is None) != (args.images is None):
        parser.error("--ann and --images go together")
    setup_logging(args.threads)
    for line in machine_lines():
        print(line)
