"""Top-down prediction speed, the section of ``predict_speed.py``: batched crops against one crop
per call, and the share of pre- and post-processing in one batched ``TopDownPredictor.predict``.

Networks: ``topdown_tiny`` (96x128 crops) and, when the zoo has it, ``hrnet_w32`` (192x256), with
random weights (speed does not depend on their values), each in float32 and, on CPUs with native
bfloat16 (oneDNN's test), in bfloat16 (``precision="bfloat16"``).

Crops: the ground-truth person boxes of the first COCO-MINI val photos with people, cycled to 16
per image; every box after an image's first round is jittered (centre moved up to 10 % of the
box size, sides scaled 0.9-1.1, seeded) so that no two crops are the same.

Per sample (one image, one network and precision), interleaved so that load changes hit all alike:

- 16 crops in one call: ``predict(image, boxes)`` (one forward pass of batch 16);
- 16 calls of one crop: ``predict(image, boxes[i:i + 1])`` for each box (forward batch 1);
  the first table also gives the forward pass alone (``runtime.run``) per crop of both;
- the same 16-crop call with the flip test (one forward pass of batch 32);
- both again decoding plausible maps: the network runs as before, but the predictor gets the
  codec's own targets of the crops' annotated people (``perfect_crop_outputs``), peaked where a
  trained network's maps are (random weights put their maxima anywhere), as ``predict_speed.py``'s
  "plausible maps". (Measured: the decoding costs the same on both.)

The 16-crop calls are split where the predictor calls its runtime (a wrapper records when
``runtime.run`` starts and ends): pre = box checks, ``matrices``, ``crop_batch``; forward =
``runtime.run`` (tensor in, network, float32 NumPy out); post = ``unflip`` and the average,
the crop -> image affines, ``codec.decode``, sorting. Goals: ms per crop of the 16-crop call at most
1/3 of the single calls', pre + post at most 10 % of the forward. Images are decoded before timing.

The calls' ratio lies between that of the forward passes alone (last columns) and that of the
rest of a call (pre, post, fixed costs: batching divides these by up to 16), and it tends to the
forward's as pre- and post-processing get faster. The forward's ratio is near 1 for a large
network (``hrnet_w32``, bound by its arithmetic); for ``topdown_tiny`` it is lower on a fast CPU
than on a slow one.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from posekit import devices
from posekit.data.coco import ImageRecord
from posekit.inference import Runtime, TopDownPredictor, create_predictor
from posekit.inference.topdown import perfect_crop_outputs
from posekit.models.zoo import MODELS, build_model, default_codec
from posekit.schema import KeypointSchema

CROPS = 16
MODEL_NAMES = ("topdown_tiny", "hrnet_w32")
"""The networks timed: those of them that the zoo has."""
SCHEMA = "coco_person"
RATIO_GOAL, SHARE_GOAL = 1 / 3, 0.10
JITTER_SHIFT, JITTER_SCALE = 0.10, 0.10  # fractions of the box size


def native_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 natively (``posekit.devices``: AVX512-BF16 / AMX) and
    oneDNN may use it (not capped by ``ONEDNN_MAX_CPU_ISA``). oneDNN's own
    ``_is_mkldnn_bf16_supported`` is also True on plain AVX-512, where it emulates bfloat16."""
    return devices.native_bfloat16() and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def machine() -> str:
    """CPU model, the ISA torch's kernels use (``ATEN_CPU_CAPABILITY`` caps it), the oneDNN cap
    and native bfloat16: the CPU class the numbers belong to."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    model = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")),
                 platform.processor() or "unknown CPU")  # fmt: skip
    isa = torch.backends.cpu.get_cpu_capability()
    onednn = os.environ.get("ONEDNN_MAX_CPU_ISA", "(unset)")
    bf16 = native_bfloat16()
    flags = next((ln for ln in lines if ln.startswith("flags")), "").split()
    if isa.startswith("AVX512") and bf16:
        cls = "fast (AVX-512 + bfloat16)"
    elif isa.startswith("AVX512"):
        cls = "AVX-512 without bfloat16 (between the two classes)"
    else:
        cls = "slow (AVX2)"
    vnni = [f for f in ("avx512_vnni", "avx_vnni", "amx_int8") if f in flags]
    return (
        f"CPU {model}, ATen ISA {isa}, ONEDNN_MAX_CPU_ISA={onednn}, "
        f"native bfloat16 {'yes' if bf16 else 'no'}, int8 VNNI {'/'.join(vnni) or 'no'}: "
        f"class {cls}"
    )


def crop_boxes(boxes_xyxy: np.ndarray, rng: np.random.Generator, n: int = CROPS) -> np.ndarray:
    """(n, 4) xyxy boxes: ``boxes_xyxy`` (M, 4) cycled to n (the first n when M > n), the boxes
    after the first round jittered (module docstring)."""
    boxes = np.asarray(boxes_xyxy, np.float64)[np.arange(n) % len(boxes_xyxy)]
    centre, size = (boxes[:, :2] + boxes[:, 2:]) / 2, boxes[:, 2:] - boxes[:, :2]
    copy = (np.arange(n) >= len(boxes_xyxy))[:, None]
    centre = centre + copy * size * rng.uniform(-JITTER_SHIFT, JITTER_SHIFT, (n, 2))
    size = size * np.where(copy, rng.uniform(1 - JITTER_SCALE, 1 + JITTER_SCALE, (n, 2)), 1.0)
    return np.concatenate([centre - size / 2, centre + size / 2], axis=1)


class _TimedRuntime:
    """A runtime that records the (start, end) ``perf_counter`` seconds of each ``run``."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime, self.spans = runtime, []
        self.replacement: tuple[np.ndarray, ...] | None = None
        """Outputs the next ``run`` returns instead of the network's (after running it)."""

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, ...]:
        start = time.perf_counter()
        out = self.runtime.run(batch)
        self.spans.append((start, time.perf_counter()))
        if self.replacement is not None:
            out, self.replacement = self.replacement, None
        return out


@dataclass(frozen=True)
class _Setup:
    """One network and precision: its predictors without and with flip, sharing one runtime."""

    label: str
    plain: TopDownPredictor
    flipped: TopDownPredictor
    runtime: _TimedRuntime


def _setups(names: Sequence[str], precisions: Sequence[str]) -> list[_Setup]:
    setups = []
    for name in names:
        codec, spec = default_codec(name, SCHEMA), MODELS[name].input
        model = build_model(name, SCHEMA, codec=codec)
        for precision in precisions:
            base = create_predictor(model, codec, spec, precision=precision)
            runtime = _TimedRuntime(base.runtime)
            plain = TopDownPredictor(runtime, codec, spec, max_batch=2 * CROPS)
            flipped = TopDownPredictor(runtime, codec, spec, flip=True, max_batch=2 * CROPS)
            label = f"{name} {spec.width}x{spec.height} {precision}"
            setups.append(_Setup(label, plain, flipped, runtime))
    return setups


def _split(
    predictor: TopDownPredictor, runtime: _TimedRuntime, image: np.ndarray, boxes: np.ndarray
) -> tuple[float, float, float, float]:
    """(total, pre, forward, post) seconds of one ``predict`` that runs the network once."""
    runtime.spans.clear()
    start = time.perf_counter()
    predictor.predict(image, boxes)
    end = time.perf_counter()
    ((run_start, run_end),) = runtime.spans
    return end - start, run_start - start, run_end - run_start, end - run_end


def _sample(
    setup: _Setup, image: np.ndarray, boxes: np.ndarray, keypoints: np.ndarray, times: dict
) -> None:
    """One image's timings of ``setup`` into ``times[kind]`` lists (seconds; "batched" and
    "single": (total, forward) per crop; "split ...": (pre, forward, post)); ``keypoints`` (M,
    K, 3): the boxes' people, for the plausible maps."""
    total, *split = _split(setup.plain, setup.runtime, image, boxes)
    times["batched"].append((total / len(boxes), split[1] / len(boxes)))
    times["split"].append(split)
    singles = [
        _split(setup.plain, setup.runtime, image, boxes[i : i + 1]) for i in range(len(boxes))
    ]
    total, _, forward, _ = (statistics.fmean(v) for v in zip(*singles, strict=True))
    times["single"].append((total, forward))
    times["split flip"].append(_split(setup.flipped, setup.runtime, image, boxes)[1:])
    for flip, predictor in (("", setup.plain), (" flip", setup.flipped)):
        matrices = predictor.matrices(boxes)
        maps = perfect_crop_outputs(predictor.codec, keypoints, matrices, flip=bool(flip))
        setup.runtime.replacement = tuple(np.ascontiguousarray(m, np.float32) for m in maps)
        times["split plausible" + flip].append(_split(predictor, setup.runtime, image, boxes)[1:])


def run(
    records: Sequence[ImageRecord],
    repeats: int,
    names: Sequence[str] = MODEL_NAMES,
    records_schema: KeypointSchema | str = SCHEMA,
) -> dict[str, float]:
    """Print the two top-down tables for ``records`` (photos with people; keypoints in
    ``records_schema``, matched to ``SCHEMA``'s by name) timed ``repeats`` times each, for the
    networks ``names`` that the zoo has; returns the headline numbers."""
    by_name = KeypointSchema.load(SCHEMA).source_index(
        KeypointSchema.load(records_schema).keypoints
    )
    names = [n for n in names if n in MODELS]
    precisions = ["float32", "bfloat16"] if native_bfloat16() else ["float32"]
    setups = _setups(names, precisions)
    rng = np.random.default_rng(0)
    samples = [
        (
            cv2.imread(str(r.file), cv2.IMREAD_COLOR),
            crop_boxes(r.boxes, rng),
            r.keypoints[np.arange(CROPS) % r.num_instances][:, by_name],  # crop_boxes' people
        )
        for r in records
    ]
    for setup in setups:  # warm-up: oneDNN builds its kernels per input shape on first use
        _sample(setup, *samples[0], defaultdict(list))
    times = {s.label: defaultdict(list) for s in setups}
    for r in range(repeats):
        for i, sample in enumerate(samples):
            order = setups if (i + r) % 2 == 0 else setups[::-1]
            for setup in order:
                _sample(setup, *sample, times[setup.label])
    people = sum(min(r.num_instances, CROPS) for r in records)
    print(
        f"\nTop-down: {CROPS} crops per photo ({people} ground-truth people of {len(records)} "
        f"COCO-MINI val photos, cycled and jittered to {CROPS} each), x{repeats}, "
        f"{torch.get_num_threads()} threads: median ms per crop of predict()"
    )
    one, many = f"{CROPS} in one call", f"{CROPS} calls of 1"
    goal = f"goal <= {RATIO_GOAL:.2f}"
    print(f"  {'network / precision':<34} {one:>15} {many:>14} {'ratio':>7}   {goal:<12} "
          f"{'forward, ' + one:>24} {many:>14} {'ratio':>6}")  # fmt: skip
    summary = {}
    for label, t in times.items():
        (batched, forward_b), (single, forward_s) = (
            [statistics.median(v) for v in zip(*t[kind], strict=True)]
            for kind in ("batched", "single")
        )
        ratio = batched / single
        summary[f"topdown/{label}/ms per crop, {CROPS} in one call"] = 1e3 * batched
        summary[f"topdown/{label}/ms per crop, 1 per call"] = 1e3 * single
        verdict = "met" if ratio <= RATIO_GOAL else "NOT met"
        cells = f"{1e3 * batched:15.2f} {1e3 * single:14.2f} {ratio:7.2f}   {verdict:<12}"
        forward = f"{1e3 * forward_b:24.2f} {1e3 * forward_s:14.2f} {forward_b / forward_s:6.2f}"
        print(f"  {label:<34} {cells} {forward}")
    print(
        f"\nTop-down: one predict() of {CROPS} crops, median ms; pre = matrices + crop_batch, "
        "post = unflip + map back + decode"
    )
    print(f"  {'network / precision / flip test (maps)':<58} {'pre':>7} {'forward':>8} {'post':>7} "
          f"{'(pre+post)/forward':>19}   goal <= {SHARE_GOAL:.0%}")  # fmt: skip
    for label, t in times.items():
        for maps, flip in ((m, f) for m in ("", " plausible") for f in ("", " flip")):
            splits = t["split" + maps + flip]
            pre, forward, post = (statistics.median(v) for v in zip(*splits, strict=True))
            share = statistics.median((a + c) / b for a, b, c in splits)
            summary[f"topdown/{label}{flip}{maps}/(pre+post)/forward"] = share
            verdict = "met" if share <= SHARE_GOAL else "NOT met"
            row = f"{label} / {'flip' if flip else 'no flip'}{', plausible maps' if maps else ''}"
            print(f"  {row:<58} {1e3 * pre:7.2f} {1e3 * forward:8.1f} {1e3 * post:7.2f} "
                  f"{share:18.1%}   {verdict}")  # fmt: skip
    return summary
